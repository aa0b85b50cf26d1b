"""MathVista GPT-free extraction, one kind of response at a time, written from the official
pipeline's documented behaviour: the five demonstrations of `prompts/ext_ans.py` (what GPT-4 is
shown), what GPT-4 does with refusals (copies them; `calculate_score.py` then maps the copy to the
nearest choice by `Levenshtein.distance`), and the normalisation of letters beyond the choices."""

import Levenshtein
import pytest

from mathvlm.eval import answers, mathvista as mv


def _problem(qtype, atype, choices=(), precision=None, question="q", query=None):
  raw = {"pid": "1", "question": question, "question_type": qtype, "answer_type": atype,
         "choices": list(choices) or None, "precision": precision, "answer": "x", "unit": None}
  p = mv.load_record(raw)
  if query is not None:
    p = mv.with_record(p, {"query": query})
  return p


def _mc(response, choices, **kw):
  return mv.extract(response, _problem("multi_choice", "text", choices, **kw))


def _ff(response, atype="integer", precision=None):
  return mv.extract(response, _problem("free_form", atype, precision=precision))


# The demonstrations GPT-4 sees in extract_answer.py, and what it answers.
@pytest.mark.parametrize("response,atype,precision,expected", [
    ("The number missing in the sequence is 14.", "integer", None, "14"),
    ("The fraction of females facing the camera is 0.6, which means that six out of ten females "
     "in the group are facing the camera.", "float", 1, "0.6"),
    ("Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.", "float", 2, "1.45"),
    ("The line graph saw its maximum peak between 2007 and 2008.", "list", None, "[2007, 2008]"),
])
def test_demonstrations_free_form(response, atype, precision, expected):
  assert _ff(response, atype, precision) == expected


def test_demonstration_multi_choice():
  assert _mc("The correct answer is (B) 8/11.", ["3/11", "8/11", "6/11", "3/5"]) == "B"


# Refusals: copied verbatim, then the nearest choice by edit distance (never a word picked out).
REFUSALS = [
    "The question does not provide enough information to determine the answer.",
    "Sorry, I can't help with images of people yet.",
    "I cannot tell whether the cat is larger without seeing the image.",
    "Without the image, it is impossible to determine the value of x.",
]


@pytest.mark.parametrize("response", REFUSALS)
def test_refusal_multi_choice_is_kept_and_mapped_by_edit_distance(response):
  choices = ["cat", "dog", "it cannot be determined", "bird"]
  extraction = _mc(response, choices)
  assert extraction == response
  nearest = min(choices, key=lambda c: Levenshtein.distance(response, c))
  assert mv.normalize(extraction, choices, "multi_choice", "text", None) == nearest


@pytest.mark.parametrize("response", REFUSALS)
def test_refusal_free_form_is_kept_and_scores_no_number(response):
  extraction = _ff(response + " There are 3 objects.")
  assert mv.normalize(extraction, None, "free_form", "integer", None) is None


def test_an_answer_after_an_apology_is_still_the_answer():
  assert _mc("I'm sorry, the image is blurry, but the answer is (B).", ["1", "2", "3"]) == "B"
  assert _mc("I can't be certain, but it looks like (B).", ["1", "2", "3"]) == "B"
  assert _ff("I cannot determine the exact number, but it appears to be around 8.") == "8"


def test_an_option_the_response_rejects_is_not_its_answer():
  """A letter named to be ruled out is no answer (the third held-out round; "Option D (28) is
  wrong" read D), and ruling out the other options leaves the one called correct (it read A
  before, and nothing once the rejected letters were passed over)."""
  choices = ["16", "20", "24", "28"]
  assert _mc("Option D (28) is wrong; the area is 24.", choices) == "24"
  assert _mc("Option A is incorrect and option B is incorrect. C is correct.", choices) == "C"
  assert _mc("The answer is not B but C.", choices) == "C"


@pytest.mark.parametrize("response,expected", [
    ("C because the base is 6 and the height 8.", "C"),
    ("B since the area is 20.", "B"),
    ("A triangle's area is half of 6 times 8, so 24.", "24")])
