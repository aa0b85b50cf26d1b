"""The benchmarks' shared helpers that decide what a figure means: the page faults and system time
reported beside each side's seconds (the malloc settings they show: tests/unit/test_runtime.py)."""

import resource

from benchmarks import presets as P


def test_alternate_reports_each_sides_page_faults_and_system_time():
  """One side touches fresh memory at every call, the other does not: the faults land on the
  first only, though the calls alternate."""
  n = 64 << 20

  def fresh():
    buf = bytearray(n)   # calloc'd: the kernel's zero pages, faulted in when written
    buf[::4096] = b"\1" * (n // 4096)

  usage = {}
  sec = P.alternate({"fresh": fresh, "idle": lambda: None}, 3, usage=usage)
  assert set(sec) == set(usage) == {"fresh", "idle"}
  assert usage["fresh"]["page_faults"] > n // resource.getpagesize() // 2
  assert usage["idle"]["page_faults"] < 100
  assert usage["fresh"]["system_cpu_s"] >= usage["idle"]["system_cpu_s"]
