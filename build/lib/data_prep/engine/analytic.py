"""Analytic geometry: a Cartesian grid with 1-3 labelled, non-overlapping figures.

Figures sit on lattice points so every coordinate is an integer and every answer exact.
Non-overlap is tested on densely sampled boundaries (a gap of at least GAP units, and no figure
inside another). Answers are re-measured with different float formulas (Heron for triangles,
projection for distances, a linear solve for intercepts).
"""

from __future__ import annotations

import math
import string

import numpy as np
import sympy as sp

from . import captions as C
from . import geometry as G
from . import render as R
from .exact import Deriv, fmt
from .problems import Built, Rejected

GAP = 0.6
KINDS = ["point", "segment", "line", "circle", "triangle", "rectangle"]


def _samples(fig, view):
  k = fig["kind"]
  if k == "point":
    return np.array([fig["pts"][0]], float)
  if k == "circle":
    (h, kk), r = fig["pts"][0], fig["r"]
    return G.arc_points((h, kk), r, 0, 360, 90)
  if k == "line":
    (x1, y1), (x2, y2) = fig["pts"]
    t = np.linspace(-60, 60, 2400)[:, None]
    p = np.array([x1, y1], float) + t * (np.array([x2 - x1, y2 - y1], float) / math.hypot(x2 - x1, y2 - y1))
    x0, xx, y0, yy = view
    m = (p[:, 0] >= x0) & (p[:, 0] <= xx) & (p[:, 1] >= y0) & (p[:, 1] <= yy)
    return p[m]
  pts = np.array(fig["pts"], float)
  closed = k in ("triangle", "rectangle")
  ring = np.vstack([pts, pts[:1]]) if closed else pts
  out = [a + (b - a) * t for a, b in zip(ring[:-1], ring[1:]) for t in np.linspace(0, 1, 30)[:, None]]
  return np.vstack(out)


def _region(fig):
  if fig["kind"] in ("triangle", "rectangle"):
    return lambda p: G.inside(p, fig["pts"])
  if fig["kind"] == "circle":
    (h, k), r = fig["pts"][0], fig["r"]
    return lambda p: math.hypot(p[0] - h, p[1] - k) < r
  return lambda p: False


def apart(a, b, view) -> bool:
  """No boundary within GAP of the other's and neither figure inside the other."""
  sa, sb = _samples(a, view), _samples(b, view)
  if len(sa) == 0 or len(sb) == 0:
    return False
  d = np.hypot(sa[:, None, 0] - sb[None, :, 0], sa[:, None, 1] - sb[None, :, 1]).min()
  return d >= GAP and not _region(b)(sa[0]) and not _region(a)(sb[0])


