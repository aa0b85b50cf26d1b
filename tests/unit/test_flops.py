"""The analytic step FLOPs behind MFU count what runs: LLaVA's vision_feature_layer decides how
many vision blocks run (-2: all but the last, -1: all, k > 0: the first k), so how many count."""

import math

from flax import nnx

from mathvlm import flops
from mathvlm.models import registry
from mathvlm.models.layers import path_str
from mathvlm.models.llm import LlamaConfig
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import LlavaConfig

VISION = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_layers=4, num_heads=4,
                          image_size=28, patch_size=14)
TEXT = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=24, num_layers=2,
                   num_heads=4, num_kv_heads=2)


def every_parameter(cfg) -> dict[str, int]:
  """{path: size} of every parameter of the model (the trainer's names): all of it trains."""
  state = nnx.state(registry.get("llava").abstract(cfg), nnx.Param)
  return {path_str(p): math.prod(v.shape) for p, v in nnx.to_flat_state(state)}


def by_hand(rows: int, seq: int, vision_blocks: int) -> int:
  """Everything trains: 6 per weight and token, except the patch embedding's 4 (its input is
  pixels: no input gradient), on the 4 patches (CLS is no patch); QK^T and AV, 2 t² d each
  forward (t = 4 patches + CLS), x3 with the backward. Embeddings and norms are not counted."""
  t, d, f = 5, 32, 64
  patch = 4 * 4 * 3 * 14 * 14 * d
  block = 6 * t * (4 * d * d + 2 * d * f) + 3 * 2 * 2 * t * t * d
  projector = 6 * 4 * (32 * 16 + 16 * 16)               # 4 image tokens, mlp2x: 32->16->16
  text_w = 2 * (16 * 4 * (2 * 4 + 2 * 2) + 3 * 16 * 24) + 16 * 50  # 2 layers, head 4 x 4
  text_attention = 2 * 2 * 2 * seq * seq * 16            # 2 layers, QK^T and AV, width 16
  return (rows * (patch + vision_blocks * block + projector)
          + 6 * rows * seq * text_w + 3 * rows * text_attention)


def test_llava_step_flops_count_only_the_vision_blocks_that_run():
  shapes = {"input_ids": (3, 20), "pixel_values": (3, 28, 28, 3)}
  for layer, run in ((-2, 3), (-1, 4), (2, 2)):
    cfg = LlavaConfig(vision=VISION, text=TEXT, vision_feature_layer=layer)
    assert flops.lm_step(cfg, shapes, every_parameter(cfg)) == by_hand(3, 20, run), layer
  cfg = LlavaConfig(vision=VISION, text=TEXT)
  assert cfg.vision_feature_layer == -2
  assert flops.lm_step(cfg, shapes, every_parameter(cfg)) < by_hand(3, 20, 4)


def test_grpo_and_dpo_count_the_forwards_their_options_run():
  """GRPO: `passes` updates, the old policy's forward and, with beta > 0, the reference's; DPO:
  the reference's forward unless the data carries its log-probs. The options reach the count
  (`train_state.step_flops`); before, GRPO counted two forwards and one update whatever beta and
  passes were, and DPO a reference forward with reference='data' too."""
  from mathvlm import objectives
  cfg = LlavaConfig(vision=VISION, text=TEXT)
  shapes = {"input_ids": (4, 8), "pixel_values": (4, 28, 28, 3)}
  trainable = every_parameter(cfg)
  update, forward = flops.lm_step(cfg, shapes, trainable), flops.lm_step(cfg, shapes, {})
  assert update > 2 * forward > 0
  grpo = objectives.get("grpo")
  for beta, passes in ((0.04, 1), (0.0, 1), (0.04, 3), (0.0, 2)):
    opts = grpo.options({"grpo": {"beta": beta, "passes": passes}})
    want = passes * update + (2 if beta > 0 else 1) * forward
    assert math.isclose(grpo.flops(cfg, shapes, trainable, opts), want), (beta, passes)
  dpo = objectives.get("dpo")
  pairs = {"input_ids": (2, 2, 8), "pixel_values": (2, 2, 28, 28, 3)}
  init, data = (dpo.flops(cfg, pairs, trainable, dpo.options({"dpo": {"reference": r}}))
                for r in ("init", "data"))
  assert math.isclose(init - data, flops.lm_step(cfg, {"input_ids": (4, 8), "pixel_values": (
      4, 28, 28, 3)}, {}))
