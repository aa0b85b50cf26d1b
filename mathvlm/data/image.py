"""LLaVA's image preprocessing as a pure function: flatten any transparency onto white, pad (or
not) to a square, bicubic resize, CLIP normalisation, channels last. The Grain pipeline and the
evaluation runners both call this. Also the optional clarity augmentations (training only)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from mathvlm.models.pixels import (CLIP_MEAN, CLIP_STD, DIAGRAM_MEAN,  # noqa: F401 (theirs)
                                   DIAGRAM_STD, normalize)

ASPECTS = ("pad", "resize", "crop")
# What decoding a record's image bytes raises for an image that cannot be used: a broken or
# truncated file (OSError, PIL's UnidentifiedImageError among them), and one over twice PIL's
# pixel limit (~358M pixels), which PIL refuses as a decompression bomb with an error of its
# own, not an OSError: it ended a training run instead of being dropped as `bad_image`.
UNDECODABLE = (OSError, Image.DecompressionBombError)


def has_transparency(image: Image.Image) -> bool:
  """An alpha band (RGBA, LA, PA; premultiplied RGBa, La too) or a transparency entry in
  `image.info` (a P palette index or per-entry alpha, an L/RGB colour key): transformers' test in
  `image_transforms.convert_to_rgb`, plus the premultiplied modes."""
  return ("A" in image.getbands() or "a" in image.getbands()
          or image.info.get("transparency") is not None)


def to_rgb(image: Image.Image) -> Image.Image:
  """RGB, with any transparency composited onto white (transformers' `convert_to_rgb` in 5.x,
  which CLIPImageProcessor runs first); an image without transparency is `image.convert("RGB")`,
  byte for byte.

  LLaVA's own loaders call `.convert("RGB")`, which drops the alpha band and keeps whatever RGB
  lies under the transparent pixels: in diagrams saved with a transparent background that is
  usually black (0, 0, 0, 0), so the background turns black and black strokes vanish. Measured on
  the benchmark images this repository has (shared/data: MATH-V's 304 images, all RGB
  JPEG; MathVista and MathVerse images are not there): 0 images carry transparency, so the change
  alters no MATH-V pixel. It matters for PNG/GIF sources (training sets, MathVista, MathVerse) that
  do; note that the original LLaVA / Math-LLaVA training ran with plain `.convert("RGB")`."""
  if not has_transparency(image):
    return image.convert("RGB")
  if image.mode == "La":  # Pillow converts La to LA (un-premultiplied) but not to RGBA
    image = image.convert("LA")
  rgba = image.convert("RGBA")
  white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
  return Image.alpha_composite(white, rgba).convert("RGB")


def expand_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
  """Centre the image on a square canvas of its longer side (LLaVA's `expand2square`)."""
  w, h = image.size
  if w == h:
    return image
  side = max(w, h)
  canvas = Image.new(image.mode, (side, side), fill)
  canvas.paste(image, ((side - w) // 2, (side - h) // 2))
  return canvas


def resize_shortest_and_crop(image: Image.Image, size: int) -> Image.Image:
  """CLIPImageProcessor's geometry (size={"shortest_edge": size}, crop_size size x size, bicubic):
  the shorter side to `size`, the longer to int(size * long / short) (truncated, as transformers'
  `get_resize_output_image_size`), then the centre `size` x `size` of the resized image, its
  top-left corner at ((new_w - size) // 2, (new_h - size) // 2) (`image_transforms.center_crop`).
  Byte for byte the PIL backend's output (transformers' torchvision backend resizes with torch's
  bicubic and differs slightly). This is what LLaVA does with any image_aspect_ratio other than
  'pad' (e.g. 'square'): the ends of the longer side are cut off."""
  w, h = image.size
  if w <= h:
    new_w, new_h = size, int(size * h / w)
  else:
    new_w, new_h = int(size * w / h), size
  image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
  left, top = (new_w - size) // 2, (new_h - size) // 2
  return image.crop((left, top, left + size, top + size))


def to_pixels(image: Image.Image, size: int, aspect: str = "pad") -> np.ndarray:
  """[size, size, 3] uint8: RGB (transparency composited onto white, see `to_rgb`), shaped by
  `aspect`, not yet normalised:
    pad     LLaVA-1.5's expand2square: centred on a square of the longer side filled with the
            CLIP mean colour, then bicubic to size x size (Math-LLaVA's setting). Nothing is lost
            and nothing is distorted.
    resize  bicubic straight to size x size: a non-square image is STRETCHED (its aspect ratio is
            not kept). No LLaVA recipe does this; kept for recipes that name it.
    crop    CLIPImageProcessor's shortest side to size (bicubic) and centre crop, which is LLaVA
            with image_aspect_ratio other than 'pad' (`resize_shortest_and_crop`): no distortion,
            but the ends of the longer side are cut off.

  What the training pipeline ships: a quarter of float32's bytes between worker processes and to
  the device, where `normalize` runs inside the jitted step.
  """
  if aspect not in ASPECTS:
    raise ValueError(f"image aspect mode {aspect!r}: expected one of {', '.join(ASPECTS)}")
  image = to_rgb(image)
  if aspect == "crop":
    return np.asarray(resize_shortest_and_crop(image, size), np.uint8)
  if aspect == "pad":
    image = expand_to_square(image, tuple(int(m * 255) for m in CLIP_MEAN))
  return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), np.uint8)


def preprocess(image: Image.Image, size: int, aspect: str = "pad") -> np.ndarray:
  """[size, size, 3] float32, normalised. aspect: 'pad' (Math-LLaVA's setting), 'resize'
  (stretched to a square) or 'crop' (CLIPImageProcessor's own resize and centre crop); see
  `to_pixels`.

  'pad' matches transformers' CLIPImageProcessor applied after LLaVA's padding, which is what
  both the original LLaVA and llava-hf feed the vision tower; 'crop' matches CLIPImageProcessor
  on the image itself.
  """
  return normalize(to_pixels(image, size, aspect))


# ---------------------------------------------------------------------------------------------
# Clarity augmentations: diagrams as they arrive in practice (photographed, scanned, shrunk),
# after Math-LLaVA's and MAVIS's robustness to image clarity. Applied in this order.

AUGMENTATIONS = ("lowres", "blur", "noise")


def parse_augment(spec: str) -> dict[str, float]:
  """'blur=0.3,noise=0.2' -> {kind: probability}; a bare kind is always applied; '' is off; a
  kind given twice is an error."""
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
    if name in out:  # the last would win silently: which probability was meant?
      raise ValueError(f"data.augment {spec!r}: {name!r} is given twice")
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
