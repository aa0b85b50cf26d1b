"""From a domain's scene to the released MAVIS record: question, harder question, options, CoT.

Each domain builds a `Scene`: what is given, every formula that derives something else, the
askable `Target`s and an independent way to measure any quantity. Here a target is picked whose
deduction has the asked number of steps, a harder one on the same figure (a longer chain), every
step is re-checked, a multiple-choice question asks one of an option set of the figure's
quantities (`option_set`) or, where allowed, takes wrong options from wrong reasoning
(`mistakes`), and the texts are written in textbook notation. A problem that does not re-check
raises `Rejected` and is redrawn.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from typing import Callable

from . import mistakes
from .captions import VISION_LEAD
from .exact import (approx, as_float, fill, is_number, is_rational, recompute, resolve, same,
                    sum_step)
from .notation import human, machine, written

LETTERS = "ABCDEFGH"


class Rejected(Exception):
  """A generated problem failed its own re-check; the sample is redrawn with the next attempt."""


class NoOptions(Rejected):
  """A multiple-choice question that may not be asked free-form has no fair options."""


class ProgramRejected(Rejected):
  """The figure program itself cannot give the problem asked for (no question with that many
  steps): new values would not help, so the next program is drawn."""


class FigureRejected(Rejected):
  """A plane figure cannot be drawn: its shapes overlap, or its labels find no free spot of
  their own. The next program is drawn with the same depth and number of shapes (`kept`, set by
  the plane maker: the depth it was made for, "wanted", and its shape count).

  Why not new values of the same program, as for other figures: a plane program decides how
  crowded its figure is. Of 229 plane figures redrawn with new values after their labels did not
  fit, 40 fit (17%) and 173 failed the same way; of 103 redrawn after their shapes overlapped, 5
  did (600 problems of seed 1), and a failed plane figure cost 9.5 ms against 7.9 for a whole
  problem that succeeds. Analytic figures are redrawn with new values still: 40% of those retries
  succeed. Keeping the depth and the shape count keeps `--steps`'s mix and the figures' sizes
  as they were."""

  def __init__(self, why: str, **kept):
    super().__init__(why)
    self.kept = kept


@dataclasses.dataclass
class Target:
  """An askable quantity: its name in the formulas, a noun phrase, the question's wordings."""
  name: str
  phrase: str
  asks: list
  priority: int = 0                 # lower first when several fit the step range
  main_ok: bool = True              # False: only ever the harder question (a copied side)
  signed: bool = False              # may be negative (a slope, a value): so may wrong options
  answer_text: str | None = None    # non-numeric answers (intervals)
  answer_expr: str | None = None
  wrong_texts: list = dataclasses.field(default_factory=list)  # their wrong options
  check: Callable | None = None     # their independent check (returns True when right)
  parts: tuple = ()                 # a sum of two targets: measured as the sum of theirs


@dataclasses.dataclass
class Scene:
  """What a domain hands over (see the module docstring)."""
  domain: str
  family: str
  givens: dict
  derivs: dict
  targets: list
  measure: Callable                 # name -> float (or True/False for a checked property)
  facts: list                       # [{"id", "text", "numeric"}]
  context: dict                     # version -> the text before the question
  caption: list
  generation: list
  key: Callable                     # () -> the content's canonical text, which the held-out
                                    # split hashes: made only when a split asks (printing a
                                    # function's f was ~2% of a function problem)
  draw: Callable                    # () -> (images by version, fact ids drawn by version)
  angles: frozenset = frozenset()
  kind_of: Callable = staticmethod(lambda name: None)
  misreads: list = dataclasses.field(default_factory=list)  # (given names, value, why)
  exact_only: bool = False          # symbolic steps: wrong turns are replayed exactly
  chains: dict = dataclasses.field(default_factory=dict, repr=False)  # chain_of's, by name


@dataclasses.dataclass
class Solved:
  target: Target
  chain: list
  value: object                     # exact value (None for a non-numeric answer)
  text: str                         # the answer as people write it
  expr: str                         # sympy's form
  measured: object = None           # the independent measure's value (None: a checked property)

  @property
  def steps(self) -> int:
    return len(self.chain)


