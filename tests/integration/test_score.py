"""data_prep.score: two tiny classifier checkpoints saved here (different image sizes) score real
engine images from a JSON file and from a built dataset; 4 fake CPU devices give the scores of 1
device, and both match the model applied to each image on its own; shared images are scored once
with all their record ids; unreadable images are listed, not dropped silently."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from random_models import random_model
from train_utils import cpu_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _save_classifier(folder, classes, size, seed):
  from flax import nnx

  from mathvlm import checkpoint
  from mathvlm.models.presets import TINY_VISION
  from mathvlm.models.classifier import ClassifierConfig, ImageClassifier
  vision = dataclasses.replace(TINY_VISION, image_size=size)
  cfg = ClassifierConfig(vision=vision, num_classes=classes)
  model = random_model(ImageClassifier, cfg, seed)  # numpy-drawn: no init compiles
  checkpoint.save_model(model, cfg, folder)
  return model


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
  """Engine images as a MathV360K-style JSON (two records share one image; one image is
  missing, one is not an image) and as a built llava_json dataset."""
  tmp = tmp_path_factory.mktemp("pool")
  eng = tmp / "engine"
  subprocess.run([sys.executable, "-m", "data_prep.engine", "--n", "9", "--out", str(eng),
                  "--seed", "5"], cwd=ROOT, check=True, capture_output=True)
  recs = []
  for r in json.load(open(eng / "instruct.json")):
    rel = f"{r['domain']}/images/{r['id']}.png"
    os.makedirs(eng / "pool" / r["domain"] / "images", exist_ok=True)
    shutil.copy(eng / r["image_vision_dominant"], eng / "pool" / rel)
    recs.append({"id": r["id"], "image": rel, "conversations": [
        {"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}]})
  recs.append(dict(recs[0], id="again"))  # a second QA record on the first image
  (eng / "pool" / "plane/images/broken.png").write_bytes(b"not a png")
  bad = [dict(recs[0], id="broken", image="plane/images/broken.png"),
         dict(recs[0], id="gone", image="plane/images/gone.png")]
  (tmp / "pool.json").write_text(json.dumps(recs + bad))
  (tmp / "good.json").write_text(json.dumps(recs))
  from data_prep import llava_json
  llava_json.main(["--json", str(tmp / "good.json"), "--images", str(eng / "pool"),
                   "--out", str(tmp / "data"), "--no_progress"])
  clarity = _save_classifier(str(tmp / "clarity_run" / "model"), 2, 56, 1)  # a trainer workdir
  complexity = _save_classifier(str(tmp / "complexity"), 4, 28, 2)
  return tmp, recs, {"clarity": clarity, "complexity": complexity}


def _score(tmp, data, out, devices, *extra):
  """Scores in a subprocess with `devices` fake CPU devices, or (devices=None) in this process."""
  args = ["--ckpt", f"clarity={tmp / 'clarity_run'}", "--ckpt", f"complexity={tmp / 'complexity'}",
          "--data", str(data), "--out", str(out), "--batch", "4", "--no_progress", *extra]
  if devices is None:
    from data_prep import score
    score.main(args)
  else:
    _subprocess(args, devices)
  lines = [json.loads(x) for x in open(out)]
  report = json.load(open(os.path.splitext(out)[0] + ".report.json"))
  return lines, report


def _subprocess(args, devices):
  env = {**os.environ, "PYTHONPATH": ROOT, **cpu_env(devices)}
  res = subprocess.run([sys.executable, "-m", "data_prep.score", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]


def _reference(models, image_path):
  """Each model on one image, eagerly: what the batched, sharded scorer must reproduce."""
  from flax import nnx
  from PIL import Image

  from mathvlm.data.image import preprocess
  out = {}
  for name, m in models.items():
    px = preprocess(Image.open(image_path), m.cfg.vision.image_size)[None]
    logits = nnx.jit(lambda m, x: m(x))(m, px)
    out[name] = np.exp(logits[0] - logits[0].max()) / np.exp(logits[0] - logits[0].max()).sum()
  return out


def test_four_devices_score_as_one_and_as_the_model(pool):
  tmp, recs, models = pool
  one, rep1 = _score(tmp, tmp / "pool.json", tmp / "one.jsonl", None, "--images",
                     str(tmp / "engine" / "pool"))
  four, rep4 = _score(tmp, tmp / "pool.json", tmp / "four.jsonl", 4, "--images",
                      str(tmp / "engine" / "pool"))
  assert (rep1["devices"], rep4["devices"]) == (1, 4) and rep4["batch"] == 4
  assert [x["id"] for x in one] == [x["id"] for x in four] == [r["image"] for r in recs[:9]]
  for a, b in zip(one, four):
    for name in ("clarity", "complexity"):
      np.testing.assert_allclose(a[f"{name}_probs"], b[f"{name}_probs"], atol=2e-6)
      assert a[name] == b[name] == int(np.argmax(a[f"{name}_probs"]))
  assert len(one[0]["clarity_probs"]) == 2 and len(one[0]["complexity_probs"]) == 4
  for line in one[:3]:
    ref = _reference(models, tmp / "engine" / "pool" / line["id"])
    for name in ("clarity", "complexity"):
      np.testing.assert_allclose(line[f"{name}_probs"], ref[name], atol=1e-5)
  assert one[0]["records"] == [recs[0]["id"], "again"]
  assert {x["source"] for x in one} == {"plane", "analytic", "function"}
  assert (rep1["records"], rep1["images"], rep1["scored"]) == (12, 11, 9)
  assert sorted(u["id"] for u in rep1["unreadable"]["ids"]) == [
      "plane/images/broken.png", "plane/images/gone.png"]


def test_built_dataset_is_scored_by_image_content(pool):
  tmp, recs, models = pool
  lines, rep = _score(tmp, tmp / "data" / "llava_json", tmp / "ds.jsonl", None)
  assert [x["id"] for x in lines] == [r["id"] for r in recs[:9]]
  assert lines[0]["records"] == [recs[0]["id"], "again"]
  for line, rec in list(zip(lines, recs))[:2]:
    ref = _reference(models, tmp / "engine" / "pool" / rec["image"])
    np.testing.assert_allclose(line["complexity_probs"], ref["complexity"], atol=1e-5)
  assert rep["records"] == 10 and rep["scored"] == 9
  part, rep = _score(tmp, tmp / "data" / "llava_json", tmp / "ds1.jsonl", None, "--shard", "1/3")
  assert [x["id"] for x in part] == [r["id"] for r in recs[3:6]]
  assert (rep["shard"], rep["images"], rep["pool_images"], rep["records"]) == ("1/3", 3, 9, 10)


def test_bad_ckpt_spec_names_the_fix(pool):
  from data_prep import score
  with pytest.raises(SystemExit, match="write LABEL=DIR"):
    score.main(["--ckpt", "somewhere", "--data", "x.json", "--out", "o.jsonl"])


def test_images_that_are_not_there_stop_the_run_by_name(pool, tmp_path, capsys):
  """A wrong --images scored nothing, every image "unreadable", and exited 0 with an empty
  scores file (select then said "no score lines"): no folder is refused before the models load,
  and a folder holding none of the images fails the run after its report lists them."""
  from data_prep import score
  tmp, recs, models = pool
  args = ["--ckpt", f"clarity={tmp / 'clarity_run'}", "--ckpt", f"complexity={tmp / 'complexity'}",
          "--data", str(tmp / "good.json"), "--out", str(tmp_path / "s.jsonl"), "--no_progress"]
  with pytest.raises(SystemExit):
    score.main(args + ["--images", str(tmp_path / "nowhere")])
  assert f"--images {tmp_path / 'nowhere'} is not a folder" in capsys.readouterr().err
  assert not (tmp_path / "s.report.json").exists()  # stopped before loading and scoring
  with pytest.raises(SystemExit, match=r"none of the 9 images could be read \(e.g. "
                                       r"FileNotFoundError.*is --images the folder"):
    score.main(args + ["--images", str(tmp)])  # the folder above the images' one
  report = json.load(open(tmp_path / "s.report.json"))
  assert (report["scored"], report["unreadable"]["count"]) == (0, 9)


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_workers_below_one_are_refused_by_name(workers):
  """`--workers 0` once ran as 1 without a word; no thread decodes at 0."""
  from data_prep import score
  with pytest.raises(SystemExit, match=f"--workers {workers}: .* 1 or more"):
    score.main(["--ckpt", "c=x", "--data", "x.json", "--out", "o.jsonl", "--workers", workers])



_BATCHES = """
import io, sys
from PIL import Image
from data_prep import score
def png():
  buf = io.BytesIO()
  Image.new("RGB", (8, 8), "red").save(buf, "PNG")
  return buf.getvalue()
items = [score.Item(f"i{k}", "S", [f"i{k}"], png) for k in range(3)]
print([len(chunk) for chunk, _ in score.batches(items, 2, {(8, "pad")}, int(sys.argv[1]))])
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_decoding_one_batch_ahead_finishes_with_one_worker(workers):
  """The batch ahead once ran on the decoding pool and waited there for its own items: with one
  worker, for ever. In a process of its own with a timeout, so that a regression fails, not
  hangs (the pool's threads would keep this one from exiting)."""
  res = subprocess.run([sys.executable, "-c", _BATCHES, str(workers)], cwd=ROOT, timeout=60,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stderr[-2000:]
  assert res.stdout.strip() == "[2, 1]"
