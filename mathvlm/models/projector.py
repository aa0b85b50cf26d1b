"""The vision->language projector: `linear` or LLaVA's `mlp{N}x_gelu` (Math-LLaVA uses
mlp2x_gelu)."""

from __future__ import annotations

import re

import jax
from flax import nnx

from mathvlm.models.layers import activation, dense


def projector_depth(kind: str) -> int:
  if kind == "linear":
    return 1
  m = re.fullmatch(r"mlp(\d+)x_gelu", kind)
  if not m:
    raise ValueError(f"unknown projector type {kind!r}; expected 'linear' or 'mlp<N>x_gelu'")
  return int(m.group(1))


class Projector(nnx.Module):
  """linear_1: vision -> text width, then (GELU, linear_i: text -> text) for i = 2..N.

  Names match llava-hf's `multi_modal_projector.linear_{1,2}`. The GELU is the exact (erf) one,
  as `nn.GELU()` in the original and `"gelu"` in llava-hf.
  """

  def __init__(self, kind: str, vision_dim: int, text_dim: int, cfg, *, bias: bool = True,
               rngs: nnx.Rngs):
    self.kind = kind
    self.depth = projector_depth(kind)
    self.act = activation("gelu")
    for i in range(1, self.depth + 1):
      din = vision_dim if i == 1 else text_dim
      axes = ("embed", "mlp") if i == 1 else ("mlp", "embed")
      setattr(self, f"linear_{i}", dense(din, text_dim, axes, bias=bias, cfg=cfg, rngs=rngs))

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.linear_1(x)
    for i in range(2, self.depth + 1):
      x = getattr(self, f"linear_{i}")(self.act(x))
    return x
