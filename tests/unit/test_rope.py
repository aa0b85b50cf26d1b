"""`llm.apply_rope`'s hand-written gradient: autodiff's bits, in float32 and bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mathvlm.models import llm


def _operands(dtype):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 5, 3, 8)), dtype)
  # angles whose two halves differ, unlike rope's own (cat(freqs, freqs)): a gradient that
  # swapped the halves of cos or sin would still pass on rope's own tables
  ang = rng.uniform(-3, 3, size=(2, 5, 8))
  return x, jnp.asarray(np.cos(ang), dtype), jnp.asarray(np.sin(ang), dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_rope_gradient_is_autodiffs_bit_for_bit(dtype):
  x, cos, sin = _operands(dtype)
  weights = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), dtype)
  loss = lambda rope: lambda x: jnp.sum((rope(x, cos, sin) * weights).astype(jnp.float32))
  value, got = jax.jit(jax.value_and_grad(loss(llm.apply_rope)))(x)
  ref_value, want = jax.jit(jax.value_and_grad(loss(llm._rotate)))(x)
  assert got.dtype == want.dtype == dtype
  assert float(value) == float(ref_value)
  np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
