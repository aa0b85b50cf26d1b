"""The benchmarks' shared helpers that decide what a figure means: the page faults and system time
reported beside each side's seconds, and `--malloc keep`, which must change what glibc does."""

import os
import pathlib
import resource
import subprocess
import sys

import pytest

from benchmarks import presets as P

ROOT = pathlib.Path(__file__).resolve().parents[2]

# A block above glibc's mmap threshold, freed and allocated again: with glibc's defaults every page
# of it is faulted in (and zero-filled by the kernel) anew, as each training step's temporaries are.
REALLOC_CHILD = """
import ctypes, resource, sys
from benchmarks import presets
applied = presets.keep_freed_memory() if sys.argv[1] == "keep" else {}
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
n = 256 << 20
def touch():
  p = libc.malloc(n)
  ctypes.memset(p, 1, n)
  libc.free(p)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(sorted(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_not_faulted_in_again():
  """In a process of its own: the setting is process-wide and cannot be undone."""
  def faults(mode):
    out = subprocess.run([sys.executable, "-c", REALLOC_CHILD, mode], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout.split()
    return " ".join(out[:-1]), int(out[-1])

  pages = (256 << 20) // os.sysconf("SC_PAGE_SIZE")
  applied, kept = faults("keep")
  assert applied == "['M_MMAP_MAX', 'M_TRIM_THRESHOLD']"
  assert kept < pages // 50, kept
  assert faults("glibc")[1] > pages // 2


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
