"""LLaVA's image preprocessing as a pure function: pad (or not) to a square, bicubic resize, CLIP
normalisation, channels last. The Grain pipeline and the evaluation runners both call this."""

from __future__ import annotations

import numpy as np
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def expand_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
  """Centre the image on a square canvas of its longer side (LLaVA's `expand2square`)."""
  w, h = image.size
  if w == h:
    return image
  side = max(w, h)
  canvas = Image.new(image.mode, (side, side), fill)
  canvas.paste(image, ((side - w) // 2, (side - h) // 2))
  return canvas


def to_pixels(image: Image.Image, size: int, aspect: str = "pad") -> np.ndarray:
  """[size, size, 3] uint8: padded (or not) and resized, not yet normalised.

  What the training pipeline ships: a quarter of float32's bytes between worker processes and to
  the device, where `normalize` runs inside the jitted step.
  """
  if aspect not in ("pad", "resize"):
    raise ValueError(f"image aspect mode {aspect!r}: expected 'pad' or 'resize'")
  image = image.convert("RGB")
  if aspect == "pad":
    image = expand_to_square(image, tuple(int(m * 255) for m in CLIP_MEAN))
  return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), np.uint8)


def normalize(pixels, xp=np):
  """uint8 [..., 3] -> CLIP-normalised float32 (numpy, or jax.numpy as `xp` on device)."""
  x = xp.asarray(pixels).astype(xp.float32) / 255.0
  return (x - xp.asarray(CLIP_MEAN, xp.float32)) / xp.asarray(CLIP_STD, xp.float32)


def preprocess(image: Image.Image, size: int, aspect: str = "pad") -> np.ndarray:
  """[size, size, 3] float32, normalised. aspect: 'pad' (Math-LLaVA's setting) or 'resize'.

  Matches transformers' CLIPImageProcessor applied after LLaVA's padding, which is what both the
  original LLaVA and llava-hf feed the vision tower.
  """
  return normalize(to_pixels(image, size, aspect))
