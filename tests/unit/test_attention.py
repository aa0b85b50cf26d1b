"""The CPU attention path (grouped heads, probabilities recomputed in the backward pass) equals
jax.nn.dot_product_attention in value and gradient, fully masked (left-padded) rows included."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mathvlm.models import layers


def _case(dtype, seed=0, b=2, t=7, kv=2, g=3, h=8):
  rs = np.random.RandomState(seed)
  q = jnp.asarray(rs.randn(b, t, kv * g, h), dtype)
  k = jnp.asarray(rs.randn(b, t, kv, h), dtype)
  v = jnp.asarray(rs.randn(b, t, kv, h), dtype)
  valid = np.ones((b, t), bool)
  valid[1, :2] = False               # left padding: row 1's first queries see nothing
  mask = layers.causal_mask(jnp.arange(t), jnp.arange(t), jnp.asarray(valid))
  return q, k, v, mask, jnp.asarray(rs.randn(b, t, kv * g, h), jnp.float32)


def _value_and_grads(fn, q, k, v, mask, w):
  loss = lambda q, k, v: jnp.sum(fn(q, k, v, mask).astype(jnp.float32) * w)
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(q, k, v)


def _jax(q, k, v, mask):
  return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla")


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 3e-2)])
def test_grouped_attention_value_and_gradients_equal_jax(dtype, tol):
  q, k, v, mask, w = _case(dtype)
  np.testing.assert_allclose(np.asarray(layers.grouped_attention(q, k, v, mask), np.float32),
                             np.asarray(_jax(q, k, v, mask), np.float32), rtol=tol, atol=tol)
  ours = _value_and_grads(layers.grouped_attention, q, k, v, mask, w)
  ref = _value_and_grads(_jax, q, k, v, mask, w)
  np.testing.assert_allclose(float(ours[0]), float(ref[0]), rtol=tol)
  for a, r in zip(ours[1], ref[1]):
    assert a.dtype == r.dtype
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(r, np.float32),
                               rtol=tol, atol=tol)


def test_no_mask_and_a_per_head_mask():
  q, k, v, _, w = _case(jnp.float32, seed=1)
  for mask in (None, jnp.asarray(np.random.RandomState(2).rand(2, 6, 7, 7) < 0.7)):
    ours = _value_and_grads(layers.grouped_attention, q, k, v, mask, w)
    ref = _value_and_grads(_jax, q, k, v, mask, w)
    for a, r in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
      np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5)


def _long_case(dtype):
  """Two full blocks and a partial one, left padding in row 1, loss weights zero on the rows
  that see no key (as a trainer's loss mask: nothing reads those rows)."""
  t = 2 * layers.CAUSAL_BLOCK + 37
  q, k, v, mask, w = _case(dtype, seed=3, b=2, t=t, kv=2, g=2, h=8)
  seen = np.asarray(mask).any(-1)                       # [b, 1, t]: a row with a visible key
  return q, k, v, mask, w * jnp.asarray(seen[:, 0, :, None, None], jnp.float32)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 2e-5), (jnp.bfloat16, 3e-2)])
def test_long_causal_attention_in_blocks_equals_the_whole_square(dtype, tol):
  """causal=True scores each block of queries against the keys up to its end only: the same
  values and gradients (up to rounding) on every row that sees a key."""
  q, k, v, mask, w = _long_case(dtype)
  blocked = lambda q, k, v, m: layers.grouped_attention(q, k, v, m, causal=True)
  ours, ref = (_value_and_grads(f, q, k, v, mask, w) for f in (blocked, layers.grouped_attention))
  np.testing.assert_allclose(float(ours[0]), float(ref[0]), rtol=tol)
  for a, r in zip(ours[1], ref[1]):
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(r, np.float32),
                               rtol=tol, atol=tol)


def _square_scores(fn, q, k, v, mask) -> bool:
  """Whether the traced gradient holds a [.., t, t] float array (the whole score matrix)."""
  t = q.shape[1]
  jaxpr = jax.make_jaxpr(jax.grad(lambda q, k, v: fn(q, k, v, mask).astype(jnp.float32).sum(),
                                  argnums=(0, 1, 2)))(q, k, v)
  return re.search(rf"(f32|bf16)\[[\d,]*,{t},{t}\]", str(jaxpr)) is not None  # not the bool mask


def test_blocked_attention_never_forms_the_whole_score_matrix_and_short_ones_are_unchanged():
  q, k, v, mask, _ = _long_case(jnp.float32)
  causal = lambda q, k, v, m: layers.grouped_attention(q, k, v, m, causal=True)
  assert _square_scores(layers.grouped_attention, q, k, v, mask)   # the check can see it
  assert not _square_scores(causal, q, k, v, mask)
  short = _case(jnp.float32, t=2 * layers.CAUSAL_BLOCK - 1)[:4]
  one_block = jax.make_jaxpr(layers.grouped_attention)(*short)
  assert str(jax.make_jaxpr(causal)(*short)) == str(one_block)
  with pytest.raises(ValueError, match="causal=True"):
    layers.grouped_attention(*short[:3], None, causal=True)
