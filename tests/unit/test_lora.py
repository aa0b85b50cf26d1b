"""LoRA adapters start and drop as PEFT's do, so a recipe's rank, alpha, dropout and lr mean what
they mean there."""

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from mathvlm.models.layers import adapter_dropout, dense, scan_layers, stacked
from mathvlm.models.llm import LlamaConfig, LlamaForCausalLM
from mathvlm.models.lora import add_lora, dropout_key


def test_adapters_start_as_peft_initialises_them():
  """A ~ U(+-1/sqrt(din)) (PEFT: kaiming_uniform_(a=sqrt(5)) on A [rank, din]), B = 0, for stacked
  adapters (one per layer, their own din: d for q_proj, the MLP width for down_proj) and a plain
  one (lm_head)."""
  cfg = LlamaConfig(vocab_size=64, hidden_size=256, intermediate_size=768, num_layers=2,
                    num_heads=4, num_kv_heads=2)
  model = LlamaForCausalLM(cfg, rngs=nnx.Rngs(0))
  add_lora(model, r"(q_proj|down_proj|lm_head)$", 8, 16.0)
  peft_a = torch.empty(8, 768)
  torch.nn.init.kaiming_uniform_(peft_a, a=math.sqrt(5))
  assert abs(float(peft_a.std()) * math.sqrt(3 * 768) - 1) < 0.1   # the reference's own scale
  for dense, din in ((model.layers.self_attn.q_proj, 256), (model.layers.mlp.down_proj, 768),
                     (model.lm_head, 256)):
    a, b = np.asarray(dense.lora.lora_a[...]), np.asarray(dense.lora.lora_b[...])
    assert a.shape[-2:] == (din, 8) and not b.any()
    assert np.abs(a).max() <= 1 / math.sqrt(din)
    assert abs(a.std() * math.sqrt(3 * din) - 1) < 0.1, (din, a.std())   # uniform: bound/sqrt(3)


# ---------------------------------------------------------------------------------------------
# Dropout (lora.dropout): PEFT's lora_B(lora_A(dropout(x))) * scaling, in training only.

class _TwoProjections(nnx.Module):
  """Two Dense layers reading one x, as q_proj and v_proj do."""

  def __init__(self, rngs, d=16):
    cfg = types.SimpleNamespace(dtype="float32", param_dtype="float32")
    self.q = dense(d, d, (None, None), bias=False, cfg=cfg, rngs=rngs)
    self.v = dense(d, d, (None, None), bias=False, cfg=cfg, rngs=rngs)


def _probe(layer, d=16):
  """W = 0 and A = B = I at scale 1: the layer returns its adapter's input as dropout left it."""
  layer.kernel[...] = jnp.zeros((d, d))
  layer.lora.lora_a[...] = jnp.broadcast_to(jnp.eye(d), layer.lora.lora_a.shape)
  layer.lora.lora_b[...] = jnp.broadcast_to(jnp.eye(d), layer.lora.lora_b.shape)
  layer.lora_scale = 1.0


def _randomise(layer, seed):
  for i, v in enumerate((layer.kernel, layer.lora.lora_a, layer.lora.lora_b)):
    v[...] = jax.random.normal(jax.random.key(seed * 10 + i), v.shape)


def test_training_drops_the_adapters_input_as_peft_and_eval_does_not():
  """The mask is read off a probe layer (the same key draws the same mask whatever the weights),
  then the layer with weights: base x W whole, plus scale * B(A(x * mask / (1 - p)))."""
  p, key = 0.25, dropout_key(0, 3)
  model = _TwoProjections(nnx.Rngs(0))
  add_lora(model, "^(q|v)$", 16, 16.0)
  x = jax.random.normal(jax.random.key(1), (4, 8, 16))
  for layer in (model.q, model.v):
    _probe(layer)
  with adapter_dropout(key, p):
    seen_q, seen_v = np.asarray(model.q(x)), np.asarray(model.v(x))
  kept, xs = seen_q != 0, np.asarray(x)
  assert abs(kept.mean() - (1 - p)) < 0.08, kept.mean()   # 512 draws: sd 0.019
  np.testing.assert_allclose(seen_q[kept], xs[kept] / (1 - p), rtol=1e-6)
  assert ((seen_v != 0) != kept).mean() > 0.2   # q and v read one x and drop apart

  _randomise(model.q, 2)
  model.q.lora_scale = 2.0
  w, a, b = (np.asarray(v[...], np.float64) for v in (model.q.kernel, model.q.lora.lora_a,
                                                       model.q.lora.lora_b))
  with adapter_dropout(key, p):
    trained = np.asarray(model.q(x))
  dropped = np.where(kept, xs / (1 - p), 0.0)
  np.testing.assert_allclose(trained, xs @ w + 2.0 * (dropped @ a @ b), rtol=1e-4, atol=1e-4)
  whole = xs @ w + 2.0 * (xs @ a @ b)
  assert np.abs(trained - whole).max() > 0.1   # so dropout is what the first check saw
  np.testing.assert_allclose(np.asarray(model.q(x)), whole, rtol=1e-4, atol=1e-4)  # eval
  with adapter_dropout(key, 0.0):   # rate 0: the layer without dropout, bit for bit
    no_drop = np.asarray(model.q(x))
  assert np.array_equal(no_drop, np.asarray(model.q(x)))


