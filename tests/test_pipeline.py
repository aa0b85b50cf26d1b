"""The grain pipeline: per-process shards cover an epoch exactly once; iterators resume exactly."""

import numpy as np

from mathvlm.data.pipeline import make_dataset


class Numbers:
  """A source whose examples say which record they are."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    return {"record": np.int64(i), "x": np.full(3, i, np.float32)}


def test_two_processes_see_every_record_of_an_epoch_exactly_once():
  src = Numbers(96)
  seen = []
  per_step = []
  for p in range(2):
    ds = make_dataset(src, global_batch=16, seed=3, process_index=p, process_count=2)
    batches = [b["record"].tolist() for b in ds]
    assert len(batches) == 6 and all(len(b) == 8 for b in batches)
    seen += [r for b in batches for r in b]
    per_step.append(batches)
  assert sorted(seen) == list(range(96))
  # together, step by step, they form the single-process global batches
  single = [b["record"].tolist() for b in make_dataset(src, global_batch=16, seed=3)]
  assert [a + b for a, b in zip(*per_step)] == single
  assert single != sorted(single)  # shuffled


def test_restored_iterator_gives_the_same_next_10_batches():
  ds = make_dataset(Numbers(200), global_batch=8, seed=1, epochs=2)
  it = iter(ds)
  for _ in range(7):
    next(it)
  state = it.get_state()
  expected = [next(it)["record"].tolist() for _ in range(10)]
  fresh = iter(make_dataset(Numbers(200), global_batch=8, seed=1, epochs=2))
  fresh.set_state(state)
  assert [next(fresh)["record"].tolist() for _ in range(10)] == expected


def test_epochs_reshuffle_and_repeat_every_record():
  ds = make_dataset(Numbers(32), global_batch=8, seed=0, epochs=3)
  records = [r for b in ds for r in b["record"].tolist()]
  assert len(records) == 96 and np.bincount(records).tolist() == [3] * 32
