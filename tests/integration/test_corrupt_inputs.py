"""Damaged inputs fail at start with an error naming the file and the fix, before the workdir is
written: a truncated ArrayRecord shard, a Hugging Face folder with a damaged safetensors file, a
tokenizer whose ids do not fit the model. (Unreadable checkpoint steps: test_faults.py.)"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from train_utils import ROOT, tiny_config


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """A small llava_json dataset and two tokenizer.json files: one within the tiny model's 1024
  ids, one whose pad token is id 1500."""
  from tokenizers import Tokenizer, models, pre_tokenizers
  root = tmp_path_factory.mktemp("corrupt")
  (root / "images").mkdir()
  records = []
  for i in range(8):
    Image.new("RGB", (32, 32), (30 * i, 0, 0)).save(root / "images" / f"{i}.png")
    records.append({"id": f"r{i}", "image": f"{i}.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is it?"},
        {"from": "gpt", "value": f"It is red {i}."}]})
  (root / "train.json").write_text(json.dumps(records))
  res = subprocess.run([sys.executable, "-m", "data_prep.llava_json", "--json",
                        str(root / "train.json"), "--images", str(root / "images"), "--out",
                        str(root / "built"), "--no_progress"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stdout + res.stderr
  words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(100)]
  for name, pad in (("fits", 3 + 100), ("too_big", 1500)):
    vocab = {w: i for i, w in enumerate(words)} | {"<pad>": pad}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(root / f"{name}.json"))
  return root


def lm_config(root, tokenizer="fits.json", path="built"):
  return tiny_config("lm", data__name="llava_json", data__path=str(root / path),
                     data__tokenizer=str(root / tokenizer), data__max_len=48)


def test_sound_inputs_set_up(built):
  from mathvlm import train
  run = train.setup(lm_config(built))
  assert len(run.source) == 8


def test_truncated_arrayrecord_shard_is_named_with_the_fix(built, tmp_path):
  from mathvlm.train import train
  shutil.copytree(built / "built", tmp_path / "built")
  shard = tmp_path / "built/llava_json/1.0.0/llava_json-train.array_record-00000-of-00001"
  with open(shard, "r+b") as f:
    f.truncate(os.path.getsize(shard) - 100)
  cfg = tiny_config("lm", data__name="llava_json", data__path=str(tmp_path / "built"),
                    data__tokenizer=str(built / "fits.json"), data__max_len=48)
  with pytest.raises(ValueError, match="not a whole ArrayRecord shard") as err:
    train(cfg, str(tmp_path / "run"))
  assert str(shard) in str(err.value) and "run the builder of 'llava_json' again" in str(err.value)
  assert not (tmp_path / "run").exists()


def test_tokenizer_with_ids_past_the_vocabulary_is_named(built, tmp_path):
  from mathvlm.train import train
  with pytest.raises(ValueError, match="its ids do not fit the model's vocabulary of 1024") as err:
    train(lm_config(built, "too_big.json"), str(tmp_path / "run"))
  assert f"data.tokenizer={built / 'too_big.json'}" in str(err.value)
  assert "'pad_token': 1500" in str(err.value)
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_safetensors_file_is_named(llava_hf, tmp_path, damage):
  from mathvlm import hf
  from mathvlm.checkpoint import CheckpointError
  from mathvlm.train import train
  folder = tmp_path / "hf"
  shutil.copytree(llava_hf[1], folder)
  weights = folder / "model.safetensors"
  data = weights.read_bytes()
  weights.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"\x00garbage" * 64)
  with pytest.raises(CheckpointError, match="cannot read this safetensors file") as err:
    hf.load_llava(str(folder))
  assert str(weights) in str(err.value) and "download or copy it again" in str(err.value)
  with pytest.raises(CheckpointError, match=str(weights)):
    train(tiny_config("lm", model__init_from=str(folder)), str(tmp_path / "run"))
