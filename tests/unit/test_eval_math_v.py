"""MATH-Vision: the official extraction and is_equal, checked on the published outputs."""

import json
import os

import pytest

from mathvlm.eval import math_v, score
from mathvlm.eval.common import Problem

from shared_data import REPO, SHARED, shared  # noqa: F401

MODELS = ["LLaVA-v1.5-7B", "Qwen-VL-Max-CoT", "SPHINX-v2"]


@pytest.fixture(scope="module")
def test_problems():
  return {p.pid: p for p in math_v.load(shared("math_v", "test.jsonl"))}


@pytest.mark.parametrize("model", MODELS)
def test_reextraction_reproduces_published_result(model, test_problems):
  rows = [json.loads(x) for x in open(shared("math_v", "outputs", f"{model}.jsonl"))]
  published = json.load(open(shared("math_v", "outputs", f"{model}_result.json")))
  correct = {r["id"]: math_v.judge(test_problems[r["id"]], math_v.extract(r["response"]))
             for r in rows}
  ours = math_v.official_scores(test_problems, correct)
  assert set(ours) == set(published)   # same "-all", "-levelN", subject, subject_levelN keys
  for key, value in published.items():
    c_pub, n_pub = math_v.parse_official(value)
    c_ours, n_ours = math_v.parse_official(ours[key])
    assert n_ours == n_pub, key
    assert abs(c_ours - c_pub) <= 1, (key, ours[key], value)
  assert ours["-all"] == published["-all"]


def _p(answer, options=()):
  return Problem(pid="x", question="", answer=answer, choices=list(options), images=[], query="",
                 meta={"level": 1, "subject": "algebra"}, raw={})


@pytest.mark.parametrize("response,expected", [
    ("The answer is \\boxed{60}.", "60"),
    ("Therefore, the most expensive bike is \\boxed{C}.", "c"),
    ("(B)\nbecause ...", "b"),
    ("so x is 12.", "12"),
    ("The answer is 7. Because", "7"),
    ("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed{0.5}", "\\frac{1}{2}"),           # the official quirk
    ("The answer is $45^\\circ$", "45"),
    ("", ""),
])
def test_extract(response, expected):
  assert math_v.extract(response) == expected


@pytest.mark.parametrize("answer,gold,options,ok", [
    ("b", "B", (), True),                        # case-insensitive letter
    ("(b)", "B", (), False),                     # is_equal itself does not strip "(b)" ...
    ("", "A", ("A", "B"), False),                # empty never matches
    ("\\frac{1}{2}", "0.5", (), True),           # numeric after LaTeX
    ("0.333", "\\frac{1}{3}", (), True),         # rounded to 2 decimals
    ("0.34", "\\frac{1}{3}", (), False),
    ("3.0", "3", (), True),
    ("(1,2)", "(1, 2)", (), True),               # tuples elementwise
    ("(3.0,4)", "(3,4)", (), False),             # ... with latex2sympy's int/float printing
    ("1,000", "1000", (), True),                 # latex2sympy's NUMBER reads "1,000" (issue 17)
    ("2\\sqrt{3}", "B", ("$\\sqrt{3}$", "$2\\sqrt{3}$"), True),   # the gold option's text
    ("8:5", "A", ("$8: 5$", "1"), True),
])
def test_judge(answer, gold, options, ok):
  assert math_v.judge(_p(gold, options), answer) is ok


def test_extract_then_judge_parenthesised_letter():
  # ... but extraction turns "(b)" into "b" first, so the full pipeline accepts it
  assert math_v.judge(_p("B"), math_v.extract("(B)")) is True


def test_load_rejects_bad_record(tmp_path):
  path = tmp_path / "bad.jsonl"
  path.write_text(json.dumps({"id": "1", "question": "q", "options": ["A", "B"], "answer": "Z",
                              "level": 1, "subject": "logic"}) + "\n")
  with pytest.raises(ValueError, match="bad.jsonl:1.*not one of the option"):
    math_v.load(str(path))


