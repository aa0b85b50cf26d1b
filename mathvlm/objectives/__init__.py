"""Training objectives by the name a config gives (`get(config.objective)`), one file each, all
behind `mathvlm.objectives.base.Objective`. Adding one is a file with an `OBJECTIVE` and a
`register(OBJECTIVE)` (or `registered(...)` for the length of a block); the trainer names none.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from mathvlm.objectives import classify, contrastive, dpo, grpo, lm
from mathvlm.objectives.base import Objective

OBJECTIVES: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
  if objective.name in OBJECTIVES:
    raise ValueError(f"objective {objective.name!r} is already registered")
  OBJECTIVES[objective.name] = objective
  return objective


@contextlib.contextmanager
def registered(objective: Objective) -> Iterator[Objective]:
  """`register` for the length of a block (tests, experiments)."""
  register(objective)
  try:
    yield objective
  finally:
    OBJECTIVES.pop(objective.name, None)


def get(name: str) -> Objective:
  if name not in OBJECTIVES:
    raise ValueError(f"unknown objective {name!r}; choices: {', '.join(sorted(OBJECTIVES))}")
  return OBJECTIVES[name]


for _module in (lm, dpo, contrastive, classify, grpo):
  register(_module.OBJECTIVE)
