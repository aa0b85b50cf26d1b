"""Distractors from wrong reasoning: each wrong option is the answer of the same chain with one or
two mistakes inside it, computed exactly like the answer. Used where a figure has no option set
of its own quantities (`problems.option_set`) and `--wrong_options figure+mistakes` allows it:
however they are picked, mistakes inflate a value more often than they shrink it, and a learned
choices-only rule finds the answer among them well above chance (docs/engine/README.md).

A mistake is a wrong formula at one step (`Deriv.slips`), the wrong one of two similar quantities
fed into a step (another length, the other coordinate), or a misread given (the complementary
angle); everything after it is carried forward. Options are then picked so that the options alone
say nothing about which one is right:
- a "square" when it can: the answer, mistake A, mistake B and both A and B. Every option is one
  mistake away from two others, so no option is the hub the others derive from; otherwise a
  set where some wrong option is at least as central as the answer (never three single
  mistakes around it);
- the answer's rank among the options is drawn uniformly, so largest / smallest / nearest the
  mean or median hit the answer at chance;
- no wrong option is a fixed multiple of the answer (2x, x/2, √3x, πx, -x, ...).
Many variants are tried in floats (cheap); only the options kept are recomputed exactly.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re

import numpy as np

from .exact import EXACT, FLOAT, as_complex, evaluate
from .notation import human, written

N_OPTIONS = 4
MAX_SINGLES = 9
MAX_EXACT_SINGLES = 6  # symbolic replays are dear
MAX_EXACT_PAIRS = 6
PICK_TRIES = 4
POOL = 12            # options the non-square sets are drawn from
POOL_SINGLES = 6     # of them at most this many single mistakes, so pairs get in
FIXED_RATIOS = (2, 1 / 2, 3, 1 / 3, 3 / 2, 2 / 3, 4, 1 / 4, math.sqrt(2), 1 / math.sqrt(2),
                math.sqrt(3), 1 / math.sqrt(3), math.sqrt(3) / 2, 2 / math.sqrt(3), math.pi,
                1 / math.pi, 2 * math.pi, 1 / (2 * math.pi), math.log(2), 1 / math.log(2), -1)


@dataclasses.dataclass(frozen=True)
class Mistake:
  """One wrong turn. site: where it happens (two mistakes at one site never combine)."""
  site: str
  why: str
  step: str | None = None       # the step whose formula or input is wrong
  expr: str | None = None       # the wrong formula used there
  swap: tuple | None = None     # (input position, the quantity used instead)
  given: tuple = ()             # a misread given (the names it goes by)
  value: object = None          # what it was misread as


def replay(chain: list, givens: dict, target: str, mistakes: tuple, namespace: dict = EXACT,
           floats: dict | None = None):
  """The target's value when the chain is worked with these mistakes (None if it breaks).
  Steps before the first one a mistake touches keep their values (`floats`: every value in
  floats, for replaying in floats)."""
  known = worked(chain, givens, mistakes, namespace, floats)
  return None if known is None else known[target]


def worked(chain: list, givens: dict, mistakes: tuple, namespace: dict = EXACT,
           floats: dict | None = None) -> dict | None:
  """Every given's and step's value when the chain is worked with these mistakes (a misread
  given at its misread value), or None if it breaks."""
  to_float = namespace is FLOAT
  misread = {n: (float(m.value) if to_float else m.value) for m in mistakes for n in m.given}
  start = first_touched(chain, mistakes)
  known = dict(givens)
  known.update(misread)
  for d in chain[:start]:
    known[d.name] = floats[d.name] if to_float else d.value
  try:
    for d in chain[start:]:
      expr, inputs = d.expr, list(d.inputs)
      for m in mistakes:
        if m.step == d.name:
          expr = m.expr or expr
          if m.swap:
            inputs[m.swap[0]] = m.swap[1]
      known[d.name] = evaluate(expr, [known[n] for n in inputs], namespace)
  except (ValueError, ZeroDivisionError, OverflowError, TypeError, KeyError, IndexError):
    return None
  return known


def first_touched(chain: list, mistakes: tuple) -> int:
  """The index of the first step a mistake changes (its formula or input, or a misread given
  it uses); len(chain) when none."""
  steps = {m.step for m in mistakes if m.step is not None}
  misread = {n for m in mistakes for n in m.given}
  return next((i for i, d in enumerate(chain)
               if d.name in steps or any(n in misread for n in d.inputs)), len(chain))


def singles(chain: list, givens: dict, kind_of, misreads: list, rng, floats: dict) -> list:
  """Candidate single mistakes: formula slips, similar-quantity swaps (a quantity of the same
  kind with another value), misread givens. `floats`: every known value as a float."""
  out = []
  known = dict(givens)
  for d in chain:
    out += [Mistake(d.name, why, step=d.name, expr=e) for e, why in d.slips]
    for j, n in enumerate(d.inputs):
      kind = kind_of(n)
      if kind is None:
        continue
      others = [m for m in known if m not in d.inputs and kind_of(m) == kind
                and _differs(floats.get(m), floats.get(n))]
      for m in _sample(others, 2, rng):
        out.append(Mistake(f"{d.name}#{j}", f"used {m} instead of {n} in {d.name}",
                           step=d.name, swap=(j, m)))
    known[d.name] = d.value
  support = {n for d in chain for n in d.inputs}
  out += [Mistake(f"given {names[0]}", why, given=names, value=v)  # the names one misread changes
          for names, v, why in misreads if support.intersection(names)]
  return out


def _differs(fa, fb) -> bool:
  return fa is not None and fb is not None and abs(fa - fb) > 1e-9 * max(1.0, abs(fb))


def _sample(items: list, k: int, rng) -> list:
  if len(items) <= k:
    return list(items)
  return [items[i] for i in sorted(rng.choice(len(items), k, replace=False))]


def _plausible(v, answer: float, signed: bool = False) -> bool:
  """A real, finite wrong value, positive when the quantity is (a length, an area), not a fixed
  multiple of the answer."""
  if v is None or isinstance(v, complex) or not math.isfinite(v):
    return False
  if abs(v - answer) <= 1e-9 * max(1.0, abs(answer)) or (not signed and answer > 0 >= v):
    return False
  if answer == 0:
    return True
  ratio = v / answer
  return 1 / 30 <= abs(ratio) <= 30 and not any(abs(ratio - r) < 1e-9 for r in FIXED_RATIOS)


def as_real(v):
  """The real float of an exact value; None for complex values and expressions in x."""
  try:
    f = as_complex(v)
  except (TypeError, ValueError):
    return None
  return f.real if abs(f.imag) < 1e-12 else None


@dataclasses.dataclass
class Option:
  value: float        # for ranking and distinctness
  mistakes: tuple
  exact: object = None  # the exact value, when it was computed exactly


def candidates(chain, givens, target, answer: float, ms: list, exact: bool,
               signed: bool = False, floats: dict | None = None) -> tuple:
  """(singles, squares, pairs): options one mistake away, (A, B, A and B) triples, and every
  plausible option two mistakes away (two together can be plausible when one alone is a fixed
  multiple of the answer)."""
  ns = EXACT if exact else FLOAT
  base = givens if exact else {k: v for k, v in floats.items() if k in givens}
  every = []
  for m in ms:
    x = replay(chain, base, target, (m,), ns, floats)
    if as_real(x) is not None:
      every.append(Option(as_real(x), (m,), x if exact else None))
  one = [o for o in every if _plausible(o.value, answer, signed)]
  squares, pairs = [], []
  combos = list(itertools.combinations(every, 2))
  if exact and len(combos) > MAX_EXACT_PAIRS:  # symbolic replays are dear: a sample of pairs
    combos = [combos[i] for i in np.random.default_rng(len(combos)).permutation(len(combos))
              [:MAX_EXACT_PAIRS]]
  for a, b in combos:
    if a.mistakes[0].site == b.mistakes[0].site or close(a.value, b.value):
      continue
    x = replay(chain, base, target, a.mistakes + b.mistakes, ns, floats)
    v = as_real(x)
    if not _plausible(v, answer, signed) or close(v, a.value) or close(v, b.value):
      continue
    pairs.append(Option(v, a.mistakes + b.mistakes, x if exact else None))
    if a in one and b in one:
      squares.append((a, b, pairs[-1]))
  return one, squares, pairs


def close(a: float, b: float) -> bool:
  """Within 0.5%: two options so near are one option to a reader."""
  return abs(a - b) <= 5e-3 * max(1.0, abs(a), abs(b))


def _rank(answer: float, opts) -> int:
  return sum(o.value < answer for o in opts)


class Texts:
  """Each option's exact value and its text, computed once, only for options considered."""

  def __init__(self, chain, givens, target, answer):
    self.args = (chain, givens, target)
    self.answer = human(written(answer))

  def __call__(self, o: Option) -> str | None:
    """The option's text; None for one nobody would write as an answer (nested roots, or much
    longer than the answer: a long option stands out)."""
    if not hasattr(o, "text"):
      v = o.exact if o.exact is not None else replay(*self.args, o.mistakes)
      ok = v is not None and getattr(v, "is_real", False)
      if ok:
        v = written(v)
      text = human(v) if ok else None
      if text is not None and not plain_beside(text, self.answer):
        text = None
      o.exact, o.text = (v if text else None), text
    return o.text


