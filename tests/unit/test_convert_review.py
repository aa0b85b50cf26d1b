"""Hugging Face configs as transformers really writes and reads them: sparse nested text configs
(transformers 4.x), LLaVA-1.6 in the original layout, the top-level tie_word_embeddings."""

import copy
import json
import os
import types

import numpy as np
import pytest
import torch
import transformers as tf
from safetensors.numpy import load_file

import hf_models as H
from mathvlm import checkpoint, convert, hf, pretrained
from test_convert import _write_original_layout

# config.json of llava-hf/llava-1.5-7b-hf as published (transformers 4.36): its text_config keeps
# only the fields that differ from LlamaConfig's defaults, so it has no hidden_size.
LLAVA_15_7B_HF = {
    "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100,
    "image_token_index": 32000, "model_type": "llava", "pad_token_id": 32001,
    "projector_hidden_act": "gelu",
    "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                    "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                    "torch_dtype": "float16", "vocab_size": 32064},
    "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.36.2",
    "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                      "model_type": "clip_vision_model", "num_attention_heads": 16,
                      "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768,
                      "vocab_size": 32000},
    "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064,
}


def _mistral_sparse():
  """A llava-hf config around Mistral-7B as transformers 4.x writes it (BakLLaVA-like): every
  field at MistralConfig's default, sliding_window among them, is left out."""
  d = copy.deepcopy(LLAVA_15_7B_HF)
  d["text_config"] = {"model_type": "mistral", "vocab_size": 32064, "rms_norm_eps": 1e-05}
  return d


@pytest.mark.parametrize("config", [LLAVA_15_7B_HF, _mistral_sparse()], ids=["llama", "mistral"])
def test_sparse_llava_hf_text_config_reads_as_transformers_reads_it(config):
  ref = tf.LlavaConfig(**copy.deepcopy(config)).text_config
  text = hf.config_from_hf(hf.detect_layout(config), copy.deepcopy(config)).text
  ours = (text.vocab_size, text.hidden_size, text.intermediate_size, text.num_layers,
          text.num_heads, text.num_kv_heads, text.head_dim, text.rms_norm_eps,
          text.max_position_embeddings, text.sliding_window, text.bos_token_id, text.eos_token_id,
          text.tie_word_embeddings)
  theirs = (ref.vocab_size, ref.hidden_size, ref.intermediate_size, ref.num_hidden_layers,
            ref.num_attention_heads, ref.num_key_value_heads, ref.head_dim, ref.rms_norm_eps,
            ref.max_position_embeddings, getattr(ref, "sliding_window", None), ref.bos_token_id,
            ref.eos_token_id, ref.tie_word_embeddings)
  assert ours == theirs


def _original(**fields):
  text = H.llama_config().to_dict()
  return dict(text, model_type="llava_llama", architectures=["LlavaLlamaForCausalLM"],
              mm_vision_tower="openai/clip-vit-large-patch14-336", mm_projector_type="mlp2x_gelu",
              mm_vision_select_layer=-2, mm_vision_select_feature="patch", **fields)


@pytest.mark.parametrize("aspect,merge", [("anyres", "spatial_unpad"), ("anyres_max_9", "flat"),
                                          ("pad", "spatial_unpad")])
def test_llava_next_in_the_original_layout_is_named_not_read_as_llava_15(aspect, merge):
  cfg = _original(image_aspect_ratio=aspect, mm_patch_merge_type=merge,
                  image_grid_pinpoints=[[336, 672], [672, 336], [672, 672]])
  with pytest.raises(checkpoint.CheckpointError, match="LLaVA-1.6"):
    hf.config_from_hf("llava_original", cfg, H.clip_vision_config().to_dict())
  # LLaVA-1.5 (Math-LLaVA's release) still reads
  ok = hf.config_from_hf("llava_original", _original(image_aspect_ratio="pad"),
                         H.clip_vision_config().to_dict())
  assert ok.projector == "mlp2x_gelu"


def test_top_level_tie_word_embeddings_ties_as_transformers_does(tmp_path):
  """transformers 5 ties a LLaVA's embeddings when the top-level flag is set even with the text
  config's unset, and then saves no lm_head."""
  ref = H.llava(3, tie_word_embeddings=True)
  assert ref.lm_head.weight.data_ptr() == ref.model.language_model.embed_tokens.weight.data_ptr()
  path = H.save(ref, str(tmp_path / "tied"))
  model, cfg = hf.load_llava(path)
  assert cfg.text.tie_word_embeddings
  ids, _ = H.llava_prompt(2, 10, 4, seed=3)
  px = H.pixels(2, seed=3)
  with torch.no_grad():
    want = ref(input_ids=torch.tensor(ids), pixel_values=H.to_torch_pixels(px)).logits.numpy()
  assert H.rel_err(np.asarray(model(ids, px)), want) < 1e-4


