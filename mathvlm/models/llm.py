"""The Llama family: Vicuna, Llama-2/3, Mistral (MAmmoTH2).

RMSNorm, rotary embeddings in Hugging Face's rotate-half convention (so HF weights load unpermuted),
grouped-query attention, SwiGLU, tied or untied embeddings, Mistral's sliding window. Layers are
stacked and scanned. One forward serves training (no cache) and decoding (a KV cache in slots, the
buffer position of every token, padding included, as the reference's cache positions count them).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import einops
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mathvlm.models.layers import (RMSNorm, activation, attention, block_attention, cache_storage,
                                   cached_attention, causal_mask, check_field_types, dense,
                                   dtype_of, hf_fields_of, logical, normal,
                                   positions_from_segments, scan_layers, stacked, unstack_layers,
                                   update_slice, with_hf_fields)
from mathvlm.sharding import constrain

BATCH, LENGTH, EMBED = "activation_batch", "activation_length", "activation_embed"

Array = jax.Array

SUPPORTED_MODEL_TYPES = ("llama", "mistral")
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


def _flag(d: dict[str, Any], name: str):
  """A flag of config.json: absent or null is false, as transformers reads it; any other value
  is the config's to check (`check_field_types`: bool() made the string "no" true)."""
  value = d.get(name)
  return False if value is None else value


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  vocab_size: int = 32000
  hidden_size: int = 4096
  intermediate_size: int = 11008
  num_layers: int = 32
  num_heads: int = 32
  num_kv_heads: int = 32
  head_dim_override: int | None = None
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10000.0
  # ("rope_type", ...), ("factor", ...) ... as sorted pairs, so the config stays hashable.
  rope_scaling: tuple[tuple[str, Any], ...] | None = None
  max_position_embeddings: int = 4096
  tie_word_embeddings: bool = False
  sliding_window: int | None = None
  attention_bias: bool = False
  mlp_bias: bool = False
  hidden_act: str = "silu"
  bos_token_id: int | None = 1
  eos_token_id: int | tuple[int, ...] | None = 2
  pad_token_id: int | None = None
  model_type: str = "llama"
  dtype: str = "float32"
  param_dtype: str = "float32"
  logits_dtype: str = "float32"
  remat: str = "none"
  scan_unroll: int = 1            # layers per scan iteration (see layers.scan_layers)
  attention_impl: str | None = None
  # config.json's fields this config does not model, written back on export (layers.hf_fields_of)
  hf_fields: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    check_field_types(self)

  @property
  def head_dim(self) -> int:
    return self.head_dim_override or self.hidden_size // self.num_heads

  @classmethod
  def from_hf(cls, d: dict[str, Any], **overrides) -> "LlamaConfig":
    mt = d.get("model_type", "llama")
    if mt not in SUPPORTED_MODEL_TYPES:
      raise ValueError(f"config.json field model_type={mt!r} is not supported for the language "
                       f"model; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    act = d.get("hidden_act", "silu")
    if act != "silu":
      raise ValueError(f"config.json field hidden_act={act!r}: the Llama family here uses 'silu'")
    rope = dict(d.get("rope_parameters") or {})
    if not rope:  # transformers < 5 keeps rope_theta and rope_scaling apart
      rope = dict(d.get("rope_scaling") or {})
      rope.setdefault("rope_theta", d.get("rope_theta", 10000.0))
    theta = float(rope.pop("rope_theta", d.get("rope_theta", 10000.0)))
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE_TYPES:
      raise ValueError(f"config.json field rope_parameters.rope_type={rope_type!r} is not "
                       f"supported; supported: {', '.join(SUPPORTED_ROPE_TYPES)}")
    rope.pop("type", None)
    rope["rope_type"] = rope_type
    eos = d.get("eos_token_id", 2)
    cfg = cls(
        vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
        intermediate_size=d["intermediate_size"], num_layers=d["num_hidden_layers"],
        num_heads=d["num_attention_heads"],
        num_kv_heads=d.get("num_key_value_heads") or d["num_attention_heads"],
        head_dim_override=d.get("head_dim"), rms_norm_eps=d.get("rms_norm_eps", 1e-6),
        rope_theta=theta,
        rope_scaling=None if rope_type == "default" else tuple(sorted(rope.items())),
        max_position_embeddings=d.get("max_position_embeddings", 4096),
        tie_word_embeddings=_flag(d, "tie_word_embeddings"),
        sliding_window=d.get("sliding_window") if mt == "mistral" else None,
        attention_bias=_flag(d, "attention_bias"),
        mlp_bias=_flag(d, "mlp_bias"),
        bos_token_id=d.get("bos_token_id"),
        eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
        pad_token_id=d.get("pad_token_id"), model_type=mt, **overrides)
    return dataclasses.replace(cfg, hf_fields=hf_fields_of(d, cfg.to_hf()))

  def to_hf(self) -> dict[str, Any]:
    rope = {"rope_theta": self.rope_theta, "rope_type": "default"}
    rope.update(dict(self.rope_scaling or ()))
    arch = "MistralForCausalLM" if self.model_type == "mistral" else "LlamaForCausalLM"
    out = dict(model_type=self.model_type, architectures=[arch], vocab_size=self.vocab_size,
               hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
               num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
               num_key_value_heads=self.num_kv_heads, head_dim=self.head_dim,
               rms_norm_eps=self.rms_norm_eps, rope_parameters=rope,
               max_position_embeddings=self.max_position_embeddings,
               tie_word_embeddings=self.tie_word_embeddings, hidden_act=self.hidden_act,
               bos_token_id=self.bos_token_id,
               eos_token_id=list(self.eos_token_id) if isinstance(self.eos_token_id, tuple)
               else self.eos_token_id, pad_token_id=self.pad_token_id)
    # transformers < 5 (and vLLM's config readers) know rope_theta and rope_scaling, not
    # rope_parameters: written too, with the same values, so an export reads alike there.
    out["rope_theta"] = self.rope_theta
    if self.rope_scaling:
      out["rope_scaling"] = dict(self.rope_scaling)
    if self.model_type == "mistral":
      out["sliding_window"] = self.sliding_window
    else:
      out.update(attention_bias=self.attention_bias, mlp_bias=self.mlp_bias)
    return with_hf_fields(out, self.hf_fields)


# ---------------------------------------------------------------------------------------------
# Rotary embeddings.

def rope_inv_freq(cfg: LlamaConfig) -> np.ndarray:
  """Inverse frequencies in float32, computed as transformers computes them (llama3 scaling
  included)."""
  dim = cfg.head_dim
  inv = (1.0 / (cfg.rope_theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))
         ).astype(np.float32)
  scaling = dict(cfg.rope_scaling or ())
  kind = scaling.get("rope_type", "default")
  if kind == "linear":
    inv = (inv / np.float32(scaling["factor"])).astype(np.float32)
  elif kind == "llama3":
    factor, lo, hi = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    lo_wavelen, hi_wavelen = old / lo, old / hi
    wavelen = 2 * math.pi / inv
    scaled = np.where(wavelen > lo_wavelen, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < hi_wavelen) & ~(wavelen > lo_wavelen)
    inv = np.where(medium, smoothed, scaled).astype(np.float32)
  return inv


