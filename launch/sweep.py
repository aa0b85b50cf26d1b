"""Expand a sweep file into runs, run them (here, one after another) or write one job per run for a
launcher, and collect every run's final metrics into one table, averaged over seeds and plotted.

  python launch/sweep.py SWEEP.py --workdir DIR                       # run locally, then collect
  python launch/sweep.py SWEEP.py --workdir DIR --launcher slurm      # DIR/jobs/<run>.sh for sbatch
  (a bucket DIR, gs://B/x/y: the job files go to out/sweep_jobs/gs/B/x/y here)
  python launch/sweep.py SWEEP.py --workdir gs://B/x --launcher tpu --launcher_args "NAME ZONE TYPE"
  python launch/sweep.py SWEEP.py --workdir DIR --collect             # tables and plot only
  python launch/sweep.py SWEEP.py --workdir DIR --dry_run             # print the commands

A sweep file is code (configs/sweeps/): BASE, the `--config` argument every run shares; FLAGS,
trainer flags every run shares (either may be a function of the options); get_sweep(), one dict
per run of trainer flags
({"config.optim.lr": 1e-3}) and, when the file defines `prepare`, of the run's data settings
(plain keys: {"ratio": "2:3:4:1", "config.seed": 0}). Optional:
- configure(arg): the options after the file name, `SWEEP.py:key=value,...` (as a recipe's);
- setup(workdir) -> [(argv, creates)]: commands run once before any run (skipped when the path
  `creates` exists), e.g. building a data pool; with a launcher, DIR/jobs/setup.sh, run it first;
- prepare(run, data_dir) -> ([argv, ...], {trainer flag: value}): the run's data step (select,
  augment, build a subset into data_dir) and the flags that point the trainer at its output. It
  runs before the run's training, here or inside the run's job script; on TPU on every worker,
  into a worker-local data_dir (the data step must be deterministic, as data_prep.select is);
- METRICS {key: label}: the columns of the tables and the panels of the plot (keys of the last
  metrics row, or eval/<evaluator>/<key> from WORKDIR/eval.json); X: the swept key on the plot's
  x axis (default: the first swept key other than config.seed); TREND "linear" or "log2": also
  fit each metric against X (or log2 X) over every finished run (slope and its p-value).
In an argv, "python" stands for this Python here and "${PYTHON:-.venv/bin/python}" in job scripts.
A SIGTERM or a Ctrl-C to a local sweep goes on to the run in flight (it saves its step and exits)
and stops the sweep; rerun it to continue. A job script execs its launcher, so a SIGTERM to the
job (a scheduler's) reaches the launcher and its trainers. A FLAGS key that is no config field
(it would reach no run), a run listed twice (it would count as another seed), an X that names no
swept key or a TPU sweep's --workdir off a bucket (gs://; the workers' disks are their own) stops
the sweep at load, before anything runs.

Run k's workdir is DIR/<k>_<its values>, so reruns find it: the trainer resumes an interrupted run
and a finished run (its WORKDIR/model/config.json exists) is skipped, here or by its job script.
Run names hold a position and the swept values only, so the first launch records what defines the
sweep (the sweep file, BASE, FLAGS, every run's flags and data step) in DIR/sweep.json (for a
bucket DIR, beside its job files here), and a launch or --collect with another definition (other
options, e.g. `:seeds=5` or `:images=160`) into the same DIR stops: use another --workdir.
The job folder's old *.sh files are removed before a launcher's jobs are written. Local runs
share JAX's compilation cache (DIR/.jax_cache, unless JAX_COMPILATION_CACHE_DIR is set): the
runs of a sweep compile the same shapes. Results:
DIR/results.md and .json (one row per run: its values, the last metrics row's step, loss and
accuracy, every evaluator's last numbers, and its status: done once training reached its end,
which WORKDIR/data_report.json, written just before the model's export, or model/config.json
shows, so a run copied down from a bucket without its model still counts; partial; missing).
A bucket DIR (gs://...) is read and written through etils.epath (gcsfs). When a run
was repeated over config.seed, DIR/summary.md, .json and .png: mean and sample standard deviation
over seeds per setting, each seed's value shown on the plot, Welch's t-test of every setting
against the first setting in sweep order (the baseline, named in tests.json and summary.md; no
p-values while it has fewer than 2 finished seeds) per metric, and the TREND fit when the sweep
file asks for it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, ROOT)  # a script beside the package: its recipes resolve from this checkout
LAUNCHERS = {"local": None, "local.sh": "launch/local.sh", "slurm": "launch/gpu_slurm.sbatch",
             "tpu": "launch/tpu_vm.sh"}
SEED = "config.seed"
JOB_PYTHON = '"${PYTHON:-.venv/bin/python}"'  # quoted: a PYTHON with a space in its path


def load_sweep(path: str):
  """The sweep module, checked: BASE, get_sweep() of dicts, keys trainer fields unless the file
  prepares each run's data."""
  from mathvlm import configs
  path, _, arg = configs.resolve(path).partition(":")
  spec = importlib.util.spec_from_file_location("sweep", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  if arg and not hasattr(mod, "configure"):
    raise SystemExit(f"{path} takes no options (it defines no configure(arg)), got {arg!r}")
  if hasattr(mod, "configure"):
    try:
      mod.configure(arg)
    except ValueError as e:
      raise SystemExit(f"{path}: {e}") from None
  for name in ("BASE", "get_sweep"):
    if not hasattr(mod, name):
      raise SystemExit(f"{path}: a sweep file defines BASE (the --config argument) and "
                       f"get_sweep() (a list of flag dicts); {name} is missing")
  runs = mod.get_sweep()
  if not runs or not all(isinstance(r, dict) for r in runs):
    raise SystemExit(f"{path}: get_sweep() must return a non-empty list of dicts")
  repeated = repeats(runs)
  if repeated:
    raise SystemExit(f"{path}: get_sweep() lists the same run more than once (positions "
                     f"{repeated}): each copy would train again and count as another seed")
  if not hasattr(mod, "prepare"):
    for r in runs:
      bad = [k for k in r if not k.startswith("config.")]
      if bad:
        raise SystemExit(f"{path}: sweep keys must be trainer config fields (config.x.y), got "
                         f"{bad}; data settings need a prepare(run, data_dir) in the file")
  swept = {k for r in runs for k in r if k != SEED}
  swept |= {k.split(".", 1)[1] for k in swept if k.startswith("config.")}  # its columns' names
  if getattr(mod, "X", None) is not None and mod.X not in swept:  # else the plot fails at the end
    raise SystemExit(f"{path}: X = {mod.X!r} is no swept key; use one of {sorted(swept)}")
  if getattr(mod, "TREND", None) not in (None, "linear", "log2"):
    raise SystemExit(f"{path}: TREND = {mod.TREND!r}; use 'linear' or 'log2' (or leave it out)")
  for name in ("BASE", "FLAGS"):  # constants, or functions of the sweep's options
    value = getattr(mod, name, {})
    setattr(mod, name, value() if callable(value) else value)
  mod.FLAGS = dict(mod.FLAGS)
  bad = [k for k in mod.FLAGS if not k.startswith("config.")]
  if bad:  # trainer_args passes config.* flags only: any other key would never reach a run
    raise SystemExit(f"{path}: FLAGS keys must be trainer config fields (config.x.y), got {bad}")
  return mod, runs


def repeats(runs: list[dict]) -> list[list[int]]:
  """The positions of runs with the same flags (1e-3 and 0.001 are one value), per repeated run."""
  at: dict[str, list[int]] = {}
  for k, r in enumerate(runs):
    at.setdefault(setting_key(r), []).append(k)
  return [ks for ks in at.values() if len(ks) > 1]


def run_name(k: int, flags: dict) -> str:
  text = ",".join(f"{key.split('.')[-1]}={v}" for key, v in flags.items())
  return f"{k:02d}_" + re.sub(r"[^A-Za-z0-9.=,+-]", "_", text)[:80]


def trainer_args(base: str, shared: dict, flags: dict, workdir: str) -> list[str]:
  flags = {k: v for k, v in {**shared, **flags}.items() if k.startswith("config.")}
  return [f"--config={base}"] + [f"--{k}={v}" for k, v in flags.items()] + [
      f"--workdir={workdir}"]


def command(launcher: str, launcher_args: str, args: list[str]) -> list[str]:
  if launcher == "local":
    return [sys.executable, "-m", "mathvlm.train", *args]
  if launcher == "slurm":
    return ["sbatch", *shlex.split(launcher_args), LAUNCHERS[launcher], *args]
  return ["bash", LAUNCHERS[launcher], *shlex.split(launcher_args), *args]


def jobs_dir(workdir: str) -> str:
  """WORKDIR/jobs, or for a bucket workdir out/sweep_jobs/<scheme>/<its whole path> here
  (gs://B/sweeps/ratio: out/sweep_jobs/gs/B/sweeps/ratio), one folder per bucket workdir."""
  if "://" in workdir:
    scheme, rest = workdir.split("://", 1)
    parts = [re.sub(r"[^A-Za-z0-9._=,+-]", "_", x) for x in rest.split("/")
             if x not in ("", ".", "..")]
    return os.path.join(ROOT, "out", "sweep_jobs", scheme, *parts)
  return os.path.join(workdir, "jobs")


def path(p: str):
  """A path here or on a bucket (gs://..., through gcsfs): etils.epath, as the trainer writes."""
  from etils import epath
  return epath.Path(p)


def finished(workdir: str) -> bool:
  """The run's model is exported: the run is skipped on a rerun."""
  return path(workdir).joinpath("model", "config.json").exists()


def done(workdir: str) -> bool:
  """Training reached its end: data_report.json, which train() writes just before exporting the
  model, or the model itself. A run copied down from a bucket without its model/ counts."""
  return finished(workdir) or path(workdir).joinpath("data_report.json").exists()


# ---------------------------------------------------------------------------------------------
# What defines a sweep: its run names hold a position and the swept values only.

DATA_DIR = "<data_dir>"  # the data step's folder in the recorded definition (it moves by launcher)


def definition(sweep: str, mod, runs: list[tuple[str, dict]]) -> dict:
  """What the runs' names, their flags and their data depend on, JSON-plain: the sweep file, BASE,
  FLAGS, each run's name, flags and data step (its commands and trainer flags)."""
  from mathvlm import configs
  file = os.path.basename(configs.resolve(sweep).partition(":")[0])
  data = [list(prepared(mod, flags, DATA_DIR)) for _, flags in runs]
  d = dict(sweep=sweep, file=file, BASE=mod.BASE, FLAGS=mod.FLAGS,
           runs=[[name, flags] for name, flags in runs], data=data)
  return json.loads(json.dumps(d, default=str))


def definition_path(workdir: str) -> str:
  """DIR/sweep.json, or for a bucket workdir beside its job files here (writing no bucket)."""
  if "://" in workdir:
    return os.path.join(jobs_dir(workdir), "sweep.json")
  return os.path.join(workdir, "sweep.json")


def check_definition(workdir: str, defn: dict, write_it: bool) -> None:
  """Stops when DIR holds another sweep's runs (DIR/sweep.json differs in what defines them);
  records the definition on a sweep's first launch."""
  where = definition_path(workdir)
  if os.path.exists(where):
    with open(where) as f:
      old = json.load(f)
    differ = [k for k in ("file", "BASE", "FLAGS", "runs", "data") if old.get(k) != defn[k]]
    if differ:
      detail = []
      for k in differ:
        if k == "runs" and len(old.get(k) or []) != len(defn[k]):
          detail.append(f"runs: {len(old.get(k) or [])} there, {len(defn[k])} now")
        elif k in ("file", "BASE", "FLAGS"):
          detail.append(f"{k}: {old.get(k)!r} there, {defn[k]!r} now")
        else:
          detail.append(f"{k}: differs")
      raise SystemExit(
          f"{workdir} holds the runs of another sweep definition ({where}: sweep "
          f"{old.get('sweep')!r}, now {defn['sweep']!r}); differing: {'; '.join(detail)}. Its run "
          "folders are named by position and swept values, so they would be taken for these "
          "runs: use another --workdir (or delete that sweep.json if they are the same runs)")
  elif write_it:
    os.makedirs(os.path.dirname(where), exist_ok=True)
    with open(where, "w") as f:
      json.dump(defn, f, indent=1)


# ---------------------------------------------------------------------------------------------
# Data steps: once per sweep (setup) and per run (prepare).

def local_argv(argv) -> list[str]:
  argv = [str(a) for a in argv]
  return [sys.executable] + argv[1:] if argv and argv[0] == "python" else argv


def shell(argv, python: str = JOB_PYTHON) -> str:
  argv = [str(a) for a in argv]
  if argv and argv[0] == "python":
    return python + " " + shlex.join(argv[1:])
  return shlex.join(argv)


def run_steps(steps, what: str) -> None:
  for argv in steps:
    print(f"{what}: {shlex.join(local_argv(argv))}", flush=True)
    code = run_here(local_argv(argv), what, cwd=ROOT)
    if code:
      raise SystemExit(f"{what} failed (exit {code}): {shlex.join(local_argv(argv))}")


def run_here(argv: list[str], what: str, **popen) -> int:
  """Runs one command of a local sweep and returns its exit status. A SIGTERM to the sweep
  (preemption, `kill`) is passed on to it, so a run saves its step and exits
  (mathvlm/preemption.py), and then stops the sweep: left alone, the run would train on, orphaned,
  beside the one a rerun starts in its workdir, and the next run would start after it. A SIGINT
  (Ctrl-C) is passed on as a SIGTERM too: the sweep waits for the run's save instead of dying at
  once (KeyboardInterrupt) and leaving it to save alone; a second Ctrl-C reaches the run from the
  terminal itself and stops it at once."""
  if threading.current_thread() is not threading.main_thread():  # no handler can be set here
    return subprocess.run(argv, **popen).returncode
  child, heard = None, []

  def forward(signum, frame):
    heard.append(signal.Signals(signum).name)
    if child is not None:
      child.send_signal(signal.SIGTERM)

  previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    child = subprocess.Popen(argv, **popen)
    if heard:  # it came while the child was starting
      child.send_signal(signal.SIGTERM)
    code = child.wait()
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)
  if heard:
    raise SystemExit(f"{heard[0]}: {what} stopped (exit {code}), and the sweep with it; rerun "
                     "the sweep to continue")
  return code


