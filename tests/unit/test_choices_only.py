"""Choices-only rules (mathvlm/eval/choices_only.py): each rule picks what it should, and on the
engine's problems none gets far from chance (the full figure on 1,000 problems is
`python -m benchmarks.engine`)."""

import numpy as np
import pytest

from data_prep.engine import writer
from mathvlm.eval import choices_only as CO


@pytest.mark.parametrize("rule, choices, picks", [
    ("largest", ["3", "12", "4√3", "2π"], [1]),
    ("smallest", ["3", "12", "4√3", "2π"], [0]),
    ("nearest_mean", ["1", "2", "3", "10"], [2]),
    ("nearest_median", ["1", "2", "4", "10"], [1, 2]),
    ("leading_digit", ["13", "17", "25", "1.5"], [0, 1, 3]),
    ("odd_form", ["3√2", "5√2", "7", "√8"], [2]),
    ("odd_form", ["3", "5", "7", "9"], [0, 1, 2, 3]),
    ("odd_form", ["(24 - 8√3)/π", "8√3/π + 24/π", "48/π - 32√3/π", "16√3/π - 48/π"], [0]),
    ("odd_form", ["(1 - √2, 3)", "(1 + √2, 3)", "(2 - √2, 5)", "(2 + √2, 5)"], [0, 1, 2, 3]),
    ("common_form", ["3√2", "5√2", "7", "√2/2"], [0, 1]),
    ("longest", ["12", "4√3 + 2π", "π", "7/2"], [1]),
    ("shortest", ["12", "4√3 + 2π", "π", "7/2"], [2]),
    ("slip_source", ["6", "12", "3", "9"], [0]),      # 12 = 2·6, 3 = 6/2, 9 = 1.5·6
    ("most_similar", ["12√3", "12√2", "13√3", "5"], [0]),
    ("shared_parts", ["12√3", "12√2", "6√3", "5"], [0]),
])
def test_each_rule_picks_what_it_says(rule, choices, picks):
  assert sorted(CO.RULES[rule](choices)) == picks


def test_expected_score_splits_ties_and_scores_add_chance():
  assert CO.expected("largest", ["1", "2", "2", "0"], 1) == 0.5
  assert CO.expected("largest", ["1", "2", "2", "0"], 0) == 0.0
  assert CO.expected("largest", ["(1, +∞)", "(-∞, 1)"], 0) == 0.5   # no values: all tie
  s = CO.scores([(["1", "2", "3"], 0), (["1", "2", "3", "4"], 3)])
  assert s["chance"] == pytest.approx((1 / 3 + 1 / 4) / 2) and s["largest"] == 0.5


def _slip_options(rng, n=200):
  """Options made the old engine's way (slips of the answer): the rules must catch those."""
  out = []
  for _ in range(n):
    v = float(rng.integers(3, 40))
    wrong = [f(v) for f in (lambda x: 2 * x, lambda x: x / 2, lambda x: 1.5 * x, lambda x: x + 2,
                            lambda x: x - 1, lambda x: 3 * x)]
    opts = [v] + [wrong[i] for i in rng.choice(len(wrong), 3, replace=False)]
    order = rng.permutation(4)
    out.append(([f"{opts[i]:g}" for i in order], int(np.flatnonzero(order == 0)[0])))
  return out


def test_rules_catch_slip_distractors():
  s = CO.scores(_slip_options(np.random.default_rng(0)))
  assert s["slip_source"] > s["chance"] + 0.25


def test_no_fixed_rule_reads_the_answer_off_the_engine_options():
  """The fixed rules on the engine's options (four quantities of the figure, one asked); the
  learned rules are checked in test_engine_option_sets.py, where they read 33.5-39.5% on the
  mistakes' options before (docs/engine/README.md)."""
  opts = writer.Options(seed=77, mc=1.0, degrade=0.0)
  problems = []
  for i in range(80):  # the record's choices and answer index, before its PNGs are encoded
    r = writer.drawn_problem(opts, i)[1][0].rec
    if r["choices"]:
      assert len(r["choices"]) == 4   # always four options: chance is 25%
      problems.append((r["choices"], r["answer_index"]))
  assert len(problems) >= 45
  s = CO.scores(problems)
  far = {k: round(v - s["chance"], 3) for k, v in s.items() if abs(v - s["chance"]) > 0.15}
  assert not far, far


def test_demo_baselines_report_every_rule():
  from mathvlm.demo.evaluate import baselines
  from mathvlm.eval.common import Problem
  train = [{"choices": ["1", "2", "3", "4"], "answer_index": 1, "answer": "2"},
           {"choices": [], "answer_index": None, "answer": "5"}]
  problems = [Problem(pid=f"p{k}", question="q", answer=a, choices=c, images=[], query="q",
                      meta={}, raw={}) for k, (a, c) in enumerate(
                          [("B", ["6", "12", "3", "9"]), ("A", ["6", "12", "3", "9"]),
                           ("5", [])])]
  b = baselines(train, problems)
  assert b["majority_answer"] == {"letter": "B", "value": "5"}
  # percent, as every accuracy the evaluation reports
  assert b["random"] == pytest.approx(100 * 0.5 / 3) and b["majority"] == pytest.approx(200 / 3)
  assert b["choices_only_rule"] == b["choices_only_slip_source"] == pytest.approx(100 / 3)
  assert {f"choices_only_{r}" for r in CO.RULES} <= set(b)
  assert "choices_only_learned_linear" not in b   # one multiple-choice record: nothing to learn


