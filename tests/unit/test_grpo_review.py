"""What a review of the GRPO objective against TRL's GRPOTrainer, verl and Tunix found: the token
means it logs (kl, ratio, clip_fraction, ...) are the whole batch's whatever grad_accum splits it
into; its log-probs project only the answers through the output layer (as LM and DPO do); each
reward of `grpo.rewards` is logged on its own; every refill round of a step samples with a seed
of its own. And a guard of what it found right: the rollout rows give the sampler's log-probs
(rho 1 on the first pass) and train up to and with EOS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mathvlm.models.llm import LMOutput
from mathvlm.objectives import grpo
from mathvlm.rl import rewards as R
from mathvlm.rl.rollouts import _seed
from test_grpo_rollouts import OPEN_SOLVED, STEP, _host, toy  # noqa: F401 (the fixture)

V, T = 13, 10
TOKEN_MEANS = ("kl", "ratio", "clip_fraction", "entropy", "answer_prob")


class Bigram:
  """A 'model' whose logits at a position depend on that position's token only: a row's
  log-probs are the same in any batch, as a real model's are."""

  def __init__(self, table):
    self.table = jnp.asarray(table)

  def apply(self, input_ids, *args, **kw):
    return LMOutput(self.table[input_ids], None)


def _rows(rng, lengths):
  """Prompt of 4 tokens, then answers of `lengths` tokens, right-padded."""
  ids = rng.integers(0, V, (len(lengths), T)).astype(np.int32)
  answer = (np.arange(T)[None] >= 4) & (np.arange(T)[None] < 4 + np.asarray(lengths)[:, None])
  attention = ((np.arange(T)[None] < 4) | answer).astype(np.int32)
  return dict(input_ids=ids, attention_mask=attention, loss_mask=answer.astype(np.int32),
              advantages=rng.normal(0, 1, len(lengths)).astype(np.float32))


def _combined(model, halves, cfg):
  """The trainer's rule for micro-batches (`train.make_train_step`'s accumulate): the mean of
  their values weighted by the loss's weight."""
  out = [grpo.loss(model, h, cfg) for h in halves]
  w = sum(float(o[1]) for o in out)
  return {k: sum(float(o[1]) * float(o[2][k]) for o in out) / w for k in TOKEN_MEANS}


@pytest.mark.parametrize("aggregation", grpo.AGGREGATIONS)
def test_logged_token_means_are_the_batchs_whatever_the_micro_batches(aggregation):
  """Micro-batches of short answers (1-2 tokens) and long ones (7-8): with 'sequence' and
  'constant' the trainer weighs micro-batches by their answers, so each one's own token mean,
  weighted so, is not the batch's (kl 0.0078 against 0.0077 on the tiny model, clip_fraction
  0.106 against 0.103): `prepare` hands each row the batch's mean answer length to divide by."""
  rng = np.random.default_rng(0)
  batch = _rows(rng, [1, 2, 1, 2, 7, 8, 6, 8])
  table = rng.normal(0, 1.5, (V, V)).astype(np.float32)
  state = {"params": table, "ref_params": table + rng.normal(0, 0.3, table.shape)}
  opts = grpo.OBJECTIVE.options({"grpo": {"beta": 0.04}})
  prepared, _ = grpo.old_and_reference_logps(Bigram, state, batch, opts)
  moved = table + rng.normal(0, 0.5, table.shape).astype(np.float32)  # a later pass: rho != 1
  cfg = {"grpo": dict(aggregation=aggregation, beta=0.04, max_new_tokens=8)}
  whole = grpo.loss(Bigram(moved), prepared, cfg)[2]
  halves = [{k: np.asarray(v)[s] for k, v in prepared.items()} for s in (slice(0, 4),
                                                                         slice(4, 8))]
  got = _combined(Bigram(moved), halves, cfg)
  assert float(whole["clip_fraction"]) > 0  # the ratio moved past the clip range somewhere
  for k in TOKEN_MEANS:
    np.testing.assert_allclose(got[k], float(whole[k]), rtol=2e-6, err_msg=k)
  # and the whole batch's are its token means, as without micro-batches
  m = np.asarray(batch["loss_mask"], bool)
  logp = np.asarray(grpo.token_logps(Bigram(moved), prepared))
  np.testing.assert_allclose(float(whole["entropy"]), -logp[m].mean(), rtol=1e-6)


class TargetsOnly:
  """A model that fails when asked for the logits of every position (`apply` without
  `return_hidden`): the objectives' losses project only target rows (`head_operands`)."""

  def __init__(self, model):
    self.model = model

  def apply(self, *args, **kw):
    assert kw.get("return_hidden"), "asked for [rows, T, vocab] logits of every position"
    return self.model.apply(*args, **kw)

  def head_operands(self, x):
    return self.model.head_operands(x)


