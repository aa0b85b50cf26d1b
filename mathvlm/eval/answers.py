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
import logging
import re

import sympy as sp

from mathvlm.eval import latex

# A number times something or under a root (`4\\pi`, `2√3`, `4\\sqrt{2}`): GPT keeps such an
# expression whole, and neither 4 nor 2 is its value; a unit (`5\\text{ cm}`), a space or `\\%`
# ends a number.
_TIMES = (r"(?:[√∛π]|\\(?!(?:text|mathrm|mathbf|textbf|mbox|rm|quad|qquad|degree|circ|approx|"
          r"right|end)\b)[a-zA-Z])")
_ROOTED = r"(?<![√∛])(?<!sqrt\{)"
_NUMBER = re.compile(_ROOTED + r"(?<![\w.])-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
                     r"(?:/\d+(?:\.\d+)?)?|\.\d+)(?![\d/]|\.\d|,\d{3}|" + _TIMES + ")")
_PHRASES = re.compile(
    r"(?:(?:final answer|correct answer|correct option|correct choice|the answer|answer)\**"
    r"(?:\s+(?:to|for) (?:the|this|your) question)?\s*"
    r"(?:is|would be|should be|will be|=|:)|答案\s*(?:是|为|：|:)|故选|应选|(?<!\w)选(?!项)"
    # French, Spanish, Italian, Portuguese, German, Russian, Japanese
    r"|(?:réponse|respuesta|risposta|resposta)"
    r"(?:\s+(?:correcte|correcta|corretta|correta|finale?))?\s*(?:est|es|è|é|:)"
    r"|antwort\s*(?:ist|lautet|:)|ответ\s*(?::|—)|(?:答え|正解)\s*(?:は|：|:))"
    r"\s*(?:that\s+)?:?\s*(?:(?:actually|really|instead|indeed|now|still)\s+)?"
    r"((?:(?!(?:the answer|answer is|answer:))[^\n])+)", re.I)
_UNITS = "zero one two three four five six seven eight nine".split()
_WORDS = {w: str(i) for i, w in enumerate(
    _UNITS + "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen "
    "nineteen".split())}


