"""Rewards of sampled answers, by config: `grpo.rewards = "answer=1.0,format=0.1"`.

Built in:
- answer: 1 when the answer is right, by the judge evaluation and the DPO pair builder use
  (`mathvlm.eval.answers.engine_answer` / `engine_correct`), else 0. An answer cut at
  max_new_tokens (no EOS) counts only where it states its answer ("The answer is", `\\boxed{}`)
  or is nothing but a value (`answers.states_answer`): the judge reads any other response by the
  value its last stating sentence ends on, which in a cut answer is mid-reasoning ("First, the
  side is 12. Then we" was paid for a gold 12; math-verify, anchored as TRL's and open-r1's
  accuracy rewards call it, pays nothing there);
- exact_answer: `answer` without the evaluation's rounded-decimal rule (a decimal right when it
  is the gold rounded to its places: 0.7 for 2/3): a free-form answer must be the exact gold's
  value (`answers.exact_correct`), so a policy is not paid for rounding coarsely. `answer` stays
  the default (the demo's numbers are made with it); the logged `pass@1` and the consistency
  reward judge as `answer` does;
- format: 1 when the answer states it as trained ("The answer is V."), else 0;
- length: -(tokens beyond `length_target`) / max_new_tokens, a penalty for rambling;
- overlong: DAPO's soft overlong punishment, 0 until the last `overlong_buffer` tokens before
  max_new_tokens, then falling linearly to -1 at max_new_tokens (the function `overlong`);
- consistency: for groups that mix one problem's question versions (`grpo.consistency`), the
  share of the group's other answers that agree with this one, when it is right (judged as
  answers, so equal values written differently agree).
Any other name is a function by import path, "package.module:function=weight", called as
function(response: str, problem: dict) -> float.

Weights and every value a function returns must be finite numbers: one NaN (a None from a
function that cannot judge, an `answer=nan`) makes its group's advantages NaN, and the run stops
on a non-finite loss whose message points at the learning rate. The spec is read, and its
functions imported, when the host step is built (`check`), before the weights load and the step
compiles.
"""

from __future__ import annotations

import importlib
import math
import re
from typing import Callable

import numpy as np

from mathvlm.eval import answers
from mathvlm.objectives import grpo

# "the answer is" followed by something answer-like: "I don't know what the answer is." is no
# stated answer, so its first character after the phrase may be neither space nor punctuation.
STATED = re.compile(r"\bthe answer is\s*:?\s*[^\s.,;:!?]", re.I)


def answer_reward(response: str, problem: dict) -> float:
  got = answers.engine_answer(response, problem["choices"])
  return float(answers.engine_correct(got, problem["answer"], problem["choices"]))


def exact_answer_reward(response: str, problem: dict) -> float:
  """`answer`, but a free-form answer must be the engine's exact gold (`answers.exact_correct`):
  a decimal rounded to its places earns nothing (0.7 for 2/3 does under `answer`)."""
  got = answers.engine_answer(response, problem["choices"])
  return float(answers.exact_correct(got, problem["answer"], problem["choices"]))


def format_reward(response: str, problem: dict) -> float:
  del problem
  return float(bool(STATED.search(response or "")))


BUILT_IN: dict[str, Callable[[str, dict], float]] = {"answer": answer_reward,
                                                      "exact_answer": exact_answer_reward,
                                                      "format": format_reward}


# built-in rewards computed from the answers' lengths or their group, not per response by a function
COMPUTED = ("length", "overlong", "consistency")


def parse(spec: str) -> list[tuple[str, float]]:
  """"answer=1.0,format=0.1,pkg.mod:fn=0.5" -> [(name, weight)]; a bare name weighs 1."""
  out = []
  for name, weight in grpo.reward_terms(spec):
    try:
      value = float(weight)
    except ValueError:
      value = math.nan
    if not math.isfinite(value):
      raise ValueError(f"grpo.rewards entry {name}={weight!r}: expected name=weight, the weight a "
                       "finite number")
    out.append((name, value))
  if not out:
    raise ValueError("grpo.rewards is empty: name at least one reward (e.g. answer=1.0)")
  names = [name for name, _ in out]
  twice = sorted({n for n in names if names.count(n) > 1})
  if twice:  # score() would add the weights, unsaid (as data.mixture, one weight a name)
    raise ValueError(f"grpo.rewards={spec!r} names {twice} more than once; give each reward one "
                     "weight")
  for name, _ in out:
    if name not in (*BUILT_IN, *COMPUTED) and ":" not in name:
      raise ValueError(f"grpo.rewards: unknown reward {name!r}; built in: answer, exact_answer, "
                       "format, length, overlong, consistency, or a function as "
                       "'package.module:function'")
  return out


def check(spec: str) -> None:
  """The spec read and its functions imported, so that a typo fails at setup."""
  for name, _ in parse(spec):
    if name not in COMPUTED:
      load(name)


def load(name: str) -> Callable[[str, dict], float]:
  return BUILT_IN[name] if name in BUILT_IN else imported(name, "grpo.rewards")


