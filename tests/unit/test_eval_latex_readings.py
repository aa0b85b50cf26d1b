"""Where latex2sympy2_extended reads an answer differently from the original latex2sympy2 that
MATH-Vision's published counts were made with, `mathvlm.eval.latex` restores the original."""

import pytest

from mathvlm.eval import latex, math_v


@pytest.mark.parametrize("text,value", [
    ("2\\frac{1}{2}", 1.0),            # implicit multiplication, not a mixed number
    ("{3}", 3), ("\\{3\\}", 3),        # a group, not a set
    ("\\left(2\\right)", 2), ("12\\quad", 12), ("$\\displaystyle \\frac{3}{4}$", 0.75),
    ("\\frac{3\\pi}{2}}{cm", 4.71238898038469),   # reading stops at an unmatched brace
])
def test_original_readings(text, value):
  assert latex.to_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["108^{\\circ}", "45°", "{1,2}", "x\\frac{1}{2}", "\\sqrt2"])
def test_not_numbers_to_the_original(text):
  with pytest.raises(latex.NotANumber):
    latex.to_number(text)


def test_mixed_numbers_as_a_person_reads_them():
  assert latex.to_number("2\\frac{1}{2}", mixed_product=False) == 2.5


def test_judged_as_published():
  assert not math_v.is_equal("108", "$108^{\\circ}$")      # as in Qwen-VL-Max-CoT's results
  assert not math_v.is_equal("2.5", "$2 \\frac{1}{2}$")
  assert math_v.is_equal("1", "$2 \\frac{1}{2}$")