def _number_words() -> dict[str, str]:
  """Number words: tens and their compounds ("twenty-four", "thirty five"), and fractions said
  in words ("one third", "three-quarters", "a half"), which read as the tens ("twenty") or
  the count ("one") before."""
  words = {}
  for k, ten in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split()):
    words[ten] = str(20 + 10 * k)
    for u in range(1, 10):
      words[f"{ten}-{_UNITS[u]}"] = words[f"{ten} {_UNITS[u]}"] = str(20 + 10 * k + u)
  parts = {"half": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5, "sixth": 6,
           "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
  for part, d in parts.items():
    for n in range(1, d):
      name = part if n == 1 else ("halves" if part == "half" else part + "s")
      for gap in (" ", "-"):
        words[f"{_UNITS[n]}{gap}{name}"] = f"{n}/{d}"
  words["a half"] = words["half"] = "1/2"
  words["a quarter"] = "1/4"
  return words


_WORDS.update(_number_words())
# longest first: "twenty-four" before "twenty", "one third" before "one"; "half" alone is a
# value ("Half of the circle is shaded."), "the upper half" a part
_HALF_PART = "".join(f"(?<!{w} )" for w in "the first second upper lower top bottom left right "
                     "other".split())
_WORD_ALTERNATIVES = "|".join(_HALF_PART + w if w == "half" else w
                              for w in sorted(_WORDS, key=len, reverse=True))


def closing(text: str, at: int) -> int | None:
  """Where the bracket that opens at `at` (`(`, `{` or `[`) closes, counting nested ones; None
  when it never does."""
  opener = text[at]
  closer = {"(": ")", "{": "}", "[": "]"}[opener]
  depth = 0
  for j in range(at, len(text)):
    depth += (text[j] == opener) - (text[j] == closer)
    if depth == 0:
      return j
  return None


def boxed(text: str) -> str | None:
  """The content of the last `\\boxed{...}` (braces balanced), or None."""
  start = text.rfind("\\boxed{")
  if start < 0:
    return None
  i = start + len("\\boxed{")
  end = closing(text, i - 1)
  return text[i:end] if end is not None else text[i:]


def answer_span(text: str) -> str | None:
  """Where the model states its answer: the last `\\boxed{}`, else the rest of the line after the
  last "the answer is" / "Answer:" phrase (to a sentence end), else None."""
  b = boxed(text)
  if b is not None:
    return b.strip()
  return phrase_span(text)


def phrase_span(text: str) -> str | None:
  """The rest of the line after the last "the answer is" / "Answer:" phrase (to a sentence
  end), else None."""
  found = None
  for m in _PHRASES.finditer(text):
    found = m
  if found is None:
    return None
  span = found.group(1).split("\n")[0]
  span = re.split(r"(?<=[^\d])\.(?:\s|$)|\.\s", span)[0]
  return span.strip(" *:")


def choice_letter(text: str, n_choices: int) -> str | None:
  """A choice letter written as the answer: "(B)", "B)", "B.", "B:", "**B**", "option B",
  "Choice: B", a lone "B" or "b", "option d" or "option (d)", `\\boxed{B}`, `\\mathrm{B}`, "...,
  which is B"; only letters within the first n_choices count. A lower-case letter counts alone
  or after "option"/"choice" only: "a" opens prose. A letter the text rejects ("Option D (28) is
  wrong", "not B") is none (`_rejected`)."""
  letters = "".join(chr(ord("A") + i) for i in range(n_choices))
  if not letters:
    return None
  t = re.sub(r"\\[()\[\]]", "", text)   # LaTeX's inline math, `\\(B\\)`, as `$B$`
  t = re.sub(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\{", "", t.strip().strip("*$ "))
  if re.fullmatch(rf"\(?\{{?([{letters}])\}}?\)?[.:]?", t, flags=re.I):  # "B", "(b)", "b."
    return re.sub(r"[^A-Za-z]", "", t)[0].upper()
  lower = letters.lower()
  patterns = [
      rf"\(([{letters}])\)",                                           # (B)
      rf"(?i:option|choice|answer is|answer:)\s*:?\s*\**\s*\(?([{letters}])\b",  # Option B
      rf"(?i:option|choice)\s*(?:\(([{lower}])\)|([{lower}])(?=\s*[.,;:!)]|\s*$))",  # option d
      rf"^\**([{letters}])[.):\s]",                                   # B. / B) / B: at start
      rf"\*\*([{letters}])\*\*",                                       # **B**
      rf"(?<![\w'])([{letters}])(?:\)|\.(?:\s|$)|:)",                  # B) / B. inside
      rf"(?<![\w'])([{letters}])\s+is\s+(?:the\s+)?(?:correct|right|best)\b",  # C is correct
      # "..., which is D", "so choose D": a letter that ends the sentence after such a verb
      rf"(?i:\b(?:which|that|this|it)\s+(?:is|would be|corresponds to|matches)|\bchoose|"
      rf"\bselect|\bpick|\bgo with)\s+\(?([{letters}])\)?[.!]?\s*$",
  ]
  for pat in patterns:
    for m in re.finditer(pat, t, flags=re.M):
      if not _rejected(t, m):
        return next(g for g in m.groups() if g).upper()
  return None


# What rejects the option a letter names: "D (28) is wrong", "B is incorrect", "not B",
# "rather than A", "rule out C"
_REJECTED_AFTER = re.compile(r"\s*\**\s*(?:\([^()]*\)\s*)?(?:is|are|seems|would be)?\s*"
                             r"(?:wrong|incorrect|false|ruled out|eliminated|not\b)", re.I)
_REJECTED_BEFORE = re.compile(r"(?:\bnot|n't|\bnor|\brather than|\binstead of|\beliminate|"
                              r"\brule out|\bexclude)\s+(?:option\s+|choice\s+)?\(?\s*$", re.I)


def _rejected(text: str, m: re.Match) -> bool:
  """Whether the letter the match found is named to be rejected, not given as the answer
  ("Option D (28) is wrong; the area is 24." answers 24; it read D)."""
  at = next(i for i in range(1, len(m.groups()) + 1) if m.group(i))
  return bool(_REJECTED_AFTER.match(text, m.end(at) + (text[m.end(at):m.end(at) + 1] == ")"))
              or _REJECTED_BEFORE.search(text[:m.start(at)]))


def choice_text(text: str, choices: list[str], unique: bool = False) -> str | None:
  """The choice whose text the answer states (longest match wins: "30√3 m" over "30 m"); failing
  that, a long choice (3+ words) most of whose words the text uses. unique=True: a text that
  states two choices, neither inside the other, or uses the words of two equally, states none
  (a response listing every option must not win the longest)."""
  hits = [c for c in choices if c.strip() and re.search(
      rf"(?<!\w){re.escape(c.strip())}(?!\w)", text, flags=re.I)]
  if hits:
    longest = max(hits, key=len)
    apart = [c for c in hits if c.strip().lower() not in longest.lower()]
    return None if unique and apart else longest
  words = set(re.findall(r"\w+", text.lower()))
  shares = {}
  for c in choices:
    cw = re.findall(r"\w+", c.lower())
    if len(cw) >= 3:
      shares[c] = sum(w in words for w in cw) / len(cw)
  best = max(shares, key=shares.get, default=None)  # the first of equal shares, as before
  if best is None or shares[best] < 0.75:
    return None
  tied = [c for c in shares if shares[c] == shares[best]]
  return None if unique and len(tied) > 1 else best


# ---------------------------------------------------------------------------------------------
# Response shapes: what a reader (and GPT-4's extraction) takes from responses that state no
# answer in so many words.

_REFUSAL = re.compile(
    r"\b(?:sorry|apologi[sz]e)\b"
    r"|\b(?:I|we)(?:\s+am|'m)?\s+(?:can(?:no|')t|cannot|unable|not able)\b"
    r"|\b(?:I|we) (?:do not|don't) (?:have (?:access|the ability|enough)|know\b|see (?:an?|the|"
    r"any) (?:image|picture|figure|diagram|graph|chart|attachment))"
    r"|\bunable to (?:determine|answer|see|view|process|provide|identify|tell|access|help)"
    r"|\b(?:not|n't) (?:possible|able) to (?:definitively |accurately |precisely )?"
    r"(?:determine|tell|answer|say|know|identify|calculate|find)"
    r"|\bimpossible to (?:determine|tell|answer|say|know|calculate)"
    r"|\b(?:can ?not|can't|could not|couldn't) be (?:determined|answered|calculated|found|known)"
    r"|\b(?:not|insufficient) (?:enough |sufficient )?(?:information|data|details)\b"
    r"|\bno (?:information|details)\b"
    r"|\b(?:does|do|did)(?: not|n't) (?:provide|give|contain|include|specify|mention|show) "
    r"(?:(?:enough|sufficient|any|the|an?) )?(?:information|data|details|values?|measurements?|"
    r"numbers?|image|figure|diagram|picture)\b"
    r"|\bwithout (?:the |an |more |additional |further |specific )?(?:image|figure|diagram|"
    r"picture|graph|chart|information|data|context|details|values|measurements)\b"
    r"|\bas an ai\b", re.I)


_HOWEVER = re.compile(r"\b(?:but|however|though|although|nevertheless|nonetheless|that said)\b"
                      r"[^.\n]*?(?:\d|\([A-Za-z]\)|\b(?:option|choice|answer|yes|no)\b)", re.I)


def refusal(text: str) -> bool:
  """The response declines or says the answer cannot be found, in its first or last sentence
  ("Sorry, I can't help with images of people yet.", "The question does not provide enough
  information to determine ..."), and does not go on to answer anyway ("I can't be sure, but it
  looks like 8."). GPT's extraction copies such text verbatim."""
  sents = sentences(text)
  for sent in {sents[0], sents[-1]} if sents else ():
    m = _REFUSAL.search(sent)
    if m and not _HOWEVER.search(text[text.find(sent) + m.end():]):
      return True
  return False


def option_marker(text: str) -> str | None:
  """The letter of a response that opens with an option marker, "(C) yes" or "(e) 137", whether
  or not the question has that many options: GPT's extraction keeps the letter (its prompt's
  demonstration turns "(B) 8/11" into "B"), and the official normalisation then maps a letter
  beyond the choices to the choice closest to it by edit distance."""
  m = re.match(r"[\s*]*\(([A-Za-z])\)(?:\W|$)", text)
  return m.group(1).upper() if m else None


_STOP = set("a an the of to in on at by for and or is are be it its this that these those "
            "would will should may might can could as with from there their them they".split())


def _stem(word: str) -> str:
  """A crude stem: "frogs" -> "frog", "decreased"/"decrease" -> "decreas"."""
  return re.sub(r"(?:ing|ed|es|s|e)$", "", word) if len(word) > 3 else word


def content_words(text: str) -> list[str]:
  """Lower-case words without stop words, plurals folded ("Frogs" -> "frog")."""
  return [_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP]


def loose_choice(text: str, choices: list[str], gap: int = 2) -> str | None:
  """The one choice whose content words all occur in the text in order, at most `gap` words
  apart ("plants may increase" -> "plants increase", "would be the Frog" -> "Frogs",
  "would likely decrease" -> "it would decrease"); the tightest such match wins, and a tie
  between different choices is no answer."""
  words = content_words(text)
  best: list[tuple[int, str]] = []
  for c in choices:
    want = content_words(c)
    if not want or any(re.fullmatch(r"\d+", w) for w in want):
      continue
    span = _ordered_span(words, want, gap)
    if span is not None:
      best.append((span, c))
  if not best:
    return None
  best.sort()
  if len(best) > 1 and best[0][0] == best[1][0]:
    return None
  return best[0][1]


def _ordered_span(words: list[str], want: list[str], gap: int) -> int | None:
  """Length of the shortest stretch of `words` holding `want` in order with gaps <= gap."""
  shortest = None
  for start, w in enumerate(words):
    if w != want[0]:
      continue
    pos, ok = start, True
    for target in want[1:]:
      nxt = next((j for j in range(pos + 1, min(len(words), pos + gap + 2))
                  if words[j] == target), None)
      if nxt is None:
        ok = False
        break
      pos = nxt
    if ok and (shortest is None or pos - start < shortest):
      shortest = pos - start
  return shortest


_MORE = r"more|greater|larger|bigger|higher|taller|longer|heavier|older|wider|faster"
_LESS = r"fewer|less|smaller|lower|shorter|lighter|younger|narrower|slower"
_COMPARE = re.compile(rf"\b(?:({_MORE})|({_LESS}))\b(.*?)\bthan\b(.*)", re.I | re.S)
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|cannot)\b|n't", re.I)


def _comparison(text: str) -> tuple[int, set[str], set[str]] | None:
  """(+1 more / -1 less, words of the left side, words of the right side) of "X ... more ...
  than Y", or None."""
  m = _COMPARE.search(text)
  if not m:
    return None
  sign = 1 if m.group(1) else -1
  left = text[:m.start()] + " " + m.group(3)
  return sign, set(content_words(left)), set(content_words(m.group(4)))


def yes_no(statement: str, question: str) -> str:
  """"Yes" or "No" for a statement answering a yes/no question. "Are there more X than Y?"
  answered "There are more Y than X." is No: the statement's comparison is turned around (sides
  swapped, or more/less flipped, or negated); a plain statement is Yes and a negated one No
  ("The bed is larger than the kitten." -> Yes), as a reader takes it."""
  negated = bool(_NEGATION.search(statement))
  q, a = _comparison(question), _comparison(statement)
  if q and a:
    same_sides = len(q[1] & a[1]) + len(q[2] & a[2])
    swapped = len(q[1] & a[2]) + len(q[2] & a[1])
    agree = (q[0] == a[0]) == (same_sides >= swapped)
    return "Yes" if agree != negated else "No"
  if q and re.search(r"\b(?:equal|same)\b", statement, flags=re.I):
    return "No"
  return "No" if negated else "Yes"


def main_clause(sentence: str) -> str:
  """The sentence without a leading premise: "If pelicans increase, fish may decrease." ->
  "fish may decrease." (the premise restates the question; the answer follows it); "Given
  X, Y" and "After X, Y" too ("Given AB = 3 and AC = 4, BC = 5." states 5, not 3)."""
  m = re.match(r"\W*(?:if|when|since|because|as|given(?: that)?|after|once)\b[^,]{0,200},\s*(.+)",
               sentence, flags=re.I | re.S)
  return m.group(1) if m else sentence


def stated_choice(text: str, choices: list[str]) -> str | None:
  """The choice a sentence states, by its exact text (case aside; a number not inside a longer
  number; single-letter choices are left to `choice_letter`). Of several, the last one right
  after "is/are/be/=" ("the length of ADE is 1, so ABC would be 2" -> 2), else the first
  mentioned when it is the only choice mentioned (a sentence that lists several, "1, 2, 3, 4",
  states none of them; before, it stated the first); a choice inside a longer one that matched
  ("30 m" in "30√3 m") does not count."""
  hits = []
  for c in choices:
    t = c.strip()
    if not t or re.fullmatch(r"[A-Za-z]", t):
      continue
    for m in re.finditer(rf"(?<![\w.,]){re.escape(t)}(?!\w|[.,]\d)", text, flags=re.I):
      if not _in_expression(text, m.start(), m.end()):
        hits.append((m.start(), m.end(), c))
  hits = [h for h in hits if not any(o[0] <= h[0] and h[1] <= o[1] and o[1] - o[0] > h[1] - h[0]
                                     for o in hits)]
  if not hits:
    return None
  stated = [h for h in hits if re.search(r"(?:\bis|\bare|\bbe|=|\bwas|\bwere)\s*(?:the\s+)?\**\s*$",
                                         text[:h[0]], flags=re.I)]
  if stated:
    return max(stated)[2]
  return min(hits)[2] if len({h[2] for h in hits}) == 1 else None


# What makes a number part of a longer one: a fraction's other side (`5/2`), a LaTeX argument
# (`\\frac{5}{2}`, `\\sqrt{3}`, `x^2`), a base with a power other than degrees (`2^3`; `52^\\circ`
# is 52), a factor of a product or mixed number (`2\\sqrt{3}`, `2\\frac{1}{2}`, `2π`).
_BEFORE_EXPRESSION = re.compile(r"(?:/|\^|_|(?:\\[dt]?frac|\\sqrt(?:\[\d+\])?|\}|\^|_)\{)\s*$")
_AFTER_EXPRESSION = re.compile(r"\s*(?:/\s*\d|\^(?!\s*\{?\s*\\circ)|\}\s*\{|[√∛π]"
                               r"|\\(?:[dt]?frac|sqrt|pi)\b)")


def _in_expression(text: str, start: int, end: int) -> bool:
  """Whether text[start:end] is a part of a longer number or expression, not a value stated on
  its own: the option "2" is not stated by `5/2`, `\\frac{5}{2}` or `2\\sqrt{3}` (GPT's
  extraction keeps those whole, and the computed value maps them to the option of their value)."""
  return bool(_BEFORE_EXPRESSION.search(text[:start]) or _AFTER_EXPRESSION.match(text, end))


# Full-width punctuation, as Chinese and Japanese text writes it, and the minus sign U+2212
_FULL_WIDTH = str.maketrans({"\u2212": "-", "。": ". ", "，": ", ", "：": ": ", "；": "; ",
                             "（": "(", "）": ")", "！": "! ", "？": "? "})
# An ideograph touching ASCII text: "共有5个", "故选B"
_IDEOGRAPH_JOIN = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff])(?=[!-~])"
                             r"|(?<=[!-~])(?=[\u3400-\u9fff\uf900-\ufaff])")


