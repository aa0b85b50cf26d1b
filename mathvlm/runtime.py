"""Process-wide runtime settings per platform, applied once before JAX starts its backend.

The trainer calls `configure(platform)` first thing (before anything touches `jax.devices()`):
XLA reads `XLA_FLAGS` when the backend starts, so a flag set later does nothing. Every setting
says why it is there; anything CPU-specific is applied only for platform 'cpu', so accelerators
run exactly as before. A flag the user already put in XLA_FLAGS is never overridden.
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
  if JAX_CONFIG.get(platform):
    import jax
    for name, value, _ in JAX_CONFIG[platform]:
      jax.config.update(name, value)
      applied[name] = value
  if applied:
    log.info("runtime settings for %s: %s", platform, applied)
  return applied
