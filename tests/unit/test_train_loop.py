"""The loop never waits on the host: metrics arrive a step late, batches are on the device ahead,
and a checkpointed prefetcher resumes exactly where the consumed batches end."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mathvlm.train_loop import DevicePrefetch, LateMetrics


@jax.jit
def _slow_step(state, batch):
  """A step that takes a while on a CPU (a chain of matmuls), with a metric."""
  def body(_, x):
    return jnp.tanh(x @ state) * 0.5 + batch
  x = jax.lax.fori_loop(0, 40, body, jnp.ones((512, 512)) * batch)
  return state, {"loss": jnp.mean(x), "step_batch": batch}


def _toy_loop(steps, late, eager=False):
  """(events, rows): 'dispatch k' when step k returns (asynchronously), 'fetched k' when its
  metrics reach the host, and whether step k+1 was still running at that moment."""
  state = jnp.asarray(np.random.RandomState(0).randn(512, 512) * 0.05, jnp.float32)
  events, rows, running = [], [], []
  for k in range(1, steps + 1):
    state, metrics = _slow_step(state, jnp.float32(k))
    events.append(("dispatch", k))
    got = [(k, jax.device_get(metrics))] if eager else late.push(k, metrics, force=k == steps)
    for done, row in got:
      events.append(("fetched", done))
      rows.append((done, row))
      running.append(not metrics["loss"].is_ready())
  for done, row in late.flush():
    events.append(("fetched", done))
    rows.append((done, row))
  return events, rows, running


def test_step_k_plus_1_is_dispatched_before_step_k_metrics_are_read():
  _slow_step(jnp.zeros((512, 512)), jnp.float32(0))[1]["loss"].block_until_ready()  # compile
  events, rows, running = _toy_loop(6, LateMetrics())
  for k in range(1, 6):
    assert events.index(("dispatch", k + 1)) < events.index(("fetched", k)), events
  assert [d for d, _ in rows] == list(range(1, 7))
  assert all(float(r["step_batch"]) == d for d, r in rows)     # each row is its own step's
  assert all(running)   # the device was still busy with k+1 while the host read k
  # the eager loop (device_get right after the step) reads k before k+1 exists: the check fails
  eager, _, _ = _toy_loop(3, LateMetrics(), eager=True)
  assert eager.index(("fetched", 1)) < eager.index(("dispatch", 2))


def test_every_n_steps_transfers_only_those_and_the_last():
  late = LateMetrics(every=3)
  seen = []
  for k in range(1, 8):
    seen += [d for d, _ in late.push(k, {"k": jnp.int32(k)}, force=k == 7)]
  seen += [d for d, _ in late.flush()]
  assert seen == [3, 6, 7]
  with pytest.raises(ValueError, match="every=0"):
    LateMetrics(every=0)


class Counter:
  """A checkpointable source: yields 0, 1, 2, ...; its state is the next value."""

  def __init__(self, n):
    self.i, self.n = 0, n

  def __iter__(self):
    return self

  def __next__(self):
    if self.i >= self.n:
      raise StopIteration
    self.i += 1
    return {"x": np.full((2,), self.i - 1, np.int32)}

  def get_state(self):
    return {"next": self.i}

  def set_state(self, state):
    self.i = state["next"]


def test_prefetch_yields_device_batches_in_order_a_bounded_distance_ahead():
  source = Counter(6)
  batches = DevicePrefetch(source, size=2, source=source)
  first = next(batches)
  assert isinstance(first["x"], jax.Array) and int(first["x"][0]) == 0
  assert source.i == 3   # the consumed batch plus two on their way, no more
  assert [int(b["x"][0]) for b in batches] == [1, 2, 3, 4, 5]


def test_prefetch_state_is_after_the_consumed_batch_and_resumes_exactly():
  source = Counter(8)
  batches = DevicePrefetch(source, size=2, source=source)
  taken = [int(next(batches)["x"][0]) for _ in range(3)]
  saved = batches.get_state()
  assert json.loads(saved) == {"next": 3}      # not 5: the queued batches are not consumed
  rest = [int(b["x"][0]) for b in batches]
  fresh = Counter(8)
  resumed = DevicePrefetch(fresh, size=2, source=fresh)
  resumed.set_state(saved)
  assert taken + [int(b["x"][0]) for b in resumed] == taken + rest == list(range(8))


def test_prefetch_uses_the_given_placement():
  put_calls = []

  def put(batch):
    put_calls.append(int(batch["x"][0]))
    return jax.device_put(batch)

  out = [int(b["x"][0]) for b in DevicePrefetch(Counter(3), put=put, size=1)]
  assert out == [0, 1, 2] and put_calls == [0, 1, 2]
