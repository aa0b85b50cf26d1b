"""Behaviour that a seventh mutation review (small plausible bugs applied to the MATH-Vision
scorer, `mathvlm/eval/math_v.py`, and to the Hugging Face conversion, `mathvlm/hf.py`) found no
test guarding: each test here fails on such a mutant and passes on the real code. The MATH-Vision
readings are those of the official `evaluation/evaluate.py` and `utils.py` (mathllm/MATH-V);
the checkpoints are tiny ones written here (no downloads): the whole file runs in seconds."""

import json

import pytest

from mathvlm.eval import math_v
from mathvlm.eval.common import Problem

# ---------------------------------------------------------------------------------------------
# MATH-Vision: loading.

RECORD = {"id": "1", "question": "How many?", "options": [], "answer": "6", "level": 1,
          "subject": "counting"}


def _write(tmp_path, rows, end="\n"):
  path = tmp_path / "test.jsonl"
  path.write_bytes("".join(json.dumps(r) + end for r in rows).encode())
  return str(path)


def test_an_answer_one_letter_past_the_options_is_refused_and_the_last_letter_taken(tmp_path):
  """With three options the answer letters are A-C: D (a record cut from five options) is an
  error, C is the third option (an off-by-one refused C or let D index past the list)."""
  options = ["1", "2", "3"]
  with pytest.raises(ValueError, match=r"test.jsonl:1 \(id 1\): answer 'D' is not one of"):
    math_v.load(_write(tmp_path, [dict(RECORD, options=options, answer="D")]))
  (p,) = math_v.load(_write(tmp_path, [dict(RECORD, options=options, answer="C")]))
  assert p.answer == "C" and math_v.judge(p, "3")


def test_blank_lines_of_a_windows_file_are_skipped_not_parsed(tmp_path):
  """A CRLF file's blank line is "\\r" after the split on "\\n": it is no record (a line that is
  only whitespace), not a JSON error."""
  path = _write(tmp_path, [RECORD, dict(RECORD, id="2")], end="\r\n\r\n")
  assert [p.pid for p in math_v.load(path)] == ["1", "2"]


def test_only_a_record_with_an_image_gets_an_image_path(tmp_path):
  """A text-only record (no image, or an empty one) is asked without an image; one with an
  image gets its path in images_dir (default: the file's folder)."""
  rows = [RECORD, dict(RECORD, id="2", image=""), dict(RECORD, id="3", image="images/3.jpg")]
  problems = math_v.load(_write(tmp_path, rows))
  assert [p.images for p in problems] == [[], [], [str(tmp_path / "images" / "3.jpg")]]
  assert math_v.load(_write(tmp_path, rows), images_dir="/d")[2].images == ["/d/images/3.jpg"]


@pytest.mark.parametrize("row,named", [
    ({k: v for k, v in RECORD.items() if k != "level"}, r"\['level'\] missing or null"),
    (dict(RECORD, subject=None), r"\['subject'\] missing or null"),
    (dict(RECORD, question=["How", "many?"]), r"question is \['How', 'many\?'\]"),
])
def test_a_record_without_its_breakdown_fields_or_a_text_question_is_named(tmp_path, row, named):
  """level and subject make the official score keys (a missing one was a bare KeyError at
  scoring); a question that is not text would be formatted into the prompt as a list."""
  with pytest.raises(ValueError, match=named):
    math_v.load(_write(tmp_path, [row]))


@pytest.mark.parametrize("answer,text", [(0, "0"), (2.5, "2.5"), ("0", "0")])
def test_a_numeric_or_zero_answer_is_an_answer(tmp_path, answer, text):
  """A gold answer written as a JSON number (0 included: falsy, not missing) is read as its
  text, as the official `str(answer)`."""
  (p,) = math_v.load(_write(tmp_path, [dict(RECORD, answer=answer)]))
  assert p.answer == text and math_v.judge(p, text)


# ---------------------------------------------------------------------------------------------
# MATH-Vision: the official extraction's clean-ups (utils.py `find_math_answer`,
# `_strip_string`, `_fix_fracs`, `_fix_a_slash_b`; evaluate.py's letter rules).

def _p(answer, options=()):
  return Problem(pid="x", question="", answer=answer, choices=list(options), images=[], query="",
                 meta={"level": 1, "subject": "algebra"}, raw={})


