"""Answers: extraction from a model's free text and judging against the gold answer, in one home.

Pure functions. The official MathVista and MathVerse pipelines ask GPT-4 to pull the answer out of
the response; these rules do the same job for the forms models actually write: `\\boxed{}`, "the
answer is ...", "Answer: ...", choice letters in their many forms ((B), B., B), **B**, option B),
choice texts, the last number, with thousands separators, units, percents, fractions and LaTeX (via
`mathvlm.eval.latex`). Each benchmark module then applies its official normalisation.

Engine problems (exact answers such as `8*sqrt(3)/3`) are judged here too (`engine_answer`,
`engine_correct`): evaluation's accuracy, the DPO pair builder (`data_prep.engine.dpo_pairs`) and
GRPO's reward all ask these two functions, so "right" means one thing everywhere.
"""

from __future__ import annotations

import functools
import re

import sympy as sp

from mathvlm.eval import latex

_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+(?:\.\d+)?)?"
                     r"|(?<![\w.])-?\.\d+")
_PHRASES = re.compile(
    r"(?:final answer|correct answer|correct option|correct choice|the answer|answer)\**\s*"
    r"(?:is|would be|should be|will be|=|:)\s*(?:that\s+)?:?\s*(.+)", re.I)
_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}


def boxed(text: str) -> str | None:
  """The content of the last `\\boxed{...}` (braces balanced), or None."""
  start = text.rfind("\\boxed{")
  if start < 0:
    return None
  i, depth = start + len("\\boxed{"), 1
  for j in range(i, len(text)):
    depth += (text[j] == "{") - (text[j] == "}")
    if depth == 0:
      return text[i:j]
  return text[i:]


def answer_span(text: str) -> str | None:
  """Where the model states its answer: the last `\\boxed{}`, else the rest of the line after the
  last "the answer is" / "Answer:" phrase (to a sentence end), else None."""
  b = boxed(text)
  if b is not None:
    return b.strip()
  found = None
  for m in _PHRASES.finditer(text):
    found = m
  if found is None:
    return None
  span = found.group(1).split("\n")[0]
  span = re.split(r"(?<=[^\d])\.(?:\s|$)|\.\s", span)[0]
  return span.strip(" *:")


def choice_letter(text: str, n_choices: int) -> str | None:
  """A choice letter written as the answer: "(B)", "B)", "B.", "B:", "**B**", "option B", a lone
  "B", `\\boxed{B}`; only letters within the first n_choices count."""
  letters = "".join(chr(ord("A") + i) for i in range(n_choices))
  if not letters:
    return None
  t = text.strip().strip("*$ ").replace("\\text{", "").replace("\\textbf{", "")
  if re.fullmatch(rf"\(?\{{?([{letters}])\}}?\)?[.:]?", t):
    return re.sub(r"[^A-Z]", "", t)[0]
  patterns = [
      rf"\(([{letters}])\)",                                           # (B)
      rf"(?:option|choice|answer is|answer:)\s*\**\s*\(?([{letters}])\b",  # option B
      rf"^\**([{letters}])[.):\s]",                                   # B. / B) / B: at start
      rf"\*\*([{letters}])\*\*",                                       # **B**
      rf"(?<![\w'])([{letters}])(?:\)|\.(?:\s|$)|:)",                  # B) / B. inside
  ]
  for pat in patterns:
    m = re.search(pat, t, flags=re.M)
    if m:
      return m.group(1)
  return None


def choice_text(text: str, choices: list[str]) -> str | None:
  """The choice whose text the answer states (longest match wins: "30√3 m" over "30 m"); failing
  that, a long choice (3+ words) most of whose words the text uses."""
  hits = [c for c in choices if c.strip() and re.search(
      rf"(?<!\w){re.escape(c.strip())}(?!\w)", text, flags=re.I)]
  if hits:
    return max(hits, key=len)
  words = set(re.findall(r"\w+", text.lower()))
  best, best_share = None, 0.0
  for c in choices:
    cw = re.findall(r"\w+", c.lower())
    if len(cw) >= 3:
      share = sum(w in words for w in cw) / len(cw)
      if share > best_share:
        best, best_share = c, share
  return best if best_share >= 0.75 else None


def clean_number(s: str) -> str:
  """"1,000" -> "1000", "3/4" -> "0.75", "-.5" -> "-0.5"; other strings unchanged."""
  s = s.replace(",", "")
  if "/" in s:
    try:
      return repr_number(latex.to_number(s))
    except (latex.NotANumber, ZeroDivisionError, ArithmeticError):
      return s
  if s.startswith("-."):
    s = "-0" + s[1:]
  elif s.startswith("."):
    s = "0" + s
  return s


