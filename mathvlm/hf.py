"""Hugging Face checkpoints in and out: safetensors <-> our models, by the families' layouts.

Reads safetensors with numpy (no torch), one tensor at a time, straight into arrays placed on their
target sharding (`jax.make_array_from_callback`): a 13B model never sits in host memory twice.
`config.json` decides the layout, and the layout the model family (`mathvlm.models.registry`).
Layouts read:

  llava          `language_model.model.*` / `model.language_model.*`, `multi_modal_projector.*`,
                 `vision_tower.vision_model.*` or `vision_tower.*` (what transformers 5 saves)
  llava_original `model.layers.*`, `model.mm_projector.{0,2}`, `lm_head`; the CLIP tower comes from a
                 separate CLIP checkpoint (`clip_dir`, or `mm_vision_tower` if a local folder),
                 unless the checkpoint carries its own, tuned one
                 (`model.vision_tower.vision_tower.vision_model.*`): see `original_tower`
  llm, clip, clip_vision   LlamaForCausalLM / MistralForCausalLM, CLIPModel, CLIPVisionModel

The ids a response ends on come from the folder's generation_config.json where it has one (what
transformers' generate ends on), else from config.json; export writes both files.

Export writes the llava-hf layout (or the plain layouts for the other families), or for a LLaVA the
original layout with its tower as a CLIPVisionModel folder beside (`export_original`); a round trip
is bit-exact, and its config.json holds every field of the source's: those our configs do not
model are carried from import (their `hf_fields`, `mathvlm.models.layers.hf_fields_of`). Our
parameter names mirror Hugging Face's, so the mapping below is a rename plus a transpose, not a
table of every tensor. Our own (orbax) model checkpoints are
`mathvlm.checkpoint.save_model` / `load_model`; the command line is `python -m mathvlm.convert`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Any, Callable

import jax
import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy, so safetensors can read it)
import numpy as np
from flax import nnx
from safetensors import safe_open
from safetensors.numpy import save_file

from mathvlm import checkpoint, paths
from mathvlm.checkpoint import CheckpointError, config_errors, single_device
from mathvlm.models import registry
from mathvlm.models.clip_text import CLIPConfig
from mathvlm.models.layers import dtype_of, path_parts, with_hf_fields
from mathvlm.models.llm import LlamaConfig
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import Llava, LlavaConfig

log = logging.getLogger(__name__)

# Buffers some checkpoints carry that are not parameters (recomputed from the config).
IGNORED_KEYS = re.compile(r".*(rotary_emb\.inv_freq|embeddings\.position_ids)$")


# ---------------------------------------------------------------------------------------------
# Reading safetensors.

class SafetensorsDir:
  """The tensors of a Hugging Face folder: one `model.safetensors` or shards with their index."""

  def __init__(self, path: str):
    _local_only(path)
    self.path = path
    index = os.path.join(path, "model.safetensors.index.json")
    self._handles: dict[str, Any] = {}
    if os.path.exists(index):
      self.file_of = _weight_map(index)
      self._check_shards(index)
    else:
      files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
      if not files:
        extra = (" (found PyTorch .bin weights: re-save them with safetensors first)"
                 if any(f.endswith(".bin") for f in os.listdir(path)) else "")
        raise CheckpointError(f"no *.safetensors in {path}{extra}")
      self.file_of = {}
      for name in files:
        with _safe_open(os.path.join(path, name)) as f:
          self.file_of.update({k: name for k in f.keys()})
    self.used: set[str] = set()

  def _check_shards(self, index: str) -> None:
    """Every shard the index names is there and holds the tensors the index puts in it: else a
    tensor's read fails later with safetensors' "File does not contain tensor", naming no file."""
    listed: dict[str, list[str]] = {}
    for key, name in self.file_of.items():
      listed.setdefault(name, []).append(key)
    for name, keys in sorted(listed.items()):
      if not os.path.exists(os.path.join(self.path, name)):
        raise CheckpointError(f"{index} names the shard {name!r}, which is not in {self.path}: "
                              "the download or copy is incomplete; fetch the missing shards")
      self._handles[name] = handle = _safe_open(os.path.join(self.path, name))
      lacking = sorted(set(keys) - set(handle.keys()))
      if lacking:
        raise CheckpointError(
            f"{index} puts {len(lacking)} tensors in {name!r} that it does not hold, e.g. "
            f"{lacking[:3]}: the index and the shards come from different saves; download or "
            "copy the folder again, or re-save the model with save_pretrained")

  def __contains__(self, key: str) -> bool:
    return key in self.file_of

  def keys(self) -> list[str]:
    return list(self.file_of)

  def _handle(self, key: str):
    name = self.file_of[key]
    if name not in self._handles:
      self._handles[name] = _safe_open(os.path.join(self.path, name))
    return self._handles[name]

  def shape(self, key: str) -> tuple[int, ...]:
    return tuple(self._handle(key).get_slice(key).get_shape())

  def get(self, key: str) -> np.ndarray:
    self.used.add(key)
    return self._handle(key).get_tensor(key)


def _weight_map(index: str) -> dict[str, str]:
  """model.safetensors.index.json's tensor -> shard file map, a damaged index named."""
  try:
    with open(index) as f:
      weight_map = json.load(f)["weight_map"]
    if not isinstance(weight_map, dict):
      raise TypeError(f"weight_map is a {type(weight_map).__name__}")
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise CheckpointError(
        f"{index} is not a safetensors index with a weight_map object ({type(e).__name__}: {e}): "
        "download or copy it again, or re-save the model with save_pretrained") from None
  return dict(weight_map)


def _safe_open(path: str):
  """safe_open, with a damaged or missing file named in the error (safetensors' own message
  names neither the file nor the fix)."""
  try:
    return safe_open(path, "np")
  except Exception as e:  # noqa: BLE001  (SafetensorError, OSError, ...)
    raise CheckpointError(
        f"{path}: cannot read this safetensors file ({type(e).__name__}: {e}). It is cut short "
        "or damaged (an interrupted download or copy): download or copy it again, or re-save "
        "the model with save_pretrained") from None


# ---------------------------------------------------------------------------------------------
# Our parameter path <-> Hugging Face key.

@dataclasses.dataclass(frozen=True)
class Rule:
  """Parameters under `ours` (a path prefix) live in `source` under `hf` + a renamed rest."""
  ours: tuple[str, ...]
  hf: str
  style: str = "llm"        # 'llm', 'clip', 'proj' (llava-hf projector) or 'mm_proj' (original)
  source: str = "main"


TRANSFORMS: dict[str, tuple[Callable, Callable]] = {  # ours <- hf, hf <- ours
    "copy": (lambda a: a, lambda a: a),
    "linear": (lambda a: a.T, lambda a: a.T),
    "conv": (lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1)),
}

_CLIP_EMBEDDINGS = {"class_embedding": "embeddings.class_embedding",
                    "position_embedding": "embeddings.position_embedding.weight",
                    "token_embedding": "embeddings.token_embedding.weight"}