def setup_steps(mod, workdir: str) -> list[tuple[list, str]]:
  steps = mod.setup(workdir) if hasattr(mod, "setup") else []
  for step in steps:
    if not (isinstance(step, (tuple, list)) and len(step) == 2):
      raise SystemExit("setup(workdir) returns (argv, creates) pairs")
  return steps


def data_dir(launcher: str, workdir: str, name: str) -> str:
  """Where a run's data step writes: beside its workdir, or on TPU workers a local folder."""
  if launcher == "tpu" or "://" in workdir:
    return f"/tmp/mathvlm-sweep/{os.path.basename(workdir.rstrip('/'))}/{name}"
  return os.path.join(workdir, name, "data")


def prepared(mod, run: dict, where: str) -> tuple[list, dict]:
  if not hasattr(mod, "prepare"):
    return [], {}
  steps, flags = mod.prepare(dict(run), where)
  bad = [k for k in flags if not k.startswith("config.")]
  if bad:
    raise SystemExit(f"prepare() must return trainer flags (config.x.y), got {bad}")
  return list(steps), dict(flags)


def job_script(sweep: str, name: str, launcher: str, steps: list, cmd: list[str],
               workdir: str) -> str:
  """A run's job: nothing when the run finished (its workdir's model/config.json exists: a plain
  test, or `gcloud storage ls` for a bucket workdir), else its data step (here, or on TPU on
  every worker through PREPARE), then the launcher, exec'd: it takes the job's pid, so a SIGTERM
  to the job (a scheduler's preemption, `kill`) reaches the launcher, which passes it on to its
  trainers; under a plain `bash` it would kill the job's shell alone and leave them training."""
  model = workdir.rstrip("/") + "/model/config.json"
  exists = (f"gcloud storage ls {shlex.quote(model)} >/dev/null 2>&1" if "://" in workdir
            else f"[[ -e {shlex.quote(model)} ]]")
  lines = ["#!/usr/bin/env bash", f"# sweep {sweep}, run {name}", "set -euo pipefail",
           f"cd {shlex.quote(ROOT)}",
           f"if {exists}; then echo {shlex.quote(f'{name}: finished earlier ({model}), skipped')};"
           " exit 0; fi"]
  if launcher == "tpu" and steps:
    remote = " && ".join(shell(s, ".venv/bin/python") for s in steps)
    lines.append(f"PREPARE={shlex.quote(remote)} exec {shlex.join(cmd)}")
  else:
    lines += [shell(s) for s in steps] + [f"exec {shlex.join(cmd)}"]
  return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Results: one row per run, then mean and spread over seeds.

