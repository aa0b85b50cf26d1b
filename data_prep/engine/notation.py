"""Math notation for people: sympy values written as √3, π, x², 3/2, |x - 1|, log₂(x), 2·sin(x).

Every human-facing text of the engine (questions, options, captions, rationales, diagram labels)
goes through `human`; sympy's own form (`machine`, e.g. `8*sqrt(3)/3`) is kept only in machine
fields (`answer_expr`, `scenes.jsonl`) for checking. A model trained on the data then learns to
write math, not program notation. `mathvlm.eval.answers.value_of` reads this notation back.
"""

from __future__ import annotations

import functools

import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
ROOTS = {2: "√", 3: "∛", 4: "∜"}
LOG2 = sp.log(2)
# A power of one of these is written on its name (tan²(x), as `mathvlm.eval.answers` reads it).
TRIG_FUNCTIONS = (sp.sin, sp.cos, sp.tan, sp.cot, sp.sec, sp.csc)


def superscript(n: int) -> str:
  return str(n).translate(SUPERSCRIPT)


def subscript(n: int) -> str:
  """F₁, I₂: the index of a name a rationale shows, as p₁ and x₁ are written."""
  return str(n).translate(SUBSCRIPT)


class Remembering:
  """A printer mixin: each sub-expression is printed once per process and remembered, and a
  sum's terms are signed without sympy's assumptions.

  Why: a value met for the first time is mostly made of parts met before (a new 9/7 + 5√3/2
  has the 5√3/2 of other problems), and sympy prints every part afresh, ~130 µs for a sum of two
  terms, 10% of the engine's time in all, much of it asking a new number's sign of its
  assumptions (`_minus`). A part prints the same wherever it stands (a parent adds its own
  brackets), except a Float, whose digits depend on how deep it is: never kept."""

  MEMO_SIZE = 1 << 16

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._memo = {}

  def _print(self, expr, **kwargs):
    if kwargs or not isinstance(expr, sp.Basic) or isinstance(expr, sp.Float):
      return super()._print(expr, **kwargs)
    key = (type(expr), expr)
    out = self._memo.get(key)
    if out is None:
      if len(self._memo) >= self.MEMO_SIZE:
        self._memo.clear()
      out = self._memo[key] = super()._print(expr)
    return out

  def _as_ordered_terms(self, expr, order=None):
    """sympy's order of a sum's terms, taken from `_number_terms` for a sum of numbers."""
    terms = None if order or self.order else _number_terms(expr)
    return super()._as_ordered_terms(expr, order) if terms is None else terms

  def _print_Add(self, expr, order=None):
    """sympy's sum: the terms in order, each after its sign, bracketed when it binds less
    tightly than a sum (`_precedence`) or is a sum."""
    joined = []
    for term in self._as_ordered_terms(expr, order=order):
      t = self._print(term)
      sign = "-" if t.startswith("-") and not term.is_Add else "+"
      t = t[1:] if sign == "-" else t
      if term.is_Add or _precedence(term) < PRECEDENCE["Add"]:
        t = f"({t})"
      joined += [sign, t]
    return ("" if joined[0] == "+" else "-") + " ".join(joined[1:])


