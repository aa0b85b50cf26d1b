"""Behaviour that a second mutation review (small plausible bugs applied to the GRPO curriculum
and rewards, the resume checks, the LaTeX reader, MATH-Vision's tuple and equality rules and the
sampler's pure helpers) found no test guarding: each test here fails on such a mutant and passes
on the real code. Tiny inputs only: the whole file runs in seconds."""

import numpy as np
import pytest

from mathvlm.rl import rewards as R
from mathvlm.rl.curriculum import Curriculum
from test_curriculum import levels as _levels


def test_curriculum_running_rate_is_the_exponential_average_at_momentum_0_8():
  """The trainer builds its curriculum with the default momentum, and the module's docstring
  derives min_steps=5 from it (a window of 1 / (1 - 0.8)): the running rate is
  0.8 * old + 0.2 * batch. test_curriculum only watched levels, which a wrong weight on the new
  batch (1 + m, 2 - m) or a changed default still moves the same way."""
  c = Curriculum(levels=3)
  assert c.update(1.0) == 1.0                 # the first batch alone
  assert c.update(0.0) == pytest.approx(0.8)
  assert c.update(0.5) == pytest.approx(0.8 * 0.8 + 0.2 * 0.5)


@pytest.mark.parametrize("rate,level", [(0.75, 1), (0.76, 2), (0.25, 1), (0.24, 0)])
def test_curriculum_moves_only_strictly_outside_the_default_band(rate, level):
  """The trainer's band is the default (0.25, 0.75), and a level moves when the running rate is
  above `high` or below `low`: at the edges it stays. A changed default or `>=`/`<=` would move
  a run whose groups are still informative."""
  c = Curriculum(levels=3, level=1, min_steps=1)
  assert _levels(c, [rate]) == [level]


def test_curriculum_level_stays_within_the_streams_levels():
  """The level indexes the problem stream's levels: it never passes the top (levels - 1) nor
  goes below 0, however long the rate stays out of the band; a level beyond either end would
  ask the stream for a difficulty it does not have."""
  assert _levels(Curriculum(levels=2, min_steps=1), [1.0] * 3) == [1, 1, 1]
  assert _levels(Curriculum(levels=2, level=1, min_steps=1), [0.0] * 3) == [0, 0, 0]


def test_curriculum_inside_the_band_keeps_its_level():
  """A running rate inside the band moves nothing, at any level: only a rate out of the band
  moves a level."""
  for level in (0, 1, 2):
    c = Curriculum(levels=3, level=level, min_steps=1)
    assert _levels(c, [0.5] * 3) == [level] * 3


def test_disabled_curriculum_never_moves():
  """`grpo.curriculum=False` keeps level 0 (the stream's fixed difficulty) whatever the pass
  rate; the running rate is still measured and returned for the log."""
  c = Curriculum(levels=3, enabled=False, min_steps=1)
  assert _levels(c, [1.0] * 4) == [0] * 4
  assert c.pass_rate == 1.0


def _free(answer: str, group: str = "g") -> dict:
  return {"group": group, "answer": answer, "choices": []}


@pytest.mark.parametrize("spec", ["", " , ,"])
def test_an_empty_reward_spec_is_refused(spec):
  """`grpo.rewards` naming no reward would score every answer 0 (a sum over no terms): every
  group's advantages would be zero and the run would learn nothing, unsaid."""
  with pytest.raises(ValueError, match="grpo.rewards is empty"):
    R.parse(spec)


def test_length_reward_penalises_tokens_past_the_target_over_max_new_tokens():
  """-(tokens beyond length_target) / max_new_tokens, and length_target 0 (the default) frees
  the whole max_new_tokens. test_grpo_review checks it through a compiled toy host (one mean);
  here each answer's value: a target of 1 token, or a swapped max/min or `*` for `/`, would
  charge other answers."""
  responses = ["The answer is 3."] * 4
  problems = [_free("3")] * 4
  lengths = np.array([2, 4, 6, 8])
  _, parts = R.score(responses, problems, lengths, "length=1.0", 4)
  np.testing.assert_allclose(parts["length"], [0, 0, -0.5, -1.0])
  _, parts = R.score(responses, problems, lengths, "length=1.0", 4, length_target=3)
  np.testing.assert_allclose(parts["length"], [0, -0.25, -0.75, -1.25])


