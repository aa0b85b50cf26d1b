"""MathVerse (hand-written records in the official format) and the engine's held-out sets."""

import json
import os

import pytest

from mathvlm.eval import consistency, engine_benchmark as engine, mathverse, report, score

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "eval_fixtures")


def test_mathverse_scores_by_version_and_subject():
  problems = mathverse.load(os.path.join(FIXTURES, "mathverse_testmini.json"))
  assert [p.query.split("\n")[0][:20] for p in problems][0] == "Please directly answ"
  records = score.read_records(os.path.join(FIXTURES, "mathverse_responses.json"))
  scores, outputs = score.score_responses("mathverse", problems, records)
  assert scores["all"] == {"correct": 2, "total": 4, "accuracy": 50.0}
  assert scores["problem_version"]["Text Dominant"]["correct"] == 2
  assert scores["problem_version"]["Vision Only"]["correct"] == 0
  assert scores["subject"]["Solid Geometry"]["total"] == 2
  assert [o["extraction"] for o in outputs] == ["C", "B", "14", "13"]
  assert [o["judgement"] for o in outputs] == [1, 0, 1, 0]   # the official output fields


def test_mathverse_cot_prompt_and_bad_prompt():
  path = os.path.join(FIXTURES, "mathverse_testmini.json")
  assert mathverse.load(path, prompt="query_cot")[0].query.startswith("Please first conduct")
  with pytest.raises(ValueError, match="query_wo"):
    mathverse.load(path, prompt="query")


@pytest.mark.parametrize("a,b,same", [("3.0", "3", True), ("(B)", "B", True), ("b.", "B", True),
                                      ("\\frac{1}{2}", "0.5", True), ("1,000", "1000", True),
                                      ("14 cm", "14", False), ("", "", True)])
def test_mathverse_normalize(a, b, same):
  assert (mathverse.normalize(a) == mathverse.normalize(b)) is same


def _free_form(answer):
  return mathverse.Problem(pid="0", question="", answer=answer, choices=[], images=[], query="",
                           meta={"question_type": "free-form", "problem_version": "Vision Only"},
                           raw={})


@pytest.mark.parametrize("response,gold,ok", [
    ("The slope is \u22122.", "-2", True),           # the minus sign U+2212 keeps its sign
    ("The slope is \u22122.", "2", False),
    ("The area is $4\\pi$.", "4\\pi", True),        # an expression is kept whole, as GPT does
    ("The area is $4\\pi$.", "4", False),
    ("The answer is 2\u221a3.", "2\\sqrt{3}", True),
    ("The answer is 2\u221a3.", "3", False),
    ("The answer is $x = 2\\sqrt{3}$.", "2\\sqrt{3}", True),
    ("\\boxed{1{,}000}", "1000", True),                # LaTeX's thousands separator
    ("The answer is \\boxed{\\frac45}.", "0.8", True),
    ("\\boxed{\\dfrac{\\sqrt3}{2}}", "\\frac{\\sqrt{3}}{2}", True),  # \sqrt without braces
    ("\\boxed{48 \\text{ cm}^2}", "48", True),          # a unit's power is not the value's
    ("\\boxed{48\\ \\text{cm}^{2}}", "48", True),       # nor after TeX's space
    ("The answer is negative 5.", "-5", True),      # a sign in words, read as MathVista reads it
    ("The answer is negative 5.", "5", False),
    ("Answer: x = minus 0.5", "-0.5", True),
    ("\\boxed{1.5e3}", "1500", True),                # scientific notation, not 1.5
])
def test_mathverse_extraction_of_signs_expressions_and_latex_numbers(response, gold, ok):
  p = _free_form(gold)
  assert mathverse.judge(p, mathverse.extract(response, p)) is ok


def _multi_choice(version, listed=""):
  query = ("According to the question shown in the image, please directly answer the question "
           "and provide the correct option letter, e.g., A, B, C, D." if not listed else
           "Please directly answer the question and provide the correct option letter, e.g., A, "
           "B, C, D.\nQuestion: What is angle 2?\nChoices:\n" + listed)
  return mathverse.Problem(pid="0", question="", answer="E", choices=[], images=[], query=query,
                           meta={"question_type": "multi-choice", "problem_version": version},
                           raw={})


