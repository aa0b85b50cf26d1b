"""A vision tower with a linear head: Math-LLaVA's clarity (2 classes) and complexity (4) scorers.

The paper fine-tunes a ViT with a new linear head on 10K GPT-4V-labelled images, then scores every
image to select the 40K kept for training. The tower is the CLIP vision transformer the rest of the
project already loads and shards, so the head reads its pooled output (post_layernorm of CLS).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from mathvlm.models.layers import check_field_types, dense
from mathvlm.models.vit import CLIPVisionConfig, CLIPVisionTransformer

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  vision: CLIPVisionConfig
  num_classes: int

  def __post_init__(self):
    check_field_types(self)
    if self.num_classes < 1:
      raise ValueError(f"num_classes={self.num_classes}; a classifier needs at least one class")


class ImageClassifier(nnx.Module):
  def __init__(self, cfg: ClassifierConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.vision_tower = CLIPVisionTransformer(cfg.vision, rngs=rngs)
    self.head = dense(cfg.vision.hidden_size, cfg.num_classes, ("embed", None), bias=True,
                      cfg=cfg.vision, rngs=rngs, std=cfg.vision.hidden_size ** -0.5)  # as HF's

  def __call__(self, pixel_values: Array) -> Array:
    """Logits [batch, num_classes] in float32; pixel_values normalised, channels last."""
    pooled = self.vision_tower(pixel_values)[1]
    return self.head(pooled).astype(jnp.float32)
