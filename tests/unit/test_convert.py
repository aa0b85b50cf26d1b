"""Hugging Face import/export: layouts, round trips, orbax checkpoints, sharding, bad input."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers as tf
from safetensors.numpy import load_file, save_file

import hf_models as H
from mathvlm import checkpoint, convert, hf

from train_utils import ROOT, cpu_env  # noqa: E402


def _run(*args, env=None):
  res = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT, **(env or {})}, timeout=300)
  assert res.returncode == 0, res.stdout + res.stderr
  return res.stdout


def _ref_logits(ref_model, ids, px):
  with torch.no_grad():
    return ref_model(input_ids=torch.tensor(ids), pixel_values=H.to_torch_pixels(px)).logits.numpy()


def _tensors(path):
  out = {}
  for name in os.listdir(path):
    if name.endswith(".safetensors"):
      out.update(load_file(os.path.join(path, name)))
  return out


def test_round_trip_through_orbax_and_cli_is_exact(llava_hf, tmp_path):
  ref_model, src = llava_hf
  src = shutil.copytree(src, tmp_path / "hf")  # with tokenizer files, as a Hub folder has them
  tokenizer_files = {"tokenizer.json": b'{"version": "1.0", "model": {}}',
                     "tokenizer_config.json": b'{"model_max_length": 2048}'}
  for name, data in tokenizer_files.items():
    (src / name).write_bytes(data)
  src = str(src)
  ckpt, back = str(tmp_path / "ckpt"), str(tmp_path / "hf_back")
  _run("-m", "mathvlm.convert", "--from-hf", src, "--to", ckpt)
  assert os.path.isdir(os.path.join(ckpt, "params"))
  _run("-m", "mathvlm.convert", "--from-ckpt", ckpt, "--to-hf", back)
  for folder in (ckpt, back):  # the tokenizer travels with the weights, byte for byte
    for name, data in tokenizer_files.items():
      with open(os.path.join(folder, name), "rb") as f:
        assert f.read() == data, (folder, name)
  a, b = _tensors(src), _tensors(back)
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
  # transformers reads the export and computes the same logits.
  again = tf.LlavaForConditionalGeneration.from_pretrained(back).eval()
  ids, _ = H.llava_prompt(2, 10, 4)
  px = H.pixels(2)
  np.testing.assert_array_equal(_ref_logits(again, ids, px), _ref_logits(ref_model, ids, px))
  # and our checkpoint loads to the same logits as the Hugging Face folder.
  model, _ = checkpoint.load_model(ckpt)
  direct, _ = hf.load_llava(src)
  np.testing.assert_array_equal(np.asarray(model(ids, px)), np.asarray(direct(ids, px)))


def _write_original_layout(src, dst):
  """The original LLaVA layout (FACTS.md): model.*, lm_head, model.mm_projector.{0,2}, and the
  vision tower as a separate CLIP checkpoint."""
  t = _tensors(src)
  cfg = json.load(open(os.path.join(src, "config.json")))
  llm, clip = {}, {}
  for k, v in t.items():
    if k.startswith("language_model.model."):
      llm["model." + k[len("language_model.model."):]] = v
    elif k == "language_model.lm_head.weight":
      llm["lm_head.weight"] = v
    elif k.startswith("multi_modal_projector.linear_"):
      i = int(k.split("linear_")[1][0])
      llm[f"model.mm_projector.{2 * (i - 1)}.{k.rsplit('.', 1)[1]}"] = v
    elif k.startswith("vision_tower."):
      clip["vision_model." + k[len("vision_tower."):]] = v
  os.makedirs(f"{dst}/llava"), os.makedirs(f"{dst}/clip")
  save_file(llm, f"{dst}/llava/model.safetensors", metadata={"format": "pt"})
  save_file(clip, f"{dst}/clip/model.safetensors", metadata={"format": "pt"})
  text = cfg["text_config"]
  orig = dict(text, model_type="llava", architectures=["LlavaLlamaForCausalLM"],
              mm_vision_tower="openai/clip-vit-large-patch14-336", mm_projector_type="mlp2x_gelu",
              mm_vision_select_layer=-2, mm_vision_select_feature="patch", mm_hidden_size=32,
              image_aspect_ratio="pad")
  json.dump(orig, open(f"{dst}/llava/config.json", "w"))
  json.dump(cfg["vision_config"], open(f"{dst}/clip/config.json", "w"))
  return f"{dst}/llava", f"{dst}/clip"


def test_original_llava_layout_loads_to_the_same_logits(llava_hf, tmp_path):
  ref_model, src = llava_hf
  llava_dir, clip_dir = _write_original_layout(src, str(tmp_path))
  with pytest.raises(checkpoint.CheckpointError, match="clip_dir"):
    hf.load_llava(llava_dir)
  model, cfg = hf.load_llava(llava_dir, clip_dir=clip_dir)
  assert cfg.image_token_id == -200 and cfg.projector == "mlp2x_gelu"
  ids, _ = H.llava_prompt(2, 10, 4, seed=8)
  px = H.pixels(2, seed=8)
  ours = model(np.where(ids == H.IMAGE_TOKEN, -200, ids), px)  # the original marks images -200
  assert H.rel_err(ours, _ref_logits(ref_model, ids, px)) < 1e-4


def test_older_vision_model_keys_and_sharded_files_with_index(llava_hf, tmp_path):
  ref_model, src = llava_hf
  t = {("vision_tower.vision_model." + k[len("vision_tower."):] if k.startswith("vision_tower.")
        else k): v for k, v in _tensors(src).items()}
  keys = sorted(t)
  shards = {"model-00001-of-00002.safetensors": keys[::2],
            "model-00002-of-00002.safetensors": keys[1::2]}
  for name, ks in shards.items():
    save_file({k: t[k] for k in ks}, str(tmp_path / name), metadata={"format": "pt"})
  json.dump({"weight_map": {k: n for n, ks in shards.items() for k in ks}},
            open(tmp_path / "model.safetensors.index.json", "w"))
  shutil.copy(os.path.join(src, "config.json"), tmp_path / "config.json")
  model, _ = hf.load_llava(str(tmp_path))
  ids, _ = H.llava_prompt(2, 10, 4)
  px = H.pixels(2)
  assert H.rel_err(model(ids, px), _ref_logits(ref_model, ids, px)) < 1e-4
  # export with a tiny shard limit writes an index transformers can read
  out = str(tmp_path / "export")
  hf.export_hf(model, hf.load_llava(src)[1], out, max_shard_bytes=20_000)
  assert os.path.exists(os.path.join(out, "model.safetensors.index.json"))
  again = tf.LlavaForConditionalGeneration.from_pretrained(out).eval()
  np.testing.assert_array_equal(_ref_logits(again, ids, px), _ref_logits(ref_model, ids, px))


def test_bfloat16_checkpoint_loads_exactly(tmp_path):
  ref_model = H.llm(5).to(torch.bfloat16)
  path = H.save(ref_model, str(tmp_path / "bf16"))
  model, cfg = hf.load_hf(path, "bfloat16")
  q = np.asarray(model.layers.self_attn.q_proj.kernel[...][1]).astype(np.float32)
  ref = ref_model.model.layers[1].self_attn.q_proj.weight.detach().float().numpy().T
  np.testing.assert_array_equal(q, ref)
  assert cfg.param_dtype == "bfloat16"
  model32, _ = hf.load_hf(path, "float32")
  assert model32.layers.self_attn.q_proj.kernel[...].dtype == np.float32


def test_clip_model_round_trip(tmp_path):
  ref_model = H.clip(9)
  src = H.save(ref_model, str(tmp_path / "clip"))
  model, cfg = hf.load_hf(src)
  hf.export_hf(model, cfg, str(tmp_path / "back"))
  a, b = _tensors(src), _tensors(str(tmp_path / "back"))
  assert sorted(a) == sorted(k for k in b)
  assert all(np.array_equal(a[k], b[k]) for k in a)
  # the vision tower alone loads from the full CLIP checkpoint
  vision, vcfg = hf.load_hf(src, layout="clip_vision")
  assert vcfg.num_layers == 3
  px = H.pixels(2)
  np.testing.assert_array_equal(np.asarray(vision(px)[1]), np.asarray(model.vision_model(px)[1]))


def _copy(src, dst):
  shutil.copytree(src, dst)
  return dst


def test_missing_tensor_names_the_key(llava_hf, tmp_path):
  path = _copy(llava_hf[1], str(tmp_path / "m"))
  t = _tensors(path)
  del t["language_model.model.layers.1.mlp.up_proj.weight"]
  save_file(t, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"missing tensor 'language_model.model.layers.1.mlp.up_proj.weight'"):
    hf.load_llava(path)


def test_shape_mismatch_names_key_expected_and_found(llava_hf, tmp_path):
  path = _copy(llava_hf[1], str(tmp_path / "m"))
  cfg = json.load(open(os.path.join(path, "config.json")))
  cfg["text_config"]["intermediate_size"] = 80
  json.dump(cfg, open(os.path.join(path, "config.json"), "w"))
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"'language_model.model.layers.0.mlp.down_proj.weight' has shape "
                           r"\(48, 96\), expected \(48, 80\)"):
    hf.load_llava(path)


@pytest.mark.parametrize("field,value,match", [
    ("model_type", "gpt2", "model_type='gpt2' is not supported"),
    ("rope_parameters", {"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0},
     "rope_parameters.rope_type='yarn'"),
    ("hidden_act", "gelu", "hidden_act='gelu'"),
])
def test_unsupported_config_fields_are_named(tmp_path, field, value, match):
  path = H.save(H.llm(1), str(tmp_path / "m"))
  cfg = json.load(open(os.path.join(path, "config.json")))
  cfg[field] = value
  json.dump(cfg, open(os.path.join(path, "config.json"), "w"))
  with pytest.raises(ValueError, match=match):
    hf.load_hf(path)


@pytest.mark.parametrize("field,value,match", [
    ("num_hidden_layers", "two", "LlamaConfig.num_layers='two': expected int"),
    ("hidden_size", 32.5, "LlamaConfig.hidden_size=32.5: expected int"),
    ("rms_norm_eps", "1e-5", "LlamaConfig.rms_norm_eps='1e-5': expected float or int"),
    ("tie_word_embeddings", "no", "LlamaConfig.tie_word_embeddings='no': expected bool"),
    ("num_attention_heads", True, "LlamaConfig.num_heads=True: expected int"),
])
def test_a_field_of_the_wrong_type_is_named_by_the_command(tmp_path, capsys, field, value, match):
  """A hand-edited config.json: "two" layers failed inside jax with a traceback, and the string
  "no" tied the embeddings (bool("no")), so the export dropped lm_head without a word."""
  path = H.save(H.llm(1), str(tmp_path / "m"))
  cfg = json.load(open(os.path.join(path, "config.json")))
  cfg[field] = value
  json.dump(cfg, open(os.path.join(path, "config.json"), "w"))
  with pytest.raises(SystemExit, match=re.escape(f"{path}/config.json: {match}")):
    convert.main(["--from-hf", path, "--to", str(tmp_path / "out")])
  assert not os.path.exists(tmp_path / "out")


def test_a_field_of_the_wrong_type_in_our_own_config_json_is_named(tmp_path):
  model, good = hf.load_hf(H.save(H.llm(1), str(tmp_path / "good")))
  checkpoint.save_model(model, good, str(tmp_path / "ours"))
  meta = json.load(open(tmp_path / "ours" / "config.json"))
  meta["config"]["num_layers"] = "two"
  json.dump(meta, open(tmp_path / "ours" / "config.json", "w"))
  with pytest.raises(SystemExit, match="config.json: LlamaConfig.num_layers='two'"):
    convert.main(["--from-ckpt", str(tmp_path / "ours"), "--to-hf", str(tmp_path / "back")])


def test_unused_tensors_warn_or_fail_in_strict_mode(tmp_path, caplog):
  path = H.save(H.llm(1), str(tmp_path / "m"))
  t = _tensors(path)
  t["model.extra_head.weight"] = np.zeros((2, 2), np.float32)
  save_file(t, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
  hf.load_hf(path)
  assert "1 tensors were not used" in caplog.text and "model.extra_head.weight" in caplog.text
  with pytest.raises(checkpoint.CheckpointError, match="not used"):
    hf.load_hf(path, strict=True)


SHARDED_LOAD = r"""
import sys, numpy as np
sys.path.insert(0, "tests")
import hf_models as H
from mathvlm import checkpoint, hf, sharding
mesh = sharding.make_mesh(data=1, fsdp=4, tensor=2)
model, cfg = hf.load_llava(sys.argv[1], sharding=sharding.param_sharding(mesh))
q = model.language_model.layers.self_attn.q_proj.kernel[...]
assert len(q.sharding.device_set) == 8, q.sharding
assert tuple(q.sharding.spec) == (None, "fsdp", "tensor"), q.sharding.spec
shard = q.addressable_shards[0].data
assert shard.shape == (q.shape[0], q.shape[1] // 4, q.shape[2] // 2), shard.shape
plain, _ = hf.load_llava(sys.argv[1])
ids, _ = H.llava_prompt(2, 10, 4)
px = H.pixels(2)
err = H.rel_err(model(ids, px), plain(ids, px))
assert err < 1e-5, err
ckpt = sys.argv[2]
checkpoint.save_model(model, cfg, ckpt)
again, _ = checkpoint.load_model(ckpt, sharding=sharding.param_sharding(mesh))
k = again.language_model.layers.self_attn.q_proj.kernel[...]
assert k.sharding.spec == q.sharding.spec and np.array_equal(np.asarray(k), np.asarray(q))
print("ok", err)
"""


def test_loads_straight_onto_an_8_device_mesh(llava_hf, tmp_path):
  out = _run("-c", SHARDED_LOAD, llava_hf[1], str(tmp_path / "ckpt"),
             env=cpu_env(8))
  assert out.startswith("ok")


@pytest.mark.parametrize("kind", ["llama", "mistral", "clip_vision"])
def test_plain_model_export_round_trip_reloads_in_transformers(tmp_path, kind):
  if kind == "clip_vision":
    ref_model, cls = H._randomise(tf.CLIPVisionModel(H.clip_vision_config()), 2), tf.CLIPVisionModel
  else:
    cfg = H.llama_config() if kind == "llama" else H.mistral_config()
    ref_model = H.llm(2, cfg)
    cls = tf.MistralForCausalLM if kind == "mistral" else tf.LlamaForCausalLM
  src = H.save(ref_model, str(tmp_path / "src"))
  model, cfg = hf.load_hf(src)
  hf.export_hf(model, cfg, str(tmp_path / "back"))
  a, b = _tensors(src), _tensors(str(tmp_path / "back"))
  assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
  again = cls.from_pretrained(str(tmp_path / "back")).eval()
  assert type(again.config) is type(ref_model.config)
  if kind == "mistral":
    assert again.config.sliding_window == ref_model.config.sliding_window
