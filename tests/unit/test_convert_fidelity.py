"""An export says everything its source said: every config.json field survives HF -> mathvlm
checkpoint -> HF (the fields our configs do not model are carried, `layers.hf_fields_of`), the
original layout's image_aspect_ratio is the source's or the one asked for, and a local
mm_vision_tower that --clip-dir overrides is named in the log (or refused if it is another
architecture)."""

import dataclasses
import json
import logging
import os
import shutil

import numpy as np
import pytest
import transformers as tf
from safetensors.numpy import save_file

import hf_models as H
from mathvlm import checkpoint, convert, hf
from test_convert import _tensors, _write_original_layout

# The source fields an export may drop or change, and why: transformers writes its own version
# into what it saves, and the export is not written by transformers.
NOT_KEPT = {"transformers_version"}

# Non-default values for the fields our configs do not model, wherever transformers keeps them.
TEXT_EXTRA = dict(attention_dropout=0.125, initializer_range=0.0375, pretraining_tp=2,
                  use_cache=False)
VISION_EXTRA = dict(projection_dim=33, attention_dropout=0.25, initializer_range=0.03,
                    initializer_factor=1.5, dropout=0.0625)
CLIP_TEXT_EXTRA = dict(bos_token_id=5, pad_token_id=7, projection_dim=24, attention_dropout=0.5,
                       initializer_range=0.04, initializer_factor=2.5)
# LLaVA's own fields of an original-layout config.json (its train.py sets them) that our config
# does not model.
ORIGINAL_EXTRA = dict(tokenizer_model_max_length=2048, tokenizer_padding_side="left",
                      mm_projector_lr=None, mm_vision_tower_lr=2e-6, image_aspect_ratio="square")


def _flat(d, prefix=""):
  """config.json's fields, a sub-config's as `text_config.x`."""
  out = {}
  for k, v in d.items():
    if k.endswith("_config") and isinstance(v, dict):
      out.update(_flat(v, prefix + k + "."))
    else:
      out[prefix + k] = v
  return out


def _config(folder):
  with open(os.path.join(folder, "config.json")) as f:
    return json.load(f)


def _assert_kept(source, export):
  """Every field of the source has its value in the export (NOT_KEPT aside)."""
  source, export = _flat(source), _flat(export)
  lost = {k: (v, export.get(k, "absent")) for k, v in source.items()
          if k.rsplit(".", 1)[-1] not in NOT_KEPT and export.get(k, "absent") != v}
  assert not lost, lost


def _round_trip(src, tmp_path, *args, clip_dir=None):
  """src -> mathvlm checkpoint -> Hugging Face folder, by the command line."""
  ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "out")
  convert.main(["--from-hf", src, "--to", ckpt] + (["--clip-dir", clip_dir] if clip_dir else []))
  convert.main(["--from-ckpt", ckpt, "--to-hf", out, *args])
  return out


def _llava_source(tmp_path):
  cfg = tf.LlavaConfig(vision_config=H.clip_vision_config(**VISION_EXTRA),
                       text_config=H.llama_config(**TEXT_EXTRA), image_token_id=H.IMAGE_TOKEN,
                       image_seq_length=4)  # what the tiny tower gives (576 is 336-pixel CLIP's)
  return H.save(tf.LlavaForConditionalGeneration(cfg), str(tmp_path / "src"))


def test_a_clip_round_trip_keeps_every_field(tmp_path):
  clip = tf.CLIPModel(tf.CLIPConfig(
      text_config=dict(vocab_size=H.VOCAB, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16,
                       eos_token_id=99, **CLIP_TEXT_EXTRA),
      vision_config=H.clip_vision_config(**VISION_EXTRA).to_dict(), projection_dim=24,
      logit_scale_init_value=2.5, initializer_factor=0.75))
  src = H.save(clip, str(tmp_path / "src"))
  _assert_kept(_config(src), _config(_round_trip(src, tmp_path)))


def test_a_llava_hf_round_trip_keeps_every_field_in_either_layout(tmp_path):
  src = _llava_source(tmp_path)
  source = _config(src)
  _assert_kept(source, _config(_round_trip(src, tmp_path)))
  out = str(tmp_path / "original")
  convert.main(["--from-ckpt", str(tmp_path / "ckpt"), "--to-hf", out, "--layout", "original"])
  exported = _config(out)  # the language model's fields at the top level, the tower beside
  _assert_kept(dict(source["text_config"], model_type="llava_llama"), exported)
  _assert_kept(source["vision_config"], _config(os.path.join(out, hf.ORIGINAL_TOWER_DIR)))


