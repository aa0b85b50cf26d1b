"""The input pipeline the trainer iterates: a random-access source -> each epoch a seeded
permutation of it, another each epoch -> this process's rows of each global batch -> batches. A
`grain` MapDataset, so the iterator's state (one integer) goes into every checkpoint and a
restored run continues with the very next batch.

Process p of P takes rows [p*B/P, (p+1)*B/P) of every global batch B, which is how
`jax.make_array_from_process_local_data` assembles the global batch: the same examples meet in the
same step whatever the process count.

Options, each off by default (and then the pipeline is exactly the one above):
  augment  clarity augmentations of the uint8 images, drawn from (seed, record, epoch)
  workers  grain worker processes; their outputs interleave back in order, so the batches are
           the same as in-process, and drop reasons travel in each example (`DROPPED`), not in
           counters left behind in the workers
  packing  text-only rows packed first-fit, several examples per row, with `segment_ids`
"""

from __future__ import annotations

import collections
import sys

import grain
import numpy as np

from mathvlm.data import image as image_lib
from mathvlm.data.records import REASONS

# The version of the order in which a config and seed draw their examples. Bump it when a change
# makes the same config and seed train on other examples at a step, and name the config field
# whose setting the change touches: a workdir resumed across the change then fails at start
# (mathvlm/configs/resume.py) instead of training on, unseen, in another order. grain's own
# version is recorded beside it, since its shuffle and mix define the rest of the order.

# A change that touches only runs of several epochs, and the passes past a one-epoch plan too:
# packed steps take several examples a row, so a packed run of a one-epoch plan (train.data_plan
# counts steps x batch examples) reads on into later passes (the stream never ends).
PAST_ONE_EPOCH = "past one epoch"
ORDER_CHANGES = {  # version -> (config field it touches when set, what changed, whether it
    # touches only a run of several epochs: one epoch's order is then the same (True), or, where
    # it also reorders the passes a one-epoch stream goes on to, PAST_ONE_EPOCH[, a field whose
    # setting keeps the old order, the change not reaching the path it chooses])
    2: ("data.mixture", "034efb0 (2026-12-05): each source of a mixture is shuffled before "
        "grain's mix", False),
    3: ("data.group_by_length", "2026-12-07: over several epochs, the examples that fill no "
        "full megabatch go on in whole global batches, so later epochs' batches stay one "
        "modality and length (a run of one epoch, or whose modalities divide into global "
        "batches, keeps its order)", True),
    4: ("data.mixture", "2026-12-07: over several epochs, each epoch of a mixture reads on "
        "through every source's shuffle, so a source the mixture cuts short gives other records "
        "each epoch instead of the first epoch's again (a run of one epoch keeps its order, "
        "unless data.packing reads it past its epoch)", PAST_ONE_EPOCH),
    5: ("data.epochs", "2026-12-07: each epoch is a permutation of the records, shuffled on its "
        "own (the Hugging Face Trainer's sampler), not one shuffle over all the epochs that "
        "trained some records twice in an epoch's steps and others not at all (a run of one "
        "epoch keeps its order)", True, "data.group_by_length"),
    6: ("data.mixture", "2026-12-07: each source of a mixture is shuffled from a hash of (seed, "
        "source) (`sources.source_seed`), not seed + 1 + i, which grain steps by one each pass: "
        "a source's later passes repeated another source's permutations, so sources of one "
        "size drew the same record numbers", False),
}
ORDER_VERSION = max(ORDER_CHANGES)

# Per-example field: why the example trains nothing, or (a records.CUT_REASONS reason) what it
# lost to max_len while training on the rest; '' when it trains whole. Counted by the trainer
# from the batches it gets, stripped before the batch goes to the device.
DROPPED = "dropped"


def mark_dropped(example: dict, reason: str, counts) -> dict:
  """Counts the reason in the source's own counter and in the example that carries it."""
  if reason not in REASONS:
    raise ValueError(f"drop reason {reason!r} is not in mathvlm.data.records.REASONS: add it "
                     "there with its fix")
  counts[reason] += 1
  example[DROPPED] = np.asarray(reason)
  return example


