"""Answer agreement across rephrasings of one problem (Math-LLaVA's logical-consistency claim).

Input: for each problem group (e.g. an engine problem's text-dominant / text-lite /
vision-dominant versions), the extracted answers and whether each was correct. Reported:
- agreement: share of groups whose answers all agree (empty answers never agree);
- pairwise: share of agreeing answer pairs within groups, averaged over all pairs;
- consistent_correct: share of groups answered correctly in every rephrasing;
- any_correct: share of groups answered correctly at least once.
Groups with a single member are skipped (nothing to agree with) and counted.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable


def agreement(items: Iterable[tuple[str, str, bool]]) -> dict[str, Any]:
  """items: (group, normalised answer, correct) per answered rephrasing."""
  groups: dict[str, list[tuple[str, bool]]] = {}
  for group, answer, ok in items:
    groups.setdefault(group, []).append((answer.strip(), bool(ok)))
  multi = {g: v for g, v in groups.items() if len(v) > 1}
  agree = pairs = same_pairs = all_ok = any_ok = 0
  for members in multi.values():
    answers = [a for a, _ in members]
    agree += all(a and a == answers[0] for a in answers)
    for a, b in itertools.combinations(answers, 2):
      pairs += 1
      same_pairs += bool(a) and a == b
    all_ok += all(ok for _, ok in members)
    any_ok += any(ok for _, ok in members)
  n = len(multi)

  def pct(x, d):
    return round(100.0 * x / d, 2) if d else 0.0
  return {"groups": n, "skipped_single": len(groups) - n,
          "agreement": pct(agree, n), "pairwise": pct(same_pairs, pairs),
          "consistent_correct": pct(all_ok, n), "any_correct": pct(any_ok, n)}


def engine_consistency(problems: dict[str, Any], extractions: dict[str, str],
                       correct: dict[str, bool]) -> dict[str, Any]:
  """`agreement` over engine problems, grouped by their `meta["group"]`."""
  return agreement((problems[pid].meta["group"], extractions[pid], correct[pid])
                   for pid in correct)
