"""Plane shapes: coordinates, the facts a problem states about them, and the formulas (with the
wrong formulas students use) that derive their other quantities.

Each builder draws one shape of its kind on a base edge A->B (interior on the left) whose exact
length is known, takes its own numbers from the value generator, and returns a `Shape`: its
points, boundary pieces (lines and arcs, for drawing and re-measuring), free edges others may
attach to, facts, givens and derivations. `Shape.measure` re-measures any quantity from the
coordinates alone: the independent check of every deduction.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import sympy as sp

from . import geometry as G
from .captions import one_of
from .exact import TRIG, Deriv
from .notation import human

ATTACHABLE = ("square", "rectangle", "right_triangle", "isosceles_triangle",
              "equilateral_triangle", "parallelogram", "trapezoid", "semicircle", "sector")
HAS_EDGES = ATTACHABLE[:-2] + ("sector",)  # shapes another can attach to
ARTICLE = {"square": "square", "rectangle": "rectangle", "right_triangle": "right triangle",
           "isosceles_triangle": "isosceles triangle",
           "equilateral_triangle": "equilateral triangle",
           "parallelogram": "parallelogram", "trapezoid": "right trapezoid",
           "semicircle": "semicircle", "sector": "sector", "circle": "circle"}


@dataclasses.dataclass
class Fact:
  """Something the problem states: a numeric given or a structural property.

  text: the sentence the text versions use; mark: how the renderer draws it (kind +
  coordinates); numeric: values go in the diagram for text-lite and vision-dominant, structure
  marks only in vision-dominant.
  """
  id: str
  text: str
  mark: dict
  numeric: bool
  value: object = None


@dataclasses.dataclass
class Shape:
  kind: str
  letters: list
  pts: np.ndarray
  pieces: list          # boundary, ccw: ("line", i, j) or ("arc", i, j, center xy)
  attach: list          # free straight edges (i, j), ccw
  facts: list
  derivs: dict
  targets: dict         # name -> "area" | "perimeter" | "length" | "arc" | an EXTRA kind
  givens: dict
  parent_edge: str = ""
  heights: dict = dataclasses.field(default_factory=dict)  # name -> (vertex, base i, base j)

  @property
  def poly(self) -> str:
    return "".join(self.letters)

  @property
  def title(self) -> str:
    if self.kind == "circle":
      return f"the circle centred at {self.letters[0]}"
    if self.kind == "semicircle":
      return f"the semicircle with diameter {edge(self.letters[0], self.letters[1])}"
    return f"{ARTICLE[self.kind]} {self.poly}"

  @property
  def short(self) -> str:
    """How a question names it: ABCD, or the semicircle's title."""
    return self.title if self.kind in ("circle", "semicircle") else self.poly

  def outline(self) -> np.ndarray:
    """Closed polygon (arcs sampled) for overlap tests and drawing."""
    out = []
    for pc in self.pieces:
      if pc[0] == "line":
        out.append(self.pts[pc[1]])
      else:
        c, r, a0, sw = self.arc(pc)
        out.extend(G.arc_points(c, r, a0, a0 + sw, arc_samples(sw))[:-1])
    return np.array(out)

  def radius(self) -> np.ndarray | None:
    """The root circle's radius OR, drawn as a segment (its length may be the given), or None."""
    return self.pts[:2] if self.kind == "circle" else None

  def arc(self, pc):
    """(center, radius, start angle, sweep) of an arc piece, all measured from coordinates."""
    _, i, j, c = pc
    r = float(np.hypot(*(self.pts[i] - c)))
    a0 = G.angle_of(self.pts[i] - c)
    sw = (G.angle_of(self.pts[j] - c) - a0) % 360.0
    return c, r, a0, (360.0 if i == j else (sw if sw > 1e-9 else 360.0))

  def measure(self, name: str) -> float:
    """Re-measure a quantity from coordinates only: the independent check of the chain."""
    kind = self.targets.get(name)
    if kind == "area":
      return self._area()
    if kind == "perimeter":
      return sum(float(np.hypot(*(self.pts[pc[2]] - self.pts[pc[1]]))) if pc[0] == "line"
                 else self.arc(pc)[1] * math.radians(self.arc(pc)[3]) for pc in self.pieces)
    if kind == "arc":
      _, r, _, sw = self.arc(next(p for p in self.pieces if p[0] == "arc"))
      return r * math.radians(sw)
    if kind == "circumradius":  # where two sides' perpendicular bisectors meet
      a, b, c = self.pts[:3]
      return math.dist(_circumcentre(a, b, c), a)
    if kind == "radius" and self.kind == "semicircle":
      return self.arc(self.pieces[1])[1]
    if kind == "inscribed_square":  # four points of the drawn circle, a quarter turn apart
      c, r, _, _ = self.arc(self.pieces[0])
      return G.shoelace(G.arc_points(c, r, 0, 360, 5)[:4])
    if kind == "height":  # the vertex's distance to the base's line, by the cross product
      v, i, j = (self.pts[k] for k in self.heights[name])
      d = j - i
      return abs(d[0] * (v - i)[1] - d[1] * (v - i)[0]) / float(np.hypot(*d))
    a, b = name[0], name[1]
    return float(np.hypot(*(self.pts[self.letters.index(a)] - self.pts[self.letters.index(b)])))

  def _area(self) -> float:
    chord = [self.pts[pc[1]] for pc in self.pieces]
    a = G.shoelace(chord) if len(chord) > 2 else 0.0
    for pc in self.pieces:
      if pc[0] == "arc":
        _, r, _, sw = self.arc(pc)
        t = math.radians(sw)
        a += r * r / 2 * (t - math.sin(t))
    return a


