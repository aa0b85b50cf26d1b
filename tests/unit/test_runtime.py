"""Runtime settings: CPU-only ones stay off other platforms, user flags win, and it is idempotent;
on the CPU a step's temporaries are not faulted in afresh at every call."""

import os
import pathlib
import subprocess
import sys

import pytest

from mathvlm import runtime

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_tables(monkeypatch):
  monkeypatch.setattr(runtime, "XLA_FLAGS", {"cpu": (("--xla_cpu_a", "true", "why a"),
                                                     ("--xla_cpu_b", "1", "why b"))})
  monkeypatch.setattr(runtime, "JAX_CONFIG", {"cpu": (("jax_cpu_enable_async_dispatch", True,
                                                       "why"),)})
  monkeypatch.setattr(runtime, "MALLOC", {"cpu": ()})  # mallopt is process-wide: children only


def test_cpu_flags_are_added_without_overriding_the_users(monkeypatch, fake_tables):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_b=7 --xla_dump_to=/tmp/x")
  applied = runtime.configure("cpu")
  assert applied == {"--xla_cpu_a": "true", "jax_cpu_enable_async_dispatch": True}
  import os
  flags = os.environ["XLA_FLAGS"].split()
  assert flags == ["--xla_cpu_b=7", "--xla_dump_to=/tmp/x", "--xla_cpu_a=true"]
  runtime.configure("cpu")                               # idempotent
  assert os.environ["XLA_FLAGS"].split() == flags


@pytest.mark.parametrize("platform", ["gpu", "tpu", "cuda"])
def test_other_platforms_get_nothing(monkeypatch, fake_tables, platform):
  monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_x=1")
  assert runtime.configure(platform) == {}
  import os
  assert os.environ["XLA_FLAGS"] == "--xla_gpu_x=1"


def test_platform_comes_from_jax_platforms_when_not_given(monkeypatch, fake_tables):
  monkeypatch.setenv("XLA_FLAGS", "")  # recorded, so what configure sets is undone after
  monkeypatch.delenv("XLA_FLAGS")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu,cuda")
  assert runtime.platform_hint() == "cpu"
  assert "--xla_cpu_a" in runtime.configure()
  monkeypatch.setenv("JAX_PLATFORMS", "")
  monkeypatch.setattr(runtime, "accelerator_plugins", lambda: ["xla_cuda12"])
  assert runtime.platform_hint() is None and runtime.configure() == {}
  monkeypatch.setattr(runtime, "accelerator_plugins", lambda: [])  # jax can only use the CPU
  assert runtime.platform_hint() == "cpu" and "jax_cpu_enable_async_dispatch" in runtime.configure()


def test_every_setting_says_why():
  for table in (runtime.XLA_FLAGS, runtime.JAX_CONFIG, runtime.MALLOC):
    for entries in table.values():
      assert all(len(e[-1]) > 20 for e in entries)


def test_the_users_malloc_settings_win(monkeypatch, fake_tables):
  calls = []
  monkeypatch.setattr(runtime, "MALLOC", {"cpu": (("M_MMAP_MAX", -4, 0, "why"),)})
  monkeypatch.setattr(runtime, "keep_freed_memory", lambda p: calls.append(p) or {"M_MMAP_MAX": 0})
  monkeypatch.setenv("XLA_FLAGS", "")  # what configure adds is undone after
  for name in ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "LD_PRELOAD"):
    monkeypatch.setenv(name, "")  # recorded, so that delenv below is undone after
    monkeypatch.delenv(name)
  assert runtime.configure("cpu")["M_MMAP_MAX"] == 0 and calls == ["cpu"]
  assert "M_MMAP_MAX" not in runtime.configure("cpu", malloc=False) and calls == ["cpu"]
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
  assert "M_MMAP_MAX" not in runtime.configure("cpu") and calls == ["cpu"]
  monkeypatch.delenv("GLIBC_TUNABLES")
  monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
  assert "M_MMAP_MAX" not in runtime.configure("cpu") and calls == ["cpu"]
  monkeypatch.delenv("MALLOC_ARENA_MAX")
  monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")
  assert "M_MMAP_MAX" not in runtime.configure("cpu") and calls == ["cpu"]
  assert "M_MMAP_MAX" not in runtime.configure("gpu") and calls == ["cpu"]


