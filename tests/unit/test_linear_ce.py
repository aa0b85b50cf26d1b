"""Target-only, chunked log-probs through the output projection equal the full-logits path: values,
argmax, gradients; garbage off target (NaN hidden states, -100 ids) reaches nothing."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mathvlm.models import linear_ce


def _full(h, w, targets, valid):
  """The plain path: every position's logits, log-softmax, gather, masked."""
  logits = jnp.einsum("btd,dv->btv", h, w.astype(h.dtype), preferred_element_type=jnp.float32)
  logits = jnp.where(valid[..., None], logits, 0.0)
  t = jnp.where(valid, targets, 0)
  logp = jnp.take_along_axis(jax.nn.log_softmax(logits), t[..., None], axis=-1)[..., 0]
  correct = jnp.argmax(logits, -1) == t
  return jnp.where(valid, logp, 0.0), valid & correct


def _case(seed=0, b=3, t=11, d=16, v=50):
  rs = np.random.RandomState(seed)
  h = rs.randn(b, t, d).astype(np.float32)
  w = (rs.randn(d, v) * 0.5).astype(np.float32)
  targets = rs.randint(0, v, (b, t)).astype(np.int32)
  valid = rs.rand(b, t) < 0.5
  valid[1] = False                        # a row with no target
  valid[2, -3:] = True                    # targets at the very end
  return h, w, targets, valid


@functools.partial(jax.jit, static_argnums=(4,))
def _ours(h, w, targets, valid, chunk):
  return linear_ce.target_logprobs(h, w, targets, valid, chunk)


@pytest.mark.parametrize("chunk", [1, 4, 16])
def test_values_and_argmax_equal_the_full_logits(chunk):
  h, w, targets, valid = _case()
  logp, correct = _ours(h, w, targets, valid, chunk)
  ref_logp, ref_correct = _full(h, w, targets, valid)
  np.testing.assert_allclose(logp, ref_logp, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(correct, ref_correct)
  assert np.all(np.asarray(logp)[~valid] == 0) and np.any(np.asarray(logp)[valid] < 0)


def test_a_tie_for_the_largest_logit_goes_to_the_first_index_as_in_argmax():
  h, w, targets, valid = _case(6)
  h, w = np.abs(h), w.copy()
  w[:, 3] = w[:, 7] = 5.0                 # columns 3 and 7: the same, largest logit in every row
  targets = np.where(np.arange(h.shape[1]) % 2 == 0, 3, 7).astype(np.int32)
  _, correct = _ours(h, w, targets, valid, 4)
  _, ref_correct = _full(h, w, targets, valid)
  np.testing.assert_array_equal(correct, ref_correct)
  assert np.array_equal(np.asarray(correct), valid & (targets == 3))


@pytest.mark.parametrize("chunk", [2, 5])
def test_gradients_equal_the_full_logits(chunk):
  h, w, targets, valid = _case(1)
  weights = np.random.RandomState(2).randn(*valid.shape).astype(np.float32)

  def loss(fn, h, w):
    return jnp.sum(fn(h, w, targets, valid)[0] * weights)   # any per-token cotangent

  ours = jax.jit(jax.grad(lambda h, w: loss(
      lambda *a: linear_ce.target_logprobs(*a, chunk=chunk), h, w), argnums=(0, 1)))(h, w)
  ref = jax.jit(jax.grad(lambda h, w: loss(_full, h, w), argnums=(0, 1)))(h, w)
  for a, r in zip(ours, ref):
    np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(ours[0])[~valid] == 0)


def test_garbage_off_target_reaches_neither_values_nor_gradients():
  h, w, targets, valid = _case(3)
  poisoned_h = np.where(valid[..., None], h, np.nan).astype(np.float32)
  bad_ids = np.where(valid, targets, -100).astype(np.int32)
  f = lambda h, w, ids: jnp.sum(linear_ce.target_logprobs(h, w, ids, valid, 4)[0])
  value, grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(poisoned_h, w, bad_ids)
  clean, clean_grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(h, w, targets)
  assert float(value) == float(clean)
  for g, c in zip(grads, clean_grads):
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g, c)


def test_no_targets_gives_zeros_and_zero_gradients():
  h, w, targets, _ = _case(4)
  none = np.zeros(targets.shape, bool)
  f = lambda h, w: jnp.sum(linear_ce.target_logprobs(h, w, targets, none, 4)[0])
  value, (gh, gw) = jax.value_and_grad(f, argnums=(0, 1))(h, w)
  assert float(value) == 0.0 and not np.any(gh) and not np.any(gw)


def test_bfloat16_hidden_states_stay_close_and_weight_gradient_keeps_its_dtype():
  h, w, targets, valid = _case(5)
  hb = jnp.asarray(h, jnp.bfloat16)
  logp, _ = _ours(hb, w, targets, valid, 4)
  ref, _ = _full(hb, w, targets, valid)
  np.testing.assert_allclose(logp, ref, rtol=1e-3, atol=1e-3)
  gw = jax.grad(lambda w: jnp.sum(linear_ce.target_logprobs(hb, w, targets, valid, 4)[0]))(w)
  assert gw.dtype == jnp.float32 and np.all(np.isfinite(gw))