class HumanPrinter(Remembering, StrPrinter):
  """sympy's str printer with textbook notation (see the module docstring)."""

  def _print_Pi(self, expr):
    return "π"

  def _print_Infinity(self, expr):
    return "∞"

  def _print_NegativeInfinity(self, expr):
    return "-∞"

  def _print_Exp1(self, expr):
    return "e"

  def _print_Abs(self, expr):
    return f"|{self._print(expr.args[0])}|"

  def _print_log(self, expr):
    return f"ln({self._print(expr.args[0])})"

  def _print_Tuple(self, expr):
    return "(" + ", ".join(self._print(a) for a in expr) + ")"

  def _print_list(self, expr):
    return ", ".join(self._print(a) for a in expr)

  def _as_ordered_terms(self, expr, order=None):
    """A number's terms in one fixed order, the number first, then roots by radicand, then π
    (25 + 12√3 + 6√13, 50 + 13π), except that a sum never opens with a minus when it has a
    positive term: that term leads (225π/8 - 15/2, 2√3 - 3, not -15/2 + 225π/8), as a textbook
    writes it. sympy orders terms by value, so `13π + 50` and `50 + 52π` stood in one option
    set, and the options sharing the answer's order read as closer to it (a tell of the
    choices-only rule most_similar). Expressions in x keep sympy's order.

    sympy's order is asked only where two terms share a rank (it evaluates every term as a
    complex number to sort them, ~3% of the engine's time)."""
    if has_symbols(expr):
      return super()._as_ordered_terms(expr, order)
    tied = len({_term_rank(t) for t in expr.args}) < len(expr.args)
    terms = sorted(super()._as_ordered_terms(expr, order) if tied else expr.args, key=_term_rank)
    lead = next((k for k, t in enumerate(terms) if not _minus(t)), 0)
    return [terms[lead]] + terms[:lead] + terms[lead + 1:]

  def _print_Relational(self, expr):
    op = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "=", "!=": "≠"}[expr.rel_op]
    return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

  def _print_Piecewise(self, expr):
    parts = []
    for value, cond in expr.args:
      where = "otherwise" if cond is sp.true else f"for {self._print(cond)}"
      parts.append(f"{self._print(value)} {where}")
    return "; ".join(parts)

  def _print_Pow(self, expr, rational=False):
    base, exp = expr.args
    if exp.is_Rational and exp.p > 0 and not exp.is_Integer:
      inner = base ** exp.p
      root = ROOTS.get(exp.q) or superscript(exp.q) + "√"   # ⁷√64 for 2^(6/7)
      return root + self._atom(inner)
    if exp.is_Integer and exp > 0 and isinstance(base, TRIG_FUNCTIONS):  # tan²(x/2)
      return f"{base.func.__name__}{superscript(int(exp))}({self._print(base.args[0])})"
    if exp.is_Integer and exp > 0:
      return self._atom(base) + superscript(int(exp))
    if exp.is_Integer and exp < 0:
      return "1/" + self._atom(base ** -exp)
    return f"{self._atom(base)}^({self._print(exp)})"

  def _atom(self, expr) -> str:
    """expr as a factor: bare when it is one symbol, number or function call, else in brackets."""
    s = self._print(expr)
    if expr.is_Atom and not (expr.is_Rational and not expr.is_Integer) and not s.startswith("-"):
      return s
    if isinstance(expr, (sp.Function, sp.Abs)) or (expr.is_Pow and expr.exp == sp.Rational(1, 2)
                                                   and expr.base.is_Atom):
      return s
    return f"({s})"

  def _print_Mul(self, expr):
    if _minus(expr):
      return "-" + self._paren_if_add(-expr)
    num, den = sp.fraction(expr)
    log_base = _is_log2_of(num, den)
    if log_base:
      den = den / LOG2
    top = self._factors(num, log_base)
    if den == 1:
      return top
    if num.is_Add:
      top = f"({top})"
    return f"{top}/{self._atom(den)}"

  def _paren_if_add(self, expr) -> str:
    s = self._print(expr)
    return f"({s})" if expr.is_Add else s

  def _factors(self, num, log_base: bool) -> str:
    """A product: the number first, then π, x, functions, surds; `4√3`, `2π`, `2·sin(x)`."""
    if not num.is_Mul:
      return self._one(num, log_base)
    coeff, rest = num.as_coeff_Mul()
    factors = sorted(sp.Mul.make_args(rest), key=_factor_rank)
    out = "" if coeff == 1 else self._atom(coeff)
    for f in factors:
      s = self._one(f, log_base)
      if f.is_Add:
        s = f"({s})"
      if out and (isinstance(f, sp.Function) or f.is_Pow and isinstance(f.base, sp.Function)
                  or s[0].isdigit() or out[-1] == ")" and not s.startswith("(")):
        out += "·"
      out += s
    return out

  def _one(self, f, log_base: bool) -> str:
    if log_base and isinstance(f, sp.log):
      return f"log₂({self._print(f.args[0])})"
    return self._print(f)


def _number_terms(expr) -> list | None:
  """`expr.as_ordered_terms()` (sympy's default order) for a sum of numbers; None for a sum
  with a factor that is not a number, which sympy orders by its monomials.

  Why written out: sympy orders number terms by their complex values, and evaluates every
  factor afresh (an evalf each: ~30% of printing a new value in sympy's form), where the same
  factors (√3, π, 8/3) recur in every problem. The steps are sympy's own (`Expr.as_terms` and
  `_parse_order`'s key for terms without monomials), the float products in the same order, so
  even a tie within a rounding falls the same way; `_complex` remembers each factor's value."""
  if not expr.is_Add:
    return None
  args = expr.args
  lead = sorted(args, key=lambda t: not isinstance(t, _NUMBERS))  # sympy's a - b·c case
  if len(lead) == 2 and isinstance(lead[0], _NUMBERS) and isinstance(lead[1], sp.Mul):
    factors = sorted(lead[1].args, key=lambda t: not isinstance(t, _NUMBERS))
    if (len(factors) == 2 and isinstance(factors[0], sp.Number) and lead[0].is_positive
        and factors[0].is_negative):
      return lead
  keys = []
  for term in args:
    coeff, rest = term.as_coeff_Mul()
    c = _complex(coeff)
    if rest is not sp.S.One:
      for f in sp.Mul.make_args(rest):
        if not f.is_number:
          return None
        c *= _complex(f)
    keys.append((bool(c.imag), c.imag, c.real))
  return [args[k] for k in sorted(range(len(args)), key=keys.__getitem__)]


