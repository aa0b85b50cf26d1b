"""What is asked of a function graph: a value, a derivative, the tangent's intercept, an
average rate of change, an integral, the largest zero, an extremum, a monotonic interval. Each
adds the steps it needs (with the wrong formulas a student might use) to the graph's formulas;
`asked` fixes, per family and mode, which questions a figure program can ask.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import sympy as sp

from .captions import one_of
from .exact import X, FromInputs, as_float
from .function_graphs import PI, F, Formulas, Graph, deg_two_vertex
from .notation import human, interval, subscript, with_slot
from .problems import Rejected, Target


def sub(e, value) -> str:
  """A template that shows e with x replaced by the step's second input: bare when the value
  is a plain number (3·2², |2 - 1|) or π alone (sin(π/2)), in brackets otherwise
  (2·sin((π/6)/2)), once where x stood alone in brackets already (tan(-π/6), not
  tan((-π/6)))."""
  s = with_slot(e).replace("{", "{{").replace("}", "}}")
  shown = human(value)
  if shown.isdigit():
    return re.sub(r"(\d)ξ", r"\1·ξ", s).replace("ξ", "{1}")
  if shown == "π":  # one letter stands bare like a number: sin(π/2 + π/6), 2π, π²
    return s.replace("ξ", "{1}")
  return s.replace("(ξ)", "ξ").replace("ξ", "({1})")


# A sine's or cosine's special angles give seven values at most (0, ±1/2, ±√3/2, ±1): four
# points from π/6-2π/3 gave two equal values more often than not, and no set of four.
WIDE_SIXTHS = [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7]


def _at(g: Graph, vrng):
  """A point to evaluate at: special angles for trig, powers of 2 for log, else an integer."""
  if g.fam in ("sin", "cos", "tan"):
    b = g.info["b"]
    if g.fam == "tan":
      return _angle(one_of(vrng, [1, -1]), one_of(vrng, [3, 4, 6]), b)
    return _angle(one_of(vrng, WIDE_SIXTHS if g.wide else [1, 2, 3, 4]), 6, b)
  if g.fam == "log":
    return _past(g.info["h"], int(vrng.integers(0, 4)))
  p = sp.Integer(int(vrng.integers(math.ceil(g.lo) + 1, math.floor(g.hi))))
  kink = g.info.get("h", g.info.get("c")) if g.fam in ("abs", "piecewise") else None
  return p + 1 if kink is not None and p == kink else p


@functools.lru_cache(maxsize=4096, typed=True)
def _angle(n: int, d: int, b):
  """π·n/d over b: remembered, as the same few angles are drawn again and again (~70 points a
  function scene, most never asked: `_unmarked`, `_other`) and each was two sympy products."""
  return PI * sp.Rational(n, d) / b


@functools.lru_cache(maxsize=4096, typed=True)
def _past(h, k: int):
  """h + 2^k, a log's point: remembered like `_angle`."""
  return h + sp.Integer(2) ** k


def _unmarked(g: Graph, vrng, tries: int = 20, avoid: tuple = ()):
  """An evaluation point no marked point sits on: f there would be printed in the figure
  (A(3, -6) drawn, "Find f(3)" asked), and the question would be read, not worked."""
  marked = {x for x, _ in g.points.values()} | set(avoid)
  for _ in range(tries):
    p = _at(g, vrng)
    if p not in marked:
      return p
  raise Rejected("every point to evaluate at is a marked point")


def _value(Fm: Formulas, vrng, given: str = "p", avoid: tuple = ()) -> Target:
  p = Fm.give(given, _unmarked(Fm.g, vrng, avoid=avoid))
  name = _evaluate(Fm, "f", p)
  v = human(Fm.givens[p])
  return Target(name, f"the value of f at x = {v}",
                [f"What is the value of f(x) at x = {v}?", f"Find f({v}).",
                 f"Evaluate the function at x = {v}."])


DERIVATIVE_SLIPS = {"poly": [("power_slip(q0)", "forgot to multiply by the exponent")],
                    "log": [("diff(q0, x)*log(2)**2", "mixed up log₂ and ln in the derivative")],
                    "piecewise": [("Piecewise(*[(power_slip(e), c) for e, c in q0.args])",
                                   "forgot to multiply by the exponent")]}


