"""LaTeX (or plain) arithmetic -> a number, as MATH-Vision's scorer computes it.

The official scorer (mathllm/MATH-V `evaluation/utils.py`) runs `eval(str(latex2sympy(s)))` under
`from math import *` and rounds to 2 decimals. Here `latex2sympy2_extended` (the maintained fork
that `math-verify` builds on) does the parsing, and the result is evaluated the same way. Where the
fork reads an answer differently from the original `latex2sympy2` the published counts were made
with, a small step restores the original reading. Each one is measured: without it, this many
items of the published Qwen-VL-Max-CoT results are judged differently (the other two files do not
change):

- `$` and `\\displaystyle` are dropped before parsing, as the original does (the fork does it only
  in its normaliser, which changes other readings): 62 and 1 items; so are the original's other
  clean-ups (`\\quad`, `~`, `\\,`, `\\left(`, `\\bigl(`; no item changes);
- degrees (`^{\\circ}`, `°`) are not a number: the fork converts them, the original cannot
  evaluate them (`108` is wrong against `$108^{\\circ}$` in the published results): 9 items;
- an unmatched `}` ends the expression: the original grammar has no end-of-input rule and stops
  there (`\\frac{3\\pi}{2}}{cm` reads as 3pi/2): 3 items;
- a `.` that is no decimal point (none follows it) ends the expression too, for the same reason:
  `12.**` (from `**The answer is 12.**`) is 12 to the original, nothing to the fork (2026-12-07,
  the fourth held-out round); the original reading only, like the next two;
- a mixed number `2 \\frac{1}{2}` is a product, the original's implicit multiplication (the fork
  reads 2.5 whatever its `interpret_as_mixed_fractions` says), and `{3}` is a group, not a set:
  no item of the three files changes, but MATH-Vision options are written this way
  (`$2 \\frac{1}{2}$`), so other models' answers meet them;
- what the original has no token for is no number: `\\boxed`, `\\!`, `%` other than `\\%` right
  after a number (`30\\%` is 0.3 to both, `$30 \\%$` only to the fork), `\\(`, `\\)`, `\\[`, `\\]`
  and any character outside ASCII (the minus sign U+2212, `4π`, `3×4`; 2026-12-07, the third
  held-out round: `The answer is \\(8\\).` and `The answer is 4π.` are wrong to the official scorer
  and were right here).
  No item of the three files changes, but MATH-Vision golds and options are written this way
  (`$\\boxed{\\frac{3}{4}}$`, `$-\\!2$`, `$30 \\%$`), and the official scorer credits no answer
  against them.

Two checks only save time and give what the library would: a plain decimal is read directly, and
text with letters outside a LaTeX command is not a number (the original makes symbols of them,
and `eval` of a symbol fails). Parses are cached: benchmark files repeat their option texts.
"""

from __future__ import annotations

import functools
import logging
import math
import re

_MATH = {k: getattr(math, k) for k in dir(math) if not k.startswith("_")}
_PLAIN = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_LETTER = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]")
_COMMAND = re.compile(r"\\[a-zA-Z]+")


class NotANumber(ValueError):
  """The text is not an arithmetic expression with a real value."""


def _balanced_prefix(s: str) -> str:
  """Up to the first unmatched `}` (where the original latex2sympy2 stops reading)."""
  depth = 0
  for i, ch in enumerate(s):
    depth += (ch == "{") - (ch == "}")
    if depth < 0:
      return s[:i]
  return s


# What the original grammar has no token for, though the fork reads it: `\\boxed`, `\\!`, `%`
# except `\\%` right after a number (its PERCENT_NUMBER, `30\\%`), LaTeX's inline and display
# math delimiters `\\(8\\)`, `\\[8\\]`, and any character outside ASCII (its lexer has none): the
# minus sign U+2212, `4π`, `3×4`, `3÷4`, `3⋅4`, which the fork reads as 4pi, 12, 0.75, 12.
_UNREADABLE = re.compile(r"\\boxed|\\!|\\[()\[\]]|[^\x00-\x7f]|%")
_PERCENT_NUMBER = re.compile(r"(?<=\d)\\%")
_SPACES = ("$", "\\displaystyle", "\\qquad", "\\quad", "~", "\\,")
_BRACKETS = (("\\left(", "("), ("\\right)", ")"), ("\\bigl(", "("), ("\\bigr)", ")"))


# A `.` with no digit after it: no decimal point, so no token the original grammar can continue
# an expression with; it stops reading there as at an unmatched `}`.
_LONE_DOT = re.compile(r"\.(?!\d)")