def test_planned_config_reads_the_clip_tower_load_hf_reads(llava_hf, tmp_path):
  """An original-layout LLaVA whose mm_vision_tower is a local CLIP folder loads without
  model.clip_dir; the config a run plans with (shapes, image tokens) must describe that tower,
  not CLIP's defaults (ViT-B/32 at 224)."""
  _, src = llava_hf
  llava_dir, clip_dir = _write_original_layout(src, str(tmp_path))
  path = os.path.join(llava_dir, "config.json")
  meta = json.load(open(path))
  json.dump(dict(meta, mm_vision_tower=clip_dir), open(path, "w"))
  config = types.SimpleNamespace(model=types.SimpleNamespace(
      clip_dir="", dtype="float32", param_dtype="float32", remat="none", scan_unroll=1,
      attention_impl=""))
  planned = pretrained.pretrained_config(llava_dir, config)
  assert planned == hf.load_hf(llava_dir)[1]
  assert planned.image_seq_len == (H.IMAGE // H.PATCH) ** 2
  # a tower that is not a local folder: named at planning time, as load_hf names it
  json.dump(dict(meta, mm_vision_tower="openai/clip-vit-large-patch14-336"), open(path, "w"))
  with pytest.raises(checkpoint.CheckpointError, match="clip_dir"):
    pretrained.pretrained_config(llava_dir, config)


def test_convert_dtype_applies_from_a_checkpoint_too(tmp_path):
  """--dtype bfloat16 with --from-ckpt wrote float32 (the flag was dropped); with neither --to
  nor --to-hf the command wrote nothing and succeeded."""
  src = H.save(H.llm(2), str(tmp_path / "hf"))
  ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "out")
  convert.main(["--from-hf", src, "--to", ckpt])
  convert.main(["--from-ckpt", ckpt, "--to-hf", out, "--dtype", "bfloat16"])
  a = load_file(os.path.join(src, "model.safetensors"))
  b = load_file(os.path.join(out, "model.safetensors"))
  assert sorted(a) == sorted(b)
  for k in a:
    assert b[k].dtype == np.dtype("bfloat16") and np.array_equal(b[k], a[k].astype(b[k].dtype)), k
  assert json.load(open(os.path.join(out, "config.json")))["dtype"] == "bfloat16"
  with pytest.raises(SystemExit):
    convert.main(["--from-ckpt", ckpt])


def test_a_checkpoint_that_does_not_fit_its_config_names_the_parameter(tmp_path):
  """orbax alone says 'Requested shape (2, 48, 80) is not compatible with the stored shape
  (2, 48, 96)', naming no parameter."""
  model, cfg = hf.load_hf(H.save(H.llm(2), str(tmp_path / "hf")))
  ckpt = str(tmp_path / "ckpt")
  checkpoint.save_model(model, cfg, ckpt)
  path = os.path.join(ckpt, "config.json")
  meta = json.load(open(path))
  meta["config"]["intermediate_size"] = 80
  json.dump(meta, open(path, "w"))
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"layers/mlp/down_proj/kernel: \(2, 96, 48\) saved, \(2, 80, 48\)"):
    checkpoint.load_model(ckpt)
  meta["config"].update(intermediate_size=cfg.intermediate_size, tie_word_embeddings=True)
  json.dump(meta, open(path, "w"))
  with pytest.raises(checkpoint.CheckpointError, match="lm_head/kernel: saved, not in the model"):
    checkpoint.load_model(ckpt)


def test_a_checkpoint_saved_with_unmerged_adapters_says_to_merge_them(tmp_path):
  """save_model of a model with LoRA adapters writes them beside their layers; load_model said
  its config.json "was edited or belongs to other parameters", which sent a user after the wrong
  file. Merged, the same model loads."""
  from mathvlm.models.lora import add_lora, merge_lora
  model, cfg = hf.load_hf(H.save(H.llm(2), str(tmp_path / "hf")))
  add_lora(model, "q_proj", 4, 8.0)
  checkpoint.save_model(model, cfg, str(tmp_path / "unmerged"))
  with pytest.raises(checkpoint.CheckpointError, match=r"holds 2 LoRA adapter weights .* "
                     r"\(e.g. layers/self_attn/q_proj/lora/lora_a\).*merge_lora"):
    checkpoint.load_model(str(tmp_path / "unmerged"))
  merge_lora(model)
  checkpoint.save_model(model, cfg, str(tmp_path / "merged"))
  checkpoint.load_model(str(tmp_path / "merged"))


