"""Behaviour that a fourth mutation review (small plausible bugs applied to the run's
Checkpointer and the model folder's save / load, the input pipeline's ordering and packing, the
record reader) found no test guarding: each test here fails on such a mutant and passes on the
real code. Tiny inputs only (real orbax checkpoints in tmp_path): the whole file runs in seconds,
on one CPU device."""

import json
import os
import shutil

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mathvlm import checkpoint
from mathvlm.checkpoint import Checkpointer, abstract_like

STATE = {"w": jnp.arange(4.0), "step": jnp.int32(0)}


def _iterator():
  return iter(grain.MapDataset.range(8).to_iter_dataset())


def _checkpointer(workdir):
  return Checkpointer(str(workdir), every=1, keep=5, use_async=False)


def _save(workdir, steps):
  ckpt = _checkpointer(workdir)
  for step in steps:
    ckpt.save(step, {**STATE, "step": jnp.int32(step)}, _iterator(), loop={"at": step},
              force=True)
  ckpt.close()


def test_unreadable_steps_are_moved_aside_and_their_steps_save_again(tmp_path):
  """`restore_latest` moves each newer step it cannot read to
  checkpoints_unreadable/<step>-<time>, kept whole for a look and out of the way: the resumed
  run reaches those steps again and must save them there. test_checkpoint_loop watched the
  resumed step and the log line only, so a set-aside that moved nothing went unseen (the next
  save of the step then met the damaged folder), and it set aside one step, so a second
  set-aside into the folder the first one made was never tried (two saves cut short by a full
  disk, say)."""
  _save(tmp_path, [1, 2, 3])
  for step in ("2", "3"):
    shutil.rmtree(tmp_path / "checkpoints" / step / "loop")
  ckpt = _checkpointer(tmp_path)
  try:
    state, step, loop = ckpt.restore_latest(abstract_like(STATE), _iterator())
    assert (step, int(state["step"]), loop) == (1, 1, {"at": 1})
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1"]
    assert ckpt.latest_step() == 1  # the manager forgot the moved steps
    aside = sorted(os.listdir(tmp_path / "checkpoints_unreadable"))
    assert [a.split("-")[0] for a in aside] == ["2", "3"]
    assert all((tmp_path / "checkpoints_unreadable" / a / "state").is_dir() for a in aside)
    for step in (2, 3):
      assert ckpt.save(step, {**STATE, "step": jnp.int32(step)}, _iterator(), loop={"at": step},
                       force=True)
  finally:
    ckpt.close()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2", "3"]


def test_a_save_cut_short_by_a_kill_is_cleaned_away_at_the_next_start(tmp_path):
  """A run killed mid-save leaves orbax's temporary step folder (<step>.orbax-checkpoint-tmp-*);
  the Checkpointer asks orbax to remove such folders when it starts (done by the first save),
  so they neither pile up (a 7B model's parameters and Adam moments each) nor pass for a step."""
  _save(tmp_path, [1])
  tmp = tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-1700000000"
  (tmp / "state").mkdir(parents=True)
  ckpt = _checkpointer(tmp_path)
  try:
    assert ckpt.latest_step() == 1
    ckpt.save(2, STATE, _iterator(), loop={}, force=True)  # waits for orbax's clean-up first
  finally:
    ckpt.close()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]


def test_restore_without_the_loop_returns_the_state_alone_and_never_asks_for_the_loop(tmp_path):
  """`restore(step, ...)` (with_loop False, as the export chain and the workers' test read a
  step) returns the state itself, not a (state, loop) pair to unpack, and does not look for the
  loop's folder: a step copied without it still gives its parameters to a reader that wants
  those alone (only a resume needs the drop counts, and there it is an error)."""
  _save(tmp_path, [3, 4])
  shutil.rmtree(tmp_path / "checkpoints" / "4" / "loop")
  ckpt = _checkpointer(tmp_path)
  try:
    state = ckpt.restore(3, abstract_like(STATE), _iterator())
    assert int(state["step"]) == 3
    state, loop = ckpt.restore(3, abstract_like(STATE), _iterator(), with_loop=True)
    assert int(state["step"]) == 3 and loop == {"at": 3}
    assert int(ckpt.restore(4, abstract_like(STATE), _iterator())["step"]) == 4
  finally:
    ckpt.close()


