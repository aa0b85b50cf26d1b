"""A layer scan whose saved activations stay 16-bit on XLA:CPU.

Why this exists: under `jax.lax.scan`'s own autodiff, each layer's residuals for the backward pass
are written into stacked [layers, ...] buffers. XLA:CPU computes a bfloat16/float16
dynamic-update-slice and dynamic-slice in float32 (its float normalisation), so every forward
iteration converted each whole stack to float32 and back to write one layer's slice, and the
backward pass converted each whole stack to float32 before its loop and every slice back again.
On the `small` preset in bfloat16 that was ~1 s of thread time a step (of ~6 s; profile in
docs/perf/PERFORMANCE.md). Integer buffers are left alone, so here the residuals are stacked as
uint16 bit patterns (a bitcast, no arithmetic) under a `custom_vjp` that runs each layer's own
`jax.vjp`. The gradients are autodiff's, bit for bit: the same layer VJP, applied in the same order.

Only `layers.scan_layers` calls this, on a single CPU device in low precision (accelerators
slice 16-bit buffers natively and keep `jax.lax.scan`'s autodiff). Being a `custom_vjp`, it has
reverse-mode derivatives only (`jax.jvp` through it raises); nothing in the project takes
forward-mode derivatives of a model. Gradients nobody asks for (frozen weights) are computed in
the traced backward loop and removed by XLA as dead code (a frozen-weight step ran 20% faster
than a fully trained one in a scratch check).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

LOW_PRECISION = (jnp.bfloat16, jnp.float16)


def to_bits(a):
  """A bf16/f16 array as its uint16 bit patterns (a bitcast); any other array as it is."""
  return jax.lax.bitcast_convert_type(a, jnp.uint16) if a.dtype in LOW_PRECISION else a


def from_bits(a, dtype):
  return jax.lax.bitcast_convert_type(a, dtype) if dtype in LOW_PRECISION else a


def scan_16bit_residuals(step: Callable, carry: Any, xs: Any, unroll: int = 1):
  """`jax.lax.scan(step, carry, xs, unroll=unroll)`, differentiated with 16-bit residual stacks.

  Values the step closes over that are being differentiated (found by `jax.closure_convert`)
  become explicit inputs whose gradients are summed over the layers. Residuals that are a
  layer's own inputs (its slice of the stacked weights) or closed-over values are not stacked
  again: the backward pass reads them where they are.
  """
  x0 = jax.tree.map(lambda a: a[0], xs)
  fn, consts = jax.closure_convert(step, carry, x0)
  layout = {}   # the layer VJP's residual structure, filled while tracing the forward pass

  @jax.custom_vjp
  def run(carry, xs, consts):
    return jax.lax.scan(lambda c, x: fn(c, x, *consts), carry, xs, unroll=unroll)

  def forward(carry, xs, consts):
    def layer(c, x):
      out, vjp = jax.vjp(fn, c, x, *consts)
      leaves, layout["tree"] = jax.tree.flatten(vjp)
      given = {id(v): i for i, v in enumerate(jax.tree.leaves((x, consts)))}
      layout["given"] = [given.get(id(leaf)) for leaf in leaves]
      layout["dtypes"] = [leaf.dtype for leaf in leaves]
      saved = [to_bits(leaf) for leaf, g in zip(leaves, layout["given"]) if g is None]
      return out[0], (out[1], saved)

    c, (ys, saved) = jax.lax.scan(layer, carry, xs, unroll=unroll)
    return (c, ys), (saved, xs, consts)

  def backward(res, cotangents):
    saved, xs, consts = res
    d_carry, d_ys = cotangents

    def layer(acc, inputs):
      d_c, d_consts = acc
      bits, d_y, x = inputs
      given, bits = jax.tree.leaves((x, consts)), iter(bits)
      leaves = [given[g] if g is not None else from_bits(next(bits), dt)
                for g, dt in zip(layout["given"], layout["dtypes"])]
      d_c, d_x, *d_k = jax.tree.unflatten(layout["tree"], leaves)((d_c, d_y))
      return (d_c, jax.tree.map(jnp.add, d_consts, d_k)), d_x

    zeros = jax.tree.map(jnp.zeros_like, list(consts))
    (d_carry, d_consts), d_xs = jax.lax.scan(layer, (d_carry, zeros), (saved, d_ys, xs),
                                             reverse=True, unroll=unroll)
    return d_carry, d_xs, d_consts

  run.defvjp(forward, backward)
  return run(carry, xs, list(consts))
