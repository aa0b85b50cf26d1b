"""Faults from outside a training process, as a cluster delivers them: the trainer runs as a
command in its own session; the test watches its log and its workdir and sends SIGKILL (to the
whole process group: grain workers die with it, as on a lost VM) or SIGTERM at a moment drawn
from a seeded generator. Nothing inside the trainer cooperates.

Moments:
  between_checkpoints  a random delay after a random step's log line
  async_save           a checkpoint's temporary folder has appeared: orbax is writing it
  final_export         WORKDIR/model has appeared without its config.json (written last)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

from train_utils import ROOT, cpu_env

# Every run of a test uses the same flags (train_utils.cpu_env) and a shared compilation cache,
# so the runs after the first skip most compiling and all give the same executables.
# TIMING: the fields of a row that say how the run went rather than what it computed (with
# exit_checkpoint_step, the step a stop between metrics.every's saved).
TIMING = ("step_time", "tokens_per_s", "tflops_per_device", "mfu", "checkpoint_time",
          "exit_checkpoint_time", "exit_checkpoint_step", "compile_time")


def env(cache_dir: str, devices: int = 0) -> dict:
  return {**os.environ, "PYTHONPATH": ROOT, **cpu_env(devices),
          "JAX_COMPILATION_CACHE_DIR": cache_dir, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}


class Trainer:
  """`python -m mathvlm.train FLAGS --workdir W` in its own process group, output in a file."""

  def __init__(self, flags: list[str], workdir: str, environ: dict, log: str):
    self.workdir, self.log = workdir, log
    self.out = open(log, "w")
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "mathvlm.train", *flags, "--workdir", workdir], cwd=ROOT,
        env=environ, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)

  def text(self) -> str:
    with open(self.log) as f:
      return f.read()

  def wait_for(self, condition, timeout: float = 600) -> bool:
    """Polls `condition()` every 2 ms; False if the process ended first."""
    end = time.time() + timeout
    while time.time() < end:
      if condition():
        return True
      if self.proc.poll() is not None:
        return condition()
      time.sleep(0.002)
    raise TimeoutError(f"{self.log}: condition not met in {timeout}s:\n{self.text()[-3000:]}")

  def signal(self, sig: int) -> None:
    """Sends `sig` to the run's process group; nothing if the run has ended (and was reaped): a
    signal sent late, which the caller tells by the exit status."""
    try:
      os.killpg(self.proc.pid, sig)
    except ProcessLookupError:
      if self.proc.poll() is None:
        raise

  def wait(self, timeout: float = 600) -> int:
    rc = self.proc.wait(timeout)
    self.out.close()
    return rc


def step_logged(trainer: Trainer, step: int):
  return lambda: f" step {step}/" in trainer.text()


def saving(workdir: str):
  """A checkpoint's temporary folder is there: orbax is writing that step."""
  root = os.path.join(workdir, "checkpoints")
  return lambda: os.path.isdir(root) and any(".orbax-checkpoint-tmp" in d for d in os.listdir(root))


def exporting(workdir: str):
  """The final model's folder is there without its config.json (written last)."""
  model = os.path.join(workdir, "model")
  return lambda: os.path.isdir(model) and not os.path.exists(os.path.join(model, "config.json"))


def kill_at(moment: str, flags, workdir, environ, log, rng: random.Random, steps: range,
            sig: int = signal.SIGKILL, unseen_ok: bool = False) -> tuple[Trainer, str]:
  """Starts the trainer and sends `sig` at `moment`; returns it (not yet waited) and what was
  hit, e.g. 'between_checkpoints after step 4 + 0.12 s'. A run that ended before this process
  saw the moment fails, or with `unseen_ok` is returned unsignalled (a moment a tenth of a second
  long can pass while this process is not scheduled; the caller tells by the exit status)."""
  t = Trainer(flags, workdir, environ, log)
  if moment == "between_checkpoints":
    step, delay = rng.choice(list(steps)), rng.uniform(0.0, 0.3)
    hit = t.wait_for(step_logged(t, step))
    time.sleep(delay)
    what = f"{moment} after step {step} + {delay:.2f} s"
  else:
    hit = t.wait_for(saving(workdir) if moment == "async_save" else exporting(workdir))
    delay = rng.uniform(0.0, 0.01)
    time.sleep(delay)
    what = f"{moment} + {delay * 1000:.1f} ms"
  if not hit and unseen_ok:
    return t, f"{moment}: not seen before the run ended"
  if not hit:
    raise AssertionError(f"the run ended before {moment}:\n{t.text()[-3000:]}")
  t.signal(sig)
  return t, what


def rows(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def flat(tree) -> dict:
  import jax
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def restore(path: str) -> dict:
  import orbax.checkpoint as ocp
  with ocp.StandardCheckpointer() as c:
    return flat(c.restore(path))


def assert_same_run(straight: str, resumed: str, steps: int) -> None:
  """What the uninterrupted run left, left again: one metrics row per step with the same values
  (timings aside), the final train state and the exported model bitwise, the data report."""
  a, b = rows(straight), rows(resumed)
  assert [r["step"] for r in b] == list(range(1, steps + 1)), [r["step"] for r in b]
  strip = lambda r: {k: v for k, v in r.items() if k not in TIMING}
  assert [strip(r) for r in a] == [strip(r) for r in b]
  for sub in (f"checkpoints/{steps}/state", "model/params"):
    fa, fb = restore(os.path.join(straight, sub)), restore(os.path.join(resumed, sub))
    assert sorted(fa) == sorted(fb) and len(fa) > 5, sub
    unequal = [k for k in fa if not np.array_equal(fa[k], fb[k])]
    assert not unequal, f"{sub}: {unequal[:5]}"
  for name in ("data_report.json", "model/config.json"):
    with open(os.path.join(straight, name)) as fa, open(os.path.join(resumed, name)) as fb:
      assert json.load(fa) == json.load(fb), name
