"""Direct preference optimisation (MAVIS stage 4), with TRL's DPOTrainer formulas.

Data comes as pairs, [B, 2, ...] (chosen, rejected), so splitting a batch over micro-batches or
devices keeps each pair together. The loss lays them out as rows: 0..B-1 the chosen answers,
B..2B-1 the rejected ones to the same prompts, and the policy runs one forward over 2B rows (it also
takes that row layout directly). `ref_logps` are the reference model's summed target log-probs of
the same rows: `lm.batch_logps` on a frozen copy of the starting model (`reference='init'`, kept as
objective state), computed in `prepare`, outside the differentiated function; or carried
precomputed by the data (`reference='data'`). They are data, and `stop_gradient` makes sure no
gradient is taken through them.

Options (`cfg.dpo`): beta (0.1; MAVIS does not publish one), loss_type 'sigmoid' | 'ipo',
label_smoothing (0.0, sigmoid only: conservative DPO), length_normalize (default: True for ipo,
as TRL divides both policy and reference log-probs by the number of target tokens for IPO),
reference ('init' | 'data'), sft_weight (0.0: TRL's `rpo_alpha`, the weight of the chosen answers' per-token negative
log-likelihood added to the loss, as in RPO, arXiv 2404.19733). DPO alone only widens the gap
between chosen and rejected and can lower both; with short answers that differ in one value it
soon does, and the model stops writing the chosen answers it is meant to prefer. The NLL term
holds the chosen answers' likelihood up.
"""

from __future__ import annotations

from typing import Any

import einops
import jax
import jax.numpy as jnp

from mathvlm import flops
from mathvlm.data.conversations import PreferenceSource
from mathvlm.objectives import lm
from mathvlm.objectives.base import Objective

Array = jax.Array

LOSS_TYPES = ("sigmoid", "ipo")


def dpo_loss(pi_c: Array, pi_r: Array, ref_c: Array, ref_r: Array, beta: float = 0.1,
             loss_type: str = "sigmoid", label_smoothing: float = 0.0
             ) -> tuple[Array, Array, Array]:
  """(per-pair losses [B], chosen rewards [B], rejected rewards [B]); rewards carry no gradient."""
  errors = check(dict(DEFAULTS, beta=beta, loss_type=loss_type, label_smoothing=label_smoothing))
  if errors:
    raise ValueError("; ".join(errors))
  logits = (pi_c - pi_r) - (ref_c - ref_r)
  if loss_type == "sigmoid":
    losses = (-jax.nn.log_sigmoid(beta * logits) * (1 - label_smoothing)
              - jax.nn.log_sigmoid(-beta * logits) * label_smoothing)
  else:  # IPO, eq. 17 of arXiv 2310.12036: beta plays tau
    losses = (logits - 1 / (2 * beta)) ** 2
  chosen = jax.lax.stop_gradient(beta * (pi_c - ref_c))
  rejected = jax.lax.stop_gradient(beta * (pi_r - ref_r))
  return losses, chosen, rejected


def pairs_to_rows(batch: dict[str, Array]) -> dict[str, Array]:
  """[pairs, 2, ...] -> [2 * pairs, ...]: every chosen row, then every rejected one."""
  return {k: einops.rearrange(v, "p two ... -> (two p) ...") for k, v in batch.items()}


