"""Original-layout LLaVA checkpoints that carry their own (tuned) vision tower, as LLaVA's code
saves an unfrozen one (`model.vision_tower.vision_tower.vision_model.*`, MAVIS's CLIP-Math): the
tower is read from the checkpoint, not from the separate CLIP; a partial tower is an error."""

import json
import logging
import os
import shutil
import types

import numpy as np
import pytest
import torch
import transformers as tf
from safetensors.numpy import save_file

import hf_models as H
from mathvlm import checkpoint, hf, pretrained
from test_convert import _tensors, _write_original_layout

TOWER = "model.vision_tower.vision_tower.vision_model."


def _tuned(clip_tensors, seed=3):
  """The CLIP folder's tower, changed everywhere (a tower trained on)."""
  rs = np.random.RandomState(seed)
  return {k: (v + 0.05 * rs.randn(*v.shape)).astype(v.dtype) for k, v in clip_tensors.items()}


def _with_tower(llava_dir, tower, drop=()):
  """The original-layout checkpoint with the tower saved where LLaVA saves it."""
  t = _tensors(llava_dir)
  t.update({TOWER + k[len("vision_model."):]: v for k, v in tower.items()
            if TOWER + k[len("vision_model."):] not in drop})
  save_file(t, os.path.join(llava_dir, "model.safetensors"), metadata={"format": "pt"})


