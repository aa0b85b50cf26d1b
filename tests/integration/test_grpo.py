"""GRPO end to end through the trainer: a toy task whose optimal policy is known is learned; a run
killed mid-way resumes to the same numbers; 2 processes write the rows of 1; the 7B step compiles
(rollout and update) on 8 fake devices. Subprocesses, so XLA's optimisation can be turned off for
these tiny programs."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import rl_toys
from train_utils import ROOT, cpu_env, metrics, run_python

FAST = cpu_env()

TOY = r"""
import dataclasses, json, os, sys
import rl_toys
from mathvlm.configs import grpo as recipe
from mathvlm.models import registry
from mathvlm.train import kill_after, train
out, steps, kill, reward = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
new = int(sys.argv[5]) if len(sys.argv) > 5 else 4
os.makedirs(out, exist_ok=True)
tok_path = os.path.join(out, "tokenizer.json")
if not os.path.exists(tok_path):
  rl_toys.word_tokenizer(tok_path)  # a word per id, 40 of them: "7" is one id in 40
vocab = json.load(open(tok_path))["model"]["vocab"]
# the tiny model with the tokenizer's vocabulary: every id the policy samples is a word
tiny = registry.get("llava").presets["tiny"]
registry.get("llava").presets["tiny-toy"] = dataclasses.replace(
    tiny, text=dataclasses.replace(tiny.text, vocab_size=len(vocab) + 2))
c = recipe.get_config("model=tiny,problems=rl_toys:NumberStream")
c.model.preset, c.data.tokenizer, c.data.template, c.steps = "tiny-toy", tok_path, "plain", steps
c.optim.lr, c.lora.rank, c.lora.targets = 3e-3, 0, ""
c.train_rules = ((".*", "trainable"),)
c.grpo.update(dict(rewards=reward, group=8, max_new_tokens=new, beta=0.0 if kill == 0 else 0.04))
# kill 0 (the learning test) saves no checkpoint on the way: each sync save costs ~1.3 s here
c.checkpoint.use_async, c.metrics.tensorboard = False, False
c.checkpoint.every = 1000 if kill == 0 else 2
train(c, os.path.join(out, "run"), callbacks=[kill_after(kill)] if kill > 0 else [])
"""


@pytest.mark.long(70)
def test_grpo_learns_the_one_rewarded_token(tmp_path):
  """Reward 1 when the answer starts with 7: the optimal policy is to say 7; pass@1 goes from
  (almost) never to (almost) always."""
  # one answer token isolates the claim. With 4 (later tokens of rewarded answers reinforced too)
  # this model at lr 3e-3 rose to pass@1 0.4 by step 12, then its entropy fell to 0 on answers
  # that do not start with 7 (seed 0); see the issue note. 20 steps: pass@1 reached 0.78 at step
  # 10 and the curriculum's level rose at step 16 (seed 0, the suite's XLA flags)
  run_python(TOY, str(tmp_path), "20", "0", "rl_toys:says_seven=1.0", "1", env=FAST)
  rows = metrics(str(tmp_path / "run"))
  first, last = np.mean([r["pass@1"] for r in rows[:2]]), np.mean([r["pass@1"] for r in rows[-5:]])
  assert first < 0.15 and last > 0.75, [round(r["pass@1"], 2) for r in rows]
  for key in ("reward/mean", "reward/std", "pass@8", "groups/all_equal", "kl", "clip_fraction",
              "entropy", "response_length", "rollout_seconds", "curriculum/level"):
    assert key in rows[-1], key
  assert rows[-1]["curriculum/level"] > 0  # the pass rate left the band: harder problems


@pytest.mark.long(120)
def test_grpo_resumes_after_sigkill_to_the_same_numbers(tmp_path):
  """Killed after step 3 (checkpoints every 2 steps: the rerun replays step 3), the rerun
  reproduces the uninterrupted run's losses, rewards and curriculum. A dense reward and the KL
  term, so every step's sampled answers change the parameters (with all rewards equal, any
  sampling would give the same numbers)."""
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  reward = "rl_toys:digit_share=1.0,format=0.5"
  run_python(TOY, str(straight), "6", "-1", reward, env=FAST)
  res = subprocess.run([sys.executable, "-c", TOY, str(killed), "6", "3", reward], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, **FAST, "PYTHONPATH": f"{ROOT}:{ROOT}/tests"})
  assert res.returncode == -9, res.stderr[-2000:]
  run_python(TOY, str(killed), "6", "-1", reward, env=FAST)
  a, b = metrics(str(straight / "run")), metrics(str(killed / "run"))
  assert len({r["reward/mean"] for r in a}) > 1 and a[0]["loss"] != 0
  keys = ("loss", "reward/mean", "pass@1", "curriculum/level", "grad_norm")
  last = {r["step"]: [r[k] for k in keys] for r in b}  # a replayed step's row is its last
  assert [[r[k] for k in keys] for r in a] == [last[r["step"]] for r in a]


# TOY as one of 2 processes on loopback when TOY_COORDINATOR is set (gloo: CPU collectives)
DISTRIBUTED = r"""
import os
if os.environ.get("TOY_COORDINATOR"):
  import jax
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(os.environ["TOY_COORDINATOR"], num_processes=2,
                             process_id=int(os.environ["TOY_PROCESS"]))
