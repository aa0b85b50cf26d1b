"""Building blocks shared by the towers.

Every parameter carries logical axis names (`embed`, `mlp`, `heads`, `kv_heads`, `vocab`, `layers`,
`norm`); one table in the config maps them to mesh axes (see `mathvlm.sharding`). Layers are stored
stacked along a leading `layers` axis and run with `jax.lax.scan`, so compile time does not grow
with depth, and rematerialisation is a policy name rather than code in each model.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
import math
import types
import typing
from typing import Any, Callable, NamedTuple, Sequence

import einops
import jax
import jax.numpy as jnp
from flax import nnx

from .scan import LOW_PRECISION, from_bits, scan_16bit_residuals, to_bits

Array = jax.Array

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def dtype_of(name: str | Any):
  """Config strings name dtypes so configs stay JSON-serialisable; unknown names fail loudly."""
  if not isinstance(name, str):
    return name
  if name not in DTYPES:
    raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(DTYPES)}")
  return DTYPES[name]


def check_field_types(config) -> None:
  """A model config's fields hold values of their declared types. A hand-edited config.json
  (`"num_hidden_layers": "two"`) otherwise built a config that failed deep inside jax, and a
  string where a flag belongs (`"tie_word_embeddings": "no"`) was true: the export dropped
  lm_head without a word. The ValueError names the field; the readers add the file
  (`checkpoint.config_errors`)."""
  for name, accepted in _accepted_types(type(config)).items():
    value = getattr(config, name)
    if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
      names = " or ".join("None" if t is type(None) else t.__name__ for t in accepted)
      raise ValueError(f"{type(config).__name__}.{name}={value!r}: expected {names}")


@functools.cache
def _accepted_types(cls) -> dict[str, tuple[type, ...]]:
  hints = typing.get_type_hints(cls)
  return {f.name: _types_of(hints[f.name]) for f in dataclasses.fields(cls)}


def _types_of(hint) -> tuple[type, ...]:
  """The classes a value of type `hint` may have: a float field takes an int (JSON's 1 for 1.0),
  a tuple field a list (JSON's and a config override's spelling, compared as equal by
  `pretrained.config_differences`); a bool is an int to Python but not here."""
  if typing.get_origin(hint) in (types.UnionType, typing.Union):
    return tuple(t for arg in typing.get_args(hint) for t in _types_of(arg))
  if hint is float:
    return (float, int)
  if hint is tuple or typing.get_origin(hint) is tuple:
    return (tuple, list)
  return (typing.get_origin(hint) or hint,)


# Hugging Face config fields a model config does not model but keeps for its export (its
# `hf_fields`), except these: the writer's transformers version (an export is not written by
# transformers), the dtype (the export's own parameters' is written) and the source's own path
# and Hub commit (the export is another folder).
NOT_CARRIED = ("transformers_version", "dtype", "torch_dtype", "_name_or_path", "_commit_hash")


def hf_fields_of(d: dict[str, Any], modelled) -> tuple[tuple[str, str], ...]:
  """The fields of a config.json section that the model config does not hold (keys not in
  `modelled`), as sorted (name, JSON text) pairs: kept in the config as it is saved and trained
  (hashable, as a model config must be), and written back by
  `with_hf_fields` on export, so an export says everything its source said (a CLIP's text
  bos/pad ids, a tower's projection_dim, initializer_range...) though the model never reads it."""
  return tuple(sorted((k, json.dumps(v)) for k, v in d.items()
                      if k not in modelled and k not in NOT_CARRIED))


def with_hf_fields(out: dict[str, Any], fields) -> dict[str, Any]:
  """`out` (what the model config writes, which wins) plus the carried fields (`hf_fields_of`)."""
  return out | {k: json.loads(v) for k, v in fields if k not in out}


RUNTIME_FIELDS = ("dtype", "param_dtype", "remat", "attention_impl", "scan_unroll")


def with_runtime(cfg, **overrides):
  """A model config with runtime settings (dtype, param_dtype, remat, attention_impl) applied to
  every tower; the architecture is untouched."""
  bad = set(overrides) - set(RUNTIME_FIELDS)
  if bad:
    raise ValueError(f"unknown model override(s) {sorted(bad)}; allowed: {RUNTIME_FIELDS}")
  changes = {k: v for k, v in overrides.items() if hasattr(cfg, k)}
  for field in dataclasses.fields(cfg):
    value = getattr(cfg, field.name)
    if dataclasses.is_dataclass(value):
      changes[field.name] = with_runtime(value, **overrides)
  return dataclasses.replace(cfg, **changes)


def logical(init: Callable, *names: str | None) -> Callable:
  """An initializer whose Param records logical axis names.

  Placement happens later, from the config's table, so the models never need a mesh to be built
  (eager sharding off).
  """
  return nnx.with_partitioning(init, tuple(names), eager_sharding=False)


def normal(std: float = 0.02):
  return nnx.initializers.normal(std)


def _dot_f32(x: Array, w: Array) -> Array:
  """x [..., din] @ w [din, dout] with a float32 accumulator and result."""
  return jax.lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())),
                             preferred_element_type=jnp.float32)


