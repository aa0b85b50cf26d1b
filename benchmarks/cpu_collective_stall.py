"""How often XLA:CPU deadlocks in collectives on fake devices, at its default thread pool and at
the one `mathvlm.runtime` gives them; prints JSON.

  python -m benchmarks.cpu_collective_stall [--runs 6] [--calls 5000] [--parallel 1]

Each run is a fresh process with 8 fake CPU devices on a (2, 2, 2) mesh calling, `--calls` times,
a program shaped like our sharded step: independent collective-permutes at the top level and
scanned loops whose bodies all-reduce (a device can then have several collectives in flight).
XLA aborts a collective that waits past `--timeout` seconds; a run that aborted counts as a
stall. `--parallel` runs at a time (2 is `make test`'s load). A count of stalls, not a timing: it
is here because it takes minutes and is random, which a test must not be.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

PROGRAM = r"""
import sys
import jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
mesh = jax.make_mesh((2, 2, 2), ("a", "b", "c"))

def body(x):
  outs = [jax.lax.ppermute(jnp.sin(x * (i + 1)), "abc"[i % 3], [(0, 1), (1, 0)]) for i in range(6)]
  for k, axis in enumerate("abc"):
    def step(c, _, axis=axis):
      return c + jax.lax.psum(jnp.cos(c) * 0.5, axis), None
    outs.append(jax.lax.scan(step, x * (k + 2), None, length=3)[0])
  return sum(outs)

spec = P(("a", "b", "c"))
f = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=spec, out_specs=spec))
x = jax.device_put(jnp.ones((64, 8), jnp.float32), NamedSharding(mesh, spec))
for _ in range(int(sys.argv[1])):
  x = f(x) * 1e-3
x.block_until_ready()
"""
STALL = "Termination timeout for `"


def one_run(calls: int, timeout: int, threads: int | None) -> bool:
  """True when XLA aborted a collective (or the run hung past twice the timeout)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=(
      "--xla_force_host_platform_device_count=8 "
      f"--xla_cpu_collective_call_terminate_timeout_seconds={timeout}"))
  for name in ("PJRT_NPROC", "NPROC"):
    env.pop(name, None)
  if threads:
    env["PJRT_NPROC"] = str(threads)
  try:
    res = subprocess.run([sys.executable, "-c", PROGRAM, str(calls)], env=env,
                         capture_output=True, text=True, timeout=2 * timeout + 600)
  except subprocess.TimeoutExpired:
    return True
  if res.returncode and STALL not in res.stderr:
    raise RuntimeError(f"the program failed otherwise:\n{res.stderr[-2000:]}")
  return res.returncode != 0


def main(argv=None) -> dict:
  from mathvlm import runtime
  p = argparse.ArgumentParser()
  p.add_argument("--runs", type=int, default=6)
  p.add_argument("--calls", type=int, default=5000)
  p.add_argument("--parallel", type=int, default=1)
  p.add_argument("--timeout", type=int, default=15)
  a = p.parse_args(argv)
  out = {"devices": 8, "cores": os.cpu_count(), "runs": a.runs, "calls_per_run": a.calls,
         "parallel": a.parallel}
  for name, threads in (("default", None), ("mathvlm", runtime.cpu_threads(8))):
    with ThreadPoolExecutor(a.parallel) as pool:
      stalls = sum(pool.map(lambda _: one_run(a.calls, a.timeout, threads), range(a.runs)))
    out[name] = {"pool_threads": threads or max(os.cpu_count(), 8), "stalled_runs": stalls}
  print(json.dumps(out))
  return out


if __name__ == "__main__":
  main()
