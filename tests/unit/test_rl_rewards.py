"""The built-in rewards on plain strings; weights and reward functions' values must be finite
numbers, or one NaN turns a whole group's advantages NaN."""

import numpy as np
import pytest

import rl_toys
from mathvlm.objectives import grpo
from mathvlm.rl import rewards as R
from mathvlm.rl.rewards import format_reward


@pytest.mark.parametrize("response, want", [
    ("The answer is 4.", 1.0), ("So the answer is: B", 1.0), ("the answer is\n\\frac{1}{2}", 1.0),
    ("I don't know what the answer is.", 0.0), ("Whatever the answer is, I cannot tell.", 0.0),
    ("the answer is", 0.0), ("", 0.0)])
def test_format_reward_needs_an_answer_after_the_phrase(response, want):
  assert format_reward(response, {}) == want


PROBLEM = {"id": "q1", "answer": "7", "choices": [], "group": "q1"}


@pytest.mark.parametrize("spec", ["answer=nan", "answer=1.0,format=inf", "answer=-inf",
                                  "answer=x"])
def test_a_weight_must_be_a_finite_number(spec):
  """answer=nan parsed as a weight made every reward NaN."""
  with pytest.raises(ValueError, match="the weight a finite number"):
    R.parse(spec)
  assert R.parse("answer=1, length=-0.5,format") == [("answer", 1.0), ("length", -0.5),
                                                     ("format", 1.0)]


def test_a_reward_named_twice_is_refused():
  """answer=1,answer=2 added the two weights (3) without a word."""
  with pytest.raises(ValueError, match=r"names \['answer'\] more than once"):
    R.parse("answer=1,format=0.1,answer=2")


def test_a_reward_function_that_returns_no_number_is_named_not_made_nan():
  """A function's None became a NaN reward, and the group's advantages NaN: the run then stopped
  on a non-finite loss that advised a lower learning rate."""
  spec = "answer=1.0,rl_toys:judged_digits=0.5"
  total, _ = R.score(["The answer is 7.", "7", "3"], [PROBLEM] * 3, np.ones(3), spec, 8)
  np.testing.assert_allclose(total, [1.0, 1.5, 0.0])  # right; right and starting with 7; wrong
  assert np.isfinite(grpo.group_advantages(total, 3)).all()
  with pytest.raises(ValueError, match=r"rl_toys:judged_digits returned None for an answer to "
                                       r"problem 'q1' \('I do not know'\)"):
    R.score(["7", "I do not know", "3"], [PROBLEM] * 3, np.ones(3), spec, 8)


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), "1", [1.0]])
def test_only_finite_numbers_are_rewards(value, monkeypatch):
  monkeypatch.setattr(rl_toys, "judged_digits", lambda response, problem: value)
  with pytest.raises(ValueError, match="returns a finite number"):
    R.score(["7"], [PROBLEM], np.ones(1), "rl_toys:judged_digits=1", 8)
  for number in (True, 2, np.float32(0.5), np.int64(1)):
    monkeypatch.setattr(rl_toys, "judged_digits", lambda response, problem, n=number: n)
    R.score(["7"], [PROBLEM], np.ones(1), "rl_toys:judged_digits=1", 8)


def test_check_imports_the_functions_a_spec_names():
  R.check("answer=1.0,length=0.1,consistency=0.5,rl_toys:judged_digits=0.5")
  for spec, message in [("answr=1", "unknown reward 'answr'"),
                        ("rl_toys:no_such_reward=1", "'rl_toys:no_such_reward' names nothing"),
                        ("no_such_module:fn=1", "'no_such_module:fn' names nothing")]:
    with pytest.raises(ValueError, match=message):
      R.check(spec)


@pytest.mark.parametrize("response, answer, exact", [
    ("The answer is 0.7.", 1.0, 0.0), ("The answer is 0.67.", 1.0, 0.0),
    ("The answer is 2/3.", 1.0, 1.0), ("The answer is 4/6.", 1.0, 1.0),
    ("The answer is 0.6666666667.", 1.0, 1.0), ("The answer is 0.6.", 0.0, 0.0)])
def test_exact_answer_refuses_a_rounded_decimal_the_default_accepts(response, answer, exact):
  """`answer` is the evaluation's rule (a decimal right when it is the gold rounded to its
  places: 0.7 for 2/3); `exact_answer` pays only the gold's value, to float precision."""
  problem = {"id": "q", "answer": "2/3", "choices": [], "group": "q"}
  assert R.answer_reward(response, problem) == answer
  assert R.exact_answer_reward(response, problem) == exact


