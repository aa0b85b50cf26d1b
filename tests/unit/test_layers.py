"""`layers.matmul`'s hand-written gradient: autodiff's numbers, in the flat form XLA:CPU runs
fast."""

import re

import jax
import jax.numpy as jnp
import numpy as np

from mathvlm.models import layers


def _operands(dtype=jnp.float32):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(3, 5, 8)), dtype)
  w = jnp.asarray(rng.normal(size=(8, 6)) * 0.3, jnp.float32)
  return x, w


def _loss(mm):
  # a non-linear use of the product, so the cotangent is not a constant
  return lambda x, w: jnp.sum(jnp.tanh(mm(x, w).astype(jnp.float32)) ** 2)


def test_float32_gradients_are_autodiffs():
  """Bitwise equal at XLA's default optimisation level (benchmarks/matmul_grad.py reports it);
  the suite compiles at level 0 (tests/train_utils.py), where the input gradient's few-term sums
  may round differently, so this allows a last-bit difference."""
  x, w = _operands()
  plain = layers._dot_f32  # what the float32 path ran before: autodiff of the same dot
  got = jax.jit(jax.grad(_loss(layers.matmul), argnums=(0, 1)))(x, w)
  want = jax.jit(jax.grad(_loss(plain), argnums=(0, 1)))(x, w)
  for g, r in zip(got, want):
    assert g.dtype == r.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-6, atol=1e-6)


def test_weight_gradient_is_one_flat_matmul_over_the_rows():
  """The performance property itself: the backward contracts [rows, din] with [rows, dout] over
  one axis; autodiff would contract [B, T, din] with [B, T, dout] over two."""
  x, w = _operands()
  hlo = jax.jit(jax.grad(_loss(layers.matmul), argnums=1)).lower(x, w).as_text()
  dots = re.findall(r"stablehlo\.dot_general.*", hlo)
  contracting = [re.search(r"contracting_dims = \[([\d, ]*)\] x \[([\d, ]*)\]", d).groups()
                 for d in dots]
  assert ("0", "0") in contracting, dots          # the weight gradient, rows flattened
  assert all("," not in a for a, _ in contracting), dots  # nothing contracts two axes


def test_low_precision_backward_stays_low_and_weight_gradient_keeps_its_dtype():
  x, w = _operands(jnp.bfloat16)
  dx, dw = jax.grad(_loss(layers.matmul), argnums=(0, 1))(x, w)
  assert dx.dtype == jnp.bfloat16 and dw.dtype == jnp.float32
  hlo = jax.jit(jax.grad(_loss(layers.matmul), argnums=(0, 1))).lower(x, w).as_text()
  # every matmul (forward and both backward) multiplies bf16 operands into a float32 result
  types = re.findall(r"stablehlo\.dot_general.*: \(tensor<[\dx]+x(\w+)>, tensor<[\dx]+x(\w+)>\) "
                     r"-> tensor<[\dx]+x(\w+)>", hlo)
  assert types == [("bf16", "bf16", "f32")] * 3, types
  _, ref_dw = jax.grad(_loss(layers.matmul), argnums=(0, 1))(x.astype(jnp.float32), w)
  np.testing.assert_allclose(np.asarray(dw), np.asarray(ref_dw), rtol=5e-2, atol=5e-2)
