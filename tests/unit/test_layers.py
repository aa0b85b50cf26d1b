"""`layers.matmul`'s hand-written gradient: autodiff's numbers, in the flat form XLA:CPU runs
fast."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def _product_operand_types(compiled: str) -> list:
  """The operand types of every matrix product the compiled CPU program runs (Eigen's `dot`
  thunks and YNNPACK's fusions), read from its entry computation."""
  entry = compiled.split("ENTRY", 1)[1].split("\n}", 1)[0]
  types = dict(re.findall(r"(%[\w.-]+) = (\w+)\[", entry))
  out = []
  for line in entry.splitlines():
    m = re.search(r"= \w+\[[\d,]*\]\{[\d,]*\} (?:dot|fusion)\(([^)]*)\)", line)
    if m and (" dot(" in line or "__ynn_fusion" in line):
      out.append([types[o] for o in m.group(1).split(", ")])
  return out


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's product kernels")
def test_bfloat16_weight_gradient_runs_as_a_bfloat16_product_on_cpu():
  """XLA:CPU converted both bf16 operands of the weight gradient to float32 (Eigen's float32
  product, a third of the bf16 rate) until `contract_rows` copied the activations transposed;
  the same sums in another order, so float32-close to the plain contraction."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 64, 64)), jnp.bfloat16)
  w = jnp.asarray(rng.normal(size=(64, 96)) * 0.1, jnp.float32)
  grad = jax.jit(jax.grad(_loss(layers.matmul), argnums=1))
  products = _product_operand_types(grad.lower(x, w).compile().as_text())
  assert len(products) == 2 and all(t == ["bf16", "bf16"] for t in products), products
  x2 = x.reshape(-1, 64)
  g2 = jnp.asarray(rng.normal(size=(128, 96)), jnp.bfloat16)
  plain = jax.lax.dot_general(x2, g2, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  np.testing.assert_allclose(np.asarray(layers.contract_rows(x2, g2)), np.asarray(plain),
                             rtol=1e-5, atol=1e-4)



def test_low_precision_norm_weight_gradient_sums_in_float32_and_input_gradient_is_autodiffs():
  """RMSNorm's scaling in bf16: the weight gradient is the float32 sum of the float32 products
  (autodiff's bf16 sum was off by whole units here), the input gradient autodiff's bit for bit."""
  rng = np.random.default_rng(4)
  w = jnp.asarray(rng.uniform(0.5, 1.5, 64), jnp.float32)
  xn = jnp.asarray(rng.normal(size=(4, 256, 64)), jnp.bfloat16)
  g = jnp.asarray(rng.normal(size=(4, 256, 64)), jnp.bfloat16)
  out, vjp = jax.vjp(jax.jit(layers._scaled), w, xn)
  ref_out, ref_vjp = jax.vjp(jax.jit(lambda w, xn: w.astype(xn.dtype) * xn), w, xn)
  (dw, dx), (ref_dw, ref_dx) = vjp(g), ref_vjp(g)
  np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(ref_out, np.float32))
  np.testing.assert_array_equal(np.asarray(dx, np.float32), np.asarray(ref_dx, np.float32))
  exact = (np.asarray(g, np.float64) * np.asarray(xn, np.float64)).reshape(-1, 64).sum(0)
  err, ref_err = np.abs(np.asarray(dw) - exact).max(), np.abs(np.asarray(ref_dw) - exact).max()
  assert dw.dtype == jnp.float32 and err < 1e-3 < 0.1 < ref_err, (err, ref_err)


def test_rms_norm_takes_the_float32_sum_in_low_precision_only():
  cfg = type("Cfg", (), {"param_dtype": "float32"})
  norm = layers.RMSNorm(64, 1e-6, cfg)
  x = np.random.default_rng(5).normal(size=(2, 8, 64))
  for dtype, custom in ((jnp.bfloat16, True), (jnp.float32, False)):
    jaxpr = str(jax.make_jaxpr(lambda x: norm(x))(jnp.asarray(x, dtype)))
    assert ("custom_vjp_call" in jaxpr) == custom, jaxpr
