"""Pieces of a training loop that never makes the device wait on the host.

JAX dispatches a jitted step and returns at once; the host only waits when it reads a result.
Reading step k's metrics right after dispatching step k (`jax.device_get`) serialises the input
pipeline, the step and logging: the device idles while the host fetches, logs and prepares the
next batch. Two helpers keep it busy:

- `LateMetrics`: holds step k's device metrics and fetches them only after step k+1 has been
  dispatched (and only every `every` steps), so the wait overlaps with queued work.
- `DevicePrefetch`: batches put on the devices `size` steps ahead (`jax.device_put` and
  `make_array_from_process_local_data` are asynchronous), so the transfer of batch k+1 overlaps
  with step k. It stands in for the data iterator in checkpoints: its state is the one after the
  batch the loop last took, not after the ones queued ahead, so a resume loses and repeats nothing.

Wiring (in the trainer's loop):

    batches = DevicePrefetch(map(prepare, data_iter), put=lambda b: global_batch(b, mesh),
                             source=data_iter)
    late = LateMetrics(every=config.metrics.every)
    for step in range(start, total):
      state, metrics = step_fn(state, next(batches))
      for done, row in late.push(step + 1, metrics, force=step + 1 == total):  # a step late
        log(done, row)
      ckpt.save(step + 1, state, batches)
    for done, row in late.flush():
      log(done, row)
"""

from __future__ import annotations

import collections
import json
from typing import Any, Callable, Iterator

import jax


class LateMetrics:
  """Device metrics handed back one step late: push(k, m_k) stores m_k and returns the metrics
  held from before, fetched to the host. Only steps that are multiples of `every` are kept (the
  rest are never transferred); flush() returns what is still held at the end."""

  def __init__(self, every: int = 1):
    if every < 1:
      raise ValueError(f"metrics every={every}: must be >= 1")
    self.every = every
    self._held: tuple[int, Any] | None = None

  def push(self, step: int, metrics: Any, force: bool = False) -> list[tuple[int, Any]]:
    """Call right after dispatching `step`; returns [(earlier step, host metrics)] or [].
    force: hold this step's metrics whatever `every` says (the last step of a run)."""
    out = self.flush()
    if force or step % self.every == 0:
      self._held = (step, metrics)
    return out

  def flush(self) -> list[tuple[int, Any]]:
    if self._held is None:
      return []
    step, metrics = self._held
    self._held = None
    return [(step, jax.device_get(metrics))]


class DevicePrefetch:
  """An iterator of batches already placed on the devices, `size` ahead of the consumer.

  iterator: host batches; put: host batch -> device arrays (default `jax.device_put`; the trainer
  passes its `global_batch`); source: the checkpointable data iterator behind `iterator` (a grain
  iterator with get_state/set_state), when its state should follow the batches consumed.
  """

  def __init__(self, iterator: Iterator, put: Callable | None = None, size: int = 2,
               source: Any = None):
    if size < 1:
      raise ValueError(f"prefetch size={size}: must be >= 1")
    self._it, self._put, self._size = iterator, put or jax.device_put, size
    self._source = source
    self._queue: collections.deque = collections.deque()
    self._state = self._source_state()

  def _source_state(self):
    return None if self._source is None else self._source.get_state()

  def _fill(self) -> None:
    while len(self._queue) < self._size:
      try:
        host = next(self._it)
      except StopIteration:
        return
      self._queue.append((self._put(host), self._source_state()))

  def __iter__(self) -> "DevicePrefetch":
    return self

  def __next__(self):
    self._fill()
    if not self._queue:
      raise StopIteration
    batch, self._state = self._queue.popleft()
    self._fill()                       # the next transfers start before this batch is used
    return batch

  # Checkpointing (grain.checkpoint.CheckpointSave/Restore call these on non-grain iterators):
  # the state after the last batch taken, as the JSON text grain itself writes for its iterators.
  def get_state(self) -> bytes:
    state = self._state
    return state if isinstance(state, bytes) else json.dumps(state, indent=4).encode()

  def set_state(self, state: bytes) -> None:
    """Restore the source and drop what was queued from the old position."""
    inner = self._source.get_state()
    self._source.set_state(state if isinstance(inner, bytes) else json.loads(state))
    self._queue.clear()
    self._state = self._source_state()

  def start_prefetch(self) -> None:
    if hasattr(self._source, "start_prefetch"):
      self._source.start_prefetch()
