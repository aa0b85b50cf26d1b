"""Image-text contrastive loss (MAVIS stage 1, CLIP-Math): CLIP's softmax or SigLIP's sigmoid.

The model is `mathvlm.models.clip_text.CLIP`, whose `__call__` gives L2-normalised `image_embeds`,
`text_embeds` and the exp'd `logit_scale`. The negatives are the whole batch: the trainer shards the
batch over devices, and inside jit the [B, B] similarity below is computed on the global arrays
(XLA gathers the embeddings), so the loss is over the global batch, as CLIP's all-gather does,
without any collective written here.

Options (`cfg.contrastive`): loss_type 'softmax' (default) | 'sigmoid'; max_logit_scale (100.0:
CLIP clamps the scale there); sigmoid_bias (-10.0, SigLIP's initial bias, kept constant here).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mathvlm import flops
from mathvlm.data.captions import CaptionSource
from mathvlm.data.sources import require_tokenizer
from mathvlm.objectives.base import Objective

Array = jax.Array

LOSS_TYPES = ("softmax", "sigmoid")


def softmax_loss(image_embeds: Array, text_embeds: Array, scale: Array) -> tuple[Array, Array]:
  """CLIP's symmetric InfoNCE: mean of CE(image -> text) and CE(text -> image), diagonal targets.

  Returns (loss, logits [B, B] with logits[i, j] = scale * <img_i, txt_j>).
  """
  logits = scale * image_embeds @ text_embeds.T
  diag = jnp.arange(logits.shape[0])
  i2t = jax.nn.logsumexp(logits, axis=1) - logits[diag, diag]
  t2i = jax.nn.logsumexp(logits, axis=0) - logits[diag, diag]
  return (jnp.mean(i2t) + jnp.mean(t2i)) / 2, logits


def sigmoid_loss(image_embeds: Array, text_embeds: Array, scale: Array,
                 bias: float | Array) -> tuple[Array, Array]:
  """SigLIP: -sum_ij log sigmoid(z_ij (scale <img_i, txt_j> + bias)) / B, z = +1 on the diagonal."""
  logits = scale * image_embeds @ text_embeds.T + bias
  b = logits.shape[0]
  z = 2 * jnp.eye(b, dtype=logits.dtype) - 1
  return -jnp.sum(jax.nn.log_sigmoid(z * logits)) / b, logits


def loss(model, batch: dict[str, Array], cfg: Any = None):
  """Contrastive loss over the (global) batch; weight = B."""
  opts = OBJECTIVE.options(cfg)
  loss_type, max_scale = opts["loss_type"], float(opts["max_logit_scale"])

  out = model(batch["pixel_values"], batch["input_ids"], batch.get("attention_mask"))
  img = out["image_embeds"].astype(jnp.float32)
  txt = out["text_embeds"].astype(jnp.float32)
  scale = jnp.minimum(jnp.asarray(out["logit_scale"], jnp.float32), max_scale)
  if loss_type == "softmax":
    value, logits = softmax_loss(img, txt, scale)
  else:
    value, logits = sigmoid_loss(img, txt, scale, float(opts["sigmoid_bias"]))
  diag = jnp.arange(logits.shape[0])
  metrics = dict(
      loss=value, logit_scale=scale,
      i2t_accuracy=jnp.mean((jnp.argmax(logits, axis=1) == diag).astype(jnp.float32)),
      t2i_accuracy=jnp.mean((jnp.argmax(logits, axis=0) == diag).astype(jnp.float32)))
  return value, jnp.asarray(logits.shape[0], jnp.float32), metrics


def check(o) -> list[str]:
  if o["loss_type"] not in LOSS_TYPES:
    return [f"contrastive.loss_type={o['loss_type']!r}: one of {LOSS_TYPES}"]
  return []


def caption_source(records, tokenizer, data, model_cfg) -> CaptionSource:
  """CLIP-Math: image and caption, no template or image tokens."""
  tokenizer = require_tokenizer(tokenizer, "contrastive")
  return CaptionSource(records, tokenizer=tokenizer, image_size=model_cfg.vision.image_size,
                       max_len=data.max_len, aspect=data.image_aspect,
                       pad_id=tokenizer.pad_token_id or 0)


OBJECTIVE = Objective(
    name="contrastive", family="clip", loss=loss, example="contrastive",
    flops=flops.contrastive_step, batch_keys=("pixel_values", "input_ids", "attention_mask"),
    defaults=dict(loss_type="softmax", sigmoid_bias=-10.0, max_logit_scale=100.0), check=check,
    make_source=caption_source)
