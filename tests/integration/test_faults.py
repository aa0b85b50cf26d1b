"""Faults inside a run and bad state under a workdir: a non-finite step, a config changed under a
workdir, checkpoint steps that cannot be read. Each leaves the workdir whole and says what to do.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import faults
from folders import snapshot
from train_utils import tiny_config

# The CLI form of tiny_config("lm", steps=6, checkpoint__every=2, checkpoint__keep=3).
CLI = ["--config", "mathvlm/configs/sft.py:model=tiny", "--config.steps=6",
       "--config.data.global_batch=8", "--config.data.num_examples=64",
       "--config.data.max_len=32", "--config.optim.lr=1e-3", "--config.optim.warmup_ratio=0.0",
       "--config.checkpoint.use_async=False", "--config.metrics.tensorboard=False",
       "--config.checkpoint.every=2", "--config.checkpoint.keep=3"]


def same_config():
  return tiny_config("lm", steps=6, checkpoint__every=2, checkpoint__keep=3)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """An uninterrupted CLI run: checkpoints 2, 4 and 6, metrics, the exported model."""
  root = tmp_path_factory.mktemp("finished")
  environ = faults.env(str(root / "cache"))
  t = faults.Trainer(CLI, str(root / "run"), environ, str(root / "run.log"))
  assert t.wait() == 0, t.text()[-3000:]
  return str(root / "run"), environ


# ---------------------------------------------------------------------------------------------
# A config changed under a workdir.

def test_changed_config_fails_at_start_naming_the_fields_and_touches_nothing(finished, tmp_path):
  from mathvlm.configs import resume
  from mathvlm.train import train
  work = str(tmp_path / "run")
  shutil.copytree(finished[0], work)
  before = snapshot(work)
  recorded, _ = resume.recorded(f"{work}/{resume.FILE}")  # the CLI run and tiny_config agree
  assert resume.differences(recorded, resume.flatten(same_config())) == []
  changed = tiny_config("lm", "model=tiny,recipe=mavis", steps=6, checkpoint__every=2,
                        checkpoint__keep=3, data__global_batch=16, optim__warmup_ratio=0.1)
  with pytest.raises(ValueError, match="holds checkpoints") as err:
    train(changed, work)
  msg = str(err.value)
  for field in ("data.global_batch: 8 -> 16", "optim.warmup_ratio: 0.0 -> 0.1", "lora.rank",
                "train_rules", "(step 6)", "Fields that may change on resume: steps, optim.lr"):
    assert field in msg, (field, msg)
  assert "checkpoint.every" not in msg.split("Fields that may")[0]  # unchanged fields unnamed
  assert snapshot(work) == before  # nothing written, nothing lost


def test_steps_lowered_below_the_checkpoint_fails_and_touches_nothing(finished, tmp_path):
  """`steps` may change on resume, but a workdir at step 6 rerun with steps=5 exported the
  step-6 model and wrote a data report of 5 steps (40 examples trained, not 48), logging
  "done: 5 steps"."""
  from mathvlm.train import train
  work = str(tmp_path / "run")
  shutil.copytree(finished[0], work)
  shutil.rmtree(f"{work}/model")  # as a kill in the export leaves it: the rerun would export
  before = snapshot(work)
  shorter = tiny_config("lm", steps=5, checkpoint__every=2, checkpoint__keep=3)
  with pytest.raises(ValueError, match="holds step 6, past this config's 5 steps"):
    train(shorter, work)
  assert snapshot(work) == before  # no model exported, no report, the run's config kept


def test_fields_that_may_change_on_resume():
  from mathvlm.configs import common, resume
  old = resume.flatten(same_config())
  for field, value in [("steps", 10), ("optim.lr", 1e-4), ("optim.grad_clip", 0.5),
                       ("checkpoint.every", 5), ("metrics.every", 3),
                       ("mesh.fsdp", 2), ("model.remat", "dots")]:
    new = dict(old, **{field: value})
    assert resume.differences(old, new) == [field] and resume.may_change(field), field
  for field in ("data.global_batch", "optim.warmup_ratio", "model.preset", "objective", "seed",
                "data.name", "lora.rank", "train_rules", "optim.grad_accum", "data.max_len",
                "data.workers",  # grain's iterator state differs by worker count
                "lora.dropout"):  # a regulariser of the recipe, as weight decay
    assert not resume.may_change(field), field
  # a workdir recorded before lora.dropout existed trained without it: it resumes at the
  # default, 0.0, and a recipe's 0.05 is named as a change
  base = resume.flatten(common.base("lm"))
  before = {k: v for k, v in old.items() if k != "lora.dropout"}
  assert resume.differences(before, old, base) == []
  assert resume.differences(before, dict(old, **{"lora.dropout": 0.05}), base) == ["lora.dropout"]


# ---------------------------------------------------------------------------------------------
# Checkpoint steps that cannot be read.

def truncate_largest(folder: str) -> str:
  files = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
  path = max(files, key=os.path.getsize)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  return path


# orbax's event loop is closed under the reads it abandoned on the truncated array: expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unreadable_checkpoint_steps_fall_back_and_the_run_ends_the_same(finished, tmp_path,
                                                                         caplog):
  from mathvlm.checkpoint import CheckpointError
  from mathvlm.train import train
  work = str(tmp_path / "run")
  shutil.copytree(finished[0], work)
  truncate_largest(f"{work}/checkpoints/6/state")            # a truncated array file
  os.remove(f"{work}/checkpoints/4/data/process_0-of-1.json")  # a partly deleted step

  # Every step unreadable: an error naming each step and why; nothing moved or deleted.
  none = str(tmp_path / "none")
  shutil.copytree(work, none)
  shutil.rmtree(f"{none}/checkpoints/2/state")
  before = snapshot(none)
  with pytest.raises(CheckpointError, match="no checkpoint in .* can be read") as err:
    train(same_config(), none)
  assert all(f"step {s}:" in str(err.value) for s in (6, 4, 2)), str(err.value)
  assert "process_0-of-1.json" in str(err.value)
  assert snapshot(none) == before

  # Steps 6 and 4 unreadable: back to step 2 with a log line for each; the run ends the same.
  t = faults.Trainer(CLI, work, finished[1], str(tmp_path / "rerun.log"))
  assert t.wait() == 0, t.text()[-3000:]
  text = t.text()
  for step in (6, 4):
    assert f"checkpoint step {step} in {work}/checkpoints cannot be read" in text, text[-3000:]
  assert "resumed from step 2" in text
  aside = sorted(os.listdir(f"{work}/checkpoints_unreadable"))
  assert [a.split("-")[0] for a in aside] == ["4", "6"]  # kept for a look, not deleted
  faults.assert_same_run(finished[0], work, 6)


# ---------------------------------------------------------------------------------------------
# Non-finite steps.

def test_a_non_finite_gradient_with_a_finite_loss_applies_no_update():
  """lr 1e5: the first update wrecks the weights; the second step's loss is finite (about
  log 1024) but its gradient is NaN. The step returns the state it was given, bit for bit."""
  from mathvlm import sharding, train, train_state
  cfg = tiny_config("lm", optim__lr=1e5, optim__grad_clip=1e30)
  run = train.setup(cfg, jax.devices()[:1])
  state = train_state.initial_state(run)
  batches = iter(run.dataset)
  place = lambda: sharding.place_batch(next(batches), run.mesh)
  state, first = run.step_fn(state, place())
  before = jax.tree.map(np.array, state)  # the step donates its input
  after, metrics = run.step_fn(state, place())
  assert np.isfinite(metrics["loss"]) and not np.isfinite(metrics["grad_norm"])
  flat_a, flat_b = faults.flat(before), faults.flat(jax.tree.map(np.asarray, after))
  assert sorted(flat_a) == sorted(flat_b)
  assert all(np.array_equal(flat_a[k], flat_b[k]) for k in flat_a)
  assert int(after["step"]) == 1


def lr_sensitive_objective():
  """lm plus a term that is 0 but has a NaN gradient from the third step on, when optim.lr is
  above 1e-2: a run that diverges at a high learning rate and trains at a lower one."""
  from mathvlm import flops
  from mathvlm.objectives import lm
  from mathvlm.objectives.base import Objective, same_cost

  def loss(model, batch, cfg):
    value, weight, metrics = lm.loss(model, batch, cfg)
    if cfg is not None and cfg.optim.lr > 1e-2:
      w = model.language_model.lm_head.kernel[...]
      d = w - jax.lax.stop_gradient(w)
      value = value + jax.lax.cond(batch["step"][0] >= 2, lambda d: jnp.sqrt(jnp.sum(d * d)),
                                   lambda d: jnp.float32(0.0), d)
    return value, weight, metrics

  def with_step(model_of, state, batch, opts):
    return dict(batch, step=jnp.full(batch["input_ids"].shape[:1], state["step"])), {}

  return Objective(name="lm_lr_sensitive", family="llava", loss=loss, example="lm",
                   flops=same_cost(flops.lm_step), batch_keys=lm.OBJECTIVE.batch_keys, prepare=with_step,
                   weight_metric="tokens")


def _nan_at_step_3(work: str, every: int):
  """The lr-sensitive run at lr 0.1 (its gradient is NaN at step 3), checkpointing every
  `every` steps; the FloatingPointError it stops with."""
  from mathvlm.train import train
  cfg = tiny_config("lm", steps=6, checkpoint__every=every, optim__lr=0.1)
  cfg.objective = "lm_lr_sensitive"
  with pytest.raises(FloatingPointError, match=r"gradient norm nan at step 3") as err:
    train(cfg, work)
  return err


@pytest.mark.parametrize("rerun", [pytest.param(False, id="quick"),
                                   pytest.param(True, id="rerun", marks=pytest.mark.slow)])
def test_non_finite_step_stops_keeps_a_finite_checkpoint_and_a_lower_lr_trains(tmp_path, rerun):
  from mathvlm import objectives
  from mathvlm.train import train
  work = str(tmp_path / "run")
  with objectives.registered(lr_sensitive_objective()):
    err = _nan_at_step_3(work, every=2)
    assert "last good checkpoint (step 2)" in str(err.value)
    assert "lower optim.lr" in str(err.value)
    assert sorted(os.listdir(f"{work}/checkpoints")) == ["2"]  # every 2 steps, no other
    kept = faults.restore(f"{work}/checkpoints/2/state")
    assert len(kept) > 10 and all(np.isfinite(v).all() for v in kept.values())
    assert [r["step"] for r in faults.rows(work)] == [1, 2]
    assert not os.path.exists(f"{work}/model")
    if not rerun:
      return
    cfg = tiny_config("lm", steps=6, checkpoint__every=2, optim__lr=1e-3)
    cfg.objective = "lm_lr_sensitive"
    last = train(cfg, work)
  rows = faults.rows(work)
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and last["step"] == 6
  assert all(np.isfinite(r["loss"]) and np.isfinite(r["grad_norm"]) for r in rows)
  assert rows[-1]["loss"] < rows[2]["loss"]  # it trains from the kept checkpoint


def test_non_finite_step_before_the_first_checkpoint_says_the_rerun_starts_over(tmp_path):
  """checkpoint.every=4 and a NaN gradient at step 3: no checkpoint exists (a fresh run saves
  only every `every` steps), and the error said "the last good checkpoint (step None)"."""
  from mathvlm import objectives
  work = str(tmp_path / "run")
  with objectives.registered(lr_sensitive_objective()):
    err = _nan_at_step_3(work, every=4)
  assert "no checkpoint was saved before it (checkpoint.every=4)" in str(err.value)
  assert "step None" not in str(err.value) and "start over" in str(err.value)
  assert os.listdir(f"{work}/checkpoints") == []
