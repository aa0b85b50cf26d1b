"""Function graphs: a function of one family, its graph, and properties deduced from it.

Families as MAVIS-Function: poly, sin, cos, tan, log, abs, plus piecewise polynomials. In
`stated` mode the expression is given (drawn above the graph); in `deduce` mode only its form
with unknown coefficients is given (`f(x) = a·|x - h| + k`) and the graph marks points from
which the rationale first deduces the coefficients, then uses the expression (a value, a
derivative, an integral, a zero, an extremum, a monotonic interval). Coefficients are chosen so
every answer is exact. Every quantity a step names is re-measured from a NumPy evaluator written
from the coefficients, not from the sympy expression (finite differences, Simpson's rule, sign
changes), so a wrong symbolic step cannot pass.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import sympy as sp

from . import captions as C
from . import render as R
from .exact import X, Deriv
from .notation import human, interval
from .problems import Rejected, Scene, Target

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


def program(srng, wanted: int) -> tuple:
  """(family, mode, degree): deeper chains deduce the expression more often."""
  fam = str(srng.choice(FAMILIES))
  deduce = fam in DEDUCIBLE and srng.random() < (0.35 if wanted <= 2 else 0.8)
  return fam, "deduce" if deduce else "stated", int(srng.choice([2, 2, 3]))


def family(vrng, fam: str, mode: str, deg: int = 2) -> Graph:
  """The function, with exact-friendly coefficients, and a float evaluator of its own."""
  if fam == "poly":
    return _poly(vrng, mode, deg)
  if fam in ("sin", "cos"):
    return _trig(vrng, fam, mode)
  if fam == "tan":
    a = sp.Integer(int(vrng.choice([1, 2, 3, -1, -2])))
    b = sp.Integer(1) if vrng.random() < 0.5 else sp.Rational(1, 2)
    af, bf = float(a), float(b)
    half = float(PI / (2 * b))
    return Graph(fam, mode, a * sp.tan(b * X), lambda x: af * np.tan(bf * x), -half * 0.92,
                 half * 0.92, {"a": a, "b": b}, f"f(x) = a·tan({human(b * X)})")
  if fam == "log":
    a = sp.Integer(int(vrng.choice([1, 2, 3, -1, -2])))
    h = sp.Integer(int(vrng.integers(-3, 3)))
    k = a * int(vrng.choice([-2, -1, 1, 2]))   # -k/a is an integer: the zero is exact
    af, hf, kf = float(a), float(h), float(k)
    return Graph(fam, mode, a * sp.log(X - h, 2) + k,
                 lambda x: af * np.log2(np.maximum(x - hf, 1e-300)) + kf, hf + 0.05, hf + 10,
                 {"a": a, "h": h, "k": k}, f"f(x) = a·log₂({human(X - h)}) + k")
  if fam == "abs":
    a = sp.Rational(int(vrng.choice([1, 2, 3, -1, -2])), int(vrng.choice([1, 1, 2])))
    h = sp.Integer(int(vrng.integers(-3, 4)))
    k = -sp.sign(a) * int(vrng.choice([1, 2, 3, 4]))   # opens towards the x-axis: two zeros
    af, hf, kf = float(a), float(h), float(k)
    return Graph(fam, mode, a * sp.Abs(X - h) + k, lambda x: af * np.abs(x - hf) + kf, hf - 5,
                 hf + 5, {"a": a, "h": h, "k": k}, "f(x) = a·|x - h| + k")
  if fam == "piecewise":
    return _piecewise(vrng)
  raise ValueError(f"engine: unknown function family {fam!r}; choose one of {FAMILIES}")


def _poly(vrng, mode, deg) -> Graph:
  roots = sorted(vrng.choice(np.arange(-4, 5), deg, replace=False).tolist())
  a = sp.Rational(int(vrng.choice([1, -1, 2, -2])), 1 if deg == 2 else int(vrng.choice([1, 2])))
  f = sp.expand(a * sp.Mul(*[(X - r) for r in roots]))
  co = [float(c) for c in sp.Poly(f, X).all_coeffs()]
  form = "f(x) = ax² + bx + c" if deg == 2 else "f(x) = ax³ + bx² + cx + d"
  return Graph("poly", mode, f, lambda x: np.polyval(co, x), roots[0] - 2, roots[-1] + 2,
               {"roots": roots, "deg": deg, "a": a}, form)


def _trig(vrng, fam, mode) -> Graph:
  a = sp.Integer(int(vrng.choice([1, 2, 3])))
  b = sp.Rational(int(vrng.choice([1, 2, 1])), int(vrng.choice([1, 1, 2])))
  c = PI * sp.Rational(int(vrng.choice([0, 1, 1, 2, 3])), 6)
  d = sp.Integer(int(vrng.choice([-1, 0, 0, 1])))
  trig, npt = (sp.sin, np.sin) if fam == "sin" else (sp.cos, np.cos)
  af, bf, cf, df = float(a), float(b), float(c), float(d)
  form = f"f(x) = a·{fam}({human(b * X + c)}) + d"
  return Graph(fam, mode, a * trig(b * X + c) + d, lambda x: af * npt(bf * x + cf) + df,
               -float(2 * PI / b), float(2 * PI / b), {"a": a, "b": b, "c": c, "d": d}, form)


def _piecewise(vrng) -> Graph:
  c = sp.Integer(int(vrng.integers(-2, 3)))
  p2 = sp.expand(sp.Integer(int(vrng.choice([1, -1]))) * (X - c) ** 2
                 + sp.Integer(int(vrng.integers(-2, 3))) * (X - c) + int(vrng.integers(-3, 4)))
  m = sp.Integer(int(vrng.choice([-2, -1, 1, 2])))
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
    self._df = None

  def derivative(self):
    """f'(x) (sympy), computed once and only when a rationale shows it."""
    if self._df is None:
      self._df = sp.diff(self.g.f, X)
    return self._df

  def add(self, name, template, expr, inputs, value, why, slips=(), show=True) -> str:
    """A derivation (kept if one of that name exists: shared steps are computed once)."""
    self.derivs.setdefault(name, Deriv(name, template, expr, tuple(inputs), value, why, show,
                                       tuple(slips)))
    return name

  def give(self, name, value) -> str:
    self.givens[name] = value
    return name

  def point(self, letter, x, y):
    self.g.points[letter] = (x, y)
    return self.give(f"x_{letter}", x), self.give(f"y_{letter}", y)


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
  px, py = Fm.point("P", xd, g.f.subs(X, xd))
  tpl = "(" + ")(".join("{1} - {%d}" % (k + 2) for k in range(len(xs))) + ")"
  prod = "*".join(f"(q1 - q{k + 2})" for k in range(len(xs)))
  Fm.add("a", "{0} / " + tpl, f"q0/({prod})", (py, px, *xs), None,
         f"The marked zeros give f(x) = a{''.join(f'(x - x_{n})' for n in names)}, and P is on "
         "the graph", [(f"q0*{prod}", "multiplied by the factors instead of dividing"),
                       (f"q0/({prod.replace(' - ', ' + ')})", "wrote the factors as (x + r)")])
  ftpl = "{0}" + "".join("(x - {%d})" % (k + 1) for k in range(len(xs)))
  fexpr = "expand(q0*" + "*".join(f"(x - q{k + 1})" for k in range(len(xs))) + ")"
  Fm.add(F, ftpl, fexpr, ("a", *xs), None, "Put a into the factored form")


