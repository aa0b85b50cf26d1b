"""The benchmark presets, built once as transformers models and converted, so both sides of every
comparison hold the same weights and see the same batch.

`small` is issue 16's configuration: CLIP ViT 224/14 (width 384, 6 layers) -> mlp2x_gelu ->
Llama (width 512, 8 layers, GQA 8/4, vocab 32000); 256 image + 256 text tokens; batch 4. `tiny`
is the trainer's tiny preset at a size the unit tests use, for a quick run.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import tempfile
import time
from typing import Callable

import numpy as np

# This machine's measured matmul peaks (../shared/docs/ENV.md), GFLOP/s.
CPU_PEAK_GFLOPS = {"jax_float32": 420.0, "jax_bfloat16": 785.0, "torch_float32": 180.0,
                   "torch_bfloat16": 860.0}


@dataclasses.dataclass(frozen=True)
class Preset:
  vision: dict
  text: dict
  batch: int
  text_tokens: int      # tokens after the image, BOS included
  image_token_id: int

  @property
  def image_tokens(self) -> int:
    return (self.vision["image_size"] // self.vision["patch_size"]) ** 2

  @property
  def seq(self) -> int:
    return self.image_tokens + self.text_tokens


PRESETS = {
    "small": Preset(
        vision=dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                    num_attention_heads=6, image_size=224, patch_size=14),
        text=dict(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                  num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=2048),
        batch=4, text_tokens=256, image_token_id=31999),
    "tiny": Preset(
        vision=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                    num_attention_heads=4, image_size=56, patch_size=14),
        text=dict(vocab_size=1024, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
        batch=8, text_tokens=48, image_token_id=3),
}


def hf_config(preset: Preset, **text_overrides):
  """transformers' LlavaConfig of the preset."""
  import transformers as tf
  vision = tf.CLIPVisionConfig(**preset.vision, projection_dim=preset.vision["hidden_size"])
  text = tf.LlamaConfig(**(preset.text | text_overrides), bos_token_id=1, eos_token_id=2,
                        pad_token_id=0, rms_norm_eps=1e-5)
  return tf.LlavaConfig(vision_config=vision, text_config=text,
                        image_token_id=preset.image_token_id, vision_feature_layer=-2,
                        vision_feature_select_strategy="default")


def ours_config(preset: Preset, dtype: str = "float32", **text_overrides):
  """Our LlavaConfig of the preset (no weights built)."""
  from mathvlm.models.vlm import LlavaConfig
  return LlavaConfig.from_hf(hf_config(preset, **text_overrides).to_dict(), dtype=dtype,
                             param_dtype="float32")


def hf_llava(preset: Preset, seed: int = 0):
  """A transformers LLaVA with the preset's shapes; weights spread wider than HF's init (unit norms,
  std 0.02) so greedy decoding is not a coin toss between near-tied logits."""
  import torch
  import transformers as tf
  torch.manual_seed(seed)
  model = tf.LlavaForConditionalGeneration(hf_config(preset))
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.03 * torch.randn(p.shape))
  return model


def ours_from_hf(ref, dtype: str, remat: str = "none", scan_unroll: int = 1,
                 param_dtype: str = "float32"):
  """Our Llava with the reference's weights (`param_dtype` storage, `dtype` compute)."""
  from mathvlm import hf
  with tempfile.TemporaryDirectory() as d:
    ref.save_pretrained(d)
    model, cfg = hf.load_hf(d, param_dtype, compute_dtype=dtype, remat=remat,
                            scan_unroll=scan_unroll)
  return model, cfg


def batch(preset: Preset, seed: int = 0) -> dict[str, np.ndarray]:
  """[BOS, image tokens, text...]: every text token after the image is a target (a caption, as in
  LLaVA's alignment stage); pixel values normalised, channels last."""
  rs = np.random.RandomState(seed)
  b, t = preset.batch, preset.seq
  ids = rs.randint(10, preset.text["vocab_size"] - 1, (b, t)).astype(np.int32)  # no image id
  ids[:, 0] = 1
  ids[:, 1:1 + preset.image_tokens] = preset.image_token_id
  loss_mask = np.zeros((b, t), np.int32)
  loss_mask[:, 1 + preset.image_tokens:] = 1
  size = preset.vision["image_size"]
  return dict(input_ids=ids, attention_mask=np.ones((b, t), np.int32), loss_mask=loss_mask,
              pixel_values=rs.randn(b, size, size, 3).astype(np.float32))


def alternate(fns: dict[str, Callable[[], None]], repeats: int,
              warm: bool = True, usage: dict | None = None) -> dict[str, float]:
  """Median seconds of each function, run in turns (a, b, a, b, ...) after one warm-up each
  (warm=False: the caller has run them), so a burst of load from other processes hits both
  sides alike. `usage`, if given, receives each function's median page faults and system CPU
  seconds per call (`getrusage`: the kernel's share, which threads of the other side do not
  add to while this one runs)."""
  for fn in fns.values() if warm else ():
    fn()
  times: dict[str, list[float]] = {k: [] for k in fns}
  faults: dict[str, list[int]] = {k: [] for k in fns}
  system: dict[str, list[float]] = {k: [] for k in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      before = resource.getrusage(resource.RUSAGE_SELF)
      t = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t)
      after = resource.getrusage(resource.RUSAGE_SELF)
      faults[name].append(after.ru_minflt - before.ru_minflt)
      system[name].append(after.ru_stime - before.ru_stime)
  if usage is not None:
    usage.update({k: {"page_faults": int(statistics.median(faults[k])),
                      "system_cpu_s": round(statistics.median(system[k]), 3)} for k in fns})
  return {k: statistics.median(v) for k, v in times.items()}


def load() -> dict[str, float]:
  """The 1-minute load average and the core count, reported with every figure."""
  return {"loadavg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}


def peak_matmul(dtype: str, n: int = 2048) -> tuple[Callable[[], None], float]:
  """(run, FLOPs) of ENV.md's peak measurement: an n^3 jax matmul (bf16 inputs accumulate in
  float32), timed in the same turns as the steps so its rate reflects the same load."""
  import jax
  import jax.numpy as jnp
  dt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
  a = jnp.asarray(np.random.RandomState(0).randn(n, n), dt)
  f = jax.jit(lambda a: jnp.dot(a, a, preferred_element_type=jnp.float32))
  return (lambda: f(a).block_until_ready()), 2.0 * n ** 3
