"""One full training step (forward, backward, clip, AdamW) of LLaVA: ours against
transformers/PyTorch, same weights and batch, in one process, alternating runs; prints JSON.

  python -m benchmarks.train_step --preset small [--dtype float32|bfloat16] [--repeats 5]
                                    [--malloc runtime|glibc] [--no_runtime]

Ours is the trainer's jitted step (`mathvlm.train.make_train_step`, state donated) with the lm
objective; the reference is `LlavaForConditionalGeneration(labels=...)`, `clip_grad_norm_` and
`torch.optim.AdamW`, under `torch.autocast` for bfloat16. All parameters train, no remat. MFU is
the trainer's analytic step FLOPs (`mathvlm.flops.lm_step`) over time, as a fraction of this
machine's measured matmul peak for the dtype (../shared/docs/ENV.md); `mfu_of_measured_matmul` is
the same over a 2048^3 jax matmul timed in the same turns (the peak under the load of the run).
`per_step_os`: each side's median page faults and system CPU seconds per step. By default the
process runs with the trainer's CPU runtime (`mathvlm.runtime.configure`): our step inline on the
calling thread, and glibc keeping freed memory, which is process-wide, so the reference's step
gets it too (torch's CPU guides get the same from jemalloc or tcmalloc). `--malloc glibc` leaves
glibc's defaults for both, under which both fault in their temporaries anew at every step;
`--no_runtime` skips the runtime altogether (docs/perf/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from benchmarks import presets as P


def step_config(lr: float = 1e-5):
  """The few config fields the trainer's step and optimizer read (no recipe file needed)."""
  import ml_collections
  return ml_collections.ConfigDict(dict(
      objective="lm", lora=dict(dropout=0.0),
      optim=dict(lr=lr, warmup_ratio=0.0, schedule="constant", end_lr_ratio=0.0,
                 weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8, grad_clip=1.0, grad_accum=1)))


def jitted_step(model, data: dict[str, np.ndarray]):
  """(the trainer's jitted step with its state donated, the state, the batch) on our model."""
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from mathvlm import objectives
  from mathvlm.train import make_optimizer, make_train_step

  config = step_config()
  graphdef, params, frozen = nnx.split(model, nnx.Param, ...)
  tx, schedule = make_optimizer(config, 1000, params)
  step = jax.jit(make_train_step(config, objectives.get("lm"), graphdef, tx, schedule),
                 donate_argnums=(0,))
  # committed to the device, as the trainer's state is: an uncommitted step counter would make
  # the second call compile the step again (its output is committed)
  state = jax.device_put({"params": params, "frozen": frozen, "opt_state": tx.init(params),
                          "step": jnp.int32(0)}, jax.devices()[0])
  batch = jax.device_put({k: jnp.asarray(v) for k, v in data.items()})
  return step, state, batch


def ours(model, data: dict[str, np.ndarray], jitted: tuple | None = None):
  """(run one step, step FLOPs): the trainer's jitted step on our model (or `jitted`, the
  (step, state, batch) of `jitted_step`, its step perhaps already compiled)."""
  import jax
  from flax import nnx

  from mathvlm import objectives
  from mathvlm.models.layers import path_str

  step, state, batch = jitted or jitted_step(model, data)
  holder = [state]

  def run():
    holder[0], metrics = step(holder[0], batch)
    jax.block_until_ready(metrics["loss"])

  params = nnx.split(model, nnx.Param, ...)[1]
  trainable = {path_str(p): v.size for p, v in nnx.to_flat_state(params)}
  shapes = {k: v.shape for k, v in data.items()}
  return run, objectives.get("lm").flops(model.cfg, shapes, trainable, {}), lambda: holder[0]


def reference(ref, data: dict[str, np.ndarray], dtype: str):
  """One transformers training step: loss on the same targets, clip to 1.0, AdamW."""
  import torch
  ref.train()
  opt = torch.optim.AdamW(ref.parameters(), lr=1e-5, weight_decay=0.0, eps=1e-8)
  ids = torch.from_numpy(data["input_ids"].astype(np.int64))
  labels = torch.where(torch.from_numpy(data["loss_mask"]).bool(), ids, torch.tensor(-100))
  pixels = torch.from_numpy(np.ascontiguousarray(data["pixel_values"].transpose(0, 3, 1, 2)))
  mask = torch.from_numpy(data["attention_mask"].astype(np.int64))

  def run():
    with torch.autocast("cpu", torch.bfloat16, enabled=dtype == "bfloat16"):
      out = ref(input_ids=ids, pixel_values=pixels, attention_mask=mask, labels=labels)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)

  return run


def first_losses(model, ref, data, dtype: str) -> dict[str, float]:
  """Both sides' loss on the batch before any step: the same model, so the same number."""
  import torch

  from mathvlm.objectives import lm
  ours_loss = float(lm.loss(model, {k: np.asarray(v) for k, v in data.items()})[0])
  ids = torch.from_numpy(data["input_ids"].astype(np.int64))
  labels = torch.where(torch.from_numpy(data["loss_mask"]).bool(), ids, torch.tensor(-100))
  pixels = torch.from_numpy(np.ascontiguousarray(data["pixel_values"].transpose(0, 3, 1, 2)))
  with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=dtype == "bfloat16"):
    ref_loss = float(ref(input_ids=ids, pixel_values=pixels, labels=labels).loss)
  return {"ours": round(ours_loss, 5), "ref": round(ref_loss, 5)}