def _circumcentre(a, b, c) -> np.ndarray:
  """The point as far from a as from b and from c (two linear equations)."""
  return G.solve2(2 * np.array([b - a, c - a], float),
                  [G.dot2(b, b) - G.dot2(a, a), G.dot2(c, c) - G.dot2(a, a)])


# Quantities a shape offers beyond its sides, area and perimeter: asked only where the figure
# has no other question of the wanted depth (priority 1 in `plane.targets`), and members of
# option sets, so a one- or two-shape figure has four quantities more often. The last three
# give the shapes with three one-step quantities a fourth: the circle through a square's, a
# rectangle's or a triangle's vertices, a sector's chord, the square inscribed in a circle.
EXTRA = ("diagonal", "height", "diameter", "radius", "circumradius", "chord", "inscribed_square")


def edge(a: str, b: str) -> str:
  return "".join(sorted(a + b))


def area_name(s: str) -> str:
  return f"S({s})"


def perim_name(s: str) -> str:
  return f"P({s})"


def _xy(p) -> list:
  return [float(p[0]), float(p[1])]


def len_fact(name, value, p, q, away):
  return Fact(f"len:{name}", f"{name} = {human(value)}",
              {"type": "edge_label", "p": _xy(p), "q": _xy(q), "away": _xy(away),
               "text": human(value)}, True, value)


def angle_fact(name, deg, v, p, q):
  return Fact(f"angle:{name}", f"{name} = {deg}°",
              {"type": "angle_label", "v": _xy(v), "p": _xy(p), "q": _xy(q), "text": f"{deg}°"},
              True, sp.Integer(deg))


def right_mark(v, p, q):
  return {"type": "right_angle", "v": _xy(v), "p": _xy(p), "q": _xy(q)}


def ticks(pairs, n):
  return {"type": "ticks", "segs": [[_xy(a), _xy(b)] for a, b in pairs], "n": n}


def struct_fact(poly, text, items=None):
  mark = ({"type": "group", "items": items} if items else {"type": "inherent"})
  return Fact(f"kind:{poly}", text, mark, False)


