"""Choices-only rules: how much of a multiple-choice score the options alone could give.

Each rule looks only at the option texts (never the question or the image) and names the
option(s) it would pick; ties are split evenly, so a rule's expected accuracy on a problem is
1/|tie| if the answer is among its picks. If any rule beats chance by much, the options give the
answer away and multiple-choice accuracy measures option artefacts instead of math (the engine's
old distractors were slips of the answer: `slip_source` found it 58.9% of the time).

Pure functions over strings; values are read by `mathvlm.eval.answers.value_of`, which knows
the engine's notation (`4√3`, `2π`, `3/2`).

Fixed rules test one idea each. A model that learns from (options, answer) pairs tests them all
at once and finds their combinations (the answer is the smallest in magnitude but not by value,
the shortest of the long ones, ...): `Learned` fits one on problems of one seed and is scored on
fresh ones, so what it finds is a property of the generator, not of the problems it saw.
"""

from __future__ import annotations

import difflib
import math
import re
import statistics
from typing import Callable

import numpy as np

from mathvlm.eval.answers import value_of

# The old engine's distractor slips (data_prep/engine/exact.py before issue 14).
SLIPS = (lambda v: 2 * v, lambda v: v / 2, lambda v: 1.5 * v, lambda v: v + 2, lambda v: v - 1,
         lambda v: v * math.sqrt(2), lambda v: v * math.sqrt(3) / 2, lambda v: v + 5,
         lambda v: v * 2 / 3, lambda v: 3 * v, lambda v: v - 3)


def values(choices: list[str]) -> list[float] | None:
  """The options' real values, or None when any is not a number (intervals, expressions)."""
  out = []
  for c in choices:
    v = value_of(c)
    if v is None or abs(v.imag) > 1e-9:
      return None
    out.append(v.real)
  return out


def _best(scores: list, highest: bool = True) -> list[int]:
  """Indices with the best score (all of them when there is nothing to go on)."""
  if not scores:
    return []
  top = max(scores) if highest else min(scores)
  return [i for i, s in enumerate(scores) if abs(s - top) < 1e-9]


def slip_source(choices: list[str]) -> list[int]:
  """The option most others derive from by one of the old engine's slips (the demo's rule)."""
  vals = values(choices)
  if vals is None:
    return list(range(len(choices)))
  return _best([sum(any(abs(f(v) - w) < 1e-6 for f in SLIPS) for j, w in enumerate(vals) if j != i)
                for i, v in enumerate(vals)])


def nearest_mean(choices: list[str]) -> list[int]:
  vals = values(choices)
  if vals is None:
    return list(range(len(choices)))
  mean = sum(vals) / len(vals)
  return _best([abs(v - mean) for v in vals], highest=False)


def nearest_median(choices: list[str]) -> list[int]:
  vals = values(choices)
  if vals is None:
    return list(range(len(choices)))
  med = statistics.median(vals)
  return _best([abs(v - med) for v in vals], highest=False)


def largest(choices: list[str]) -> list[int]:
  vals = values(choices)
  return list(range(len(choices))) if vals is None else _best(vals)


def smallest(choices: list[str]) -> list[int]:
  vals = values(choices)
  return list(range(len(choices))) if vals is None else _best(vals, highest=False)


def leading_digit(choices: list[str]) -> list[int]:
  """The option whose value's first significant digit the most other options share."""
  vals = values(choices)
  if vals is None:
    return list(range(len(choices)))
  digit = [f"{abs(v):.6e}"[0] for v in vals]
  return _best([digit.count(d) for d in digit])


def form(text: str) -> str:
  """How an option is written: sign, surd, π, fraction, sum, a bracketed sum ((24 - 8√3)/π),
  decimal, interval, integer."""
  t = text.strip()
  parts = ["-" if t.startswith("-") else "+"]
  for mark, name in (("√", "surd"), ("π", "pi"), ("/", "frac"), ("∞", "inf"), (".", "dec")):
    if mark in t:
      parts.append(name)
  if re.search(r"\S [+-] \S", t):
    parts.append("sum")
  if re.search(r"\([^(),]*\S [+-] \S[^(),]*\)", t):
    parts.append("grouped")
  if t.startswith("(") and "," in t:
    parts.append("interval")
  return ",".join(parts)


def common_form(choices: list[str]) -> list[int]:
  forms = [form(c) for c in choices]
  return _best([forms.count(f) for f in forms])


def odd_form(choices: list[str]) -> list[int]:
  """The odd one out: the option written unlike all the others (none stands out: all tie)."""
  forms = [form(c) for c in choices]
  odd = [i for i, f in enumerate(forms) if forms.count(f) == 1]
  return odd if len(odd) == 1 else list(range(len(choices)))


def longest(choices: list[str]) -> list[int]:
  return _best([len(c.strip()) for c in choices])


def shortest(choices: list[str]) -> list[int]:
  return _best([len(c.strip()) for c in choices], highest=False)


def most_similar(choices: list[str]) -> list[int]:
  """The option closest in writing to all the others (the centre of the option set)."""
  return _best([sum(difflib.SequenceMatcher(None, a, b).ratio()
                    for j, b in enumerate(choices) if j != i) for i, a in enumerate(choices)])


def shared_parts(choices: list[str]) -> list[int]:
  """The option sharing the most numbers and symbols (3, √2, π, ...) with the others: the hub
  the others were made from by changing one part."""
  bags = [set(re.findall(r"√\d+|π|∞|\d+", c)) for c in choices]
  return _best([sum(len(a & b) for j, b in enumerate(bags) if j != i)
                for i, a in enumerate(bags)])


