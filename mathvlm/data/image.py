"""LLaVA's image preprocessing as a pure function: pad (or not) to a square, bicubic resize, CLIP
normalisation, channels last. The Grain pipeline and the evaluation runners both call this. Also
the optional clarity augmentations (training only)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from mathvlm.models.pixels import (CLIP_MEAN, CLIP_STD, DIAGRAM_MEAN,  # noqa: F401 (theirs)
                                   DIAGRAM_STD, normalize)


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




def preprocess(image: Image.Image, size: int, aspect: str = "pad") -> np.ndarray:
  """[size, size, 3] float32, normalised. aspect: 'pad' (Math-LLaVA's setting) or 'resize'.

  Matches transformers' CLIPImageProcessor applied after LLaVA's padding, which is what both the
  original LLaVA and llava-hf feed the vision tower.
  """
  return normalize(to_pixels(image, size, aspect))


# ---------------------------------------------------------------------------------------------
# Clarity augmentations: diagrams as they arrive in practice (photographed, scanned, shrunk),
# after Math-LLaVA's and MAVIS's robustness to image clarity. Applied in this order.

AUGMENTATIONS = ("lowres", "blur", "noise")


def parse_augment(spec: str) -> dict[str, float]:
  """'blur=0.3,noise=0.2' -> {kind: probability}; a bare kind is always applied; '' is off."""
  out = {}
  for part in filter(None, (spec or "").split(",")):
    name, _, prob = part.partition("=")
    name = name.strip()
    if name not in AUGMENTATIONS:
      raise ValueError(f"data.augment entry {part!r}: kinds are {', '.join(AUGMENTATIONS)}")
    try:
      p = float(prob) if prob else 1.0
    except ValueError:
      raise ValueError(f"data.augment entry {part!r}: expected kind=probability") from None
    if not 0 < p <= 1:
      raise ValueError(f"data.augment entry {part!r}: the probability must be in (0, 1]")
    out[name] = p
  return out


def augment(pixels: np.ndarray, kinds: dict[str, float], rng: np.random.Generator) -> np.ndarray:
  """[H, W, 3] uint8 -> the same, each kind applied with its probability:
    lowres  down to 25-50% of the side (bilinear) and back up (bicubic): fine detail is gone
    blur    Gaussian, radius 0.5-2 px
    noise   Gaussian, sigma 4-16 grey levels per channel
  Every kind draws its two numbers whether or not it is on, so turning one kind on or off leaves
  the others' draws as they were. No kinds: the input, untouched."""
  if not kinds:
    return pixels
  draws = {k: [float(u) for u in rng.random(2)] for k in AUGMENTATIONS}
  on = {k for k, p in kinds.items() if draws[k][0] < p}
  if not on:
    return pixels
  img = Image.fromarray(pixels)
  if "lowres" in on:
    f = 0.25 + 0.25 * draws["lowres"][1]
    small = (max(1, round(img.width * f)), max(1, round(img.height * f)))
    img = img.resize(small, Image.Resampling.BILINEAR).resize(img.size,
                                                              Image.Resampling.BICUBIC)
  if "blur" in on:
    img = img.filter(ImageFilter.GaussianBlur(0.5 + 1.5 * draws["blur"][1]))
  out = np.asarray(img, np.uint8)
  if "noise" in on:
    sigma = 4 + 12 * draws["noise"][1]
    out = np.clip(np.rint(out + rng.normal(0.0, sigma, out.shape)), 0, 255).astype(np.uint8)
  return out