def test_an_exported_config_carries_the_names_transformers_4_reads(tmp_path):
  """transformers < 5 (and vLLM) read rope_theta / rope_scaling, image_token_index and
  torch_dtype, not rope_parameters, image_token_id and dtype: without them a linear-rope model
  read there as plain rope with theta 10000. The export writes both names, with one value; a
  config.json with only the old names reads as the same model, here and in transformers."""
  rope = {"rope_type": "linear", "factor": 3.0, "rope_theta": 100.0}
  ref = H.llava(4, text=H.llama_config(rope_parameters=rope))
  model, cfg = hf.load_llava(H.save(ref, str(tmp_path / "src")))
  out = str(tmp_path / "out")
  hf.export_hf(model, cfg, out)
  meta = json.load(open(os.path.join(out, "config.json")))
  text = meta["text_config"]
  assert text["rope_theta"] == 100.0 and text["rope_scaling"] == {"rope_type": "linear",
                                                                   "factor": 3.0}
  assert meta["image_token_index"] == meta["image_token_id"] and meta["torch_dtype"] == "float32"
  old = {k: v for k, v in meta.items() if k not in ("image_token_id", "dtype")}
  old["text_config"] = {k: v for k, v in text.items() if k != "rope_parameters"}
  assert hf.config_from_hf("llava", old) == hf.config_from_hf("llava", meta) == cfg
  theirs = tf.LlavaConfig(**old).text_config.rope_parameters
  assert theirs == {"rope_type": "linear", "factor": 3.0, "rope_theta": 100.0}


def _edited(src, dst, edit):
  """A copy of the folder `src` whose config.json `edit` changed."""
  import shutil
  shutil.copytree(src, dst)
  path = os.path.join(dst, "config.json")
  meta = json.load(open(path))
  edit(meta)
  json.dump(meta, open(path, "w"))
  return str(dst)


def test_convert_ends_bad_input_with_one_line_and_a_bug_with_its_traceback(tmp_path, monkeypatch):
  """Only CheckpointError was caught: a config field the model refuses (ValueError), one it
  lacks (KeyError), a checkpoint's unknown model family, a config.json that is not JSON and an
  unknown --dtype (a ValueError at the model's build) each ended in a traceback."""
  src = H.save(H.llm(1), str(tmp_path / "hf"))
  ckpt = str(tmp_path / "ckpt")
  convert.main(["--from-hf", src, "--to", ckpt])
  gelu = _edited(src, tmp_path / "a", lambda m: m.update(hidden_act="gelu"))
  broken = _edited(src, tmp_path / "d", dict.clear)
  (tmp_path / "d" / "config.json").write_text("{not json")
  bad = {
      "hidden_act": ("--from-hf", gelu, "a/config.json: config.json field hidden_act='gelu'"),
      "no field": ("--from-hf", _edited(src, tmp_path / "b", lambda m: m.pop("hidden_size")),
                   "b/config.json: no field 'hidden_size'"),
      "family": ("--from-ckpt", _edited(ckpt, tmp_path / "c", lambda m: m.update(kind="gpt")),
                 "c/config.json: unknown model family 'gpt'"),
      "not json": ("--from-hf", broken, "d/config.json is not JSON"),
  }
  for name, (flag, folder, says) in bad.items():
    with pytest.raises(SystemExit) as e:
      convert.main([flag, folder, "--to-hf", str(tmp_path / "out")])
    assert isinstance(e.value.code, str) and e.value.code.startswith("error: ") and \
        says in e.value.code, (name, e.value.code)
  with pytest.raises(SystemExit) as e:
    convert.main(["--from-hf", src, "--to", str(tmp_path / "d"), "--dtype", "float8"])
  assert e.value.code == 2  # argparse's usage error
  monkeypatch.setattr(hf, "load_hf", lambda *a, **k: 1 / 0)  # a bug: not caught
  with pytest.raises(ZeroDivisionError):
    convert.main(["--from-hf", src, "--to", str(tmp_path / "e")])