def test_a_letter_given_its_reason_is_the_answer_and_an_opening_word_is_not(response, expected):
  """A terse answer's commonest shape, "C because ...", states C (the third held-out round's
  prose rule read it as prose, and its first number, 6); an opening "A" that is a word is no
  option (it read A)."""
  assert _mc(response, ["20", "22", "24", "28"]) == expected


# Option markers: GPT keeps the letter written, even beyond the choices.
def test_option_list_keeps_the_first_letter_even_beyond_the_choices():
  extraction = _mc("(C) yes\n(D) no", ["Yes", "No"])
  assert extraction == "C"
  assert mv.normalize(extraction, ["Yes", "No"], "multi_choice", "text", None) == "No"


@pytest.mark.parametrize("response,expected", [
    ("(E) 137", "E"),                       # a fifth option of four
    ("The answer is (E) 137.", "E"),
    ("(B) 137", "B"),                       # the letter wins over a value of another option
    ("(b)", "B"), ("b", "B"), ("B.", "B"), ("Option B", "B"), ("**Answer: (B) 14**", "B"),
    ("the answer is option d", "D"), ("The correct answer is option (d).", "D"),  # lower case
])
def test_option_with_value_keeps_the_letter(response, expected):
  assert _mc(response, ["135", "137", "139", "141"]) == expected


def test_letter_options_are_read_as_letters():
  choices = ["A", "B", "C", "D", "E"]
  assert _mc("Sure, I can help.\n\nThe answer to the question is **(E)**.", choices) == "E"
  assert _mc("The image of the dot is:\n\n(C) C", choices) == "C"


# Several answers: kept together, as GPT does ("2000 and 2005"), so no single number.
@pytest.mark.parametrize("response,expected", [
    ("The answer is 2 or 3.", "2 or 3"),
    ("The expenditure has the greatest increase between 2000 and 2005.", "2000 and 2005"),
])
def test_several_values_are_kept_together(response, expected):
  assert _ff(response) == expected
  assert mv.normalize(expected, None, "free_form", "integer", None) is None


def test_one_value_with_a_description_is_not_several():
  assert _ff("So the answer is 1982 with an actual total income of $931,441.") == "1982"


# Units and number formats.
@pytest.mark.parametrize("response,expected", [
    ("The answer is 5 cm^2.", "5"), ("The area is about 12.5 square centimeters.", "12.5"),
    ("The total cost is $1,200.", "1200"), ("The angle is 45°.", "45"),
    ("So, Luca needs $0.06 + $0.07 = $0.13.", "0.13"),
    ("Therefore, the value of x = 3 + 4 = 7.", "7"),
    ("Looking at the graph, the value at x = 3 is approximately 5.2.", "5.2"),
])
def test_units_and_formats(response, expected):
  assert _ff(response, "float", 2) == expected


# LaTeX.
@pytest.mark.parametrize("response,expected", [
    ("The value is \\boxed{\\frac{3}{4}}", "0.75"), ("The answer is $\\dfrac{1}{2}$.", "0.5"),
    ("Hence $x = \\boxed{\\sqrt{16}}$.", "4"),
    ("The answer is \\( \\frac{2}{3} \\approx 0.67 \\).", "0.67"),
])
def test_latex_values(response, expected):
  assert _ff(response, "float", 2) == expected


def test_latex_option_matched_by_value():
  choices = ["\\frac { 3 } { 5 } \\pi", "\\frac { 5 } { 3 } \\pi", "5 \\pi", "10 \\pi"]
  response = "Therefore, $\\widehat{WN} = \\boxed{\\frac{5}{3}\\pi}$."
  assert mv.normalize(_mc(response, choices), choices, "multi_choice", "text", None) == choices[1]


# Truncated responses (cut by max_new_tokens).
def test_truncated_after_a_stated_letter_keeps_it():
  response = ("The correct answer is **(B)**.\n\nWe can use the law of sines.\n\n```\n"
              "\\sin x = \\dfrac{14}{9}\n```\n\n```\nx = \\sin^{-1} \\left(")
  assert _mc(response, ["33", "40", "50", "57"]) == "B"


