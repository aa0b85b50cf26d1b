"""A plane-geometry problem: target in the last shape, deduced back to the givens, three versions."""

from __future__ import annotations

from . import captions as C
from . import plane as P
from . import render as R
from .exact import fmt, resolve
from .problems import Built, Rejected


def complexity(n_shapes: int, n_steps: int) -> int:
  """0-3 from shape count and reasoning steps (Math-LLaVA's comprehension-complexity levels)."""
  if n_shapes == 1 and n_steps <= 1:
    return 0
  if n_shapes <= 2 and n_steps <= 3:
    return 1
  if n_shapes <= 3 and n_steps <= 5:
    return 2
  return 3


def make(rng) -> Built:
  sc = P.scene(rng)
  ts = P.targets(sc)
  if not ts:
    raise Rejected("no askable quantity in the last shape")
  target = ts[int(rng.integers(len(ts)))]
  chain = resolve(target, sc.givens, sc.derivs)
  measured = P.measure(sc, target)
  struct, numeric = [], []
  for rel in sc.relations:
    if rel[0] == "attach":
      _, s, par, en = rel
      struct.append(f"Attached to edge {en} of {par.title}, there is {P._a(s)}.")
  for f in sc.facts:
    (numeric if f.numeric else struct).append(f.text[:1].upper() + f.text[1:] + ".")
  ask = P.question(sc, target, rng)
  k = P.ask_kind(target)
  s = P.shape_of(sc, target)
  nm = target[4:] if k == "arc" else target
  shape_name = s.title if s.kind in ("circle", "semicircle") else s.poly
  alts = [t.format(shape=shape_name, name=nm) for t in C.ASK[k]]
  imgs = R.plane(sc)
  gen = P.describe(sc, rng)
  n_rel = len(sc.relations)
  key = "|".join([s.kind for s in sc.shapes] + [f"{n}={fmt(v)}" for n, v in sorted(sc.givens.items())]
                 + [target.replace(s.poly, "#")])
  return Built(
    domain="plane", family=sc.shapes[0].kind,
    images={v: im for v, (im, _) in imgs.items()}, drawn={v: d for v, (_, d) in imgs.items()},
    facts=[{"id": f.id, "text": f.text, "numeric": f.numeric} for f in sc.facts],
    context={"text_dominant": " ".join(struct + numeric), "text_lite": " ".join(struct),
             "vision_dominant": ""},
    question=ask, alt_questions=alts, chain=chain, givens=sc.givens,
    angles=sc.angles, target=target, measured=measured, caption=gen,
    generation=gen[:n_rel], complexity=complexity(len(sc.shapes), len(chain)), key=key)
