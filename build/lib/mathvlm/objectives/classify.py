"""Image classification (Math-LLaVA's clarity and complexity scorers): cross-entropy on labels.

The model is `mathvlm.models.classifier.ImageClassifier`. Option (`cfg.classify`): label_smoothing
(0.0): the target puts 1 - ls on the label and ls / K spread over all K classes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mathvlm import flops
from mathvlm.objectives.base import Objective

Array = jax.Array


def cross_entropy(logits: Array, labels: Array, label_smoothing: float = 0.0) -> Array:
  """[B] cross-entropy of float32 logits [B, K] against integer labels [B]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  target = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
  if label_smoothing:
    target = target * (1 - label_smoothing) + label_smoothing / logits.shape[-1]
  return -jnp.sum(target * logp, axis=-1)


def loss(model, batch: dict[str, Array], cfg: Any = None):
  """Mean cross-entropy over the batch; weight = B."""
  ls = float(OBJECTIVE.options(cfg)["label_smoothing"])
  labels = jnp.asarray(batch["labels"], jnp.int32)
  logits = model(batch["pixel_values"]).astype(jnp.float32)
  mean = jnp.mean(cross_entropy(logits, labels, ls))
  accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
  return mean, jnp.asarray(labels.shape[0], jnp.float32), dict(loss=mean, accuracy=accuracy)


def check(o) -> list[str]:
  if not 0.0 <= o["label_smoothing"] < 1.0:
    return [f"classify.label_smoothing={o['label_smoothing']}: a value in [0, 1)"]
  return []


OBJECTIVE = Objective(
    name="classify", family="classifier", loss=loss, example="classify",
    flops=flops.classify_step, batch_keys=("pixel_values", "labels"),
    defaults=dict(label_smoothing=0.0), check=check)