@jax.custom_vjp
def matmul(x: Array, w: Array) -> Array:
  """x @ w.astype(x.dtype), accumulated and returned in float32, with a hand-written gradient.

  Why the custom gradient, for two reasons:
  - Low precision: autodiff sends the float32 cotangent of the result straight into the backward
    matmuls, so both (input and weight gradients) would run as float32 matmuls on converted copies,
    at a third of the bf16-with-float32-accumulator rate on this CPU (ENV.md: ~280 vs ~785
    GFLOP/s) and off the fast path of accelerators too. Here the cotangent is rounded to x's dtype
    first, as PyTorch autocast and mixed-precision training on GPU/TPU do, and both backward
    matmuls accumulate in float32.
  - Every dtype: the weight gradient is one 2-D matmul over the flattened rows, [rows, din]^T x
    [rows, dout]. Autodiff writes it as a contraction of [B, T, din] with [B, T, dout] over two
    axes, which XLA:CPU lays out with a transposing copy of the activation's gradient (the
    profile's ~1 s of transposing fusions in the float32 `small` step); the flat form reads both
    as they lie. Same products, same order: at XLA's default optimisation level the float32
    gradients are bitwise autodiff's (`benchmarks/matmul_grad.py`, tests/unit/test_layers.py), and
    the `small` SwiGLU MLP's forward and backward ran in 226 ms against 291
    (docs/perf/PERFORMANCE.md).
  The weight gradient comes back in w's own (storage) dtype.
  """
  return _dot_f32(x, w.astype(x.dtype))


def _matmul_fwd(x, w):
  return matmul(x, w), (x, w)


def _matmul_bwd(res, g):
  x, w = res
  g = g.astype(x.dtype)
  wc = w.astype(x.dtype)
  dx = jax.lax.dot_general(g, wc, (((g.ndim - 1,), (1,)), ((), ())),
                           preferred_element_type=jnp.float32).astype(x.dtype)
  dw = contract_rows(x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1]))
  return dx, dw.astype(w.dtype)


def one_cpu_device() -> bool:
  """Whether this run is on a single CPU device: where CPU-only code paths apply. Several CPU
  devices stand in for an accelerator mesh (compile-only reports, sharding tests) and take the
  accelerators' paths."""
  return jax.default_backend() == "cpu" and jax.device_count() == 1


def cache_storage(dtype, compute_dtype):
  """The dtype a KV cache of `dtype` is held in: uint16 bit patterns for a bf16/f16 cache in the
  compute dtype on a single CPU device, the dtype itself elsewhere.

  XLA:CPU computes a 16-bit float (dynamic-update-)slice in float32, converting the whole buffer
  at every layer of every token: a bf16 batch-8 decode call ran at half the float32 call's speed
  and a third of torch's bf16 `generate`. Bitcasting a float cache to bits for each write still
  copied it whole at the first and last layer of a step; a cache held as bits is written in
  place and read a block at a time (docs/perf/PERFORMANCE.md)."""
  if dtype in LOW_PRECISION and dtype == compute_dtype and one_cpu_device():
    return jnp.uint16
  return dtype


def update_slice(buf: Array, update: Array, start) -> Array:
  """`jax.lax.dynamic_update_slice` of a KV cache: the update cast to the buffer's dtype, or
  bitcast to a cache held as bits (`cache_storage`)."""
  if buf.dtype == jnp.uint16:
    if update.dtype not in LOW_PRECISION:
      raise TypeError(f"a KV cache held as bits (layers.cache_storage) takes the bf16/f16 keys "
                      f"and values it was made for, got {update.dtype}: make the cache with "
                      "init_cache in the model's compute dtype")
    return jax.lax.dynamic_update_slice(buf, to_bits(update), start)
  return jax.lax.dynamic_update_slice(buf, update.astype(buf.dtype), start)


def read_slice(buf: Array, start, sizes, dtype) -> Array:
  """`jax.lax.dynamic_slice` of a KV cache as `dtype` (a cache held as bits: its 16-bit floats)."""
  return cache_values(jax.lax.dynamic_slice(buf, start, sizes), dtype)


def cache_values(part: Array, dtype) -> Array:
  """Part of a KV cache as `dtype` (a cache held as bits: its 16-bit floats)."""
  return from_bits(part, dtype) if part.dtype == jnp.uint16 else part.astype(dtype)