class ProcessRows:
  """The rows of each global batch that belong to one process, as a random-access source."""

  def __init__(self, base, global_batch: int, process_index: int, process_count: int):
    self.base, self.global_batch = base, global_batch
    self.per = global_batch // process_count
    self.offset = process_index * self.per
    self.steps = len(base) // global_batch

  def __len__(self) -> int:
    return self.steps * self.per

  def __getitem__(self, k: int):
    step, row = divmod(k, self.per)
    return self.base[step * self.global_batch + self.offset + row]


def check_process_rows(mesh) -> None:
  """`ProcessRows` gives every process rows of its own, so no batch shard (a (data, fsdp)
  position of the mesh; the batch is replicated over tensor) may lie on two processes: they would
  each feed it different rows, and `jax.make_array_from_process_local_data` would silently make a
  smaller global batch whose replicas differ (tensor-parallel halves computing on different
  examples)."""
  devices = np.asarray(mesh.devices)
  data, fsdp = (mesh.axis_names.index(a) for a in ("data", "fsdp"))
  owners = collections.defaultdict(set)
  for pos, device in np.ndenumerate(devices):
    owners[(pos[data], pos[fsdp])].add(device.process_index)
  shared = {k: v for k, v in owners.items() if len(v) > 1}
  if shared:
    (d, f), procs = next(iter(shared.items()))
    raise ValueError(
        f"mesh {dict(zip(mesh.axis_names, devices.shape))}: the batch shard at data={d}, "
        f"fsdp={f} lies on processes {sorted(procs)}, which would feed it different rows. Keep "
        "mesh.tensor within one process's devices (a smaller mesh.tensor, a larger mesh.fsdp "
        "or mesh.data)")


class Reordered:
  """A source read in a given order (the length-grouped epochs)."""

  def __init__(self, source, order):
    self.source, self.order = source, order

  def __len__(self) -> int:
    return len(self.order)

  def __getitem__(self, i: int):
    return self.source[int(self.order[i])]


def modality_length_order(lengths, has_image, global_batch: int, seed: int, epoch: int):
  """LLaVA's `group_by_modality_length` order for one epoch: within each modality, shuffled
  megabatches of one global batch, each sorted longest first (so a batch pads to a similar
  length, and a bucket fits it tightly); the full megabatches of both modalities shuffled
  together; the leftovers last."""
  rng = np.random.default_rng([seed, epoch])
  lengths = np.asarray(lengths)
  full, rest = [], []
  for group in (np.flatnonzero(has_image), np.flatnonzero(~np.asarray(has_image))):
    group = rng.permutation(group)
    for i in range(0, len(group), global_batch):
      mega = group[i:i + global_batch]
      mega = mega[np.argsort(-lengths[mega], kind="stable")]
      (full if len(mega) == global_batch else rest).append(mega)
  order = [full[i] for i in rng.permutation(len(full))]
  if rest:
    order.append(np.sort(np.concatenate(rest)))
  return np.concatenate(order) if order else np.zeros(0, np.int64)


def grouped_order(lengths, has_image, global_batch: int, seed: int, epochs: int):
  """(order, epoch of each place): the epochs' `modality_length_order`s, each epoch's full
  megabatches, then the leftovers gathered so far in whole global batches, the last few (under
  one batch, never trained) at the end. Joined epoch after epoch, a second epoch started
  wherever the first's leftovers ended, mid-batch unless the examples divide into global
  batches, and every batch after it straddled two megabatches: 100 examples in batches of 8 over
  2 epochs gave 12 of 12 one-modality, length-sorted batches in the first epoch and 0 of 12 in
  the second (6 mixing images and text). Each epoch's full part is the same length (it depends
  on the modalities' counts alone), so every megabatch starts a batch; and the trained part of
  E epochs' order is still the start of E + 1 epochs' (a run resumed with more steps)."""
  has_image = np.asarray(has_image, bool)
  full = global_batch * sum(int(n) // global_batch
                            for n in (has_image.sum(), (~has_image).sum()))
  order, epoch_of = [], []
  left, left_epoch = np.zeros(0, np.int64), np.zeros(0, np.int64)
  for e in range(epochs):
    o = modality_length_order(lengths, has_image, global_batch, seed, e)
    left = np.concatenate([left, o[full:]])
    left_epoch = np.concatenate([left_epoch, np.full(len(o) - full, e)])
    whole = len(left) // global_batch * global_batch
    order += [o[:full], left[:whole]]
    epoch_of += [np.full(full, e), left_epoch[:whole]]
    left, left_epoch = left[whole:], left_epoch[whole:]
  return np.concatenate(order + [left]), np.concatenate(epoch_of + [left_epoch])