def chain_of(scene: Scene, target: Target) -> list:
  """The target's deduction, remembered per scene: `pick`, `harder_of` and `option_set` each
  ask for every target's, and a name's formulas never change once the scene is made."""
  chain = scene.chains.get(target.name)
  if chain is None:
    chain = scene.chains[target.name] = resolve(target.name, scene.givens, scene.derivs)
  return chain


def solve(scene: Scene, target: Target) -> Solved:
  """The target's chain, every step re-checked, the answer against its independent measure."""
  chain = chain_of(scene, target)
  filled = fill(chain, scene.givens)
  known = dict(scene.givens)
  for d in chain:
    missing = [i for i in d.inputs if i not in known]
    if missing:
      raise Rejected(f"step {d.name} uses {missing} before they are known")
    if d.name not in filled and not same(recompute(d, known), d.value):
      raise Rejected(f"step {d.name}: formula {d.expr} does not give {d.value}")
    known[d.name] = d.value
  if target.answer_text is not None:
    if target.check() is not True:
      raise Rejected(f"answer {target.answer_text} failed its independent check")
    return Solved(target, chain, None, target.answer_text, target.answer_expr or "")
  v = known[target.name]
  measured = (sum(scene.measure(p) for p in target.parts) if target.parts
              else scene.measure(target.name))
  if isinstance(measured, bool) and not measured or not isinstance(measured, bool) and abs(
      as_float(v) - float(measured)) > 1e-6 * max(1.0, abs(as_float(v))):
    raise Rejected(f"answer {target.name} = {v} but the independent measure gives {measured}")
  return Solved(target, chain, v, human(written(v)), machine(v), measured)


def pick(scene: Scene, steps: tuple, wanted: int, srng) -> Target:
  """The question: a target whose chain has `wanted` steps (or one more or fewer, within
  `steps`), the figure's last shape first. Its harder version is `harder_of` the question
  finally asked (a multiple-choice one may ask another member of its option set)."""
  lo, hi = steps
  lens = [len(chain_of(scene, t)) for t in scene.targets]
  ok = [i for i, n in enumerate(lens) if lo <= n <= hi and scene.targets[i].main_ok]
  for off in (0, 1, -1):
    pool = [i for i in ok if lens[i] == wanted + off]
    if pool:
      break
  else:
    raise ProgramRejected(f"no question with {wanted} steps on this figure")
  best = min(scene.targets[i].priority for i in pool)
  pool = [i for i in pool if scene.targets[i].priority == best]
  return scene.targets[pool[int(srng.integers(len(pool)))]]


def harder_of(scene: Scene, main: Target) -> Target:
  """The longest strictly longer chain on the same figure, else the sum of the main target and
  the longest other numeric one (Math-LLaVA's "harder" version of the question)."""
  lens = [len(chain_of(scene, t)) for t in scene.targets]
  at = scene.targets.index(main)
  longer = [i for i, n in enumerate(lens) if n > lens[at]]
  if longer:
    return scene.targets[max(longer, key=lambda i: (lens[i], -i))]
  return _sum_target(scene, at, lens)


def option_set(scene: Scene, first: Target, steps: tuple, rng,
               same_kind: bool = False) -> list[Target] | None:
  """Four askable quantities of the figure for a multiple-choice question, `first` among them,
  or None when the figure has too few: the question then asks one of the four drawn uniformly
  *after* the set is fixed (`writer.draw`), and shows them in a uniformly drawn order.

  Why: whatever made the set (here `first`, the target of the wanted depth, and quantities of
  its kind drawn at random), P(the answer is option i | the options) = 1/4, so no rule that
  reads the options alone beats chance, however it is learned. Wrong options made from the
  answer by mistakes cannot promise that: mistakes inflate values more often than they shrink
  them, and a learned rule found the answer in 39.5% of them (docs/engine/README.md). Each
  wrong option is the exact answer to another question on the same figure: the wrong one of
  similar quantities, or a misread label.

  The other three are quantities of first's kind (lengths with lengths, areas with areas) as far
  as the figure has them, then any other numeric ones; their chains stay within `steps`. The set
  needs distinct values (not within 0.5%) and texts, no text longer than twice the shortest (or 8
  characters more), and no negative or zero value unless every member may be one (slopes,
  intercepts, values of f): conditions on the set, the same whichever member is asked.

  same_kind (`--option_kinds same`): no other kind at all. The question names the kind it asks,
  so a mixed set lets a reader who can tell the options' kinds apart rule some out (at most
  56.6% right on 1,000 problems, `benchmarks.engine`); a set of one kind does not, and fewer
  figures have one; where `first`'s kind has no set, another quantity of its depth leads one
  (`_other_leads`), rather than the figure being redrawn."""
  members = _set_led_by(scene, first, steps, rng, same_kind)
  if members is None and same_kind:
    members = _other_leads(scene, first, steps, rng)
  return members


