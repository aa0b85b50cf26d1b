"""Preemption at any moment, delivered from outside (tests/faults.py): SIGTERM between
checkpoints, SIGKILL while an async checkpoint is being written and while the final model is
exported. Each time, rerunning the same command continues, and the run ends with what an
uninterrupted run leaves, bit for bit: one metrics row per step with the same numbers, the same
final state, the same exported model.

The quick form (default) takes one chain of faults on `lm`; the slow form (`-m slow`) takes a
chain of SIGKILLs at random moments for lm, dpo, contrastive, grain workers and packing.
"""

import os
import random
import re
import shutil
import signal
import time

import pytest

import faults
from mathvlm.checkpoint import CheckpointError
from mathvlm.pretrained import model_config
from train_utils import tiny_config

STEPS = 8
COMMON = ["--config.steps=8", "--config.data.global_batch=8", "--config.data.max_len=32",
          "--config.data.num_examples=64", "--config.optim.lr=1e-3",
          "--config.checkpoint.every=3", "--config.metrics.tensorboard=False"]
RECIPES = {"lm": "sft", "dpo": "dpo", "contrastive": "clip_math"}


def flags(objective: str = "lm", *extra: str) -> list[str]:
  lr = ["--config.optim.lr=2e-4"] if objective == "dpo" else []
  return ["--config", f"mathvlm/configs/{RECIPES[objective]}.py:model=tiny", *COMMON, *lr, *extra]


def straight_run(tmp_path, args, environ) -> str:
  workdir = str(tmp_path / "straight")
  t = faults.Trainer(args, workdir, environ, str(tmp_path / "straight.log"))
  assert t.wait() == 0, t.text()[-3000:]
  return workdir


def sigterm_between_checkpoints(tmp_path, args, environ, rng, tries: int = 3) -> tuple[str, int]:
  """A SIGTERM after step 1's log line; (workdir, the step it saved). Only a save at a step that
  is not a periodic checkpoint shows that the signal forced one, and when the signal lands is up
  to the scheduler: a save at a periodic step (the trainer ran on before this process got to
  send), or none at all (it ran to the end), is tried again in a fresh workdir, `tries` times in
  all. A loop that only stopped at its next periodic checkpoint, or never, fails every try. Each
  try draws the same delay from `rng`."""
  drawn = rng.getstate()
  for i in range(tries):
    rng.setstate(drawn)
    work = str(tmp_path / f"faulted{i}")
    t, what = faults.kill_at("between_checkpoints", args, work, environ,
                             str(tmp_path / f"sigterm{i}.log"), rng, range(1, 2),
                             sig=signal.SIGTERM)
    sent = time.time()
    assert t.wait(timeout=120) == 0, what + t.text()[-3000:]
    assert time.time() - sent < 60, "SIGTERM took over a minute to save and exit"
    found = re.search(r"SIGTERM: saved step (\d+)", t.text())
    saved = int(found.group(1)) if found else STEPS  # none: the run ended before the signal
    assert saved <= STEPS, (what, saved)
    assert max(int(d) for d in os.listdir(f"{work}/checkpoints") if d.isdigit()) == saved
    if saved % 4:
      return work, saved
  raise AssertionError(f"each of {tries} SIGTERMs saved at a periodic checkpoint or not at all "
                       f"(last: step {saved}, {what}): the loop does not save where the signal is "
                       "seen")


def kill_in(moment: str, landed, tmp_path, args, work, environ, rng, tries: int = 3):
  """A rerun in `work` SIGKILLed at `moment` (faults.kill_at); (its log, what was hit). The kill
  is sent once this process sees the moment begin and lands when the scheduler lets it: on a
  loaded machine it can come after the moment is over (an async save ~0.2 s long, the export
  ~0.1 s: the trainer finished them, or the run, first), or this process can miss the moment
  altogether. `landed(returncode)` says whether it landed in the moment; if not, the rerun is
  tried again from a copy of `work` as it was before, `tries` times in all, each drawing the
  same delay from `rng`. A trainer whose moment cannot be hit (a save that is never in flight,
  an export that writes config.json first) fails every try."""
  before, drawn = str(tmp_path / f"{moment}_before"), rng.getstate()
  shutil.copytree(work, before)
  for i in range(tries):
    rng.setstate(drawn)
    if i:
      shutil.rmtree(work)
      shutil.copytree(before, work)
    log = str(tmp_path / f"{moment}{i}.log")
    t, what = faults.kill_at(moment, args, work, environ, log, rng, range(0), unseen_ok=True)
    rc = t.wait()
    if landed(rc):
      return t.text(), what
    assert rc in (0, -signal.SIGKILL), what + t.text()[-3000:]
  raise AssertionError(f"each of {tries} SIGKILLs at {moment} landed after it (last: {what}, "
                       f"exit {rc}):\n{t.text()[-3000:]}")