def test_exact_answer_is_chosen_by_config_and_leaves_the_default_alone():
  """By name in grpo.rewards, as the others; the default spec does not name it, and the
  multiple-choice letter is judged as by `answer`."""
  assert "exact_answer" not in grpo.DEFAULTS["rewards"]
  problems = [{"id": "q", "answer": "8*sqrt(3)/3", "choices": [], "group": "q"},
              {"id": "m", "answer": "B", "choices": ["3", "4"], "group": "m"}]
  responses = ["The answer is 4.62.", "The answer is B."]
  total, parts = R.score(responses, problems, np.array([5, 5]), "exact_answer=1.0", 16)
  assert list(total) == [0.0, 1.0] and list(parts["correct"]) == [1.0, 1.0]


@pytest.mark.parametrize("response, finished, right", [
    ("First, the side is 12. Then we", True, True),  # ended: the evaluation's reading, kept
    ("First, the side is 12. Then we", False, False),  # cut mid-reasoning: states no answer
    ("The side is 12, so the answer is 12", False, True),  # cut after stating its answer
    ("The area is \\boxed{12}", False, True),
    ("$12$", False, True)])  # nothing but its answer (a one-token answer "7" is cut by design)
def test_a_cut_answer_is_right_only_where_it_states_its_answer(response, finished, right):
  """The judge reads a response without "the answer is" or \\boxed{} by the value its last
  stating sentence ends on: in an answer cut at max_new_tokens that sentence is mid-reasoning,
  and an intermediate value equal to the gold was paid (math-verify, anchored as TRL's and
  open-r1's accuracy rewards call it, pays nothing). Functions by import path see the response
  as sampled."""
  problems = [{"answer": "12", "choices": [], "group": "g", "id": "p"}]
  total, parts = R.score([response], problems, np.array([8]),
                         "answer=1.0,exact_answer=0.5,rl_toys:digit_share=0.25", 8,
                         finished=np.array([finished]))
  assert parts["correct"][0] == parts["answer"][0] == parts["exact_answer"][0] == float(right)
  assert parts["rl_toys:digit_share"][0] == rl_toys.digit_share(response, problems[0]) > 0
  np.testing.assert_allclose(total[0], 1.5 * right + 0.25 * parts["rl_toys:digit_share"][0])
  with pytest.raises(ValueError, match="2 finished flags for 1 responses"):
    R.score([response], problems, np.array([8]), "answer=1.0", 8, finished=np.array([1, 1]))


def test_overlong_follows_dapos_soft_punishment_at_its_boundaries():
  """DAPO's eq. 13 with L_max = max_new_tokens = 8 and L_cache = 4, by hand: 0 up to and at the
  buffer's start (4 tokens), ((8 - 4) - |y|) / 4 inside it, -1 at max_new_tokens and beyond; a
  buffer of all 8 tokens charges from the first one. Weighted into the total like any reward,
  beside `length`, which keeps its own formula."""
  lengths = np.array([1, 3, 4, 5, 6, 7, 8, 9])
  np.testing.assert_allclose(R.overlong(lengths, 8, 4),
                             [0, 0, 0, -0.25, -0.5, -0.75, -1.0, -1.0])
  np.testing.assert_allclose(R.overlong(lengths[:3], 8, 8), [-0.125, -0.375, -0.5])
  n = len(lengths)
  total, parts = R.score(["The answer is 7."] * n, [PROBLEM] * n, lengths,
                         "answer=1.0,overlong=0.5,length=1.0", 8, length_target=6,
                         overlong_buffer=4)
  np.testing.assert_allclose(parts["overlong"], R.overlong(lengths, 8, 4))
  np.testing.assert_allclose(parts["length"], [0, 0, 0, 0, 0, -0.125, -0.25, -0.375])
  np.testing.assert_allclose(total, 1.0 + 0.5 * parts["overlong"] + parts["length"])
  R.check("answer=1.0,overlong=1.0")  # built in: nothing to import
  for buffer in (0, 9):
    with pytest.raises(ValueError, match=rf"grpo.overlong_buffer={buffer}: .*\(0, "
                                         r"max_new_tokens=8\]"):
      R.overlong(lengths, 8, buffer)
