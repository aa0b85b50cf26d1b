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


def test_an_image_path_under_another_field_is_malformed_for_the_scorer_as_for_the_builders(
    tmp_path):
  """A misspelled `image` (`images`, `image_path`) made the builders' record text-only until
  `common.record_images` refused it; the scorer kept its own rule and counted such a record as
  text-only (`no_image`), its image never scored. Now all three tools refuse it naming the field,
  and the scorer reports it among `malformed`; a record with no image path at all stays text-only,
  and one with its image under the fields given (--image_field) is scored."""
  conversations = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "4"}]
  recs = [{"id": "plural", "images": "A/images/a.png"}, {"id": "path", "image_path": ["b.jpg"]},
          {"id": "text"}, {"id": "dominant", "image_vision_dominant": "A/images/c.png"}]
  path = tmp_path / "pool.json"
  path.write_text(json.dumps([dict(r, conversations=conversations) for r in recs]))
  items, counts = score.items_from_json(str(path), str(tmp_path),
                                        ["image", "image_vision_dominant"])
  assert [it.id for it in items] == ["A/images/c.png"]
  assert [r["id"] for r in counts["no_image"]["ids"]] == ["text"]
  malformed = {r["id"]: r["detail"] for r in counts["malformed"]["ids"]}
  assert malformed.keys() == {"plural", "path"} and counts["malformed"]["count"] == 2
  assert malformed["plural"].startswith("no `image` or `image_vision_dominant` field, but "
                                        "`images` holds the image path 'A/images/a.png'")
  assert "`image_path` holds the image path ['b.jpg']" in malformed["path"]
  assert "--image_field" in malformed["path"]
  _, bad = augment.read_originals(str(path))
  assert {b["id"]: b["reason"] for b in bad if b["id"] in ("plural", "path")} == {
      "plural": "malformed_record", "path": "malformed_record"}
  with pytest.raises(common.BadRecord, match="`images` holds the image path"):
    common.record_images(recs[0], 1)
