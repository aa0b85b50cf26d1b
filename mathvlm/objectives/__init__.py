"""Training objectives, looked up by the name a config gives (`get(cfg.objective)`).

Every loss is `loss(model, batch, cfg) -> (loss, weight, metrics)`: a pure jax function of the model
and the batch that the trainer differentiates with `nnx.value_and_grad`; `cfg` (a ConfigDict or a
plain dict) only supplies static options from the objective's own section (`cfg.dpo`, ...), each
with a default. `weight` combines gradient-accumulation micro-batches:
total = sum(w_i * loss_i) / sum(w_i), and the metrics with the same weights.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from mathvlm.objectives import classify, contrastive, dpo, lm


@dataclasses.dataclass(frozen=True)
class Objective:
  name: str
  loss: Callable
  batch_keys: tuple[str, ...]   # required; lm and dpo also read an optional `pixel_values`

  def check_batch(self, batch) -> None:
    """Fails naming the missing keys, before tracing gets a KeyError from deep inside the loss."""
    missing = [k for k in self.batch_keys if k not in batch]
    if missing:
      raise ValueError(f"objective {self.name!r} needs batch keys {list(self.batch_keys)}; "
                       f"missing {missing} (batch has {sorted(batch)})")


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("lm", lm.loss, ("input_ids", "attention_mask", "loss_mask")),
    Objective("dpo", dpo.loss, ("input_ids", "attention_mask", "loss_mask", "ref_logps")),
    Objective("contrastive", contrastive.loss, ("pixel_values", "input_ids", "attention_mask")),
    Objective("classify", classify.loss, ("pixel_values", "labels")),
)}


def get(name: str) -> Objective:
  if name not in OBJECTIVES:
    raise ValueError(f"unknown objective {name!r}; choices: {', '.join(sorted(OBJECTIVES))}")
  return OBJECTIVES[name]
