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


def test_the_setup_log_says_why_the_streams_last_examples_are_not_trained():
  """20 synthetic examples in batches of 8. The log said the untrained examples fill no global
  batch whatever their count: 8 of 2 epochs' steps (2 an epoch, the remainders of 4 gathered at
  the stream's end: a whole batch, which steps=5 trains) and 24 where steps=2 end the run inside
  the first of data.epochs=2."""
  import logging

  from train_utils import tiny_config

  from mathvlm import objectives, pretrained, train
  lines, level = [], train.log.level
  handler = logging.Handler()
  handler.emit = lambda record: lines.append(record.getMessage())
  train.log.addHandler(handler)
  train.log.setLevel(logging.INFO)
  try:
    for steps, epochs, why in [
        (-1, 2, "the last 8 of the shuffled stream are not trained: data.epochs' worth of steps "
         "is 2 an epoch (examples // data.global_batch), and batches run on across epoch ends, "
         "so each epoch's remainder of 4 gathers at the stream's end (steps=5 trains"),
        (2, 2, "the last 24 of the shuffled stream are not trained: the run's steps=2 end before "
         "them"),
        (-1, 1, "the last 4 of the shuffled stream are not trained: they fill no global batch"),
        (7, 1, "the last 4 of the shuffled stream are not trained: they fill no global batch")]:
      config = tiny_config("lm", steps=steps, data__epochs=epochs, data__num_examples=20)
      lines.clear()
      train.setup_data(config, objectives.get("lm"), pretrained.model_config(config))
      assert any(why in line for line in lines), (steps, epochs, lines)
  finally:
    train.log.removeHandler(handler)
    train.log.setLevel(level)
  assert len(list(make_dataset(Numbers(20), global_batch=8, seed=0, epochs=2))) == 5


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


def _stream(source, epochs, key=lambda b: b["record"].tolist(), **kw):
  """Every example the batches give, in order (a list of keys)."""
  return [r for b in make_dataset(source, global_batch=8, seed=3, epochs=epochs, **kw)
          for r in key(b)]


def _mixture():
  """a=3,b=1 over 25 and 40 records: 33 an epoch, b's cut short (each pass reads on through it)."""
  from mathvlm.data.sources import Mixture
  from test_mixture import Tagged
  return Mixture([Tagged(0, 25), Tagged(1, 40)], [3.0, 1.0], seed=3)


def _pairs(b):
  return [(int(s), int(i)) for s, i in zip(b["source"], b["index"])]


def test_each_epoch_is_a_permutation_of_the_records_of_its_own():
  """As the Hugging Face Trainer's sampler: 30 records (not a multiple of the batch of 8) over
  2 and 3 epochs give every record once in each epoch's stretch of the stream, in another order
  each epoch; the batches run on across an epoch's end and only the last drops a remainder. One
  shuffle over all the epochs gave 23 of the 30 records in the first 30 places."""
  for epochs in (2, 3):
    stream = _stream(Numbers(30), epochs)
    assert len(stream) == 30 * epochs // 8 * 8
    parts = [stream[30 * e:30 * (e + 1)] for e in range(epochs)]
    for part in parts[:-1]:
      assert sorted(part) == list(range(30))
    assert len(set(parts[-1])) == len(parts[-1])  # the last, cut by the remainder
    assert parts[0] != parts[1][:len(parts[0])]


def test_each_pass_of_a_mixture_is_a_permutation_of_that_passs_records():
  mixture = _mixture()
  passes = mixture.over_epochs()
  for epochs in (2, 3):
    stream = _stream(mixture, epochs, _pairs)
    for e in range(epochs - 1):
      drawn = [(int(x["source"]), int(x["index"])) for x in (passes[33 * e + i]
                                                             for i in range(33))]
      assert sorted(stream[33 * e:33 * (e + 1)]) == sorted(drawn) and len(set(drawn)) == 33
    assert sum(k[0] == 1 for k in stream[:66]) == len({k for k in stream[:66] if k[0] == 1})