_FENCED = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)\n?[ \t]*```", re.S)


def _unfenced(text: str) -> str:
  """A fenced block of one line ("```\\nC\\n```") as that line, the answer set as code; a block
  of code dropped when text outside it says what it gives ("```python ... ```\\nThis prints
  12."): its assignments and arguments are no answer (they read 3 for 12)."""
  outside = _FENCED.sub("", text).strip()
  return _FENCED.sub(lambda m: m.group(1) if "\n" not in m.group(1).strip() or not outside
                     else "", text)


_VULGAR_VALUE = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5",
                 "⅖": "2/5", "⅗": "3/5", "⅘": "4/5", "⅙": "1/6", "⅚": "5/6", "⅛": "1/8",
                 "⅜": "3/8", "⅝": "5/8", "⅞": "7/8"}
_VULGAR = re.compile(r"(\d?)([" + "".join(_VULGAR_VALUE) + "])")


# An en or em dash written as a minus sign: right before a number, not after one ("–7", "is
# –7"; "2014–2016" and "3 – 7" are ranges)
_DASH_MINUS = re.compile(r"(?<!\d)(?<!\d )(?<!\d  )[–—](?=\d)")


def plain_text(text: str) -> str:
  """The text as the patterns here read it: the minus sign U+2212 (`−4.3`) as "-", full-width
  punctuation ("故选B。", "答案：（C）") as ASCII, and a space between an ideograph and the
  number or letter it touches ("共有5个" -> "共有 5 个"), and a dash before a number as its
  sign ("–7"; not a range, "2014–2016"). To Python's `\\w` an ideograph is a
  word character, so before, no number or letter inside Chinese text was read: "共有5个"
  answered nothing and "故选B。" no letter. Applied where MathVista's and MathVerse's extraction
  start, after the official shortcuts. Also: code fences (`_unfenced`: "```\\nB\\n```" is B; a
  block of code beside prose is not read), a vulgar fraction as a fraction (`2½` ->
  `2 1/2`, a mixed number), and roots and pi in words as their signs ("5 sqrt 3", "8 pi")."""
  text = _unfenced(text)
  text = _VULGAR.sub(lambda m: (m.group(1) + " " if m.group(1) else "")
                     + _VULGAR_VALUE[m.group(2)], text)
  text = _DASH_MINUS.sub("-", text)
  text = _ASCII_PI.sub("π", _ASCII_ROOT.sub("√", text))
  return _IDEOGRAPH_JOIN.sub(" ", text.translate(_FULL_WIDTH))


# A root and pi written as plain words ("5 sqrt 3", "sqrt(2)", "8 pi", "2pi"), as a calculator
# or Python has them: the signs, next to their factor ("5√3", "8π"), which the readers know
# (before, "5 sqrt 3" read 5, "8 pi" 8)
_ASCII_ROOT = re.compile(r"(?:(?<=\d) +)?(?<![A-Za-z\\])sqrt\s*(?=[\d({])")
_ASCII_PI = re.compile(r"(?:(?<=\d) +)?(?<![A-Za-z\\])pi(?![A-Za-z])")


_UNICODE_ROOT = re.compile(r"([√∛])\s*(\d+(?:\.\d+)?|\{[^{}]*\}|\([^()]*\))")


def unicode_latex(text: str) -> str:
  """Roots and pi written in Unicode as LaTeX the reader knows: `2√3` -> `2\\sqrt{3}`,
  `∛(9)` -> `\\sqrt[3]{9}`, `4π` -> `4\\pi`."""
  def root(m: re.Match) -> str:
    arg = m.group(2)[1:-1] if m.group(2)[0] in "{(" else m.group(2)
    return ("\\sqrt{" if m.group(1) == "√" else "\\sqrt[3]{") + arg + "}"
  return _UNICODE_ROOT.sub(root, text).replace("π", "\\pi ")


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


# LaTeX's thousands separator `1{,}000` (a comma set as punctuation, not as a list's), also with
# a negative thin space `1,\\!000` or as a thin space `1\\,000` (which read as 1 before)
_LATEX_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|,\\!|\\,)(?=\d{3}(?!\d))")
# `\frac45`, `\sqrt3`: TeX takes one-character arguments without braces (4/5, √3); a root of two
# digits so written (`\sqrt12`, √1·2 to TeX) is left unread.
_BARE_FRAC = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_BARE_SQRT = re.compile(r"\\sqrt\s*(\d)(?!\d)")


def _braced_fracs(text: str) -> str:
  return _BARE_SQRT.sub(r"\\sqrt{\1}", _BARE_FRAC.sub(r"\\frac{\1}{\2}", text))


def numbers(text: str) -> list[str]:
  """Every number in the text, cleaned (thousands separators, also LaTeX's `1{,}000`,
  fractions a/b, leading dots)."""
  text = _LATEX_THOUSANDS.sub(",", text)
  return [clean_number(m.group(0)) for m in _NUMBER.finditer(text)]


# A unit and its power (`\\text{ cm}^2`, `\\mathrm{m}^{3}`), degrees, percent signs and TeX's
# spaces (`\\ `, `\\;`): dressing, not arithmetic. The power goes with its unit: left behind,
# `48 \\text{ cm}^2` read as 48^2.
_LATEX_DRESSING = re.compile(r"\\(?:text|mathrm|mbox)\{[^}]*\}(?:\s*\^\s*(?:\{\s*\d\s*\}|\d))?"
                             r"|\^\{?\\circ\}?|°|%|\\%|\\[ ;:]")


def latex_number(text: str) -> str | None:
  """A LaTeX value (`\\frac{1}{2}`, `\\frac45`, `2\\sqrt{3}`, `1{,}000`) as a decimal string, or
  None."""
  t = _braced_fracs(_LATEX_THOUSANDS.sub("", text.strip())).strip("$").strip()
  t = _LATEX_DRESSING.sub("", t).strip()
  try:
    return repr_number(latex.to_number(t, mixed_product=False))
  except (latex.NotANumber, ZeroDivisionError, ArithmeticError, ValueError, OverflowError):
    return None


# A math span set in bold, `**$-\\frac{1}{2}$**`, `**$m = 2^{3}$**`: the plain bold pattern
# allows no digit after its number, so it read none of these (the last number was taken)
_BOLD_MATH = re.compile(r"\*\*\s*\$([^$*]+)\$\s*\*\*")


def _bold_math(text: str) -> tuple[int, str] | None:
  """(where, value) of the first bold math span with a value, after its last "=" or "≈"."""
  for b in _BOLD_MATH.finditer(text):
    value = latex_number(re.split(r"=|≈|\\approx", b.group(1))[-1])
    if value is not None:
      return b.start(), value
  return None


def bold_number(text: str) -> str | None:
  """The first number set in bold (`**4**`), which is how chat models mark their answer; its
  value when written as a root or with its sign in words (`**√3**`, `**negative 5**`) or as a
  math span (`**$-\\frac{1}{2}$**`)."""
  bolds = re.finditer(r"\*\*([^*\d]{0,40}?)(-?[\d,.]*\d)([^*\d]{0,10})\*\*", text)
  # a label ("**Step 1:**", "**Case 2:**") numbers the steps; it is no value
  m = next((b for b in bolds if not re.match(r"\s*(?:step|part|case)\b", b.group(1), re.I)
            and not re.fullmatch(r":\s*", b.group(3))), None)
  math = _bold_math(text)
  if math and (not m or math[0] <= m.start()):
    return math[1]
  if not m:
    return None
  written = re.search(r"(?<![\w.])(" + _WRITTEN + ")" + _NUM_END, m.group(0), flags=re.I)
  return _as_number(written.group(1)) if written else clean_number(m.group(2))


# A value in plain text that is no plain number: a root in textbook notation (`√3`, `2√3`,
# `√3/2`), scientific notation (`1.5e3`) and a sign in words ("negative 5", "minus 0.5"). Read
# where a final answer is written so (an answer span, a stated value, a sentence that is the
# value alone), not as any number in the prose: before, `√3` read as nothing, `1.5e3` as 1.5 and
# "negative 5" as 5.
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_WRITTEN = (r"-?\$?(?:\d+(?:\.\d+)?)?[√∛](?:\d+(?:\.\d+)?|\(\d+(?:\.\d+)?\))(?:/\d+(?:\.\d+)?)?"
            r"|-?(?:\d+(?:\.\d+)?|\.\d+)(?:e[-+]?\d+|\s*[×x*]\s*10\^\{?[-+]?\d+\}?)"
            r"|-?\d+ \d+/\d+(?![\d/])"
            r"|(?:negative|minus)\s+(?:" + _DIGITS + r"(?:/\d+)?|\.\d+|" + _WORD_ALTERNATIVES + ")"
            r"|" + _DIGITS + r"\s*(?:°\s*[CF]?|degrees?(?:\s+(?:Celsius|Fahrenheit|C|F))?)"
            r"\s+below\s+zero")
_PLAIN = r"-?\$?" + _DIGITS + r"(?:/\d+)?|-?\.\d+|" + _WORD_ALTERNATIVES
_NUM_OR_WORD = r"(" + _WRITTEN + "|" + _PLAIN + ")"
_NUM_END = r"(?![\w(]|\.\d|" + _TIMES + ")"   # nor inside a word or a product `3(x+1)`
# What gives the result of what came before it: "..., leaving 7 apples", "10 / 4 gives 2.5",
# "1:2, i.e. 0.5"; the value after the last one is the value a sentence arrives at
_RESULTS = (r"\bleaving|\bleaves|\bleft with|\bgives|\bgiving|\byields?|\byielding|\bresults? in|"
            r"\bresulting in|\bmaking|\bi\.\s?e\.,?")
_RESULT = re.compile(_RESULTS, re.I)
_ROUGHLY = (r"(?:(?:about|approximately|around|roughly|nearly|exactly|just|only|now|actually)"
            r"\s+)?")
_STATED = re.compile(r"(?:\bis|\bare|\bwas|\bwere|\bequals|=|≈|\\approx|\bbe|\bcosts?|\bof|"
                     # Chinese "is" ("所以 y 轴截距是 -3": the premise's point (0, -3) read 0)
                     r"是|为|等于|"
                     r"\breach(?:es|ed)?|\bstands? at|"
                     r"\b(?:total|sum|result)\**\s*:|" + _RESULTS + ")"
                     r"\s*\**\s*" + _ROUGHLY + _NUM_OR_WORD + _NUM_END, re.I)
# A number in the prose; a sign in words is its sign ("dropped to minus 5 degrees" -> -5)
_ANY = re.compile(r"(?<![\w.])" + _ROOTED
                  + r"((?:(?:negative|minus)\s+)?(?:" + _PLAIN + "))" + _NUM_END, re.I)
_CONCLUDE = re.compile(r"^\W*(?:therefore|so|thus|hence|in total|in conclusion|overall)\b", re.I)


def _as_number(tok: str) -> str:
  tok = tok.replace("$", "")
  sign = re.match(r"(?:negative|minus)\s+", tok, flags=re.I)
  if sign:
    return clean_number("-" + _as_number(tok[sign.end():]))
  if re.fullmatch(r"-?[\d.]+e[-+]?\d+", tok, flags=re.I):
    return repr_number(float(tok))
  power = re.fullmatch(r"(-?[\d.]+)\s*[×x*]\s*10\^\{?([-+]?\d+)\}?", tok)
  if power:   # "3.2 × 10^4"
    return repr_number(float(power.group(1)) * 10 ** int(power.group(2)))
  mixed = re.fullmatch(r"(-?)(\d+) (\d+)/(\d+)", tok)
  if mixed and int(mixed.group(4)):   # "2 1/2": a whole number and a fraction
    whole = int(mixed.group(2)) + int(mixed.group(3)) / int(mixed.group(4))
    return repr_number(-whole if mixed.group(1) else whole)
  if re.search(r"[√∛]", tok):
    return latex_number(unicode_latex(tok)) or tok
  below = re.match(r"([\d,.]+).*below\s+zero$", tok, flags=re.I | re.S)
  if below:   # "7 degrees below zero" is -7
    return clean_number("-" + below.group(1))
  words = _WORDS.get(re.sub(r"\s+", " ", tok.lower()))
  return clean_number(words) if words else clean_number(tok)


def sentences(text: str) -> list[str]:
  """Sentences and lines. A period ends a sentence after a number too ("costs $12. The mat"),
  except a list marker at the start of a line ("1. First, ..."); a line that opens with "=" or
  "≈" goes on the line before ("Total = 4 + 2\n= 6" read 4)."""
  text = re.sub(r"(?m)^(\s*\d{1,2})\.(?=\s)", r"\1)", text)
  text = re.sub(r"\n\s*(?=[=≈])", " ", text)   # "Total = 4 + 2\n= 6": a chain goes on
  return [x.strip() for x in re.split(r"(?<=\S)(?<!\bi\.e)(?<!\be\.g)\.(?:\s|$)|\n+", text)
          if x.strip()]


def _stated(sentence: str, restated: bool = True) -> list[str]:
  """The values a sentence states after "is/are/=/≈/costs/of..."; "of N" only when it states
  nothing else ("The sum of 1 and 3 is 4." -> 4). restated=False drops a value that is itself
  the subject of a statement ("the value at x = 3 is 5.2" -> 5.2)."""
  found = [m for m in _STATED.finditer(sentence) if restated or not re.match(
      r"\s*\**\s*(?:is|are|was|were|equals)\b", sentence[m.end():], re.I)]
  said = [m for m in found if not m.group(0)[:2].lower() == "of"] or found
  # a ratio restated as a value ("is 1:2, which is 0.5"): the value; a ratio alone keeps its
  # first side ("is 3:1" -> 3, as GPT's extraction reads it)
  values = [m for m in said if not re.match(r"\s?:\s?\d", sentence[m.end():])]
  return [m.group(1) for m in values or said]


# A count of none: "There are no red cubes left." (what MathVista's "Subtract all ... How many
# objects are left?" asks; "There are no apples." alone says nothing of the count asked),
# "There are none left: ...", "None."
_NONE = re.compile(r"\W*(?:there\s+(?:are|is|were|was)\s+(?:none\b|no\b[^.;:]*\b(?:left|remain"
                   r"(?:ing|s)?)\b)|none\W*$)", re.I)


def sentence_number(sentence: str, stated_last: bool = False) -> str | None:
  """The number a sentence states as its answer: after its last result clause ("..., leaving
  7", "gives x = 8", "i.e. 0.5"; the numbers before it are the premise), else after
  "is/are/=/≈/costs..." (the last such one when stated_last, as in "x = 3 + 4 = 7"; a chain's
  result, "is 180° − 140° = 40°" -> 40), else the first number or number word in it; 0 for a
  count of none ("There are no ... left", "None.", which read no number before)."""
  if _NONE.match(sentence):   # "There are no red cubes left.", "None.": 0
    return "0"
  results = list(_RESULT.finditer(sentence))
  if results:   # "10 apples, 3 given away, leaving 7 apples": the result, not the premise
    after = _stated(sentence[results[-1].start():]) or _ANY.findall(sentence[results[-1].end():])
    if after:
      return _as_number(after[0])
  stated = _stated(sentence, restated=False)
  if stated and not stated_last:   # "the area is 5 * 4 = 20": the result of the chain
    chain = re.search(r"=\s*\**\s*" + _NUM_OR_WORD + _NUM_END + r"[^=]*$", sentence, flags=re.I)
    if chain and re.search(r"[\d°%²³)]\s*[-+*/×÷]\s*[(√]?\d", sentence):
      return _as_number(chain.group(1))
  if stated:
    return _as_number(stated[-1] if stated_last else stated[0])
  alone = re.fullmatch(r"[\s*$]*(" + _WRITTEN + r")[\s*$.]*", sentence, flags=re.I)
  if alone:  # "√3", "**negative 5**": the sentence is the value
    return _as_number(alone.group(1))
  found = _ANY.findall(sentence)
  return _as_number(found[0]) if found else None


def concludes(sentence: str) -> bool:
  """Whether a sentence draws the conclusion ("Therefore/So/Thus/Hence ...")."""
  return bool(_CONCLUDE.search(sentence))


# A clause that draws the conclusion inside a sentence: "x = 5 and y = 3, so x + y = 8"
_CONCLUDING_CLAUSE = re.compile(r"[,;]\s*(?:and\s+)?(?:therefore|so|thus|hence)\b"
                                r"(?!\s+(?:that|far|on|much|many)\b)", re.I)


def concluded_number(text: str) -> str | None:
  """The value the last concluding sentence ("Therefore/So/Thus ...") or concluding clause
  (", so ...") states after "is/=/≈/costs..." ("Therefore, the value of x is **30**." -> 30;
  "So W ≈ 1.2 J." -> 1.2; "x = 5 and y = 3, so x + y = 8." -> 8, which read 5 before: the
  premises' values are no answer); else the value that opens it as its subject ("All 5 were
  removed, so 0 are left." -> 0, which read 5)."""
  for sent in reversed(sentences(text)):
    clauses = list(_CONCLUDING_CLAUSE.finditer(sent))
    conclusion = (sent if _CONCLUDE.search(sent) and not clauses
                  else sent[clauses[-1].end():] if clauses else "")
    stated = _stated(conclusion) if conclusion else []
    if stated:   # "So, it is between the 0 and the 2 mark" states nothing: read on
      return _as_number(stated[-1])
    opening = _OPENING_VALUE.match(_CONCLUDE.sub("", conclusion, count=1))
    if opening:   # "..., so 0 are left": the clause's subject is the value
      return _as_number(opening.group(1))
  return None


# A value that opens a clause as its subject ("so 0 are left", "Thus 7 apples remain"), not the
# first term of an operation ("so 3 × 4 = 12" states 12)
_OPENING_VALUE = re.compile(r"[\s,:]*(?:there\s+(?:are|is|were|was)\s+|only\s+)?"
                            + _NUM_OR_WORD + _NUM_END + r"(?!\s*[-+*/×÷=^·])", re.I)


def worked_number(sents: list[str]) -> str | None:
  """The value the last sentence of a worked solution that states one states, when the first
  sentence is a first step (`_FIRST_STEP`): "First, the perimeter is 2 * (12 + 7) = 38. ...
  That leaves 19 - 14 = 5." -> 5, where the first sentence's value (38) was taken before; else
  None."""
  if not sents or not _FIRST_STEP.search(sents[0]):
    return None
  for sent in reversed(sents):
    stated = _stated(sent, restated=False)
    if stated:
      return _as_number(stated[-1])
  return None


# A LaTeX fraction of two numbers, not the second part of a mixed number (`2\\frac{1}{2}`) nor a
# factor of a product (`\\frac{1}{2}\\pi`)
_NUMBER_FRAC = re.compile(r"(?<![\d}])\\[dt]?frac\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}\s*"
                          r"\{\s*(\d+(?:\.\d+)?)\s*\}(?!\s*" + _TIMES + ")")


# A LaTeX root of a number, times a number or not (`\\sqrt{3}`, `2\\sqrt{3}`), not a factor of a
# longer product; and a fraction of such a root by a number (`\\frac{\\sqrt{3}}{2}` once rooted)
_NUMBER_ROOT = re.compile(r"(?<![\d}])(\d*)\\sqrt\s*\{\s*(\d+(?:\.\d+)?)\s*\}"
                          r"(?!\s*" + _TIMES + ")")
_ROOT_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(\d*√\d+(?:\.\d+)?)\s*\}\s*"
                        r"\{\s*(\d+(?:\.\d+)?)\s*\}")


def _plain_fracs(text: str) -> str:
  """`\\frac{5}{2}` as `5/2` and `2\\sqrt{3}` as `2√3`, which the sentence readers take as one
  number (2.5, 3.46...: `_WRITTEN`); as LaTeX, they read the numerator (5) and nothing, so
  "The side is $2\\sqrt{3}$." stated no value while "The side is 2√3." stated 3.46."""
  rooted = _ROOT_FRAC.sub(r"\1/\2", _NUMBER_ROOT.sub(r"\1√\2", _braced_fracs(text)))
  return _NUMBER_FRAC.sub(r"\1/\2", rooted)


# A first sentence that is a first step (also a numbered list's first item, "1. Count ..."):
# the response works the answer out, and ends on it
_FIRST_STEP = re.compile(r"^\s*1\)\s|^\W*(?:first(?:ly)?|step\s*1|"
                         r"to (?:find|determine|calculate|compute|"
                         r"solve|answer|work out|get)|let'?s|let us|we (?:need|must|first)|"
                         r"in order to)\b", re.I)


# A sentence that takes back what came before it: "Wait, ...", "Actually, ...", "Hmm, ..."
_REVISION = re.compile(r"(?:(?<=[.!?])[ \t]+|\n\s*)(?:wait|hmm+|actually|on second thought|"
                       r"correction|oops)\b[,.:!]?\s*", re.I)


def revision(text: str) -> list[str]:
  """The sentences after the last sentence-opening "Wait" / "Actually" / "On second thought"
  (not the response's first), last first, when no answer phrase or box follows (those are read
  as the last answer anyway); [] when there is none. GPT's extraction takes the revised answer:
  "The answer is 3.\\n\\nWait, that is AB. BC is actually 5." answers 5, which read 3 before."""
  found = list(_REVISION.finditer(text))
  if not found or _PHRASES.search(text, found[-1].end()) or "\\boxed{" in text[found[-1].end():]:
    return []
  return list(reversed(sentences(text[found[-1].end():])))


def revised_number(text: str) -> str | None:
  """The value the last stating sentence of a revision (`revision`) states, else the bare value
  it opens with ("I count 5 birds... actually 6, one is partly hidden." -> 6, which read 5),
  else None."""
  revised = revision(_plain_fracs(text))
  for sent in revised:
    stated = _stated(sent)
    if stated:
      return _as_number(stated[-1])
  bare = re.match(r"\s*" + _NUM_OR_WORD + _NUM_END + r"\s*(?:[,;]|$)", revised[-1], re.I) \
      if revised else None
  return _as_number(bare.group(1)) if bare else None


def stated_number(text: str, conclusions: bool = True) -> str | None:
  """Without an answer phrase: in a worked solution (its first sentence is a first step,
  "First, ...", "To find ...", "Let's ...") the value the last stating sentence states
  (`worked_number`); else the value a concluding sentence states (`concluded_number`), else the
  first "There are N ..." sentence, else the first sentence's main clause (short answers state
  the answer first: "The year 1982 has more ..."; "Since x = 5 and y = 3, x + y = 8." -> 8, where
  the premise's 5 was taken before)."""
  text = _plain_fracs(text)
  sents = sentences(text)
  value = (worked_number(sents) or concluded_number(text)) if conclusions else None
  if value is not None:
    return value
  there = [x for x in sents if re.match(r"^\W*there (?:are|is|were|was)\b", x, flags=re.I)]
  for sent in there[:1] + [main_clause(x) for x in sents[:1]]:
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
  frac = re.findall(r"\\[dt]?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", _braced_fracs(text))
  if frac and not found:
    return latex_number(f"\\frac{{{frac[-1][0]}}}{{{frac[-1][1]}}}")
  if not found:
    return None
  return found[-1] if last else found[0]


def span_number(span: str) -> str | None:
  """The value an answer span states, after its last "=" or "≈" ("x = 3 + 4 = 7" -> 7,
  "\\frac{2}{3} \\approx 0.67" -> 0.67): the LaTeX value when that part is one, else its first
  number ("1982 with an income of $931,441" -> 1982, "5 cm^2" -> 5)."""
  if not span:
    return None
  span = kept_answer(span)
  tail = re.split(r"=|≈|\\approx", span)[-1]
  # a remark in brackets after the value ("0.45 (45%)", "12 (twelve)") is no factor of it
  tail = re.sub(r"(?<=\S)\s+\([^()]*\)[\s.]*$", "", tail)
  return latex_number(tail) or written_number(tail) or number(tail, last=False) or number(span)


def written_number(text: str) -> str | None:
  """The value a text opens with when it is written as a root, in scientific notation or with
  its sign in words (`_WRITTEN`: "√3 cm", "1.5e3", "negative 5 degrees"), else None."""
  m = re.match(r"[\s*$]*(" + _WRITTEN + ")" + _NUM_END, text, flags=re.I)
  return _as_number(m.group(1)) if m else None


_SEVERAL = re.compile(r"(?<![\w.])(?:between\s+)?(-?\$?\d[\d,]*(?:\.\d+)?%?)\s*(?:,\s*)?"
                      r"\b(and|or)\s+\$?(-?\d[\d,]*(?:\.\d+)?%?)(?!\w|\.\d)", re.I)


_MAYBE = re.compile(r"\b(?:might|may|could|perhaps|possibly|maybe|either)\b", re.I)


def several_values(text: str, between: bool = False) -> str | None:
  """Two values given as the answer ("2 or 3"; with between=True only "between 2000 and
  2005" and a hedge, "There might be 5 or 6 birds", which read 5), as written: GPT's
  extraction keeps both ("2000 and 2005"), which is no single number and so scores wrong."""
  m = _SEVERAL.search(text or "")
  if not m or (between and not m.group(0).lower().startswith("between") and not (
      m.group(2).lower() == "or" and _MAYBE.search(text))):
    return None
  return f"{m.group(1)} {m.group(2).lower()} {m.group(3)}"


# Numbers given together as one answer: "2014, 2016", "2014 and 2016", "from 2014 to 2016",
# "2014-2016", "2 or 3". A comma before exactly three digits is a thousands separator ("1,000").
_ITEM = r"\$?-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?%?"
_JOIN = r"(?:\s*,(?!\d{3}(?!\d))\s*(?:and\s+)?|\s+(?:and|or|to|through)\s+|\s*[-–]\s*)"
_RUN = re.compile(rf"(?<![\w.]){_ITEM}(?:{_JOIN}{_ITEM})+(?![\w%]|\.\d)")


def listed_values(text: str) -> str | None:
  """Numbers given together ("between 2007 and 2008", "2014, 2016", "from 2014 to 2016") as the
  Python list "[2007, 2008]": what GPT's extraction writes for list answers (its demonstration),
  and `calculate_score.py` compares `str(extraction)` with the gold list's text."""
  m = _RUN.search(text or "")
  if not m:
    return None
  items = re.findall(rf"(?:^|{_JOIN})({_ITEM})", m.group(0))
  return "[" + ", ".join(clean_number(x.strip("$%")) for x in items) + "]"


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
  # the tail stops at a later "answer is" on the same line: "The answer is 5. Wait, the answer
  # is 4√3." states 4√3 (a greedy tail made the first phrase the only match)
  m = list(re.finditer(r"answer is[:\s]*((?:(?!answer is).)+)", response, flags=re.I))
  s = m[-1].group(1) if m else response.strip().splitlines()[-1] if response.strip() else ""
  return _trimmed(s)


def _trimmed(s: str) -> str:
  """A stated answer without its trailing ", which is option A", " (≈ 4.62)", " (approximately)"
  or full stop, and without a leading "approximately", "about" or "≈" (a rounded value says it
  is one: "The answer is approximately 6.93." states 6.93)."""
  s = re.split(r"(?:,\s*which|\s\((?:≈|approx|about|roughly|rounded))", s, flags=re.I)[0]
  s = re.sub(r"^(?:approximately|approx\.?|about|roughly|around|≈|~)\s*", "", s.strip(), flags=re.I)
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
  s = _named_powers(s)
  s = re.sub(r"([⁰¹²³⁴⁵⁶⁷⁸⁹]+)√(\d+|\([^()]*\))",  # ⁷√64: the 7th root of 64
             lambda m: f" root({m.group(2)}, {m.group(1).translate(_SUPER)})", s)
  s = re.sub(r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+", lambda m: f"**({m.group(0).translate(_SUPER)})", s)
  s = re.sub(r"([√∛])(\d+(?:\.\d+)?|[A-Za-z]\w*)",
             lambda m: f" {_ROOT[m.group(1)]}({m.group(2)})", s)
  s = s.replace("√(", " sqrt(").replace("∛(", " cbrt(")
  return re.sub(r"\|([^|]+)\|", r"Abs(\1)", s)


_NAMED_POWER = re.compile(r"\b(sin|cos|tan|cot|sec|csc)([⁰¹²³⁴⁵⁶⁷⁸⁹]+)\(")


def _named_powers(s: str) -> str:
  """tan²(x/2) -> (tan(x/2))**(2): a trigonometric power written on the function's name, as
  textbooks and the engine write it. The argument's closing bracket is found by counting
  (`closing`: a regular expression cannot match nested brackets); an unclosed one is left as it
  is."""
  while m := _NAMED_POWER.search(s):
    end = closing(s, m.end() - 1)
    if end is None:
      return s
    power = m.group(2).translate(_SUPER)
    s = f"{s[:m.start()]}({m.group(1)}{s[m.end() - 1:end + 1]})**({power}){s[end + 1:]}"
  return s


# A LaTeX command (`\\frac`, `\\sqrt`, `\\boxed`, `\\(`) or a `$`: the answer is LaTeX, as most
# models trained on math write it; textbook and program notation never has either.
_LATEX = re.compile(r"\\[a-zA-Z(\[]|\$")


def _latex_math(text: str):
  """LaTeX as sympy through latex2sympy2_extended (the reader math-verify builds on), with its
  clean-up of `$`, `\\boxed{}`, `\\left`, units and malformed operators (`\\frac12`, `\\sqrt3`): a
  number, an expression in x, or an interval as the tuple the textbook reader gives; `x = 1/2`
  is its right side. None when it does not parse."""
  from latex2sympy2_extended import latex2sympy
  from latex2sympy2_extended.latex2sympy2 import ConversionConfig
  from latex2sympy2_extended.math_normalization import NormalizationConfig
  logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
  clean = NormalizationConfig(basic_latex=True, units=True, malformed_operators=True, nits=False,
                              boxed="all", equations=True)
  read = ConversionConfig(interpret_as_mixed_fractions=True, lowercase_symbols=False)
  try:
    v = latex2sympy(text, normalization_config=clean, conversion_config=read)
  except Exception:  # noqa: BLE001 - the parser raises many types; unparsable is no value
    return None
  if isinstance(v, sp.Eq) and isinstance(v.lhs, sp.Symbol):
    v = v.rhs
  if isinstance(v, sp.Interval):
    return (v.start, v.end)
  return v


# sympy's reader evaluates its input as Python, with every builtin (`__import__`, `open`) in
# reach when it is given no namespace, and the text here is a model's: a sampled GRPO answer or a
# reply in an evaluation file. It gets sympy's constructors and the functions answers are written
# in, no builtins, and no text that only code has (attribute access, dunder names, strings).
_SYMPY_NAMES = ("Integer Float Rational Symbol Function Add Mul Pow Eq Ne Lt Gt Le Ge And Or Not "
                "factorial sqrt cbrt root pi E oo I Abs sign "
                "log exp sin cos tan cot sec csc asin acos atan acot sinh cosh tanh floor "
                "ceiling Max Min").split()
_SAFE_NAMESPACE = {"__builtins__": {}, **{name: getattr(sp, name) for name in _SYMPY_NAMES}}
_CODE_ONLY = re.compile(r"__|['\"`;@\\]|\.\s*[A-Za-z_]|\blambda\b")


