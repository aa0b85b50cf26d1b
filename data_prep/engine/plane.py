"""Plane geometry: shapes attached edge to edge, and problems deduced backwards through them.

A figure is a program and its numbers. The program (drawn from the structure generator) says
which root shape, which given on it (a side, or its area or perimeter), and which shape attaches
to which free edge of the one before; the numbers and vertex letters come from the value
generator, so variants of a problem (`--variants`) share the program and differ in values.
Every shape is built outward on its parent's edge and must overlap no earlier shape except along
that edge. The question asks for a quantity of the last shape when one fits the step range, so
the deduction runs back through every shape. A narrow shallow step range also puts two shapes
apart beside the figure, each with its own given (`beside_count`).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import string

import numpy as np
import sympy as sp

from . import captions as C
from . import geometry as G
from . import shapes as SH
from .exact import FLOAT, TRIG, Deriv, evaluate, sum_step
from .notation import human
from .problems import FigureRejected, Target

ROOTS = SH.ATTACHABLE + ("circle",)
SLOTS = {"square": 3, "rectangle": 3, "parallelogram": 3, "trapezoid": 3, "right_triangle": 2,
         "isosceles_triangle": 2, "equilateral_triangle": 2, "sector": 1}
MAX_SHAPES = 6


@dataclasses.dataclass
class Program:
  """The figure's structure, without numbers or letters."""
  root: str
  root_given: str          # "edge" | "area" | "perimeter" | "radius" | "diameter"
  attached: list           # [(kind, slot index into the parent's free edges)]
  beside: list = dataclasses.field(default_factory=list)  # [(kind, given)]: shapes apart


@dataclasses.dataclass
class Figure:
  shapes: list
  givens: dict
  derivs: dict
  facts: list
  angles: frozenset
  relations: list          # ("root", s) | ("attach", s, parent, edge name) | ("beside", s)


def beside_count(steps: tuple) -> int:
  """Shapes put apart beside the figure (`_put_beside`): two for a narrow shallow `--steps`
  range (at most 3 steps, MIN and MAX at most one apart), else none. A multiple-choice set
  needs four quantities of one kind within the range, and one shape has one area, one perimeter
  and a few lengths of each depth: at `--steps 1:1` 13, at 2:2 6 and at 3:3 9 of the 32 plane
  problems drawn multiple choice had a set (seed 3, 150 problems); with two shapes apart 32, 31
  and 32. A wider range takes its set from several depths, so its figures are as before."""
  lo, hi = steps
  return 2 if hi <= 3 and hi - lo <= 1 else 0


def shape_count(srng, wanted_steps: int) -> int:
  """Shapes for a chain of about `wanted_steps` steps (each shape adds one or two)."""
  base = max(1, min(MAX_SHAPES, wanted_steps - int(srng.integers(0, 3))))
  return base if wanted_steps > 1 else 1


GIVENS = {"square": ["edge", "edge", "area", "perimeter"], "rectangle": ["edge", "edge", "area"],
          "circle": ["radius", "radius", "diameter"]}  # what a root (or a shape apart) states


def program(srng, n_shapes: int, beside: int = 0) -> Program:
  kinds = list(SH.HAS_EDGES)
  root = C.one_of(srng, kinds if n_shapes > 1 else ROOTS)
  root_given = C.one_of(srng, GIVENS.get(root, ["edge"]))
  attached, parent = [], root
  for k in range(1, n_shapes):
    kind = C.one_of(srng, kinds if k < n_shapes - 1 else SH.ATTACHABLE)
    attached.append((kind, int(srng.integers(SLOTS[parent]))))
    parent = kind
  apart = []
  for _ in range(beside):
    kind = C.one_of(srng, SH.ATTACHABLE)
    apart.append((kind, C.one_of(srng, GIVENS.get(kind, ["edge"]))))
  return Program(root, root_given, attached, apart)