class _Parts:
  """What a builder accumulates: facts, givens, derivations, askable quantities."""

  def __init__(self, letters):
    self.ltr = letters
    self.facts, self.derivs, self.givens, self.targets = [], {}, {}, {}
    self.extras, self.heights = {}, {}

  def e(self, i, j) -> str:
    return edge(self.ltr[i], self.ltr[j])

  def derive(self, name, template, expr, inputs, value, why, slips=()):
    self.derivs[name] = Deriv(name, template, expr, tuple(inputs), value, why, slips=tuple(slips))

  def extra(self, name, kind, template, expr, inputs, why, slips=(), foot=None):
    """A derived quantity of an EXTRA kind; `foot`: a height's (vertex, base i, base j)."""
    self.derive(name, template, expr, inputs, None, why, slips)
    self.extras[name] = kind
    if foot is not None:
      self.heights[name] = foot

  def diagonal(self, i, j, legs, why):
    """A diagonal as the hypotenuse over two perpendicular sides."""
    self.extra(self.e(i, j), "diagonal", "√({0}² + {1}²)", "sqrt(q0**2 + q1**2)", legs, why,
               [("q0 + q1", "added the sides instead of using Pythagoras"),
                ("sqrt(Abs(q0**2 - q1**2))", "subtracted the squares")])

  def circumradius(self, template, expr, inputs, why, slips):
    poly = "".join(self.ltr)
    self.extra(f"R({poly})", "circumradius", template, expr, inputs,
               f"The circle through the vertices of {poly}: {why}", slips)

  def height(self, v, i, j, template, expr, inputs, why, slips):
    name = f"h({self.ltr[v]}, {self.e(i, j)})"
    self.extra(name, "height", template, expr, inputs, why, slips, foot=(v, i, j))

  def give(self, name, value, fact):
    self.givens[name] = value
    self.facts.append(fact)

  def shape(self, kind, pts, pieces, attach, struct) -> Shape:
    poly = "".join(self.ltr)
    self.targets[area_name(poly)] = "area"
    self.targets[perim_name(poly)] = "perimeter"
    self.targets.update(self.extras)  # after the others: their places stay as they were
    return Shape(kind, list(self.ltr), np.asarray(pts, float), pieces, list(attach),
                 self.facts + [struct], self.derivs, self.targets, self.givens,
                 heights=self.heights)


def _int_between(vrng, lo: float, hi: float) -> sp.Integer:
  lo, hi = max(2, int(lo)), max(3, int(hi))
  return sp.Integer(int(vrng.integers(lo, hi + 1)))


def perimeter_sum(p: _Parts, sides: list):
  poly = "".join(p.ltr)
  tpl = " + ".join("{%d}" % k for k in range(len(sides)))
  expr = " + ".join(f"q{k}" for k in range(len(sides)))
  p.derive(perim_name(poly), tpl, expr, sides, None, f"The perimeter adds the sides of {poly}",
           [(" + ".join(f"q{k}" for k in range(len(sides) - 1)), "left out one side")])


RECT_SLIPS = [("2*(q0 + q1)", "used the perimeter formula for the area"),
              ("q0 + q1", "added the sides instead of multiplying them")]
PERIM2_SLIPS = [("q0*q1", "multiplied the sides instead of adding them"),
                ("q0 + q1", "added only two of the four sides")]


