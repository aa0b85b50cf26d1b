"""Distractors from wrong reasoning: every wrong option is the chain worked with one or two
mistakes inside it (a wrong formula, the wrong one of two similar quantities, a misread given),
computed exactly like the answer, distinct, and never a fixed multiple of the answer."""

import numpy as np
import sympy as sp

from data_prep.engine import mistakes as M
from data_prep.engine import writer
from data_prep.engine.exact import Deriv, fill
from data_prep.engine.problems import Rejected
from mathvlm.eval.answers import value_of


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
  misreads = [("∠B", sp.Integer(30), "read ∠B as its complement")]
  found = M.distractors(chain, givens, "T", chain[-1].value, kind, misreads,
                        np.random.default_rng(1))
  assert found and len(found) == 3
  answer = float(chain[-1].value)
  for value, whys, ms in found:
    assert 1 <= len(ms) <= 2 and len(whys) == len(ms)
    assert sp.simplify(M.replay(chain, givens, "T", ms) - value) == 0
    assert M._plausible(float(value), answer)
  assert len({sp.nsimplify(v) for v, _, _ in found}) == 3


def test_options_are_no_fixed_multiple_of_the_answer_and_are_distinct():
  opts = writer.Options(seed=41, mc=1.0, degrade=0.0)
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