def both_models(name: str, dtype: str, scan_unroll: int):
  """(preset, the transformers model, ours from its weights, the batch), torch on every core."""
  import torch
  torch.set_num_threads(os.cpu_count() or 1)
  preset = P.PRESETS[name]
  ref = P.hf_llava(preset)
  model, _ = P.ours_from_hf(ref, dtype, scan_unroll=scan_unroll)
  return preset, ref, model, P.batch(preset)


def torch_bf16_usable(threshold: float = 0.25) -> tuple[bool, dict]:
  """(whether torch's bf16 matmul is at least `threshold` of its float32 speed here, the two
  GFLOP/s): CPUs without AVX-512 BF16 (AMD Zen 3, for one) run torch's bf16 matmul on a scalar
  fallback hundreds of times slower, where the reference's bf16 step would take hours."""
  import time

  import torch
  rates = {}
  for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
    a, b = torch.randn(256, 256, dtype=dt), torch.randn(256, 256, dtype=dt)
    a @ b
    t = time.perf_counter()
    a @ b
    rates[name] = round(2 * 256 ** 3 / (time.perf_counter() - t) / 1e9, 2)
  return rates["bfloat16"] >= threshold * rates["float32"], rates


def main(argv=None) -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--preset", choices=sorted(P.PRESETS), default="small")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--force_ref", action="store_true",
                 help="time the reference's bf16 step even where torch bf16 has no fast path")
  p.add_argument("--scan_unroll", type=int, default=1,
                 help="our layers per scan iteration (model.scan_unroll; the recipes' default 1); "
                      "the depth unrolls all; 0: the platform's choice, all on one CPU device")
  p.add_argument("--no_runtime", action="store_true",
                 help="skip mathvlm.runtime.configure (dispatch, malloc, XLA flags, threads): the "
                      "'before' figure")
  p.add_argument("--malloc", choices=("runtime", "glibc"), default="runtime",
                 help="runtime: the runtime's malloc settings (runtime.MALLOC: freed memory kept, "
                      "for both sides of this process); glibc: glibc's defaults")
  args = p.parse_args(argv)
  from mathvlm import runtime
  applied = {} if args.no_runtime else runtime.configure("cpu", malloc=args.malloc == "runtime")
  malloc_names = {name for name, *_ in runtime.MALLOC["cpu"]}
  allocator = {k: v for k, v in applied.items() if k in malloc_names}
  import jax
  preset, ref, model, data = both_models(args.preset, args.dtype, args.scan_unroll)
  with_ref, torch_rates = True, None
  if args.dtype == "bfloat16" and not args.force_ref:
    with_ref, torch_rates = torch_bf16_usable()
  losses = first_losses(model, ref, data, args.dtype) if with_ref else None
  run_ours, step_flops, _ = ours(model, data)
  del model
  run_peak, peak_flops = P.peak_matmul(args.dtype)
  fns = {"ours": run_ours, "peak": run_peak}
  if with_ref:
    fns["ref"] = reference(ref, data, args.dtype)
  usage = {}
  sec = P.alternate(fns, args.repeats, usage=usage)
  sec["peak_gflops_now"] = peak_flops / sec.pop("peak") / 1e9
  from mathvlm.models.layers import platform_unroll
  unrolled = args.scan_unroll or platform_unroll()
  out = dict(preset=args.preset, dtype=args.dtype, scan_unroll=args.scan_unroll,
             layers_per_iteration="all" if unrolled is True else unrolled,
             batch=preset.batch, seq=preset.seq,
             device=jax.devices()[0].device_kind, runtime_configured=not args.no_runtime,
             step_gflop=round(step_flops / 1e9, 1), first_loss=losses, repeats=args.repeats,
             **figures(sec, preset, step_flops, args.dtype), malloc=args.malloc,
             allocator=allocator, per_step_os={k: usage[k] for k in ("ours", "ref") if k in usage},
             **P.load())
  if not with_ref:
    out["ref_skipped"] = ("torch bf16 matmul runs at {bfloat16} GFLOP/s here against {float32} "
                          "for float32 (no AVX-512 BF16): pass --force_ref to time it anyway"
                          ).format(**torch_rates)
  json.dump(out, sys.stdout)
  print()


def figures(sec: dict, preset, step_flops: float, dtype: str) -> dict:
  """Tokens/s, ratio and MFU (of ENV.md's peak for the dtype) from median step seconds."""
  tokens = preset.batch * preset.seq
  peak = P.CPU_PEAK_GFLOPS[f"jax_{dtype}"] * 1e9
  now = sec["peak_gflops_now"] * 1e9
  out = dict(ours_step_s=round(sec["ours"], 3), ours_tokens_per_s=round(tokens / sec["ours"], 1),
             mfu=round(step_flops / sec["ours"] / peak, 3), peak_gflops=peak / 1e9,
             measured_matmul_gflops=round(now / 1e9, 1),
             mfu_of_measured_matmul=round(step_flops / sec["ours"] / now, 3))
  if "ref" in sec:
    out.update(ref_step_s=round(sec["ref"], 3), ref_tokens_per_s=round(tokens / sec["ref"], 1),
               ratio=round(sec["ref"] / sec["ours"], 3),
               ref_mfu_of_torch_peak=round(
                   step_flops / sec["ref"] / (P.CPU_PEAK_GFLOPS[f"torch_{dtype}"] * 1e9), 3))
  return out


if __name__ == "__main__":
  main()
