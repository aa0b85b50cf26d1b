"""Analytic geometry: a Cartesian grid with 1-3 labelled, non-overlapping figures.

The program (structure generator) picks the figures' kinds and whether a circle's radius is
labelled or must be deduced from a marked point on it; the values generator picks the view,
the lattice coordinates and the letters, so every answer is exact. Non-overlap is tested on
densely sampled boundaries (a gap of at least GAP units, and no figure inside another). Every
quantity a step names is re-measured from the coordinates with other float formulas (Heron for
triangles, a linear solve for intercepts, projection for distances, atan2 for slopes).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import string

import numpy as np
import sympy as sp

from . import captions as C
from . import geometry as G
from . import render as R
from .exact import Deriv
from .problems import ProgramRejected, Rejected, Scene, Target, add_sums

GAP = 0.6
SIGNED = ("m(", "m⊥(", "b(", "x₀(", "xₘ(", "yₘ(", "x̄(", "ȳ(", "Δx(", "Δy(")
KINDS = ["point", "segment", "line", "circle", "triangle", "rectangle"]


@dataclasses.dataclass
class Plot:
  view: tuple
  figs: list
  pts: dict            # letter -> (x, y)


def program(srng, wanted_steps: int) -> list:
  """[(kind, circle style)]: 1-3 figures; deeper chains want more figures."""
  n = C.one_of(srng, [1, 2, 2, 3] if wanted_steps <= 3 else [2, 2, 3, 3])
  return [(C.one_of(srng, KINDS), C.one_of(srng, ["radius", "point"])) for _ in range(n)]


def realize(prog: list, vrng) -> Plot:
  x0, x1 = -int(vrng.integers(2, 9)), int(vrng.integers(4, 11))
  y0, y1 = -int(vrng.integers(2, 9)), int(vrng.integers(4, 11))
  view = (x0, x1, y0, y1)
  pool = list(vrng.permutation(list(string.ascii_uppercase)))
  figs, outlines = [], []
  for kind, style in prog:
    for _ in range(8):
      f = figure(vrng, kind, view, pool.pop)
      o = Outline(f, view)
      if all(apart(o, g) for g in outlines):
        f["style"] = style
        if kind == "circle" and style == "point":
          _point_on_circle(f, vrng, pool.pop)
        figs.append(f)
        outlines.append(o)
        break
      pool.extend(f["names"][::-1])
    else:
      raise Rejected("figures overlap")
  pts = {n: p for f in figs for n, p in zip(f["names"], f["pts"])}
  pts.update({f["on"][0]: f["on"][1] for f in figs if "on" in f})
  return Plot(view, figs, pts)


def _point_on_circle(f, vrng, new_letter):
  """A lattice point on the circle (a Pythagorean direction), so the radius is deduced."""
  (h, k), r = f["pts"][0], f["r"]
  dirs = [(r, 0), (-r, 0), (0, r), (0, -r)]
  if r % 5 == 0:
    dirs += [(3 * r // 5, 4 * r // 5), (-4 * r // 5, 3 * r // 5)]
  dx, dy = dirs[int(vrng.integers(len(dirs)))]
  f["on"] = (new_letter(), (h + dx, k + dy))


def _samples(fig, view):
  k = fig["kind"]
  if k == "point":
    return np.array([fig["pts"][0]], float)
  if k == "circle":
    (h, kk), r = fig["pts"][0], fig["r"]
    return G.arc_points((h, kk), r, 0, 360, 90)
  if k == "line":
    (x1, y1), (x2, y2) = fig["pts"]
    t = np.linspace(-60, 60, 1200)[:, None]
    d = np.array([x2 - x1, y2 - y1], float) / math.hypot(x2 - x1, y2 - y1)
    p = np.array([x1, y1], float) + t * d
    x0, xx, y0, yy = view
    m = (p[:, 0] >= x0) & (p[:, 0] <= xx) & (p[:, 1] >= y0) & (p[:, 1] <= yy)
    return p[m]
  pts = np.array(fig["pts"], float)
  ring = np.vstack([pts, pts[:1]]) if k in ("triangle", "rectangle") else pts
  ts = np.linspace(0, 1, 30)[:, None]
  return np.vstack([a + (b - a) * ts for a, b in zip(ring[:-1], ring[1:])])


def _region(fig):
  if fig["kind"] in ("triangle", "rectangle"):
    return lambda p: G.inside(p, fig["pts"])
  if fig["kind"] == "circle":
    (h, k), r = fig["pts"][0], fig["r"]
    return lambda p: math.hypot(p[0] - h, p[1] - k) < r
  return lambda p: False


class Outline:
  """A figure's boundary samples and their bounding box, made once per figure: `realize` tests
  each new figure against every one placed before, up to 8 tries each."""

  def __init__(self, fig, view):
    self.fig, self.pts = fig, _samples(fig, view)
    if len(self.pts):
      self.lo, self.hi = self.pts.min(0), self.pts.max(0)


def apart(a: Outline, b: Outline) -> bool:
  """No boundary within GAP of the other's and neither figure inside the other."""
  sa, sb = a.pts, b.pts
  if len(sa) == 0 or len(sb) == 0:
    return False
  if not _boxes_apart(a, b) and _too_close(a.fig, sa, b.fig, sb):
    return False
  return not _region(b.fig)(sa[0]) and not _region(a.fig)(sb[0])


def _boxes_apart(a: Outline, b: Outline) -> bool:
  """Whether the samples' bounding boxes are GAP apart along x or y: then every pair is, and
  the all-pairs distance (a line's hundreds of samples against another's) is not needed."""
  return bool(np.any(np.maximum(b.lo - a.hi, a.lo - b.hi) >= GAP))


