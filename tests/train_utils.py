"""Helpers for the trainer tests: small recipe configs and reading what a run wrote."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import types
import warnings

from mathvlm import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = {"lm": "sft", "dpo": "dpo", "contrastive": "clip_math", "classify": "classify"}

# LLVM's optimisation off: the tests' programs are tiny, compile ~35% faster and run fast enough
# (XLA's own passes still run). XLA:CPU's fusion emitters off as well: the tiny GRPO step then
# compiles in 3.5 s instead of 8 and the whole suite, from an empty compilation cache, ran in
# 825 s instead of 973 on this machine's 2 cores. Its programs run slower, so the one long run
# (the quick demo) keeps the emitters (`long_run_env`). A collective that not every fake device
# reaches aborts the process after 120 s instead of XLA's 40 (a thread on 2 busy cores can be
# late), and well before a subprocess's own timeout, so a stall costs minutes, not the suite (see
# run_python's retry_stall).
FUSION_EMITTERS_OFF = "--xla_cpu_use_fusion_emitters=false"
XLA_FLAGS = (f"--xla_backend_optimization_level=0 {FUSION_EMITTERS_OFF} "
             "--xla_cpu_collective_call_terminate_timeout_seconds=120")
# What XLA prints when it aborts such a collective.
XLA_STALL = "Termination timeout for `"


def ctrl_c_reaches() -> None:
  """A child's preexec_fn: SIGINT at its default, as under a terminal. A suite started in the
  background of a non-interactive shell (a CI runner's `cmd &`) runs with SIGINT ignored, and
  every child inherits that: Python then installs no KeyboardInterrupt handler and bash cannot
  trap it, so a test of what Ctrl-C does would test nothing."""
  signal.signal(signal.SIGINT, signal.SIG_DFL)


def cpu_env(devices: int = 0) -> dict:
  """The variables a test subprocess on the CPU sets, with `devices` fake devices if given, and
  the thread pool `mathvlm.runtime.configure` gives them (these programs call `train()` without
  the CLI that applies it)."""
  env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": XLA_FLAGS}
  if devices:
    env["XLA_FLAGS"] += f" --xla_force_host_platform_device_count={devices}"
  if devices > 1:
    env["PJRT_NPROC"] = str(runtime.cpu_threads(devices))
  return env


def long_run_env() -> dict:
  """The environment for a subprocess that runs for minutes rather than compiles (the quick demo):
  the suite's flags less FUSION_EMITTERS_OFF, whose slower programs cost it more than they save."""
  flags = os.environ.get("XLA_FLAGS", XLA_FLAGS).replace(FUSION_EMITTERS_OFF, "")
  return {**os.environ, "PYTHONPATH": ROOT, "XLA_FLAGS": " ".join(flags.split())}


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


def hf_lr(optim, total: int, step: int) -> float:
  """The lr Hugging Face's Trainer (LLaVA's and Math-LLaVA's) gives `step` of `total` for the
  config's `optim` section: its own warmup count (TrainingArguments.get_warmup_steps, which reads
  only `warmup_steps`, a ratio when under 1; building TrainingArguments needs accelerate) and its
  schedule on a torch optimizer."""
  import torch
  from transformers import TrainingArguments, optimization
  warmup = TrainingArguments.get_warmup_steps(types.SimpleNamespace(
      warmup_steps=optim.warmup_ratio), total)
  opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=optim.lr)
  make = {"cosine": optimization.get_cosine_schedule_with_warmup,
          "linear": optimization.get_linear_schedule_with_warmup,
          "constant": optimization.get_constant_schedule_with_warmup}[optim.schedule]
  args = (opt, warmup) if optim.schedule == "constant" else (opt, warmup, total)
  return optim.lr * make(*args).lr_lambdas[0](step)


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


def run_python(code: str, *args: str, env: dict | None = None, timeout: int = 600,
               retry_stall: bool = False) -> str:
  """Runs `code` in a fresh interpreter; its stdout. retry_stall: run it once more if XLA aborted
  a collective that one fake device never reached. Seen three times in `make test`, in
  test_meshes_and_accumulation...[contrastive,classify-quick] on the (2, 2, 2) mesh, before
  `cpu_env` gave fake devices a larger thread pool (the cause: `mathvlm.runtime.cpu_threads`);
  kept as a second line of defence, since XLA:CPU's scheduling is not ours. A program whose
  collectives do not match (a bug of ours) stalls every time and still fails; the rerun's numbers
  are checked as the first run's would have been. Only for code that can run twice (nothing kept
  from the first attempt)."""
  for attempt in (1, 2):
    res = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=timeout,
                         env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.path.join(
                             ROOT, "tests"), **(env or {})})
    if res.returncode == 0:
      return res.stdout
    if not (retry_stall and attempt == 1 and XLA_STALL in res.stderr):
      break
    warnings.warn("XLA:CPU aborted a collective that a fake device never reached; running the "
                  "test's program once more:\n" + res.stderr[-1500:])
  raise AssertionError(f"exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")


def build_wheel(folder) -> str:
  """The project's wheel, built from a copy of this checkout under `folder` (setuptools leaves
  build/ and *.egg-info in the tree it builds); returns the wheel's path."""
  import pathlib
  import shutil
  folder = pathlib.Path(folder)
  src, wheels = folder / "src", folder / "wheels"
  for part in ("mathvlm", "data_prep"):
    shutil.copytree(os.path.join(ROOT, part), src / part,
                    ignore=shutil.ignore_patterns("__pycache__"))
  for part in ("pyproject.toml", "README.md"):
    shutil.copy(os.path.join(ROOT, part), src / part)
  res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(wheels), str(src)], capture_output=True, text=True,
                       timeout=600)
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  (wheel,) = wheels.glob("mathvlm-*.whl")
  return str(wheel)