def plain_beside(text: str, answer: str) -> bool:
  """Whether a wrong value's text is one somebody would write beside this answer: no nested
  roots or powers of powers, and not much longer (a long option stands out, and a rationale
  ending on `(ln(2) + 2·ln(3))/ln(2)` is no student's)."""
  return not (re.search(r"√\([^)]*√|\^", text)
              or len(text) > max(2 * len(answer), len(answer) + 8))


def _length_gap(answer: str, texts: list, want: int) -> int:
  """How far the answer stands from position `want` when the options are sorted by length
  (ties let it stand anywhere among its equals); 0 means it can stand there."""
  shorter = sum(len(t) < len(answer) for t in texts)
  longer = sum(len(t) > len(answer) for t in texts)
  return max(0, shorter - want, want - (N_OPTIONS - 1 - longer))


def _sets(one: list, squares: list, pairs: list, rng) -> list:
  """Candidate option sets: (a sample of) the squares first, then three distinct options of
  which one is at least as central as the answer (see `_answer_is_hub`)."""
  sq = [list(squares[i]) for i in rng.permutation(len(squares))[:15]]
  pool = _distinct(one[:POOL_SINGLES] + pairs + one[POOL_SINGLES:])[:POOL]
  triples = np.array(list(itertools.combinations(range(len(pool)), N_OPTIONS - 1)), int)
  triples = triples.reshape(-1, N_OPTIONS - 1)
  combos = [[pool[i] for i in c] for c in triples[~_answer_is_hub(_apart(pool), triples)]]
  return sq + [combos[i] for i in rng.permutation(len(combos))]


