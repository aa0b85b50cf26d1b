"""The config a workdir was trained with, kept as WORKDIR/run_config.json, and the check that a
resumed run trains the same thing.

A checkpoint holds numbers, not their meaning: resumed with another model, objective, batch or
data, a run would restore or fail deep inside orbax, or worse, train on silently (a different
data order, a different batch under the same step count). So a run that finds a checkpoint
compares its config with the one the workdir was trained with and fails at start, naming every
field that differs, unless all of them are in `MAY_CHANGE`: settings that do not change what the
state means (how long to train, logging, checkpointing, mesh, rematerialisation)
and the learning rate and gradient clip (lowered to get past a non-finite step, see
docs/reliability/FAULTS.md). A run with no checkpoint yet starts over and records its config.
`data.workers` may not change: grain's checkpointed iterator state differs by worker count, so
such a run could not restore the data position.

The code's data order is recorded beside the config (`ORDER_KEY`: mathvlm.data.pipeline's
`ORDER_VERSION` and grain's version), since a resume cannot see a code change: a run resumed
across a change that reorders its config's examples fails at start, naming the change; one the
change does not touch resumes; another grain version is logged as a warning. How the code
counts `optim.warmup_ratio` in steps is recorded too (`WARMUP_KEY`): a workdir from the code that
rounded it resumes only where ceil (the Hugging Face Trainer's count) gives the same warmup.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from etils import epath

from mathvlm.configs import common

log = logging.getLogger("mathvlm.train")

FILE = "run_config.json"
ORDER_KEY = "_data_order"  # {"version": pipeline.ORDER_VERSION, "grain": its version}; no field
# How the code counts optim.warmup_ratio in steps (common.warmup_steps); no field. Absent: the
# code before 2026-12-07, which took round(ratio x steps).
WARMUP_KEY, WARMUP = "_warmup", "ceil"
CODE_KEYS = (ORDER_KEY, WARMUP_KEY)

# Dotted names (or prefixes ending in '.') a resumed run may change.
MAY_CHANGE = ("steps", "optim.lr", "optim.grad_clip", "checkpoint.", "metrics.", "evals.",
              "mesh.", "model.remat", "model.attention_impl")


# Fields added after workdirs were written whose default is not what those runs did: an old
# record without one ran as this value, or as what it gives of the old (flattened) record. Any
# other field an old record lacks ran as `common.base`'s default (a new option off by default).
ABSENT_MEANT = {
    "grpo.curriculum_min_steps": 1,  # moved the level after any step
    "optim.decay_rules": ((".*", "decay"),),  # decayed every trainable tensor
}

# Fields that act on nothing while the (flattened) config says so, in the recorded run and the
# resumed one alike: they may change then, so a changed default (DECAY_RULES gained logit_scale)
# does not stop the workdirs it cannot have touched.
INERT_WHEN = {
    # train.make_optimizer builds no decay mask at weight_decay 0: nothing decays, whatever rules
    "optim.decay_rules": lambda flat: not flat.get("optim.weight_decay"),
}


def may_change(field: str) -> bool:
  return any(field == p or (p.endswith(".") and field.startswith(p)) or field + "." == p
             for p in MAY_CHANGE)


def flatten(config) -> dict[str, Any]:
  """{'optim.lr': 2e-05, ...} with JSON values (tuples as lists), so a config read back from
  run_config.json compares equal to the one it was written from."""
  tree = json.loads(json.dumps(config.to_dict() if hasattr(config, "to_dict") else config,
                               default=str))
  out = {}

  def walk(node, prefix):
    if isinstance(node, dict) and node:
      for k, v in node.items():
        walk(v, f"{prefix}{k}.")
    else:
      out[prefix[:-1]] = node

  walk(tree, "")
  return out


def differences(old: dict[str, Any], new: dict[str, Any],
                defaults: dict[str, Any] | None = None) -> list[str]:
  """The fields that differ. defaults: a field the old record lacks (the config gained it after
  the workdir was written) is unchanged when the new config leaves it at this default, so a
  new option does not stop every older workdir from resuming."""
  def was(k):
    return old[k] if k in old else (defaults or {}).get(k, "<absent>")
  return sorted(k for k in set(old) | set(new) if was(k) != new.get(k, "<absent>"))


def check(config, workdir: str, step: int, epochs_of=None, epochs: int | None = None,
          total_steps: int | None = None) -> None:
  """Fails when the workdir's recorded config differs from `config` in a field outside
  `MAY_CHANGE`; logs the fields that may change and did. step: the checkpoint being resumed.
  epochs: the run's planned passes over its data, and epochs_of (steps -> passes) those of the
  recorded run's `steps`, for the order changes that touch only runs of several: either run's
  count decides, since its checkpoint points into the order the recorded run trained in (None:
  unknown, every change that touches the config counts). total_steps: the run's steps, to tell
  whether its warmup changed with the code (None: not checked)."""
  path = epath.Path(workdir, FILE)
  if not path.exists():
    log.warning("%s is missing (a workdir from before it was kept): the resumed config is not "
                "checked against the one the checkpoints were trained with", path)
    return
  old, notes = recorded(path)
  new = flatten(config)
  meant = {k: v(old) if callable(v) else v for k, v in ABSENT_MEANT.items()}
  defaults = flatten(common.base(config.objective))
  diff = differences(old, new, {**defaults, **flatten(meant)})
  ran = {**defaults, **old}
  inert = lambda k: k in INERT_WHEN and INERT_WHEN[k](ran) and INERT_WHEN[k](new)
  fixed = [k for k in diff if not may_change(k) and not inert(k)]
  was = lambda k: repr(old[k]) if k in old else (
      f"<absent: ran as {meant[k]!r}>" if k in meant else "'<absent>'")
  show = lambda k: f"{k}: {was(k)} -> {new.get(k, '<absent>')!r}"
  if fixed:
    raise ValueError(
        f"{workdir} holds checkpoints (step {step}) of a run with another config; these fields "
        "differ:\n  " + "\n  ".join(show(k) for k in fixed) + "\nResume with the workdir's "
        f"config ({path}), or train the new config in a new workdir. Fields that may change on "
        f"resume: {', '.join(MAY_CHANGE)}")
  for k in diff:
    log.info("resumed with %s", show(k))
  if epochs is not None and epochs_of is not None and "steps" in old:
    epochs = max(epochs, epochs_of(old["steps"]))
  check_order(notes.get(ORDER_KEY), new, path, epochs)
  check_warmup(notes.get(WARMUP_KEY), new, path, total_steps)


def recorded(path) -> tuple[dict[str, Any], dict[str, Any]]:
  """(the flattened config, what the code recorded beside it: `CODE_KEYS` it has) that
  run_config.json at `path` holds."""
  old = json.loads(epath.Path(path).read_text())
  return old, {k: old.pop(k) for k in CODE_KEYS if k in old}


def check_warmup(counted: str | None, flat: dict[str, Any], path, total_steps: int | None):
  """Fails when the workdir was trained by code that rounded optim.warmup_ratio x steps
  (`counted` None) and ceil, the Hugging Face Trainer's count, makes this run's warmup another
  length: the lr of every step would change from the checkpoint on (the warmup's slope, the
  decay's start). Runs whose ratio x steps rounds up, or is whole, resume."""
  if counted is not None or total_steps is None:
    return
  ratio = flat.get("optim.warmup_ratio") or 0.0
  was, now = int(round(ratio * total_steps)), common.warmup_steps(ratio, total_steps)
  if was != now:
    raise ValueError(
        f"{path.parent} was trained by code that took optim.warmup_ratio={ratio} of "
        f"{total_steps} steps as round({ratio} x {total_steps}) = {was} warmup steps; this code "
        f"counts ceil, as the Hugging Face Trainer (TrainingArguments.get_warmup_steps): {now}, "
        "so the lr of every step from the checkpoint on would change. Resume with the code the "
        "run started with, or train in a new workdir. To go on with the new warmup from this "
        f"step, add \"{WARMUP_KEY}\": \"{WARMUP}\" to {path}.")


def data_order() -> dict:
  from importlib import metadata

  from mathvlm.data import pipeline
  return {"version": pipeline.ORDER_VERSION, "grain": metadata.version("grain")}


def check_order(order: dict | None, flat: dict[str, Any], path, epochs: int | None = None) -> None:
  """Fails when the code's data order changed, since `order` was recorded, in a way that touches
  this config (`flat`, flattened) and, for a change to later epochs only, a run of `epochs` > 1
  (None: unknown) or, where the change reorders the passes after a one-epoch plan's, a packed
  run, which reads on past its plan; warns where that cannot be told."""
  from mathvlm.data import pipeline
  now = data_order()

  def touches(v):
    field, _, later_epochs_only, *unless = pipeline.ORDER_CHANGES[v]
    read_past = later_epochs_only == pipeline.PAST_ONE_EPOCH and flat.get("data.packing")
    return (bool(flat.get(field)) and not any(flat.get(u) for u in unless)
            and not (later_epochs_only and epochs == 1 and not read_past))
  if order is None:
    hits = [pipeline.ORDER_CHANGES[v][1] for v in pipeline.ORDER_CHANGES if touches(v)]
    if hits:
      log.warning("%s was written before the data order was recorded: if this run started before "
                  "%s, its examples from here on come in another order", path, "; ".join(hits))
    return
  was = int(order.get("version", 0))
  lo, hi = sorted((was, now["version"]))
  hits = [f"{v}: {pipeline.ORDER_CHANGES[v][1]}" for v in range(lo + 1, hi + 1)
          if v in pipeline.ORDER_CHANGES and touches(v)]
  if hits:
    raise ValueError(
        f"{path.parent} was trained with data order {was} and this code draws order "
        f"{now['version']}; the change between them reorders this config's examples:\n  "
        + "\n  ".join(hits) + "\nResume with the code the run started with, or train in a new "
        f"workdir. To go on in the new order from this step, set {ORDER_KEY}.version to "
        f"{now['version']} in {path}.")
  if order.get("grain") != now["grain"]:
    log.warning("%s was trained with grain %s and this run has grain %s: grain's shuffle and mix "
                "decide the data order, so check its release notes for a change to them", path,
                order.get("grain"), now["grain"])


def record(config, workdir: str) -> None:
  """Writes the config the run trains with (process 0 only)."""
  import jax
  if jax.process_index() == 0:
    code = {ORDER_KEY: data_order(), WARMUP_KEY: WARMUP}
    epath.Path(workdir, FILE).write_text(json.dumps({**flatten(config), **code}, indent=1,
                                                    sort_keys=True))
