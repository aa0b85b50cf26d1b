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
from typing import Any

from mathvlm.eval import answers as ex
from mathvlm.eval.common import Problem, entry, tally

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
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  return list(data.values()) if isinstance(data, dict) else data


def load(path: str, images_dir: str | None = None) -> list[Problem]:
  """Problems from `testmini.json` / `test.json` (pid -> record) or the HF parquet.

  images_dir: where `images/<pid>.jpg` paths resolve (default: the annotation file's folder)."""
  images_dir = images_dir or os.path.dirname(os.path.abspath(path))
  return [load_record(r, images_dir, f"{path}: record {n}")
          for n, r in enumerate(_records(path))]


def load_record(r: dict[str, Any], images_dir: str = "", where: str = "record") -> Problem:
  """One MathVista annotation record as a Problem."""
  missing = [k for k in ("pid", "question", "question_type", "answer_type") if k not in r]
  if missing:
    raise ValueError(f"{where} (pid {r.get('pid')}) lacks {missing}; is this a MathVista "
                     "annotation file (testmini.json / test.json / parquet)?")
  meta = dict(r.get("metadata") or {})
  meta.update(question_type=r["question_type"], answer_type=r["answer_type"])
  return Problem(
      pid=str(r["pid"]), question=r["question"], answer=r.get("answer"),
      choices=list(r.get("choices") or []),
      images=[os.path.join(images_dir, r["image"])] if r.get("image") else [],
      query=r.get("query") or build_query(r), meta=meta, raw=r)


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
  precision, types, metadata) win over the annotations'. Published result files carry the
  metadata they were scored with (e.g. grade "daily life", since renamed "not applicable")."""
  raw = dict(problem.raw)
  raw.update({k: v for k, v in record.items() if k in (
      "answer", "choices", "precision", "unit", "question_type", "answer_type", "metadata")})
  meta = dict(raw.get("metadata") or {})
  meta.update(question_type=raw["question_type"], answer_type=raw["answer_type"])
  return Problem(pid=problem.pid, question=problem.question, answer=raw.get("answer"),
                 choices=list(raw.get("choices") or []), images=problem.images,
                 query=problem.query, meta=meta, raw=raw)


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
  else:
    hint = _HINTS[r["answer_type"]]
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
  qtype, atype = problem.meta["question_type"], problem.meta["answer_type"]
  choices = problem.choices
  response = (response or "").strip()
  if response == "":
    return ""
  if qtype == "multi_choice" and response in choices:       # the official shortcuts
    return response
  if atype == "integer" and re.fullmatch(r"[-+]?\d+", response):
    return str(int(response))
  if atype == "float":
    try:
      return str(float(response))
    except ValueError:
      pass
  span = ex.answer_span(response)
  if qtype == "multi_choice":
    lines = [x for x in response.split("\n") if x.strip()]
    # letters only where an answer is stated (span, first or last line); texts anywhere
    for i, text in enumerate([span or "", lines[0], lines[-1], response]):
      letter = ex.choice_letter(text, len(choices)) if i < 3 else None
      if letter:
        return letter
      hit = ex.choice_text(text, choices)
      if hit:
        return hit
    if all(re.search(r"\d", c) for c in choices):   # numeric choices: the value it computed
      value = (ex.number(span) if span else None) or ex.stated_number(response)
      if value is not None:
        return value
    return yes_or_no(response, choices)
  if atype == "list":
    return ex.python_list(span or "") or ex.python_list(response) or ""
  for value in (ex.number(span) if span else None, ex.bold_number(response),
                ex.stated_number(response), ex.number(response)):
    if value is not None:
      return value
  return ""


def yes_or_no(response: str, choices: list[str]) -> str:
  """For Yes/No choices answered by a statement ("The bed is larger than the kitten."): a plain
  statement means Yes, a negated one No, as a reader (and GPT-4's extraction) takes it."""
  lower = {c.strip().lower(): c for c in choices}
  if set(lower) != {"yes", "no"} or re.search(r"\bsorry\b|can't (?:help|process|answer)",
                                               response, flags=re.I):
    return response if set(lower) == {"yes", "no"} else ""
  negated = re.search(r"\b(?:not|no|never|neither|nor|cannot)\b|n't", response, flags=re.I)
  return lower["no" if negated else "yes"]


def levenshtein(a: str, b: str) -> int:
  """Edit distance (insertions, deletions, substitutions), as `Levenshtein.distance`."""
  if len(a) < len(b):
    a, b = b, a
  prev = list(range(len(b) + 1))
  for i, ca in enumerate(a, 1):
    cur = [i]
    for j, cb in enumerate(b, 1):
      cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
    prev = cur
  return prev[-1]


def normalize(extraction: Any, choices: list[str] | None, question_type: str, answer_type: str,
              precision: int | float | None) -> str | None:
  """`normalize_extracted_answer`: letters -> choice text, else the closest choice (Levenshtein);
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
    distances = [levenshtein(extraction, c) for c in choices]
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