def figure(rng, kind, view, letters):
  x0, x1, y0, y1 = view
  ri = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
  if kind == "point":
    return {"kind": kind, "names": [letters()], "pts": [(ri(x0 + 1, x1 - 1), ri(y0 + 1, y1 - 1))]}
  if kind in ("segment", "line"):
    while True:
      p = (ri(x0 + 1, x1 - 1), ri(y0 + 1, y1 - 1))
      q = (ri(x0 + 1, x1 - 1), ri(y0 + 1, y1 - 1))
      if math.dist(p, q) >= 3 and (kind == "segment" or p[0] != q[0]):
        return {"kind": kind, "names": [letters(), letters()], "pts": [p, q]}
  if kind == "circle":
    r = ri(2, max(2, min(x1 - x0, y1 - y0) // 4))
    return {"kind": kind, "names": [letters()], "r": r,
            "pts": [(ri(x0 + r, x1 - r), ri(y0 + r, y1 - r))]}
  if kind == "triangle":
    while True:
      pts = [(ri(x0 + 1, x1 - 1), ri(y0 + 1, y1 - 1)) for _ in range(3)]
      if abs(G.shoelace(pts)) >= 2:
        if G.shoelace(pts) < 0:
          pts = pts[::-1]
        return {"kind": kind, "names": [letters() for _ in range(3)], "pts": pts}
  w, h = ri(2, max(2, (x1 - x0) // 3)), ri(2, max(2, (y1 - y0) // 3))
  a = (ri(x0 + 1, x1 - 1 - w), ri(y0 + 1, y1 - 1 - h))
  pts = [a, (a[0] + w, a[1]), (a[0] + w, a[1] + h), (a[0], a[1] + h)]
  return {"kind": kind, "names": [letters() for _ in range(4)], "pts": pts}


def _pt(n, p):
  return f"{n}({p[0]}, {p[1]})"


def _facts(fig):
  out = [{"id": f"pt:{n}", "text": _pt(n, p), "numeric": True} for n, p in zip(fig["names"], fig["pts"])]
  if fig["kind"] == "circle":
    out.append({"id": f"radius:{fig['names'][0]}", "numeric": True,
                "text": f"centred at {_pt(fig['names'][0], fig['pts'][0])} with radius {fig['r']}"})
  return out


def _sentence(fig) -> str:
  k, n = fig["kind"], fig["names"]
  pts = ", ".join(_pt(a, p) for a, p in zip(n, fig["pts"]))
  if k == "point":
    return f"Point {pts} is marked."
  if k == "segment":
    return f"Segment {n[0]}{n[1]} joins {pts}."
  if k == "line":
    return f"A line passes through {pts}."
  if k == "circle":
    return f"A circle is centred at {pts} with radius {fig['r']}."
  return f"{'Triangle' if k == 'triangle' else 'Rectangle'} {''.join(n)} has vertices {pts}."


def _coords(fig, giv):
  for n, (x, y) in zip(fig["names"], fig["pts"]):
    giv[f"x_{n}"], giv[f"y_{n}"] = sp.Integer(x), sp.Integer(y)


def _dist_steps(a, b, chain, name):
  chain.append(Deriv(f"dx_{a}{b}", "{0} - {1}", "q0 - q1", (f"x_{b}", f"x_{a}"), None,
                     f"The horizontal change from {a} to {b}"))
  chain.append(Deriv(f"dy_{a}{b}", "{0} - {1}", "q0 - q1", (f"y_{b}", f"y_{a}"), None,
                     f"The vertical change from {a} to {b}"))
  chain.append(Deriv(name, "sqrt({0}^2 + {1}^2)", "sqrt(q0**2 + q1**2)", (f"dx_{a}{b}", f"dy_{a}{b}"),
                     None, "By the distance formula"))


def _slope_steps(a, b, name, note):
  """Run, rise, then the slope `name` = rise / run of the line through a and b."""
  return [Deriv(f"dx_{a}{b}", "{0} - {1}", "q0 - q1", (f"x_{b}", f"x_{a}"), None,
                f"The run from {a} to {b}"),
          Deriv(f"dy_{a}{b}", "{0} - {1}", "q0 - q1", (f"y_{b}", f"y_{a}"), None,
                f"The rise from {a} to {b}"),
          Deriv(name, "{0} / {1}", "q0 / q1", (f"dy_{a}{b}", f"dx_{a}{b}"), None, note)]


def _evaluate(chain, giv):
  """Fill each step's value by its own Python arithmetic (the check recomputes from expr)."""
  known = dict(giv)
  ops = {"q0 - q1": lambda a, b: a - b, "sqrt(q0**2 + q1**2)": lambda a, b: sp.sqrt(a ** 2 + b ** 2),
         "q0 / q1": lambda a, b: a / b, "q0 - q1*q2": lambda a, b, c: a - b * c,
         "pi*q0**2": lambda r: sp.pi * r ** 2, "2*pi*q0": lambda r: 2 * sp.pi * r,
         "Abs(q0*(q3 - q5) + q2*(q5 - q1) + q4*(q1 - q3))/2":
           lambda xa, ya, xb, yb, xc, yc: abs(xa * (yb - yc) + xb * (yc - ya) + xc * (ya - yb)) / 2,
         "q0*q1": lambda a, b: a * b, "q0 + q1 + q2": lambda a, b, c: a + b + c,
         "2*(q0 + q1)": lambda a, b: 2 * (a + b),
         "Abs(q0*q1 - q2 + q3)/sqrt(q0**2 + 1)": lambda m, x, y, b: abs(m * x - y + b) / sp.sqrt(m ** 2 + 1)}
  for d in chain:
    if d.value is None:
      d.value = ops[d.expr](*[known[i] for i in d.inputs])
    known[d.name] = d.value
  return known


def problem(rng, figs, view):
  """(target, chain, givens, measured, question, alternatives)."""
  giv, chain = {}, []
  for f in figs:
    _coords(f, giv)
  opts = []
  for f in figs:
    k = f["kind"]
    if k == "segment":
      opts += [("length", f), ("slope", f)] if f["pts"][0][0] != f["pts"][1][0] else [("length", f)]
    elif k == "line":
      opts += [("intercept", f), ("slope", f)]
    elif k == "circle":
      opts += [("c_area", f), ("c_perim", f)]
    elif k in ("triangle", "rectangle"):
      opts += [("p_area", f), ("p_perim", f)]
  pts = [f for f in figs if f["kind"] == "point"]
  lines = [f for f in figs if f["kind"] == "line"]
  if pts and lines:
    opts += [("pl_dist", (pts[0], lines[0]))] * 2
  if len(pts) >= 1 and any(f["kind"] == "circle" for f in figs):
    opts += [("pc_dist", (pts[0], next(f for f in figs if f["kind"] == "circle")))]
  if not opts:
    raise Rejected("no askable quantity among these figures (points only)")
  kind, f = opts[int(rng.integers(len(opts)))]
  if kind == "length":
    a, b = f["names"]
    t = f"|{a}{b}|"
    _dist_steps(a, b, chain, t)
    measured = math.dist(*f["pts"])
    q = [f"What is the length of segment {a}{b}?", f"Find the distance between {a} and {b}.",
         f"How long is {a}{b}?", f"Compute |{a}{b}|."]
  elif kind == "slope":
    a, b = f["names"]
    t = f"m_{a}{b}"
    chain += _slope_steps(a, b, t, "Slope is rise over run")
    (x1, y1), (x2, y2) = f["pts"]
    measured = math.tan(math.atan2(y2 - y1, x2 - x1))
    what = "line" if f["kind"] == "line" else "segment"
    q = [f"What is the slope of {what} {a}{b}?", f"Find the slope of {a}{b}.",
         f"How steep is {a}{b} (its slope)?", f"Compute the gradient of {what} {a}{b}."]
  elif kind == "intercept":
    a, b = f["names"]
    chain += _slope_steps(a, b, "m", "The slope is rise over run") + [
              Deriv("b", "{0} - {1} * {2}", "q0 - q1*q2", (f"y_{a}", "m", f"x_{a}"), None,
                    f"The line y = m x + b passes through {a}")]
    t = "b"
    (x1, y1), (x2, y2) = f["pts"]
    measured = float(np.linalg.solve([[x1, 1.0], [x2, 1.0]], [y1, y2])[1])
    q = [f"What is the y-intercept of line {a}{b}?", f"Where does line {a}{b} cross the y-axis?",
         f"Find b in y = m x + b for the line through {a} and {b}.",
         f"Compute the y-intercept of the line through {a} and {b}."]
  elif kind in ("c_area", "c_perim"):
    o = f["names"][0]
    giv[f"r_{o}"] = sp.Integer(f["r"])
    smp = _samples(f, view)[7]
    rr = math.dist(smp, f["pts"][0])
    if kind == "c_area":
      t = f"S_{o}"
      chain.append(Deriv(t, "pi * {0}^2", "pi*q0**2", (f"r_{o}",), None, "The area of a circle"))
      measured = math.pi * rr * rr
      q = [f"What is the area of the circle centred at {o}?", f"Find the area enclosed by circle {o}.",
           f"How large is the disc centred at {o}?", f"Compute the area of circle {o}."]
    else:
      t = f"C_{o}"
      chain.append(Deriv(t, "2 * pi * {0}", "2*pi*q0", (f"r_{o}",), None, "The circumference"))
      measured = float(np.hypot(*np.diff(np.vstack([G.arc_points(f["pts"][0], f["r"], 0, 360, 20001)]), axis=0).T).sum())
      q = [f"What is the circumference of the circle centred at {o}?",
           f"Find the perimeter of circle {o}.", f"How long is circle {o} all the way round?",
           f"Compute the circumference of circle {o}."]
  elif kind == "p_area":
    n = f["names"]
    nm = "".join(n)
    t = f"S_{nm}"
    if f["kind"] == "triangle":
      ins = tuple(v for a in n for v in (f"x_{a}", f"y_{a}"))
      chain.append(Deriv(t, "|{0}({3} - {5}) + {2}({5} - {1}) + {4}({1} - {3})| / 2",
                         "Abs(q0*(q3 - q5) + q2*(q5 - q1) + q4*(q1 - q3))/2", ins, None,
                         "By the shoelace formula"))
      s = [math.dist(f["pts"][i], f["pts"][(i + 1) % 3]) for i in range(3)]
      p = sum(s) / 2
      measured = math.sqrt(max(p * (p - s[0]) * (p - s[1]) * (p - s[2]), 0))
    else:
      _dist_steps(n[0], n[1], chain, f"|{n[0]}{n[1]}|")
      _dist_steps(n[1], n[2], chain, f"|{n[1]}{n[2]}|")
      chain.append(Deriv(t, "{0} * {1}", "q0*q1", (f"|{n[0]}{n[1]}|", f"|{n[1]}{n[2]}|"), None,
                         f"{nm} is a rectangle: area = length x width"))
      measured = abs(G.shoelace(f["pts"]))
    q = [f"What is the area of {f['kind']} {nm}?", f"Find the area of {nm}.",
         f"How much area does {f['kind']} {nm} enclose?", f"Compute the area of {nm}."]
  elif kind == "p_perim":
    n = f["names"]
    nm = "".join(n)
    t = f"P_{nm}"
    if f["kind"] == "triangle":
      for i in range(3):
        _dist_steps(n[i], n[(i + 1) % 3], chain, f"|{n[i]}{n[(i + 1) % 3]}|")
      chain.append(Deriv(t, "{0} + {1} + {2}", "q0 + q1 + q2",
                         tuple(f"|{n[i]}{n[(i + 1) % 3]}|" for i in range(3)), None,
                         "The perimeter adds the three sides"))
    else:
      _dist_steps(n[0], n[1], chain, f"|{n[0]}{n[1]}|")
      _dist_steps(n[1], n[2], chain, f"|{n[1]}{n[2]}|")
      chain.append(Deriv(t, "2 * ({0} + {1})", "2*(q0 + q1)", (f"|{n[0]}{n[1]}|", f"|{n[1]}{n[2]}|"),
                         None, "A rectangle's perimeter is twice length plus width"))
    measured = G.perimeter(f["pts"])
    q = [f"What is the perimeter of {f['kind']} {nm}?", f"Find the perimeter of {nm}.",
         f"How long is the boundary of {nm}?", f"Compute the perimeter of {nm}."]
  elif kind == "pl_dist":
    p, ln = f
    a, b = ln["names"]
    c = p["names"][0]
    chain += _slope_steps(a, b, "m", "The line's slope is rise over run") + [
              Deriv("b", "{0} - {1} * {2}", "q0 - q1*q2", (f"y_{a}", "m", f"x_{a}"), None,
                    f"The line y = m x + b passes through {a}"),
              Deriv(f"d({c}, {a}{b})", "|{0}*{1} - {2} + {3}| / sqrt({0}^2 + 1)",
                    "Abs(q0*q1 - q2 + q3)/sqrt(q0**2 + 1)", ("m", f"x_{c}", f"y_{c}", "b"), None,
                    "The distance from a point to the line y = m x + b")]
    t = f"d({c}, {a}{b})"
    measured = float(G.seg_dist([p["pts"][0]], np.array(ln["pts"][0]) - 1e4 * np.subtract(ln["pts"][1], ln["pts"][0]),
                                np.array(ln["pts"][0]) + 1e4 * np.subtract(ln["pts"][1], ln["pts"][0]))[0])
    q = [f"What is the distance from point {c} to line {a}{b}?",
         f"How far is {c} from the line through {a} and {b}?",
         f"Find the perpendicular distance from {c} to line {a}{b}.",
         f"Compute the distance between {c} and line {a}{b}."]
  else:
    p, cf = f
    a, o = p["names"][0], cf["names"][0]
    t = f"|{a}{o}|"
    _dist_steps(a, o, chain, t)
    measured = math.dist(p["pts"][0], cf["pts"][0])
    q = [f"What is the distance from {a} to the centre {o} of the circle?",
         f"How far is point {a} from the circle's centre {o}?",
         f"Find the length {a}{o}.", f"Compute the distance between {a} and {o}."]
  _evaluate(chain, giv)
  return t, chain, giv, measured, q


def make(rng) -> Built:
  x0, x1 = -int(rng.integers(2, 9)), int(rng.integers(4, 11))
  y0, y1 = -int(rng.integers(2, 9)), int(rng.integers(4, 11))
  view = (x0, x1, y0, y1)
  pool = list(rng.permutation([c for c in string.ascii_uppercase]))
  letters = lambda: pool.pop()  # noqa: E731
  figs = []
  want = int(rng.choice([1, 2, 2, 3]))
  for _ in range(want * 4):
    if len(figs) == want:
      break
    k = str(rng.choice(KINDS))
    f = figure(rng, k, view, letters)
    if all(apart(f, g, view) for g in figs):
      figs.append(f)
    else:
      pool.extend(f["names"][::-1])
  target, chain, giv, measured, qs = problem(rng, figs, view)
  qi = int(rng.integers(len(qs)))
  c = R.axes(view, equal=True)
  its, facts = [], []
  for k, f in enumerate(figs):
    col = R.COLORS[k % len(R.COLORS)]
    pts = [tuple(map(float, p)) for p in f["pts"]]
    if f["kind"] == "segment":
      its.append({"op": "polyline", "segments": [pts], "color": col})
    elif f["kind"] == "line":
      s = _samples(f, view)
      its.append({"op": "polyline", "segments": [[tuple(s[0]), tuple(s[-1])]], "color": col})
    elif f["kind"] == "circle":
      its.append({"op": "polygon", "pts": G.arc_points(pts[0], f["r"], 0, 360, 120)[:-1],
                  "color": col})
      ang = float(rng.choice([30, 60, 120, 210, 300]))
      e = (pts[0][0] + f["r"] * math.cos(math.radians(ang)), pts[0][1] + f["r"] * math.sin(math.radians(ang)))
      its.append({"op": "polyline", "segments": [[pts[0], e]], "color": col, "width": 1.4})
      mid = ((pts[0][0] + e[0]) / 2, (pts[0][1] + e[1]) / 2)
      its.append({"op": "label", "at": mid, "text": f"r = {f['r']}", "size": 12, "color": col,
                  "offset": (0, -9), "id": f"radius:{f['names'][0]}"})
    elif f["kind"] in ("triangle", "rectangle"):
      its.append({"op": "polygon", "pts": pts, "color": col,
                  "fill": tuple(int(255 - 0.12 * (255 - v)) for v in col)})
    cen = np.mean(pts, 0) if f["kind"] in ("triangle", "rectangle") else None
    for n, p in zip(f["names"], pts):
      its.append({"op": "point", "at": p, "color": col})
      off = (0, 14) if f["kind"] == "circle" else (0, -12)
      if cen is not None:
        d = np.subtract(p, cen)
        d = d / (np.hypot(*d) + 1e-9)
        off = (d[0] * 18, -d[1] * 14)
      its.append({"op": "label", "at": p, "text": _pt(n, f["pts"][f["names"].index(n)]),
                  "size": 12, "color": R.INK, "offset": off, "id": f"pt:{n}"})
    facts += _facts(f)
  R.items(c, its)
  img = c.finish()
  td = " ".join(_sentence(f) for f in figs)
  intro = C.pick(rng, C.ANALYTIC_INTRO, x0=x0, x1=x1, y0=y0, y1=y1)
  return Built(
    domain="analytic", family="+".join(f["kind"] for f in figs), images={"single": img},
    drawn={"single": sorted(set(c.drawn))}, facts=facts,
    context={"text_dominant": td, "text_lite": "", "vision_dominant": ""},
    question=qs[qi], alt_questions=qs, chain=chain, givens=giv, angles=set(), target=target,
    measured=measured, caption=[intro] + [_sentence(f) for f in figs], generation=[intro],
    complexity=min(3, len(figs) - 1 + (len(chain) > 3)),
    key=f"{view}|{[(f['kind'], f['pts'], f.get('r')) for f in figs]}|{qs[qi]}")
