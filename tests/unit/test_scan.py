"""Layers are scanned: the compiled program does not grow with depth; remat changes no numbers."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mathvlm.models.llm import LlamaConfig, LlamaForCausalLM
from mathvlm.models.vit import CLIPVisionConfig, CLIPVisionTransformer


def _llm(layers, **kw):
  cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=layers,
                    num_heads=4, num_kv_heads=2, **kw)
  return LlamaForCausalLM(cfg, rngs=nnx.Rngs(0))


def _hlo_ops(model, *args):
  graphdef, state = nnx.split(model)
  fn = jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a))
  text = fn.lower(state, *args).as_text()
  # op names only: shapes (which carry the layer count) are not part of the program's size
  return sorted(re.findall(r"= (?:\"?)([a-z_]+\.[a-z_\.]+)", text))


def test_program_size_does_not_grow_with_depth():
  ids = jnp.ones((2, 8), jnp.int32)
  ops = _hlo_ops(_llm(2), ids)
  assert "stablehlo.while" in ops and len(ops) > 100
  assert ops == _hlo_ops(_llm(16), ids)
  px = jnp.zeros((1, 28, 28, 3))
  vit = lambda n: CLIPVisionTransformer(CLIPVisionConfig(
      hidden_size=32, intermediate_size=64, num_layers=n, num_heads=4, image_size=28,
      patch_size=14), rngs=nnx.Rngs(0))
  assert _hlo_ops(vit(2), px) == _hlo_ops(vit(16), px)


@pytest.mark.parametrize("remat", ["full", "dots", "dots_no_batch"])
def test_remat_policies_give_the_same_loss_and_gradients(remat):
  ids = jnp.asarray(np.random.RandomState(0).randint(0, 64, (2, 8)))

  def loss_and_grads(model):
    def loss(m):
      logits = m(ids)
      return -jnp.mean(jax.nn.log_softmax(logits)[:, :-1].max(-1))
    return nnx.value_and_grad(loss)(model)

  base_loss, base_grads = loss_and_grads(_llm(3))
  loss, grads = loss_and_grads(_llm(3, remat=remat))
  np.testing.assert_allclose(loss, base_loss, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(base_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_unknown_remat_policy_is_named():
  with pytest.raises(ValueError, match="unknown remat policy 'sometimes'"):
    _llm(2, remat="sometimes")(jnp.ones((1, 4), jnp.int32))


def test_scan_unroll_changes_the_program_not_the_numbers():
  """model.scan_unroll runs k layers per loop iteration (the body repeated k times); the logits
  and gradients are those of the plain scan, and the setting reaches every tower."""
  from mathvlm.models import presets
  from mathvlm.models.layers import with_runtime
  ids = jnp.asarray(np.random.default_rng(0).integers(0, 64, (2, 8)), jnp.int32)
  plain, unrolled = _llm(4), _llm(4, scan_unroll=4)
  assert "stablehlo.while" in _hlo_ops(plain, ids)
  assert "stablehlo.while" not in _hlo_ops(unrolled, ids)   # unroll = depth: no loop left

  def loss_and_grads(model):
    graphdef, state = nnx.split(model)
    return jax.value_and_grad(lambda s: jnp.sum(nnx.merge(graphdef, s)(ids) ** 2))(state)

  (a, ga), (b, gb) = loss_and_grads(plain), loss_and_grads(unrolled)
  np.testing.assert_allclose(a, b, rtol=1e-5)
  for x, y in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
  cfg = with_runtime(presets.LLAVA_PRESETS["tiny"], scan_unroll=2)
  assert cfg.vision.scan_unroll == cfg.text.scan_unroll == 2
  with pytest.raises(ValueError, match="model.scan_unroll=-1"):
    _llm(2, scan_unroll=-1)(ids)


PLATFORM_UNROLL = """
import sys
import jax, jax.numpy as jnp
sys.path.insert(0, {tests!r})
from unit.test_scan import _hlo_ops, _llm
ids = jnp.ones((2, 8), jnp.int32)
print(jax.device_count(), "stablehlo.while" in _hlo_ops(_llm(3, scan_unroll=0), ids),
      "stablehlo.while" in _hlo_ops(_llm(3), ids))
