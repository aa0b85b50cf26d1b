"""The pure decoding core (`mathvlm.generate.decode`): jittable with traced temperature and top_p,
its per-token log-probs equal a forward pass over the same tokens, greedy equals `generate`, and
the cached attention over filled slots equals plain attention."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mathvlm import generate as decode_module
from mathvlm.generate import decode, generate
from mathvlm.models import layers
from mathvlm.models.llm import LlamaConfig
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import Llava, LlavaConfig

V, IMG = 64, 63


@pytest.fixture(scope="module")
def llava():
  vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                            image_size=28, patch_size=14)
  text = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_layers=2,
                     num_heads=4, num_kv_heads=2)
  return Llava(LlavaConfig(vision=vision, text=text, image_token_id=IMG), rngs=nnx.Rngs(3))


def _prompt(b=3, t=9, pads=(0, 2, 4), seed=0):
  rs = np.random.RandomState(seed)
  ids = rs.randint(1, IMG, (b, t)).astype(np.int32)
  mask = np.ones((b, t), np.int32)
  for row, p in enumerate(pads):
    ids[row, :p], mask[row, :p] = 0, 0
    ids[row, p + 1:p + 5] = IMG                       # one image: 4 patch tokens
  return ids, mask, rs.randn(b, 28, 28, 3).astype(np.float32)


@functools.partial(jax.jit, static_argnums=0)
def _decode(graphdef, state, ids, mask, px, rng, temperature, top_p):
  """Temperature and top_p are traced: one compile serves every setting."""
  model = nnx.merge(graphdef, state)
  return decode(model, ids, mask, px, rng, temperature, top_p, max_new_tokens=7, eos=(5,))


def _forward_logps(model, ids, mask, px, tokens):
  """log p(token) of each new token from one forward pass over prompt + tokens."""
  full = np.concatenate([ids, tokens], axis=1)
  fmask = np.concatenate([mask, np.ones_like(tokens)], axis=1)
  pos = np.maximum(np.cumsum(fmask, axis=1) - 1, 0)
  logits = model.apply(full, px, attention_mask=fmask, positions=pos).logits
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))[:, ids.shape[1] - 1:-1]
  return np.take_along_axis(np.asarray(logp), tokens[..., None], axis=-1)[..., 0]


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9), (0.0, 1.0)])
def test_sampled_logps_equal_a_forward_pass_over_the_same_tokens(llava, temperature, top_p):
  ids, mask, px = _prompt()
  out = _decode(*nnx.split(llava), ids, mask, px, jax.random.key(0), jnp.float32(temperature),
                jnp.float32(top_p))
  tokens, logps = np.asarray(out.tokens), np.asarray(out.logps)
  ref = _forward_logps(llava, ids, mask, px, tokens)
  live = np.arange(7)[None] < np.asarray(out.lengths)[:, None]
  np.testing.assert_allclose(logps[live], ref[live], rtol=1e-5, atol=1e-5)
  assert np.all(logps[~live] == 0) and np.all(tokens[~live] == 0)   # after EOS: pad, 0
  assert np.all(logps[live] < 0)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_llava_never_samples_its_image_token(llava, temperature):
  """The image token is a placeholder for image features (`generate._never_sampled`): a model
  whose head favours it still answers in words, and the log-probs of what it sampled equal a
  forward pass over it. Sampled, a placeholder was fed back as token 0 and read back by that
  forward with image features spliced in (here refused: more image tokens than images)."""
  model = nnx.merge(*nnx.split(llava))                    # a copy, its head changed below
  ids, mask, px = _prompt()
  first = int(np.asarray(generate(model, ids, mask, px, max_new_tokens=1, eos_token_id=-1)
                         .tokens)[0, 0])
  head = model.language_model.lm_head.kernel
  head.value = head.value.at[:, IMG].set(head.value[:, first] * 4)  # far above row 0's choice
  out = _decode(*nnx.split(model), ids, mask, px, jax.random.key(0), jnp.float32(temperature),
                jnp.float32(1.0))
  tokens, logps = np.asarray(out.tokens), np.asarray(out.logps)
  assert not (tokens == IMG).any()
  live = np.arange(7)[None] < np.asarray(out.lengths)[:, None]
  ref = _forward_logps(model, ids, mask, px, tokens)
  np.testing.assert_allclose(logps[live], ref[live], rtol=1e-5, atol=1e-5)  # unmasked: its own


def test_greedy_core_equals_generate(llava):
  ids, mask, px = _prompt(seed=1)
  out = _decode(*nnx.split(llava), ids, mask, px, jax.random.key(0), jnp.float32(0.0),
                jnp.float32(1.0))
  ref = generate(llava, ids, mask, px, max_new_tokens=7, eos_token_id=5)
  np.testing.assert_array_equal(np.asarray(out.tokens), np.asarray(ref.tokens))
  np.testing.assert_array_equal(np.asarray(out.lengths), np.asarray(ref.lengths))


@pytest.mark.parametrize("t,filled,slots", [(1, 5, 40), (3, 19, 40), (16, 16, 40), (1, 32, 40),
                                           (1, 70, 192), (2, 130, 192)])
def test_cached_attention_over_filled_slots_equals_plain_attention(t, filled, slots):
  rs = np.random.RandomState(t)
  b, kv, g, h = 2, 2, 3, 8                # 40 slots: 5 blocks of 8; 192: 3 of 64 on CPU
  block = layers.kv_block(slots)
  q = rs.randn(b, t, kv * g, h).astype(np.float32)
  cache = rs.randn(2, 3, b, kv, slots, h).astype(np.float32)     # k/v, 3 layers
  cache[:, :, :, :, filled:] = 0.0                                 # unwritten slots: zeros
  cache[:, :, :, :, -(-filled // block) * block:] = np.nan         # blocks past filled: unread
  q_slots = filled - t + np.arange(t)
  valid = np.ones((b, slots), bool)
  valid[1, :2] = False                                             # left padding in row 1
  mask = layers.causal_mask(jnp.asarray(q_slots), jnp.arange(slots), jnp.asarray(valid))
  got = layers.cached_attention(q, cache[0], cache[1], 1, mask, filled)
  as_bsnh = lambda c: np.swapaxes(c[1, :, :, :filled], 1, 2)     # layer 1 as [b, slots, kv, h]
  ref = layers.grouped_attention(q, as_bsnh(cache[0]), as_bsnh(cache[1]), mask[..., :filled])
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_decoding_view_equals_the_scanned_stack_and_leaves_the_model_alone(llava):
  """On CPU `decode` runs `for_decoding`'s view (separate layers, a Python loop); accelerators run
  the scanned stack. Both write the same cache and give the same logits, prefill and a step."""
  view = llava.for_decoding()
  assert isinstance(view.language_model.layers, nnx.List)           # CPU: layers unstacked
  assert not isinstance(llava.language_model.layers, nnx.List)      # the model is untouched
  ids, mask, px = _prompt(seed=2)
  pos = layers.positions_from_mask(jnp.asarray(mask))
  outs = []
  for model in (llava, view):
    out = model.apply(ids, px, attention_mask=mask, positions=pos, cache=model.init_cache(3, 16))
    step = model.apply(ids[:, -1:], attention_mask=np.ones((3, 1), bool),
                       positions=pos[:, -1:] + 1, cache=out.cache)
    outs.append((out, step))
  (a, a_step), (b, b_step) = outs
  for x, y in ((a.logits, b.logits), (a_step.logits, b_step.logits),
               (a_step.cache["k"], b_step.cache["k"]), (a_step.cache["v"], b_step.cache["v"])):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-5)
  assert float(jnp.abs(a_step.cache["k"][:, :, :, 9]).max()) > 0    # the step wrote slot 9


@pytest.mark.parametrize("unstack", [True, False])
def test_the_prompt_attends_to_itself_as_the_forward_without_a_cache_does(llava, unstack):
  """The prefill's logits are the plain forward's, bit for bit: the prompt's tokens attend to
  each other in one causal attention, not over the cache in blocks (whose running softmax rounds
  differently), and their keys and values fill the cache, which the next step reads."""
  model = llava.for_decoding(unstack)
  ids, mask, px = _prompt(seed=4)
  pos = layers.positions_from_mask(jnp.asarray(mask))
  cache = model.init_cache(3, 24)
  pre = model.apply(ids, px, attention_mask=mask, positions=pos, cache=cache, last_only=True,
                    prefill=True)
  fwd = model.apply(ids, px, attention_mask=mask, positions=pos, last_only=True)
  assert np.array_equal(np.asarray(pre.logits), np.asarray(fwd.logits))
  assert int(pre.cache["index"]) == ids.shape[1]
  nxt = np.full((3, 1), 7, np.int32)
  step = model.apply(nxt, attention_mask=np.ones((3, 1), bool), positions=pos[:, -1:] + 1,
                     cache=pre.cache)
  again = model.apply(np.concatenate([ids, nxt], 1), px,
                      attention_mask=np.concatenate([mask, np.ones((3, 1), np.int32)], 1),
                      positions=np.concatenate([pos, pos[:, -1:] + 1], 1), last_only=True)
  np.testing.assert_allclose(np.asarray(step.logits), np.asarray(again.logits), rtol=1e-5,
                             atol=1e-5)
  with pytest.raises(ValueError, match="prefill=True fills a cache"):
    model.apply(ids, px, attention_mask=mask, prefill=True)


@pytest.mark.parametrize("dtype,t", [("float32", 1), ("bfloat16", 1), ("float32", 3)])
def test_one_token_scores_are_matrix_vector_products_in_float32_on_cpu(dtype, t):
  """A decode step's block scores, float32 on CPU: one [batch, kv_heads] batch of matrix-vector
  products per query group (YNNPACK declines them; its batched dot with two rows a matrix was the
  slow part of `small`'s batch-8 step), equal to the grouped einsum up to the order of the sums.
  bf16 and several tokens keep the one batched einsum."""
  rs = np.random.RandomState(7)
  b, kv, g, h, slots = 3, 2, 3, 16, 64
  qg = jnp.asarray(rs.randn(b, kv, g, t, h), dtype)
  kb = jnp.asarray(rs.randn(b, kv, slots, h), dtype)
  got = layers.block_scores(qg, kb)
  ref = jnp.einsum("bkgth,bksh->bkgts", qg, kb, preferred_element_type=jnp.float32)
  assert got.shape == ref.shape == (b, kv, g, t, slots) and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-6, atol=1e-5)
  dots = [e for e in jax.make_jaxpr(layers.block_scores)(qg, kb).eqns
          if e.primitive.name == "dot_general"]
  matvecs = dtype == "float32" and t == 1
  assert layers.one_token_scores_as_matvecs(qg) == matvecs
  assert [d.invars[0].aval.ndim for d in dots] == ([3] * g if matvecs else [5])


def test_a_bfloat16_cache_is_written_and_read_in_place_on_cpu(monkeypatch):
  """XLA:CPU computes a bf16 dynamic-update-slice or slice in float32, converting the whole KV
  cache at every layer of every token (a bf16 batch-8 decode call ran at half the float32 call's
  speed). On one CPU device the cache is held as uint16 bit patterns: the compiled prefill and step
  have no float32 or bf16 array of the cache's shape, and give the plain path's logits and cache,
  bitwise."""
  text = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_layers=3,
                     num_heads=4, num_kv_heads=2, dtype="bfloat16")
  from mathvlm.models.llm import LlamaForCausalLM
  model = LlamaForCausalLM(text, rngs=nnx.Rngs(4))
  graphdef, state = nnx.split(model)
  ids = jnp.asarray(np.random.RandomState(5).randint(1, V, (2, 7)), jnp.int32)

  def prefill_and_step():   # a new function each time: jit's trace cache is per function
    def run(state):
      m = nnx.merge(graphdef, state).for_decoding()
      out = m.apply(ids, cache=m.init_cache(2, 24))   # [3 layers, 2, 2 kv heads, 24 slots, 8]
      step = m.apply(ids[:, -1:], cache=out.cache)
      return step.logits, step.cache["k"], step.cache["v"]
    return jax.jit(run)

  whole_cache = re.compile(r"= (f32|bf16)\[3,2,2,24,8\]")
  run = prefill_and_step()
  assert not whole_cache.search(run.lower(state).compile().as_text())
  logits, k, v = run(state)
  assert k.dtype == v.dtype == jnp.uint16
  monkeypatch.setattr(layers, "one_cpu_device", lambda: False)
  plain = prefill_and_step()
  assert whole_cache.search(plain.lower(state).compile().as_text())   # what it replaces
  ref_logits, ref_k, ref_v = plain(state)
  assert ref_k.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(logits, np.float32), np.asarray(ref_logits, np.float32))
  for bits, ref in ((k, ref_k), (v, ref_v)):
    np.testing.assert_array_equal(np.asarray(bits), np.asarray(ref).view(np.uint16))


def test_a_cache_held_as_bits_refuses_keys_of_another_dtype():
  bits = jnp.zeros((1, 1, 1, 4, 2), jnp.uint16)
  with pytest.raises(TypeError, match="takes the bf16/f16 keys and values it was made for, "
                                      "got float32"):
    layers.update_slice(bits, jnp.ones((1, 1, 1, 1, 2), jnp.float32), (0, 0, 0, 1, 0))
  out = layers.update_slice(bits, jnp.full((1, 1, 1, 1, 2), 1.5, jnp.bfloat16), (0, 0, 0, 1, 0))
  np.testing.assert_array_equal(
      np.asarray(layers.read_slice(out, (0, 0, 0, 0, 0), (1, 1, 1, 4, 2), jnp.bfloat16),
                 np.float32)[0, 0, 0, :, 0], [0.0, 1.5, 0.0, 0.0])


def test_block_phases_put_every_step_in_the_block_it_writes():
  """Step s writes slot prompt_len + s - 1; each phase reads the blocks up to its own."""
  assert decode_module.block_phases(100, 60, 256) == [(1, 29), (2, 60)]
  assert decode_module.block_phases(288, 128, 512) == [(4, 33), (5, 97), (6, 128)]
  for t, new in ((100, 60), (127, 2), (128, 64), (129, 200), (288, 128), (63, 190)):
    slots = decode_module.cache_slots(t, new)
    phases = decode_module.block_phases(t, new, slots)
    block = layers.kv_block(slots)
    start = 1
    for written, end in phases:
      assert end > start                                           # no empty phase
      assert all((t + s - 1) // block == written for s in range(start, end))
      start = end
    assert start == new and (t + new - 2) // block == phases[-1][0] < slots // block
  assert decode_module.block_phases(20, 40, 64) is None             # a short cache: one loop
  assert decode_module.block_phases(100, 1, 256) is None            # no step after prefill
  assert len(decode_module.block_phases(63, 190, 256)) == decode_module.MAX_PHASES == 4
  assert decode_module.block_phases(63, 200, 384) is None           # more phases than MAX_PHASES


def _decode_both_ways(model, ids, mask, px, temperature, new, eos, monkeypatch):
  """decode's output with the cache held as blocks (its CPU form) and as one buffer, and the
  compiled programs' text."""
  outs, texts = [], []
  for phases in (decode_module.block_phases, lambda *a: None):
    monkeypatch.setattr(decode_module, "block_phases", phases)

    @functools.partial(jax.jit, static_argnums=0)
    def run(graphdef, state):
      return decode(nnx.merge(graphdef, state), ids, mask, px, jax.random.key(1),
                    jnp.float32(temperature), jnp.float32(0.9), max_new_tokens=new, eos=eos)
    graphdef, state = nnx.split(model)
    texts.append(run.lower(graphdef, state).compile().as_text())
    outs.append(run(graphdef, state))
  return outs, texts


@pytest.mark.parametrize("dtype,temperature,eos", [("float32", 0.0, ()), ("bfloat16", 1.0, ()),
                                                   ("float32", 1.0, (5,))])
def test_decoding_with_the_cache_in_blocks_equals_the_one_buffer_loop(dtype, temperature, eos,
                                                                      monkeypatch):
  """On one CPU device a cache of more than 128 slots is read as separate blocks, one decode loop
  per block written (`block_phases`): the same arithmetic in the same order, so the tokens and
  log-probs are bitwise those of the one loop over the whole buffer, across phases and with left
  padding; and no step slices a block out of the cache."""
  vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=4,
                            image_size=28, patch_size=14)
  text = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_layers=2,
                     num_heads=4, num_kv_heads=2, dtype=dtype)
  model = Llava(LlavaConfig(vision=vision, text=text, image_token_id=IMG), rngs=nnx.Rngs(5))
  ids, mask, px = _prompt(b=3, t=100, pads=(0, 7, 70), seed=4)   # 256 slots, blocks of 64
  assert decode_module.block_phases(100, 60, 256) == [(1, 29), (2, 60)]
  (blocks, loop), (blocks_hlo, loop_hlo) = _decode_both_ways(model, ids, mask, px, temperature,
                                                             60, eos, monkeypatch)
  lengths = np.asarray(blocks.lengths)
  assert lengths.max() > 29 if eos else np.all(lengths == 60)        # decoding crossed a block
  for got, ref in ((blocks.tokens, loop.tokens), (blocks.logps, loop.logps),
                   (blocks.lengths, loop.lengths)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))
  # a block sliced out of the cache: the prefill's (k and v of 2 layers) in both, the step's too
  # in the one-buffer loop only
  slices = lambda hlo: len(re.findall(r"\[1,3,2,64,8\]\{[\d,]+\} dynamic-slice\(", hlo))
  assert slices(loop_hlo) == slices(blocks_hlo) + 2 * 2


