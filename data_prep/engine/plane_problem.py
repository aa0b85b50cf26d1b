"""The plane-geometry figure as a `Scene`: what problems.py needs to ask, solve and draw it."""

from __future__ import annotations

from . import plane as P
from . import render as R
from .problems import FigureRejected, Scene


def make(srng, vrng, wanted: int, same_kind: bool = False, steps: tuple = (1, 6),
         shapes: int | None = None) -> Scene:
  """`shapes`: the shape count of a program before whose figure could not be drawn
  (`FigureRejected`, which carries the depth and shape count this one was made for), instead of
  srng's."""
  n = P.shape_count(srng, wanted)  # drawn always: srng's stream stays the same
  n = n if shapes is None else shapes
  prog = P.program(srng, n, P.beside_count(steps))
  kept = {"wanted": wanted, "shapes": n}
  try:
    fig = P.realize(prog, vrng)
  except FigureRejected as e:
    e.kept.update(kept)
    raise
  caption = P.describe(fig, vrng)
  return Scene(
    domain="plane", family=fig.shapes[0].kind, givens=fig.givens, derivs=fig.derivs,
    targets=P.targets(fig), measure=lambda name: P.measure(fig, name),
    facts=[{"id": f.id, "text": f.text, "numeric": f.numeric} for f in fig.facts],
    context=P.context(fig), caption=caption, generation=caption[:len(fig.relations)],
    key=lambda: P.key(fig, ""), draw=lambda: _drawn(fig, kept), angles=fig.angles,
    kind_of=P.kind_of, misreads=P.misreads(fig))


def _drawn(fig, kept: dict) -> dict:
  try:
    return R.plane(fig)
  except R.LabelsDoNotFit as e:
    raise FigureRejected(f"labels do not fit: {e}", **kept) from None
