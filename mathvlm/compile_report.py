"""`--compile_only`: the step lowered and compiled from abstract shapes (no weights allocated),
and XLA's per-device memory printed, to find an overflow before renting the hardware."""

from __future__ import annotations

import json
import time


def report_compiled_memory(run) -> dict:
  """Lowers and compiles the step from abstract shapes; prints XLA's per-device memory."""
  import jax
  import numpy as np
  config, t = run.config, time.time()
  from mathvlm import sharding
  batch = {k: jax.ShapeDtypeStruct(v, np.asarray(run.example[k]).dtype,
                                   sharding=sharding.batch_sharding(run.mesh))
           for k, v in run.batch_shapes.items()}
  mem = run.step_fn.lower(run.abstract_state, batch).compile().memory_analysis()
  gib = lambda b: round(b / 2 ** 30, 3)
  report = dict(
      preset=config.model.preset, objective=config.objective, devices=jax.device_count(),
      mesh=dict(run.mesh.shape), parameters=run.n_all, trainable=run.n_train,
      global_batch=config.data.global_batch, compile_seconds=round(time.time() - t, 1))
  if mem is not None:
    total = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
             - mem.alias_size_in_bytes)
    report["per_device_gib"] = dict(
        arguments=gib(mem.argument_size_in_bytes), outputs=gib(mem.output_size_in_bytes),
        temporaries=gib(mem.temp_size_in_bytes), aliased=gib(mem.alias_size_in_bytes),
        total=gib(total))
  if run.host is not None and hasattr(run.host, "compile_only"):
    # e.g. RL rollouts' decoding, with the model of the train state it samples with
    report["host_step"] = run.host.compile_only(run.abstract_state)
  print(json.dumps(report, indent=2))
  return report
