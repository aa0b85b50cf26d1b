"""Training objectives by the name a config gives (`get(config.objective)`), one file each, all
behind `mathvlm.objectives.base.Objective`. Adding one is a file with an `OBJECTIVE` and a
`register(OBJECTIVE)` (or `registered(...)` for the length of a block); the trainer names none.
"""

from __future__ import annotations

from mathvlm.objectives import classify, contrastive, dpo, grpo, lm
from mathvlm.objectives.base import Objective
from mathvlm.registry import Registry

OBJECTIVES = Registry("objective")


def register(objective: Objective) -> Objective:
  return OBJECTIVES.register(objective.name, objective)


def registered(objective: Objective):
  """`register` for the length of a block (tests, experiments)."""
  return OBJECTIVES.registered(objective.name, objective)


def get(name: str) -> Objective:
  return OBJECTIVES.get(name)


for _module in (lm, dpo, contrastive, classify, grpo):
  register(_module.OBJECTIVE)
