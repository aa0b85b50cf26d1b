"""The data engine's held-out problems, read from the MAVIS-Geometry instruct format.

A record (field names as released in CaraJ/MAVIS-Geometry): `text_en` with `caption`,
`text_dominant_question`, `text_lite_question`, `vision_dominant_question`, `CoT_reasoning`;
`choices`, `answer_index`; one image per version: `image_text_dominant`, `image_text_lite`,
`image_vision_dominant`. Each record gives one `Problem` per version present; the versions are
rephrasings of one problem (same answer), grouped by `meta["group"]` for the consistency metric.
Answers are read and judged by `mathvlm.eval.answers` (`engine_answer`, `engine_correct`), the
same functions the DPO pair builder and GRPO's reward use.

Variants (`python -m data_prep.engine ... --variants K`) carry `variant_of` (the seed problem's
id) and `variant` (k): kept in `meta["seed"]` and `meta["variant"]` for
`mathvlm.eval.engine_dynamic`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mathvlm.eval import answers
from mathvlm.eval.common import Problem, entry, tally

NAME = "engine"
VERSIONS = {"text_dominant": ("text_dominant_question", "image_text_dominant"),
            "text_lite": ("text_lite_question", "image_text_lite"),
            "vision_dominant": ("vision_dominant_question", "image_vision_dominant")}
INSTRUCTION = "Answer with the option's letter from the given choices directly."


def build_query(question: str, choices: list[str]) -> str:
  """MathVerse-style multiple-choice query: question, `Choices:` as `(A) ...`, instruction."""
  lines = [question.strip()]
  if choices and "\nChoices:\n" not in question:  # MAVIS questions list their choices
    lines += ["Choices:"] + [f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(choices)]
    lines.append(INSTRUCTION)
  return "\n".join(lines)


def load(path: str, images_dir: str | None = None, language: str = "en") -> list[Problem]:
  """Problems from an engine instruct JSON list (MAVIS-Geometry fields)."""
  images_dir = images_dir or os.path.dirname(os.path.abspath(path))
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  if not isinstance(data, list):
    raise ValueError(f"{path}: expected a JSON list of MAVIS-Geometry records")
  problems, seen = [], set()
  for n, r in enumerate(data):
    _check_object(r, n, path)
    group = record_id(r, n)
    if group in seen:
      raise ValueError(f"{path}: record {n}: id {group} appears twice; give each record (and "
                       "each variant of a seed problem) its own id")
    seen.add(group)
    problems += problems_of(r, n, images_dir, language, where=path)
  return problems


def problems_of(r: dict[str, Any], n: int, images_dir: str = "", language: str = "en", *,
                where: str = "engine records") -> list[Problem]:
  """One record's problems, one per question version it has; image paths joined to
  `images_dir` (a relative path stays relative with ""; the RL stream maps it to bytes)."""
  _check_object(r, n, where)
  text, group = r.get(f"text_{language}"), record_id(r, n)
  if not isinstance(text, dict):
    raise ValueError(f"{where}: record {n} (id {group}) has no `text_{language}` object; "
                     "engine records need the MAVIS-Geometry fields")
  choices = [str(c) for c in r.get("choices") or []]
  answer = r.get("answer")
  if choices:
    idx = r.get("answer_index")
    if not isinstance(idx, int) or not 0 <= idx < len(choices):
      raise ValueError(f"{where}: record {n} (id {group}): answer_index {idx!r} is not an index "
                       f"into its {len(choices)} choices")
    answer = chr(ord("A") + idx)
  if answer is None:
    raise ValueError(f"{where}: record {n} (id {group}) has neither choices+answer_index nor "
                     "an `answer`")
  out = []
  for version, (q_field, img_field) in VERSIONS.items():
    question = text.get(q_field)
    if not question:
      continue
    image = r.get(img_field)
    out.append(Problem(
        pid=f"{group}:{version}", question=question, answer=str(answer), choices=choices,
        images=[os.path.join(images_dir, image)] if image else [],
        query=build_query(question, choices),
        meta={"group": group, "version": version, "caption": text.get("caption", ""),
              "cot": text.get("CoT_reasoning", ""),
              "seed": str(r.get("variant_of", group)), "variant": int(r.get("variant", 0))},
        raw=r))
  if not out:
    raise ValueError(f"{where}: record {n} (id {group}) has none of "
                     f"{[v[0] for v in VERSIONS.values()]} in text_{language}")
  return out


def _check_object(r: Any, n: int, where: str) -> None:
  if not isinstance(r, dict):
    raise ValueError(f"{where}: record {n} is {type(r).__name__} {str(r)[:40]!r}, not a JSON "
                     "object; engine records are objects with the MAVIS-Geometry fields")


def record_id(r: dict[str, Any], n: int) -> str:
  """A record's id: `id`, else (a variant without one) "<variant_of>#v<variant>", else its
  position in the file."""
  if "id" in r:
    return str(r["id"])
  if "variant_of" in r:
    return f"{r['variant_of']}#v{r.get('variant', 0)}"
  return str(n)


def extract(response: str | None, problem: Problem) -> str:
  """An option letter (or, for free-form, a value) from the response."""
  return answers.engine_answer(response, problem.choices)


JUDGES = {"value": answers.engine_correct, "math_verify": answers.math_verify_correct}


def judge(problem: Problem, extraction: str, judge: str = "value") -> bool:
  """The option letter; a free-form answer by value (sympy, `engine_correct`), or with
  judge="math_verify" by math-verify's symbolic equality (`math_verify_correct`)."""
  if judge not in JUDGES:
    raise ValueError(f"unknown engine judge {judge!r}; choose from {sorted(JUDGES)}")
  return JUDGES[judge](extraction, problem.answer, problem.choices)


def scores(problems: dict[str, Problem], correct: dict[str, bool]) -> dict[str, Any]:
  out: dict[str, Any] = {"all": entry(sum(correct.values()), len(correct))}
  counts = tally(([problems[pid].meta["version"]], ok) for pid, ok in correct.items())
  out["version"] = {v: entry(*c) for v, c in sorted(counts.items())}
  return out
