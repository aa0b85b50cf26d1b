"""Behaviour that a fifth mutation review (small plausible bugs applied to the GRPO objective,
`mathvlm/objectives/grpo.py`, and the rollouts' host step, `mathvlm.rl.Rollouts`) found no test
guarding: each test here fails on such a mutant and passes on the real code. Tiny inputs only
(numbers, and the toy host step of test_grpo_rollouts.py): the whole file runs in seconds."""

import logging

import jax.numpy as jnp
import numpy as np
import pytest

import rl_toys
from mathvlm.objectives import grpo
from mathvlm.rl import rollouts as RO
from test_grpo_rollouts import G, OPEN_SOLVED, STEP, _host, toy  # noqa: F401 (the fixture)


def test_advantages_divide_by_the_std_plus_1e6():
  """The module says std(r) + 1e-6 (TRL: 1e-4); a group whose rewards barely differ shows the
  eps: spread 2e-6 has std 1e-6, so the advantages are +-1e-6 / 2e-6 = +-0.5, not +-1 (eps
  dropped), 2/3 (eps halved) or a blow-up (eps subtracted)."""
  adv = grpo.group_advantages(np.array([0.0, 2e-6]), group=2)
  np.testing.assert_allclose(adv, [-0.5, 0.5], rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_clip_fraction_counts_only_tokens_where_the_clip_binds(beta):
  """`clipped` is where the clipped term is strictly below the unclipped one: at ratio 1 (every
  first pass) nothing is clipped, whereas `<=` counted every token as clipped. Past 1 + eps_high
  with A > 0 and below 1 - eps_low with A < 0 the clip binds; the other side of each does not."""
  old = jnp.zeros((4, 1))
  logps = jnp.log(jnp.array([[1.0], [1.5], [1.5], [0.5]]))
  adv = jnp.array([1.0, 1.0, -1.0, -1.0])
  _, clipped, _ = grpo.per_token_terms(logps, old, old, adv, 0.2, 0.28, beta)
  assert clipped[:, 0].tolist() == [False, True, False, True]


BAD_OPTIONS = [("group", 1), ("eps_low", -0.1), ("eps_low", 1.0), ("eps_high", -0.1),
               ("beta", -0.01), ("temperature", 0.0), ("top_p", 0.0), ("top_p", 1.01),
               ("max_refills", -1), ("max_refills", grpo.MAX_REFILLS + 1),
               ("curriculum_min_steps", 0), ("curriculum_min_steps", 1.5), ("passes", 0),
               ("max_new_tokens", 0)]
EDGE_OPTIONS = [("group", 2), ("eps_low", 0.0), ("eps_low", 0.99), ("eps_high", 0.0),
                ("beta", 0.0), ("temperature", 0.01), ("top_p", 1.0), ("top_p", 0.01),
                ("max_refills", 0), ("max_refills", grpo.MAX_REFILLS),
                ("curriculum_min_steps", 1), ("passes", 1), ("max_new_tokens", 1)]


@pytest.mark.parametrize("name, value", BAD_OPTIONS)
def test_check_names_each_option_just_past_its_range(name, value):
  """Each bound of `grpo.check`, one step outside it: one error, naming the option and value
  (a negative beta or eps_high, a top_p past 1 reached the step before). Options checked
  together share one line: "grpo.temperature=1.0, top_p=0.0: ..."."""
  errors = grpo.check(dict(grpo.DEFAULTS, **{name: value}))
  assert len(errors) == 1 and errors[0].startswith("grpo.") and f"{name}={value}" in errors[0]


@pytest.mark.parametrize("name, value", EDGE_OPTIONS)
def test_check_accepts_the_edges_of_each_range(name, value):
  """The same bounds from inside: beta 0 (no KL, DAPO), eps 0, top_p 1, max_refills 0 and
  MAX_REFILLS, one pass, are all runs someone means."""
  assert grpo.check(dict(grpo.DEFAULTS, **{name: value})) == []


# ---------------------------------------------------------------------------------------------
# The rollouts' host step, on the toy host of test_grpo_rollouts.py.

def test_a_stream_without_the_asked_question_version_is_an_error_naming_both(toy):  # noqa: F811
  """A record with no `grpo.version` question is refused by its id and the missing version,
  where it was a bare KeyError from the dict of versions it has."""
  host, _ = _host(toy, version="text_dominant")
  host.stream = rl_toys.NumberStream()  # text_lite questions only
  with pytest.raises(ValueError, match=r"problem q1 of the stream has no \['text_dominant'\]"):
    host._problems([1], 0)


@pytest.mark.parametrize("pad, partitionable, warned", [
    (G, False, True), (G, True, False), (0, False, False)])
def test_only_a_padded_rollout_without_partitionable_draws_warns(  # noqa: F811
    toy, monkeypatch, caplog, pad, partitionable, warned):
  """The warning says another process count would sample other answers: true only where
  placeholder rows pad the batch and jax's draws are not per row; said anywhere else, it
  would cry wolf on every refill (or every step). The placeholders are sampled, then dropped:
  the rows returned are the group's alone."""
  host, state = _host(toy)
  host.start()
  monkeypatch.setattr(RO, "_partitionable_draws", lambda: partitionable)
  with caplog.at_level(logging.WARNING):
    rows = host._rollout(state, host._problems([1], 0), STEP, 1, pad)
  assert {len(rows[k]) for k in ("ids", "mask", "pixels", "tokens", "lengths", "reward")} == {G}
  assert ("jax_threefry_partitionable is off" in caplog.text) == warned


def test_rollout_seconds_is_the_steps_duration(toy):  # noqa: F811
  """`rollout_seconds` is the time the host step took (seconds, not a clock reading: t0 added
  instead of subtracted logged about 3.5e9)."""
  host, state = _host(toy)
  _, metrics = host(state, OPEN_SOLVED, STEP)
  assert 0 < metrics["rollout_seconds"] < 600
