"""The analytic step FLOPs behind MFU count what runs: LLaVA's feature layer -2 skips the vision
tower's last block, so it is not counted."""

import dataclasses

from mathvlm import flops
from mathvlm.models.llm import LlamaConfig
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import LlavaConfig

VISION = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_layers=4, num_heads=4,
                          image_size=28, patch_size=14)
TEXT = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=24, num_layers=2,
                   num_heads=4, num_kv_heads=2)


def _by_hand(cfg, rows, seq, vision_layers):
  """6 x tokens x (weights + attention), every part trained; embeddings and norms not counted."""
  v, t = cfg.vision, cfg.text
  tokens_v = rows * (v.num_patches + 1)
  w_v = vision_layers * (4 * 32 * 32 + 2 * 32 * 64) + 3 * 14 * 14 * 32
  a_v = vision_layers * 2 * (v.num_patches + 1) * 32
  w_p = 32 * 16 + 16 * 16
  w_t = 2 * (16 * 4 * (2 * 4 + 2 * 2) + 3 * 16 * 24) + 16 * 50
  a_t = 2 * 2 * seq * 4 * 4
  return 6 * (tokens_v * (w_v + a_v) + rows * cfg.image_seq_len * w_p + rows * seq * (w_t + a_t))


def test_llava_step_flops_count_only_the_vision_blocks_that_run():
  trainable = ["vision_tower/x", "multi_modal_projector/x", "language_model/x"]
  shapes = {"input_ids": (3, 20), "pixel_values": (3, 28, 28, 3)}
  for layer, run in ((-2, 3), (-1, 4), (2, 2)):
    cfg = LlavaConfig(vision=VISION, text=TEXT, vision_feature_layer=layer)
    assert flops.step_flops("lm", cfg, shapes, trainable) == _by_hand(cfg, 3, 20, run)
  cfg = dataclasses.replace(LlavaConfig(vision=VISION, text=TEXT), vision_feature_layer=-2)
  assert flops.step_flops("lm", cfg, shapes, trainable) < _by_hand(cfg, 3, 20, 4)