def _deduce_trig(Fm: Formulas, vrng):
  g = Fm.g
  a, b, c, d = (g.info[k] for k in "abcd")
  top = (PI / 2 if g.fam == "sin" else sp.Integer(0)) - c
  period = 2 * PI / b
  xs = sorted({(top + n * period) / b for n in range(-2, 3)}, key=float)
  xs = [v for v in xs if g.lo < float(v) < g.hi - float(PI / b)]
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
  Fm.add(F, "{0} · %s({2} · x + {3}) + {1}" % fn, f"q0*{fn}(q2*x + q3) + q1",
         ("a", "d", "b", "c"), None, "Put a and d into the form")


def _deduce_tan(Fm: Formulas, vrng):
  g = Fm.g
  b = g.info["b"]
  pa = Fm.point("A", PI / (4 * b), g.info["a"])
  Fm.give("b", b)
  Fm.add("a", "{0} / tan({2} · {1})", "q0/tan(q2*q1)", (pa[1], pa[0], "b"), None,
         "A is on the graph, and tan(π/4) = 1", [("q0*q1", "multiplied by x instead")])
  Fm.add(F, "{0} · tan({1} · x)", "q0*tan(q1*x)", ("a", "b"), None, "Put a into the form")


def _deduce_log(Fm: Formulas, vrng):
  g = Fm.g
  h = g.info["h"]
  m = int(vrng.choice([2, 3]))
  pa = Fm.point("A", h + 1, g.info["k"])
  pb = Fm.point("B", h + 2 ** m, sp.expand_log(g.f.subs(X, h + 2 ** m), force=True))
  Fm.give("h", h)
  Fm.add("k", "{0}", "q0", (pa[1],), None, "log₂(1) = 0, so the height at A is k")
  Fm.add("a", "({0} - {1}) / log₂({2} - {3})", "(q0 - q1)/log(q2 - q3, 2)",
         (pb[1], "k", pb[0], "h"), None, "B is on the graph: solve for a",
         [("(q0 + q1)/log(q2 - q3, 2)", "added k instead of subtracting it"),
          ("(q0 - q1)/(q2 - q3)", "divided by x - h instead of its logarithm")])
  Fm.add(F, "{0} · log₂(x - {2}) + {1}", "q0*log(x - q2, 2) + q1", ("a", "k", "h"), None,
         "Put a and k into the form")