def _apart(opts: list) -> np.ndarray:
  """How many mistakes apart two options are (the symmetric difference of their mistakes;
  index 0 is the answer, with none), -1 for two options of nearly the same value."""
  sets = [frozenset()] + [frozenset(o.mistakes) for o in opts]
  d = np.array([[len(a ^ b) for b in sets] for a in sets], int)
  for i, j in itertools.combinations(range(1, len(sets)), 2):
    if close(opts[i - 1].value, opts[j - 1].value):
      d[i, j] = d[j, i] = -1
  return d


def _answer_is_hub(apart: np.ndarray, wrong: np.ndarray) -> np.ndarray:
  """For each set of wrong options (rows of `wrong`: their indices in `apart` less one, 0
  being the answer), whether the answer is fewer mistakes away from the other options, in all,
  than any wrong option is (or two of them are nearly equal: the set is no use either).

  Three single mistakes around the answer make it the centre the others were made from, and a
  rule picking the option most like the others finds it (plane problems' `most_similar` scored
  33% on such sets). A square, or a set like (A, A with B, A with C), has no such centre, or a
  wrong one. All the pool's ~200 sets at once: one at a time cost ~1 ms a problem."""
  at = np.concatenate([np.zeros((len(wrong), 1), int), wrong + 1], axis=1)
  sub = apart[at[:, :, None], at[:, None, :]]          # (sets, 4, 4)
  total = sub.sum(2)
  return (sub < 0).any((1, 2)) | (total[:, 0] < total[:, 1:].min(1))


