"""The engine's cost in CPU instructions a problem, which the host's speed does not move.

Wall-clock figures of `benchmarks.engine` move by 10-30% between runs minutes apart on a shared
host, and by more between machines (the bare render read 88.6-108.5 problems/s on one and
65.9-71.9 on the next), so a change worth a few percent cannot be seen in them. Valgrind's
cachegrind counts the instructions `writer.make_problem` executes: problems `--warm` to
`--warm + --n` of `--seed` in one process, as the difference of two runs (so imports and the
first problems' cold caches drop out), with `PYTHONHASHSEED=0` (set iteration and so the order of
some work depend on it). `--against PATH` counts another checkout the same way in the same run,
e.g. a `git worktree add /tmp/old REV` of the engine before a change:

  python -m benchmarks.engine_instructions --against /tmp/old

prints {..., "instructions_per_problem": {"this": 70599921, "against": 71365316},
"change": -0.0107} (this session's engine against 6547cbe, 2026-12-05).
About a minute and a quarter a checkout with the defaults (its two runs in parallel on this
machine's 2 cores).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = ("import sys\nfrom data_prep.engine import writer\n"
           "o = writer.Options(seed=int(sys.argv[2]))\n"
           "for i in range(int(sys.argv[1])): writer.make_problem(o, i)")


def total_instructions(cachegrind_out: str) -> int:
  """The program's instruction count from a cachegrind output file (its `summary:` line)."""
  with open(cachegrind_out) as f:
    for line in f:
      m = re.match(r"summary:\s+(\d+)", line)
      if m:
        return int(m.group(1))
  raise ValueError(f"{cachegrind_out}: no `summary:` line; is it a cachegrind output file?")


def per_problem(short_run: int, long_run: int, extra: int) -> float:
  """Instructions a problem: what the longer run spent on its `extra` problems."""
  if long_run <= short_run:
    raise ValueError(f"the longer run counted {long_run} instructions, the shorter {short_run}")
  return (long_run - short_run) / extra


def _count(repo: str, problems: int, seed: int, folder: str) -> int:
  out = os.path.join(folder, f"cachegrind.{problems}")
  env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": repo}
  res = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                        f"--cachegrind-out-file={out}", sys.executable, "-c", PROGRAM,
                        str(problems), str(seed)], cwd=repo, env=env, capture_output=True,
                       text=True)
  if res.returncode != 0:
    raise RuntimeError(f"valgrind on {repo} ({problems} problems) failed: {res.stderr[-2000:]}")
  return total_instructions(out)


def measure(repo: str, warm: int, n: int, seed: int) -> float:
  with tempfile.TemporaryDirectory() as folder, cf.ThreadPoolExecutor(2) as pool:
    short, long = pool.map(lambda k: _count(repo, k, seed, folder), (warm, warm + n))
  return per_problem(short, long, n)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--n", type=int, default=300, help="problems counted")
  ap.add_argument("--warm", type=int, default=100, help="problems run before those counted")
  ap.add_argument("--seed", type=int, default=1)
  ap.add_argument("--against", help="another checkout of the project, counted the same way")
  args = ap.parse_args(argv)
  if shutil.which("valgrind") is None:
    sys.exit("benchmarks.engine_instructions: valgrind not found; install it (apt install "
             "valgrind) or use `python -m benchmarks.engine` for wall-clock figures")
  sides = {"this": ROOT} | ({"against": os.path.abspath(args.against)} if args.against else {})
  counts = {k: measure(repo, args.warm, args.n, args.seed) for k, repo in sides.items()}
  out = {"tool": "valgrind --tool=cachegrind", "seed": args.seed, "problems": args.n,
         "after_warm": args.warm, "checkouts": sides,
         "instructions_per_problem": {k: round(v) for k, v in counts.items()}}
  if args.against:
    out["change"] = round(counts["this"] / counts["against"] - 1, 4)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