def _read_prefix(s: str) -> str:
  """What the original latex2sympy2 reads: up to an unmatched `}` or a dot that is no decimal
  point, whichever comes first."""
  s = _balanced_prefix(s)
  dot = _LONE_DOT.search(s)
  return s[:dot.start()] if dot else s


def _unwrap(s: str) -> str:
  """`{3}` and `\\{3\\}` are a group in the original grammar (3), a set in the fork."""
  for left, right in (("\\{", "\\}"), ("{", "}")):
    inner = s[len(left):-len(right)] if s.startswith(left) and s.endswith(right) else None
    if inner and "," not in inner and _balanced_prefix(inner) == inner and (
        inner.count("{") == inner.count("}")):
      return inner.strip()
  return s


def _prepare(s: str, mixed_product: bool = True) -> str:
  for junk in _SPACES:         # the original latex2sympy2's own clean-up before parsing
    s = s.replace(junk, " ")
  for a, b in _BRACKETS:
    s = s.replace(a, b)
  s = _unwrap((_read_prefix(s) if mixed_product else _balanced_prefix(s)).strip())
  if mixed_product:           # 2\frac{1}{2} is 2 * 1/2 in the original
    if _UNREADABLE.search(_PERCENT_NUMBER.sub(" ", s)):
      raise NotANumber(f"{s!r}: the original latex2sympy2 cannot read it")
    s = re.sub(r"(\d)\s*(?=\\[dt]?frac)", r"\1 \\cdot ", s)
  if not s:
    raise NotANumber("empty expression")
  if "\\circ" in s or "°" in s:
    raise NotANumber(f"{s!r}: degrees are not a number to the original latex2sympy2")
  if _LETTER.search(_COMMAND.sub(" ", s)):
    raise NotANumber(f"{s!r} has letters (symbols have no value)")
  return s


# No answer is longer; sympy takes minutes or forever to write 10^10^10 out, so does Python's
# `eval` of it, and Python will not print an integer of more than 4,300 digits.
MOST_DIGITS = 4000


def too_big(e) -> bool:
  """Whether evaluating the sympy expression e exactly would write out a number of more than
  MOST_DIGITS digits (`10^{10^{10}}`, `(10^10)!`: a model's reply or a sampled GRPO answer must
  not hang a scorer). Inner powers first, each from the size of its base and exponent as sympy
  Floats (a float overflows past 1e308: `3^{1009}` has only 482 digits); a part in x has no size
  and is passed over."""
  import sympy as sp
  for node in sp.postorder_traversal(e):
    try:
      if isinstance(node, sp.Pow):
        base, exp = (abs(sp.N(a, 15)) for a in node.args)
        if base != 0 and exp * sp.Max(abs(sp.log(base, 10)), 1) > MOST_DIGITS:
          return True
      elif isinstance(node, sp.factorial) and abs(sp.N(node.args[0], 15)) > 1500:
        return True  # 1500! has 4,115 digits
    except (TypeError, ValueError):
      continue
  return False


@functools.lru_cache(maxsize=65536)
def _value(s: str) -> int | float:
  from latex2sympy2_extended import latex2sympy
  from latex2sympy2_extended.latex2sympy2 import ConversionConfig
  config = ConversionConfig(interpret_as_mixed_fractions=False, lowercase_symbols=False)
  logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
  try:
    expr = latex2sympy(s, normalization_config=None, conversion_config=config)
    if too_big(expr):
      raise NotANumber(f"{s!r} has more than {MOST_DIGITS} digits")
    value = eval(str(expr), {"__builtins__": {}, **_MATH})  # noqa: S307 - the official scorer's step
  except Exception as e:  # noqa: BLE001 - parser and eval raise many types; all mean "no number"
    raise NotANumber(f"{s!r}: {type(e).__name__}") from e
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise NotANumber(f"{s!r} is {type(value).__name__}, not a real number")
  return value


def to_number(s: str, mixed_product: bool = True) -> int | float:
  """`eval(str(latex2sympy(s)))`: an int or a float, as the official scorer gets; NotANumber
  when the text has no real value. mixed_product=False reads `2\\frac{1}{2}` as 2.5, as a
  person does, and what only the fork reads (`-\\!2`) too (MathVista's extraction; MATH-Vision
  keeps the original's product and what it cannot read)."""
  s = _prepare(s, mixed_product)
  if _PLAIN.fullmatch(s):
    return float(s) if "." in s else int(s)
  return _value(s)
