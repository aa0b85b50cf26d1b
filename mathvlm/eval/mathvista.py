"""MathVista: loader, the official query, GPT-free extraction, the official normalisation, scores.

Pipeline, as lupantech/MathVista's: response -> extraction -> normalisation -> exact string match.
`normalize` and `official_scores` are `calculate_score.py`'s; `extract` keeps `extract_answer.py`'s
rule-based shortcuts and replaces its GPT-4 call with `mathvlm.eval.extract`. Output files are the
official `output_*.json` (pid -> record with response, extraction, prediction, true_false), so
the official scripts can score them too.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator

import Levenshtein

from mathvlm.eval import answers as ex
from mathvlm.eval.common import Problem, entry, read_text, tally

NAME = "mathvista"
BREAKDOWNS = ("question_type", "answer_type", "language", "source", "category", "task", "context",
              "grade", "skills")


# ---------------------------------------------------------------------------------------------
# Loading and the query.

def _records(path: str) -> list[dict[str, Any]]:
  if path.endswith(".parquet"):
    import pyarrow.parquet as pq
    rows = pq.read_table(path).to_pylist()
    for r in rows:   # the HF parquet holds the image bytes in `decoded_image`; keep the path
      r.pop("decoded_image", None)
    return rows
  data = json.loads(read_text(path))
  return list(data.values()) if isinstance(data, dict) else data


def load(path: str, images_dir: str | None = None) -> list[Problem]:
  """Problems from `testmini.json` / `test.json` (pid -> record) or the HF parquet.

  images_dir: where `images/<pid>.jpg` paths resolve (default: the annotation file's folder)."""
  images_dir = images_dir or os.path.dirname(os.path.abspath(path))
  return [load_record(r, images_dir, f"{path}: record {n}")
          for n, r in enumerate(_records(path))]


def load_record(r: dict[str, Any], images_dir: str = "", where: str = "record") -> Problem:
  """One MathVista annotation record as a Problem."""
  if not isinstance(r, dict):
    raise ValueError(f"{where} is a JSON {type(r).__name__}, not an object; is this a MathVista "
                     "annotation file (testmini.json / test.json / parquet)?")
  missing = [k for k in ("pid", "question", "question_type", "answer_type") if k not in r]
  if missing:
    raise ValueError(f"{where} (pid {r.get('pid')}) lacks {missing}; is this a MathVista "
                     "annotation file (testmini.json / test.json / parquet)?")
  _check_types(r, where)
  meta = dict(r.get("metadata") or {})
  meta.update(question_type=r["question_type"], answer_type=r["answer_type"])
  return Problem(
      pid=str(r["pid"]), question=r["question"], answer=r.get("answer"),
      choices=list(r.get("choices") or []),
      images=[os.path.join(images_dir, r["image"])] if r.get("image") else [],
      query=r.get("query") or build_query(r), meta=meta, raw=r)


QUESTION_TYPES = ("multi_choice", "free_form")
ANSWER_TYPES = ("text", "integer", "float", "list")


def _check_types(r: dict[str, Any], where: str) -> None:
  """The question and answer types the official scripts know, and choices for multiple choice.
  Any other type would be scored by the free-form rules (a misspelt "multiple_choice" never
  reads an option letter), and a multi_choice record without choices has nothing to normalise
  an answer to."""
  qtype, atype = r["question_type"], r["answer_type"]
  if qtype not in QUESTION_TYPES or atype not in ANSWER_TYPES:
    raise ValueError(f"{where} (pid {r['pid']}): question_type {qtype!r} / answer_type "
                     f"{atype!r}; MathVista's are {QUESTION_TYPES} / {ANSWER_TYPES}: fix the "
                     "record's types")
  if atype == "float" and not _places(r.get("precision")):
    raise ValueError(f"{where} (pid {r['pid']}): a float answer needs `precision` (its decimal "
                     f"places, e.g. 1 or 2), got {r.get('precision')!r}; without it every "
                     "answer normalises to None and is scored wrong")
  choices = r.get("choices")
  if qtype == "multi_choice" and not (isinstance(choices, list) and choices):
    raise ValueError(f"{where} (pid {r['pid']}): a multi_choice question needs a non-empty "
                     f"`choices` list, got {choices!r}; give its options or make it free_form")


def _places(precision: Any) -> bool:
  """Whether `precision` is a whole number of decimal places (1, 2.0 or "2")."""
  try:
    return not isinstance(precision, bool) and float(precision).is_integer()
  except (TypeError, ValueError):
    return False


_HINTS = {
    "multi_choice": "Hint: Please answer the question and provide the correct option letter, e.g., "
                    "A, B, C, D, at the end.",
    "integer": "Hint: Please answer the question requiring an integer answer and provide the final "
               "value, e.g., 1, 2, 3, at the end.",
    ("float", 1): "Hint: Please answer the question requiring a floating-point number with one "
                  "decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.",
    ("float", 2): "Hint: Please answer the question requiring a floating-point number with two "
                  "decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Hint: Please answer the question requiring a Python list as an answer and provide the "
            "final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}


def with_record(problem: Problem, record: dict[str, Any]) -> Problem:
  """The problem as `calculate_score.py` sees it: the response file's own fields (answer, choices,
  precision, types, metadata, and the query the model was asked) win over the annotations'.
  Published result files carry the metadata they were scored with (e.g. grade "daily life",
  since renamed "not applicable")."""
  raw = dict(problem.raw)
  raw.update({k: v for k, v in record.items() if k in (
      "answer", "choices", "precision", "unit", "question_type", "answer_type", "metadata")})
  _check_types(raw, "the response record")
  meta = dict(raw.get("metadata") or {})
  meta.update(question_type=raw["question_type"], answer_type=raw["answer_type"])
  return Problem(pid=problem.pid, question=problem.question, answer=raw.get("answer"),
                 choices=list(raw.get("choices") or []), images=problem.images,
                 query=record.get("query") or problem.query, meta=meta, raw=raw)


def build_query(r: dict[str, Any]) -> str:
  """The official zero-shot `query` (`build_query.py`): hint, question (with its unit), choices."""
  if r["question_type"] == "multi_choice":
    hint = _HINTS["multi_choice"]
  elif r["answer_type"] == "float":
    key = ("float", int(r.get("precision") or 1))
    if key not in _HINTS:
      raise ValueError(f"pid {r['pid']}: float answer with precision {r.get('precision')}; the "
                       "official hints cover 1 and 2")
    hint = _HINTS[key]
  elif r["answer_type"] in _HINTS:
    hint = _HINTS[r["answer_type"]]
  else:
    raise ValueError(f"pid {r['pid']}: no official hint for a free-form {r['answer_type']!r} "
                     "answer; give the record its `query`")
  question = f"Question: {r['question']}"
  if r.get("unit"):
    question += f" (Unit: {r['unit']})"
  parts = [hint, question]
  if r.get("choices"):
    parts.append("\n".join(["Choices:"] + [f"({chr(ord('A') + i)}) {c}"
                                           for i, c in enumerate(r["choices"])]))
  return "\n".join(parts).strip()


# ---------------------------------------------------------------------------------------------
# Extraction (GPT-free) and the official normalisation.

def extract(response: str | None, problem: Problem) -> str:
  """The answer in the response, in the form GPT-4's extraction gives (letter, text or value)."""
  return explain(response, problem)[0]


def explain(response: str | None, problem: Problem) -> tuple[str, str]:
  """(extraction, kind): the answer and which kind of response gave it (the first rule that
  finds one; docs/eval/SCORER.md lists them, with how often each fires)."""
  qtype, atype = problem.meta["question_type"], problem.meta["answer_type"]
  response = ("" if response is None else str(response)).strip()
  if response == "":
    return "", "empty"
  if qtype == "multi_choice" and response in problem.choices:       # the official shortcuts
    return response, "exact"
  if atype == "integer" and re.fullmatch(r"[-+]?\d+", response):
    return str(int(response)), "exact"
  if atype == "float":
    try:
      return str(float(response)), "exact"
    except ValueError:
      pass
  response = ex.plain_text(response)   # after the shortcuts: int("−4") fails there too
  steps = (_choice_steps(response, problem) if qtype == "multi_choice"
           else _value_steps(response, atype))
  for kind, found in steps:
    if found:
      return found, kind
  return "", "nothing found"


def query_options(problem: Problem) -> list[str]:
  """The option texts in the order the response's `query` listed them. Some published output
  files were made with queries whose options are in another order than `choices` (an earlier
  release of the data): the model and GPT's extraction read letters against the query, the
  official normalisation against `choices`, and the published scores carry that mismatch."""
  found = re.findall(r"^\(([A-Z])\) (.*)$", problem.query or "", flags=re.M)
  texts = [t.strip() for _, t in found]
  return texts if len(texts) == len(problem.choices) else [c.strip() for c in problem.choices]


def _as_option(text: str | None, problem: Problem, options: list[str]) -> str | None:
  """A stated option text as GPT's extraction writes it: the text itself when the query lists
  the choices in their order, else the letter the query gives it."""
  if text is None:
    return None
  if options == [c.strip() for c in problem.choices]:
    return problem.choices[options.index(text)]
  return chr(ord("A") + options.index(text))


_CHINESE_YES_NO = {"是": "Yes", "否": "No", "不是": "No"}


def _choice_steps(response: str, problem: Problem) -> Iterator[tuple[str, str | None]]:
  """Multiple choice, in order: the option a revision after the answer states ("Wait, ...");
  the option letter (also an opening "(X)" of any letter), else the option text, in `\\boxed{}`
  or after the answer phrase; a refusal, verbatim; the one option marked right when the options
  are gone through one per line with a verdict ("C) 24 – correct", ✓/✗ in a table); the same as
  the answer phrase in the first sentence (its main clause), first or last line (not an opening
  capital in prose, "A triangle."); an option said in other words; for numeric options the
  value computed; an option text anywhere; for Yes/No options what a statement means; a reply
  of a few words, as written."""
  options = query_options(problem)
  lines = [x for x in response.split("\n") if x.strip()]
  first = ex.main_clause((ex.sentences(response) or [response])[0])

  def stated(text: str | None, line: bool = False) -> str | None:
    """The option a text states; a line (the first sentence, first or last line) opening with a
    capital in prose ("A triangle.", "I think ...", `ex.opens_prose`) names no letter by it,
    and is read after it (it read A)."""
    if not text:
      return None
    read = text.lstrip(" *")[1:] if line and ex.opens_prose(text) else text
    letter = ex.choice_letter(read, len(options))
    return (letter or ex.option_marker(text)
            or _as_option(ex.stated_choice(text, options), problem, options))

  def answered(span: str | None) -> str | None:
    """An answer span's option, read before the reason given after it (`answer_head`); two
    letters offered ("B or C") as written, as GPT copies them (the normalisation then maps
    them by edit distance, as it maps GPT's copy)."""
    head = ex.answer_head(span) if span else None
    head = _CHINESE_YES_NO.get(head, head)   # "答案：否" answers No
    if head and ex.hedged_letters(head):   # "either B or C, most likely C" settles on C
      return ex.settled_hedge(span) or head
    return stated(head) or stated(span)

  yield "revision", next(filter(None, map(stated, ex.revision(response))), None)
  yield "boxed", answered(ex.boxed(response))
  yield "answer phrase", answered(ex.phrase_span(response))
  yield "refusal (kept verbatim)", response if ex.refusal(response) else None
  yield "marked option", ex.marked_option(response, len(options))
  yield "first sentence", stated(first, line=True)
  yield "first line", stated(lines[0], line=True)
  yield "last line", stated(lines[-1], line=True)
  yield "option in other words", _as_option(ex.loose_choice(first, options), problem, options)
  yield "computed value", _choice_value(response, problem, options)
  yield "option text", _as_option(ex.stated_choice(response, options)
                                  or ex.choice_text(lines[0], options), problem, options)
  yield "yes/no statement", _yes_no(first, problem, options)
  yield "short answer, verbatim", _short_answer(response)


def _short_answer(response: str) -> str | None:
  """A reply of a few words that names no option as written ("gren", "purpel"): as written,
  as GPT's extraction copies it; the normalisation then maps it to the closest option by edit
  distance (before, nothing was found, and the empty answer mapped to another option)."""
  words = response.split()
  return response if "\n" not in response and 0 < len(words) <= 3 else None


def _choice_value(response: str, problem: Problem, options: list[str]) -> str | None:
  """Numeric options: the value the response computes, as the option of that value if there is
  one (else the value itself, which the normalisation maps to the closest option)."""
  if not all(re.search(r"\d", c) for c in options):
    return None
  span = ex.answer_span(response)
  value = (ex.span_number(span) if span else None) or ex.stated_number(response)
  if value is None:
    return None
  same = [o for o in options if _same_number(_option_value(o), value)]
  return _as_option(same[0], problem, options) if len(same) == 1 else value


def _option_value(option: str) -> str | complex | None:
  """An option's number: as written (`8`, `30 m`, `1/2`), else its value in textbook or LaTeX
  notation (`2√3`, `\\frac{\\sqrt{3}}{2}`), which the plain reader takes for no number."""
  return ex.number(option) or ex.value_of(option)


def _same_number(a: str | complex | None, b: str) -> bool:
  try:
    if isinstance(a, complex):
      return a.imag == 0 and abs(a.real - float(b)) <= 1e-9 * max(1.0, abs(a.real))
    return a is not None and float(a) == float(b)
  except ValueError:
    return False


def _yes_no(statement: str, problem: Problem, options: list[str]) -> str | None:
  """Yes/No options answered by a statement ("There are more X than Y."): its meaning."""
  lower = {o.lower(): o for o in options}
  if set(lower) != {"yes", "no"}:
    return None
  return _as_option(lower[ex.yes_no(statement, problem.question).lower()], problem, options)


def _value_steps(response: str, answer_type: str) -> Iterator[tuple[str, str | None]]:
  """Free form, in order: a list for list answers (`_listed`: "[2007, 2008]", "2007, 2008" or
  "between 2007 and 2008" as that list, as the extraction prompt's demonstration has it); the
  value a revision after the answer states ("Wait, ..."); two values given as the answer, as
  written; the value in `\\boxed{}` or after the answer phrase;
  a refusal, verbatim (no number: wrong, as GPT's copy of it is); a bold value; the value a
  concluding, "There are N" or first sentence states; the last number."""
  span = ex.answer_span(response)
  if answer_type == "list":
    yield "list", _listed(response, span)
    return
  yield "revision", ex.revised_number(response)
  yield "several values", (ex.several_values(span) if span is not None else
                           ex.several_values(ex.sentences(response)[0], between=True))
  yield "boxed or answer phrase", ex.span_number(span) if span else None
  yield "refusal (kept verbatim)", response if span is None and ex.refusal(response) else None
  yield "bold value", ex.bold_number(response)
  yield "stated value", ex.stated_number(response)
  yield "last number", ex.number(response)


def _unnamed(text: str) -> str:
  """Values without the variable they are given for: "x = 3 and x = 7", "at x = 3 and at x = 7"
  -> "3 and 7", which a list reads (it read none)."""
  return re.sub(r"(?:\bat\s+)?(?<![\w-])[a-zA-Z]\s*=\s*(?=-?\d)", "", text)


def _listed(response: str, span: str | None) -> str | None:
  """A list answer as GPT's extraction writes it, "[2014, 2016]" (`calculate_score.py` compares
  `str(extraction)` with the gold list's text): the numbers the answer states, as a Python list
  or given together ("\\boxed{2014, 2016}", "The answer is 2014 and 2016"), else a Python list
  anywhere, else the numbers a concluding ("So/Therefore ...") or the first sentence gives
  together ("between 2007 and 2008", "from 2014 to 2016")."""
  if span:
    span = _unnamed(span)
    found = ex.python_list(span) or ex.listed_values(span)
    if found:
      return found
  response = _unnamed(response)
  found = ex.python_list(response)
  sents = ex.sentences(response)
  for sent in [x for x in sents if ex.concludes(x)][-1:] + sents[:1]:
    found = found or ex.listed_values(sent)
  return found


def normalize(extraction: Any, choices: list[str] | None, question_type: str, answer_type: str,
              precision: int | float | None) -> str | None:
  """`normalize_extracted_answer`: letters -> choice text, else the closest choice by
  `Levenshtein.distance` (the package the official scorer calls; ties go to the first choice);
  integer: `str(int(float(x)))` (truncates: the current official rule; the published
  `output_*.json` came from an older `str(int(x))` that gives None for "3.4", which changes no
  score there since no truncated value equals its answer); float: `str(round(float(x), precision))`;
  list: `str(x)`. None when the value does not parse."""
  if question_type == "multi_choice":
    extraction = extraction.strip() if isinstance(extraction, str) else str(extraction)
    letter = re.findall(r"\(([a-zA-Z])\)", extraction)
    if letter:
      extraction = letter[0].upper()
    options = [chr(ord("A") + i) for i in range(len(choices))]
    if extraction in options:
      return choices[options.index(extraction)]
    distances = [Levenshtein.distance(extraction, c) for c in choices]
    return choices[distances.index(min(distances))]
  try:
    if answer_type == "integer":
      return str(int(float(extraction)))
    if answer_type == "float":
      return str(round(float(extraction), int(precision)))
    if answer_type == "list":
      return str(extraction)
  except (ValueError, TypeError, OverflowError):
    return None
  return extraction


def judge(problem: Problem, extraction: Any) -> tuple[str | None, bool]:
  """(prediction, true_false) for an extraction."""
  r = problem.raw
  prediction = normalize(extraction, problem.choices, problem.meta["question_type"],
                         problem.meta["answer_type"], r.get("precision"))
  return prediction, prediction == problem.answer


# ---------------------------------------------------------------------------------------------
# Scores and files.

def breakdown_keys(problem: Problem) -> dict[str, list[str]]:
  m = problem.meta
  out = {k: [str(m.get(k))] for k in BREAKDOWNS if k != "skills"}
  out["skills"] = list(dict.fromkeys(m.get("skills") or []))
  return out


def scores(problems: dict[str, Problem], correct: dict[str, bool]) -> dict[str, Any]:
  """{"all": {correct, total, accuracy%}, "<breakdown>": {value: {...}}} for every breakdown."""
  out: dict[str, Any] = {"all": entry(sum(correct.values()), len(correct))}
  for key in BREAKDOWNS:
    counts = tally((breakdown_keys(problems[pid])[key], ok) for pid, ok in correct.items())
    rows = {v: entry(*c) for v, c in counts.items()}
    out[key] = dict(sorted(rows.items(), key=lambda kv: -kv[1]["accuracy"]))
  return out


def official_scores(problems: dict[str, Problem], correct: dict[str, bool]) -> dict[str, Any]:
  """The published `scores_*.json` format: "average" accuracy as str(round(pct, 2)), breakdown
  accuracies as "%.2f", sorted by accuracy, highest first."""
  ours = scores(problems, correct)
  c, n = ours["all"]["correct"], ours["all"]["total"]
  out: dict[str, Any] = {"average": {"accuracy": str(round(100 * c / n, 2)), "correct": c,
                                     "total": n}}
  for key in BREAKDOWNS:
    out[key] = {v: {"accuracy": "%.2f" % (100 * e["correct"] / e["total"]),
                    "correct": e["correct"], "total": e["total"]} for v, e in ours[key].items()}
  return out


def output_record(problem: Problem, response: str, extraction: str, prediction, ok: bool) -> dict:
  """One entry of the official `output_*.json`."""
  rec = dict(problem.raw)
  rec.setdefault("query", problem.query)
  rec.update(response=response, extraction=extraction, prediction=prediction, true_false=ok)
  return rec