def _too_close(a, sa, b, sb) -> bool:
  """Whether two samples, one of each figure, lie within GAP: decided by the samples, as ever,
  but mostly without the all-pairs matrix (0.1-0.2 ms a pair, 13% of an analytic problem, most
  of it in programs whose figures are redrawn). b's samples lie on its boundary, so the nearest
  an a sample comes to that boundary bounds every pair from below (far: not close), and the
  nearest b sample to that a sample makes a pair of its own (near: close); only a boundary
  within GAP that passes between the samples needs the matrix."""
  if len(sa) > len(sb):
    a, sa, b, sb = b, sb, a, sa
  to_b = _to_boundary(sa, b, sb)
  i = int(np.argmin(to_b))
  if to_b[i] >= GAP + 1e-9:
    return False
  if np.hypot(sa[i, 0] - sb[:, 0], sa[i, 1] - sb[:, 1]).min() < GAP:
    return True
  return np.hypot(sa[:, None, 0] - sb[None, :, 0], sa[:, None, 1] - sb[None, :, 1]).min() < GAP


def _to_boundary(pts, fig, samples) -> np.ndarray:
  """Distances from points to the curve fig's samples lie on: its circle, else the segments
  between its corners (a line: between its first and last sample in view, which hold the rest)."""
  if fig["kind"] == "circle":
    (h, k), r = fig["pts"][0], fig["r"]
    return np.abs(np.hypot(pts[:, 0] - h, pts[:, 1] - k) - r)
  if fig["kind"] == "line":
    corners = samples[[0, -1]]
  else:
    corners = np.array(fig["pts"], float)
    if fig["kind"] in ("triangle", "rectangle"):
      corners = np.vstack([corners, corners[:1]])
  if len(corners) == 1:
    return np.hypot(pts[:, 0] - corners[0, 0], pts[:, 1] - corners[0, 1])
  return np.min([G.seg_dist(pts, p, q) for p, q in zip(corners[:-1], corners[1:])], axis=0)


