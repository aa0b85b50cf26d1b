"""The engine's problem stream for GRPO (`data_prep.engine.online`): what its worker processes make
is what one process makes, also when the caller has JAX running (a trainer: its pool must not fork
XLA's threads), and only the training split is drawn."""

import jax
import jax.numpy as jnp
import pytest

from data_prep.engine.online import EngineStream


def test_workers_make_the_same_problems_as_one_process_while_jax_runs():
  jnp.ones(4).sum().block_until_ready()  # XLA's threads are up, as in a trainer
  indices, level = [5, 0, 3, 11], 1
  alone = EngineStream(seed=4).records(indices, level)
  stream = EngineStream(seed=4, workers=2)
  try:
    pooled = stream.records(indices, level)
    again = stream.records(indices[::-1], level)
  finally:
    stream.close()
  assert [r["id"] for r, _ in pooled] == [r["id"] for r, _ in alone]
  assert pooled == alone                       # records and PNG bytes
  assert again == alone[::-1]                  # in the order asked, from the warm pool
  assert {r["split"] for r, _ in alone} == {"train"}
  assert jax.device_count() >= 1


def test_levels_are_checked():
  with pytest.raises(ValueError, match="level 9"):
    EngineStream().records([0], 9)


def test_one_depth_range_instead_of_the_curriculums_levels():
  """steps="MIN:MAX" (grpo.problem_options): one level, problems of that depth only."""
  stream = EngineStream(seed=4, steps="3:4")
  assert stream.levels == 1 and EngineStream().levels == 5
  records = stream.records(list(range(6)), 0)
  assert all(3 <= r["steps"] <= 4 for r, _ in records), [r["steps"] for r, _ in records]
  with pytest.raises(ValueError, match="level 1"):
    stream.records([0], 1)
  with pytest.raises(ValueError, match="MIN:MAX"):
    EngineStream(steps="deep")
  with pytest.raises(ValueError, match="--steps"):
    EngineStream(steps="0:3")
