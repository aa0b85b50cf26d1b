"""Data-engine throughput: problems per second (render + caption + problems + PNG encode); prints JSON.

  python -m benchmarks.engine [--n 600] [--workers 2]

per_domain: one process, each domain alone (samples/s and CPU ms per sample; a plane sample is one
problem in three versions with three images, the others one image). mixed: `generate` with all domains interleaved and --workers processes,
files written to a temporary folder, end to end (process start-up excluded, pool start included).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from data_prep.engine import writer


def per_domain(n: int) -> tuple:
  """(samples/s wall, CPU ms per sample): CPU time is the figure that survives a busy machine."""
  out, cpu = {}, {}
  for d in writer.DOMAINS:
    writer.make_sample((0, 10 ** 6, d, "all", 0.1, 0.7, 0.1))  # warm caches
    t, c = time.perf_counter(), time.process_time()
    for i in range(n):
      writer.make_sample((0, i, d, "all", 0.1, 0.7, 0.1))
    out[d] = round(n / (time.perf_counter() - t), 1)
    cpu[d] = round((time.process_time() - c) / n * 1000, 2)
  return out, cpu


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=600)
  p.add_argument("--workers", type=int, default=2)
  a = p.parse_args()
  rate, cpu = per_domain(max(30, a.n // 3))
  res = {"per_domain_samples_per_s_1proc": rate, "per_domain_cpu_ms_per_sample": cpu,
         "problem_versions_per_sample": {"plane": 3, "analytic": 1, "function": 1}}
  with tempfile.TemporaryDirectory() as tmp:
    t = time.perf_counter()
    writer.generate(tmp, a.n, 0, "all", a.workers)
    dt = time.perf_counter() - t
  res["mixed"] = {"n": a.n, "workers": a.workers, "seconds": round(dt, 2),
                  "samples_per_s": round(a.n / dt, 1),
                  "mean_cpu_ms_per_sample": round(sum(cpu.values()) / 3, 2)}
  print(json.dumps(res))


if __name__ == "__main__":
  main()