def repr_number(x: int | float) -> str:
  return str(int(x)) if float(x).is_integer() else repr(float(x))


def numbers(text: str) -> list[str]:
  """Every number in the text, cleaned (thousands separators, fractions a/b, leading dots)."""
  return [clean_number(m.group(0)) for m in _NUMBER.finditer(text)]


def latex_number(text: str) -> str | None:
  """A LaTeX value (`\\frac{1}{2}`, `2\\sqrt{3}`) as a decimal string, or None."""
  t = text.strip().strip("$").strip()
  t = re.sub(r"\\(?:text|mathrm|mbox)\{[^}]*\}|\^\{?\\circ\}?|°|%|\\%", "", t).strip()
  try:
    return repr_number(latex.to_number(t))
  except (latex.NotANumber, ZeroDivisionError, ArithmeticError, ValueError, OverflowError):
    return None


def bold_number(text: str) -> str | None:
  """The first number set in bold (`**4**`), which is how chat models mark their answer."""
  m = re.search(r"\*\*[^*\d]{0,40}?(-?[\d,.]*\d)[^*\d]{0,10}\*\*", text)
  return clean_number(m.group(1)) if m else None


_NUM_OR_WORD = (r"(-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+|"
                + "|".join(_WORDS) + ")")
_STATED = re.compile(r"(?:\bis|\bare|\bwas|\bwere|\bequals|=|\bbe|\bcosts?|\bof)\s*\**\s*"
                     + _NUM_OR_WORD + r"(?![\w(])", re.I)
_ANY = re.compile(r"(?<![\w.])" + _NUM_OR_WORD + r"(?![\w(])", re.I)
_CONCLUDE = re.compile(r"^\W*(?:therefore|so|thus|hence|in total|in conclusion|overall)\b", re.I)


def _as_number(tok: str) -> str:
  tok = tok.replace("$", "")
  return _WORDS.get(tok.lower()) or clean_number(tok)


def sentences(text: str) -> list[str]:
  return [x.strip() for x in re.split(r"(?<=[^\d\s])\.(?:\s|$)|\n+", text) if x.strip()]


def sentence_number(sentence: str, stated_last: bool = False) -> str | None:
  """The number a sentence states as its answer: after "is/are/=/costs..." (the last such one when
  stated_last, as in "x = 3 + 4 = 7"), else the first number or number word in it."""
  stated = _STATED.findall(sentence)
  if stated:
    return _as_number(stated[-1] if stated_last else stated[0])
  found = _ANY.findall(sentence)
  return _as_number(found[0]) if found else None


def stated_number(text: str) -> str | None:
  """Without an answer phrase: the last concluding sentence ("Therefore/So/Thus ..."), else the
  first "There are N ..." sentence, else the first sentence (short answers state the answer
  first: "The year 1982 has more ...")."""
  sents = sentences(text)
  for sent in reversed(sents):
    if _CONCLUDE.search(sent):
      value = sentence_number(sent, stated_last=True)
      if value is not None:
        return value
  there = [x for x in sents if re.match(r"^\W*there (?:are|is|were|was)\b", x, flags=re.I)]
  for sent in there[:1] + sents[:1]:
    value = sentence_number(sent)
    if value is not None:
      return value
  return None


def number(text: str, last: bool = True) -> str | None:
  """The answer number in a span: its LaTeX value when the whole span is one, else the last (or
  first) plain number, else None."""
  if not text:
    return None
  value = latex_number(text)
  if value is not None:
    return value
  found = numbers(text.replace("\\frac", " \\frac"))
  frac = re.findall(r"\\[dt]?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", text)
  if frac and not found:
    return latex_number(f"\\frac{{{frac[-1][0]}}}{{{frac[-1][1]}}}")
  if not found:
    return None
  return found[-1] if last else found[0]


def python_list(text: str) -> str | None:
  """The last `[a, b, ...]` in the text, written as Python's `str(list)` would ("[1, 2, 3]")."""
  found = re.findall(r"\[([^\[\]]*)\]", text)
  for body in reversed(found):
    items = [x.strip().strip("'\"") for x in body.split(",") if x.strip()]
    if items and all(re.fullmatch(r"-?\d+(?:\.\d+)?", x) for x in items):
      return "[" + ", ".join(items) + "]"
  return None


# ---------------------------------------------------------------------------------------------
# Engine answers: exact expressions, judged by value.

def final_answer(response: str) -> str:
  """The response's final answer as written: after the last 'answer is', else its last line;
  a trailing ", which is option A" or " (≈ 4.62)" is cut."""
  m = list(re.finditer(r"answer is[:\s]*(.+)", response, flags=re.I))
  s = m[-1].group(1) if m else response.strip().splitlines()[-1] if response.strip() else ""
  s = re.split(r"(?:,\s*which|\s\(≈)", s)[0]
  return s.strip().rstrip(".").strip()


