"""Checkpoints that do not hold what they say: a damaged shard index, weights config.json does
not describe, a feature layer the tower lacks. Each is an error naming the file or field, at
load time, not a different model or a failure at the first forward."""

import json
import os
import shutil

import numpy as np
import pytest
import transformers as tf
from safetensors.numpy import save_file

import hf_models as H
from mathvlm import checkpoint, hf
from test_convert import _tensors
from test_convert_review import _original

INDEX = "model.safetensors.index.json"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
  """A tiny Llama saved by transformers in shards, with its index."""
  path = str(tmp_path_factory.mktemp("sharded") / "llm")
  H.llm(0).save_pretrained(path, max_shard_size="20KB")
  assert os.path.exists(os.path.join(path, INDEX))
  return path


def _damage_index(path, how):
  index = os.path.join(path, INDEX)
  meta = json.load(open(index))
  shards = sorted(set(meta["weight_map"].values()))
  if how == "not JSON":
    open(index, "w").write('{"weight_map": {')
  elif how == "no weight_map":
    json.dump({"metadata": {}}, open(index, "w"))
  elif how == "shard gone":
    os.remove(os.path.join(path, shards[1]))
  else:  # a tensor listed in a shard that does not hold it
    meta["weight_map"]["model.norm.weight"] = next(
        s for s in shards if s != meta["weight_map"]["model.norm.weight"])
    json.dump(meta, open(index, "w"))


@pytest.mark.parametrize("how, match", [
    ("not JSON", r"index.json is not a safetensors index .*JSONDecodeError"),
    ("no weight_map", r"index.json is not a safetensors index .*KeyError: 'weight_map'"),
    ("shard gone", r"index.json names the shard 'model-00002-of-\d+.safetensors', which is not"),
    ("wrong shard", r"index.json puts 1 tensors in 'model-\d+-of-\d+.safetensors' that it does "
                    r"not hold, e.g. \['model.norm.weight'\]"),
], ids=["not JSON", "no weight_map", "shard gone", "wrong shard"])
def test_a_damaged_shard_index_is_named(sharded, tmp_path, how, match):
  """These read as a bare JSONDecodeError, KeyError('weight_map') or safetensors' "File does not
  contain tensor model.norm.weight", naming neither the index nor the shard."""
  path = shutil.copytree(sharded, tmp_path / "llm")
  _damage_index(str(path), how)
  with pytest.raises(checkpoint.CheckpointError, match=match):
    hf.load_hf(str(path))


def _add_tensor(path, key, shape):
  t = _tensors(path)
  t[key] = np.ones(shape, np.float32)
  save_file(t, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})


def _llm_with_three_layers_said_two(tmp_path):
  path = H.save(H.llm(0, H.llama_config(num_hidden_layers=3)), str(tmp_path / "llm"))
  meta = json.load(open(os.path.join(path, "config.json")))
  json.dump(dict(meta, num_hidden_layers=2), open(os.path.join(path, "config.json"), "w"))
  return path, "model.layers.2.mlp.down_proj.weight"


def _llava_with(key, shape):
  def write(llava_hf, tmp_path):
    path = str(shutil.copytree(llava_hf[1], tmp_path / "llava"))
    _add_tensor(path, key, shape)
    return path, key
  return write


@pytest.mark.parametrize("make", [
    lambda llava_hf, tmp_path: _llm_with_three_layers_said_two(tmp_path),
    _llava_with("multi_modal_projector.linear_3.weight", (48, 48)),  # an mlp3x projector
    _llava_with("language_model.model.layers.0.self_attn.q_proj.bias", (48,)),  # attention_bias
], ids=["extra layer", "deeper projector", "bias turned off"])
def test_weights_config_json_does_not_describe_are_an_error(llava_hf, tmp_path, make):
  """They were a warning, and the model loaded without them: a 2-layer model from a 3-layer
  checkpoint, a 2-layer projector from a 3-layer one, q_proj without its bias."""
  path, key = make(llava_hf, tmp_path)
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"tensors belong to the model's own layers but config.json does not "
                           rf"describe them, e.g. \[.*'{key}'"):
    hf.load_hf(path)


def test_an_extra_head_is_still_only_a_warning(llava_hf, tmp_path, caplog):
  path = str(shutil.copytree(llava_hf[1], tmp_path / "llava"))
  _add_tensor(path, "value_head.weight", (1, 48))
  hf.load_hf(path)
  assert "1 tensors were not used by the model, e.g. ['value_head.weight']" in caplog.text


def _llava_hf_config(**fields):
  return dict(tf.LlavaConfig(vision_config=H.clip_vision_config(), text_config=H.llama_config(),
                             image_token_id=H.IMAGE_TOKEN).to_dict(), **fields)


@pytest.mark.parametrize("layout, meta", [
    ("llava", lambda layer: _llava_hf_config(vision_feature_layer=layer)),
    ("llava_original", lambda layer: dict(_original(), mm_vision_select_layer=layer)),
], ids=["llava-hf", "original"])
@pytest.mark.parametrize("layer", [-5, 4])
def test_a_feature_layer_the_tower_lacks_is_named_at_load(layout, meta, layer):
  """It loaded, and the first forward failed with 'hidden layer -5 out of range', naming no
  config field (the tiny tower has 3 layers: hidden states 0..3, or -1..-4)."""
  clip = H.clip_vision_config().to_dict()
  with pytest.raises(ValueError, match=rf"vision_feature_layer={layer} is out of range for a "
                                       r"3-layer vision tower .*mm_vision_select_layer"):
    hf.config_from_hf(layout, meta(layer), clip)
  assert hf.config_from_hf(layout, meta(-4), clip).vision_feature_layer == -4


@pytest.mark.parametrize("field, value", [("mm_use_im_start_end", True),
                                          ("mm_use_im_patch_token", True)])
def test_an_original_config_for_another_prompt_or_tiling_is_refused_by_field(field, value):
  """A LLaVA trained with <im_start>/<im_end> around its images or an <im_patch> token loaded as
  a plain LLaVA-1.5, and was prompted unlike its training."""
  clip = H.clip_vision_config().to_dict()
  with pytest.raises(ValueError, match=rf"config.json field {field}={value!r}: only"):
    hf.config_from_hf("llava_original", dict(_original(), **{field: value}), clip)
  plain = dict(_original(), mm_use_im_start_end=False, mm_use_im_patch_token=False)
  assert hf.config_from_hf("llava_original", plain, clip).vision_feature_layer == -2
