"""Image classification (Math-LLaVA's clarity and complexity scorers): cross-entropy on labels.

The model is `mathvlm.models.classifier.ImageClassifier`. Option (`cfg.classify`): label_smoothing
(0.0): the target puts 1 - ls on the label and ls / K spread over all K classes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mathvlm import flops
from mathvlm.data.labels import LabelSource
from mathvlm.objectives.base import Objective, same_cost

Array = jax.Array


def cross_entropy(logits: Array, labels: Array, label_smoothing: float = 0.0) -> Array:
  """[B] cross-entropy of float32 logits [B, K] against integer labels [B]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  target = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
  if label_smoothing:
    target = target * (1 - label_smoothing) + label_smoothing / logits.shape[-1]
  return -jnp.sum(target * logp, axis=-1)


def loss(model, batch: dict[str, Array], cfg: Any = None):
  """Mean cross-entropy over the examples that have a label; weight = their number. An example
  the input pipeline dropped carries label -1 (`mathvlm.data.labels`) and counts for nothing."""
  ls = float(OBJECTIVE.options(cfg)["label_smoothing"])
  labels = jnp.asarray(batch["labels"], jnp.int32)
  valid = (labels >= 0).astype(jnp.float32)
  logits = model(batch["pixel_values"]).astype(jnp.float32)
  count = jnp.sum(valid)
  denom = jnp.maximum(count, 1.0)
  mean = jnp.sum(cross_entropy(logits, jnp.maximum(labels, 0), ls) * valid) / denom
  accuracy = jnp.sum((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32) * valid) / denom
  return mean, count, dict(loss=mean, accuracy=accuracy)


def label_source(records, tokenizer, data, model_cfg) -> LabelSource:
  """Built labelled images (`data_prep.labelled_images`), the label `data.label`."""
  del tokenizer
  if not data.label:
    raise ValueError(f"data.name={data.name!r}: set data.label to the label to learn (e.g. "
                     "clarity or complexity)")
  return LabelSource(records, label=data.label, image_size=model_cfg.vision.image_size,
                     num_classes=data.num_classes, aspect=data.image_aspect)


def check(o) -> list[str]:
  if not 0.0 <= o["label_smoothing"] < 1.0:
    return [f"classify.label_smoothing={o['label_smoothing']}: a value in [0, 1)"]
  return []


OBJECTIVE = Objective(
    name="classify", family="classifier", loss=loss, example="classify",
    flops=same_cost(flops.classify_step), batch_keys=("pixel_values", "labels"),
    defaults=dict(label_smoothing=0.0), check=check, make_source=label_source)
