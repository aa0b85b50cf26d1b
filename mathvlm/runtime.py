"""Process-wide runtime settings per platform, applied once before JAX starts its backend.

The trainer calls `configure(platform)` first thing (before anything touches `jax.devices()`):
XLA reads `XLA_FLAGS` when the backend starts, so a flag set later does nothing. Every setting
says why it is there; anything CPU-specific is applied only for platform 'cpu', so accelerators
run exactly as before. A flag the user already put in XLA_FLAGS (or a thread count in
PJRT_NPROC / NPROC) is never overridden.
"""

from __future__ import annotations

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
        ("jax_cpu_enable_async_dispatch", True,
         "the step returns before it finishes, so the loop can fetch step k's metrics and put "
         "batch k+2 on the device while step k+1 runs (`mathvlm.overlap`); JAX's default "
         "today, pinned because the loop's overlap depends on it"),
    ),
}


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
  """The platform JAX_PLATFORMS names first (e.g. 'cpu' from 'cpu,cuda'), else None: what
  `configure` can know without starting a backend."""
  first = os.environ.get("JAX_PLATFORMS", "").split(",")[0].strip().lower()
  return first or None


def configure(platform: str | None = None) -> dict[str, object]:
  """Applies the settings for `platform` ('cpu', 'gpu', 'tpu'; default `platform_hint()`, and
  nothing when that is unknown). Returns what it set, by name. Idempotent."""
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
  if JAX_CONFIG.get(platform):
    import jax
    for name, value, _ in JAX_CONFIG[platform]:
      jax.config.update(name, value)
      applied[name] = value
  if applied:
    log.info("runtime settings for %s: %s", platform, applied)
  return applied
