"""Batched decoding with a KV cache: left-padded prompts, greedy or temperature/top-p sampling.

`decode` is the pure core: a function of (model, prompts, mask, images, rng, temperature, top_p)
with static max_new_tokens and EOS ids, jittable inside a training step (GRPO rollouts), returning
the tokens and each sampled token's log-probability under the model. `generate` is the eager
entry point: checks, one jitted `decode`, and the tokens.

Prefill and every decode step run inside one jitted function (a `while_loop`), so decoding never
recompiles: one compile per (model, batch, prompt length, max_new_tokens, EOS ids). The prompt
attends to itself as in a forward without a cache and fills the empty cache (`apply(prefill=True)`);
each step's token is written in place and attention reads only the filled slots
(`layers.cached_attention`); on one CPU device the steps hold the cache as separate blocks, one
loop per block written (`block_phases`). Rows that reach EOS are padded with `pad_token_id`
afterwards, and the loop stops when all rows are done, as transformers' `generate` does.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mathvlm.models.layers import as_blocks, kv_block, one_cpu_device, positions_from_mask

Array = jax.Array


class Generated(NamedTuple):
  tokens: Array    # [batch, max_new_tokens], pad_token_id after a row's EOS
  lengths: Array   # [batch] tokens generated per row, EOS included


class Decoded(NamedTuple):
  tokens: Array    # [batch, max_new_tokens], pad after a row's EOS
  logps: Array     # [batch, max_new_tokens] float32 log p(token) under the model; 0 after EOS
  lengths: Array   # [batch] tokens generated per row, EOS included


def _categorical(rng: Array, logits: Array) -> Array:
  """A draw per row of [batch, vocab] logits: from one key, or from a key per row ([batch] keys),
  which makes a row's draw independent of the batch it is decoded in."""
  if rng.shape == ():
    return jax.random.categorical(rng, logits, axis=-1)
  return jax.vmap(lambda key, row: jax.random.categorical(key, row))(rng, logits)


def _nucleus(logits: Array, rng: Array, top_p) -> Array:
  """A draw from the smallest set of most likely tokens whose probability reaches top_p (always at
  least one): needs the tokens in order, so a sort of the vocabulary."""
  order = jnp.argsort(-logits, axis=-1)
  sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
  probs = jax.nn.softmax(sorted_logits, axis=-1)
  before = jnp.cumsum(probs, axis=-1) - probs       # mass strictly above each token
  sorted_logits = jnp.where(before < top_p, sorted_logits, -jnp.inf)
  choice = _categorical(rng, sorted_logits)
  return jnp.take_along_axis(order, choice[:, None], axis=-1)[:, 0]


def first_argmax(logits: Array) -> Array:
  """jnp.argmax over the last axis (the first of tied maxima, the first NaN where there is one)
  as two plain reductions, a max and a min of indices. XLA:CPU runs argmax's (value, index)
  reduce without vectorising it: 0.6 ms against 0.2 ms on [8, 32000] logits, a step of `small`'s
  batch-8 decode being ~20 ms (docs/perf/PERFORMANCE.md)."""
  top = jnp.max(logits, axis=-1, keepdims=True)
  index = jnp.arange(logits.shape[-1], dtype=jnp.int32)
  hit = (logits == top) | jnp.isnan(logits)
  return jnp.min(jnp.where(hit, index, logits.shape[-1]), axis=-1)


def _draw(logits: Array, rng: Array, temperature, top_p) -> Array:
  """A temperature sample; the sort only where top_p < 1 (a plain categorical otherwise)."""
  logits = logits.astype(jnp.float32) / temperature
  return jax.lax.cond(top_p < 1, lambda: _nucleus(logits, rng, top_p),
                      lambda: _categorical(rng, logits)).astype(jnp.int32)


def sample_logits(logits: Array, rng: Array, temperature: float, top_p: float,
                  greedy: bool) -> Array:
  """Next tokens from [batch, vocab] logits. top_p keeps the smallest set of most likely tokens
  whose probability reaches top_p (always at least one)."""
  if greedy:
    return first_argmax(logits)
  return _draw(logits, rng, temperature, top_p)


