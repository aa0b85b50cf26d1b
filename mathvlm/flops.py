"""Analytic FLOPs per training step, for TFLOP/s and MFU (MaxText's convention).

A matmul weight used on t tokens costs 2t FLOPs forward. Backward costs 4t more when the weight
trains (activation and weight gradients), 2t when it is frozen but gradients pass through it to
something trainable upstream (activation gradients only), and nothing when nothing upstream trains:
frozen towers are counted forward-only. Attention scores and sums are counted the same way.
Embedding lookups, norms and elementwise work are not counted.
"""

from __future__ import annotations

import re


def _vit(cfg, layers: int | None = None) -> tuple[float, float]:
  """(matmul params, attention FLOPs per token / 2) of a CLIP vision tower for one image, over
  the `layers` blocks that run (default all; LLaVA's feature layer -2 skips the last)."""
  d, f = cfg.hidden_size, cfg.intermediate_size
  l = cfg.num_layers if layers is None else layers
  tokens = cfg.num_patches + 1
  weights = l * (4 * d * d + 2 * d * f) + cfg.num_channels * cfg.patch_size ** 2 * d
  return weights, l * 2 * tokens * d


def _llm(cfg, seq: int) -> tuple[float, float]:
  d, h = cfg.hidden_size, cfg.head_dim
  attn_w = d * h * (2 * cfg.num_heads + 2 * cfg.num_kv_heads)
  weights = cfg.num_layers * (attn_w + 3 * d * cfg.intermediate_size) + d * cfg.vocab_size
  return weights, cfg.num_layers * 2 * seq * cfg.num_heads * h


def _feature_layers(cfg) -> int:
  """Vision blocks LLaVA runs: up to its feature layer (HF hidden_states indexing)."""
  layer, n = cfg.vision_feature_layer, cfg.vision.num_layers
  return layer + n + 1 if layer < 0 else layer


def _factor(trains: bool, upstream_trains: bool) -> int:
  return 6 if trains else (4 if upstream_trains else 2)


def _trains(trainable: list[str], prefix: str) -> bool:
  return any(re.match(prefix, p) for p in trainable)


def lm_step(model_cfg, batch_shapes: dict, trainable: list[str], *, pairs: bool = False,
            reference: bool = False) -> float:
  """One step of a (vision-)language objective over the global batch. pairs: the batch holds
  [pairs, 2, T] rows (DPO); reference: a frozen reference model also runs forward on every row."""
  rows, seq = batch_shapes["input_ids"][:2]
  if pairs:
    rows, seq = rows * 2, batch_shapes["input_ids"][2]
  images = rows if "pixel_values" in batch_shapes else 0
  text = getattr(model_cfg, "text", model_cfg)
  w_llm, a_llm = _llm(text, seq)
  total = 0.0
  v_tr = p_tr = False
  if hasattr(model_cfg, "vision"):
    w_v, a_v = _vit(model_cfg.vision, _feature_layers(model_cfg))
    v_tr = _trains(trainable, "vision_tower/")
    p_tr = _trains(trainable, "multi_modal_projector/")
    tokens_v = images * (model_cfg.vision.num_patches + 1)
    total += _factor(v_tr, False) * tokens_v * (w_v + a_v)
    w_p = model_cfg.vision.hidden_size * text.hidden_size + (
        text.hidden_size ** 2 if model_cfg.projector != "linear" else 0)
    total += _factor(p_tr, v_tr) * images * model_cfg.image_seq_len * w_p
  l_tr = (_trains(trainable, "language_model/")
          or (not hasattr(model_cfg, "vision") and bool(trainable)))
  total += _factor(l_tr, v_tr or p_tr) * rows * seq * (w_llm + a_llm)
  if reference:  # the frozen reference forward on the same rows
    total += 2 * rows * seq * (w_llm + a_llm)
  return total


def contrastive_step(model_cfg, batch_shapes: dict, trainable: list[str]) -> float:
  b = batch_shapes["pixel_values"][0]
  seq = batch_shapes["input_ids"][1]
  w_v, a_v = _vit(model_cfg.vision)
  t = model_cfg.text
  w_t = t.num_layers * (4 * t.hidden_size ** 2 + 2 * t.hidden_size * t.intermediate_size)
  a_t = t.num_layers * 2 * seq * t.hidden_size
  return (_factor(_trains(trainable, "vision_model/"), False) * b
          * (model_cfg.vision.num_patches + 1) * (w_v + a_v)
          + _factor(_trains(trainable, "text_model/"), False) * b * seq * (w_t + a_t))


def classify_step(model_cfg, batch_shapes: dict, trainable: list[str]) -> float:
  b = batch_shapes["pixel_values"][0]
  w_v, a_v = _vit(model_cfg.vision)
  return _factor(_trains(trainable, "vision_tower/"), False) * b * (
      model_cfg.vision.num_patches + 1) * (w_v + a_v)


# bf16 dense peak per device (FLOP/s), by jax device_kind substring; CPU: ENV.md's measured peak.
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "TPU v5p": 459e12,
              "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v4": 275e12, "TPU v6": 918e12}
CPU_PEAK = {"float32": 420e9, "bfloat16": 785e9}


def peak_flops(device, compute_dtype: str, configured: float = 0.0) -> float:
  if configured:
    return configured
  if device.platform == "cpu":
    return CPU_PEAK.get(compute_dtype, CPU_PEAK["float32"])
  for key, value in PEAK_FLOPS.items():
    if key in device.device_kind:
      return value
  return 0.0  # unknown accelerator: MFU is not reported; set metrics.peak_flops
