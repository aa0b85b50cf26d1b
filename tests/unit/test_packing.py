"""Packing text-only rows: the packer keeps every example, in order, intact, and resumes exactly;
a packed row computes what its examples compute alone. (The trainer on packed batches:
test_data_pipeline.py.)"""

import functools

import grain
import jax
import numpy as np
from flax import nnx

from mathvlm.data.pipeline import PackedBatches, make_dataset
from mathvlm.models.layers import positions_from_segments
from mathvlm.models.llm import LlamaConfig
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import Llava, LlavaConfig
from mathvlm.objectives import lm
from train_utils import tiny_config

IMG, T = 63, 24  # image token id; row length


class Records:
  """A source of lm examples that say which record they are (the first token after BOS and the
  image tokens is 64 + i): every third an image example, the rest text-only, 3 to 9 tokens, all
  targets (the first token of a packed segment must not become one)."""

  def __init__(self, n, max_len=T, image_seq_len=4):
    self.n, self.max_len, self.p = n, max_len, image_seq_len

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    rs = np.random.RandomState(i)
    body = [1, 64 + i] + list(rs.randint(10, 60, 1 + i % 7))
    if i % 3 == 0:
      body = body[:1] + [IMG] * self.p + body[1:]
    n = len(body)
    ex = dict(input_ids=np.zeros(self.max_len, np.int32), attention_mask=np.zeros(self.max_len,
              np.int32), loss_mask=np.zeros(self.max_len, np.int32),
              pixel_values=np.zeros((1, 28, 28, 3), np.float32))
    ex["input_ids"][:n], ex["attention_mask"][:n], ex["loss_mask"][:n] = body, 1, 1
    if i % 3 == 0:
      ex["pixel_values"][:] = rs.randn(1, 28, 28, 3)
    return ex


def _record(tokens):
  return int(tokens[tokens != IMG][1]) - 64


def _segments(batch):
  """[(record, row, segment id, tokens)] of every segment of a packed batch, row-major."""
  out = []
  for r, (ids, seg) in enumerate(zip(batch["input_ids"], batch["segment_ids"])):
    for s in range(1, seg.max() + 1):
      out.append((_record(ids[seg == s]), r, s, ids[seg == s]))
  return out


def test_packer_keeps_every_example_in_order_and_resumes_exactly():
  src = Records(90)
  ds = make_dataset(src, global_batch=4, seed=2, packing=True, image_token_id=IMG)
  unpacked = make_dataset(src, global_batch=4, seed=2)
  stream = [_record(ids) for b in unpacked for ids in b["input_ids"]]  # unpacked record order
  it = iter(ds)
  batches = [next(it) for _ in range(6)]
  seen = []
  for b in batches:
    assert b["input_ids"].shape == (4, T) and b["pixel_values"].shape == (4, 1, 28, 28, 3)
    segs = _segments(b)
    records = sorted((stream.index(rec), rec) for rec, _, _, _ in segs)
    seen += [rec for _, rec in records]
    for rec, row, _, toks in segs:
      ex = src[rec]
      np.testing.assert_array_equal(toks, ex["input_ids"][:ex["attention_mask"].sum()])
      if rec % 3 == 0:  # an image example: its own row, unchanged
        assert b["segment_ids"][row].max() == 1
        np.testing.assert_array_equal(b["pixel_values"][row], ex["pixel_values"])
        np.testing.assert_array_equal(b["loss_mask"][row], ex["loss_mask"])
    # positions within a row: segments first-fit in stream order
    for row in range(4):
      recs = [stream.index(rec) for rec, r, _, _ in segs if r == row]
      assert recs == sorted(recs)
  assert seen == stream[:len(seen)]  # nothing lost, nothing repeated, stream order
  assert len(seen) > 6 * 4  # more examples than rows
  fill = np.mean([b["attention_mask"].mean() for b in batches])
  assert fill > 1.3 * np.mean([b["attention_mask"].mean() for b in list(unpacked)[:6]])

  state = iter(ds)
  for _ in range(2):
    next(state)
  saved = state.get_state()
  expected = [next(state) for _ in range(3)]
  fresh = iter(make_dataset(src, global_batch=4, seed=2, packing=True, image_token_id=IMG))
  fresh.set_state(saved)
  for a, b in zip(expected, [next(fresh) for _ in range(3)]):
    assert all(np.array_equal(a[k], b[k]) for k in a)


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, batch):
  model = nnx.merge(graphdef, state)
  return lm.forward_logits(model, batch), lm.loss(model, batch)[:2]