def run_row(workdir: str, name: str, flags: dict) -> dict:
  row = {"run": name, **{k.split(".", 1)[1] if k.startswith("config.") else k: v
                         for k, v in flags.items()}}
  run = path(workdir) / name
  has_metrics = (run / "metrics.jsonl").exists()
  if has_metrics:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if lines:
      row.update({k: lines[-1][k] for k in ("step", "loss") if k in lines[-1]})
      row.update({k: v for k, v in lines[-1].items() if k.startswith(("accuracy", "dpo/"))})
  if (run / "eval.json").exists():
    for evaluator, numbers in json.loads((run / "eval.json").read_text()).items():
      row.update({f"eval/{evaluator}/{k}": v for k, v in numbers.items()})
  row["status"] = ("done" if done(str(run)) else "partial" if has_metrics else "missing")
  return row


def fmt(v) -> str:
  return f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, dict) else str(v)


def markdown(rows: list[dict], cols: list[str], labels: dict | None = None) -> str:
  labels = labels or {}
  md = ["| " + " | ".join(labels.get(c, c) for c in cols) + " |", "|" + "---|" * len(cols)]
  md += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
  return "\n".join(md) + "\n"


def collect(workdir: str, runs: list[tuple[str, dict]], mod=None) -> list[dict]:
  rows = [run_row(workdir, name, flags) for name, flags in runs]
  metrics = dict(getattr(mod, "METRICS", {}) or {})
  cols = list(dict.fromkeys(k for r in rows for k in r))
  if metrics:  # the table names the sweep's metrics, not every breakdown of every evaluator
    cols = [c for c in cols if not c.startswith("eval/")] + [m for m in metrics
                                                             if m.startswith("eval/")]
  table = markdown(rows, [c for c in cols if c != "status"] + ["status"], metrics)
  path(workdir).joinpath("results.md").write_text(table)
  path(workdir).joinpath("results.json").write_text(json.dumps(rows, indent=1))
  print(table)
  if any(SEED in flags for _, flags in runs):
    summarise(workdir, runs, rows, mod)
  return rows


