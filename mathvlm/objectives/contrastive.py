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

from mathvlm.objectives import lm

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
  opts = lm.options(cfg, "contrastive")
  loss_type = opts.get("loss_type", "softmax")
  if loss_type not in LOSS_TYPES:
    raise ValueError(f"unknown contrastive loss_type {loss_type!r}; expected one of {LOSS_TYPES}")
  max_scale = float(opts.get("max_logit_scale", 100.0))

  out = model(batch["pixel_values"], batch["input_ids"], batch.get("attention_mask"))
  img = out["image_embeds"].astype(jnp.float32)
  txt = out["text_embeds"].astype(jnp.float32)
  scale = jnp.minimum(jnp.asarray(out["logit_scale"], jnp.float32), max_scale)
  if loss_type == "softmax":
    value, logits = softmax_loss(img, txt, scale)
  else:
    value, logits = sigmoid_loss(img, txt, scale, float(opts.get("sigmoid_bias", -10.0)))
  diag = jnp.arange(logits.shape[0])
  metrics = dict(
      loss=value, logit_scale=scale,
      i2t_accuracy=jnp.mean((jnp.argmax(logits, axis=1) == diag).astype(jnp.float32)),
      t2i_accuracy=jnp.mean((jnp.argmax(logits, axis=0) == diag).astype(jnp.float32)))
  return value, jnp.asarray(logits.shape[0], jnp.float32), metrics