def _deduce_abs(Fm: Formulas, vrng):
  g = Fm.g
  h, k = g.info["h"], g.info["k"]
  xb = h + int(vrng.choice([-3, -2, 2, 3]))
  pa = Fm.point("A", h, k)
  pb = Fm.point("B", sp.Integer(xb), g.f.subs(X, xb))
  if pb[1] in Fm.givens and Fm.givens[pb[1]] == 0:
    raise Rejected("the second marked point is a zero")
  Fm.add("a", "({0} - {1}) / |{2} - {3}|", "(q0 - q1)/Abs(q2 - q3)", (pb[1], pa[1], pb[0], pa[0]),
         None, "A is the vertex (h, k) and B is on the graph: solve for a",
         [("(q0 - q1)/(q2 - q3)", "dropped the absolute value"),
          ("(q0 + q1)/Abs(q2 - q3)", "added the heights instead of subtracting")])
  Fm.add(F, "{0} · |x - {1}| + {2}", "q0*Abs(x - q1) + q2", ("a", pa[0], pa[1]), None,
         "Put a and the vertex into the form")


# ---------------------------------------------------------------- what is asked


SLOT = sp.Symbol("ξ", real=True)


def sub(e, value) -> str:
  """A template that shows e with x replaced by the step's second input: bare when the value
  is a plain number (3·2², |2 - 1|), in brackets otherwise (2·sin((π/6)/2))."""
  s = human(e.xreplace({X: SLOT})).replace("{", "{{").replace("}", "}}")
  if human(value).isdigit():
    return re.sub(r"(\d)ξ", r"\1·ξ", s).replace("ξ", "{1}")
  return s.replace("ξ", "({1})")