def imported(path: str, option: str):
  """The object at "package.module:name" (a reward function, a problem stream)."""
  module, _, attr = path.partition(":")
  try:
    return getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"{option}: {path!r} names nothing importable ({e}); expected "
                     "'package.module:name' on the Python path") from None


def _values(name: str, fn: Callable[[str, dict], float], responses: list[str],
            problems: list[dict]) -> np.ndarray:
  """A function's reward per answer, each checked finite (see the module's docstring)."""
  out = []
  for response, problem in zip(responses, problems):
    value = fn(response, problem)
    if not _finite(value):
      raise ValueError(f"grpo.rewards: {name} returned {value!r} for an answer to problem "
                       f"{problem.get('id')!r} ({response[:60]!r}); a reward function returns a "
                       "finite number (e.g. 0.0 where it cannot judge)")
    out.append(value)
  return np.array(out, np.float32)


def _finite(value) -> bool:
  """A bool, an integer or a finite float, Python's or numpy's."""
  a = np.asarray(value)
  return a.ndim == 0 and a.dtype.kind in "biuf" and bool(np.isfinite(a))


def overlong(lengths: np.ndarray, max_new_tokens: int, buffer: int) -> np.ndarray:
  """DAPO's soft overlong punishment (Yu et al. 2025, arXiv 2503.14476, eq. 13) with
  L_max = max_new_tokens and L_cache = buffer: 0 for |y| <= L_max - L_cache,
  ((L_max - L_cache) - |y|) / L_cache inside the buffer, -1 beyond L_max. Followed as verl's DAPO
  reward manager computes it (`verl/workers/reward_manager/dapo.py`, min(-(|y| - (L_max -
  L_cache)) / L_cache, 0) at penalty_factor 1), |y| counting the EOS as its response length does;
  the sampler stops at max_new_tokens, so -1 is reached at L_max, by a cut answer or one whose EOS
  is its last token. Unlike `length`, an answer is charged only near the cap, more the nearer."""
  if not 0 < buffer <= max_new_tokens:
    raise ValueError(f"grpo.overlong_buffer={buffer}: the overlong reward needs a buffer in "
                     f"(0, max_new_tokens={max_new_tokens}]")
  start = max_new_tokens - buffer
  ramp = (start - np.asarray(lengths, np.float64)) / buffer
  return np.clip(ramp, -1.0, 0.0).astype(np.float32)


def consistency(problems: list[dict], correct: np.ndarray) -> np.ndarray:
  """Per answer: when it is right, the share of the other answers in its group (same `group` id:
  one problem's question versions, which share its answer) that are right too, else 0 (agreeing
  on a wrong answer earns nothing). Agreement with a right answer is judged by the answer judge,
  not by the strings: `4√3` and `6.93` agree on a free-form answer, as they would be scored."""
  correct = np.asarray(correct, np.float32)
  groups = np.array([p["group"] for p in problems], dtype=object)
  out = np.zeros(len(problems), np.float32)
  for i in np.flatnonzero(correct):
    others = np.flatnonzero(groups == groups[i])
    others = others[others != i]
    if len(others):
      out[i] = correct[others].mean()
  return out


def score(responses: list[str], problems: list[dict], lengths: np.ndarray, spec: str,
          max_new_tokens: int, length_target: int = 0,
          finished: np.ndarray | None = None,
          overlong_buffer: int = 0) -> tuple[np.ndarray, dict]:
  """(total reward per answer, {name: per-answer values}) for the weighted rewards of `spec`.
  finished: per answer, whether it ended with EOS (None: all did); the built-in rewards read a
  cut one that states no answer as no response (the module's docstring says why), functions
  by import path get every response as sampled."""
  parts = {}
  judged = _judged(responses, finished)
  correct = np.array([answer_reward(r, p) for r, p in zip(judged, problems)], np.float32)
  for name, _ in parse(spec):
    if name == "answer":
      parts[name] = correct
    elif name == "length":
      free = length_target or max_new_tokens
      parts[name] = -np.maximum(0, np.asarray(lengths) - free).astype(np.float32) / max_new_tokens
    elif name == "overlong":
      parts[name] = overlong(lengths, max_new_tokens, overlong_buffer)
    elif name == "consistency":
      parts[name] = consistency(problems, correct)
    else:
      parts[name] = _values(name, load(name), judged if name in BUILT_IN else responses,
                            problems)
  total = sum(w * parts[name] for name, w in parse(spec))
  return np.asarray(total, np.float32), dict(parts, correct=correct)


def _judged(responses: list[str], finished: np.ndarray | None) -> list[str]:
  """The responses as the built-in rewards read them: a cut one (not `finished`) that does not
  state its answer as "" (no answer)."""
  if finished is None:
    return list(responses)
  if len(finished) != len(responses):
    raise ValueError(f"rewards.score: {len(finished)} finished flags for {len(responses)} "
                     "responses")
  return [r if done or answers.states_answer(r) else ""
          for r, done in zip(responses, np.asarray(finished, bool))]