def _reference(src, tower, dst):
  """transformers' LlavaForConditionalGeneration with the tuned tower: the llava-hf folder with
  its vision_tower.* tensors replaced."""
  t = _tensors(src)
  for k, v in tower.items():
    key = "vision_tower." + k[len("vision_model."):]
    assert key in t, key
    t[key] = v
  os.makedirs(dst)
  save_file(t, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
  shutil.copy(os.path.join(src, "config.json"), dst)
  return tf.LlavaForConditionalGeneration.from_pretrained(dst).eval()


def _logits(ref, ids, px):
  with torch.no_grad():
    return ref(input_ids=torch.tensor(ids), pixel_values=H.to_torch_pixels(px)).logits.numpy()


def _tower_of(model):
  """Our model's vision tower, as llava-hf keys -> arrays (CLIP folder naming)."""
  return {"vision_model." + k[len("vision_tower."):]: v for k, v in hf.hf_tensors(model)
          if k.startswith("vision_tower.")}


def _forward_matches(model, ref):
  ids, _ = H.llava_prompt(2, 10, 4, seed=8)
  px = H.pixels(2, seed=8)
  ours = np.asarray(model(np.where(ids == H.IMAGE_TOKEN, -200, ids), px))
  return H.rel_err(ours, _logits(ref, ids, px))


def _plan(path, clip_dir=""):
  config = types.SimpleNamespace(model=types.SimpleNamespace(
      clip_dir=clip_dir, dtype="float32", param_dtype="float32", remat="none", scan_unroll=1,
      attention_impl=""))
  return pretrained.pretrained_config(path, config)


def test_a_tuned_tower_in_the_checkpoint_is_loaded_not_the_separate_clip(llava_hf, tmp_path,
                                                                          caplog):
  _, src = llava_hf
  llava_dir, clip_dir = _write_original_layout(src, str(tmp_path))
  clip = _tensors(clip_dir)
  tuned = _tuned(clip)
  _with_tower(llava_dir, tuned)
  ref = _reference(src, tuned, str(tmp_path / "ref"))
  # a full CLIP folder whose tensors differ: the checkpoint's tower still wins, and says so
  with caplog.at_level(logging.INFO, logger="mathvlm.hf"):
    model, cfg = hf.load_llava(llava_dir, clip_dir=clip_dir, strict=True)  # every tensor used
  assert "vision tower from the checkpoint itself" in caplog.text
  assert "not its tensors" in caplog.text  # clip_dir given, its tensors ignored: a warning
  ours = _tower_of(model)
  assert sorted(ours) == sorted(tuned)
  for k in tuned:
    np.testing.assert_array_equal(ours[k], tuned[k], err_msg=k)
    assert not np.array_equal(ours[k], clip[k]), k
  assert _forward_matches(model, ref) < 1e-5
  # the CLIP folder needs only its config.json: no tensors there at all
  only_cfg = tmp_path / "clip_config_only"
  only_cfg.mkdir()
  shutil.copy(os.path.join(clip_dir, "config.json"), only_cfg)
  again, cfg2 = hf.load_llava(llava_dir, clip_dir=str(only_cfg))
  assert cfg2 == cfg
  assert _forward_matches(again, ref) < 1e-5
  # the config a run plans with is the one load_hf loads, clip_dir as mm_vision_tower too
  assert _plan(llava_dir, str(only_cfg)) == cfg
  meta = json.load(open(os.path.join(llava_dir, "config.json")))
  json.dump(dict(meta, mm_vision_tower=str(only_cfg)),
            open(os.path.join(llava_dir, "config.json"), "w"))
  assert _plan(llava_dir) == hf.load_llava(llava_dir)[1] == cfg


def test_without_a_clip_folder_an_openai_tower_config_comes_from_the_shapes(tmp_path):
  """No CLIP folder at all: an OpenAI CLIP ViT's architecture follows from its tensors (64-wide
  heads); any other tower's head count is unknowable, so that is an error naming clip_dir."""
  vision = H.clip_vision_config(hidden_size=128, intermediate_size=96, num_hidden_layers=2,
                                num_attention_heads=2)
  cfg = tf.LlavaConfig(vision_config=vision, text_config=H.llama_config(),
                       image_token_id=H.IMAGE_TOKEN)
  torch.manual_seed(1)
  ref = H._randomise(tf.LlavaForConditionalGeneration(cfg), 1)
  src = H.save(ref, str(tmp_path / "src"))
  llava_dir, clip_dir = _write_original_layout(src, str(tmp_path))
  _with_tower(llava_dir, _tensors(clip_dir))
  shutil.rmtree(clip_dir)  # mm_vision_tower is openai/clip-vit-large-patch14-336, not local
  model, ours = hf.load_llava(llava_dir)
  assert (ours.vision.hidden_size, ours.vision.num_heads, ours.vision.num_layers,
          ours.vision.intermediate_size, ours.vision.image_size, ours.vision.patch_size) \
      == (128, 2, 2, 96, H.IMAGE, H.PATCH)
  assert ours.vision.hidden_act == "quick_gelu"
  assert _forward_matches(model, ref) < 1e-5
  assert _plan(llava_dir) == ours
  path = os.path.join(llava_dir, "config.json")
  meta = json.load(open(path))
  json.dump(dict(meta, mm_vision_tower="/elsewhere/clip-math"), open(path, "w"))
  with pytest.raises(checkpoint.CheckpointError, match="clip_dir"):
    hf.load_llava(llava_dir)
  with pytest.raises(checkpoint.CheckpointError, match="clip_dir"):
    _plan(llava_dir)


@pytest.mark.parametrize("missing", ["encoder.layers.1.self_attn.q_proj.weight",
                                     "embeddings.patch_embedding.weight", "post_layernorm.bias"])
def test_a_partial_tower_is_an_error_naming_the_missing_tensor(llava_hf, tmp_path, missing):
  _, src = llava_hf
  llava_dir, clip_dir = _write_original_layout(src, str(tmp_path))
  _with_tower(llava_dir, _tuned(_tensors(clip_dir)), drop=(TOWER + missing,))
  for load in (lambda: hf.load_llava(llava_dir, clip_dir=clip_dir),
               lambda: _plan(llava_dir, clip_dir)):
    with pytest.raises(checkpoint.CheckpointError, match="only part of a vision tower") as e:
      load()
    assert TOWER + missing in str(e.value)


def test_without_tower_tensors_the_separate_clip_is_the_tower(llava_hf, tmp_path, caplog):
  ref, src = llava_hf
  llava_dir, clip_dir = _write_original_layout(src, str(tmp_path))
  with pytest.raises(checkpoint.CheckpointError, match="clip_dir"):
    hf.load_llava(llava_dir)
  with caplog.at_level(logging.INFO, logger="mathvlm.hf"):
    model, cfg = hf.load_llava(llava_dir, clip_dir=clip_dir, strict=True)
  assert "vision tower from the separate CLIP checkpoint" in caplog.text
  clip, ours = _tensors(clip_dir), _tower_of(model)
  assert sorted(ours) == sorted(clip)
  for k in clip:
    np.testing.assert_array_equal(ours[k], clip[k], err_msg=k)
  assert _forward_matches(model, ref) < 1e-5
  assert _plan(llava_dir, clip_dir) == cfg
