"""The engine as a dynamic benchmark: variants of seed problems scored with DynaMath's metrics,
per question version, with consistency across versions; the math-verify judge as an option.

Fixture (hand-written, in the engine's format with `variant_of`/`variant`): seed geo-0001
(multiple choice; text dominant right in all 3 variants, vision dominant wrong in variant 1) and
seed fn-0002 (free form, no record ids; text dominant right in all 3, text lite wrong in
variant 1, and "3.46" for 2*sqrt(3) in variant 0, right by value, wrong for math-verify)."""

import json
import os

import pytest

from mathvlm.eval import answers, engine_benchmark, engine_dynamic, score

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "eval_fixtures")


@pytest.fixture(scope="module")
def problems():
  return engine_dynamic.load(os.path.join(FIXTURES, "engine_dynamic.json"))


@pytest.fixture(scope="module")
def responses():
  rows = score.read_records(os.path.join(FIXTURES, "engine_dynamic_responses.jsonl"))
  return {r["pid"]: r["response"] for r in rows}


def test_variants_are_read(problems):
  assert len(problems) == 12
  p = {q.pid: q for q in problems}["fn-0002#v1:text_lite"]
  assert (p.meta["seed"], p.meta["variant"], p.answer) == ("fn-0002", 1, "4")


def test_dynamic_metrics(problems, responses):
  out = engine_dynamic.evaluate(problems, responses)
  assert out["all"] == {"correct": 10, "total": 12, "accuracy": 83.33}
  d = out["dynamic"]
  assert (d["average"], d["worst_case"], d["seeds"]) == (83.33, 50.0, 4)
  assert d["robustness"] == pytest.approx(0.6, abs=1e-3)
  assert d["variants_per_seed"] == [3, 3]
  v = out["version"]
  assert v["text_dominant"]["dynamic"]["worst_case"] == 100.0
  assert v["vision_dominant"]["accuracy"] == 66.67
  assert v["vision_dominant"]["dynamic"]["worst_case"] == 0.0
  assert out["all_versions_worst_case"] == 0.0
  # versions agree in geo v0 and v2, and fn v0 (2*sqrt(3) and 3.46, its value to two places)
  # and v2 ("6" and "6.0"): agreement is by value (consistency.same)
  assert out["consistency"]["groups"] == 6
  assert out["consistency"]["agreement"] == pytest.approx(66.67)
  assert out["missing"] == 0


def test_fewer_variants_and_missing_responses(problems, responses):
  out = engine_dynamic.evaluate(problems, responses, variants=2)
  assert out["all"]["total"] == 8 and out["dynamic"]["variants_per_seed"] == [2, 2]
  partial = {k: v for k, v in responses.items() if not k.startswith("fn-0002#v2")}
  assert engine_dynamic.evaluate(problems, partial)["missing"] == 2


def test_math_verify_judge_is_stricter_about_rounding(problems, responses):
  out = engine_dynamic.evaluate(problems, responses, judge_name="math_verify")
  assert out["all"]["correct"] == 9


@pytest.mark.parametrize("answer,gold,value,mv", [
    ("2*sqrt(3)", "2*sqrt(3)", True, True),
    ("\\frac{8\\sqrt{3}}{3}", "8*sqrt(3)/3", True, True),    # LaTeX: both read it
    ("y=1+2x", "y = 2*x + 1", False, True),                   # an equation, symbolically
    ("4.62", "8*sqrt(3)/3", True, False),                      # rounded: by value only
    ("5", "4", False, False), ("", "4", False, False),
])
def test_math_verify_next_to_the_value_judge(answer, gold, value, mv):
  assert answers.engine_correct(answer, gold, []) is value
  assert answers.math_verify_correct(answer, gold, []) is mv


def test_unknown_judge_is_named(problems):
  with pytest.raises(ValueError, match="unknown engine judge 'gpt'"):
    engine_benchmark.judge(problems[0], "C", "gpt")


def test_duplicate_ids_are_an_error(tmp_path):
  rec = {"id": "g", "choices": ["1", "2"], "answer_index": 0,
         "text_en": {"text_lite_question": "q"}}
  path = tmp_path / "dup.json"
  path.write_text(json.dumps([rec, rec]))
  with pytest.raises(ValueError, match="record 1: id g appears twice"):
    engine_dynamic.load(str(path))


def test_score_cli_engine_dynamic(tmp_path, capsys):
  out = tmp_path / "s.json"
  score.main(["--benchmark", "engine_dynamic",
              "--annotations", os.path.join(FIXTURES, "engine_dynamic.json"),
              "--responses", os.path.join(FIXTURES, "engine_dynamic_responses.jsonl"),
              "--out", str(out), "--variants", "2", "--engine_judge", "math_verify"])
  printed = json.loads(capsys.readouterr().out)
  assert printed["dropped_problems"] == 4 and printed["dropped_responses"] == 4
  scores = json.loads(out.read_text())
  assert scores["dynamic"]["seeds"] == 4 and "consistency" in scores
  assert "worst case" in (tmp_path / "s.md").read_text()