"""


@pytest.mark.parametrize("devices, loops", [(1, False), (8, True)])
def test_scan_unroll_0_unrolls_on_one_cpu_device_only(devices, loops):
  """model.scan_unroll=0, the platform's choice: a run on one CPU device unrolls the layers
  (faster there); eight fake CPU devices stand in for an accelerator mesh and keep the loop
  (compile time independent of depth). The default (1) always loops."""
  import os
  import subprocess
  import sys
  from train_utils import cpu_env
  tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, "-c", PLATFORM_UNROLL.format(tests=tests)],
                       env={**os.environ, **cpu_env(devices)}, capture_output=True, text=True,
                       check=True).stdout.split()
  assert out == [str(devices), str(loops), "True"]


def _bf16_loss_and_grads(model, ids):
  graphdef, state = nnx.split(model)
  loss = lambda s: jnp.sum(nnx.merge(graphdef, s)(ids).astype(jnp.float32) ** 2)
  return jax.jit(jax.value_and_grad(loss)), state


def _plain_scan(step, carry, xs, unroll):
  return jax.lax.scan(step, carry, xs, unroll=unroll)


@pytest.mark.parametrize("remat", ["none", "full"])
def test_low_precision_scan_keeps_its_saved_activations_16_bit_on_cpu(monkeypatch, remat):
  """On one CPU device a bf16 scan stacks the backward's residuals as uint16 bit patterns:
  XLA:CPU ran jax.lax.scan's bf16 stacks through float32, converting every whole
  [layers, ...] stack at each layer (docs/perf/PERFORMANCE.md). The gradients are autodiff's,
  with or without rematerialisation (which saves only each layer's input)."""
  from mathvlm.models import layers
  ids = jnp.asarray(np.random.default_rng(1).integers(0, 64, (2, 8)), jnp.int32)
  model = _llm(5, dtype="bfloat16", remat=remat)
  grad, state = _bf16_loss_and_grads(model, ids)
  whole_stack_to_f32 = re.compile(r"= f32\[5,[\d,]*\]\{[\d,]*\} convert\(")
  text = grad.lower(state).compile().as_text()
  assert re.search(r"u16\[5,2,8,", text) and not whole_stack_to_f32.search(text)
  loss, grads = grad(state)

  monkeypatch.setattr(layers, "scan_16bit_residuals", _plain_scan)
  plain, state = _bf16_loss_and_grads(model, ids)
  assert whole_stack_to_f32.search(plain.lower(state).compile().as_text())   # what it replaces
  ref_loss, ref_grads = plain(state)
  assert float(loss) == float(ref_loss)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_16bit_residual_scan_differentiates_closed_over_values_and_outputs():
  """A differentiated value the layer closes over gets the sum of its per-layer gradients, and
  per-layer outputs (ys) carry their own cotangents, as under jax.lax.scan."""
  from mathvlm.models.scan import scan_16bit_residuals
  rng = np.random.default_rng(2)
  ws = {"up": jnp.asarray(rng.normal(size=(3, 8, 12)), jnp.float32),
        "down": jnp.asarray(rng.normal(size=(3, 12, 8)) * 0.3, jnp.float32)}
  x = jnp.asarray(rng.normal(size=(16, 8)), jnp.float16)

  def loss(ws, x, scale, scan):
    gain = (scale * 2.0).astype(jnp.float16)

    def step(c, w):
      h = jax.nn.silu(c @ w["up"].astype(jnp.float16)) * gain
      c = c + h @ w["down"].astype(jnp.float16)
      return c, jnp.sum(c * c, -1)

    c, ys = scan(step, x, ws)
    return jnp.sum(c.astype(jnp.float32) ** 2) + jnp.sum(ys.astype(jnp.float32) * jnp.arange(16))

  grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)
  ours = grad(ws, x, jnp.float32(0.7), lambda s, c, xs: scan_16bit_residuals(s, c, xs))
  ref = grad(ws, x, jnp.float32(0.7), lambda s, c, xs: jax.lax.scan(s, c, xs))
  assert float(ours[2]) != 0.0
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


@pytest.mark.parametrize("layer", [0, -5])
def test_low_precision_hidden_state_0_is_the_embeddings(layer):
  """Hidden state 0 (or -(layers + 1)) runs no block: in bf16 on one CPU device too, where the
  16-bit residual scan has no layer to trace and the empty stack takes jax.lax.scan."""
  px = np.random.default_rng(3).normal(size=(2, 28, 28, 3)).astype(np.float32)
  vit = CLIPVisionTransformer(CLIPVisionConfig(
      hidden_size=32, intermediate_size=64, num_layers=4, num_heads=4, image_size=28,
      patch_size=14, dtype="bfloat16"), rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(np.asarray(vit.hidden_state(px, layer), np.float32),
                                np.asarray(vit.embed(px), np.float32))
