"""Pixel statistics a vision tower is normalised with, and the normalisation itself: a property
of the tower (its config carries them, as HF's preprocessor_config.json does), so a uint8 image
is normalised by the tower that reads it. Only numpy-style arithmetic here: the data layer and
data_prep import it without JAX."""

from __future__ import annotations

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Engine diagrams: near-white canvases with thin ink (mean and std over the 500 images of 300
# engine problems, seed 0; tests/unit/test_vision_from_scratch.py recomputes them from fresh
# ones). A tower trained from scratch needs its inputs centred: under CLIP's statistics, which are
# photographs', white is ~2 in every channel, every patch embedding is dominated by that one
# constant with the ink a few percent of it, and a tiny ViT could not even fit 32 diagrams by
# domain (with these it fits them within 30 steps).
DIAGRAM_MEAN = (0.952, 0.9547, 0.9614)
DIAGRAM_STD = (0.1099, 0.1055, 0.1077)


def normalize(pixels, xp=np, mean=CLIP_MEAN, std=CLIP_STD):
  """uint8 [..., 3] -> normalised float32 (numpy, or jax.numpy as `xp` on device); CLIP's
  statistics unless the vision tower's config names others."""
  x = xp.asarray(pixels).astype(xp.float32) / 255.0
  return (x - xp.asarray(mean, xp.float32)) / xp.asarray(std, xp.float32)
