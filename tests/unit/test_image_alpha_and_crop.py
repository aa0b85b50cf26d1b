"""Images with transparency are flattened onto white (as transformers' convert_to_rgb does), not
onto the black that LLaVA's .convert("RGB") leaves; 'crop' is CLIPImageProcessor's shortest-side
resize and centre crop, pixel for pixel."""

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image
from transformers import CLIPImageProcessor
from transformers.image_transforms import convert_to_rgb

from mathvlm.data.image import ASPECTS, has_transparency, preprocess, to_pixels, to_rgb

IMAGES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "math_v",
                      "images")
SIDE = 32


def _strokes() -> np.ndarray:
  """[SIDE, SIDE] bool: a diagram's black lines (a cross and a frame)."""
  m = np.zeros((SIDE, SIDE), bool)
  m[SIDE // 2, :] = m[:, SIDE // 2] = True
  m[4, 4:-4] = m[-5, 4:-4] = m[4:-4, 4] = m[4:-4, -5] = True
  return m


def _reopened(image: Image.Image, fmt: str = "PNG") -> Image.Image:
  """The image as a file reader hands it over (the decoder sets mode and info['transparency'])."""
  buf = io.BytesIO()
  image.save(buf, fmt)
  buf.seek(0)
  return Image.open(buf)


def _rgba() -> Image.Image:
  """Black strokes, opaque, on a transparent background whose RGB is black: (0, 0, 0, 0)."""
  a = np.zeros((SIDE, SIDE, 4), np.uint8)
  a[..., 3] = np.where(_strokes(), 255, 0)
  return Image.fromarray(a, "RGBA")


def _la() -> Image.Image:
  a = np.zeros((SIDE, SIDE, 2), np.uint8)
  a[..., 1] = np.where(_strokes(), 255, 0)
  return Image.fromarray(a, "LA")


def _p_index() -> Image.Image:
  """Palette: entry 0 black and transparent (background), entry 1 black and opaque (strokes)."""
  im = Image.fromarray(_strokes().astype(np.uint8), "P")
  im.putpalette([0, 0, 0, 0, 0, 0] + [0] * (256 * 3 - 6))
  im.info["transparency"] = 0
  return im


def _p_alpha_bytes() -> Image.Image:
  """Palette with per-entry alpha (PNG tRNS as bytes): entry 0 alpha 0, entry 1 alpha 255."""
  im = _p_index()
  im.info["transparency"] = bytes([0, 255])
  return im


CASES = {
    "RGBA": _rgba, "LA": _la, "P index": _p_index, "P alpha bytes": _p_alpha_bytes,
    "RGBA png": lambda: _reopened(_rgba()), "LA png": lambda: _reopened(_la()),
    "P png": lambda: _reopened(_p_index()), "P gif": lambda: _reopened(_p_index(), "GIF"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("aspect", ASPECTS)
def test_transparent_background_turns_white_and_black_strokes_stay_black(case, aspect):
  image = CASES[case]()
  assert has_transparency(image), image.mode
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")   # Pillow warns on P-with-transparency -> RGB
    before = np.asarray(image.convert("RGB"))
  assert (before == 0).all()          # what LLaVA's .convert("RGB") gives: all black, no diagram
  # a square image at its own size: every mode leaves the pixels as to_rgb made them
  pixels = to_pixels(image, SIDE, aspect)
  strokes = _strokes()
  assert pixels.shape == (SIDE, SIDE, 3) and pixels.dtype == np.uint8
  assert (pixels[~strokes] == 255).all()
  assert (pixels[strokes] == 0).all()


def test_semi_transparent_pixels_equal_transformers_convert_to_rgb_and_clip_processor():
  """Random colours under random alpha (0 to 255): byte for byte what transformers' convert_to_rgb
  gives, and what CLIPImageProcessor (no resize, crop, rescale or normalisation) hands on."""
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (29, 41, 4), dtype=np.uint8)
  a[:5, :, 3] = 0
  a[5:10, :, 3] = 255
  for image in (Image.fromarray(a, "RGBA"), Image.fromarray(a[..., 2:], "LA")):
    ours = np.asarray(to_rgb(image))
    np.testing.assert_array_equal(ours, convert_to_rgb(image, return_numpy=True))
    proc = CLIPImageProcessor(do_resize=False, do_center_crop=False, do_rescale=False,
                              do_normalize=False)
    ref = proc(images=image, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
    np.testing.assert_array_equal(ours, ref)
    assert (ours[:5] == 255).all()                        # fully transparent rows: white
    np.testing.assert_array_equal(ours[5:10], np.asarray(image.convert("RGB"))[5:10])  # opaque


@pytest.mark.parametrize("mode,key", [("RGB", (10, 20, 30)), ("L", 7)])
def test_colour_key_transparency_of_rgb_and_l_pngs(mode, key):
  """PNG's tRNS colour key keeps the mode RGB or L and sets info['transparency']: the key colour
  is transparent (white here), every other colour opaque; as transformers' convert_to_rgb."""
  image = Image.new(mode, (SIDE, SIDE), key)
  image.paste(0, mask=Image.fromarray(_strokes().astype(np.uint8) * 255))
  buf = io.BytesIO()
  image.save(buf, "PNG", transparency=key)
  buf.seek(0)
  image = Image.open(buf)
  assert image.mode == mode and has_transparency(image)
  pixels = to_pixels(image, SIDE, "pad")
  assert (pixels[~_strokes()] == 255).all() and (pixels[_strokes()] == 0).all()
  np.testing.assert_array_equal(np.asarray(to_rgb(image)),
                                convert_to_rgb(image, return_numpy=True))


@pytest.mark.parametrize("name", ["10.jpg", "100.jpg", "1008.jpg"])
def test_images_without_transparency_are_unchanged(name):
  """Plain RGB (real MATH-V images) and L: exactly image.convert("RGB") as before."""
  image = Image.open(os.path.join(IMAGES, name))
  assert not has_transparency(image)
  np.testing.assert_array_equal(np.asarray(to_rgb(image)), np.asarray(image.convert("RGB")))
  grey = image.convert("L")
  np.testing.assert_array_equal(np.asarray(to_rgb(grey)), np.asarray(grey.convert("RGB")))
  for aspect in ("pad", "resize"):
    padded = image.convert("RGB")
    if aspect == "pad":
      from mathvlm.data.image import CLIP_MEAN, expand_to_square
      padded = expand_to_square(padded, tuple(int(m * 255) for m in CLIP_MEAN))
    np.testing.assert_array_equal(to_pixels(image, 56, aspect),
                                  np.asarray(padded.resize((56, 56), Image.Resampling.BICUBIC)))


def _odd_image(w: int, h: int) -> Image.Image:
  """A real diagram (MATH-V 1008.jpg) brought to an odd, non-square size, with seeded noise on top
  so that a crop one pixel off, or a resize one pixel longer, changes the output."""
  src = Image.open(os.path.join(IMAGES, "1008.jpg")).convert("RGB")
  a = np.asarray(src.resize((w, h), Image.Resampling.BILINEAR)).astype(np.int16)
  a = a + np.random.default_rng(w * 1000 + h).integers(-40, 41, a.shape)
  return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


# 105x67 -> 87.76 (truncated to 87, an odd 31 to crop off), 99x67 -> 82.75 (truncated to 82),
# 333x217 -> 75.19, 41x27 (upscaled) -> 85.04 (29 to crop off)
@pytest.mark.parametrize("w,h,size", [(105, 67, 56), (67, 105, 56), (99, 67, 56), (333, 217, 49),
                                      (217, 333, 49), (41, 27, 56)])
def test_crop_equals_clip_image_processor(w, h, size):
  """Wide and tall, odd sizes and crop sides, downscaling and upscaling: uint8 pixels identical
  to CLIPImageProcessor's shortest-edge resize (long side truncated) and centre crop (offset
  rounded down); normalised values equal too."""
  image = _odd_image(w, h)
  kw = dict(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
  raw = CLIPImageProcessor(do_rescale=False, do_normalize=False, **kw)
  ref = raw(images=image, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
  ours = to_pixels(image, size, "crop")
  assert ours.shape == ref.shape == (size, size, 3)
  np.testing.assert_array_equal(ours, ref)
  full = CLIPImageProcessor(**kw)(images=image, return_tensors="np")["pixel_values"][0]
  np.testing.assert_allclose(preprocess(image, size, "crop"), full.transpose(1, 2, 0), atol=1e-5)


def test_crop_with_transparency_equals_clip_image_processor():
  a = np.asarray(_odd_image(105, 67).convert("RGBA")).copy()
  a[..., 3] = np.random.default_rng(1).integers(0, 256, a.shape[:2], dtype=np.uint8)
  image = Image.fromarray(a, "RGBA")
  raw = CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 40, "width": 40},
                           do_rescale=False, do_normalize=False)
  ref = raw(images=image, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
  np.testing.assert_array_equal(to_pixels(image, 40, "crop"), ref)


def test_the_three_modes_on_a_non_square_image():
  """'resize' stretches the whole image, 'crop' keeps the middle square, 'pad' keeps everything on
  a mean-coloured square; on a square image all three are the same bicubic resize."""
  w, h, s = 60, 20, 20
  a = np.zeros((h, w, 3), np.uint8)
  a[:, :20] = (255, 0, 0)
  a[:, 20:40] = (0, 255, 0)
  a[:, 40:] = (0, 0, 255)
  image = Image.fromarray(a)
  crop = to_pixels(image, s, "crop")
  assert (crop == (0, 255, 0)).all()                  # only the middle third survives
  stretch = to_pixels(image, s, "resize")
  assert stretch[10, 1, 0] > 200 and stretch[10, 18, 2] > 200   # all three bands, squeezed
  pad = to_pixels(image, s, "pad")
  assert abs(int(pad[0, 10, 0]) - 122) <= 2          # CLIP-mean band above the image
  square = _odd_image(37, 37)
  out = [to_pixels(square, 24, m) for m in ASPECTS]
  for o in out[1:]:
    np.testing.assert_array_equal(o, out[0])


def test_unknown_aspect_names_the_modes():
  with pytest.raises(ValueError, match="'stretch'.*pad, resize, crop"):
    to_pixels(Image.new("RGB", (4, 4)), 4, "stretch")
