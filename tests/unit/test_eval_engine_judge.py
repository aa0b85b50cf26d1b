"""The engine's value judge (the engine evaluation, the GRPO reward, the DPO pair builder) on the
shapes real models answer in: LaTeX, an "Answer:" line, a boxed value, or a sentence that ends on
the value with no answer phrase at all."""

import math
import os
import subprocess
import sys

import pytest

from mathvlm.eval.answers import engine_answer, engine_correct, same_value, value_of


@pytest.mark.parametrize("latex, value", [
    (r"\frac{8\sqrt{3}}{3}", 8 * 3 ** 0.5 / 3), (r"\dfrac{8\sqrt3}{3}", 8 * 3 ** 0.5 / 3),
    (r"$2\pi$", 2 * math.pi), (r"\(\frac{3}{2}\)", 1.5), (r"\boxed{\log_2 8}", 3.0),
    (r"\sin^2(\pi/6)", 0.25), (r"\sin^{2}\left(\frac{\pi}{6}\right)", 0.25),
    (r"\sqrt[3]{8}", 2.0), (r"-\frac{5}{9}", -5 / 9), (r"x = \frac12", 0.5),
    (r"12\text{ cm}", 12.0), (r"\frac{9 - 9\sqrt{3}}{2\pi}", (9 - 9 * 3 ** 0.5) / (2 * math.pi))])
def test_the_judge_reads_latex(latex, value):
  """A model trained on math writes LaTeX: the value judge (the GRPO reward, the DPO pair
  builder, the engine evaluation) reads it as it reads `8√3/3`."""
  assert abs(value_of(latex) - value) < 1e-9, (latex, value_of(latex))


def test_a_latex_answer_is_judged_by_its_value():
  right = "Step 1: ... so the answer is $\\frac{8\\sqrt{3}}{3}$."
  boxed = "Therefore the final answer is \\boxed{\\frac{8\\sqrt{3}}{3}}"
  for response in (right, boxed):
    got = engine_answer(response, [])
    assert engine_correct(got, "8√3/3", []) and not engine_correct(got, "8√2/3", []), got
  assert engine_answer("The answer is $\\frac{14}{3}$.", ["5", "14/3", "7", "2"]) == "B"
  assert same_value(r"(2, \infty)", "(2, +∞)") and not same_value(r"(3, \infty)", "(2, +∞)")
  assert value_of(r"\frac{1}{") is None and value_of(r"$x^2$") is None  # no number: None


@pytest.mark.parametrize("response, gold", [
    ("Therefore, the area is $\\frac{8\\sqrt{3}}{3}$.", "8√3/3"),
    ("So the area of the triangle is 8√3/3 square units.", "8√3/3"),
    ("Thus $S = 12\\pi$.", "12π"),
    ("Answer: 4√3", "4√3"), ("**Answer:** $4\\sqrt{3}$", "4√3"),
    ("The length is $\\sqrt{37} \\approx 6.08$.", "√37"),
    ("The function is increasing on $(2, \\infty)$.", "(2, +∞)"),
    ("S = 1/2 · 4 · 6 = 12. I hope this helps!", "12"),
    ("The y-intercept is (3 - 20·ln(2))/(4·ln(2)) ≈ -3.92.", "(3 - 20·ln(2))/(4·ln(2))"),
    ("The perimeter equals 32 + 2√37 cm.", "32 + 2√37"),
    ("\\[ S = \\frac{1}{2} \\cdot 4 \\cdot 6 = 12 \\]", "12"),
    ("Step 1: AB = 5.\nStep 2: The area is 25.", "25"),
    ("The answer is 8√3/3 (≈ 4.62).", "8√3/3")])                      # as trained: unchanged
def test_a_free_form_answer_is_read_from_the_sentence_that_states_it(response, gold):
  """Without "the answer is", the value is the one the last stating sentence ends on (not the
  last number: "8√3/3" was read as 3, "$S = 12\\pi$" as 12, "Answer: 4√3" not at all)."""
  got = engine_answer(response, [])
  assert engine_correct(got, gold, []), got
  assert not engine_correct(got, "7√5", [])


def test_a_response_that_states_no_value_answers_nothing():
  assert engine_answer("I cannot tell from the figure.", []) == ""


@pytest.mark.parametrize("response", ["Answer: 14/3", "The area is 4.67.",
                                      "So $S = \\frac{14}{3}$."])
def test_multiple_choice_takes_the_option_of_the_stated_value(response):
  assert engine_answer(response, ["5", "14/3", "7", "2"]) == "B"


