"""LLaVA's pad-and-resize preprocessing equals transformers' CLIP processor on real images."""

import os

import numpy as np
import pytest
from PIL import Image
from transformers import CLIPImageProcessor

from mathvlm.data.image import CLIP_MEAN, expand_to_square, preprocess

IMAGES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "math_v",
                      "images")


@pytest.mark.parametrize("name", ["10.jpg", "100.jpg", "1008.jpg"])
def test_pad_then_clip_processor_parity_on_math_v_images(name):
  image = Image.open(os.path.join(IMAGES, name))
  ours = preprocess(image, 56, "pad")
  ref_proc = CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
  padded = expand_to_square(image.convert("RGB"), tuple(int(m * 255) for m in CLIP_MEAN))
  ref = ref_proc(images=padded, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
  assert ours.shape == (56, 56, 3)
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_padding_uses_the_clip_mean_colour():
  image = Image.new("RGB", (40, 10), (255, 0, 0))
  x = preprocess(image, 40, "pad")
  np.testing.assert_allclose(x[0, 20], 0.0, atol=0.02)   # padded band normalises to ~0
  assert x[20, 20, 0] > 1.5                                # the red image survives in the middle
  with pytest.raises(ValueError, match="aspect mode 'anyres'"):
    preprocess(image, 40, "anyres")
