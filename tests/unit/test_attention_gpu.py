"""On a GPU: jax's fused cuDNN attention (`attention_impl='cudnn'`) gives the XLA path's logits
and gradients on a left-padded batch, whose padded query rows see no key at all (fully masked
rows: a -inf mask there would make them NaN, and 0 x NaN in the next layer's P @ V would spread it
to the real rows); our grouped attention, the CPU's default, likewise. Skipped without a GPU; the
device check (`benchmarks/gpu_check.sh`) runs it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

pytestmark = pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU (cuDNN)")


def _model(impl: str):
  from mathvlm.models.llm import LlamaConfig, LlamaForCausalLM
  cfg = LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=512, num_layers=2,
                    num_heads=4, num_kv_heads=2, max_position_embeddings=512, dtype="bfloat16",
                    param_dtype="float32", attention_impl=impl)
  return LlamaForCausalLM(cfg, rngs=nnx.Rngs(0))


def _batch():
  rs = np.random.RandomState(0)
  ids = rs.randint(3, 512, (4, 128)).astype(np.int32)
  mask = np.ones_like(ids)
  for row, pads in enumerate((0, 17, 64, 127)):       # row 3: one real token
    ids[row, :pads], mask[row, :pads] = 0, 0
  return jnp.asarray(ids), jnp.asarray(mask)


def _loss(model, ids, mask):
  logits = model(ids, mask).astype(jnp.float32)
  logp = jax.nn.log_softmax(logits[:, :-1])
  picked = jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]
  keep = mask[:, 1:] * mask[:, :-1]
  return -(picked * keep).sum() / keep.sum(), logits


@pytest.mark.parametrize("impl", ["cudnn", "grouped"])
def test_fused_attention_equals_xla_on_left_padded_rows(impl):
  ids, mask = _batch()
  grads, logits = {}, {}
  for name in ("xla", impl):
    model = _model(name)
    graphdef, params = nnx.split(model, nnx.Param)
    fn = jax.jit(jax.value_and_grad(
        lambda p: _loss(nnx.merge(graphdef, p), ids, mask), has_aux=True))
    (_, logits[name]), grads[name] = fn(params)
  real = np.asarray(mask, bool)
  ours, ref = np.asarray(logits[impl]), np.asarray(logits["xla"])
  assert np.isfinite(ours[real]).all()
  np.testing.assert_allclose(ours[real], ref[real], atol=0.05, rtol=0.05)
  for a, b in zip(jax.tree.leaves(grads[impl]), jax.tree.leaves(grads["xla"])):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    assert np.isfinite(a).all()
    assert np.abs(a - b).max() <= 0.05 * np.abs(b).max() + 1e-6
