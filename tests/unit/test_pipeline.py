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


def test_data_plan_counts_the_examples_the_steps_never_reach():
  """data_report.json's count of the stream's examples left untrained (drop_last): each record
  seen fewer times than the passes over the data counts once per missing pass. With steps from
  data.epochs the remainder is under a global batch; explicit steps may need an extra pass."""
  from mathvlm.train import data_plan
  for n, batch, epochs, steps in [(50, 8, 2, 12), (50, 8, 1, 9), (45, 6, 3, 22)]:
    plan = data_plan(n, batch, epochs, steps, packing=False)
    ds = make_dataset(Numbers(n), global_batch=batch, seed=0, epochs=plan["epochs"])
    records = [r for b in list(ds)[:steps] for r in b["record"].tolist()]
    missing = plan["epochs"] * n - np.bincount(records, minlength=n).sum()
    assert (plan["trained"], plan["untrained"]) == (len(records), missing) and missing > 0
  assert data_plan(50, 8, 2, 12, packing=False)["untrained"] == 4
  assert data_plan(50, 8, 1, 9, packing=False)["epochs"] == 2
  assert "untrained" not in data_plan(50, 8, 1, 9, packing=True)


def test_modality_length_grouping_makes_homogeneous_length_sorted_batches():
  from mathvlm.data.pipeline import bucket_length, modality_length_order, trim_to
  rs = np.random.RandomState(0)
  lengths = rs.randint(10, 500, 100)
  has_image = rs.rand(100) < 0.7
  order = modality_length_order(lengths, has_image, 8, seed=1, epoch=0)
  assert sorted(order.tolist()) == list(range(100))
  full = len(order) // 8 * 8
  batches = order[:full].reshape(-1, 8)
  mixed = [b for b in batches if has_image[b].any() and not has_image[b].all()]
  assert len(mixed) <= 1  # only the leftover batch may mix modalities
  for b in batches:
    if has_image[b].all() or not has_image[b].any():
      assert (np.diff(lengths[b]) <= 0).all()
  assert not np.array_equal(order, modality_length_order(lengths, has_image, 8, 1, epoch=1))
  assert bucket_length([100, 300], (256, 512, 1024)) == 512
  batch = {"input_ids": np.zeros((2, 1024)), "pixel_values": np.zeros((2, 4, 4, 3))}
  trimmed = trim_to(batch, 512)
  assert trimmed["input_ids"].shape == (2, 512) and trimmed["pixel_values"].shape == (2, 4, 4, 3)


def test_grouping_over_epochs_keeps_every_batch_after_the_first_epoch_one_modality():
  """100 examples in batches of 8 over 2 epochs: the epochs joined end to end put the second
  one 4 examples off the batches, so all 12 of its batches straddled two megabatches. Now only
  the batches of leftovers (those filling no megabatch, 4 an epoch here) may mix; each record
  comes once an epoch, tagged with it; 1 epoch keeps its order, and the trained part of 2
  epochs' order starts 3 epochs' (a run resumed with more steps)."""
  from mathvlm.data.pipeline import grouped_order, modality_length_order
  rs = np.random.RandomState(0)
  lengths, has_image = rs.randint(10, 500, 100), rs.rand(100) < 0.7
  order, epoch = grouped_order(lengths, has_image, 8, seed=1, epochs=2)
  batches = order[:len(order) // 8 * 8].reshape(-1, 8)
  one_kind = lambda b: has_image[b].all() or not has_image[b].any()
  good = [b for b in batches if one_kind(b) and (np.diff(lengths[b]) <= 0).all()]
  leftovers = 100 - 8 * (has_image.sum() // 8 + (~has_image).sum() // 8)
  assert len(batches) - len(good) <= -(-2 * leftovers // 8) < len(batches) // 2
  for e in (0, 1):
    assert sorted(order[epoch == e].tolist()) == list(range(100))
  alone, _ = grouped_order(lengths, has_image, 8, seed=1, epochs=1)
  np.testing.assert_array_equal(alone, modality_length_order(lengths, has_image, 8, 1, 0))
  longer, _ = grouped_order(lengths, has_image, 8, seed=1, epochs=3)
  np.testing.assert_array_equal(longer[:batches.size], batches.ravel())
