"""Function graphs: a function of one family, its graph, and properties deduced from it.

Families as MAVIS-Function: poly, sin, cos, tan, log, abs, plus piecewise polynomials. In
`stated` mode the expression is given (drawn above the graph); in `deduce` mode only its form
with unknown coefficients is given (`f(x) = a·|x - h| + k`) and the graph marks points from
which the rationale first deduces the coefficients, then uses the expression (a value, a
derivative, an integral, a zero, an extremum, a monotonic interval). Coefficients are chosen so
every answer is exact. Every quantity a step names is re-measured from a NumPy evaluator written
from the coefficients, not from the sympy expression (finite differences, Simpson's rule, sign
changes), so a wrong symbolic step cannot pass. The graph and its deduction are in
`function_graphs`, what can be asked of it in `function_questions`; here: measuring, drawing,
and the scene.
"""

from __future__ import annotations

import re

import numpy as np

from . import captions as C
from . import render as R
from .exact import as_float
from .function_graphs import DEDUCIBLE, FAMILIES, PI, F, Formulas, Graph, deduce, family, program
from .function_questions import KINDS, asked, extras, opens_up
from .notation import human
from .problems import Scene, add_sums

__all__ = ["FAMILIES", "DEDUCIBLE", "make", "measure", "program", "family"]


# ---------------------------------------------------------------- independent measures


def _simpson(fn, a, b, n=4000):
  x = np.linspace(a, b, n + 1)
  y = fn(x)
  return float((b - a) / n / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum()))


def _dnum(fn, a, h=1e-5):
  return float((fn(a + h) - fn(a - h)) / (2 * h))


def _zeros(g: Graph) -> list:
  """Where the graph crosses zero, from sign changes on a fine grid, refined by bisection."""
  lo = float(g.info["h"]) + 1e-9 if g.fam == "log" else g.lo - 5
  xs = np.linspace(lo, g.hi + 5, 20001)
  ys = g.fn(xs)
  out = [float(x) for x, y in zip(xs, ys) if y == 0]
  for i in np.flatnonzero(np.sign(ys[:-1]) * np.sign(ys[1:]) < 0):
    a, b = xs[i], xs[i + 1]
    for _ in range(60):
      m = (a + b) / 2
      a, b = (m, b) if np.sign(g.fn(np.array([m]))[0]) == np.sign(ys[i]) else (a, m)
    out.append(float((a + b) / 2))
  return sorted(out)


def _best(fn, lo: float, hi: float, largest: bool) -> tuple:
  """(x, fn(x)) where fn is largest (or smallest) on [lo, hi]: the best of 2,001 points, then
  the best of 2,001 across the two grid steps around it, four grids in all (a last step of
  (hi - lo) / 2000⁴ · 8). One grid of 200,001 points took 2.5-12 ms (a sine's largest value
  12), 0.45 ms of a function problem, for a coarser answer."""
  a, b = lo, hi
  for _ in range(4):
    xs = np.linspace(a, b, 2001)
    ys = fn(xs)
    k = int(np.argmax(ys) if largest else np.argmin(ys))
    step = (b - a) / 2000
    a, b = max(lo, xs[k] - step), min(hi, xs[k] + step)
  return float(xs[k]), float(ys[k])


def _extreme(g: Graph) -> tuple:
  return _best(g.fn, g.lo, g.hi, largest=not opens_up(g))


def _on(fn, g: Graph):
  """An evaluator that says where it is defined (the plotted range)."""
  def f(x):
    return fn(x)
  f.domain = (g.lo, g.hi)
  return f


