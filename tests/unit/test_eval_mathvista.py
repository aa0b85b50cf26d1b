"""MathVista: the official query and normalisation, and the published scores reproduced."""

import json
import os

import pytest

from mathvlm.eval import mathvista as mv

from shared_data import REPO, SHARED, shared  # noqa: F401

MODELS = ["bard", "llava_llama_2_13b"]


@pytest.fixture(scope="module")
def problems():
  return mv.load(shared("mathvista", "testmini.json"))


def _score(problems, model, use_extraction):
  out = json.load(open(shared("mathvista", "results", f"output_{model}.json")))
  by_id, correct = {}, {}
  for p in problems:
    r = out[p.pid]
    q = by_id[p.pid] = mv.with_record(p, r)
    extraction = r["extraction"] if use_extraction else mv.extract(r["response"], q)
    correct[p.pid] = mv.judge(q, extraction)[1]
  return by_id, correct


def test_query_built_like_the_official(problems):
  official = json.load(open(shared("mathvista", "query.json")))
  assert len(problems) == 1000
  assert all(mv.build_query(p.raw) == official[p.pid] for p in problems)


@pytest.mark.parametrize("model", MODELS)
def test_stored_extraction_reproduces_published_scores_exactly(problems, model):
  published = json.load(open(shared("mathvista", "results", f"scores_{model}.json")))
  by_id, correct = _score(problems, model, use_extraction=True)
  assert mv.official_scores(by_id, correct) == published


@pytest.mark.parametrize("model", MODELS)
def test_gpt_free_extraction_within_one_point(problems, model):
  published = json.load(open(shared("mathvista", "results", f"scores_{model}.json")))
  by_id, correct = _score(problems, model, use_extraction=False)
  ours = mv.scores(by_id, correct)["all"]["accuracy"]
  assert abs(ours - float(published["average"]["accuracy"])) <= 1.0 + 1e-9, ours


CHOICES = ["6cm", "7cm", "4cm", "5cm"]


@pytest.mark.parametrize("extraction,expected", [
    ("", "6cm"),            # empty: the closest choice by edit distance (official behaviour)
    ("B", "7cm"), ("(b)", "7cm"), ("(B) 7cm", "7cm"), ("b", "6cm"),  # lower-case b is no letter
    ("5 cm", "5cm"), ("4", "4cm"),
])
def test_normalize_multi_choice(extraction, expected):
  assert mv.normalize(extraction, CHOICES, "multi_choice", "text", None) == expected


@pytest.mark.parametrize("extraction,atype,precision,expected", [
    ("3", "integer", None, "3"), ("3.0", "integer", None, "3"), ("3.9", "integer", None, "3"),
    ("1,000", "integer", None, None), ("abc", "integer", None, None), ("", "integer", None, None),
    ("1.25", "float", 1, "1.2"), ("1.26", "float", 1, "1.3"), ("2", "float", 2, "2.0"),
    ("[1, 2, 3]", "list", None, "[1, 2, 3]"), (None, "float", 1, None),
])
def test_normalize_free_form(extraction, atype, precision, expected):
  assert mv.normalize(extraction, None, "free_form", atype, precision) == expected


def _problem(qtype, atype, choices=(), answer="1"):
  raw = {"pid": "1", "question": "q", "question_type": qtype, "answer_type": atype,
         "choices": list(choices) or None, "precision": 1, "answer": answer, "unit": None}
  return mv.load_record(raw)


@pytest.mark.parametrize("response,expected", [
    ("The answer is (D).\n\nSince D is the midpoint ...", "D"),
    ("B", "B"), ("(C) 4cm", "C"), ("\\boxed{A}", "A"),
    ("Based on the given information, the length of AC is 5cm.", "5cm"),
    ("", ""),
])
def test_extract_multi_choice(response, expected):
  assert mv.extract(response, _problem("multi_choice", "text", CHOICES)) == expected


@pytest.mark.parametrize("response,expected", [
    ("The total is 1,000 dollars.", "1000"), ("So the answer is 5", "5"),
    ("Therefore, the median number of guests is **4**.\n\nI hope this helps!", "4"),
    ("There are two sequences with negative scores.", "2"),
    ("The value is \\boxed{\\frac{3}{4}}", "0.75"),
])
def test_extract_free_form(response, expected):
  assert mv.extract(response, _problem("free_form", "integer")) == expected



def _free(atype, answer, precision=1):
  return mv.load_record({"pid": "1", "question": "q", "question_type": "free_form",
                         "answer_type": atype, "precision": precision, "answer": answer,
                         "unit": None})


@pytest.mark.parametrize("response,atype,gold", [
    ("√3", "float", "1.7"), ("The answer is √3.", "float", "1.7"), ("Answer: √3", "float", "1.7"),
    ("The length of AB is 2√3.", "float", "3.5"), ("So the side is √3/2 cm.", "float", "0.9"),
    ("1.5e3", "integer", "1500"), ("The answer is 1.5e3.", "integer", "1500"),
    ("\\boxed{2.5E-3}", "float", "0.0"),
    ("negative 5", "integer", "-5"), ("The answer is negative 5.", "integer", "-5"),
    ("Therefore, the change is minus 12 degrees.", "integer", "-12"),
    ("The answer is negative five.", "integer", "-5"), ("So x is **√3**.", "float", "1.7"),
    ("The drop is **negative 5** units.", "integer", "-5")])
def test_a_value_written_as_a_root_in_e_notation_or_with_a_signed_word(response, atype, gold):
  """A final answer written `√3`, `1.5e3` or "negative 5" is valued: before, `√3` read as
  nothing, `1.5e3` as 1.5 and "negative 5" as 5, all scored wrong."""
  problem = _free(atype, gold)
  assert mv.judge(problem, mv.extract(response, problem))[1], mv.explain(response, problem)


@pytest.mark.parametrize("response,expected", [
    ("The answer is 5", "5"), ("10 minus 3, we get", "10"),
    ("10 minus 3 leaves 7", "7"),   # the signed word is no -3; "leaves" gives the result
    ("A 4√2 cm diagonal fits 6 squares.", "6"),
    ("The answer is 5 cm", "5"), ("There are two sequences with negative scores.", "2")])
def test_other_shapes_read_as_before(response, expected):
  assert mv.extract(response, _free("integer", "1")) == expected

def test_stored_extractions_score_without_any_response_text(problems):
  """With --use_extraction_field a record needs its `extraction`, not its text: a file of
  extractions alone scores as with its responses (and each record is counted as textless)."""
  from mathvlm.eval import score
  out = json.load(open(shared("mathvista", "results", "output_bard.json")))
  full = [out[p.pid] for p in problems[:50]]
  bare = [{"pid": r["pid"], "extraction": r["extraction"]} for r in full]
  with_text, _ = score.score_responses("mathvista", problems, full, use_extraction_field=True)
  without, _ = score.score_responses("mathvista", problems, bare, use_extraction_field=True)
  assert without["all"] == with_text["all"] and without["without_text"] == 50