def test_an_astronomically_large_answer_is_no_value_and_does_not_hang_the_judge():
  """A sampled GRPO answer "10^10^10" had sympy (and the LaTeX scorers' `eval`) write out a
  number of ten billion digits, and they never returned; powers and factorials are now measured
  before they are evaluated. Run in a process of its own so that a hang fails the test instead
  of the suite."""
  code = ("from mathvlm.eval.answers import value_of, parse_math, latex_number; "
          "from mathvlm.rl.rewards import answer_reward; "
          "print([value_of(t) for t in ('10^10^10', '(10^10)!', '2**3**20', '9^9^4')], "
          "answer_reward('The answer is 10^10^10.', {'choices': [], 'answer': '8'}), "
          "latex_number('$10^{10^{10}}$'), "  # the MathVista and MATH-Vision scorers' reading
          "value_of('2^10'), value_of('5!'), latex_number('$2^{10}$'), "
          "parse_math('x^(10^10)') is not None)")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
  assert done.stdout.split() == ["[None,", "None,", "None,", "None]", "0.0", "None", "(1024+0j)",
                                 "(120+0j)", "1024", "True"], done.stdout + done.stderr


SEMICIRCLE = ["9π/2", "81π/8", "16π", "32"]


@pytest.mark.parametrize("response, choices, letter", [
    # a sentence that opens with "A" is prose, not option A, when an answer phrase follows
    ("A semicircle of radius 9/2 has area 81π/8.\nThe answer is 81π/8.", SEMICIRCLE, "B"),
    ("A = 81π/8", SEMICIRCLE, "B"),
    # a stated value is compared as a value: 6.5 is the option 13/2, not the option 6
    ("The answer is 6.5.", ["5/2", "15/2", "6", "13/2"], "D"),
    # a value no option has answers none, though an option's text sits inside it
    ("The answer is 9√2/3.", ["9√2/2", "9", "3/2", "9√2"], ""),
    ("The answer is 11√3/4.", ["22", "11", "11√3/2", "11√3"], ""),
    # letters still count where they are written as letters
    ("B", SEMICIRCLE, "B"),
    ("(C) 16π\nIt is the area of the square.", SEMICIRCLE, "C"),
    ("The answer is A.", SEMICIRCLE, "A"),
    ("C is correct.", SEMICIRCLE, "C"),   # a letter that opens its own verdict, as in MathVerse
    ("B is the answer.", SEMICIRCLE, "B"),
])
def test_multiple_choice_is_not_misread_from_prose_or_part_of_a_value(response, choices, letter):
  assert engine_answer(response, choices) == letter


@pytest.mark.parametrize("response, gold, right", [
    # a decimal is right when it is the gold rounded to its places
    ("The answer is 4.67.", "14/3", True), ("The answer is 1.73.", "√3", True),
    ("The answer is 457.26.", "264√3", True), ("The answer is 457.3.", "264√3", True),
    # an integer, or a decimal off by more than its last place, is not near enough
    ("The answer is 456.", "264√3", False), ("The answer is 457.", "264√3", False),
    ("The answer is 382.", "507 - 143√3/2", False), ("The answer is 30.1.", "30", False),
    ("The answer is 0.004.", "0", False), ("The answer is 4.6.", "14/3", False),
    # exact forms still equal exactly
    ("The answer is 8√3/3.", "8*sqrt(3)/3", True),
])
def test_a_free_form_value_is_right_only_to_the_places_it_is_written_to(response, gold, right):
  assert engine_correct(engine_answer(response, []), gold, []) is right


@pytest.mark.parametrize("response, gold", [
    ("The answer is x = -5.", "-5"), ("The answer is 15 square units.", "15"),
    ("The answer is 1,000.", "1000"), ("The answer is 8√3/3 cm².", "8√3/3"),
])
def test_an_answer_phrase_is_read_as_a_value_past_its_variable_and_unit(response, gold):
  assert engine_correct(engine_answer(response, []), gold, [])


def test_an_answer_phrase_that_is_an_expression_in_x_stays_as_written():
  assert engine_answer("The answer is y = 2x + 1.", []) == "y = 2x + 1"


@pytest.mark.parametrize("response, gold, choices, right", [
    # the last "answer is" on a line is the answer (the greedy tail made the first the only one)
    ("The answer is 5. Wait, that is wrong; the answer is 4√3.", "4√3", [], True),
    ("The answer is 4√3. Wait, that is wrong; the answer is 5.", "4√3", [], False),
    ("The answer is C. Wait, no: the answer is B.", "B", ["1", "2", "3", "4"], True),
    ("The answer is B. Wait, no: the answer is C.", "B", ["1", "2", "3", "4"], False),
    # two answers given as one are none (GRPO rewarded a hedge that held the right value)
    ("The answer is 4√3 or 5.", "4√3", [], False),
    ("The answer is 4√3 and -4√3.", "4√3", [], False),
    ("The answer is B or C.", "B", ["1", "2", "3", "4"], False),
    ("The answer is 2 or 3.", "B", ["1", "2", "3", "4"], False),
    # ... while one answer with words after it still reads
    ("The answer is 15 square units.", "15", [], True),
    ("The answer is B: 2.", "B", ["1", "2", "3", "4"], True),
])
def test_a_later_answer_on_the_line_wins_and_a_hedge_is_no_answer(response, gold, choices, right):
  assert engine_correct(engine_answer(response, choices), gold, choices) is right


