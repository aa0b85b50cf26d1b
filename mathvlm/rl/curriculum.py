"""An adaptive curriculum: difficulty follows the running pass rate so that groups stay
informative. GRPO learns only from groups whose answers are neither all right nor all wrong (their
advantages are zero otherwise); a pass rate near 0 or 1 wastes the rollouts. The level moves up when
the running pass rate rises above `high` and down when it falls below `low`; what a level means
(reasoning depth, shapes, domain mix) is the problem stream's (`levels` of them).
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

  def update(self, batch_pass_rate: float) -> float:
    """Folds one step's pass rate into the running one and moves the level if it left the band;
    returns the running rate it compared with the band: the one to log, as a move restarts the
    running rate (`pass_rate` is None until the next step's)."""
    r = batch_pass_rate if self.pass_rate is None else (
        self.momentum * self.pass_rate + (1 - self.momentum) * batch_pass_rate)
    self.pass_rate = float(r)
    if self.enabled:
      if r > self.high and self.level < self.levels - 1:
        self.level, self.pass_rate = self.level + 1, None  # a new level: measure it afresh
      elif r < self.low and self.level > 0:
        self.level, self.pass_rate = self.level - 1, None
    return float(r)

  def state_dict(self) -> dict:
    return dataclasses.asdict(self)

  def load_state_dict(self, state: dict) -> None:
    for k, v in state.items():
      setattr(self, k, v)
