"""The classifier trains through the trainer on a built labelled-image dataset
(`configs/classify.py:data=labelled_images,label=...`, read by `mathvlm.data.labels.LabelSource`),
on all of it and on a selection (`data.subset`). A subprocess, so XLA's optimisation can be turned
off for these tiny programs (compiles ~2x faster)."""

import json
import os

import numpy as np

from train_utils import cpu_env, metrics, run_python

FAST = cpu_env()

TRAIN = r"""
import sys
from mathvlm.train import train
from train_utils import tiny_config

train(tiny_config("classify", "model=tiny,classes=3,data=labelled_images,label=colour", steps=8,
                  optim__lr=3e-3, data__path=sys.argv[1], data__subset=sys.argv[3]), sys.argv[2])
"""


def test_classifier_trains_on_labelled_images(tmp_path):
  from data_prep import labelled_images
  from PIL import Image
  rows = []
  for i in range(32):  # the colour is the label; every 8th label is 3, outside classes=3
    label = i % 3 if i % 8 else 3
    Image.new("RGB", (20 + i % 5, 16), ["red", "green", "blue"][label % 3]).save(
        tmp_path / f"{i}.png")
    rows.append({"id": f"r{i}", "image": f"{i}.png", "colour": label})
  (tmp_path / "c.json").write_text(json.dumps(rows))
  labelled_images.main(["--json", str(tmp_path / "c.json"), "--images", str(tmp_path),
                        "--labels", "colour", "--out", str(tmp_path / "data"), "--no_progress"])
  run_python(TRAIN, str(tmp_path / "data"), str(tmp_path / "run"), "", env=FAST)
  got = metrics(str(tmp_path / "run"))
  assert len(got) == 8 and all(np.isfinite(r["loss"]) for r in got)
  assert np.mean([r["loss"] for r in got[-3:]]) < np.mean([r["loss"] for r in got[:3]])
  report = json.load(open(tmp_path / "run" / "data_report.json"))
  assert report["examples"] == 32 and report["dropped"]["label_range"] > 0
  assert os.path.exists(tmp_path / "run" / "model" / "config.json")
  # data.subset: a selection trains on exactly its ids (none of them with the bad label 3)
  keep = [f"r{i}" for i in range(32) if i % 8 and i % 2]
  (tmp_path / "selected.jsonl").write_text("".join(json.dumps({"id": k}) + "\n" for k in keep))
  run_python(TRAIN, str(tmp_path / "data"), str(tmp_path / "subset"),
             str(tmp_path / "selected.jsonl"), env=FAST)
  report = json.load(open(tmp_path / "subset" / "data_report.json"))
  assert (report["examples"], report["dropped"]) == (len(keep), {})
  assert report["trained"] + report["untrained"] == len(keep) * report["epochs"]