def test_each_layer_of_a_stack_drops_its_own_and_every_scan_path_draws_alike():
  """Stacked adapters share one path: the layer's index is what tells their masks apart. The
  plain scan, the unrolled one, remat and the 16-bit-residual scan (bf16 carry, one CPU
  device) draw the same masks; with remat the gradient is the one without it."""
  depth, p, key = 3, 0.5, dropout_key(0, 7)
  stack = stacked(lambda r: _TwoProjections(r), depth, nnx.Rngs(0))
  add_lora(stack, "^q$", 16, 16.0)
  _probe(stack.q)
  x = jax.random.normal(jax.random.key(1), (2, 8, 16))

  def masks(carry, **kw):
    with adapter_dropout(key, p):
      _, ys = scan_layers(stack, lambda blk, h, _: (h, blk.q(x)), carry, **kw)
    return np.asarray(ys) != 0

  base = masks(jnp.zeros(()))
  assert base.shape == (depth, 2, 8, 16)
  for i in range(depth):
    for j in range(i):
      assert (base[i] != base[j]).mean() > 0.3, (i, j)
  f32, bf16 = jnp.zeros(()), jnp.zeros((), jnp.bfloat16)
  for path, carry, kw in (("unrolled", f32, dict(unroll=True)), ("remat", f32, dict(remat="full")),
                          ("16-bit residuals", bf16, {})):
    assert np.array_equal(masks(carry, **kw), base), path

  _randomise(stack.q, 3)
  graphdef, lora, rest = nnx.split(stack, nnx.LoRAParam, ...)

  def loss(lora, remat):
    model = nnx.merge(graphdef, lora, rest)
    with adapter_dropout(key, p):
      h, _ = scan_layers(model, lambda blk, h, _: (jnp.tanh(blk.q(h)), None), x, remat=remat)
    return jnp.sum(h ** 2)

  plain, remat = (jax.grad(loss)(lora, r) for r in ("none", "full"))
  for g, h in zip(jax.tree.leaves(plain), jax.tree.leaves(remat)):
    np.testing.assert_allclose(np.asarray(h), np.asarray(g), rtol=1e-5, atol=1e-6)


def test_evaluation_and_generation_are_untouched_by_a_training_forward():
  """A LoRA model's logits and greedy tokens, before and after a training forward with dropout
  (whose logits differ): the same, bit for bit; the adapters' B made nonzero so they count."""
  from mathvlm.generate import generate
  cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=2,
                    num_heads=4, num_kv_heads=2)
  model = LlamaForCausalLM(cfg, rngs=nnx.Rngs(0))
  add_lora(model, r"(q_proj|down_proj)$", 4, 8.0)
  for layer in (model.layers.self_attn.q_proj, model.layers.mlp.down_proj):
    b = layer.lora.lora_b
    b[...] = jax.random.normal(jax.random.key(5), b.shape)
  ids = jax.random.randint(jax.random.key(2), (2, 6), 1, 64)
  logits = lambda: np.asarray(model.apply(ids).logits)
  tokens = lambda: np.asarray(generate(model, ids, max_new_tokens=4, eos_token_id=-1).tokens)
  before, greedy = logits(), tokens()

  @jax.jit
  def training(state):
    with adapter_dropout(dropout_key(0, 1), 0.3):
      return nnx.merge(graphdef, state).apply(ids).logits

  graphdef, state = nnx.split(model)
  assert np.abs(np.asarray(training(state)) - before).max() > 1e-3
  assert np.array_equal(logits(), before)
  assert np.array_equal(tokens(), greedy)