_SUPER = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_ROOT = {"√": "sqrt", "∛": "cbrt"}
_NOTATION = (("−", "-"), ("·", "*"), ("×", "*"), ("π", " pi "), ("+∞", "oo"), ("∞", " oo "),
             ("°", ""),
             ("log₂(", "log2("), ("ln(", "log("), ("^", "**"))


def math_to_sympy(text: str) -> str:
  """Textbook notation (what the engine writes: `4√3`, `2π`, `x²`, `|x - 1|`, `log₂(x)`, `(2, ∞)`)
  as sympy syntax; implicit products (`4sqrt(3)`) are left to the parser."""
  s = text.strip()
  for a, b in _NOTATION:
    s = s.replace(a, b)
  s = re.sub(r"([⁰¹²³⁴⁵⁶⁷⁸⁹]+)√(\d+|\([^()]*\))",  # ⁷√64: the 7th root of 64
             lambda m: f" root({m.group(2)}, {m.group(1).translate(_SUPER)})", s)
  s = re.sub(r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+", lambda m: f"**({m.group(0).translate(_SUPER)})", s)
  s = re.sub(r"([√∛])(\d+(?:\.\d+)?|[A-Za-z]\w*)",
             lambda m: f" {_ROOT[m.group(1)]}({m.group(2)})", s)
  s = s.replace("√(", " sqrt(").replace("∛(", " cbrt(")
  return re.sub(r"\|([^|]+)\|", r"Abs(\1)", s)


@functools.lru_cache(maxsize=4096)
def parse_math(text: str):
  """The sympy object the text stands for (a number, an expression in x, a tuple), or None."""
  from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication, parse_expr,
                                          standard_transformations)
  names = {"x": sp.Symbol("x"), "log2": lambda a: sp.log(a, 2), "e": sp.E}
  try:
    return parse_expr(math_to_sympy(text), local_dict=names,
                      transformations=standard_transformations + (implicit_multiplication,
                                                                  convert_xor))
  except Exception:  # noqa: BLE001 - the parser raises many types; unparsable is no value
    return None


def value_of(text: str) -> complex | None:
  """The number an answer stands for, in program or textbook notation (`8*sqrt(3)/3`, `8√3/3`,
  `4√3`, `2π`, `3/2`, `√(4√3 + 29)`), or None (`x²` is not a number, nor is a sentence)."""
  v = parse_math(text)
  try:
    return complex(sp.N(v)) if v is not None and not isinstance(v, tuple) else None
  except (TypeError, ValueError):
    return None


def same_value(answer: str, gold: str) -> bool:
  """The same text (spaces aside), the same number to 0.5%, or the same interval / tuple
  (`(2, ∞)` and `(2, oo)`), whichever notation either side is written in."""
  if answer.replace(" ", "") == gold.replace(" ", ""):
    return True
  a, g = value_of(answer), value_of(gold)
  if a is not None and g is not None:
    return abs(a - g) < 5e-3 * max(1.0, abs(g))
  ta, tg = parse_math(answer), parse_math(gold)
  if isinstance(ta, tuple) and isinstance(tg, tuple) and len(ta) == len(tg) and ta:
    return all(x == y or same_value(str(x), str(y)) for x, y in zip(ta, tg))
  return False


def engine_answer(response: str | None, choices: list[str]) -> str:
  """What an engine problem's response answers: an option letter for multiple choice (the letter
  as written in the answer phrase or on the first or last line, else the option whose text it
  states, else the one option of the stated value), else the final answer's text (expressions such as `8 + 4*pi` kept whole), else the
  last number; "" when nothing is found."""
  response = (response or "").strip()
  if not response:
    return ""
  span = answer_span(response)
  if choices:
    lines = [x for x in response.split("\n") if x.strip()]
    for text in (span or "", lines[0], lines[-1]):
      letter = choice_letter(text, len(choices))
      if letter:
        return letter
    hit = choice_text(span or response, choices)
    if hit is None:  # "4.67" for the option "14/3": the one option of that value
      said = final_answer(response)
      same = [c for c in choices if same_value(said, c)] if said else []
      hit = same[0] if len(same) == 1 else None
    return chr(ord("A") + choices.index(hit)) if hit else ""
  if span is not None:
    return final_answer(response)
  return number(response) or ""


def engine_correct(extraction: str, gold: str, choices: list[str]) -> bool:
  """Multiple choice: the gold option letter; free-form: the gold value (`same_value`)."""
  if choices:
    return extraction.strip().upper() == gold.strip().upper()
  return bool(extraction) and same_value(extraction, gold)
