"""MathVerse: loader (testmini.json, every problem version), prompts, GPT-free extraction, scores.

The official pipeline (ZrrSkywalker/MathVerse) asks GPT-4 to extract the answer
(`extract_answer_s1.py`) and then either asks it to judge or, with `--quick_match`, compares
`answer == extraction` exactly (`score_answer_s2.py`). Here `extract` replaces the GPT step and the
quick match is kept, after the same light normalisation on both sides (strip, option letters
upper-case, numbers written canonically: "3.0" and "3" match). Scores: overall ("w/o" accuracy),
per problem_version and per subject (and subject/subfield), as the official script prints them.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from mathvlm.eval import answers as ex
from mathvlm.eval.common import Problem, entry, read_text, tally

NAME = "mathverse"
VERSIONS = ("Text Dominant", "Text Lite", "Text Only", "Vision Intensive", "Vision Dominant",
            "Vision Only")

QUESTION_TYPES = ("multi-choice", "free-form")
# The record's field the model is asked: the README's input for the "w/o" scores, or for CoT.
PROMPTS = ("query_wo", "query_cot")


def load(path: str, images_dir: str | None = None, prompt: str = "query_wo",
         versions: tuple[str, ...] | None = None) -> list[Problem]:
  """Problems from MathVerse `testmini.json` (a list); prompt: 'query_wo' or 'query_cot'."""
  if prompt not in PROMPTS:
    raise ValueError(f"MathVerse prompt {prompt!r}: expected 'query_wo' or 'query_cot'")
  images_dir = images_dir or os.path.join(os.path.dirname(os.path.abspath(path)), "images")
  data = json.loads(read_text(path))
  if not isinstance(data, list):
    raise ValueError(f"{path}: a JSON {type(data).__name__}, but MathVerse's testmini.json is a "
                     "list of records; is this the MathVerse annotation file?")
  problems = []
  for n, r in enumerate(data):
    if not isinstance(r, dict):
      raise ValueError(f"{path}: record {n} is a JSON {type(r).__name__}, not an object; is this "
                       "MathVerse testmini.json?")
    missing = [k for k in ("sample_index", "problem_version", "answer", "question_type", prompt)
               if k not in r]
    if missing:
      raise ValueError(f"{path}: record {n} (sample_index {r.get('sample_index')}) lacks "
                       f"{missing}; is this MathVerse testmini.json?")
    if r["question_type"] not in QUESTION_TYPES:
      raise ValueError(f"{path}: record {n} (sample_index {r['sample_index']}) has question_type "
                       f"{r['question_type']!r}; MathVerse's are {QUESTION_TYPES}: fix the "
                       "record (any other type would be scored as free-form)")
    if versions and r["problem_version"] not in versions:
      continue
    meta = dict(r.get("metadata") or r.get("category") or {})
    meta.update(problem_version=r["problem_version"], question_type=r["question_type"])
    image = r.get("image")
    problems.append(Problem(
        pid=str(r["sample_index"]), question=r.get("question", ""), answer=str(r["answer"]),
        choices=[], images=[os.path.join(images_dir, image)] if image else [],
        query=r[prompt], meta=meta, raw=r))
  return problems


# A point or an interval: "(2, 3)", "[-1, 4)"; not "1,000"
_TUPLE = re.compile(r"[(\[]\s*([^()\[\],]+(?:,(?!\d{3}(?!\d))[^()\[\],]+)+)\s*[)\]]")


def normalize(s: Any) -> str:
  """Both sides of the quick match: stripped, "(B)"/"B." -> "B", numbers canonical."""
  s = str(s if s is not None else "").strip().strip("$").strip()
  m = re.fullmatch(r"\(?([A-Za-z])[).:]?", s)
  if m:
    return m.group(1).upper()
  pair = _TUPLE.fullmatch(s)
  if pair:   # "(2, 3)" element by element; read as one number it was 23 (or 5: "(2, 3)" as 2+3)
    return s[0] + ", ".join(normalize(x) for x in pair.group(1).split(",")) + s[-1]
  value = (ex.latex_number(ex.unicode_latex(s).replace(",", "")) if re.search(r"\d", s)
           else None)
  return value if value is not None else s


# MathVerse lists at most six options (A-F: 7 of the 788 testmini problems, E in 30 more); a
# "Vision Only" query draws them in the image and lists none.
MAX_OPTIONS = 6


def _choice_count(problem: Problem) -> int:
  """How many option letters an answer may give: as many as the question lists ("A:40°" ...
  "D:140°" -> 4), else (options drawn in the image) up to F, so that a right "E" is read."""
  letters = re.findall(r"(?m)^\s*\(?([A-H])[).:]", problem.query + "\n" + problem.question)
  return max((ord(x) - ord("A") + 1 for x in letters), default=MAX_OPTIONS)


def extract(response: str | None, problem: Problem) -> str:
  """The answer in a response: an option letter for multi-choice (in a revision, "Wait, ...",
  after the answer, else in the answer phrase, else on the first or last line unless that opens
  with a capital in prose, "A triangle ..."), else a value (a point kept whole)."""
  response = ex.plain_text((response or "").strip())
  if not response:
    return ""
  span = ex.answer_span(response)
  if problem.meta["question_type"] == "multi-choice":
    n = _choice_count(problem)
    head = ex.answer_head(span) if span else ""
    if ex.hedged_letters(head):   # "B or C": two answers, kept as written, as GPT's copy,
      return ex.settled_hedge(span) or head   # unless it settles ("..., most likely C")
    for text in ex.revision(response) + [head, span or ""]:
      letter = ex.choice_letter(text, n)
      if letter:
        return letter
    lines = [x for x in response.split("\n") if x.strip()]
    ends = [x for x in (lines[0], lines[-1]) if not ex.opens_prose(x)]
    return next(filter(None, [ex.marked_option(response, n)]
                       + [ex.choice_letter(x, n) for x in ends]), "")
  stated = span or ex.stated_value(response) or ""
  point = _TUPLE.fullmatch(_stated_part(stated))
  if point:   # "P = (2, 3)": the point, as GPT's extraction writes it, not its first number
    return point.group(0)
  expression = _expression(stated)
  if expression:
    return expression
  for value in (ex.revised_number(response), _span_value(span), ex.bold_number(response),
                ex.stated_number(response), ex.number(response)):
    if value is not None:
      return value
  return span or ""


def _stated_part(span: str) -> str:
  """What a span states as its value: after its last "=", before any "≈" (`x = 2√3 ≈ 3.46` ->
  `2√3`: GPT's extraction keeps the exact value); a math span without the unit after it
  (`$2\\sqrt{3}$ cm` -> `2\\sqrt{3}`, which read as no value before)."""
  part = re.split(r"≈|\\approx", span.split("=")[-1])[0].strip().lstrip("$")
  return part.split("$")[0].strip().strip(" .").strip()


def _span_value(span: str | None) -> str | None:
  """The number an answer span states: a value written as a root, in scientific notation or with
  its sign in words ("negative 5", "1.5e3"), read by the reader MathVista's span uses
  (`ex.written_number`); else its LaTeX value or last plain number. Before, "negative 5" read
  as 5 and "1.5e3" as 1.5."""
  if not span:
    return None
  return ex.written_number(_stated_part(span)) or ex.number(span)


def _expression(span: str) -> str | None:
  """The stated value when it is an expression with a value (`4\\pi`, `2√3`, `x = \\frac{8}{3}`
  -> `\\frac{8}{3}`), as written: GPT's extraction keeps expressions whole, where a number
  picked out of one (4 of `4\\pi`) would be another answer. `normalize` reads its value."""
  text = _stated_part(span)
  if re.search(r"\\[a-zA-Z]|[√∛π]", text) and ex.latex_number(ex.unicode_latex(text)):
    return text
  return None


def judge(problem: Problem, extraction: str) -> bool:
  """The official quick match on normalised strings."""
  return normalize(extraction) == normalize(problem.answer) and normalize(extraction) != ""


def breakdown_keys(problem: Problem) -> dict[str, list[str]]:
  m = problem.meta
  subject, subfield = m.get("subject", "?"), m.get("subfield", "?")
  return {"problem_version": [m["problem_version"]], "subject": [subject],
          "subfield": [f"{subject}-{subfield}"]}


def scores(problems: dict[str, Problem], correct: dict[str, bool]) -> dict[str, Any]:
  out: dict[str, Any] = {"all": entry(sum(correct.values()), len(correct))}
  for key in ("problem_version", "subject", "subfield"):
    counts = tally((breakdown_keys(problems[pid])[key], ok) for pid, ok in correct.items())
    out[key] = {v: entry(*c) for v, c in sorted(counts.items())}
  return out


def output_record(problem: Problem, response: str, extraction: str, ok: bool) -> dict:
  """One entry of the official output list: the record plus model_answer, extraction, judgement."""
  rec = dict(problem.raw)
  rec.update(model_answer=response, extraction=extraction, judgement=int(ok))
  return rec