""" + TOY

# what a metrics row must agree on: the update's numbers and the host step's (rollout) numbers
AGREED = ("loss", "grad_norm", "kl", "ratio", "entropy", "reward/mean", "reward/std", "pass@1",
          "pass@8", "groups/all_equal", "response_length", "curriculum/level",
          "curriculum/pass_rate")


def _toy(workdir, steps: int, reward: str, devices: int, **env) -> subprocess.Popen:
  """A TOY run (beta 0.04) on `devices` CPU devices, its output in workdir.log."""
  workdir.mkdir(exist_ok=True)
  rl_toys.word_tokenizer(str(workdir / "tokenizer.json"))  # made here: 2 processes share one
  with open(f"{workdir}.log", "a") as log:
    return subprocess.Popen(
        [sys.executable, "-c", DISTRIBUTED, str(workdir), str(steps), "-1", reward], cwd=ROOT,
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, **cpu_env(devices), "PYTHONPATH": f"{ROOT}:{ROOT}/tests",
             **env})


@pytest.mark.long(120)
@pytest.mark.parametrize("steps,references", [
    pytest.param(3, (2,), id="quick"),
    pytest.param(6, (2, 1), id="and_one_device", marks=pytest.mark.slow)])
def test_grpo_on_two_processes_writes_the_rows_of_one(tmp_path, steps, references):
  """Each of 2 processes (1 CPU device each) samples and trains on half of the global batch (2 of
  4 prompts, 16 of 32 answers); the metrics row process 0 writes must be the global batch's, as 1
  process with 2 devices (the same mesh) writes it, so rewards and pass rates are gathered over
  processes, and the sampling seed, the curriculum and the update agree. A dense reward, so every
  step's answers, rewards and losses differ. The slow form runs longer and also compares 1
  device (another mesh: sums in another order, to float tolerance). All runs at once: each is
  mostly single-threaded compilation."""
  reward = "rl_toys:digit_share=1.0"
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  runs = {f"devices{n}": _toy(tmp_path / f"devices{n}", steps, reward, n) for n in references}
  runs.update({f"two{i}": _toy(tmp_path / "two", steps, reward, 1, TOY_PROCESS=str(i),
                               TOY_COORDINATOR=f"127.0.0.1:{port}") for i in range(2)})
  failed = [name for name, p in runs.items() if p.wait(timeout=600) != 0]
  assert not failed, "\n".join(f"{name} failed:\n" + open(runs[name].args[3] + ".log").read()[
      -3000:] for name in failed)
  got = metrics(str(tmp_path / "two" / "run"))
  assert [r["step"] for r in got] == list(range(1, steps + 1))
  # it sampled, it trained (on-policy, a step's sequence-mean loss is -mean(advantage), which
  # group normalisation can make exactly 0 at step 1; its gradient is not 0)
  assert len({r["reward/mean"] for r in got}) > 1 and all(r["grad_norm"] > 0 for r in got)
  for n in references:
    want = metrics(str(tmp_path / f"devices{n}" / "run"))
    for key in AGREED:
      np.testing.assert_allclose([r[key] for r in got], [r[key] for r in want], rtol=1e-5,
                                 atol=1e-7, err_msg=f"{key}: 2 processes vs {n} device(s)")


def test_grpo_7b_step_compiles_on_eight_fake_devices():
  res = subprocess.run(
      [sys.executable, "-m", "mathvlm.train", "--config", "grpo.py:model=mavis-7b",
       "--compile_only", "--fake_devices", "8", "--config.mesh.fsdp=8",
       "--config.data.global_batch=8", "--config.data.max_len=640",
       "--config.grpo.max_new_tokens=256"],
      cwd=ROOT, capture_output=True, text=True, timeout=900,
      env={**os.environ, **FAST, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stderr[-3000:]
  report = json.loads(res.stdout[res.stdout.index("{"):])
  assert report["objective"] == "grpo" and report["devices"] == 8
  assert report["per_device_gib"]["total"] > 0 and report["host_step"]["per_device_gib"]["total"] > 0
