"""Exact numbers and the step chain every rationale is built from.

Answers are sympy expressions (exact), never floats: a rationale step keeps the machine formula
it used (`expr`, over inputs q0, q1, ...) next to its value, so a test can recompute each step
from the previous ones instead of trusting the text.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import sympy as sp

SQ2, SQ3 = sp.sqrt(2), sp.sqrt(3)
HALF = sp.Rational(1, 2)
# Special angles keep every trigonometric value exact (sin, cos, tan).
TRIG = {
  30: (HALF, SQ3 / 2, SQ3 / 3),
  45: (SQ2 / 2, SQ2 / 2, sp.Integer(1)),
  60: (SQ3 / 2, HALF, SQ3),
  90: (sp.Integer(1), sp.Integer(0), None),
  120: (SQ3 / 2, -HALF, -SQ3),
  135: (SQ2 / 2, -SQ2 / 2, sp.Integer(-1)),
  150: (HALF, -SQ3 / 2, -SQ3 / 3),
}


def fmt(v) -> str:
  """The exact value as a short sympy string: '8', '25/2', '8*sqrt(3)/3', '16*pi'."""
  try:
    return _fmt(v)
  except TypeError:  # unhashable (a list of values)
    return str(v)


@functools.lru_cache(maxsize=4096)
def _fmt(v) -> str:
  return str(sp.nsimplify(v) if isinstance(v, float) else v)


def approx(v, digits: int = 2) -> str:
  """Rounded decimal, no trailing zeros: 4.62, 12.5, 8."""
  s = f"{float(v):.{digits}f}".rstrip("0").rstrip(".")
  return "0" if s == "-0" else s


def is_rational(v) -> bool:
  return bool(getattr(v, "is_Rational", False))


def show(v, angle: bool = False) -> str:
  """Human form of a value inside a sentence: exact, plus the decimal when it is irrational."""
  if angle:
    return f"{fmt(v)}°"
  s = fmt(v)
  return s if is_rational(v) or getattr(v, "free_symbols", None) else f"{s} ≈ {approx(v)}"


@dataclasses.dataclass
class Deriv:
  """One deduction: `name` = template(inputs) with value `value`.

  expr: sympy-parsable formula over q0..qn (the inputs in order), x for function expressions;
  template: the same formula for people, with {0}, {1} for the input names.
  """
  name: str
  template: str
  expr: str
  inputs: tuple
  value: object
  reason: str
  show_names: bool = True  # False: the template only makes sense with values substituted

  def sentence(self, knowns: dict, angles: set) -> str:
    names = [i for i in self.inputs]
    vals = [_wrap(fmt(knowns[i])) + ("°" if i in angles else "") for i in self.inputs]
    f_names = self.template.format(*names)
    f_vals = self.template.format(*vals)
    tail = fmt(self.value)
    parts = [f"{self.name} = {f_names}"] if self.show_names else [f"{self.name}"]
    if f_vals != f_names or not self.show_names:
      parts.append(f_vals)
    if tail != parts[-1]:
      parts.append(tail)
    out = " = ".join(parts)
    if getattr(self.value, "is_number", False) and not is_rational(self.value):
      out += f" ≈ {approx(self.value)}"
    return f"{self.reason}: {out}."


def _wrap(s: str) -> str:
  """Parenthesize negatives and sums when substituted into a formula ("3 - (-6)", "(-1)^2")."""
  return f"({s})" if s.startswith("-") or " + " in s or " - " in s else s


def resolve(target: str, givens: dict, derivs: dict) -> list:
  """Backward deduction: walk from the target through formulas to the givens.

  Returns the needed derivations in forward order (the rationale is the chain reversed).
  Raises if a name has neither a given value nor a formula, naming it.
  """
  order, done = [], set(givens)

  def visit(name, stack):
    if name in done:
      return
    if name in stack:
      raise ValueError(f"engine: cyclic deduction through {name!r}; fix the shape's formulas")
    if name not in derivs:
      raise KeyError(f"engine: no given value and no formula for {name!r}")
    d = derivs[name]
    for i in d.inputs:
      visit(i, stack | {name})
    done.add(name)
    order.append(d)

  visit(target, frozenset())
  return order


def run_chain(chain: list, givens: dict) -> dict:
  """Values of every name after the chain (givens plus each step's value)."""
  known = dict(givens)
  for d in chain:
    known[d.name] = d.value
  return known


_NS = None


@functools.lru_cache(maxsize=None)
def _code(expr: str):
  return compile(expr, "<step>", "eval")


def recompute(d: Deriv, knowns: dict):
  """Evaluate a step's machine formula from its inputs' values (independent of `d.value`).

  The formula is Python over sympy (exact: integer literals only ever meet sympy values), compiled
  once per distinct formula; ~50x cheaper than sympify's parser.
  """
  global _NS
  if _NS is None:
    _NS = {k: getattr(sp, k) for k in ("sqrt", "sin", "cos", "tan", "pi", "Abs", "diff", "Poly",
                                       "solve", "Max", "log", "integrate")}
    _NS["x"] = sp.Symbol("x", real=True)
    _NS["__builtins__"] = {"sorted": sorted}
  loc = {f"q{k}": knowns[n] for k, n in enumerate(d.inputs)}
  return eval(_code(d.expr), _NS, loc)  # noqa: S307 - our own formula strings, not user input


def same(a, b, tol: float = 1e-9) -> bool:
  """Exact-or-numerically-equal: sympy values compared at high precision."""
  if type(a) is type(b) and a == b:  # the usual case: the same canonical sympy form
    return True
  if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
    return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
            and all(same(p, q, tol) for p, q in zip(a, b)))
  try:
    diff = sp.N(sp.sympify(a) - sp.sympify(b), 30)
    if diff.free_symbols:
      return sp.simplify(diff) == 0
    bb = sp.sympify(b)
    scale = abs(complex(sp.N(bb))) if bb.is_number else 1.0
    return abs(complex(diff)) <= tol * max(1.0, scale)
  except (TypeError, ValueError):
    return False


def distractors(value, rng, k: int = 3, extra=()) -> list:
  """k plausible wrong answers: the usual slips (double, half, off by a step, a dropped factor)."""
  v = sp.sympify(value)
  cands = list(extra) + [v * 2, v / 2, v * sp.Rational(3, 2), v + 2, v - 1, v * SQ2, v * SQ3 / 2,
                         v + 5, v * sp.Rational(2, 3), v * 3, v - 3]
  order = rng.permutation(len(cands))
  out, seen = [], {approx(v)}
  for i in order:
    c = sp.expand(sp.nsimplify(cands[i]) if isinstance(cands[i], float) else sp.sympify(cands[i]))
    try:
      f = float(c)
    except TypeError:
      continue
    if not math.isfinite(f) or (f <= 0 < float(v)):
      continue
    key = approx(c)
    if key in seen:
      continue
    seen.add(key)
    out.append(c)
    if len(out) == k:
      break
  return out
