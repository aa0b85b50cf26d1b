"""The input pipeline the trainer iterates: a random-access source -> seeded global shuffle over
epochs -> this process's rows of each global batch -> batches. A `grain` MapDataset, so the
iterator's state (one integer) goes into every checkpoint and a restored run continues with the
very next batch.

Process p of P takes rows [p*B/P, (p+1)*B/P) of every global batch B, which is how
`jax.make_array_from_process_local_data` assembles the global batch: the same examples meet in the
same step whatever the process count.
"""

from __future__ import annotations

import grain
import numpy as np


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


def make_dataset(source, *, global_batch: int, seed: int, epochs: int = 1,
                 process_index: int = 0, process_count: int = 1,
                 lengths=None) -> grain.MapDataset:
  """lengths: (text lengths, has-image flags) to order each epoch by modality and length, as
  LLaVA's group_by_modality_length; otherwise a seeded global shuffle."""
  if global_batch % process_count:
    raise ValueError(f"global batch {global_batch} is not divisible by {process_count} processes")
  if lengths is not None:
    order = np.concatenate([modality_length_order(*lengths, global_batch, seed, e)
                            for e in range(epochs)])
    base = grain.MapDataset.source(Reordered(source, order))
  else:
    base = grain.MapDataset.source(source).repeat(epochs).shuffle(seed=seed)
  if len(base) < global_batch:
    raise ValueError(f"{len(source)} examples x {epochs} epochs is less than one global batch "
                     f"({global_batch})")
  rows = ProcessRows(base, global_batch, process_index, process_count)
  return grain.MapDataset.source(rows).batch(rows.per, drop_remainder=True)


def steps_per_run(source_len: int, epochs: int, global_batch: int) -> int:
  return source_len * epochs // global_batch


SEQUENCE_KEYS = ("input_ids", "attention_mask", "loss_mask")


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
