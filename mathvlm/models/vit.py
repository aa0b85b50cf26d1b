"""CLIP vision transformer, as LLaVA uses it: any hidden layer on request, CLS kept or dropped.

Parameter names follow Hugging Face's CLIP (`pre_layrnorm` included, misspelling and all) so that
conversion is a mechanical rename; see `mathvlm.convert`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import einops
import jax
import jax.numpy as jnp
from flax import nnx

from mathvlm.models.pixels import CLIP_MEAN, CLIP_STD, normalize
from mathvlm.models.layers import (activation, attention, check_field_types, dense, dtype_of,
                                   hf_fields_of, layer_norm, logical, matmul, normal, scan_layers,
                                   stacked, with_hf_fields)
from mathvlm.sharding import constrain

BATCH, LENGTH, EMBED = "activation_batch", "activation_length", "activation_embed"

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CLIPVisionConfig:
  hidden_size: int = 1024
  intermediate_size: int = 4096
  num_layers: int = 24
  num_heads: int = 16
  image_size: int = 336
  patch_size: int = 14
  num_channels: int = 3
  layer_norm_eps: float = 1e-5
  hidden_act: str = "quick_gelu"
  dtype: str = "float32"          # matmul / activation dtype
  param_dtype: str = "float32"    # storage dtype of the parameters
  remat: str = "none"             # see layers.REMAT_POLICIES
  scan_unroll: int = 1            # layers per scan iteration (see layers.scan_layers)
  attention_impl: str | None = None
  # what uint8 pixels are normalised with (HF keeps these in preprocessor_config.json): CLIP's,
  # or a tower trained from scratch on other images (mathvlm.models.pixels.DIAGRAM_MEAN)
  image_mean: tuple = CLIP_MEAN
  image_std: tuple = CLIP_STD
  # config.json's fields this config does not model, written back on export (layers.hf_fields_of)
  hf_fields: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    check_field_types(self)

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch_size) ** 2

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @classmethod
  def from_hf(cls, d: dict[str, Any], **overrides) -> "CLIPVisionConfig":
    activation(d.get("hidden_act", "quick_gelu"))  # fails with the field's value if unsupported
    cfg = cls(
        hidden_size=d.get("hidden_size", 768), intermediate_size=d.get("intermediate_size", 3072),
        num_layers=d.get("num_hidden_layers", 12), num_heads=d.get("num_attention_heads", 12),
        image_size=d.get("image_size", 224), patch_size=d.get("patch_size", 32),
        num_channels=d.get("num_channels", 3), layer_norm_eps=d.get("layer_norm_eps", 1e-5),
        hidden_act=d.get("hidden_act", "quick_gelu"), **overrides)
    return dataclasses.replace(cfg, hf_fields=hf_fields_of(d, cfg.to_hf()))

  def to_hf(self) -> dict[str, Any]:
    out = dict(model_type="clip_vision_model", architectures=["CLIPVisionModel"],
               hidden_size=self.hidden_size,
               intermediate_size=self.intermediate_size, num_hidden_layers=self.num_layers,
               num_attention_heads=self.num_heads, image_size=self.image_size,
               patch_size=self.patch_size, num_channels=self.num_channels,
               layer_norm_eps=self.layer_norm_eps, hidden_act=self.hidden_act)
    return with_hf_fields(out, self.hf_fields)


def init_stds(cfg) -> dict[str, float]:
  """Hugging Face's CLIP initialisation (`CLIPPreTrainedModel._init_weights`, factor 1), which a
  tower trained from scratch needs: with 0.02 everywhere a narrow tower's blocks add a few percent
  to the residual stream, and on diagrams (mostly white patches, all alike) the pooled CLS token
  varied by 1e-3 of its scale between images, so classifiers and CLIP-Math learned only the prior.
  """
  d, depth = cfg.hidden_size, (2 * cfg.num_layers) ** -0.5
  return dict(in_proj=d ** -0.5 * depth, out_proj=d ** -0.5, fc1=(2 * d) ** -0.5,
              fc2=d ** -0.5 * depth, class_embedding=d ** -0.5)


class CLIPAttention(nnx.Module):
  def __init__(self, cfg, *, rngs: nnx.Rngs):
    d, std = cfg.hidden_size, init_stds(cfg)
    self.cfg = cfg
    proj = lambda axes, s: dense(d, d, axes, bias=True, cfg=cfg, rngs=rngs, std=s)
    self.q_proj = proj(("embed", "heads"), std["in_proj"])
    self.k_proj = proj(("embed", "heads"), std["in_proj"])
    self.v_proj = proj(("embed", "heads"), std["in_proj"])
    self.out_proj = proj(("heads", "embed"), std["out_proj"])

  def __call__(self, x: Array, mask: Array | None) -> Array:
    split = lambda y: constrain(einops.rearrange(y, "b t (n h) -> b t n h", h=self.cfg.head_dim),
                                BATCH, LENGTH, "activation_heads", None)
    out = attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)), mask,
                    self.cfg.attention_impl)
    return self.out_proj(einops.rearrange(out, "b t n h -> b t (n h)"))


class CLIPMLP(nnx.Module):
  def __init__(self, cfg, *, rngs: nnx.Rngs):
    self.act = activation(cfg.hidden_act)
    std = init_stds(cfg)
    self.fc1 = dense(cfg.hidden_size, cfg.intermediate_size, ("embed", "mlp"), bias=True, cfg=cfg,
                     rngs=rngs, std=std["fc1"])
    self.fc2 = dense(cfg.intermediate_size, cfg.hidden_size, ("mlp", "embed"), bias=True, cfg=cfg,
                     rngs=rngs, std=std["fc2"])

  def __call__(self, x: Array) -> Array:
    return self.fc2(constrain(self.act(self.fc1(x)), BATCH, LENGTH, "activation_mlp"))


class CLIPEncoderLayer(nnx.Module):
  """Pre-LN transformer block shared by CLIP's vision and text towers."""

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    self.layer_norm1 = layer_norm(cfg.hidden_size, cfg.layer_norm_eps, cfg, rngs)
    self.self_attn = CLIPAttention(cfg, rngs=rngs)
    self.layer_norm2 = layer_norm(cfg.hidden_size, cfg.layer_norm_eps, cfg, rngs)
    self.mlp = CLIPMLP(cfg, rngs=rngs)

  def __call__(self, x: Array, mask: Array | None = None) -> Array:
    x = constrain(x, BATCH, LENGTH, EMBED)
    x = x + self.self_attn(self.layer_norm1(x), mask)
    return x + self.mlp(self.layer_norm2(x))


