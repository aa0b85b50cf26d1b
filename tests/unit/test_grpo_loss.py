"""The GRPO loss against the formula written here in numpy, for each variant; equal rewards give no
gradient without the KL term; advantages as the papers define them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mathvlm.models.llm import LMOutput
from mathvlm.objectives import grpo

V, T = 11, 9


class FixedLogits:
  """A 'model' whose logits ignore the input: isolates the loss from the forward."""

  def __init__(self, logits):
    self.logits = jnp.asarray(logits)

  def apply(self, input_ids, *args, **kw):
    return LMOutput(self.logits, None)


def _batch(seed=0, rows=4):
  rng = np.random.default_rng(seed)
  ids = rng.integers(0, V, (rows, T)).astype(np.int32)
  mask = np.zeros((rows, T), np.int32)
  starts, ends = [3, 3, 2, 4], [4, 9, 6, 9]  # answers of 1, 6, 4 and 5 tokens
  for r in range(rows):
    mask[r, starts[r]:ends[r]] = 1
  return dict(input_ids=ids, attention_mask=np.ones((rows, T), np.int32), loss_mask=mask,
              old_logps=rng.normal(-2.0, 0.3, (rows, T)).astype(np.float32),
              ref_logps=rng.normal(-2.0, 0.3, (rows, T)).astype(np.float32),
              advantages=np.array([1.5, -0.5, 0.25, -1.25], np.float32))


def _numpy_loss(logits, b, eps_low, eps_high, beta, aggregation, constant):
  """The formula, token by token: log pi from a log-softmax, rho, the clipped surrogate, k3."""
  z = logits - logits.max(-1, keepdims=True)
  logp_all = z - np.log(np.exp(z).sum(-1, keepdims=True))
  per_row, tokens = [], []
  for r in range(b["input_ids"].shape[0]):
    terms = []
    for t in range(1, T):
      if not b["loss_mask"][r, t]:
        continue
      logp = logp_all[r, t - 1, b["input_ids"][r, t]]
      rho = np.exp(logp - b["old_logps"][r, t])
      a = b["advantages"][r]
      surrogate = min(rho * a, np.clip(rho, 1 - eps_low, 1 + eps_high) * a)
      kl = np.exp(b["ref_logps"][r, t] - logp) - (b["ref_logps"][r, t] - logp) - 1
      terms.append(-(surrogate - beta * kl))
    per_row.append(terms)
    tokens += terms
  if aggregation == "token":
    return np.sum(tokens) / len(tokens)
  if aggregation == "sequence":
    return np.mean([np.mean(t) for t in per_row])
  return np.mean([np.sum(t) / constant for t in per_row])


@pytest.mark.parametrize("variant", [
    dict(aggregation="sequence", eps_low=0.2, eps_high=0.2, beta=0.04),     # GRPO
    dict(aggregation="token", eps_low=0.2, eps_high=0.28, beta=0.0),        # DAPO
    dict(aggregation="constant", eps_low=0.2, eps_high=0.2, beta=0.0),      # Dr. GRPO
    dict(aggregation="sequence", eps_low=0.1, eps_high=0.5, beta=0.3),
])
def test_loss_equals_the_formula_in_numpy(variant):
  b = _batch()
  logits = np.random.default_rng(1).normal(0, 2, (4, T, V)).astype(np.float32)
  cfg = {"grpo": dict(variant, max_new_tokens=7)}
  value, weight, metrics = grpo.loss(FixedLogits(logits), b, cfg)
  want = _numpy_loss(logits.astype(np.float64), b, variant["eps_low"], variant["eps_high"],
                     variant["beta"], variant["aggregation"], 7.0)
  np.testing.assert_allclose(float(value), want, rtol=1e-5)
  assert float(weight) == (16.0 if variant["aggregation"] == "token" else 4.0)
  assert 0.0 <= float(metrics["clip_fraction"]) <= 1.0


def test_the_aggregations_differ_on_answers_of_different_lengths():
  b = _batch()
  logits = np.random.default_rng(1).normal(0, 2, (4, T, V)).astype(np.float32)
  values = {a: float(grpo.loss(FixedLogits(logits), b, {"grpo": dict(aggregation=a, beta=0.0)})[0])
            for a in grpo.AGGREGATIONS}
  assert len({round(v, 6) for v in values.values()}) == 3


def test_a_group_with_equal_rewards_gives_no_gradient_without_kl():
  b = _batch()
  b["advantages"] = grpo.group_advantages(np.array([1.0, 1.0, 0.0, 0.0]), group=2)
  assert np.all(b["advantages"] == 0)
  logits = jnp.asarray(np.random.default_rng(2).normal(0, 1, (4, T, V)), jnp.float32)
  grad = jax.grad(lambda lg: grpo.loss(FixedLogits(lg), b, {"grpo": {"beta": 0.0}})[0])(logits)
  assert float(jnp.abs(grad).max()) == 0.0
  with_kl = jax.grad(lambda lg: grpo.loss(FixedLogits(lg), b, {"grpo": {"beta": 0.1}})[0])(logits)
  assert float(jnp.abs(with_kl).max()) > 0.0
  b["advantages"] = np.array([1.0, -1.0, 0.0, 0.0], np.float32)  # an informative group
  grad = jax.grad(lambda lg: grpo.loss(FixedLogits(lg), b, {"grpo": {"beta": 0.0}})[0])(logits)
  assert float(jnp.abs(grad[:2]).max()) > 0.0 and float(jnp.abs(grad[2:]).max()) == 0.0


def test_group_advantages_grpo_and_dr_grpo():
  r = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
  a = grpo.group_advantages(r, group=4)
  np.testing.assert_allclose(a[:4], [1, -1, -1, 1], atol=1e-5)  # (r - 0.5) / 0.5
  np.testing.assert_allclose(a[4:], 0.0)
  np.testing.assert_allclose(grpo.group_advantages(r, group=4, scale=False)[:4],
                             [0.5, -0.5, -0.5, 0.5])


def test_bad_options_are_named():
  with pytest.raises(ValueError, match="grpo.aggregation='mean'"):
    grpo.OBJECTIVE.options({"grpo": {"aggregation": "mean"}})
  with pytest.raises(ValueError, match="grpo.group=1"):
    grpo.OBJECTIVE.options({"grpo": {"group": 1}})


def test_length_reward_needs_a_length_target_below_max_new_tokens():
  """length_target=0 (or >= max_new_tokens) leaves no answer long enough to penalise."""
  for target in (0, 64, 100):
    with pytest.raises(ValueError, match=f"grpo.length_target={target} .*max_new_tokens=64"):
      grpo.OBJECTIVE.options({"grpo": {"rewards": "answer=1.0,length=0.5", "length_target": target,
                                       "max_new_tokens": 64}})
  grpo.OBJECTIVE.options({"grpo": {"rewards": "answer=1.0,length=0.5", "length_target": 32,
                                   "max_new_tokens": 64}})
  grpo.OBJECTIVE.options({"grpo": {"rewards": "answer=1.0", "max_new_tokens": 64}})  # unused
  with pytest.raises(ValueError, match=r"grpo.length_target=32 but grpo.rewards='answer=1.0' "
                                       r"has no length reward"):  # set, it would shape nothing
    grpo.OBJECTIVE.options({"grpo": {"rewards": "answer=1.0", "length_target": 32}})


def test_overlong_reward_needs_a_buffer_within_max_new_tokens_and_the_buffer_the_reward():
  """overlong_buffer=0 leaves no ramp (a division by 0), one past max_new_tokens a ramp that
  starts before the answer; a buffer set without the reward would shape nothing, unsaid."""
  spec = "answer=1.0,overlong=1.0"
  for buffer in (0, 65, -4, 8.5):
    with pytest.raises(ValueError, match=rf"grpo.overlong_buffer={buffer} with the overlong "
                                         r"reward .*\(0, max_new_tokens=64\]"):
      grpo.OBJECTIVE.options({"grpo": {"rewards": spec, "overlong_buffer": buffer,
                                       "max_new_tokens": 64}})
  for buffer in (1, 16, 64):
    grpo.OBJECTIVE.options({"grpo": {"rewards": spec, "overlong_buffer": buffer,
                                     "max_new_tokens": 64}})
  with pytest.raises(ValueError, match=r"grpo.overlong_buffer=16 but grpo.rewards='answer=1.0' "
                                       r"has no overlong reward"):
    grpo.OBJECTIVE.options({"grpo": {"rewards": "answer=1.0", "overlong_buffer": 16}})


def test_filter_metric_is_checked_with_the_config_naming_its_choices():
  """At config check time (`common.validate`, before the model is built), not at the first
  refill's KeyError; the default is the total reward, as dynamic sampling filtered before."""
  from mathvlm.configs import common
  from mathvlm.configs import grpo as recipe
  assert grpo.DEFAULTS["filter_metric"] == "reward"
  c = recipe.get_config("model=tiny")
  for metric in grpo.FILTER_METRICS:
    c.grpo.filter_metric = metric
    common.validate(c, process_count=1, device_count=1)
  c.grpo.filter_metric = "acc"
  with pytest.raises(ValueError, match=r"grpo.filter_metric='acc': one of \('reward', "
                                       r"'correct'\)"):
    common.validate(c, process_count=1, device_count=1)


def test_without_kl_a_token_far_below_its_old_log_prob_leaves_the_loss_finite():
  """beta = 0 (DAPO, Dr. GRPO) has no KL term; the k3 against the old policy, logged, overflows
  once a later pass puts a token's log-prob 89 below its old one (exp(89) is inf in float32),
  and 0 * inf made the loss and its gradient NaN, which stops the run."""
  b = _batch()
  logits = np.random.default_rng(3).normal(0, 1, (4, T, V)).astype(np.float32)
  target = b["input_ids"][1, 5]
  logits[1, 4, target] = -200.0  # the second row's answer token at 5 now has log-prob ~ -200
  b["old_logps"][1, 5] = -1.0
  cfg = {"grpo": {"beta": 0.0, "eps_high": 0.28}}
  value, grad = jax.value_and_grad(lambda lg: grpo.loss(FixedLogits(lg), b, cfg)[0])(
      jnp.asarray(logits))
  assert np.isfinite(float(value)) and bool(jnp.all(jnp.isfinite(grad)))
  want = _numpy_loss(logits.astype(np.float64), b, 0.2, 0.28, 0.0, "sequence", 1.0)
  np.testing.assert_allclose(float(value), want, rtol=1e-5)