def _read_expr(text: str, transformations: tuple, names: dict | None = None,
               evaluate: bool = True):
  """sympy's `parse_expr` in the namespace above; ValueError for text only code has."""
  from sympy.parsing.sympy_parser import parse_expr
  if _CODE_ONLY.search(text):
    raise ValueError(f"not math: {text[:60]!r}")
  return parse_expr(text, local_dict=dict(names or {}), global_dict=dict(_SAFE_NAMESPACE),
                    transformations=transformations, evaluate=evaluate)


@functools.lru_cache(maxsize=4096)
def parse_math(text: str):
  """The sympy object the text stands for (a number, an expression in x, a tuple), or None;
  textbook and program notation, or LaTeX (`\\frac{8\\sqrt{3}}{3}`, `$2\\pi$`,
  `\\boxed{\\log_2 8}`)."""
  if _LATEX.search(text):
    return _latex_math(text)
  from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication,
                                          standard_transformations)
  names = {"x": sp.Symbol("x"), "log2": lambda a: sp.log(a, 2), "e": sp.E}
  s = math_to_sympy(text)
  steps = standard_transformations + (implicit_multiplication, convert_xor)
  try:
    if ("**" in s or "!" in s) and latex.too_big(_read_expr(s, steps, names, evaluate=False)):
      return None
    return _read_expr(s, steps, names)
  except Exception:  # noqa: BLE001 - the parser raises many types; unparsable is no value
    return None