@pytest.mark.parametrize("response,expected", [
    ("\\boxed{\\sqrt{3}\\frac1}", "\\sqrt{3}\\frac1"),            # \frac with one char: as is
    ("\\boxed{\\sqrt{2}\\frac12}", "\\sqrt{2}\\frac{1}{2}"),      # braces added to both
    ("\\boxed{01/2}", "01/2"),                                   # not int/int as written: kept
    ("\\boxed{\\\\\\frac{1}{2}}", "\\frac{1}{2}"),               # \\ collapsed twice
    ("\\boxed{\\tfrac{1}{3}}", "\\frac{1}{3}"),
    ("\\boxed{.5}", "\\frac{1}{2}"),                             # .5 is 0.5, then the quirk
    ("\\boxed{90^{\\!\\circ}}", "90"),                           # degrees after \! is dropped
    ("\\boxed{30{}^\\circ}", "30"),                              # LaTeX's {}^\circ
    ("\\boxed{(2, ∞)}", "(2,\\infty)"),
    ("\\boxed{(-\\infty, +\\infty)}", "(-\\infty,\\infty)"),
    ("\\boxed{\\begin{bmatrix}1\\\\2\\end{bmatrix}}", "\\begin{pmatrix}1\\2\\end{pmatrix}"),
    ("C\nThe triangle has three sides.", "c"),                   # a letter on the first line
    ("(C) C\nbecause the angle is 30", "c"),                     # "(X) X" on the first line
])
def test_the_official_clean_ups_each_apply(response, expected):
  assert math_v.extract(response) == expected


@pytest.mark.parametrize("response,gold", [
    ("\\boxed{\\\\\\frac{1}{2}}", "0.5"), ("\\boxed{.5}", "0.5"), ("\\boxed{90^{\\!\\circ}}", "90"),
    ("\\boxed{30{}^\\circ}", "30"), ("\\boxed{(2, ∞)}", "(2,\\infty)"),
])
def test_the_clean_ups_decide_the_verdict(response, gold):
  """Without them each answer above is judged wrong against its gold value."""
  assert math_v.judge(_p(gold), math_v.extract(response))


def test_a_final_letter_counts_only_as_a_word_of_its_own():
  """evaluate.py takes a last " X." as the letter X: "It is E." answers E, but a name ending in
  the letter ("segment DE.") is no answer E."""
  options = ["1", "2", "3", "4", "5"]
  assert math_v.judge(_p("E", options), math_v.extract("It is E."))
  assert not math_v.judge(_p("E", options), math_v.extract("It lies on segment DE."))


def test_a_published_score_string_is_read_past_leading_space():
  """`parse_official` reads "c/n=x%" as (correct, total), in that order, with any indentation
  an edited *_result.json gives its values."""
  assert math_v.parse_official(" 3/4=75.0%") == (3, 4)
  assert math_v.parse_official("0/2=0.0%") == (0, 2)


def _leveled(pid, level, subject="algebra"):
  return Problem(pid=pid, question="", answer="1", choices=[], images=[], query="",
                 meta={"level": level, "subject": subject}, raw={})


def test_scores_count_the_right_answers_in_every_breakdown():
  """`scores`: "all" counts the right answers (not the total twice), the subject-by-level keys
  are "<subject>_levelN" as in the official file, whose strings carry the same counts."""
  problems = {"1": _leveled("1", 1), "2": _leveled("2", 2), "3": _leveled("3", 2, "logic")}
  out = math_v.scores(problems, {"1": True, "2": False, "3": True})
  assert out["all"] == {"correct": 2, "total": 3, "accuracy": 66.67}
  assert {k: (v["correct"], v["total"]) for k, v in out["subject_level"].items()} == {
      "algebra_level1": (1, 1), "algebra_level2": (0, 1), "logic_level2": (1, 1)}
  assert out["official"]["-all"] == "2/3=66.67%"
  assert out["official"]["algebra_level2"] == "0/1=0.0%"


def test_an_output_record_has_the_official_fields():
  """One line of the official outputs/*.jsonl, which `evaluate.py` re-reads by these names
  (`model_answer` is what it re-judges without --regen_answer)."""
  record = math_v.output_record(_leveled("7", 1), "It is 1.", "1", True)
  assert record == {"id": "7", "response": "It is 1.", "model_answer": "1", "correct": True}