def rope_cos_sin(positions: Array, cfg: LlamaConfig, dtype) -> tuple[Array, Array]:
  freqs = positions[..., None].astype(jnp.float32) * jnp.asarray(rope_inv_freq(cfg))
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb).astype(dtype), jnp.sin(emb).astype(dtype)


def _rotate(x: Array, cos: Array, sin: Array) -> Array:
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]


@jax.custom_vjp
def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
  """x: [batch, seq, heads, head_dim]; cos/sin: [batch, seq, head_dim]. Rotate-half convention.

  The gradient is written out: the operations autodiff derives, in the same order (the same bits
  in bf16; in float32 XLA may fuse a multiply-add differently, a last-bit difference). Autodiff's
  transpose of the half-swap is two slices, two pads and two adds, which XLA:CPU fused with
  attention's transposed query gradient into one loop that reads its input several times over:
  ~20 ms a call, 8% of the `small` bf16 step's gradient (docs/perf/PERFORMANCE.md). cos and sin
  get no gradient: they come from integer positions."""
  return _rotate(x, cos, sin)


def _rope_fwd(x, cos, sin):
  return _rotate(x, cos, sin), (cos, sin)


def _rope_bwd(res, g):
  cos, sin = res
  half = g.shape[-1] // 2
  through_sin = g * sin[:, :, None, :]
  swapped = jnp.concatenate([through_sin[..., half:], -through_sin[..., :half]], axis=-1)
  return g * cos[:, :, None, :] + swapped, None, None


apply_rope.defvjp(_rope_fwd, _rope_bwd)


# ---------------------------------------------------------------------------------------------
# Layers.