def _dfdx(Fm: Formulas):
  """The step f'(x): by the trig rule from the coefficients, else by sympy."""
  g = Fm.g
  if g.fam in ("sin", "cos"):
    sign, other = ("", "cos") if g.fam == "sin" else ("-", "sin")
    Fm.add("f'(x)", sign + "{0} · {1} · %s({1} · x + {2})" % other,
           f"{sign}q0*q1*{other}(q1*x + q2)", ("a", "b", "c"), None,
           Fm.stating(f"The derivative of a·{g.fam}(bx + c) + d is {sign}a·b·{other}(bx + c)",
                      "abc"),
           [(f"{'-' if not sign else ''}q0*q1*{other}(q1*x + q2)",
             f"got the sign of the derivative of {g.fam} wrong"),
            (f"{sign}q0*{g.fam}(q1*x + q2)", "differentiated the outside only")])
  else:
    Fm.add("f'(x)", "d/dx [{0}]", "diff(q0, x)", (F,), None, "Differentiate f",
           DERIVATIVE_SLIPS.get(g.fam, ()))


def _evaluate(Fm: Formulas, fname: str, p: str) -> str:
  """The step `fname(p)`: f(x) or f'(x) at the point named p, written from the expression and
  the point it is worked with (`FromInputs`)."""
  slips = [("q0.subs(x, q1) - constant_term(q0)", "left out the constant term")]
  if fname == "f'":
    slips = [("q0.subs(x, q1) + constant_term(q0)", "added the constant term back in")]
  inputs = ("f(x)" if fname == "f" else "f'(x)", p)
  name = Fm.add(f"{fname}({human(Fm.givens[p])})", FromInputs(functools.partial(_put, inputs)),
                "q0.subs(x, q1)", inputs, None,
                FromInputs(functools.partial(_put_said, fname, inputs)), slips, show=False,
                label=FromInputs(functools.partial(_at_point, fname + "({})", (p,))))
  Fm.where[name] = as_float(Fm.givens[p])
  return name


def _at_point(form: str, names: tuple, values: dict) -> str:
  """A name or text that holds the points it is at: `f'({})` at x = π/6 is f'(π/6)."""
  return form.format(*(human(values[n]) for n in names))


def _put(inputs: tuple, values: dict) -> str:
  """The template of a substitution: the piece that holds there, x in it replaced."""
  e, at = (values[n] for n in inputs)
  return sub(piece_at(e, at)[0], at)


def _put_said(fname: str, inputs: tuple, values: dict) -> str:
  """The reason of a substitution: what is substituted into, and why that piece."""
  e, at = (values[n] for n in inputs)
  piece, where = piece_at(e, at)
  if where is None:
    return f"Substitute x = {human(at)} into {fname}(x) = {human(piece)}"
  return f"Since {where}, {fname}(x) = {human(piece)} there; substitute x = {human(at)}"


def piece_at(e, value) -> tuple:
  """(the piece of e that holds at x = value, why it holds there as text: "5 ≥ 2"), or (e,
  None) for an expression in one piece. A rationale substitutes into that piece alone: the
  whole of a piecewise f written out with x = 5 ("-5 - 1 for 5 < 2; 5² - 4·5 + 1 otherwise")
  is not how anyone works it."""
  if not isinstance(e, sp.Piecewise):
    return e, None
  before = []
  for piece, cond in e.args:
    where = cond if cond is not sp.true else sp.And(*[~c for c in before])
    if cond is sp.true or cond.subs(X, value) is sp.true:
      if not isinstance(where, sp.core.relational.Relational) or where.lhs != X:
        raise ValueError(f"engine: piece condition {where} is not x against a number; say in "
                         "words why the piece holds before using one")
      return piece, human(where.func(value, where.rhs, evaluate=False))
    before.append(cond)
  raise Rejected(f"no piece of {e} holds at x = {value}")


def _other(g: Graph, vrng, avoid: tuple = (), tries: int = 20):
  """A point to evaluate at other than those in `avoid`, else (rarely) one of them (with no
  `avoid`, the first point drawn)."""
  for _ in range(tries):
    p = _at(g, vrng)
    if p not in avoid:
      break
  return p


def _derivative(Fm: Formulas, vrng, given: str = "q", avoid: tuple = ()) -> Target:
  p = Fm.give(given, _other(Fm.g, vrng, avoid))
  _dfdx(Fm)
  name = _evaluate(Fm, "f'", p)
  v = human(Fm.givens[p])
  return Target(name, f"the derivative of f at x = {v}",
                [f"What is the derivative of f at x = {v}?", f"Find f'({v}).",
                 f"What is the slope of the tangent to the curve at x = {v}?"])


