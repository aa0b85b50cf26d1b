"""Labelled-image records (what `data_prep.labelled_images` writes) -> the classify objective's
examples: Math-LLaVA's clarity and complexity scorers train on these.

Record i -> `pixel_values` uint8 [H, W, 3] (padded or resized, as the other sources: the trainer
normalises on device) and `labels` int32, the record's label named `label`. An example that
cannot be used (an undecodable image, labels that are not a JSON object, a label outside
0..num_classes-1) keeps its slot, so
indices and resumption stay exact, with `labels` -1 (one_hot(-1) is all zeros: its cross-entropy
is 0) and is counted by reason in `dropped` and in the example's `DROPPED` field. A label name
the dataset does not have is an error at construction, not a dataset of dropped examples.
"""

from __future__ import annotations

import collections
import io
import json

import numpy as np
from PIL import Image

from mathvlm.data.image import UNDECODABLE, to_pixels
from mathvlm.data.pipeline import DROPPED, mark_dropped

NO_LABEL = -1


def record_labels(rec: dict) -> dict | None:
  """The record's labels as a dict, or None when its `labels` field is missing or not a JSON
  object (a damaged record is counted where it is read, not raised from a data worker)."""
  labels = rec.get("labels")
  if isinstance(labels, (str, bytes)):
    try:
      labels = json.loads(labels)
    except ValueError:
      return None
  return labels if isinstance(labels, dict) else None


class LabelSource:
  """Random-access source (len, getitem) of classify examples from labelled-image records."""

  def __init__(self, records, *, label: str, image_size: int, num_classes: int,
               aspect: str = "pad"):
    if num_classes < 1:
      raise ValueError(f"num_classes={num_classes}: a classifier needs at least one class")
    self.records, self.label, self.num_classes = records, label, num_classes
    self.image_size, self.aspect = image_size, aspect
    self.dropped: collections.Counter = collections.Counter()
    if not len(records):
      raise ValueError("the labelled dataset is empty")
    have = record_labels(records[0])
    if have is None:
      raise ValueError("the labelled dataset's first record has no `labels` JSON object (got "
                       f"{str(records[0].get('labels'))[:80]!r}); rebuild it with "
                       "data_prep.labelled_images")
    if label not in have:
      raise ValueError(f"data label {label!r} is not in the dataset, whose records carry "
                       f"{sorted(have)}: pick one of those (or rebuild with --labels {label})")

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    rec = self.records[i]
    out = dict(pixel_values=np.zeros((self.image_size, self.image_size, 3), np.uint8),
               labels=np.int32(NO_LABEL), **{DROPPED: np.asarray("")})
    labels = record_labels(rec)
    if labels is None:
      return mark_dropped(out, "bad_labels", self.dropped)
    value = labels.get(self.label)
    if (isinstance(value, bool) or not isinstance(value, int)
        or not 0 <= value < self.num_classes):
      return mark_dropped(out, "label_range", self.dropped)
    if not rec.get("image"):  # a text-only record (b""): nothing to classify
      return mark_dropped(out, "no_image", self.dropped)
    try:
      out["pixel_values"] = to_pixels(Image.open(io.BytesIO(rec["image"])),
                                      self.image_size, self.aspect)
    except UNDECODABLE:
      return mark_dropped(out, "bad_image", self.dropped)
    out["labels"] = np.int32(value)
    return out