def test_consistency_of_an_answer_alone_in_its_group_is_zero():
  """A right answer with no other answer in its group has no one to agree with: 0, not the mean
  of nothing (NaN, which would make its group's advantages NaN and stop the run)."""
  problems = [_free("3", "alone"), _free("3", "pair"), _free("3", "pair")]
  responses = ["The answer is 3."] * 3
  _, parts = R.score(responses, problems, np.ones(3), "answer=1.0,consistency=1.0", 8)
  np.testing.assert_array_equal(parts["consistency"], [0, 1, 1])


def _sft_tiny():
  import importlib
  return importlib.import_module("mathvlm.configs.sft").get_config("model=tiny")


def test_a_workdir_without_its_run_config_resumes_with_a_warning(tmp_path, caplog):
  """A workdir from before run_config.json was kept resumes unchecked, saying so; it must not
  fail reading the file that is not there."""
  from mathvlm.configs import resume
  with caplog.at_level("WARNING", logger="mathvlm.train"):
    resume.check(_sft_tiny(), str(tmp_path), 4)
  assert f"{resume.FILE} is missing" in caplog.text


def test_a_record_without_the_order_is_quiet_where_no_order_change_touches_the_config(
    tmp_path, caplog):
  """The warning of a record from before the data order was kept names the changes that touch
  this config; a config none touches (no mixture, one epoch) resumes without a warning that
  names nothing."""
  import json

  from mathvlm.configs import resume
  config = _sft_tiny()
  resume.record(config, str(tmp_path))
  path = tmp_path / resume.FILE
  rec = json.loads(path.read_text())
  del rec[resume.ORDER_KEY]
  path.write_text(json.dumps(rec))
  with caplog.at_level("WARNING", logger="mathvlm.train"):
    resume.check(config, str(tmp_path), 4, epochs=1)
  assert caplog.text == ""


@pytest.mark.parametrize("field,may", [
    ("optim.lr", True), ("checkpoint.every", True), ("model.remat", True),
    ("optim.lr_schedule", False), ("steps_per_eval", False), ("model.remat_policy", False),
    ("checkpoint", True), ("optim.weight_decay", False)])
def test_may_change_reads_a_name_whole_and_only_a_dotted_entry_as_a_prefix(field, may):
  """MAY_CHANGE holds names and prefixes ending in '.': "optim.lr" lets the learning rate
  change, not every field whose name starts with it (a later `optim.lr_schedule` would change
  what the state means, and its resume must be refused). No field of today's configs starts
  with a name entry, so the resume tests cannot tell `startswith` from `==`. A prefix's whole
  section (`checkpoint` for `checkpoint.`) may change too."""
  from mathvlm.configs import resume
  assert resume.may_change(field) is may


def test_an_order_change_error_says_what_changed(tmp_path):
  """The refusal names each order change by what it changed (pipeline.ORDER_CHANGES's text),
  so a person can tell whether to go on in the new order; test_configs matches only the
  version numbers, and an error naming the field's flag instead would pass it."""
  import json

  from mathvlm.configs import resume
  from mathvlm.data import pipeline
  config = _sft_tiny()
  with config.unlocked():
    config.data.mixture = "a=1,b=3"
  resume.record(config, str(tmp_path))
  path = tmp_path / resume.FILE
  rec = json.loads(path.read_text())
  rec[resume.ORDER_KEY]["version"] = 1
  path.write_text(json.dumps(rec))
  with pytest.raises(ValueError) as e:
    resume.check(config, str(tmp_path), 4, epochs=1)
  for v in (2, 6):
    assert f"\n  {v}: {pipeline.ORDER_CHANGES[v][1]}\n" in str(e.value)


@pytest.mark.parametrize("text,value", [("0^{2}", 0), ("0^{5000}", 0), ("2 \\cdot 0^{3} + 1", 1)])
def test_a_power_of_zero_is_no_size_guard_hit(text, value):
  """The size guard (`latex.too_big`) measures a power by log10 of its base; a base of 0 has no
  log (its digits are one): it must read 0^n as 0, not refuse it as a number of infinite size.
  The guard's tests use bases of 3 and 10 only."""
  from mathvlm.eval import latex
  assert latex.to_number(text) == value


