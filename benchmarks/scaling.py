"""FSDP memory per device and compile time against depth, on fake CPU devices; prints JSON.

  python -m benchmarks.scaling [--preset small] [--devices 1,2,4,8] [--depths 2,8,32]

memory: bytes per device of the parameters and AdamW state (mu, nu) as the trainer shards them
(`sharding.state_shardings` with DEFAULT_RULES, mesh fsdp=N), and the ratio to one device's
bytes / N (1.0 is perfect sharding; the goal is <= 1.15). With --compile, also the compiled train
step's per-device arguments and temporaries (XLA's memory analysis; batch 8 so it divides).
compile: seconds to compile the train step on one device as both towers grow (scanned layers:
compile time should not grow with depth).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _parse(argv):
  p = argparse.ArgumentParser()
  p.add_argument("--preset", default="small")
  p.add_argument("--devices", default="1,2,4,8")
  p.add_argument("--depths", default="2,8,32")
  p.add_argument("--compile", action="store_true", help="also compile the sharded step per mesh")
  return p.parse_args(argv)


def state_bytes(abs_params, param_sh, opt_factor: int = 2) -> int:
  """Per-device bytes of params + AdamW moments (each moment shaped and sharded as its param)."""
  import jax
  import numpy as np
  total = 0
  for x, s in zip(jax.tree.leaves(abs_params), jax.tree.leaves(param_sh)):
    total += int(np.prod(s.shard_shape(x.shape))) * x.dtype.itemsize
  return total * (1 + opt_factor)


def sharded_step(cfg, mesh, batch_shapes):
  """(jitted step with the trainer's shardings, abstract state, abstract batch)."""
  import jax
  import jax.numpy as jnp
  import optax
  from flax import nnx

  from benchmarks.train_step import step_config
  from mathvlm import objectives, sharding
  from mathvlm.models.vlm import Llava
  from mathvlm.train import make_optimizer, make_train_step
  config = step_config()
  abstract = nnx.eval_shape(lambda: Llava(cfg, rngs=nnx.Rngs(0)))
  graphdef, abs_params, abs_frozen = nnx.split(abstract, nnx.Param, ...)
  tx, schedule = make_optimizer(config, 1000, abs_params)
  param_sh = sharding.state_shardings(abs_params, mesh)
  rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  abs_opt = jax.eval_shape(tx.init, abs_params)
  opt_sh = optax.tree_map_params(tx, lambda _, s: s, abs_opt, param_sh,
                                 transform_non_params=lambda _: rep)
  state_sh = dict(params=param_sh, frozen=sharding.state_shardings(abs_frozen, mesh),
                  opt_state=opt_sh, step=rep)
  abs_state = dict(params=abs_params, frozen=abs_frozen, opt_state=abs_opt,
                   step=jax.ShapeDtypeStruct((), jnp.int32))
  abs_state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                           abs_state, state_sh)
  batch_sh = sharding.batch_sharding(mesh)
  abs_batch = {k: jax.ShapeDtypeStruct(v, dt, sharding=batch_sh)
               for k, (v, dt) in batch_shapes.items()}
  step = jax.jit(make_train_step(config, objectives.get("lm"), graphdef, tx, schedule),
                 in_shardings=(state_sh, {k: batch_sh for k in abs_batch}),
                 out_shardings=(state_sh, None), donate_argnums=(0,))
  return step, abs_state, abs_batch, abs_params, param_sh


def batch_shapes(preset, rows: int):
  import numpy as np
  size = preset.vision["image_size"]
  ints = ((rows, preset.seq), np.int32)
  return dict(input_ids=ints, attention_mask=ints, loss_mask=ints,
              pixel_values=((rows, size, size, 3), np.float32))


def memory(preset, counts, compile_step: bool) -> dict:
  import jax

  from benchmarks import presets as P
  from mathvlm import sharding
  cfg = P.ours_config(preset)
  rows = {}
  base = None
  for n in counts:
    mesh = sharding.make_mesh(1, n, 1, devices=jax.devices()[:n])
    step, abs_state, abs_batch, abs_params, param_sh = sharded_step(
        cfg, mesh, batch_shapes(preset, 8))
    per_device = state_bytes(abs_params, param_sh)
    base = base or per_device
    row = {"params_and_adam_mib": round(per_device / 2 ** 20, 2),
           "ratio_to_one_over_n": round(per_device / (base / n), 4)}
    if compile_step:
      with sharding.activation_sharding(mesh):
        mem = step.lower(abs_state, abs_batch).compile().memory_analysis()
      row.update(step_arguments_mib=round(mem.argument_size_in_bytes / 2 ** 20, 1),
                 step_temporaries_mib=round(mem.temp_size_in_bytes / 2 ** 20, 1))
    rows[f"devices_{n}"] = row
  return rows


def compile_times(preset, depths) -> dict:
  import dataclasses

  import jax

  from benchmarks import presets as P
  from mathvlm import sharding
  out = {}
  for depth in depths:
    cfg = P.ours_config(preset, num_hidden_layers=depth)
    cfg = dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, num_layers=depth))
    mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    step, abs_state, abs_batch, _, _ = sharded_step(cfg, mesh, batch_shapes(preset, 4))
    lowered = step.lower(abs_state, abs_batch)
    t = time.perf_counter()
    lowered.compile()
    out[f"layers_{depth}"] = round(time.perf_counter() - t, 1)
  return out


def main(argv=None) -> None:
  args = _parse(argv)
  counts = [int(x) for x in args.devices.split(",")]
  import jax
  jax.config.update("jax_platforms", "cpu")
  jax.config.update("jax_num_cpu_devices", max(counts))

  from benchmarks import presets as P
  preset = P.PRESETS[args.preset]
  out = dict(preset=args.preset, mesh="data=1, fsdp=N, tensor=1",
             memory=memory(preset, counts, args.compile),
             compile_seconds=compile_times(preset, [int(x) for x in args.depths.split(",")]),
             **P.load())
  json.dump(out, sys.stdout)
  print()


if __name__ == "__main__":
  main()
