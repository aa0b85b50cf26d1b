"""How closely GPT-free scoring agrees with the published benchmark scores, on ../shared/data.

Prints JSON: per MATH-Vision output file, published vs ours overall and the largest difference
in correct count over every "-all"/level/subject key; per MathVista output file, whether the
stored GPT extraction reproduces the published scores exactly, our GPT-free overall accuracy vs
the published one, and how often our prediction equals the GPT-based one item by item.
"""

from __future__ import annotations

import glob
import json
import os

from mathvlm.eval import math_v, mathvista

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def math_v_agreement() -> dict:
  problems = {p.pid: p for p in math_v.load(os.path.join(SHARED, "math_v", "test.jsonl"))}
  out = {}
  for path in sorted(glob.glob(os.path.join(SHARED, "math_v", "outputs", "*.jsonl"))):
    published = json.load(open(path.replace(".jsonl", "_result.json")))
    rows = [json.loads(x) for x in open(path)]
    correct = {r["id"]: math_v.judge(problems[r["id"]], math_v.extract(r["response"]))
               for r in rows}
    ours = math_v.official_scores(problems, correct)
    diff = max(abs(math_v.parse_official(ours.get(k, "0/0="))[0] - math_v.parse_official(v)[0])
               for k, v in published.items())
    out[os.path.basename(path)] = {"published": published["-all"], "ours": ours["-all"],
                                   "max_key_diff": diff, "keys": len(published),
                                   "same_keys": set(ours) == set(published)}
  return out


def mathvista_agreement() -> dict:
  base = {p.pid: p for p in mathvista.load(os.path.join(SHARED, "mathvista", "testmini.json"))}
  out = {}
  for path in sorted(glob.glob(os.path.join(SHARED, "mathvista", "results", "output_*.json"))):
    published = json.load(open(path.replace("output_", "scores_")))
    results = json.load(open(path))
    problems, stored, free, same_pred = {}, {}, {}, 0
    for pid, r in results.items():
      p = problems[pid] = mathvista.with_record(base[pid], r)
      gpt_pred, stored[pid] = mathvista.judge(p, r["extraction"])
      our_pred, free[pid] = mathvista.judge(p, mathvista.extract(r["response"], p))
      same_pred += gpt_pred == our_pred
    ours = mathvista.scores(problems, free)["all"]
    out[os.path.basename(path)] = {
        "stored_extraction_exact": mathvista.official_scores(problems, stored) == published,
        "published": float(published["average"]["accuracy"]), "gpt_free": ours["accuracy"],
        "diff": round(ours["accuracy"] - float(published["average"]["accuracy"]), 2),
        "same_prediction_as_gpt": round(100 * same_pred / len(results), 1)}
  return out


if __name__ == "__main__":
  print(json.dumps({"math_v": math_v_agreement(), "mathvista": mathvista_agreement()}, indent=2))