def _at(g: Graph, vrng):
  """A point to evaluate at: special angles for trig, powers of 2 for log, else an integer."""
  if g.fam in ("sin", "cos", "tan"):
    b = g.info["b"]
    if g.fam == "tan":
      return PI * sp.Rational(int(vrng.choice([1, -1])), int(vrng.choice([3, 4, 6]))) / b
    return PI * sp.Rational(int(vrng.choice([1, 2, 3, 4])), 6) / b
  if g.fam == "log":
    return g.info["h"] + sp.Integer(2) ** int(vrng.integers(0, 4))
  p = sp.Integer(int(vrng.integers(math.ceil(g.lo) + 1, math.floor(g.hi))))
  kink = g.info.get("h", g.info.get("c")) if g.fam in ("abs", "piecewise") else None
  return p + 1 if kink is not None and p == kink else p


def _value(Fm: Formulas, vrng) -> Target:
  p = Fm.give("p", _at(Fm.g, vrng))
  name = _evaluate(Fm, "f", Fm.g.f, p, "")
  v = human(Fm.givens[p])
  return Target(name, f"the value of f at x = {v}",
                [f"What is the value of f(x) at x = {v}?", f"Find f({v}).",
                 f"Evaluate the function at x = {v}."])


DERIVATIVE_SLIPS = {"poly": [("power_slip(q0)", "forgot to multiply by the exponent")],
                    "log": [("diff(q0, x)*log(2)**2", "mixed up log₂ and ln in the derivative")],
                    "piecewise": [("Piecewise(*[(power_slip(e), c) for e, c in q0.args])",
                                   "forgot to multiply by the exponent")]}


def _dfdx(Fm: Formulas):
  """f'(x): by the trig rule from the coefficients, else by sympy."""
  g = Fm.g
  if g.fam in ("sin", "cos"):
    sign, other = ("", "cos") if g.fam == "sin" else ("-", "sin")
    Fm.add("f'(x)", sign + "{0} · {1} · %s({1} · x + {2})" % other,
           f"{sign}q0*q1*{other}(q1*x + q2)", ("a", "b", "c"), None,
           f"The derivative of a·{g.fam}(bx + c) + d is {sign}a·b·{other}(bx + c)",
           [(f"{'-' if not sign else ''}q0*q1*{other}(q1*x + q2)",
             f"got the sign of the derivative of {g.fam} wrong"),
            (f"{sign}q0*{g.fam}(q1*x + q2)", "differentiated the outside only")])
  else:
    Fm.add("f'(x)", "d/dx [{0}]", "diff(q0, x)", (F,), None, "Differentiate f",
           DERIVATIVE_SLIPS.get(g.fam, ()))
  return Fm.derivative





def _evaluate(Fm: Formulas, fname: str, expr, p: str, why: str) -> str:
  """The step `fname(p)` = expr at the point named p; expr may be a thunk (f'(x) is computed
  only if a question uses it)."""
  v = human(Fm.givens[p])
  slips = [("q0.subs(x, q1) - constant_term(q0)", "left out the constant term")]
  if fname == "f'":
    slips = [("q0.subs(x, q1) + constant_term(q0)", "added the constant term back in")]
  e = expr if callable(expr) else (lambda: expr)
  value = Fm.givens[p]
  name = Fm.add(f"{fname}({v})", lambda: sub(e(), value), "q0.subs(x, q1)",
                ("f(x)" if fname == "f" else "f'(x)", p), None,
                (lambda: f"Substitute x = {v} into {fname}(x) = {human(e())}") if not why else why,
                slips, show=False)
  Fm.where[name] = float(Fm.givens[p])
  return name


def _derivative(Fm: Formulas, vrng) -> Target:
  p = Fm.give("q", _at(Fm.g, vrng))
  name = _evaluate(Fm, "f'", _dfdx(Fm), p, "")
  v = human(Fm.givens[p])
  return Target(name, f"the derivative of f at x = {v}",
                [f"What is the derivative of f at x = {v}?", f"Find f'({v}).",
                 f"What is the slope of the tangent to the curve at x = {v}?"])


