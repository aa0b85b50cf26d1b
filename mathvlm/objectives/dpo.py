"""Direct preference optimisation (MAVIS stage 4), with TRL's DPOTrainer formulas.

One batch holds both sides: rows 0..B-1 are the chosen answers, rows B..2B-1 the rejected ones to
the same prompts, so the policy runs one forward over 2B rows. `ref_logps` [2B] are the reference
model's summed target log-probs of the same rows: `lm.batch_logps` on the frozen model, computed by
the trainer outside the differentiated function, or carried precomputed by the data. They are data,
and `stop_gradient` makes sure no gradient is taken through them.

Options (`cfg.dpo`): beta (0.1; MAVIS does not publish one), loss_type 'sigmoid' | 'ipo',
label_smoothing (0.0, sigmoid only: conservative DPO), length_normalize (default: True for ipo,
as TRL divides both policy and reference log-probs by the number of target tokens for IPO),
sft_weight (0.0: TRL's `rpo_alpha`, the weight of the chosen answers' per-token negative
log-likelihood added to the loss, as in RPO, arXiv 2404.19733). DPO alone only widens the gap
between chosen and rejected and can lower both; with short answers that differ in one value it
soon does, and the model stops writing the chosen answers it is meant to prefer. The NLL term
holds the chosen answers' likelihood up.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mathvlm.objectives import lm

Array = jax.Array

LOSS_TYPES = ("sigmoid", "ipo")


def dpo_loss(pi_c: Array, pi_r: Array, ref_c: Array, ref_r: Array, beta: float = 0.1,
             loss_type: str = "sigmoid", label_smoothing: float = 0.0
             ) -> tuple[Array, Array, Array]:
  """(per-pair losses [B], chosen rewards [B], rejected rewards [B]); rewards carry no gradient."""
  if loss_type not in LOSS_TYPES:
    raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {LOSS_TYPES}")
  if not beta > 0:
    raise ValueError(f"DPO beta={beta}; it must be > 0")
  if loss_type == "ipo" and label_smoothing:
    raise ValueError(f"label_smoothing={label_smoothing} has no meaning for loss_type 'ipo'; "
                     "set it to 0 or use 'sigmoid'")
  logits = (pi_c - pi_r) - (ref_c - ref_r)
  if loss_type == "sigmoid":
    losses = (-jax.nn.log_sigmoid(beta * logits) * (1 - label_smoothing)
              - jax.nn.log_sigmoid(-beta * logits) * label_smoothing)
  else:  # IPO, eq. 17 of arXiv 2310.12036: beta plays tau
    losses = (logits - 1 / (2 * beta)) ** 2
  chosen = jax.lax.stop_gradient(beta * (pi_c - ref_c))
  rejected = jax.lax.stop_gradient(beta * (pi_r - ref_r))
  return losses, chosen, rejected


def loss(model, batch: dict[str, Array], cfg: Any = None):
  """Mean DPO loss over the B pairs; weight = B."""
  opts = lm.options(cfg, "dpo")
  beta = float(opts.get("beta", 0.1))
  loss_type = opts.get("loss_type", "sigmoid")
  label_smoothing = float(opts.get("label_smoothing", 0.0))
  normalize = opts.get("length_normalize", None)
  normalize = loss_type == "ipo" if normalize is None else bool(normalize)

  rows = batch["input_ids"].shape[0]
  if rows % 2:
    raise ValueError(f"a DPO batch holds chosen then rejected rows, so an even number; got {rows}")
  ref = jnp.asarray(batch["ref_logps"], jnp.float32)
  if ref.shape != (rows,):
    raise ValueError(f"ref_logps has shape {ref.shape}; expected ({rows},), one per row")
  ref = jax.lax.stop_gradient(ref)
  sft_weight = float(opts.get("sft_weight", 0.0))
  if sft_weight < 0:
    raise ValueError(f"dpo.sft_weight={sft_weight}; it must be >= 0")
  logps = lm.batch_logps(model, batch)
  counts = jnp.maximum(jnp.sum(lm.target_mask(batch)[:, 1:], axis=-1), 1).astype(jnp.float32)
  b = rows // 2
  nll = -jnp.sum(logps[:b]) / jnp.sum(counts[:b])  # per chosen token, before any normalising
  if normalize:
    logps, ref = logps / counts, ref / counts

  losses, chosen, rejected = dpo_loss(logps[:b], logps[b:], ref[:b], ref[b:], beta, loss_type,
                                      label_smoothing)
  mean = jnp.mean(losses)
  if sft_weight:
    mean = mean + sft_weight * nll
  metrics = {
      "loss": mean,
      "nll/chosen": jax.lax.stop_gradient(nll),
      "rewards/chosen": jnp.mean(chosen),
      "rewards/rejected": jnp.mean(rejected),
      "rewards/margin": jnp.mean(chosen - rejected),
      "rewards/accuracy": jnp.mean((chosen > rejected).astype(jnp.float32)),
      "logps/chosen": jax.lax.stop_gradient(jnp.mean(logps[:b])),
      "logps/rejected": jax.lax.stop_gradient(jnp.mean(logps[b:])),
  }
  return mean, jnp.asarray(b, jnp.float32), metrics
