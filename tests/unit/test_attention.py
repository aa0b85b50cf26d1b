"""The CPU attention path (grouped heads, probabilities recomputed in the backward pass) equals
jax.nn.dot_product_attention in value and gradient, fully masked (left-padded) rows included."""

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