def contract_rows(a: Array, b: Array) -> Array:
  """a [rows, m]^T @ b [rows, n] -> [m, n] float32: a weight gradient.

  On CPU in low precision, a is first copied transposed, through a transpose XLA cannot turn
  into a layout (its rows split in pairs). XLA:CPU has no bf16 kernel for a product that
  contracts both operands' leading axis, nor for one whose operand is a transposed layout: it
  converted both to float32 and ran Eigen's float32 product, ~130 GFLOP/s for the `small` MLP's
  [2048, 512] x [2048, 1408], against ~420 for the copy (a 2 MB bf16 [512, 2048]) and the bf16
  product (YNNPACK), and the same sums in another order (docs/perf/PERFORMANCE.md). In float32
  the copy makes it slower (~100 against ~160), and accelerators contract either form natively,
  so both keep the plain product, as do several CPU devices standing in for an accelerator mesh
  (the rule of `platform_unroll`), where the copy would also move sharded rows."""
  rows, m = a.shape
  if one_cpu_device() and a.dtype in LOW_PRECISION and rows % 2 == 0:
    at = jnp.transpose(a.reshape(rows // 2, 2, m), (2, 0, 1)).reshape(m, rows)
    return jax.lax.dot_general(at, b, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  return jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


# ---------------------------------------------------------------------------------------------
# LoRA dropout (PEFT's lora_dropout), on while a train step traces its loss.

class _AdapterDropout(NamedTuple):
  key: Array     # the forward's key; inside a scanned stack, its layer's (`scan_layers`)
  rate: float


# None except inside `adapter_dropout`: evaluation, sampling and the passes a step makes outside
# its gradient (reference and old-policy log-probs) never drop anything.
_ADAPTER_DROPOUT: contextvars.ContextVar = contextvars.ContextVar("adapter_dropout",
                                                                  default=None)


@contextlib.contextmanager
def adapter_dropout(key: Array | None, rate: float):
  """Forwards traced inside drop each element of a LoRA adapter's input with probability `rate`
  and scale the kept ones by 1 / (1 - rate): PEFT's `lora_B(lora_A(dropout(x))) * scaling`, the
  frozen path `W x` seeing x whole. key: a jax PRNG key; None (or rate 0) drops nothing.

  A setting read while tracing, not RNG state the model carries: the masks are a function of
  `key`, the adapter's path (`Dense.lora_stream`) and, in a scanned stack, the layer's index,
  so a step traced again, rematerialised or resumed draws the same masks."""
  token = _ADAPTER_DROPOUT.set(_AdapterDropout(key, float(rate))
                               if key is not None and rate else None)
  try:
    yield
  finally:
    _ADAPTER_DROPOUT.reset(token)


@contextlib.contextmanager
def _layer_dropout(dropout: _AdapterDropout, layer: Array):
  """Layer `layer` of a stack draws masks of its own: its adapters share one path (and stream)
  with every other layer's."""
  token = _ADAPTER_DROPOUT.set(dropout._replace(key=jax.random.fold_in(dropout.key, layer)))
  try:
    yield
  finally:
    _ADAPTER_DROPOUT.reset(token)


def _adapter_input(x: Array, stream: int) -> Array:
  """x as an adapter reads it: whole, or with PEFT's dropout inside `adapter_dropout`."""
  dropout = _ADAPTER_DROPOUT.get()
  if dropout is None:
    return x
  keep = jax.random.bernoulli(jax.random.fold_in(dropout.key, stream), 1.0 - dropout.rate,
                              x.shape)
  return jnp.where(keep, x / jnp.asarray(1.0 - dropout.rate, x.dtype), jnp.zeros((), x.dtype))


class Dense(nnx.Linear):
  """nnx.Linear that accumulates in float32 and returns the compute dtype.

  Low-precision inputs with a float32 accumulator is the fast path on CPUs with bf16 units
  (ENV.md: ~785 vs ~280 GFLOP/s for bf16-out) and what GPU/TPU matmul units do anyway; the
  activations stay in the compute dtype, and so do the backward matmuls (`matmul`).
  The bias is rounded to the compute dtype and added in float32, as nnx.Linear adds it.
  """

  lora: nnx.LoRA | None = None   # attached by `mathvlm.models.lora.add_lora`
  lora_scale: float = 1.0
  lora_stream: int = 0           # the adapter's dropout stream: a hash of its path (`add_lora`)

  def __call__(self, x: Array) -> Array:
    dtype = self.dtype or x.dtype
    y = matmul(x.astype(dtype), self.kernel[...])
    if self.bias is not None:
      y = y + self.bias[...].astype(dtype)
    if self.lora is not None:
      adapter = self.lora(_adapter_input(x, self.lora_stream))
      y = y + self.lora_scale * adapter.astype(y.dtype)
    return y.astype(dtype)


def dense(din: int, dout: int, axes: tuple[str | None, str | None], *, bias: bool, cfg, rngs,
          std: float = 0.02) -> Dense:
  """A Linear with logical axes; `cfg.dtype` is the matmul dtype, `cfg.param_dtype` the storage
  one."""
  return Dense(
      din, dout, use_bias=bias,
      dtype=dtype_of(cfg.dtype), param_dtype=dtype_of(cfg.param_dtype),
      preferred_element_type=jnp.float32,
      kernel_init=logical(normal(std), *axes),
      bias_init=logical(nnx.initializers.zeros_init(), axes[1]),
      rngs=rngs)


def layer_norm(dim: int, eps: float, cfg, rngs) -> nnx.LayerNorm:
  # Two-pass variance, as PyTorch computes it: the fast E[x^2]-E[x]^2 form costs parity.
  return nnx.LayerNorm(
      dim, epsilon=eps, use_fast_variance=False,
      dtype=dtype_of(cfg.dtype), param_dtype=dtype_of(cfg.param_dtype),
      scale_init=logical(nnx.initializers.ones_init(), "norm"),
      bias_init=logical(nnx.initializers.zeros_init(), "norm"),
      rngs=rngs)


class RMSNorm(nnx.Module):
  """Llama's RMSNorm in the reference's order: normalise in float32, cast back, then scale."""

  def __init__(self, dim: int, eps: float, cfg):
    self.eps = eps
    self.weight = nnx.Param(jnp.ones((dim,), dtype_of(cfg.param_dtype)),
                            out_sharding=("norm",), eager_sharding=False)

  def __call__(self, x: Array) -> Array:
    dtype = x.dtype
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    if dtype in LOW_PRECISION:
      return _scaled(self.weight[...], x32.astype(dtype))
    return self.weight[...].astype(dtype) * x32.astype(dtype)


@jax.custom_vjp
def _scaled(w: Array, xn: Array) -> Array:
  """w.astype(xn.dtype) * xn for low-precision xn, whose weight gradient sums its rows in float32.

  Autodiff sums the [rows, dim] products in the low dtype: XLA:CPU splits that reduction into a
  strided reduce-window (~6 ms a norm for the `small` preset's [2048, 512], 2 MB of products)
  and the bf16 result was off by up to 2 on sums of ~30 (7%); here the products and their sum
  are float32 (0.4 ms, error ~1e-5), as in PyTorch, whose float32 norm weight times the bf16
  activations promotes to float32. The input gradient is autodiff's."""
  return w.astype(xn.dtype) * xn


def _scaled_fwd(w, xn):
  return _scaled(w, xn), (w, xn)


def _scaled_bwd(res, g):
  w, xn = res
  rows = tuple(range(xn.ndim - 1))
  dw = jnp.sum(g.astype(jnp.float32) * xn.astype(jnp.float32), axis=rows)
  return dw.astype(w.dtype), g * w.astype(xn.dtype)


_scaled.defvjp(_scaled_fwd, _scaled_bwd)


def quick_gelu(x: Array) -> Array:
  return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "quick_gelu": quick_gelu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "silu": jax.nn.silu,
}


def activation(name: str) -> Callable[[Array], Array]:
  if name not in ACTIVATIONS:
    raise ValueError(f"unsupported activation {name!r}; supported: {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


NEG = -0.7 * float(jnp.finfo(jnp.float32).max)   # jax's masked score: finite, so a fully masked
                                                 # row is uniform rather than NaN


ATTENTION_IMPLS = ("grouped", "xla", "cudnn")  # `attention`'s impl besides None (by platform)


def attention(q: Array, k: Array, v: Array, mask: Array | None, impl: str | None = None,
              causal: bool = False) -> Array:
  """Softmax attention. q: [batch, q_len, heads, head_dim]; k, v: [batch, kv_len, kv_heads,
  head_dim] (grouped-query attention when kv_heads < heads); mask: boolean, broadcastable to
  [batch, heads, q_len, kv_len]; causal: the caller promises the mask lets no query see a later
  key (the decoder without a cache), which `grouped_attention` uses to skip those blocks.

  impl None picks by platform: on CPU `grouped_attention` (jax's XLA path vmaps over the query
  groups, which materialises the mask broadcast to every head and group, and a copy of it per
  layer for the backward pass); elsewhere `jax.nn.dot_product_attention`, which can pick a fused
  kernel. 'grouped' forces ours; 'xla' / 'cudnn' force jax's.
  """
  if impl == "grouped" or (impl is None and jax.default_backend() == "cpu"):
    return grouped_attention(q, k, v, mask, causal)
  return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=impl)


# Query rows per block of a long causal attention in `grouped_attention`. On a 2-core CPU the
# `small` preset's [4, 4, 2, 512, 512] float32 scores took 6.3x the time of 256 rows, not 4x
# (they outgrow the cache), and blocks of 128 rows gained nothing more (docs/perf/PERFORMANCE.md).
CAUSAL_BLOCK = 256


def grouped_attention(q: Array, k: Array, v: Array, mask: Array | None,
                      causal: bool = False) -> Array:
  """jax.nn.dot_product_attention's arithmetic (scores in float32, scaled after the matmul,
  masked to a large negative number so a fully masked row is uniform, not NaN) with the query
  heads grouped per key head: scores [batch, kv_heads, group, q, k], the mask broadcast inside
  the fused select only. Both matmuls accumulate in float32. The backward pass recomputes the
  probabilities from q, k and the log-sum-exp (`_attend`), as flash attention does.

  causal, with at least 2 * CAUSAL_BLOCK queries: each block of CAUSAL_BLOCK queries is scored
  against the keys up to its own end only, so the blocks above the diagonal, which the mask
  zeroes anyway, are never computed (3/8 of the scores at 512 tokens, and what remains runs in
  cache-sized pieces). A query's output is the same up to float rounding (the sums run over fewer
  exact zeros), except in a row with no visible key at all (left padding), which averages the
  keys up to its block's end instead of all keys: rows whose output nothing reads. Shorter
  sequences (the demo's, the tests' parity models) take the one-block path unchanged."""
  if causal and mask is None:
    raise ValueError("grouped_attention: causal=True promises a mask that hides later keys; "
                     "pass that mask (layers.causal_mask)")
  t = q.shape[1]
  if not causal or t != k.shape[1] or t < 2 * CAUSAL_BLOCK:
    return _grouped(q, k, v, mask)
  outs = []
  for start in range(0, t, CAUSAL_BLOCK):
    end = min(t, start + CAUSAL_BLOCK)
    outs.append(_grouped(q[:, start:end], k[:, :end], v[:, :end], _mask_block(mask, start, end)))
  return jnp.concatenate(outs, axis=1)


def _mask_block(mask: Array, start: int, end: int) -> Array:
  """The mask's rows start..end and columns 0..end (a broadcast axis of size 1 stays whole)."""
  m = jnp.asarray(mask)
  rows = slice(start, end) if m.shape[-2] > 1 else slice(None)
  cols = slice(0, end) if m.shape[-1] > 1 else slice(None)
  return m[..., rows, cols]


def _grouped(q: Array, k: Array, v: Array, mask: Array | None) -> Array:
  groups = q.shape[2] // k.shape[2]
  qg = einops.rearrange(q, "b t (k g) h -> b k g t h", g=groups)
  if mask is None:
    m = jnp.ones((1, 1, 1, q.shape[1], k.shape[1]), bool)
  else:
    m = jnp.asarray(mask, bool)
    m = m.reshape(m.shape[:2] + (1,) + m.shape[2:]) if m.shape[1] == 1 else einops.rearrange(
        m, "b (k g) t s -> b k g t s", g=groups)
  return einops.rearrange(_attend(qg, k, v, m), "b k g t h -> b t (k g) h")


def _scores(qg, k, m):
  s = jnp.einsum("bkgth,bskh->bkgts", qg, k, preferred_element_type=jnp.float32)
  s = s * jnp.float32(1.0 / math.sqrt(qg.shape[-1]))  # as jax: 1 / sqrt(head_dim)
  return jnp.where(m, s, jnp.float32(NEG))


def _attend_fwd(qg, k, v, m):
  s = _scores(qg, k, m)
  top = jnp.max(s, axis=-1, keepdims=True)
  e = jnp.exp(s - top)
  total = jnp.sum(e, axis=-1, keepdims=True)
  probs = (e / total).astype(v.dtype)                 # jax.nn.softmax's arithmetic
  out = jnp.einsum("bkgts,bskh->bkgth", probs, v, preferred_element_type=jnp.float32)
  out = out.astype(v.dtype)
  return out, (qg, k, v, m, out, top, total)


@jax.custom_vjp
def _attend(qg: Array, k: Array, v: Array, m: Array) -> Array:
  """Grouped softmax attention [b, k, g, t, h]; its gradient keeps no [t, s] probabilities.

  Autodiff would save the float32 probabilities of every layer for the backward pass (for the
  `small` preset 268 MB, zero-filled, written and read back through the layer scan); here the
  residuals are q, k, v, the output and the softmax's max and sum per query (not one log-sum-exp:
  a fully masked row's would round to the masked score itself), and the backward pass recomputes
  the scores (one extra q.k matmul)."""
  return _attend_fwd(qg, k, v, m)[0]


def _attend_bwd(res, do):
  qg, k, v, m, out, top, total = res
  p = jnp.exp(_scores(qg, k, m) - top) / total       # the forward's probabilities, exactly
  do = do.astype(v.dtype)
  f32 = dict(preferred_element_type=jnp.float32)
  dv = jnp.einsum("bkgts,bkgth->bskh", p.astype(v.dtype), do, **f32)
  dp = jnp.einsum("bkgth,bskh->bkgts", do, v, **f32)
  delta = jnp.sum(do.astype(jnp.float32) * out.astype(jnp.float32), axis=-1, keepdims=True)
  ds = jnp.where(m, p * (dp - delta), 0.0) * jnp.float32(1.0 / math.sqrt(qg.shape[-1]))
  ds = ds.astype(qg.dtype)
  dq = jnp.einsum("bkgts,bskh->bkgth", ds, k, **f32)
  dk = jnp.einsum("bkgts,bkgth->bskh", ds, qg, **f32)
  return dq.astype(qg.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None


_attend.defvjp(_attend_fwd, _attend_bwd)


def kv_block(slots: int) -> int:
  """The block of cache slots decoding attends to at a time: the largest of 256, 128, ... 8
  that divides the cache (64 at most on CPU), else the whole cache (one block).

  The last block is read whole, filled or not. On CPU a step is bound by the bytes it reads, so
  smaller blocks win: `small`'s batch-8 decode (512 slots, 289-416 filled) read both 256-slot
  blocks, ~67 MB a step, and ran 7-20% faster with 128 and another ~5% with 64 (docs/perf/
  PERFORMANCE.md). On accelerators each block is a few kernel launches per layer and step, so
  they keep the larger blocks."""
  largest = 64 if jax.default_backend() == "cpu" else 256
  return next((b for b in (256, 128, 64, 32, 16, 8) if b <= largest and slots % b == 0), slots)


def one_token_scores_as_matvecs(qg: Array) -> bool:
  """Whether `block_scores` scores one query token per group as matrix-vector products: float32
  on CPU. XLA:CPU hands the batched [batch, kv_heads, groups, 1, head_dim] x [.., slots, head_dim]
  dot to YNNPACK, which is slow at that shape (two rows a matrix); with one row a matrix YNNPACK
  declines and XLA's own kernel runs it. `small`'s batch-8 decode attention alone (8 layers x 6
  blocks, a jitted loop) took 3.3 against 4.8 ms a step in float32, and the whole batch-8 call
  3.08 against 3.18 s (medians of 21, tokens identical; docs/perf/PERFORMANCE.md). In bf16 the
  split form was slower (4.3 against 3.2 ms), and accelerators have their own kernels."""
  return qg.shape[3] == 1 and qg.dtype == jnp.float32 and jax.default_backend() == "cpu"


def block_scores(qg: Array, kb: Array) -> Array:
  """Raw scores [batch, kv_heads, groups, t, slots] of grouped queries qg [batch, kv_heads, groups,
  t, head_dim] against a block of keys kb [batch, kv_heads, slots, head_dim], in float32; one
  matrix-vector product per query group where `one_token_scores_as_matvecs` (the same sums, in
  another order: ~1e-7 apart)."""
  if not one_token_scores_as_matvecs(qg):
    return jnp.einsum("bkgth,bksh->bkgts", qg, kb, preferred_element_type=jnp.float32)
  per_group = [jnp.einsum("bkh,bksh->bks", qg[:, :, i, 0], kb, preferred_element_type=jnp.float32)
               for i in range(qg.shape[2])]
  return jnp.stack(per_group, axis=2)[:, :, :, None]


def _attend_block(carry, qg: Array, kb: Array, vb: Array, mb: Array):
  """One block of keys and values [batch, kv_heads, slots, head_dim] folded into the running
  softmax (max, sum, weighted values) of grouped queries qg [batch, kv_heads, groups, t, head_dim];
  mb: the block's boolean mask [batch|1, 1, t, slots]."""
  top, total, acc = carry
  s = block_scores(qg, kb)
  s = jnp.where(mb.reshape(mb.shape[:2] + (1,) + mb.shape[2:]),
                s * jnp.float32(1.0 / math.sqrt(qg.shape[-1])), jnp.float32(NEG))
  new_top = jnp.maximum(top, jnp.max(s, axis=-1))
  p = jnp.exp(s - new_top[..., None])
  fade = jnp.exp(top - new_top)
  pv = jnp.einsum("bkgts,bksh->bkgth", p.astype(vb.dtype), vb, preferred_element_type=jnp.float32)
  return new_top, total * fade + jnp.sum(p, axis=-1), acc * fade[..., None] + pv


def _blockwise(q: Array, kv: int, fold) -> Array:
  """Attention of q [batch, t, heads, head_dim] whose blocks `fold(carry, qg)` adds up."""
  qg = einops.rearrange(q, "b t (k g) h -> b k g t h", k=kv)
  stats = qg.shape[:4]
  init = (jnp.full(stats, -jnp.inf, jnp.float32), jnp.zeros(stats, jnp.float32),
          jnp.zeros(qg.shape, jnp.float32))
  _, total, acc = fold(init, qg)
  out = (acc / total[..., None]).astype(q.dtype)
  return einops.rearrange(out, "b k g t h -> b t (k g) h")


def cached_attention(q: Array, k_cache: Array, v_cache: Array, layer, mask: Array, filled
                     ) -> Array:
  """Attention of q [batch, t, heads, head_dim] over slots [0, filled) of one layer of a KV cache
  [layers, batch, kv_heads, slots, head_dim], block by block with a running softmax (max, sum).
  Slots next to head_dim, so that a block is contiguous per head and the dots read it as it lies
  (with slots before the heads XLA:CPU transposed every block: a quarter of a decode call).

  Decoding reads only the filled part of the cache, in place: a loop over `kv_block` slots whose
  trip count follows `filled`, instead of slicing the layer's whole buffer (a copy of every slot,
  written or not) and scoring it. mask: boolean [batch|1, 1, t, slots]. Masked scores take
  `grouped_attention`'s large negative number, so the result equals it up to rounding.
  """
  b, _, _, h = q.shape
  kv, block = k_cache.shape[2], kv_block(k_cache.shape[3])

  def body(j, carry, qg):
    start = (layer, 0, 0, j * block, 0)
    kb = read_slice(k_cache, start, (1, b, kv, block, h), q.dtype)[0]
    vb = read_slice(v_cache, start, (1, b, kv, block, h), q.dtype)[0]
    mb = jax.lax.dynamic_slice_in_dim(mask, j * block, block, axis=3)
    return _attend_block(carry, qg, kb, vb, mb)

  return _blockwise(q, kv, lambda init, qg: jax.lax.fori_loop(
      0, (filled + block - 1) // block, lambda j, c: body(j, c, qg), init))


def as_blocks(buf: Array, block: int) -> tuple[tuple[Array, ...], ...]:
  """A KV cache [layers, batch, kv_heads, slots, head_dim] as one tuple per layer of its
  `block`-slot blocks [batch, kv_heads, block, head_dim], each an array of its own: the layout of
  `block_attention` (`mathvlm.generate.decode`'s steps on one CPU device)."""
  return tuple(tuple(buf[layer, :, :, j:j + block] for j in range(0, buf.shape[3], block))
               for layer in range(buf.shape[0]))


def block_attention(q: Array, k_blocks: Sequence[Array], v_blocks: Sequence[Array], mask: Array
                    ) -> Array:
  """`cached_attention` over a cache held as separate blocks (`as_blocks`), all of them read.

  Why: XLA:CPU copies a block out of the cache before the dots read it (a `dynamic_slice` is a
  copy, ~5 ms of a ~20 ms `small` batch-8 decode step), while a block that is an array of its own
  is read in place. The decode loop passes the blocks up to the one being written (a phase of
  steps per block), so every block read holds filled or masked slots. mask: boolean
  [batch|1, 1, t, slots], the blocks' slots first.
  """
  block = k_blocks[0].shape[2]

  def fold(carry, qg):
    for j, (kb, vb) in enumerate(zip(k_blocks, v_blocks)):
      carry = _attend_block(carry, qg, cache_values(kb, q.dtype), cache_values(vb, q.dtype),
                            mask[..., j * block:(j + 1) * block])
    return carry

  return _blockwise(q, k_blocks[0].shape[1], fold)


# ---------------------------------------------------------------------------------------------
# Stacked, scanned layers.

REMAT_POLICIES: dict[str, Any] = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "save_everything": jax.checkpoint_policies.everything_saveable,
}


def stacked(make_block: Callable[[nnx.Rngs], nnx.Module], num: int, rngs: nnx.Rngs) -> nnx.Module:
  """`num` independently initialised copies of a block, parameters stacked on a `layers` axis."""

  @nnx.split_rngs(splits=num)
  @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
  def create(rngs):
    return make_block(rngs)

  return create(rngs)


def platform_unroll() -> int | bool:
  """What `model.scan_unroll=0` runs: every layer unrolled on a single CPU device, a scan of one
  layer per iteration anywhere else.

  Why: with the layers in a loop, XLA:CPU cannot fuse across iterations, and it computed
  jax.lax.scan's stacks of bfloat16 saved activations in float32, whole (now stacked as 16-bit
  integers instead: `scan.scan_16bit_residuals`); unrolled, the `small` step ran 1.18-1.28x
  faster in bfloat16 before that fix, 1.06-1.10x after it, and 1.05x in float32 (one-process
  A/Bs, docs/perf/PERFORMANCE.md), same losses to float rounding. Several CPU devices stand in
  for an accelerator mesh (compile-only reports, sharding tests) and keep the scan accelerators
  use, whose compile time does not grow with the depth (a 7B model has 32 layers). Not the recipes'
  default: unrolled programs compile longer, which the test suite's tiny, compile-bound runs paid
  for (`make test` from empty caches 738-803 s, against 667-712)."""
  if one_cpu_device():
    return True   # jax.lax.scan's full unroll
  return 1


def scan_layers(layers: nnx.Module, body: Callable, carry: Any, xs: Any = None, *,
                remat: str = "none", num: int | None = None, unroll: int = 1):
  """Runs `body(block, carry, x) -> (carry, y)` over the stacked blocks (only the first `num`).

  The block is rebuilt from its slice of the stacked state inside the scan, so the loop body is
  traced once whatever the depth. `unroll` layers run per loop iteration (the config's
  `model.scan_unroll`; the depth is MaxText's `scan_layers=False`); 0 leaves it to the platform
  (`platform_unroll`). A loop on a single CPU device in bf16/f16 keeps the activations it saves
  for the backward pass 16-bit (`scan.scan_16bit_residuals`; XLA:CPU ran jax.lax.scan's through
  float32). Under `adapter_dropout` each layer's index goes through the loop beside its weights,
  so that every layer's adapters draw masks of their own.
  """
  if unroll < 0:
    raise ValueError(f"model.scan_unroll={unroll}: layers per scan iteration, at least 1 "
                     "(or 0: the platform's choice)")
  unroll = unroll or platform_unroll()
  if remat not in REMAT_POLICIES:
    raise ValueError(f"unknown remat policy {remat!r}; expected one of {sorted(REMAT_POLICIES)}")
  graphdef, state = nnx.split(layers)
  if num is not None:
    state = jax.tree.map(lambda a: a[:num], state)
  depth = jax.tree.leaves(state)[0].shape[0]
  dropout = _ADAPTER_DROPOUT.get()
  layer_ids = None if dropout is None else jnp.arange(depth, dtype=jnp.uint32)

  def step(carry, inputs):
    layer_state, layer, x = inputs
    with contextlib.nullcontext() if layer is None else _layer_dropout(dropout, layer):
      return body(nnx.merge(graphdef, layer_state), carry, x)

  if remat != "none":
    step = jax.checkpoint(step, policy=REMAT_POLICIES[remat], prevent_cse=False)
  # An empty stack (hidden state 0, the embeddings) has no layer for the 16-bit path to trace
  # its residuals from: jax.lax.scan returns the carry as it is.
  if xs is None and unroll is not True and one_cpu_device() and depth and any(
      a.dtype in LOW_PRECISION for a in jax.tree.leaves(carry)):
    return scan_16bit_residuals(step, carry, (state, layer_ids, xs), unroll)
  return jax.lax.scan(step, carry, (state, layer_ids, xs), unroll=unroll)


def unstack_layers(layers: nnx.Module, num: int) -> nnx.List:
  """The stacked blocks as `num` modules with arrays of their own (a copy of every weight).

  For decoding on CPU, made once before the token loop: there a scan over the stack, or a static
  index into it, copies each layer's weights out of the stack at every token (XLA:CPU neither
  fuses the slice into the matmul nor hoists it out of the loop: a fifth of a `small` decode call
  at batch 8, docs/perf/PERFORMANCE.md). Accelerators fuse the slice, so only the CPU asks.
  """
  graphdef, state = nnx.split(layers)
  return nnx.List([nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
                   for i in range(num)])


def path_parts(path) -> tuple[str, ...]:
  """A parameter's path as strings, from an nnx state path or a jax key path alike."""
  return tuple(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p)))) for p in path)


