"""Each process saves its own position in the data (`data/process_<i>-of-<n>.json`): a step
saved by another number of processes has none for this run's. Resumed so, the run took every
step for unreadable and said to restore the files or start over (throwing the training away);
it must name the process counts and keep the steps as they are. (2 real processes write
process_0-of-2.json and process_1-of-2.json; here they are copies of one process's file.)"""

import os
import shutil

import grain
import jax.numpy as jnp
import pytest

from mathvlm.checkpoint import Checkpointer, CheckpointError, abstract_like

STATE = {"w": jnp.arange(4.0)}


def _iterator():
  return iter(grain.MapDataset.range(8).to_iter_dataset())


def test_a_step_saved_by_two_processes_is_refused_by_one_naming_both_counts(tmp_path):
  ckpt = Checkpointer(str(tmp_path), every=1, keep=5, use_async=False)
  for step in (1, 2):
    ckpt.save(step, STATE, _iterator(), loop={}, force=True)
  ckpt.close()
  for step in (1, 2):  # the files two processes leave
    data = tmp_path / "checkpoints" / str(step) / "data"
    for i in range(2):
      shutil.copy(data / "process_0-of-1.json", data / f"process_{i}-of-2.json")
    os.remove(data / "process_0-of-1.json")
  ckpt = Checkpointer(str(tmp_path), every=1, keep=5, use_async=False)
  try:
    with pytest.raises(CheckpointError, match=r"step 2 in \S+ was saved by 2 processes .*this run "
                       r"has 1: .*Resume on 2 processes"):
      ckpt.restore_latest(abstract_like(STATE), _iterator())
  finally:
    ckpt.close()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]
  assert not (tmp_path / "checkpoints_unreadable").exists()
