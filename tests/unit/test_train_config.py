"""The trainer's reading of the config: the lr each update applies with several passes per step,
what a bucketed step counts, and config mistakes that fail by name instead of training silently
something else (dead freeze rules, misspelt axis rules, buckets under a host step)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mathvlm import train
from mathvlm.configs import common
from mathvlm.configs import grpo as grpo_recipe


class _Scalar(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.zeros(()))


def test_with_passes_every_update_of_a_step_applies_that_steps_lr():
  """GRPO's passes: 4 updates a step; the schedule is in steps, so step k's updates all apply
  schedule(k) (and that is the lr logged), not schedule(4k..4k+3)."""
  from mathvlm.objectives import grpo
  c = grpo_recipe.get_config("model=tiny")
  c.steps, c.optim.lr, c.optim.warmup_ratio, c.optim.schedule = 12, 1.0, 0.25, "cosine"
  c.optim.weight_decay, c.grpo.passes = 0.0, 4
  tx, schedule = train.make_optimizer(c, c.steps)

  class Objective:  # grpo's passes, a loss of d(loss)/dw = 1: Adam moves w by -lr each update
    prepare = weight_metric = None
    updates_per_step = staticmethod(grpo.OBJECTIVE.updates_per_step)
    options = staticmethod(grpo.OBJECTIVE.options)

    @staticmethod
    def loss(model, batch, cfg):
      return model.w[...], jnp.float32(1), {}

  graphdef, params = nnx.split(_Scalar())
  step = jax.jit(train.make_train_step(c, Objective, graphdef, tx, schedule))
  state = dict(params=params, frozen=nnx.State({}), opt_state=tx.init(params), step=jnp.int32(0))
  for k in range(c.steps):
    before = float(state["params"]["w"][...])
    state, metrics = step(state, {"x": jnp.zeros((1,))})
    applied = (before - float(state["params"]["w"][...])) / 4
    np.testing.assert_allclose(applied, float(schedule(k)), rtol=1e-5, atol=1e-7, err_msg=k)
    np.testing.assert_allclose(float(metrics["lr"]), float(schedule(k)), rtol=1e-6)


def test_a_train_rule_that_matches_no_parameter_is_an_error_naming_it():
  """A misspelt freeze rule would leave the vision tower to the catch-all ('.*', 'trainable')."""
  paths = ["vision_tower/embed/kernel", "language_model/embed/embedding"]
  rules = (("vison_tower/.*", "frozen"), (".*", "trainable"))
  with pytest.raises(ValueError, match=r"train_rules \[\('vison_tower/\.\*', 'frozen'\)\] match "
                                       "no parameter"):
    train.trainable_paths(paths, rules)
  assert train.trainable_paths(paths, (("vision_tower/.*", "frozen"), (".*", "trainable"))) == {
      "language_model/embed/embedding"}


def test_a_bucketed_steps_tokens_and_flops_are_its_trimmed_batchs(tmp_path):
  """tokens/s, TFLOP/s and MFU of a step trimmed to a bucket count that bucket, not data.max_len."""
  import dataclasses

  from mathvlm import overlap, train_state
  from mathvlm.configs import sft
  from mathvlm.metrics import MetricWriter
  c = sft.get_config(None)
  c.data.max_len, c.data.buckets, c.steps, c.metrics.every = 128, (32, 64, 128), 2, 1
  run = train.setup(c, jax.devices()[:1])
  batch, stats, dropped = train.next_batch(run, iter(run.dataset))
  rows_, width = batch["input_ids"].shape
  assert width < c.data.max_len  # trimmed to a bucket
  rows = train.Rows(run, MetricWriter(str(tmp_path), tensorboard=False), None, 0, None)
  rows.finish(1, {"loss": 1.0, "grad_norm": 1.0, "lr": 0.0},
              overlap.Prepared(batch, stats, dropped, None))
  row = rows.last
  assert round(row["tokens_per_s"] * row["step_time"]) == rows_ * width
  trimmed = dataclasses.replace(run, batch_shapes={k: v.shape for k, v in batch.items()})
  np.testing.assert_allclose(row["tflops_per_device"] * 1e12 * row["step_time"],
                             train_state.step_flops(trimmed), rtol=1e-6)


def test_a_misspelt_logical_axis_rule_fails_naming_the_name_and_the_mesh_axis():
  """('mpl', 'tensor') would shard nothing: the MLP weights would be replicated, silently."""
  from mathvlm import sharding
  from mathvlm.configs import sft
  c = sft.get_config(None)
  assert sharding.rule_errors(c.logical_axis_rules) == []
  with c.unlocked():
    c.logical_axis_rules = tuple(("mpl", v) if k == "mlp" else (k, "tensr") if k == "heads"
                                 else (k, v) for k, v in c.logical_axis_rules)
  with pytest.raises(ValueError, match=r"(?s)logical_axis_rules entry \('mpl', 'tensor'\): no "
                     r"layer uses the logical axis 'mpl'.*mesh axes \['tensr'\] are not in"):
    common.validate(c)


def test_buckets_under_a_host_step_fail_naming_data_buckets():
  """GRPO's rows are a left-padded prompt then the answer: a bucket would cut the answers off."""
  c = grpo_recipe.get_config("model=tiny")
  c.data.buckets = (32, c.data.max_len)
  with pytest.raises(ValueError, match=r"data.buckets=\(32, 64\): objective 'grpo'.*cut the "
                                       r"answers off; set data.buckets=\(\)"):
    common.validate(c)


def test_contrastive_with_gradient_accumulation_fails_naming_grad_accum():
  """CLIP's negatives are the whole batch: a micro-batch is a smaller problem, not a part."""
  from mathvlm.configs import clip_math
  c = clip_math.get_config("model=tiny")
  c.data.global_batch, c.optim.grad_accum = 8, 2
  with pytest.raises(ValueError, match=r"optim.grad_accum=2: objective 'contrastive' takes its "
                                       "negatives from the whole batch"):
    common.validate(c)
  c.optim.grad_accum = 1
  common.validate(c)
