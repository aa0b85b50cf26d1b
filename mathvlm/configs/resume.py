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
"""

from __future__ import annotations

import json
import logging
from typing import Any

from etils import epath

log = logging.getLogger("mathvlm.train")

FILE = "run_config.json"

# Dotted names (or prefixes ending in '.') a resumed run may change.
MAY_CHANGE = ("steps", "optim.lr", "optim.grad_clip", "checkpoint.", "metrics.", "evals.",
              "mesh.", "model.remat")


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


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  return sorted(k for k in set(old) | set(new) if old.get(k, "<absent>") != new.get(k, "<absent>"))


def check(config, workdir: str, step: int) -> None:
  """Fails when the workdir's recorded config differs from `config` in a field outside
  `MAY_CHANGE`; logs the fields that may change and did. step: the checkpoint being resumed."""
  path = epath.Path(workdir, FILE)
  if not path.exists():
    log.warning("%s is missing (a workdir from before it was kept): the resumed config is not "
                "checked against the one the checkpoints were trained with", path)
    return
  old, new = json.loads(path.read_text()), flatten(config)
  diff = differences(old, new)
  fixed = [k for k in diff if not may_change(k)]
  show = lambda k: f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}"
  if fixed:
    raise ValueError(
        f"{workdir} holds checkpoints (step {step}) of a run with another config; these fields "
        "differ:\n  " + "\n  ".join(show(k) for k in fixed) + "\nResume with the workdir's "
        f"config ({path}), or train the new config in a new workdir. Fields that may change on "
        f"resume: {', '.join(MAY_CHANGE)}")
  for k in diff:
    log.info("resumed with %s", show(k))


def record(config, workdir: str) -> None:
  """Writes the config the run trains with (process 0 only)."""
  import jax
  if jax.process_index() == 0:
    epath.Path(workdir, FILE).write_text(json.dumps(flatten(config), indent=1, sort_keys=True))
