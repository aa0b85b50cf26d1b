"""The data engine as a benchmark no model has seen: K variants of each seed problem (same figure
program, new numbers and letters), scored as DynaMath scores its 10 variants per seed question.

Reads the engine's instruct records (`engine_benchmark.load`: MAVIS-Geometry fields, one problem
per question version) with `variant_of` (seed id) and `variant` (k). Reports:
- average-case accuracy: over every variant (and version) of every seed;
- worst-case accuracy: the share of seed questions, one per (seed, version), answered right in
  all of their variants; reasoning robustness = worst-case / average-case (DynaMath);
- the same three per question version (text dominant, text lite, vision dominant);
- consistency across versions (`consistency.agreement`, each variant's versions one group);
- `all_versions_worst_case`: seeds right in every variant and every version.

`evaluate(problems, responses)` is the one call the demo needs; `python -m mathvlm.eval.score
--benchmark engine_dynamic` and `python -m mathvlm.eval.run --benchmark engine_dynamic` use
`scores`.
"""

from __future__ import annotations

from typing import Any, Iterable

from mathvlm.eval import consistency, engine_benchmark
from mathvlm.eval.common import Problem, entry

NAME = "engine_dynamic"
load = engine_benchmark.load
extract = engine_benchmark.extract
judge = engine_benchmark.judge


def dynamic(problems: Iterable[Problem], correct: dict[str, bool]) -> dict[str, Any]:
  """average, worst_case, robustness, seeds, variants_per_seed (min, max) over the scored
  problems: a seed question is (seed, version); worst case needs every variant right."""
  seeds: dict[tuple[str, str], list[bool]] = {}
  for p in problems:
    if p.pid in correct:
      seeds.setdefault((p.meta["seed"], p.meta["version"]), []).append(correct[p.pid])
  if not seeds:
    return {"average": 0.0, "worst_case": 0.0, "robustness": 0.0, "seeds": 0,
            "variants_per_seed": [0, 0]}
  answered = [ok for oks in seeds.values() for ok in oks]
  average = 100.0 * sum(answered) / len(answered)
  worst = 100.0 * sum(all(oks) for oks in seeds.values()) / len(seeds)
  sizes = [len(oks) for oks in seeds.values()]
  return {"average": round(average, 2), "worst_case": round(worst, 2),
          "robustness": round(worst / average, 4) if average else 0.0, "seeds": len(seeds),
          "variants_per_seed": [min(sizes), max(sizes)]}


def scores(problems: dict[str, Problem], correct: dict[str, bool]) -> dict[str, Any]:
  """{"all", "dynamic", "version": {v: {correct, total, accuracy, dynamic}},
  "all_versions_worst_case"}; `score.score_responses` adds "consistency"."""
  out: dict[str, Any] = {"all": entry(sum(correct.values()), len(correct)),
                         "dynamic": dynamic(problems.values(), correct)}
  versions = sorted({problems[pid].meta["version"] for pid in correct})
  out["version"] = {}
  for v in versions:
    mine = [p for pid, p in problems.items() if pid in correct and p.meta["version"] == v]
    oks = [correct[p.pid] for p in mine]
    out["version"][v] = dict(entry(sum(oks), len(oks)), dynamic=dynamic(mine, correct))
  by_seed: dict[str, list[bool]] = {}
  for pid, ok in correct.items():
    by_seed.setdefault(problems[pid].meta["seed"], []).append(ok)
  out["all_versions_worst_case"] = round(
      100.0 * sum(all(v) for v in by_seed.values()) / len(by_seed), 2) if by_seed else 0.0
  return out


def evaluate(problems: list[Problem], responses: dict[str, str], *, variants: int = 0,
             judge_name: str = "value") -> dict[str, Any]:
  """Scores for responses (pid -> text) to engine variant problems: `scores` plus
  "consistency" across question versions; variants > 0 keeps variants 0..K-1 of each seed.
  Problems without a response are counted in "missing", not scored."""
  kept = [p for p in problems if not variants or p.meta["variant"] < variants]
  by_id = {p.pid: p for p in kept}
  extractions = {pid: extract(responses[pid], by_id[pid]) for pid in by_id if pid in responses}
  correct = {pid: judge(by_id[pid], e, judge_name) for pid, e in extractions.items()}
  out = scores(by_id, correct)
  out["consistency"] = consistency.engine_consistency(by_id, extractions, correct)
  out["missing"] = len(by_id) - len(correct)
  return out