def figure(rng, kind, view, letters):
  x0, x1, y0, y1 = view
  ri = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
  pt = lambda: (ri(x0 + 1, x1 - 1), ri(y0 + 1, y1 - 1))  # noqa: E731
  if kind == "point":
    return {"kind": kind, "names": [letters()], "pts": [pt()]}
  if kind in ("segment", "line"):
    while True:  # neither vertical nor horizontal: slope and both intercepts exist; a line
      p, q = pt(), pt()  # through a point on an axis would print its intercept in the figure
      on_axis = kind == "line" and 0 in p + q
      if math.dist(p, q) >= 3 and p[0] != q[0] and p[1] != q[1] and not on_axis:
        return {"kind": kind, "names": [letters(), letters()], "pts": [p, q]}
  if kind == "circle":
    r = ri(2, max(2, min(x1 - x0, y1 - y0) // 4))
    return {"kind": kind, "names": [letters()], "r": r,
            "pts": [(ri(x0 + r, x1 - r), ri(y0 + r, y1 - r))]}
  if kind == "triangle":
    while True:
      pts = [pt() for _ in range(3)]
      if abs(G.shoelace(pts)) >= 2:
        pts = pts[::-1] if G.shoelace(pts) < 0 else pts
        return {"kind": kind, "names": [letters() for _ in range(3)], "pts": pts}
  w, h = ri(2, max(2, (x1 - x0) // 3)), ri(2, max(2, (y1 - y0) // 3))
  a = (ri(x0 + 1, x1 - 1 - w), ri(y0 + 1, y1 - 1 - h))
  pts = [a, (a[0] + w, a[1]), (a[0] + w, a[1] + h), (a[0], a[1] + h)]
  return {"kind": kind, "names": [letters() for _ in range(4)], "pts": pts}


# ---------------------------------------------------------------- formulas


class Formulas:
  """Every derivation the figures allow, added on demand, named as the rationale shows them."""

  def __init__(self, plot: Plot):
    self.givens, self.derivs = {}, {}
    for n, (x, y) in plot.pts.items():
      self.givens[f"x_{n}"], self.givens[f"y_{n}"] = sp.Integer(x), sp.Integer(y)
    for f in plot.figs:
      if f["kind"] == "circle" and "on" not in f:
        self.givens[f"r({f['names'][0]})"] = sp.Integer(f["r"])

  def add(self, name, template, expr, inputs, why, slips=(), show_names=True) -> str:
    if name not in self.derivs:  # most calls ask again for a step it holds (~40 of 64 a problem)
      self.derivs[name] = Deriv(name, template, expr, tuple(inputs), None, why,
                                slips=tuple(slips), show_names=show_names)
    return name

  def delta(self, a, b, axis) -> str:
    word = "horizontal" if axis == "x" else "vertical"
    return self.add(f"Δ{axis}({a}{b})", "{0} - {1}", "q0 - q1", (f"{axis}_{b}", f"{axis}_{a}"),
                    f"The {word} change from {a} to {b}",
                    [("q0 + q1", "added the coordinates instead of subtracting")])

  def dist(self, a, b) -> str:
    return self.add(f"|{a}{b}|", "√({0}² + {1}²)", "sqrt(q0**2 + q1**2)",
                    (self.delta(a, b, "x"), self.delta(a, b, "y")), "By the distance formula",
                    [("Abs(q0) + Abs(q1)", "added the changes instead of using Pythagoras"),
                     ("sqrt(Abs(q0**2 - q1**2))", "subtracted the squares"),
                     ("Max(Abs(q0), Abs(q1))", "took the longer of the two changes")])

  def slope(self, a, b) -> str:
    return self.add(f"m({a}{b})", "{0} / {1}", "q0/q1",
                    (self.delta(a, b, "y"), self.delta(a, b, "x")), "The slope is rise over run",
                    [("q1/q0", "divided the run by the rise")])

  def intercept(self, a, b) -> str:
    return self.add(f"b({a}{b})", "{0} - {1} · {2}", "q0 - q1*q2",
                    (f"y_{a}", self.slope(a, b), f"x_{a}"),
                    f"The line y = mx + b passes through {a}",
                    [("q0 + q1*q2", "added m·x instead of subtracting it"),
                     ("q2 - q1*q0", "swapped the coordinates of the point")])

  def x_intercept(self, a, b) -> str:
    return self.add(f"x₀({a}{b})", "-{0} / {1}", "-q0/q1", (self.intercept(a, b), self.slope(a, b)),
                    "The line meets the x-axis where mx + b = 0",
                    [("-q1/q0", "divided m by b instead of b by m")])

  def midpoint(self, a, b, axis) -> str:
    return self.add(f"{axis}ₘ({a}{b})", "({0} + {1}) / 2", "(q0 + q1)/2",
                    (f"{axis}_{a}", f"{axis}_{b}"),
                    f"The midpoint of {a}{b} averages the endpoints' {axis}-coordinates",
                    [("(q1 - q0)/2", "subtracted the coordinates instead of adding them"),
                     ("q0 + q1", "forgot to halve")])

  def centroid(self, names, axis) -> str:
    nm = "".join(names)
    bar = {"x": "x̄", "y": "ȳ"}[axis]
    return self.add(f"{bar}({nm})", "({0} + {1} + {2}) / 3", "(q0 + q1 + q2)/3",
                    tuple(f"{axis}_{a}" for a in names),
                    f"The centroid of {nm} averages the vertices' {axis}-coordinates",
                    [("(q0 + q1 + q2)/2", "divided by 2 instead of 3"),
                     ("q0 + q1 + q2", "forgot to divide")])

  def to_axis(self, coordinate: str) -> str:
    """A point's distance to the axis across from its coordinate: |x| to the y-axis, |y| to
    the x-axis (the name is the formula, so the rationale writes it once)."""
    along = coordinate[0]  # x (xₘ, x̄) or y (yₘ, ȳ)
    return self.add(f"|{coordinate}|", "|{0}|", "Abs(q0)", (coordinate,),
                    f"A point's distance to the {_across(coordinate)}-axis is the absolute "
                    f"value of its {'x' if along == 'x' else 'y'}-coordinate",
                    [("q0", "gave the coordinate, sign and all, as the distance"),
                     ("q0/2", "halved the coordinate again")], show_names=False)

  def radius(self, f) -> str:
    o = f["names"][0]
    if "on" not in f:
      return f"r({o})"
    return self.add(f"r({o})", "{0}", "q0", (self.dist(o, f["on"][0]),),
                    f"{f['on'][0]} lies on the circle, so {o}{f['on'][0]} is a radius")


def _circle_targets(F: Formulas, f) -> list:
  o, r = f["names"][0], F.radius(f)
  F.add(f"S({o})", "π · {0}²", "pi*q0**2", (r,), "The area of a circle is πr²",
        [("2*pi*q0", "used the circumference formula"), ("pi*q0", "forgot to square r")])
  F.add(f"C({o})", "2 · π · {0}", "2*pi*q0", (r,), "The circumference of a circle is 2πr",
        [("pi*q0**2", "used the area formula")])
  d = F.add(f"d({o})", "2 · {0}", "2*q0", (r,), "The diameter is twice the radius",
            [("q0", "took the radius for the diameter")])
  F.add(f"S(□{o})", "{0}² / 2", "q0**2/2", (d,),
        f"A square inscribed in circle {o} has the diameter as its diagonal",
        [("q0**2", "squared the diagonal as if it were the side"),
         ("q0**2/4", "took half the diagonal as the side")])
  return [Target(f"S(□{o})", f"the area of the square inscribed in circle {o}",
                 [f"What is the area of a square inscribed in circle {o}?",
                  f"Find the area of the largest square that fits in circle {o}."]),
          Target(f"S({o})", f"the area of circle {o}",
                 [f"What is the area of the circle centred at {o}?",
                  f"Find the area enclosed by circle {o}.", f"Compute the area of circle {o}."]),
          Target(f"C({o})", f"the circumference of circle {o}",
                 [f"What is the circumference of the circle centred at {o}?",
                  f"Find the perimeter of circle {o}.",
                  f"Compute the circumference of circle {o}."])]


def _line_targets(F: Formulas, f) -> list:
  a, b = f["names"]
  what = f["kind"]
  perp = F.add(f"m⊥({a}{b})", "-1 / {0}", "-1/q0", (F.slope(a, b),),
               "Perpendicular slopes multiply to -1",
               [("-q0", "negated the slope without inverting it")])
  out = [Target(F.slope(a, b), f"the slope of {what} {a}{b}",
                [f"What is the slope of {what} {a}{b}?", f"Find the slope of {a}{b}.",
                 f"Compute the gradient of {what} {a}{b}."]),
         Target(perp, f"the slope of a line perpendicular to {a}{b}",
                [f"What is the slope of a line perpendicular to {what} {a}{b}?",
                 f"Find the gradient of any line at right angles to {a}{b}."])]
  if what == "segment":
    out.append(Target(F.dist(a, b), f"the length of segment {a}{b}",
                      [f"What is the length of segment {a}{b}?",
                       f"Find the distance between {a} and {b}.", f"How long is {a}{b}?"]))
  else:
    out.append(Target(F.intercept(a, b), f"the y-intercept of line {a}{b}",
                      [f"What is the y-intercept of line {a}{b}?",
                       f"Where does line {a}{b} cross the y-axis (give y)?",
                       f"Find b in y = mx + b for the line through {a} and {b}."]))
    out.append(Target(F.x_intercept(a, b), f"the x-intercept of line {a}{b}",
                      [f"What is the x-intercept of line {a}{b}?",
                       f"Where does line {a}{b} cross the x-axis (give x)?"]))
  return out


def _polygon_targets(F: Formulas, f) -> list:
  n = f["names"]
  nm = "".join(n)
  if f["kind"] == "triangle":
    ins = tuple(v for a in n for v in (f"x_{a}", f"y_{a}"))
    F.add(f"S({nm})", "|{0}({3} - {5}) + {2}({5} - {1}) + {4}({1} - {3})| / 2",
          "Abs(q0*(q3 - q5) + q2*(q5 - q1) + q4*(q1 - q3))/2", ins, "By the shoelace formula",
          [("Abs(q0*(q3 - q5) + q2*(q5 - q1) + q4*(q1 - q3))", "forgot to halve")])
    sides = [F.dist(n[i], n[(i + 1) % 3]) for i in range(3)]
    F.add(f"P({nm})", "{0} + {1} + {2}", "q0 + q1 + q2", sides,
          "The perimeter adds the three sides", [("q0 + q1", "left out one side")])
  else:
    w = F.add(f"|{n[0]}{n[1]}|", "{0} - {1}", "q0 - q1", (f"x_{n[1]}", f"x_{n[0]}"),
              f"{n[0]}{n[1]} is horizontal, so its length is the change in x")
    h = F.add(f"|{n[1]}{n[2]}|", "{0} - {1}", "q0 - q1", (f"y_{n[2]}", f"y_{n[1]}"),
              f"{n[1]}{n[2]} is vertical, so its length is the change in y")
    F.add(f"S({nm})", "{0} · {1}", "q0*q1", (w, h), f"{nm} is a rectangle: length · width",
          [("2*(q0 + q1)", "used the perimeter formula")])
    F.add(f"P({nm})", "2 · ({0} + {1})", "2*(q0 + q1)", (w, h),
          "A rectangle's perimeter is twice length plus width",
          [("q0*q1", "multiplied instead of adding")])
    F.add(f"|{n[0]}{n[2]}|", "√({0}² + {1}²)", "sqrt(q0**2 + q1**2)", (w, h),
          f"The diagonal {n[0]}{n[2]} is the hypotenuse of a right triangle",
          [("q0 + q1", "added the sides instead of using Pythagoras")])
  out = [Target(f"S({nm})", f"the area of {f['kind']} {nm}",
                [f"What is the area of {f['kind']} {nm}?", f"Find the area of {nm}.",
                 f"Compute the area of {nm}."]),
         Target(f"P({nm})", f"the perimeter of {f['kind']} {nm}",
                [f"What is the perimeter of {f['kind']} {nm}?", f"Find the perimeter of {nm}.",
                 f"How long is the boundary of {nm}?"])]
  if f["kind"] == "rectangle":
    out.append(Target(f"|{n[0]}{n[2]}|", f"the length of diagonal {n[0]}{n[2]}",
                      [f"How long is the diagonal {n[0]}{n[2]}?",
                       f"Find the length of {n[0]}{n[2]}."]))
  return out


def _pair_targets(F: Formulas, p, g) -> list:
  c = p["names"][0]
  if g["kind"] == "line":
    a, b = g["names"]
    name = F.add(f"d({c}, {a}{b})", "|{0} · {1} - {2} + {3}| / √({0}² + 1)",
                 "Abs(q0*q1 - q2 + q3)/sqrt(q0**2 + 1)",
                 (F.slope(a, b), f"x_{c}", f"y_{c}", F.intercept(a, b)),
                 "The distance from a point to the line y = mx + b",
                 [("Abs(q0*q1 - q2 + q3)/(q0**2 + 1)", "forgot the square root"),
                  ("Abs(q0*q1 - q2 + q3)", "forgot to divide by √(m² + 1)")])
    return [Target(name, f"the distance from {c} to line {a}{b}",
                   [f"What is the distance from point {c} to line {a}{b}?",
                    f"Find the perpendicular distance from {c} to line {a}{b}."])]
  o = g["names"][0]
  po = F.dist(c, o)
  t = F.add(f"t({c}, {o})", "√({0}² - {1}²)", "sqrt(q0**2 - q1**2)", (po, F.radius(g)),
            f"A tangent from {c} is perpendicular to the radius at the point of contact",
            [("sqrt(q0**2 + q1**2)", "added the squares"), ("q0 - q1", "subtracted the lengths")])
  return [Target(po, f"the distance from {c} to the centre {o}",
                 [f"What is the distance from {c} to the centre {o} of the circle?",
                  f"Find the length {c}{o}."]),
          Target(t, f"the length of a tangent from {c} to circle {o}",
                 [f"How long is a tangent segment from {c} to circle {o}?",
                  f"Find the length of the tangent from point {c} to circle {o}."])]


def _one_step_targets(F: Formulas, f) -> list:
  """Quantities read off the coordinates in one step (midpoints, changes, a centroid, a
  rectangle's sides and centre, a diameter). Without them a figure offered almost nothing at
  `--steps 1:1` besides a triangle's area, so shallow sweeps were mostly one question and
  nearly never multiple choice. Priority 1: `pick` still prefers the figure's other questions
  where one has the wanted depth, so deeper problems are asked as before."""
  k, n = f["kind"], f["names"]
  if k in ("segment", "line"):
    a, b = n
    out = [Target(F.midpoint(a, b, ax), f"the {ax}-coordinate of the midpoint of {a}{b}",
                  [f"What is the {ax}-coordinate of the midpoint of {a}{b}?",
                   f"Find the {ax}-coordinate of the point halfway between {a} and {b}."])
           for ax in ("x", "y")]
    return out + [Target(F.delta(a, b, ax), f"the change in {ax} from {a} to {b}",
                         [f"What is the change in {ax} from {a} to {b}?",
                          f"By how much does {ax} change going from {a} to {b}?"])
                  for ax in ("x", "y")]
  if k == "triangle":
    nm = "".join(n)
    return [Target(F.centroid(n, ax), f"the {ax}-coordinate of the centroid of triangle {nm}",
                   [f"What is the {ax}-coordinate of the centroid of triangle {nm}?",
                    f"Find the {ax}-coordinate of the point where the medians of {nm} meet."])
            for ax in ("x", "y")]
  if k == "rectangle":
    nm = "".join(n)
    sides = [Target(f"|{p}{q}|", f"the length of side {p}{q}",
                    [f"How long is side {p}{q} of rectangle {nm}?",
                     f"Find the length of side {p}{q}."]) for p, q in ((n[0], n[1]), (n[1], n[2]))]
    return sides + [Target(F.midpoint(n[0], n[2], ax),
                           f"the {ax}-coordinate of the centre of rectangle {nm}",
                           [f"What is the {ax}-coordinate of the centre of rectangle {nm}?",
                            f"Find the {ax}-coordinate of the point where the diagonals of {nm} "
                            "cross."]) for ax in ("x", "y")]
  if k == "circle" and "on" not in f:
    o = n[0]
    return [Target(f"d({o})", f"the diameter of circle {o}",
                   [f"What is the diameter of the circle centred at {o}?",
                    f"How wide is circle {o} across its centre?"])]
  return []


def _axis_targets(F: Formulas, coords: tuple, point: str) -> list:
  """How far a point worked out in one step (a midpoint, a centroid, a rectangle's centre) is
  from each axis: two steps, the coordinate and its absolute value. Without them an analytic
  figure had two-step quantities only on a circle of given radius (an inscribed square's or
  triangle's area and side), so at `--steps 2:2` 137 of 200 programs had no question at all
  and 4 of 34 problems drawn multiple choice had a set of one kind (seed 3, 150 problems).
  Both axes always, whatever the values: a variant names its set's quantities by place in the
  list. A point on an axis is 0 from it, which no set of distances takes (`problems._fair`)."""
  out = []
  for c in coords:
    axis = _across(c)
    out.append(Target(F.to_axis(c), f"the distance from {point} to the {axis}-axis",
                      [f"How far is {point} from the {axis}-axis?",
                       f"What is the distance from {point} to the {axis}-axis?"]))
  return out


def _across(coordinate: str) -> str:
  """The axis an x-coordinate measures the distance to (y), and a y-coordinate's (x)."""
  return "y" if coordinate.startswith("x") else "x"


def _axis_distance_targets(F: Formulas, f) -> list:
  """`_axis_targets` of a figure's worked point: a segment's or line's midpoint (of its marked
  points), a triangle's centroid, a rectangle's centre."""
  k, n = f["kind"], f["names"]
  if k in ("segment", "line"):
    a, b = n
    return _axis_targets(F, tuple(F.midpoint(a, b, ax) for ax in "xy"),
                         f"the midpoint of {a}{b}")
  if k == "triangle":
    return _axis_targets(F, tuple(F.centroid(n, ax) for ax in "xy"),
                         f"the centroid of triangle {''.join(n)}")
  if k == "rectangle":
    return _axis_targets(F, tuple(F.midpoint(n[0], n[2], ax) for ax in "xy"),
                         f"the centre of rectangle {''.join(n)}")
  return []


def _deep_targets(F: Formulas, f) -> list:
  """Quantities one or two steps past a figure's deepest: the triangle a line cuts off with the
  axes and the piece of the line between them (6 steps: the changes, the slope, both
  intercepts), and the square and equilateral triangle inscribed in a circle (6 steps where the
  radius comes from a point on the circle). Before them a six-step analytic figure offered at
  most one quantity of that depth (the inscribed square's area), so `--steps 6:6` was never
  multiple choice. Priority 1, like the one-step quantities: asked where nothing else has the
  wanted depth."""
  if f["kind"] == "line":
    return _axes_targets(F, f)
  if f["kind"] == "circle":
    return _inscribed_targets(F, f["names"][0], F.radius(f))
  return []


def _axes_targets(F: Formulas, f) -> list:
  (px, py), (qx, qy) = f["pts"]
  if px * qy == py * qx:  # through the origin: the axes cut off nothing
    return []
  a, b = f["names"]
  yi, xi = F.intercept(a, b), F.x_intercept(a, b)
  area = F.add(f"S(△{a}{b}, axes)", "|{0} · {1}| / 2", "Abs(q0*q1)/2", (yi, xi),
               f"Line {a}{b} and the axes bound a right triangle whose legs are the intercepts",
               [("Abs(q0*q1)", "forgot to halve"),
                ("(Abs(q0) + Abs(q1))/2", "added the legs instead of multiplying them")])
  piece = F.add(f"ℓ({a}{b})", "√({0}² + {1}²)", "sqrt(q0**2 + q1**2)", (yi, xi),
                (f"The part of {a}{b} between the axes is the hypotenuse of the right "
                 "triangle whose legs are the intercepts"),
                [("Abs(q0) + Abs(q1)", "added the legs instead of using Pythagoras"),
                 ("sqrt(Abs(q0**2 - q1**2))", "subtracted the squares")])
  return [Target(area, f"the area of the triangle that line {a}{b} cuts off with the axes",
                 [f"What is the area of the triangle bounded by line {a}{b} and the two axes?",
                  f"Find the area of the region enclosed by line {a}{b}, the x-axis and the "
                  "y-axis."]),
          Target(piece, f"the length of the part of line {a}{b} between the axes",
                 [f"How long is the piece of line {a}{b} between the x-axis and the y-axis?",
                  f"Find the distance between the points where line {a}{b} crosses the "
                  "axes."])]


def _inscribed_targets(F: Formulas, o: str, radius: str) -> list:
  side = F.add(f"a(□{o})", "{0} / √2", "q0/sqrt(2)", (f"d({o})",),
               f"The diameter of circle {o} is the inscribed square's diagonal, √2 times its "
               "side", [("q0/2", "took half the diagonal as the side"),
                        ("q0*sqrt(2)", "multiplied by √2 instead of dividing")])
  tri = F.add(f"a(△{o})", "√3 · {0}", "sqrt(3)*q0", (radius,),
              f"A side of an equilateral triangle inscribed in circle {o} is √3 times the "
              "radius", [("2*q0", "took the side for the diameter"),
                         ("sqrt(2)*q0", "used the square's √2")])
  tri_area = F.add(f"S(△{o})", "√3 / 4 · {0}²", "sqrt(3)*q0**2/4", (tri,),
                   "An equilateral triangle's area is √3/4 times its side squared",
                   [("sqrt(3)*q0**2/2", "used √3/2 for √3/4"),
                    ("q0**2/2", "took half the side squared")])
  return [Target(side, f"the side of the square inscribed in circle {o}",
                 [f"How long is a side of the square inscribed in circle {o}?",
                  f"Find the side length of the largest square that fits in circle {o}."]),
          Target(tri, f"the side of the equilateral triangle inscribed in circle {o}",
                 [f"How long is a side of an equilateral triangle inscribed in circle {o}?",
                  f"Find the side of the equilateral triangle whose vertices lie on circle "
                  f"{o}."]),
          Target(tri_area, f"the area of the equilateral triangle inscribed in circle {o}",
                 [f"What is the area of an equilateral triangle inscribed in circle {o}?",
                  f"Find the area of the equilateral triangle whose vertices lie on circle "
                  f"{o}."])]


CROSS_PAIRS = 4


def _cross_pairs(plot: Plot) -> list:
  """Up to CROSS_PAIRS pairs of marked points of different figures, in the figures' order, of
  which every line quantity exists and is worked, not read (neither vertical nor horizontal,
  neither point on an axis, the line not through the origin, nor through another marked point
  on an axis, whose printed coordinate is then an intercept: 4 of 6,092 targets did)."""
  marks = [list(f["names"]) + ([f["on"][0]] if "on" in f else []) for f in plot.figs]
  pairs = sorted(((ka + kb, i, j, a, b) for i, j in itertools.combinations(range(len(marks)), 2)
                  for (ka, a), (kb, b) in itertools.product(enumerate(marks[i]),
                                                            enumerate(marks[j]))))
  on_axis = [plot.pts[n] for n in plot.pts if 0 in tuple(plot.pts[n])]
  out = []
  for *_, a, b in pairs:
    (px, py), (qx, qy) = plot.pts[a], plot.pts[b]
    if (px != qx and py != qy and 0 not in (px, py, qx, qy) and px * qy != py * qx
        and not any((qx - px) * (my - py) == (qy - py) * (mx - px) for mx, my in on_axis)):
      out.append((a, b))
  return out[:CROSS_PAIRS]


def _cross_targets(F: Formulas, plot: Plot) -> list:
  """Quantities of the line through two marked points of different figures (its length,
  midpoint, slope, intercepts, and the triangle it cuts off with the axes), so a set of four
  lengths, slopes, intercepts, coordinates or areas is there at every depth from 1 to 6. Without
  them most analytic figures had one or two quantities of a kind: of the 34 analytic problems
  drawn multiple choice in 150 of seed 3 at `--mc 0.7`, 20 had a set of one kind at `--steps
  1:1`, 18 at 4:6 and 5 at 6:6; with them 30, 34 and 34. A variant whose points give other pairs
  asks about those (its letters are its own anyway). Made for sets of one kind (`--option_kinds
  same`, the default); until 2026-12-06 for those only, and `mixed` then had no question of 11
  or 12 steps on most figures and gave up."""
  out = []
  for a, b in _cross_pairs(plot):
    out += [Target(F.dist(a, b), f"the distance between {a} and {b}",
                   [f"What is the distance between {a} and {b}?",
                    f"How far apart are points {a} and {b}?"]),
            Target(F.slope(a, b), f"the slope of line {a}{b}",
                   [f"What is the slope of the line through {a} and {b}?",
                    f"Find the gradient of line {a}{b}."]),
            Target(F.intercept(a, b), f"the y-intercept of line {a}{b}",
                   [f"Where does the line through {a} and {b} cross the y-axis (give y)?",
                    f"What is the y-intercept of line {a}{b}?"]),
            Target(F.x_intercept(a, b), f"the x-intercept of line {a}{b}",
                   [f"Where does the line through {a} and {b} cross the x-axis (give x)?",
                    f"What is the x-intercept of line {a}{b}?"])]
    out += [Target(F.midpoint(a, b, ax), f"the {ax}-coordinate of the midpoint of {a}{b}",
                   [f"What is the {ax}-coordinate of the midpoint of {a}{b}?",
                    f"Find the {ax}-coordinate of the point halfway between {a} and {b}."])
            for ax in ("x", "y")]
    out += _axes_targets(F, {"names": (a, b), "pts": (plot.pts[a], plot.pts[b])})
    out += _axis_distance_targets(F, {"kind": "segment", "names": (a, b)})
  return out


def targets(plot: Plot) -> tuple:
  """(formulas, askable quantities)."""
  F = Formulas(plot)
  out = []
  for f in plot.figs:
    if f["kind"] == "circle":
      out += _circle_targets(F, f)
    elif f["kind"] in ("segment", "line"):
      out += _line_targets(F, f)
    elif f["kind"] in ("triangle", "rectangle"):
      out += _polygon_targets(F, f)
  points = [f for f in plot.figs if f["kind"] == "point"]
  for g in plot.figs:
    if points and g["kind"] in ("line", "circle"):
      out += _pair_targets(F, points[0], g)
  if not out:
    raise ProgramRejected("no askable quantity among these figures (points only)")
  for f in plot.figs:  # after the others: their places in the list stay as they were
    for t in _one_step_targets(F, f):
      t.priority = 1
      out.append(t)
  for f in plot.figs:
    for t in _deep_targets(F, f):
      t.priority = 1
      out.append(t)
  for f in plot.figs:
    for t in _axis_distance_targets(F, f):
      t.priority = 1
      out.append(t)
  taken = {t.name for t in out}
  for t in _cross_targets(F, plot):
    if t.name not in taken:
      t.priority = 1
      taken.add(t.name)
      out.append(t)
  for t in out:  # slopes, intercepts, coordinates and changes may be negative
    t.signed = t.name.startswith(SIGNED)
  return F, out


# ---------------------------------------------------------------- independent measures


def measure(plot: Plot, name: str) -> float:
  """Re-measure a named quantity from the coordinates alone (other formulas than the chain's)."""
  P = {k: np.asarray(v, float) for k, v in plot.pts.items()}
  circles = {f["names"][0]: f for f in plot.figs if f["kind"] == "circle"}
  deep = _deep_measure(P, circles, name)
  if deep is not None:
    return deep
  m = re.fullmatch(r"\|(.+)\|", name)
  if m and m.group(1)[0] in "xyȳ":  # a worked point's distance to an axis (xₘ, x̄, yₘ, ȳ)
    return abs(measure(plot, m.group(1)))
  m = re.fullmatch(r"([xy])ₘ\((\w)(\w)\)", name)
  if m:
    return _midpoint(P[m.group(2)], P[m.group(3)])["xy".index(m.group(1))]
  m = re.fullmatch(r"(x̄|ȳ)\((\w)(\w)(\w)\)", name)
  if m:
    return _centroid(*(P[m.group(k)] for k in (2, 3, 4)))[0 if m.group(1) == "x̄" else 1]
  m = re.fullmatch(r"(Δx|Δy|\||m|m⊥|b|x₀)\(?(\w)(\w)\)?\|?", name)
  if m:
    return _line_measure(m.group(1), P[m.group(2)], P[m.group(3)])
  m = re.fullmatch(r"([rSCd]|S\(□)\(?(\w)\)", name)
  if m and m.group(2) in circles:
    r = _radius(circles[m.group(2)])
    if m.group(1) == "C":  # along the circle as a polygon of 20,000 sides: ~3 ms, so only here
      return G.perimeter(G.arc_points(circles[m.group(2)]["pts"][0], r, 0, 360, 20001))
    return {"r": r, "S": math.pi * r * r, "d": 2 * r, "S(□": 2 * r * r}[m.group(1)]
  m = re.fullmatch(r"([SP])\((\w+)\)", name)
  if m:
    poly = [P[c] for c in m.group(2)]
    if m.group(1) == "P":
      return G.perimeter(poly)
    s = [math.dist(poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))]
    return _heron(*s) if len(poly) == 3 else s[0] * s[1]
  m = re.fullmatch(r"d\((\w), (\w)(\w)\)", name)
  if m:
    a, b = P[m.group(2)], P[m.group(3)]
    far = 1e4 * (b - a)
    return float(G.seg_dist([P[m.group(1)]], a - far, a + far)[0])
  m = re.fullmatch(r"t\((\w), (\w)\)", name)
  if m:
    return math.sqrt(math.dist(P[m.group(1)], P[m.group(2)]) ** 2
                     - _radius(circles[m.group(2)]) ** 2)
  raise KeyError(f"engine: {name!r} is not a measurable quantity of this plot")


def _deep_measure(P: dict, circles: dict, name: str) -> float | None:
  """`_deep_targets`' quantities, or None for any other name."""
  m = re.fullmatch(r"(S\(△|ℓ\()(\w)(\w)(, axes)?\)", name)
  if m:  # where the line meets the axes, by a linear solve; the area by Heron
    a, b = P[m.group(2)], P[m.group(3)]
    legs = abs(_line_measure("b", a, b)), abs(_line_measure("x₀", a, b))
    return math.hypot(*legs) if m.group(1) == "ℓ(" else _heron(*legs, math.hypot(*legs))
  m = re.fullmatch(r"(a\(□|a\(△|S\(△)(\w)\)", name)
  if m:  # a polygon of points on the drawn circle (its sampled radius), at 90° or 120° apart
    c, r = P[m.group(2)], _radius(circles[m.group(2)])
    pts = G.arc_points(c, r, 0, 360, 5 if "□" in m.group(1) else 4)[:3]
    sides = [math.dist(pts[i], pts[(i + 1) % 3]) for i in range(3)]
    return sides[0] if m.group(1).startswith("a") else _heron(*sides)
  return None


def _heron(a, b, c) -> float:
  h = (a + b + c) / 2
  return math.sqrt(max(h * (h - a) * (h - b) * (h - c), 0.0))


def _line_measure(kind, a, b) -> float:
  if kind == "Δx":
    return float(b[0] - a[0])
  if kind == "Δy":
    return float(b[1] - a[1])
  if kind == "|":
    return math.dist(a, b)
  slope = math.tan(math.atan2(b[1] - a[1], b[0] - a[0]))
  m_, c_ = G.solve2([[a[0], 1.0], [b[0], 1.0]], [a[1], b[1]])
  return {"m": slope, "m⊥": -1 / slope, "b": float(c_), "x₀": float(-c_ / m_)}[kind]


def _midpoint(a, b) -> np.ndarray:
  """Where AB meets its perpendicular bisector (the points as far from A as from B)."""
  d = b - a
  return G.solve2([[2 * d[0], 2 * d[1]], [-d[1], d[0]]],
                  [G.dot2(b, b) - G.dot2(a, a), -d[1] * a[0] + d[0] * a[1]])


def _centroid(a, b, c) -> np.ndarray:
  """Where the medians from A and from B cross."""
  ma, mb = (b + c) / 2, (a + c) / 2
  t = G.solve2(np.column_stack([ma - a, -(mb - b)]), b - a)
  return a + t[0] * (ma - a)


def _radius(f) -> float:
  """From the drawn circle: the mean distance of sampled boundary points to the centre."""
  c = np.asarray(f["pts"][0], float)
  return float(np.hypot(*(G.arc_points(c, f["r"], 0, 360, 37) - c).T).mean())


# ---------------------------------------------------------------- text and drawing


def _pt(n, p):
  return f"{n}({p[0]}, {p[1]})"


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
    if "on" in fig:
      return f"A circle is centred at {pts} and passes through {_pt(*fig['on'])}."
    return f"A circle is centred at {pts} with radius {fig['r']}."
  return f"{'Triangle' if k == 'triangle' else 'Rectangle'} {''.join(n)} has vertices {pts}."


def facts(plot: Plot) -> list:
  out = [{"id": f"pt:{n}", "text": _pt(n, p), "numeric": True} for n, p in plot.pts.items()]
  for f in plot.figs:
    if f["kind"] == "circle" and "on" not in f:
      out.append({"id": f"radius:{f['names'][0]}", "numeric": True,
                  "text": f"centred at {_pt(f['names'][0], f['pts'][0])} with radius {f['r']}"})
  return out


def draw(plot: Plot) -> dict:
  c = R.axes(plot.view, equal=True)
  its = []
  for k, f in enumerate(plot.figs):
    its += _items(f, R.COLORS[k % len(R.COLORS)], plot.view)
  R.items(c, its)
  R.axis_names(c, plot.view)
  R.tick_labels(c, plot.view)
  img = c.finish()
  return {"single": (img, sorted(set(c.drawn)), c)}


def _items(f, col, view) -> list:
  pts = [tuple(map(float, p)) for p in f["pts"]]
  its = []
  if f["kind"] == "segment":
    its.append({"op": "polyline", "segments": [pts], "color": col})
  elif f["kind"] == "line":
    s = _samples(f, view)
    its.append({"op": "polyline", "segments": [[tuple(s[0]), tuple(s[-1])]], "color": col})
  elif f["kind"] == "circle":
    its += _circle_items(f, pts[0], col)
  elif f["kind"] in ("triangle", "rectangle"):
    its.append({"op": "polygon", "pts": pts, "color": col,
                "fill": tuple(int(255 - 0.12 * (255 - v)) for v in col)})
  cen = np.mean(pts, 0)
  named = list(zip(f["names"], f["pts"])) + ([f["on"]] if "on" in f else [])
  for n, p in named:
    its.append({"op": "point", "at": tuple(map(float, p)), "color": col})
    its.append({"op": "label", "at": tuple(map(float, p)), "text": _pt(n, p), "size": 12,
                "color": R.INK, "direction": _away(f, n, p, cen), "id": f"pt:{n}"})
  return its


def _away(f, n, p, cen) -> tuple:
  """Where a point's label goes first (pixel direction): away from its figure's middle."""
  if f["kind"] in ("triangle", "rectangle") or "on" in f and n == f["on"][0]:
    v = np.subtract(p, cen)
    if np.hypot(*v) > 1e-9:
      return (float(v[0]), float(-v[1]))
  return (0.0, 1.0) if f["kind"] == "circle" else (0.0, -1.0)


def _circle_items(f, centre, col) -> list:
  its = [{"op": "polygon", "pts": G.arc_points(centre, f["r"], 0, 360, 120)[:-1], "color": col}]
  if "on" in f:
    return its
  ang = math.radians(float(f.get("radius_angle", 300)))
  e = (centre[0] + f["r"] * math.cos(ang), centre[1] + f["r"] * math.sin(ang))
  its.append({"op": "polyline", "segments": [[centre, e]], "color": col, "width": 1.4})
  mid = ((centre[0] + e[0]) / 2, (centre[1] + e[1]) / 2)
  its.append({"op": "label", "at": mid, "text": f"r = {f['r']}", "size": 12, "color": col,
              "direction": (math.sin(ang), math.cos(ang)), "radii": (10, 14, 19, 25, 32, 40),
              "id": f"radius:{f['names'][0]}"})
  return its


# The deepest quantities an analytic figure has of its own (rare 8s and 10s aside): a program
# wanting more asks sums of two of a kind (`problems.add_sums`).
DEEPEST = 6


def _key(plot: Plot) -> str:
  """The plot's content as text, for the held-out split (`writer.check_split`)."""
  return f"{plot.view}|{[(f['kind'], f['pts'], f.get('r'), f.get('on')) for f in plot.figs]}"


def make(srng, vrng, wanted: int, same_kind: bool = False, steps: tuple = (1, 6)) -> Scene:
  plot = realize(program(srng, wanted), vrng)
  F, tgts = targets(plot)
  x0, x1, y0, y1 = plot.view
  intro = C.pick(vrng, C.ANALYTIC_INTRO, x0=x0, x1=x1, y0=y0, y1=y1)
  sentences = [_sentence(f) for f in plot.figs]
  scene = Scene(
    domain="analytic", family="+".join(f["kind"] for f in plot.figs), givens=F.givens,
    derivs=F.derivs, targets=tgts, measure=lambda n: measure(plot, n), facts=facts(plot),
    context={"text_dominant": " ".join(sentences), "text_lite": "", "vision_dominant": ""},
    caption=[intro] + sentences, generation=[intro],
    key=lambda: _key(plot),
    draw=lambda: draw(plot), kind_of=kind_of)
  if wanted > DEEPEST:
    add_sums(scene, wanted)
  return scene


def kind_of(name: str) -> str | None:
  """What sort of quantity a name is: similar quantities are what a student confuses, and what a
  multiple-choice question shows beside the one it asks (`problems.option_set`)."""
  if name.startswith(("x_", "y_", "xₘ(", "yₘ(", "x̄(", "ȳ(")):
    return "coordinate"
  if name.startswith(("|", "r(", "d(", "t(", "ℓ(", "a(")):
    return "length"
  if name.startswith(("m(", "m⊥(")):
    return "slope"
  if name.startswith("S("):
    return "area"
  if name.startswith(("P(", "C(")):
    return "perimeter"
  if name.startswith(("b(", "x₀(")):
    return "intercept"
  return None