def _hf_rest(rest: tuple[str, ...], style: str) -> tuple[str, str]:
  """Our path below a rule's prefix -> (HF name below the prefix, transform)."""
  if not rest:  # the rule names the tensor itself (logit_scale)
    return "", "copy"
  *mods, leaf = rest
  if style == "mm_proj":  # original LLaVA: nn.Sequential(Linear, GELU, Linear, ...) or one Linear
    (mod,) = mods
    mods = [str(2 * (int(mod.split("_")[1]) - 1))]
  if len(mods) == 0 and leaf in _CLIP_EMBEDDINGS and style == "clip":
    return _CLIP_EMBEDDINGS[leaf], "copy"
  transform = "copy"
  if leaf == "kernel":
    leaf, transform = "weight", ("conv" if mods and mods[-1] == "patch_embedding" else "linear")
  elif leaf in ("scale", "embedding"):
    leaf = "weight"
  if mods and mods[-1] == "patch_embedding":
    mods = ["embeddings"] + mods
  if mods and mods[0] == "layers":
    mods = (["encoder", "layers", "{i}"] if style == "clip" else ["layers", "{i}"]) + mods[1:]
  return ".".join(mods + [leaf]), transform


def hf_key(path: tuple[str, ...], rules: list[Rule]) -> tuple[Rule, str, str, bool]:
  """(rule, HF key template with `{i}` for stacked layers, transform, stacked?)."""
  for rule in sorted(rules, key=lambda r: -len(r.ours)):
    if path[:len(rule.ours)] == rule.ours:
      rest = path[len(rule.ours):]
      name, transform = _hf_rest(rest, rule.style)
      return rule, rule.hf + name, transform, "{i}" in name
  raise CheckpointError(f"no conversion rule for parameter {'/'.join(path)}")


def _prefix(ckpt: SafetensorsDir, probe: str, candidates: list[str], what: str) -> str:
  for p in candidates:
    if p + probe in ckpt:
      return p
  raise CheckpointError(f"{ckpt.path}: cannot find the {what} (looked for "
                        f"{', '.join(repr(p + probe) for p in candidates)})")


def llm_rules(ckpt: SafetensorsDir, ours: tuple[str, ...] = ()) -> list[Rule]:
  model = _prefix(ckpt, "embed_tokens.weight",
                  ["model.", "language_model.model.", "model.language_model.", ""],
                  "language model's embed_tokens")
  head = {"model.": "", "language_model.model.": "language_model.",
          "model.language_model.": "", "": ""}[model]
  return [Rule(ours, model), Rule(ours + ("lm_head",), head + "lm_head.")]


def vision_rules(ckpt: SafetensorsDir, ours: tuple[str, ...], source: str = "main") -> list[Rule]:
  p = _prefix(ckpt, "embeddings.patch_embedding.weight",
              ["vision_tower.vision_model.", "vision_tower.", "model.vision_tower.vision_model.",
               "model.vision_tower.", "vision_model.", ""], "CLIP vision tower")
  return [Rule(ours, p, "clip", source)]


def rules_for(layout: str, ckpt: SafetensorsDir, clip: SafetensorsDir | None = None) -> list[Rule]:
  if layout == "llm":
    return llm_rules(ckpt)
  if layout == "clip_vision":
    return vision_rules(ckpt, ())
  if layout == "clip":
    return [Rule(("vision_model",), "vision_model.", "clip"),
            Rule(("text_model",), "text_model.", "clip"),
            Rule(("visual_projection",), "visual_projection.", "clip"),
            Rule(("text_projection",), "text_projection.", "clip"),
            Rule(("logit_scale",), "logit_scale", "clip")]
  if layout == "llava":
    proj = _prefix(ckpt, "linear_1.weight", ["multi_modal_projector.", "model.multi_modal_projector."],
                   "multi_modal_projector")
    return (llm_rules(ckpt, ("language_model",)) + vision_rules(ckpt, ("vision_tower",))
            + [Rule(("multi_modal_projector",), proj, "proj")])
  if layout == "llava_original":
    if clip is not None:
      tower = vision_rules(clip, ("vision_tower",), source="clip")
    elif original_tower_keys(ckpt):  # a tuned tower saved with the model (see original_tower)
      tower = [Rule(("vision_tower",), ORIGINAL_TOWER_PREFIX, "clip")]
    else:
      raise CheckpointError("the original LLaVA layout keeps the vision tower in a separate CLIP "
                            "checkpoint: pass clip_dir (--clip-dir)")
    return (llm_rules(ckpt, ("language_model",)) + tower
            + [Rule(("multi_modal_projector",), "model.mm_projector.", "mm_proj")])
  raise ValueError(f"unknown Hugging Face layout {layout!r}")


# ---------------------------------------------------------------------------------------------
# Architecture from config.json.

def read_config(path, fix: str = "download or copy it again") -> dict[str, Any]:
  """config.json of a local folder or one in a bucket (gs://...); one that is not JSON is a
  CheckpointError naming it and `fix`."""
  try:
    return paths.read_json(path, "a Hugging Face folder needs its config.json")
  except FileNotFoundError as e:
    raise CheckpointError(str(e)) from None
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path} is not JSON ({e}): {fix}") from None


def _local_only(path) -> None:
  """safetensors reads and writes local files only."""
  if paths.is_remote(path):
    raise CheckpointError(f"{path}: Hugging Face folders are read and written only on local disk "
                          "(safetensors works on local files): copy the folder from or to the "
                          "bucket (gcloud storage cp -r)")


def detect_layout(hf: dict[str, Any]) -> str:
  mt = hf.get("model_type")
  if mt == "llava" and "text_config" in hf:
    return "llava"
  if mt in ("llava", "llava_llama", "llava_mistral") or "mm_vision_tower" in hf:
    return "llava_original"
  if mt in ("llama", "mistral"):
    return "llm"
  if mt == "clip":
    return "clip"
  if mt == "clip_vision_model":
    return "clip_vision"
  raise CheckpointError(f"config.json field model_type={mt!r} is not supported; supported: "
                        "llava (llava-hf or original LLaVA), llama, mistral, clip, "
                        "clip_vision_model")


# transformers 4.x saves a nested config with only the fields that differ from its class's
# defaults: llava-hf/llava-1.5-7b-hf's text_config holds vocab_size, rms_norm_eps and
# max_position_embeddings but no hidden_size or num_hidden_layers (Vicuna-7B's are LlamaConfig's
# defaults). These are transformers' defaults for the text models a llava-hf config may nest.
HF_TEXT_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                  num_hidden_layers=32, num_attention_heads=32, max_position_embeddings=2048,
                  rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
    "mistral": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                    max_position_embeddings=4096 * 32, rms_norm_eps=1e-6, sliding_window=4096,
                    bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
}


def _with_text_defaults(hf: dict[str, Any]) -> dict[str, Any]:
  """A llava-hf config.json with its text_config's omitted fields filled in as transformers
  fills them (see HF_TEXT_DEFAULTS); an unknown model_type is left for LlamaConfig to reject.

  transformers 5 ties the LLaVA's embeddings if the top-level tie_word_embeddings or the text
  config's is set (and saves no lm_head then), so a top-level true ties them here too."""
  text = dict(hf.get("text_config") or {})
  text.setdefault("model_type", "llama")  # transformers' LlavaConfig default
  text = HF_TEXT_DEFAULTS.get(text["model_type"], {}) | text
  if hf.get("tie_word_embeddings"):
    text["tie_word_embeddings"] = True
  return {**hf, "text_config": text}


