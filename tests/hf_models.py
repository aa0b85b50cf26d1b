"""Tiny random Hugging Face models the tests build and save themselves (no hub downloads)."""

from __future__ import annotations

import os

import numpy as np
import torch
import transformers as tf

IMAGE = 28      # two 14-pixel patches a side: 4 patch tokens + CLS
PATCH = 14
VOCAB = 101
IMAGE_TOKEN = 100


def clip_vision_config(**kw) -> tf.CLIPVisionConfig:
  base = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
              image_size=IMAGE, patch_size=PATCH, projection_dim=24)
  return tf.CLIPVisionConfig(**(base | kw))


def llama_config(**kw) -> tf.LlamaConfig:
  base = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)
  return tf.LlamaConfig(**(base | kw))


def mistral_config(**kw) -> tf.MistralConfig:
  base = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=128,
              sliding_window=5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
  return tf.MistralConfig(**(base | kw))


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
  """Random init with larger norms/biases than HF's (ones/zeros) so every tensor matters."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "logit_scale" in name:
        continue
      scale = 0.5 if p.ndim == 1 else 0.08
      centre = 1.0 if p.ndim == 1 and ("norm" in name or "layrnorm" in name) else 0.0
      p.copy_(centre + scale * torch.randn(p.shape, generator=g))
  return model.eval()


def save(model, path: str) -> str:
  os.makedirs(path, exist_ok=True)
  model.save_pretrained(path)
  return path


def llava(seed: int = 0, text: tf.PretrainedConfig | None = None, **kw):
  cfg = tf.LlavaConfig(vision_config=clip_vision_config(), text_config=text or llama_config(),
                       image_token_id=IMAGE_TOKEN, **kw)
  torch.manual_seed(seed)
  return _randomise(tf.LlavaForConditionalGeneration(cfg), seed)


def llm(seed: int = 0, cfg=None):
  cfg = cfg or llama_config()
  torch.manual_seed(seed)
  cls = tf.MistralForCausalLM if cfg.model_type == "mistral" else tf.LlamaForCausalLM
  return _randomise(cls(cfg), seed)


def clip(seed: int = 0, **text_kw):
  text = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=16, bos_token_id=1, pad_token_id=0,
              eos_token_id=99) | text_kw
  cfg = tf.CLIPConfig(text_config=text, vision_config=clip_vision_config().to_dict(),
                      projection_dim=24)
  torch.manual_seed(seed)
  return _randomise(tf.CLIPModel(cfg), seed)


def pixels(n: int, seed: int = 0) -> np.ndarray:
  """Normalised images, channels last."""
  return np.random.RandomState(seed).randn(n, IMAGE, IMAGE, 3).astype(np.float32)


def to_torch_pixels(x: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def llava_prompt(batch: int, length: int, n_image_tokens: int, seed: int = 0,
                 pad_left: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
  """Token ids with one image (n_image_tokens ids) per row after a BOS, left padded by pad_left."""
  rs = np.random.RandomState(seed)
  ids = rs.randint(3, IMAGE_TOKEN, (batch, length))
  mask = np.ones((batch, length), np.int64)
  for b in range(batch):
    pad = pad_left[b] if b < len(pad_left) else 0
    ids[b, :pad] = 0
    mask[b, :pad] = 0
    ids[b, pad] = 1
    ids[b, pad + 1: pad + 1 + n_image_tokens] = IMAGE_TOKEN
  return ids, mask


def rel_err(ours, ref, where=None) -> float:
  """Max abs difference relative to the reference's scale (max |ref|)."""
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  if where is not None:
    ours, ref = ours[where], ref[where]
  return float(np.abs(ours - ref).max() / np.abs(ref).max())