def _tangent(Fm: Formulas, vrng) -> Target:
  """The tangent line at x = t: its slope f'(t), then where it meets the y-axis."""
  g = Fm.g
  t = Fm.give("t", _at(g, vrng))
  fp = _evaluate(Fm, "f", g.f, t, "")
  fd = _evaluate(Fm, "f'", _dfdx(Fm), t, "")
  v = human(Fm.givens[t])
  Fm.add("y₀", "{0} - {1} · {2}", "q0 - q1*q2", (fp, fd, t), None,
         f"The tangent y = f'({v})·(x - {v}) + f({v}) meets the y-axis at x = 0",
         [("q0 + q1*q2", "added f'(t)·t instead of subtracting it"),
          ("q1 - q0*q2", "swapped f(t) and f'(t)")], show=False)
  Fm.where["y₀"] = ("tangent", float(Fm.givens[t]))
  return Target("y₀", f"the y-intercept of the tangent to the graph at x = {v}",
                [f"Where does the tangent to the graph at x = {v} cross the y-axis (give y)?",
                 f"Find the y-intercept of the tangent line to f at x = {v}."])


def _average(Fm: Formulas, vrng) -> Target:
  """The average rate of change between two points of the graph."""
  g = Fm.g
  for _ in range(10):
    u, w = sorted([_at(g, vrng), _at(g, vrng)], key=float)
    if u != w:
      break
  else:
    raise Rejected("no two distinct points to average over")
  un, wn = Fm.give("u", u), Fm.give("w", w)
  fu, fw = _evaluate(Fm, "f", g.f, un, ""), _evaluate(Fm, "f", g.f, wn, "")
  Fm.add("rate", "({0} - {1}) / ({2} - {3})", "(q0 - q1)/(q2 - q3)", (fw, fu, wn, un), None,
         "The average rate of change is the rise over the run between the two points",
         [("(q0 + q1)/(q2 - q3)", "added the values instead of subtracting them"),
          ("(q2 - q3)/(q0 - q1)", "divided the run by the rise")], show=False)
  Fm.where["rate"] = ("rate", float(u), float(w))
  return Target("rate", f"the average rate of change of f from x = {human(u)} to x = {human(w)}",
                [f"What is the average rate of change of f(x) from x = {human(u)} to "
                 f"x = {human(w)}?",
                 f"Find the slope of the secant line through the graph at x = {human(u)} "
                 f"and x = {human(w)}."])


def _integral(Fm: Formulas, vrng) -> Target:
  g = Fm.g
  if g.fam in ("sin", "cos"):
    a, b = sp.Integer(0), PI / g.info["b"]
  else:
    a = sp.Integer(int(vrng.integers(math.ceil(g.lo), math.floor(g.hi) - 1)))
    b = sp.Integer(int(vrng.integers(int(a) + 1, math.floor(g.hi) + 1)))
  Fm.give("x₁", a)
  Fm.give("x₂", b)
  slip = ("antiderivative_slip(q0)", "forgot to divide by n + 1")
  pieces = [(F, "x₁", "x₂")]
  if g.fam == "piecewise":
    c = g.info["c"]
    Fm.give("p₁(x)", g.info["p1"])
    Fm.give("p₂(x)", g.info["p2"])
    Fm.give("c", c)
    pieces = ([("p₁(x)", "x₁", "x₂")] if b <= c else [("p₂(x)", "x₁", "x₂")] if a >= c
              else [("p₁(x)", "x₁", "c"), ("p₂(x)", "c", "x₂")])
  parts = []
  for k, (fname, lo, hi) in enumerate(pieces):
    tag = f"F{k + 1}(x)" if len(pieces) > 1 else "F(x)"
    if g.fam in ("sin", "cos"):
      _trig_antiderivative(Fm, g.fam)
    else:
      Fm.add(tag, "∫ {0} dx", "Poly(q0, x).integrate().as_expr()", (fname,), None,
             "An antiderivative, term by term by the power rule", [slip])
    part = "I" if len(pieces) == 1 else f"I{k + 1}"
    Fm.add(part, f"{tag[:-3]}({{2}}) - {tag[:-3]}({{1}})", "q0.subs(x, q2) - q0.subs(x, q1)",
           (tag, lo, hi), None, "Evaluate the antiderivative between the bounds",
           [("q0.subs(x, q2) + q0.subs(x, q1)", "added the two ends instead of subtracting")])
    parts.append(part)
    Fm.where[part] = (float(Fm.givens[lo]), float(Fm.givens[hi]))
  if len(parts) > 1:
    Fm.add("I", "{0} + {1}", "q0 + q1", tuple(parts), None, "Add the two pieces")
    Fm.where["I"] = (float(a), float(b))
  lo_, hi_ = human(a), human(b)
  return Target("I", f"the integral of f from {lo_} to {hi_}",
                [f"What is the integral of f(x) from x = {lo_} to x = {hi_}?",
                 f"Compute the definite integral of f over [{lo_}, {hi_}].",
                 f"Find the signed area between the curve and the x-axis from {lo_} to {hi_}."])