def test_truncated_free_form_takes_the_value_stated_so_far():
  assert _ff("First, the area of the rectangle is 5 * 4 = 20. Then we subtract the") == "20"


# Statements that answer a Yes/No question.
@pytest.mark.parametrize("question,statement,expected", [
    ("Are there fewer big motorbikes than rubber choppers?",
     "Based on the image, there are more rubber choppers than big motorbikes.", "Yes"),
    ("Are there more big motorbikes than rubber choppers?",
     "Based on the image, there are more rubber choppers than big motorbikes.", "No"),
    ("Is the number of blue buses greater than the number of cyan jets?",
     "There are more cyan jets than blue buses.", "No"),
    ("Is the bed larger than the kitten?", "The bed is larger than the kitten.", "Yes"),
    ("Is the bed larger than the kitten?", "The bed is not larger than the kitten.", "No"),
    ("Is Dark Orchid the maximum?", "Dark Orchid is the maximum. It is not the smallest.", "Yes"),
])
def test_yes_no_statements(question, statement, expected):
  assert _mc(statement, ["Yes", "No"], question=question) == expected


# Options named in other words, and the answer clause of a conditional.
@pytest.mark.parametrize("response,choices,expected", [
    ("If caterpillars decrease, plants may increase in the food chain.",
     ["plants decrease", "plants increase", "nothing happens"], "plants increase"),
    ("If pelicans increase, fish populations may decrease.",
     ["decrease", "nothing", "increase"], "decrease"),
    ("If grasshoppers get exterminated, the animal that would lack food would be the Frog.",
     ["Rabbit", "Deer", "Frogs", "Wolf"], "Frogs"),
    ("If the squirrels decrease, the deer tick population would likely decrease as well.",
     ["increase", "fluctuate", "it would decrease", "stay the same"], "it would decrease"),
])
def test_options_in_other_words(response, choices, expected):
  assert _mc(response, choices) == expected


def test_the_stated_option_wins_over_other_mentions():
  assert _mc("Given the length of ADE is 1, the length of ABC would be 2.", ["1", "2", "3"]) == "2"
  assert _mc("The first to change would be the frogs. Crickets and hawks change later.",
             ["Frogs", "Crickets", "Hawks"]) == "Frogs"


@pytest.mark.parametrize("response,choices,expected", [
    ("The answer is 5/2.", ["1", "1.5", "2", "2.5"], "2.5"),       # not the option 2 of 5/2
    ("\\boxed{\\frac{1}{2}}", ["0.5", "1", "2", "3"], "0.5"),          # nor 1 of \frac{1}{2}
    ("\\boxed{2\\frac{1}{2}}", ["1", "1.5", "2", "2.5"], "2.5"),      # a mixed number
    ("The answer is $2\\sqrt{3}$.", ["2", "2\u221a3", "4", "4\u221a3"], "2\u221a3"),
])
def test_an_option_inside_a_longer_value_is_not_stated(response, choices, expected):
  """The option "2" is no answer of `5/2` or `\\frac{5}{2}`: the value is, as the option of
  that value (GPT's extraction keeps such a value whole)."""
  assert mv.normalize(_mc(response, choices), choices, "multi_choice", "text", None) == expected


@pytest.mark.parametrize("response", [
    "Therefore, the length is $\\frac{5}{2}$.", "So x = \\dfrac{5}{2} cm.",
    "The ratio is $\\frac52$.",
])
def test_a_stated_latex_fraction_is_its_value(response):
  """A sentence that states `\\frac{5}{2}` states 2.5, not its numerator 5 (free form, and the
  option of that value for multiple choice)."""
  assert _ff(response, "float", 1) == "2.5"
  choices = ["1", "2.5", "5", "10"]
  assert mv.normalize(_mc(response, choices), choices, "multi_choice", "text", None) == "2.5"


def test_a_degree_sign_is_no_power():
  """`52^\\circ` states the option 52, in the box (a power such as `2^3` would not)."""
  p = _problem("multi_choice", "text", ["28", "38", "52", "62"])
  assert mv.explain("So it is $\\boxed{52^\\circ}$.", p) == ("52", "boxed")