@functools.lru_cache(maxsize=4096)  # a judge reads the same options and golds again
def value_of(text: str) -> complex | None:
  """The number an answer stands for, in program, textbook or LaTeX notation (`8*sqrt(3)/3`,
  `8√3/3`, `4√3`, `2π`, `3/2`, `√(4√3 + 29)`, `\\frac{8\\sqrt{3}}{3}`), or None (`x²` is not a
  number, nor is a sentence)."""
  v = parse_math(text)
  if v is None or isinstance(v, tuple) or not isinstance(v, sp.Expr):
    return None  # a comparison (`2 > 3` parses to False), a set, a tuple: not a number
  try:
    return complex(sp.N(v))
  except (TypeError, ValueError):
    return None


def same_value(answer: str, gold: str, rounded: bool = True) -> bool:
  """The same text (spaces aside), the same number (`close`), or the same interval / tuple
  (`(2, ∞)` and `(2, oo)`), whichever notation either side is written in. rounded=False: a
  decimal must be the gold's value too, not the gold rounded to its places (`close`)."""
  if answer.replace(" ", "") == gold.replace(" ", ""):
    return True
  a, g = value_of(answer), value_of(gold)
  if a is not None and g is not None:
    return close(answer, a, g, rounded)
  ta, tg = parse_math(answer), parse_math(gold)
  if isinstance(ta, tuple) and isinstance(tg, tuple) and len(ta) == len(tg) and ta:
    return all(x == y or same_value(str(x), str(y), rounded) for x, y in zip(ta, tg))
  return False