def _trig_antiderivative(Fm: Formulas, fam: str):
  sign, other = ("-", "cos") if fam == "sin" else ("", "sin")
  anti = "-" if not sign else ""
  Fm.add("F(x)", sign + "{0}/{1} · %s({1} · x + {2}) + {3} · x" % other,
         f"{sign}q0/q1*{other}(q1*x + q2) + q3*x", ("a", "b", "c", "d"), None,
         f"An antiderivative of a·{fam}(bx + c) + d is {sign}a/b·{other}(bx + c) + d·x",
         [(f"{anti}q0/q1*{other}(q1*x + q2) + q3*x", "got the sign of the antiderivative wrong"),
          (f"{sign}q0*q1*{other}(q1*x + q2) + q3*x", "multiplied by b instead of dividing")])


def _zero(Fm: Formulas, vrng) -> Target:
  """The largest zero: from the factored form (poly), |x - h| = -k/a (abs), or
  log₂(x - h) = -k/a (log, with -k/a an integer so the zero is exact)."""
  g = Fm.g
  if g.fam == "log":
    a, h, k = g.info["a"], g.info["h"], g.info["k"]
    if g.mode == "stated":
      for n in "ahk":
        Fm.give(n, g.info[n])
    m = int(-k / a)
    Fm.add("x₀", "{2} + 2" + superscript_of(m), "q2 + 2**(-q1/q0)", ("a", "k", "h"), None,
           "Set a·log₂(x - h) + k = 0: log₂(x - h) = -k/a", [("q2 + 2**(q1/q0)",
                                                              "lost the minus sign of -k/a")],
           show=False)
  else:
    if g.fam == "abs" and not (-g.info["k"] / g.info["a"]) > 0:
      raise Rejected("this absolute-value graph has no zeros or only a touching one")
    Fm.add("zeros", "solve({0} = 0)", "sorted(solve(q0, x))", (F,), None, "Set f(x) = 0 and solve")
    Fm.add("x₀", "max({0})", "Max(*q0)", ("zeros",), None, "Take the largest zero",
           [("Min(*q0)", "took the smallest zero")])
  return Target("x₀", "the largest zero of f",
                ["What is the largest zero of f(x)?", "Find the largest x with f(x) = 0.",
                 "What is the greatest root of f(x) = 0?"])


def superscript_of(m: int) -> str:
  from .notation import superscript
  return superscript(m)


