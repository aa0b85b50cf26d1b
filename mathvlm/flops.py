"""Analytic FLOPs per training step, for TFLOP/s and MFU: the matmuls the models run, by hand.

Weights. A matmul weight used on t tokens costs 2t FLOPs forward, 2t more backward for the
gradient of its input when a gradient must reach that input (something earlier in the model
trains), and 2t more for its own gradient when it trains: 6t trained, 4t frozen with gradients
passing through (a LoRA-adapted base weight, a frozen language model under a trained projector),
2t frozen with nothing trainable earlier (a frozen vision tower runs forward only). The patch
embedding's input is pixels, so it never costs the 2t of an input gradient. A LoRA adapter
adds two trained weights, A [in, r] and B [r, out], on the adapted layer's tokens: 6t per adapter
parameter (A's input gradient only where the layer's own input needs one). The rank is in no
model config, so flops functions get every trainable parameter's size, not only its path.

Attention. QK^T and AV over t tokens of width d (heads x head_dim) cost 2t²d each forward, the
whole square for bidirectional and causal attention alike: the language model's and CLIP text's
causal masks are a select on dense scores (`layers.attention`; XLA and cuDNN get an explicit
mask), so every score is computed. MaxText, Megatron and NeMo halve causal attention; that would
leave out work that runs here. Both operands are activations, so whenever a gradient passes
through, the backward costs twice the forward (dQ, dK, dV, dP), trained weights or not.

Rematerialisation is not counted, as usual for MFU: the forward that `model.remat` recomputes in
the backward, and the QK^T that `layers._attend`'s backward recomputes.

A tower's blocks are one scanned body (`layers.scan_layers`), so when a gradient passes anywhere
in it, every block computes its input gradient, the first included: trainability is read per
stack, and per weight for its own gradient. Only the blocks that run are counted (LLaVA's
feature layer -2 skips the vision tower's last block).

Not counted: embedding lookups, norms, biases, softmax and other elementwise work; heads that
read one pooled token per example (CLIP's projections and similarity matrix, the classifier's).
The output projection is counted on every position, as the model defines it, though the lm loss
projects only target rows (`models.linear_ce`): a data-dependent saving that shows as higher MFU.
"""

from __future__ import annotations

import math
from typing import Mapping

from mathvlm.models.projector import projector_depth

Trainable = Mapping[str, int]  # trainable parameter path -> its number of elements


def _trains(trainable: Trainable, prefix: str) -> bool:
  return any(p.startswith(prefix) for p in trainable)


def _dense(trainable: Trainable, path: str, tokens: int, din: int, dout: int, grad_in: bool,
           run: int = 1, depth: int = 1, kernel: str = "kernel") -> float:
  """A Dense kernel [din, dout] on `tokens`, in `run` of its `depth` stacked layers, and its
  LoRA adapter when one trains (rank from A's size). grad_in: a gradient must reach the layer's
  input (something earlier trains)."""
  own = 2 * tokens * run * din * dout * (1 + grad_in + (f"{path}/{kernel}" in trainable))
  rank = trainable.get(f"{path}/lora/lora_a", 0) // (depth * din)
  return own + tokens * run * rank * (din * (4 + 2 * grad_in) + 6 * dout)


def _attention(macs: float, grad: bool) -> float:
  """QK^T and AV of `macs` multiply-adds forward; x3 when a gradient passes through."""
  return 2 * macs * (1 + 2 * grad)


def _clip_blocks(cfg, trainable: Trainable, prefix: str, seqs: int, seq: int, run: int,
                 grad: bool) -> float:
  """`run` pre-LN CLIP blocks (vision or text) on `seqs` sequences of `seq` tokens."""
  d, f, tokens = cfg.hidden_size, cfg.intermediate_size, seqs * seq
  grad = grad or _trains(trainable, prefix)
  dense = lambda name, din, dout: _dense(trainable, prefix + name, tokens, din, dout, grad, run,
                                         cfg.num_layers)
  attn = sum(dense(f"self_attn/{x}_proj", d, d) for x in ("q", "k", "v", "out"))
  return (attn + dense("mlp/fc1", d, f) + dense("mlp/fc2", f, d)
          + _attention(seqs * run * 2 * seq * seq * d, grad))


def _clip_vision(cfg, trainable: Trainable, prefix: str, images: int, blocks: int) -> float:
  """The patch embedding (on the patches; the CLS token is no patch) and the blocks that run,
  on num_patches + 1 tokens an image."""
  n, grad = cfg.num_patches, _trains(trainable, prefix)
  patch = _dense(trainable, prefix + "patch_embedding", images * n,
                 cfg.num_channels * cfg.patch_size ** 2, cfg.hidden_size, grad_in=False)
  return patch + _clip_blocks(cfg, trainable, prefix + "layers/", images, n + 1, blocks, grad)