def make_dataset(source, *, global_batch: int, seed: int, epochs: int = 1,
                 process_index: int = 0, process_count: int = 1, lengths=None,
                 augment: str = "", workers: int = 0, packing: bool = False,
                 image_token_id: int = -1):
  """A MapDataset of this process's batches, or with workers or packing an IterDataset; both
  iterate with get_state/set_state.

  lengths: (text lengths, has-image flags) to order each epoch by modality and length, as
  LLaVA's group_by_modality_length; otherwise each epoch shuffled on its own (`epoch_shuffled`,
  batches running on across an epoch's end). augment: e.g.
  'blur=0.3,noise=0.3,lowres=0.3' (see `image.augment`). workers: grain worker processes.
  packing: text-only examples (no `image_token_id` in input_ids) packed several to a row; the
  stream then never ends (after `epochs` passes it goes on with fresh shuffles): packed steps
  consume a varying number of examples, so the trainer runs a set number of steps.
  """
  if global_batch % process_count:
    raise ValueError(f"global batch {global_batch} is not divisible by {process_count} processes")
  kinds = image_lib.parse_augment(augment)
  if lengths is not None:
    order, epoch_of = grouped_order(*lengths, global_batch, seed, epochs)
    base = grain.MapDataset.source(Reordered(source, order))
    if kinds:
      base = base.map_with_index(Augment(kinds, seed, len(source), order, epoch_of))
  else:
    base = epoch_shuffled(source, seed, kinds).repeat(epochs)
  if len(base) < global_batch:
    raise ValueError(f"{len(source)} examples x {epochs} epochs is less than one global batch "
                     f"({global_batch})")
  if packing:  # the first len(base) examples are those of the unpacked run; then fresh epochs
    base = base.repeat()
  rows = ProcessRows(base, global_batch, process_index, process_count)
  examples = grain.MapDataset.source(rows)
  if not packing:
    batches = examples.batch(rows.per, drop_remainder=True)
    return in_workers(batches, workers) if workers else batches
  stream = in_workers(examples, workers) if workers else examples.to_iter_dataset()
  return PackedBatches(stream, rows.per, image_token_id)


def epoch_shuffled(source, seed: int, kinds: dict) -> grain.MapDataset:
  """One epoch of `source` in a seeded shuffle, whose keys past its length are the later epochs
  (`.repeat(epochs)` makes them its length): grain's shuffle draws key e * len + i from its own
  permutation of epoch e (seed + e), so every epoch is a permutation of the records, another
  each epoch, as the Hugging Face Trainer's sampler. One shuffle over all the epochs together
  had trained some records twice within the first epoch's steps and others not at all. A
  mixture reads on through its sources in each pass (`Mixture.over_epochs`) and shuffles each
  pass on its own. One epoch's order is the one shuffle's, as before, and E epochs' order starts
  E + 1 epochs' (a run resumed with more steps goes on in the order it trained in). Batches
  still run on across an epoch's end: only the stream's end drops a remainder."""
  base = (source.over_epochs() if hasattr(source, "over_epochs")
          else grain.MapDataset.source(source))
  if kinds:  # before the shuffle, where the key still says (epoch, record)
    base = base.map_with_index(Augment(kinds, seed, len(source)))
  return base.shuffle(seed=seed)


