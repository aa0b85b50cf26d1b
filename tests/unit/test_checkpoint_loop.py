"""A checkpoint step's `loop` item (drop counts, GRPO's curriculum) restores with its state or
the step is unreadable: a step copied without it once resumed with empty counts and a fresh
curriculum, silently. Only a step saved without one (before the trainer kept it) restores
without it, with a warning."""

import logging
import shutil

import grain
import jax.numpy as jnp
import pytest

from mathvlm.checkpoint import Checkpointer, CheckpointError, abstract_like

STATE = {"w": jnp.arange(4.0), "step": jnp.int32(0)}
LOOP = {"dropped": {"too_long": 3}, "host": {"level": 2}}


def _iterator():
  return iter(grain.MapDataset.range(8).to_iter_dataset())


def _save(workdir, steps, loop=LOOP):
  ckpt = Checkpointer(str(workdir), every=1, keep=5, use_async=False)
  for step in steps:
    ckpt.save(step, {**STATE, "step": jnp.int32(step)}, _iterator(),
              loop=None if loop is None else {**loop, "at": step}, force=True)
  ckpt.close()


def _restore_latest(workdir):
  ckpt = Checkpointer(str(workdir), every=1, keep=5, use_async=False)
  try:
    return ckpt.restore_latest(abstract_like(STATE), _iterator())
  finally:
    ckpt.close()


def test_a_step_without_its_loop_folder_is_unreadable_naming_the_folder(tmp_path):
  _save(tmp_path, [2])
  shutil.rmtree(tmp_path / "checkpoints" / "2" / "loop")
  with pytest.raises(CheckpointError, match=r"(?s)step 2: CheckpointError: \S*/checkpoints/2: no "
                     r"`loop` folder .*which its metadata lists as saved.*copied partially"):
    _restore_latest(tmp_path)


def test_such_a_step_is_set_aside_and_the_step_before_resumes_with_its_loop(tmp_path, caplog):
  _save(tmp_path, [1, 2])
  shutil.rmtree(tmp_path / "checkpoints" / "2" / "loop")
  with caplog.at_level(logging.WARNING, logger="mathvlm.train"):
    state, step, loop = _restore_latest(tmp_path)
  assert step == 1 and int(state["step"]) == 1 and loop == {**LOOP, "at": 1}
  assert "no `loop` folder" in caplog.text and "resuming from step 1" in caplog.text


def test_without_the_step_metadata_a_missing_loop_is_not_taken_for_an_old_step(tmp_path):
  _save(tmp_path, [2])
  shutil.rmtree(tmp_path / "checkpoints" / "2" / "loop")
  (tmp_path / "checkpoints" / "2" / "_CHECKPOINT_METADATA").unlink()
  with pytest.raises(CheckpointError, match="and no _CHECKPOINT_METADATA to say it was never"):
    _restore_latest(tmp_path)


def test_a_step_saved_without_a_loop_restores_with_none_and_a_warning(tmp_path, caplog):
  """What the trainer wrote before 2026-11-30 (no loop item in the step's metadata)."""
  _save(tmp_path, [2], loop=None)
  with caplog.at_level(logging.WARNING, logger="mathvlm.train"):
    state, step, loop = _restore_latest(tmp_path)
  assert step == 2 and loop == {}
  assert "saved without the loop's state" in caplog.text