_DECIMAL = re.compile(r"[-+]?\d*\.(\d+)")


def close(answer: str, a: complex, g: complex, rounded: bool = True) -> bool:
  """An answer written as a decimal is right when it is the gold rounded to its places (4.67 for
  14/3, 1.73 for √3; as MATH-Vision rounds); any other (an integer, 8√3/3) must be the gold's
  value. A relative band (it was 0.5%) gave a reward to 456 for 264√3 = 457.26 and to 0.004
  for 0. rounded=False (`exact_correct`): every answer must be the gold's value, to float
  precision (0.7 is not 2/3; 0.6666666667 is)."""
  m = _DECIMAL.fullmatch(answer.strip()) if rounded else None
  band = 0.5 * 10.0 ** -len(m.group(1)) if m else 0.0
  return abs(a - g) <= band + 1e-9 * max(1.0, abs(g))


def engine_answer(response: str | None, choices: list[str]) -> str:
  """What an engine problem's response answers: an option letter for multiple choice (the letter
  as written in the answer phrase, or on the first or last line when it has none; else the one
  option of the stated value, compared as values so that 6.5 is not the option 6 nor 9√2/3 the
  option 9√2; else the one option whose text it states), else the stated answer as written
  (`engine_said`: expressions such as `8 + 4*pi` kept whole); "" when nothing is found. Two
  values or letters offered as the answer, or the options listed back, answer nothing."""
  response = (response or "").strip()
  if not response:
    return ""
  span = answer_span(response)
  phrased = _phrased(response, span)
  if _hedged(span) if phrased else _ends_hedged(_lines(response)[-1]):
    return ""  # "B or C", "16 or 7": two answers are none
  if not choices:
    return engine_said(response, phrased) or (number(response) if phrased else "") or ""
  if not phrased and _lists_options(response, choices):
    return ""  # the options echoed back, one marker each: the last line's is no choice
  letter = _engine_letter(response, span, len(choices))
  if letter:
    return letter
  said = engine_said(response, phrased)
  if said and _is_value(said) and any(_is_value(c) for c in choices):
    same = [c for c in choices if same_value(said, c)]  # a value: the one option of it, or none
    hit = same[0] if len(same) == 1 else None
  else:  # words: the one option whose text they state
    hit = choice_text(span or response, choices, unique=True)
  return chr(ord("A") + choices.index(hit)) if hit else ""