def config_from_hf(layout: str, hf: dict[str, Any], clip_hf: dict[str, Any] | None = None,
                   **overrides):
  """The model config a layout's config.json (and, for the original LLaVA layout, the separate
  CLIP's) describes, with runtime overrides."""
  if layout == "llava":
    return LlavaConfig.from_hf(_with_text_defaults(hf), **overrides)
  if layout == "llava_original":
    _reject_anyres(hf)
    return LlavaConfig.from_original(hf, clip_hf or {}, **overrides)
  if layout == "llm":
    return LlamaConfig.from_hf(hf, **overrides)
  if layout == "clip":
    return CLIPConfig.from_hf(hf, **overrides)
  vision = hf.get("vision_config", hf) if hf.get("model_type") == "clip" else hf
  return CLIPVisionConfig.from_hf(vision, **overrides)


def folder_config(hf_dir: str, layout: str, hf: dict[str, Any], clip_hf: dict[str, Any] | None,
                  stats_dir: str | None, **overrides):
  """A Hugging Face folder's model config: config.json's architecture (and the separate CLIP's),
  the pixel stats of stats_dir's preprocessor_config.json and the end-of-response ids of the
  folder's generation_config.json. One function for `load_hf` and
  `mathvlm.pretrained.pretrained_config`, so that a run plans with the config it loads."""
  with config_errors(os.path.join(hf_dir, "config.json")):  # or the separate CLIP's config
    cfg = config_from_hf(layout, hf, clip_hf, **overrides)
  return with_generation_eos(with_pixel_stats(cfg, stats_dir), hf_dir)


def _reject_anyres(hf: dict[str, Any]) -> None:
  """LLaVA-1.6 (LLaVA-NeXT) checkpoints in the original layout share LLaVA-1.5's model_type and
  keys, but tile each image over `image_grid_pinpoints` and add `image_newline` rows: read as
  LLaVA-1.5 they would load (image_newline merely unused) into a different model."""
  aspect = str(hf.get("image_aspect_ratio") or "")
  merge = str(hf.get("mm_patch_merge_type") or "flat")
  if "anyres" in aspect or merge.startswith("spatial"):
    raise CheckpointError(
        f"config.json fields image_aspect_ratio={aspect!r}, mm_patch_merge_type={merge!r}: this "
        "is a LLaVA-1.6 (LLaVA-NeXT, any-resolution tiling) checkpoint, which is not supported; "
        "only LLaVA-1.5-style models (image_aspect_ratio 'pad' or 'square', mm_patch_merge_type "
        "'flat') load")


def _vision_of(cfg) -> CLIPVisionConfig | None:
  return cfg if isinstance(cfg, CLIPVisionConfig) else getattr(cfg, "vision", None)


def with_pixel_stats(cfg, folder: str | None):
  """The config with the image mean and std of the folder's preprocessor_config.json, where
  Hugging Face keeps them (not in config.json); unchanged when there is none."""
  path = os.path.join(folder or "", "preprocessor_config.json")
  vision = _vision_of(cfg)
  if vision is None or not folder or not os.path.exists(path):
    return cfg
  meta = read_config(path)
  have = [k for k in ("image_mean", "image_std") if k in meta]
  if len(have) == 1:
    raise CheckpointError(f"{path} has {have[0]} but not its partner: give both image_mean and "
                          "image_std, or neither (CLIP's are then used)")
  if not have:
    return cfg
  vision = dataclasses.replace(vision, image_mean=tuple(meta["image_mean"]),
                               image_std=tuple(meta["image_std"]))
  return vision if cfg is _vision_of(cfg) else dataclasses.replace(cfg, vision=vision)


def _text_of(cfg) -> LlamaConfig | None:
  """The language model's config (the one that ends responses); None for CLIP, whose text side
  does not generate."""
  text = cfg if isinstance(cfg, LlamaConfig) else getattr(cfg, "text", None)
  return text if isinstance(text, LlamaConfig) else None


def with_generation_eos(cfg, folder: str | None):
  """The config with the end-of-response ids of the folder's generation_config.json, which is
  what transformers' `generate` ends on (Llama-3-Instruct's lists two ids where its config.json
  names one); unchanged when there is none, it has no eos_token_id, or it names config.json's."""
  path = os.path.join(folder or "", "generation_config.json")
  text = _text_of(cfg)
  if text is None or not folder or not os.path.exists(path):
    return cfg
  eos = _generation_eos(path)
  if eos is None or set(np.atleast_1d(eos)) == set(np.atleast_1d(text.eos_token_id)):
    return cfg
  log.info("%s: responses end on eos_token_id %s, not config.json's %s", path, eos,
           text.eos_token_id)
  text = dataclasses.replace(text, eos_token_id=eos)
  return text if isinstance(cfg, LlamaConfig) else dataclasses.replace(cfg, text=text)


def _generation_eos(path: str) -> int | tuple[int, ...] | None:
  """generation_config.json's eos_token_id: an int, a tuple for a list, None when absent."""
  meta = read_config(path, "download or copy it again, or delete it (responses then end on "
                     "config.json's eos_token_id)")
  if not isinstance(meta, dict):
    raise CheckpointError(f"{path} holds a {type(meta).__name__}, not a JSON object: download or "
                          "copy it again, or delete it")
  eos = meta.get("eos_token_id")
  if eos is None or _is_id(eos):
    return eos
  if isinstance(eos, list) and eos and all(_is_id(e) for e in eos):
    return tuple(eos)
  raise CheckpointError(f"{path} field eos_token_id={eos!r} is neither a token id nor a list of "
                        "them: write an int or a list of ints (e.g. [128001, 128009]), or remove "
                        "the field (responses then end on config.json's eos_token_id)")


def _is_id(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def generation_config(text: LlamaConfig) -> dict[str, Any]:
  """transformers' GenerationConfig ids for an export: what `with_generation_eos` reads back, and
  what tools that read only generation_config.json (vLLM's defaults) end responses on."""
  ids = dict(bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id,
             pad_token_id=text.pad_token_id)
  return {k: list(v) if isinstance(v, tuple) else v for k, v in ids.items() if v is not None}


def preprocessor_config(vision: CLIPVisionConfig) -> dict[str, Any]:
  """transformers' CLIPImageProcessor settings that feed this tower what it was trained on."""
  size = vision.image_size
  return {"image_processor_type": "CLIPImageProcessor", "do_convert_rgb": True,
          "do_resize": True, "size": {"shortest_edge": size}, "resample": 3,
          "do_center_crop": True, "crop_size": {"height": size, "width": size},
          "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
          "image_mean": list(vision.image_mean), "image_std": list(vision.image_std)}


# ---------------------------------------------------------------------------------------------
# Loading.

def param_paths(model: nnx.Module):
  """(path parts, Variable) for every parameter, in a stable order."""
  return [(path_parts(path), var) for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))]


