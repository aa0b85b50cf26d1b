"""`benchmarks.step_bound` reads every dot of a compiled program and how often it runs: the
floor it prints is only as good as that count (a loop's dots counted once would make the floor,
and so the ceiling on the ratio to PyTorch, wrong by the loop's length)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import step_bound as S


def _hlo(f, *args) -> str:
  return jax.jit(f).lower(*args).compile().as_text()


def _layers(x, w, v, unroll):
  """Three layers of a matmul and a tanh, then a batched product: scanned or unrolled."""
  c, _ = jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=3, unroll=unroll)
  return jnp.einsum("bij,bjk->bik", c.reshape(2, 4, 16), v)


ARGS = (jnp.ones((8, 16)), jnp.ones((16, 16)) / 16, jnp.ones((2, 16, 5)))


def test_a_loops_dots_count_its_trip_count_times():
  found, unknown = S.dots_of(_hlo(lambda *a: _layers(*a, unroll=1), *ARGS))
  assert unknown == 0
  layer = ("f32", "f32", (8, 16), (16, 16), ((), (1,), (), (0,)))
  batched = ("f32", "f32", (2, 4, 16), (2, 16, 5), ((0,), (2,), (0,), (1,)))
  assert dict(found) == {layer: 3, batched: 1}
  assert S.flops(layer) == 2 * 8 * 16 * 16 and S.flops(batched) == 2 * 2 * 4 * 5 * 16


def test_scanned_and_unrolled_programs_count_the_same_work():
  total = lambda found: sum(n * S.flops(k) for k, n in found.items())
  scanned, _ = S.dots_of(_hlo(lambda *a: _layers(*a, unroll=1), *ARGS))
  unrolled, _ = S.dots_of(_hlo(lambda *a: _layers(*a, unroll=3), *ARGS))
  assert total(scanned) == total(unrolled) == 3 * 2 * 8 * 16 * 16 + 2 * 2 * 4 * 5 * 16


def test_the_gradient_of_a_scan_counts_its_backward_loop():
  """Forward dots, and the backward loop's two per layer (input and weight gradients)."""
  loss = lambda w, x: jnp.sum(_layers(x, w, ARGS[2], unroll=1))
  found, _ = S.dots_of(_hlo(jax.grad(loss), ARGS[1], ARGS[0]))
  square = sum(n for k, n in found.items() if S.flops(k) == 2 * 8 * 16 * 16)
  assert square == 3 * 3  # 3 layers x (forward, input gradient, weight gradient)


def test_a_loop_of_data_dependent_length_is_counted_once_and_reported():
  def f(x, w, n):
    return jax.lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] @ w), (0, x))[1]
  found, unknown = S.dots_of(_hlo(f, ARGS[0], ARGS[1], jnp.int32(4)))
  assert unknown == 1 and list(found.values()) == [1]


def test_a_timed_dot_is_the_keys_product():
  key = ("f32", "f32", (2, 3, 4), (2, 4, 5), ((0,), (2,), (0,), (1,)))
  f, a, b = S.dot_call(key)
  np.testing.assert_allclose(f(a, b), np.einsum("bij,bjk->bik", a, b), rtol=1e-5)
  run, spec = S.torch_dot_call(key)
  assert spec == "abc,acf->abf"
  np.testing.assert_allclose(run().numpy(), np.asarray(f(a, b)), rtol=1e-5)
  xla, torch_s = S.time_dots({key: 1}, 2)[key]
  assert S.flops(key) == 2 * 2 * 3 * 5 * 4 and xla > 0 and torch_s > 0


def test_torch_contracts_the_dimensions_the_key_names():
  """A weight gradient's dot (contracting rows: x^T g) and a transposed weight (x W^T), on the
  same random inputs in XLA and in torch."""
  for key in (("f32", "f32", (6, 4), (6, 3), ((), (0,), (), (0,))),
              ("f32", "f32", (6, 4), (3, 4), ((), (1,), (), (1,)))):
    f, a, b = S.dot_call(key)
    got = S.torch_dot_call(key)[0]().numpy()
    assert got.shape == f(a, b).shape
    np.testing.assert_allclose(got, np.asarray(f(a, b)), rtol=1e-5, atol=1e-6)


def test_a_program_without_dots_finds_none():
  """What main() refuses with a clear message (a GPU's HLO calls cuBLAS, not dot)."""
  found, unknown = S.dots_of(_hlo(lambda x: jnp.tanh(x) * 2, ARGS[0]))
  assert not found and unknown == 0


def test_a_dot_of_an_unknown_type_names_it():
  key = ("f8e4m3", "f32", (2, 3), (3, 4), ((), (1,), (), (0,)))
  with pytest.raises(ValueError, match=r"f8e4m3\[2,3\] x f8e4m3\[3,4\].*HLO_DTYPES"):
    S.dot_call(key)