def measure(Fm: Formulas, name: str):
  """Re-measure a step from the graph's own evaluator (a float, a callable for an expression,
  None for an antiderivative, which is fixed only up to a constant)."""
  g = Fm.g
  if name in ("a", "b", "c", "d", "h", "k"):
    return float(g.info[name])
  if name in (F, "f'(x)"):
    fn = g.fn if name == F else lambda x: (g.fn(x + 1e-5) - g.fn(x - 1e-5)) / 2e-5
    return _on(fn, g)
  if name.startswith("F"):
    return None
  if name in Fm.where:
    w = Fm.where[name]
    if isinstance(w, tuple) and w[0] == "tangent":
      return float(g.fn(np.array([w[1]]))[0]) - _dnum(g.fn, w[1]) * w[1]
    if isinstance(w, tuple) and w[0] == "rate":
      y = g.fn(np.array([w[1], w[2]]))
      return float((y[1] - y[0]) / (w[2] - w[1]))
    if isinstance(w, tuple):
      return _simpson(g.fn, *w)
    return _dnum(g.fn, w) if name.startswith("f'") else float(g.fn(np.array([w]))[0])
  if name == "zeros":
    return _zeros(g)
  if name == "x₀":
    return max(_zeros(g))
  if name in ("x_v", "f(x_v)"):
    return _extreme(g)[0 if name == "x_v" else 1]
  if name == "max f":
    return _best(g.fn, g.lo, g.hi, largest=True)[1]
  raise KeyError(f"engine: {name!r} is not a measurable quantity of this graph")


# ---------------------------------------------------------------- text and drawing


def _pt(n, p) -> str:
  return f"{n}({human(p[0])}, {human(p[1])})"


def header(g: Graph) -> tuple:
  """(fact id, text) drawn above the graph: the expression, or (deduce) its form."""
  return ("expr", f"f(x) = {human(g.f)}") if g.mode == "stated" else ("form", g.form)


def facts(g: Graph) -> list:
  fid, text = header(g)
  return [{"id": fid, "text": text, "numeric": g.mode == "stated"}] + [
      {"id": f"pt:{n}", "text": _pt(n, p), "numeric": True} for n, p in g.points.items()]


def context(g: Graph) -> str:
  text = header(g)[1]
  if g.mode == "stated":
    return f"The function {text} is plotted."
  pts = [_pt(n, p) + (f", {g.roles[n]}," if n in g.roles else "") for n, p in g.points.items()]
  listed = (", ".join(pts[:-1]) + f" and {pts[-1]}" if len(pts) > 1 else pts[0]).rstrip(",")
  return f"The graph of {text} is plotted, with the marked points {listed}."


def view_of(g: Graph) -> tuple:
  xs = np.linspace(g.lo, g.hi, 300)
  ys = g.fn(xs)
  if g.fam == "tan":
    ys = np.where(np.abs(ys) > 8, np.nan, ys)
  fin = np.concatenate([ys[np.isfinite(ys)], [float(p[1]) for p in g.points.values()]])
  y0, y1 = float(min(fin.min(), 0)), float(max(fin.max(), 0))
  pad = 0.12 * (y1 - y0 + 1e-9)
  return xs, ys, (float(g.lo), float(g.hi), y0 - pad, y1 + pad)


def draw(g: Graph, vrng) -> dict:
  xs, ys, view = view_of(g)
  c = R.axes(view, equal=False)
  ok = np.isfinite(ys)  # tan's asymptotes split the curve
  pts = np.stack([xs, np.where(ok, ys, 0.0)], 1)
  cuts = np.flatnonzero(np.diff(ok.astype(np.int8))) + 1
  segs = [seg[ok_seg] for seg, ok_seg in zip(np.split(pts, cuts), np.split(ok, cuts))
          if ok_seg.all() and len(seg) > 1]
  col = R.COLORS[int(vrng.integers(len(R.COLORS)))]
  its = [{"op": "polyline", "segments": segs, "color": col, "width": 2.4}]
  for n, p in g.points.items():
    at = (as_float(p[0]), as_float(p[1]))
    down = at[1] < float(g.fn(np.array([at[0] - 0.3]))[0])
    its.append({"op": "point", "at": at, "color": R.MARK, "id": f"pt:{n}"})
    its.append({"op": "label", "at": at, "text": _pt(n, p), "size": 12, "color": R.MARK,
                "direction": (0, 1) if down else (0, -1)})
  _header(c, *header(g), col)
  R.items(c, its)
  R.axis_names(c, view)
  R.tick_labels(c, view)
  return {"single": (c.finish(), sorted(set(c.drawn)), c)}


def _header(c, fid: str, text: str, color):
  """The expression in the band above the plot (no line runs there), shrunk to fit."""
  size, rel = 14, R.halo(text, 14)[2]
  while size > 9 and rel[2] - rel[0] > 360:
    size -= 1
    rel = R.halo(text, size)[2]
  w = rel[2] - rel[0]
  spots = [(8 + w / 2, 13), (c.size / 2, 13), (c.size - 8 - w / 2, 13)]
  at = c.place(text, size, spots)
  c.text(at, text, size, color)
  c.drawn.append(fid)