def _built(tmp_path, n=5):
  """A real llava_json build of n records, records 0, 2, 4, ... with an image; longer questions
  later, so each record's length is its own."""
  from PIL import Image
  from data_prep import llava_json
  recs = []
  for i in range(n):
    image = i % 2 == 0
    if image:
      Image.new("RGB", (6, 6), (20 * i, 0, 0)).save(tmp_path / f"img{i}.png")
    recs.append({"id": f"r{i}", **({"image": f"img{i}.png"} if image else {}), "conversations": [
        {"from": "human", "value": ("<image>\n" if image else "") + "Q" * (i + 1) + "?"},
        {"from": "gpt", "value": str(i)}]})
  (tmp_path / "d.json").write_text(json.dumps(recs))
  llava_json.main(["--json", str(tmp_path / "d.json"), "--images", str(tmp_path), "--out",
                   str(tmp_path / "data"), "--no_progress"])
  return str(tmp_path / "data")


def test_record_lengths_are_the_builds_in_reading_order_and_a_foreign_marker_is_named(tmp_path):
  """data.group_by_length orders a run by `read_lengths`: (text length, has image) per record
  in reading order, its count checked against the dataset's. The unit tests only fed it a
  damaged marker and a missing folder; a swapped column, a flag that is not a bool (numpy would
  then index by it) or a dropped count check (a marker left by another build) went unseen."""
  from mathvlm.data import records
  data = _built(tmp_path)
  lengths, has_image = records.read_lengths(data, "llava_json")
  assert has_image.dtype == bool and has_image.tolist() == [True, False, True, False, True]
  assert lengths.dtype == np.int64 and len(lengths) == 5
  assert (np.diff(lengths[has_image]) > 0).all() and (np.diff(lengths[~has_image]) > 0).all()
  assert (lengths > 1).all()  # token counts, not the flags
  markers = tmp_path / "data" / "llava_json" / "_shards"
  (markers / "00001.json").write_text(json.dumps({"lengths": [[9, 0]]}))
  with pytest.raises(ValueError, match=r"lengths of 6 records but llava_json .* has 5: they are "
                                       "not this build's"):
    records.read_lengths(data, "llava_json")
  (markers / "00001.json").write_text(json.dumps({"counts": {}}))
  with pytest.raises(ValueError, match=r"00001.json has no record lengths \(built by an older"):
    records.read_lengths(data, "llava_json")




def test_a_dataset_on_a_bucket_is_left_to_tfds_to_find():
  """`check_built` names a local dataset that is not there; a remote one (gs://...) it cannot
  list, so it leaves it to TFDS. The unit tests gave it local folders only: a check that listed
  a bucket as a local folder would refuse every dataset read from a bucket as not built."""
  from mathvlm.data import records
  assert records.check_built("gs://bucket/data", "mathv360k") is None
  with pytest.raises(ValueError, match="no built dataset 'mathv360k'"):
    records.check_built("/nonexistent/data", "mathv360k")



def test_a_records_text_fields_are_decoded_and_its_image_and_numbers_kept():
  """`decode_record` turns the Text fields' bytes into str and keeps the image's bytes and the
  numeric fields (mavis_instruct's answer_index) as they are. The unit tests read llava_json
  builds, all text and an image, so decoding what is no bytes went unseen."""
  from mathvlm.data import records
  raw = {"id": b"r1", "image": b"\x89PNG", "answer_index": np.int64(2), "choices": "[]"}
  out = records.decode_record(raw)
  assert out == {"id": "r1", "image": b"\x89PNG", "answer_index": 2, "choices": "[]"}
  assert isinstance(out["answer_index"], np.int64)


def test_split_counts_puts_each_reason_on_its_side():
  """data_report.json's `dropped` (examples that trained nothing) and `truncated` (trained on
  less than they hold) come from `split_counts`: a reason on the wrong side would report cut
  examples as lost, or lost ones as trained."""
  from mathvlm.data import records
  assert records.split_counts({"no_targets": 2, "answer_truncated": 3, "bad_image": 1}) == (
      {"no_targets": 2, "bad_image": 1}, {"answer_truncated": 3})


def _tiny_llm(seed=0):
  """A 1-layer llm of a few thousand parameters (the `llm` family)."""
  from flax import nnx
  from mathvlm.models.llm import LlamaConfig, LlamaForCausalLM
  cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_layers=1,
                    num_heads=2, num_kv_heads=2, max_position_embeddings=64)
  return LlamaForCausalLM(cfg, rngs=nnx.Rngs(seed)), cfg


