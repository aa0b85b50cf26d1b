"""Export to the original LLaVA layout (haotian-liu/LLaVA's LlavaLlamaForCausalLM, Math-LLaVA's
release): round trips bit for bit, with the keys and config fields LLaVA's own loader reads.

LLaVA's package is not installed, so what it loads is written down here from its code
(llava/model/builder.py, llava_arch.py, language_model/llava_llama.py,
multimodal_encoder/builder.py and clip_encoder.py, multimodal_projector/builder.py)."""

import dataclasses
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as tf
from flax import nnx

import hf_models as H
from mathvlm import checkpoint, convert, hf
from mathvlm.models.llm import LlamaConfig
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import Llava, LlavaConfig
from test_convert import _tensors, _write_original_layout

# LlavaLlamaForCausalLM's state dict: LlamaForCausalLM's (`model.*`, `lm_head`) plus
# LlavaMetaModel's projector, `build_vision_projector`: nn.Sequential(Linear, GELU, Linear) for
# mlp2x_gelu (indices 0 and 2), a bare nn.Linear for 'linear'. The tower is not in it: LLaVA
# builds it from mm_vision_tower (CLIPVisionTower.load_model).
LLAVA_KEYS = [r"model\.embed_tokens\.weight", r"model\.norm\.weight", r"lm_head\.weight",
              r"model\.layers\.\d+\.self_attn\.[qkvo]_proj\.weight",
              r"model\.layers\.\d+\.mlp\.(gate|up|down)_proj\.weight",
              r"model\.layers\.\d+\.(input|post_attention)_layernorm\.weight",
              r"model\.mm_projector\.(\d+\.)?(weight|bias)"]
# The config fields LLaVA reads (getattr in LlavaMetaModel, CLIPVisionTower, build_vision_projector,
# load_pretrained_model), with the values our model means. mm_use_im_patch_token defaults to True
# there, which adds a token and resizes the embeddings: it must be written false.
LLAVA_FIELDS = dict(mm_projector_type="mlp2x_gelu", mm_hidden_size=32, mm_vision_select_layer=-2,
                    mm_vision_select_feature="patch", mm_use_im_start_end=False,
                    mm_use_im_patch_token=False, image_aspect_ratio="pad",
                    mm_patch_merge_type="flat", unfreeze_mm_vision_tower=False)


def _ids_px(seed=8):
  ids, _ = H.llava_prompt(2, 10, 4, seed=seed)
  return np.where(ids == H.IMAGE_TOKEN, -200, ids), H.pixels(2, seed=seed)