def test_value_matching_an_option_is_that_option():
  assert _mc("Based on the given information, the edge length is 8.0.", ["10", "8", "6"]) == "8"


# The response's query: letters and option texts are read against the options as it listed them.
def test_option_text_is_given_the_letter_the_query_gave_it():
  choices = ["Jul '21", "Jun '21", "Mar '21", "May '21"]
  query = "Question: In which period ...?\nChoices:\n(A) May '21\n(B) Mar '21\n(C) Jul '21\n" \
          "(D) Jun '21"
  extraction = _mc("The number is the maximum in May '21.", choices, query=query)
  assert extraction == "A"
  # ... which the official normalisation reads against `choices`, as the published scores did
  assert mv.normalize(extraction, choices, "multi_choice", "text", None) == "Jul '21"


def test_explain_names_the_rule():
  p = _problem("multi_choice", "text", ["Yes", "No"])
  assert mv.explain("", p) == ("", "empty") == mv.explain(None, p)
  assert mv.explain("Yes", p) == ("Yes", "exact")
  assert mv.explain("Sorry, I can't see it.", p)[1] == "refusal (kept verbatim)"


@pytest.mark.parametrize("text,refusal", [
    ("I'm unable to view the image.", True), ("As an AI, I cannot see pictures.", True),
    ("There is not enough information to answer.", True),
    ("The triangle is not isosceles, so the answer is (B).", False),
    ("It is possible to determine x: x = 5.", False),
    ("The image does not contain any red cubes. So there are 3 objects left.", False),
    ("There is no data for 2010. The value in 2011 is 5.", False),
    ("I don't see an image attached.", True),
])
def test_refusal_detection(text, refusal):
  assert answers.refusal(text) is refusal


@pytest.mark.parametrize("response,expected", [("答案是B", "B"), ("故选C", "C"), ("答案：A", "A")])
def test_chinese_answer_phrases(response, expected):
  assert _mc(response, ["1", "2", "3"]) == expected


# Shapes the development files lack (the official answer is what GPT-4's extraction copies).
@pytest.mark.parametrize("response,atype,precision,expected", [
    ("U = \u22124.3 kJ/mol", "float", 1, "-4.3"),                  # the minus sign U+2212
    ("There are \u22124 objects left.", "integer", None, "-4"),
    ("The spring constant is 750 N/m and the stretch is 5.66 cm.\nTherefore, W \u2248 1.2 J.",
     "float", 1, "1.2"),                                               # a concluding "≈"
    ("The spring constant is 750 N/m.\nSo W \\approx 1.2 J.", "float", 1, "1.2"),
    ("The sum of 1 and 3 is 4.", "integer", None, "4"),              # "is" over "of"
    ("The average of 50.23 and 51.85 is 51.04.", "float", 2, "51.04"),
    ("The side is 5\\text{ cm}, twice the width of 2.5 cm.", "float", 1, "5"),  # a unit ends
    ("The share is 25\\% of the total 80.", "integer", None, "25"),              # a number
    ("\\boxed{1{,}000}", "integer", None, "1000"),                   # LaTeX's thousands separator
    ("The answer is \\boxed{\\frac45}.", "float", 1, "0.8"),         # \frac without braces
    ("\\boxed{25.5 \\text{ cm}^2}", "float", 1, "25.5"),             # a unit's power is no
    ("Answer: $48\\,\\mathrm{m}^{2}$", "integer", None, "48"),       # power of the value
])
def test_shapes_beyond_the_development_files(response, atype, precision, expected):
  assert _ff(response, atype, precision) == expected


@pytest.mark.parametrize("response,gold", [
    ("There are $4\\sqrt{2}$ units.", "4"), ("There are $4\\sqrt{2}$ units.", "2"),
    ("The length is 4\u221a3.", "4"), ("The length is 4\u221a3.", "3"),
    ("The area is $4\\pi$.", "4"), ("It is 4\u03c0 square units.", "4"),
])
def test_a_number_inside_an_expression_is_not_the_answer(response, gold):
  """GPT's extraction keeps `4\\sqrt{2}` whole, which is neither the integer 4 nor 2."""
  p = mv.with_record(_problem("free_form", "integer"), {"answer": gold})
  assert mv.judge(p, mv.extract(response, p))[1] is False