_NUMBERS = (sp.Number, sp.NumberSymbol)
_complex = functools.lru_cache(maxsize=1 << 14, typed=True)(complex)


@functools.lru_cache(maxsize=1 << 16, typed=True)
def has_symbols(v) -> bool:
  """Whether a sympy value is an expression (in x), not a number: remembered, as sympy walks
  the whole tree for `free_symbols` on every call, and `written`, the printers and
  `exact.as_float` ask it of the same values."""
  return bool(v.free_symbols)


def _precedence(e) -> int:
  """sympy's `precedence` (a product led by a negative number binds as a sum), the sign read
  off by `_minus`."""
  if e.is_Mul and e.args[0].is_Rational:
    return PRECEDENCE["Add"] if _minus(e) else PRECEDENCE["Mul"]
  return precedence(e)


def _minus(e) -> bool:
  """`e.could_extract_minus_sign()` for a rational or a product led by one: its sign, read off.
  sympy asks its assumptions (~60 µs for a number it has not seen; a product also builds its
  negation) to learn what the numerator says (a product that equals its negation, 0 or with
  zoo, never has a rational first factor)."""
  if e.is_Rational:
    return e.p < 0
  if e.is_Mul and e.args[0].is_Rational:
    return e.args[0].p < 0
  return e.could_extract_minus_sign()


def _is_log2_of(num, den) -> bool:
  """Whether num/den reads as a base-2 logarithm: one ln factor in a product over one ln(2)
  (3·ln(x - 1)/ln(2) = 3·log₂(x - 1)). A sum over ln(2) is not one: (6 + 4·ln(2))/ln(2) was
  written 6 + 4·ln(2), the denominator dropped (1% of function answers, 2026-12-04)."""
  factors = sp.Mul.make_args(num)
  return (sp.Mul.make_args(den).count(LOG2) == 1
          and sum(isinstance(f, sp.log) for f in factors) == 1
          and all(isinstance(f, sp.log) or not f.has(sp.log) for f in factors))


def _factor_rank(f) -> int:
  if f is sp.pi or f.is_Pow and f.base is sp.pi:
    return 0
  if f.is_Symbol or (f.is_Pow and f.base.is_Symbol):
    return 1
  if f.is_Add:
    return 2
  if isinstance(f, sp.Function):
    return 3
  return 4  # surds last: 2π√3, not 2√3π


@functools.lru_cache(maxsize=4096)
def _term_rank(t) -> tuple:
  """(kind, radicand): a rational number, then terms with roots (smaller radicand first), then
  terms with π, then the rest (logarithms); sorted() keeps sympy's order among equals."""
  if t.is_Rational:
    return (0, 0)
  if t.has(sp.pi):
    return (2, 0)
  roots = [p.base for p in t.atoms(sp.Pow) if p.exp.is_Rational and not p.exp.is_Integer
           and p.base.is_Rational]
  if roots:
    return (1, float(min(roots)))
  return (3, 0)


_PRINTER = HumanPrinter()


class _SlotPrinter(HumanPrinter):
  """`human` with x written as the slot ξ: a formula template printed as is, with no
  substitution that sympy would evaluate (cos(2ξ + π/2) rewritten to -sin(2ξ))."""

  def _print_Symbol(self, expr):
    return "ξ" if expr.name == "x" else super()._print_Symbol(expr)


_SLOT_PRINTER = _SlotPrinter()


@functools.lru_cache(maxsize=4096)
def with_slot(v) -> str:
  """v in textbook notation with x printed as ξ (the place a template substitutes into)."""
  return _SLOT_PRINTER.doprint(v)


@functools.lru_cache(maxsize=65536)
def _human(v) -> str:
  return _PRINTER.doprint(v)


