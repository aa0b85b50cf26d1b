"""Distractors from wrong reasoning: every wrong option is the chain worked with one or two
mistakes inside it (a wrong formula, the wrong one of two similar quantities, a misread given),
computed exactly like the answer, distinct, and never a fixed multiple of the answer."""

import numpy as np
import pytest
import sympy as sp

from data_prep.engine import mistakes as M
from data_prep.engine import writer
from data_prep.engine.exact import Deriv, fill
from data_prep.engine.notation import human, written
from data_prep.engine.problems import Rejected
from mathvlm.eval import choices_only as CO
from mathvlm.eval.answers import value_of


@pytest.fixture
def mistakes_only(monkeypatch):
  """The engine with options from wrong reasoning only (`--wrong_options figure+mistakes` on
  figures without an option set of their quantities): what these tests are about."""
  monkeypatch.setattr(writer, "option_set", lambda *a, **k: None)
  return lambda **kw: writer.Options(mc=1.0, degrade=0.0, wrong_options="figure+mistakes", **kw)


def _rectangle_chain():
  """AB = 5, BC = 3, ∠ = 60°: a parallelogram's area from its sides and angle, then doubled."""
  givens = {"AB": sp.Integer(5), "BC": sp.Integer(3), "∠B": sp.Integer(60)}
  chain = [Deriv("S", "{0} · {1} · sin({2})", "q0*q1*sin(q2*pi/180)", ("AB", "BC", "∠B"), None,
                 "area", slips=(("q0*q1", "forgot the sine"),
                                ("q0*q1*cos(q2*pi/180)", "cos for sin"))),
           Deriv("T", "{0} + {1}", "q0 + q1", ("S", "AB"), None, "add",
                 slips=(("q0 - q1", "subtracted"),))]
  fill(chain, givens)
  return chain, givens


def test_each_option_is_the_chain_replayed_with_its_mistakes():
  chain, givens = _rectangle_chain()
  kind = lambda n: "length" if n in ("AB", "BC") else None  # noqa: E731
  misreads = [(("∠B",), sp.Integer(30), "read ∠B as its complement")]
  found = M.distractors(chain, givens, "T", chain[-1].value, kind, misreads,
                        np.random.default_rng(1))
  assert found and len(found) == 3
  answer = float(chain[-1].value)
  for value, whys, ms in found:
    assert 1 <= len(ms) <= 2 and len(whys) == len(ms)
    assert sp.simplify(M.replay(chain, givens, "T", ms) - value) == 0
    assert M._plausible(float(value), answer)
  assert len({sp.nsimplify(v) for v, _, _ in found}) == 3


def test_options_are_no_fixed_multiple_of_the_answer_and_are_distinct(mistakes_only):
  opts = mistakes_only(seed=41)
  mc = 0
  for i in range(45):
    try:
      r = writer.make_problem(opts, i)[0]["record"]
    except Rejected:
      continue
    if not r["choices"]:
      continue
    mc += 1
    assert len(set(r["choices"])) == 4
    vals = [value_of(c) for c in r["choices"]]
    if None in vals:  # intervals: four different ones
      continue
    a = vals[r["answer_index"]].real
    for k, v in enumerate(vals):
      assert k == r["answer_index"] or a == 0 or not any(
          abs(v.real / a - f) < 1e-6 for f in M.FIXED_RATIOS), (r["id"], r["choices"])
  assert mc >= 25


def test_answer_and_options_are_written_the_same_way(mistakes_only):
  """An option's text follows from its value alone, by the same rule for the answer and the
  wrong options: a bracketed answer among expanded options ((24 - 8√3)/π against 8√3/π + 24/π)
  would give itself away."""
  opts = mistakes_only(seed=43, domain="function")
  checked = grouped = 0
  for i in range(40):
    try:
      r = writer.make_problem(opts, i)[0]["record"]
    except Rejected:
      continue
    for text, expr in zip(r["choices"], r["choices_expr"]):
      if text.startswith("(") and "," in text:  # intervals are written by their own rule
        continue
      assert text == human(written(sp.sympify(expr))), (r["id"], r["choices"])
      checked += 1
      grouped += "(" in text and "ln" not in text and "log" not in text
  assert checked > 40 and grouped > 0  # the sample holds bracketed values


def test_written_puts_a_sum_over_its_common_symbolic_denominator_only():
  s3 = sp.sqrt(3)
  assert human(written(8 * s3 / sp.pi + 24 / sp.pi)) == "(24 + 8√3)/π"
  assert human(written((24 - 8 * s3) / sp.pi)) == "(24 - 8√3)/π"
  assert human(written(-sp.Rational(8, 3) * sp.pi + 2 * s3)) == "2√3 - 8π/3"
  assert human(written(sp.pi * (1 + s3))) == "π + π√3"
  x = sp.Symbol("x")
  assert written(1 / (x + 1) + 2) == 1 / (x + 1) + 2  # expressions in x keep their terms


class _Given:
  """Texts with the options' texts given (mistakes.Texts computes them from the chain)."""

  def __init__(self, answer: str):
    self.answer = answer

  def __call__(self, o):
    return o.text


