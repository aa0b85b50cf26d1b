"""The one interface every training objective fills in, so the trainer never looks behind it.

An objective says which model family it trains, which data it reads (the synthetic example kind
and, for built datasets, how records become examples), what options it takes (defaults and checks
in one place: the config's section `config.<name>` is built from `defaults`), what state it keeps
beside the parameters (DPO's frozen reference), what it computes outside the gradient before each
step (`prepare`: reference log-probs, rollouts), its loss and metrics, the weight that averages
micro-batches and processes, and its FLOPs for MFU.

The shape follows Tunix's trainers (a loss function plus an input-preparation hook that runs
outside the differentiated function, `tunix/sft/dpo/dpo_trainer.py`), written for our trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping


def section(cfg: Any, name: str) -> Any:
  """The objective's sub-config (`cfg.dpo`, ...), or `{}` when cfg or the section is missing.

  Works for an `ml_collections.ConfigDict` and a plain dict alike.
  """
  if cfg is None:
    return {}
  sub = cfg.get(name, None) if hasattr(cfg, "get") else getattr(cfg, name, None)
  return {} if sub is None else sub


def no_errors(options: Mapping[str, Any]) -> list[str]:
  del options
  return []


def same_cost(step_flops: Callable) -> Callable:
  """The `flops` of an objective whose step costs the same whatever its options."""
  return lambda model_cfg, batch_shapes, trainable, options: step_flops(model_cfg, batch_shapes,
                                                                        trainable)


@dataclasses.dataclass(frozen=True)
class Objective:
  """One training objective.

  name: the config's `objective` and the name of its options section.
  family: the model family it trains (`mathvlm.models.registry`).
  loss: (model, batch, cfg) -> (loss, weight, metrics), a pure jax function the trainer
    differentiates; micro-batches and processes combine as sum(w_i * loss_i) / sum(w_i), and the
    metrics with the same weights. `cfg` is the run's config (or a dict, or None): the loss reads
    its options through `options(cfg)`.
  batch_keys: what the loss reads (after `prepare`).
  example: the kind of example the synthetic source makes ('lm', 'dpo', 'contrastive', 'classify').
  defaults / check: the options, `config.<name>.*`, and their validation (a list of errors, each
    naming its field).
  make_source: (records, tokenizer, data config, model config) -> a random-access source of
    examples, for built datasets; None when the objective trains on synthetic data only.
  extra_state: (trainable params, options) -> {name: pytree}: state kept beside the parameters,
    checkpointed and sharded like them when it has their structure (else replicated).
  prepare: (model_of, state, batch, options) -> (batch, state updates), run inside the jitted step
    before the gradient; `model_of(params)` is the model with those parameters and the frozen ones.
  check_example: (one example, options) -> None, raising ValueError naming missing keys.
  flops: (model config, batch shapes, {trainable parameter path: its size}, options) -> FLOPs
    of one step (`mathvlm.flops`); sizes, not only paths, so that LoRA adapters count at their
    rank; options, as they decide which extra forwards a step runs (a reference model, passes).
  weight_metric: the name the summed weight is logged under (lm: 'tokens'), or None.
  host_step: "package.module:factory" of a host-side step (rollouts and rewards for RL), called
    as factory(run) at setup; the result turns each batch this process reads into the batch the
    step trains on, `host(state, local_batch, step) -> (batch, metrics)`, and keeps its own state
    (`state_dict` / `load_state_dict`, checkpointed beside the train state). An import path, not
    an import: the objective stays below the layers that step uses (sampling, answer judging).
  updates_per_step: options -> how many optimizer updates each step makes on its batch.
  rows_per_example: options -> how many rows the step trains on per example read (RL: the
    `group` answers of a prompt); grad_accum splits rows and the mesh shards them, so the
    config's divisibility checks count rows, not prompts.
  option_types: the type of each option whose default is None ('auto'), so that the config can
    still take a value from the command line or a sweep (ml_collections refuses to override a
    field of type NoneType).
  project: (trainable params, options) -> params, applied after every optimizer update: a
    constraint on the parameters themselves, which a loss cannot express (CLIP's logit scale
    kept in [0, log 100], open_clip's clamp after each step); None: none.
  in_batch_negatives: the loss compares each row with the other rows of its batch (CLIP's
    contrastive loss), so a micro-batch of `optim.grad_accum` is not a part of the batch's loss
    but a smaller problem with fewer negatives; the config check refuses accumulation for it.
  """
  name: str
  family: str
  loss: Callable
  batch_keys: tuple[str, ...]
  example: str
  flops: Callable
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  check: Callable[[Mapping[str, Any]], list[str]] = no_errors
  make_source: Callable | None = None
  extra_state: Callable | None = None
  prepare: Callable | None = None
  check_example: Callable | None = None
  weight_metric: str | None = None
  host_step: str | None = None
  updates_per_step: Callable[[Mapping[str, Any]], int] | None = None
  rows_per_example: Callable[[Mapping[str, Any]], int] = lambda options: 1
  option_types: Mapping[str, type] = dataclasses.field(default_factory=dict)
  in_batch_negatives: bool = False
  project: Callable | None = None

  def options(self, cfg: Any) -> dict[str, Any]:
    """The defaults overridden by the config's section; unknown or invalid options fail here."""
    given = dict(section(cfg, self.name))
    unknown = sorted(set(given) - set(self.defaults))
    if unknown:
      raise ValueError(f"unknown {self.name} option(s) {unknown}; known: {sorted(self.defaults)}")
    out = {**self.defaults, **given}
    errors = self.check(out)
    if errors:
      raise ValueError("; ".join(errors))
    return out

  def make_host_step(self, run):
    """The host-side step for this run, or None."""
    if not self.host_step:
      return None
    import importlib
    module, _, attr = self.host_step.partition(":")
    return getattr(importlib.import_module(module), attr)(run)

  def check_batch(self, batch) -> None:
    """Fails naming the missing keys, before tracing gets a KeyError from deep inside the loss."""
    missing = [k for k in self.batch_keys if k not in batch]
    if missing:
      raise ValueError(f"objective {self.name!r} needs batch keys {list(self.batch_keys)}; "
                       f"missing {missing} (batch has {sorted(batch)})")

  def check_data(self, example, cfg) -> None:
    """What the data gives, checked before compiling: `check_example` or all of `batch_keys`."""
    if self.check_example is not None:
      self.check_example(example, self.options(cfg))
    else:
      self.check_batch(example)