def summarise(workdir: str, runs, rows: list[dict], mod) -> list[dict]:
  """Per setting (the swept values other than the seed), in sweep order (a setting with no
  finished run too, so that the first, the tests' baseline, stays the first): n seeds, mean and
  sample std of each metric over the finished runs; DIR/summary.md, .json and .png."""
  import numpy as np
  keys = list(dict.fromkeys(k for _, f in runs for k in f if k != SEED))
  short = {k: (k.split(".", 1)[1] if k.startswith("config.") else k) for k in keys}
  metrics = dict(getattr(mod, "METRICS", {}) or {}) or {"loss": "final training loss"}
  groups: dict[str, tuple[list, list[dict]]] = {}
  for (_, flags), row in zip(runs, rows):
    values = [flags.get(k) for k in keys]
    _, members = groups.setdefault(setting_key(values), (values, []))
    if row["status"] == "done":
      members.append(row)
  out = []
  for values, members in groups.values():
    entry = {short[k]: v for k, v in zip(keys, values)}
    entry["seeds"] = [m.get("seed") for m in members]
    for m, label in metrics.items():
      xs = np.array([r[m] for r in members if isinstance(r.get(m), (int, float))], float)
      entry[m] = dict(mean=float(xs.mean()) if len(xs) else None,
                      std=float(xs.std(ddof=1)) if len(xs) > 1 else None,
                      values=xs.tolist())
    out.append(entry)
  x = getattr(mod, "X", None) or (keys[0] if keys else None)
  tests = {"baseline": setting(out[0]) if out else None,
           "welch_vs_first": against_first(out, metrics)}
  if getattr(mod, "TREND", None) and x is not None:
    tests["trend"] = trend(out, short.get(x, x), metrics, mod.TREND)
  path(workdir).joinpath("summary.json").write_text(json.dumps(out, indent=1))
  path(workdir).joinpath("tests.json").write_text(json.dumps(tests, indent=1))
  cell = lambda e: "" if e["mean"] is None else (  # noqa: E731
      f"{e['mean']:.4g}" + (f" ± {e['std']:.2g}" if e["std"] is not None else ""))
  table = markdown([{**{short[k]: e[short[k]] for k in keys}, "seeds": len(e["seeds"]),
                     **{m: cell(e[m]) for m in metrics}} for e in out],
                   [short[k] for k in keys] + ["seeds"] + list(metrics), metrics)
  text = ("Mean ± sample standard deviation over seeds.\n\n" + table +
          tests_markdown(tests, metrics, len(out[0]["seeds"]) if out else 0))
  path(workdir).joinpath("summary.md").write_text(text)
  print(text)
  if out and x is not None:
    plot(out, short.get(x, x), metrics, str(path(workdir) / "summary.png"))
  return out


