"""An adaptive curriculum: difficulty follows the running pass rate so that groups stay
informative. GRPO learns only from groups whose answers are neither all right nor all wrong (their
advantages are zero otherwise); a pass rate near 0 or 1 wastes the rollouts. The level moves up when
the running pass rate rises above `high` and down when it falls below `low`; what a level means
(reasoning depth, shapes, domain mix) is the problem stream's (`levels` of them).

A move restarts the running rate (the old level's rate says little about the new one), so the
first step at a level is measured by its batch alone. Without `min_steps` that one batch would
decide the next move: batch pass rates 0.9, 0.2, 0.8, 0.2 moved the level up, down, up, down.
`min_steps` steps are measured at a level before it may move again (from the start of a run too).
The default 5 is the exponential average's window at momentum 0.8, 1 / (1 - 0.8): by the 5th step
the level's first batch weighs 0.8^4 = 0.41 of the running rate, the later four 0.59.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Curriculum:
  levels: int
  level: int = 0
  low: float = 0.25          # below: easier
  high: float = 0.75         # above: harder
  momentum: float = 0.8      # the running pass rate: an exponential average over steps
  pass_rate: float | None = None
  enabled: bool = True
  min_steps: int = 5         # steps measured at a level before it may move (grpo.curriculum_...)
  # steps measured at the current level; a state dict from before it existed loads it as 0, so a
  # resumed run measures min_steps more steps before its next move
  measured: int = 0

  def update(self, batch_pass_rate: float) -> float:
    """Folds one step's pass rate into the running one and moves the level if it left the band
    after `min_steps` steps at this level; returns the running rate it compared with the band:
    the one to log, as a move restarts the running rate (`pass_rate` is None until the next
    step's)."""
    r = batch_pass_rate if self.pass_rate is None else (
        self.momentum * self.pass_rate + (1 - self.momentum) * batch_pass_rate)
    self.pass_rate, self.measured = float(r), self.measured + 1
    if self.enabled and self.measured >= self.min_steps:
      if r > self.high and self.level < self.levels - 1:
        self._move(+1)
      elif r < self.low and self.level > 0:
        self._move(-1)
    return float(r)

  def _move(self, by: int) -> None:
    """A new level: measure it afresh."""
    self.level, self.pass_rate, self.measured = self.level + by, None, 0

  def state_dict(self) -> dict:
    return dataclasses.asdict(self)

  def load_state_dict(self, state: dict) -> None:
    """A state dict from before `min_steps` lacks it and `measured`: the config's min_steps
    stays, and the level counts as measured afresh."""
    for k, v in {"measured": 0, **state}.items():
      setattr(self, k, v)