def _is_value(text: str) -> bool:
  """A number or a tuple of them (an interval, a point), in any notation."""
  return value_of(text) is not None or isinstance(parse_math(text), tuple)


def _phrased(response: str, span: str | None) -> bool:
  """Whether the response says where its answer is: "answer is", "Answer:", `\\boxed{}`
  (`span`: its `answer_span`)."""
  return span is not None or bool(re.search(r"answer is", response, re.I))


def states_answer(response: str | None) -> bool:
  """Whether the response says where its answer is ("answer is", "Answer:", `\\boxed{}`) or is
  nothing but a value ("7", "$4\\sqrt{3}$."), as opposed to one read by the value its last
  stating sentence or line ends on. GRPO's rewards ask it of an answer cut at max_new_tokens,
  whose last sentence is mid-reasoning (`mathvlm.rl.rewards.score`)."""
  response = (response or "").strip()
  if _phrased(response, answer_span(response)):
    return True
  bare = response.strip("*$ ").rstrip(".").strip("*$ ")
  return "\n" not in response and bool(bare) and _math_at(response) == bare


def _lines(response: str) -> list[str]:
  """The response's non-empty lines ([""] for none)."""
  return [x for x in response.splitlines() if x.strip()] or [""]


def _hedged(text: str | None) -> bool:
  return text is not None and bool(_HEDGE.search(text) or hedged_letters(text))


# The reason given after an answer: "B, because A and C are too small", "45°, as 45° + 45° = 90°"
_REASON = re.compile(r"(?:,\s*|\s+)(?:because|since|as|given that|which)\b", re.I)


_NOT_BUT = re.compile(r"\s*not\s+[^,;]+?(?:,\s*|\s+)but\s+(?:rather\s+)?(\S.*)", re.I | re.S)


def kept_answer(span: str) -> str:
  """An answer span without the answer it rejects first: "not 8 but 6" -> "6" (it read 8)."""
  m = _NOT_BUT.match(span or "")
  return m.group(1) if m else span


def answer_head(span: str) -> str:
  """An answer span without the reason given after it: the options and values a reason names
  are not the answer ("45°, as 45° + 45° = 90°" states 45°, not 90°; "B, because A and C are
  too small" offers no two letters). The whole span when nothing comes before the reason."""
  span = kept_answer(span)
  return _REASON.split(span, maxsplit=1)[0].strip() or span


# What settles a hedge: "either B or C, most likely C", "B or C; I'll go with C"
_PREFERRED = re.compile(r"\b(?:most likely|more likely|probably|likely|leaning (?:towards?|to)|"
                        r"I(?:'ll| will|'d| would)\s+(?:go with|choose|pick|say))\s+"
                        r"(?:option\s+|choice\s+)?\(?([A-Z])\)?(?!\w)", re.I)


def settled_hedge(text: str) -> str | None:
  """The letter a hedge of two letters settles on after it ("either B or C, most likely C" ->
  C, as GPT's extraction reads it), else None."""
  hedge = _LETTER_HEDGE.search(text or "")
  preferred = _PREFERRED.search(text, hedge.end()) if hedge else None
  return preferred.group(1).upper() if preferred else None


# An option listed with a verdict, as a line of a list or a table: "C) 24 – correct", "| C | 24 |
# ✓ |"; a negative verdict is read first ("incorrect" holds "correct")
_OPTION_LINE = re.compile(r"^\s*(?:[-*|]\s*)*\**\(?([A-Z])\)?\**\s*(?:[.):|]|\s[-–—]\s)")
_MARK_NO = re.compile(r"✗|✘|❌|\b(?:incorrect|wrong|false|not correct)\b", re.I)
_MARK_YES = re.compile(r"✓|✔|✅|\b(?:correct|right|true)\b", re.I)


def marked_option(text: str, n_choices: int) -> str | None:
  """The one option a response marks right when it goes through the options one per line, each
  with a verdict ("A) 16 – incorrect / ... / C) 24 – correct", or a table with ✓ and ✗): GPT's
  extraction takes the one marked right; the first line read "A". None unless two or more
  options are marked and exactly one of them right."""
  marks = {}
  for line in text.split("\n"):
    m = _OPTION_LINE.match(line)
    if not m or ord(m.group(1)) - ord("A") >= n_choices:
      continue
    rest = line[m.end():]
    if _MARK_NO.search(rest):
      marks[m.group(1)] = False
    elif _MARK_YES.search(rest):
      marks[m.group(1)] = True
  right = [letter for letter, ok in marks.items() if ok]
  return right[0] if len(marks) >= 2 and len(right) == 1 else None


def hedged_letters(text: str) -> bool:
  """Whether the text offers two option letters ("B or C", "(A) and (D)"): two answers, which
  are none. GPT's extraction copies both, and neither is the one letter a choice needs."""
  return bool(_LETTER_HEDGE.search(text))


def _ends_hedged(line: str) -> bool:
  """Whether a line ends on two values or letters: a hedge with no "is", "=" after it ("4√3 or
  5", "x = 3 or x = -3"; not "The sides are 3 and 4, so the area is 12")."""
  hedges = [m.end() for pattern in (_HEDGE, _LETTER_HEDGE) for m in pattern.finditer(line)]
  return bool(hedges) and not _STATES.search(line, max(hedges))


def engine_said(response: str, phrased: bool | None = None) -> str:
  """The answer an engine response states (`stated_answer`); without an answer phrase, a last
  line that is a value by itself ("81√3/2", "$4\\sqrt{3}$.") comes first, and a response
  whose sentences state no value is read by the value its last such line ends on
  (`_bare_value`: "The area: 81√3/2 square units" -> 81√3/2). Before, both were read by their
  last plain number: "81√3/2" as 2 (a GRPO reward for 2), "4√3" as nothing. `phrased`: whether
  it has an answer phrase (`_phrased`), when the caller knows."""
  if phrased if phrased is not None else _phrased(response, answer_span(response)):
    return stated_answer(response)
  whole = _math_at(_lines(response)[-1])
  return whole or stated_value(response) or _bare_value(response)


def _math_at(text: str) -> str:
  """The value or expression `text` starts with, up to its first word (`_value_in`), when it has
  a digit or a constant and reads as math (a number, an expression in x, a tuple); else ""."""
  said = _value_in(text).strip("*$ ")
  if re.search(r"[\d√∛π∞]|\\pi|\\infty", said) and parse_math(said) is not None:
    return said
  return ""