def in_workers(ds: grain.MapDataset, workers: int) -> grain.IterDataset:
  """`ds` read by `workers` processes, worker w taking elements w, w + workers, ...; grain
  interleaves them back in order, so the stream is the in-process one. A few reads in flight per
  worker (grain's default is 16 threads and 500 elements, too much for batches of images)."""
  from absl import flags
  if not flags.FLAGS.is_parsed():  # grain reads its absl flags when it starts workers
    flags.FLAGS(sys.argv[:1])
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)).mp_prefetch(
      grain.MultiprocessingOptions(num_workers=workers))


class Augment:
  """`map_with_index` stage: clarity augmentations of an example's uint8 images, drawn from
  (seed, record, epoch), so a run sees the same images again after a restart and a record looks
  different in each epoch. Empty (all-zero) image slots, text-only examples', stay as they are.
  Of a mixture the record is its place in the mix, which each pass fills with other records of
  its sources (`Mixture.over_epochs`): a draw keys on (place, pass), so no two draws share one."""

  def __init__(self, kinds: dict[str, float], seed: int, num_records: int, order=None,
               epoch_of=None):
    self.kinds, self.seed, self.n, self.order = kinds, seed, num_records, order
    self.epoch_of = epoch_of

  def __call__(self, index: int, example: dict) -> dict:
    record = int(self.order[index]) if self.order is not None else index % self.n
    epoch = int(self.epoch_of[index]) if self.epoch_of is not None else index // self.n
    pixels = example.get("pixel_values")
    if pixels is None:
      return example
    if pixels.dtype != np.uint8:
      raise ValueError(f"data.augment works on uint8 images (the built datasets); this source "
                       f"gives {pixels.dtype} pixel_values")
    flat = pixels.reshape((-1,) + pixels.shape[-3:])
    out = flat.copy()
    for j, img in enumerate(flat):
      if img.any():  # every image of the example (a DPO pair's two copies) gets the same draws
        rng = np.random.default_rng([self.seed, record, epoch])
        out[j] = image_lib.augment(img, self.kinds, rng)
    return dict(example, pixel_values=out.reshape(pixels.shape))


# ---------------------------------------------------------------------------------------------
# Packing.

def packable_length(example: dict, image_token_id: int) -> int:
  """The token count of a text-only example (no image tokens), or 0 when it is not packed: an
  image example, or one that trains nothing (an empty row, as without packing)."""
  if (example["input_ids"] == image_token_id).any():
    return 0
  mask = example["attention_mask"]
  n = int(mask.sum())
  if n and not mask[:n].all():
    raise ValueError("packing needs right-padded examples (tokens first, then padding)")
  return n


def pack_row(examples: list[dict], lengths: list[int]) -> dict:
  """Examples laid end to end in one row, `segment_ids` 1, 2, ... (0 on the padding). Everything
  else (the unused image slot, the padding) is the first example's."""
  row = {k: np.array(v, copy=True) for k, v in examples[0].items()}
  seg = np.zeros(row["attention_mask"].shape, np.int32)
  start = 0
  for s, (ex, n) in enumerate(zip(examples, lengths), 1):
    for k in ("input_ids", "attention_mask", "loss_mask"):
      row[k][start:start + n] = ex[k][:n]
    seg[start:start + n] = s
    start += n
  row["segment_ids"] = seg
  if DROPPED in row:  # only examples that train are packed; one cut to max_len fills its row
    notes = [str(ex[DROPPED]) for ex in examples if str(ex[DROPPED])]
    assert len(notes) <= 1, notes
    row[DROPPED] = np.asarray(notes[0] if notes else "")
  return row


class PackedBatches(grain.IterDataset):
  """Batches of `rows` rows from a stream of examples: each text-only example goes into the first
  row with room (first fit, in stream order); an image example (or one that trains nothing) takes
  a row of its own, unchanged. A batch is done when an example needs a new row and all are taken;
  that example starts the next batch. The state is the stream's just before a batch's first
  example, so a restored iterator rebuilds the same next batch."""

  def __init__(self, parent: grain.IterDataset, rows: int, image_token_id: int):
    super().__init__(parent)
    self.rows, self.image_token_id = rows, image_token_id

  def __iter__(self):
    return _PackedBatchIterator(self._parent.__iter__(), self.rows, self.image_token_id)


