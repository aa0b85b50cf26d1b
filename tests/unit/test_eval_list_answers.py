"""MathVista list answers (answer_type "list", gold such as "[2014, 2016]"): `calculate_score.py`
compares `str(extraction)` with the gold text, and GPT's extraction writes the numbers the
response gives as its answer as a Python list (its demonstration: "... between 2007 and 2008."
-> [2007, 2008]), however the response writes them."""

import pytest

from mathvlm.eval import mathvista as mv


def _list_problem(answer):
  raw = {"pid": "1", "question": "Between which two years does the line peak?",
         "question_type": "free_form", "answer_type": "list", "choices": None,
         "precision": None, "answer": answer, "unit": None}
  return mv.load_record(raw)


@pytest.mark.parametrize("response,expected", [
    ("\\boxed{2014, 2016}", "[2014, 2016]"),
    ("The answer is 2014, 2016.", "[2014, 2016]"),
    ("The answer is 2014 and 2016.", "[2014, 2016]"),
    ("Answer: 2014-2016", "[2014, 2016]"),
    ("The years are from 2014 to 2016.", "[2014, 2016]"),
    ("The line rises after 2010.\nTherefore, the peak is between 2014 and 2016.", "[2014, 2016]"),
    ("The answer is [2014, 2016].", "[2014, 2016]"),
    ("The chain code is [1, 7, 6].\nSo the answer is 1, 2, 3.", "[1, 2, 3]"),  # the answer's
    ("The answer is 1.5, 2.25 and -3.", "[1.5, 2.25, -3]"),
    ("The answer is 1,000, 2,500.", "[1000, 2500]"),     # thousands separators, then the list's
])
def test_numbers_given_together_are_the_list(response, expected):
  p = _list_problem(expected)
  extraction = mv.extract(response, p)
  assert extraction == expected
  assert mv.judge(p, extraction) == (expected, True)


@pytest.mark.parametrize("response", ["The peak is 20%.", "I cannot see the graph."])
def test_no_numbers_given_together_is_no_list(response):
  assert mv.extract(response, _list_problem("[2014, 2016]")) in ("", response)