def setting_key(values) -> str:
  """What groups runs of one setting (or finds a run listed twice): their swept values as JSON,
  since a value may be a list (`config.train_rules` written as lists), which no dict takes as a
  key."""
  return json.dumps(values, sort_keys=True, default=str)


def setting(entry: dict) -> str:
  """A setting's name: its swept values (`2:3:4:1`, `lr=0.001, width=8`)."""
  swept = {k: v for k, v in entry.items() if k != "seeds" and not isinstance(v, dict)}
  return (str(next(iter(swept.values()))) if len(swept) == 1
          else ", ".join(f"{k}={v}" for k, v in swept.items()))


def against_first(summary: list[dict], metrics: dict) -> dict:
  """Welch's t-test (unequal variances) of each setting's seeds against the first setting's (the
  baseline: the first in sweep order, finished or not), per metric: whether a gap between
  settings is more than the seeds' spread. Two-sided p, None where a side has fewer than 2
  seeds."""
  from scipy import stats
  out = {}
  for m in metrics:
    base = summary[0][m]["values"] if summary else []
    out[m] = {}
    for e in summary[1:]:
      other = e[m]["values"]
      ok = len(base) > 1 and len(other) > 1
      res = stats.ttest_ind(base, other, equal_var=False) if ok else None
      out[m][setting(e)] = finite(None if res is None else dict(
          t=float(res.statistic), df=float(res.df), p=float(res.pvalue)))
  return out


