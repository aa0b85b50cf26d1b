"""Helpers for the trainer tests: small recipe configs and reading what a run wrote."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = {"lm": "sft", "dpo": "dpo", "contrastive": "clip_math", "classify": "classify"}


def tiny_config(objective: str, arg: str = "model=tiny", **fields):
  """The objective's recipe with the tiny model, a few steps and a learning rate that moves."""
  config = importlib.import_module(f"mathvlm.configs.{RECIPES[objective]}").get_config(arg)
  config.steps = 5
  config.data.global_batch = 8
  config.data.num_examples = 64
  config.data.max_len = 32
  config.optim.lr = 1e-3
  config.optim.warmup_ratio = 0.0
  config.checkpoint.use_async = False
  config.metrics.tensorboard = False
  if config.lora.rank:
    config.lora.rank = 4
  for dotted, value in fields.items():
    node = config
    *parents, leaf = dotted.rstrip("_").split("__")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def metrics(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def run_cli(args: list[str], env: dict | None = None, check: bool = True,
            timeout: int = 600) -> subprocess.CompletedProcess:
  res = subprocess.run([sys.executable, "-m", "mathvlm.train", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PYTHONPATH": ROOT, **(env or {})})
  if check and res.returncode != 0:
    raise AssertionError(f"train exited {res.returncode}:\n{res.stdout[-3000:]}\n"
                         f"{res.stderr[-3000:]}")
  return res


def run_python(code: str, *args: str, env: dict | None = None, timeout: int = 600) -> str:
  res = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout,
                       env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.path.join(
                           ROOT, "tests"), **(env or {})})
  if res.returncode != 0:
    raise AssertionError(f"exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
  return res.stdout