def _assert_same_tensors(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def _assert_llava_keys(keys, projector="mlp2x_gelu"):
  unmatched = [k for k in keys if not any(re.fullmatch(p, k) for p in LLAVA_KEYS)]
  assert not unmatched, unmatched
  assert all(any(re.fullmatch(p, k) for k in keys) for p in LLAVA_KEYS)
  proj = sorted(k for k in keys if "mm_projector" in k)
  assert proj == (["model.mm_projector.weight", "model.mm_projector.bias"][::-1]
                  if projector == "linear" else
                  [f"model.mm_projector.{i}.{w}" for i in (0, 2) for w in ("bias", "weight")])


@pytest.fixture(scope="module")
def original(llava_hf, tmp_path_factory):
  """(model, cfg, llava_dir, clip_dir) of a tiny original-layout LLaVA with a separate CLIP."""
  llava_dir, clip_dir = _write_original_layout(llava_hf[1], str(tmp_path_factory.mktemp("orig")))
  model, cfg = hf.load_llava(llava_dir, clip_dir=clip_dir)
  return model, cfg, llava_dir, clip_dir


def test_an_original_layout_model_exports_back_bit_for_bit(original, tmp_path, monkeypatch):
  model, cfg, llava_dir, clip_dir = original
  with pytest.raises(checkpoint.CheckpointError, match=r"-200 is outside.*--layout original"):
    hf.export_hf(model, cfg, str(tmp_path / "hf"), layout="llava")
  monkeypatch.chdir(tmp_path)
  out = "out"  # relative: LLaVA reads a relative mm_vision_tower against its working directory
  assert hf.export_hf(model, cfg, out) == "llava_original"  # the default for such a model
  exported = _tensors(out)
  _assert_llava_keys(exported)
  _assert_same_tensors(exported, _tensors(llava_dir))
  tower = os.path.join(out, "vision_tower")  # the tower as a CLIPVisionModel folder
  _assert_same_tensors(_tensors(tower), _tensors(clip_dir))
  theirs, info = tf.CLIPVisionModel.from_pretrained(tower, output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"]
  meta = json.load(open(os.path.join(out, "config.json")))
  assert meta["model_type"] == "llava_llama" and meta["architectures"] == ["LlavaLlamaForCausalLM"]
  assert {k: meta[k] for k in LLAVA_FIELDS} == LLAVA_FIELDS
  assert meta["mm_vision_tower"] == str(tmp_path / "out" / "vision_tower")  # absolute
  assert "text_config" not in meta  # else it would read as llava-hf
  source = json.load(open(os.path.join(llava_dir, "config.json")))
  for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "rms_norm_eps", "bos_token_id",
            "eos_token_id", "max_position_embeddings", "tie_word_embeddings",
            "mm_projector_type", "mm_vision_select_layer"):
    assert meta[k] == source[k], k
  back, cfg2 = hf.load_llava(out, strict=True)  # no clip_dir: the tower folder is named
  assert cfg2 == cfg
  ids, px = _ids_px()
  np.testing.assert_array_equal(np.asarray(back(ids, px)), np.asarray(model(ids, px)))
  # transformers' LlamaForCausalLM (what LlavaLlamaForCausalLM subclasses) reads the language
  # model from the keys and the top-level fields, the projector being all it does not know
  fields = {k: v for k, v in meta.items() if not k.startswith(("mm_", "model_type", "arch"))}
  llm, info = tf.LlamaForCausalLM.from_pretrained(out, config=tf.LlamaConfig(**fields),
                                                  output_loading_info=True)
  assert not info["missing_keys"]
  assert sorted(info["unexpected_keys"]) == sorted(k for k in exported if "mm_projector" in k)
  text = np.random.RandomState(0).randint(3, H.VOCAB, (2, 7))
  with torch.no_grad():
    ref = llm.eval()(torch.tensor(text)).logits.numpy()
  assert H.rel_err(model(text), ref) < 1e-4


def test_convert_names_the_separate_clip_again_and_shards(original, tmp_path, capsys):
  """`convert --from-hf` of an original folder whose tower is a separate CLIP: the tower is
  unchanged, so the export names the source's mm_vision_tower instead of copying it; the tokenizer
  travels; a large model is sharded with an index, as the llava-hf export."""
  model, cfg, llava_dir, clip_dir = original
  (tok := tmp_path / "src").mkdir()
  for name in os.listdir(llava_dir):
    (tok / name).write_bytes(open(os.path.join(llava_dir, name), "rb").read())
  (tok / "tokenizer.model").write_bytes(b"sentencepiece")
  out = str(tmp_path / "out")
  convert.main(["--from-hf", str(tok), "--clip-dir", clip_dir, "--to-hf", out])
  assert "(llava_original layout)" in capsys.readouterr().out
  assert not os.path.exists(os.path.join(out, "vision_tower"))
  meta = json.load(open(os.path.join(out, "config.json")))
  assert meta["mm_vision_tower"] == "openai/clip-vit-large-patch14-336"
  assert open(os.path.join(out, "tokenizer.model"), "rb").read() == b"sentencepiece"
  _assert_same_tensors(_tensors(out), _tensors(llava_dir))
  with pytest.raises(SystemExit, match="-200 is outside.*--layout original"):
    convert.main(["--from-hf", str(tok), "--clip-dir", clip_dir, "--to-hf", str(tmp_path / "x"),
                  "--layout", "llava-hf"])
  sharded = str(tmp_path / "sharded")
  hf.export_hf(model, cfg, sharded, vision_tower=clip_dir, max_shard_bytes=20_000)
  index = json.load(open(os.path.join(sharded, "model.safetensors.index.json")))
  assert len(set(index["weight_map"].values())) > 1
  assert json.load(open(os.path.join(sharded, "config.json")))["mm_vision_tower"] == clip_dir
  back, _ = hf.load_llava(sharded, strict=True)
  ids, px = _ids_px()
  np.testing.assert_array_equal(np.asarray(back(ids, px)), np.asarray(model(ids, px)))


def _train_tower(model):
  """The vision tower changed everywhere, as CLIP-Math (MAVIS) trains it."""
  for path, var in hf.param_paths(model):
    if path[0] == "vision_tower":
      var[...] = var[...] + 0.05 * jax.random.normal(jax.random.key(len(path)), var.shape)


def test_a_trained_tower_is_written_whole_never_swapped_for_the_named_clip(original, tmp_path):
  _, _, llava_dir, clip_dir = original
  model, cfg = hf.load_llava(llava_dir, clip_dir=clip_dir)
  _train_tower(model)
  with pytest.raises(checkpoint.CheckpointError, match=r"does not hold the model's vision tower: "
                     r"\d+ tensors .*differ.*Leave vision_tower \(--vision-tower\) out"):
    hf.export_hf(model, cfg, str(tmp_path / "named"), vision_tower=clip_dir)
  out = str(tmp_path / "out")
  hf.export_hf(model, cfg, out)
  tower = os.path.join(out, "vision_tower")
  meta = json.load(open(os.path.join(tower, "config.json")))
  assert meta["model_type"] == "clip_vision_model" and meta["torch_dtype"] == "float32"
  assert json.load(open(os.path.join(tower, "preprocessor_config.json")))["crop_size"] == {
      "height": H.IMAGE, "width": H.IMAGE}
  trained = dict(hf.hf_tensors(model, layout="llava_original"))
  _assert_same_tensors({**_tensors(out), **_tensors(tower)}, trained)
  assert not np.array_equal(trained["vision_model.post_layernorm.weight"],
                            _tensors(clip_dir)["vision_model.post_layernorm.weight"])
  back, cfg2 = hf.load_llava(out, strict=True)
  assert cfg2 == cfg
  ids, px = _ids_px()
  np.testing.assert_array_equal(np.asarray(back(ids, px)), np.asarray(model(ids, px)))


def test_a_lora_trained_model_is_exported_merged(original, tmp_path):
  """As on the llava-hf path: adapters are refused unmerged; merged (what a trainer's
  WORKDIR/model holds), the export reads back to the merged model's logits bit for bit."""
  from mathvlm.models.lora import add_lora, merge_lora
  _, _, llava_dir, clip_dir = original
  model, cfg = hf.load_llava(llava_dir, clip_dir=clip_dir)
  add_lora(model, r"language_model/.*(q_proj|down_proj)$", 4, 8.0)
  for _, m in nnx.iter_modules(model):
    if getattr(m, "lora", None) is not None:
      m.lora.lora_b[...] = 0.1 * jnp.ones_like(m.lora.lora_b[...])
  ids, px = _ids_px()
  adapted = np.asarray(model(ids, px))
  with pytest.raises(checkpoint.CheckpointError, match="LoRA adapters: merge them first"):
    hf.export_hf(model, cfg, str(tmp_path / "unmerged"), layout="llava_original")
  merge_lora(model)
  out = str(tmp_path / "out")
  hf.export_hf(model, cfg, out, vision_tower=clip_dir)  # the tower was not adapted
  back, _ = hf.load_llava(out)
  merged = np.asarray(model(ids, px))
  np.testing.assert_array_equal(np.asarray(back(ids, px)), merged)
  assert H.rel_err(merged, adapted) < 1e-5
  assert not np.array_equal(_tensors(out)["model.layers.0.self_attn.q_proj.weight"],
                            _tensors(llava_dir)["model.layers.0.self_attn.q_proj.weight"])


def test_a_mistral_llava_with_a_linear_projector_round_trips(tmp_path):
  """llava_mistral / LlavaMistralForCausalLM, and the bare nn.Linear projector (no index)."""
  vision = CLIPVisionConfig.from_hf(H.clip_vision_config().to_dict())
  text = LlamaConfig.from_hf(H.mistral_config().to_dict())
  cfg = LlavaConfig(vision=vision, text=text, projector="linear", image_token_id=-200)
  model = Llava(cfg, rngs=nnx.Rngs(3))
  out = str(tmp_path / "out")
  hf.export_hf(model, cfg, out)
  _assert_llava_keys(_tensors(out), "linear")
  meta = json.load(open(os.path.join(out, "config.json")))
  assert (meta["model_type"], meta["architectures"], meta["mm_projector_type"],
          meta["sliding_window"]) == ("llava_mistral", ["LlavaMistralForCausalLM"], "linear", 5)
  back, cfg2 = hf.load_llava(out, strict=True)
  # read back, it carries the export's image_aspect_ratio (a field our config does not hold)
  assert cfg2 == dataclasses.replace(cfg, hf_fields=(("image_aspect_ratio", '"pad"'),))
  ids, px = _ids_px()
  np.testing.assert_array_equal(np.asarray(back(ids, px)), np.asarray(model(ids, px)))


def test_a_llava_hf_model_exports_to_either_layout_and_bad_requests_are_named(llava_hf, tmp_path):
  model, cfg = hf.load_llava(llava_hf[1])
  assert hf.export_layout(model, cfg) == "llava"  # its image token is in the vocabulary
  out = str(tmp_path / "out")
  hf.export_hf(model, cfg, out, layout="llava_original")
  _assert_llava_keys(_tensors(out))
  back, _ = hf.load_llava(out)
  ids, _ = H.llava_prompt(2, 10, 4, seed=8)
  px = H.pixels(2, seed=8)  # the original marks images -200, the extra <image> row unused
  np.testing.assert_array_equal(np.asarray(back(np.where(ids == H.IMAGE_TOKEN, -200, ids), px)),
                                np.asarray(model(ids, px)))
  with pytest.raises(checkpoint.CheckpointError, match="names the tower of an original-layout"):
    hf.export_hf(model, cfg, str(tmp_path / "x"), vision_tower="openai/clip-vit-large-patch14")
  with pytest.raises(checkpoint.CheckpointError, match="unknown LLaVA export layout 'llava_hf'"):
    hf.export_layout(model, cfg, "llava_hf")
  llm, llm_cfg = hf.load_hf(H.save(H.llm(1), str(tmp_path / "llm")))
  with pytest.raises(checkpoint.CheckpointError, match="only in the 'llm' layout"):
    hf.export_layout(llm, llm_cfg, "llava_original")
  with pytest.raises(checkpoint.CheckpointError, match="projector has no bias"):
    hf.original_config(dataclasses.replace(cfg, projector_bias=False), "x")
