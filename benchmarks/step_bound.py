"""The training step's own matmuls, each timed alone: an estimate of the floor under our step,
and of the ratio to PyTorch it leaves room for; prints JSON.

  python -m benchmarks.step_bound --preset small [--dtype float32] [--scan_unroll 1] [--repeats 5]

Every dot in our compiled step (XLA's optimised HLO, fusions included, each counted as many times
as its loops run) is jitted alone as a `lax.dot_general` of the same shapes, dimensions and
dtypes, and timed. Their sum, `matmul_floor_s`, is what the step would take if nothing but its
matmuls ran and each ran as fast as XLA runs it alone. In the same turns: our whole step and
transformers' (`benchmarks.train_step`). `ratio_ceiling` = reference step / matmul floor: the
ratio to PyTorch our step could reach at these rates if nothing else took time (the issue's goal
for float32 is 1.5x). `same_dots_in_torch_s`: the same dots in torch's kernels (`torch.einsum`),
which tells the kernels apart from everything else in the two steps. Why the step's own dots: the
2048^3 matmul that `train_step` reports as the peak is a friendlier shape than the step's (rows of
1,028 or 2,048, widths of 384-1,536, attention's batched 64-wide products).

An estimate, not a proof: a lone dot gets default operand layouts, while the compiled step picks
its own (under `--xla_cpu_experimental_ynn_fusion_type=`, Eigen's dots, the lone dots sum to more
than the whole step). Loops whose length depends on the data (the loss's chunks over target rows)
have no trip count in the HLO; they run once on this benchmark's batch (256 targets a row, chunks
of 256 positions) and are counted once (`loops_of_data_dependent_length` says how many). Each
timed call includes one dispatch from Python (tens of microseconds against milliseconds a dot).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import sys
import time

import numpy as np

from benchmarks import presets as P
from benchmarks import train_step as T

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(\w+)\[([\d,]*)\]")
_HEAD = re.compile(r"^(?:ENTRY\s+)?%([\w.\-]+)\s.*\{\s*$")
_OPERAND = re.compile(r"(?:\w+\[[\d,]*\](?:\{[^}]*\})?\s+)?%([\w.\-]+)")
_CALLEE = re.compile(r"\b(calls|body|to_apply|true_computation|false_computation)=%([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRIPS = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_DIMS = ("lhs_batch_dims", "lhs_contracting_dims", "rhs_batch_dims", "rhs_contracting_dims")


def _computations(hlo: str) -> tuple[dict[str, list[str]], str]:
  """({name: its instruction lines}, the entry computation's name) of an HLO module's text."""
  comps, entry, name = {}, None, None
  for line in hlo.splitlines():
    head = _HEAD.match(line)
    if head:
      name = head.group(1)
      comps[name] = []
      entry = name if line.startswith("ENTRY") else entry
    elif line.strip() == "}":
      name = None
    elif name is not None:
      comps[name].append(line)
  if entry is None:
    raise ValueError("step_bound: no ENTRY computation in the HLO text")
  return comps, entry


def _dot_key(line: str, shapes: dict) -> tuple:
  """(dtype, out dtype, lhs shape, rhs shape, dimension numbers) of one dot instruction."""
  out = _INSTR.match(line)
  args = line[line.index(" dot(") + 5:]
  lhs, rhs = _OPERAND.findall(args[:args.index(")")])[:2]
  dims = tuple(tuple(int(d) for d in re.search(rf"{k}=\{{([\d,]*)\}}", line).group(1).split(",")
                     if d) if f"{k}=" in line else () for k in _DIMS)
  return (shapes[lhs][0], out.group(2), shapes[lhs][1], shapes[rhs][1], dims)


def dots_of(hlo: str) -> tuple[collections.Counter, int]:
  """(Counter of dot key -> executions per call of the module, loops of unknown length): every
  dot in every computation reached from the entry, times the trip counts of the loops around it
  (a loop without a known trip count counts once)."""
  comps, entry = _computations(hlo)
  found, unknown = collections.Counter(), set()

  def visit(name: str, times: int):
    shapes = {}
    for line in comps[name]:
      m = _INSTR.match(line)
      if m:
        shapes[m.group(1)] = (m.group(2), tuple(int(d) for d in m.group(3).split(",") if d))
    for line in comps[name]:
      if " dot(" in line:
        found[_dot_key(line, shapes)] += times
      trips = _TRIPS.search(line)
      if " while(" in line and not trips:
        unknown.add(line.split("=")[0].strip())
      for kind, callee in _CALLEE.findall(line):
        visit(callee, times * (int(trips.group(1)) if kind == "body" and trips else 1))
      branches = _BRANCHES.search(line)
      for callee in branches.group(1).split(",") if branches else ():
        visit(callee.strip().lstrip("%"), times)

  visit(entry, 1)
  return found, len(unknown)


def flops(key: tuple) -> float:
  """2 x batch x lhs free x rhs free x contracted elements of a dot key."""
  _, _, lhs, rhs, (lb, lc, rb, rc) = key
  size = lambda shape, dims: int(np.prod([shape[d] for d in dims]))
  free = lambda shape, used: size(shape, [d for d in range(len(shape)) if d not in used])
  return 2.0 * size(lhs, lb) * free(lhs, lb + lc) * free(rhs, rb + rc) * size(lhs, lc)


HLO_DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16", "f64": "float64",
              "s32": "int32", "s8": "int8"}


def describe(key: tuple) -> str:
  """'f32[2048,512] x f32[512,1408], batch ()/(), contract (1,)/(0,)'."""
  dtype, _, lhs, rhs, (lb, lc, rb, rc) = key
  shape = lambda s: dtype + "[" + ",".join(map(str, s)) + "]"
  return f"{shape(lhs)} x {shape(rhs)}, batch {lb}/{rb}, contract {lc}/{rc}"


def dot_call(key: tuple):
  """(jitted `lax.dot_general` of the key's dimensions, lhs, rhs): random inputs of its shapes."""
  import jax
  import jax.numpy as jnp
  dtype, out, lhs, rhs, (lb, lc, rb, rc) = key
  if not {dtype, out} <= HLO_DTYPES.keys():
    raise ValueError(f"step_bound: no numpy dtype for the HLO types of {describe(key)} -> {out}; "
                     f"add them to HLO_DTYPES (known: {sorted(HLO_DTYPES)})")
  rs = np.random.RandomState(0)
  a = jnp.asarray(rs.randn(*lhs), HLO_DTYPES[dtype])
  b = jnp.asarray(rs.randn(*rhs), HLO_DTYPES[dtype])
  f = jax.jit(lambda a, b: jax.lax.dot_general(a, b, ((lc, rc), (lb, rb)),
                                               preferred_element_type=HLO_DTYPES[out]))
  return f, a, b


def torch_dot_call(key: tuple):
  """(run, the same product in torch): `torch.einsum` of the key's dimensions (torch's own
  matmul kernels; a bf16 product stays bf16 there), random inputs of its shapes."""
  import torch
  dtype, _, lhs, rhs, (lb, lc, rb, rc) = key
  letters = iter("abcdefghijklmnopqrstuvwxyz")
  left = [next(letters) for _ in lhs]
  right = [next(letters) for _ in rhs]
  for l, r in zip(lb + lc, rb + rc):
    right[r] = left[l]
  out = ([left[d] for d in lb] + [x for d, x in enumerate(left) if d not in lb + lc]
         + [x for d, x in enumerate(right) if d not in rb + rc])
  spec = f"{''.join(left)},{''.join(right)}->{''.join(out)}"
  rs = np.random.RandomState(0)
  kind = getattr(torch, HLO_DTYPES[dtype])
  a = torch.from_numpy(rs.randn(*lhs).astype(np.float32)).to(kind)
  b = torch.from_numpy(rs.randn(*rhs).astype(np.float32)).to(kind)
  return (lambda: torch.einsum(spec, a, b)), spec


def time_dots(found: collections.Counter, repeats: int) -> dict:
  """{key: (median seconds in XLA, in torch)} of each distinct dot alone: every dot in
  XLA, then every dot in torch. Not in turns: an XLA call right after a torch call can find
  torch's threads still holding the cores (the MLP's [2048,512] x [512,1408] read 24-25 ms
  right after one against 19-21 ms alone, in one process; attention's scores no slower)."""
  out = {}
  for key in found:
    f, a, b = dot_call(key)
    out[key] = [P.alternate({"xla": lambda: f(a, b).block_until_ready()}, repeats)["xla"]]
  for key in found:
    out[key].append(P.alternate({"torch": torch_dot_call(key)[0]}, repeats)["torch"])
  return {k: tuple(v) for k, v in out.items()}


def main(argv=None) -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--preset", choices=sorted(P.PRESETS), default="small")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  p.add_argument("--scan_unroll", type=int, default=1)
  p.add_argument("--repeats", type=int, default=5)
  args = p.parse_args(argv)
  from mathvlm import runtime
  runtime.configure("cpu")
  _, ref, model, data = T.both_models(args.preset, args.dtype, args.scan_unroll)
  step, state, batch = T.jitted_step(model, data)
  compiled = step.lower(state, batch).compile()  # read here, and run below: one compile
  found, unknown = dots_of(compiled.as_text())
  if not found:
    raise SystemExit("step_bound: no dot in the compiled step's HLO. It reads XLA:CPU's dots; "
                     "on a GPU, XLA calls cuBLAS through custom calls instead. Run it on CPU.")
  run_ours, step_flops, _ = T.ours(model, data, (compiled, state, batch))
  del model
  turns = P.alternate({"ours": run_ours, "ref": T.reference(ref, data, args.dtype)},
                      args.repeats)
  timed = time_dots(found, max(args.repeats, 5))
  alone = {k: xla for k, (xla, _) in timed.items()}
  floor = sum(found[k] * alone[k] for k in found)
  torch_floor = sum(found[k] * t for k, (_, t) in timed.items())
  dot_flops = sum(found[k] * flops(k) for k in found)
  top = sorted(found, key=lambda k: -found[k] * alone[k])[:8]
  out = dict(
      preset=args.preset, dtype=args.dtype, scan_unroll=args.scan_unroll,
      ours_step_s=round(turns["ours"], 3), ref_step_s=round(turns["ref"], 3),
      ratio=round(turns["ref"] / turns["ours"], 3),
      distinct_dots=len(found), dots_per_step=sum(found.values()),
      loops_of_data_dependent_length=unknown,
      dot_gflop=round(dot_flops / 1e9, 1), analytic_step_gflop=round(step_flops / 1e9, 1),
      matmul_floor_s=round(floor, 3), matmul_gflops_alone=round(dot_flops / floor / 1e9, 1),
      ratio_ceiling=round(turns["ref"] / floor, 3),
      share_of_step_in_matmuls_alone=round(floor / turns["ours"], 3),
      same_dots_in_torch_s=round(torch_floor, 3),
      torch_kernels_speedup=round(floor / torch_floor, 3),
      largest=[dict(dot=describe(k), times=found[k],
                    ms_alone=round(alone[k] * 1e3, 2),
                    gflops_alone=round(flops(k) / alone[k] / 1e9, 1),
                    torch_gflops_alone=round(flops(k) / timed[k][1] / 1e9, 1)) for k in top],
      **P.load())
  json.dump(out, sys.stdout)
  print()


if __name__ == "__main__":
  main()
