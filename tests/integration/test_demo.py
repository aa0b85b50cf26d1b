"""`python -m mathvlm.demo --quick`: the main job's whole path (engine data, tokenizer, ArrayRecord,
five training stages with the real trainer (the MAVIS four, then GRPO on problems the engine
makes as it trains), held-out evaluation after each, MATH-Vision testmini
on the real files, REPORT.md with plots) from a clean output folder. Too short to learn much, so
it checks that every number is measured and consistent, not that it is high."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from train_utils import ROOT, long_run_env

from shared_data import shared  # noqa: F401  (fails when ../shared/data is missing)


@pytest.mark.long(260)  # in the suite, from an empty compilation cache
def test_quick_demo_end_to_end(tmp_path):
  out = tmp_path / "demo"
  res = subprocess.run([sys.executable, "-m", "mathvlm.demo", "--quick", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env=long_run_env())
  assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
  for step in range(1, 10):
    assert f"[{step}/9]" in res.stdout
  s = json.load(open(out / "summary.json"))
  n_test = s["engine"]["test"]["n"]
  assert s["engine"]["train"]["n"] == 160 and n_test == 24
  assert s["built"]["instruct_train"] == 160 and s["built"]["caption_test"] == 24
  assert s["built"]["preferences"] == s["dpo_pairs"]["pairs"] > 0
  pairs = s["dpo_pairs"]  # every answer counted once: right, empty (not paired) or a pair
  assert pairs["correct"] + pairs["empty"] + pairs["pairs"] == pairs["responses"] == 48
  for when in ("before", "after"):
    r = s["retrieval"][when]
    assert r["pairs"] == 24 and not r["dropped"]
    assert 0 <= r["image_to_caption_top1"] <= r["image_to_caption_top5"] <= 1
  assert list(s["evals"]) == list(s["ranked"]) == ["align", "sft", "dpo", "grpo"]
  for acc in [*s["evals"].values(), *s["ranked"].values()]:
    assert acc["all"]["total"] == 3 * n_test  # three question versions per problem
    assert sum(acc[f"domain/{d}"]["total"] for d in ("plane", "analytic", "function")) == 3 * n_test
    assert acc["type/multiple-choice"]["total"] + acc.get("type/free-form", {"total": 0})[
        "total"] == 3 * n_test
  rows = [json.loads(x) for x in open(out / "3_sft/held_out.jsonl")]
  assert sum(r["correct"] for r in rows) == s["evals"]["sft"]["all"]["correct"]
  assert sum(r["ranked_correct"] for r in rows) == s["ranked"]["sft"]["all"]["correct"]
  for r in rows:  # a ranked pick for every multiple-choice question, none for free-form
    assert (r["ranked"] in "ABCDEFGH" and r["ranked"] != "") == (r["answer"] in list("ABCDEFGH"))
    assert r["ranked_correct"] == (r["ranked"] == r["answer"] if r["ranked"] else r["correct"])
  sft = s["training"]["3 instruction tuning"]
  assert sft["last_loss"] < sft["first_loss"]
  check_grpo(out, s)
  b = s["baselines"]  # issue 14: distractors no longer favour the old slip rule (at chance)
  rules = [k for k in b if k.startswith("choices_only")]
  assert "choices_only_rule" in rules and len(rules) >= 10
  assert 0 <= b["random"] <= 100 and all(0 <= b[k] <= 100 for k in rules)  # percent
  check_dynamic(out, s)
  assert s["math_v"]["all"]["total"] == 32  # --quick scores the first 32 of the 304
  report = open(out / "REPORT.md").read()
  for heading in ("## Stage 1: CLIP-Math", "## Stages 2-5", "## Stage 5: GRPO",
                  "## Dynamic engine benchmark", "## MATH-Vision testmini"):
    assert heading in report
  for png in ("losses.png", "accuracy.png", "grpo.png"):
    assert open(out / png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  check_confirm(out)


def check_confirm(out):
  """mathvlm.demo.confirm: new held-out problems (never the demo's), answered by two stages and
  compared question by question."""
  run = lambda seed, stages="sft,grpo": subprocess.run(
      [sys.executable, "-m", "mathvlm.demo.confirm", "--demo", str(out), "--n", "6", "--seed",
       str(seed), "--stages", stages, "--batch", "18"], cwd=ROOT, capture_output=True,
      text=True, timeout=600, env=long_run_env())
  assert "the demo's own" in run(0).stderr  # seed 0 would be the demo's held-out set again
  assert "not demo stages" in run(1, "sft,rlhf").stderr
  res = run(1)
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  c = json.load(open(out / "confirm_seed1/summary.json"))
  assert c["questions"] == 18 and c["repeats_of_the_demos_held_out"] == 0
  own = {json.loads(x)["pid"] for x in open(out / "3_sft/held_out.jsonl")}
  for stage in ("sft", "grpo"):
    rows = [json.loads(x) for x in open(out / f"confirm_seed1/{stage}.jsonl")]
    assert len(rows) == 18 and not own & {r["pid"] for r in rows}
    assert c["accuracy"][stage]["all"] == round(100 * sum(r["correct"] for r in rows) / 18, 2)
  pair = c["paired"]["grpo_vs_sft"]["all"]
  assert pair["questions"] == 18 and pair["gained"] + pair["lost"] <= 18
  res = subprocess.run(
      [sys.executable, "-m", "mathvlm.demo.confirm", "--demo", str(out), "--n", "6", "--seed",
       "1", "--stages", "sft", "--batch", "18", "--option_kinds", "mixed", "--ranked"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, env=long_run_env())
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  assert json.load(open(out / "confirm_seed1/engine/meta.json"))["option_kinds"] == "same"
  mixed = out / "confirm_seed1_mixed"  # beside the demo's own sets of the seed, not over them
  assert json.load(open(mixed / "engine/meta.json"))["option_kinds"] == "mixed"
  rows = [json.loads(x) for x in open(mixed / "sft.jsonl")]
  mc = [r for r in rows if r["answer"] in "ABCD"]
  assert mc and all(r["ranked"] in "ABCD" and r["ranked_correct"] == (r["ranked"] == r["answer"])
                    for r in mc)
  assert json.load(open(mixed / "summary.json"))["accuracy"]["sft"][
      "multiple_choice_ranked"] == round(100 * sum(r["ranked_correct"] for r in mc) / len(mc), 2)


def check_grpo(out, s):
  """GRPO's 3 quick steps (2 prompts x 4 answers) from the DPO model: a reward, pass rates and
  the curriculum's level per step in the summary, as the trainer logged them; the held-out rows
  are the GRPO model's."""
  curve = s["grpo"]["curve"]
  logged = [json.loads(x) for x in open(out / "5_grpo/metrics.jsonl")]
  assert [r["step"] for r in curve] == [r["step"] for r in logged] == [1, 2, 3]
  for r, row in zip(curve, logged):
    assert r["reward/mean"] == row["reward/mean"] and 0 <= r["pass@1"] <= r["pass@4"] <= 1
    assert r["curriculum/level"] in (0.0, 1.0) and 0 <= r["groups/all_equal"] <= 1
  assert s["workdirs"]["grpo"].endswith("5_grpo")
  rows = [json.loads(x) for x in open(out / "5_grpo/held_out.jsonl")]
  assert sum(r["correct"] for r in rows) == s["evals"]["grpo"]["all"]["correct"]
  paired = s["grpo"]["paired"]["vs_sft"]
  assert paired["all"]["questions"] == len(rows)
  assert paired["all"]["gained"] - paired["all"]["lost"] == (
      s["evals"]["grpo"]["all"]["correct"] - s["evals"]["sft"]["all"]["correct"])


def check_dynamic(out, s):
  """The final model on 6 held-out seeds x 3 variants x 3 versions (DynaMath's scores): every
  seed kept, every question answered, the numbers those of the saved responses."""
  from mathvlm.eval import engine_dynamic
  dyn = s["dynamic"]
  assert dyn["seeds"] == s["settings"]["dynamic_seeds"] == 6 and dyn["variants"] == 3
  assert s["engine"]["dynamic"]["n"] == 6 * 3 and dyn["seen_in_training"]["seeds"] == 0
  assert dyn["questions"] == 6 * 3 * 3 and dyn["seed_questions"] == 6 * 3
  assert dyn["missing"] == 0
  assert sorted(dyn["version"]) == ["text_dominant", "text_lite", "vision_dominant"]
  for x in [dyn, *dyn["version"].values()]:
    assert 0 <= x["worst_case"] <= x["average"] <= 100 and 0 <= x["robustness"] <= 1
  assert 0 <= dyn["all_versions_worst_case"] <= dyn["worst_case"]
  assert 0 <= dyn["consistency"]["agreement"] <= 100 and dyn["consistency"]["groups"] == 18
  problems = engine_dynamic.load(str(out / "engine/dynamic/instruct.json"))
  rows = [json.loads(x) for x in open(out / "engine/dynamic/responses.jsonl")]
  again = engine_dynamic.evaluate(problems, {r["pid"]: r["response"] for r in rows}, variants=3)
  assert again["dynamic"]["average"] == dyn["average"]
  assert again["dynamic"]["worst_case"] == dyn["worst_case"]


def test_parity_check_runs(tmp_path):
  """`python -m mathvlm.demo.parity` (README): HF -> orbax -> Flax -> HF bit-exact, same logits,
  token-identical greedy decoding, on real MATH-Vision images."""
  res = subprocess.run([sys.executable, "-m", "mathvlm.demo.parity", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  s = json.load(open(tmp_path / "summary.json"))
  assert s["round_trip_exact"] and s["greedy_identical"] and s["logits_rel_diff"] < 1e-4


def test_paired_change_counts_flips_and_gives_the_exact_mcnemar_p():
  from mathvlm.demo.evaluate import paired_change
  row = lambda pid, answer, correct: {"pid": pid, "answer": answer, "correct": correct}
  before = [row("a", "5", False), row("b", "7", False), row("c", "B", False), row("d", "2", True),
            row("e", "3", True)]
  after = [row("a", "5", True), row("b", "7", True), row("c", "B", True), row("d", "2", True),
           row("e", "3", False)]
  assert paired_change(before, after) == dict(questions=5, gained=3, lost=1, p=0.625)
  # free-form only: c (an option letter) is left out; 2 gained, 1 lost: p = 1
  assert paired_change(before, after, free_form_only=True) == dict(questions=4, gained=2, lost=1,
                                                                   p=1.0)
  assert paired_change(before[:1], after[:1])["p"] == 1.0  # one flip: p = 1
  assert paired_change(before[3:4], after[3:4]) == dict(questions=1, gained=0, lost=0, p=1.0)


def test_retrieval_ranks_count_ties_as_misses():
  from mathvlm.demo.evaluate import ranks
  sim = np.array([[0.9, 0.1, 0.2],    # right one first: rank 0
                  [0.5, 0.5, 0.1],    # tied with another caption: a miss, rank 1
                  [0.3, 0.8, 0.4]])   # one above it: rank 1
  assert ranks(sim).tolist() == [0, 1, 1]
  assert ranks(sim.T).tolist() == [0, 1, 0]  # caption -> image: columns
  same = np.ones((4, 4))              # a collapsed tower: every caption ties
  assert ranks(same).tolist() == [3, 3, 3, 3]


def test_score_by_picked_options_keeps_free_form_generated():
  from mathvlm.eval.engine_heldout import score
  from mathvlm.eval.common import Problem
  mk = lambda pid, answer, choices: Problem(
      pid=pid, question="q", answer=answer, choices=choices, images=[], query="q",
      meta={"version": "text_lite"}, raw={"domain": "plane"})
  problems = [mk("a", "B", ["1", "2"]), mk("b", "A", ["3", "4"]), mk("c", "5", [])]
  responses = ["The answer is 2.", "The answer is 4.", "The answer is 5."]
  gen = score(problems, responses)["accuracy"]
  ranked = score(problems, responses, picks=["A", "A", ""])["accuracy"]
  assert gen["type/multiple-choice"]["correct"] == 1 and ranked["type/multiple-choice"][
      "correct"] == 1
  assert gen["type/free-form"]["correct"] == ranked["type/free-form"]["correct"] == 1
  assert score(problems, responses, picks=["B", "A", ""])["accuracy"]["all"]["correct"] == 3
