"""Wrong options' reasons say what made them, and the harder question counts each term once.

A wrong option from a misread point is the asked quantity at the misread x, worked through.
Found by an audit of the wrong options' reasons: "read x = -2 as -1" changed the run of an
average rate but kept f(-2), because f at x = -2 had been made once, under the name of another
question's point, and only the misread name was replaced. Here each misread is replayed through
the target's chain (as `--wrong_options figure+mistakes` does) and compared with the quantity
computed from f by sympy at the misread x, for values, derivatives, tangents' intercepts and
average rates, with the misread applied to the x it names wherever the target uses it.
"""

import re

import numpy as np
import sympy as sp

from data_prep.engine import function_graphs as FG
from data_prep.engine import functions, mistakes
from data_prep.engine.exact import X, fill, resolve
from data_prep.engine.notation import human
from data_prep.engine.problems import ProgramRejected, Rejected, chain_of, harder_of

VALUE = re.compile(r"(f|f')\((.+)\)$")
TANGENT = re.compile(r"y₀\((.+)\)$")
RATE = re.compile(r"rate\[(.+), (.+)\]$")


def expected(f, name: str, x_of: dict, read):
  """The quantity `name` from f, each x it is at given by `read` (the misread applied)."""
  d = sp.diff(f, X)
  at = lambda text: read(x_of[text])  # noqa: E731
  if m := VALUE.match(name):
    x = at(m.group(2))
    return (f if m.group(1) == "f" else d).subs(X, x)
  if m := TANGENT.match(name):
    x = at(m.group(1))
    return f.subs(X, x) - d.subs(X, x) * x
  if m := RATE.match(name):
    u, w = at(m.group(1)), at(m.group(2))
    return (f.subs(X, w) - f.subs(X, u)) / (w - u)
  return None


def test_a_misread_x_is_misread_everywhere_the_quantity_uses_it():
  checked = partial = 0
  for seed in range(160):
    rng = np.random.default_rng(seed)
    try:
      scene = functions.make(rng, np.random.default_rng(seed + 10_000), int(rng.integers(2, 8)))
    except (Rejected, ProgramRejected):
      continue
    if FG.F in scene.givens:
      f = scene.givens[FG.F]
    else:  # deduced from the marked points, which lie on the drawn graph (test_engine_marked_points)
      chain = resolve(FG.F, scene.givens, scene.derivs)
      fill(chain, scene.givens)
      f = chain[-1].value
    x_of = {human(v): v for n, v in scene.givens.items() if re.fullmatch(r"[pqtuw][₀-₉]*", n)}
    for t in scene.targets:
      chain = chain_of(scene, t)
      fill(chain, scene.givens)  # as solving the problem does, before its options are made
      support = {n for d in chain for n in d.inputs}
      for names, wrong, why in scene.misreads:
        if not support.intersection(names):
          continue
        right = scene.givens[names[0]]
        want = expected(f, t.name, x_of, lambda x: wrong if x == right else x)
        if want is None or want.has(sp.zoo, sp.nan):
          continue
        got = mistakes.replay(chain, scene.givens, t.name,
                              (mistakes.Mistake("m", why, given=names, value=wrong),))
        if got is None:
          continue
        checked += 1
        ok = abs(complex(sp.N(got - want))) < 1e-9
        partial += not ok
        assert ok, (seed, t.name, why, got, want)
  assert checked > 200, checked


def test_a_slip_in_a_piecewise_integral_names_its_piece():
  """The same slip made in either piece of a two-piece integral gives two different wrong
  options; with one text for both, two options carried the same reason."""
  found = 0
  for seed in range(400):
    rng = np.random.default_rng(seed)
    try:
      scene = functions.make(rng, np.random.default_rng(seed), int(rng.integers(3, 7)))
    except (Rejected, ProgramRejected):
      continue
    if not {"I₁", "I₂"} <= set(scene.derivs):
      continue
    found += 1
    for a, b in (("F₁(x)", "F₂(x)"), ("I₁", "I₂")):
      texts = [{why for _, why in scene.derivs[n].slips} for n in (a, b)]
      assert texts[0] and not texts[0] & texts[1], (seed, texts)
  assert found >= 5, found


def test_the_harder_question_adds_no_quantity_twice():
  """At depth 7 and beyond both the asked quantity and the longest other can be sums of two;
  the harder question added them even when they shared a term (y₀(1) + y₀(8) + y₀(4) + y₀(1))."""
  sums = 0
  for seed in range(60):
    rng = np.random.default_rng(seed)
    try:
      scene = functions.make(rng, np.random.default_rng(seed), 8)
    except (Rejected, ProgramRejected):
      continue
    for main in scene.targets:
      if " + " not in main.name or main.answer_text is not None:
        continue
      try:
        harder = harder_of(scene, main)
      except ProgramRejected:
        continue
      terms = harder.name.split(" + ")
      sums += len(terms) > 2
      assert len(terms) == len(set(terms)), (seed, harder.name)
  assert sums > 50, sums