def test_a_packed_row_computes_what_its_examples_compute_alone():
  vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                            image_size=28, patch_size=14)
  text = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2,
                     num_heads=4, num_kv_heads=2)
  cfg = LlavaConfig(vision=vision, text=text, image_token_id=IMG)
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: Llava(cfg, rngs=nnx.Rngs(0))))
  rs = np.random.RandomState(0)  # numpy weights, large enough for O(1) logits; no init compile

  def weight(path, x):
    scale = any("norm" in str(p) for p in path)  # norms' scales around 1
    return (rs.normal(0.0, 0.3, x.shape) + scale).astype(x.dtype)

  state = jax.tree_util.tree_map_with_path(weight, abstract)
  src = Records(40)
  # the image examples 0 and 3 take a row each; the text-only 1, 2, 4, 5 (4, 5, 7, 8 tokens)
  # fill the third; 6 needs a fourth row and ends the batch
  ds = PackedBatches(grain.MapDataset.source([src[i] for i in range(9)]).to_iter_dataset(), 3, IMG)
  packed = next(iter(ds))
  segs = _segments(packed)
  assert [rec for rec, *_ in segs] == [0, 1, 2, 4, 5, 3]
  logits, (loss, weight) = _forward(graphdef, state, packed)
  total = 0.0
  for rec, row, s, toks in segs:
    alone = {k: np.asarray(v)[None] for k, v in src[rec].items()}
    alone_logits, (alone_loss, alone_weight) = _forward(graphdef, state, alone)
    np.testing.assert_allclose(logits[row][packed["segment_ids"][row] == s],
                               alone_logits[0, :len(toks)], atol=1e-5, err_msg=f"record {rec}")
    total += float(alone_loss * alone_weight)
  np.testing.assert_allclose(float(loss * weight), total, rtol=1e-5)
  # RoPE sees only relative positions, so logits alone cannot tell; the positions restart
  seg = np.array([[1, 1, 1, 2, 2, 3, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]])
  np.testing.assert_array_equal(positions_from_segments(seg),
                                [[0, 1, 2, 0, 1, 0, 0, 1], list(range(8))])


def test_synthetic_text_only_examples_from_the_config():
  """data.synthetic_text_only: that share of synthetic lm examples has no image tokens (and an
  empty image slot); the trainer packs them (trained packed on built data in
  test_data_pipeline.py)."""
  from mathvlm.data.sources import make_source
  from mathvlm import objectives
  from mathvlm.pretrained import model_config
  cfg = tiny_config("lm", data__synthetic_text_only=0.5)
  model = model_config(cfg)
  src = make_source(cfg.data, objectives.get("lm"), model, 0)
  text = [i for i in range(64) if not (src[i]["input_ids"] == model.image_token_id).any()]
  assert 16 < len(text) < 48
  assert all(src[i]["pixel_values"].shape[0] == 1 and not src[i]["pixel_values"].any()
             for i in text)
  plain = make_source(tiny_config("lm").data, objectives.get("lm"), model, 0)
  assert not any((plain[i]["input_ids"] != model.image_token_id).all() for i in range(64))


def test_packing_goes_on_past_its_epochs_with_each_epoch_a_permutation():
  """The packed stream never ends: past its `epochs` it goes on with fresh epochs, each a
  permutation of the records of its own, as the planned ones (the unpacked stream of 20 epochs,
  whose epochs test_pipeline checks); a plan of 2 epochs packs the same stream as one of 1.
  Each packed batch holds the next stretch of that stream."""
  src = Records(20)
  stream = [_record(ids) for b in make_dataset(src, global_batch=4, seed=2, epochs=20)
            for ids in b["input_ids"]]
  assert all(sorted(stream[20 * e:20 * (e + 1)]) == list(range(20)) for e in range(20))
  for epochs in (1, 2):
    it = iter(make_dataset(src, global_batch=4, seed=2, epochs=epochs, packing=True,
                           image_token_id=IMG))
    start = 0
    for _ in range(30):
      records = sorted(rec for rec, *_ in _segments(next(it)))
      assert records == sorted(stream[start:start + len(records)]), (epochs, start)
      start += len(records)
    assert start > 3 * 20  # past the planned epochs


def test_a_packed_run_reports_the_examples_it_read_and_carries_the_count_over_a_resume(tmp_path):
  """A packed step takes a varying number of examples, so data_report.json's `epochs` (the
  passes the stream holds: steps x global batch rows) says nothing of what a packed run trained
  on. The run counts what it read: the metrics' per-step `data/examples` summed, over a run that
  stops at step 3 and a second that goes on to step 7 (the count travels in the checkpoint)."""
  import json

  from mathvlm.train import train
  from train_utils import metrics
  cfg = lambda steps: tiny_config("lm", steps=steps, data__packing=True,  # noqa: E731
                                  data__synthetic_text_only=0.5, metrics__every=1,
                                  checkpoint__every=100)
  work = str(tmp_path / "run")
  train(cfg(3), work)
  train(cfg(7), work)
  rows = metrics(work)
  read = sum(r["data/examples"] for r in rows)
  assert [r["step"] for r in rows] == list(range(1, 8)) and read > 7 * 8  # several to a row
  report = json.load(open(tmp_path / "run" / "data_report.json"))
  assert report["examples_read"] == read
  assert report["passes_read"] == round(read / report["examples"], 4)
