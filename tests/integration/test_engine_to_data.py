"""The engine's output is read by the data builders and the evaluation loader as the real MAVIS
release would be: nothing rejected, every version a record, answers intact."""

import json
import os
import subprocess
import sys

from train_utils import ROOT


def _run(*args):
  res = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stdout + res.stderr


def test_engine_output_builds_and_loads(tmp_path):
  eng, built = str(tmp_path / "engine"), str(tmp_path / "built")
  _run("data_prep.engine", "--domain", "all", "--n", "12", "--out", eng, "--seed", "4")
  _run("data_prep.mavis_instruct", "--src", f"{eng}/instruct.json", "--images", eng, "--out",
       built, "--no_progress")
  _run("data_prep.mavis_caption", "--json", f"{eng}/caption.json", "--images", eng, "--out",
       built, "--no_progress")
  problems = json.load(open(f"{eng}/instruct.json"))
  report = json.load(open(f"{built}/mavis_instruct/report.json"))
  assert report["bad"] == 0 and report["written"] == 3 * len(problems) == 36
  assert json.load(open(f"{built}/mavis_caption/report.json"))["written"] == 12

  from mathvlm.data.records import read
  from mathvlm.eval import engine_benchmark as eval_engine
  records = read(built, "mavis_instruct")
  answers = {p["id"]: p["answer"] for p in problems}
  for i in range(len(records)):
    rec = records[i]
    pid, version = rec["id"].rsplit("/", 1)
    assert version in ("text_dominant", "text_lite", "vision_dominant") and rec["image"]
    conv = json.loads(rec["conversations"])
    assert conv[0]["value"].startswith("<image>") and conv[1]["value"]
    if rec["answer_index"] < 0:
      assert rec["answer"] == answers[pid]
  loaded = eval_engine.load(f"{eng}/instruct.json")
  assert len(loaded) == 36 and all(os.path.exists(p.images[0]) for p in loaded)
