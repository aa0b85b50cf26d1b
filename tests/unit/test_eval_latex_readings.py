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


@pytest.mark.parametrize("text", [
    "\\boxed{3}", "$\\boxed{\\frac{3}{4}}$",   # the original has no \boxed
    "-\\!2",                                     # nor \!
    "30%", "$30 \\%$", "\\frac{1}{2}\\%",        # nor % other than right after a number
    "\u22122", "5\u22121",                       # nor the minus sign U+2212
])
def test_what_the_original_cannot_read_is_no_number(text):
  """latex2sympy2_extended reads these; the original latex2sympy2 raises, so MATH-Vision's
  official is_equal never credits an answer through them."""
  with pytest.raises(latex.NotANumber):
    latex.to_number(text)


@pytest.mark.parametrize("text,value", [("30\\%", 0.3), ("2.5\\%", 0.025), ("-30\\%+1", 0.7)])
def test_percent_right_after_a_number_is_read_as_the_original_does(text, value):
  assert latex.to_number(text) == pytest.approx(value)


def test_a_person_reads_what_the_original_cannot():
  assert latex.to_number("-\\!2", mixed_product=False) == -2
  assert latex.to_number("\u22122", mixed_product=False) == -2


@pytest.mark.parametrize("answer,gold", [
    ("\\frac{3}{4}", "$\\boxed{\\frac{3}{4}}$"), ("0.75", "$\\boxed{\\frac{3}{4}}$"),
    ("-2", "$-\\!2$"), ("0.3", "$30 \\%$"), ("30%", "$30 \\%$"), ("-2", "\u22122"),
])
def test_not_judged_equal_where_the_official_scorer_fails_to_read(answer, gold):
  assert not math_v.is_equal(answer, gold)


def test_judged_equal_through_a_large_power():
  assert math_v.is_equal("\\frac{1}{3}", "$\\frac{3^{1008}-1}{3^{1009}}$")


@pytest.mark.parametrize("text,value", [
    ("12.**", 12), ("2.5.**", 2.5), ("\\frac{1}{2}.**", 0.5), ("12.π", 12), ("12. 5", 12),
    ("2.5.3", 0.75),          # a dot before a digit is a decimal point: 2.5 * .3
])
def test_reading_stops_at_a_dot_that_is_no_decimal_point(text, value):
  """The original grammar stops at a `.` no digit follows, as at an unmatched `}`:
  `**The answer is 12.**` gives the model answer `12.**`, which the official scorer reads as 12
  (the fourth held-out round; the fork reads nothing, and it was judged wrong here)."""
  assert latex.to_number(text) == pytest.approx(value)
  assert math_v.is_equal(str(value), text)


def test_a_dot_ends_only_the_original_reading():
  with pytest.raises(latex.NotANumber):
    latex.to_number("12.**", mixed_product=False)


def test_a_bold_closing_sentence_is_judged_as_published():
  problem = math_v.Problem(pid="x", question="", answer="12", choices=[], images=[], query="",
                           meta={"level": 1, "subject": "s"}, raw={})
  answer = math_v.extract("So there are $2 \\times 6 = 12$ faces.\n\n**The answer is 12.**",
                          problem)
  assert (answer, math_v.judge(problem, answer)) == ("12.**", True)
