"""Objectives against numpy written here, independently: lm, dpo, contrastive, classify."""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from mathvlm import objectives
from mathvlm.models.classifier import ClassifierConfig, ImageClassifier
from mathvlm.models.clip_text import CLIP, CLIPConfig, CLIPTextConfig
from mathvlm.models.llm import LlamaConfig, LlamaForCausalLM, LMOutput
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import Llava, LlavaConfig
from mathvlm.objectives import base, classify, contrastive, dpo, lm

V = 64
IMG = 63  # image token id of the tiny Llava; also CLIP text's EOS
VISION = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                          image_size=28, patch_size=14)
TEXT = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                   num_kv_heads=2)


@pytest.fixture(scope="module")
def llava():
  return Llava(LlavaConfig(vision=VISION, text=TEXT, image_token_id=IMG), rngs=nnx.Rngs(1))


@pytest.fixture(scope="module")
def llama(llava):
  """The Llava's own language model: a plain LlamaForCausalLM, and one model init fewer."""
  assert isinstance(llava.language_model, LlamaForCausalLM)
  return llava.language_model


@pytest.fixture(scope="module")
def clip():
  text = CLIPTextConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_layers=2,
                        num_heads=4, max_position_embeddings=16, eos_token_id=IMG)
  return CLIP(CLIPConfig(vision=VISION, text=text, projection_dim=16), rngs=nnx.Rngs(2))


# Model calls go through jit, one compile per model, shapes and options, shared by the tests:
# op-by-op eager dispatch (and autodiff through the scans) costs seconds a call on a small CPU.
@functools.partial(nnx.jit, static_argnums=(3, 4))
def _run(model, args, batch, name, items=()):
  """(model(*args), objective `name`'s (loss, weight, metrics) under ConfigDict({name: items}))."""
  cfg = ml_collections.ConfigDict({name: dict(items)})
  return model(*args), objectives.get(name).loss(model, batch, cfg)


def _lm_run(model, batch):
  args = (batch["input_ids"], batch["attention_mask"])
  if "pixel_values" in batch:
    args = (batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
  return _run(model, args, batch, "lm")


def _lm_loss(model, batch):
  return _lm_run(model, batch)[1]


def _pixels(n, seed):
  return np.random.RandomState(seed).randn(n, 28, 28, 3).astype(np.float32)


def _text_batch(b=4, t=10, seed=0, lengths=(10, 7, 5, 8), prompt=(3, 2, 4, 8)):
  """Right-padded rows; targets are the tokens after each row's prompt."""
  rs = np.random.RandomState(seed)
  ids = rs.randint(1, IMG, (b, t)).astype(np.int32)
  attn = np.zeros((b, t), np.int32)
  loss_mask = np.zeros((b, t), np.int32)
  for i in range(b):
    attn[i, :lengths[i]] = 1
    loss_mask[i, prompt[i]:lengths[i]] = 1
    ids[i, lengths[i]:] = 0
  return dict(input_ids=ids, attention_mask=attn, loss_mask=loss_mask)


def _np_lm(logits, ids, loss_mask):
  """(mean CE, count, accuracy) over targets, one token at a time in float64."""
  logits = np.asarray(logits, np.float64)
  total, n, correct = 0.0, 0, 0
  for b, t in zip(*np.nonzero(np.asarray(loss_mask)[:, 1:])):
    row, target = logits[b, t], ids[b, t + 1]
    lse = row.max() + np.log(np.sum(np.exp(row - row.max())))
    total += lse - row[target]
    n += 1
    correct += int(np.argmax(row) == target)
  return total / max(n, 1), n, correct / max(n, 1)


class Poisoned:
  """Wraps a model; overwrites the logits at `where` [B, T] with `value` [B, T] (inf, nan, ...)."""

  def __init__(self, inner, where, value):
    self.inner, self.where, self.value = inner, jnp.asarray(where, bool), jnp.asarray(value)

  def apply(self, input_ids, *args, **kw):
    out = self.inner.apply(input_ids, *args, **kw)
    return out._replace(logits=jnp.where(self.where[..., None], self.value[..., None], out.logits))


@nnx.jit
def _lm_value_and_grad(model, batch, where, value):
  return nnx.value_and_grad(lambda m: lm.loss(Poisoned(m, where, value), batch, None)[0])(model)


class FixedLogits:
  """A 'model' whose logits ignore the input: isolates the loss from the forward."""

  def __init__(self, logits):
    self.logits = jnp.asarray(logits)

  def apply(self, input_ids, *args, **kw):
    return LMOutput(self.logits, None)


_fixed_lm = jax.jit(lambda logits, batch: lm.loss(FixedLogits(logits), batch, None))
_sequence_logps = jax.jit(lm.sequence_logps)


def _unused_logit_positions(loss_mask):
  """[B, T] True where a position's logits predict no target (the next token is not a target)."""
  unused = np.ones(loss_mask.shape, bool)
  unused[:, :-1] = ~np.asarray(loss_mask, bool)[:, 1:]
  return unused


# ---------------------------------------------------------------------------------------------
# lm

def test_lm_loss_equals_numpy_cross_entropy_llama(llama):
  batch = _text_batch()
  logits, (loss, weight, metrics) = _lm_run(llama, batch)
  ref_loss, ref_n, ref_acc = _np_lm(np.asarray(logits), batch["input_ids"], batch["loss_mask"])
  assert ref_n == 7 + 5 + 1 and float(weight) == ref_n and float(metrics["tokens"]) == ref_n
  np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["loss"]), ref_loss, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["accuracy"]), ref_acc, atol=1e-7)
  assert loss.dtype == jnp.float32 and loss.shape == ()


