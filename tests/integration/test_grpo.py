"""GRPO end to end through the trainer: a toy task whose optimal policy is known is learned; a run
killed mid-way resumes to the same numbers; 2 processes write the rows of 1 and refill (dynamic
sampling) as 1; the 7B step compiles (rollout and update) on 8 fake devices. Subprocesses, so
XLA's optimisation can be turned off for these tiny programs."""

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
    tiny, text=rl_toys.toy_text(tiny.text, len(vocab) + 2))
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
  sampling would give the same numbers). 4 steps (a GRPO step costs ~1.5 s of CPU; it ran 6): the
  rerun replays step 3 and runs step 4 from what it restored, and still fails with a sampling
  seed counted from the rerun's first step, or Adam's moments or the reference not restored. The
  curriculum stays at its start in so few steps: a rerun that forgot its state passed at 6 too;
  that restore is tested apart (test_grpo_rollouts.py, test_extending.py: the trainer's part)."""
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  reward = "rl_toys:digit_share=1.0,format=0.5"
  run_python(TOY, str(straight), "4", "-1", reward, env=FAST)
  res = subprocess.run([sys.executable, "-c", TOY, str(killed), "4", "3", reward], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, **FAST, "PYTHONPATH": f"{ROOT}:{ROOT}/tests"})
  assert res.returncode == -9, res.stderr[-2000:]
  run_python(TOY, str(killed), "4", "-1", reward, env=FAST)
  a, b = metrics(str(straight / "run")), metrics(str(killed / "run"))
  assert len({r["reward/mean"] for r in a}) > 1 and a[0]["loss"] != 0
  keys = ("loss", "reward/mean", "pass@1", "curriculum/level", "grad_norm")
  last = {r["step"]: [r[k] for k in keys] for r in b}  # a replayed step's row is its last
  assert [[r[k] for k in keys] for r in a] == [last[r["step"]] for r in a]


# one of TOY_PROCESSES (2 unless set) processes on loopback when TOY_COORDINATOR is set (gloo:
# CPU collectives)
JOIN = r"""
import os
if os.environ.get("TOY_COORDINATOR"):
  import jax
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(os.environ["TOY_COORDINATOR"],
                             num_processes=int(os.environ.get("TOY_PROCESSES", "2")),
                             process_id=int(os.environ["TOY_PROCESS"]))
"""
DISTRIBUTED = JOIN + TOY

# what a metrics row must agree on: the update's numbers and the host step's (rollout) numbers
AGREED = ("loss", "grad_norm", "kl", "ratio", "entropy", "reward/mean", "reward/std", "pass@1",
          "pass@8", "groups/all_equal", "response_length", "curriculum/level",
          "curriculum/pass_rate")


def _toy(workdir, steps: int, reward: str, devices: int, script: str = DISTRIBUTED,
         **env) -> subprocess.Popen:
  """A TOY run (beta 0.04), or another script given the same arguments, on `devices` CPU
  devices, its output in workdir.log."""
  workdir.mkdir(exist_ok=True)
  rl_toys.word_tokenizer(str(workdir / "tokenizer.json"))  # made here: 2 processes share one
  with open(f"{workdir}.log", "a") as log:
    return subprocess.Popen(
        [sys.executable, "-c", script, str(workdir), str(steps), "-1", reward], cwd=ROOT,
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, **cpu_env(devices), "PYTHONPATH": f"{ROOT}:{ROOT}/tests",
             **env})


def _port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _wait(runs: dict) -> None:
  failed = [name for name, p in runs.items() if p.wait(timeout=600) != 0]
  assert not failed, "\n".join(f"{name} failed:\n" + open(runs[name].args[3] + ".log").read()[
      -3000:] for name in failed)


@pytest.mark.long(120)
@pytest.mark.parametrize("steps,references", [
    # quick: 2 steps, the second sampled by the updated policies (each step costs 3 processes
    # ~1.5 s of CPU; a third showed no more: ungathered rewards or per-process sampling seeds fail
    # at 2 steps)
    pytest.param(2, (2,), id="quick"),
    pytest.param(6, (2, 1), id="and_one_device", marks=pytest.mark.slow)])
def test_grpo_on_two_processes_writes_the_rows_of_one(tmp_path, steps, references):
  """Each of 2 processes (1 CPU device each) samples and trains on half of the global batch (2 of
  4 prompts, 16 of 32 answers); the metrics row process 0 writes must be the global batch's, as 1
  process with 2 devices (the same mesh) writes it, so rewards and pass rates are gathered over
  processes, and the sampling seed, the curriculum and the update agree. A dense reward, so every
  step's answers, rewards and losses differ. The slow form runs longer and also compares 1
  device (another mesh: sums in another order, to float tolerance). All runs at once: each is
  mostly single-threaded compilation."""
  reward, port = "rl_toys:digit_share=1.0", _port()
  runs = {f"devices{n}": _toy(tmp_path / f"devices{n}", steps, reward, n) for n in references}
  runs.update({f"two{i}": _toy(tmp_path / "two", steps, reward, 1, TOY_PROCESS=str(i),
                               TOY_COORDINATOR=f"127.0.0.1:{port}") for i in range(2)})
  _wait(runs)
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