@pytest.mark.parametrize("response, gold, choices, right", [
    ("The answer is approximately 6.93.", "4√3", [], True),
    ("The answer is ≈ 6.93.", "4√3", [], True),
    ("The answer is 6.93 (approximately).", "4√3", [], True),
    ("The answer is about 7.5.", "4√3", [], False),  # still judged by the value it says
    ("The answer is approximately 6.93.", "B", ["4", "4√3", "5", "6"], True),
])
def test_a_value_said_to_be_approximate_is_read(response, gold, choices, right):
  """"approximately" before the value left no value to judge: a right decimal scored 0."""
  assert engine_correct(engine_answer(response, choices), gold, choices) is right


def _payload(path) -> str:
  """Python that writes `path`, spelt without quotes, dots or dunder names (chr and eval)."""
  code = f"open({str(path)!r}, 'w')"
  return "eval(" + "+".join(f"chr({ord(ch)})" for ch in code) + ")"


def test_a_response_is_never_run_as_python(tmp_path):
  """sympy's reader evaluates its text as Python, with every builtin in reach when it is given
  no namespace; the text is a model's (a sampled GRPO answer, a reply in an evaluation file).
  Both used to write the file."""
  for k, reply in enumerate([_payload(tmp_path / "bare"),
                             f"The answer is {_payload(tmp_path / 'phrased')}."]):
    assert not engine_correct(engine_answer(reply, []), "8", [])
    assert value_of(reply) is None
  # attribute access and dunder names are code, not math (each would read 3.14..., 3)
  assert value_of("pi.evalf()") is None and value_of("(2).__add__(1)") is None
  assert list(tmp_path.iterdir()) == []
  assert value_of("tan²(π/6)") is not None and value_of("5!") == 120  # math still reads


@pytest.mark.parametrize("response, gold, right", [
    # a bare value is read whole: "81√3/2" was read by its last plain number, 2
    ("81√3/2", "81√3/2", True), ("81√3/2", "2", False), ("4√3", "4√3", True),
    ("$4\\sqrt{3}$.", "4√3", True), ("12 + 12√3", "12", False),
    ("The area: 81√3/2 square units", "81√3/2", True),
    ("Adding the two parts gives\n100π/3", "100π/3", True),
    ("1/8", "0.1253", False),      # a fraction is its exact value, not a decimal with a band
    ("4√3 or 5", "4√3", False),    # a hedge on the last line is no answer, as in the phrase
])
def test_a_bare_free_form_answer_is_read_whole(response, gold, right):
  assert engine_correct(engine_answer(response, []), gold, []) is right


ECHO = ["3", "4√3", "8", "6π"]


@pytest.mark.parametrize("response, letter", [
    # the options given back, each after its letter, answer nothing (they read as D or A)
    ("A: 3\nB: 4√3\nC: 8\nD: 6π", ""), ("(A) 3 (B) 4√3 (C) 8 (D) 6π", ""),
    ("A. 3 B. 4√3 C. 8 D. 6π", ""),
    # every option listed without letters is no option (the longest text won)
    ("3, 4√3, 8, 6π", ""), ("3 4√3 8 6π", ""),
    # a value none of the options has, though an option's text sits inside it ("3" in √3)
    ("81√3/2", ""), ("8√3/3", ""),
    ("B or C", ""),
    # one option, by its letter, its value or its marked line, still answers
    ("4√3", "B"), ("D: 6π", "D"), ("(C) 8\nIt is the side.", "C"), ("The answer is D: 6π.", "D"),
    ("A: 3\nB: 4√3\nC: 8\nD: 6π\nThe answer is B.", "B"),
])
def test_options_given_back_or_listed_answer_nothing(response, letter):
  assert engine_answer(response, ECHO) == letter


def test_a_text_naming_two_word_options_names_none():
  choices = ["increasing on (0, 2)", "decreasing on (0, 2)", "constant on (0, 2)"]
  assert engine_answer("f is increasing on (0, 2)", choices) == "A"
  assert engine_answer("increasing on (0, 2), decreasing on (0, 2)", choices) == ""


@pytest.mark.parametrize("response, gold, right", [
    ("x = 3 or x = -3", "-3", False), ("The answer is x = 3 or x = -3.", "-3", False),
    ("4√3 or 5", "5", False),
    # two values inside the reasoning, one stated after them, are no hedge
    ("The sides are 3 and 4, so the area is 12.", "12", True),
])
def test_a_last_line_that_ends_on_two_values_answers_nothing(response, gold, right):
  assert engine_correct(engine_answer(response, []), gold, []) is right