def test_lm_loss_equals_numpy_cross_entropy_llava(llava):
  ids = np.array([[1, IMG, IMG, IMG, IMG, 5, 6, 7, 8, 9, 0, 0],
                  [1, 4, IMG, IMG, IMG, IMG, 10, 11, 12, 13, 14, 15]], np.int32)
  attn = (np.arange(12)[None] < np.array([[10], [12]])).astype(np.int32)
  loss_mask = np.zeros_like(ids)
  loss_mask[0, 7:10] = 1
  loss_mask[1, 8:12] = 1
  px = _pixels(2, 0)
  batch = dict(input_ids=ids, attention_mask=attn, loss_mask=loss_mask, pixel_values=px)
  logits, (loss, weight, metrics) = _lm_run(llava, batch)
  ref_loss, ref_n, ref_acc = _np_lm(np.asarray(logits), ids, loss_mask)
  assert float(weight) == ref_n == 7
  np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["accuracy"]), ref_acc, atol=1e-7)
  # the images matter: other pixels, other loss
  other, _, _ = _lm_loss(llava, dict(batch, pixel_values=_pixels(2, 1)))
  assert abs(float(other) - float(loss)) > 1e-6


def test_lm_masked_logits_and_ids_change_nothing_exactly():
  batch = _text_batch(seed=3)
  rs = np.random.RandomState(4)
  logits = rs.randn(4, 10, V).astype(np.float32)
  base = _fixed_lm(logits, batch)
  unused = _unused_logit_positions(batch["loss_mask"])
  changed = np.where(unused[..., None], rs.randn(*logits.shape) * 1e4, logits).astype(np.float32)
  ids = np.where(batch["loss_mask"] == 0, rs.randint(-300, 10**6, batch["input_ids"].shape),
                 batch["input_ids"]).astype(np.int32)
  other = _fixed_lm(changed, dict(batch, input_ids=ids))
  np.testing.assert_array_equal(np.asarray(other[0]), np.asarray(base[0]))
  np.testing.assert_array_equal(np.asarray(other[1]), np.asarray(base[1]))
  np.testing.assert_array_equal(np.asarray(other[2]["accuracy"]), np.asarray(base[2]["accuracy"]))
  np.testing.assert_array_equal(_sequence_logps(changed, ids, batch["loss_mask"]),
                                _sequence_logps(logits, batch["input_ids"], batch["loss_mask"]))
  # but a used position does matter (the check above can fail)
  moved = logits.copy()
  moved[0, 5, batch["input_ids"][0, 6]] += 3.0
  assert float(_fixed_lm(moved, batch)[0]) != float(base[0])


def test_lm_nonfinite_masked_logits_do_not_leak_into_loss_or_grads(llama):
  batch = _text_batch(seed=5)
  unused = _unused_logit_positions(batch["loss_mask"])
  assert unused.any() and not unused.all()
  rs = np.random.RandomState(0)
  values = np.array([np.inf, -np.inf, np.nan], np.float32)[rs.randint(0, 3, unused.shape)]
  nothing = np.zeros_like(unused)
  # through a real model: the same loss and the same, finite, gradients
  clean_loss, clean_grads = _lm_value_and_grad(llama, batch, nothing, values)
  loss, grads = _lm_value_and_grad(llama, batch, unused, values)
  np.testing.assert_allclose(float(loss), float(clean_loss), rtol=1e-6)
  for g, c in zip(jax.tree.leaves(grads), jax.tree.leaves(clean_grads)):
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, c, rtol=1e-5, atol=1e-7)
  # the cotangent the loss sends back into the logits is exactly 0 there, not 0 * nan
  logits = rs.randn(4, 10, V).astype(np.float32)
  poisoned = np.where(unused[..., None], values[..., None], logits)
  grad = jax.jit(jax.grad(lambda lg: _fixed_lm(lg, batch)[0]))
  g, clean = np.asarray(grad(poisoned)), np.asarray(grad(logits))
  assert np.all(g[unused] == 0) and np.all(np.isfinite(g))
  np.testing.assert_array_equal(g, clean)
  # a poisoned *used* position does show up: the checks above can fail
  used = nothing.copy()
  used[0, 4] = True
  assert not np.isfinite(float(_lm_value_and_grad(llama, batch, used, values)[0]))


def test_lm_zero_targets_gives_zero_loss_and_weight(llama):
  batch = dict(_text_batch(seed=6), loss_mask=np.zeros((4, 10), np.int32))
  nothing = np.zeros((4, 10), bool)
  loss, grads = _lm_value_and_grad(llama, batch, nothing, nothing.astype(np.float32))
  _, weight, metrics = _lm_loss(llama, batch)
  assert float(loss) == 0.0 and float(weight) == 0.0
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))


