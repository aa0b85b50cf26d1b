"""`layers.matmul`'s flat weight gradient against plain autodiff, float32, in one process; JSON.

  python -m benchmarks.matmul_grad [--preset small] [--repeats 7] [--step]

mlp: the preset's SwiGLU MLP ([batch, seq, hidden] -> intermediate -> hidden), forward and
  backward (`jax.vjp`), through `layers.matmul` and through autodiff of the same float32 dot
  (`layers._dot_f32`, what float32 ran before), alternating turns, medians; and whether the four
  gradients are bitwise equal.
step (--step): the trainer's whole jitted step (`benchmarks.train_step.ours`) traced once with each,
  alternating turns, medians. No torch in this process: the A/B isolates the change; the ratio to
  PyTorch is `benchmarks.train_step`'s.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks import presets as P


def _autodiff_matmul(x, w):
  """What float32 ran before: autodiff of the same dot (everything here is float32)."""
  from mathvlm.models import layers
  return layers._dot_f32(x, w)


def mlp(preset, repeats: int) -> dict:
  import jax
  import jax.numpy as jnp

  from mathvlm.models import layers
  cfg = P.ours_config(preset).text
  d, f = cfg.hidden_size, cfg.intermediate_size
  rng = np.random.default_rng(0)
  x, dy = (jnp.asarray(rng.normal(size=(preset.batch, preset.seq, d)), jnp.float32)
           for _ in range(2))
  ws = [jnp.asarray(rng.normal(size=s) * 0.02, jnp.float32) for s in ((d, f), (d, f), (f, d))]

  def grads(mm):
    def block(x, wg, wu, wd):
      return mm(jax.nn.silu(mm(x, wg)) * mm(x, wu), wd)
    return jax.jit(lambda *a: jax.vjp(block, *a)[1](dy))

  fns = {"flat": grads(layers.matmul), "autodiff": grads(_autodiff_matmul)}
  outs = {k: fn(x, *ws) for k, fn in fns.items()}
  sec = P.alternate({k: (lambda fn=fn: jax.block_until_ready(fn(x, *ws))) for k, fn in fns.items()},
                    repeats)
  return {"shape": [preset.batch, preset.seq, d, f],
          "flat_ms": round(sec["flat"] * 1e3, 1), "autodiff_ms": round(sec["autodiff"] * 1e3, 1),
          "speedup": round(sec["autodiff"] / sec["flat"], 3),
          "bitwise_equal": all(bool(jnp.array_equal(a, b))
                               for a, b in zip(outs["flat"], outs["autodiff"]))}


def step(preset, repeats: int) -> dict:
  from benchmarks import train_step as TS
  from mathvlm.models import layers
  ref, data = P.hf_llava(preset), P.batch(preset)
  flat = layers.matmul
  runs = {}
  try:
    for name, mm in (("flat", flat), ("autodiff", _autodiff_matmul)):
      layers.matmul = mm      # Dense reads it when the step is traced, in the first call
      model, _ = P.ours_from_hf(ref, "float32")
      run, _, _ = TS.ours(model, data)
      run()
      runs[name] = run
  finally:
    layers.matmul = flat
  sec = P.alternate(runs, repeats)
  return {"flat_s": round(sec["flat"], 3), "autodiff_s": round(sec["autodiff"], 3),
          "speedup": round(sec["autodiff"] / sec["flat"], 3)}


def main(argv=None) -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--preset", choices=sorted(P.PRESETS), default="small")
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--step", action="store_true", help="also the whole train step, both ways")
  a = p.parse_args(argv)
  from mathvlm import runtime
  runtime.configure("cpu")
  preset = P.PRESETS[a.preset]
  out = {"preset": a.preset, "repeats": a.repeats, "mlp": mlp(preset, a.repeats)}
  if a.step:
    out["step"] = step(preset, max(1, a.repeats // 2))
  print(json.dumps({**out, **P.load()}))


if __name__ == "__main__":
  main()