class LayerCache(NamedTuple):
  """One layer's view of the KV cache in a decoder call with a cache."""
  k: Array | tuple   # [layers, batch, kv_heads, slots, head_dim], or this layer's blocks
  v: Array | tuple
  layer: Array | int
  index: Array | int   # the slot the call's first token is written at
  # The cache was empty (`apply(prefill=True)`): the tokens attend to each other as in a forward
  # without a cache, not over the cache in blocks (`cached_attention`), which for a prompt of
  # t tokens scores t queries against 64-slot blocks one at a time: 2.4x the time of the one
  # causal attention at 680 tokens, batch 8, on this CPU (docs/perf/PERFORMANCE.md).
  prefill: bool = False


class LlamaAttention(nnx.Module):
  def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    d, h = cfg.hidden_size, cfg.head_dim
    b = cfg.attention_bias
    self.q_proj = dense(d, cfg.num_heads * h, ("embed", "heads"), bias=b, cfg=cfg, rngs=rngs)
    self.k_proj = dense(d, cfg.num_kv_heads * h, ("embed", "kv_heads"), bias=b, cfg=cfg, rngs=rngs)
    self.v_proj = dense(d, cfg.num_kv_heads * h, ("embed", "kv_heads"), bias=b, cfg=cfg, rngs=rngs)
    self.o_proj = dense(cfg.num_heads * h, d, ("heads", "embed"), bias=b, cfg=cfg, rngs=rngs)

  def __call__(self, x: Array, cos: Array, sin: Array, mask: Array,
               cache: LayerCache | None = None):
    """cache: None (training), or this layer's `LayerCache`: the new keys and values are written
    at slot `cache.index`."""
    cfg = self.cfg
    t = x.shape[1]
    split = lambda y, kind: constrain(einops.rearrange(y, "b t (n h) -> b t n h", h=cfg.head_dim),
                                      BATCH, LENGTH, kind, None)
    q = apply_rope(split(self.q_proj(x), "activation_heads"), cos, sin)
    k = apply_rope(split(self.k_proj(x), "activation_kv_heads"), cos, sin)
    v = split(self.v_proj(x), "activation_kv_heads")
    if cache is None:
      out = attention(q, k, v, mask, cfg.attention_impl, causal=True)  # `causal_mask`'s
    elif isinstance(cache.k, tuple):   # blocks (`layers.as_blocks`): a decode step
      ck, cv = (_write_last_block(c, y, cache.index) for c, y in ((cache.k, k), (cache.v, v)))
      out = block_attention(q, ck, cv, mask)
      cache = cache._replace(k=ck, v=cv)
    else:  # written in place; attention reads the filled slots only
      put = lambda c, y: update_slice(c, einops.rearrange(y, "b t n h -> 1 b n t h"),
                                      (cache.layer, 0, 0, cache.index, 0))
      ck, cv = put(cache.k, k), put(cache.v, v)
      if cache.prefill:   # the tokens are the cache's first: they attend to each other only
        out = attention(q, k, v, mask[..., :t], cfg.attention_impl, causal=True)
      else:
        out = cached_attention(q, ck, cv, cache.layer, mask, cache.index + t)
      cache = cache._replace(k=ck, v=cv)
    return self.o_proj(einops.rearrange(out, "b t n h -> b t (n h)")), cache


def _write_last_block(blocks: tuple[Array, ...], y: Array, index) -> tuple[Array, ...]:
  """One token's keys or values y [batch, 1, kv_heads, head_dim] written at slot `index`, which
  lies in the last of a layer's blocks (the block a decode phase writes)."""
  if y.shape[1] != 1:
    raise ValueError(f"a cache held as blocks takes one token per step, got {y.shape[1]}: "
                     "prefill with the cache as init_cache makes it")
  last = blocks[-1]
  offset = index - (len(blocks) - 1) * last.shape[2]
  return blocks[:-1] + (update_slice(last, einops.rearrange(y, "b t n h -> b n t h"),
                                     (0, 0, offset, 0)),)


class LlamaMLP(nnx.Module):
  def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs):
    d, f, b = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
    self.act = activation(cfg.hidden_act)
    self.gate_proj = dense(d, f, ("embed", "mlp"), bias=b, cfg=cfg, rngs=rngs)
    self.up_proj = dense(d, f, ("embed", "mlp"), bias=b, cfg=cfg, rngs=rngs)
    self.down_proj = dense(f, d, ("mlp", "embed"), bias=b, cfg=cfg, rngs=rngs)

  def __call__(self, x: Array) -> Array:
    h = constrain(self.act(self.gate_proj(x)) * self.up_proj(x), BATCH, LENGTH, "activation_mlp")
    return self.down_proj(h)