@pytest.mark.parametrize("text,value", [("5!", 120), ("(3)! + 1", 7)])
def test_a_small_factorial_is_a_number(text, value):
  """The size guard reads a factorial's argument to bound it (1500! and up are refused); a small
  one is a number like any other. The guard's tests have only a huge factorial, which an error
  inside the guard refuses as well."""
  from mathvlm.eval import latex
  assert latex.to_number(text) == value


@pytest.mark.parametrize("text", ["1<2", "3 > 2", "{23"])
def test_a_comparison_or_an_unclosed_brace_is_not_a_number(text):
  """`1<2` evaluates to True, a bool, which Python counts as the int 1: an answer `1<2` must not
  match a gold 1. `{23` is no group (its brace is never closed), not the 2 inside it."""
  from mathvlm.eval import latex
  with pytest.raises(latex.NotANumber):
    latex.to_number(text)


PROBS = np.array([0.5, 0.25, 0.15, 0.07, 0.03])


def _draws(temperature: float, top_p: float) -> np.ndarray:
  import jax
  import jax.numpy as jnp

  from mathvlm.generate import sample_logits
  logits = jnp.log(jnp.asarray(np.tile(PROBS, (4000, 1)), jnp.float32))
  return np.asarray(sample_logits(logits, jax.random.key(0), temperature, top_p, greedy=False))


@pytest.mark.parametrize("top_p,kept", [(1.0, 5), (0.8, 4)])
def test_sampling_divides_the_logits_by_the_temperature_before_the_nucleus(top_p, kept):
  """At temperature 2 the draw follows softmax(logits / 2), here the square roots of the
  probabilities, and top_p cuts that flattened distribution (transformers' order: temperature,
  then top-p): four tokens reach 0.8 where the model's own probabilities need three.
  test_generate samples at temperature 1 only, where `/` and `*` agree."""
  draws = _draws(2.0, top_p)
  assert set(draws.tolist()) == set(range(kept))
  tempered = np.sqrt(PROBS[:kept])
  freq = np.bincount(draws, minlength=5)[:kept] / len(draws)
  np.testing.assert_allclose(freq, tempered / tempered.sum(), atol=0.03)


def test_pick_is_greedy_at_temperature_0_skips_the_never_token_and_keeps_the_models_logps():
  """Temperature 0 takes the most likely allowed token (not a draw from logits / 0) and any
  temperature above 0 samples; the image token is never taken even where it is the most likely,
  and the log-prob returned is the model's own, from the unmasked logits."""
  import jax
  import jax.numpy as jnp

  from mathvlm import generate
  logits = jnp.log(jnp.asarray([[0.1, 0.6, 0.3], [0.2, 0.3, 0.5]], jnp.float32))
  tok, logp = generate._pick(logits, jax.random.key(0), jnp.float32(0.0), jnp.float32(1.0),
                             never=1)
  np.testing.assert_array_equal(np.asarray(tok), [2, 2])
  np.testing.assert_allclose(np.asarray(logp), np.log([0.3, 0.5]), rtol=1e-5)
  # any temperature above 0 samples, however low: both tokens of an even pair are drawn
  even = jnp.zeros((200, 2), jnp.float32)
  tok, _ = generate._pick(even, jax.random.key(0), jnp.float32(0.5), jnp.float32(1.0))
  assert set(np.asarray(tok).tolist()) == {0, 1}


def test_the_nucleus_is_the_smallest_set_that_reaches_top_p():
  """Four equally likely tokens (probabilities exactly 0.25 in float32): two reach top_p=0.5, so
  the third, whose mass above it is exactly 0.5, is cut (transformers' TopPLogitsWarper keeps
  two as well). `<=` for `<` would keep a token the nucleus does not need. Greedy takes the
  first of the tied maxima."""
  import jax
  import jax.numpy as jnp

  from mathvlm.generate import sample_logits
  logits = jnp.zeros((2000, 4), jnp.float32)
  draws = np.asarray(sample_logits(logits, jax.random.key(0), 1.0, 0.5, greedy=False))
  assert set(draws.tolist()) == {0, 1}
  greedy = sample_logits(logits, jax.random.key(0), 1.0, 0.5, greedy=True)
  np.testing.assert_array_equal(np.asarray(greedy), np.zeros(2000))