def loss(model, batch: dict[str, Array], cfg: Any = None):
  """Mean DPO loss over the valid pairs; weight = their number. The batch comes as pairs or rows.

  A pair is valid when both its rows have target tokens: PreferenceSource zeroes the loss_mask of
  a pair it cannot use, and such a slot must add nothing (not log 2, nor a wrong preference, nor a
  share of the weight that would shrink the real pairs' gradients).
  """
  opts = OBJECTIVE.options(cfg)
  beta, loss_type = float(opts["beta"]), opts["loss_type"]
  normalize = length_normalize(opts)
  if jnp.ndim(batch["input_ids"]) == 3:
    batch = pairs_to_rows(batch)

  rows = batch["input_ids"].shape[0]
  if rows % 2:
    raise ValueError(f"a DPO batch holds chosen then rejected rows, so an even number; got {rows}")
  ref = jnp.asarray(batch["ref_logps"], jnp.float32)
  if ref.shape != (rows,):
    raise ValueError(f"ref_logps has shape {ref.shape}; expected ({rows},), one per row")
  ref = jax.lax.stop_gradient(ref)
  logps = lm.batch_logps(model, batch)
  tokens = jnp.sum(lm.target_mask(batch)[:, 1:], axis=-1).astype(jnp.float32)
  counts = jnp.maximum(tokens, 1.0)
  b = rows // 2
  valid = (tokens[:b] > 0) & (tokens[b:] > 0)
  pairs = jnp.sum(valid).astype(jnp.float32)
  # per chosen token, before any normalising
  nll = -jnp.sum(jnp.where(valid, logps[:b], 0.0)) / nll_tokens(batch, valid, tokens[:b])
  if normalize:
    logps, ref = logps / counts, ref / counts

  losses, chosen, rejected = dpo_loss(logps[:b], logps[b:], ref[:b], ref[b:], beta, loss_type,
                                      float(opts["label_smoothing"]))
  mean_of = lambda x: jnp.sum(jnp.where(valid, x, 0.0)) / jnp.maximum(pairs, 1.0)
  mean = mean_of(losses)
  if opts["sft_weight"]:
    mean = mean + float(opts["sft_weight"]) * nll
  metrics = {
      "loss": mean,
      "nll/chosen": jax.lax.stop_gradient(nll),
      "rewards/chosen": mean_of(chosen),
      "rewards/rejected": mean_of(rejected),
      "rewards/margin": mean_of(chosen - rejected),
      "rewards/accuracy": mean_of((chosen > rejected).astype(jnp.float32)),
      "logps/chosen": jax.lax.stop_gradient(mean_of(logps[:b])),
      "logps/rejected": jax.lax.stop_gradient(mean_of(logps[b:])),
  }
  return mean, pairs, metrics


def nll_tokens(rows: dict[str, Array], valid: Array, chosen: Array) -> Array:
  """The NLL term's denominator. The trainer weighs each micro-batch's loss by its valid pairs
  (`optim.grad_accum`), which is right for the per-pair DPO term but would make the NLL a mean
  of micro-batches' token means: 2 chosen tokens in one half and 60 in the other would weigh
  alike. So a micro-batch divides by the whole batch's chosen tokens (`batch_chosen`, from
  `prepare`) times its share of the batch's valid pairs, and the weighted sum is the batch's
  per-token NLL. Written as T * (pairs / P) so that a batch taken whole (pairs = P, share
  exactly 1.0) divides by T itself, bit for bit the number it divided by before. Without that
  key (the loss called on a batch alone), its own count."""
  own = jnp.sum(jnp.where(valid, chosen, 0.0))
  if "batch_chosen" not in rows:
    return jnp.maximum(own, 1.0)
  total, total_pairs = (jnp.asarray(rows[k], jnp.float32)[0] for k in ("batch_chosen",
                                                                      "batch_pairs"))
  share = jnp.sum(valid).astype(jnp.float32) / jnp.maximum(total_pairs, 1.0)
  return jnp.maximum(total * share, 1.0)  # >= 1 where a pair is valid: T >= P


def batch_totals(rows: dict[str, Array]) -> dict[str, Array]:
  """{batch_chosen, batch_pairs}, each [rows]: the whole batch's chosen target tokens over its
  valid pairs, and their number, the same in every row (a micro-batch sees only its own)."""
  tokens = jnp.sum(lm.target_mask(rows)[:, 1:], axis=-1).astype(jnp.float32)
  b = tokens.shape[0] // 2
  valid = (tokens[:b] > 0) & (tokens[b:] > 0)
  full = lambda x: jnp.full(tokens.shape, x, jnp.float32)
  return {"batch_chosen": full(jnp.sum(jnp.where(valid, tokens[:b], 0.0))),
          "batch_pairs": full(jnp.sum(valid).astype(jnp.float32))}


# ---------------------------------------------------------------------------------------------
# What the trainer needs beyond the loss.

