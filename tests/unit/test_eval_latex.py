"""LaTeX arithmetic as MATH-Vision's scorer reads it (latex2sympy2_extended + the original's
readings). Changed on purpose with issue 17: `\\sqrt[3]{8}` is the float 2.0 (the official
`eval("8**(1/3)")`), and "1,000" is 1000 (the grammar's thousands separator)."""

import pytest

from mathvlm.eval import latex


@pytest.mark.parametrize("text,value", [
    ("3", 3), ("3.0", 3.0), ("-2", -2), (".5", 0.5), ("\\frac{1}{2}", 0.5),
    ("\\dfrac{\\sqrt{3}}{2}", 3 ** 0.5 / 2), ("2\\sqrt{3}", 2 * 3 ** 0.5), ("\\sqrt[3]{8}", 2.0),
    ("2^{10}", 1024), ("(1+2)\\cdot 3", 9), ("6 \\times 7", 42), ("8:5", 1.6),
    ("$\\frac{3}{4}$", 0.75), ("\\frac{3\\pi}{2}}{cm", 4.71238898038469), ("1,000", 1000),
])
def test_values(text, value):
  got = latex.to_number(text)
  assert got == pytest.approx(value)
  assert isinstance(got, int) == isinstance(value, int)


@pytest.mark.parametrize("text", ["", "5cm", "x+1", "\\frac12", "(1", "\\alpha", "108^{\\circ}"])
def test_not_numbers(text):
  with pytest.raises(latex.NotANumber):
    latex.to_number(text)


def test_size_is_measured_without_float_overflow():
  """3^{1009} has 482 digits: past a float's 1e308, not past MOST_DIGITS (MATH-V's official
  scorer reads (3^1008 - 1)/3^1009 as 0.33)."""
  assert latex.to_number("\\frac{3^{1008}-1}{3^{1009}}") == pytest.approx(1 / 3)
  assert latex.to_number("10^{400}") == 10 ** 400


@pytest.mark.parametrize("text", ["10^{10^{10}}", "10^{4001}", "(10^{-100})^{100}", "(10^{10})!"])
def test_numbers_too_long_to_write_are_refused(text):
  with pytest.raises(latex.NotANumber):
    latex.to_number(text)
