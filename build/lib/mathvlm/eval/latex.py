"""LaTeX (or plain) arithmetic -> a number, with sympy doing the exact arithmetic.

The official MATH-Vision scorer runs `eval(str(latex2sympy(s)))` under `from math import *` and
rounds to 2 decimals. latex2sympy2 pins an old ANTLR runtime, so this is a small recursive-descent
parser for the part of LaTeX that answers use: numbers, + - * / ^, `\\frac`/`\\dfrac`/`\\tfrac`,
`\\sqrt[n]{}` (arguments in braces), `\\cdot`, `\\times`, `\\div`, `\\pi`, braces and brackets,
implicit multiplication (`2\\sqrt{3}`, `3\\pi`). Anything else (letters, units, commas) is not a
number and raises `NotANumber`, which is where latex2sympy's result would fail to `eval` as well.

`to_number` mirrors `eval(str(expr))`: a sympy Integer comes back as a Python int, anything else as
a float, so `round(x, 2)` prints `3` for `3` and `3.0` for `3.0` just as the official code does.
"""

from __future__ import annotations

import re

import sympy

_TOKEN = re.compile(r"\s*(\d+\.?\d*|\.\d+|\\[a-zA-Z]+|π|[-+*/^(){}\[\]!:])")
_CALLS = {"\\frac", "\\dfrac", "\\tfrac", "\\sqrt"}
_TIMES = {"*", "\\cdot", "\\times"}
_DIVIDE = {"/", "\\div", ":"}   # latex2sympy reads a ratio 8:5 as 8/5


class NotANumber(ValueError):
  """The text is not an arithmetic expression this parser knows."""


def _tokens(s: str) -> list[str]:
  out, i = [], 0
  s = s.strip()
  while i < len(s):
    m = _TOKEN.match(s, i)
    if not m:
      raise NotANumber(f"cannot read {s[i:]!r} in {s!r}")
    out.append(m.group(1))
    i = m.end()
    while i < len(s) and s[i].isspace():
      i += 1
  return out


class _Parser:
  def __init__(self, tokens: list[str]):
    self.t, self.i = tokens, 0

  def peek(self):
    return self.t[self.i] if self.i < len(self.t) else None

  def take(self, want: str | None = None) -> str:
    tok = self.peek()
    if tok is None or (want is not None and tok != want):
      raise NotANumber(f"expected {want or 'more'} at token {self.i} of {self.t}")
    self.i += 1
    return tok

  def expr(self):
    value = self.term()
    while self.peek() in ("+", "-"):
      op = self.take()
      rhs = self.term()
      value = value + rhs if op == "+" else value - rhs
    return value

  def term(self):
    value = self.unary()
    while True:
      tok = self.peek()
      if tok in _TIMES:
        self.take()
        value = value * self.unary()
      elif tok in _DIVIDE:
        self.take()
        value = value / self.unary()
      elif tok is not None and (tok[0].isdigit() or tok[0] == "." or tok in _CALLS
                                or tok in ("(", "{", "\\pi", "π")):
        value = value * self.power()   # implicit multiplication: 2\sqrt{3}, 3\pi, 2(4)
      else:
        return value

  def unary(self):
    if self.peek() in ("-", "+"):
      sign = -1 if self.take() == "-" else 1
      return sign * self.unary()
    return self.power()

  def power(self):
    base = self.atom()
    if self.peek() == "!":
      self.take()
      base = sympy.factorial(base)
    if self.peek() == "^":
      self.take()
      return base ** self.unary() if self.peek() not in ("{", "(") else base ** self.atom()
    return base

  def group(self):
    """A LaTeX argument in braces. latex2sympy2 rejects `\\frac12` and `\\sqrt2`, so do we
    (MATH-Vision's own cleaning adds the braces to `\\sqrt2` before this runs)."""
    self.take("{")
    value = self.expr()
    self.take("}")
    return value

  def atom(self):
    tok = self.take()
    if tok[0].isdigit() or tok[0] == ".":
      return sympy.Float(tok) if "." in tok else sympy.Integer(tok)
    if tok in ("\\frac", "\\dfrac", "\\tfrac"):
      num = self.group()
      return num / self.group()
    if tok == "\\sqrt":
      index = 2
      if self.peek() == "[":
        self.take("[")
        index = self.expr()
        self.take("]")
      return sympy.root(self.group(), index)
    if tok in ("\\pi", "π"):
      return sympy.pi
    for open_, close in (("(", ")"), ("{", "}"), ("[", "]")):
      if tok == open_:
        value = self.expr()
        self.take(close)
        return value
    raise NotANumber(f"unknown token {tok!r}")


def _balanced_prefix(s: str) -> str:
  """Up to the first unmatched `}`: latex2sympy stops there and ignores the rest (so
  `\\frac{3\\pi}{2}}{cm` reads as 3pi/2, as the published MATH-Vision scores assume)."""
  depth = 0
  for i, ch in enumerate(s):
    depth += (ch == "{") - (ch == "}")
    if depth < 0:
      return s[:i]
  return s


def parse(s: str) -> sympy.Expr:
  """The sympy value of an arithmetic LaTeX string; NotANumber when it is not one."""
  for junk in ("\\left", "\\right", "\\!", "\\,", "\\displaystyle", "$"):
    s = s.replace(junk, "")
  s = _balanced_prefix(s)
  tokens = _tokens(s)
  if not tokens:
    raise NotANumber("empty expression")
  p = _Parser(tokens)
  value = p.expr()
  if p.peek() is not None:
    raise NotANumber(f"trailing {p.t[p.i:]} in {s!r}")
  if not getattr(value, "is_number", False) or value.has(sympy.zoo, sympy.nan):
    raise NotANumber(f"{s!r} has no numeric value")
  return value


def to_number(s: str) -> int | float:
  """`eval(str(latex2sympy(s)))`: int for integers, float otherwise (complex raises)."""
  value = parse(s)
  if isinstance(value, sympy.Integer):
    return int(value)
  try:
    return float(value)
  except TypeError as e:   # complex values
    raise NotANumber(f"{s!r} is not real") from e