def _params(model):
  from flax import nnx
  return jax.tree.leaves(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def test_a_saved_model_folder_holds_its_tokenizer_and_inputs_and_loads_exactly(tmp_path):
  """`save_model` writes the parameters, the tokenizer it is given and config.json (with the
  inputs record); `load_model` gives the same parameters back. test_mutation_review3 called
  `copy_tokenizer` itself: a save_model that skipped it (the process-0 guard inverted) left
  every exported model without the tokenizer.json `eval.run --ckpt` reads."""
  model, cfg = _tiny_llm()
  (tmp_path / "tok").mkdir()
  (tmp_path / "tok" / "tokenizer.json").write_text('{"version": "1.0"}')
  folder = tmp_path / "runs" / "model"  # its parent made too (`convert --to a/new/folder`)
  checkpoint.save_model(model, cfg, str(folder), tokenizer=str(tmp_path / "tok"),
                        inputs={"template": "plain"})
  assert (folder / "tokenizer.json").read_text() == '{"version": "1.0"}'
  meta = json.loads((folder / "config.json").read_text())
  assert (meta["format"], meta["kind"], meta["inputs"]) == ("mathvlm", "llm", {"template": "plain"})
  loaded, loaded_cfg = checkpoint.load_model(str(folder))
  assert loaded_cfg == cfg
  for a, b in zip(_params(model), _params(loaded), strict=True):
    np.testing.assert_array_equal(a, b)


def test_an_export_killed_before_its_config_leaves_no_model_behind(tmp_path, monkeypatch):
  """`export_model` removes the folder's old config.json first and writes the new one last, so
  an export killed in between leaves a folder that is no model (`is_model_dir` False) and is
  exported again, never the old config.json over new parameters (or a half-written set)."""
  model, cfg = _tiny_llm()
  folder = str(tmp_path / "model")
  checkpoint.export_model(model, cfg, folder)
  assert checkpoint.is_model_dir(folder)

  def killed(*args):
    raise KeyboardInterrupt("killed after the parameters, before config.json")

  monkeypatch.setattr(checkpoint, "copy_tokenizer", killed)
  with pytest.raises(KeyboardInterrupt):
    checkpoint.export_model(_tiny_llm(seed=1)[0], cfg, folder)
  assert not checkpoint.is_model_dir(folder)


def test_a_drop_reason_outside_the_vocabulary_is_refused_before_it_is_counted():
  """`records.REASONS` is the one vocabulary of bad data (data_report.json names reasons from it
  alone, each with its fix): `mark_dropped` refuses any other reason, and counts none of it. No
  test gave it one, so the guard could go unseen, and a source's new reason would reach the
  report with no fix to print."""
  import collections
  from mathvlm.data import pipeline
  counts = collections.Counter()
  with pytest.raises(ValueError, match="'too_long' is not in mathvlm.data.records.REASONS"):
    pipeline.mark_dropped({}, "too_long", counts)
  assert not counts
  example = pipeline.mark_dropped({}, "no_targets", counts)
  assert counts == {"no_targets": 1} and str(example[pipeline.DROPPED]) == "no_targets"


class _Numbered:
  """A source whose examples say which record they are."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    return {"record": np.int64(i)}


def test_a_run_given_record_lengths_reads_them_in_the_grouped_order():
  """`make_dataset(lengths=...)` (data.group_by_length) reads the records in `grouped_order`:
  test_pipeline checks that order on the function itself and test_augment only the images a
  grouped run gets, so a pipeline that ignored the lengths (each epoch shuffled instead) passed
  both, and batches mixed modalities and lengths, unsaid."""
  from mathvlm.data.pipeline import grouped_order, make_dataset
  rs = np.random.RandomState(0)
  lengths, has_image = rs.randint(10, 500, 30), rs.rand(30) < 0.6
  order, _ = grouped_order(lengths, has_image, 4, seed=5, epochs=2)
  ds = make_dataset(_Numbered(30), global_batch=4, seed=5, epochs=2,
                    lengths=(lengths, has_image))
  stream = [r for b in ds for r in b["record"].tolist()]
  assert stream == order[:len(order) // 4 * 4].tolist()


def test_fewer_examples_than_one_global_batch_are_refused_by_count():
  """A dataset smaller than one global batch (over all its epochs) makes no batch at all: it is
  refused at the start, with the counts, rather than handed on as an empty stream."""
  from mathvlm.data.pipeline import make_dataset
  with pytest.raises(ValueError, match=r"5 examples x 1 epochs is less than one global batch "
                                       r"\(8\)"):
    make_dataset(_Numbered(5), global_batch=8, seed=0)
  assert len(make_dataset(_Numbered(5), global_batch=8, seed=0, epochs=2)) == 1


def test_packing_refuses_a_left_padded_example():
  """Packing copies each example's first n tokens (n its mask's count), so it needs tokens
  first, then padding: a left-padded example would be packed as its padding and lose its tail,
  silently. It is refused by name; an image example or an empty row packs as nothing (0)."""
  from mathvlm.data.pipeline import packable_length

  def example(ids, mask):
    return {"input_ids": np.array(ids), "attention_mask": np.array(mask)}

  assert packable_length(example([5, 6, 7, 0], [1, 1, 1, 0]), 63) == 3
  assert packable_length(example([5, 63, 7, 0], [1, 1, 1, 0]), 63) == 0
  assert packable_length(example([0, 0, 0, 0], [0, 0, 0, 0]), 63) == 0
  with pytest.raises(ValueError, match="packing needs right-padded examples"):
    packable_length(example([0, 5, 6, 7], [0, 1, 1, 1]), 63)


def test_batch_stats_count_examples_only_of_packed_rows_and_skip_a_batch_without_tokens():
  """metrics.jsonl's data/nonpad_fraction is every batch's, data/examples a packed batch's only
  (an unpacked batch has no `segment_ids` to count), and a batch without token rows (images and
  labels alone) has no stats. test_train_config checked the stats of a packed batch only."""
  from mathvlm.data.pipeline import batch_stats
  mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]])
  assert batch_stats({"pixel_values": np.zeros((2, 4, 4, 3)), "label": np.zeros(2)}) == {}
  stats = batch_stats({"attention_mask": mask})
  assert set(stats) == {"data/nonpad_fraction"} and float(stats["data/nonpad_fraction"]) == 0.5
  packed = batch_stats({"attention_mask": mask, "segment_ids": np.array([[1, 2, 2, 0],
                                                                           [1, 0, 0, 0]])})
  assert int(packed["data/examples"]) == 3


def test_augmenting_anything_but_uint8_images_is_refused_by_dtype():
  """`image.augment` works on uint8 pixels (the built datasets'): a source that gives normalised
  floats would fail inside PIL, naming neither data.augment nor the fix, on the examples whose
  draws turn a kind on, and pass the others. No test gave the stage such a source."""
  from mathvlm.data.pipeline import Augment
  example = {"pixel_values": np.full((1, 4, 4, 3), 0.5, np.float32)}
  with pytest.raises(ValueError, match="works on uint8 images.*gives float32 pixel_values"):
    Augment({"noise": 1.0}, seed=0, num_records=4)(0, example)


def test_every_image_of_an_example_gets_the_same_augmentation():
  """An example may carry several images (a DPO pair's chosen and rejected rows show one image
  twice): each gets the same draws, so the pair still differs in its answers alone. test_augment
  fed one image per example, so the stage's flattening of the image axes went unchecked."""
  from mathvlm.data.pipeline import Augment
  rs = np.random.RandomState(0)
  image = rs.randint(0, 255, (8, 8, 3), np.uint8)
  pair = {"pixel_values": np.stack([image, image])}
  out = Augment({"noise": 1.0}, seed=0, num_records=4)(1, pair)["pixel_values"]
  assert out.shape == (2, 8, 8, 3) and out.dtype == np.uint8
  assert not np.array_equal(out[0], image) and np.array_equal(out[0], out[1])


def test_a_packed_batch_of_one_row_per_process():
  """Packing with one row per process (global_batch 1, or 2 on 2 processes): the batch is that
  row, its examples packed. test_packing's batches all had several rows, so a batch that took
  its keys from any row but the first (one a 1-row batch has not) went unseen."""
  from mathvlm.data.pipeline import make_dataset
  rows = [{"input_ids": np.array([1, 5, 6, 0, 0, 0], np.int32),
           "attention_mask": np.array([1, 1, 1, 0, 0, 0], np.int32),
           "loss_mask": np.array([0, 1, 1, 0, 0, 0], np.int32)} for _ in range(4)]
  batch = next(iter(make_dataset(rows, global_batch=1, seed=0, packing=True,
                                 image_token_id=63)))
  assert batch["segment_ids"].tolist() == [[1, 1, 1, 2, 2, 2]]


def test_a_row_exactly_a_buckets_length_takes_that_bucket():
  """A bucket holds rows up to its length: a row of exactly 256 tokens pads to 256, not to the
  next bucket (twice the compute at 512). The tests' rows all fell strictly inside a bucket or
  past the last."""
  from mathvlm.data.pipeline import bucket_length
  assert bucket_length([100, 256], (512, 256, 1024)) == 256