def test_a_cache_in_blocks_takes_one_token_a_step(llava):
  view = llava.for_decoding()
  cache = llava.init_cache(1, 256)
  blocks = {name: layers.as_blocks(cache[name], 64) for name in ("k", "v")}
  with pytest.raises(ValueError, match="one token per step"):
    view.language_model.apply(jnp.ones((1, 2), jnp.int32), cache=dict(cache, **blocks))
  with pytest.raises(ValueError, match="separate layers"):
    llava.language_model.apply(jnp.ones((1, 1), jnp.int32), cache=dict(cache, **blocks))


def test_first_argmax_is_jnp_argmax_with_ties_nans_and_infinities():
  rs = np.random.RandomState(0)
  x = rs.randn(7, 300).astype(np.float32)
  x[1, [5, 17, 250]] = 9.0                    # tied maxima: the first
  x[2, [40, 90]] = np.nan                     # a NaN: the first NaN
  x[3] = -np.inf                              # all -inf: index 0
  x[4, 299] = np.inf                          # the last index
  x[5, [0, 3]] = np.inf
  x[6, 7] = np.nan
  x[6, 2] = np.inf
  for dtype in (jnp.float32, jnp.bfloat16):
    got = decode_module.first_argmax(jnp.asarray(x, dtype))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(jnp.argmax(jnp.asarray(x, dtype), -1)))
    assert got.dtype == jnp.int32
