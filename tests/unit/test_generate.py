"""KV-cache decoding matches transformers' generate token for token; sampling is seeded."""

import numpy as np
import pytest
import torch

import hf_models as H
from mathvlm import checkpoint, hf
from mathvlm.generate import _generate, generate, sample_logits

import jax
import jax.numpy as jnp


def _hf_generate(ref_model, ids, mask, px=None, **kw):
  extra = {} if px is None else {"pixel_values": H.to_torch_pixels(px)}
  with torch.no_grad():
    out = ref_model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                             do_sample=False, pad_token_id=0, **extra, **kw)
  return out[:, ids.shape[1]:].numpy()


def _left_padded(batch, length, pads, seed):
  rs = np.random.RandomState(seed)
  ids = rs.randint(3, H.IMAGE_TOKEN, (batch, length))
  mask = np.ones_like(ids)
  for b, p in enumerate(pads):
    ids[b, :p], mask[b, :p] = 0, 0
  return ids, mask


def test_llava_greedy_16_tokens_identical_to_transformers(llava_hf):
  ref_model, path = llava_hf
  model, cfg = hf.load_llava(path)
  ids, mask = H.llava_prompt(3, 10, cfg.image_seq_len, pad_left=(0, 3, 1), seed=2)
  px = H.pixels(3, seed=2)
  ref = _hf_generate(ref_model, ids, mask, px, max_new_tokens=16, eos_token_id=None)
  ours = generate(model, ids, mask, px, max_new_tokens=16, eos_token_id=-1)
  assert ref.shape == (3, 16)
  np.testing.assert_array_equal(np.asarray(ours.tokens), ref)


@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_llm_greedy_identical_and_eos_stops_like_transformers(tmp_path, kind):
  # mistral: a 6-token sliding window, shorter than prompt + generation
  cfg = H.llama_config() if kind == "llama" else H.mistral_config(sliding_window=6)
  ref_model = H.llm(7, cfg)
  model, _ = hf.load_hf(H.save(ref_model, str(tmp_path)))
  ids, mask = _left_padded(4, 9, (0, 5, 2, 0), seed=3)
  free = np.asarray(generate(model, ids, mask, max_new_tokens=16, eos_token_id=-1).tokens)
  np.testing.assert_array_equal(
      free, _hf_generate(ref_model, ids, mask, max_new_tokens=16, eos_token_id=None,
                         min_new_tokens=16))
  # An EOS that row 0 emits at step 4: that row stops and is padded, the others go on.
  eos = int(free[0, 4])
  ref = _hf_generate(ref_model, ids, mask, max_new_tokens=16, eos_token_id=eos)
  ours = generate(model, ids, mask, max_new_tokens=16, eos_token_id=eos)
  tokens = np.asarray(ours.tokens)
  np.testing.assert_array_equal(tokens[:, :ref.shape[1]], ref)
  assert (tokens[:, ref.shape[1]:] == 0).all()
  first_eos = [list(r).index(eos) + 1 if eos in r else 16 for r in tokens]
  np.testing.assert_array_equal(np.asarray(ours.lengths), first_eos)
  assert tokens[0, 5:].tolist() == [0] * 11


def test_decoding_does_not_recompile(llava_hf):
  model, cfg = hf.load_llava(llava_hf[1])
  ids, mask = H.llava_prompt(2, 10, cfg.image_seq_len, pad_left=(0, 2), seed=4)
  generate(model, ids, mask, H.pixels(2), max_new_tokens=8)
  before = _generate._cache_size()
  ids2, mask2 = H.llava_prompt(2, 10, cfg.image_seq_len, pad_left=(1, 0), seed=5)
  generate(model, ids2, mask2, H.pixels(2, seed=9), max_new_tokens=8)
  assert _generate._cache_size() == before


def test_sampling_is_seeded_and_top_p_is_a_nucleus(llava_hf):
  model, cfg = hf.load_llava(llava_hf[1])
  ids, mask = H.llava_prompt(2, 10, cfg.image_seq_len, seed=6)
  px = H.pixels(2, seed=6)
  kw = dict(max_new_tokens=12, temperature=1.5, top_p=0.95, eos_token_id=-1)
  a = np.asarray(generate(model, ids, mask, px, seed=1, **kw).tokens)
  b = np.asarray(generate(model, ids, mask, px, seed=1, **kw).tokens)
  c = np.asarray(generate(model, ids, mask, px, seed=2, **kw).tokens)
  np.testing.assert_array_equal(a, b)
  assert (a != c).any()
  greedy = np.asarray(generate(model, ids, mask, px, max_new_tokens=12, eos_token_id=-1).tokens)
  tiny_p = generate(model, ids, mask, px, seed=3, max_new_tokens=12, temperature=1.0, top_p=1e-6,
                    eos_token_id=-1)
  np.testing.assert_array_equal(np.asarray(tiny_p.tokens), greedy)


def test_a_row_with_its_own_key_samples_the_same_tokens_in_any_batch(llava_hf):
  """rows=: row r draws from fold_in(key(seed), rows[r]), so its tokens follow its number, not
  its place in the batch or the batch's size (eval.run's resumes and --batch rely on it)."""
  model, cfg = hf.load_llava(llava_hf[1])
  ids, mask = H.llava_prompt(3, 10, cfg.image_seq_len, seed=6)
  px = H.pixels(3, seed=6)
  kw = dict(max_new_tokens=10, temperature=1.5, top_p=0.95, eos_token_id=-1, seed=1)
  three = np.asarray(generate(model, ids, mask, px, rows=[5, 9, 2], **kw).tokens)
  two = np.asarray(generate(model, ids[[2, 0]], mask[[2, 0]], px[[2, 0]], rows=[2, 5],
                            **kw).tokens)
  np.testing.assert_array_equal(two, three[[2, 0]])
  renumbered = np.asarray(generate(model, ids, mask, px, rows=[6, 9, 2], **kw).tokens)
  np.testing.assert_array_equal(renumbered[1:], three[1:])
  assert (renumbered[0] != three[0]).any()
  plain = dict(kw, top_p=1.0)
  np.testing.assert_array_equal(
      np.asarray(generate(model, ids[[1]], mask[[1]], px[[1]], rows=[9], **plain).tokens),
      np.asarray(generate(model, ids, mask, px, rows=[5, 9, 2], **plain).tokens)[[1]])
  with pytest.raises(ValueError, match="rows"):
    generate(model, ids, mask, px, rows=[1, 2], **kw)


def test_sample_logits_frequencies_follow_the_renormalised_nucleus():
  probs = np.array([0.5, 0.25, 0.15, 0.07, 0.03])
  logits = jnp.log(jnp.asarray(np.tile(probs, (4000, 1)), jnp.float32))
  draws = np.asarray(sample_logits(logits, jax.random.key(0), 1.0, 0.8, greedy=False))
  # mass above token 2 is 0.75 < 0.8, so tokens 0..2 stay, 3 and 4 are cut
  assert set(draws.tolist()) == {0, 1, 2}
  freq = np.bincount(draws, minlength=5)[:3] / len(draws)
  np.testing.assert_allclose(freq, probs[:3] / probs[:3].sum(), atol=0.03)


def test_generate_rejects_right_padding(llava_hf):
  model, _ = hf.load_llava(llava_hf[1])
  ids, mask = H.llava_prompt(1, 10, 4)
  mask[0, -2:] = 0
  with pytest.raises(ValueError, match="left padding"):
    generate(model, ids, mask, H.pixels(1))