def quad(kind, A, B, letters, b, vrng, new_letter) -> Shape:
  """square, rectangle, parallelogram, right trapezoid on base AB."""
  u, n = G.unit(A, B), G.left(G.unit(A, B))
  bf = float(b)
  p = _Parts(letters + [new_letter(), new_letter()])
  poly = "".join(p.ltr)
  ab, bc, cd, da = p.e(0, 1), p.e(1, 2), p.e(2, 3), p.e(3, 0)
  if kind == "square":
    pts = [A, B, B + bf * n, A + bf * n]
    struct = _square(p, pts, b, poly, ab, bc, cd, da)
  elif kind == "rectangle":
    h = _int_between(vrng, bf * 0.5, bf * 1.4)
    pts = [A, B, B + float(h) * n, A + float(h) * n]
    struct = _rectangle(p, pts, b, h, poly, ab, bc, cd, da)
  elif kind == "parallelogram":
    th = one_of(vrng, [45, 60, 120, 135])
    s = _int_between(vrng, bf * 0.5, bf * 1.2)
    dvec = float(s) * G.rot(u, th)
    pts = [A, B, B + dvec, A + dvec]
    struct = _parallelogram(p, pts, b, s, th, poly, ab, bc, cd, da)
  else:
    h1 = int(vrng.integers(max(2, int(bf * 0.4)), max(3, int(bf * 1.2)) + 1))
    h2 = h1 + one_of(vrng, [-1, 1]) * int(vrng.integers(1, max(2, h1 // 2) + 1))
    h2 = max(1, h2) if h2 != h1 else h1 + 1
    pts = [A, B, B + h2 * n, A + h1 * n]
    struct = _trapezoid(p, pts, b, sp.Integer(h1), sp.Integer(h2), poly, ab, bc, cd, da)
  for e in (bc, cd, da):
    p.targets[e] = "length"
  pts = np.array(pts)
  return p.shape(kind, pts, [("line", i, (i + 1) % 4) for i in range(4)],
                 [(1, 2), (2, 3), (3, 0)], struct)


def _square(p, pts, b, poly, ab, bc, cd, da):
  why = f"{poly} is a square, so all its sides are equal"
  for e in (bc, cd, da):
    p.derive(e, "{0}", "q0", [ab], None, why)
  p.derive(area_name(poly), "{0}²", "q0**2", [ab], None, f"{poly} is a square",
           [("4*q0", "used the perimeter formula 4·side for the area"),
            ("2*q0", "doubled the side instead of squaring it")])
  p.derive(perim_name(poly), "4 · {0}", "4*q0", [ab], None, f"{poly} is a square",
           [("q0**2", "used the area formula side² for the perimeter"),
            ("3*q0", "counted only three sides")])
  p.extra(p.e(0, 2), "diagonal", "{0} · √2", "q0*sqrt(2)", [ab],
          f"The diagonal of square {poly} is its side times √2",
          [("2*q0", "doubled the side instead of multiplying it by √2"),
           ("q0*sqrt(3)", "used √3 instead of √2")])
  p.circumradius("{0} · √2 / 2", "q0*sqrt(2)/2", [ab], "its radius is half the diagonal",
                 [("q0/2", "took half the side (the inscribed circle's radius)"),
                  ("q0*sqrt(2)", "took the whole diagonal")])
  pts = np.array(pts)
  return struct_fact(poly, f"{poly} is a square",
                     [right_mark(pts[i], pts[i - 1], pts[(i + 1) % 4]) for i in range(4)]
                     + [ticks([(pts[i], pts[(i + 1) % 4]) for i in range(4)], 1)])


def _rectangle(p, pts, b, h, poly, ab, bc, cd, da):
  pts = np.array(pts)
  p.give(bc, h, len_fact(bc, h, pts[1], pts[2], pts.mean(0)))
  why = f"{poly} is a rectangle, so opposite sides are equal"
  p.derive(cd, "{0}", "q0", [ab], None, why)
  p.derive(da, "{0}", "q0", [bc], None, why)
  p.derive(area_name(poly), "{0} · {1}", "q0*q1", [ab, bc], None, f"{poly} is a rectangle",
           RECT_SLIPS)
  p.derive(perim_name(poly), "2 · ({0} + {1})", "2*(q0 + q1)", [ab, bc], None,
           f"{poly} is a rectangle", PERIM2_SLIPS)
  p.diagonal(0, 2, [ab, bc], f"The diagonal {p.e(0, 2)} of rectangle {poly} is the hypotenuse "
             f"over {ab} and {bc}")
  p.circumradius("√({0}² + {1}²) / 2", "sqrt(q0**2 + q1**2)/2", [ab, bc],
                 "its radius is half the diagonal",
                 [("(q0 + q1)/2", "averaged the sides instead of using Pythagoras"),
                  ("sqrt(q0**2 + q1**2)", "took the whole diagonal")])
  return struct_fact(poly, f"{poly} is a rectangle",
                     [right_mark(pts[i], pts[i - 1], pts[(i + 1) % 4]) for i in range(4)])


def _parallelogram(p, pts, b, s, th, poly, ab, bc, cd, da):
  pts = np.array(pts)
  ang = f"∠{p.ltr[1]}{p.ltr[0]}{p.ltr[3]}"
  p.give(da, s, len_fact(da, s, pts[3], pts[0], pts.mean(0)))
  p.give(ang, sp.Integer(th), angle_fact(ang, th, pts[0], pts[1], pts[3]))
  why = f"{poly} is a parallelogram, so opposite sides are equal"
  p.derive(cd, "{0}", "q0", [ab], None, why)
  p.derive(bc, "{0}", "q0", [da], None, why)
  p.derive(area_name(poly), "{0} · {1} · sin({2})", "q0*q1*sin(q2*pi/180)", [ab, da, ang],
           None, f"{poly} is a parallelogram",
           [("q0*q1", "multiplied the sides without the sine of the angle"),
            ("q0*q1*cos(q2*pi/180)", "used cos instead of sin")])
  p.derive(perim_name(poly), "2 · ({0} + {1})", "2*(q0 + q1)", [ab, da], None,
           f"{poly} is a parallelogram", PERIM2_SLIPS)
  p.height(3, 0, 1, "{0} · sin({1})", "q0*sin(q1*pi/180)", [da, ang],
           f"The height of {poly} on {ab} is the side {da} times the sine of {ang}",
           [("q0*cos(q1*pi/180)", "used cos instead of sin"),
            ("q0", "took the slanted side for the height")])
  return struct_fact(poly, f"{poly} is a parallelogram",
                     [ticks([(pts[0], pts[1]), (pts[2], pts[3])], 1),
                      ticks([(pts[1], pts[2]), (pts[3], pts[0])], 2)])


def _trapezoid(p, pts, b, h1, h2, poly, ab, bc, cd, da):
  pts = np.array(pts)
  p.give(da, h1, len_fact(da, h1, pts[3], pts[0], pts.mean(0)))
  p.give(bc, h2, len_fact(bc, h2, pts[1], pts[2], pts.mean(0)))
  right = f"{poly} is a right trapezoid with right angles at {p.ltr[0]} and {p.ltr[1]}"
  p.derive(cd, "√({0}² + ({1} - {2})²)", "sqrt(q0**2 + (q1 - q2)**2)", [ab, da, bc],
           None, right,
           [("sqrt(q0**2 + (q1 + q2)**2)", "added the parallel sides instead of subtracting"),
            ("q0 + Abs(q1 - q2)", "added the legs instead of using Pythagoras")])
  p.derive(area_name(poly), "({0} + {1}) · {2} / 2", "(q0 + q1)*q2/2", [da, bc, ab],
           None, f"{poly} is a right trapezoid with parallel sides {da} and {bc} "
           f"and height {ab}", [("(q0 + q1)*q2", "forgot to halve"),
                                ("q0*q2", "used one parallel side only")])
  perimeter_sum(p, [ab, bc, cd, da])
  for i, j, leg in ((0, 2, bc), (1, 3, da)):
    p.diagonal(i, j, [ab, leg], f"The diagonal {p.e(i, j)} is the hypotenuse over {ab} and {leg}")
  return struct_fact(poly, right, [right_mark(pts[0], pts[3], pts[1]),
                                   right_mark(pts[1], pts[0], pts[2])])


def triangle(kind, A, B, letters, b, vrng, new_letter) -> Shape:
  """right, isosceles or equilateral triangle on base AB."""
  u, n = G.unit(A, B), G.left(G.unit(A, B))
  bf = float(b)
  p = _Parts(letters + [new_letter()])
  poly = "".join(p.ltr)
  ab, bc, ca = p.e(0, 1), p.e(1, 2), p.e(2, 0)
  ang = f"∠{p.ltr[1]}{p.ltr[0]}{p.ltr[2]}"
  if kind == "right_triangle":
    al = one_of(vrng, [30, 45, 60])
    pts = np.array([A, B, B + bf * float(TRIG[al][2]) * n])
    struct = _right_triangle(p, pts, b, al, poly, ab, bc, ca, ang)
  elif kind == "isosceles_triangle":
    th = one_of(vrng, [60, 90, 120])
    pts = np.array([A, B, A + bf * G.rot(u, th)])
    struct = _isosceles(p, pts, b, th, poly, ab, bc, ca, ang)
  else:
    pts = np.array([A, B, A + bf * G.rot(u, 60)])
    why = f"{poly} is an equilateral triangle, so all sides are equal"
    p.derive(bc, "{0}", "q0", [ab], None, why)
    p.derive(ca, "{0}", "q0", [ab], None, why)
    p.derive(area_name(poly), "√3/4 · {0}²", "sqrt(3)/4*q0**2", [ab], None,
             f"{poly} is an equilateral triangle",
             [("sqrt(3)/2*q0**2", "used √3/2 instead of √3/4"),
              ("q0**2/2", "used ½·side² as for a right isosceles triangle"),
              ("sqrt(3)*q0/4", "forgot to square the side")])
    p.height(2, 0, 1, "√3/2 · {0}", "sqrt(3)/2*q0", [ab],
             "The height of an equilateral triangle is √3/2 of its side",
             [("sqrt(3)*q0", "forgot to halve"), ("q0/2", "took half the side")])
    p.circumradius("{0} · √3 / 3", "sqrt(3)*q0/3", [ab],
                   "its centre is the centroid, two thirds down each height",
                   [("sqrt(3)*q0/2", "took the whole height"),
                    ("sqrt(3)*q0/6", "took a third of the height (the inscribed circle's)")])
    struct = struct_fact(poly, f"{poly} is an equilateral triangle",
                         [ticks([(pts[i], pts[(i + 1) % 3]) for i in range(3)], 1)])
  if perim_name(poly) not in p.derivs:
    perimeter_sum(p, [ab, bc, ca])
  p.targets[bc] = p.targets[ca] = "length"
  return p.shape(kind, pts, [("line", 0, 1), ("line", 1, 2), ("line", 2, 0)], [(1, 2), (2, 0)],
                 struct)


def _right_triangle(p, pts, b, al, poly, ab, bc, ca, ang):
  p.give(ang, sp.Integer(al), angle_fact(ang, al, pts[0], pts[1], pts[2]))
  why = f"In right triangle {poly} (right angle at {p.ltr[1]})"
  p.derive(bc, "{0} · tan({1})", "q0*tan(q1*pi/180)", [ab, ang], None, why,
           [("q0*sin(q1*pi/180)", "used sin instead of tan"),
            ("q0/tan(q1*pi/180)", "divided by tan instead of multiplying")])
  p.derive(ca, "{0} / cos({1})", "q0/cos(q1*pi/180)", [ab, ang], None, why,
           [("q0*cos(q1*pi/180)", "multiplied by cos instead of dividing"),
            ("q0/sin(q1*pi/180)", "used sin instead of cos")])
  p.derive(area_name(poly), "{0} · {1} / 2", "q0*q1/2", [ab, bc], None,
           f"{poly} is a right triangle with legs {ab} and {bc}",
           [("q0*q1", "forgot the ½ of a triangle's area")])
  p.height(1, 2, 0, "{0} · sin({1})", "q0*sin(q1*pi/180)", [ab, ang],
           f"The height from the right angle {p.ltr[1]} is {ab} times the sine of {ang}",
           [("q0*cos(q1*pi/180)", "used cos instead of sin"),
            ("q0*tan(q1*pi/180)", "used tan instead of sin")])
  p.circumradius("{0} / (2 · cos({1}))", "q0/(2*cos(q1*pi/180))", [ab, ang],
                 f"the hypotenuse {ca} = {ab} / cos({ang}) is its diameter",
                 [("q0/cos(q1*pi/180)", "took the whole hypotenuse"),
                  ("q0/(2*sin(q1*pi/180))", "used sin instead of cos")])
  return struct_fact(poly, f"{poly} is a right triangle with the right angle at {p.ltr[1]}",
                     [right_mark(pts[1], pts[0], pts[2])])


def _isosceles(p, pts, b, th, poly, ab, bc, ca, ang):
  p.give(ang, sp.Integer(th), angle_fact(ang, th, pts[0], pts[1], pts[2]))
  p.derive(ca, "{0}", "q0", [ab], None, f"{poly} is isosceles with {ab} = {ca}")
  p.derive(bc, "2 · {0} · sin({1} / 2)", "2*q0*sin(q1*pi/360)", [ab, ang],
           None, f"In isosceles triangle {poly} with apex "
           f"{p.ltr[0]}, the base is twice the leg times the sine of half the apex angle",
           [("2*q0*cos(q1*pi/360)", "used cos instead of sin"),
            ("2*q0*sin(q1*pi/180)", "used the whole apex angle instead of half")])
  p.derive(area_name(poly), "{0} · {1} · sin({2}) / 2", "q0*q1*sin(q2*pi/180)/2", [ab, ca, ang],
           None, f"{poly} has sides {ab}, {ca} around the angle {ang}",
           [("q0*q1*sin(q2*pi/180)", "forgot the ½"),
            ("q0*q1*cos(q2*pi/180)/2", "used cos instead of sin")])
  p.height(0, 1, 2, "{0} · cos({1} / 2)", "q0*cos(q1*pi/360)", [ab, ang],
           f"The height from the apex {p.ltr[0]} halves the apex angle {ang}",
           [("q0*sin(q1*pi/360)", "used sin instead of cos"),
            ("q0*cos(q1*pi/180)", "used the whole apex angle instead of half")])
  return struct_fact(poly, f"{poly} is an isosceles triangle with {ab} = {ca}",
                     [ticks([(pts[0], pts[1]), (pts[0], pts[2])], 1)])


def semicircle(A, B, letters, b) -> Shape:
  p = _Parts(list(letters))
  poly = "".join(p.ltr)
  ab = p.e(0, 1)
  p.derive(f"arc {poly}", "π · {0} / 2", "pi*q0/2", [ab], None,
           f"The arc of a semicircle with diameter {ab} is half its circumference",
           [("pi*q0", "used the diameter as the radius"),
            ("pi*q0**2/8", "used the area formula")])
  p.derive(area_name(poly), "π · {0}² / 8", "pi*q0**2/8", [ab], None,
           f"A semicircle with diameter {ab} is half the circle of radius {ab}/2",
           [("pi*q0**2/2", "used the diameter as the radius"),
            ("pi*q0**2/4", "took the whole circle"), ("pi*q0/2", "used the arc-length formula")])
  p.derive(perim_name(poly), "{0} + {1}", "q0 + q1", [ab, f"arc {poly}"], None,
           "The perimeter is the diameter plus the arc", [("q1", "left out the diameter")])
  p.extra(f"r({poly})", "radius", "{0} / 2", "q0/2", [ab], "The radius is half the diameter",
          [("q0", "took the diameter for the radius")])
  p.targets[f"arc {poly}"] = "arc"
  M = (np.asarray(A, float) + np.asarray(B, float)) / 2
  return p.shape("semicircle", np.array([A, B]), [("line", 0, 1), ("arc", 1, 0, M)], [],
                 struct_fact(poly, f"the semicircle has diameter {ab}"))


def sector(A, B, letters, b, vrng, new_letter) -> Shape:
  u = G.unit(A, B)
  p = _Parts(letters + [new_letter()])
  phi = one_of(vrng, [30, 45, 60, 90, 120])
  pts = np.array([A, B, np.asarray(A, float) + float(b) * G.rot(u, phi)])
  poly = "".join(p.ltr)
  ab, ca = p.e(0, 1), p.e(2, 0)
  ang = f"∠{p.ltr[1]}{p.ltr[0]}{p.ltr[2]}"
  p.give(ang, sp.Integer(phi), angle_fact(ang, phi, pts[0], pts[1], pts[2]))
  p.derive(ca, "{0}", "q0", [ab], None, f"{ab} and {ca} are radii of sector {poly}")
  arcn = f"arc {p.ltr[1]}{p.ltr[2]}"
  why = f"Sector {poly} has radius {ab} and central angle {ang}"
  p.derive(arcn, "{1}/360 · 2π · {0}", "q1*pi*q0/180", [ab, ang], None, why,
           [("q1*pi*q0/360", "forgot the 2 of 2πr"),
            ("q1*pi*q0**2/360", "used the sector-area formula"),
            ("q1*pi*q0/180 + 2*q0", "added the two radii (that is the perimeter)")])
  p.derive(area_name(poly), "{1}/360 · π · {0}²", "q1*pi*q0**2/360", [ab, ang],
           None, why,
           [("q1*pi*q0/180", "used the arc-length formula"),
            ("q1*pi*q0**2/180", "divided by 180 instead of 360"),
            ("pi*q0**2", "took the whole circle")])
  p.derive(perim_name(poly), "{0} + {1} + {2}", "q0 + q1 + q2", [ab, ca, arcn], None,
           f"The perimeter of sector {poly} is two radii plus the arc",
           [("q2", "counted only the arc"), ("q0 + q2", "counted one radius only")])
  p.extra(edge(p.ltr[1], p.ltr[2]), "chord", "2 · {0} · sin({1} / 2)", "2*q0*sin(q1*pi/360)",
          [ab, ang], f"The chord {edge(p.ltr[1], p.ltr[2])} faces the central angle {ang} in "
          f"isosceles triangle {poly}",
          [("2*q0*cos(q1*pi/360)", "used cos instead of sin"),
           ("2*q0*sin(q1*pi/180)", "used the whole central angle instead of half")])
  p.targets[ca], p.targets[arcn] = "length", "arc"
  return p.shape("sector", pts, [("line", 0, 1), ("arc", 1, 2, pts[0].copy()), ("line", 2, 0)],
                 [(2, 0)], struct_fact(poly, f"{poly} is a sector with centre {p.ltr[0]}"))


def arc_samples(sweep: float) -> int:
  """Points on an arc of `sweep` degrees: one every 5° (a full circle drawn with 24 was a
  visible polygon)."""
  return max(8, math.ceil(sweep / 5.0)) + 1


def circle(vrng, new_letter, diameter_given: bool):
  """The root-only circle: centre O, radius OR drawn; the radius or the diameter is given."""
  r = sp.Integer(int(vrng.integers(2, 13)))
  p = _Parts([new_letter(), new_letter()])
  o = p.ltr[0]
  pts = np.array([[0.0, 0.0], [float(r), 0.0]])
  rn = edge(*p.ltr)
  p.derive(area_name(o), "π · {0}²", "pi*q0**2", [rn], None,
           f"The circle centred at {o} has radius {rn}",
           [("2*pi*q0", "used the circumference formula for the area"),
            ("pi*q0", "forgot to square the radius")])
  p.derive(perim_name(o), "2 · π · {0}", "2*pi*q0", [rn], None,
           "The circumference of a circle is 2π times its radius",
           [("pi*q0**2", "used the area formula for the circumference"),
            ("2*pi*q0**2", "squared the radius in the circumference")])
  if diameter_given:
    dn = f"diameter of circle {o}"
    p.give(dn, 2 * r, Fact(f"len:{dn}", f"the circle has diameter {2 * r}",
                           {"type": "inside_text", "at": [0.0, -float(r) * 0.45],
                            "text": f"d = {2 * r}"}, True, 2 * r))
    p.derive(rn, "{0} / 2", "q0/2", [dn], None, "The radius is half the diameter",
             [("q0", "used the diameter as the radius")])
    extra = {rn: "radius"}
  else:
    p.give(rn, r, len_fact(rn, r, pts[0], pts[1], pts[0] + [0, 1]))
    dn = f"diameter of circle {o}"
    p.derive(dn, "2 · {0}", "2*q0", [rn], None, "The diameter is twice the radius",
             [("q0", "took the radius for the diameter"), ("q0**2", "squared the radius")])
    extra = {dn: "diameter"}
  sq = f"S(□{o})"
  p.derive(sq, "2 · {0}²", "2*q0**2", [rn], None,
           "The square inscribed in the circle has the diameter 2r as its diagonal: (2r)² / 2",
           [("q0**2", "took the radius as the side"), ("4*q0**2", "took the diameter as the side")])
  extra[sq] = "inscribed_square"
  struct = struct_fact(o, f"{o} is the centre of the circle and {p.ltr[1]} lies on it")
  s = Shape("circle", p.ltr, pts, [("arc", 1, 1, pts[0].copy())], [], p.facts + [struct],
            p.derivs, {area_name(o): "area", perim_name(o): "perimeter", **extra}, p.givens)
  return s, r


def build(kind, A, B, letters, b, vrng, new_letter) -> Shape:
  """The shape of `kind` on base A->B (interior on the left), base length b (exact)."""
  A, B = np.asarray(A, float), np.asarray(B, float)
  if kind in ("square", "rectangle", "parallelogram", "trapezoid"):
    return quad(kind, A, B, letters, b, vrng, new_letter)
  if kind in ("right_triangle", "isosceles_triangle", "equilateral_triangle"):
    return triangle(kind, A, B, letters, b, vrng, new_letter)
  if kind == "semicircle":
    return semicircle(A, B, letters, b)
  if kind == "sector":
    return sector(A, B, letters, b, vrng, new_letter)
  raise ValueError(f"engine: unknown plane shape {kind!r}; choose one of {ATTACHABLE}")