class LlamaDecoderLayer(nnx.Module):
  def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs):
    self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg)
    self.self_attn = LlamaAttention(cfg, rngs=rngs)
    self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg)
    self.mlp = LlamaMLP(cfg, rngs=rngs)

  def __call__(self, x, cos, sin, mask, cache=None):
    x = constrain(x, BATCH, LENGTH, EMBED)
    h, cache = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
    x = x + h
    return x + self.mlp(self.post_attention_layernorm(x)), cache


class LMOutput(NamedTuple):
  logits: Array | None
  cache: dict[str, Array] | None
  hidden: Array | None = None   # the final norm's output, when asked for instead of logits


class LlamaForCausalLM(nnx.Module):
  def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embed_tokens = nnx.Embed(
        cfg.vocab_size, cfg.hidden_size, dtype=dtype_of(cfg.dtype),
        param_dtype=dtype_of(cfg.param_dtype), embedding_init=logical(normal(), "vocab", "embed"),
        rngs=rngs)
    self.layers = stacked(lambda r: LlamaDecoderLayer(cfg, rngs=r), cfg.num_layers, rngs)
    self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg)
    if not cfg.tie_word_embeddings:
      self.lm_head = dense(cfg.hidden_size, cfg.vocab_size, ("embed", "vocab"), bias=False,
                           cfg=cfg, rngs=rngs)

  @property
  def window(self) -> int | None:
    return self.cfg.sliding_window if self.cfg.model_type == "mistral" else None

  def embed(self, input_ids: Array) -> Array:
    return self.embed_tokens(jnp.asarray(input_ids, jnp.int32))

  def init_cache(self, batch: int, max_len: int, dtype=None) -> dict[str, Array]:
    """An empty KV cache of `max_len` slots (prompt, padding included, plus new tokens): keys and
    values [layers, batch, kv_heads, slots, head_dim], in bf16/f16 on one CPU device held as
    their uint16 bit patterns (`layers.cache_storage`)."""
    cfg = self.cfg
    shape = (cfg.num_layers, batch, cfg.num_kv_heads, max_len, cfg.head_dim)
    dt = cache_storage(dtype_of(dtype or cfg.dtype), dtype_of(cfg.dtype))
    return dict(k=jnp.zeros(shape, dt), v=jnp.zeros(shape, dt),
                valid=jnp.zeros((batch, max_len), bool), index=jnp.zeros((), jnp.int32))

  def apply(self, input_ids: Array | None = None, *, inputs_embeds: Array | None = None,
            attention_mask: Array | None = None, positions: Array | None = None,
            cache: dict[str, Array] | None = None, last_only: bool = False,
            segment_ids: Array | None = None, return_hidden: bool = False,
            prefill: bool = False) -> LMOutput:
    """Logits (and the updated cache when one is given).

    attention_mask: [batch, seq], 1 for tokens, 0 for padding. positions default to 0..seq-1 as in
    the reference's forward (callers with left padding pass `positions_from_mask`); with a cache
    they default to the slots being written. segment_ids: [batch, seq] for packed rows (1, 2, ...
    per example, 0 for padding): attention stays within a segment, and positions default to
    restarting at 0 in each; training only (no cache). return_hidden: the final norm's output
    [batch, seq, hidden] in `hidden` and no logits (a loss that projects only some positions
    through `head_operands`). prefill: with a cache, these tokens are its first (written from slot
    0, whatever `index` says): they attend to each other as without a cache, and their keys and
    values fill the cache (`LayerCache.prefill`); `mathvlm.generate.decode`'s prompt.
    """
    cfg = self.cfg
    x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
    b, t = x.shape[:2]
    mask_in = (jnp.ones((b, t), bool) if attention_mask is None
               else jnp.asarray(attention_mask).astype(bool))
    if segment_ids is not None and cache is not None:
      raise ValueError("segment_ids (packed rows) are for training; decoding with a cache takes "
                       "one sequence per row")
    if prefill and cache is None:
      raise ValueError("prefill=True fills a cache: pass the cache (init_cache)")
    if cache is not None and prefill:
      cache = dict(cache, index=0)
    mask, pos, valid = self._mask_and_positions(b, t, mask_in, positions, cache, segment_ids)
    cos, sin = rope_cos_sin(jnp.broadcast_to(pos, (b, t)), cfg, x.dtype)
    x, new_cache = self._layers(x, cos, sin, mask, cache, valid, prefill)
    x = constrain(self.norm(x), BATCH, LENGTH, EMBED)
    if last_only:
      x = x[:, -1:]
    if return_hidden:
      return LMOutput(None, new_cache, x)
    return LMOutput(self.head(x), new_cache)

  def _mask_and_positions(self, b, t, mask_in, positions, cache, segment_ids):
    """(attention mask, positions, the cache's valid slots or None)."""
    if cache is None:
      slots = jnp.arange(t)
      seg = None if segment_ids is None else jnp.asarray(segment_ids, jnp.int32)
      mask = causal_mask(slots, slots, mask_in, self.window, seg)
      if positions is not None:
        return mask, jnp.asarray(positions), None
      return mask, (slots[None] if seg is None else positions_from_segments(seg)), None
    index = cache["index"]
    q_slots = index + jnp.arange(t)
    valid = jax.lax.dynamic_update_slice(cache["valid"], mask_in, (0, index))
    mask = causal_mask(q_slots, jnp.arange(cache["valid"].shape[1]), valid, self.window)
    return mask, (q_slots[None] if positions is None else jnp.asarray(positions)), valid

  def _layers(self, x, cos, sin, mask, cache, valid, prefill: bool = False):
    """The scanned decoder stack; with a cache, each layer writes its keys and values."""
    if cache is None and isinstance(self.layers, nnx.List):   # `for_decoding`'s view
      for blk in self.layers:
        x = blk(x, cos, sin, mask)[0]
      return x, None
    if cache is None:
      def body(blk, h, _):
        return blk(h, cos, sin, mask)[0], None

      x, _ = scan_layers(self.layers, body, x, remat=self.cfg.remat,
                         unroll=self.cfg.scan_unroll)
      return x, None
    index = cache["index"]

    def body(blk, carry, layer):
      h, ck, cv = carry
      h, c = blk(h, cos, sin, mask, LayerCache(ck, cv, layer, index, prefill))
      return (h, c.k, c.v), None

    if isinstance(cache["k"], tuple):   # one tuple of blocks per layer (`layers.as_blocks`)
      if not isinstance(self.layers, nnx.List):
        raise ValueError("a cache held as blocks is for `for_decoding(unstack=True)`'s separate "
                         "layers")
      ks, vs = list(cache["k"]), list(cache["v"])
      for i, blk in enumerate(self.layers):
        x, c = blk(x, cos, sin, mask, LayerCache(ks[i], vs[i], i, index))
        ks[i], vs[i] = c.k, c.v
      ck, cv = tuple(ks), tuple(vs)
    elif isinstance(self.layers, nnx.List):   # `for_decoding`'s separate layers
      ck, cv = cache["k"], cache["v"]
      for i, blk in enumerate(self.layers):
        x, ck, cv = body(blk, (x, ck, cv), i)[0]
    else:
      (x, ck, cv), _ = scan_layers(self.layers, body, (x, cache["k"], cache["v"]),
                                   jnp.arange(self.cfg.num_layers))
    return x, dict(k=ck, v=cv, valid=valid, index=jnp.asarray(index + x.shape[1], jnp.int32))

  def for_decoding(self, unstack: bool | None = None) -> LlamaForCausalLM:
    """This model for a decode loop: with `unstack` (default: on CPU) a view whose layers are
    separate modules (`unstack_layers`: the weights copied once per call, not once per token, at
    the memory of a second copy of the layers); otherwise itself. The model is left as it is."""
    if unstack is None:
      unstack = jax.default_backend() == "cpu"
    if not unstack or isinstance(self.layers, nnx.List):
      return self
    view = nnx.merge(*nnx.split(self))
    view.layers = unstack_layers(view.layers, self.cfg.num_layers)
    return view

  def head(self, x: Array) -> Array:
    """Logits [..., vocab] in cfg.logits_dtype from final-norm outputs."""
    cfg = self.cfg
    logits = self.embed_tokens.attend(x) if cfg.tie_word_embeddings else self.lm_head(x)
    return logits.astype(dtype_of(cfg.logits_dtype))

  def head_operands(self, x: Array) -> tuple[Array, Array] | None:
    """(x, w) with head(x) == x @ w up to rounding, for losses that project only target rows
    (`mathvlm.models.linear_ce`); None when the head is not one matmul (a LoRA on lm_head)."""
    if self.cfg.tie_word_embeddings:
      return x, self.embed_tokens.embedding[...].T
    if self.lm_head.lora is not None:
      return None
    return x.astype(self.lm_head.dtype or x.dtype), self.lm_head.kernel[...]

  def __call__(self, input_ids: Array, attention_mask: Array | None = None,
               positions: Array | None = None) -> Array:
    return self.apply(input_ids, attention_mask=attention_mask, positions=positions).logits