RULES: dict[str, Callable[[list[str]], list[int]]] = {
    "slip_source": slip_source, "nearest_mean": nearest_mean, "nearest_median": nearest_median,
    "largest": largest, "smallest": smallest, "leading_digit": leading_digit,
    "common_form": common_form, "odd_form": odd_form, "longest": longest, "shortest": shortest,
    "most_similar": most_similar, "shared_parts": shared_parts}


def expected(rule: str, choices: list[str], answer_index: int) -> float:
  """The rule's expected score on one problem: 1/|picks| if the answer is among its picks."""
  picks = RULES[rule](choices)
  return (answer_index in picks) / len(picks) if picks else 0.0


def scores(problems: list[tuple[list[str], int]]) -> dict[str, float]:
  """Accuracy of every rule and of chance over (choices, answer index) pairs, in [0, 1]."""
  n = max(len(problems), 1)
  out = {"chance": sum(1 / len(c) for c, _ in problems) / n}
  for rule in RULES:
    out[rule] = sum(expected(rule, c, a) for c, a in problems) / n
  return out


# ---------------------------------------------------------------- a learned rule

MARKS = ("√", "π", "/", "(", ".", "-", "∞", "·", "x")


def _rank(xs: np.ndarray) -> np.ndarray:
  """Each entry's rank in [0, 1] (ties by position, as a stable sort orders them)."""
  return np.argsort(np.argsort(xs, kind="stable"), kind="stable") / max(1, len(xs) - 1)


def option_features(choices: list[str]) -> np.ndarray:
  """[options, features]: what a choices-only model may see of each option, relative to its set.
  Every fixed rule's pick (ties split); the value's rank, z-score, sign, and log-magnitude and its
  rank against the set's (zeros for a set without values); the text's length, and how many
  numbers and symbols it holds (is the answer tidier than the slips?), against the set's; whether it
  is a plain integer; the notation's marks; how many options share its form."""
  k = len(choices)
  picks = [rule(choices) for rule in RULES.values()]
  rules = np.array([[(i in p) / len(p) if 0 < len(p) < k else 0.0 for p in picks]
                    for i in range(k)])
  vals = values(choices)
  if vals is None:
    value = np.zeros((k, 6))
  else:
    v = np.array(vals)
    mag = np.log10(np.abs(v) + 1e-12)
    value = np.stack([np.ones(k), _rank(v), (v - v.mean()) / (v.std() or 1.0), (v < 0) * 1.0,
                      mag - mag.mean(), _rank(mag)], 1)
  n = np.array([len(c.strip()) for c in choices], float)
  parts = np.array([len(re.findall(r"\d+|[√∛∜π∞x]|ln|log", c)) for c in choices], float)
  forms = [form(c) for c in choices]
  n_rank, parts_rank = _rank(n), _rank(parts)
  text = np.array([[n_rank[i], (n[i] - n.mean()) / (n.std() or 1.0), parts_rank[i],
                    parts[i] - parts.mean(), float(re.fullmatch(r"-?\d+", c.strip()) is not None),
                    forms.count(forms[i]) / k, *[float(m in c) for m in MARKS]]
                   for i, c in enumerate(choices)])
  return np.concatenate([rules, value, text], 1)


class Learned:
  """A choices-only rule learned from (choices, answer index) pairs: a scikit-learn classifier
  of "is this option the answer" over `option_features`, picking the option(s) it scores
  highest. kind: "linear" (standardised logistic regression) or "trees" (gradient-boosted
  trees: they find conjunctions the linear model cannot). Deterministic for the same pairs."""

  def __init__(self, problems: list[tuple[list[str], int]], kind: str = "linear"):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if kind not in ("linear", "trees"):
      raise ValueError(f"choices_only.Learned: kind {kind!r}; one of 'linear', 'trees'")
    for k, (c, a) in enumerate(problems):
      if not 0 <= a < len(c):
        raise ValueError(f"choices_only.Learned: problem {k} has answer index {a} for "
                         f"{len(c)} options {c!r}; fix or drop that record")
    x = np.concatenate([option_features(c) for c, _ in problems])
    y = np.concatenate([np.arange(len(c)) == a for c, a in problems])
    if len(problems) < 10 or y.all() or not y.any():
      raise ValueError(f"choices_only.Learned: {len(problems)} problems are too few to learn "
                       "from; give it at least 10 multiple-choice problems")
    self.model = (make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=3000))
                  if kind == "linear" else HistGradientBoostingClassifier(
                      learning_rate=0.05, max_iter=200, early_stopping=False, random_state=0))
    self.model.fit(x, y)

  def __call__(self, choices: list[str]) -> list[int]:
    return self.picks([choices])[0]

  def picks(self, sets: list[list[str]]) -> list[list[int]]:
    """The picks for many option sets in one prediction (a call per set costs milliseconds)."""
    p = self.model.predict_proba(np.concatenate([option_features(c) for c in sets]))[:, 1]
    out, at = [], 0
    for c in sets:
      q, at = p[at:at + len(c)], at + len(c)
      out.append([int(i) for i in np.flatnonzero(q >= q.max() - 1e-12)])
    return out

  def score(self, problems: list[tuple[list[str], int]]) -> float:
    """Expected accuracy on (choices, answer index) pairs it was not fitted on, in [0, 1]."""
    if not problems:
      return 0.0
    picks = self.picks([c for c, _ in problems])
    return sum((a in p) / len(p) for (_, a), p in zip(problems, picks)) / len(problems)
