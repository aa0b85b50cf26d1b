"""`python -m mathvlm.eval.score` end to end on the real published files."""

import json
import os
import subprocess
import sys

import pytest

from shared_data import REPO, SHARED, shared  # noqa: F401


def _cli(*args):
  out = subprocess.run([sys.executable, "-m", "mathvlm.eval.score", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_score_math_v(tmp_path):
  res = _cli("--benchmark", "math_v",
             "--responses", shared("math_v", "outputs", "SPHINX-v2.jsonl"),
             "--annotations", shared("math_v", "test.jsonl"),
             "--out", str(tmp_path / "scores.json"))
  scores = json.load(open(tmp_path / "scores.json"))
  assert scores["all"] == {"correct": 295, "total": 3040, "accuracy": 9.7}
  assert res["all"] == scores["all"]
  published = json.load(open(shared("math_v", "outputs", "SPHINX-v2_result.json")))
  assert json.load(open(tmp_path / "scores_result.json")) == published
  assert scores["official"]["-all"] == published["-all"]
  lines = [json.loads(x) for x in open(tmp_path / "scores_outputs.jsonl")]
  assert len(lines) == 3040 and set(lines[0]) == {"id", "response", "model_answer", "correct"}
  assert "| level1 |" in open(tmp_path / "scores.md").read()
  assert open(tmp_path / "scores.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_score_mathvista_with_stored_extraction(tmp_path):
  _cli("--benchmark", "mathvista",
       "--responses", shared("mathvista", "results", "output_llava_llama_2_13b.json"),
       "--annotations", shared("mathvista", "testmini.json"),
       "--out", str(tmp_path / "scores.json"), "--use_extraction_field")
  scores = json.load(open(tmp_path / "scores.json"))
  published = json.load(open(shared("mathvista", "results", "scores_llava_llama_2_13b.json")))
  assert scores["official"] == published
  assert scores["all"]["correct"] == published["average"]["correct"]
  for key in ("question_type", "answer_type", "language", "source", "category", "task",
              "context", "grade", "skills"):
    assert {k: v["correct"] for k, v in scores[key].items()} == {
        k: v["correct"] for k, v in published[key].items()}, key
  outputs = json.load(open(tmp_path / "scores_outputs.json"))   # the official output format
  assert len(outputs) == 1000
  assert {"response", "extraction", "prediction", "true_false"} <= set(outputs["1"])


def test_score_rejects_wrong_annotations(tmp_path):
  out = subprocess.run([sys.executable, "-m", "mathvlm.eval.score", "--benchmark", "math_v",
                        "--responses", shared("math_v", "outputs", "SPHINX-v2.jsonl"),
                        "--annotations", shared("math_v", "testmini.jsonl"),
                        "--out", str(tmp_path / "s.json")], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode != 0 and "not in the annotations" in out.stderr