def _load_array(sources: dict[str, SafetensorsDir], path, var, rule: Rule, key: str,
                transform: str, stacked: bool, sharding, dtype) -> jax.Array:
  ckpt = sources[rule.source]
  shape = tuple(var.shape)
  to_ours = TRANSFORMS[transform][0]
  layer_keys = [key.format(i=i) for i in range(shape[0])] if stacked else [key]
  expected = _hf_shape(shape[1:] if stacked else shape, transform)
  for k in layer_keys:
    if k not in ckpt:
      raise CheckpointError(f"{ckpt.path}: missing tensor {k!r} (for parameter "
                            f"{'/'.join(path)}, expected shape {expected})")
    found = ckpt.shape(k)
    if found != expected:
      raise CheckpointError(f"{ckpt.path}: tensor {k!r} has shape {found}, expected "
                            f"{expected} for parameter {'/'.join(path)} "
                            "(does config.json match the weights?)")

  def fetch(index):
    if not stacked:
      return np.asarray(to_ours(ckpt.get(key))[index], dtype=dtype)
    layers = range(*index[0].indices(shape[0]))
    out = None
    for j, i in enumerate(layers):
      part = np.asarray(to_ours(ckpt.get(layer_keys[i]))[index[1:]], dtype=dtype)
      if out is None:
        out = np.empty((len(layers),) + part.shape, dtype)
      out[j] = part
    return out

  return jax.make_array_from_callback(shape, sharding(path, var.get_metadata().get(
      "out_sharding") or (), shape), fetch)


def _hf_shape(shape: tuple[int, ...], transform: str) -> tuple[int, ...]:
  """The checkpoint's shape for one of ours: the transform applied to a zero-byte view."""
  view = np.broadcast_to(np.zeros((), np.uint8), shape)
  return tuple(TRANSFORMS[transform][1](view).shape)


def original_clip_dir(hf_dir: str, hf: dict[str, Any], clip_dir: str | None) -> str:
  """The CLIP checkpoint holding an original-layout LLaVA's vision tower: clip_dir, else
  `mm_vision_tower` when it is a local folder. One function, so that the config a run plans
  with (`mathvlm.pretrained.pretrained_config`) describes the tower `load_hf` loads."""
  tower = hf.get("mm_vision_tower")
  clip_dir = clip_dir or (tower if os.path.isdir(str(tower)) else None)
  if not clip_dir:
    raise CheckpointError(
        f"{hf_dir} is in the original LLaVA layout, whose vision tower ({tower!r}) is a "
        "separate CLIP checkpoint: pass clip_dir (--clip-dir, model.clip_dir) pointing at a "
        "local copy")
  return clip_dir


# Where LLaVA's own code keeps the vision tower in its state dict: `LlavaMetaModel.vision_tower` is
# a `CLIPVisionTower` whose `.vision_tower` is a `CLIPVisionModel` (haotian-liu/LLaVA,
# llava/model/llava_arch.py and multimodal_encoder/clip_encoder.py). A released checkpoint holds
# these tensors when its tower was trained (unfreeze_mm_vision_tower; MAVIS's CLIP-Math).
ORIGINAL_TOWER_PREFIX = "model.vision_tower.vision_tower.vision_model."
_ORIGINAL_TOWER_ROOT = "model.vision_tower."


def original_tower_keys(ckpt: SafetensorsDir) -> list[str]:
  """The vision tower tensors an original-layout checkpoint carries (buffers aside)."""
  return sorted(k for k in ckpt.keys()
                if k.startswith(_ORIGINAL_TOWER_ROOT) and not IGNORED_KEYS.match(k))


@dataclasses.dataclass(frozen=True)
class OriginalTower:
  """Where an original-layout LLaVA's vision tower comes from (`original_tower`)."""
  in_checkpoint: bool         # its tensors: the checkpoint's own (True) or clip_dir's
  clip_dir: str | None        # the CLIP folder; None only when the tower is in the checkpoint
  clip_hf: dict[str, Any]     # the tower's CLIP config (config.json or derived, see below)
  stats_dir: str | None       # the folder whose preprocessor_config.json gives the pixel stats
  config_source: str          # where clip_hf came from, for the log
  unread: str | None = None   # a local mm_vision_tower folder clip_dir overrides (not read)


def original_tower(hf_dir: str, hf: dict[str, Any], clip_dir: str | None,
                   ckpt: SafetensorsDir | None = None) -> OriginalTower:
  """The vision tower of an original-layout LLaVA: its tensors, its config, its pixel stats. One
  function, so that the config a run plans with (`mathvlm.pretrained.pretrained_config`)
  describes the tower `load_hf` loads.

  A checkpoint without `model.vision_tower.*` tensors (LLaVA-1.5, Math-LLaVA): the tower is the
  separate CLIP checkpoint (`original_clip_dir`), tensors, config and pixel stats alike.

  A checkpoint with them (a tuned tower, saved at ORIGINAL_TOWER_PREFIX): the tower is the
  checkpoint's, whatever clip_dir holds; reading a separate CLIP instead would silently give the
  untuned tower. All of the tower's tensors must be there: a partial tower is an error naming
  the missing ones, never completed from a separate CLIP (a half-tuned mix is not a model anyone
  trained). The separate CLIP is then not needed. The tower's *config* (width, depth, heads, image
  and patch size...), which an original config.json does not hold (only mm_hidden_size):
    1. the CLIP folder's config.json when there is one (clip_dir, or mm_vision_tower as a local
       folder); only its config.json and preprocessor_config.json are read, not its tensors;
    2. else derived from the tensor shapes, when mm_vision_tower names an OpenAI CLIP ViT
       (`openai/clip-vit-...`, what LLaVA, Math-LLaVA and MAVIS start from): the shapes fix the
       width, MLP width, depth, patch size, channels and image size; the head count is in no
       shape, and is that family's (64-wide heads, as in every openai/clip-vit-* config), with
       its quick_gelu and layer norm eps 1e-5. Tuning changes none of these;
    3. else an error saying to pass clip_dir: guessing the head count of an unknown tower would
       load without a shape error into a different model.
  The pixel stats come from the CLIP folder's preprocessor_config.json, else the checkpoint's own,
  else CLIP's defaults.

  clip_dir wins over a local mm_vision_tower folder: that one is not read (`unread`, for the log),
  and must hold a tower of the same shapes (else an error: two different CLIPs, and which one the
  LLaVA was trained with is for its user to say).
  """
  ckpt = ckpt if ckpt is not None else SafetensorsDir(hf_dir)
  carried = original_tower_keys(ckpt)
  unread = _overridden_tower(hf_dir, hf, clip_dir)
  if not carried:
    clip_dir = original_clip_dir(hf_dir, hf, clip_dir)
    return OriginalTower(False, clip_dir, read_config(os.path.join(clip_dir, "config.json")),
                         clip_dir, os.path.join(clip_dir, "config.json"), unread)
  tower = hf.get("mm_vision_tower")
  folder = clip_dir or (tower if os.path.isdir(str(tower)) else None)
  if folder:
    clip_hf = read_config(os.path.join(folder, "config.json"))
    source = os.path.join(folder, "config.json")
  else:
    clip_hf, source = _tower_config_from_shapes(ckpt, hf_dir, hf, carried), "the tensor shapes"
  _check_whole_tower(ckpt, clip_hf, carried, source)
  return OriginalTower(True, folder, clip_hf, folder or hf_dir, source, unread)