def test_log_probs_project_only_the_answers_through_the_output_layer():
  """token_logps made the float32 logits of every position, prompt included, three times a step
  (old, reference, learner), where LM and DPO use linear_ce: on 16 rows of 192 prompt + 64
  answer tokens and a 32k vocabulary, the gradient's temp memory 1183 -> 435 MiB and its FLOPs
  107 -> 31 G (/tmp/s31/grpo/repro4_full_logits.py). The numbers are the full logits' ones."""
  import dataclasses

  from mathvlm.models import presets
  from mathvlm.models.llm import LlamaForCausalLM
  from mathvlm.objectives import lm
  from random_models import random_model
  model = random_model(LlamaForCausalLM, presets.LLAVA_PRESETS["tiny"].text)
  rng = np.random.default_rng(0)
  batch = {k: jnp.asarray(v) for k, v in _rows(rng, [1, 3, 6, 2]).items()}
  got = grpo.token_logps(TargetsOnly(model), batch)
  logits = model.apply(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
  want = jnp.take_along_axis(jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32)),
                             batch["input_ids"][:, 1:, None], axis=-1)[..., 0]
  mask = np.asarray(lm.target_mask(batch))[:, 1:]
  np.testing.assert_allclose(np.asarray(got)[:, 1:][mask], np.asarray(want)[mask], atol=2e-6)
  assert np.all(np.asarray(got)[:, 1:][~mask] == 0) and np.all(np.asarray(got)[:, 0] == 0)


def test_each_reward_is_logged_unweighted_beside_their_weighted_sum(toy):  # noqa: F811
  """TRL logs rewards/<name>/mean: which term of the sum moved. reward/mean is the weighted sum
  of the logged terms; the length term is -(answer tokens past length_target) / max_new_tokens."""
  host, state = _host(toy, rewards="rl_toys:solved_or_distinct=1.0,format=0.5,length=0.25",
                      length_target=1)
  batch, metrics = host(state, OPEN_SOLVED, STEP)
  terms = {k: v for k, v in metrics.items() if k.startswith("rewards/")}
  assert sorted(terms) == ["rewards/format", "rewards/length", "rewards/rl_toys:solved_or_distinct"]
  np.testing.assert_allclose(metrics["reward/mean"],
                             terms["rewards/rl_toys:solved_or_distinct"]
                             + 0.5 * terms["rewards/format"] + 0.25 * terms["rewards/length"],
                             rtol=1e-5)
  lengths = batch["loss_mask"].sum(1)
  np.testing.assert_allclose(terms["rewards/length"], -np.mean(np.maximum(lengths - 1, 0)) / 3,
                             rtol=1e-6)


def test_every_refill_round_of_a_run_samples_with_a_seed_of_its_own():
  """The seed strides steps 101 apart, rounds 0 (the first rollout) to 100 within them: round 101
  of step 3 sampled with step 4's seed, so max_refills is bounded by 100."""
  seeds = {_seed(0, step, r) for step in range(40) for r in range(101)}
  assert len(seeds) == 40 * 101
  with pytest.raises(ValueError, match="grpo.max_refills=101"):
    grpo.OBJECTIVE.options({"grpo": {"dynamic_sampling": True, "max_refills": 101}})
  grpo.OBJECTIVE.options({"grpo": {"dynamic_sampling": True, "max_refills": 100}})


def test_rollout_rows_give_the_sampler_its_log_probs_and_train_up_to_eos(toy,  # noqa: F811
                                                                       monkeypatch):
  """A guard of what the review found right: prompts of different lengths, left-padded, then the
  answers. The learner's log-probs of the rows the host step assembles are the sampler's, which
  sampled them, so rho is 1 on the first pass (positions: with RoPE only their differences count,
  so it is an answer's placement after its prompt that must agree; a gap of 2 fails here); an
  answer's EOS is a target (as TRL's completion mask) and the padding after it is neither a
  target nor attended to; the rewards are told which answers ended and which were cut."""
  from flax import nnx

  from mathvlm import generate as gen
  _, run, _ = toy
  host, state = _host(toy, problems="rl_toys:VersionStream", consistency=True, max_new_tokens=6)
  host.config.data.template = "mistral_instruct"  # keeps the question ('plain' drops it)
  told = []  # what the rewards are told of each answer: ended with EOS, or cut (rewards.score)
  score = R.score
  monkeypatch.setattr(R, "score", lambda *a, **k: (told.append(k["finished"]), score(*a, **k))[1])
  batch, _ = host(state, {"problem_index": np.array([1, 3])}, STEP)
  p = host.prompt_len
  assert len(set(batch["attention_mask"][:, :p].sum(1).tolist())) == 3  # the three versions
  model = nnx.merge(run.graphdef, state["params"], state["frozen"])
  out = gen.decode(model, jnp.asarray(batch["input_ids"][:, :p]),
                   jnp.asarray(batch["attention_mask"][:, :p]), jnp.asarray(batch["pixel_values"]),
                   jax.random.key(_seed(host.config.seed, STEP, 0)), jnp.float32(1.0),
                   jnp.float32(1.0), max_new_tokens=6, eos=host.encoder.eos, pad=host.encoder.pad)
  answers = batch["input_ids"][:, p:]
  np.testing.assert_array_equal(np.asarray(out.tokens), answers)  # the rollout's own sample
  eos = np.isin(answers, host.encoder.eos)
  ends = np.where(eos.any(1), eos.argmax(1) + 1, 6)  # tokens up to and with the first EOS
  assert ends.min() < 6  # some answer ended early: padding after it
  np.testing.assert_array_equal(told[0], eos.any(1))
  assert not told[0].all()  # and some were cut
  live = np.arange(6)[None] < ends[:, None]
  np.testing.assert_array_equal(batch["loss_mask"][:, p:], live)
  np.testing.assert_array_equal(batch["attention_mask"][:, p:], live)
  assert np.all(answers[~live] == host.encoder.pad)
  learner = np.asarray(grpo.token_logps(model, {k: jnp.asarray(v) for k, v in batch.items()}))
  np.testing.assert_allclose(learner[:, p:][live], np.asarray(out.logps)[live], atol=2e-6)
  assert np.all(learner[:, p:][~live] == 0)
