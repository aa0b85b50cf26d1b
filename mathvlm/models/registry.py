"""The one registry of model families: what the trainer, the converter, the demo and the tests ask
when they need a model's config class, its module class, its presets, its Hugging Face layouts or
its vision tower. Adding a family is one `register(Family(...))`; nothing else names it.

A family's checkpoints (`mathvlm.checkpoint.save_model`) record the family's name, so loading one
needs nothing but this table; its Hugging Face layouts (`hf_layouts`, read; `hf_export`, written)
are names of the rule sets in `mathvlm/hf.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from flax import nnx

from mathvlm.models import presets as P
from mathvlm.models.classifier import ClassifierConfig, ImageClassifier
from mathvlm.models.clip_text import CLIP, CLIPConfig
from mathvlm.models.layers import with_runtime
from mathvlm.models.llm import LlamaConfig, LlamaForCausalLM
from mathvlm.models.vit import CLIPVisionConfig, CLIPVisionTransformer
from mathvlm.models.vlm import Llava, LlavaConfig
from mathvlm.registry import Registry


@dataclasses.dataclass(frozen=True)
class Family:
  """One kind of model.

  presets: name -> config (for `from_preset` families, the part of the config a preset fixes).
  from_preset: (preset config, the run's config) -> model config, for families whose config also
    depends on the data (a classifier's number of classes); default: the preset itself.
  vision_tower: model -> its CLIP vision tower (for `model.vision_init_from` and CLIP-Math).
  language_model: model -> its causal language model (for `model.language_init_from`).
  """
  name: str
  config_cls: type
  model_cls: type
  presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  hf_layouts: tuple[str, ...] = ()
  hf_export: str | None = None
  vision_tower: Callable[[nnx.Module], nnx.Module] | None = None
  language_model: Callable[[nnx.Module], nnx.Module] | None = None
  from_preset: Callable[[Any, Any], Any] | None = None

  def build(self, cfg, seed: int = 0) -> nnx.Module:
    return self.model_cls(cfg, rngs=nnx.Rngs(seed))

  def abstract(self, cfg) -> nnx.Module:
    """The model's structure with shapes and shardings, no weights allocated."""
    return nnx.eval_shape(lambda: self.build(cfg))

  def preset(self, name: str, run_config=None, **runtime):
    """The named preset as a model config, with runtime overrides (dtype, param_dtype, remat,
    attention_impl) applied to every tower."""
    if name not in self.presets:
      raise ValueError(f"unknown {self.name} model preset {name!r}; choose one of "
                       f"{sorted(self.presets)}")
    cfg = with_runtime(self.presets[name], **runtime)
    return self.from_preset(cfg, run_config) if self.from_preset else cfg


FAMILIES = Registry("model family")

# The config fields that put one part of another model into a run's model (mathvlm.pretrained):
# field -> (the family's accessor for that part, its name in messages).
INIT_PARTS = {"vision_init_from": ("vision_tower", "vision tower"),
              "language_init_from": ("language_model", "language model")}


def register(family: Family) -> Family:
  return FAMILIES.register(family.name, family)


def registered(family: Family):
  """`register` for the length of a block (tests, experiments)."""
  return FAMILIES.registered(family.name, family)


def get(name: str) -> Family:
  return FAMILIES.get(name)


def of_config(cfg) -> Family:
  for f in FAMILIES.values():
    if type(cfg) is f.config_cls:
      return f
  raise ValueError(f"no registered model family has config class {type(cfg).__name__}")


def of_model(model) -> Family:
  for f in FAMILIES.values():
    if type(model) is f.model_cls:
      return f
  raise ValueError(f"no registered model family has model class {type(model).__name__}")


def of_hf_layout(layout: str) -> Family:
  for f in FAMILIES.values():
    if layout in f.hf_layouts:
      return f
  raise ValueError(f"no registered model family reads the Hugging Face layout {layout!r}")


def _classifier(vision: CLIPVisionConfig, run_config) -> ClassifierConfig:
  return ClassifierConfig(vision=vision, num_classes=run_config.data.num_classes)


register(Family("llava", LlavaConfig, Llava, P.LLAVA_PRESETS, hf_layouts=("llava", "llava_original"),
                hf_export="llava", vision_tower=lambda m: m.vision_tower,
                language_model=lambda m: m.language_model))
register(Family("clip", CLIPConfig, CLIP, P.CLIP_PRESETS, hf_layouts=("clip",), hf_export="clip",
                vision_tower=lambda m: m.vision_model))
register(Family("classifier", ClassifierConfig, ImageClassifier, P.CLASSIFIER_PRESETS,
                vision_tower=lambda m: m.vision_tower, from_preset=_classifier))
register(Family("llm", LlamaConfig, LlamaForCausalLM, hf_layouts=("llm",), hf_export="llm",
                language_model=lambda m: m))
register(Family("clip_vision", CLIPVisionConfig, CLIPVisionTransformer,
                hf_layouts=("clip_vision",), hf_export="clip_vision", vision_tower=lambda m: m))