def _overridden_tower(hf_dir: str, hf: dict[str, Any], clip_dir: str | None) -> str | None:
  """config.json's mm_vision_tower when it is a local folder other than clip_dir (which wins),
  after checking that both hold vision towers of the same shapes (where mm_vision_tower's has
  safetensors to compare); None otherwise."""
  named = str(hf.get("mm_vision_tower") or "")
  if not _overrides(clip_dir, named):
    return None
  try:
    theirs = _vision_shapes(named)
  except CheckpointError:  # no safetensors there (PyTorch .bin weights): nothing to compare
    return named
  ours = _vision_shapes(clip_dir)
  differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
  if differ:
    k = differ[0]
    raise CheckpointError(
        f"{hf_dir}/config.json's mm_vision_tower names the local CLIP folder {named}, and "
        f"clip_dir (--clip-dir) names another, {clip_dir}, whose vision tower has other shapes "
        f"({len(differ)} tensors differ, e.g. {k}: {theirs.get(k, 'missing')} there, "
        f"{ours.get(k, 'missing')} in clip_dir): two different CLIPs. Pass as clip_dir the one "
        "this LLaVA was trained with (or leave clip_dir out to read mm_vision_tower's)")
  return named


def _overrides(clip_dir: str | None, named) -> bool:
  """Whether clip_dir stands in for config.json's mm_vision_tower `named`, a local folder other
  than clip_dir (a Hub id names no folder here, and clip_dir is then the tower's only source)."""
  return bool(clip_dir) and os.path.isdir(str(named)) and (
      os.path.realpath(named) != os.path.realpath(clip_dir))


def _vision_shapes(clip_dir: str) -> dict[str, tuple[int, ...]]:
  """A CLIP folder's vision tower tensors by their name below the tower's prefix, and shapes."""
  ckpt = SafetensorsDir(clip_dir)
  prefix = vision_rules(ckpt, ())[0].hf
  return {k[len(prefix):]: ckpt.shape(k) for k in ckpt.keys()
          if k.startswith(prefix) and not IGNORED_KEYS.match(k)}


def _tower_config_from_shapes(ckpt: SafetensorsDir, hf_dir: str, hf: dict[str, Any],
                              carried: list[str]) -> dict[str, Any]:
  """An OpenAI CLIP ViT's vision config from its tensors' shapes (see `original_tower`)."""
  tower = str(hf.get("mm_vision_tower") or "")
  if not re.fullmatch(r"openai/clip-vit-[\w.-]+", tower):
    raise CheckpointError(
        f"{hf_dir} carries its own vision tower ({len(carried)} tensors under "
        f"{_ORIGINAL_TOWER_ROOT!r}), but no config for it: config.json's mm_vision_tower="
        f"{tower!r} is neither a local folder nor an OpenAI CLIP (whose architecture the tensor "
        "shapes fix). Pass clip_dir (--clip-dir, model.clip_dir): a folder with the tower's "
        "config.json (e.g. the CLIP it was tuned from; its tensors are not read)")
  p = ORIGINAL_TOWER_PREFIX

  def shape(rest):
    if p + rest not in ckpt:
      _partial(ckpt, [p + rest], carried)
    return ckpt.shape(p + rest)

  width, channels, patch, _ = shape("embeddings.patch_embedding.weight")
  positions = shape("embeddings.position_embedding.weight")[0] - 1  # patches + the class token
  side = int(round(positions ** 0.5))
  layers = {int(m.group(1)) for k in carried
            if (m := re.match(re.escape(p) + r"encoder\.layers\.(\d+)\.", k))}
  if side * side != positions or width % 64 or not layers:
    raise CheckpointError(
        f"{hf_dir}: the vision tower's tensors do not have an OpenAI CLIP ViT's shapes "
        f"(width {width}, {positions} patch positions, {len(layers)} layers): pass clip_dir "
        "(--clip-dir, model.clip_dir), a folder with the tower's config.json")
  return dict(model_type="clip_vision_model", hidden_size=width,
              intermediate_size=shape("encoder.layers.0.mlp.fc1.weight")[0],
              num_hidden_layers=max(layers) + 1, num_attention_heads=width // 64,
              image_size=side * patch, patch_size=patch, num_channels=channels,
              hidden_act="quick_gelu", layer_norm_eps=1e-5)


def _check_whole_tower(ckpt: SafetensorsDir, clip_hf: dict[str, Any], carried: list[str],
                       source: str) -> None:
  """Every tensor of the tower clip_hf describes is in the checkpoint (`original_tower`)."""
  from mathvlm.models.vit import CLIPVisionTransformer
  vision = clip_hf.get("vision_config", clip_hf) if clip_hf.get("model_type") == "clip" else clip_hf
  cfg = CLIPVisionConfig.from_hf(vision)
  abstract = nnx.eval_shape(lambda: CLIPVisionTransformer(cfg, rngs=nnx.Rngs(0)))
  rules = [Rule((), ORIGINAL_TOWER_PREFIX, "clip")]
  missing = []
  for path, var in param_paths(abstract):
    _, key, _, stacked = hf_key(path, rules)
    keys = [key.format(i=i) for i in range(var.shape[0])] if stacked else [key]
    missing += [k for k in keys if k not in ckpt]
  if missing:
    _partial(ckpt, missing, carried, f" (the tower {source} describes)")


def _partial(ckpt: SafetensorsDir, missing: list[str], carried: list[str], described: str = ""):
  raise CheckpointError(
      f"{ckpt.path} carries only part of a vision tower: it has {len(carried)} tensors under "
      f"{_ORIGINAL_TOWER_ROOT!r} but lacks {len(missing)} of the tower's{described}, e.g. "
      f"{missing[:5]}. The rest is not taken from a separate CLIP (a partly tuned tower mixed "
      "with an untuned one): save the whole tower with the model, or drop every "
      "model.vision_tower.* tensor to read the tower from clip_dir")


def load_hf(hf_dir: str, dtype: str = "float32", *, compute_dtype: str | None = None,
            clip_dir: str | None = None, sharding: Callable | None = None, strict: bool = False,
            layout: str | None = None, remat: str = "none", scan_unroll: int = 1):
  """Any supported Hugging Face folder -> (model, config). See the module docstring for layouts.

  dtype: parameter dtype; compute_dtype: matmul dtype (default: dtype). sharding: a function
  (path, logical axes, shape) -> jax.sharding.Sharding (e.g. `sharding.param_sharding(mesh)`);
  default: the first device. strict: unused checkpoint tensors are an error, not a warning
  (those of the model's own layers that config.json does not describe always are, see
  `_undescribed`).
  layout: read only part of a checkpoint, e.g. 'clip_vision' for the vision tower of a CLIPModel.
  """
  hf = read_config(os.path.join(hf_dir, "config.json"))
  layout = layout or detect_layout(hf)
  family = registry.of_hf_layout(layout)
  sources = {"main": SafetensorsDir(hf_dir)}
  clip_hf, stats_dir = None, hf_dir
  if layout == "llava_original":
    tower = original_tower(hf_dir, hf, clip_dir, sources["main"])
    clip_hf, stats_dir = tower.clip_hf, tower.stats_dir
    _log_tower(hf_dir, tower, clip_dir)
    if not tower.in_checkpoint:
      sources["clip"] = SafetensorsDir(tower.clip_dir)
  overrides = dict(param_dtype=dtype, dtype=compute_dtype or dtype, remat=remat,
                   scan_unroll=scan_unroll)
  cfg = folder_config(hf_dir, layout, hf, clip_hf, stats_dir, **overrides)
  abstract = family.abstract(cfg)
  rules = rules_for(layout, sources["main"], sources.get("clip"))
  sharding = sharding or single_device
  np_dtype = np.dtype(dtype_of(dtype))
  graphdef, state = nnx.split(abstract)
  flat = dict(nnx.to_flat_state(state))
  for flat_key, var in flat.items():
    if not isinstance(var, nnx.Param):
      continue
    path = path_parts(flat_key)
    rule, key, transform, stacked = hf_key(path, rules)
    if rule.style == "mm_proj" and cfg.projector == "linear":  # one Linear: no Sequential index
      key = key.replace("mm_projector.0.", "mm_projector.")
    arr = _load_array(sources, path, var, rule, key, transform, stacked, sharding, np_dtype)
    flat[flat_key] = var.replace(arr)
  _report_unused(sources, layout, strict)
  return nnx.merge(graphdef, nnx.from_flat_state(flat)), cfg


