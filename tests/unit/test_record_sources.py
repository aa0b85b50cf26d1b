"""One record, one source: the builder, the scorer and the augmenter read a record's source by
one rule (data_prep.common.source_of), so that select's per-source ratio, the built dataset and
the augmented questions group images the same way. They once had three rules: the scorer said
'unknown' for `GEOS/img.png` (the builder: GEOS), the builder ignored a `source` field (the
scorer took it), the augmenter ignored a `domain` field."""

import json

import pytest
from PIL import Image

from data_prep import augment, common, labelled_images, llava_json, score

RECORDS = [  # image path, extra fields, the source every tool gives
    ("GEOS/img0.png", {}, "GEOS"),
    ("A/images/img1.png", {"source": "Other"}, "Other"),
    ("A/images/img2.png", {"domain": "D"}, "D"),
    ("B/images/img3.png", {}, "B"),
]


def _sources(tmp_path, records):
  recs = []
  for i, (image, extra, _) in enumerate(records):
    (tmp_path / image).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), "red").save(tmp_path / image)
    recs.append({"id": f"r{i}", "image": image, **extra, "conversations": [
        {"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "4"}]})
  path = tmp_path / "recs.json"
  path.write_text(json.dumps(recs))
  options = {"images": str(tmp_path), "max_images": 1, "source": None}
  built = [llava_json.convert((f"r{i}", "", "", json.dumps(r)), options)[0]["source"]
           for i, r in enumerate(recs)]
  items, _ = score.items_from_json(str(path), str(tmp_path), ["image"])
  originals, bad = augment.read_originals(str(path))
  assert not bad
  return built, [it.source for it in items], [o.source for o in originals]


def test_builder_scorer_and_augmenter_give_a_record_one_source(tmp_path):
  built, scored, augmented = _sources(tmp_path, RECORDS)
  want = [s for _, _, s in RECORDS]
  assert built == want and scored == want and augmented == want


def test_an_image_in_no_folder_has_no_source():
  """The builder refuses it (a dataset's source is needed for its report); the others say
  'unknown'; --source or a source field gives one."""
  assert common.source_of({}, "img.png") is None and common.source_of({}, "/abs.png") is None
  with pytest.raises(common.BadRecord, match=r"'img.png' is not <Source>/images/<file>"):
    llava_json.convert(("k", "", "", json.dumps({"image": "img.png", "conversations": [
        {"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]})),
                       {"images": ".", "max_images": 1, "source": None})
  assert labelled_images.record_source({"domain": "D"}, None) == "D"
  assert labelled_images.record_source({}, None) == "labelled_images"