class CLIPVisionTransformer(nnx.Module):
  """Patch conv + class token + learned positions -> pre_layrnorm -> scanned pre-LN blocks."""

  def __init__(self, cfg: CLIPVisionConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    d, p = cfg.hidden_size, cfg.patch_size
    pdt = dtype_of(cfg.param_dtype)
    self.patch_embedding = nnx.Conv(
        cfg.num_channels, d, kernel_size=(p, p), strides=(p, p), padding="VALID", use_bias=False,
        dtype=dtype_of(cfg.dtype), param_dtype=pdt,
        kernel_init=logical(normal(), None, None, None, "embed"), rngs=rngs)
    cls_std = init_stds(cfg)["class_embedding"]
    self.class_embedding = nnx.Param(normal(cls_std)(rngs.params(), (d,), pdt),
                                     out_sharding=("embed",), eager_sharding=False)
    self.position_embedding = nnx.Param(normal()(rngs.params(), (cfg.num_patches + 1, d), pdt),
                                        out_sharding=(None, "embed"), eager_sharding=False)
    self.pre_layrnorm = layer_norm(d, cfg.layer_norm_eps, cfg, rngs)
    self.layers = stacked(lambda r: CLIPEncoderLayer(cfg, rngs=r), cfg.num_layers, rngs)
    self.post_layernorm = layer_norm(d, cfg.layer_norm_eps, cfg, rngs)

  def embed(self, pixel_values: Array) -> Array:
    """pixel_values: channels last [batch, height, width, channels], uint8 (normalised here with
    the config's statistics) or float (normalised by the caller with the same ones)."""
    cfg = self.cfg
    if pixel_values.dtype == jnp.uint8:
      pixel_values = normalize(pixel_values, jnp, cfg.image_mean, cfg.image_std)
    if pixel_values.ndim != 4 or pixel_values.shape[1:] != (cfg.image_size, cfg.image_size,
                                                           cfg.num_channels):
      raise ValueError(f"pixel_values must be [batch, {cfg.image_size}, {cfg.image_size}, "
                       f"{cfg.num_channels}] (channels last), got {tuple(pixel_values.shape)}")
    dt = dtype_of(cfg.dtype)
    patches = self.patches(jnp.asarray(pixel_values, dt))
    b = patches.shape[0]
    cls = jnp.broadcast_to(self.class_embedding[...].astype(dt), (b, 1, cfg.hidden_size))
    x = jnp.concatenate([cls, patches], axis=1) + self.position_embedding[...].astype(dt)
    return self.pre_layrnorm(x)

  def patches(self, pixels: Array) -> Array:
    """The patch convolution as one matmul over flattened patches [batch, patches, p*p*c]: the
    same sums as the stride-p VALID convolution, but its weight gradient is a plain matmul (XLA:CPU
    runs the convolution's as a slow dilated convolution). The kernel keeps the Conv's
    [p, p, c, hidden] layout, so checkpoints do not change."""
    p = self.cfg.patch_size
    rows, cols = pixels.shape[1] // p, pixels.shape[2] // p
    flat = einops.rearrange(pixels[:, :rows * p, :cols * p],
                            "b (h p1) (w p2) c -> b (h w) (p1 p2 c)", p1=p, p2=p)
    kernel = self.patch_embedding.kernel[...]
    return matmul(flat, kernel.reshape(-1, kernel.shape[-1])).astype(pixels.dtype)

  def _layer_count(self, layer: int) -> int:
    n = self.cfg.num_layers
    count = layer + n + 1 if layer < 0 else layer
    if not 0 <= count <= n:
      raise ValueError(f"hidden layer {layer} out of range for {n} layers (0..{n} or -1..-{n + 1})")
    return count

  def hidden_state(self, pixel_values: Array, layer: int = -1) -> Array:
    """Hidden state `layer` in Hugging Face's `hidden_states` indexing (0 = embeddings).

    Only the layers that feed it are run: LLaVA's layer -2 skips the last block entirely.
    """
    x = self.embed(pixel_values)
    x, _ = scan_layers(self.layers, lambda blk, h, _: (blk(h), None), x,
                       remat=self.cfg.remat, num=self._layer_count(layer),
                       unroll=self.cfg.scan_unroll)
    return x

  def all_hidden_states(self, pixel_values: Array) -> Array:
    """[num_layers + 1, batch, tokens, hidden], as Hugging Face's `output_hidden_states`."""
    def body(blk, h, _):
      h = blk(h)
      return h, h

    x = self.embed(pixel_values)
    _, hs = scan_layers(self.layers, body, x, remat=self.cfg.remat,
                        unroll=self.cfg.scan_unroll)
    return jnp.concatenate([x[None], hs], axis=0)

  def __call__(self, pixel_values: Array) -> tuple[Array, Array]:
    """(last hidden state, pooled = post_layernorm(CLS)), as CLIPVisionModel returns them."""
    x = self.hidden_state(pixel_values, -1)
    return x, self.post_layernorm(x[:, 0])
