"""GPT-free scoring against the official GPT-based judgement, item by item, on the development
files in ../shared/data (the issue's bar: at least 97% of non-empty responses judged alike, the
score within 1.0 point; MATH-Vision's published counts exactly)."""

import pytest

from benchmarks import eval_agreement as agreement
from mathvlm.eval import math_v, mathvista

from shared_data import shared


@pytest.fixture(scope="module")
def base():
  return {p.pid: p for p in mathvista.load(shared("mathvista", "testmini.json"))}


@pytest.mark.parametrize("model", ["bard", "llava_llama_2_13b"])
def test_mathvista_item_level_agreement(base, model):
  out = agreement.mathvista_file(shared("mathvista", "results", f"output_{model}.json"), base)
  assert out["stored_extraction_exact"] is True
  assert out["agreement_non_empty"] >= 97.0, out
  assert abs(out["diff"]) <= 1.0
  assert sum(k["items"] for k in out["by_kind"].values()) == out["non_empty"]


def test_math_v_item_level_agreement():
  problems = {p.pid: p for p in math_v.load(shared("math_v", "test.jsonl"))}
  out = agreement.math_v_file(shared("math_v", "outputs", "LLaVA-v1.5-7B.jsonl"), problems)
  assert out["agreement"] == 100.0 and out["max_key_diff"] == 0 and out["same_keys"]