def test_an_original_layout_round_trip_keeps_every_field(tmp_path):
  llava_dir, clip_dir = _write_original_layout(_llava_source(tmp_path), str(tmp_path))
  source = dict(_config(llava_dir), model_type="llava_llama", **ORIGINAL_EXTRA)
  with open(os.path.join(llava_dir, "config.json"), "w") as f:
    json.dump(source, f)
  assert source["image_aspect_ratio"] != "pad" and source["pretraining_tp"] == 2
  out = _round_trip(llava_dir, tmp_path, "--vision-tower", source["mm_vision_tower"],
                    clip_dir=clip_dir)  # the tower unchanged: named, not written
  _assert_kept(source, _config(out))


def test_image_aspect_ratio_is_the_sources_unless_given_and_bad_values_are_named(
    llava_hf, tmp_path, capsys):
  llava_dir, clip_dir = _write_original_layout(llava_hf[1], str(tmp_path))
  model, cfg = hf.load_llava(llava_dir, clip_dir=clip_dir)
  aspect = lambda out: _config(out)["image_aspect_ratio"]
  hf.export_hf(model, cfg, str(tmp_path / "pad"))
  assert aspect(tmp_path / "pad") == "pad"  # the source's
  square = dataclasses.replace(cfg, hf_fields=(("image_aspect_ratio", '"square"'),))
  hf.export_hf(model, square, str(tmp_path / "square"))
  assert aspect(tmp_path / "square") == "square"  # the source's, not always 'pad'
  hf.export_hf(model, square, str(tmp_path / "given"), image_aspect_ratio="pad")
  assert aspect(tmp_path / "given") == "pad"
  args = ["--from-hf", llava_dir, "--clip-dir", clip_dir, "--to-hf", str(tmp_path / "cli")]
  convert.main(args + ["--image-aspect-ratio", "square"])
  assert aspect(tmp_path / "cli") == "square"
  with pytest.raises(SystemExit):
    convert.main(args + ["--image-aspect-ratio", "crop"])
  assert "--image-aspect-ratio: invalid choice: 'crop'" in capsys.readouterr().err
  with pytest.raises(checkpoint.CheckpointError, match="image_aspect_ratio='crop'.*pad, square"):
    hf.export_hf(model, cfg, str(tmp_path / "bad"), image_aspect_ratio="crop")
  assert not os.path.exists(tmp_path / "bad")  # refused before anything is written
  hf_model, hf_cfg = hf.load_llava(llava_hf[1])
  with pytest.raises(checkpoint.CheckpointError, match="image_aspect_ratio.*'llava' layout"):
    hf.export_hf(hf_model, hf_cfg, str(tmp_path / "hf"), image_aspect_ratio="pad")


def _point_mm_vision_tower_at(llava_dir, folder):
  config = dict(_config(llava_dir), mm_vision_tower=folder)
  with open(os.path.join(llava_dir, "config.json"), "w") as f:
    json.dump(config, f)


def test_a_local_mm_vision_tower_that_clip_dir_overrides_is_named(llava_hf, tmp_path, caplog):
  llava_dir, clip_dir = _write_original_layout(llava_hf[1], str(tmp_path))
  named = str(tmp_path / "named_clip")  # another CLIP of the same shapes
  shutil.copytree(clip_dir, named)
  save_file({k: v + 1 for k, v in _tensors(clip_dir).items()},
            os.path.join(named, "model.safetensors"), metadata={"format": "pt"})
  _point_mm_vision_tower_at(llava_dir, named)
  with caplog.at_level(logging.INFO, logger="mathvlm.hf"):
    model, _ = hf.load_llava(llava_dir, clip_dir=clip_dir)
  said = [r for r in caplog.records if r.levelno == logging.WARNING]
  assert len(said) == 1 and all(
      s in said[0].getMessage() for s in (f"separate CLIP checkpoint {clip_dir} (its tensors and "
                                          "config.json)", f"another local folder, {named}",
                                          "not read"))
  np.testing.assert_array_equal(np.asarray(model.vision_tower.post_layernorm.scale[...]),
                                _tensors(clip_dir)["vision_model.post_layernorm.weight"])
  out = str(tmp_path / "out")  # the export names the tower read: clip_dir's, not mm_vision_tower's
  convert.main(["--from-hf", llava_dir, "--clip-dir", clip_dir, "--to-hf", out])
  assert _config(out)["mm_vision_tower"] == os.path.abspath(clip_dir)


def test_a_local_mm_vision_tower_of_other_shapes_than_clip_dir_is_refused(llava_hf, tmp_path):
  llava_dir, clip_dir = _write_original_layout(llava_hf[1], str(tmp_path))
  other = tf.CLIPVisionModel(H.clip_vision_config(hidden_size=16, intermediate_size=32))
  named = H.save(other, str(tmp_path / "other_clip"))
  _point_mm_vision_tower_at(llava_dir, named)
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"mm_vision_tower names the local CLIP folder .*other_clip.*clip_dir "
                           r"\(--clip-dir\) names another.*other shapes"):
    hf.load_llava(llava_dir, clip_dir=clip_dir)
