"""model.vision_init_from: the source tower's whole config must fit the preset's."""

import dataclasses

from mathvlm import pretrained
from mathvlm.models.vit import CLIPVisionConfig

TOWER = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                         image_size=28, patch_size=14)


def test_every_non_runtime_field_must_agree():
  """Image size, heads and pixel statistics load without a shape error but make another model."""
  other = dataclasses.replace(TOWER, image_size=56, num_heads=2, image_mean=(0.9, 0.9, 0.9))
  assert pretrained.config_differences(other, TOWER) == [
      ("image_mean", (0.9, 0.9, 0.9), TOWER.image_mean), ("image_size", 56, 28),
      ("num_heads", 2, 4)]


def test_runtime_fields_and_list_tuple_spelling_may_differ():
  other = dataclasses.replace(TOWER, dtype="bfloat16", remat="full", scan_unroll=2,
                              image_std=list(TOWER.image_std))
  assert pretrained.config_differences(other, TOWER) == []


def test_the_hugging_face_fields_a_config_only_carries_may_differ():
  """A Hugging Face tower's initializer_range or projection_dim (carried to its export, read by
  nothing here) does not keep it from starting a preset's tower."""
  other = dataclasses.replace(TOWER, hf_fields=(("initializer_range", "0.03"),
                                                ("projection_dim", "768")))
  assert pretrained.config_differences(other, TOWER) == []


def test_a_source_tower_lacking_a_weight_is_refused_naming_it(monkeypatch):
  """A source whose config fits but whose tower lacks a weight no config field decides (a norm's
  bias) or holds one in another shape: refused, naming the field, the path and the weights.
  Without the check nnx.update left the freed random weight in place, and the run failed at its
  first forward with JAX's "Array has been deleted", far from the cause."""
  import jax.numpy as jnp
  import pytest

  from mathvlm.models import registry
  tower = registry.get("clip_vision")  # a model that is all tower, as the run's and the source
  source = tower.build(TOWER, seed=7)
  source.post_layernorm.bias = None
  source.layers.self_attn.k_proj.bias.value = jnp.zeros((2, 16))
  monkeypatch.setattr(pretrained, "load_pretrained", lambda *a: source)
  model = tower.build(TOWER, seed=1)
  with pytest.raises(ValueError, match=r"model.vision_init_from='/ckpt/clip': its vision tower "
                     r"fits .* lacks 2 of the 23 weights .* \(e.g. layers/self_attn/k_proj/bias: "
                     r"\(2, 16\) there, \(2, 32\) here; post_layernorm/bias: missing\)"):
    pretrained.load_part(model, "vision_init_from", "/ckpt/clip", None, None)
