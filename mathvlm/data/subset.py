"""Training on a selection without rebuilding the data: the records of a built dataset whose ids a
selection lists (`data_prep.select`'s `selected.jsonl`), as a random-access source.

A selection line stands for one image: its `records` (the ids of every QA record showing that
image, as `data_prep.score` found them) when it has them, else its `id`. The kept records stay in
the dataset's reading order, so a run on a subset shuffles, shards and resumes like a run on any
source. Selected ids the dataset does not hold are counted in `missing` (a selection made from
another dataset is an error: nothing of it is found); records kept under an id that another kept
record repeats, in `repeated`.
"""

from __future__ import annotations

import json

import numpy as np


def read_ids(path: str) -> frozenset[str]:
  """The record ids a selection file keeps."""
  ids = set()
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
        keep = rec["records"] if rec.get("records") is not None else [rec["id"]]
      except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{path} line {n}: expected a JSON object with `id` (and optionally "
                         f"`records`), as data_prep.select writes") from None
      if not isinstance(keep, list):  # a string's characters would be taken as ids
        raise ValueError(f"{path} line {n}: `records` is {keep!r:.60}; it must be a list of "
                         "record ids, as data_prep.select writes")
      ids.update(str(i) for i in keep)
  if not ids:
    raise ValueError(f"{path}: the selection is empty")
  return frozenset(ids)


class Subset:
  """The records of `records` (a random-access source of dicts with `id`) whose id is in `ids`,
  in reading order. Finding them reads every record once, at construction."""

  def __init__(self, records, ids, *, where: str = "the selection"):
    self.records = records
    self.indices = np.asarray([i for i in range(len(records)) if str(records[i]["id"]) in ids],
                              np.int64)
    self.found = {str(records[int(i)]["id"]) for i in self.indices}
    self.missing = len(set(ids) - self.found)
    # kept records whose id another kept record also has (a source that repeats ids): all are
    # trained on, and the run says so, since a selection by id cannot tell them apart
    self.repeated = len(self.indices) - len(self.found)
    if not len(self.indices):
      raise ValueError(f"none of the {len(ids)} ids of {where} is in the dataset "
                       f"({len(records)} records): was it selected from another dataset?")

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i: int):
    return self.records[int(self.indices[i])]

  def take(self, per_record: np.ndarray) -> np.ndarray:
    """A per-record array of the full dataset (e.g. `records.read_lengths`) cut to the subset."""
    return np.asarray(per_record)[self.indices]


def not_found(ids, subsets) -> list[str]:
  """The selected ids no dataset of the run holds (a selection made on another build, or from a
  dataset left out of the mixture): no one trains on them, so the run names them."""
  found = set().union(*(s.found for s in subsets))
  return sorted(set(ids) - found)