def pick(answer: float, one: list, squares: list, pairs: list, rng, texts: Texts) -> list | None:
  """Three wrong options, the answer at a drawn place by length and a drawn rank by value: the
  first set (squares first) that puts it there. None when no set does, or when every set makes
  the answer the shortest (or every one the longest): options whose sizes or lengths point at
  the answer (the one plain number among long expressions, the smallest of values that mistakes
  only ever inflate) would give it away, so the problem is asked free-form.

  The length place is uniform over the places some set can give (tried in a random order); the
  value rank is drawn PICK_TRIES times at each place, and a place where no draw fits is passed
  over. The old rule drew both again until a set fitted, which ended on the places the candidates
  could give: on function problems the answer (the tidiest value) was the shortest option in 35%
  (docs/engine/README.md)."""
  sets = _sets(one, squares, pairs, rng)

  def at(place: int, want: int | None = None):
    for c in sets:
      if want is not None and _rank(answer, c) != want:
        continue
      tx = [texts(o) for o in c]
      if None in tx or texts.answer in tx or len(set(tx)) < len(tx):
        continue
      if _length_gap(texts.answer, tx, place) == 0:
        return c
    return None

  places = [int(p) for p in rng.permutation(N_OPTIONS)]
  for k, place in enumerate(places):
    wants = dict.fromkeys(int(rng.integers(N_OPTIONS)) for _ in range(PICK_TRIES))  # a repeat
    c = next((c for want in wants if (c := at(place, want))), None)  # would scan the same sets
    if c is None:
      continue
    if place in (0, N_OPTIONS - 1) and not any(at(p) for p in places[k + 1:]):
      return None  # the only place on offer is an end: length alone would pick the answer
    return c
  return None


def _distinct(opts: list) -> list:
  out = []
  for o in opts:
    if not any(close(o.value, p.value) for p in out):
      out.append(o)
  return out


def floats_of(chain: list, givens: dict) -> dict:
  """Every given's and step's value as a real float (complex ones and expressions left out):
  what `singles` compares and `candidates` replays in."""
  return {k: f for k, v in list(givens.items()) + [(d.name, d.value) for d in chain]
          if (f := as_real(v)) is not None}


def distractors(chain, givens, target, answer, kind_of, misreads, rng,
                exact: bool = False, signed: bool = False) -> list | None:
  """Wrong options for a numeric answer: [(exact value, [why, ...], mistakes), ...] or None
  (too few)."""
  ans = as_real(answer)
  if ans is None:
    return None
  floats = floats_of(chain, givens)
  ms = _sample(singles(chain, givens, kind_of, misreads, rng, floats),
               MAX_EXACT_SINGLES if exact else MAX_SINGLES, rng)
  one, squares, pairs = candidates(chain, givens, target, ans, ms, exact, signed, floats)
  texts = Texts(chain, givens, target, answer)
  chosen = pick(ans, one, squares, pairs, rng, texts)
  if not chosen:
    return None
  out, seen = [], {texts.answer}
  for o in chosen:
    text = texts(o)
    if text is None or text in seen:
      continue
    seen.add(text)
    out.append((o.exact, [m.why for m in o.mistakes], o.mistakes))
  return out if len(out) >= 2 else None
