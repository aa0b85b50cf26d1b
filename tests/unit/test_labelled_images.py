"""Labelled images: the builder on the data engine's real instruct.json, bad labels counted by
reason with ids, LabelSource's examples and drops. Training on them: tests/integration/
test_classify_on_labels.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data_prep import labelled_images
from mathvlm.data import records
from mathvlm.data.labels import NO_LABEL, LabelSource
from mathvlm.data.pipeline import DROPPED

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "labelled_images"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
  """12 real engine samples, a quarter of them degraded (clarity 0)."""
  out = tmp_path_factory.mktemp("engine")
  subprocess.run([sys.executable, "-m", "data_prep.engine", "--n", "12", "--out", str(out),
                  "--seed", "3", "--degrade", "0.25"], cwd=ROOT, check=True,
                 capture_output=True)
  return out


def read_all(out):
  ds = records.read(str(out), NAME)
  return [ds[i] for i in range(len(ds))]


def test_engine_instruct_json_builds_as_it_is(engine, tmp_path):
  rep = labelled_images.main(["--json", str(engine / "instruct.json"), "--images", str(engine),
                              "--labels", "clarity,complexity", "--num_classes", "2,4",
                              "--out", str(tmp_path), "--no_progress"])
  src = json.load(open(engine / "instruct.json"))
  assert (rep["total"], rep["written"], rep["bad"]) == (12, 12, 0)
  got = read_all(tmp_path)
  assert [r["id"] for r in got] == [s["id"] for s in src]
  assert [r["source"] for r in got] == [s["domain"] for s in src]
  assert [json.loads(r["labels"]) for r in got] == [
      {"clarity": s["clarity"], "complexity": s["complexity"]} for s in src]
  assert {s["clarity"] for s in src} == {0, 1}  # both classes are there to learn
  for r, s in zip(got, src):
    assert r["image"] == open(engine / s["image_vision_dominant"], "rb").read()


def test_bad_labels_are_counted_by_reason_with_ids(tmp_path):
  Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
  rows = [{"id": "ok", "image": "a.png", "complexity": 2},
          {"id": "missing", "image": "a.png"},
          {"id": "text", "image": "a.png", "complexity": "2"},
          {"id": "negative", "image": "a.png", "complexity": -1},
          {"id": "too_big", "image": "a.png", "complexity": 4},
          {"id": "boolean", "image": "a.png", "complexity": True},
          {"id": "no_image", "complexity": 1}]
  (tmp_path / "l.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
  rep = labelled_images.main(["--json", str(tmp_path / "l.jsonl"), "--images", str(tmp_path),
                              "--labels", "complexity", "--num_classes", "4", "--out",
                              str(tmp_path / "out"), "--no_progress", "--max_bad_fraction", "1"])
  assert (rep["written"], rep["bad"]) == (1, 6)
  bad = rep["by_reason"]["bad_label"]
  assert [r["id"] for r in bad["records"]] == ["missing", "text", "negative", "too_big",
                                              "boolean"]
  assert "outside 0..3" in bad["records"][3]["detail"] and "--num_classes" in bad["fix"]
  assert [r["id"] for r in rep["by_reason"]["malformed_record"]["records"]] == ["no_image"]
  assert "--image_field" in rep["by_reason"]["malformed_record"]["records"][0]["detail"]
  with pytest.raises(SystemExit, match="one positive class count per label"):
    labelled_images.main(["--json", str(tmp_path / "l.jsonl"), "--images", str(tmp_path),
                          "--labels", "clarity,complexity", "--num_classes", "4",
                          "--out", str(tmp_path / "x")])


def _colour_dataset(tmp_path, n=32):
  """Images whose colour is their label (so a classifier can learn it); every 8th has the label
  3, outside num_classes=3, for the drop checks."""
  colours = ["red", "green", "blue"]
  rows = []
  for i in range(n):
    label = i % 3 if i % 8 else 3
    Image.new("RGB", (20 + i % 5, 16), colours[label % 3]).save(tmp_path / f"{i}.png")
    rows.append({"id": f"r{i}", "image": f"{i}.png", "colour": label, "source": "toy"})
  (tmp_path / "c.json").write_text(json.dumps(rows))
  labelled_images.main(["--json", str(tmp_path / "c.json"), "--images", str(tmp_path),
                        "--labels", "colour", "--out", str(tmp_path / "data"), "--no_progress"])
  return records.read(str(tmp_path / "data"), NAME), rows


def test_label_source_examples_and_drops(tmp_path):
  ds, rows = _colour_dataset(tmp_path)
  src = LabelSource(ds, label="colour", image_size=28, num_classes=3)
  assert len(src) == len(rows)
  ex = src[1]
  assert ex["pixel_values"].shape == (28, 28, 3) and ex["pixel_values"].dtype == np.uint8
  assert ex["labels"].dtype == np.int32 and int(ex["labels"]) == 1
  assert str(ex[DROPPED]) == ""
  assert tuple(ex["pixel_values"][14, 14]) == (0, 128, 0)  # green, padded then resized
  dropped = src[0]  # label 3 with num_classes=3
  assert int(dropped["labels"]) == NO_LABEL and str(dropped[DROPPED]) == "label_range"
  src.dropped.clear()
  for i in range(len(src)):
    src[i]
  assert src.dropped == {"label_range": 4}
  with pytest.raises(ValueError, match=r"'complexity' is not in the dataset.*\['colour'\]"):
    LabelSource(ds, label="complexity", image_size=28, num_classes=3)


def test_records_whose_labels_are_not_a_json_object_are_counted_not_raised(tmp_path):
  """A damaged `labels` field (torn JSON, a list, none at all) used to raise JSONDecodeError or
  AttributeError inside a data worker; it is now a dropped example counted as bad_labels, and a
  dataset whose first record is damaged is refused with the builder to rerun."""
  ds, _ = _colour_dataset(tmp_path)
  good = dict(ds[1])
  damaged = [dict(good, labels='{"colour": 1'), dict(good, labels="[1, 2]"),
             {k: v for k, v in good.items() if k != "labels"}]
  src = LabelSource([good] + damaged, label="colour", image_size=28, num_classes=3)
  assert int(src[0]["labels"]) == 1
  for i in (1, 2, 3):
    ex = src[i]
    assert int(ex["labels"]) == NO_LABEL and str(ex[DROPPED]) == "bad_labels"
  assert src.dropped == {"bad_labels": 3}
  with pytest.raises(ValueError, match="first record has no `labels` JSON object.*labelled_images"):
    LabelSource(damaged, label="colour", image_size=28, num_classes=3)


def test_a_record_without_an_image_is_counted_as_such_not_as_a_broken_image(tmp_path):
  """A text-only record (image b"") was counted as bad_image, whose advice is to rebuild a
  dataset that has nothing broken in it."""
  ds, _ = _colour_dataset(tmp_path)
  good = dict(ds[1])
  src = LabelSource([good, dict(good, image=b""), dict(good, image=b"not a png")],
                    label="colour", image_size=28, num_classes=3)
  assert [str(src[i][DROPPED]) for i in range(3)] == ["", "no_image", "bad_image"]
  assert src.dropped == {"no_image": 1, "bad_image": 1}