@pytest.mark.long(40)
def test_sigterm_then_kills_in_a_save_and_in_the_export_resume_bitwise(tmp_path):
  # checkpoints every 4 steps: step 1's row is logged in step 2 (a step late), and the SIGTERM
  # sent then is seen after step 2 or 3, neither of them periodic, unless the machine is loaded
  # enough that the trainer runs on past step 3 before this process sees the line and signals
  rng, environ = random.Random(15), faults.env(str(tmp_path / "cache"))
  args = flags("lm", "--config.checkpoint.every=4")
  straight = straight_run(tmp_path, args, environ)

  # SIGTERM between checkpoints: the step in flight is saved, exit 0 within a bound.
  work, saved = sigterm_between_checkpoints(tmp_path, args, environ, rng)
  assert [r["step"] for r in faults.rows(work)] == list(range(1, saved + 1))
  assert not os.path.exists(f"{work}/model")

  # SIGKILL while orbax writes the next checkpoint in the background.
  text, what = kill_in("async_save", lambda rc: rc == -signal.SIGKILL and faults.saving(work)(),
                       tmp_path, args, work, environ, rng)
  assert f"resumed from step {saved}" in text, what + text[-3000:]

  # SIGKILL while the final model is written.
  kill_in("final_export", lambda rc: rc == -signal.SIGKILL and not os.path.exists(
      f"{work}/model/config.json"), tmp_path, args, work, environ, rng)
  with pytest.raises(CheckpointError, match="an export that did not finish"):
    model_config(tiny_config("lm", model__init_from=work))  # never read as a model

  t = faults.Trainer(args, work, environ, str(tmp_path / "last.log"))
  assert t.wait() == 0, t.text()[-3000:]
  assert f"resumed from step {STEPS}" in t.text()
  faults.assert_same_run(straight, work, STEPS)


CASES = {
    "lm": flags("lm"),
    "dpo": flags("dpo"),
    "contrastive": flags("contrastive"),
    "lm_workers": flags("lm", "--config.data.workers=2"),
    "lm_packing": flags("lm", "--config.data.packing=True",
                        "--config.data.synthetic_text_only=0.5"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_sigkill_at_random_moments_resumes_bitwise(tmp_path, case):
  """Three SIGKILLs in a row at moments drawn from a seeded generator (between checkpoints, in
  an async save, in the export), then a run to the end: the same as the uninterrupted run."""
  rng = random.Random(f"{case}-15")
  environ, args = faults.env(str(tmp_path / "cache")), CASES[case]
  straight = straight_run(tmp_path, args, environ)
  work = str(tmp_path / "faulted")
  hits = []
  for i, moment in enumerate(["between_checkpoints", "async_save", "final_export"]):
    t, what = faults.kill_at(moment, args, work, environ, str(tmp_path / f"run{i}.log"), rng,
                             range(1, STEPS))
    assert t.wait() == -signal.SIGKILL, what + t.text()[-3000:]
    hits.append(what)
  t = faults.Trainer(args, work, environ, str(tmp_path / "last.log"))
  assert t.wait() == 0, t.text()[-3000:]
  faults.assert_same_run(straight, work, STEPS)
  print(case, hits)


def tensorboard_steps(logdir: str, tag: str = "loss") -> list[int]:
  """The steps of `tag`'s events in every event file under `logdir` (TFRecord framing read by
  hand: tensorboardX writes events but has no reader)."""
  import glob
  import struct

  from tensorboardX.proto import event_pb2
  steps = []
  for path in sorted(glob.glob(os.path.join(logdir, "events.*"))):
    with open(path, "rb") as f:
      data = f.read()
    i = 0
    while i + 12 <= len(data):
      n = struct.unpack("<Q", data[i:i + 8])[0]
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      steps += [event.step for v in event.summary.value if v.tag == tag]
  return sorted(steps)


def test_a_kill_right_after_a_checkpoint_keeps_its_tensorboard_events(tmp_path):
  """tensorboardX holds events in memory (a queue and a buffer flushed every two minutes): a
  SIGKILL once step 3's checkpoint is on disk lost steps 1-3's events, and the run resumed from
  step 3 never wrote them again. The loop writes them out before each checkpoint save."""
  environ, work = faults.env(str(tmp_path / "cache")), str(tmp_path / "run")
  args = flags("lm", "--config.metrics.tensorboard=True", "--config.checkpoint.use_async=False")
  t = faults.Trainer(args + ["--preempt_after_step=3"], work, environ, str(tmp_path / "run.log"))
  assert t.wait() == -signal.SIGKILL, t.text()[-3000:]
  assert [r["step"] for r in faults.rows(work)] == [1, 2, 3]
  assert tensorboard_steps(f"{work}/tensorboard") == [1, 2, 3]