def _other_leads(scene: Scene, first: Target, steps: tuple, rng) -> list[Target] | None:
  """A set of one kind led by another quantity of first's depth, tried in a random order: a
  figure of one or two shapes may have a set of lengths and none of areas, and redrawing it
  until the question picked first was a length redrew 401 figures for 600 problems (seed 0,
  286 with other leads). The question asked is still drawn uniformly from the set once it is
  fixed, so the options alone say nothing of the answer."""
  depth = len(chain_of(scene, first))
  others = [t for t in scene.targets if t is not first and t.main_ok
            and len(chain_of(scene, t)) == depth]
  for i in rng.permutation(len(others)):
    members = _set_led_by(scene, others[i], steps, rng, True)
    if members is not None:
      return members
  return None


def _set_led_by(scene: Scene, first: Target, steps: tuple, rng,
                same_kind: bool) -> list[Target] | None:
  lo, hi = steps
  if not _numeric(first) or (text := _figure_text(scene, first)) is None:
    return None
  pool = [t for t in scene.targets
          if t is not first and _numeric(t) and lo <= len(chain_of(scene, t)) <= hi]
  kind = scene.kind_of(first.name)
  same = [t for t in pool if kind is not None and scene.kind_of(t.name) == kind]
  other = [t for t in pool if t not in same] if not same_kind else []
  members, texts = [first], [text]
  order = ([same[i] for i in rng.permutation(len(same))]
           + [other[i] for i in rng.permutation(len(other))])
  for k, t in enumerate(order):
    if len(members) + len(order) - k < mistakes.N_OPTIONS:
      return None  # too few left for a set: their values need not be worked out (~0.6 a problem)
    x = _figure_text(scene, t)
    if x is not None and _fair(texts, x):
      members.append(t)
      texts.append(x)
      if len(members) == mistakes.N_OPTIONS:
        return members
  return None


def _numeric(t: Target) -> bool:
  """An askable number of the figure itself (not an interval, not the harder version's sum)."""
  return t.main_ok and t.answer_text is None and not t.parts


def is_fair(scene: Scene, members: list) -> bool:
  """Whether these quantities still make a fair option set with this scene's values (a variant
  keeps its first's set, with new numbers)."""
  texts = [_figure_text(scene, t) for t in members]
  return None not in texts and all(_fair(texts[:k], texts[k]) for k in range(1, len(texts)))


def _figure_text(scene: Scene, target: Target) -> tuple | None:
  """(text, float, exact value, may it be negative) of a target's answer, from its formulas;
  None unless real."""
  chain = chain_of(scene, target)
  fill(chain, scene.givens)
  v = scene.derivs[target.name].value
  f = mistakes.as_real(v)
  if f is None or not math.isfinite(f):
    return None
  return human(written(v)), f, v, target.signed


def _fair(texts: list, t: tuple) -> bool:
  """May t join the set: a value and a text of its own, no text standing out by length, and no
  negative or zero value beside a quantity that cannot be one (an area among slopes would let a
  reader of the question strike the negative options, and a length among coordinates a 0)."""
  if any(t[0] == u[0] or mistakes.close(t[1], u[1]) for u in texts):
    return False
  every = texts + [t]
  if any(u[1] <= 0 for u in every) and not all(u[3] for u in every):
    return False
  n = [len(u[0]) for u in every]
  return max(n) <= max(2 * min(n), min(n) + 8)


def _sum_target(scene: Scene, main: int, lens: list) -> Target:
  a = scene.targets[main]
  others = [i for i, t in enumerate(scene.targets) if i != main and t.answer_text is None]
  if a.answer_text is not None or not others:
    raise ProgramRejected("no harder question on this figure")
  # Not a sum that shares a term with the main one (at depth 7 and beyond both can be sums of
  # two: "the sum of the sum of y₀(1) and y₀(8) and the sum of y₀(4) and y₀(1)" counts y₀(1)
  # twice), unless the figure has nothing else.
  apart = [i for i in others if not _terms(scene.targets[i]) & _terms(a)]
  b = scene.targets[max(apart or others, key=lambda i: (lens[i], -i))]
  name = f"{a.name} + {b.name}"
  scene.derivs[name] = sum_step(a.name, b.name)
  phrase = f"the sum of {a.phrase} and {b.phrase}"
  return Target(name, phrase, [f"What is {phrase}?"], parts=(a.name, b.name))