@pytest.mark.parametrize("prompt,new,slots", [(3, 2, 8), (5, 4, 16), (100, 28, 128),
                                              (100, 29, 256), (300, 1, 384)])
def test_cache_slots_round_up_to_whole_blocks(prompt, new, slots):
  """Prompt plus new tokens rounded up to a multiple of 8 up to 128, of 128 beyond: the cached
  attention reads whole blocks of the cache. The block-phase test takes whatever cache_slots
  gives, so a changed rounding passed it."""
  from mathvlm.generate import cache_slots
  assert cache_slots(prompt, new) == slots


@pytest.mark.parametrize("image,vocab,never", [(31, 32, 31), (0, 32, 0), (32, 32, None),
                                               (-1, 32, None), (None, 32, None)])
def test_the_never_sampled_token_is_an_image_id_inside_the_vocabulary(image, vocab, never):
  """A LLaVA's image token is never sampled where the vocabulary holds it (ids 0..vocab-1); an
  id past the vocabulary (some checkpoints put it there) or none masks nothing, and indexing
  the logits with it would fail or mask the wrong token."""
  import types

  from mathvlm import generate
  cfg = types.SimpleNamespace(image_token_id=image, text=types.SimpleNamespace(vocab_size=vocab))
  assert generate._never_sampled(types.SimpleNamespace(cfg=cfg)) == never
  assert generate._never_sampled(types.SimpleNamespace(cfg=types.SimpleNamespace(
      image_token_id=3))) is None                   # a text model: no image token


def test_each_row_draws_from_its_own_nucleus():
  """The nucleus sorts each row's logits by that row's order: rows that favour different tokens
  each draw their own (here one token holds 0.9 of a row, so top_p=0.5 keeps it alone). The
  other sampling tests tile one distribution over every row, where a gather along the wrong
  axis gives the same tokens."""
  import jax
  import jax.numpy as jnp

  from mathvlm.generate import sample_logits
  tops = np.tile([0, 3, 1, 2, 3, 0], 100)
  rows = np.full((len(tops), 4), 0.1 / 3)
  rows[np.arange(len(tops)), tops] = 0.9
  draws = sample_logits(jnp.log(jnp.asarray(rows, jnp.float32)), jax.random.key(0), 1.0, 0.5,
                        greedy=False)
  np.testing.assert_array_equal(np.asarray(draws), tops)


@pytest.mark.parametrize("text,read", [
    ("(\\frac{1}{2},3)", "(0.5,3)"), ("[\\frac{1}{2},3]", "[0.5,3]"),
    ("(\\frac{1}{2},\\infty)", "(0.5,\\infty)"), ("(-a,\\frac{1}{4})", "(-a,0.25)"),
    ("(\\frac{1}{2},3]", "(\\frac{1}{2},3]"), ("[\\frac{1}{2},3)", "[\\frac{1}{2},3)"),
    ("(\\frac{1}{2})", "(\\frac{1}{2})")])
def test_math_v_reads_a_tuple_elementwise_only_in_matching_brackets(text, read):
  """MATH-Vision's scorer (`eval_tuple`) evaluates each element of "(a,b)" or "[a,b]", leaving
  infinities and the symbols a, -a as written; an interval with mixed brackets or one element
  in brackets is no tuple and stays as written. test_eval_math_v compares whole answers, which
  a changed bracket rule or element rule still mostly judged the same."""
  from mathvlm.eval import math_v
  assert math_v.eval_tuple(text) == read


def test_math_v_an_empty_answer_is_never_equal_and_spaces_around_one_do_not_count():
  """`judge` compares a free-form problem's answer with its gold option text too, which is "":
  an empty answer must not equal it (else every empty answer scores on every free-form item).
  Spaces around a text answer do not make it wrong."""
  from mathvlm.eval import math_v
  assert not math_v.is_equal("", "")
  assert not math_v.is_equal("  ", "")
  assert math_v.is_equal("x+1", " x+1 ")
