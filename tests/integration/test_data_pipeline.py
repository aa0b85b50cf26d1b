"""Builders -> ArrayRecord -> templates and masks -> the trainer, on real files made here."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece as spm
from PIL import Image, ImageDraw
from transformers import LlamaTokenizer

from mathvlm.data import templates
from mathvlm.data.conversations import ConversationSource
from mathvlm.data.sources import load_tokenizer
from train_utils import ROOT, metrics, tiny_config

QUESTIONS = ["What is the length of AB?", "Find the area of the square.",
             "What is the angle at C?", "How long is the radius?"]


def _build(name, args, out):
  res = subprocess.run([sys.executable, "-m", f"data_prep.{name}", *args, "--out", out,
                        "--no_progress"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  images = root / "images"
  images.mkdir()
  records, prefs = [], []
  for i in range(24):
    img = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(img).rectangle([8, 8, 8 + 2 * i, 40], outline="black", width=2)
    img.save(images / f"{i}.png")
    answer = f"The answer is {i + 3}."
    long = " ".join(["Think step by step about the figure."] * (40 if i == 5 else 0))
    records.append({"id": f"r{i}", "image": f"{i}.png", "conversations": [
        {"from": "human", "value": f"<image>\n{QUESTIONS[i % 4]} {long}"},
        {"from": "gpt", "value": answer}]})
    prefs.append({"id": f"p{i}", "image": f"{i}.png", "prompt": f"<image>\n{QUESTIONS[i % 4]}",
                  "chosen": answer, "rejected": f"The answer is {i + 4}."})
  records.append({"id": "text-only", "conversations": [
      {"from": "human", "value": "What is 2 + 3?"}, {"from": "gpt", "value": "The answer is 5."}]})
  (root / "train.json").write_text(json.dumps(records))
  (root / "prefs.jsonl").write_text("\n".join(json.dumps(p) for p in prefs))
  out = str(root / "built")
  for name in ("llava_json", "mavis_caption"):
    _build(name, ["--json", str(root / "train.json"), "--images", str(images)], out)
  _build("preferences", ["--json", str(root / "prefs.jsonl"), "--images", str(images)], out)
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter([templates.VICUNA_SYSTEM] + QUESTIONS * 20 + [
          f"The answer is {i}." for i in range(40)]), model_prefix=str(root / "tokenizer"),
      vocab_size=400, model_type="bpe", character_coverage=1.0, bos_id=1, eos_id=2, unk_id=0,
      pad_id=-1, byte_fallback=True, split_digits=True, minloglevel=2)
  tok = LlamaTokenizer.from_pretrained(str(root), legacy=False, add_bos_token=True)
  tok.pad_token = tok.unk_token
  tok.save_pretrained(str(root / "tok"))
  return dict(out=out, tokenizer=str(root / "tok"))


def test_records_become_llava_examples(data):
  from mathvlm.data.records import read
  tok = load_tokenizer(data["tokenizer"])
  src = ConversationSource(read(data["out"], "llava_json"), tokenizer=tok, template="vicuna_v1",
                           image_size=56, image_token_id=3, image_seq_len=16, max_len=192)
  ex = src[7]
  n = int(ex["attention_mask"].sum())
  assert ex["pixel_values"].shape == (1, 56, 56, 3)  # one image slot per example
  assert int(np.sum(ex["input_ids"] == 3)) == 16 and ex["input_ids"][0] == tok.bos_token_id
  target = tok.decode([int(t) for t, m in zip(ex["input_ids"], ex["loss_mask"]) if m])
  assert target.replace(" </s>", "</s>") == "The answer is 10.</s>"
  assert (ex["input_ids"][n:] == tok.pad_token_id).all()
  src[5]  # the long one: its answer falls beyond max_len
  assert src.dropped == {"no_targets": 1}
  text = src[24]  # text-only: trains, no image tokens, an unused (zero) slot
  assert int(np.sum(text["input_ids"] == 3)) == 0 and text["loss_mask"].sum() > 0
  assert not text["pixel_values"].any()
  assert src.dropped == {"no_targets": 1}


@pytest.mark.slow  # default run: mixture draws in test_mixture.py, built pairs in the demo
def test_trainer_on_a_mixture_and_on_preference_pairs(data, tmp_path):
  from mathvlm.train import train
  common = dict(data__path=data["out"], data__tokenizer=data["tokenizer"], data__max_len=192,
                steps=3, data__global_batch=8)
  sft = tiny_config("lm", data__name="mixture", data__mixture="llava_json=1,mavis_caption=1",
                    **common)
  train(sft, str(tmp_path / "sft"))
  rows = metrics(str(tmp_path / "sft"))
  assert len(rows) == 3 and all(np.isfinite(r["loss"]) for r in rows)
  report = json.load(open(tmp_path / "sft/data_report.json"))
  assert report["examples"] == 50 and set(report["dropped"]) <= {"no_targets"}
  grouped = tiny_config("lm", data__name="llava_json", data__group_by_length=True,
                        data__buckets=(64, 128, 192), **common)
  train(grouped, str(tmp_path / "grouped"))
  assert len(metrics(str(tmp_path / "grouped"))) == 3
  dpo = tiny_config("dpo", data__name="preferences", **common)
  train(dpo, str(tmp_path / "dpo"))
  first = metrics(str(tmp_path / "dpo"))[0]
  assert abs(first["loss"] - np.log(2)) < 1e-5  # LoRA starts at zero: policy == reference


@pytest.mark.slow  # default run: workers in test_workers.py, packing in test_packing.py
def test_packed_text_only_training_is_the_same_with_worker_processes(data, tmp_path):
  """Text-only records, built, trained packed (several to a row), with the examples read
  in-process and by two worker processes: the same losses, and the same drop counts in
  data_report.json, although with workers the sources' counters stay behind in the workers (the
  reasons travel with the examples)."""
  from mathvlm.train import train
  _build_text_only(data, tmp_path, too_long=(3, 8))
  losses, reports = [], []
  for workers in (0, 2):
    cfg = tiny_config("lm", data__name="llava_json", data__path=str(tmp_path / "built"),
                      data__tokenizer=data["tokenizer"], data__max_len=256, data__global_batch=4,
                      steps=4, data__packing=True, data__workers=workers)
    train(cfg, str(tmp_path / str(workers)))
    rows = metrics(str(tmp_path / str(workers)))
    assert sum(r["data/examples"] for r in rows) > 4 * 4  # packed: more examples than rows
    losses.append([r["loss"] for r in rows])
    reports.append(json.load(open(tmp_path / str(workers) / "data_report.json")))
  assert len(losses[0]) == 4 and np.isfinite(losses[0]).all() and losses[1] == losses[0]
  assert reports[0] == reports[1] and reports[0]["examples"] == 16
  assert set(reports[0]["dropped"]) == {"no_targets"}  # records 3 and 8, once per pass


def test_sources_need_a_path_and_tokenizer():
  from mathvlm.data.sources import make_source, parse_mixture
  from mathvlm import objectives
  from mathvlm.pretrained import model_config
  cfg = tiny_config("lm", data__name="llava_json")
  with pytest.raises(ValueError, match="needs data.path"):
    make_source(cfg.data, objectives.get("lm"), model_config(cfg), 0)
  assert parse_mixture("a=3,b") == [("a", 3.0), ("b", 1.0)]
  with pytest.raises(ValueError, match="name=weight"):
    parse_mixture("a=x")


def test_images_prepared_at_build_time_decode_to_the_same_pixels(data, tmp_path):
  """--image_size pads and resizes once in the builder; the pipeline then only decodes, and the
  pixels equal those of resizing the original in the pipeline."""
  from mathvlm.data.records import read
  root = os.path.dirname(data["out"])
  _build("llava_json", ["--json", f"{root}/train.json", "--images", f"{root}/images",
                        "--image_size", "56"], str(tmp_path))
  tok = load_tokenizer(data["tokenizer"])
  kw = dict(tokenizer=tok, template="vicuna_v1", image_size=56, image_token_id=3,
            image_seq_len=16, max_len=192)
  prepared = ConversationSource(read(str(tmp_path), "llava_json"), **kw)
  original = ConversationSource(read(data["out"], "llava_json"), **kw)
  for i in (0, 7, 24):
    a, b = prepared[i], original[i]
    assert all(np.array_equal(a[k], b[k]) for k in a)
  assert len(read(str(tmp_path), "llava_json")[0]["image"]) != len(
      read(data["out"], "llava_json")[0]["image"])


def test_recorded_lengths_follow_the_reading_order(data):
  from data_prep.common import length_of
  from mathvlm.data.records import read, read_lengths
  records = read(data["out"], "llava_json")
  lengths, has_image = read_lengths(data["out"], "llava_json")
  assert len(lengths) == len(records) == 25
  assert all(length_of(records[i]) == [lengths[i], int(has_image[i])] for i in range(25))
  assert has_image.sum() == 24  # the text-only record


@pytest.mark.long(60)
def test_two_processes_report_every_process_drops(data, tmp_path):
  """Each process counts the drops of its own rows of every batch; data_report.json must give
  the run's (here 8 records of 16, one epoch), not whichever process wrote the file last."""
  _build_text_only(data, tmp_path, too_long=range(0, 16, 2))
  codes, logs = _train_in_two_processes([
      "--config.steps=4", "--config.data.max_len=128", "--config.data.name=llava_json",
      f"--config.data.path={tmp_path / 'built'}", f"--config.data.tokenizer={data['tokenizer']}",
      "--workdir", str(tmp_path / "run")])
  assert codes == [0, 0], "\n".join(log[-3000:] for log in logs)
  report = json.load(open(tmp_path / "run" / "data_report.json"))
  assert report == {"examples": 16, "epochs": 2, "steps": 4, "trained": 16, "untrained": 16,
                    "examples_read": 16, "passes_read": 1.0,  # each process's 8, summed
                    "dropped": {"no_targets": 8}, "truncated": {}}  # 4 steps of 4: epoch 1 of 2


