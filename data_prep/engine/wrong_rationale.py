"""A wrong rationale for a problem, made by the engine: DPO's rejected side without a model.

MAVIS's stage 4 rejects the stage-3 model's own wrong answers, so its pairs need a trained
model sampled over every problem first, and many of them differ from the chosen rationale in
form rather than in reasoning (in the demo's run, most multiple-choice rejections named a value
no option holds). The engine knows where reasoning goes wrong, so it can write the rejected
side itself (`--wrong_rationales`), a rationale that differs from the chosen one in
one mistake:
- multiple choice with an option set: the worked answer to another of the set's quantities,
  ending on that quantity's option (the wrong one of similar quantities, each step sound);
- otherwise one wrong turn in the chain, carried forward: a wrong formula at one step, written
  from the slip's machine form (`exact.slip_template`; a slip with no written form is not
  used), another quantity of the same kind used in a step (`used BD instead of DH in P`) or a
  misread given (`read ∠ABC as its complement 30°`, `read x = 2 as 3`), every later step
  recomputed with it and written from the values it is worked with (`exact.FromInputs`: f(3)
  substituted into, and named). A multiple-choice problem takes only a mistake that lands on
  one of its wrong options, and none takes a wrong answer nobody would write beside the right
  one (`mistakes.plain_beside`).
The steps before the mistake are the chosen rationale's own, so a pair differs where the
reasoning does. It is worked after the problem is made, on copies of the steps, with a
generator seeded by the problem's content: a run with `--wrong_rationales` writes the same
problems as one without, and the same wrong rationale for a problem however it was reached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

from . import mistakes
from .exact import is_number, slip_template
from .notation import human, written
from .problems import Rejected, Scene, Target, closing, cot, solve, step_lines


def of(scene: Scene, main: Target, rec: dict, members: list | None) -> dict | None:
  """{"CoT_reasoning", "answer", "mistake", "kind"} for the problem `rec` asking `main`, or
  None when the engine has no showable mistake for it."""
  rng = np.random.default_rng(int.from_bytes(hashlib.sha256(
      (rec["cot"] + "|" + "|".join(rec["choices"])).encode()).digest()[:8], "little"))
  if members:
    return _other_member(scene, main, rec, members, rng)
  if rec["value"] is None:  # an interval or another non-numeric answer: no chain to slip in
    return None
  return _one_wrong_turn(scene, main, rec, rng)


def _other_member(scene, main, rec, members, rng) -> dict | None:
  others = [t for t in members if t is not main]
  for k in rng.permutation(len(others)):
    t = others[k]
    try:
      sol = solve(scene, t)
    except Rejected:  # its chain fails a re-check with these values: no sound rationale
      continue
    if sol.text in rec["choices"]:
      return {"CoT_reasoning": cot(scene, sol, rec["choices"].index(sol.text)),
              "answer": sol.text, "mistake": f"worked out {t.phrase} instead of {main.phrase}",
              "kind": "other_quantity"}
  return None


def _one_wrong_turn(scene, main, rec, rng) -> dict | None:
  chain, right = rec["chain"], rec["answer"]
  steps = {d.name: d for d in chain}
  shown = [m for m in mistakes.singles(chain, scene.givens, scene.kind_of, scene.misreads, rng,
                                       mistakes.floats_of(chain, scene.givens))
           if m.expr is None or _slip_written(steps[m.step], m, scene.angles)]
  for k in rng.permutation(len(shown)):
    m = shown[k]
    start = mistakes.first_touched(chain, (m,))
    known = mistakes.worked(chain, scene.givens, (m,))
    if known is None or not all(_real(known[d.name]) for d in chain[start:]):
      continue  # a step carried past sense (the root of a negative, a division by 0)
    value = known[main.name]
    if not getattr(value, "is_real", False):
      continue
    text = human(written(value))
    if text == right or not mistakes.plain_beside(text, right) or (
        rec["choices"] and text not in rec["choices"]):
      continue
    lines = step_lines([_step(d, m, known, scene.angles) for d in chain], known, scene.angles)
    idx = rec["choices"].index(text) if rec["choices"] else None
    return {"CoT_reasoning": "\n".join(lines + [closing(text, value, idx)]), "answer": text,
            "mistake": m.why, "kind": KINDS[bool(m.expr), bool(m.swap)]}
  return None


def _real(v) -> bool:
  """A finite real number, or a value that is no number (an expression in x, a list)."""
  if not is_number(v):
    return True
  f = mistakes.as_real(v)
  return f is not None and math.isfinite(f)


# a wrong turn's kind, by (a wrong formula, a swapped input): else a misread given
KINDS = {(True, False): "formula", (False, True): "swap", (False, False): "misread"}


def _slip_written(d, m: mistakes.Mistake, angles) -> str | None:
  """The template of step d with m's wrong formula, if that has a written form."""
  return slip_template(m.expr, tuple(k for k, n in enumerate(d.inputs) if n in angles))


def _step(d, m: mistakes.Mistake, known: dict, angles):
  """The step as the mistaken reader writes it: the wrong formula or the other quantity in it,
  its value."""
  if m.step == d.name and m.swap:
    inputs = list(d.inputs)
    inputs[m.swap[0]] = m.swap[1]
    d = dataclasses.replace(d, inputs=tuple(inputs))
  if m.step == d.name and m.expr:
    d = dataclasses.replace(d, template=_slip_written(d, m, angles))
  return dataclasses.replace(d, value=known[d.name])

