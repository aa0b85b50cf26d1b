"""How closely GPT-free scoring agrees with published benchmark scores, file by file and item by
item: `python -m benchmarks.eval_agreement [--mathvista OUTPUT.json ...] [--math_v OUT.jsonl ...]`.

Default files: the development set in ../shared/data. Any other published output file can be
named instead (MathVista `output_*.json` with `scores_*.json` beside it; MATH-Vision
`outputs/*.jsonl` with `*_result.json` beside it), which is how a scorer is checked on models it
was never tuned on. Prints JSON:

- mathvista, per file: whether the stored GPT extraction reproduces the published scores, the
  published and our GPT-free accuracy, and item-level agreement of our right/wrong with the
  official (GPT-based) one on non-empty responses, overall and by the kind of response
  (`mathvista.explain`); then the aggregate over files.
- math_v, per file: published vs ours ("-all"), the largest difference in correct count over all
  published keys, item-level agreement with the stored `correct`, and the aggregate.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from typing import Any

from mathvlm.eval import math_v, mathvista

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def _pct(num: int, den: int) -> float:
  return round(100.0 * num / den, 2) if den else 0.0


def mathvista_file(path: str, base: dict[str, Any], field: str = "response") -> dict[str, Any]:
  """One MathVista output file against its published scores (scores_*.json beside it, else
  the stored `true_false`); `field` holds the model's text (the official `--response_label`)."""
  results = json.load(open(path, encoding="utf-8"))
  problems, stored, free = {}, {}, {}
  kinds: dict[str, list[int]] = {}
  for pid, r in results.items():
    if pid not in base:
      raise ValueError(f"{path}: pid {pid} is not in the annotations (testmini.json)")
    p = problems[pid] = mathvista.with_record(base[pid], r)
    stored[pid] = mathvista.judge(p, r.get("extraction", ""))[1]
    extraction, kind = mathvista.explain(r.get(field), p)
    free[pid] = mathvista.judge(p, extraction)[1]
    if str(r.get(field) or "").strip():
      k = kinds.setdefault(f"{p.meta['question_type']}: {kind}", [0, 0])
      k[0] += free[pid] == stored[pid]
      k[1] += 1
  scores_path = os.path.join(os.path.dirname(path),
                             os.path.basename(path).replace("output_", "scores_", 1))
  official = mathvista.official_scores(problems, stored)
  if os.path.exists(scores_path) and scores_path != path:
    published_scores = json.load(open(scores_path, encoding="utf-8"))
    published = float(published_scores["average"]["accuracy"])
    exact = official == published_scores
  else:
    published, exact = float(official["average"]["accuracy"]), None
  ours = mathvista.scores(problems, free)["all"]["accuracy"]
  agree, items = sum(k[0] for k in kinds.values()), sum(k[1] for k in kinds.values())
  return {"stored_extraction_exact": exact, "published": published, "gpt_free": ours,
          "diff": round(ours - published, 2), "items": len(results), "non_empty": items,
          "agreement_non_empty": _pct(agree, items), "disagreements": items - agree,
          "by_kind": {k: {"items": v[1], "agree": _pct(v[0], v[1])}
                      for k, v in sorted(kinds.items(), key=lambda kv: -kv[1][1])}}


def math_v_file(path: str, problems: dict[str, Any]) -> dict[str, Any]:
  """One MATH-Vision outputs file against its published `*_result.json`."""
  rows = [json.loads(x) for x in open(path, encoding="utf-8") if x.strip()]
  correct, agree = {}, 0
  for r in rows:
    if r["id"] not in problems:
      raise ValueError(f"{path}: id {r['id']} is not in the annotations (test.jsonl)")
    correct[r["id"]] = math_v.judge(problems[r["id"]], math_v.extract(r["response"]))
    agree += "correct" in r and bool(r["correct"]) == correct[r["id"]]
  ours = math_v.official_scores(problems, correct)
  out = {"ours": ours["-all"], "items": len(rows),
         "agreement": _pct(agree, sum("correct" in r for r in rows))}
  result = path[:-len(".jsonl")] + "_result.json"
  if os.path.exists(result):
    published = json.load(open(result, encoding="utf-8"))
    out.update(published=published["-all"], keys=len(published),
               same_keys=set(ours) == set(published),
               max_key_diff=max(abs(math_v.parse_official(ours.get(k, "0/0="))[0]
                                    - math_v.parse_official(v)[0]) for k, v in published.items()))
  return out


def aggregate(files: dict[str, dict[str, Any]], agree_key: str, items_key: str) -> dict[str, Any]:
  """Items, agreement and the largest published-vs-ours gap over all files."""
  items = sum(f[items_key] for f in files.values())
  agree = sum(f[agree_key] * f[items_key] / 100 for f in files.values())
  return {"files": len(files), "items": items, "agreement": _pct(round(agree), items)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
  p = argparse.ArgumentParser(prog="python -m benchmarks.eval_agreement",
                              description=__doc__.split("\n")[0])
  p.add_argument("--mathvista", nargs="*", default=None, help="output_*.json files")
  p.add_argument("--math_v", nargs="*", default=None, help="outputs/*.jsonl files")
  p.add_argument("--mathvista_annotations", default=os.path.join(SHARED, "mathvista",
                                                                  "testmini.json"))
  p.add_argument("--math_v_annotations", default=os.path.join(SHARED, "math_v", "test.jsonl"))
  p.add_argument("--response_field", default="response",
                 help="MathVista: the field with the model's text (e.g. a program's output)")
  args = p.parse_args(argv)
  vista = args.mathvista if args.mathvista is not None else sorted(
      glob.glob(os.path.join(SHARED, "mathvista", "results", "output_*.json")))
  mathv = args.math_v if args.math_v is not None else sorted(
      glob.glob(os.path.join(SHARED, "math_v", "outputs", "*.jsonl")))
  out: dict[str, Any] = {}
  if vista:
    base = {q.pid: q for q in mathvista.load(args.mathvista_annotations)}
    files = {os.path.basename(f): mathvista_file(f, base, args.response_field) for f in vista}
    agg = aggregate(files, "agreement_non_empty", "non_empty")
    agg["max_abs_diff"] = max(abs(f["diff"]) for f in files.values())
    out["mathvista"] = {"files": files, "aggregate": agg}
  if mathv:
    problems = {q.pid: q for q in math_v.load(args.math_v_annotations)}
    files = {os.path.basename(f): math_v_file(f, problems) for f in mathv}
    agg = aggregate(files, "agreement", "items")
    agg["max_key_diff"] = max(f.get("max_key_diff", 0) for f in files.values())
    out["math_v"] = {"files": files, "aggregate": agg}
  print(json.dumps(out, indent=2))
  return out


if __name__ == "__main__":
  main()
