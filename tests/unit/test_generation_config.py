"""A Hugging Face folder's generation_config.json decides the ids a response ends on, as in
transformers' generate: read on load (LLaVA and Llama), kept through export and convert, and
every one of them ends an evaluation's response beside the tokenizer's `</s>`."""

import json
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import transformers as tf

import hf_models as H
from mathvlm import checkpoint, hf, pretrained
from mathvlm.generate import generate

from train_utils import ROOT

STEPS = 12


def _write_eos(folder, eos) -> None:
  """generation_config.json's eos_token_id set to eos, its other fields kept."""
  path = os.path.join(folder, "generation_config.json")
  meta = json.load(open(path))
  json.dump(dict(meta, eos_token_id=eos), open(path, "w"))


def _stop_token(tokens: np.ndarray) -> tuple[int, int]:
  """(step, token): a token row 0 first emits at a middle step, before any 2 (config.json's eos),
  so ending on it cuts row 0 visibly short of STEPS."""
  row = [int(t) for t in tokens[0]]
  for step in range(2, STEPS - 3):
    if row[step] not in row[:step] and 2 not in row[:step + 1]:
      return step, row[step]
  raise AssertionError(f"no token to stop on in {row}")


def _hf_tokens(folder: str, cls, ids, mask, px=None) -> np.ndarray:
  """transformers' greedy tokens, its end ids whatever the folder says (no eos argument)."""
  ref = cls.from_pretrained(folder).eval()
  extra = {} if px is None else {"pixel_values": H.to_torch_pixels(px)}
  with torch.no_grad():
    out = ref.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                       do_sample=False, max_new_tokens=STEPS, **extra)
  return out[:, ids.shape[1]:].numpy()


def _stops_like_transformers(folder, cls, ids, mask, px=None) -> np.ndarray:
  """Our greedy tokens from the folder (the end ids its config carries), checked against
  transformers' on the same folder; returns ours."""
  model, _ = hf.load_hf(folder)
  ours = generate(model, ids, mask, px, max_new_tokens=STEPS)  # the config's end ids
  tokens, ref = np.asarray(ours.tokens), _hf_tokens(folder, cls, ids, mask, px)
  np.testing.assert_array_equal(tokens[:, :ref.shape[1]], ref)
  assert (tokens[:, ref.shape[1]:] == 0).all()
  return tokens


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
  """(folder, prompt ids, mask, K, its step): a tiny Llama whose config.json ends on 2 and whose
  generation_config.json on [2, K], K a token it emits greedily at a middle step."""
  folder = H.save(H.llm(5), str(tmp_path_factory.mktemp("llama")))
  ids, mask = H.llava_prompt(3, 8, 0, seed=4, pad_left=(0, 2, 1))
  free = generate(hf.load_hf(folder)[0], ids, mask, max_new_tokens=STEPS, eos_token_id=-1)
  step, k = _stop_token(np.asarray(free.tokens))
  _write_eos(folder, [2, k])
  return folder, ids, mask, k, step


@pytest.fixture(scope="module")
def llava_dir(llava_hf, tmp_path_factory):
  """As llama_dir, for a llava-hf LLaVA (the ids live in text_config), with images."""
  folder = str(shutil.copytree(llava_hf[1], tmp_path_factory.mktemp("llava") / "hf"))
  ids, mask = H.llava_prompt(2, 10, 4, seed=6, pad_left=(0, 2))
  px = H.pixels(2, seed=6)
  free = generate(hf.load_llava(folder)[0], ids, mask, px, max_new_tokens=STEPS, eos_token_id=-1)
  step, k = _stop_token(np.asarray(free.tokens))
  _write_eos(folder, [2, k])
  return folder, ids, mask, px, k, step


def test_a_llama_ends_on_every_id_of_its_generation_config_as_transformers_does(llama_dir):
  folder, ids, mask, k, step = llama_dir
  assert json.load(open(os.path.join(folder, "config.json")))["eos_token_id"] == 2
  assert hf.load_hf(folder)[1].eos_token_id == (2, k)
  tokens = _stops_like_transformers(folder, tf.LlamaForCausalLM, ids, mask)
  assert tokens[0, step] == k and (tokens[0, step + 1:] == 0).all()  # stopped on K, early


def test_a_llava_ends_on_every_id_of_its_generation_config_as_transformers_does(llava_dir):
  folder, ids, mask, px, k, step = llava_dir
  cfg = hf.load_llava(folder)[1]
  assert cfg.text.eos_token_id == (2, k)
  tokens = _stops_like_transformers(folder, tf.LlavaForConditionalGeneration, ids, mask, px)
  assert tokens[0, step] == k and (tokens[0, step + 1:] == 0).all()


def _plan(path, clip_dir=""):
  config = types.SimpleNamespace(model=types.SimpleNamespace(
      clip_dir=clip_dir, dtype="float32", param_dtype="float32", remat="none", scan_unroll=1,
      attention_impl=""))
  return pretrained.pretrained_config(path, config)


def test_a_run_plans_with_the_end_ids_it_loads(llava_dir, llama_dir):
  for folder in (llava_dir[0], llama_dir[0]):
    assert _plan(folder) == hf.load_hf(folder)[1]
  assert _plan(llama_dir[0]).eos_token_id == (2, llama_dir[3])


