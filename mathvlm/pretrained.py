"""The model a run starts from: the preset's architecture, or a trained one read from a model
checkpoint (`mathvlm.checkpoint.save_model`), an earlier run's workdir (its exported `model/`) or a
Hugging Face folder (`mathvlm.hf`). The family comes from the objective; everything about it comes
from `mathvlm.models.registry`.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import jax
from flax import nnx

from mathvlm import checkpoint, hf, objectives, paths
from mathvlm.checkpoint import model_dir
from mathvlm.models import registry


log = logging.getLogger("mathvlm.train")

# What a run takes from another model's folder -> which of that model's recorded inputs
# (checkpoint.INPUT_FIELDS) the run should feed alike: a vision tower was trained on images shaped
# one way, a language model on one chat format.
STARTS = {"init_from": checkpoint.INPUT_FIELDS, "vision_init_from": ("image_aspect",),
          "language_init_from": ("template",)}

# What `load_part` replaces: the part's weights, not the LoRA adapters a run adds to them.
PART_WEIGHTS = nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))


def runtime(config) -> dict[str, str]:
  """The settings a run chooses whatever the architecture: dtypes, rematerialisation, the scan's
  unrolling and the attention kernel."""
  return dict(dtype=config.model.dtype, param_dtype=config.model.param_dtype,
              remat=config.model.remat, scan_unroll=config.model.scan_unroll,
              attention_impl=config.model.attention_impl or None)


def model_config(config):
  """The preset's architecture, or, with model.init_from, the checkpoint's (the preset is then
  only a name); dtypes and remat always come from the config. It must be of the family the
  objective trains."""
  family = registry.get(objectives.get(config.objective).family)
  warn_fed_otherwise(config)
  if config.model.init_from:
    cfg = pretrained_config(config.model.init_from, config)
  else:
    cfg = family.preset(config.model.preset, config, **runtime(config))
  if type(cfg) is not family.config_cls:
    raise ValueError(f"model.init_from={config.model.init_from!r} holds a "
                     f"{type(cfg).__name__}, but objective {config.objective!r} trains a "
                     f"{family.name} model ({family.config_cls.__name__})")
  return cfg


def warn_fed_otherwise(config) -> list[str]:
  """Warnings (logged, and returned for tests) where a model the run starts from records inputs
  made otherwise than `config.data` makes them: a tower trained on cropped images fine-tuned on
  padded ones still trains, a little worse, and nothing else would say so. A `plain` template (a
  captioning stage's: the image, then the caption) is what LLaVA's and MAVIS's next stage
  replaces with a chat format, so it is not named."""
  warnings = []
  for field, names in STARTS.items():
    path = config.model[field]
    if not path:
      continue
    recorded = checkpoint.recorded_inputs(path)
    for name in names:
      kept, given = recorded.get(name), config.data.get(name)
      if kept is None or given is None or kept == given or (name, kept) == ("template", "plain"):
        continue
      warnings.append(f"model.{field}={path} was trained with data.{name}={kept}; this run "
                      f"feeds it data.{name}={given} (set data.{name}={kept} to feed it alike)")
      log.warning(warnings[-1])
  return warnings


def pretrained_config(path: str, config):
  path = model_dir(path)
  if checkpoint.is_model_dir(path):
    return checkpoint.read_model_config(path, **runtime(config))[1]
  folder = paths.absolute(path)
  if not folder.exists():  # else hf.read_config's "a Hugging Face folder needs its config.json"
    raise checkpoint.CheckpointError(
        f"{path}: no such folder. A pretrained model is a trainer workdir (its model/), a "
        "mathvlm checkpoint or a Hugging Face folder: check the path, or run the stage that "
        "writes it first")
  in_workdir = folder.name == "model" and folder.parent.joinpath("run_config.json").exists()
  if in_workdir or (folder.is_dir() and any(p.name.startswith("params") for p in folder.iterdir())):
    raise checkpoint.CheckpointError(
        f"{path} has no config.json (written last): an export that did not finish (the run "
        "was stopped while writing its final model). Rerun that training command: it resumes "
        "from its last checkpoint and exports again")
  meta = hf.read_config(os.path.join(path, "config.json"))
  layout = hf.detect_layout(meta)
  clip_dir = config.model.clip_dir
  if layout == "llava_original":  # the tower load_hf will read: the checkpoint's own or a CLIP's
    tower = hf.original_tower(path, meta, clip_dir or None)
    return hf.folder_config(path, layout, meta, tower.clip_hf, tower.stats_dir,
                            **runtime(config))
  clip = hf.read_config(os.path.join(clip_dir, "config.json")) if clip_dir else None
  return hf.folder_config(path, layout, meta, clip, path, **runtime(config))


def load_pretrained(path: str, config, sharding_fn) -> nnx.Module:
  """A model from a trainer workdir (its exported `model/`), a mathvlm checkpoint or an HF folder."""
  path = model_dir(path)
  if checkpoint.is_model_dir(path):
    return checkpoint.load_model(path, sharding=sharding_fn, **runtime(config))[0]
  return hf.load_hf(path, config.model.param_dtype, compute_dtype=config.model.dtype,
                    clip_dir=config.model.clip_dir or None, sharding=sharding_fn,
                    remat=config.model.remat)[0]


def load_part(model, field: str, path: str, config, sharding_fn) -> None:
  """One part of the model from any model that has it: the vision tower from a CLIP-Math stage's
  CLIP, a CLIP vision model or a LLaVA (`model.vision_init_from`); the language model from a
  Hugging Face LLM folder (MAVIS's MAmmoTH2, LLaVA's Vicuna), an LLM checkpoint or a LLaVA
  (`model.language_init_from`). The families say where each keeps it; the rest of the model
  (the projector, the other part, LoRA adapters) stays as the run built it. The part's weights
  are freed before the source is read, so a device never holds them twice."""
  attr, words = registry.INIT_PARTS[field]
  dst = getattr(registry.of_model(model), attr)(model)
  needed = weight_shapes(dst)
  for weight in jax.tree.leaves(nnx.state(dst, PART_WEIGHTS)):
    weight.delete()
  source = load_pretrained(path, config, sharding_fn)
  get = getattr(registry.of_model(source), attr)
  if get is None:
    raise ValueError(f"model.{field}={path!r} holds a {type(source).__name__}, which has no "
                     f"{words}")
  src = get(source)
  differ = config_differences(src.cfg, dst.cfg)
  if differ:
    raise ValueError(f"model.{field}={path!r}: its {words} does not fit the preset's ("
                     + "; ".join(f"{k}: {a!r} there, {b!r} here" for k, a, b in differ)
                     + "); choose a preset with that architecture or a checkpoint trained with "
                     "this one")
  unfit = shape_differences(weight_shapes(src), needed)
  if unfit:  # else nnx.update leaves them freed: "Array has been deleted" at the first step
    raise ValueError(f"model.{field}={path!r}: its {words} fits the preset's config but lacks "
                     f"{len(unfit)} of the {len(needed)} weights the preset's has or holds them "
                     "in other shapes (e.g. " + "; ".join(unfit[:5]) + "): weights no config "
                     "field decides, such as a bias or a norm. Start this part from a model "
                     "with these weights: a Hugging Face folder of this architecture or a "
                     "checkpoint this version of mathvlm wrote")
  nnx.update(dst, nnx.state(src, PART_WEIGHTS))


def weight_shapes(part) -> dict[str, tuple[int, ...]]:
  """What `load_part` replaces in a part (its weights, adapters aside), by path and shape."""
  from mathvlm.models.layers import path_str
  return {path_str(p): tuple(v.shape) for p, v in nnx.to_flat_state(nnx.state(part, PART_WEIGHTS))}


def shape_differences(have: dict, need: dict) -> list[str]:
  """The needed weights a source lacks or holds in another shape, one line each."""
  return [f"{k}: missing" if k not in have else f"{k}: {have[k]} there, {need[k]} here"
          for k in sorted(need) if have.get(k) != need[k]]


def config_differences(src, dst) -> list[tuple[str, object, object]]:
  """(field, source value, preset value) for every config field that differs, runtime choices
  (dtype, remat...) aside: an image size, a rope theta or pixel normalisation loads without a
  shape error yet makes another model, so all of them must agree, not only the shapes."""
  from mathvlm.models import layers
  a, b = _deciding(src), _deciding(dst)
  return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
          if k not in layers.RUNTIME_FIELDS and _plain(a.get(k)) != _plain(b.get(k))]


def _deciding(cfg) -> dict:
  """A config's fields as they decide the model: a derived default is compared by the value it
  derives (a head_dim_override of None is the width over the heads, which a Hugging Face config
  read back states outright). The Hugging Face fields a config only carries to its export
  (`hf_fields`: initializer_range, a CLIP's text pad id...) decide nothing."""
  fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "hf_fields"}
  if "head_dim_override" in fields:
    fields["head_dim_override"] = cfg.head_dim
  return fields


def _plain(value):
  """Tuples and lists compare alike (a config read back from JSON holds lists)."""
  return list(value) if isinstance(value, (tuple, list)) else value