def test_a_repeated_id_in_the_responses_is_an_error_naming_it(test_problems):
  """The later record silently replaced the earlier: 2 records in the outputs, 1 in the totals."""
  p = test_problems["2"]
  records = [{"id": "2", "response": f"The answer is {p.answer}."}, {"id": "1", "response": "A"},
             {"id": "2", "response": "The answer is 123456."}]
  with pytest.raises(ValueError, match=r"1 ids have more than one response.*'2'.*dedupe"):
    score.score_responses("math_v", list(test_problems.values()), records)
  scores, outputs = score.score_responses("math_v", list(test_problems.values()), records[:2])
  assert scores["all"]["total"] == len(outputs) == 2


@pytest.fixture(scope="module")
def testmini():
  return {p.pid: p for p in math_v.load(shared("math_v", "testmini.jsonl"))}


def test_the_query_is_the_repos_direct_prompt(testmini):
  """As mathllm/MATH-V's `models/` (GPT4V.py `geninput`, Qwen-VL.py `process_example`) ask:
  the question with its `<image1>` tag, option texts as "(A) ..." lines, none where the options
  are the letters drawn in the image, then "Answer the question using a single word or phrase."
  We asked our own wording before (tags cut, a "Choices:" list of bare letters, "Answer with the
  option's letter from the given choices (A, B, C, D, E) directly.")."""
  end = "\nAnswer the question using a single word or phrase."
  assert testmini["4"].query == ("How many different digits can you find in this picture?\n"
                                 "<image1>\n" + end)
  assert testmini["26"].query.endswith("?\n<image1>\n" + end)   # options A-E: none listed
  assert testmini["27"].query == (
      "Theresa moves a pencil along the line. She starts at the arrow shown. In which order will "
      "she go past the shapes?\n<image1>\n(A) $\\Delta, \\square, \\bullet$\n"
      "(B) $\\Delta, \\bullet, \\square$\n(C) $\\bullet, \\Delta, \\square$\n"
      "(D) $\\square, \\Delta, \\bullet$\n(E) $\\square, \\bullet, \\Delta$\n" + end)
  assert all(p.query.startswith(p.question) and p.query.endswith(end) for p in testmini.values())


def test_the_cot_prompt_asks_for_a_boxed_answer(testmini):
  cot = {p.pid: p for p in math_v.load(shared("math_v", "testmini.jsonl"), prompt="cot")}
  assert cot["27"].query == (
      'Please solve the problem step by step and put your answer in one "\\boxed{}". If it is a '
      'multiple choice question, only one letter is allowed in the "\\boxed{}".\n'
      + testmini["27"].query[:-len("\nAnswer the question using a single word or phrase.")])
  assert cot["4"].query.endswith("picture?\n<image1>\n")
  with pytest.raises(ValueError, match="MATH-Vision prompt 'query_wo'"):
    math_v.load(shared("math_v", "testmini.jsonl"), prompt="query_wo")


@pytest.mark.parametrize("template,end", [("vicuna_v1", "\n ASSISTANT:"),
                                          ("mistral_instruct", "\n [/INST]")])
def test_the_model_sees_the_cot_prompt_whole_with_its_closing_newline(template, end):
  """The official CoT prompt (`geninput`, which the Qwen-VL-Max-CoT outputs were asked with)
  ends every question on a newline, after the options or the question; LLaVA's eval scripts pass
  a question as written. The chat template stripped the query, so the model saw "<image1>
  ASSISTANT:" where the official prompt has "<image1>\n"."""
  from mathvlm.eval import prompts
  cot = {p.pid: p for p in math_v.load(shared("math_v", "testmini.jsonl"), prompt="cot")}
  seen = prompts.format_prompt(cot["4"].query, template)
  assert seen.endswith("<image>\n" + cot["4"].query[:-1] + end)
  assert seen.endswith("picture?\n<image1>" + end)


def test_each_benchmark_is_asked_its_official_default_prompt():
  assert score.prompt_choice("math_v") == {"prompt": "direct"}
  assert score.prompt_choice("math_v", "cot") == {"prompt": "cot"}
  assert score.prompt_choice("mathverse") == {"prompt": "query_wo"}
  assert score.prompt_choice("mathvista") == {}
  with pytest.raises(ValueError, match="MATH-Vision prompts are"):
    score.prompt_choice("math_v", "query_wo")   # the old CLI default: no longer passed quietly
  with pytest.raises(ValueError, match="MathVista has one prompt"):
    score.prompt_choice("mathvista", "query_cot")
