"""What the two data-recipe sweeps share (complexity_ratio.py, qa_per_image.py): their options,
the run config, the one-time pool and each run's data step (a `data_prep.select` into the run's
data folder, which the trainer reads through `data.subset`).

Options (`launch/sweep.py SWEEP.py:key=value,...`):
- scale=engine (default): the pool `python -m mathvlm.demo.sweep_pool` makes at `pool` (made by
  the sweep's setup step when missing), configs/recipe_sweep.py's engine runs for `epochs`;
- scale=paper: `scores` (data_prep.score's file over the built MathV360K pool, as the workers see
  it), `data`, `init`, `tokenizer`, `mathvista`, `math_v`, `model`: configs/recipe_sweep.py's
  paper runs; nothing is set up (build, score and convert first: docs/recipe/SWEEPS.md).
"""

from __future__ import annotations

from mathvlm.configs.common import parse_arg

DEFAULTS = dict(scale="engine", pool="out/sweeps/pool", seeds=3, epochs=1, scores="", data="",
                init="", tokenizer="", mathvista="", math_v="", model="llava-1.5-13b")
PAPER = ("data", "init", "tokenizer", "mathvista", "math_v", "model")


def options(arg: str, **defaults):
  """The sweep's options: `defaults` (the sweep's own) over DEFAULTS, then `arg`."""
  return parse_arg(arg, **{**DEFAULTS, **defaults})


def base(o) -> str:
  if o.scale == "engine":
    return f"configs/recipe_sweep.py:pool={o.pool},epochs={o.epochs}"
  missing = [k for k in PAPER + ("scores",) if not o[k]]
  if missing:
    raise SystemExit(f"scale=paper needs {missing} (SWEEP.py:scale=paper,scores=...,data=...)")
  return "configs/recipe_sweep.py:scale=paper," + ",".join(f"{k}={o[k]}" for k in PAPER)


def setup(o) -> list:
  """The engine pool, once (skipped when its DONE.json exists)."""
  if o.scale != "engine":
    return []
  return [(["python", "-m", "mathvlm.demo.sweep_pool", "--out", o.pool], f"{o.pool}/DONE.json")]


def scores(o) -> str:
  return o.scores or f"{o.pool}/qa/train/scores.jsonl"


def select(o, data_dir: str, *, ratio: str, size: int, seed: int, qa_per_image: int):
  """The run's data step: `data_prep.select` into data_dir, and the trainer flag that reads it."""
  argv = ["python", "-m", "data_prep.select", "--scores", scores(o), "--ratio", ratio,
          "--size", str(size), "--seed", str(seed), "--qa_per_image", str(qa_per_image),
          "--out", data_dir]
  return [argv], {"config.data.subset": f"{data_dir}/selected.jsonl"}


# The columns of the recipe sweeps' tables: held-out engine figures here, benchmarks at paper scale.
METRICS_HERE = {"eval/heldout/ranked/type/multiple-choice": "multiple choice, options ranked (%)",
                "eval/heldout/ranked/all": "held-out accuracy, options ranked (%)",
                "eval/heldout/generated/all": "held-out accuracy, generated (%)",
                "eval/heldout/generated/type/free-form": "free-form, generated (%)",
                "eval/loss/loss": "held-out loss (per token)",
                "loss": "final training loss"}
METRICS_PAPER = {"eval/mathvista/accuracy": "MathVista testmini (%)",
                 "eval/math_v/accuracy": "MATH-Vision testmini (%)"}


def set_metrics(metrics: dict, o) -> None:
  """In place: the sweep runner holds the sweep file's METRICS dict."""
  metrics.clear()
  metrics.update(METRICS_PAPER if o.scale == "paper" else METRICS_HERE)