def test_numbers_and_latex_numbers_read_latex_notation():
  assert answers.numbers("a total of 1{,}000{,}000 people") == ["1000000"]
  assert answers.numbers("\\pi \\approx 3{,}14") != ["314"]     # a decimal comma is no separator
  assert answers.latex_number("3{,}14") != "314"
  assert answers.latex_number("1{,}000") == "1000"
  assert answers.latex_number("\\dfrac 3 4") == "0.75"
  assert answers.latex_number("\\dfrac{\\sqrt3}{2}") == answers.latex_number("\\frac{\\sqrt{3}}{2}")
  assert answers.latex_number("2\\sqrt 3") == answers.latex_number("2\\sqrt{3}")  # TeX's one token


# Held-out shapes of the 2026-12-07 audit (written for it, not taken from the development files;
# /tmp proof script: 201 of 228 agreed with the official rule before, 225 after).
_ANGLES = ["30°", "45°", "60°", "90°"]
_WORKED = ("First, the width of the rectangle is 12 and its height is 7, so the perimeter is "
           "2 * (12 + 7) = 38. Half of the perimeter is 19. The shaded strip takes 14 of that. ")


def _ff_ok(response, gold, atype="integer", precision=None):
  p = mv.with_record(_problem("free_form", atype, precision=precision), {"answer": gold})
  return mv.judge(p, mv.extract(response, p))[1]


@pytest.mark.parametrize("response,expected", [
    ("图中共有5个苹果。", "5"), ("共有 5 个。", "5"), ("答案是12元。", "12"),
])
def test_numbers_inside_chinese_text_are_read(response, expected):
  """An ideograph is a word character to Python's regular expressions: "有5个" hid the 5."""
  assert _ff(response) == expected


@pytest.mark.parametrize("response,choices,expected", [
    ("故选B。", _ANGLES, "B"), ("答案：（C）", _ANGLES, "C"),
    ("所以AB的长为4cm。", ["2cm", "4cm", "6cm", "8cm"], "4cm"),
    ("The answer is \\(B\\).", _ANGLES, "B"), ("The answer is \\[\\text{B}\\]", _ANGLES, "B"),
])
def test_letters_in_chinese_punctuation_and_latex_delimiters(response, choices, expected):
  assert _mc(response, choices) == expected


@pytest.mark.parametrize("response", ["The answer is B or C.", "\\boxed{B or C}",
                                      "Answer: B and C"])
def test_two_letters_offered_as_the_answer_are_kept_as_written(response):
  """GPT's extraction copies a hedge; the normalisation then maps it by edit distance, so it
  is not the letter B (before, the first letter was taken and a hedge scored right)."""
  p = mv.with_record(_problem("multi_choice", "text", _ANGLES), {"answer": "45°"})
  extraction = mv.extract(response, p)
  assert extraction not in ("B", "C") and " " in extraction
  assert mv.judge(p, extraction)[0] == mv.normalize(extraction, _ANGLES, "multi_choice", "text",
                                                    None)


def test_a_sentence_listing_several_options_states_none_of_them():
  response = "Counting the objects: 1, 2, 3, 4. So there are 4 of them."
  assert _mc(response, ["2", "3", "4", "5"]) == "4"
  assert _mc("The answer is 45°, as 45° + 45° = 90°.", _ANGLES) == "45°"
  assert _mc("The answer is B, because A and C are too small.", _ANGLES) == "B"


@pytest.mark.parametrize("tail", ["That leaves 19 - 14 = 5.",
                                  "Subtracting, the width of the strip is 5.",
                                  "The remaining length is 5 units."])
def test_a_worked_solution_answers_where_it_ends(tail):
  """A first sentence that is a first step ("First, ...") opens a worked solution; its first
  value (38) is a step, not the answer."""
  assert _ff(_WORKED + tail) == "5"