def test_lm_targets_on_padding_are_ignored_and_padding_side_does_not_matter(llama):
  batch = _text_batch(seed=7)
  base = float(_lm_loss(llama, batch)[0])
  # a target marked on a padded token is dropped
  sloppy = dict(batch, loss_mask=np.where(batch["attention_mask"] == 0, 1, batch["loss_mask"]))
  assert float(_lm_loss(llama, sloppy)[0]) == base
  # left padding: the same rows, the same loss (positions skip the padding)
  left = {k: np.stack([np.roll(v[i], 10 - n) for i, n in enumerate((10, 7, 5, 8))])
          for k, v in batch.items()}
  np.testing.assert_allclose(float(_lm_loss(llama, left)[0]), base, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# dpo

def _softplus(x):
  return math.log1p(math.exp(x))


PI_C, PI_R = np.array([-10.0, -12.0, -20.0]), np.array([-11.0, -9.0, -20.5])
REF_C, REF_R = np.array([-10.5, -12.5, -19.0]), np.array([-10.5, -10.0, -19.0])
# logits = (pi_c - pi_r) - (ref_c - ref_r) = [1.0, -3.0 + 2.5, 0.5 - 0.0] = [1.0, -0.5, 0.5]
LOGITS = [1.0, -0.5, 0.5]


def test_dpo_sigmoid_closed_form():
  losses, chosen, rejected = dpo.dpo_loss(PI_C, PI_R, REF_C, REF_R, 0.1, "sigmoid", 0.0)
  # -log sigmoid(b x) = log(1 + exp(-b x))
  np.testing.assert_allclose(losses, [_softplus(-0.1 * x) for x in LOGITS], rtol=1e-6)
  np.testing.assert_allclose(chosen, [0.05, 0.05, -0.1], rtol=1e-6)
  np.testing.assert_allclose(rejected, [-0.05, 0.1, -0.15], rtol=1e-6)


def test_dpo_sigmoid_label_smoothing_closed_form():
  losses, _, _ = dpo.dpo_loss(PI_C, PI_R, REF_C, REF_R, 0.1, "sigmoid", 0.2)
  expect = [0.8 * _softplus(-0.1 * x) + 0.2 * _softplus(0.1 * x) for x in LOGITS]
  np.testing.assert_allclose(losses, expect, rtol=1e-6)


def test_dpo_ipo_closed_form():
  losses, _, _ = dpo.dpo_loss(PI_C, PI_R, REF_C, REF_R, 0.1, "ipo", 0.0)
  np.testing.assert_allclose(losses, [(1.0 - 5.0) ** 2, (-0.5 - 5.0) ** 2, (0.5 - 5.0) ** 2],
                             rtol=1e-6)
  losses, _, _ = dpo.dpo_loss(PI_C, PI_R, REF_C, REF_R, 0.5, "ipo", 0.0)
  np.testing.assert_allclose(losses, [0.0, 2.25, 0.25], atol=1e-6)


def test_dpo_bad_options_are_named():
  with pytest.raises(ValueError, match="'hinge'"):
    dpo.dpo_loss(PI_C, PI_R, REF_C, REF_R, 0.1, "hinge", 0.0)
  with pytest.raises(ValueError, match="label_smoothing"):
    dpo.dpo_loss(PI_C, PI_R, REF_C, REF_R, 0.1, "ipo", 0.1)


def _dpo_batch(seed=0):
  """2 pairs: shared prompts, different answers; rows 0-1 chosen, 2-3 rejected."""
  rs = np.random.RandomState(seed)
  t = 10
  prompts = rs.randint(1, IMG, (2, 4))
  ids = np.zeros((4, t), np.int32)
  attn = np.zeros((4, t), np.int32)
  loss_mask = np.zeros((4, t), np.int32)
  for row, n in enumerate((9, 7, 10, 6)):
    ids[row, :4] = prompts[row % 2]
    ids[row, 4:n] = rs.randint(1, IMG, n - 4)
    attn[row, :n] = 1
    loss_mask[row, 4:n] = 1
  ref = rs.randn(4).astype(np.float32) * 2 - 30
  return dict(input_ids=ids, attention_mask=attn, loss_mask=loss_mask, ref_logps=ref)


def _expected_dpo(logps, ref, opts, counts):
  """(mean loss, chosen rewards, rejected rewards) from summed log-probs, as TRL computes them."""
  logps, ref = np.asarray(logps, np.float64), np.asarray(ref, np.float64)
  beta, loss_type = opts.get("beta", 0.1), opts.get("loss_type", "sigmoid")
  nll = -logps[:2].sum() / counts[:2].sum() if counts is not None else 0.0  # TRL's rpo NLL
  if opts.get("length_normalize", loss_type == "ipo"):
    logps, ref = logps / counts, ref / counts
  x = (logps[:2] - logps[2:]) - (ref[:2] - ref[2:])
  if loss_type == "ipo":
    losses = (x - 1 / (2 * beta)) ** 2
  else:
    ls = opts.get("label_smoothing", 0.0)
    losses = (1 - ls) * np.logaddexp(0, -beta * x) + ls * np.logaddexp(0, beta * x)
  return losses.mean() + opts.get("sft_weight", 0.0) * nll, beta * (logps[:2] - ref[:2]), beta * (logps[2:] - ref[2:])


def _check_dpo_metrics(loss, weight, metrics, expect):
  mean, c, r = expect
  np.testing.assert_allclose(float(loss), mean, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["loss"]), float(loss))
  assert float(weight) == 2.0
  np.testing.assert_allclose(float(metrics["rewards/chosen"]), c.mean(), rtol=1e-4)
  np.testing.assert_allclose(float(metrics["rewards/rejected"]), r.mean(), rtol=1e-4)
  np.testing.assert_allclose(float(metrics["rewards/margin"]), (c - r).mean(), rtol=1e-4,
                             atol=1e-6)
  assert float(metrics["rewards/accuracy"]) == np.mean(c > r)