def finite(result: dict | None) -> dict | None:
  """None for a test with nothing to test (every seed the same number on both sides: no spread,
  scipy's nan), so that summary files stay plain JSON."""
  import math
  return result if result is not None and all(map(math.isfinite, result.values())) else None


def trend(summary: list[dict], x: str, metrics: dict, scale: str) -> dict:
  """Least-squares slope of each metric against X (per doubling with scale log2) over every
  finished run, with the two-sided p-value of a zero slope: a dose-response read of a sweep
  whose setting is a number (questions per image, steps), over all runs at once."""
  import numpy as np
  from scipy import stats
  out = {}
  for m in metrics:
    xs = np.array([e[x] for e in summary for _ in e[m]["values"]], float)
    ys = np.array([v for e in summary for v in e[m]["values"]], float)
    if scale == "log2":
      xs = np.log2(xs)
    if len(set(xs.tolist())) < 2 or len(xs) < 3:
      out[m] = None
      continue
    fit = stats.linregress(xs, ys)
    out[m] = finite(dict(slope=float(fit.slope), p=float(fit.pvalue), runs=len(xs)))
  return {"x": x, "scale": scale, "fits": out}


def tests_markdown(tests: dict, metrics: dict, baseline_seeds: int = 2) -> str:
  lines = []
  welch = tests["welch_vs_first"]
  base = tests.get("baseline")
  if any(welch[m] for m in welch) and baseline_seeds < 2:
    lines.append(f"\nWelch's t-test over seeds against the baseline {base} (the first setting): "
                 f"none yet, the baseline has {baseline_seeds} finished seed"
                 f"{'' if baseline_seeds == 1 else 's'} (2 needed).")
  elif any(welch[m] for m in welch):
    lines.append(f"\nWelch's t-test over seeds, each setting against the baseline {base} (the "
                 "first setting; two-sided p):\n")
    for m, by in welch.items():
      cells = [f"{name} p = {r['p']:.3g}" for name, r in by.items() if r is not None]
      if cells:
        lines.append(f"- {metrics[m]}: " + "; ".join(cells))
  fitted = tests.get("trend")
  if fitted:
    per = "doubling" if fitted["scale"] == "log2" else "unit"
    lines.append(f"\nTrend over every run (least-squares slope per {per} of {fitted['x']}, "
                 "two-sided p of a zero slope):\n")
    for m, f in fitted["fits"].items():
      if f is not None:
        lines.append(f"- {metrics[m]}: {f['slope']:+.3g} (p = {f['p']:.3g}, {f['runs']} runs)")
  return "\n".join(lines) + ("\n" if lines else "")


