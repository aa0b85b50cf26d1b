"""A weighted mixture of built datasets (`data.mixture='a=3,b=1'`) draws 3:1 through the trainer's
input pipeline (shuffled, batched), within sampling error."""

import collections

import numpy as np
import pytest

from mathvlm.data.pipeline import make_dataset
from mathvlm.data.sources import Mixture, parse_mixture


class Tagged:
  """A source of `n` examples that say which source they came from."""

  def __init__(self, tag: int, n: int):
    self.tag, self.n = tag, n

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    if not 0 <= i < self.n:
      raise IndexError(i)
    return {"source": np.int32(self.tag), "index": np.int32(i)}


def test_a_3_to_1_mixture_draws_3_to_1():
  weights = [w for _, w in parse_mixture("a=3,b=1")]
  assert weights == [3.0, 1.0]
  mixture = Mixture([Tagged(0, 600), Tagged(1, 600)], weights)
  for seed in (0, 1):
    batch = next(iter(make_dataset(mixture, global_batch=400, seed=seed)))
    drawn, n = batch["source"], 400
    from_a = int(np.sum(drawn == 0))
    sd = np.sqrt(n * 0.75 * 0.25)  # binomial: 8.7
    assert abs(from_a - 0.75 * n) < 4 * sd, (seed, from_a)
    assert abs(from_a - 0.5 * n) > 8 * sd  # an equal mixture would be far off
    assert len(set(zip(drawn.tolist(), batch["index"].tolist()))) == n  # no record twice


def test_a_source_the_mixture_cuts_short_is_sampled_across_all_its_records():
  """grain's mix ends where the first source runs out; the records it keeps of the other must be
  a sample of all of them, not its first third in reading order (the tail never trained)."""
  mixture = Mixture([Tagged(0, 1000), Tagged(1, 1000)], [1.0, 3.0])
  kept = sorted(int(mixture[i]["index"]) for i in range(len(mixture))
                if int(mixture[i]["source"]) == 0)
  assert len(kept) == len(set(kept)) == 334  # the weights decide how many, as before
  assert kept != list(range(334))
  assert np.mean(np.asarray(kept) >= 500) > 0.35  # about half from the second half of the file


def test_sources_of_one_size_are_each_sampled_on_their_own():
  """Each source is shuffled from a seed of its own: with one seed, two sources of one size that
  the mixture cuts short kept the same record numbers (problem k of b whenever problem k of c),
  which for sources in step (versions of the same problems) is the same problems twice."""
  mixture = Mixture([Tagged(0, 300), Tagged(1, 600), Tagged(2, 600)], [1.0, 1.0, 1.0])
  kept = collections.defaultdict(set)
  for i in range(len(mixture)):
    kept[int(mixture[i]["source"])].add(int(mixture[i]["index"]))
  assert len(kept[1]) == len(kept[2]) == 300 and kept[1] != kept[2]


@pytest.mark.parametrize("spec, match", [
    ("a=nan,b=1", "finite"), ("a=inf,b=1", "finite"), ("a=0,b=1", "positive"),
    ("=3,b=1", "positive"), ("a=1,a=2", "twice")])
def test_a_mixture_without_a_real_weight_for_each_named_dataset_is_refused(spec, match):
  """nan compares false with everything, so 'w <= 0' let it through to the sampler."""
  with pytest.raises(ValueError, match=match):
    parse_mixture(spec)


def test_a_bad_mixture_is_named_when_the_config_is_made():
  from mathvlm.configs import common
  c = common.base("lm")
  c.data.name, c.data.mixture = "mathv360k", "mathv360k=nan"
  with pytest.raises(ValueError, match="finite"):
    common.validate(c, process_count=1, device_count=1)


def _drawn(mixture, epochs: int) -> list:
  """Every (source, record) the trainer's pipeline gives over `epochs`, in batches of 100."""
  return [(int(s), int(i)) for batch in make_dataset(mixture, global_batch=100, seed=0,
                                                     epochs=epochs)
          for s, i in zip(batch["source"], batch["index"])]


def test_each_epoch_of_a_mixture_draws_other_records_of_a_source_it_cuts_short():
  """a=3,b=1 over 300 records each: an epoch takes all of a and 100 of b. Repeating the first
  epoch's draw trained the same 100 of b three times over 3 epochs, 200 never; each epoch now
  reads on through b's shuffle. The first epoch is the mixture's own records, as before."""
  mixture = Mixture([Tagged(0, 300), Tagged(1, 300)], [3.0, 1.0])
  assert len(mixture) == 400
  drawn = _drawn(mixture, 3)
  assert len(drawn) == 1200
  counts = collections.Counter(drawn)
  assert len([k for k in counts if k[0] == 1]) == 300  # all of b, once each
  assert set(counts.values()) == {1, 3}  # a's records three times, b's once
  first = mixture.over_epochs()
  assert [first[i] for i in range(400)] == [mixture[i] for i in range(400)]
  for e in range(3):  # each epoch: all of a once, and 100 records of b, each once
    epoch = collections.Counter(drawn[400 * e:400 * (e + 1)])
    assert set(epoch.values()) == {1} and sum(k[0] == 0 for k in epoch) == 300
  assert sorted(_drawn(mixture, 1)) == sorted((int(mixture[i]["source"]),
                                               int(mixture[i]["index"])) for i in range(400))


def test_no_pass_of_a_source_repeats_another_sources_permutation():
  """grain seeds pass p of a shuffle with its seed + p. With seeds seed + 1 + i, source i's
  second pass was source i+1's first permutation, so two sources of one size (versions of the
  same problems) drew the same record numbers in later passes: b's 20 and c's 10 of 60 shared
  all 10 in passes 5 and 6, against 3.3 by chance. Hashed seeds (`source_seed`) put every pass
  of every source, and of neighbouring run seeds, on a permutation of its own."""
  from mathvlm.data.sources import source_seed
  seeds = [source_seed(run, i) + p for run in range(4) for i in range(8) for p in range(500)]
  assert len(set(seeds)) == len(seeds)
  mixture = Mixture([Tagged(0, 20), Tagged(1, 60), Tagged(2, 60)], [1.0, 1.0, 0.5])
  passes, n = mixture.over_epochs(), len(mixture)
  shared = []
  for p in range(12):
    drawn = [passes[p * n + j] for j in range(n)]
    b, c = ({int(x["index"]) for x in drawn if int(x["source"]) == s} for s in (1, 2))
    assert (len(b), len(c)) == (20, 10)
    shared.append(len(b & c))
  assert max(shared) < 10 and 1.5 < np.mean(shared) < 5.5, shared  # 20 * 10 / 60 = 3.3