@pytest.mark.parametrize("response,expected", [
    ("x = 5 and y = 3, so x + y = 8.", "8"), ("Since x = 5 and y = 3, x + y = 8.", "8"),
    ("The year 1982 has the highest income. In 1982 the income was $931,441.", "1982"),
    ("There are 4 red cars. The blue ones are 3.", "4"),
])
def test_a_concluding_clause_or_main_clause_states_the_answer(response, expected):
  assert _ff(response) == expected


@pytest.mark.parametrize("response,gold", [
    ("The length is $\\sqrt{3}$.", "1.73"), ("Therefore, the length is $\\sqrt{3}$ cm.", "1.73"),
    ("The side is $2\\sqrt{3}$.", "3.46"), ("The ratio is $\\frac{\\sqrt{3}}{2}$.", "0.87"),
])
def test_a_stated_latex_root_is_its_value(response, gold):
  """As "The length is √3." already was: before, the LaTeX root left no value."""
  assert _ff_ok(response, gold, "float", 2)


# Second held-out round (2026-12-07): shapes written for an audit, scored against the official
# rule on the answer the response commits to (docs/eval/SCORER.md).
@pytest.mark.parametrize("response,expected", [
    ("She had 10 apples and gave away 3, leaving 7 apples.", "7"),
    ("There were 9 ducks; 2 flew off, which leaves 7 ducks.", "7"),
    ("Subtracting 3 from 10 gives 7.", "7"), ("Taking 3 away from 10 results in 7.", "7"),
    ("Of the 10 cubes, 3 are hidden, making 7 visible cubes.", "7"),
    ("After removing the 3 red balls from the 10 balls, 7 balls remain.", "7"),
    ("Solving 2x + 4 = 20 gives x = 8.", "8"),
    ("First, count the apples: there are 10. She gives away 3, leaving 7.", "7"),  # worked
])
def test_a_result_clause_states_the_answer_not_its_premise(response, expected):
  """"..., leaving 7" and "... gives 7" state the result; the numbers before are the premise
  (before, the first number, 10 or 3, was taken)."""
  assert _ff(response) == expected


@pytest.mark.parametrize("response,expected", [
    ("The measure of angle 2 is 180° − 140° = 40°.", "40"),
    ("Since angle 1 = 140°, angle 2 = 180° − 140° = 40°. Check: 140° + 40° = 180°.", "40"),
    ("Given AB = 3 and AC = 4, BC = √(3² + 4²) = 5.", "5"),
])
def test_a_chain_of_values_with_units_or_a_given_premise_ends_on_its_result(response, expected):
  assert _ff(response) == expected


@pytest.mark.parametrize("response,gold,precision", [
    ("The ratio is 1:2, i.e. 0.5.", "0.5", 1), ("AB : CD = 1 : 2 = 0.5", "0.5", 1),
    ("The ratio of AB to CD is 1:2, which is 0.5.", "0.5", 1),
    ("The share is 45%, i.e. 0.45.", "0.45", 2), ("The answer is 0.45 (45%).", "0.45", 2),
    ("The answer is 2 1/2.", "2.5", 1), ("The length is 2 1/2 cm.", "2.5", 1),
    ("Each piece is 2½ inches long.", "2.5", 1),
])
def test_ratios_restated_mixed_numbers_and_remarks_in_brackets(response, gold, precision):
  """A ratio restated as a value answers that value; "2 1/2" and "2½" are 2.5 (they read 2);
  a remark in brackets after the answer is no factor ("0.45 (45%)" read 0.45 * 45)."""
  assert _ff_ok(response, gold, "float", precision), mv.explain(
      response, _problem("free_form", "float", precision=precision))


def test_a_ratio_alone_keeps_its_first_side():
  assert _ff("The ratio of the procedures in 2004 to those in 2007 is 3:1.") == "3"