def realize(prog: Program, vrng) -> Figure:
  """The program with numbers and letters; FigureRejected when a shape would overlap another."""
  pool = list(vrng.permutation(list(string.ascii_uppercase)))
  new_letter = pool.pop
  extra_givens, extra_facts = {}, []
  if prog.root == "circle":
    root, _ = SH.circle(vrng, new_letter, prog.root_given == "diameter")
  else:
    b = sp.Integer(int(vrng.integers(3, 16)))
    root = SH.build(prog.root, (0.0, 0.0), (float(b), 0.0), [new_letter(), new_letter()], b, vrng,
                    new_letter)
    _root_given(root, b, prog.root_given, extra_givens, extra_facts)
  shapes, relations = [root], [("root", root)]
  givens, derivs = {**extra_givens, **root.givens}, dict(root.derivs)
  for kind, slot in prog.attached:
    par = shapes[-1]
    i, j = par.attach[slot]
    en = SH.edge(par.letters[i], par.letters[j])
    cand = SH.build(kind, par.pts[j], par.pts[i], [par.letters[j], par.letters[i]],
                    float_of(en, givens, derivs), vrng, new_letter)
    outline = cand.outline()
    if any(G.overlap(outline, o.outline()) for o in shapes):
      raise FigureRejected("shapes overlap")
    if _lands_on_a_vertex(cand, shapes):
      raise FigureRejected("a new vertex lands on a named one")
    par.attach.remove((i, j))
    cand.parent_edge = en
    shapes.append(cand)
    relations.append(("attach", cand, par, en))
    givens.update(cand.givens)
    derivs.update(cand.derivs)
  for kind, how in prog.beside:
    _put_beside(shapes, relations, kind, how, vrng, new_letter, extra_givens, extra_facts)
  return _merge(shapes, relations, extra_givens, extra_facts)


# World units (the root's base is 3 to 15): closer vertices would be one point with two names
SAME_POINT = 0.25


def _lands_on_a_vertex(cand, shapes) -> bool:
  """Whether a new vertex of `cand` falls on a vertex already drawn: a chain of shapes closing
  all the way around a point meets its start there (touching is no overlap), and the point
  would be drawn with two letters."""
  named = {L for s in shapes for L in s.letters}
  old = np.concatenate([s.pts for s in shapes])
  return any(np.hypot(*(old - p).T).min() < SAME_POINT
             for L, p in zip(cand.letters, cand.pts) if L not in named)


