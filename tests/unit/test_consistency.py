"""`mathvlm.eval.consistency`: answers across rephrasings agree when they are the same value,
whatever notation each is written in (the same text still agrees; empty answers never do)."""

import pytest

from mathvlm.eval import consistency


@pytest.mark.parametrize("a, b", [("8√3/3", "8*sqrt(3)/3"), ("4", "4.0"), ("2π", "2*pi"),
                                  ("3/2", "1.5"), ("B", "B"), ("(2, ∞)", "(2, oo)")])
def test_the_same_value_in_two_notations_agrees(a, b):
  r = consistency.agreement([("g", a, True), ("g", b, True)])
  assert (r["agreement"], r["pairwise"]) == (100.0, 100.0)


@pytest.mark.parametrize("a, b", [("4", "5"), ("A", "B"), ("8√3/3", "8√2/3"), ("", ""),
                                  ("4", "")])
def test_different_values_letters_and_empty_answers_disagree(a, b):
  r = consistency.agreement([("g", a, True), ("g", b, False)])
  assert (r["agreement"], r["pairwise"]) == (0.0, 0.0)


def test_a_group_agrees_only_when_every_pair_does():
  r = consistency.agreement([("g", "4", True), ("g", "4.0", True), ("g", "5", False),
                             ("h", "2π", True), ("h", "2*pi", True), ("h", "6.2832", True)])
  # g: one pair of three agrees; h: 2π = 2*pi, and 6.2832 is 2π to its four places
  assert r["groups"] == 2 and r["agreement"] == 50.0
  assert r["pairwise"] == pytest.approx(100 * 4 / 6, abs=0.01)
  assert r["consistent_correct"] == 50.0 and r["any_correct"] == 100.0