def path_str(path) -> str:
  """A parameter path as the config's regexes and error messages see it:
  'language_model/layers/mlp/up_proj/kernel'. The one path formatter."""
  return "/".join(path_parts(path))


def positions_from_mask(mask: Array) -> Array:
  """Positions that skip left padding (HF generate's rule): cumsum of the mask minus one, >= 0."""
  return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0)


def positions_from_segments(segment_ids: Array) -> Array:
  """Positions that restart at 0 where each packed segment starts (segment_ids [B, T])."""
  t = jnp.arange(segment_ids.shape[-1])
  prev = jnp.concatenate([jnp.full_like(segment_ids[..., :1], -1), segment_ids[..., :-1]], -1)
  start = jax.lax.cummax(jnp.where(segment_ids != prev, t, 0), axis=segment_ids.ndim - 1)
  return t - start


def causal_mask(q_slots: Array, k_slots: Array, kv_valid: Array | None,
                window: int | None = None, segment_ids: Array | None = None) -> Array:
  """Boolean [batch|1, 1, q, k] mask: causal over cache slots, padding removed, optional window.

  Slots count every position of the (left-padded) buffer, as the reference's cache positions do,
  which is also how its sliding window is measured. segment_ids [B, T] (no cache: q and k are the
  same tokens): a packed row's tokens see only their own segment, block-diagonally; padding
  (segment 0) queries keep the plain causal mask, so a row that is one segment masks exactly as
  without segment ids.
  """
  allowed = k_slots[None, :] <= q_slots[:, None]
  if window is not None:
    allowed &= k_slots[None, :] > q_slots[:, None] - window
  allowed = allowed[None, None]
  if kv_valid is not None:
    allowed = allowed & kv_valid.astype(bool)[:, None, None, :]
  if segment_ids is not None:
    q, k = segment_ids[:, None, :, None], segment_ids[:, None, None, :]
    allowed = allowed & ((q == k) | (q == 0))
  return allowed

