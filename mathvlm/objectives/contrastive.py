"""Image-text contrastive loss (MAVIS stage 1, CLIP-Math): CLIP's softmax or SigLIP's sigmoid.

The model is `mathvlm.models.clip_text.CLIP`, whose `__call__` gives L2-normalised `image_embeds`,
`text_embeds` and the exp'd `logit_scale`. The negatives are the whole batch: the trainer shards the
batch over devices, and inside jit the [B, B] similarity below is computed on the global arrays
(XLA gathers the embeddings), so the loss is over the global batch, as CLIP's all-gather does,
without any collective written here.

Options (`cfg.contrastive`): loss_type 'softmax' (default) | 'sigmoid'; max_logit_scale (100.0:
CLIP clamps the scale there); sigmoid_bias (-10.0, SigLIP's initial bias, kept constant here).

The clamp is open_clip's: the parameter log(scale) is clamped to [0, log(max_logit_scale)] after
every optimizer update (`keep_scale_in_range`, the objective's `project`), and the loss gets the
gradient of the clamped scale. A clamp inside the loss alone (min(scale, max)) gave the scale no
gradient at the limit, and pretrained CLIP's scale sits exactly there (HF's 4.6052 = log 100,
whose float32 exp is 100.00001): fine-tuning from it, the temperature could never move.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from mathvlm import flops
from mathvlm.data.captions import CaptionSource
from mathvlm.data.sources import require_tokenizer
from mathvlm.objectives.base import Objective, same_cost

Array = jax.Array

LOSS_TYPES = ("softmax", "sigmoid")


# A masked logit: exp() of it is exactly 0 beside real ones, yet (unlike -inf) it keeps the
# gradients finite when a whole batch is masked.
MASKED = -1e30


def _valid(valid: Array | None, b: int) -> Array:
  return jnp.ones((b,), bool) if valid is None else jnp.asarray(valid, bool)


def _mean(x: Array, valid: Array) -> Array:
  return jnp.sum(jnp.where(valid, x, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def softmax_loss(image_embeds: Array, text_embeds: Array, scale: Array,
                 valid: Array | None = None) -> tuple[Array, Array]:
  """CLIP's symmetric InfoNCE: mean of CE(image -> text) and CE(text -> image), diagonal targets.

  valid [B]: rows that hold an example; a dropped one is neither a positive nor a negative.
  Returns (loss, logits [B, B] with logits[i, j] = scale * <img_i, txt_j>, invalid ones masked).
  """
  logits = scale * image_embeds @ text_embeds.T
  valid = _valid(valid, logits.shape[0])
  logits = jnp.where(valid[:, None] & valid[None, :], logits, MASKED)
  diag = jnp.arange(logits.shape[0])
  i2t = jax.nn.logsumexp(logits, axis=1) - logits[diag, diag]
  t2i = jax.nn.logsumexp(logits, axis=0) - logits[diag, diag]
  return (_mean(i2t, valid) + _mean(t2i, valid)) / 2, logits


def sigmoid_loss(image_embeds: Array, text_embeds: Array, scale: Array,
                 bias: float | Array, valid: Array | None = None) -> tuple[Array, Array]:
  """SigLIP: -sum_ij log sigmoid(z_ij (scale <img_i, txt_j> + bias)) / B, z = +1 on the diagonal;
  i and j over the valid rows only, B their number."""
  logits = scale * image_embeds @ text_embeds.T + bias
  b = logits.shape[0]
  valid = _valid(valid, b)
  pairs = valid[:, None] & valid[None, :]
  z = 2 * jnp.eye(b, dtype=logits.dtype) - 1
  terms = jnp.where(pairs, jax.nn.log_sigmoid(z * logits), 0.0)
  return -jnp.sum(terms) / jnp.maximum(jnp.sum(valid), 1), jnp.where(pairs, logits, MASKED)


def clamped_scale(scale: Array, max_scale: float) -> Array:
  """min(scale, max_scale), whose gradient w.r.t. log(scale) is that of the clamped value, as
  open_clip's is (its parameter clamped to log(max) after each step, the forward exp of that):
  d/dscale = clamped / scale. Below the limit: the scale itself, its gradient 1."""
  stop = jax.lax.stop_gradient
  clamped = jnp.minimum(scale, max_scale)
  return stop(clamped) + (scale - stop(scale)) * stop(clamped / scale)


def keep_scale_in_range(params, opts):
  """open_clip's `logit_scale.clamp_(0, log(100))` after every optimizer update, on the trainable
  `logit_scale` (a frozen one is left as loaded; the loss clamps its value): without it an update
  could carry log(scale) past the limit, where the loss's clamp hides how far it went and a
  reversed gradient would first have to walk it back."""
  high = math.log(float(opts["max_logit_scale"]))
  named = lambda path: any(getattr(k, "key", None) == "logit_scale" for k in path)
  return jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.clip(x, 0.0, high).astype(x.dtype) if named(path) else x, params)


def loss(model, batch: dict[str, Array], cfg: Any = None):
  """Contrastive loss over the valid rows of the (global) batch; weight = their number.

  A row whose attention_mask is all zero is an example the data dropped (zero pixels, pad ids):
  it must be neither a positive nor a negative for the others.
  """
  opts = OBJECTIVE.options(cfg)
  loss_type, max_scale = opts["loss_type"], float(opts["max_logit_scale"])

  out = model(batch["pixel_values"], batch["input_ids"], batch.get("attention_mask"))
  img = out["image_embeds"].astype(jnp.float32)
  txt = out["text_embeds"].astype(jnp.float32)
  mask = batch.get("attention_mask")
  valid = _valid(None if mask is None else jnp.asarray(mask).any(-1), img.shape[0])
  scale = clamped_scale(jnp.asarray(out["logit_scale"], jnp.float32), max_scale)
  if loss_type == "softmax":
    value, logits = softmax_loss(img, txt, scale, valid)
  else:
    value, logits = sigmoid_loss(img, txt, scale, float(opts["sigmoid_bias"]), valid)
  diag = jnp.arange(logits.shape[0])
  hit = lambda axis: _mean((jnp.argmax(logits, axis=axis) == diag).astype(jnp.float32), valid)
  metrics = dict(loss=value, logit_scale=scale, i2t_accuracy=hit(1), t2i_accuracy=hit(0))
  return value, jnp.sum(valid).astype(jnp.float32), metrics


def check(o) -> list[str]:
  errors = []
  if o["loss_type"] not in LOSS_TYPES:
    errors.append(f"contrastive.loss_type={o['loss_type']!r}: one of {LOSS_TYPES}")
  if not o["max_logit_scale"] >= 1.0:
    errors.append(f"contrastive.max_logit_scale={o['max_logit_scale']}: >= 1 (the parameter, "
                  "log of the scale, is kept in [0, log(max_logit_scale)])")
  return errors


def caption_source(records, tokenizer, data, model_cfg) -> CaptionSource:
  """CLIP-Math: image and caption, no template or image tokens."""
  tokenizer = require_tokenizer(tokenizer, "contrastive")
  return CaptionSource(records, tokenizer=tokenizer, image_size=model_cfg.vision.image_size,
                       max_len=data.max_len, aspect=data.image_aspect,
                       pad_id=tokenizer.pad_token_id or 0)


OBJECTIVE = Objective(
    name="contrastive", family="clip", loss=loss, example="contrastive",
    flops=same_cost(flops.contrastive_step), batch_keys=("pixel_values", "input_ids", "attention_mask"),
    defaults=dict(loss_type="softmax", sigmoid_bias=-10.0, max_logit_scale=100.0), check=check,
    make_source=caption_source, in_batch_negatives=True, project=keep_scale_in_range)