# The deepest quantities a function graph has of its own (a tangent's intercept where the
# expression is deduced): a program wanting more asks sums of two of a kind (`problems.add_sums`).
DEEPEST = 7


def make(srng, vrng, wanted: int, same_kind: bool = False, steps: tuple = (1, 6)) -> Scene:
  fam, mode, deg, sign, increasing = program(srng, wanted)
  g = family(vrng, fam, mode, deg, sign)
  g.increasing = increasing
  Fm = Formulas(g)
  deduce(Fm, vrng)
  kinds = asked(fam, mode, deg)
  tgts = [KINDS[k](Fm, vrng) for k in kinds]
  tgts += extras(Fm, vrng, kinds, tgts, deep=wanted >= 5, same_kind=same_kind)
  for t in tgts:
    t.signed = True  # values, slopes, integrals: any sign
  td = context(g)
  fid, text = header(g)
  intro = (C.pick(vrng, C.FUNC_INTRO, f=text, expr=text[7:], family=fam, lo=f"{g.lo:.3g}",
                  hi=f"{g.hi:.3g}") if mode == "stated" else td)
  scene = Scene(
    domain="function", family=fam, givens=Fm.givens, derivs=Fm.derivs, targets=tgts,
    measure=lambda n: measure(Fm, n), facts=facts(g),
    context={"text_dominant": td, "text_lite": "", "vision_dominant": ""},
    caption=[intro], generation=[intro],
    key=lambda: f"{fam}|{mode}|{g.f}|{sorted(g.points.items())}",
    draw=lambda: draw(g, vrng), kind_of=kind_of, misreads=misreads(Fm),
    exact_only=True)
  if wanted > DEEPEST:
    add_sums(scene, wanted)
  return scene


KINDS_BY_NAME = (("f'(", "derivative"), ("f(", "value"), ("max f", "value"), ("y₀", "intercept"),
                 ("rate", "rate"), ("x₀", "zero"))


def kind_of(name: str) -> str | None:
  """What sort of quantity a name is (values of f, derivatives, the tangents' intercepts, average
  rates): a multiple-choice set takes quantities of the asked one's kind first. Without kinds a
  function figure's set mixed values, slopes and rates, and a reader who could tell them apart
  by the question's wording would have picked the answer among a set's one or two options of the
  asked kind (75.7% of the time at best, 61.8% with kinds; analytic and plane figures 53-55%:
  `question_kind_rule_percent` in `python -m benchmarks.engine`)."""
  if name == "I":
    return "integral"
  return next((k for prefix, k in KINDS_BY_NAME if name.startswith(prefix)), None)


def misreads(Fm: Formulas) -> list:
  """The point asked about read with the wrong sign or one grid step off; for trig, the
  neighbouring special angle. One misread per x, of every point name at that x: a step at
  x = v is made once, under the name of the question that needed it first (f(-2) from p), and
  another question at v (a rate's u) reuses it, so misreading u alone would change the run and
  keep f(-2), a value the stated misread does not give."""
  out = []
  names = [n for n in ("p", "q", "t", "u", "w") if n in Fm.givens]
  at_x = [n for n in Fm.givens if re.fullmatch(r"[pqtuw][₀-₉]*", n)]  # every point's x, extras too
  for k, name in enumerate(names):
    v = Fm.givens[name]
    if any(Fm.givens[n] == v for n in names[:k]):
      continue
    name = tuple(sorted((n for n in at_x if Fm.givens[n] == v), key=lambda n: n != name))
    if v != 0 and Fm.g.fam != "log":
      out.append((name, -v, f"substituted x = {human(-v)} for x = {human(v)}"))
    step = PI / (6 * Fm.g.info["b"]) if Fm.g.fam in ("sin", "cos", "tan") else 1
    w = v + step
    if Fm.g.lo < as_float(w) < Fm.g.hi and not (Fm.g.fam == "tan" and abs(as_float(w)) >= as_float(
        PI / (2 * Fm.g.info["b"]))):
      out.append((name, w, f"read x = {human(v)} as {human(w)}"))
  return out