def _put_beside(shapes, relations, kind, how, vrng, new_letter, givens, facts):
  """A shape apart from the others, on a base of its own with its own given: the first to the
  right of the figure on its ground line, the next below both (a row of three shrank every
  shape to a third of the image's width), far enough that no label sits between two shapes.
  Built once at the origin to learn its extent (a parallelogram leans back past its base),
  then again, with the same numbers and letters, where it goes."""
  outl = np.concatenate([s.outline() for s in shapes])
  (x_lo, y_lo), (x_hi, y_hi) = outl.min(0), outl.max(0)
  b = sp.Integer(int(vrng.integers(3, 16)))
  gap = 0.6 * max(float(b), float(x_hi - x_lo), float(y_hi - y_lo)) / (1 + len(shapes) // 2)
  state, letters = vrng.bit_generator.state, []

  def take():
    letters.append(new_letter())
    return letters[-1]

  trial = SH.build(kind, (0.0, 0.0), (float(b), 0.0), [take(), take()], b, vrng, take)
  lo, hi = trial.outline().min(0), trial.outline().max(0)
  if any(r[0] == "beside" for r in relations):
    x0, y0 = float(x_lo - lo[0]), float(y_lo - gap - hi[1])
  else:
    x0, y0 = float(x_hi + gap - lo[0]), float(y_lo - lo[1])
  vrng.bit_generator.state = state
  again = iter(letters)
  s = SH.build(kind, (x0, y0), (x0 + float(b), y0), [next(again), next(again)], b, vrng,
               lambda: next(again))
  _root_given(s, b, how, givens, facts)
  if any(G.overlap(s.outline(), o.outline()) for o in shapes):
    raise FigureRejected("shapes overlap")
  shapes.append(s)
  relations.append(("beside", s))


def float_of(name: str, givens: dict, derivs: dict) -> float:
  """A quantity's value in floats (what the next shape's geometry needs; exact values are only
  computed for the steps a question uses)."""
  if name in givens:
    return float(givens[name])
  d = derivs[name]
  return float(evaluate(d.expr, [float_of(i, givens, derivs) for i in d.inputs], FLOAT))


def _root_given(s: SH.Shape, b, how: str, givens: dict, facts: list):
  """What the root states: its base edge, or (square, rectangle) its area or perimeter, from
  which the base is deduced."""
  ab, poly = SH.edge(s.letters[0], s.letters[1]), s.poly
  at = list(map(float, s.pts.mean(0)))
  if how == "edge":
    givens[ab] = b
    facts.append(SH.len_fact(ab, b, s.pts[0], s.pts[1], s.pts.mean(0)))
    return
  if how == "perimeter":
    givens[SH.perim_name(poly)] = 4 * b
    s.derivs[ab] = Deriv(ab, "{0} / 4", "q0/4", (SH.perim_name(poly),), b,
                         f"The side of square {poly} is a quarter of its perimeter",
                         slips=(("sqrt(q0)", "took the square root of the perimeter"),))
    facts.append(SH.Fact(f"perimeter:{poly}", f"the perimeter of {poly} is {4 * b}",
                         {"type": "inside_text", "at": at, "text": f"P = {4 * b}"}, True, 4 * b))
  elif s.kind == "square":
    givens[SH.area_name(poly)] = b ** 2
    s.derivs[ab] = Deriv(ab, "√{0}", "sqrt(q0)", (SH.area_name(poly),), b,
                         f"The side of square {poly} is the square root of its area",
                         slips=(("q0/4", "took a quarter of the area as if it were the "
                                          "perimeter"),))
    facts.append(SH.Fact(f"area:{poly}", f"the area of {poly} is {b ** 2}",
                         {"type": "inside_text", "at": at, "text": f"S = {b ** 2}"}, True, b ** 2))
  else:
    bc = SH.edge(s.letters[1], s.letters[2])
    area = b * s.givens[bc]
    givens[SH.area_name(poly)] = area
    s.derivs[ab] = Deriv(ab, "{0} / {1}", "q0/q1", (SH.area_name(poly), bc), b,
                         f"The area of rectangle {poly} is {ab} · {bc}",
                         slips=(("q0/(2*q1)", "halved the area first, as for a triangle"),))
    facts.append(SH.Fact(f"area:{poly}", f"the area of {poly} is {area}",
                         {"type": "inside_text", "at": at, "text": f"S = {area}"}, True, area))


def _merge(shapes, relations, givens, facts) -> Figure:
  givens, facts = dict(givens), list(facts)
  for s in shapes:
    givens.update(s.givens)
    facts.extend(s.facts)
  derivs = {}
  for s in shapes:
    for k, v in s.derivs.items():
      if k not in givens:
        derivs.setdefault(k, v)
  if len(shapes) > 1:
    parts = [SH.area_name(s.poly if s.kind != "circle" else s.letters[0]) for s in shapes]
    tpl = " + ".join("{%d}" % k for k in range(len(parts)))
    derivs["S(figure)"] = Deriv("S(figure)", tpl, " + ".join(f"q{k}" for k in range(len(parts))),
                                tuple(parts), None, "The figure's area adds its shapes' areas",
                                slips=((" + ".join(f"q{k}" for k in range(len(parts) - 1)),
                                  "left out one shape"),))
  angles = frozenset(k for k in givens if k.startswith("∠"))
  return Figure(shapes, givens, derivs, facts, angles, relations)


def kind_of(name: str) -> str | None:
  """What sort of quantity a name is: similar quantities are what a student confuses."""
  if name.startswith("∠"):
    return "angle"
  if name.startswith(("S(", "|S(")):
    return "area"
  if name.startswith(("P(", "|P(")):
    return "perimeter"
  if name.startswith("arc "):
    return "arc"
  if len(name) == 2 and name.isupper() or name.startswith(("diameter", "h(", "R(", "r(")):
    return "length"
  return None


def misreads(fig: Figure) -> list:
  """Angles read as their complement or supplement (both special, so still exact); in name
  order, not the set's (which follows the process's string hash seed)."""
  out = []
  for name in sorted(fig.angles):
    a = int(fig.givens[name])
    for b, why in ((90 - a, "complement"), (180 - a, "supplement")):
      if b in TRIG and b != a and b != 90:
        out.append(((name,), sp.Integer(b), f"read {name} as its {why} {b}°"))
  return out


def measure(fig: Figure, name: str) -> float:
  pair = re.fullmatch(r"\|?([SP]\(\w+\)) ([+-]) ([SP]\(\w+\))\|?", name)
  if pair:  # `_pair_targets`: each shape measured on its own, then added or compared
    a, b = measure(fig, pair.group(1)), measure(fig, pair.group(3))
    return a + b if pair.group(2) == "+" else abs(a - b)
  if name == "S(figure)":
    return sum(s.measure(next(t for t, k in s.targets.items() if k == "area"))
               for s in fig.shapes)
  if name.startswith("diameter of circle"):
    return 2 * fig.shapes[0].measure(SH.edge(*fig.shapes[0].letters))
  for s in fig.shapes:
    if name in s.targets:
      return s.measure(name)
  for s in fig.shapes:
    if len(name) == 2 and set(name) <= set(s.letters):
      return s.measure(name)
  raise KeyError(f"engine: {name!r} is not a measurable quantity of this figure")


def targets(fig: Figure) -> list:
  """Askable quantities, the last shape's first (priority 0), then the others' and the
  figure's total area (priority 1), then two shapes' areas or perimeters added and compared
  (`_pair_targets`)."""
  out = []
  last = len(fig.shapes) - 1
  for k, s in enumerate(fig.shapes):
    for name, kind in s.targets.items():
      if name in fig.givens or name == s.parent_edge:
        continue
      t = _target(s, name, kind, 0 if k == last and kind not in SH.EXTRA else 1)
      t.main_ok = fig.derivs[name].expr != "q0"  # a copy of another side is no question
      out.append(t)
  if "S(figure)" in fig.derivs:
    out.append(Target("S(figure)", "the area of the whole figure",
                      ["What is the area of the whole figure?",
                       "Find the total area of the figure.",
                       "Compute the combined area of all the shapes."], priority=1))
  return out + _pair_targets(fig)


PAIR_WORDS = {"area": ("area", "areas"), "perimeter": ("perimeter", "perimeters")}


def _pair_targets(fig: Figure) -> list:
  """Two shapes' areas (and perimeters) added and compared, one step past the deeper of the
  two. Made for sets of one kind (`--option_kinds same`, the default); until 2026-12-06 for
  those only, so `mixed` had no question of 9 or 10 steps on most figures and gave up. A plane
  figure has one area and one perimeter a shape, so a set of four areas or four perimeters was
  rare: of the 32 plane problems drawn multiple choice in 150 of seed 3 at `--mc 0.7`, 10 had a
  set of one kind at `--steps 4:6` and 3 at 6:6; with these, 32 and 32. The sum of two areas is
  left out for two shapes: it is the figure's area."""
  out = []
  for a, b in itertools.combinations(fig.shapes, 2):
    sa, sb = a.short, b.short  # asked once: each text names both
    for kind, (word, words) in PAIR_WORDS.items():
      na, nb = (next(n for n, k in s.targets.items() if k == kind) for s in (a, b))
      if kind == "perimeter" or len(fig.shapes) > 2:
        fig.derivs[f"{na} + {nb}"] = sum_step(na, nb, f"Add the two {words}")
        out.append(Target(f"{na} + {nb}", f"the sum of the {words} of {sa} and {sb}",
                          [f"What is the sum of the {words} of {sa} and {sb}?",
                           f"Find the {word} of {sa} plus the {word} of {sb}."], 1))
      fig.derivs[f"|{na} - {nb}|"] = Deriv(
          f"|{na} - {nb}|", "|{0} - {1}|", "Abs(q0 - q1)", (na, nb), None,
          f"The difference of the two {words}, the smaller taken from the larger",
          show_names=False, slips=(("q0 + q1", "added instead of subtracting"),))
      out.append(Target(f"|{na} - {nb}|", f"the difference between the {words} of {sa} and {sb}",
                        [f"What is the difference between the {words} of {sa} and {sb}?",
                         f"By how much do the {words} of {sa} and {sb} differ?"], 1))
  return out


# A target's noun phrase by its kind, over the shape's short name and the quantity's own.
PHRASES = {"area": "the area of {shape}", "perimeter": "the perimeter of {shape}",
           "length": "the length of {name}", "arc": "the length of arc {name}",
           "diagonal": "the length of diagonal {name}", "height": "the height from {name}",
           "diameter": "the diameter of {shape}", "radius": "the radius of {shape}",
           "circumradius": "the radius of the circle through the vertices of {shape}",
           "chord": "the length of chord {name}",
           "inscribed_square": "the area of the square inscribed in {shape}"}


def _target(s: SH.Shape, name: str, kind: str, priority: int) -> Target:
  """The shape's name is worked out once (a plane figure has ~20 targets, each of whose texts
  asked the shape for it anew), and only the phrase of its kind is written."""
  shown = name[4:] if kind == "arc" else name
  if kind == "height":  # h(C, AB): from C to AB
    v, i, j = s.heights[name]
    shown = f"{s.letters[v]} to {SH.edge(s.letters[i], s.letters[j])}"
  short = s.short
  asks = [t.format(shape=short, name=shown) for t in C.ASK[kind]]
  return Target(name, PHRASES[kind].format(shape=short, name=shown), asks, priority)


def describe(fig: Figure, rng) -> list:
  """Caption sentences: the shapes and how they attach, then every given."""
  out = []
  for rel in fig.relations:
    if rel[0] == "root":
      out.append(C.pick(rng, C.ROOT, shape=_a(rel[1])))
    elif rel[0] == "beside":
      out.append(C.pick(rng, C.BESIDE, shape=_a(rel[1])))
    else:
      _, s, par, en = rel
      out.append(C.pick(rng, C.ATTACH, edge=en, parent=par.title, shape=_a(s)))
  for f in fig.facts:
    if not f.numeric:
      continue
    if f.id.startswith("angle:"):
      out.append(C.pick(rng, C.ANGLE, name=f.id[6:], value=f"{human(f.value)}°"))
    elif f.id.startswith("len:") and not f.id.startswith("len:diameter"):
      out.append(C.pick(rng, C.LENGTH, name=f.id[4:], value=human(f.value)))
    else:
      out.append(f.text[:1].upper() + f.text[1:] + ".")
  return out


def context(fig: Figure) -> dict:
  """Text before the question: text-dominant states structure and values, text-lite only the
  structure (the values are drawn), vision-dominant nothing (everything is drawn)."""
  struct, numeric = [], []
  for rel in fig.relations:
    if rel[0] == "attach":
      _, s, par, en = rel
      struct.append(f"Attached to edge {en} of {par.title}, there is {_a(s)}.")
    elif rel[0] == "beside":
      struct.append(f"Separate from the other shapes, there is {_a(rel[1])}.")
  for f in fig.facts:
    (numeric if f.numeric else struct).append(f.text[:1].upper() + f.text[1:] + ".")
  return {"text_dominant": " ".join(struct + numeric), "text_lite": " ".join(struct),
          "vision_dominant": ""}


def _a(s: SH.Shape) -> str:
  t = s.title
  if t.startswith("the "):
    return "a" + t[3:]
  return ("an " if t[0] in "aeiou" else "a ") + t


def key(fig: Figure, target: str) -> str:
  poly = fig.shapes[-1].poly
  return "|".join([s.kind for s in fig.shapes]
                  + [f"{n}={human(v)}" for n, v in sorted(fig.givens.items())]
                  + [target.replace(poly, "#")])


def outlines(fig: Figure) -> list:
  return [np.asarray(s.outline()) for s in fig.shapes]