def _process_batches(source, epochs, p, **kw):
  """Process p of 2's batches of a plan of `epochs`."""
  return iter(make_dataset(source, global_batch=8, seed=3, epochs=epochs, process_index=p,
                           process_count=2, **kw))


def test_a_position_saved_in_one_epochs_plan_goes_on_in_a_plan_of_three():
  """A run resumed with steps that need more epochs builds a longer stream (its plan's epochs)
  and sets the checkpoint's iterator state, a position, in it: the batches trained before the
  save and those after it are the batches of a run planned with those steps from the start,
  plain, grouped by length (leftovers carried on) and a mixture, on each of two processes. 30
  examples in batches of 8: the 1-epoch plan holds 3 batches, all trained before the save."""
  rs = np.random.RandomState(0)
  lengths = (rs.randint(10, 500, 30), rs.rand(30) < 0.6)
  for source, kw, key in [(Numbers(30), {}, lambda b: b["record"].tolist()),
                          (Numbers(30), {"lengths": lengths}, lambda b: b["record"].tolist()),
                          (_mixture(), {}, _pairs)]:
    for p in range(2):
      short = _process_batches(source, 1, p, **kw)
      trained = [key(next(short)) for _ in range(3)]
      resumed = _process_batches(source, 3, p, **kw)
      resumed.set_state(short.get_state())
      trained += [key(b) for b in resumed]
      assert trained == [key(b) for b in _process_batches(source, 3, p, **kw)], (kw.keys(), p)


# The one-epoch orders (seed 3, batch 8), which must not change without an ORDER_CHANGES entry:
# the plain one as before each epoch was shuffled on its own (order 5: a one-epoch workdir resumes
# across it), the mixture's since its sources' seeds were hashed (order 6, `source_seed`).
PLAIN_1EPOCH = [4, 7, 27, 8, 17, 28, 10, 24, 21, 15, 3, 12, 16, 1, 29, 25, 14, 20, 2, 23, 18, 13,
                9, 6]
MIXTURE_1EPOCH = [(0, 17), (1, 30), (1, 18), (0, 10), (0, 24), (0, 9), (0, 21), (0, 13), (0, 16),
                  (1, 7), (1, 29), (0, 8), (0, 11), (0, 3), (0, 2), (0, 0), (0, 1), (0, 15),
                  (0, 14), (1, 3), (0, 12), (0, 6), (0, 7), (0, 5), (1, 26), (0, 22), (0, 4),
                  (1, 31), (0, 20), (0, 19), (1, 19), (0, 18)]


def test_one_epochs_order_is_unchanged_and_starts_every_longer_runs():
  """The first epoch of a run of E epochs is the one-epoch run's order, so E epochs' order
  starts E + 1 epochs' (a run resumed with steps that need another epoch goes on)."""
  assert _stream(Numbers(30), 1) == PLAIN_1EPOCH
  assert _stream(_mixture(), 1, _pairs) == MIXTURE_1EPOCH
  for source, key in ((Numbers(30), lambda b: b["record"].tolist()), (_mixture(), _pairs)):
    runs = [_stream(source, e, key) for e in (1, 2, 3)]
    assert runs[1][:len(runs[0])] == runs[0] and runs[2][:len(runs[1])] == runs[1]


def test_two_processes_resumed_mid_epoch_2_give_the_same_batches():
  """3 epochs of 30 records, global batch 8 on two processes: a restore after step 5 (epoch 2
  began at example 30) gives each process the batches it would have had, and together they are
  the single-process global batches."""
  make = lambda p, n=2: make_dataset(Numbers(30), global_batch=8, seed=3, epochs=3,
                                     process_index=p, process_count=n)
  single = [b["record"].tolist() for b in make(0, 1)]
  for p in range(2):
    it = iter(make(p))
    for _ in range(5):
      next(it)
    state = it.get_state()
    expected = [next(it)["record"].tolist() for _ in range(5)]
    fresh = iter(make(p))
    fresh.set_state(state)
    got = [next(fresh)["record"].tolist() for _ in range(5)]
    assert got == expected == [b[4 * p:4 * p + 4] for b in single[5:10]]