def _tangent(Fm: Formulas, vrng, given: str = "t", avoid: tuple = ()) -> Target:
  """The tangent line at x = t: its slope f'(t), then where it meets the y-axis."""
  g = Fm.g
  t = Fm.give(given, _other(g, vrng, avoid))
  _dfdx(Fm)
  fp, fd = _evaluate(Fm, "f", t), _evaluate(Fm, "f'", t)
  v = human(Fm.givens[t])
  name = f"y₀({v})"  # by its point, the first too: y₀(2π/3) + y₀(-π/2), not y₀ + y₀(-π/2)
  Fm.add(name, "{0} - {1} · {2}", "q0 - q1*q2", (fp, fd, t), None,
         FromInputs(functools.partial(_tangent_said, t)),
         [("q0 + q1*q2", "added f'(t)·t instead of subtracting it"),
          ("q1 - q0*q2", "swapped f(t) and f'(t)")], show=False,
         label=FromInputs(functools.partial(_at_point, "y₀({})", (t,))))
  Fm.where[name] = ("tangent", as_float(Fm.givens[t]))
  return Target(name, f"the y-intercept of the tangent to the graph at x = {v}",
                [f"Where does the tangent to the graph at x = {v} cross the y-axis (give y)?",
                 f"Find the y-intercept of the tangent line to f at x = {v}."])


def _tangent_said(t: str, values: dict) -> str:
  v = human(values[t])
  shift = f"({v})" if v.startswith("-") else v  # x - (-1), not x - -1
  return f"The tangent y = f'({v})·(x - {shift}) + f({v}) meets the y-axis at x = 0"


