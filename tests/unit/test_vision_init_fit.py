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
