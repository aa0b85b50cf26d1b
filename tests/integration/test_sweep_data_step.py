"""launch/sweep.py end to end with a data step and an evaluator: each run selects its data
(`data_prep.select` on a scores file, into the run's folder), trains the tiny model on exactly that
selection of a built dataset (`data.subset`), is evaluated at the end (`heldout_loss`, through
`config.evals`), and the collected table and seed summary carry the evaluator's numbers. Slow
(four tiny runs in subprocesses); tests/unit/test_sweep_recipe.py checks the same paths quickly."""

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from train_utils import ROOT, run_python  # noqa: F401

CONFIG = """
from mathvlm.configs import sft
def get_config(arg=None):
  c = sft.get_config("model=tiny")
  c.data.name, c.data.path, c.data.tokenizer = "llava_json", "{data}", "{tok}"
  c.steps, c.data.global_batch, c.data.max_len = 3, 4, 96
  c.data.template = "mistral_instruct"
  c.checkpoint.use_async, c.metrics.tensorboard = False, False
  with c.unlocked():
    c.evals.held = dict(type="heldout_loss", name="llava_json", path="{data}", batch=4)
  return c
"""

SWEEP = """
BASE = "{config}"
X = "size"
METRICS = {{"eval/held/loss": "held-out loss"}}
def get_sweep():
  return [{{"size": n, "config.seed": s}} for n in (4, 8) for s in (0, 1)]
def prepare(run, data_dir):
  return ([["python", "-m", "data_prep.select", "--scores", "{scores}", "--ratio", "random",
            "--size", str(run["size"]), "--seed", str(run["config.seed"]), "--qa_per_image", "1",
            "--out", data_dir]], {{"config.data.subset": data_dir + "/selected.jsonl"}})
"""


@pytest.mark.slow
def test_sweep_selects_trains_evaluates_and_summarises(tmp_path):
  from data_prep import llava_json
  from mathvlm.demo.data import add_bos, train_tokenizer
  (tmp_path / "img").mkdir()
  recs, scores = [], []
  for i in range(12):
    Image.fromarray(np.full((20, 20, 3), 20 * i, np.uint8)).save(tmp_path / f"img/{i}.png")
    ids = [f"im{i}-q{k}" for k in range(3)]
    recs += [{"id": q, "image": f"{i}.png", "conversations": [
        {"from": "human", "value": f"<image>\nWhat is shade {i} {k}?"},
        {"from": "gpt", "value": f"The answer is {i + k}."}]} for k, q in enumerate(ids)]
    scores.append({"id": f"im{i}", "source": "s", "clarity": 1, "complexity": i % 4,
                   "records": ids})
  (tmp_path / "qa.json").write_text(json.dumps(recs))
  (tmp_path / "scores.jsonl").write_text("".join(json.dumps(s) + "\n" for s in scores))
  llava_json.main(["--json", str(tmp_path / "qa.json"), "--images", str(tmp_path / "img"),
                   "--out", str(tmp_path / "data"), "--no_progress"])
  tok = train_tokenizer([r["conversations"][0]["value"] + r["conversations"][1]["value"]
                         for r in recs] * 3, 300)
  add_bos(tok)
  tok.save(str(tmp_path / "tokenizer.json"))
  config = tmp_path / "cfg.py"
  config.write_text(CONFIG.format(data=tmp_path / "data", tok=tmp_path / "tokenizer.json"))
  sweep = tmp_path / "sweep.py"
  sweep.write_text(SWEEP.format(config=config, scores=tmp_path / "scores.jsonl"))
  import subprocess
  res = subprocess.run([sys.executable, "launch/sweep.py", str(sweep), "--workdir",
                        str(tmp_path / "w")], cwd=ROOT, capture_output=True, text=True,
                       timeout=1200, env={**os.environ, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  rows = json.load(open(tmp_path / "w/results.json"))
  assert [r["status"] for r in rows] == ["done"] * 4
  for r in rows:
    chosen = [json.loads(x) for x in open(tmp_path / "w" / r["run"] / "data/selected.jsonl")]
    assert len(chosen) == r["size"] and all(len(c["records"]) == 1 for c in chosen)
    report = json.load(open(tmp_path / "w" / r["run"] / "data_report.json"))
    assert report["examples"] == r["size"]  # trained on exactly the selected records
    held = json.load(open(tmp_path / "w" / r["run"] / "eval.json"))["held"]
    assert r["eval/held/loss"] == held["loss"] and held["examples"] == 36 and held["step"] == 3
    assert held["tokens"] > 36 and 0 < held["loss"] < 20
  summary = json.load(open(tmp_path / "w/summary.json"))
  assert [(e["size"], len(e["eval/held/loss"]["values"])) for e in summary] == [(4, 2), (8, 2)]
  assert (tmp_path / "w/summary.png").exists()
  again = subprocess.run([sys.executable, "launch/sweep.py", str(sweep), "--workdir",
                          str(tmp_path / "w")], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHONPATH": ROOT})
  assert again.stdout.count("finished earlier, skipped") == 4