@pytest.mark.parametrize("response,letter", [
    ("E", "E"), ("The answer is E.", "E"), ("\\boxed{F}", "F"), ("Answer: (E) 45°", "E"),
    ("G", ""),                                        # MathVerse lists at most six options
    ("A triangle has three sides, so the angle is 60°.", ""),   # prose, not option A
    ("E is the midpoint of AB.\nSo the angle is 30°.", ""),
    ("C is correct.", "C"),
    ("The answer is option e.", "E"), ("Answer: option (f)", "F"),  # lower case after "option"
])
def test_mathverse_letters_of_options_drawn_in_the_image(response, letter):
  """A "Vision Only" query lists no options (they are in the image): a letter up to F is read,
  where only A-D were before and a right "E" scored wrong; a capital opening prose is none."""
  assert mathverse.extract(response, _multi_choice("Vision Only")) == letter


@pytest.mark.parametrize("response,gold,ok", [
    ("图中共有5个苹果。", "5", True),                  # a number touching ideographs
    ("x = 5 and y = 3, so x + y = 8.", "8", True),     # the concluding clause, not a premise
    ("Since x = 5 and y = 3, x + y = 8.", "8", True),  # the main clause
    ("First, the perimeter is 2 * (12 + 7) = 38. Half of it is 19. The strip takes 14.\n"
     "The remaining length is 5 units.", "5", True),   # a worked solution ends on its answer
])
def test_mathverse_held_out_free_form_shapes(response, gold, ok):
  p = _free_form(gold)
  assert mathverse.judge(p, mathverse.extract(response, p)) is ok


@pytest.mark.parametrize("response,letter", [
    ("故选B。", "B"), ("The answer is \\(B\\).", "B"),
    ("The answer is B or C.", "B or C"),               # two letters: kept, no letter
    ("The answer is B, because A and C are too small.", "B"),
])
def test_mathverse_held_out_letter_shapes(response, letter):
  assert mathverse.extract(response, _multi_choice("Vision Only")) == letter


def test_mathverse_listed_options_bound_the_letters():
  four = _multi_choice("Text Dominant", "A:40°\nB:50°\nC:130°\nD:140°")
  five = _multi_choice("Text Dominant", "A:40°\nB:50°\nC:130°\nD:140°\nE:150°")
  assert mathverse.extract("The answer is E.", four) == ""
  assert mathverse.extract("The answer is E.", five) == "E"
  assert mathverse.judge(five, mathverse.extract("The answer is E.", five))


def test_engine_loader_reads_mavis_fields():
  problems = engine.load(os.path.join(FIXTURES, "engine_heldout.json"))
  assert len(problems) == 9
  p = problems[0]
  assert p.pid == "geo-0001:text_dominant" and p.answer == "C"
  assert p.images[0].endswith(os.path.join("images", "geo-0001_td.png"))
  assert "(C) 10" in p.query and p.meta["caption"].startswith("Right triangle")
  assert {q.meta["version"] for q in problems} == set(engine.VERSIONS)


def test_engine_loader_names_the_bad_record(tmp_path):
  path = tmp_path / "bad.json"
  path.write_text(json.dumps([{"id": "g1", "choices": ["1", "2"], "answer_index": 5,
                               "text_en": {"text_lite_question": "q"}}]))
  with pytest.raises(ValueError, match="record 0 \\(id g1\\).*answer_index 5"):
    engine.load(str(path))
  for bad in ([7], [None], [["g1"]]):  # a number, null, a list: not a record
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="record 0 is .*not a JSON object"):
      engine.load(str(path))


def test_engine_scores_and_consistency():
  problems = engine.load(os.path.join(FIXTURES, "engine_heldout.json"))
  records = score.read_records(os.path.join(FIXTURES, "engine_responses.jsonl"))
  scores, _ = score.score_responses("engine", problems, records)
  assert scores["all"]["correct"] == 5 and scores["all"]["total"] == 9
  c = scores["consistency"]
  # geo-0001 agrees and is right, geo-0002 disagrees (B, B, A), geo-0003 agrees on a wrong D
  assert c["groups"] == 3
  assert c["agreement"] == pytest.approx(66.67)
  assert c["pairwise"] == pytest.approx(100 * 7 / 9, abs=0.01)
  assert c["consistent_correct"] == pytest.approx(33.33)
  assert c["any_correct"] == pytest.approx(66.67)