def _terms(t: Target) -> set:
  """The quantities a sum target adds (`add_sums`, `_sum_target` and the plane's pairs are named
  "a + b"); any other target is its own one term."""
  return set(t.name.split(" + "))


SUMS_PER_FAMILY = 6  # sums added per family of quantity (`add_sums`)


def add_sums(scene: Scene, wanted: int) -> None:
  """Quantities deeper than the figure's own: two of one family added (two distances, two values
  of f: `_family`), `wanted` steps deep or one off. For programs that want more steps than any
  quantity of their domain has (`--steps` goes to 12; an analytic figure's own quantities stop at
  6 steps, with rare 8s and 10s, a function graph's at 7), which before were redrawn until the
  problem failed (`--steps 7:7` stopped at its first analytic problem). Two of a family, because
  their sum is a quantity of that kind too: a set of four sums is one kind, and the question's
  wording rules no option out. A sum's steps are both chains' (shared steps once) and the
  addition; it is measured as the sum of the two quantities' own measures. Priority 1: a quantity
  of the figure's own with the wanted depth is asked first. Added in the targets' order, so every
  variant of a program has the same list."""
  numeric = [t for t in scene.targets if _numeric(t) and scene.kind_of(t.name)]
  steps = {t.name: {d.name for d in chain_of(scene, t)} for t in numeric}
  by_family: dict = {}
  for t in numeric:
    by_family.setdefault(_family(t.name), []).append(t)
  added = {}
  for group in by_family.values():
    pairs = [(abs(len(steps[a.name] | steps[b.name]) + 1 - wanted), k, a, b)
             for k, (a, b) in enumerate(itertools.combinations(group, 2))]
    for off, _, a, b in sorted(pairs, key=lambda p: p[:2])[:SUMS_PER_FAMILY]:
      if off > 1:
        break
      name = f"{a.name} + {b.name}"
      scene.derivs[name] = sum_step(a.name, b.name)
      scene.targets.append(Target(name, f"the sum of {a.phrase} and {b.phrase}",
                                  [f"What is the sum of {a.phrase} and {b.phrase}?",
                                   f"Find {a.phrase} plus {b.phrase}."], priority=1,
                                  signed=a.signed or b.signed))
      added[name] = (a.name, b.name)
  if added:
    own = scene.measure
    scene.measure = lambda n: sum(own(p) for p in added[n]) if n in added else own(n)


def _family(name: str) -> str:
  """What a quantity's name says it is, finer than its kind: distances |AB|, slopes m(..),
  x-intercepts x₀(..), values f(..), rates: two of a family add up to a question a textbook asks
  (two distances, two values of f), where an x-intercept plus a y-intercept would not."""
  return name[0] if name.startswith("|") else re.split(r"[(\[]", name)[0]


def options(scene: Scene, sol: Solved, vrng, members: list | None = None,
            from_mistakes: bool = True) -> tuple | None:
  """(choices as text, as sympy, the answer's index, why each wrong option is wrong) or None.
  `members` (an `option_set` holding the asked target): those quantities in a uniformly drawn
  order. Else, when `from_mistakes`, wrong options from wrong reasoning (`mistakes`), or a
  non-numeric target's own (intervals: a square of two slips)."""
  if members:
    order = [members[i] for i in vrng.permutation(len(members))]
    rows = [(sol.text, sol.expr, None) if t is sol.target else
            (*_texts(scene, t), [f"gave {t.phrase} instead of {sol.target.phrase}"])
            for t in order]
    return ([r[0] for r in rows], [r[1] for r in rows], order.index(sol.target),
            [r[2] for r in rows])
  if not from_mistakes:
    return None
  if sol.value is None:
    wrong = list(sol.target.wrong_texts)
  else:
    found = mistakes.distractors(sol.chain, scene.givens, sol.target.name, sol.value,
                                 scene.kind_of, scene.misreads, vrng, scene.exact_only,
                                 sol.target.signed)
    wrong = [(human(v), machine(v), why) for v, why, _ in found or []]
  wrong = [w for w in wrong if w[0] != sol.text][:mistakes.N_OPTIONS - 1]
  if len(wrong) < 2:
    return None
  idx = int(vrng.integers(len(wrong) + 1))
  rows = wrong[:idx] + [(sol.text, sol.expr, None)] + wrong[idx:]
  return [r[0] for r in rows], [r[1] for r in rows], idx, [r[2] for r in rows]