def _average(Fm: Formulas, vrng, given: str = "") -> Target:
  """The average rate of change between two points of the graph."""
  g = Fm.g
  for _ in range(10):
    u, w = sorted([_at(g, vrng), _at(g, vrng)], key=as_float)
    if u != w:
      break
  else:
    raise Rejected("no two distinct points to average over")
  un, wn = Fm.give("u" + given, u), Fm.give("w" + given, w)
  fu, fw = _evaluate(Fm, "f", un), _evaluate(Fm, "f", wn)
  name = f"rate[{human(u)}, {human(w)}]"  # by its interval, as y₀ by its point
  Fm.add(name, "({0} - {1}) / ({2} - {3})", "(q0 - q1)/(q2 - q3)", (fw, fu, wn, un), None,
         "The average rate of change is the rise over the run between the two points",
         [("(q0 + q1)/(q2 - q3)", "added the values instead of subtracting them"),
          ("(q2 - q3)/(q0 - q1)", "divided the run by the rise")], show=False,
         label=FromInputs(functools.partial(_at_point, "rate[{}, {}]", (un, wn))))
  Fm.where[name] = ("rate", as_float(u), as_float(w))
  return Target(name, f"the average rate of change of f from x = {human(u)} to x = {human(w)}",
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
    tag = f"F{subscript(k + 1)}(x)" if len(pieces) > 1 else "F(x)"
    # with two pieces, a slip names its piece: the same slip in either gives another value
    where = f" for {fname}" if len(pieces) > 1 else ""
    if g.fam in ("sin", "cos"):
      _trig_antiderivative(Fm, g.fam)
    else:
      Fm.add(tag, "∫ {0} dx", "Poly(q0, x).integrate().as_expr()", (fname,), None,
             (_piece_said(fname, g) or "An antiderivative") + ", term by term by the power rule",
             [(slip[0], slip[1] + where)])
    part = "I" if len(pieces) == 1 else f"I{subscript(k + 1)}"
    Fm.add(part, f"{tag[:-3]}({{2}}) - {tag[:-3]}({{1}})", "q0.subs(x, q2) - q0.subs(x, q1)",
           (tag, lo, hi), None, Fm.stating("Evaluate the antiderivative between "
                                           + BETWEEN[lo, hi], (lo, hi)),
           [("q0.subs(x, q2) + q0.subs(x, q1)",
             "added the two ends instead of subtracting" + where)])
    parts.append(part)
    Fm.where[part] = (as_float(Fm.givens[lo]), as_float(Fm.givens[hi]))
  if len(parts) > 1:
    Fm.add("I", "{0} + {1}", "q0 + q1", tuple(parts), None, "Add the two pieces")
    Fm.where["I"] = (as_float(a), as_float(b))
  lo_, hi_ = human(a), human(b)
  return Target("I", f"the integral of f from {lo_} to {hi_}",
                [f"What is the integral of f(x) from x = {lo_} to x = {hi_}?",
                 f"Compute the definite integral of f over [{lo_}, {hi_}].",
                 f"Find the signed area between the curve and the x-axis from {lo_} to {hi_}."])


# what the bounds of an integral's piece are, in words (the names are stated with their values)
BETWEEN = {("x₁", "x₂"): "the bounds", ("x₁", "c"): "the lower bound and the break",
           ("c", "x₂"): "the break and the upper bound"}


PIECES = {"p₁(x)": ("p1", "first", "x < c"), "p₂(x)": ("p2", "second", "x ≥ c")}


def _piece_said(fname: str, g: Graph) -> str:
  """What p₁(x) or p₂(x) is, said before it is integrated: the question shows f whole, its
  pieces and its break c unnamed."""
  if fname not in PIECES:
    return ""
  key, which, side = PIECES[fname]
  return (f"For {side} (c = {human(g.info['c'])}) f(x) is its {which} piece, {fname} = "
          f"{human(g.info[key])}; an antiderivative of it")


def _trig_antiderivative(Fm: Formulas, fam: str):
  sign, other = ("-", "cos") if fam == "sin" else ("", "sin")
  anti = "-" if not sign else ""
  Fm.add("F(x)", sign + "{0}/{1} · %s({1} · x + {2}) + {3} · x" % other,
         f"{sign}q0/q1*{other}(q1*x + q2) + q3*x", ("a", "b", "c", "d"), None,
         Fm.stating(f"An antiderivative of a·{fam}(bx + c) + d is {sign}a/b·{other}(bx + c) "
                    "+ d·x", "abcd"),
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
           Fm.stating("Set a·log₂(x - h) + k = 0: log₂(x - h) = -k/a, so x₀ is h plus 2 to "
                      "the power -k/a", "ahk"), [("q2 + 2**(q1/q0)",
                                                              "lost the minus sign of -k/a")],
           show=False)
  else:
    if g.fam == "abs" and not (-g.info["k"] / g.info["a"]) > 0:
      raise Rejected("this absolute-value graph has no zeros or only a touching one")
    Fm.add("zeros", "{0}", "sorted(solve(q0, x))", (F,), None, "Set f(x) = 0 and solve",
           solves=True)
    Fm.add("x₀", "max({0})", "Max(*q0)", ("zeros",), None, "Take the largest zero",
           [("Min(*q0)", "took the smallest zero")], show=False)
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
           Fm.stating("f = a·%s(bx + c) + d oscillates between d - a and d + a" % g.fam, "ad"),
           [("q0 - q1", "subtracted the midline"), ("2*q0 + q1", "used the peak-to-peak height")])
    return Target("max f", "the maximum value of f",
                  ["What is the maximum value of f(x)?", "Find the largest value f(x) takes.",
                   "How high does the graph reach?"])
  _critical(Fm)
  xc = _vertex(g)
  v = Fm.add("f(x_v)", FromInputs(functools.partial(_put, (F, "x_v"))), "q0.subs(x, q1)",
             (F, "x_v"), None, "Evaluate f at the extremum", show=False)
  word = "minimum" if opens_up(g) else "maximum"
  return Target(v, f"the {word} value of f",
                [f"What is the {word} value of f(x)?", f"Find the {word} of f.",
                 "What is the y-coordinate of the vertex of the graph?"])


def _vertex(g: Graph):
  """Where f turns: h for a·|x - h| + k; the midpoint of the roots for a(x - r)(x - s)."""
  if g.fam == "abs":
    return g.info["h"]
  return deg_two_vertex(g.info["roots"])


def opens_up(g: Graph) -> bool:
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
  Fm.add("x_v", "{0}", "solve(q0, x)[0]", ("f'(x)",), None,
         "The extremum is where f'(x) = 0", solves=True)


def _monotonic(Fm: Formulas, vrng) -> Target:
  g = Fm.g
  _critical(Fm)
  xc = _vertex(g)
  # the slip: -h for |x - h| read as |x + h|; -b/a (the 2 of -b/2a forgotten) for ax² + bx + c
  slipped = -xc if g.fam == "abs" else 2 * xc
  if slipped == xc:
    slipped = xc + one_of(vrng, [-1, 1])
  word = "increasing" if g.increasing else "decreasing"
  right = (word == "increasing") == opens_up(g)
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
                check=lambda: _monotone_on(g, as_float(xc), right, word))


