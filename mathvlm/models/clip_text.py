"""CLIP text tower and the whole CLIP model (both towers, projection heads, `logit_scale`).

MAVIS stage 1 (CLIP-Math) trains the vision tower contrastively against this text tower, frozen or
not; the contrastive objective reads `CLIP.__call__`'s normalised embeddings and scale.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from mathvlm.models.layers import (activation, causal_mask, check_field_types, dense, dtype_of,
                                   hf_fields_of, layer_norm, normal, scan_layers, stacked,
                                   with_hf_fields)
from mathvlm.models.vit import CLIPEncoderLayer, CLIPVisionConfig, CLIPVisionTransformer

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
  vocab_size: int = 49408
  hidden_size: int = 768
  intermediate_size: int = 3072
  num_layers: int = 12
  num_heads: int = 12
  max_position_embeddings: int = 77
  layer_norm_eps: float = 1e-5
  hidden_act: str = "quick_gelu"
  eos_token_id: int = 49407       # 2 in configs saved before transformers#24773: pool at argmax id
  dtype: str = "float32"
  param_dtype: str = "float32"
  remat: str = "none"
  scan_unroll: int = 1            # layers per scan iteration (see layers.scan_layers)
  attention_impl: str | None = None
  # config.json's fields this config does not model, written back on export (layers.hf_fields_of)
  hf_fields: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    check_field_types(self)

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @classmethod
  def from_hf(cls, d: dict[str, Any], **overrides) -> "CLIPTextConfig":
    activation(d.get("hidden_act", "quick_gelu"))
    cfg = cls(
        vocab_size=d.get("vocab_size", 49408), hidden_size=d.get("hidden_size", 512),
        intermediate_size=d.get("intermediate_size", 2048),
        num_layers=d.get("num_hidden_layers", 12), num_heads=d.get("num_attention_heads", 8),
        max_position_embeddings=d.get("max_position_embeddings", 77),
        layer_norm_eps=d.get("layer_norm_eps", 1e-5), hidden_act=d.get("hidden_act", "quick_gelu"),
        eos_token_id=d.get("eos_token_id", 49407), **overrides)
    return dataclasses.replace(cfg, hf_fields=hf_fields_of(d, cfg.to_hf()))

  def to_hf(self) -> dict[str, Any]:
    out = dict(model_type="clip_text_model", vocab_size=self.vocab_size,
               hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
               num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
               max_position_embeddings=self.max_position_embeddings,
               layer_norm_eps=self.layer_norm_eps, hidden_act=self.hidden_act,
               eos_token_id=self.eos_token_id)
    return with_hf_fields(out, self.hf_fields)


class CLIPTextTransformer(nnx.Module):
  def __init__(self, cfg: CLIPTextConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    d = cfg.hidden_size
    pdt = dtype_of(cfg.param_dtype)
    self.token_embedding = nnx.Param(normal()(rngs.params(), (cfg.vocab_size, d), pdt),
                                     out_sharding=("vocab", "embed"), eager_sharding=False)
    self.position_embedding = nnx.Param(
        normal()(rngs.params(), (cfg.max_position_embeddings, d), pdt),
        out_sharding=(None, "embed"), eager_sharding=False)
    self.layers = stacked(lambda r: CLIPEncoderLayer(cfg, rngs=r), cfg.num_layers, rngs)
    self.final_layer_norm = layer_norm(d, cfg.layer_norm_eps, cfg, rngs)

  def __call__(self, input_ids: Array, attention_mask: Array | None = None) -> tuple[Array, Array]:
    """(last hidden state, pooled at the EOS token)."""
    cfg = self.cfg
    input_ids = jnp.asarray(input_ids, jnp.int32)
    t = input_ids.shape[1]
    if t > cfg.max_position_embeddings:
      raise ValueError(f"text length {t} exceeds max_position_embeddings "
                       f"{cfg.max_position_embeddings}")
    dt = dtype_of(cfg.dtype)
    x = (self.token_embedding[...][input_ids] + self.position_embedding[...][:t]).astype(dt)
    slots = jnp.arange(t)
    valid = None if attention_mask is None else jnp.asarray(attention_mask)
    mask = causal_mask(slots, slots, valid)
    x, _ = scan_layers(self.layers, lambda blk, h, _: (blk(h, mask), None), x, remat=cfg.remat,
                      unroll=cfg.scan_unroll)
    x = self.final_layer_norm(x)
    if cfg.eos_token_id == 2:
      eos_at = jnp.argmax(input_ids, axis=-1)
    else:
      eos_at = jnp.argmax((input_ids == cfg.eos_token_id).astype(jnp.int32), axis=-1)
    return x, x[jnp.arange(x.shape[0]), eos_at]


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
  vision: CLIPVisionConfig = CLIPVisionConfig()
  text: CLIPTextConfig = CLIPTextConfig()
  projection_dim: int = 768
  logit_scale_init: float = math.log(1 / 0.07)
  # config.json's fields this config does not model, written back on export (layers.hf_fields_of)
  hf_fields: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    check_field_types(self)

  @classmethod
  def from_hf(cls, d: dict[str, Any], **overrides) -> "CLIPConfig":
    cfg = cls(vision=CLIPVisionConfig.from_hf(d.get("vision_config", {}), **overrides),
               text=CLIPTextConfig.from_hf(d.get("text_config", {}), **overrides),
               projection_dim=d.get("projection_dim", 512),
               logit_scale_init=d.get("logit_scale_init_value", math.log(1 / 0.07)))
    return dataclasses.replace(cfg, hf_fields=hf_fields_of(d, cfg.to_hf()))

  def to_hf(self) -> dict[str, Any]:
    out = dict(model_type="clip", architectures=["CLIPModel"],
               vision_config=self.vision.to_hf(), text_config=self.text.to_hf(),
               projection_dim=self.projection_dim, logit_scale_init_value=self.logit_scale_init)
    return with_hf_fields(out, self.hf_fields)


class CLIP(nnx.Module):
  """Both towers with their projection heads; `__call__` gives what a contrastive loss needs."""

  def __init__(self, cfg: CLIPConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.vision_model = CLIPVisionTransformer(cfg.vision, rngs=rngs)
    self.text_model = CLIPTextTransformer(cfg.text, rngs=rngs)
    self.visual_projection = dense(cfg.vision.hidden_size, cfg.projection_dim, ("embed", None),
                                   bias=False, cfg=cfg.vision, rngs=rngs,
                                   std=cfg.vision.hidden_size ** -0.5)  # as Hugging Face inits
    self.text_projection = dense(cfg.text.hidden_size, cfg.projection_dim, ("embed", None),
                                 bias=False, cfg=cfg.text, rngs=rngs,
                                 std=cfg.text.hidden_size ** -0.5)
    self.logit_scale = nnx.Param(
        jnp.asarray(cfg.logit_scale_init, dtype_of(cfg.vision.param_dtype)),
                                 out_sharding=(), eager_sharding=False)

  def image_features(self, pixel_values: Array) -> Array:
    """Projected, unnormalised image embeddings (HF's `get_image_features`)."""
    return self.visual_projection(self.vision_model(pixel_values)[1])

  def text_features(self, input_ids: Array, attention_mask: Array | None = None) -> Array:
    return self.text_projection(self.text_model(input_ids, attention_mask)[1])

  def __call__(self, pixel_values: Array, input_ids: Array,
               attention_mask: Array | None = None) -> dict[str, Array]:
    img = self.image_features(pixel_values).astype(jnp.float32)
    txt = self.text_features(input_ids, attention_mask).astype(jnp.float32)
    img = img / jnp.linalg.norm(img, axis=-1, keepdims=True)
    txt = txt / jnp.linalg.norm(txt, axis=-1, keepdims=True)
    scale = jnp.exp(self.logit_scale[...].astype(jnp.float32))
    logits_per_text = scale * txt @ img.T
    return dict(logits_per_image=logits_per_text.T, logits_per_text=logits_per_text,
                image_embeds=img, text_embeds=txt, logit_scale=scale)
