"""Where greedy decoding's time goes, ours against transformers', and what bounds a decode step
on this machine; prints one JSON object.

  python -m benchmarks.decode_bound --preset small [--batches 1,8] [--new_tokens 128]

`benchmarks.generate` gives the end-to-end ratio (issue 16's goal: 2x at batch 8). This splits
both sides' call into its two phases, in one process, alternating turns, medians:
- prefill_s: the call with one new token (vision tower, projector, the prompt's forward pass);
- step_ms: (call with new_tokens - call with one) / (new_tokens - 1), a decode step.
And the step's floor, measured rather than assumed:
- weights_chain: the preset's decode matmuls (every layer's q, k, v, o, gate, up and down
  projections, then the vocabulary projection) on `batch` rows, chained so nothing is hoisted,
  in a jitted `fori_loop` (ours: XLA's dot) and a torch loop; ms a pass and the weight bytes
  a pass reads per second. The weights alone of a float32 `small` decode step are ~160 MB.
- stream_GBps: what one jitted float32 sum reads per second over 256 MB (the machine's
  streaming rate, both cores).
Why a separate script: the 2x at batch 8 turns on an 8-row matrix product streaming its weights
at the machine's rate (docs/perf/PERFORMANCE.md); this shows that rate for both libraries next to
the batch-1 one, so the bound can be re-read on other hardware with one command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from benchmarks import presets as P
from benchmarks.generate import prompts, sides


def phases(model, ref, preset, batch: int, new: int, repeats: int) -> dict:
  """Prefill seconds and decode-step milliseconds of both sides at one batch size."""
  ids, pixels = prompts(preset, batch)
  one, full = sides(model, ref, ids, pixels, 1), sides(model, ref, ids, pixels, new)
  fns = {"ours_1": one[0], "ref_1": one[1], "ours_n": full[0], "ref_n": full[1]}
  sec = P.alternate(fns, repeats)
  step = {side: (sec[f"{side}_n"] - sec[f"{side}_1"]) / (new - 1) for side in ("ours", "ref")}
  out = {}
  for side in ("ours", "ref"):
    out[f"{side}_prefill_s"] = round(sec[f"{side}_1"], 3)
    out[f"{side}_step_ms"] = round(step[side] * 1e3, 2)
  # a difference of two medians: on a tiny model it can be ~0 or negative, then no ratio
  out["step_ratio"] = round(step["ref"] / step["ours"], 3) if min(step.values()) > 0 else None
  out["prefill_ratio"] = round(sec["ref_1"] / sec["ours_1"], 3)
  return out


def decode_weights(preset, seed: int = 0) -> tuple[list[dict], np.ndarray]:
  """Random float32 weights of the preset's decoder layers ([in, out]) and vocabulary projection."""
  t = preset.text
  d, f, v = t["hidden_size"], t["intermediate_size"], t["vocab_size"]
  kv = d // t["num_attention_heads"] * t["num_key_value_heads"]
  rs = np.random.RandomState(seed)
  w = lambda a, b: (rs.randn(a, b) * 0.02).astype(np.float32)
  layers = [dict(q=w(d, d), k=w(d, kv), v=w(d, kv), o=w(d, d), g=w(d, f), u=w(d, f), dn=w(f, d))
            for _ in range(t["num_hidden_layers"])]
  return layers, w(d, v)


def _pass(x, layers, head, mm, silu, tanh, rowmax):
  """One decode step's matmuls; every product feeds the next row state so none is dead code."""
  for layer in layers:
    q, k, v = mm(x, layer["q"]), mm(x, layer["k"]), mm(x, layer["v"])
    h = mm(silu(mm(x, layer["g"])) * mm(x, layer["u"]), layer["dn"])
    x = x + 1e-3 * (mm(tanh(q), layer["o"]) + h) + 1e-6 * (k.sum(1, keepdims=True)
                                                         + v.sum(1, keepdims=True))
  return x + 1e-6 * rowmax(mm(x, head))


def weights_chain(layers, head, rows: int, passes: int, repeats: int) -> dict:
  """ms a pass and weight GB/s of the decode matmuls on `rows` rows, XLA and torch."""
  import jax
  import jax.numpy as jnp
  import torch

  nbytes = 4 * (sum(a.size for layer in layers for a in layer.values()) + head.size)
  x0 = np.random.RandomState(1).randn(rows, head.shape[0]).astype(np.float32)
  j_layers, j_head = jax.tree.map(jnp.asarray, (layers, head))
  body = lambda _, x: _pass(x, j_layers, j_head, jnp.matmul, jax.nn.silu, jnp.tanh,
                            lambda y: jnp.max(y, axis=1, keepdims=True))
  loop = jax.jit(lambda x: jax.lax.fori_loop(0, passes, body, x))
  t_layers = [{k: torch.from_numpy(a) for k, a in layer.items()} for layer in layers]
  t_head = torch.from_numpy(head)

  def reference():
    x = torch.from_numpy(x0)
    with torch.no_grad():
      for _ in range(passes):
        x = _pass(x, t_layers, t_head, torch.matmul, torch.nn.functional.silu, torch.tanh,
                  lambda y: y.amax(dim=1, keepdim=True))
    return x

  sec = P.alternate({"ours": lambda: jax.block_until_ready(loop(x0)), "ref": reference}, repeats)
  agree = float(np.max(np.abs(np.asarray(loop(x0)) - reference().numpy())))
  out = {"weights_MB": round(nbytes / 1e6, 1), "max_abs_diff": agree}
  for side, s in sec.items():
    out[f"{side}_ms_per_pass"] = round(s / passes * 1e3, 2)
    out[f"{side}_weights_GBps"] = round(nbytes * passes / s / 1e9, 2)
  return out


def stream_rate(repeats: int, mb: int = 256) -> float:
  """GB/s of a jitted float32 sum over `mb` MB (read once per call)."""
  import jax
  import jax.numpy as jnp
  x = jnp.ones(mb * 1024 * 1024 // 4, jnp.float32)
  total = jax.jit(jnp.sum)
  sec = P.alternate({"sum": lambda: jax.block_until_ready(total(x))}, repeats)["sum"]
  return round(x.size * 4 / sec / 1e9, 2)


def main(argv=None) -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--preset", choices=sorted(P.PRESETS), default="small")
  p.add_argument("--new_tokens", type=int, default=128)
  p.add_argument("--batches", default="1,8")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--passes", type=int, default=32, help="decode-matmul passes per timed call")
  args = p.parse_args(argv)
  if args.new_tokens < 2:
    p.error("--new_tokens must be at least 2 (a decode step is the difference of two calls)")
  from mathvlm import runtime
  runtime.configure("cpu")
  import torch
  torch.set_num_threads(os.cpu_count() or 1)

  preset = P.PRESETS[args.preset]
  ref = P.hf_llava(preset).eval()
  model, _ = P.ours_from_hf(ref, "float32")
  layers, head = decode_weights(preset)
  out = dict(preset=args.preset, new_tokens=args.new_tokens, repeats=args.repeats,
             stream_GBps=stream_rate(max(args.repeats, 5)))
  for b in (int(x) for x in args.batches.split(",")):
    t = time.perf_counter()
    out[f"b{b}"] = dict(phases(model, ref, preset, b, args.new_tokens, args.repeats),
                        weights_chain=weights_chain(layers, head, b, args.passes,
                                                    max(args.repeats, 5)))
    out[f"b{b}"]["wall_s"] = round(time.perf_counter() - t, 1)
  out.update(P.load())
  json.dump(out, sys.stdout)
  print()


if __name__ == "__main__":
  main()