@pytest.mark.parametrize("response,expected", [
    ("The population is 3.2 × 10^4.", "32000"),
    ("The temperature dropped to minus 5 degrees.", "-5"),
    ("1. Count the red blocks: 5\n2. Count the blue blocks: 7\n3. Add them: 5 + 7 = 12", "12"),
    ("**Step 1:** Count the top row: 3.\n**Step 2:** Count the bottom row: 5.\n**Total:** 8",
     "8"),
    ("**Step 1**: Count the top row: 3.\n**Step 2**: Count the bottom row: 5.\n**Total**: 8",
     "8"),
    ("**Row 1:** 3 dots\n**Row 2:** 5 dots\nSo there are **8** dots.", "8"),
    ("```python\nwidth, length = 3, 4\nprint(width * length)\n```\nThis prints 12.", "12"),
    ("```\n12\n```", "12"),
    ("The answer is 3.\n\nWait, that is AB. BC is actually 5.", "5"),
])
def test_notation_numbered_steps_code_and_revisions(response, expected):
  """Scientific notation and a sign in words in prose; a numbered list or bold step labels
  ("**Step 1:**") are no answer (they read 1); code beside prose is not read for the answer (it
  read 3); a revision ("Wait, ...") after the answer replaces it (it read 3)."""
  assert _ff(response) == expected


@pytest.mark.parametrize("response,choices,expected", [
    ("I count 3 cats. Let me recount: 1, 2, 3, 4. Actually there are 4 cats.",
     ["1", "2", "3", "4", "5"], "4"),
    ("The answer is A.\n\nWait, I mixed up the angles, so the answer is actually C.", _ANGLES, "C"),
    ("The answer is (A).\nWait, no: (C) 60°.", _ANGLES, "C"),
    ("答案：否", ["Yes", "No"], "No"),
])
def test_revised_and_chinese_yes_no_choices(response, choices, expected):
  assert _mc(response, choices) == expected


@pytest.mark.parametrize("response,expected", [
    ("Points: $(-2, 3)$ and $(2, 1)$\n\n$$m = \\frac{1 - 3}{2 - (-2)} = -\\frac{1}{2}$$\n\n"
     "The slope of the line is **$-\\frac{1}{2}$**.", "-0.5"),
    ("Using the two points,\n\n**$m = \\frac{3}{2}$**", "1.5"),
    ("The slope is **-0.5**, from **$\\frac{1}{2}$** of the rise.", "-0.5"),  # the first bold
])
def test_a_bold_math_span_is_a_bold_value(response, expected):
  """A math span set in bold is how chat models mark a LaTeX answer (the fourth held-out round:
  `**$-\\frac{1}{2}$**` was passed over and the last number, 2, taken)."""
  assert _ff(response, "float", 1) == expected


@pytest.mark.parametrize("response,expected", [
    ("直线与y轴交于点(0,-3)，所以y轴截距是-3。", "-3"),
    ("The line crosses the y-axis at (0, -3), so the y-intercept is -3.", "-3"),
    ("由图可知 A(0,4)，B(2,0)，因此斜率为-2。", "-2"),
])
def test_a_chinese_is_states_the_answer(response, expected):
  """"所以 X 是 -3" ("so X is -3") and "斜率为 -2" state their value as "is" does (the first reads
  0 from the premise's point, the second 0 from A(0,4))."""
  assert _ff(response) == expected


@pytest.mark.parametrize("response,expected,option", [
    ("gren", "gren", "green"), ("purpel", "purpel", "purple"),
    ("2sqrt2", "2√2", "2√2"),              # a root in words: the option of that value
])
def test_a_reply_of_a_few_words_is_kept_and_mapped_by_edit_distance(response, expected, option):
  """Option text copied with a typo names no option as written: kept, as GPT's extraction copies
  it, and mapped to the closest option (nothing was read, and "" mapped to "red")."""
  choices = (["√2", "2√2", "3", "4"] if option == "2√2"
             else ["red", "green", "blue", "purple"])
  extraction = _mc(response, choices)
  assert extraction == expected
  assert mv.normalize(extraction, choices, "multi_choice", "text", None) == option


@pytest.mark.parametrize("response,expected", [
    ("C", "C"), ("C.", "C"), ("(C) 12", "C"), ("C because the base is 6.", "C"),
    ("The answer is 12.", "12"), ("12", "12"), ("The answer is C.", "C"),
])
def test_terse_replies_keep_their_reading(response, expected):
  """The commonest terse shapes, read before the few-words rule (which must not catch them)."""
  assert _mc(response, ["10", "11", "12", "13"]) == expected