def _extremum(Fm: Formulas, vrng) -> Target:
  g = Fm.g
  if g.fam in ("sin", "cos"):
    Fm.add("max f", "{0} + {1}", "q0 + q1", ("a", "d"), None,
           "f oscillates between d - a and d + a", [("q0 - q1", "subtracted the midline"),
                                                  ("2*q0 + q1", "used the peak-to-peak height")])
    return Target("max f", "the maximum value of f",
                  ["What is the maximum value of f(x)?", "Find the largest value f(x) takes.",
                   "How high does the graph reach?"])
  _critical(Fm)
  xc = _vertex(g)
  v = Fm.add("f(x_v)", lambda: sub(g.f, xc), "q0.subs(x, q1)", (F, "x_v"), None,
             "Evaluate f at the extremum",
             show=False)
  word = "minimum" if _opens_up(g) else "maximum"
  return Target(v, f"the {word} value of f",
                [f"What is the {word} value of f(x)?", f"Find the {word} of f.",
                 "What is the y-coordinate of the vertex of the graph?"])


def _vertex(g: Graph):
  """Where f turns: h for a·|x - h| + k; the midpoint of the roots for a(x - r)(x - s)."""
  if g.fam == "abs":
    return g.info["h"]
  r, s = g.info["roots"]
  return sp.Rational(r + s, 2)


def _opens_up(g: Graph) -> bool:
  return bool(g.info["a"] > 0)


def _critical(Fm: Formulas):
  """x_v where f turns: the vertex x = h of an absolute value, else f'(x) = 0."""
  g = Fm.g
  if g.fam == "abs":
    h = "x_A" if g.mode == "deduce" else Fm.give("h", g.info["h"])
    Fm.add("x_v", "{0}", "q0", (h,), None, "|x - h| is smallest at x = h")
    return
  Fm.add("f'(x)", "d/dx [{0}]", "diff(q0, x)", (F,), None, "Differentiate f",
         DERIVATIVE_SLIPS["poly"])
  Fm.add("x_v", "solve({0} = 0)", "solve(q0, x)[0]", ("f'(x)",), None,
         "The extremum is where f'(x) = 0")


def _monotonic(Fm: Formulas, vrng) -> Target:
  g = Fm.g
  _critical(Fm)
  xc = _vertex(g)
  # the slip: -h for |x - h| read as |x + h|; -b/a (the 2 of -b/2a forgotten) for ax² + bx + c
  slipped = -xc if g.fam == "abs" else 2 * xc
  if slipped == xc:
    slipped = xc + int(vrng.choice([-1, 1]))
  word = str(vrng.choice(["increasing", "decreasing"]))
  right = (word == "increasing") == _opens_up(g)
  side = lambda v, r: interval(v, sp.oo) if r else interval(-sp.oo, v)  # noqa: E731
  expr = lambda v, r: f"Interval.open({v}, oo)" if r else f"Interval.open(-oo, {v})"  # noqa: E731
  wrong = [(side(xc, not right), expr(xc, not right), ["read the direction of the graph "
                                                        "the wrong way"]),
           (side(slipped, right), expr(slipped, right), ["found the turning point wrongly"]),
           (side(slipped, not right), expr(slipped, not right),
            ["found the turning point wrongly", "read the direction the wrong way"])]
  return Target("x_v", "the interval on which f is " + word,
                [f"On which interval is f(x) {word}?", f"Where is f {word}?",
                 f"Give the interval on which the function is {word}."],
                answer_text=side(xc, right), answer_expr=expr(xc, right), wrong_texts=wrong,
                check=lambda: _monotone_on(g, float(xc), right, word))


def _monotone_on(g: Graph, xc: float, right: bool, word: str) -> bool:
  """Measured: f's differences on the answer's side of xc all have the asked sign."""
  xa = xc + (np.linspace(1e-3, 4, 300) if right else -np.linspace(4, 1e-3, 300))
  dv = np.diff(g.fn(xa))
  return bool(np.all(dv > 0) if word == "increasing" else np.all(dv < 0))


KINDS = {"value": _value, "derivative": _derivative, "integral": _integral, "zero": _zero,
         "extremum": _extremum, "monotonic": _monotonic, "tangent": _tangent,
         "average": _average}


