"""Process-wide runtime settings per platform, applied once before JAX starts its backend.

The trainer calls `configure(platform)` first thing (before anything touches `jax.devices()`):
XLA reads `XLA_FLAGS` when the backend starts, so a flag set later does nothing. Every setting
says why it is there; anything CPU-specific is applied only for platform 'cpu', so accelerators
run exactly as before. A flag the user already put in XLA_FLAGS (or a thread count in
PJRT_NPROC / NPROC, or a malloc choice: GLIBC_TUNABLES, MALLOC_*, LD_PRELOAD) is never overridden.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("mathvlm.runtime")

# (flag, value, why). Empty for the CPU on purpose: of the XLA:CPU flags tried on the `small`
# train step (docs/perf/PERFORMANCE.md), --xla_cpu_experimental_onednn_fusion_type=dot,
# --xla_cpu_use_xnnpack=false and --xla_cpu_experimental_xnn_graph_fusion_mode=GREEDY compile
# to the very same program as the defaults (YNNPACK already runs the matmuls), and
# --xla_cpu_experimental_ynn_fusion_type=+eltwise,+reduce moves 26 more matmuls off YNNPACK; the
# default thread pool already uses every core. What the step needed was in the models instead.
XLA_FLAGS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "cpu": (),
}

# (jax config name, value, why)
JAX_CONFIG: dict[str, tuple[tuple[str, object, str], ...]] = {
    "cpu": (
        ("jax_cpu_enable_async_dispatch", False,
         "a step dispatched asynchronously runs on an XLA worker thread, whose glibc arena maps "
         "the step's temporary buffer (1.2 GB for the `small` preset in bf16, 1.7 GB in f32) "
         "afresh and unmaps it at every step: 300-430k page faults and 0.7-2.6 s of system time "
         "a step. Run inline on the calling thread, the buffer comes from the main heap, which "
         "MALLOC below keeps: no faults, and the `small` step 1.2-1.25x faster "
         "(docs/perf/PERFORMANCE.md). On a CPU the host is the device, so there is nothing for "
         "the loop's one-step-ahead dispatch (`mathvlm.overlap`) to overlap but the few "
         "milliseconds of placing a prefetched batch; the loop's order is the same. jax applies "
         "it to single-device programs only: multi-device ones stay asynchronous"),
    ),
}

# (mallopt parameter, its number in glibc's malloc.h, value, why), glibc only.
MALLOC: dict[str, tuple[tuple[str, int, int, str], ...]] = {
    "cpu": (
        ("M_MMAP_MAX", -4, 0,
         "no block is mapped on its own: glibc maps every block over 32 MB (a step's temporary "
         "buffer) with mmap and unmaps it when freed, so the kernel faults in and zero-fills "
         "all of it again at the next step; from the heap it is reused"),
        ("M_TRIM_THRESHOLD", -1, -1,
         "the heap is never given back to the kernel (-1: SIZE_MAX), or freeing the buffer at "
         "the heap's top would return it; the process keeps its peak (one step's temporaries "
         "more than before: 4.5 against 3.4 GB resident for `small` bf16, flat over 40 steps)"),
    ),
}


def user_set_malloc() -> bool:
  """Whether the user chose their malloc or its settings (GLIBC_TUNABLES' glibc.malloc.*, glibc's
  MALLOC_* variables, an allocator such as jemalloc or tcmalloc in LD_PRELOAD): theirs win, as
  XLA flags do."""
  return ("glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")
          or "malloc" in os.environ.get("LD_PRELOAD", "")
          or any(k.startswith("MALLOC_") for k in os.environ))


def keep_freed_memory(platform: str = "cpu") -> dict[str, int]:
  """Applies MALLOC[platform] through glibc's `mallopt`, for the whole process; returns what it
  set ({} where the C library is not glibc). Not undone: freed memory stays with the process."""
  try:
    mallopt = ctypes.CDLL("libc.so.6").mallopt
  except (OSError, AttributeError):
    return {}
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  return {name: value for name, param, value, _ in MALLOC.get(platform, ())
          if mallopt(param, value) == 1}


def fake_cpu_devices(flags: str) -> int:
  """The device count `--xla_force_host_platform_device_count` asks for in `flags` (1 if none)."""
  counts = [part.split("=", 1)[1] for part in flags.split()
            if part.startswith("--xla_force_host_platform_device_count=")]
  return int(counts[-1]) if counts else 1


def cpu_threads(devices: int) -> int:
  """Threads for XLA:CPU's pools when `devices` (fake) devices share one process.

  XLA:CPU sizes its pools max(cores, devices) (`PJRT_NPROC` overrides the core count) and runs
  a device's collectives on them, each blocking its thread until every participant arrives. A
  device can have more than one collective in flight (independent ones, such as one in a scanned
  layer's body and one outside it), so with 8 devices on 2 cores the 8 threads could all wait
  while the one part of a collective-permute that would free them sat queued behind them: a
  deadlock that XLA aborts after its collective timeout (it failed a CI run). Reproduced by
  `python -m benchmarks.cpu_collective_stall --runs 8 --parallel 2`: 7 of 8 runs of 5,000 calls
  stalled at the default pool of 8, none at 64 threads (docs/perf/cpu_collective_stall_*.json);
  the tests' 8-device losses are bitwise the same and their wall time about the same. 8 threads a
  device leave room for several collectives in flight on each; threads that wait cost no compute."""
  return max(os.cpu_count() or 1, 8 * devices)


def size_cpu_pool(devices: int) -> dict[str, str]:
  """Sets PJRT_NPROC to `cpu_threads(devices)` for several devices on the CPU, unless the user
  set a count (PJRT_NPROC or NPROC); before the backend starts. Returns what it set."""
  if devices <= 1 or {"PJRT_NPROC", "NPROC"} & set(os.environ):
    return {}
  os.environ["PJRT_NPROC"] = str(cpu_threads(devices))
  return {"PJRT_NPROC": os.environ["PJRT_NPROC"]}


def use_fake_cpu_devices(devices: int) -> None:
  """`devices` CPU devices in this process (compile-only reports, tests), with the threads their
  collectives need (`size_cpu_pool`); before anything touches a device."""
  import jax
  jax.config.update("jax_platforms", "cpu")
  jax.config.update("jax_num_cpu_devices", devices)
  size_cpu_pool(devices)


def platform_hint() -> str | None:
  """The platform JAX_PLATFORMS names first (e.g. 'cpu' from 'cpu,cuda'); else 'cpu' when no
  accelerator back end is installed (jax can then run nowhere else); else None: what
  `configure` can know without starting a backend."""
  first = os.environ.get("JAX_PLATFORMS", "").split(",")[0].strip().lower()
  if first:
    return first
  return None if accelerator_plugins() else "cpu"


def accelerator_plugins() -> list[str]:
  """The accelerator back ends jax could load: PJRT plugins (entry points or `jax_plugins`
  modules: CUDA, ROCm, Metal, ...) and libtpu."""
  import importlib.metadata
  import importlib.util
  import pkgutil
  names = [ep.name for ep in importlib.metadata.entry_points(group="jax_plugins")]
  try:
    import jax_plugins
    names += [m.name for m in pkgutil.iter_modules(jax_plugins.__path__)]
  except ImportError:
    pass
  return names + [m for m in ("libtpu",) if importlib.util.find_spec(m) is not None]


def configure(platform: str | None = None, malloc: bool = True) -> dict[str, object]:
  """Applies the settings for `platform` ('cpu', 'gpu', 'tpu'; default `platform_hint()`, and
  nothing when that is unknown). Returns what it set, by name. Idempotent. malloc=False leaves
  glibc's malloc at its defaults (a benchmark's 'before' figure)."""
  platform = (platform or platform_hint() or "").lower()
  applied: dict[str, object] = {}
  flags = os.environ.get("XLA_FLAGS", "")
  present = {part.split("=")[0] for part in flags.split()}
  extra = [f"{name}={value}" for name, value, _ in XLA_FLAGS.get(platform, ())
           if name not in present]
  if extra:
    os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
    applied.update(dict(part.split("=", 1) for part in extra))
  if platform == "cpu":
    applied.update(size_cpu_pool(fake_cpu_devices(os.environ.get("XLA_FLAGS", ""))))
  if malloc and MALLOC.get(platform) and not user_set_malloc():
    applied.update(keep_freed_memory(platform))
  if JAX_CONFIG.get(platform):
    import jax
    for name, value, _ in JAX_CONFIG[platform]:
      jax.config.update(name, value)
      applied[name] = value
  if applied:
    log.info("runtime settings for %s: %s", platform, applied)
  return applied