def test_dpo_objective_on_a_tiny_model_equals_dpo_loss_on_separate_logps(llama):
  batch = _dpo_batch()
  logits, (loss, weight, metrics) = _run(
      llama, (batch["input_ids"], batch["attention_mask"]), batch, "dpo")
  logps = np.asarray(_sequence_logps(logits, batch["input_ids"], batch["loss_mask"]))
  for row in range(4):  # the summed log-probs themselves, against numpy
    ref_mean, n, _ = _np_lm(np.asarray(logits)[row:row + 1], batch["input_ids"][row:row + 1],
                            batch["loss_mask"][row:row + 1])
    np.testing.assert_allclose(logps[row], -ref_mean * n, rtol=1e-5)
  ref = batch["ref_logps"]
  losses, chosen, rejected = dpo.dpo_loss(logps[:2], logps[2:], ref[:2], ref[2:], 0.1)
  _check_dpo_metrics(loss, weight, metrics, (np.mean(losses), np.asarray(chosen),
                                             np.asarray(rejected)))
  _check_dpo_metrics(loss, weight, metrics, _expected_dpo(logps, ref, {}, None))


@pytest.mark.parametrize("opts", [
    {}, {"beta": 0.3, "label_smoothing": 0.1}, {"loss_type": "ipo", "beta": 0.2},
    {"loss_type": "ipo", "beta": 0.2, "length_normalize": False},
    {"beta": 0.2, "length_normalize": True}, {"sft_weight": 0.5},
    {"loss_type": "ipo", "beta": 0.2, "sft_weight": 1.0}])
def test_dpo_options_from_a_config_dict(opts):
  batch = _dpo_batch()
  logits = np.random.RandomState(1).randn(4, 10, V).astype(np.float32) * 3
  logps = lm.sequence_logps(jnp.asarray(logits), batch["input_ids"], batch["loss_mask"])
  counts = batch["loss_mask"][:, 1:].sum(-1)
  got = dpo.loss(FixedLogits(logits), batch, ml_collections.ConfigDict({"dpo": opts}))
  _check_dpo_metrics(*got, _expected_dpo(logps, batch["ref_logps"], opts, counts))


def test_dpo_reward_metrics_on_known_numbers():
  # a model whose summed log-probs are known: one target token per row, log-softmax given
  logp = np.log(np.array([0.5, 0.25, 0.2, 0.4]))          # rows 0-1 chosen, 2-3 rejected
  logits = np.full((4, 2, V), -1e9, np.float32)
  logits[:, 0, 1] = logp                                     # target token 1 at position 1
  logits[:, 0, 2] = np.log1p(-np.exp(logp))                  # the rest of the mass on token 2
  batch = dict(input_ids=np.ones((4, 2), np.int32), attention_mask=np.ones((4, 2), np.int32),
               loss_mask=np.array([[0, 1]] * 4, np.int32),
               ref_logps=np.log(np.array([0.25, 0.25, 0.4, 0.2])).astype(np.float32))
  _, _, m = jax.jit(lambda lg, b: dpo.loss(FixedLogits(lg), b, {"dpo": {"beta": 1.0}}))(logits,
                                                                                        batch)
  chosen = [math.log(2.0), 0.0]                              # log(0.5/0.25), log(0.25/0.25)
  rejected = [math.log(0.5), math.log(2.0)]                  # log(0.2/0.4), log(0.4/0.2)
  np.testing.assert_allclose(float(m["rewards/chosen"]), np.mean(chosen), rtol=1e-5)
  np.testing.assert_allclose(float(m["rewards/rejected"]), np.mean(rejected), rtol=1e-5)
  np.testing.assert_allclose(float(m["rewards/margin"]), math.log(2.0) / 2, rtol=1e-5)
  assert float(m["rewards/accuracy"]) == 0.5


def test_dpo_takes_no_gradient_through_ref_logps():
  batch = _dpo_batch(1)
  logits = np.random.RandomState(2).randn(4, 10, V).astype(np.float32)
  f = lambda lg, r: dpo.loss(FixedLogits(lg), dict(batch, ref_logps=r), None)[0]
  g_logits, g_ref = jax.jit(jax.grad(f, argnums=(0, 1)))(logits, batch["ref_logps"])
  np.testing.assert_array_equal(np.asarray(g_ref), 0.0)
  # the formula itself does depend on the reference (so the zero above is the stop_gradient)
  direct = jax.grad(lambda r: dpo.dpo_loss(PI_C, PI_R, r, REF_R, 0.1)[0].sum())(jnp.asarray(REF_C))
  assert np.all(np.abs(np.asarray(direct)) > 0)
  # and the policy's logits do get one, finite, and only where they predict a target
  g_logits = np.asarray(g_logits)
  assert np.all(np.isfinite(g_logits))
  used = ~_unused_logit_positions(batch["loss_mask"])
  assert np.all(np.abs(g_logits[used]).sum(-1) > 0) and np.all(g_logits[~used] == 0)


def test_dpo_sft_weight_adds_the_chosen_answers_nll():
  """RPO's term: the loss grows by w times the chosen rows' mean per-token NLL, and its gradient
  raises the chosen answers' likelihood, which DPO alone does not promise."""
  batch = _dpo_batch()
  logits = np.random.RandomState(3).randn(4, 10, V).astype(np.float32)
  f = lambda lg, w: dpo.loss(FixedLogits(lg), batch, {"dpo": {"sft_weight": w}})
  base, _, m0 = f(logits, 0.0)
  with_nll, _, m1 = f(logits, 2.0)
  np.testing.assert_allclose(float(m0["nll/chosen"]), float(m1["nll/chosen"]))
  np.testing.assert_allclose(float(with_nll) - float(base), 2.0 * float(m1["nll/chosen"]),
                             rtol=1e-5)
  g = jax.grad(lambda lg: f(lg, 1.0)[0] - f(lg, 0.0)[0])(logits)  # the NLL term's gradient
  assert np.all(np.asarray(g)[2:] == 0)                          # rejected rows: none
  with pytest.raises(ValueError, match="sft_weight"):
    f(logits, -1.0)


