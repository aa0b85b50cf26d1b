"""Score existing response files: `python -m mathvlm.eval.score --benchmark B --responses FILE
--annotations FILE --out SCORES.json [--use_extraction_field]`.

Writes SCORES.json ({"all": {correct, total, accuracy}, <breakdowns>...}), SCORES.md (tables),
SCORES.png (bar chart) and the responses re-scored in the benchmark's official output format
(SCORES_outputs.json / .jsonl; MATH-Vision also SCORES_result.json with its "-all" keys), so the
official scripts can read them too. No API is called unless `--judge_url` is given.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
from typing import Any, Callable

from mathvlm.eval import (consistency, engine_benchmark, engine_dynamic, math_v, mathverse,
                          mathvista, report)
from mathvlm.eval.common import Problem, read_text

BENCHMARKS = {"mathvista": mathvista, "math_v": math_v, "mathverse": mathverse,
              "engine": engine_benchmark, "engine_dynamic": engine_dynamic}
TITLES = {"mathvista": "MathVista", "math_v": "MATH-Vision", "mathverse": "MathVerse",
          "engine": "Engine held-out", "engine_dynamic": "Engine variants (dynamic)"}
ENGINES = ("engine", "engine_dynamic")
_ID_FIELDS = ("pid", "id", "sample_index")


def read_records(path: str) -> list[dict[str, Any]]:
  """Response records from a JSON dict (key -> record), a JSON list, or JSON lines. A JSON-lines
  file of one line is a dict too: it is one record when it names an id and its values are not
  all records, not a mapping of its field names to records. A byte-order mark is skipped."""
  text = read_text(path)
  try:
    data = json.loads(text)
  except json.JSONDecodeError:
    data = None
  if isinstance(data, dict) and any(k in data for k in _ID_FIELDS) and not all(
      isinstance(v, dict) for v in data.values()):
    data = [data]
  if isinstance(data, dict):
    return _check_objects([dict(v, **({} if any(k in v for k in _ID_FIELDS) else {"pid": k}))
                           if isinstance(v, dict) else v for k, v in data.items()],
                          path, [f"key {k!r}" for k in data])
  if isinstance(data, list):
    return _check_objects(data, path, [f"item {n}" for n in range(len(data))])
  rows, where = [], []
  for n, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 is text in JSON
    if line.strip():
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{n}: neither JSON nor JSON lines ({e})") from e
      where.append(f"line {n}")
  return _check_objects(rows, path, where)


def _check_objects(rows: list, path: str, where: list[str]) -> list[dict[str, Any]]:
  """Every response must be a JSON object: a bare string or list has no id to match, and
  reading one would fail later with a nameless TypeError. An empty file scores nothing and
  would print a 0/0 score, so it is an error too."""
  for w, rec in zip(where, rows):
    if not isinstance(rec, dict):
      raise ValueError(f"{path}: {w} is a JSON {type(rec).__name__} ({str(rec)[:80]!r}), not a "
                       "response record; each response must be an object with an id "
                       f"({', '.join(_ID_FIELDS)}) and its text")
  if not rows:
    raise ValueError(f"{path}: no records (an empty file?); check that the path names the "
                     "model's output file")
  return rows


def record_id(rec: dict[str, Any], path: str) -> str:
  for k in _ID_FIELDS:
    if k in rec:
      return str(rec[k])
  raise ValueError(f"{path}: a response record has none of {_ID_FIELDS}: {str(rec)[:200]}")


TEXT_FIELDS = ("response", "model_answer", "output", "text")


def text_field(rec: dict[str, Any], field: str | None = None) -> str | None:
  """Which field holds the model's text: `field` if given (the official `--response_label`),
  else `response` (MathVista, MATH-Vision), `model_answer` (MathVerse), `output` or `text`;
  None when the record has no such string."""
  for k in (field,) if field else TEXT_FIELDS:
    if isinstance(rec.get(k), str):
      return k
  return None


def _check_unique(records: list[dict[str, Any]], source: str) -> None:
  """Each problem has one response: with two, which one counts is a guess (the official MATH-V
  script would count both, the others keep one), so a repeated id is an error, not a choice.
  `mathvlm.eval.run` resumes by id, so what it scores is one record per id."""
  counts = collections.Counter(record_id(rec, source) for rec in records)
  repeated = [pid for pid, n in counts.items() if n > 1]
  if repeated:
    raise ValueError(f"{source}: {len(repeated)} ids have more than one response (first: "
                     f"{repeated[:5]}, {counts[repeated[0]]} records for {repeated[0]}); keep one "
                     "record per id (dedupe the file) and score again")


def score_responses(benchmark: str, problems: list[Problem], records: list[dict[str, Any]], *,
                    use_extraction_field: bool = False, source: str = "responses",
                    judge: Callable[[Problem, str, str], str | None] | None = None,
                    response_field: str | None = None, engine_judge: str = "value"):
  """(scores, official-format output records) for response records against problems.

  Every record must name a known problem. Problems without a response are left out of the
  totals, as the official scripts do (they score the response file), and counted in
  scores["missing"]. A response with no text field is scored wrong and counted in
  scores["without_text"]. An empty or blank one is scored as the official scorer scores it
  (MathVista's: the choice nearest to "", the shortest, which can be right) and counted in
  scores["empty_responses"], so a model that answers nothing is seen, not hidden in a score.
  judge(problem, response, extraction) may override the rule-based extraction (see judge.py).
  engine_judge: how free-form engine answers are judged ("value" or "math_verify").
  """
  mod = BENCHMARKS[benchmark]
  _check_unique(records, source)
  by_id = {p.pid: p for p in problems}
  correct: dict[str, bool] = {}
  extractions: dict[str, str] = {}
  outputs: list[dict] = []
  unknown, textless, empty = [], 0, 0
  for rec in records:
    pid = record_id(rec, source)
    if pid not in by_id:
      unknown.append(pid)
      continue
    p = by_id[pid]
    key = text_field(rec, response_field)
    textless += key is None
    response = rec[key] if key else ""  # scored wrong, as an empty answer, and counted
    empty += key is not None and not response.strip()
    if benchmark == "mathvista":
      p = by_id[pid] = mathvista.with_record(p, rec)
      if use_extraction_field:
        if "extraction" not in rec:
          raise ValueError(f"{source}: pid {pid} has no `extraction` field; drop "
                           "--use_extraction_field to extract from `response`")
        extraction = rec["extraction"]
      else:
        extraction = mod.extract(response, p)
    else:
      extraction = mod.extract(response, p)
    if judge is not None:
      extraction = judge(p, response, extraction) or extraction
    ok, output = _judge_one(benchmark, p, response, extraction, engine_judge,
                            textless=key is None and not use_extraction_field)
    outputs.append(output)
    correct[pid] = ok
    extractions[pid] = str(extraction)
  if unknown:
    raise ValueError(f"{source}: {len(unknown)} responses name problems not in the annotations "
                     f"(first: {unknown[:5]}); wrong --annotations file or benchmark?")
  if records and textless == len(records) and not use_extraction_field:
    # a misnamed field would score 0% quietly (MathVista's extractions need no text)
    tried = [response_field] if response_field else list(TEXT_FIELDS)
    raise ValueError(f"{source}: none of the {len(records)} responses has its text in "
                     f"{tried} (first record's fields: {sorted(records[0])}); name the field "
                     "with --response_field")
  missing = [pid for pid in by_id if pid not in correct]
  scores = mod.scores(by_id, correct)
  if benchmark == "mathvista":
    scores["official"] = mathvista.official_scores(by_id, correct)
  if benchmark in ENGINES:
    scores["consistency"] = consistency.engine_consistency(by_id, extractions, correct)
  scores["missing"] = len(missing)
  scores["without_text"] = textless
  scores["empty_responses"] = empty
  return scores, outputs


_VERDICT_FIELDS = {"mathvista": "true_false", "math_v": "correct", "mathverse": "judgement"}


def _judge_one(benchmark: str, p: Problem, response: str, extraction: Any, engine_judge: str, *,
               textless: bool) -> tuple[bool, dict]:
  """(correct, the official output record) for one response. A record without text is wrong
  whatever its empty extraction normalises to: MathVista maps any extraction, "" included, to
  the closest choice, which would make a missing response right whenever the answer is the
  shortest option."""
  if benchmark == "mathvista":
    prediction, ok = mathvista.judge(p, extraction)
    output = mathvista.output_record(p, response, extraction, prediction, ok)
  elif benchmark == "math_v":
    ok = math_v.judge(p, extraction)
    output = math_v.output_record(p, response, extraction, ok)
  elif benchmark == "mathverse":
    ok = mathverse.judge(p, extraction)
    output = mathverse.output_record(p, response, extraction, ok)
  else:
    ok = engine_benchmark.judge(p, extraction, engine_judge)
    output = {"pid": p.pid, "response": response, "extraction": extraction, "correct": ok}
  if textless and ok:
    ok = False
    field = _VERDICT_FIELDS.get(benchmark, "correct")
    output[field] = type(output[field])(False)
  return ok, output


def prompt_choice(benchmark: str, prompt: str = "") -> dict[str, str]:
  """`load`'s prompt keyword: for a benchmark with several official prompts (its PROMPTS:
  MathVerse's query fields, MATH-Vision's direct and CoT prompts) the one named, else its first,
  the official default; {} for a benchmark with one prompt, where naming one is an error (it
  would be ignored, and the run.json of what was asked would say otherwise)."""
  choices = getattr(BENCHMARKS[benchmark], "PROMPTS", ())
  if prompt and prompt not in choices:
    raise ValueError(f"prompt {prompt!r}: {TITLES[benchmark]} " + (
        f"prompts are {choices}" if choices else "has one prompt (its official query); give none"))
  return {"prompt": prompt or choices[0]} if choices else {}


def load_problems(benchmark: str, annotations: str, images_dir: str | None = None,
                  **kwargs) -> list[Problem]:
  """The benchmark's problems, each id once: scoring keys problems by id, so a repeated id would
  keep the last record's answer and breakdowns silently, and `mathvlm.eval.run` would generate
  it twice and then refuse its own responses as duplicates."""
  problems = BENCHMARKS[benchmark].load(annotations, images_dir, **kwargs)
  counts = collections.Counter(p.pid for p in problems)
  repeated = [pid for pid, n in counts.items() if n > 1]
  if repeated:
    raise ValueError(f"{annotations}: {len(repeated)} problem ids appear more than once (first: "
                     f"{repeated[:5]}, {counts[repeated[0]]} records for {repeated[0]}); is this "
                     f"the {TITLES[benchmark]} annotation file? Keep one record per id")
  return problems


def limit_variants(problems: list[Problem], records: list[dict[str, Any]], k: int,
                   source: str) -> tuple[list[Problem], list[dict[str, Any]]]:
  """Engine variant problems 0..k-1 of each seed and the responses to them (the others are
  dropped on both sides; the caller reports how many)."""
  if any("variant" not in p.meta for p in problems):
    raise ValueError("--variants applies to engine problems (engine, engine_dynamic) only")
  keep = {p.pid for p in problems if p.meta["variant"] < k}
  return ([p for p in problems if p.pid in keep],
          [r for r in records if record_id(r, source) in keep])


def write_outputs(benchmark: str, scores: dict, outputs: list[dict], out_json: str) -> dict:
  paths = report.write(scores, out_json, TITLES[benchmark])
  stem = os.path.splitext(out_json)[0]
  if benchmark in ("mathvista",) + ENGINES:
    paths["outputs"] = stem + "_outputs.json"
    with open(paths["outputs"], "w", encoding="utf-8") as f:
      json.dump({r["pid"]: r for r in outputs}, f, indent=2, ensure_ascii=False)
  elif benchmark == "math_v":
    paths["outputs"] = stem + "_outputs.jsonl"
    with open(paths["outputs"], "w", encoding="utf-8") as f:
      f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in outputs)
    paths["result"] = stem + "_result.json"
    with open(paths["result"], "w", encoding="utf-8") as f:
      json.dump(scores["official"], f, indent=4, ensure_ascii=False)
  else:
    paths["outputs"] = stem + "_outputs.json"
    with open(paths["outputs"], "w", encoding="utf-8") as f:
      json.dump(outputs, f, indent=2, ensure_ascii=False)
  return paths


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m mathvlm.eval.score",
                              description=__doc__.split("\n")[0])
  p.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
  p.add_argument("--responses", required=True, help="model outputs (JSON dict/list or JSONL)")
  p.add_argument("--annotations", required=True,
                 help="testmini.json / test.json / *.parquet (MathVista), test(mini).jsonl "
                      "(MATH-Vision), testmini.json (MathVerse)")
  p.add_argument("--out", required=True, help="SCORES.json (the .md, .png and outputs go beside)")
  p.add_argument("--use_extraction_field", action="store_true",
                 help="MathVista: normalise the stored `extraction` instead of extracting")
  p.add_argument("--response_field", default=None,
                 help="the record field holding the model's text (default: response, "
                      "model_answer, output or text)")
  p.add_argument("--judge_url", default="", help="optional OpenAI-compatible endpoint (off)")
  p.add_argument("--judge_model", default="")
  p.add_argument("--engine_judge", default="value", choices=sorted(engine_benchmark.JUDGES),
                 help="engine benchmarks: judge free-form answers by value or with math-verify")
  p.add_argument("--variants", type=int, default=0,
                 help="engine_dynamic: score variants 0..K-1 of each seed only (0: all)")
  args = p.parse_args(argv)
  problems = load_problems(args.benchmark, args.annotations)
  records = read_records(args.responses)
  dropped = {}
  if args.variants:
    before = len(problems), len(records)
    problems, records = limit_variants(problems, records, args.variants, args.responses)
    dropped = {"dropped_problems": before[0] - len(problems),
               "dropped_responses": before[1] - len(records)}
  judge = None
  if args.judge_url:
    from mathvlm.eval.judge import Judge
    judge = Judge(args.judge_url, args.judge_model)
  scores, outputs = score_responses(args.benchmark, problems, records,
                                    use_extraction_field=args.use_extraction_field,
                                    source=args.responses, judge=judge,
                                    response_field=args.response_field,
                                    engine_judge=args.engine_judge)
  paths = write_outputs(args.benchmark, scores, outputs, args.out)
  # problems left unanswered are outside "all" (as in the official scripts): say how many
  counts = {k: scores[k] for k in ("missing", "without_text", "empty_responses") if scores[k]}
  print(json.dumps({"all": scores["all"], "files": paths, **dropped, **counts}))


if __name__ == "__main__":
  main()