def _log_tower(hf_dir: str, tower: OriginalTower, clip_dir: str | None) -> None:
  """Which folder gives an original-layout LLaVA's tower tensors and which its config, and the
  local mm_vision_tower folder that clip_dir overrides, when there is one."""
  unread = (f"; config.json's mm_vision_tower names another local folder, {tower.unread}, which "
            "is not read (make sure clip_dir is the CLIP this LLaVA was trained with)"
            if tower.unread else "")
  if not tower.in_checkpoint:
    log.log(logging.WARNING if unread else logging.INFO,
            "%s: vision tower from the separate CLIP checkpoint %s (its tensors and "
            "config.json)%s", hf_dir, tower.clip_dir, unread)
    return
  log.info("%s: vision tower from the checkpoint itself (%s*), its config from %s",
           hf_dir, ORIGINAL_TOWER_PREFIX, tower.config_source)
  if clip_dir:
    log.warning("%s carries its own (tuned) vision tower, which is loaded; clip_dir=%s gives "
                "only its config.json and pixel stats, not its tensors%s", hf_dir, clip_dir,
                unread)


def _report_unused(sources: dict[str, SafetensorsDir], layout: str, strict: bool) -> None:
  for name, ckpt in sources.items():
    unused = [k for k in ckpt.keys() if k not in ckpt.used and not IGNORED_KEYS.match(k)]
    if name == "clip" or layout == "clip_vision":  # a full CLIP checkpoint also holds the text side
      unused = [k for k in unused if not k.startswith(("text_model.", "text_projection",
                                                       "visual_projection", "logit_scale"))]
    undescribed = _undescribed(unused, ckpt.used)
    if undescribed:
      raise CheckpointError(
          f"{ckpt.path}: {len(undescribed)} tensors belong to the model's own layers but "
          f"config.json does not describe them, e.g. {undescribed[:5]}: more layers than its "
          "num_hidden_layers, a projector deeper than its type, or a bias it turns off "
          "(attention_bias, mlp_bias, multimodal_projector_bias). Loading without them would give "
          "another model: make config.json match the checkpoint")
    if unused:
      msg = (f"{ckpt.path}: {len(unused)} tensors were not used by the model, e.g. "
             f"{unused[:5]}")
      if strict:
        raise CheckpointError(msg)
      log.warning(msg)


def _undescribed(unused: list[str], used: set[str]) -> list[str]:
  """The unused tensors that are weights of what the model loads, not extra heads or buffers:
  one more of a numbered kind it reads (`layers.2.*` where config.json says two layers,
  `linear_3`, `mm_projector.4`), or another weight of a layer it reads (a `q_proj.bias`)."""
  numbered = lambda k: re.sub(r"\d+", "#", k)
  kinds = {numbered(k) for k in used}
  layers = {k.rsplit(".", 1)[0] for k in used}
  return [k for k in unused if numbered(k) in kinds or k.rsplit(".", 1)[0] in layers]


def load_llava(hf_dir: str, dtype: str = "float32", **kwargs) -> tuple[Llava, LlavaConfig]:
  """A LLaVA model from llava-hf or original-LLaVA weights. Public entry point: keep stable.

  The model is callable as `model(input_ids, pixel_values, attention_mask=None)` with
  pixel_values normalised, channels last [batch, height, width, 3]; it returns logits.
  """
  model, cfg = load_hf(hf_dir, dtype, **kwargs)
  if not isinstance(model, Llava):
    raise CheckpointError(f"{hf_dir} holds a {type(model).__name__}, not a LLaVA model "
                          "(config.json model_type must be 'llava')")
  return model, cfg


# ---------------------------------------------------------------------------------------------
# Export.

def _export_layout(model: nnx.Module) -> str:
  layout = registry.of_model(model).hf_export
  if layout is None:
    raise CheckpointError(f"a {type(model).__name__} has no Hugging Face layout; keep it as a "
                          "mathvlm checkpoint (mathvlm.checkpoint.save_model)")
  return layout


# What a LLaVA exports to: llava-hf's LlavaForConditionalGeneration, or the original LLaVA's
# LlavaLlamaForCausalLM / LlavaMistralForCausalLM (haotian-liu/LLaVA, Math-LLaVA's release).
LLAVA_EXPORT_LAYOUTS = ("llava", "llava_original")


def export_layout(model: nnx.Module, cfg, layout: str | None = None) -> str:
  """The layout `export_hf` writes. A LLaVA whose image id is outside the vocabulary (-200, one
  read from the original layout) has no llava-hf form, so it goes back to the original layout by
  default, and asking for llava-hf says so."""
  own = _export_layout(model)
  if own != "llava":
    if layout not in (None, own):
      raise CheckpointError(f"a {type(model).__name__} is written only in the {own!r} layout, "
                            f"not {layout!r} (that one is for LLaVA models)")
    return own
  if layout is not None and layout not in LLAVA_EXPORT_LAYOUTS:
    raise CheckpointError(f"unknown LLaVA export layout {layout!r}; expected one of "
                          f"{', '.join(LLAVA_EXPORT_LAYOUTS)}")
  in_vocab = 0 <= cfg.image_token_id < cfg.text.vocab_size
  if layout == "llava" and not in_vocab:
    raise CheckpointError(
        f"image_token_id={cfg.image_token_id} is outside the vocabulary (size "
        f"{cfg.text.vocab_size}): the model comes from the original LLaVA layout, which marks "
        "images with -200; llava-hf needs an image token in the vocabulary. Export it to the "
        "original layout instead (--layout original; layout='llava_original')")
  return layout or ("llava" if in_vocab else "llava_original")


def _export_rules(layout: str) -> list[Rule]:
  if layout == "llava":
    return [Rule(("language_model",), "language_model.model."),
            Rule(("language_model", "lm_head"), "language_model.lm_head."),
            Rule(("vision_tower",), "vision_tower.", "clip"),
            Rule(("multi_modal_projector",), "multi_modal_projector.", "proj")]
  if layout == "llava_original":  # the tower goes to its own CLIPVisionModel folder (see below)
    return [Rule(("language_model",), "model."), Rule(("language_model", "lm_head"), "lm_head."),
            Rule(("multi_modal_projector",), "model.mm_projector.", "mm_proj"),
            Rule(("vision_tower",), "vision_model.", "clip")]
  if layout == "llm":
    return [Rule((), "model."), Rule(("lm_head",), "lm_head.")]
  if layout == "clip_vision":  # transformers 5 saves CLIPVisionModel without `vision_model.`
    return [Rule((), "", "clip")]
  return rules_for("clip", None)  # type: ignore[arg-type]


