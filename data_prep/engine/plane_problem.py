"""The plane-geometry figure as a `Scene`: what problems.py needs to ask, solve and draw it."""

from __future__ import annotations

from . import plane as P
from . import render as R
from .problems import Scene


def make(srng, vrng, wanted: int, same_kind: bool = False, steps: tuple = (1, 6)) -> Scene:
  prog = P.program(srng, P.shape_count(srng, wanted), P.beside_count(steps))
  fig = P.realize(prog, vrng)
  caption = P.describe(fig, vrng)
  return Scene(
    domain="plane", family=fig.shapes[0].kind, givens=fig.givens, derivs=fig.derivs,
    targets=P.targets(fig), measure=lambda name: P.measure(fig, name),
    facts=[{"id": f.id, "text": f.text, "numeric": f.numeric} for f in fig.facts],
    context=P.context(fig), caption=caption, generation=caption[:len(fig.relations)],
    key=lambda: P.key(fig, ""), draw=lambda: R.plane(fig), angles=fig.angles, kind_of=P.kind_of,
    misreads=P.misreads(fig))