DEFAULTS = dict(beta=0.1, loss_type="sigmoid", label_smoothing=0.0, length_normalize=None,
                sft_weight=0.0, reference="init")


def check(o) -> list[str]:
  errors = []
  if o["loss_type"] not in LOSS_TYPES:
    errors.append(f"dpo.loss_type={o['loss_type']!r}: one of {LOSS_TYPES}")
  if not o["beta"] > 0:
    errors.append(f"dpo.beta={o['beta']}: it must be > 0")
  if not 0 <= o["label_smoothing"] < 0.5:
    errors.append(f"dpo.label_smoothing={o['label_smoothing']}: a value in [0, 0.5)")
  if o["loss_type"] == "ipo" and o["label_smoothing"]:
    errors.append(f"dpo.label_smoothing={o['label_smoothing']} has no meaning for loss_type "
                  "'ipo'; set it to 0 or use 'sigmoid'")
  if o["sft_weight"] < 0:
    errors.append(f"dpo.sft_weight={o['sft_weight']}; it must be >= 0")
  if o["reference"] not in ("init", "data"):
    errors.append(f"dpo.reference={o['reference']!r}: 'init' (a frozen copy of the starting "
                  "model) or 'data' (ref_logps carried by the data)")
  if o["length_normalize"] not in (None, True, False):
    errors.append(f"dpo.length_normalize={o['length_normalize']!r}: True, False, or None (True "
                  "for ipo, False for sigmoid)")
  return errors


def length_normalize(opts) -> bool:
  """Whether log-probs are divided by their target tokens: None means as TRL (ipo only)."""
  given = opts["length_normalize"]
  return opts["loss_type"] == "ipo" if given is None else bool(given)


def preference_source(records, tokenizer, data, model_cfg) -> PreferenceSource:
  """Built `preferences` pairs as [2, ...] examples (chosen, rejected)."""
  return PreferenceSource(records, **lm.text_source_args(tokenizer, data, model_cfg, "dpo"))


def reference_copy(params, opts) -> dict:
  """reference='init': the starting model's trainable parameters, frozen for the whole run."""
  return {"ref_params": jax.tree.map(jnp.copy, params)} if opts["reference"] == "init" else {}


def reference_logps(model_of, state, batch, opts):
  """Before the gradient, over the whole batch: the frozen reference's log-probs of every row
  (reference='init') and the batch's chosen tokens and valid pairs, which the NLL (the loss's
  term with sft_weight, the logged `nll/chosen`) divides by (`nll_tokens`); each as [pairs, 2]."""
  rows = pairs_to_rows(batch)
  as_pairs = lambda x: einops.rearrange(x, "(two p) -> p two", two=2)
  batch = dict(batch, **{k: as_pairs(v) for k, v in batch_totals(rows).items()})
  if opts["reference"] != "init":
    return batch, {}
  ref = lm.batch_logps(model_of(state["ref_params"]), rows)
  return dict(batch, ref_logps=as_pairs(jax.lax.stop_gradient(ref))), {}


def check_example(example, opts) -> None:
  keys = ("input_ids", "attention_mask", "loss_mask")
  missing = [k for k in keys + (("ref_logps",) if opts["reference"] == "data" else ())
             if k not in example]
  if missing:
    raise ValueError(f"objective 'dpo' (dpo.reference={opts['reference']!r}): the examples are "
                     f"missing {missing} (they have {sorted(example)})")


def step_flops(model_cfg, batch_shapes, trainable, opts) -> float:
  """Both rows of every pair, and the reference's forward unless the data holds its log-probs."""
  return flops.lm_step(model_cfg, batch_shapes, trainable, pairs=True,
                       reference=opts["reference"] == "init")


OBJECTIVE = Objective(
    name="dpo", family="llava", loss=loss, example="dpo", flops=step_flops,
    batch_keys=("input_ids", "attention_mask", "loss_mask", "ref_logps"),
    defaults=DEFAULTS, check=check, make_source=preference_source, extra_state=reference_copy,
    prepare=reference_logps, check_example=check_example,
    option_types={"length_normalize": bool})
