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


def make_dataset(source, *, global_batch: int, seed: int, epochs: int = 1,
                 process_index: int = 0, process_count: int = 1) -> grain.MapDataset:
  if global_batch % process_count:
    raise ValueError(f"global batch {global_batch} is not divisible by {process_count} processes")
  base = grain.MapDataset.source(source).repeat(epochs).shuffle(seed=seed)
  if len(base) < global_batch:
    raise ValueError(f"{len(source)} examples x {epochs} epochs is less than one global batch "
                     f"({global_batch})")
  rows = ProcessRows(base, global_batch, process_index, process_count)
  return grain.MapDataset.source(rows).batch(rows.per, drop_remainder=True)


def steps_per_run(source_len: int, epochs: int, global_batch: int) -> int:
  return source_len * epochs // global_batch
