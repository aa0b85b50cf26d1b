"""Tiny models with random parameters for tests, drawn by numpy: initialising through jax compiles
dozens of small programs (10-20 s on this CPU); this compiles none."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx


def random_model(cls, cfg, seed: int = 0, std: float = 0.1):
  """`cls(cfg)` with every parameter drawn from N(0, std); norm scales near 1."""
  graphdef, state = nnx.split(nnx.eval_shape(lambda: cls(cfg, rngs=nnx.Rngs(0))))
  rng = np.random.default_rng(seed)

  def draw(path, x):
    scale = "scale" in jax.tree_util.keystr(path)
    return (scale + rng.normal(0, std, x.shape)).astype(x.dtype)

  return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(draw, state))