def plot(summary: list[dict], x: str, metrics: dict, out: str) -> None:
  """One panel per metric: the mean over seeds with ±1 std error bars, each seed as a dot."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = [str(e[x]) for e in summary]
  cols = min(3, len(metrics))
  rows = -(-len(metrics) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
  for ax in axes.flat[len(metrics):]:
    ax.set_visible(False)
  for ax, (m, label) in zip(axes.flat, metrics.items()):
    pos = range(len(summary))
    means = [e[m]["mean"] if e[m]["mean"] is not None else float("nan") for e in summary]
    stds = [e[m]["std"] or 0.0 for e in summary]
    ax.errorbar(pos, means, yerr=stds, fmt="o", capsize=4, color="C0", label="mean ± std")
    for i, e in enumerate(summary):
      ax.scatter([i] * len(e[m]["values"]), e[m]["values"], s=10, color="C1", alpha=0.7,
                 label="seeds" if i == 0 else None)
    ax.set_xticks(list(pos), names, rotation=30 if max(map(len, names)) > 5 else 0)
    ax.set_xlabel(x)
    ax.set_title(label, fontsize=10)
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=8)
  fig.tight_layout()
  import io
  buf = io.BytesIO()  # the workdir may be a bucket
  fig.savefig(buf, format="png", dpi=110)
  plt.close(fig)
  path(out).write_bytes(buf.getvalue())


# ---------------------------------------------------------------------------------------------
# Entry point.

def launch(a, mod, runs: list[tuple[str, dict]]) -> None:
  """Runs (or writes the jobs of) every run: its data step, then its training."""
  steps = setup_steps(mod, a.workdir)
  here = shlex.quote(sys.executable)
  if a.launcher != "local" and not a.dry_run:  # this sweep's job files only
    jobs = jobs_dir(a.workdir)
    for old in (sorted(os.listdir(jobs)) if os.path.isdir(jobs) else []):
      if old.endswith(".sh"):
        os.remove(os.path.join(jobs, old))
  if a.dry_run:
    for argv, _ in steps:
      print(shell(argv, here))
  elif a.launcher != "local" and steps:
    write(os.path.join(jobs_dir(a.workdir), "setup.sh"), "#!/usr/bin/env bash\nset -euo pipefail\n"
          f"cd {shlex.quote(ROOT)}\n" + "".join(shell(s) + "\n" for s, _ in steps))
  else:
    run_steps([s for s, creates in steps if not os.path.exists(creates)], "setup")
  for name, flags in runs:
    wd = os.path.join(a.workdir, name)
    data_steps, extra = prepared(mod, flags, data_dir(a.launcher, a.workdir, name))
    cmd = command(a.launcher, a.launcher_args, trainer_args(
        mod.BASE, mod.FLAGS, {**flags, **extra}, wd))
    if a.dry_run:
      print("\n".join([shell(s, here) for s in data_steps] + [shlex.join(cmd)]))
    elif a.launcher != "local":
      write(os.path.join(jobs_dir(a.workdir), f"{name}.sh"),
            job_script(a.sweep, name, a.launcher, data_steps, cmd, wd))
    elif finished(wd):
      print(f"{name}: finished earlier, skipped")
    else:
      run_steps(data_steps, f"{name} data")
      print(f"{name}: {shlex.join(cmd)}", flush=True)
      code = run_here(cmd, f"run {name}", cwd=ROOT, env=compile_cache(a.workdir))
      if code:
        raise SystemExit(f"run {name} failed (exit {code}); its log is above, its "
                         f"workdir {wd}; rerun the sweep to resume it")


def compile_cache(workdir: str) -> dict:
  """The environment of a local run: JAX's persistent compilation cache in DIR/.jax_cache unless
  one is set, so the runs of a sweep (the same shapes, another seed or data) compile once."""
  env = dict(os.environ)
  if "://" not in workdir:
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(workdir, ".jax_cache"))
  return env


def write(path: str, text: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)
  os.chmod(path, 0o755)
  print(f"wrote {path}")


def check_launcher_args(launcher: str, launcher_args: str, workdir: str) -> None:
  """What each launcher needs before its options and of its workdir, named before anything is
  written. TPU: a bucket, since the workers' own disks are neither shared nor here (resume, export
  and --collect would each see a part, or nothing), even on one host, whose disk a preemption
  takes with it."""
  words = shlex.split(launcher_args)
  if launcher == "local.sh" and not (len(words) == 1 and re.fullmatch(r"[1-9][0-9]*", words[0])):
    raise SystemExit(f"--launcher local.sh needs --launcher_args N, the number of processes (a "
                     f"positive integer, e.g. 2), got {launcher_args!r}")
  if launcher == "tpu" and len(words) != 3:
    raise SystemExit(f"--launcher tpu needs --launcher_args \"NAME ZONE TYPE\" (3 words, e.g. "
                     f"\"mathllava us-central2-b v4-64\"), got {launcher_args!r}")
  if launcher == "tpu" and not workdir.startswith("gs://"):
    raise SystemExit(f"--launcher tpu needs a bucket --workdir (gs://BUCKET/sweeps/NAME), got "
                     f"{workdir}: a local path is each TPU worker's own disk, so the runs' "
                     "checkpoints, metrics and models would be split over the workers, lost with "
                     "a preempted VM and out of reach of resume, export and --collect")


def main(argv=None) -> list[dict]:
  p = argparse.ArgumentParser(prog="launch/sweep.py", description=__doc__.split("\n")[0])
  p.add_argument("sweep", help="a sweep file (configs/sweeps/*.py)")
  p.add_argument("--workdir", required=True, help="one sub-folder per run, plus results.md")
  p.add_argument("--launcher", default="local", choices=sorted(LAUNCHERS),
                 help="local: run here one after another; others: write DIR/jobs/<run>.sh (for "
                 "a bucket DIR, out/sweep_jobs/<its path>/<run>.sh here)")
  p.add_argument("--launcher_args", default="", help="2 for local.sh (processes), 'NAME ZONE "
                 "TYPE' for tpu, sbatch options for slurm (as --launcher_args=--nodes=2 when they "
                 "start with -)")
  p.add_argument("--collect", action="store_true", help="only collect the results")
  p.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  a = p.parse_args(argv)
  if "://" not in a.workdir:  # runs start in the repository root
    a.workdir = os.path.abspath(a.workdir)
  if not a.collect:
    check_launcher_args(a.launcher, a.launcher_args, a.workdir)
  mod, flag_sets = load_sweep(a.sweep)
  runs = [(run_name(k, f), f) for k, f in enumerate(flag_sets)]
  if (not a.collect and a.launcher == "slurm" and "://" in a.workdir
      and any(prepared(mod, f, DATA_DIR)[0] for _, f in runs)):
    raise SystemExit(
        f"SLURM needs a shared-filesystem --workdir for the data step: each run's data step runs "
        f"on the submit host and its output must reach the nodes, but with --workdir "
        f"{a.workdir} it would go to this host's /tmp. Use a --workdir on the shared filesystem")
  check_definition(a.workdir, definition(a.sweep, mod, runs),
                   write_it=not a.collect and not a.dry_run)
  if "://" not in a.workdir:
    os.makedirs(a.workdir, exist_ok=True)
  if not a.collect:
    launch(a, mod, runs)
    if a.dry_run or a.launcher != "local":
      return []
  return collect(a.workdir, runs, mod)


if __name__ == "__main__":
  main()
