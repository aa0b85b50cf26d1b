"""`python -m mathvlm.demo --rejected engine`: stage 4's pairs from the engine's wrong rationales
for the problems the model's own answers would have been sampled on, with the same prompts and
chosen answers, so the two demos differ in the rejected side alone."""

import argparse
import json
import os

from data_prep.engine import dpo_pairs
from mathvlm.demo import data, report
from mathvlm.demo.__main__ import ANSWER, QUICK, VERSIONS, Demo, engine_pairs
from mathvlm.eval import engine_benchmark


def test_engine_pairs_are_the_model_pools_problems_with_the_engines_rejected_side(tmp_path):
  out = str(tmp_path)
  args = argparse.Namespace(seed=0, workers=1, quick=True, rejected="engine")
  d = Demo(args, dict(QUICK, dpo_problems=20), out)
  data.engine_set(f"{out}/engine/train", 30, 0, 1, "train")  # the demo's training problems
  folder, stats = engine_pairs(d)
  rows = [json.loads(line) for line in open(f"{folder}/dpo_pairs.jsonl")]
  assert stats["problems"] == 20 and stats["pairs"] == len(rows) >= 15, stats
  assert stats["no_wrong_rationale"] + stats["pairs"] == 20
  # the pool `model_pairs` samples the model on: the first 20 problems, text-lite version
  pool = [p for p in engine_benchmark.load(f"{out}/engine/train/instruct.json")
          if p.meta["version"] == VERSIONS[0]][:20]
  train = {r["id"]: r for r in json.load(open(f"{out}/engine/train/instruct.json"))}
  assert {row["id"].split(":")[0] for row in rows} <= {p.meta["group"] for p in pool}
  for row in rows:
    rec = train[row["id"].split(":")[0]]  # the problem as the demo trained on it
    assert row["chosen"] == dpo_pairs.chosen_text(rec, ANSWER) and row["answer"] == rec["answer"]
    assert row["rejected"] != row["chosen"] and row["id"].endswith(":" + VERSIONS[0])
    image = row["image"]
    assert open(f"{folder}/{image}", "rb").read() == open(f"{out}/engine/train/{image}",
                                                           "rb").read()
  said = report.dpo_pairs_said(dict(stats, rejected="engine"))
  assert f"became {stats['pairs']}" in said and "wrong rationale" in said
  assert os.path.exists(f"{folder}/made_by.json")
  assert json.load(open(f"{folder}/made_by.json"))["wrong_rationales"] is True
