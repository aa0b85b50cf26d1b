"""Grain worker processes give the in-process stream: the same batches (packed after the workers,
so packing does not depend on their number), and an iterator restored from an orbax checkpoint
continues with the same next batch. The trainer's side (same losses, drop counts that travel
with the examples) is in test_data_pipeline.py, on built data."""

import jax.numpy as jnp
import numpy as np

from mathvlm.checkpoint import Checkpointer, abstract_like
from mathvlm.data.pipeline import make_dataset
from mathvlm.data.synthetic import SyntheticSource


def _same(a, b):
  return len(a) == len(b) and all(
      x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def test_workers_give_the_in_process_batches_and_resume_from_an_orbax_checkpoint(tmp_path):
  src = SyntheticSource("lm", num_examples=64, max_len=32, image_size=8, vocab_size=100,
                        image_seq_len=4, image_token_id=99, text_only=0.5)
  kw = dict(global_batch=8, seed=0, packing=True, image_token_id=99)
  in_process = iter(make_dataset(src, **kw))
  expected = [next(in_process) for _ in range(5)]
  assert any(b["segment_ids"].max() > 1 for b in expected)  # rows were packed
  state = {"x": jnp.arange(3.0)}
  it = iter(make_dataset(src, workers=2, **kw))
  got = [next(it) for _ in range(3)]
  ckpt = Checkpointer(str(tmp_path), every=1, keep=1, use_async=False)
  ckpt.save(3, state, it, force=True)
  ckpt.close()
  got += [next(it) for _ in range(2)]
  it.close()
  assert _same(got, expected)
  fresh = iter(make_dataset(src, workers=2, **kw))
  restored = Checkpointer(str(tmp_path), every=1, keep=1, use_async=False)
  assert np.array_equal(restored.restore(3, abstract_like(state), fresh)["x"], state["x"])
  resumed = [next(fresh) for _ in range(2)]
  fresh.close()
  restored.close()
  assert _same(resumed, expected[3:])