def _pairs_with_answers(rs, t: int, answer_tokens: tuple) -> dict:
  """DPO pairs of t tokens whose two answers hold answer_tokens[i] tokens each (the last ones),
  with a reference log-probability per row."""
  p = len(answer_tokens)
  ids = rs.randint(1, IMG, (p, 2, t)).astype(np.int32)
  loss_mask = np.zeros((p, 2, t), np.int32)
  for pair, k in enumerate(answer_tokens):
    loss_mask[pair, :, t - k:] = 1
  return dict(input_ids=ids, attention_mask=np.ones_like(ids), loss_mask=loss_mask,
              ref_logps=rs.randn(p, 2).astype(np.float32) - 20)


def test_dpo_nll_is_per_chosen_token_over_micro_batches():
  """optim.grad_accum weighs each micro-batch's loss by its valid pairs (base.Objective): right
  for the DPO term, but the NLL (sft_weight) is per chosen token of the whole batch. Two halves
  whose chosen answers hold 1 and 8 tokens a pair, combined as the trainer combines them after
  `prepare` saw the whole batch, must give the batch's loss, nll/chosen and gradient."""
  rs = np.random.RandomState(5)
  t = 10
  batch = _pairs_with_answers(rs, t, (1, 1, 8, 8))
  logits = rs.randn(4, 2, t, V).astype(np.float32) * 3
  cfg = {"dpo": {"sft_weight": 1.0, "reference": "data"}}
  batch, _ = dpo.reference_logps(None, None, batch, dpo.OBJECTIVE.options(cfg))
  to_rows = lambda lg: jnp.concatenate([lg[:, 0], lg[:, 1]])  # pairs_to_rows' order

  @jax.jit
  def run(lg, b):
    f = lambda lg: dpo.loss(FixedLogits(to_rows(lg)), b, cfg)
    (loss, (w, m)), g = jax.value_and_grad(lambda lg: (f(lg)[0], f(lg)[1:]), has_aux=True)(lg)
    return loss, w, m["nll/chosen"], g

  loss, w, nll, g = run(logits, batch)
  halves = [run(logits[s], {k: v[s] for k, v in batch.items()})
            for s in (slice(0, 2), slice(2, 4))]
  combine = lambda i: sum(h[1] * h[i] for h in halves) / sum(h[1] for h in halves)
  np.testing.assert_allclose(float(combine(0)), float(loss), rtol=1e-5)
  np.testing.assert_allclose(float(combine(2)), float(nll), rtol=1e-5)
  grads = np.concatenate([h[1] * np.asarray(h[3]) for h in halves]) / float(w)
  np.testing.assert_allclose(grads, np.asarray(g), rtol=1e-4, atol=1e-7)


def test_dpo_nll_of_a_batch_taken_whole_is_bitwise_its_own_token_mean():
  """grad_accum=1 (every recipe's default, the demo's DPO stage): with the batch's totals the
  NLL divides by exactly the number it divided by without them, so a run's numbers stay bit for
  bit. 7 pairs holding 10 chosen tokens: a sum of 7 shares of 10/7 is 10.000001 in float32."""
  rs = np.random.RandomState(6)
  t = 6
  alone = _pairs_with_answers(rs, t, (1, 1, 1, 1, 1, 1, 4))
  cfg = {"dpo": {"sft_weight": 1.0, "reference": "data"}}
  whole, _ = dpo.reference_logps(None, None, alone, dpo.OBJECTIVE.options(cfg))
  logits = jnp.asarray(rs.randn(14, t, V).astype(np.float32) * 3)
  run = jax.jit(lambda b: dpo.loss(FixedLogits(logits), b, cfg)[2]["nll/chosen"])
  assert float(run(whole)) == float(run(alone))


def test_dpo_rejects_odd_rows_and_misshapen_ref(llama):
  batch = _dpo_batch()
  with pytest.raises(ValueError, match="even"):
    dpo.loss(llama, {k: v[:3] for k, v in batch.items()}, None)
  with pytest.raises(ValueError, match="ref_logps"):
    dpo.loss(llama, dict(batch, ref_logps=batch["ref_logps"][:2]), None)


@pytest.mark.parametrize("opts", [{}, {"loss_type": "ipo", "beta": 0.2}, {"sft_weight": 0.5}])
def test_dpo_a_dropped_pair_changes_nothing(opts):
  """PreferenceSource zeroes both rows' loss_mask for a pair it cannot use: the loss, its weight,
  the metrics and the gradient must equal those of the batch without that pair (not log 2 or
  1/(4 beta^2) more, a wrong preference in accuracy, and a weight that shrinks the gradient)."""
  batch = _dpo_batch(2)
  logits = np.random.RandomState(4).randn(4, 10, V).astype(np.float32)
  pairs = lambda rows: {k: np.stack([v[:2], v[2:]], 1) for k, v in rows.items()}  # [2, 2, ...]
  padded = {k: np.concatenate([v, v[:1]]) for k, v in pairs(batch).items()}
  padded["loss_mask"][2] = 0
  lg = lambda x: np.concatenate([x[:2], x[:1] + 5.0, x[2:], x[2:3] - 5.0])  # pairs_to_rows order

  def run(b, logits):
    f = lambda l: dpo.loss(FixedLogits(l), b, {"dpo": opts})
    (loss, (w, m)), g = jax.value_and_grad(lambda l: (f(l)[0], f(l)[1:]), has_aux=True)(logits)
    return loss, w, m, g

  loss, w, m, g = run(pairs(batch), logits)
  loss3, w3, m3, g3 = run(padded, lg(logits))
  assert float(w) == float(w3) == 2.0
  np.testing.assert_allclose(float(loss3), float(loss), rtol=1e-6)
  for k in m:
    np.testing.assert_allclose(float(m3[k]), float(m[k]), rtol=1e-6, atol=1e-7, err_msg=k)
  g3 = np.asarray(g3)
  np.testing.assert_allclose(np.concatenate([g3[:2], g3[3:5]]), np.asarray(g), rtol=1e-5,
                             atol=1e-8)
  assert np.all(g3[[2, 5]] == 0)
  # every pair dropped: weight 0 and a finite loss of 0, which the trainer's weighting ignores
  padded["loss_mask"][:] = 0
  loss0, w0, m0, _ = run(padded, lg(logits))
  assert float(w0) == 0.0 and float(loss0) == 0.0
  assert all(np.isfinite(float(v)) for v in m0.values())


