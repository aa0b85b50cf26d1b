"""Function graphs, the families and their deduction: a function of one family with
exact-friendly coefficients, a NumPy evaluator written from the coefficients (the independent
check), and, in `deduce` mode, the marked points and the steps that recover the expression from
them (`functions` is the domain; `function_questions` what is asked of a graph).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import sympy as sp

from .captions import one_of
from .exact import X, Deriv, FromInputs, as_float
from .notation import human
from .problems import Rejected

FAMILIES = ["poly", "sin", "cos", "tan", "log", "abs", "piecewise"]
DEDUCIBLE = ("poly", "sin", "cos", "tan", "log", "abs")
PI = sp.pi
F = "f(x)"


@dataclasses.dataclass
class Graph:
  fam: str
  mode: str            # "stated" | "deduce"
  f: object            # the true expression (sympy)
  fn: object           # numpy evaluator written from the coefficients
  lo: float
  hi: float
  info: dict           # the coefficients
  form: str = ""       # deduce mode: the form with unknowns, as people write it
  points: dict = dataclasses.field(default_factory=dict)   # marked points: letter -> (x, y)
  roles: dict = dataclasses.field(default_factory=dict)    # letter -> what the text calls it
  increasing: bool = True  # a monotonic-interval question asks where f increases (else falls)
  wide: bool = False   # points to evaluate at from a wider grid (the same-kind extras)


def program(srng, wanted: int) -> tuple:
  """(family, mode, degree, sign, increasing): deeper chains deduce the expression more often.
  The sign of a polynomial's or an absolute value's leading coefficient, and whether a
  monotonic-interval question asks where f increases, are the program's, not values: a variant
  (new values, same program) keeps them, so a question about a maximum stays one about a
  maximum."""
  fam = one_of(srng, FAMILIES)
  deduce = fam in DEDUCIBLE and srng.random() < (0.35 if wanted <= 2 else 0.8)
  deg = one_of(srng, [2, 2, 3])
  return (fam, "deduce" if deduce else "stated", deg, 1 if srng.random() < 0.5 else -1,
          bool(srng.random() < 0.5))


def family(vrng, fam: str, mode: str, deg: int = 2, sign: int = 1) -> Graph:
  """The function, with exact-friendly coefficients, and a float evaluator of its own; `sign`:
  that of a polynomial's or an absolute value's leading coefficient."""
  if fam == "poly":
    return _poly(vrng, mode, deg, sign)
  if fam in ("sin", "cos"):
    return _trig(vrng, fam, mode)
  if fam == "tan":
    a = sp.Integer(one_of(vrng, [1, 2, 3, -1, -2]))
    b = sp.Integer(1) if vrng.random() < 0.5 else sp.Rational(1, 2)
    af, bf = float(a), float(b)
    half = as_float(PI / (2 * b))
    return Graph(fam, mode, a * sp.tan(b * X), lambda x: af * np.tan(bf * x), -half * 0.92,
                 half * 0.92, {"a": a, "b": b}, f"f(x) = a·tan({human(b * X)})")
  if fam == "log":
    a = sp.Integer(one_of(vrng, [1, 2, 3, -1, -2]))
    h = sp.Integer(int(vrng.integers(-3, 3)))
    k = a * one_of(vrng, [-2, -1, 1, 2])   # -k/a is an integer: the zero is exact
    af, hf, kf = float(a), float(h), float(k)
    return Graph(fam, mode, a * sp.log(X - h, 2) + k,
                 lambda x: af * np.log2(np.maximum(x - hf, 1e-300)) + kf, hf + 0.05, hf + 10,
                 {"a": a, "h": h, "k": k}, f"f(x) = a·log₂({human(X - h)}) + k")
  if fam == "abs":
    a = sign * sp.Rational(one_of(vrng, [1, 2, 3]), one_of(vrng, [1, 1, 2]))
    h = sp.Integer(int(vrng.integers(-3, 4)))
    k = -sp.sign(a) * one_of(vrng, [1, 2, 3, 4])   # opens towards the x-axis: two zeros
    af, hf, kf = float(a), float(h), float(k)
    return Graph(fam, mode, a * sp.Abs(X - h) + k, lambda x: af * np.abs(x - hf) + kf, hf - 5,
                 hf + 5, {"a": a, "h": h, "k": k}, "f(x) = a·|x - h| + k")
  if fam == "piecewise":
    return _piecewise(vrng)
  raise ValueError(f"engine: unknown function family {fam!r}; choose one of {FAMILIES}")


def _poly(vrng, mode, deg, sign) -> Graph:
  roots = sorted(vrng.choice(np.arange(-4, 5), deg, replace=False).tolist())
  a = sign * sp.Rational(one_of(vrng, [1, 2]), 1 if deg == 2 else one_of(vrng, [1, 2]))
  f = sp.expand(a * sp.Mul(*[(X - r) for r in roots]))
  co = [float(c) for c in sp.Poly(f, X).all_coeffs()]
  form = "f(x) = ax² + bx + c" if deg == 2 else "f(x) = ax³ + bx² + cx + d"
  return Graph("poly", mode, f, lambda x: np.polyval(co, x), roots[0] - 2, roots[-1] + 2,
               {"roots": roots, "deg": deg, "a": a}, form)


def _trig(vrng, fam, mode) -> Graph:
  a = sp.Integer(one_of(vrng, [1, 2, 3]))
  b = sp.Rational(one_of(vrng, [1, 2, 1]), one_of(vrng, [1, 1, 2]))
  c = PI * sp.Rational(one_of(vrng, [0, 1, 1, 2, 3]), 6)
  d = sp.Integer(one_of(vrng, [-1, 0, 0, 1]))
  trig, npt = (sp.sin, np.sin) if fam == "sin" else (sp.cos, np.cos)
  af, bf, cf, df = as_float(a), as_float(b), as_float(c), as_float(d)
  form = f"f(x) = a·{fam}({human(b * X + c)}) + d"
  # A stated f keeps the form its a, b, c and d are read off (cos(2x + π/2), which sympy
  # rewrites to -sin(2x), where no c = π/2 can be read off); a deduced one is shown simplified
  # after the step that puts a and d into the form.
  f = a * trig(b * X + c, evaluate=mode == "deduce") + d
  return Graph(fam, mode, f, lambda x: af * npt(bf * x + cf) + df, -as_float(2 * PI / b),
               as_float(2 * PI / b), {"a": a, "b": b, "c": c, "d": d}, form)


def _piecewise(vrng) -> Graph:
  c = sp.Integer(int(vrng.integers(-2, 3)))
  p2 = sp.expand(sp.Integer(one_of(vrng, [1, -1])) * (X - c) ** 2
                 + sp.Integer(int(vrng.integers(-2, 3))) * (X - c) + int(vrng.integers(-3, 4)))
  m = sp.Integer(one_of(vrng, [-2, -1, 1, 2]))
  p1 = sp.expand(p2.subs(X, c) + m * (X - c))
  c1 = [float(v) for v in sp.Poly(p1, X).all_coeffs()]
  c2 = [float(v) for v in sp.Poly(p2, X).all_coeffs()]
  cf = float(c)
  return Graph("piecewise", "stated", sp.Piecewise((p1, X < c), (p2, True)),
               lambda x: np.where(x < cf, np.polyval(c1, x), np.polyval(c2, x)), cf - 4, cf + 4,
               {"c": c, "p1": p1, "p2": p2})


# ---------------------------------------------------------------- deducing the expression


class Formulas:
  """Givens and derivations of one graph, added as the targets need them."""

  def __init__(self, g: Graph):
    self.g, self.givens, self.derivs = g, {}, {}
    self.where = {}      # step name -> the x (or bounds) it is measured at

  def add(self, name, template, expr, inputs, value, why, slips=(), show=True,
          label=None, solves=False) -> str:
    """A derivation (kept if one of that name exists: shared steps are computed once)."""
    self.derivs.setdefault(name, Deriv(name, template, expr, tuple(inputs), value, why,
                                       show_names=show, slips=tuple(slips), label=label,
                                       solves=solves))
    return name

  def give(self, name, value) -> str:
    self.givens[name] = value
    return name

  def point(self, letter, x, y):
    self.g.points[letter] = (x, y)
    return self.give(f"x_{letter}", x), self.give(f"y_{letter}", y)

  def stating(self, reason: str, names: str):
    """The reason of a step whose formula is written in a family's letters (a·sin(bx + c) + d,
    log₂(x - h)), with the values of those that are given stated at the end: the question
    shows its form with numbers in their place (a·cos(x + π/2) + d), so b, c or h were never
    said, and a rationale that writes them teaches a reader letters from nowhere. The letters
    stated are the given ones, with the values the step is worked with (a misread h is stated
    as misread); each is one of the step's inputs. A function of the names, not of this
    object: no reference cycle."""
    given = tuple(n for n in names if n in self.givens)
    return FromInputs(functools.partial(_stated, reason, given)) if given else reason


def _stated(reason: str, names: tuple, values: dict) -> str:
  said = [f"{n} = {human(values[n])}" for n in names]
  return f"{reason}, where " + (" and ".join(said) if len(said) < 3
                                else ", ".join(said[:-1]) + " and " + said[-1])


def deduce(Fm: Formulas, vrng):
  """Mark points on the graph and derive f(x) from them (deduce mode), or give f(x)."""
  g = Fm.g
  if g.mode == "stated":
    Fm.give(F, g.f)
    if g.fam in ("sin", "cos"):  # read off the stated expression
      for k in "abcd":
        Fm.give(k, g.info[k])
    return
  {"poly": _deduce_poly, "sin": _deduce_trig, "cos": _deduce_trig, "tan": _deduce_tan,
   "log": _deduce_log, "abs": _deduce_abs}[g.fam](Fm, vrng)


def _deduce_poly(Fm: Formulas, vrng):
  g = Fm.g
  roots = g.info["roots"]
  names = "ABC"[:len(roots)]
  xs = [Fm.point(n, sp.Integer(r), sp.Integer(0))[0] for n, r in zip(names, roots)]
  free = [v for v in range(int(g.lo) + 1, int(g.hi)) if v not in roots]
  xd = sp.Integer(int(free[int(vrng.integers(len(free)))]))
  if deg_two_vertex(roots) == xd:  # P would print the extremum (its y) in the figure
    free.remove(int(xd))
    xd = sp.Integer(int(free[int(vrng.integers(len(free)))]))
  px, py = Fm.point("P", xd, g.f.subs(X, xd))
  tpl = "(" + ")(".join("{1} - {%d}" % (k + 2) for k in range(len(xs))) + ")"
  prod = "*".join(f"(q1 - q{k + 2})" for k in range(len(xs)))
  # the whole product in brackets: y_P / (x_P - x_A)(x_P - x_B) reads as (y_P / (x_P - x_A))·...
  Fm.add("a", "{0} / (" + tpl + ")", f"q0/({prod})", (py, px, *xs), None,
         f"The marked zeros give f(x) = a{''.join(f'(x - x_{n})' for n in names)}, and P is on "
         "the graph", [(f"q0*{prod}", "multiplied by the factors instead of dividing"),
                       (f"q0/({prod.replace(' - ', ' + ')})", "wrote the factors as (x + r)")])
  ftpl = "{0}" + "".join("(x - {%d})" % (k + 1) for k in range(len(xs)))
  fexpr = "expand(q0*" + "*".join(f"(x - q{k + 1})" for k in range(len(xs))) + ")"
  Fm.add(F, ftpl, fexpr, ("a", *xs), None, "Put a into the factored form")


def deg_two_vertex(roots: list):
  """x of the turning point of a(x - r)(x - s); None for other degrees."""
  return sp.Rational(roots[0] + roots[1], 2) if len(roots) == 2 else None


def _deduce_trig(Fm: Formulas, vrng):
  g = Fm.g
  a, b, c, d = (g.info[k] for k in "abcd")
  top = (PI / 2 if g.fam == "sin" else sp.Integer(0)) - c  # b·x + c there: the maxima
  xs = sorted({(top + 2 * PI * n) / b for n in range(-2, 3)}, key=as_float)
  xs = [v for v in xs if g.lo < as_float(v) < g.hi - as_float(PI / b)]
  if not xs:
    raise Rejected("no maximum and minimum both inside the plotted range")
  xm = xs[int(vrng.integers(len(xs)))]
  pa = Fm.point("A", xm, a + d)
  pb = Fm.point("B", xm + PI / b, d - a)
  Fm.give("b", b)
  Fm.give("c", c)
  Fm.add("a", "({0} - {1}) / 2", "(q0 - q1)/2", (pa[1], pb[1]), None,
         "A (highest) and B (lowest) are a maximum and a minimum: a is half their difference",
         [("q0 - q1", "forgot to halve"), ("(q0 + q1)/2", "took the mean instead")])
  Fm.add("d", "({0} + {1}) / 2", "(q0 + q1)/2", (pa[1], pb[1]), None,
         "The midline d is halfway between the maximum and the minimum",
         [("(q0 - q1)/2", "took the half-difference instead"), ("q0 + q1", "forgot to halve")])
  fn = "sin" if g.fam == "sin" else "cos"
  # the form as the question shows it (a·sin(2x + π/3) + d): b and c are not letters there
  Fm.add(F, "{0} · %s(%s) + {1}" % (fn, human(b * X + c)), f"q0*{fn}(q2*x + q3) + q1",
         ("a", "d", "b", "c"), None, "Put a and d into the form")


def _deduce_tan(Fm: Formulas, vrng):
  g = Fm.g
  b = g.info["b"]
  pa = Fm.point("A", PI / (4 * b), g.info["a"])
  Fm.give("b", b)
  Fm.add("a", "{0} / tan({2} · {1})", "q0/tan(q2*q1)", (pa[1], pa[0], "b"), None,
         f"A is on the graph of a·tan(bx), where b = {human(b)}, and tan(π/4) = 1",
         [("q0*q1", "multiplied by x instead")])
  Fm.add(F, "{0} · tan(%s)" % human(b * X), "q0*tan(q1*x)", ("a", "b"), None,
         "Put a into the form")


def _deduce_log(Fm: Formulas, vrng):
  g = Fm.g
  h = g.info["h"]
  m = one_of(vrng, [2, 3])
  if m == -g.info["k"] / g.info["a"]:  # B would be the zero, printed as (x, 0)
    m = 5 - m
  pa = Fm.point("A", h + 1, g.info["k"])
  pb = Fm.point("B", h + 2 ** m, sp.expand_log(g.f.subs(X, h + 2 ** m), force=True))
  Fm.give("h", h)
  Fm.add("k", "{0}", "q0", (pa[1],), None, "log₂(1) = 0, so the height at A is k")
  Fm.add("a", "({0} - {1}) / log₂({2} - {3})", "(q0 - q1)/log(q2 - q3, 2)",
         (pb[1], "k", pb[0], "h"), None, Fm.stating("B is on the graph: solve for a", "h"),
         [("(q0 + q1)/log(q2 - q3, 2)", "added k instead of subtracting it"),
          ("(q0 - q1)/(q2 - q3)", "divided by x - h instead of its logarithm")])
  Fm.add(F, "{0} · log₂(%s) + {1}" % human(X - h), "q0*log(x - q2, 2) + q1", ("a", "k", "h"),
         None, "Put a and k into the form")


def _deduce_abs(Fm: Formulas, vrng):
  g = Fm.g
  h, k = g.info["h"], g.info["k"]
  xb = h + one_of(vrng, [-3, -2, 2, 3])
  pa = Fm.point("A", h, k)
  g.roles["A"] = "the vertex"  # two points fix a, h and k only with this said
  pb = Fm.point("B", sp.Integer(xb), g.f.subs(X, xb))
  if pb[1] in Fm.givens and Fm.givens[pb[1]] == 0:
    raise Rejected("the second marked point is a zero")
  Fm.add("a", "({0} - {1}) / |{2} - {3}|", "(q0 - q1)/Abs(q2 - q3)", (pb[1], pa[1], pb[0], pa[0]),
         None, "A is the vertex (h, k) and B is on the graph: solve for a",
         [("(q0 - q1)/(q2 - q3)", "dropped the absolute value"),
          ("(q0 + q1)/Abs(q2 - q3)", "added the heights instead of subtracting")])
  Fm.add(F, "{0} · |x - {1}| + {2}", "q0*Abs(x - q1) + q2", ("a", pa[0], pa[1]), None,
         "Put a and the vertex into the form")