def test_demo_baselines_learn_from_the_training_records_and_score_the_test_problems(
    sklearn_on_one_thread):
  from mathvlm.demo.evaluate import baselines
  from mathvlm.eval.common import Problem
  rng = np.random.default_rng(2)
  second = lambda v: np.argsort(v)[-2]
  train = [{"choices": c, "answer_index": a, "answer": c[a]} for c, a in _sets(rng, 200, second)]
  asked = [Problem(pid=f"p{k}", question="q", answer=chr(65 + a), choices=c, images=[], query="q",
                   meta={}, raw={}) for k, (c, a) in enumerate(_sets(rng, 100, second))]
  free = [Problem(pid=f"f{k}", question="q", answer="5", choices=[], images=[], query="q",
                  meta={}, raw={}) for k in range(100)]
  b = baselines(train, asked + free)
  # percent of all 200 questions, as every baseline: the 100 multiple-choice ones at most 50
  assert 45 < b["choices_only_learned_trees"] <= 50
  assert b["choices_only_learned_linear"] > b["random"] + 5


def _sets(rng, n: int, answer_at) -> list:
  """n option sets of four random values; the answer is the option `answer_at(values)` names."""
  out = []
  for _ in range(n):
    vals = rng.uniform(1, 100, 4).round(1)
    out.append(([f"{v:g}" for v in vals], int(answer_at(vals))))
  return out


def test_learned_rule_finds_a_tell_no_fixed_rule_names_on_fresh_sets(sklearn_on_one_thread):
  rng = np.random.default_rng(0)
  second = lambda v: np.argsort(v)[-2]   # the answer is always the second largest
  train, fresh = _sets(rng, 300, second), _sets(rng, 300, second)
  fixed = CO.scores(fresh)
  best_fixed = max(v for k, v in fixed.items() if k != "chance")
  assert best_fixed < 0.6   # nearest_median half-finds it (it ties the two middle options)
  assert CO.Learned(train, "trees").score(fresh) > 0.9
  assert CO.Learned(train, "linear").score(fresh) > fixed["chance"] + 0.15


def test_learned_rule_stays_at_chance_when_the_options_say_nothing(sklearn_on_one_thread):
  rng = np.random.default_rng(1)
  anywhere = lambda v: rng.integers(4)   # the answer is any of four exchangeable options
  train, fresh = _sets(rng, 400, anywhere), _sets(rng, 600, anywhere)
  for kind in ("linear", "trees"):
    assert abs(CO.Learned(train, kind).score(fresh) - 0.25) < 0.06, kind


def test_learned_rule_says_what_it_needs():
  with pytest.raises(ValueError, match="too few"):
    CO.Learned([(["1", "2", "3", "4"], 0)] * 5)
  with pytest.raises(ValueError, match="one of"):
    CO.Learned([(["1", "2", "3", "4"], k % 4) for k in range(20)], "forest")
  bad = [(["1", "2", "3", "4"], k % 4) for k in range(20)] + [(["1", "2"], 2)]
  with pytest.raises(ValueError, match="problem 20 has answer index 2 for 2 options"):
    CO.Learned(bad)


def test_demo_baselines_add_the_fewest_tokens_rule_given_a_tokenizer(tmp_path):
  """What summed log-probs favour when a model knows nothing: the option written with the fewest
  target tokens (`likelihood.option_tokens`); ties split as every rule's. Without a tokenizer the
  baselines are as before."""
  from mathvlm.data.sources import load_tokenizer
  from mathvlm.demo.data import add_bos, train_tokenizer
  from mathvlm.demo.evaluate import baselines, fewest_tokens
  from mathvlm.eval.common import Problem
  tok = train_tokenizer(["The answer is 7.", "The answer is 2.", "What is x?"] * 20, 300)
  add_bos(tok)
  tok.save(str(tmp_path / "tokenizer.json"))
  tok = load_tokenizer(str(tmp_path / "tokenizer.json"))
  options = ["7", "123456789", "98765432", "5555555"]  # only "7" is one token
  problems = [Problem(pid=f"p{k}", question="q", answer=a, choices=options, images=[],
                      query="What is x?", meta={}, raw={}) for k, a in enumerate("AB")]
  problems.append(Problem(pid="f", question="q", answer="5", choices=[], images=[], query="q",
                          meta={}, raw={}))
  assert "choices_only_fewest_tokens" not in baselines([], problems)
  b = baselines([], problems, tok)
  assert b["choices_only_fewest_tokens"] == pytest.approx(100 / 3)  # right on 1 of 3 questions
  assert fewest_tokens([3, 2, 2, 5], 1) == fewest_tokens([3, 2, 2, 5], 2) == 0.5
  assert fewest_tokens([3, 2, 2, 5], 0) == 0.0