def _child(code: str, *args) -> list[str]:
  """Runs code in a fresh interpreter (mallopt and the dispatch mode are process-wide and cannot
  be undone); its last line of output, split."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("GLIBC_TUNABLES", "XLA_FLAGS") and not k.startswith("MALLOC_")}
  out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       check=True, cwd=ROOT, env=env).stdout
  return out.strip().splitlines()[-1].split()


# A block above glibc's mmap threshold, freed and allocated again: with glibc's defaults every page
# of it is faulted in (and zero-filled by the kernel) anew.
REALLOC_CHILD = """
import ctypes, resource, sys
from mathvlm import runtime
applied = runtime.keep_freed_memory() if sys.argv[1] == "keep" else {}
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
print(",".join(sorted(applied)) or "-", resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_not_faulted_in_again():
  pages = (256 << 20) // os.sysconf("SC_PAGE_SIZE")
  applied, kept = _child(REALLOC_CHILD, "keep")
  assert applied == "M_MMAP_MAX,M_TRIM_THRESHOLD"
  assert int(kept) < pages // 50, kept
  assert int(_child(REALLOC_CHILD, "glibc")[1]) > pages // 2


# A jitted program with a 64 MB temporary (the first product), called again and again as a train
# step is: the minor page faults per call after warming up.
STEP_CHILD = """
import resource, sys
from mathvlm import runtime
if sys.argv[1] == "runtime":
  runtime.configure("cpu")
import jax, jax.numpy as jnp
x, w = jnp.ones((8192, 256), jnp.float32), jnp.ones((256, 2048), jnp.float32)
f = jax.jit(lambda x, w: jnp.sum(jnp.tanh(x @ w) @ w.T, axis=0))
for _ in range(3):
  f(x, w).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
  f(x, w).block_until_ready()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_cpu_step_reuses_its_temporary_buffer_under_the_runtime():
  """Under jax's defaults XLA's worker thread maps the 64 MB temporary afresh at every call (16k
  pages faulted in); with the runtime the program runs on the calling thread and its buffer
  comes from the heap glibc keeps. Either setting alone leaves the faults."""
  pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
  assert int(_child(STEP_CHILD, "default")[0]) > pages // 2
  assert int(_child(STEP_CHILD, "runtime")[0]) < pages // 50


@pytest.fixture
def no_thread_counts(monkeypatch):
  for name in ("PJRT_NPROC", "NPROC"):
    monkeypatch.setenv(name, "")  # recorded, so what configure sets is undone after
    monkeypatch.delenv(name)


def test_fake_cpu_devices_get_a_pool_no_waiting_collective_can_fill(monkeypatch, no_thread_counts,
                                                                    fake_tables):
  import os
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
  assert runtime.configure("cpu")["PJRT_NPROC"] == os.environ["PJRT_NPROC"] == str(
      max(os.cpu_count(), 64))
  monkeypatch.setenv("PJRT_NPROC", "3")                 # the user's count wins
  assert "PJRT_NPROC" not in runtime.configure("cpu") and os.environ["PJRT_NPROC"] == "3"


@pytest.mark.parametrize("platform,flags", [
    ("cpu", "--xla_force_host_platform_device_count=1"), ("cpu", ""),
    ("gpu", "--xla_force_host_platform_device_count=8")])
def test_no_pool_size_without_several_fake_cpu_devices(monkeypatch, no_thread_counts, platform,
                                                       flags, fake_tables):
  import os
  monkeypatch.setenv("XLA_FLAGS", flags)
  assert "PJRT_NPROC" not in runtime.configure(platform) and "PJRT_NPROC" not in os.environ