def hf_tensors(model: nnx.Module, dtype: str | None = None, layout: str | None = None,
               keep: Callable[[tuple[str, ...]], bool] = lambda path: True):
  """Yields (HF key, numpy array) in the export layout (default: the family's), one tensor at a
  time, of the parameters whose path `keep` keeps (each one fetched from the device once)."""
  layout = layout or _export_layout(model)
  rules = _export_rules(layout)
  np_dtype = None if dtype is None else np.dtype(dtype_of(dtype))
  linear = layout == "llava_original" and model.cfg.projector == "linear"
  for path, var in param_paths(model):
    if not keep(path):
      continue
    _, key, transform, stacked = hf_key(path, rules)
    if linear:  # one nn.Linear, not an nn.Sequential: no index (as `load_hf` reads it)
      key = key.replace("mm_projector.0.", "mm_projector.")
    value = np.asarray(jax.device_get(var[...]))
    if np_dtype is not None:
      value = value.astype(np_dtype)
    to_hf = TRANSFORMS[transform][1]
    if stacked:
      for i in range(value.shape[0]):
        yield key.format(i=i), np.array(to_hf(value[i]), order="C")
    else:
      yield key, np.array(to_hf(value), order="C")  # keeps 0-d tensors 0-d


def export_hf(model: nnx.Module, cfg, out_dir: str, *, dtype: str | None = None,
              max_shard_bytes: int = 5 << 30, layout: str | None = None,
              vision_tower: str | None = None, image_aspect_ratio: str | None = None) -> str:
  """Writes config.json, safetensors (sharded with an index past `max_shard_bytes`), for a
  model with a vision tower preprocessor_config.json with its pixel statistics, and for one that
  generates generation_config.json with its bos/eos/pad ids, as save_pretrained does: the ids a
  response ends on survive the round trip for readers of either file.

  layout: for a LLaVA, 'llava' (llava-hf) or 'llava_original' (`export_original`, where
  vision_tower and image_aspect_ratio apply); default `export_layout`'s. Returns the layout
  written."""
  layout = export_layout(model, cfg, layout)
  if any(getattr(m, "lora", None) is not None for _, m in nnx.iter_modules(model)):
    raise CheckpointError("the model has LoRA adapters: merge them first "
                          "(mathvlm.models.lora.merge_lora)")
  _local_only(out_dir)
  if layout == "llava_original":
    export_original(model, cfg, out_dir, dtype=dtype, max_shard_bytes=max_shard_bytes,
                    vision_tower=vision_tower, image_aspect_ratio=image_aspect_ratio)
    return layout
  if vision_tower is not None:
    raise CheckpointError("vision_tower (--vision-tower) names the tower of an original-layout "
                          f"LLaVA export; the {layout!r} layout keeps the tower in its own files")
  if image_aspect_ratio is not None:
    raise CheckpointError("image_aspect_ratio (--image-aspect-ratio) is a field of an "
                          f"original-layout LLaVA export; the {layout!r} layout has none")
  _write_tensors(hf_tensors(model, dtype), out_dir, max_shard_bytes)
  if _vision_of(cfg) is not None:
    _write_json(preprocessor_config(_vision_of(cfg)), out_dir, "preprocessor_config.json")
  _write_model_configs(cfg.to_hf(), cfg, out_dir, dtype)
  return layout


def _write_tensors(tensors, out_dir: str, max_shard_bytes: int) -> None:
  """model.safetensors, or shards of at most max_shard_bytes with their index."""
  os.makedirs(out_dir, exist_ok=True)
  shards: list[dict[str, np.ndarray]] = [{}]
  size = 0
  for key, value in tensors:
    if size and size + value.nbytes > max_shard_bytes:
      shards.append({})
      size = 0
    shards[-1][key] = value
    size += value.nbytes
  meta = {"format": "pt"}
  if len(shards) == 1:
    save_file(shards[0], os.path.join(out_dir, "model.safetensors"), metadata=meta)
    return
  weight_map = {}
  for n, shard in enumerate(shards, 1):
    name = f"model-{n:05d}-of-{len(shards):05d}.safetensors"
    save_file(shard, os.path.join(out_dir, name), metadata=meta)
    weight_map.update({k: name for k in shard})
  total = sum(v.nbytes for s in shards for v in s.values())
  _write_json({"metadata": {"total_size": total}, "weight_map": weight_map}, out_dir,
              "model.safetensors.index.json")


def _write_json(obj: dict[str, Any], out_dir: str, name: str) -> None:
  with open(os.path.join(out_dir, name), "w") as f:
    json.dump(obj, f, indent=2)


def _write_model_configs(hf_cfg: dict[str, Any], cfg, out_dir: str, dtype: str | None) -> None:
  """config.json with the dtype written, and generation_config.json for a model that generates.
  config.json last: a folder with it is a model."""
  hf_cfg = dict(hf_cfg)
  hf_cfg["dtype"] = str(np.dtype(dtype_of(dtype))) if dtype else _param_dtype_name(cfg)
  hf_cfg["torch_dtype"] = hf_cfg["dtype"]  # the name transformers < 5 reads
  if _text_of(cfg) is not None:
    _write_json(generation_config(_text_of(cfg)), out_dir, "generation_config.json")
  _write_json(hf_cfg, out_dir, "config.json")


# Where `export_original` writes the vision tower, inside the export folder.
ORIGINAL_TOWER_DIR = "vision_tower"


def export_original(model: Llava, cfg: LlavaConfig, out_dir: str, *, dtype: str | None = None,
                    max_shard_bytes: int = 5 << 30, vision_tower: str | None = None,
                    image_aspect_ratio: str | None = None) -> None:
  """The original LLaVA layout, as LLaVA's `load_pretrained_model` reads it
  (haotian-liu/LLaVA, llava/model/builder.py and llava_arch.py): `model.*`, `lm_head`,
  `model.mm_projector.*` in OUT's safetensors, config.json with `original_config`'s fields.

  LLaVA builds the tower from `mm_vision_tower` alone (`CLIPVisionModel.from_pretrained(name)`,
  after the model: tensors under `model.vision_tower.*` are ignored unless
  unfreeze_mm_vision_tower is set, and then the tower is still first fetched by name). So by
  default the tower, trained or not (a MAVIS model's CLIP-Math tower is), is written whole as a
  CLIPVisionModel folder, OUT/vision_tower (config.json, `vision_model.*` safetensors,
  preprocessor_config.json), and `mm_vision_tower` is its absolute path: LLaVA accepts a local
  tower only as a path that exists (`build_vision_tower`), and a relative one would be read
  against the working directory. Moving the export means editing that field.

  vision_tower: a CLIP to name instead of writing the tower, for a tower left untouched (what
  LLaVA-1.5 and Math-LLaVA ship: `openai/clip-vit-large-patch14-336`). A local folder is
  checked to hold exactly the model's tower (else an error: a trained tower would be swapped for
  the untrained one); a Hub id cannot be checked here, and says so in the log.
  image_aspect_ratio: see `original_config`."""
  config = original_config(cfg, "", image_aspect_ratio)  # its errors before anything is written
  if vision_tower is None:
    tower_dir = os.path.join(out_dir, ORIGINAL_TOWER_DIR)
    export_original_tower(model, cfg, tower_dir, dtype=dtype, max_shard_bytes=max_shard_bytes)
    vision_tower = os.path.abspath(tower_dir)
  elif os.path.isdir(vision_tower):
    _check_same_tower(model, vision_tower)
    vision_tower = os.path.abspath(vision_tower)
  else:
    log.warning("mm_vision_tower=%r (not a local folder) is named, the tower not written, and "
                "not checked here against the model's: right only for a tower not trained since "
                "(else leave vision_tower out to write it)", vision_tower)
  main = hf_tensors(model, dtype, "llava_original", keep=lambda path: not _is_tower(path))
  _write_tensors(main, out_dir, max_shard_bytes)
  _write_model_configs(dict(config, mm_vision_tower=vision_tower), cfg, out_dir, dtype)