def _options(pairs):
  """Options each two mistakes from the answer, one of them shared: any three make a set with
  no hub (see the hub test below), so only the rule under test decides."""
  shared = M.Mistake("site s", "mistake s")
  out = []
  for k, (value, text) in enumerate(pairs):
    o = M.Option(value, (shared, M.Mistake(f"site {k}", f"mistake {k}")))
    o.text = text
    out.append(o)
  return out


def test_no_options_when_length_alone_would_pick_the_answer():
  """Every wrong turn is longer than a tidy answer (or shorter than an untidy one): any set of
  them makes the answer the shortest (the longest), so the problem is asked free-form."""
  fractions = _options([(3.5, "7/2"), (1.25, "5/4"), (-0.25, "-1/4"), (2.25, "9/4"),
                        (0.4, "2/5")])
  integers = _options([(1.0, "1"), (3.0, "3"), (4.0, "4"), (5.0, "5"), (-2.0, "-2")])
  for seed in range(40):
    rng = np.random.default_rng(seed)
    assert M.pick(2.0, fractions, [], [], rng, _Given("2")) is None
    assert M.pick(2.42, integers, [], [], rng, _Given("(6√3 + 12)/(5π)")) is None
  # one wrong turn as short as the answer: now the answer can stand second by length
  some = _options([(3.0, "3")]) + fractions
  picked = [M.pick(2.0, some, [], [], np.random.default_rng(s), _Given("2")) for s in range(40)]
  assert all(picked) and any("3" in [o.text for o in c] for c in picked)


def test_function_options_do_not_make_the_answer_the_shortest(mistakes_only):
  """Function answers are tidier than the wrong turns (2 against 7/2): choosing among the
  places the options can give, and never a set where only "the shortest" is on offer, keeps
  the shortest-option rule near chance on function problems."""
  opts = mistakes_only(seed=29, domain="function")
  problems = []
  for i in range(260):  # the record's choices and answer index, before its PNGs are encoded
    r = writer.drawn_problem(opts, i)[1][0].rec
    if r["choices"]:
      problems.append((r["choices"], r["answer_index"]))
  assert len(problems) >= 90
  s = CO.scores(problems)
  assert s["shortest"] < s["chance"] + 0.06, (len(problems), s["shortest"])


def _is_hub(reasons: list) -> bool:
  """Whether the answer (None among the options' mistake lists) is fewer mistakes away from the
  others, in all, than any wrong option is."""
  sets = [frozenset(r or ()) for r in reasons]
  total = [sum(len(a ^ b) for b in sets) for a in sets]
  at = reasons.index(None)
  return total[at] < min(t for k, t in enumerate(total) if k != at)


def test_the_answer_is_not_the_hub_of_its_options(mistakes_only):
  """Three single mistakes around the answer make it the centre the options were made from
  (plane problems' most_similar rule scored 5-7 points above chance on such sets): no set is
  offered where the answer is closer to the others than every wrong option is."""
  singles = [M.Option(float(v), (M.Mistake(f"site {v}", f"mistake {v}"),)) for v in (3, 5, 7, 9)]
  pair = M.Option(11.0, singles[0].mistakes + singles[1].mistakes)
  sets = M._sets(singles, [], [pair], np.random.default_rng(0))
  assert sets and all(pair in c for c in sets)  # never three singles
  opts = mistakes_only(seed=47, domain="plane")
  found = [writer.make_problem(opts, i)[0]["scene"].get("distractors") for i in range(80)]
  found = [d for d in found if d]
  assert len(found) >= 40
  assert not [d for d in found if _is_hub(d)]


def test_hub_rule_on_all_sets_at_once_matches_the_rule_one_set_at_a_time():
  """`_answer_is_hub` judges every triple of the pool in one array pass: it must agree with the
  rule written out per set (`_is_hub`), and turn away a set holding two nearly equal options."""
  m = [M.Mistake(f"site {k}", f"mistake {k}") for k in range(4)]
  pool = [M.Option(3.0, (m[0],)), M.Option(5.0, (m[1],)), M.Option(7.0, (m[2],)),
          M.Option(11.0, (m[0], m[1])), M.Option(13.0, (m[0], m[3])),
          M.Option(13.0 + 1e-4, (m[3],))]  # nearly option 4's value
  triples = np.array([(0, 1, 2), (0, 1, 3), (0, 3, 4), (3, 4, 5), (1, 3, 4)])
  got = M._answer_is_hub(M._apart(pool), triples).tolist()
  want = [_is_hub([None] + [[x.why for x in pool[i].mistakes] for i in t]) for t in triples]
  assert want[3] is False
  want[3] = True  # options 4 and 5 are 1e-4 apart: not a usable set, whatever its shape
  assert got == want == [True, False, False, True, False]


def test_an_expression_in_x_is_not_a_number_and_says_so_before_sympy_evaluates_it(monkeypatch):
  """A function question's values are expressions in x: `as_real` must give None for them
  at once (sympy's own attempt cost ~1 ms each and its failure was never cached)."""
  from data_prep.engine import exact
  x = exact.X
  monkeypatch.setattr(sp.Expr, "evalf", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
  assert M.as_real(3 * x ** 2 - 1) is None and M.as_real(sp.sin(2 * x)) is None
  monkeypatch.undo()
  assert M.as_real(sp.sqrt(2)) == float(sp.sqrt(2))