def human(v) -> str:
  """The value as a person writes it: 8√3/3, 169π/8, x² - 3x + 2, (2, ∞), 60°-free numbers."""
  if isinstance(v, sp.Basic):  # the usual case, ~110 calls a problem: no sympify on the way
    return _human(v)
  if isinstance(v, (list, tuple)):
    return ", ".join(human(x) for x in v)
  if isinstance(v, str):
    return v
  if isinstance(v, int):
    return str(v)
  return _human(sp.sympify(v))


def written(v):
  """The one form an answer and its wrong options are shown in, so that no option stands out by
  its shape (a bracketed answer among expanded options gives itself away): sums expanded, and a
  number over a common denominator when a term is divided by something other than an integer
  (8√3/π + 24/π -> (24 + 8√3)/π; 2√3 - 8π/3 stays). The rationale's steps show their values
  the same way, so its last step ends in the answer as written. Expressions in x keep the form
  they were given (a(x - 1)(x + 3) is a factored form on purpose)."""
  if (not isinstance(v, sp.Basic) or not (v.is_Add or v.is_Mul and v.has(sp.Add))
      or has_symbols(v) or _plain_sum(v)):
    return v
  return _written(v)


def _plain_sum(v) -> bool:
  """A sum of terms that are rationals times π or roots of integers (2 + 3√3, 9/7 - 5π/2):
  already expanded, over rational denominators, so `_written` would give it back unchanged
  (`sp.expand` finds that out in ~80 µs)."""
  return v.is_Add and all(_plain_factor(f) for t in v.args for f in sp.Mul.make_args(t))


def _plain_factor(f) -> bool:
  return f.is_Rational or f is sp.pi or (f.is_Pow and f.base.is_Integer and f.base > 0
                                         and f.exp.is_Rational and not f.exp.is_Integer
                                         and f.exp > 0)


@functools.lru_cache(maxsize=65536)
def _written(v):
  """`written` for a sum or a product with one: remembered, as the same values are written in
  the options, the rationale's steps and the harder question's rationale."""
  e = sp.expand(v)
  if e.is_Add and any(not t.as_numer_denom()[1].is_Rational for t in e.args):
    return sp.together(e)
  return e


class MachinePrinter(Remembering, StrPrinter):
  """`str(v)` exactly (sympy's default settings), its parts remembered (`Remembering`)."""

  def _print_Mul(self, expr):
    """sympy's product, written here for the kind the engine meets most, a rational times
    symbols, π and positive powers (-8*sqrt(3)/3, 3*pi/2, x**2/4): sympy first asks a product's
    precedence, which builds its negation to learn its sign (the rational's numerator tells
    it), and no such factor is bracketed at either precedence. The factors in sympy's order
    (`as_ordered_factors`); any other product is sympy's."""
    c, rest = expr.args[0], expr.args[1:]
    if not (c.is_Rational and c is not sp.S.One and rest and all(map(_bare_factor, rest))):
      return super()._print_Mul(expr)
    top = [str(abs(c.p))] if abs(c.p) != 1 else []
    top += [self._print(f) for f in sorted(rest, key=lambda f: f.sort_key())]
    return ("-" if c.p < 0 else "") + "*".join(top) + (f"/{c.q}" if c.q != 1 else "")


def _bare_factor(f) -> bool:
  """A factor sympy's product prints as is, never in brackets or under the fraction bar: a
  symbol, π or a power of one or of a positive integer to a positive rational exponent."""
  if f.is_Pow:
    base, e = f.args
    return (e.is_Rational and e.p > 0
            and (base.is_Symbol or base is sp.pi or base.is_Integer and base.p > 0))
  return f.is_Symbol or f is sp.pi


_MACHINE = MachinePrinter()


@functools.lru_cache(maxsize=65536)
def _machine(v) -> str:
  return _MACHINE.doprint(v) if isinstance(v, sp.Basic) else str(v)


def machine(v) -> str:
  """sympy's own form (`8*sqrt(3)/3`): what checkers parse; never shown to a model."""
  if isinstance(v, (list, tuple)):
    return "[" + ", ".join(machine(x) for x in v) + "]"
  return _machine(v) if not isinstance(v, str) else v


def interval(lo, hi) -> str:
  """An open interval in textbook form: (2, +∞), (-∞, 3/2), (-π/2, π/2). The upper infinity
  carries its sign so (a, +∞) and (-∞, a) are equally long (lengths must not hint)."""
  top = "+∞" if hi == sp.oo else human(hi)
  return f"({human(lo)}, {top})"