def export_original_tower(model: Llava, cfg: LlavaConfig, tower_dir: str, *,
                          dtype: str | None = None, max_shard_bytes: int = 5 << 30) -> None:
  """The LLaVA's vision tower as a CLIPVisionModel folder with its image processor, which LLaVA's
  `CLIPVisionTower.load_model` reads. `vision_model.*` keys: what transformers 4 (LLaVA's) needs,
  and transformers 5 reads too."""
  tower = hf_tensors(model, dtype, "llava_original", keep=_is_tower)
  _write_tensors(tower, tower_dir, max_shard_bytes)
  _write_json(preprocessor_config(cfg.vision), tower_dir, "preprocessor_config.json")
  _write_model_configs(cfg.vision.to_hf(), cfg.vision, tower_dir, dtype)


def _is_tower(path: tuple[str, ...]) -> bool:
  return path[0] == "vision_tower"


def _check_same_tower(model: Llava, clip_dir: str) -> None:
  """The CLIP folder named as the export's mm_vision_tower holds the model's tower, bit for bit
  (cast to the model's dtype, as `load_hf` reads it)."""
  ckpt = SafetensorsDir(clip_dir)
  prefix = vision_rules(ckpt, ())[0].hf
  differ = []
  for key, value in hf_tensors(model, None, "llava_original", keep=_is_tower):
    theirs = prefix + key[len("vision_model."):]
    same = (theirs in ckpt and ckpt.shape(theirs) == value.shape
            and np.array_equal(ckpt.get(theirs).astype(value.dtype), value))
    if not same:
      differ.append(theirs)
  if differ:
    raise CheckpointError(
        f"vision_tower={clip_dir!r} does not hold the model's vision tower: {len(differ)} "
        f"tensors are missing or differ, e.g. {differ[:5]} (the tower was trained?). Leave "
        "vision_tower (--vision-tower) out: the export then writes the model's own tower")


def separate_tower_name(hf_dir: str, clip_dir: str | None = None) -> str | None:
  """An original-layout folder's mm_vision_tower when its tower is that separate CLIP (not carried
  in the checkpoint): a model read from the folder has that tower unchanged, so its export can
  name it again instead of writing it (`mathvlm.convert`). When clip_dir overrides a local
  mm_vision_tower folder (`original_tower`), the tower read is clip_dir's, which is named. None
  for any other folder."""
  hf = read_config(os.path.join(hf_dir, "config.json"))
  if detect_layout(hf) != "llava_original" or original_tower_keys(SafetensorsDir(hf_dir)):
    return None
  named = hf.get("mm_vision_tower") or None
  return clip_dir if _overrides(clip_dir, named) else named


# LLaVA's image_aspect_ratio values: 'pad' (expand2square, LLaVA-1.5's and our data's default) or
# any other, which LLaVA-1.5 gives CLIP's processor (resize and centre crop; 'square' by name).
IMAGE_ASPECT_RATIOS = ("pad", "square")


def llava_aspect_ratio(image_aspect: str | None, source: str) -> str | None:
  """LLaVA's image_aspect_ratio for a model trained with data.image_aspect `image_aspect`
  (`checkpoint.recorded_inputs`; None where the source does not say). A stretch (resize) has no
  LLaVA form: LLaVA would feed the model other images than it learned from, so the export asks
  for a choice rather than write one silently."""
  if image_aspect is None:
    return None
  if image_aspect not in checkpoint.LLAVA_ASPECT:
    raise CheckpointError(f"{source} was trained with data.image_aspect={image_aspect!r}, which "
                          "LLaVA's code cannot shape images as: pass --image-aspect-ratio pad or "
                          "square to export it anyway (its images will be shaped otherwise)")
  return checkpoint.LLAVA_ASPECT[image_aspect]


def original_config(cfg: LlavaConfig, vision_tower: str,
                    image_aspect_ratio: str | None = None) -> dict[str, Any]:
  """config.json of LLaVA's LlavaLlamaForCausalLM / LlavaMistralForCausalLM: the language
  model's fields at the top level, and the mm_* fields `LlavaMetaModel` builds the tower and
  projector from, as LLaVA-1.5's released configs hold them. Our model takes image features in
  place of the -200 id and knows no <im_patch>/<im_start> tokens, so both mm_use_im_* are false
  (LLaVA's loader would otherwise add those tokens and resize the embeddings). The source's other
  LLaVA fields are carried (`LlavaConfig.hf_fields`). image_aspect_ratio (how LLaVA shapes the
  images it feeds, which the weights do not say): the one given, else the source's, else 'pad'
  (LLaVA-1.5's padded squares, data.image_aspect's default)."""
  if not cfg.projector_bias:
    raise CheckpointError("the projector has no bias; the original LLaVA's projector layers "
                          "(nn.Linear) always have one, so it cannot load this model")
  if image_aspect_ratio is not None and image_aspect_ratio not in IMAGE_ASPECT_RATIOS:
    raise CheckpointError(f"image_aspect_ratio={image_aspect_ratio!r} (--image-aspect-ratio) is "
                          f"not one of {', '.join(IMAGE_ASPECT_RATIOS)}: 'pad' for images padded "
                          "to a square (data.image_aspect pad), 'square' for CLIP's resize and "
                          "centre crop (crop)")
  mistral = cfg.text.model_type == "mistral"
  out = with_hf_fields(cfg.text.to_hf(), cfg.hf_fields)
  out.setdefault("image_aspect_ratio", "pad")
  if image_aspect_ratio is not None:
    out["image_aspect_ratio"] = image_aspect_ratio
  return dict(out, model_type="llava_mistral" if mistral else "llava_llama",
              architectures=["LlavaMistralForCausalLM" if mistral else "LlavaLlamaForCausalLM"],
              mm_vision_tower=vision_tower, mm_hidden_size=cfg.vision.hidden_size,
              mm_projector_type=cfg.projector, mm_vision_select_layer=cfg.vision_feature_layer,
              mm_vision_select_feature=cfg.vision_feature_select, mm_patch_merge_type="flat",
              mm_use_im_start_end=False, mm_use_im_patch_token=False,
              use_mm_proj=True, tune_mm_mlp_adapter=False, freeze_mm_mlp_adapter=False,
              unfreeze_mm_vision_tower=False)


def _param_dtype_name(cfg) -> str:
  for sub in ("text", "vision"):
    if hasattr(cfg, sub):
      return getattr(cfg, sub).param_dtype
  return cfg.param_dtype