def _monotone_on(g: Graph, xc: float, right: bool, word: str) -> bool:
  """Measured: f's differences on the answer's side of xc all have the asked sign."""
  xa = xc + (np.linspace(1e-3, 4, 300) if right else -np.linspace(4, 1e-3, 300))
  dv = np.diff(g.fn(xa))
  return bool(np.all(dv > 0) if word == "increasing" else np.all(dv < 0))


KINDS = {"value": _value, "derivative": _derivative, "integral": _integral, "zero": _zero,
         "extremum": _extremum, "monotonic": _monotonic, "tangent": _tangent,
         "average": _average}


def extras(Fm: Formulas, vrng, kinds: list, taken: list, deep: bool = False,
           same_kind: bool = False) -> list:
  """More quantities of the kinds asked, at other points: f at two more points, f' and the
  tangent's intercept at one more, one more average rate. Their priority keeps `pick` from
  choosing them, so the questions asked first are as before; they are there for multiple
  choice, whose option set needs four quantities of the depths asked (the others are asked
  when the set's draw falls on them). Without them a one-step function figure had at most two
  one-step quantities, and function problems at 3-4 or 5-6 steps were never multiple choice.

  A deep program (five steps or more wanted) has a third tangent and a third and fourth rate:
  those are a function figure's deepest quantities (6 steps where the expression is deduced
  from marked points), and with two of each a six-step figure was never multiple choice.
  Shallower programs go without them (they cost ~1 ms a problem and are never within --steps).

  same_kind (`--option_kinds same`, sets of the asked kind only): five or six of each kind, at
  points from a wider grid (`WIDE_SIXTHS`), so that a set of four distinct values, derivatives,
  tangents' intercepts or rates is there at every depth (the deep plan, then values at three
  more points, derivatives at four, two more tangents and rates). Mixed sets go without them,
  as before.

  The list is the same for every variant of a program (a variant's option set names its
  quantities by place): one that finds no other point than those taken is kept, never asked."""
  names = {t.name for t in taken}
  plan = {"value": [("p₂", _value, "p"), ("p₃", _value, "p p₂")],
          "derivative": [("q₂", _derivative, "q")], "tangent": [("t₂", _tangent, "t")],
          "average": [("₂", _average, "")]}
  deeper = {"tangent": [("t₃", _tangent, "t t₂")],
            "average": [("₃", _average, ""), ("₄", _average, "")]}
  if deep:
    plan = {k: v + deeper.get(k, []) for k, v in plan.items()}
  out = _made(Fm, vrng, kinds, plan, names)
  if same_kind:  # after every other draw: the quantities before them stay as they were
    Fm.g.wide = True
    more = {"value": [("p₄", _value, "p p₂ p₃"), ("p₅", _value, "p p₂ p₃ p₄"),
                      ("p₆", _value, "p p₂ p₃ p₄ p₅")],
            "derivative": [("q₃", _derivative, "q q₂"), ("q₄", _derivative, "q q₂ q₃"),
                           ("q₅", _derivative, "q q₂ q₃ q₄"),
                           ("q₆", _derivative, "q q₂ q₃ q₄ q₅")],
            "tangent": ([] if deep else deeper["tangent"]) + [("t₄", _tangent, "t t₂ t₃"),
                                                               ("t₅", _tangent, "t t₂ t₃ t₄")],
            "average": ([] if deep else deeper["average"]) + [("₅", _average, ""),
                                                               ("₆", _average, "")]}
    out += _made(Fm, vrng, kinds, more, names)
  return out


def _made(Fm: Formulas, vrng, kinds: list, plan: dict, names: set) -> list:
  out = []
  for kind in kinds:
    for given, make, others in plan.get(kind, ()):
      avoid = tuple(Fm.givens[n] for n in others.split())
      try:
        t = make(Fm, vrng, given, avoid=avoid) if avoid else make(Fm, vrng, given)
      except Rejected:  # every free point taken: f at a point taken, never asked
        t = make(Fm, vrng, given)
      t.priority, t.main_ok = 1, t.name not in names
      names.add(t.name)
      out.append(t)
  return out


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