def test_the_original_llava_layout_reads_its_own_generation_config(llava_dir, tmp_path):
  """The ids come from the LLaVA's folder, not from the separate CLIP's."""
  from test_convert import _write_original_layout
  llava, clip = _write_original_layout(llava_dir[0], str(tmp_path))
  shutil.copy(os.path.join(llava_dir[0], "generation_config.json"), llava)
  planned = _plan(llava, clip)
  assert planned == hf.load_llava(llava, clip_dir=clip)[1]
  assert planned.text.eos_token_id == (2, llava_dir[4])


def test_without_generation_config_or_its_eos_the_config_is_config_jsons(llava_hf, tmp_path):
  """Bit-identical to the config read from config.json alone (as before generation_config.json
  was read); a generation config naming config.json's id (save_pretrained's) changes nothing."""
  folder = str(shutil.copytree(llava_hf[1], tmp_path / "hf"))
  meta = hf.read_config(os.path.join(folder, "config.json"))
  alone = hf.with_pixel_stats(hf.config_from_hf("llava", meta), folder)
  assert hf.load_hf(folder)[1] == alone and alone.text.eos_token_id == 2
  _write_eos(folder, [2])
  assert hf.folder_config(folder, "llava", meta, None, folder) == alone
  gen = json.load(open(os.path.join(folder, "generation_config.json")))
  json.dump({k: v for k, v in gen.items() if k != "eos_token_id"},
            open(os.path.join(folder, "generation_config.json"), "w"))
  assert hf.folder_config(folder, "llava", meta, None, folder) == alone
  os.remove(os.path.join(folder, "generation_config.json"))
  assert _plan(folder) == hf.load_hf(folder)[1] == alone


def test_a_clip_config_is_not_touched(tmp_path):
  folder = H.save(H.clip(), str(tmp_path / "clip"))
  (tmp_path / "clip" / "generation_config.json").write_text('{"eos_token_id": [2, 7]}')
  meta = hf.read_config(os.path.join(folder, "config.json"))
  cfg = hf.config_from_hf("clip", meta)
  assert hf.with_generation_eos(cfg, folder) is cfg


@pytest.mark.parametrize("text, field", [
    ('{"eos_token_id": [2, 5', None),                  # cut short: not JSON
    ('[2, 5]', None),                                   # JSON, not an object
    ('{"eos_token_id": "2"}', "eos_token_id"),
    ('{"eos_token_id": [2, "x"]}', "eos_token_id"),
    ('{"eos_token_id": []}', "eos_token_id"),
    ('{"eos_token_id": true}', "eos_token_id"),
    ('{"eos_token_id": 2.0}', "eos_token_id")])
def test_a_bad_generation_config_is_an_error_naming_the_file_and_field(llama_dir, tmp_path,
                                                                        text, field):
  folder = str(shutil.copytree(llama_dir[0], tmp_path / "hf"))
  (tmp_path / "hf" / "generation_config.json").write_text(text)
  with pytest.raises(checkpoint.CheckpointError) as e:
    hf.load_hf(folder)
  assert os.path.join(folder, "generation_config.json") in str(e.value)
  assert field is None or f"field {field}=" in str(e.value)
  assert ("delete it" in str(e.value)) if field is None else "list of ints" in str(e.value)


def test_the_encoder_ends_on_the_loaded_ids_and_on_the_tokenizers_end(llava_dir):
  from mathvlm.demo.parity import train_tokenizer
  from mathvlm.eval import run
  folder, k = llava_dir[0], llava_dir[4]
  cfg = hf.load_llava(folder)[1]
  tok = train_tokenizer(["what is the area of the triangle"] * 10, 300)
  end = tok.token_to_id("</s>")
  enc = run.Encoder(tok, cfg.image_token_id, cfg.image_seq_len, 64, cfg.text.eos_token_id)
  assert set(enc.eos) == {2, k, end}
  words = [t for t in range(5, 40) if t not in enc.eos][:6]  # tokens that end nothing
  for stop in (k, end):
    assert enc.decode(words + [stop] + words) == tok.decode(words)


def _reloaded_stops(src: str, back: str, k: int, ids, mask) -> None:
  """An exported folder states [2, K] in both config files and ends where the source does, in
  transformers and in mathvlm."""
  assert json.load(open(os.path.join(back, "generation_config.json")))["eos_token_id"] == [2, k]
  np.testing.assert_array_equal(_hf_tokens(back, tf.LlamaForCausalLM, ids, mask),
                                _hf_tokens(src, tf.LlamaForCausalLM, ids, mask))
  assert hf.load_hf(back)[1].eos_token_id == (2, k)


def test_the_end_ids_survive_export(llama_dir, tmp_path):
  folder, ids, mask, k, _ = llama_dir
  model, cfg = hf.load_hf(folder)
  hf.export_hf(model, cfg, str(tmp_path / "back"))
  _reloaded_stops(folder, str(tmp_path / "back"), k, ids, mask)


def test_the_end_ids_survive_convert_through_a_checkpoint(llama_dir, tmp_path):
  folder, ids, mask, k, _ = llama_dir
  ckpt, back = str(tmp_path / "ckpt"), str(tmp_path / "back")
  for args in (["--from-hf", folder, "--to", ckpt], ["--from-ckpt", ckpt, "--to-hf", back]):
    res = subprocess.run([sys.executable, "-m", "mathvlm.convert", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert res.returncode == 0, res.stdout + res.stderr
  assert checkpoint.read_model_config(ckpt)[1].eos_token_id == (2, k)
  _reloaded_stops(folder, back, k, ids, mask)