def _pick(logits: Array, rng: Array, temperature, top_p, never: int | None = None
          ) -> tuple[Array, Array]:
  """(next tokens, their log-probs under the model): greedy where temperature <= 0. never: a
  token id that is not drawn (`_never_sampled`); the log-probs stay the model's own, unmasked."""
  logits = logits.astype(jnp.float32)
  allowed = logits if never is None else logits.at[:, never].set(-jnp.inf)
  tok = jax.lax.cond(temperature > 0, lambda: _draw(allowed, rng, temperature, top_p),
                     lambda: first_argmax(allowed))
  logp = jnp.take_along_axis(jax.nn.log_softmax(logits), tok[:, None], axis=-1)[:, 0]
  return tok, logp


def _never_sampled(model) -> int | None:
  """A LLaVA's image token id, where it is in the vocabulary: a placeholder for image features,
  not a word, so never sampled. Fed back, it has no image to stand for: a decode step embeds it
  as `Llava.embed` does an image id without pixels (token 0's row; transformers embeds its own),
  while a row with it in its answer is read back with image features spliced there (GRPO's
  learner), so the tokens after it would be scored in a context they were not sampled in."""
  cfg = getattr(model, "cfg", None)
  image, text = getattr(cfg, "image_token_id", None), getattr(cfg, "text", None)
  if image is None or text is None or not 0 <= image < text.vocab_size:
    return None
  return int(image)