# ---------------------------------------------------------------------------------------------
# contrastive

def _np_log_softmax(x, axis):
  x = np.asarray(x, np.float64)
  m = x.max(axis=axis, keepdims=True)
  return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def _np_clip(img, txt, scale):
  logits = scale * np.asarray(img, np.float64) @ np.asarray(txt, np.float64).T
  i2t = -np.mean(np.diag(_np_log_softmax(logits, 1)))
  t2i = -np.mean(np.diag(_np_log_softmax(logits, 0)))
  return (i2t + t2i) / 2


def _np_siglip(img, txt, scale, bias):
  logits = scale * np.asarray(img, np.float64) @ np.asarray(txt, np.float64).T + bias
  b = len(logits)
  z = 2 * np.eye(b) - 1
  log_sig = -np.logaddexp(0.0, -z * logits)
  return -log_sig.sum() / b


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_contrastive_formulas_equal_numpy():
  rs = np.random.RandomState(0)
  img = _unit(rs.randn(5, 8)).astype(np.float32)
  txt = _unit(img + 0.5 * rs.randn(5, 8)).astype(np.float32)
  got, _ = jax.jit(contrastive.softmax_loss)(img, txt, 14.3)
  np.testing.assert_allclose(float(got), _np_clip(img, txt, 14.3), rtol=1e-5)
  got, _ = jax.jit(contrastive.sigmoid_loss)(img, txt, 10.0, -10.0)
  np.testing.assert_allclose(float(got), _np_siglip(img, txt, 10.0, -10.0), rtol=1e-5)
  # a one-directional loss would not do: the two directions differ on these embeddings
  logits = 14.3 * img.astype(np.float64) @ txt.T
  i2t = -np.diag(_np_log_softmax(logits, 1)).mean()
  t2i = -np.diag(_np_log_softmax(logits, 0)).mean()
  assert abs(i2t - t2i) > 1e-3


def _clip_batch(seed=0):
  rs = np.random.RandomState(seed)
  ids = rs.randint(1, IMG, (4, 8)).astype(np.int32)
  attn = np.ones_like(ids)
  for i, n in enumerate((8, 6, 5, 7)):
    ids[i, n - 1] = IMG
    ids[i, n:] = 0
    attn[i, n:] = 0
  return dict(pixel_values=_pixels(4, seed), input_ids=ids, attention_mask=attn)