def test_agreement_edge_cases():
  r = consistency.agreement([("g", "", False), ("g", "", False), ("h", "A", True)])
  assert r["groups"] == 1 and r["skipped_single"] == 1
  assert r["agreement"] == 0.0   # two empty answers do not agree


def test_responses_without_text_are_counted_and_a_misnamed_field_is_an_error():
  """A record with no text field was scored as an empty answer with no word of it, so a response
  file whose text sits under another name (or a wrong --response_field) scored 0% quietly."""
  problems = mathverse.load(os.path.join(FIXTURES, "mathverse_testmini.json"))
  records = score.read_records(os.path.join(FIXTURES, "mathverse_responses.json"))
  scores, _ = score.score_responses("mathverse", problems, records)
  assert scores["without_text"] == 0
  stripped = [dict(records[0], model_answer=None)] + records[1:]
  scores, _ = score.score_responses("mathverse", problems, stripped)
  assert scores["without_text"] == 1 and scores["all"]["total"] == 4
  assert "1 responses hold no text" in report.markdown(scores, "MathVerse")
  renamed = [{"sample_index": r["sample_index"], "answer_text": r["model_answer"]}
             for r in records]
  with pytest.raises(ValueError, match=r"none of the 4 responses has its text in \['response'"):
    score.score_responses("mathverse", problems, renamed)
  with pytest.raises(ValueError, match=r"text in \['reply'\].*--response_field"):
    score.score_responses("mathverse", problems, records, response_field="reply")
  scores, _ = score.score_responses("mathverse", problems, renamed, response_field="answer_text")
  assert scores["all"]["correct"] == 2 and scores["without_text"] == 0


# Second held-out round (2026-12-07)
@pytest.mark.parametrize("response,gold,ok", [
    ("There are 7 trees and 2 are cut down, leaving 5 trees.", "5", True),   # not the premise 7
    ("Given AB = 3 and AC = 4, BC = √(3² + 4²) = 5.", "5", True),
    ("The answer is 3.\n\nWait, that is AB. BC is actually 5.", "5", True),  # the revision
    ("The answer is 2 1/2.", "2.5", True),              # a mixed number (it read 1/2)
    ("The ratio is 5:2, i.e. 2.5.", "2.5", True),
    ("**Answer:** $2\\sqrt{3}$ cm", "2\\sqrt{3}", True),  # the math span, not its unit
    ("The coordinates of P are (2, 3).", "(2, 3)", True),  # a point kept whole (it read 2)
    ("P = (2,3)", "(2, 3)", True),
    ("P = (3, 2)", "(2, 3)", False),                    # read as one number both were 5
    ("The answer is 5.", "(2, 3)", False),
])
def test_mathverse_second_held_out_free_form_shapes(response, gold, ok):
  p = _free_form(gold)
  assert mathverse.judge(p, mathverse.extract(response, p)) is ok


@pytest.mark.parametrize("response,letter", [
    ("The answer is A.\n\nWait, I mixed up the angles: ∠2 = 50°, so the answer is actually B.",
     "B"),
    ("```\nB\n```", "B"),                                # the letter fenced as code
    ("The answer is A.\n\nActually, (B).", "B"),             # a revision without the phrase
    ("The answer is (C).\n\nHmm, let me recheck. The correct answer is B.", "B"),
])
def test_mathverse_second_held_out_letter_shapes(response, letter):
  assert mathverse.extract(response, _multi_choice("Vision Only")) == letter


@pytest.mark.parametrize("response,gold,ok", [
    ("5 sqrt 3", "5\\sqrt{3}", True), ("sqrt(3)", "\\sqrt{3}", True),
    ("8 pi", "8\\pi", True), ("8 pi", "8", False), ("The area is 2pi.", "2\\pi", True),
])
def test_mathverse_roots_and_pi_in_words(response, gold, ok):
  """A root and pi written as words, as a calculator has them, are the signs (the fourth held-out
  round: "5 sqrt 3" read 5 and "8 pi" read 8)."""
  p = _free_form(gold)
  assert mathverse.judge(p, mathverse.extract(response, p)) is ok