def asked(fam: str, mode: str, deg: int) -> list:
  """What can be asked of a graph of this family and mode: fixed by the program, so every
  variant of a problem asks the same kind of question."""
  out = ["value", "derivative", "tangent", "average"]
  if fam in ("poly", "sin", "cos", "piecewise"):
    out.append("integral")
  if fam in ("log", "abs") or fam == "poly" and mode == "stated":
    out.append("zero")
  if (fam in ("sin", "cos") and mode == "stated") or (fam == "poly" and deg == 2) or (
      fam == "abs" and mode == "stated"):
    out.append("extremum")
  if fam == "abs" or fam == "poly" and deg == 2:
    out.append("monotonic")
  return out


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


def _extreme(g: Graph) -> tuple:
  xs = np.linspace(g.lo, g.hi, 200001)
  ys = g.fn(xs)
  k = int(np.argmin(ys) if _opens_up(g) else np.argmax(ys))
  return float(xs[k]), float(ys[k])


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
    return float(g.fn(np.linspace(g.lo, g.hi, 200001)).max())
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
  pts = [_pt(n, p) for n, p in g.points.items()]
  listed = ", ".join(pts[:-1]) + f" and {pts[-1]}" if len(pts) > 1 else pts[0]
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
    at = (float(p[0]), float(p[1]))
    down = float(p[1]) < float(g.fn(np.array([at[0] - 0.3]))[0])
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
  size = 14
  while size > 9 and R.tile(text, size, color)[2][2] - R.tile(text, size, color)[2][0] > 360:
    size -= 1
  rel = R.tile(text, size, color)[2]
  w = rel[2] - rel[0]
  spots = [(8 + w / 2, 13), (c.size / 2, 13), (c.size - 8 - w / 2, 13)]
  at = c.place(text, size, color, spots)
  c.text(at, text, size, color)
  c.drawn.append(fid)


def make(srng, vrng, wanted: int) -> Scene:
  fam, mode, deg = program(srng, wanted)
  g = family(vrng, fam, mode, deg)
  Fm = Formulas(g)
  deduce(Fm, vrng)
  tgts = [KINDS[k](Fm, vrng) for k in asked(fam, mode, deg)]
  for t in tgts:
    t.signed = True  # values, slopes, integrals: any sign
  td = context(g)
  fid, text = header(g)
  intro = (C.pick(vrng, C.FUNC_INTRO, f=text, expr=text[7:], family=fam, lo=f"{g.lo:.3g}",
                  hi=f"{g.hi:.3g}") if mode == "stated" else td)
  return Scene(
    domain="function", family=fam, givens=Fm.givens, derivs=Fm.derivs, targets=tgts,
    measure=lambda n: measure(Fm, n), facts=facts(g),
    context={"text_dominant": td, "text_lite": "", "vision_dominant": ""},
    caption=[intro], generation=[intro], key=f"{fam}|{mode}|{g.f}|{sorted(g.points.items())}",
    draw=lambda: draw(g, vrng), kind_of=lambda n: None, misreads=misreads(Fm),
    exact_only=True)


def misreads(Fm: Formulas) -> list:
  """The point asked about read with the wrong sign or one grid step off; for trig, the
  neighbouring special angle."""
  out = []
  for name in ("p", "q", "t", "u", "w"):
    if name not in Fm.givens:
      continue
    v = Fm.givens[name]
    if v != 0 and Fm.g.fam != "log":
      out.append((name, -v, f"substituted x = {human(-v)} for x = {human(v)}"))
    step = PI / (6 * Fm.g.info["b"]) if Fm.g.fam in ("sin", "cos", "tan") else 1
    w = v + step
    if Fm.g.lo < float(w) < Fm.g.hi and not (Fm.g.fam == "tan" and abs(float(w)) >= float(
        PI / (2 * Fm.g.info["b"]))):
      out.append((name, w, f"read x = {human(v)} as {human(w)}"))
  return out
