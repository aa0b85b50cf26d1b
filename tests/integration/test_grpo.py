"""GRPO end to end through the trainer: a toy task whose optimal policy is known is learned; a run
killed mid-way resumes to the same numbers; the 7B step compiles (rollout and update) on 8 fake
devices. Subprocesses, so XLA's optimisation can be turned off for these tiny programs."""

import json
import os
import subprocess
import sys

import numpy as np

from train_utils import ROOT, metrics, run_python

FAST = {"XLA_FLAGS": "--xla_backend_optimization_level=0", "JAX_PLATFORMS": "cpu"}

TOY = r"""
import dataclasses, json, os, sys
from mathvlm.demo.data import SPECIALS, add_bos
from mathvlm.configs import grpo as recipe
from mathvlm.models import registry
from mathvlm.train import kill_after, train
out, steps, kill, reward = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
new = int(sys.argv[5]) if len(sys.argv) > 5 else 4
os.makedirs(out, exist_ok=True)
tok_path = os.path.join(out, "tokenizer.json")
if not os.path.exists(tok_path):
  # a word per id: one id in 40 is "7" at the start, so a random policy finds the reward in a few
  # groups of 8 (a byte-level vocabulary of 280 left it to luck whether any sample ever did)
  from tokenizers import Tokenizer, models, pre_tokenizers
  words = list(SPECIALS) + "Say a number . ( ) The answer is".split() + [str(k) for k in range(26)]
  tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  add_bos(tok)
  tok.save(tok_path)
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
c.checkpoint.use_async, c.metrics.tensorboard, c.checkpoint.every = False, False, 2
train(c, os.path.join(out, "run"), callbacks=[kill_after(kill)] if kill > 0 else [])
"""


def test_grpo_learns_the_one_rewarded_token(tmp_path):
  """Reward 1 when the answer starts with 7: the optimal policy is to say 7; pass@1 goes from
  (almost) never to (almost) always."""
  # one answer token isolates the claim. With 4 (later tokens of rewarded answers reinforced too)
  # this model at lr 3e-3 rose to pass@1 0.4 by step 12, then its entropy fell to 0 on answers
  # that do not start with 7 (seed 0); see the issue note
  run_python(TOY, str(tmp_path), "24", "0", "rl_toys:says_seven=1.0", "1", env=FAST)
  rows = metrics(str(tmp_path / "run"))
  first, last = np.mean([r["pass@1"] for r in rows[:2]]), np.mean([r["pass@1"] for r in rows[-5:]])
  assert first < 0.15 and last > 0.75, [round(r["pass@1"], 2) for r in rows]
  for key in ("reward/mean", "reward/std", "pass@8", "groups/all_equal", "kl", "clip_fraction",
              "entropy", "response_length", "rollout_seconds", "curriculum/level"):
    assert key in rows[-1], key
  assert rows[-1]["curriculum/level"] > 0  # the pass rate left the band: harder problems


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