class _PackedBatchIterator(grain.DatasetIterator):

  def __init__(self, parent, rows: int, image_token_id: int):
    super().__init__(parent)
    self.rows, self.image_token_id = rows, image_token_id
    self._start = self._parent.get_state()
    self._pending = None  # (example, the stream's state before it)

  def __next__(self) -> dict:
    bins, used = [], []  # used[i]: tokens in row i, or None for a row that takes no more
    while True:
      if self._pending is None:
        state = self._parent.get_state()
        self._pending = (next(self._parent), state)  # a stream that ends drops a partial batch
      example = self._pending[0]
      n = packable_length(example, self.image_token_id)
      size = example["attention_mask"].shape[-1]
      row = next((i for i, u in enumerate(used) if u is not None and n and u + n <= size), None)
      if row is None:
        if len(bins) == self.rows:
          break
        bins.append([])
        used.append(0 if n else None)
        row = len(bins) - 1
      bins[row].append((example, n))
      if used[row] is not None:
        used[row] += n
      self._pending = None
    self._start = self._pending[1]
    out = []
    for b in bins:
      if b[0][1]:
        out.append(pack_row([e for e, _ in b], [n for _, n in b]))
      else:  # unpacked: one segment over its tokens
        ex = b[0][0]
        out.append(dict(ex, segment_ids=np.asarray(ex["attention_mask"], np.int32)))
    return {k: np.stack([r[k] for r in out]) for k in out[0]}

  def get_state(self):
    return self._start

  def set_state(self, state):
    self._parent.set_state(state)
    self._start, self._pending = state, None


def pop_dropped(batch: dict, counts: collections.Counter) -> dict:
  """The batch without its `DROPPED` field, whose reasons are added to `counts`."""
  if DROPPED not in batch:
    return batch
  batch = dict(batch)
  counts.update(str(r) for r in np.ravel(batch.pop(DROPPED)) if r)
  return batch


def trained_example(example: dict, packing: bool) -> dict:
  """An example as the step sees it (shapes for the compiled step): no `DROPPED`, and with
  packing a `segment_ids` row."""
  out = {k: v for k, v in example.items() if k != DROPPED}
  if packing:
    out["segment_ids"] = np.asarray(out["attention_mask"], np.int32)
  return out


def batch_stats(batch: dict) -> dict:
  """Padding efficiency of a batch: the fraction of real tokens, and (packed) how many examples
  the rows hold. Array methods only, so the trainer computes it on the devices, over the whole
  global batch (`train.global_stats`)."""
  if "attention_mask" not in batch:
    return {}
  out = {"data/nonpad_fraction": batch["attention_mask"].mean()}
  if "segment_ids" in batch:
    out["data/examples"] = batch["segment_ids"].max(-1).sum()
  return out


def examples_in(batch: dict) -> int:
  """Examples a host batch holds: a packed row's segments, else one a row. Packed steps take a
  varying number, so a packed run's passes over its data are counted, not derived from steps."""
  if "segment_ids" in batch:
    return int(np.asarray(batch["segment_ids"]).max(-1).sum())
  return len(next(iter(batch.values())))


SEQUENCE_KEYS = ("input_ids", "attention_mask", "loss_mask", "segment_ids")


def bucket_length(lengths, buckets) -> int:
  """The smallest bucket that holds the longest row (the last bucket if none does)."""
  longest = int(max(lengths))
  return next((b for b in sorted(buckets) if b >= longest), max(buckets))


def trim_to(batch: dict, length: int) -> dict:
  """Cuts the padding of the sequence arrays (last axis) to `length`."""
  return {k: (v[..., :length] if k in SEQUENCE_KEYS else v) for k, v in batch.items()}


def local_bucket(batch: dict, buckets) -> int:
  """This process's bucket for its rows; processes then agree on the largest (one small
  all-gather), so the global batch has one shape and each bucket compiles once."""
  return bucket_length(batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1])
                       .sum(-1), buckets)
