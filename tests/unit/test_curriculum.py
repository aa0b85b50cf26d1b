"""The curriculum's level moves only after `min_steps` steps measured at a level, so that one
batch's pass rate after a move cannot move it again; its state round-trips through a checkpoint,
an older one without the counter included; the option is checked where the config is."""

import pytest

from mathvlm.objectives import grpo
from mathvlm.rl.curriculum import Curriculum

FLIPPING = [0.9, 0.2, 0.8, 0.2]  # each alone outside the band (0.25, 0.75), alternately


def levels(curriculum: Curriculum, rates: list[float]) -> list[int]:
  """The level after each step's batch pass rate."""
  out = []
  for r in rates:
    curriculum.update(r)
    out.append(curriculum.level)
  return out


def test_one_batch_after_a_move_does_not_move_the_level_back():
  """The running rate restarts at a move; with min_steps=1 (the old behaviour) the next batch
  alone decides, and the sequence flips the level every step."""
  assert levels(Curriculum(levels=3, min_steps=1), FLIPPING) == [1, 0, 1, 0]
  assert levels(Curriculum(levels=3), FLIPPING) == [0, 0, 0, 0]
  # moved at step 5, then measured afresh: the same batch alone does not undo the move
  c = Curriculum(levels=3)
  assert levels(c, [0.9] * 5 + [0.0]) == [0, 0, 0, 0, 1, 1]


def test_a_level_moves_after_min_steps_steps_out_of_the_band():
  """Up at the min_steps-th step above the band, not before; again min_steps steps later; down
from the top level min_steps steps after reaching it."""
  c = Curriculum(levels=3, min_steps=3)
  assert levels(c, [0.9] * 6) == [0, 0, 1, 1, 1, 2]
  assert levels(c, [0.0] * 3) == [2, 2, 1]


def test_state_round_trips_and_an_older_state_without_the_counter_loads():
  c = Curriculum(levels=3, min_steps=3)
  levels(c, [0.9] * 4)  # moved at step 3, one step measured since
  resumed = Curriculum(levels=3, min_steps=3)
  resumed.load_state_dict(c.state_dict())
  assert resumed == c and c.measured == 1
  assert levels(resumed, [0.9] * 2) == levels(c, [0.9] * 2) == [1, 2]
  # written before min_steps existed: no min_steps, no measured (the config's min_steps stays)
  old = {"levels": 3, "level": 1, "low": 0.25, "high": 0.75, "momentum": 0.8, "pass_rate": 0.9,
         "enabled": True}
  resumed = Curriculum(levels=3, min_steps=2)
  resumed.measured = 7  # whatever it held before: the older state measures afresh
  resumed.load_state_dict(old)
  assert (resumed.level, resumed.pass_rate, resumed.min_steps, resumed.measured) == (1, 0.9, 2, 0)
  assert levels(resumed, [0.9, 0.9]) == [1, 2]


def test_min_steps_option_is_checked():
  assert grpo.OBJECTIVE.options({})["curriculum_min_steps"] == 5
  for bad in (0, -1, 2.5):
    with pytest.raises(ValueError, match=f"grpo.curriculum_min_steps={bad!r}: an integer >= 1"):
      grpo.OBJECTIVE.options({"grpo": {"curriculum_min_steps": bad}})