def _bare_value(response: str, lines: int = 3, starts: int = 8) -> str:
  """The value the last of the last few lines that holds one ends on: the longest tail of the
  line (from a space or a colon on; the last `starts` of them) that opens with math; "" when
  none. Bounded, because each try is a parse."""
  for line in reversed(_lines(response)[-lines:]):
    cuts = [m.end() for m in re.finditer(r"[\s:]+", line)][-starts:]
    for cut in cuts:
      said = _math_at(line[cut:])
      if said:
        return said
  return ""


# An option given back with its marker ("A: 3", "(B) 4√3", "C. 8"), as the prompt lists them
def _lists_options(response: str, choices: list[str]) -> bool:
  """Whether the response gives back two or more options, each after its letter."""
  listed = sum(bool(re.search(rf"(?<!\w)\(?{chr(ord('A') + k)}[.):]\)?\s*{re.escape(c.strip())}"
                              rf"(?![\w√∛π/.^²³])", response)) for k, c in enumerate(choices)
               if c.strip())
  return listed >= 2


def _engine_letter(response: str, span: str | None, n: int) -> str | None:
  """The option letter an engine response gives: in its answer phrase when it has one (then the
  first line's opening word is prose, as in "A semicircle of radius 9/2 ..."), else on its
  first or last line, where a capital that opens a sentence is no letter (`opens_prose`, as
  MathVerse's extraction reads it: "C is correct." still names C)."""
  if span is not None:
    return choice_letter(span, n)
  lines = [x for x in response.split("\n") if x.strip()]
  for line in (lines[0], lines[-1]):
    if not opens_prose(line):
      letter = choice_letter(line, n)
      if letter:
        return letter
  return None


# "A semicircle", "A = 3": a capital followed by a word or a formula, not an option letter
_PROSE_OPENING = re.compile(r"\s*\**[A-Z]\s+(?:[a-z]|=)")


def opens_prose(line: str) -> bool:
  """Whether a line opens with a capital that is a word or a name, not an option letter: "A
  triangle ...", "E is the midpoint ...", "A = 3"; "C is correct." and a letter given its
  reason, "C because the base is 6" (a terse answer's commonest shape), still state a letter."""
  return bool(_PROSE_OPENING.match(line)) and not re.match(
      r"\s*\**[A-Z]\s+(?:is\s+(?:the\s+)?(?:correct|right|answer|best)|because|since)\b", line)


def stated_answer(response: str) -> str:
  """The answer a response states, as written: after its last "answer is" (`final_answer`), else
  its last `\\boxed{}` or what follows its last "Answer:" phrase, else the value its last stating
  sentence ends in (`stated_value`); "" when it states none."""
  if re.search(r"answer is", response, re.I):
    return _as_value(final_answer(response))
  span = answer_span(response)
  if span is not None:
    return _trimmed(span)
  return stated_value(response) or ""


_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


# Two option letters joined so ("B or C"), and two values ("4√3 or 5"): a hedge, not an answer
_LETTER_HEDGE = re.compile(r"(?<![\w\\])\(?[A-Z]\)?\s+(?:or|and|and/or)\s+\(?[A-Z]\)?(?!\w)")
_HEDGE = re.compile(r"\s(?:or|and|and/or)\s+(?:[a-z]\s*=\s*)?\$?[-+]?(?:[\d√∛π(.]|"
                    r"\\(?:frac|sqrt|pi)\b)", re.I)


def _as_value(said: str) -> str:
  """A final answer that is no value as written but is one once read as a stating sentence's
  tail is ("x = -5" -> -5, "15 square units" -> 15, "1,000" -> 1000); any other (an expression
  in x, a word) stays as written, and so does a hedge of two values ("4√3 or 5", which reading
  up to the first word would have made 4√3: a right value beside a wrong one is no answer)."""
  if value_of(said) is not None or _HEDGE.search(said):
    return said
  tail = _value_in(said)
  tail = tail.replace(",", "") if _THOUSANDS.fullmatch(tail) else tail
  return tail if tail and value_of(tail) is not None else said


_STATES = re.compile(r"\bis\b|\bare\b|\bequals\b|=")
_SENTENCE_END = re.compile(r"\n|(?<=[.!?])\s+")
_INLINE = re.compile(r"\$\$?(.+?)\$\$?|\\\((.+?)\\\)|\\\[(.+?)\\\]")
_CLOSE = re.compile(r"\$|\\\)|\\\]")
# A word of two letters or more that is no function ends a textbook value: the unit or the words
# after it ("8√3/3 square units", "12 cm", "5, which ..."); LaTeX's units go with its clean-up.
_WORD = re.compile(r"(?<![\\a-zA-Z])(?!(?:ln|log|sin|cos|tan|sqrt|pi|oo)\b)[a-zA-Z]{2,}")


def stated_value(response: str) -> str | None:
  """The value a response without an answer phrase ends on: after the last "is", "are",
  "equals" or "=" of its last sentence that has a value there ("Therefore, the area is 8√3/3
  square units." -> 8√3/3; "Thus $S = 12\\pi$." -> 12\\pi; "f increases on $(2, \\infty)$."
  -> (2, \\infty); "$\\sqrt{37} \\approx 6.08$" -> \\sqrt{37}); None when no sentence states one."""
  for sentence in reversed([x for x in _SENTENCE_END.split(response) if x.strip()]):
    stated = list(_STATES.finditer(sentence))
    value = _value_in(sentence[stated[-1].end():]) if stated else ""
    if re.search(r"[\d√∛π∞]|\\pi|\\infty", value):
      return value
  return None


def _value_in(tail: str) -> str:
  """The value at the start of what follows a stating word: the rest of the math span it stands
  in ("12\\pi$"), else the first math span after it, else the textbook expression up to the
  first word; before any "≈"."""
  opened, closed = _INLINE.search(tail), _CLOSE.search(tail)
  if closed and (opened is None or closed.start() < opened.start()):
    text = tail[:closed.start()]
  elif opened:
    text = next(g for g in opened.groups() if g is not None)
  else:
    text = tail
  text = re.split(r"≈|\\approx", text)[0].split("=")[-1]
  if "\\" not in text:
    text = _WORD.split(text)[0]
  return text.strip().rstrip(".,;:").strip()


def engine_correct(extraction: str, gold: str, choices: list[str]) -> bool:
  """Multiple choice: the gold option letter; free-form: the gold value (`same_value`)."""
  if choices:
    return extraction.strip().upper() == gold.strip().upper()
  return bool(extraction) and same_value(extraction, gold)


def exact_correct(extraction: str, gold: str, choices: list[str]) -> bool:
  """`engine_correct` without the rounded-decimal rule: a free-form answer must be the gold's
  value (to float precision; fractions and surds by value), so 0.7 is wrong for 2/3. For a
  reward (GRPO's `exact_answer`): the evaluation's rule would pay a policy for rounding
  coarsely, one decimal place being the cheapest answer it accepts."""
  if choices:
    return engine_correct(extraction, gold, choices)
  return bool(extraction) and same_value(extraction, gold, rounded=False)


# ---------------------------------------------------------------------------------------------
# Optional judge for free-form engine answers: math-verify (kept apart from engine_correct).

def _latex_of(text: str) -> str:
  """An answer as `$LaTeX$` for math-verify: plain expressions (`8*sqrt(3)/3`, `8√3/3`, `2π`,
  `x^2`) through sympy's reader with implicit multiplication; anything else as written."""
  from sympy.parsing.sympy_parser import (implicit_multiplication_application,
                                          standard_transformations)
  plain = re.sub(r"√\s*(\d+(?:\.\d+)?|\w)", r"sqrt(\1)", text.replace("√(", "sqrt("))
  plain = plain.replace("^", "**").replace("π", "pi").replace("²", "**2").replace("³", "**3")
  try:
    expr = _read_expr(plain, standard_transformations + (implicit_multiplication_application,))
    return "$" + sp.latex(expr) + "$"
  except Exception:  # noqa: BLE001 - not a plain expression: let math-verify read the LaTeX
    return text if "$" in text or "\\(" in text else "$" + text + "$"


def math_verify_correct(extraction: str, gold: str, choices: list[str]) -> bool:
  """`engine_correct` with `math-verify` judging free-form answers: symbolic equality
  (`y = 2x + 1` vs `y=1+2*x`, `8√3/3` vs `\\frac{8\\sqrt{3}}{3}`), stricter than `same_value`
  about rounded decimals (4.62 is not 8√3/3). Multiple choice is the letter, as there."""
  if choices or not extraction:
    return engine_correct(extraction, gold, choices)
  from math_verify import LatexExtractionConfig, parse, verify
  config = [LatexExtractionConfig()]
  try:
    return bool(verify(parse(_latex_of(gold), extraction_config=config),
                       parse(_latex_of(extraction), extraction_config=config)))
  except Exception:  # noqa: BLE001 - math-verify's own timeouts and parse errors: not equal
    return False
