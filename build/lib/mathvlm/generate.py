"""Batched decoding with a KV cache: left-padded prompts, greedy or temperature/top-p sampling.

Prefill and every decode step run inside one jitted function (a `while_loop`), so decoding never
recompiles: one compile per (model, batch, prompt length, max_new_tokens, greedy-or-not). Rows that
reach EOS are padded with `pad_token_id` afterwards, and the loop stops when all rows are done, as
transformers' `generate` does.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mathvlm.models.layers import positions_from_mask

Array = jax.Array


class Generated(NamedTuple):
  tokens: Array    # [batch, max_new_tokens], pad_token_id after a row's EOS
  lengths: Array   # [batch] tokens generated per row, EOS included


def sample_logits(logits: Array, rng: Array, temperature: float, top_p: float,
                  greedy: bool) -> Array:
  """Next tokens from [batch, vocab] logits. top_p keeps the smallest set of most likely tokens
  whose probability reaches top_p (always at least one)."""
  if greedy:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits.astype(jnp.float32) / temperature
  order = jnp.argsort(-logits, axis=-1)
  sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
  probs = jax.nn.softmax(sorted_logits, axis=-1)
  before = jnp.cumsum(probs, axis=-1) - probs       # mass strictly above each token
  sorted_logits = jnp.where(before < top_p, sorted_logits, -jnp.inf)
  choice = jax.random.categorical(rng, sorted_logits, axis=-1)
  return jnp.take_along_axis(order, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "eos", "pad",
                                             "greedy"))
def _generate(graphdef, state, input_ids, attention_mask, pixel_values, rng, temperature, top_p,
              *, max_new_tokens: int, eos: tuple[int, ...], pad: int, greedy: bool) -> Generated:
  model = nnx.merge(graphdef, state)
  b, t = input_ids.shape
  extra = {} if pixel_values is None else {"pixel_values": pixel_values}
  cache = model.init_cache(b, t + max_new_tokens)
  positions = positions_from_mask(attention_mask)
  out = model.apply(input_ids, attention_mask=attention_mask, positions=positions, cache=cache,
                    last_only=True, **extra)
  eos_arr = jnp.asarray(eos if eos else (-1,), jnp.int32)

  def pick(logits, rng):
    return sample_logits(logits[:, -1], rng, temperature, top_p, greedy)

  rng, sub = jax.random.split(rng)
  first = pick(out.logits, sub)
  tokens = jnp.full((b, max_new_tokens), pad, jnp.int32).at[:, 0].set(first)
  done = jnp.isin(first, eos_arr)
  lengths = jnp.ones((b,), jnp.int32)
  next_pos = positions[:, -1] + 1

  def cond(carry):
    step, _, _, _, done, _, _, _ = carry
    return (step < max_new_tokens) & ~jnp.all(done)

  def body(carry):
    step, tokens, last, cache, done, lengths, pos, rng = carry
    # New tokens are never image tokens, so both model kinds decode through plain `apply`.
    out = model.apply(last[:, None], attention_mask=jnp.ones((b, 1), bool),
                      positions=pos[:, None], cache=cache)
    rng, sub = jax.random.split(rng)
    tok = jnp.where(done, pad, pick(out.logits, sub))
    tokens = tokens.at[:, step].set(tok)
    lengths = lengths + (~done).astype(jnp.int32)
    done = done | jnp.isin(tok, eos_arr)
    return step + 1, tokens, tok, out.cache, done, lengths, pos + 1, rng

  carry = (jnp.int32(1), tokens, first, out.cache, done, lengths, next_pos, rng)
  _, tokens, _, _, _, lengths, _, _ = jax.lax.while_loop(cond, body, carry)
  return Generated(tokens, lengths)


def generate(model: nnx.Module, input_ids, attention_mask=None, pixel_values=None, *,
             max_new_tokens: int = 32, eos_token_id: int | Sequence[int] | None = None,
             pad_token_id: int = 0, temperature: float = 0.0, top_p: float = 1.0,
             seed: int = 0) -> Generated:
  """Continues left-padded prompts. temperature 0 is greedy; a seed fixes sampling.

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
  return _generate(graphdef, state, input_ids, attention_mask, pixel_values,
                   jax.random.key(seed), jnp.float32(max(temperature, 1e-6)), jnp.float32(top_p),
                   max_new_tokens=max_new_tokens, eos=eos, pad=int(pad_token_id),
                   greedy=temperature == 0)


def _default_eos(model):
  cfg = getattr(model, "cfg", None)
  text = getattr(cfg, "text", cfg)
  return getattr(text, "eos_token_id", None)

