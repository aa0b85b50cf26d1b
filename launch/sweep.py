"""Expand a sweep file into runs, run them (here, one after another) or write one job per run for a
launcher, and collect every run's final metrics into one table.

  python launch/sweep.py SWEEP.py --workdir DIR                       # run locally, then collect
  python launch/sweep.py SWEEP.py --workdir DIR --launcher slurm      # DIR/jobs/<run>.sh for sbatch
  python launch/sweep.py SWEEP.py --workdir DIR --launcher tpu --launcher_args "NAME ZONE TYPE"
  python launch/sweep.py SWEEP.py --workdir DIR --collect             # table only
  python launch/sweep.py SWEEP.py --workdir DIR --dry_run             # print the commands

A sweep file is code (configs/sweeps/): BASE, the `--config` argument every run shares; FLAGS,
trainer flags every run shares; get_sweep(), one dict of trainer flags per run (e.g.
{"config.optim.lr": 1e-3}). Run k's workdir is DIR/<k>_<its flags>, so reruns find it: the trainer
resumes an interrupted run and a finished run is skipped. Results: DIR/results.md and .json, one
row per run with its swept values and its last metrics row (plus `final_eval` when a run wrote
WORKDIR/eval.json).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, ROOT)  # a script beside the package: its recipes resolve from this checkout
LAUNCHERS = {"local": None, "local.sh": "launch/local.sh", "slurm": "launch/gpu_slurm.sbatch",
             "tpu": "launch/tpu_vm.sh"}


def load_sweep(path: str):
  from mathvlm import configs
  path = configs.resolve(path)
  spec = importlib.util.spec_from_file_location("sweep", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  for name in ("BASE", "get_sweep"):
    if not hasattr(mod, name):
      raise SystemExit(f"{path}: a sweep file defines BASE (the --config argument) and "
                       f"get_sweep() (a list of flag dicts); {name} is missing")
  runs = mod.get_sweep()
  if not runs or not all(isinstance(r, dict) for r in runs):
    raise SystemExit(f"{path}: get_sweep() must return a non-empty list of dicts")
  for r in runs:
    bad = [k for k in r if not k.startswith("config.")]
    if bad:
      raise SystemExit(f"{path}: sweep keys must be trainer config fields (config.x.y), got {bad}")
  return mod.BASE, dict(getattr(mod, "FLAGS", {})), runs


def run_name(k: int, flags: dict) -> str:
  text = ",".join(f"{key.split('.')[-1]}={v}" for key, v in flags.items())
  return f"{k:02d}_" + re.sub(r"[^A-Za-z0-9.=,+-]", "_", text)[:80]


def trainer_args(base: str, shared: dict, flags: dict, workdir: str) -> list[str]:
  return ([f"--config={base}"] + [f"--{k}={v}" for k, v in {**shared, **flags}.items()]
          + [f"--workdir={workdir}"])


def command(launcher: str, launcher_args: str, args: list[str]) -> list[str]:
  if launcher == "local":
    return [sys.executable, "-m", "mathvlm.train", *args]
  if launcher == "slurm":
    return ["sbatch", *shlex.split(launcher_args), LAUNCHERS[launcher], *args]
  return ["bash", LAUNCHERS[launcher], *shlex.split(launcher_args), *args]


def finished(workdir: str) -> bool:
  return os.path.exists(os.path.join(workdir, "model", "config.json"))


def collect(workdir: str, runs: list[tuple[str, dict]]) -> list[dict]:
  rows = []
  for name, flags in runs:
    row = {"run": name, **{k.split(".", 1)[1]: v for k, v in flags.items()}}
    path = os.path.join(workdir, name, "metrics.jsonl")
    if os.path.exists(path):
      with open(path) as f:
        lines = [json.loads(x) for x in f if x.strip()]
      if lines:
        row.update({k: lines[-1][k] for k in ("step", "loss") if k in lines[-1]})
        row.update({k: v for k, v in lines[-1].items() if k.startswith(("accuracy", "dpo/"))})
    ev = os.path.join(workdir, name, "eval.json")
    if os.path.exists(ev):
      with open(ev) as f:
        row["final_eval"] = json.load(f)
    row["status"] = ("done" if finished(os.path.join(workdir, name)) else
                     "partial" if os.path.exists(path) else "missing")
    rows.append(row)
  cols = list(dict.fromkeys(k for r in rows for k in r))
  fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if isinstance(
      v, dict) else str(v)
  md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  md += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(md) + "\n")
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(rows, f, indent=1)
  print("\n".join(md))
  return rows


def main(argv=None) -> list[dict]:
  p = argparse.ArgumentParser(prog="launch/sweep.py", description=__doc__.split("\n")[0])
  p.add_argument("sweep", help="a sweep file (configs/sweeps/*.py)")
  p.add_argument("--workdir", required=True, help="one sub-folder per run, plus results.md")
  p.add_argument("--launcher", default="local", choices=sorted(LAUNCHERS),
                 help="local: run here one after another; others: write DIR/jobs/<run>.sh")
  p.add_argument("--launcher_args", default="", help="2 for local.sh (processes), 'NAME ZONE "
                 "TYPE' for tpu, sbatch options for slurm (as --launcher_args=--nodes=2 when they "
                 "start with -)")
  p.add_argument("--collect", action="store_true", help="only collect the results table")
  p.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  a = p.parse_args(argv)
  if "://" not in a.workdir:  # runs start in the repository root
    a.workdir = os.path.abspath(a.workdir)
  base, shared, flag_sets = load_sweep(a.sweep)
  runs = [(run_name(k, f), f) for k, f in enumerate(flag_sets)]
  os.makedirs(a.workdir, exist_ok=True)
  if not a.collect:
    for name, flags in runs:
      wd = os.path.join(a.workdir, name)
      cmd = command(a.launcher, a.launcher_args, trainer_args(base, shared, flags, wd))
      if a.dry_run:
        print(shlex.join(cmd))
      elif a.launcher != "local":
        job = os.path.join(a.workdir, "jobs", f"{name}.sh")
        os.makedirs(os.path.dirname(job), exist_ok=True)
        with open(job, "w") as f:
          f.write(f"#!/usr/bin/env bash\n# sweep {a.sweep}, run {name}\nset -euo pipefail\n"
                  f"cd {shlex.quote(ROOT)}\n{shlex.join(cmd)}\n")
        os.chmod(job, 0o755)
        print(f"wrote {job}")
      elif finished(wd):
        print(f"{name}: finished earlier, skipped")
      else:
        print(f"{name}: {shlex.join(cmd)}", flush=True)
        res = subprocess.run(cmd, cwd=ROOT)
        if res.returncode:
          raise SystemExit(f"run {name} failed (exit {res.returncode}); its log is above, its "
                           f"workdir {wd}; rerun the sweep to resume it")
    if a.dry_run or a.launcher != "local":
      return []
  return collect(a.workdir, runs)


if __name__ == "__main__":
  main()