def _projector(cfg, trainable: Trainable, images: int, grad: bool) -> tuple[float, bool]:
  """(FLOPs, whether a gradient reaches the language model's input)."""
  v, t, total = cfg.vision.hidden_size, cfg.text.hidden_size, 0.0
  for i in range(1, projector_depth(cfg.projector) + 1):
    path = f"multi_modal_projector/linear_{i}"
    total += _dense(trainable, path, images * cfg.image_seq_len, v if i == 1 else t, t, grad)
    grad = grad or _trains(trainable, path + "/")
  return total, grad


def _llama(cfg, trainable: Trainable, prefix: str, rows: int, seq: int, grad: bool) -> float:
  """The decoder stack and the output projection on rows x seq tokens."""
  d, f, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
  tokens, q, kv = rows * seq, cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
  grad = grad or any(_trains(trainable, prefix + part) for part in ("embed_tokens/", "layers/"))
  dense = lambda name, din, dout: _dense(trainable, f"{prefix}layers/{name}", tokens, din, dout,
                                         grad, n, n)
  blocks = (dense("self_attn/q_proj", d, q) + dense("self_attn/k_proj", d, kv)
            + dense("self_attn/v_proj", d, kv) + dense("self_attn/o_proj", q, d)
            + dense("mlp/gate_proj", d, f) + dense("mlp/up_proj", d, f)
            + dense("mlp/down_proj", f, d) + _attention(rows * n * 2 * seq * seq * q, grad))
  grad = grad or _trains(trainable, prefix + "norm/")
  tied = cfg.tie_word_embeddings
  head, kernel = ("embed_tokens", "embedding") if tied else ("lm_head", "kernel")
  return blocks + _dense(trainable, prefix + head, tokens, d, cfg.vocab_size, grad, kernel=kernel)


def _feature_layers(cfg) -> int:
  """Vision blocks LLaVA runs: up to its feature layer (HF hidden_states indexing)."""
  layer, n = cfg.vision_feature_layer, cfg.vision.num_layers
  return layer + n + 1 if layer < 0 else layer


def _language_model(cfg, trainable: Trainable, rows: int, seq: int, images: int) -> float:
  """Forward and backward of a LLaVA (vision tower, projector, language model) or a bare LM."""
  if not hasattr(cfg, "vision"):
    return _llama(cfg, trainable, "", rows, seq, grad=False)
  vision = _clip_vision(cfg.vision, trainable, "vision_tower/", images, _feature_layers(cfg))
  projector, grad = _projector(cfg, trainable, images, _trains(trainable, "vision_tower/"))
  return vision + projector + _llama(cfg.text, trainable, "language_model/", rows, seq, grad)


def lm_step(model_cfg, batch_shapes: dict, trainable: Trainable, *, pairs: bool = False,
            reference: bool = False) -> float:
  """One step of a (vision-)language objective over the global batch. pairs: the batch holds
  [pairs, 2, T] rows (DPO); reference: a frozen reference model (the whole model) also runs
  forward on every row. Images: pixel_values [images, H, W, C] or [rows, slots, H, W, C]."""
  ids = batch_shapes["input_ids"]
  rows, seq = (2 * ids[0], ids[2]) if pairs else ids[:2]
  pixels = batch_shapes.get("pixel_values")
  images = math.prod(pixels[:-3]) if pixels is not None else 0
  total = _language_model(model_cfg, trainable, rows, seq, images)
  return total + (_language_model(model_cfg, {}, rows, seq, images) if reference else 0.0)


def contrastive_step(model_cfg, batch_shapes: dict, trainable: Trainable) -> float:
  b, seq, text = batch_shapes["pixel_values"][0], batch_shapes["input_ids"][1], model_cfg.text
  vision = _clip_vision(model_cfg.vision, trainable, "vision_model/", b,
                        model_cfg.vision.num_layers)
  return vision + _clip_blocks(text, trainable, "text_model/layers/", b, seq, text.num_layers,
                               _trains(trainable, "text_model/"))


def classify_step(model_cfg, batch_shapes: dict, trainable: Trainable) -> float:
  vision = model_cfg.vision
  return _clip_vision(vision, trainable, "vision_tower/", batch_shapes["pixel_values"][0],
                      vision.num_layers)


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
