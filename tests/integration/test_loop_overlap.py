"""The loop never waits on the host: step k+1 is dispatched, and batch k+2 read and placed, before
step k's metrics are fetched (mathvlm/overlap.py). Only the steps whose state is used (a
checkpoint, here the last step only) are read at once. The rows are the same."""

from mathvlm import overlap, train
from train_utils import metrics, tiny_config


def test_step_k_plus_1_is_dispatched_before_step_k_metrics_are_read(tmp_path, monkeypatch):
  events = []
  setup, fetch, prepare = train.setup, overlap.fetch, train.next_batch

  def recording_setup(*args, **kwargs):
    run = setup(*args, **kwargs)
    step_fn = run.step_fn

    def dispatch(state, batch):
      out = step_fn(state, batch)
      events.append(("dispatch", sum(e[0] == "dispatch" for e in events) + 1))
      return out

    run.step_fn = dispatch
    return run

  def recording_fetch(m):
    events.append(("fetch", sum(e[0] == "fetch" for e in events) + 1))
    return fetch(m)

  def recording_prepare(*args):
    events.append(("batch", sum(e[0] == "batch" for e in events) + 1))
    return prepare(*args)

  monkeypatch.setattr(train, "setup", recording_setup)
  monkeypatch.setattr(overlap, "fetch", recording_fetch)
  monkeypatch.setattr(train, "next_batch", recording_prepare)
  train.train(tiny_config("lm", steps=6, checkpoint__every=100), str(tmp_path))
  at = {e: i for i, e in enumerate(events)}
  for k in (1, 2, 3, 4):  # steps that save nothing (the first too): read a step late
    assert at[("dispatch", k + 1)] < at[("fetch", k)], events
    assert at[("batch", k + 2)] < at[("fetch", k)], events
  assert at[("fetch", 6)] == len(events) - 1  # the saved last step: read before anything else
  assert sum(e[0] == "batch" for e in events) == 6  # nothing read past the last step
  assert [r["step"] for r in metrics(str(tmp_path))] == [1, 2, 3, 4, 5, 6]
