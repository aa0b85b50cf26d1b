"""What keeps the training loop from waiting on the host: batches placed on the devices one step
ahead, and each step's metrics read only after the next step has been dispatched.

JAX dispatches a jitted step asynchronously: `step_fn(state, batch)` returns at once with arrays
that are still being computed. The loop stays ahead of the devices as long as it touches no
result: reading step k's metrics (`jax.device_get`) right after dispatching step k would make the
host wait for step k before it can read and place batch k+1. Here the order is: dispatch step k,
prepare batch k+1 (reading, trimming, `make_array_from_process_local_data`), then read step k-1's
metrics, which are ready or nearly so while step k runs.

On the CPU the runtime runs single-device steps inline instead (`mathvlm.runtime`: the step's
temporary buffer then comes from a heap glibc keeps, not from fresh pages each step); the order
above is the same, and what it would overlap there is a few milliseconds of placing a batch that
grain has already read.

A batch read ahead has moved the data iterator past what the last dispatched step trained on, so
each prepared batch carries the iterator's state right after it: a checkpoint of step k saves the
state after batch k, and a restored run continues with batch k+1 whatever was prefetched.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Callable


@dataclasses.dataclass
class Prepared:
  """One global batch on the devices, with what the host knows about it."""
  batch: dict
  stats: dict              # the global batch's padding efficiency (device scalars)
  dropped: dict            # drop reasons of its examples, counted once its step is done
  iterator_state: Any      # the data iterator's state right after this batch
  read: int = 0            # this process's examples in it (packed: a varying number)


class Prefetch:
  """Prepares the next batch (on the devices) while the current step runs: `take()` gives the
  batch prepared last and `fill()` prepares the next one, at most `remaining` in all (so a run
  never reads past its last step)."""

  def __init__(self, prepare: Callable[[], tuple[dict, dict, dict, int]], data_iter,
               remaining: int):
    self.prepare, self.data_iter, self.remaining = prepare, data_iter, remaining
    self.ready: Prepared | None = None

  def fill(self) -> None:
    if self.ready is None and self.remaining > 0:
      batch, stats, dropped, read = self.prepare()
      self.ready = Prepared(batch, stats, dropped, iterator_state(self.data_iter), read)
      self.remaining -= 1

  def take(self) -> Prepared:
    self.fill()
    out, self.ready = self.ready, None
    return out


def iterator_state(data_iter):
  """A copy of a grain iterator's state (a dict for datasets; bytes for a DataLoader)."""
  return copy.deepcopy(data_iter.get_state())


class SavedIteratorState:
  """Stands in for the data iterator in a checkpoint: grain's orbax handler writes
  `get_state()` of what it is given, and this gives the state recorded with a batch rather than
  the live iterator's, which prefetching has moved on. Written exactly as grain writes a dataset
  iterator's state (indented JSON), so checkpoints read back with `CheckpointRestore(data_iter)`."""

  def __init__(self, state):
    self.state = state

  def get_state(self) -> bytes:
    if isinstance(self.state, bytes):
      return self.state
    return json.dumps(self.state, indent=4).encode()


def fetch(metrics: dict) -> dict:
  """Step metrics on the host; the one place the loop waits for the devices (a test records
  when it is called relative to the steps' dispatch)."""
  import jax
  return jax.device_get(metrics)
