"""train_state.eager_values: a function to jit that gives, bit for bit, what an eager call gives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mathvlm import train_state

INIT = nnx.initializers.normal(0.02)
CASES = {  # what one plain jit computes otherwise (the test checks that it does)
    "draws": lambda: INIT(jax.random.key(0), (64, 64)),  # normal's sqrt(2) and std folded
    "constant": lambda: jnp.tanh(0.05),  # folded at compile time, by another tanh than the device's
}


@pytest.mark.parametrize("case", CASES)
def test_the_jitted_replay_rounds_as_the_eager_call(case):
  fn = CASES[case]
  eager = np.asarray(fn())
  assert not np.array_equal(np.asarray(jax.jit(fn)()), eager)  # so the test can fail
  got = np.asarray(jax.jit(train_state.eager_values(fn))())
  assert np.array_equal(got, eager), f"{np.sum(got != eager)} of {eager.size} differ"


def test_the_replay_returns_the_same_tree_keys_included():
  fn = lambda: {"w": CASES["draws"]() * 3.0, "key": jax.random.split(jax.random.key(1))[0]}
  got, eager = jax.jit(train_state.eager_values(fn))(), fn()
  assert jax.tree.structure(got) == jax.tree.structure(eager)
  assert np.array_equal(got["w"], eager["w"])
  assert np.array_equal(jax.random.key_data(got["key"]), jax.random.key_data(eager["key"]))
