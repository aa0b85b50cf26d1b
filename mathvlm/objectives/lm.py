"""Next-token cross-entropy over the target tokens: LLaVA alignment (captions) and SFT.

`loss_mask[b, t] = 1` says token t is a target, predicted from position t - 1 (so position 0 never
is). Masked positions contribute exactly nothing: their logits and ids are replaced with `jnp.where`
before any arithmetic, so a NaN or inf there (a fully padded attention row, a garbage id such as
-100 or LLaVA's -200) can reach neither the loss nor the gradient. Multiplying by the mask would let
`0 * nan` through.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mathvlm import flops
from mathvlm.data.conversations import ConversationSource
from mathvlm.models import linear_ce
from mathvlm.models.layers import positions_from_mask
from mathvlm.data.sources import require_tokenizer
from mathvlm.objectives.base import Objective, same_cost

Array = jax.Array


def shift(logits: Array, input_ids: Array, loss_mask: Array) -> tuple[Array, Array, Array]:
  """Align predictions with targets: logits at t-1 predict input_ids at t, for t = 1..T-1."""
  return logits[:, :-1], input_ids[:, 1:], jnp.asarray(loss_mask)[:, 1:].astype(bool)


def token_cross_entropy(logits: Array, targets: Array, mask: Array) -> tuple[Array, Array]:
  """Per-token cross-entropy and correctness, both exactly 0 where `mask` is False.

  logits [..., V] (already aligned with targets [...]); returns (ce [...] f32, correct [...] f32).
  """
  mask = jnp.asarray(mask).astype(bool)
  logits = jnp.where(mask[..., None], logits.astype(jnp.float32), 0.0)
  targets = jnp.where(mask, jnp.asarray(targets, jnp.int32), 0)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  ce = jax.nn.logsumexp(logits, axis=-1) - target_logit
  correct = jnp.argmax(logits, axis=-1) == targets
  return jnp.where(mask, ce, 0.0), jnp.where(mask, correct, False).astype(jnp.float32)


def sequence_logps(logits: Array, input_ids: Array, loss_mask: Array) -> Array:
  """[B] summed log-probabilities of each row's target tokens (DPO's sequence log-likelihood)."""
  ce, _ = token_cross_entropy(*shift(logits, input_ids, loss_mask))
  return -jnp.sum(ce, axis=-1)


def target_mask(batch: dict[str, Array]) -> Array:
  """loss_mask restricted to real tokens: a padded position is never a target, whatever the data
  says; in a packed row neither is a segment's first token (its predecessor is another example)."""
  mask = jnp.asarray(batch["loss_mask"]).astype(bool)
  if batch.get("attention_mask") is not None:
    mask &= jnp.asarray(batch["attention_mask"]).astype(bool)
  if batch.get("segment_ids") is not None:
    seg = jnp.asarray(batch["segment_ids"])
    mask &= jnp.concatenate([jnp.zeros_like(mask[:, :1]), seg[:, 1:] == seg[:, :-1]], axis=1)
  return mask


def _forward(model, batch: dict[str, Array], **extra):
  """The model's `apply` on the batch (LMOutput): positions skip left padding, packed rows keep
  to their segments."""
  input_ids = jnp.asarray(batch["input_ids"], jnp.int32)
  attention_mask = batch.get("attention_mask")
  positions = None if attention_mask is None else positions_from_mask(jnp.asarray(attention_mask))
  kw = dict(attention_mask=attention_mask, positions=positions, **extra)
  if batch.get("segment_ids") is not None:
    kw.update(positions=None, segment_ids=batch["segment_ids"])  # per-segment positions
  if "pixel_values" in batch:
    return model.apply(input_ids, batch["pixel_values"], **kw)
  return model.apply(input_ids, **kw)


def forward_logits(model, batch: dict[str, Array]) -> Array:
  """[B, T, V] float32 logits from a `Llava` (when the batch has pixel_values) or a causal LM.

  Positions skip left padding (cumsum of the mask), which equals 0..T-1 on real tokens of a
  right-padded row, so either padding side gives the same loss. Packed rows (`segment_ids`, see
  `mathvlm.data.pipeline.PackedBatches`) attend within each example, positions restarting at 0.
  """
  return _forward(model, batch).logits.astype(jnp.float32)


def target_logps(model, batch: dict[str, Array]) -> tuple[Array, Array, Array]:
  """(log p of each target token [B, T-1] f32, its argmax == target [B, T-1] f32, the target
  mask [B, T-1]); both exactly 0 off target.

  A model with `head_operands` (ours) projects only the target rows through the output layer,
  chunk by chunk (`mathvlm.models.linear_ce`): no [B, T, V] logits. Anything else (a test
  double, a LoRA on lm_head) goes through the full logits and `token_cross_entropy`.
  """
  input_ids = jnp.asarray(batch["input_ids"], jnp.int32)
  mask = target_mask(batch)
  if hasattr(model, "head_operands"):
    out = _forward(model, batch, return_hidden=True)
    operands = model.head_operands(out.hidden[:, :-1])
    if operands is not None:
      logp, correct = linear_ce.target_logprobs(*operands, input_ids[:, 1:], mask[:, 1:])
      return logp, correct.astype(jnp.float32), mask[:, 1:]
    logits = model.head(out.hidden).astype(jnp.float32)
  else:
    logits = forward_logits(model, batch)
  logits, targets, shifted = shift(logits, input_ids, mask)
  ce, correct = token_cross_entropy(logits, targets, shifted)
  return -ce, correct, shifted


def batch_logps(model, batch: dict[str, Array]) -> Array:
  """[B] summed target log-probs of each row under `model`.

  The trainer fills DPO's `ref_logps` with this on the frozen reference model, so policy and
  reference go through exactly the same forward and mask.
  """
  return jnp.sum(target_logps(model, batch)[0], axis=-1)


def loss(model, batch: dict[str, Array], cfg: Any = None):
  """Mean cross-entropy over target tokens; weight = number of target tokens (0 -> loss 0)."""
  del cfg  # no options
  logp, correct, mask = target_logps(model, batch)
  tokens = jnp.sum(mask).astype(jnp.float32)
  denom = jnp.maximum(tokens, 1.0)
  mean = -jnp.sum(logp) / denom
  return mean, tokens, dict(loss=mean, tokens=tokens, accuracy=jnp.sum(correct) / denom)


def text_source_args(tokenizer, data, model_cfg, objective: str) -> dict:
  """What a templated text source (conversations, preference pairs) needs from the config."""
  tokenizer = require_tokenizer(tokenizer, objective)
  return dict(tokenizer=tokenizer, template=data.template, image_size=model_cfg.vision.image_size,
              image_token_id=model_cfg.image_token_id, image_seq_len=model_cfg.image_seq_len,
              max_len=data.max_len, aspect=data.image_aspect, pad_id=tokenizer.pad_token_id or 0)


def conversation_source(records, tokenizer, data, model_cfg) -> ConversationSource:
  """Built conversations (mathv360k, mavis_instruct, mavis_caption, llava_json) as lm examples."""
  return ConversationSource(records, **text_source_args(tokenizer, data, model_cfg, "lm"))


OBJECTIVE = Objective(
    name="lm", family="llava", loss=loss, example="lm", flops=same_cost(flops.lm_step),
    batch_keys=("input_ids", "attention_mask", "loss_mask"), make_source=conversation_source,
    weight_metric="tokens")