def _texts(scene: Scene, target: Target) -> tuple:
  text, _, v, _ = _figure_text(scene, target)
  return text, machine(v)


def cot(scene: Scene, sol: Solved, idx: int | None) -> str:
  known = dict(scene.givens)
  for d in sol.chain:
    known[d.name] = d.value
  return "\n".join(step_lines(sol.chain, known, scene.angles)
                   + [closing(sol.text, sol.value, idx)])


def step_lines(chain: list, known: dict, angles) -> list:
  """A rationale's numbered steps, each written with the values in `known`."""
  return [f"Step {k + 1}: {d.sentence(known, angles)}" for k, d in enumerate(chain)]


def closing(text: str, value, idx: int | None) -> str:
  """A rationale's last line: the answer, its decimal when irrational, its option's letter."""
  final = f"The answer is {text}"
  if is_number(value) and not is_rational(value):
    final += f" (≈ {approx(value)})"
  if idx is not None:
    final += f", which is option {LETTERS[idx]}"
  return final + "."


def questions(scene: Scene, ask: str, tail: str, lead: str) -> dict:
  """The three MAVIS versions of one question: context (per version) + question + choices."""
  q = {v: (scene.context[v] + " " + ask).strip() + tail for v in scene.context}
  if not scene.context["vision_dominant"]:
    q["vision_dominant"] = lead + ask[:1].lower() + ask[1:] + tail
  return q


def assemble(scene: Scene, main: Target, harder: Target, mc: bool, srng, vrng,
             fallback: bool = True, members: list | None = None,
             from_mistakes: bool = True) -> dict:
  """The instruct record's problem fields (MAVIS-Geometry names) and what the writer needs.
  Multiple-choice options are `members` (an `option_set`) when given, else from `options`;
  a multiple-choice problem with no fair options is asked free-form when `fallback` (counted
  in meta.json), else NoOptions."""
  sol = solve(scene, main)
  opts = options(scene, sol, vrng, members, from_mistakes) if mc else None
  if mc and opts is None and not fallback:
    raise NoOptions("no fair set of options for this figure")
  hard = solve(scene, harder)
  choices, exprs, idx, why = opts or ([], [], None, [])
  tail = ("\nChoices:\n" + "\n".join(f"{LETTERS[k]}: {c}" for k, c in enumerate(choices))
          if choices else "")
  lead = VISION_LEAD[int(srng.integers(len(VISION_LEAD)))]
  ask = main.asks[int(srng.integers(len(main.asks)))]
  q = questions(scene, ask, tail, lead)
  reph = [(scene.context["text_dominant"] + " " + a).strip() + tail for a in main.asks if a != ask]
  hq = questions(scene, harder.asks[0], "", lead)
  return {
    "answer": sol.text, "answer_expr": sol.expr, "answer_index": idx, "choices": choices,
    "choices_expr": exprs, "distractor_reasons": why,
    "question_type": "multi_choice" if choices else "free_form",
    "questions": q, "cot": cot(scene, sol, idx), "rephrasings": reph,
    "steps": sol.steps, "value": sol.value, "chain": sol.chain, "measured": sol.measured,
    "fell_back": bool(mc and opts is None),
    "harder": {"text_dominant_question": hq["text_dominant"],
               "text_lite_question": hq["text_lite"],
               "vision_dominant_question": hq["vision_dominant"],
               "answer": hard.text, "answer_expr": hard.expr, "steps": hard.steps,
               "CoT_reasoning": cot(scene, hard, None)},
    "simplified": q["text_lite"],
  }


def complexity(steps: int) -> int:
  """Math-LLaVA's comprehension-complexity level 0-3, from the deduction's depth: 1-2 steps 0,
  3-4 steps 1, 5-6 steps 2, 7 or more 3."""
  return min(3, (max(1, steps) - 1) // 2)