def cache_slots(prompt_len: int, max_new_tokens: int) -> int:
  """Cache length: prompt plus new tokens, rounded up to a multiple of 128 (or 8 when short), so
  `cached_attention` reads whole blocks."""
  n = prompt_len + max_new_tokens
  step = 128 if n > 128 else 8
  return -(-n // step) * step


def _step_keys(rng: Array, step) -> tuple[Array, Array]:
  """(the key carried on, the key of this step's draw). One key is split at each step, so a row's
  tokens depend on the rows beside it; [batch] keys (one per row) give row r at step s the key
  fold_in(rng[r], s), so a row samples the same tokens in any batch, at any place in it."""
  if rng.shape == ():
    return tuple(jax.random.split(rng))
  return rng, jax.vmap(jax.random.fold_in, (0, None))(rng, step)


def decode(model, input_ids: Array, attention_mask: Array, pixel_values: Array | None,
           rng: Array, temperature, top_p, *, max_new_tokens: int, eos: tuple[int, ...] = (),
           pad: int = 0, unstack: bool | None = None) -> Decoded:
  """Continues left-padded prompts [batch, t]; pure and jittable (temperature and top_p may be
  traced: temperature <= 0 is greedy, top_p == 1 draws without a sort). rng: one key for the
  batch, or [batch] keys, a row's own (`_step_keys`).

  The log-probs are the model's own (temperature 1, no nucleus cut) at each sampled token: what a
  forward pass over prompt + tokens gives, the old-policy log-probs of GRPO. Works with
  `LlamaForCausalLM` (pixel_values None) and `Llava` (prompt with image tokens; its image token
  is never sampled, `_never_sampled`, where transformers' generate may emit it). unstack: run
  the layers as separate modules (`for_decoding`; default on CPU, where it is faster); on one CPU
  device the steps then hold the cache as blocks (`block_phases`), with the same results.
  """
  model = model.for_decoding(unstack)
  b, t = input_ids.shape
  extra = {} if pixel_values is None else {"pixel_values": pixel_values}
  cache = model.init_cache(b, cache_slots(t, max_new_tokens))
  positions = positions_from_mask(attention_mask)
  out = model.apply(input_ids, attention_mask=attention_mask, positions=positions, cache=cache,
                    last_only=True, prefill=True, **extra)
  eos_arr = jnp.asarray(eos if eos else (-1,), jnp.int32)
  never = _never_sampled(model)
  rng, sub = _step_keys(rng, 0)
  first, first_logp = _pick(out.logits[:, -1], sub, temperature, top_p, never)
  tokens = jnp.full((b, max_new_tokens), pad, jnp.int32).at[:, 0].set(first)
  logps = jnp.zeros((b, max_new_tokens), jnp.float32).at[:, 0].set(first_logp)

  def cond(carry, end):
    return (carry[0] < end) & ~jnp.all(carry[5])

  def body(carry):
    step, tokens, logps, last, cache, done, lengths, pos, rng = carry
    # New tokens are never image tokens (`_never_sampled`), so both model kinds decode through
    # plain `apply`.
    out = model.apply(last[:, None], attention_mask=jnp.ones((b, 1), bool),
                      positions=pos[:, None], cache=cache)
    rng, sub = _step_keys(rng, step)
    tok, logp = _pick(out.logits[:, -1], sub, temperature, top_p, never)
    tok, logp = jnp.where(done, pad, tok), jnp.where(done, 0.0, logp)
    tokens = jax.lax.dynamic_update_slice(tokens, tok[:, None], (0, step))
    logps = jax.lax.dynamic_update_slice(logps, logp[:, None], (0, step))
    lengths = lengths + (~done).astype(jnp.int32)
    done = done | jnp.isin(tok, eos_arr)
    return step + 1, tokens, logps, tok, out.cache, done, lengths, pos + 1, rng

  carry = (jnp.int32(1), tokens, logps, first, out.cache, jnp.isin(first, eos_arr),
           jnp.ones((b,), jnp.int32), positions[:, -1] + 1, rng)
  phases = block_phases(t, max_new_tokens, out.cache["k"].shape[3])
  if unstack is False or not one_cpu_device() or phases is None:
    carry = jax.lax.while_loop(lambda c: cond(c, max_new_tokens), body, carry)
  else:
    carry = _decode_in_blocks(cond, body, carry, phases)
  return Decoded(carry[1], carry[2], carry[6])


MAX_PHASES = 4


def block_phases(prompt_len: int, max_new_tokens: int, slots: int
                 ) -> list[tuple[int, int]] | None:
  """The decode steps in phases, one per cache block they write, for `layers.block_attention`:
  (the block written, the step that ends the phase) each; None where blocks do not pay.

  Step s (from 1) feeds the token before it at slot prompt_len + s - 1. A phase's steps read
  blocks 0 to the one written, as separate arrays, so no step copies a block out of the cache.
  Each phase compiles its own copy of the step (`small`'s batch-8 decode: 10.7 s for 3 phases
  against 4.5 s for one loop, 24 s for 8 against 5.4), so a cache of at most 128 slots (blocks of
  8-64 and little to copy) and decodes writing more than MAX_PHASES blocks keep the one loop of
  `cached_attention`."""
  block = kv_block(slots)
  if slots <= 128 or max_new_tokens < 2:
    return None
  first, last = prompt_len // block, (prompt_len + max_new_tokens - 2) // block
  if last - first + 1 > MAX_PHASES:
    return None
  return [(j, min(max_new_tokens, (j + 1) * block - prompt_len + 1))
          for j in range(first, last + 1)]


def _decode_in_blocks(cond, body, carry, phases):
  """`decode`'s loop as one loop per phase (`block_phases`), the cache's keys and values held as
  blocks (`layers.as_blocks`), each phase's loop carrying the blocks up to the one it writes."""
  cache = carry[4]
  k, v = (as_blocks(cache[name], kv_block(cache[name].shape[3])) for name in ("k", "v"))
  for last, end in phases:
    view = dict(cache, k=tuple(layer[:last + 1] for layer in k),
                v=tuple(layer[:last + 1] for layer in v))
    carry = jax.lax.while_loop(lambda c, end=end: cond(c, end), body,
                               carry[:4] + (view,) + carry[5:])
    cache = carry[4]
    k = tuple(new + old[last + 1:] for new, old in zip(cache["k"], k))
    v = tuple(new + old[last + 1:] for new, old in zip(cache["v"], v))
  return carry


@functools.partial(jax.jit,
                   static_argnames=("graphdef", "max_new_tokens", "eos", "pad", "unstack"))
def _generate(graphdef, state, input_ids, attention_mask, pixel_values, rng, temperature, top_p,
              *, max_new_tokens: int, eos: tuple[int, ...], pad: int,
              unstack: bool | None = None) -> Generated:
  """Traced without the activation table, unlike the train step, ranking and held-out loss: under
  it a decode step of one token a row gathers every layer's fsdp-sharded weights, where without
  it XLA keeps the weights in place and reduces the partial sums of the whole batch's activations
  (measured 2026-12-07 on 8 fake devices: 7 all-gathers a layer against 1 all-gather and 4
  all-reduces of one token's activations). The price is memory: mavis-7b's GRPO rollouts take
  38.9 GiB a device, 13.6 under the table, as the prefill's MLP runs at the whole batch."""
  out = decode(nnx.merge(graphdef, state), input_ids, attention_mask, pixel_values, rng,
               temperature, top_p, max_new_tokens=max_new_tokens, eos=eos, pad=pad,
               unstack=unstack)
  return Generated(out.tokens, out.lengths)


def generate(model: nnx.Module, input_ids, attention_mask=None, pixel_values=None, *,
             max_new_tokens: int = 32, eos_token_id: int | Sequence[int] | None = None,
             pad_token_id: int = 0, temperature: float = 0.0, top_p: float = 1.0,
             seed: int = 0, rows: Sequence[int] | None = None) -> Generated:
  """Continues left-padded prompts. temperature 0 is greedy; a seed fixes sampling. rows: a
  number per row (a problem's place in a benchmark): each row then samples from its own key
  (`row_keys`), so its tokens do not depend on the batch size or on the rows beside it.

  Works with `LlamaForCausalLM` (no pixel_values) and `Llava` (prompt with image tokens).
  """
  input_ids = jnp.asarray(input_ids, jnp.int32)
  if attention_mask is None:
    attention_mask = jnp.ones_like(input_ids)
  attention_mask = jnp.asarray(attention_mask, jnp.int32)
  if not bool(np.all(np.asarray(attention_mask)[:, -1])):
    raise ValueError("generate needs left padding: the last prompt position must be a token in "
                     "every row (attention_mask[:, -1] == 1)")
  if temperature < 0 or not 0 < top_p <= 1:
    raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
  if eos_token_id is None:
    eos_token_id = _default_eos(model)
  eos = tuple(int(e) for e in np.atleast_1d(eos_token_id)) if eos_token_id is not None else ()
  if pixel_values is not None:
    pixel_values = jnp.asarray(pixel_values)
    model.check_image_tokens(input_ids, pixel_values)  # eagerly: under jit it cannot raise
  graphdef, state = nnx.split(model)
  temperature = 0.0 if temperature == 0 else max(temperature, 1e-6)
  if rows is not None and len(rows) != input_ids.shape[0]:
    raise ValueError(f"rows: {len(rows)} numbers for {input_ids.shape[0]} rows")
  rng = jax.random.key(seed) if rows is None else row_keys(seed, rows)
  return _generate(graphdef, state, input_ids, attention_mask, pixel_values,
                   rng, jnp.float32(temperature), jnp.float32(top_p),
                   max_new_tokens=max_new_tokens, eos=eos, pad=int(pad_token_id))


def row_keys(seed: int, rows: Sequence[int]) -> Array:
  """[len(rows)] keys, fold_in(key(seed), row) each: a row's sampling stream, named by its row's
  number (not by its place in a batch)."""
  return jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(seed),
                                                 jnp.asarray(rows, jnp.uint32))


def _default_eos(model):
  cfg = getattr(model, "cfg", None)
  text = getattr(cfg, "text", cfg)
  return getattr(text, "eos_token_id", None)