# One host step (the trainer's rollouts) of a batch of the problems TOY_PROBLEMS names (1, 0, 2, 4
# unless set), groups of TOY_GROUP (4), with dynamic sampling on this process's rows, from random
# parameters; saves the trained rows and the fresh problems asked for.
REFILL = JOIN + r"""
import dataclasses, json, os, sys
import rl_toys
import jax
import numpy as np
from mathvlm import train
from mathvlm.configs import grpo as recipe
from mathvlm.models import registry
out = sys.argv[1]
tiny = registry.get("llava").presets["tiny"]
registry.get("llava").presets["tiny-toy"] = dataclasses.replace(
    tiny, text=rl_toys.toy_text(tiny.text, 42))
c = recipe.get_config("model=tiny,problems=rl_toys:PictureStream")
c.model.preset, c.data.tokenizer, c.data.template = "tiny-toy", f"{out}/tokenizer.json", "plain"
c.data.max_len, c.lora.rank, c.lora.targets, c.train_rules = 24, 0, "", ((".*", "trainable"),)
c.grpo.update(dict(group=int(os.environ.get("TOY_GROUP", "4")), max_new_tokens=3, beta=0.0,
                   dynamic_sampling=True, max_refills=4,
                   rewards="rl_toys:solved_or_distinct=1.0"))
problems = np.array(json.loads(os.environ.get("TOY_PROBLEMS", "[1, 0, 2, 4]")))
c.data.global_batch = len(problems)
run = train.setup(c)
rng = np.random.default_rng(0)

def draw(path, x, sharding):
  scale = "scale" in jax.tree_util.keystr(path)
  v = (scale + rng.normal(0, 0.1, x.shape)).astype(x.dtype)
  return jax.make_array_from_callback(x.shape, sharding, lambda i: v[i])

state = {k: jax.tree_util.tree_map_with_path(draw, run.abstract_state[k], run.state_sh[k])
         for k in ("params", "frozen")}
host, fresh = run.host, []
ask = host._fresh_indices
host._fresh_indices = lambda n: fresh.extend(ask(n)) or fresh[-n:]
p, per = jax.process_index(), len(problems) // jax.process_count()
batch, metrics = host(state, {"problem_index": problems[p * per:(p + 1) * per]}, 3)
np.savez(f"{out}/batch{p}.npz", **batch)
json.dump(dict(metrics, fresh=fresh, refills=host.refills), open(f"{out}/host{p}.json", "w"))
"""


@pytest.mark.long(60)
def test_dynamic_sampling_refills_the_same_groups_on_two_processes_as_on_one(tmp_path):
  """Problems 1, 0, 2, 4 (odd open, even solved: 3 all-equal groups). One process with 2 devices
  and 2 processes (prompts 1, 0 and 2, 4) on the same mesh must ask for the same fresh problems
  (10**9 + 0..3, then + 4, then + 5: counted and numbered over the global batch) and train on the
  same rows, bitwise: a refill another process sampled is remade from its index (its pixels
  name its problem) and the padded pool (1 group on 2 processes) draws as the unpadded one.
  Refills counted and numbered per process asked process 0 for even (solved) problems only."""
  port = _port()
  runs = {"one": _toy(tmp_path / "one", 0, "", 2, script=REFILL)}
  runs.update({f"two{i}": _toy(tmp_path / "two", 0, "", 1, script=REFILL, TOY_PROCESS=str(i),
                               TOY_COORDINATOR=f"127.0.0.1:{port}") for i in range(2)})
  _wait(runs)
  hosts = [json.load(open(tmp_path / w / f"host{p}.json")) for w, p in
           (("one", 0), ("two", 0), ("two", 1))]
  for h in hosts:
    assert h["fresh"] == [10 ** 9 + k for k in range(6)] and h["refills"] == 6, h
    assert h["groups/all_equal"] == 0.75 and h["groups/all_equal_after"] == 0, h
    assert h["groups/refill_rounds"] == 3 and h["groups/refilled"] == 6 / 4, h
  one = np.load(tmp_path / "one" / "batch0.npz")
  two = [np.load(tmp_path / "two" / f"batch{p}.npz") for p in range(2)]
  for key in one.files:
    np.testing.assert_array_equal(np.concatenate([b[key] for b in two]), one[key], err_msg=key)
  assert len({one["pixel_values"][r].tobytes() for r in range(0, 16, 4)}) == 4  # 4 problems


@pytest.mark.slow
@pytest.mark.long(90)
def test_dynamic_sampling_refills_the_same_groups_on_three_processes_as_on_one(tmp_path):
  """Problems 1, 0, 2, 4, 6, 3 (4 all-equal groups of 6) in groups of 6 on 3 processes (2
  prompts each) and on one process with 3 devices: the same fresh problems and the same rows,
  bitwise. Groups of 6 split evenly over 3 devices, so only the process count makes a pool of 4
  groups, then fewer, pad to whole groups per process (`_padded`), which the 2-process test's
  pools need only for 1 group. The quick form is the 2-process test."""
  port, env = _port(), dict(TOY_PROBLEMS="[1, 0, 2, 4, 6, 3]", TOY_GROUP="6")
  runs = {"one": _toy(tmp_path / "one", 0, "", 3, script=REFILL, **env)}
  runs.update({f"three{i}": _toy(tmp_path / "three", 0, "", 1, script=REFILL, TOY_PROCESS=str(i),
                                 TOY_PROCESSES="3", TOY_COORDINATOR=f"127.0.0.1:{port}", **env)
               for i in range(3)})
  _wait(runs)
  hosts = [json.load(open(tmp_path / w / f"host{p}.json")) for w, p in
           (("one", 0), ("three", 0), ("three", 1), ("three", 2))]
  for h in hosts:
    assert h["fresh"] == [10 ** 9 + k for k in range(8)] and h["refills"] == 8, h
    assert h["groups/refill_rounds"] == 4 and h["groups/all_equal_after"] == 0, h
  one = np.load(tmp_path / "one" / "batch0.npz")
  three = [np.load(tmp_path / "three" / f"batch{p}.npz") for p in range(3)]
  for key in one.files:
    np.testing.assert_array_equal(np.concatenate([b[key] for b in three]), one[key], err_msg=key)


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
