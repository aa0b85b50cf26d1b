"""Log-probabilities of target tokens through the output projection, without vocabulary-sized
tensors: only rows that are targets, a chunk of rows at a time.

A LLaVA row is mostly image tokens and prompt, which are never targets, yet `logits = h @ W` over
every position costs 6 x rows x hidden x vocab FLOPs per step and several passes over a
[rows, vocab] float32 array (its softmax, gather, argmax, their gradients and a transposed copy
for the weight gradient): about a third of the `small` preset's step. Here each row's target
positions are moved to its front (a stable sort of the mask), and a loop over chunks of
`chunk` positions stops after the last chunk that holds a target, so the work follows the number
of targets. The backward pass recomputes each chunk's logits from the saved hidden states and
log-sum-exps instead of keeping them, so memory holds one [batch, chunk, vocab] block at most.
Numbers equal the full-logits path up to float rounding (a chunk's matmul is blocked differently).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mathvlm.sharding import constrain

Array = jax.Array

ROWS_PER_CHUNK = 1024   # batch x chunk positions per block: ~131 MB of float32 logits at 32k vocab


def target_logprobs(h: Array, w: Array, targets: Array, valid: Array,
                    chunk: int | None = None) -> tuple[Array, Array]:
  """(log p(target) [B, T] float32, argmax == target [B, T] bool), both 0/False where not valid.

  h [B, T, D] in the compute dtype; w [D, V] (any dtype; the matmuls run in h's dtype with a
  float32 accumulator); targets [B, T] ints (anything where not valid); valid [B, T] bool.
  """
  b, t, _ = h.shape
  valid = jnp.asarray(valid, bool)
  chunk = chunk or max(8, min(t, ROWS_PER_CHUNK // b))
  order = jnp.argsort(~valid, axis=1, stable=True)          # each row's targets first
  hs = jnp.take_along_axis(h, order[..., None], axis=1)
  ts = jnp.take_along_axis(jnp.where(valid, jnp.asarray(targets, jnp.int32), 0), order, axis=1)
  pad = -t % chunk
  if pad:
    hs = jnp.pad(hs, ((0, 0), (0, pad), (0, 0)))
    ts = jnp.pad(ts, ((0, 0), (0, pad)))
  count = jnp.sum(valid, axis=1, dtype=jnp.int32)
  logp, correct = _sorted_logprobs(hs, w, ts, count, chunk)
  inverse = jnp.argsort(order, axis=1)
  return (jnp.take_along_axis(logp[:, :t], inverse, axis=1),
          jnp.take_along_axis(correct[:, :t], inverse, axis=1))


def _chunk(x: Array, j, chunk: int) -> Array:
  return jax.lax.dynamic_slice_in_dim(x, j * chunk, chunk, axis=1)


def _chunk_logits(h, w, ts, count, j, chunk):
  """(logits [B, C, V] float32, targets [B, C], valid [B, C], hidden [B, C, D]) of chunk j; rows
  past a row's count are zeroed so nothing from them (not even a NaN) reaches a matmul."""
  valid = (j * chunk + jnp.arange(chunk))[None, :] < count[:, None]
  hc = jnp.where(valid[..., None], _chunk(h, j, chunk), 0)
  logits = jnp.einsum("bcd,dv->bcv", hc, w, preferred_element_type=jnp.float32)
  logits = constrain(logits, "activation_batch", "activation_length", "activation_vocab")
  return logits, _chunk(ts, j, chunk), valid, hc


def _is_argmax(logits: Array, picked: Array, tc: Array) -> Array:
  """argmax(logits) == tc, a tie going to the first index as in jnp.argmax, from two plain
  reductions (a max and an any). XLA:CPU runs argmax's (value, index) reduce without vectorising
  it: 75 ms of the `small` bf16 step's gradient, and this module's gradient alone ran ~20%
  faster without it (docs/perf/PERFORMANCE.md)."""
  top = jnp.max(logits, axis=-1, keepdims=True)
  before = jnp.arange(logits.shape[-1]) < tc[..., None]
  earlier = jnp.any(before & (logits == top), axis=-1)
  return (picked == top[..., 0]) & ~earlier


def _num_chunks(count, chunk: int):
  return (jnp.max(count) + chunk - 1) // chunk


def _forward(h, w, ts, count, chunk):
  """Log-probs, correctness and log-sum-exps [B, T'] of the sorted rows."""
  wc = w.astype(h.dtype)
  shape = ts.shape

  def body(j, carry):
    logp, correct, lse = carry
    logits, tc, valid, _ = _chunk_logits(h, wc, ts, count, j, chunk)
    lse_c = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, tc[..., None], axis=-1)[..., 0]
    hit = valid & _is_argmax(logits, picked, tc)
    put = lambda buf, x: jax.lax.dynamic_update_slice_in_dim(buf, x, j * chunk, axis=1)
    return (put(logp, jnp.where(valid, picked - lse_c, 0.0)), put(correct, hit),
            put(lse, jnp.where(valid, lse_c, 0.0)))

  init = (jnp.zeros(shape, jnp.float32), jnp.zeros(shape, bool), jnp.zeros(shape, jnp.float32))
  return jax.lax.fori_loop(0, _num_chunks(count, chunk), body, init)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _sorted_logprobs(h, w, ts, count, chunk):
  logp, correct, _ = _forward(h, w, ts, count, chunk)
  return logp, correct


def _fwd(h, w, ts, count, chunk):
  logp, correct, lse = _forward(h, w, ts, count, chunk)
  return (logp, correct), (h, w, ts, count, lse)


def _bwd(chunk, res, cotangents):
  """d logp / d logits = onehot(target) - softmax, per chunk, recomputing the logits."""
  h, w, ts, count, lse = res
  g = cotangents[0].astype(jnp.float32)
  wc = w.astype(h.dtype)

  def grads(j):
    logits, tc, valid, hc = _chunk_logits(h, wc, ts, count, j, chunk)
    probs = jnp.exp(logits - _chunk(lse, j, chunk)[..., None])
    onehot = jnp.arange(logits.shape[-1]) == tc[..., None]
    scale = jnp.where(valid, _chunk(g, j, chunk), 0.0)[..., None]
    dlogits = (scale * (onehot.astype(jnp.float32) - probs)).astype(h.dtype)
    dhc = jnp.einsum("bcv,dv->bcd", dlogits, wc, preferred_element_type=jnp.float32)
    return dhc.astype(h.dtype), jnp.einsum("bcd,bcv->dv", hc, dlogits,
                                           preferred_element_type=jnp.float32)

  def body(j, carry):
    dh, dw = carry
    dhc, dwc = grads(j)
    return jax.lax.dynamic_update_slice_in_dim(dh, dhc, j * chunk, axis=1), dw + dwc

  # The first chunk starts the sums instead of a [D, V] float32 array of zeros: XLA:CPU filled
  # and then added that array at every step (34 ms of the `small` bf16 step); 0 + x is x, so the
  # numbers are the same. A batch without targets computes this chunk for nothing (all zeros).
  dh0, dw0 = grads(0)
  dh = jax.lax.dynamic_update_slice_in_dim(jnp.zeros_like(h), dh0, 0, axis=1)
  dh, dw = jax.lax.fori_loop(1, _num_chunks(count, chunk), body, (dh, dw0))
  return dh, dw.astype(w.dtype), None, None


_sorted_logprobs.defvjp(_fwd, _bwd)