@pytest.mark.long(30)
def test_a_mesh_whose_tensor_axis_spans_processes_is_refused(tmp_path):
  """Each process feeds its own rows of every batch; with mesh.tensor across the two processes
  the batch is replicated over both, and they would feed its one copy different rows (a global
  batch half the size, whose replicas differ). The run must stop at setup, naming the mesh."""
  codes, logs = _train_in_two_processes([
      "--config.steps=2", "--config.data.max_len=32", "--config.mesh.fsdp=1",
      "--config.mesh.tensor=2", "--workdir", str(tmp_path / "run")])
  assert all(codes), logs[0][-2000:]
  assert all("lies on processes [0, 1]" in log for log in logs), logs[0][-2000:]


def _train_in_two_processes(args: list[str]) -> tuple[list[int], list[str]]:
  """(return codes, logs) of `mathvlm.train` on the tiny sft recipe, batch 4, as two processes
  on loopback."""
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  args = ["--config", "configs/sft.py:model=tiny", "--config.data.global_batch=4",
          "--config.checkpoint.use_async=False", "--config.metrics.tensorboard=False", *args,
          "--num_processes=2", f"--coordinator=127.0.0.1:{port}"]
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  procs = [subprocess.Popen([sys.executable, "-m", "mathvlm.train", *args, f"--process_id={i}"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True) for i in range(2)]
  logs = [p.communicate(timeout=500)[0] for p in procs]
  return [p.returncode for p in procs], logs


def _build_text_only(data, tmp_path, too_long):
  """16 text-only records built as llava_json into tmp_path/built; those in `too_long` have a
  prompt of 320 words, after which no answer token fits in these tests' data.max_len."""
  root = os.path.dirname(data["out"])
  long = " ".join(["Think step by step."] * 80)
  records = [{"id": f"t{i}", "conversations": [
      {"from": "human", "value": f"What is {i} + 3? {long if i in too_long else ''}"},
      {"from": "gpt", "value": f"The answer is {i + 3}."}]} for i in range(16)]
  (tmp_path / "text.json").write_text(json.dumps(records))
  _build("llava_json", ["--json", str(tmp_path / "text.json"), "--images", f"{root}/images"],
         str(tmp_path / "built"))
