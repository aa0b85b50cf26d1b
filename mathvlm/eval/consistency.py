"""Answer agreement across rephrasings of one problem (Math-LLaVA's logical-consistency claim).

Input: for each problem group (e.g. an engine problem's text-dominant / text-lite /
vision-dominant versions), the extracted answers and whether each was correct. Reported:
- agreement: share of groups whose answers all agree (empty answers never agree); two answers
  agree when they are the same text or the same value in any notation (`8√3/3` and
  `8*sqrt(3)/3`, `4` and `4.0`: `answers.same_value`), so a rephrasing that only changes how the
  answer is written is not counted as a disagreement;
- pairwise: share of agreeing answer pairs within groups, averaged over all pairs;
- consistent_correct: share of groups answered correctly in every rephrasing;
- any_correct: share of groups answered correctly at least once.
Groups with a single member are skipped (nothing to agree with) and counted.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable

from mathvlm.eval.answers import same_value


def same(a: str, b: str) -> bool:
  """Two non-empty answers that agree: equal as text, else as values (`answers.same_value`,
  asked both ways: it lets a decimal answer stand for the gold rounded to its places, so
  `6.2832` agrees with `2π` whichever of the two is written first)."""
  return bool(a) and bool(b) and (a == b or same_value(a, b) or same_value(b, a))


def agreement(items: Iterable[tuple[str, str, bool]]) -> dict[str, Any]:
  """items: (group, normalised answer, correct) per answered rephrasing."""
  groups: dict[str, list[tuple[str, bool]]] = {}
  for group, answer, ok in items:
    groups.setdefault(group, []).append((answer.strip(), bool(ok)))
  multi = {g: v for g, v in groups.items() if len(v) > 1}
  agree = pairs = same_pairs = all_ok = any_ok = 0
  for members in multi.values():
    answers = [a for a, _ in members]
    agreed = [same(a, b) for a, b in itertools.combinations(answers, 2)]
    agree += all(agreed)  # every pair: agreeing by value within a tolerance is not transitive
    pairs += len(agreed)
    same_pairs += sum(agreed)
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
