"""Plane geometry: shapes attached edge to edge, and problems deduced backwards through them.

`scene(rng)` builds the figure: a root shape, then up to three more, each on a free straight
edge of the previous one, built outward, kept only if it overlaps no earlier shape except along
that edge. Every shape carries its givens (what the diagram or text states), the formulas that
derive its other quantities, and how to re-measure any quantity from its coordinates.
`problem(scene, rng)` picks a target in the last shape and resolves it back to the givens.
"""

from __future__ import annotations

import dataclasses
import math
import string

import numpy as np
import sympy as sp

from . import captions as C
from . import geometry as G
from .exact import TRIG, Deriv, approx, fmt, resolve

ATTACHABLE = ["square", "rectangle", "right_triangle", "isosceles_triangle", "equilateral_triangle",
              "parallelogram", "trapezoid", "semicircle", "sector"]
ROOTS = ATTACHABLE + ["circle"]
ARTICLE = {"square": "square", "rectangle": "rectangle", "right_triangle": "right triangle",
           "isosceles_triangle": "isosceles triangle", "equilateral_triangle": "equilateral triangle",
           "parallelogram": "parallelogram", "trapezoid": "right trapezoid", "semicircle": "semicircle",
           "sector": "sector", "circle": "circle"}


@dataclasses.dataclass
class Fact:
  """Something the problem states: a numeric given or a structural property.

  id: stable key; text: the sentence the text versions use; mark: how the renderer draws it
  (kind + coordinates); numeric: values go in the diagram for text-lite and vision-dominant,
  structure marks only in vision-dominant.
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
  targets: dict         # name -> "area" | "perimeter" | "length" | "arc"
  givens: dict
  parent_edge: str = ""

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

  def outline(self) -> np.ndarray:
    """Closed polygon (arcs sampled) for overlap tests and drawing."""
    out = []
    for pc in self.pieces:
      if pc[0] == "line":
        out.append(self.pts[pc[1]])
      else:
        c, r, a0, sw = self.arc(pc)
        out.extend(G.arc_points(c, r, a0, a0 + sw, 24)[:-1])
    return np.array(out)

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
      chord = [self.pts[pc[1]] for pc in self.pieces]
      a = G.shoelace(chord) if len(chord) > 2 else 0.0
      for pc in self.pieces:
        if pc[0] == "arc":
          _, r, _, sw = self.arc(pc)
          t = math.radians(sw)
          a += r * r / 2 * (t - math.sin(t))
      return a
    if kind == "perimeter":
      tot = 0.0
      for pc in self.pieces:
        if pc[0] == "line":
          tot += float(np.hypot(*(self.pts[pc[2]] - self.pts[pc[1]])))
        else:
          _, r, _, sw = self.arc(pc)
          tot += r * math.radians(sw)
      return tot
    if kind == "arc":
      pc = next(p for p in self.pieces if p[0] == "arc")
      _, r, _, sw = self.arc(pc)
      return r * math.radians(sw)
    a, b = name[0], name[1]
    return float(np.hypot(*(self.pts[self.letters.index(a)] - self.pts[self.letters.index(b)])))


def edge(a: str, b: str) -> str:
  return "".join(sorted(a + b))


def area_name(s: str) -> str:
  return f"S({s})"


def perim_name(s: str) -> str:
  return f"P({s})"


def _len_fact(name, value, p, q, shape_pts):
  return Fact(f"len:{name}", f"{name} = {fmt(value)}",
              {"type": "edge_label", "p": list(map(float, p)), "q": list(map(float, q)),
               "away": list(map(float, shape_pts.mean(0))), "text": fmt(value)}, True, value)


def _angle_fact(name, deg, v, p, q):
  return Fact(f"angle:{name}", f"{name} = {deg}°",
              {"type": "angle_label", "v": list(map(float, v)), "p": list(map(float, p)),
               "q": list(map(float, q)), "text": f"{deg}°"}, True, sp.Integer(deg))


def _right(v, p, q, fid):
  return {"type": "right_angle", "v": list(map(float, v)), "p": list(map(float, p)),
          "q": list(map(float, q)), "id": fid}


def _ticks(pairs, n, fid):
  return {"type": "ticks", "segs": [[list(map(float, a)), list(map(float, b))] for a, b in pairs],
          "n": n, "id": fid}


def build(kind, A, B, la, lb, b, bname, rng, letters):
  """The shape of `kind` on base A->B (interior on the left), base length b (exact) named bname."""
  u = G.unit(A, B)
  n = G.left(u)
  bf = float(b)
  A, B = np.asarray(A, float), np.asarray(B, float)
  L = lambda i, j: edge(ltr[i], ltr[j])  # noqa: E731
  facts, derivs, givens, targets = [], {}, {}, {}
  D = lambda name, tpl, expr, ins, val, why: derivs.__setitem__(  # noqa: E731
    name, Deriv(name, tpl, expr, tuple(ins), val, why))

  if kind in ("square", "rectangle", "parallelogram", "trapezoid"):
    ltr = [la, lb, letters(), letters()]
    if kind == "square":
      h = b
      pts = [A, B, B + bf * n, A + bf * n]
    elif kind == "rectangle":
      h = sp.Integer(int(rng.integers(max(2, int(bf * 0.5)), max(3, int(bf * 1.4)) + 1)))
      pts = [A, B, B + float(h) * n, A + float(h) * n]
    elif kind == "parallelogram":
      th = int(rng.choice([45, 60, 120, 135]))
      s = sp.Integer(int(rng.integers(max(2, int(bf * 0.5)), max(3, int(bf * 1.2)) + 1)))
      dvec = float(s) * G.rot(u, th)
      pts = [A, B, B + dvec, A + dvec]
    else:
      h1 = int(rng.integers(max(2, int(bf * 0.4)), max(3, int(bf * 1.2)) + 1))
      h2 = h1 + int(rng.choice([-1, 1])) * int(rng.integers(1, max(2, h1 // 2) + 1))
      h2 = max(1, h2) if h2 != h1 else h1 + 1
      h1, h2 = sp.Integer(h1), sp.Integer(h2)
      pts = [A, B, B + float(h2) * n, A + float(h1) * n]
    pts = np.array(pts)
    poly = "".join(ltr)
    ab, bc, cd, da = L(0, 1), L(1, 2), L(2, 3), L(3, 0)
    if kind == "square":
      why = f"{poly} is a square, so all its sides are equal"
      for e in (bc, cd, da):
        D(e, "{0}", "q0", [ab], b, why)
      D(area_name(poly), "{0}^2", "q0**2", [ab], b ** 2, f"{poly} is a square")
      D(perim_name(poly), "4 * {0}", "4*q0", [ab], 4 * b, f"{poly} is a square")
      struct = Fact(f"kind:{poly}", f"{poly} is a square",
                    {"type": "group", "id": f"kind:{poly}", "items": [
                      _right(pts[i], pts[i - 1], pts[(i + 1) % 4], "") for i in range(4)]
                     + [_ticks([(pts[i], pts[(i + 1) % 4]) for i in range(4)], 1, "")]}, False)
    elif kind == "rectangle":
      givens[bc] = h
      facts.append(_len_fact(bc, h, pts[1], pts[2], pts))
      D(cd, "{0}", "q0", [ab], b, f"{poly} is a rectangle, so opposite sides are equal")
      D(da, "{0}", "q0", [bc], h, f"{poly} is a rectangle, so opposite sides are equal")
      D(area_name(poly), "{0} * {1}", "q0*q1", [ab, bc], b * h, f"{poly} is a rectangle")
      D(perim_name(poly), "2 * ({0} + {1})", "2*(q0+q1)", [ab, bc], 2 * (b + h),
        f"{poly} is a rectangle")
      struct = Fact(f"kind:{poly}", f"{poly} is a rectangle",
                    {"type": "group", "id": f"kind:{poly}", "items": [
                      _right(pts[i], pts[i - 1], pts[(i + 1) % 4], "") for i in range(4)]}, False)
    elif kind == "parallelogram":
      ang = f"∠{ltr[1]}{ltr[0]}{ltr[3]}"
      givens[da], givens[ang] = s, sp.Integer(th)
      facts.append(_len_fact(da, s, pts[3], pts[0], pts))
      facts.append(_angle_fact(ang, th, pts[0], pts[1], pts[3]))
      why = f"{poly} is a parallelogram, so opposite sides are equal"
      D(cd, "{0}", "q0", [ab], b, why)
      D(bc, "{0}", "q0", [da], s, why)
      sn = TRIG[th][0]
      D(area_name(poly), "{0} * {1} * sin({2})", "q0*q1*sin(q2*pi/180)", [ab, da, ang], b * s * sn,
        f"{poly} is a parallelogram")
      D(perim_name(poly), "2 * ({0} + {1})", "2*(q0+q1)", [ab, da], 2 * (b + s),
        f"{poly} is a parallelogram")
      struct = Fact(f"kind:{poly}", f"{poly} is a parallelogram",
                    {"type": "group", "id": f"kind:{poly}", "items": [
                      _ticks([(pts[0], pts[1]), (pts[2], pts[3])], 1, ""),
                      _ticks([(pts[1], pts[2]), (pts[3], pts[0])], 2, "")]}, False)
    else:
      givens[da], givens[bc] = h1, h2
      facts.append(_len_fact(da, h1, pts[3], pts[0], pts))
      facts.append(_len_fact(bc, h2, pts[1], pts[2], pts))
      D(cd, "sqrt({0}^2 + ({1} - {2})^2)", "sqrt(q0**2 + (q1 - q2)**2)", [ab, da, bc],
        sp.sqrt(b ** 2 + (h1 - h2) ** 2),
        f"{poly} is a right trapezoid with right angles at {ltr[0]} and {ltr[1]}")
      D(area_name(poly), "({0} + {1}) * {2} / 2", "(q0+q1)*q2/2", [da, bc, ab], (h1 + h2) * b / 2,
        f"{poly} is a right trapezoid with parallel sides {da} and {bc} and height {ab}")
      D(perim_name(poly), "{0} + {1} + {2} + {3}", "q0+q1+q2+q3", [ab, bc, cd, da], None,
        f"The perimeter adds the four sides of {poly}")
      struct = Fact(f"kind:{poly}", f"{poly} is a right trapezoid with right angles at {ltr[0]} "
                    f"and {ltr[1]}", {"type": "group", "id": f"kind:{poly}", "items": [
                      _right(pts[0], pts[3], pts[1], ""), _right(pts[1], pts[0], pts[2], "")]},
                    False)
    pieces = [("line", i, (i + 1) % 4) for i in range(4)]
    attach = [(1, 2), (2, 3), (3, 0)]
    for e in (bc, cd, da):
      targets[e] = "length"
  elif kind in ("right_triangle", "isosceles_triangle", "equilateral_triangle"):
    ltr = [la, lb, letters()]
    poly = "".join(ltr)
    ab, bc, ca = L(0, 1), L(1, 2), L(2, 0)
    if kind == "right_triangle":
      al = int(rng.choice([30, 45, 60]))
      sn, cs, tn = TRIG[al]
      C_ = B + bf * float(tn) * n
      pts = np.array([A, B, C_])
      ang = f"∠{ltr[1]}{ltr[0]}{ltr[2]}"
      givens[ang] = sp.Integer(al)
      facts.append(_angle_fact(ang, al, pts[0], pts[1], pts[2]))
      why = f"In right triangle {poly} (right angle at {ltr[1]})"
      D(bc, "{0} * tan({1})", "q0*tan(q1*pi/180)", [ab, ang], b * tn, why)
      D(ca, "{0} / cos({1})", "q0/cos(q1*pi/180)", [ab, ang], b / cs, why)
      D(area_name(poly), "{0} * {1} / 2", "q0*q1/2", [ab, bc], b * b * tn / 2,
        f"{poly} is a right triangle with legs {ab} and {bc}")
      struct = Fact(f"kind:{poly}", f"{poly} is a right triangle with the right angle at {ltr[1]}",
                    {"type": "group", "id": f"kind:{poly}",
                     "items": [_right(pts[1], pts[0], pts[2], "")]}, False)
    elif kind == "isosceles_triangle":
      th = int(rng.choice([60, 90, 120]))
      C_ = A + bf * G.rot(u, th)
      pts = np.array([A, B, C_])
      ang = f"∠{ltr[1]}{ltr[0]}{ltr[2]}"
      givens[ang] = sp.Integer(th)
      facts.append(_angle_fact(ang, th, pts[0], pts[1], pts[2]))
      D(ca, "{0}", "q0", [ab], b, f"{poly} is isosceles with {ab} = {ca}")
      D(bc, "2 * {0} * sin({1} / 2)", "2*q0*sin(q1*pi/360)", [ab, ang],
        2 * b * sp.sin(sp.pi * th / 360), f"In isosceles triangle {poly} with apex "
        f"{ltr[0]}, the base is twice the leg times the sine of half the apex angle")
      D(area_name(poly), "{0} * {1} * sin({2}) / 2", "q0*q1*sin(q2*pi/180)/2", [ab, ca, ang],
        b * b * TRIG[th][0] / 2, f"{poly} has sides {ab}, {ca} around the angle {ang}")
      struct = Fact(f"kind:{poly}", f"{poly} is an isosceles triangle with {ab} = {ca}",
                    {"type": "group", "id": f"kind:{poly}",
                     "items": [_ticks([(pts[0], pts[1]), (pts[0], pts[2])], 1, "")]}, False)
    else:
      C_ = A + bf * G.rot(u, 60)
      pts = np.array([A, B, C_])
      why = f"{poly} is an equilateral triangle, so all sides are equal"
      D(bc, "{0}", "q0", [ab], b, why)
      D(ca, "{0}", "q0", [ab], b, why)
      D(area_name(poly), "sqrt(3) / 4 * {0}^2", "sqrt(3)/4*q0**2", [ab], sp.sqrt(3) / 4 * b ** 2,
        f"{poly} is an equilateral triangle")
      struct = Fact(f"kind:{poly}", f"{poly} is an equilateral triangle",
                    {"type": "group", "id": f"kind:{poly}", "items": [
                      _ticks([(pts[i], pts[(i + 1) % 3]) for i in range(3)], 1, "")]}, False)
    if perim_name(poly) not in derivs:
      D(perim_name(poly), "{0} + {1} + {2}", "q0+q1+q2", [ab, bc, ca], None,
        f"The perimeter adds the three sides of {poly}")
    pieces = [("line", 0, 1), ("line", 1, 2), ("line", 2, 0)]
    attach = [(1, 2), (2, 0)]
    targets[bc] = targets[ca] = "length"
  elif kind == "semicircle":
    ltr = [la, lb]
    M = (A + B) / 2
    pts = np.array([A, B])
    poly = "".join(ltr)
    ab = L(0, 1)
    D(f"arc {poly}", "pi * {0} / 2", "pi*q0/2", [ab], sp.pi * b / 2,
      f"The arc of a semicircle with diameter {ab} is half its circumference")
    D(area_name(poly), "pi * {0}^2 / 8", "pi*q0**2/8", [ab], sp.pi * b ** 2 / 8,
      f"A semicircle with diameter {ab} has half the area of the circle of radius {ab}/2")
    D(perim_name(poly), "{0} + {1}", "q0+q1", [ab, f"arc {poly}"], b + sp.pi * b / 2,
      "The perimeter is the diameter plus the arc")
    struct = Fact(f"kind:{poly}", f"the semicircle has diameter {ab}",
                  {"type": "inherent", "id": f"kind:{poly}"}, False)
    pieces = [("line", 0, 1), ("arc", 1, 0, M)]
    attach = []
    targets[f"arc {poly}"] = "arc"
  elif kind == "sector":
    ltr = [la, lb, letters()]
    phi = int(rng.choice([30, 45, 60, 90, 120]))
    C_ = A + bf * G.rot(u, phi)
    pts = np.array([A, B, C_])
    poly = "".join(ltr)
    ab, ca = L(0, 1), L(2, 0)
    ang = f"∠{ltr[1]}{ltr[0]}{ltr[2]}"
    givens[ang] = sp.Integer(phi)
    facts.append(_angle_fact(ang, phi, pts[0], pts[1], pts[2]))
    D(ca, "{0}", "q0", [ab], b, f"{ab} and {ca} are radii of sector {poly}")
    arcn = f"arc {ltr[1]}{ltr[2]}"
    D(arcn, "{1} / 360 * 2 * pi * {0}", "q1*pi*q0/180", [ab, ang], sp.Integer(phi) * sp.pi * b / 180,
      f"Sector {poly} has radius {ab} and central angle {ang}")
    D(area_name(poly), "{1} / 360 * pi * {0}^2", "q1*pi*q0**2/360", [ab, ang],
      sp.Integer(phi) * sp.pi * b ** 2 / 360, f"Sector {poly} has radius {ab} and central angle {ang}")
    D(perim_name(poly), "{0} + {1} + {2}", "q0+q1+q2", [ab, ca, arcn], None,
      f"The perimeter of sector {poly} is two radii plus the arc")
    struct = Fact(f"kind:{poly}", f"{poly} is a sector with centre {ltr[0]}",
                  {"type": "inherent", "id": f"kind:{poly}"}, False)
    pieces = [("line", 0, 1), ("arc", 1, 2, A.copy()), ("line", 2, 0)]
    attach = [(2, 0)]
    targets[ca] = "length"
    targets[arcn] = "arc"
  else:
    raise ValueError(f"engine: unknown plane shape {kind!r}; choose one of {ROOTS}")
  poly = "".join(ltr)
  d = derivs[perim_name(poly)]
  if d.value is None:
    d.value = None  # filled once the inputs are known (see _fill)
  targets[area_name(poly)] = "area"
  targets[perim_name(poly)] = "perimeter"
  return Shape(kind, ltr, pts, pieces, list(attach), facts + [struct], derivs, targets, givens)


def circle(rng, letters):
  """The root-only circle: centre O, radius OR drawn and labelled."""
  r = sp.Integer(int(rng.integers(2, 13)))
  ltr = [letters(), letters()]
  O, R = np.zeros(2), np.array([float(r), 0.0])
  pts = np.array([O, R])
  rn = edge(*ltr)
  derivs = {
    area_name(ltr[0]): Deriv(area_name(ltr[0]), "pi * {0}^2", "pi*q0**2", (rn,), sp.pi * r ** 2,
                             f"The circle centred at {ltr[0]} has radius {rn}"),
    perim_name(ltr[0]): Deriv(perim_name(ltr[0]), "2 * pi * {0}", "2*pi*q0", (rn,), 2 * sp.pi * r,
                              f"The circumference of a circle is 2π times its radius"),
  }
  struct = Fact(f"kind:{ltr[0]}", f"{ltr[0]} is the centre of the circle and {ltr[1]} lies on it",
                {"type": "inherent", "id": f"kind:{ltr[0]}"}, False)
  s = Shape("circle", ltr, pts, [("arc", 1, 1, O)], [], [struct], derivs,
            {area_name(ltr[0]): "area", perim_name(ltr[0]): "perimeter"}, {})
  return s, r, rn


def _fill(shape, known):
  """Perimeters that add sides: their value is the sum of the (now known) inputs."""
  for d in shape.derivs.values():
    if d.value is None and all(i in known for i in d.inputs):
      d.value = sp.Add(*[known[i] for i in d.inputs])


@dataclasses.dataclass
class Scene:
  shapes: list
  givens: dict
  derivs: dict
  facts: list
  angles: set
  relations: list  # (kind, text-args) for captions


def scene(rng, depth: int | None = None, root: str | None = None) -> Scene:
  """A root shape and up to `depth`-1 shapes attached edge to edge along a chain."""
  pool = list(rng.permutation(list(string.ascii_uppercase)))
  letters = lambda: pool.pop()  # noqa: E731
  depth = depth or int(rng.choice([1, 2, 2, 3, 3, 4]))
  root = root or str(rng.choice(ROOTS))
  givens, facts, relations = {}, [], []
  if root == "circle":
    s, r, rn = circle(rng, letters)
    shapes = [s]
    if rng.random() < 0.3:  # the diameter is given: r = d / 2
      d = 2 * r
      dn = f"diameter of circle {s.letters[0]}"
      givens[dn] = d
      s.derivs[rn] = Deriv(rn, "{0} / 2", "q0/2", (dn,), r, "The radius is half the diameter")
      facts.append(Fact(f"len:{dn}", f"the circle has diameter {fmt(d)}",
                        {"type": "inside_text", "at": [0.0, -float(r) * 0.45], "text": f"d = {d}"},
                        True, d))
    else:
      givens[rn] = r
      facts.append(_len_fact(rn, r, s.pts[0], s.pts[1], s.pts + [[0, 1]]))
    relations.append(("root", s))
  else:
    b = sp.Integer(int(rng.integers(3, 16)))
    pA, pB = letters(), letters()
    s = build(root, (0.0, 0.0), (float(b), 0.0), pA, pB, b, edge(pA, pB), rng, letters)
    ab = edge(pA, pB)
    poly = s.poly
    inv = rng.random() < 0.35
    if inv and root == "square":
      if rng.random() < 0.5:
        givens[area_name(poly)] = b ** 2
        s.derivs[ab] = Deriv(ab, "sqrt({0})", "sqrt(q0)", (area_name(poly),), b,
                             f"The side of square {poly} is the square root of its area")
        facts.append(Fact(f"area:{poly}", f"the area of {poly} is {b ** 2}",
                          {"type": "inside_text", "at": list(map(float, s.pts.mean(0))),
                           "text": f"S = {b ** 2}"}, True, b ** 2))
      else:
        givens[perim_name(poly)] = 4 * b
        s.derivs[ab] = Deriv(ab, "{0} / 4", "q0/4", (perim_name(poly),), b,
                             f"The side of square {poly} is a quarter of its perimeter")
        facts.append(Fact(f"perimeter:{poly}", f"the perimeter of {poly} is {4 * b}",
                          {"type": "inside_text", "at": list(map(float, s.pts.mean(0))),
                           "text": f"P = {4 * b}"}, True, 4 * b))
    elif inv and root == "rectangle":
      bc = edge(s.letters[1], s.letters[2])
      S = b * s.givens[bc]
      givens[area_name(poly)] = S
      s.derivs[ab] = Deriv(ab, "{0} / {1}", "q0/q1", (area_name(poly), bc), b,
                           f"The area of rectangle {poly} is {ab} * {bc}")
      facts.append(Fact(f"area:{poly}", f"the area of {poly} is {S}",
                        {"type": "inside_text", "at": list(map(float, s.pts.mean(0))),
                         "text": f"S = {S}"}, True, S))
    else:
      givens[ab] = b
      facts.append(_len_fact(ab, b, s.pts[0], s.pts[1], s.pts))
    shapes = [s]
    relations.append(("root", s))
    for _ in range(depth - 1):
      par = shapes[-1]
      if not par.attach:
        break
      placed = None
      for _try in range(6):
        i, j = par.attach[int(rng.integers(len(par.attach)))]
        kind = str(rng.choice(ATTACHABLE))
        en = edge(par.letters[i], par.letters[j])
        mark = len(pool)
        # The edge's exact length: from the parent's givens or formulas (values known by now).
        bval = givens.get(en, par.givens.get(en))
        if bval is None:
          bval = par.derivs[en].value if en in par.derivs else b
        cand = build(kind, par.pts[j], par.pts[i], par.letters[j], par.letters[i], bval, en, rng,
                     letters)
        poly_c = cand.outline()
        if not any(G.overlap(poly_c, o.outline()) for o in shapes):
          placed = (cand, (i, j), en)
          break
        pool.extend(cand.letters[2:][::-1])  # give the letters back
        del mark
      if placed is None:
        break
      cand, (i, j), en = placed
      par.attach.remove((i, j))
      cand.parent_edge = en
      shapes.append(cand)
      relations.append(("attach", cand, par, en))
  for s in shapes:
    givens.update(s.givens)
    facts.extend(s.facts)
  derivs = {}
  for s in shapes:
    for k, v in s.derivs.items():
      if k not in givens:
        derivs.setdefault(k, v)
  known = dict(givens)
  for s in shapes:  # forward pass so every formula value (perimeter sums) is filled
    for _ in range(3):
      for k, d in s.derivs.items():
        if k in givens:
          continue
        if d.value is None:
          _fill(s, known)
        if d.value is not None and all(i in known for i in d.inputs):
          known.setdefault(k, d.value)
  angles = {k for k in givens if k.startswith("∠")}
  return Scene(shapes, givens, derivs, facts, angles, relations)


def measure(sc: Scene, name: str) -> float:
  for s in sc.shapes:
    if name in s.targets:
      return s.measure(name)
  raise KeyError(f"engine: {name!r} is not a measurable quantity of this scene")


def ask_kind(name: str) -> str:
  if name.startswith("S("):
    return "area"
  if name.startswith("P("):
    return "perimeter"
  if name.startswith("arc "):
    return "arc"
  return "length"


def shape_of(sc: Scene, name: str):
  for s in sc.shapes:
    if name in s.targets:
      return s
  raise KeyError(name)


def targets(sc: Scene) -> list:
  """Askable quantities of the last shape (the chain must run through every shape)."""
  last = sc.shapes[-1]
  return [t for t in last.targets if t not in sc.givens and t != last.parent_edge]


def question(sc: Scene, target: str, rng) -> str:
  s = shape_of(sc, target)
  k = ask_kind(target)
  name = target[4:] if k == "arc" else target
  return C.pick(rng, C.ASK[k], shape=s.title.replace("the ", "").split(" ", 1)[-1]
                if k in ("area", "perimeter") and s.kind not in ("circle", "semicircle")
                else s.title, name=name)


def describe(sc: Scene, rng) -> list:
  """Caption sentences: the shapes and how they attach, then every given."""
  out = []
  for rel in sc.relations:
    if rel[0] == "root":
      out.append(C.pick(rng, C.ROOT, shape=_a(rel[1])))
    else:
      _, s, par, en = rel
      out.append(C.pick(rng, C.ATTACH, edge=en, parent=par.title, shape=_a(s)))
  for f in sc.facts:
    if f.numeric:
      if f.id.startswith("angle:"):
        out.append(C.pick(rng, C.ANGLE, name=f.id[6:], value=f"{f.value}°"))
      elif f.id.startswith("len:") and not f.id.startswith("len:diameter"):
        out.append(C.pick(rng, C.LENGTH, name=f.id[4:], value=fmt(f.value)))
      else:
        out.append(f.text[:1].upper() + f.text[1:] + ".")
  return out


def _a(s: Shape) -> str:
  t = s.title
  if t.startswith("the "):
    return "a" + t[3:]
  return ("an " if t[0] in "aeiou" else "a ") + t


def chain_text(chain, known, angles) -> list:
  return [f"Step {k + 1}: {d.sentence(known, angles)}" for k, d in enumerate(chain)]


__all__ = ["scene", "targets", "resolve", "measure", "question", "describe", "approx"]