def test_contrastive_objective_equals_numpy_on_model_embeddings(clip):
  batch = _clip_batch()
  args = (batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
  out, (loss, weight, m) = _run(clip, args, batch, "contrastive")
  img, txt = np.asarray(out["image_embeds"]), np.asarray(out["text_embeds"])
  scale = float(out["logit_scale"])
  np.testing.assert_allclose(scale, 1 / 0.07, rtol=1e-5)
  np.testing.assert_allclose(float(loss), _np_clip(img, txt, scale), rtol=1e-5)
  assert float(weight) == 4.0
  sims = img @ txt.T
  np.testing.assert_allclose(float(m["i2t_accuracy"]), np.mean(sims.argmax(1) == np.arange(4)))
  np.testing.assert_allclose(float(m["t2i_accuracy"]), np.mean(sims.argmax(0) == np.arange(4)))
  np.testing.assert_allclose(float(m["loss"]), float(loss))
  # SigLIP through the objective's options, on the same embeddings
  cfg = ml_collections.ConfigDict({"contrastive": {"loss_type": "sigmoid", "sigmoid_bias": -3.0}})
  sig = jax.jit(lambda i, t, s: contrastive.loss(FixedClip(i, t, s), batch, cfg)[0])
  np.testing.assert_allclose(float(sig(img, txt, math.log(scale))),
                             _np_siglip(img, txt, scale, -3.0), rtol=1e-5)


class FixedClip:
  """A 'CLIP' with given embeddings and log-scale: the clipping logic without the towers."""

  def __init__(self, img, txt, log_scale):
    self.img, self.txt, self.log_scale = img, txt, log_scale

  def __call__(self, pixel_values, input_ids, attention_mask=None):
    return dict(image_embeds=self.img, text_embeds=self.txt, logit_scale=jnp.exp(self.log_scale))


@pytest.mark.parametrize("loss_type", ["softmax", "sigmoid"])
def test_contrastive_a_dropped_row_changes_nothing(loss_type):
  """A dropped caption example (all-zero attention mask) is neither a positive nor a negative:
  loss, weight, accuracies and gradient equal those of the batch without it."""
  rs = np.random.RandomState(5)
  img = _unit(rs.randn(4, 8)).astype(np.float32)
  txt = _unit(img + 0.5 * rs.randn(4, 8)).astype(np.float32)
  batch = _clip_batch()
  cfg = {"contrastive": {"loss_type": loss_type, "sigmoid_bias": -3.0}}

  def run(i, t, b):
    f = lambda i, t: contrastive.loss(FixedClip(i, t, math.log(10.0)), b, cfg)
    (value, (w, m)), g = jax.value_and_grad(lambda i, t: (f(i, t)[0], f(i, t)[1:]),
                                            argnums=(0, 1), has_aux=True)(i, t)
    return value, w, m, g

  three = {k: v[:3] for k, v in batch.items()}
  dropped = {k: v.copy() for k, v in batch.items()}
  dropped["attention_mask"][3] = 0
  value, w, m, g = run(img[:3], txt[:3], three)
  value4, w4, m4, g4 = run(img, txt, dropped)
  assert float(w) == float(w4) == 3.0
  np.testing.assert_allclose(float(value4), float(value), rtol=1e-6)
  for k in m:
    np.testing.assert_allclose(float(m4[k]), float(m[k]), rtol=1e-6, err_msg=k)
  for a, b in zip(g, g4):
    np.testing.assert_allclose(np.asarray(b)[:3], np.asarray(a), rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(b)[3] == 0)


def test_contrastive_logit_scale_is_clipped(clip):
  model = nnx.clone(clip)
  model.logit_scale.value = jnp.asarray(math.log(250.0), jnp.float32)
  batch = _clip_batch()
  args = (batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
  out, (loss, _, m) = _run(model, args, batch, "contrastive")
  img, txt = np.asarray(out["image_embeds"]), np.asarray(out["text_embeds"])
  assert float(out["logit_scale"]) > 249.0
  assert float(m["logit_scale"]) == 100.0
  np.testing.assert_allclose(float(loss), _np_clip(img, txt, 100.0), rtol=1e-5)
  # the limit is an option; above it the gradient is the clamped scale's (next test)
  @functools.partial(jax.jit, static_argnums=1)
  def scale_grad(log_scale, limit):
    def f(s):
      loss, _, m = contrastive.loss(FixedClip(img, txt, s), batch,
                                    {"contrastive": {"max_logit_scale": limit}})
      return loss, m["logit_scale"]
    return jax.grad(f, has_aux=True)(log_scale)

  grad, scale = scale_grad(jnp.log(250.0), 100.0)
  assert float(scale) == 100.0
  at_limit, _ = scale_grad(jnp.log(100.0), 100.0)
  np.testing.assert_allclose(float(grad), float(at_limit), rtol=1e-5)
  grad, scale = scale_grad(jnp.log(250.0), 300.0)
  assert float(grad) != 0.0
  np.testing.assert_allclose(float(scale), 250.0, rtol=1e-5)


@pytest.mark.parametrize("loss_type", ["softmax", "sigmoid"])
def test_contrastive_scale_at_or_past_the_limit_gets_the_clamped_scales_gradient(loss_type):
  """Pretrained CLIP's logit scale sits at the clamp (HF's 4.6052 = float32 log 100, exp'd
  100.00001): min(scale, 100) gave it no gradient, so fine-tuning from it (CLIP-Math) never moved
  the temperature. open_clip clamps the parameter after each step instead (next test), and the
  gradient w.r.t. log(scale) there is 100 * dL/dscale; past the limit the same."""
  rs = np.random.RandomState(6)
  img = _unit(rs.randn(4, 8)).astype(np.float32)
  txt = _unit(img + 0.5 * rs.randn(4, 8)).astype(np.float32)
  batch = _clip_batch()
  cfg = {"contrastive": {"loss_type": loss_type}}
  grad = jax.jit(jax.grad(lambda s: contrastive.loss(FixedClip(img, txt, s), batch, cfg)[0]))
  np_loss = ((lambda s: _np_clip(img, txt, s)) if loss_type == "softmax" else
             (lambda s: _np_siglip(img, txt, s, -10.0)))
  h = 1e-5
  want = 100.0 * (np_loss(100.0 * (1 + h)) - np_loss(100.0 * (1 - h))) / (200.0 * h)
  assert abs(want) > 1e-2
  for log_scale in (math.log(100.0), math.log(250.0)):
    np.testing.assert_allclose(float(grad(jnp.float32(log_scale))), want, rtol=1e-3)


class _Embeddings(nnx.Module):
  """A 'CLIP' whose embeddings and log-scale are its parameters."""

  def __init__(self, log_scale):
    rs = np.random.RandomState(7)
    self.img = nnx.Param(jnp.asarray(rs.randn(4, 8), jnp.float32))
    self.logit_scale = nnx.Param(jnp.float32(log_scale))

  def __call__(self, pixel_values, input_ids, attention_mask=None):
    img = self.img[...] / jnp.linalg.norm(self.img[...], axis=-1, keepdims=True)
    return dict(image_embeds=img, text_embeds=img[::-1], logit_scale=jnp.exp(self.logit_scale[...]))


@pytest.mark.parametrize("delta,want", [(3.0, math.log(100.0)), (-5.0, 0.0), (1.0, None)])
def test_train_step_keeps_the_trainable_logit_scale_where_open_clip_does(delta, want):
  """open_clip's `logit_scale.clamp_(0, log(100))` after every update: an update that would
  carry log(scale) past either end leaves it at that end, one within the range is taken whole;
  no other parameter is touched. (An optimizer that adds `delta` to every parameter.)"""
  import optax

  from mathvlm import train
  start = math.log(1 / 0.07)
  add = optax.GradientTransformation(
      lambda params: optax.EmptyState(),
      lambda updates, state, params=None: (jax.tree.map(lambda u: jnp.full_like(u, delta),
                                                        updates), state))
  graphdef, params, frozen = nnx.split(_Embeddings(start), nnx.Param, ...)
  c = ml_collections.ConfigDict(dict(optim=dict(grad_accum=1), lora=dict(dropout=0.0), seed=0))
  step = jax.jit(train.make_train_step(c, objectives.get("contrastive"), graphdef, add,
                                       lambda s: 0.0))
  state = dict(params=params, frozen=frozen, opt_state=add.init(params), step=jnp.int32(0))
  new, _ = step(state, _clip_batch())
  got = float(new["params"]["logit_scale"][...])
  np.testing.assert_allclose(got, start + delta if want is None else want, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(new["params"]["img"][...]),
                             np.asarray(params["img"][...]) + delta, rtol=1e-6)


def test_contrastive_unknown_loss_type_is_named(clip):
  with pytest.raises(ValueError, match="'triplet'"):
    contrastive.loss(clip, _clip_batch(), {"contrastive": {"loss_type": "triplet"}})
  with pytest.raises(ValueError, match=r"contrastive.max_logit_scale=0.5: >= 1"):
    contrastive.loss(clip, _clip_batch(), {"contrastive": {"max_logit_scale": 0.5}})


# ---------------------------------------------------------------------------------------------
# classify

@pytest.fixture(scope="module")
def classifier():
  return ImageClassifier(ClassifierConfig(vision=VISION, num_classes=4), rngs=nnx.Rngs(3))


def test_classifier_shape_and_pooled_head(classifier):
  px = _pixels(3, 2)
  pooled, logits = nnx.jit(lambda m, x: (m.vision_tower(x)[1], m(x)))(classifier, px)
  assert logits.shape == (3, 4) and logits.dtype == jnp.float32
  w, b = np.asarray(classifier.head.kernel.value), np.asarray(classifier.head.bias.value)
  np.testing.assert_allclose(np.asarray(logits), pooled @ w + b, rtol=1e-5, atol=1e-6)
  assert hash(ClassifierConfig(vision=VISION, num_classes=4)) is not None


def test_classify_cross_entropy_and_accuracy_equal_numpy(classifier):
  px = _pixels(6, 5)
  batch = dict(pixel_values=px, labels=np.zeros(6, np.int32))
  logits = np.asarray(_run(classifier, (px,), batch, "classify")[0], np.float64)
  pred = logits.argmax(-1)
  labels = np.where(np.arange(6) < 3, pred, (pred + 1) % 4).astype(np.int32)  # 3 of 6 right
  logp = _np_log_softmax(logits, -1)

  def expect(ls):
    target = np.eye(4)[labels] * (1 - ls) + ls / 4
    return -np.mean(np.sum(target * logp, -1))

  _, (loss, weight, m) = _run(classifier, (px,), dict(batch, labels=labels), "classify")
  np.testing.assert_allclose(float(loss), expect(0.0), rtol=1e-5)
  assert float(weight) == 6.0 and float(m["accuracy"]) == 0.5
  # label smoothing, read from the config; any callable giving logits is a model here
  fixed = lambda x: jnp.asarray(logits, jnp.float32)
  loss, _, _ = classify.loss(fixed, dict(batch, labels=labels),
                             ml_collections.ConfigDict({"classify": {"label_smoothing": 0.1}}))
  np.testing.assert_allclose(float(loss), expect(0.1), rtol=1e-5)
  assert abs(expect(0.1) - expect(0.0)) > 1e-3


# ---------------------------------------------------------------------------------------------
# registry

def test_registry_names_and_unknown_name():
  assert set(objectives.OBJECTIVES) == {"lm", "dpo", "contrastive", "classify", "grpo"}
  assert objectives.get("dpo").loss is dpo.loss
  assert "ref_logps" in objectives.get("dpo").batch_keys
  with pytest.raises(ValueError, match=r"unknown objective 'sft2'.*classify.*contrastive.*dpo.*lm"):
    objectives.get("sft2")
  with pytest.raises(ValueError, match="missing \\['labels'\\]"):
    objectives.get("classify").check_batch({"pixel_values": None})


def test_missing_option_sections_use_defaults():
  assert base.section(None, "dpo") == {}
  assert base.section(ml_collections.ConfigDict({"lr": 1.0}), "dpo") == {}
  assert base.section({"lr": 1.0}, "dpo") == {}
  cfg = ml_collections.ConfigDict({"dpo": {"beta": 0.5}})
  assert base.section(cfg, "dpo").get("beta", 0.1) == 0.5
  assert base.section(cfg, "dpo").get("loss_type", "sigmoid") == "sigmoid"
  # defaults end to end: a plain-dict section, a ConfigDict without one, and None agree
  logits = np.random.RandomState(0).randn(4, 10, V).astype(np.float32)
  batch = _dpo_batch(2)
  a = dpo.loss(FixedLogits(logits), batch, None)[0]
  b = dpo.loss(FixedLogits(logits), batch, ml_collections.ConfigDict({"lr": 1.0}))[0]
  c = dpo.loss(FixedLogits(logits), batch, {"dpo": {"beta": 0.1, "loss_type": "sigmoid"}})[0]
  d = dpo.loss(FixedLogits(logits), batch, {"dpo": {"beta": 0.2}})[0]
  assert float(a) == float(b) == float(c) != float(d)
