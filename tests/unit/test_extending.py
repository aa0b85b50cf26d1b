"""A new model family and a new objective are one registration each: registered here in a few
lines, trained by the real trainer, exported and reloaded, with no trainer code touched."""

import dataclasses
import json
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from mathvlm import checkpoint, flops, objectives
from mathvlm.configs import common
from mathvlm.eval import evaluators
from mathvlm.models import registry
from mathvlm.objectives.base import Objective
from mathvlm.train import train


@dataclasses.dataclass(frozen=True)
class ColourConfig:
  image_size: int = 8
  num_classes: int = 4
  dtype: str = "float32"


class ColourNet(nnx.Module):
  """Mean colour -> class logits: enough to learn the synthetic colour classes."""

  def __init__(self, cfg: ColourConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.head = nnx.Linear(3, cfg.num_classes, rngs=rngs)

  def __call__(self, pixel_values):
    return self.head(jnp.mean(pixel_values.astype(jnp.float32), axis=(1, 2)))


def margin_loss(model, batch, cfg=None):
  """A multi-class hinge loss with a margin option: the toy objective."""
  margin = TOY.options(cfg)["margin"]
  logits = model(batch["pixel_values"])
  right = jnp.take_along_axis(logits, batch["labels"][:, None], axis=1)
  others = jnp.where(jnp.arange(logits.shape[1]) == batch["labels"][:, None], -jnp.inf, logits)
  value = jnp.mean(jnp.maximum(0.0, margin - right[:, 0] + jnp.max(others, axis=1)))
  accuracy = jnp.mean((jnp.argmax(logits, 1) == batch["labels"]).astype(jnp.float32))
  return value, jnp.float32(logits.shape[0]), dict(loss=value, accuracy=accuracy)


FAMILY = registry.Family("colournet", ColourConfig, ColourNet, presets={"tiny": ColourConfig()})
TOY = Objective(
    name="margin", family="colournet", loss=margin_loss, example="classify",
    batch_keys=("pixel_values", "labels"), flops=lambda cfg, shapes, trainable, options: 0.0,
    defaults=dict(margin=1.0), check=lambda o: [] if o["margin"] > 0 else ["margin.margin > 0"])


def test_a_registered_family_and_objective_train_export_and_reload(tmp_path):
  with registry.registered(FAMILY), objectives.registered(TOY):
    c = common.base("margin")
    c.data.global_batch, c.data.num_examples, c.steps = 16, 256, 30
    c.optim.lr, c.optim.warmup_ratio = 5e-2, 0.0
    c.checkpoint.use_async, c.metrics.tensorboard = False, False
    c.margin.margin = 0.5  # the objective's own option section, from its defaults
    c.data.template, c.data.image_aspect = "plain", "crop"  # recorded with the model
    common.finish(c)
    train(c, str(tmp_path))
    rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert len(rows) == 30 and rows[-1]["accuracy"] > 0.9 > rows[0]["accuracy"]
    model, cfg = checkpoint.load_model(str(tmp_path / "model"))
    assert isinstance(model, ColourNet) and cfg == ColourConfig()
    meta = json.load(open(os.path.join(tmp_path, "model", "config.json")))
    assert meta["kind"] == "colournet"
    assert meta["inputs"] == {"template": "plain", "image_aspect": "crop"}
  assert "colournet" not in registry.FAMILIES and "margin" not in objectives.OBJECTIVES
  assert flops.lm_step is not None  # the built-in objectives are untouched


def test_a_bad_option_of_a_registered_objective_names_it():
  with registry.registered(FAMILY), objectives.registered(TOY):
    c = common.base("margin")
    c.margin.margin = -1.0
    try:
      common.validate(c)
    except ValueError as e:
      assert "margin.margin > 0" in str(e)
    else:
      raise AssertionError("a negative margin passed validation")
  np.testing.assert_equal(sorted(objectives.OBJECTIVES),
                          ["classify", "contrastive", "dpo", "grpo", "lm"])


def colour_accuracy(spec, config, model_cfg):
  """A toy evaluator: accuracy on fixed synthetic examples (`mathvlm.data.synthetic`)."""
  from mathvlm.data.synthetic import SyntheticSource
  src = SyntheticSource("classify", num_examples=spec["n"], max_len=8, image_size=8,
                        vocab_size=0, seed=123)
  images = np.stack([src[i]["pixel_values"] for i in range(spec["n"])])
  labels = np.array([src[i]["labels"] for i in range(spec["n"])])
  return lambda model: {"accuracy": float(np.mean(np.argmax(model(images), 1) == labels))}


def test_evaluators_in_config_run_every_n_steps_and_at_the_end(tmp_path):
  evaluators.register("colour_accuracy")(colour_accuracy)
  try:
    with registry.registered(FAMILY), objectives.registered(TOY):
      c = common.base("margin")
      c.data.global_batch, c.data.num_examples, c.steps = 16, 256, 25
      c.optim.lr, c.optim.warmup_ratio = 5e-2, 0.0
      c.checkpoint.use_async, c.metrics.tensorboard, c.metrics.every = False, False, 100
      c.evals.colour = dict(type="colour_accuracy", every=10, n=64)
      common.finish(c)
      train(c, str(tmp_path))
      rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
      assert [r["step"] for r in rows] == [10, 20, 25]  # metrics.every=100: the evaluator's steps
      assert rows[-1]["eval/colour/accuracy"] > 0.9
      saved = json.load(open(tmp_path / "eval.json"))
      assert saved == {"colour": {"accuracy": rows[-1]["eval/colour/accuracy"], "step": 25}}
      # Numbers evaluated after the checkpoint a run resumes from (a kill between an evaluation
      # and the next save) are dropped when it resumes.
      (tmp_path / "eval.json").write_text(json.dumps(dict(saved, held={"loss": 1.0, "step": 30})))
      train(c, str(tmp_path))   # resumes at step 25, the end
      assert json.load(open(tmp_path / "eval.json")) == saved
  finally:
    evaluators.EVALUATORS.pop("colour_accuracy")


class CountingHost:
  """A host step (`Objective.host_step`) whose state is the number of batches it has made, logged
  with each step: a resumed run that did not restore it logs a count restarted from 0."""

  def __init__(self, run):
    from mathvlm import train
    *_, self.example, self.batch_shapes = train.setup_data(run.config, HOSTED, run.cfg)
    self.count = 0

  def __call__(self, state, local, step):
    self.count += 1
    return local, {"host/count": float(self.count)}

  def state_dict(self):
    return {"count": self.count}

  def load_state_dict(self, state):
    self.count = state["count"]


HOSTED = dataclasses.replace(TOY, host_step=f"{__name__}:CountingHost")  # this module


def test_a_host_steps_state_is_saved_with_each_checkpoint_and_restored_on_resume(tmp_path):
  """The trainer saves `host.state_dict()` in a checkpoint's loop item and hands it back to the
  resumed run's host step (GRPO's curriculum and refill counter). A 4-step run in the workdir of
  a 2-step one resumes from step 2; its host counts on from 2."""
  with registry.registered(FAMILY), objectives.registered(HOSTED):
    c = common.base("margin")
    c.data.global_batch, c.data.num_examples, c.steps = 16, 256, 2
    c.checkpoint.use_async, c.metrics.tensorboard = False, False
    common.finish(c)
    train(c, str(tmp_path))
    c.steps = 4  # may change on resume (mathvlm/configs/resume.py)
    train(c, str(tmp_path))
  rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
  assert [(r["step"], r["host/count"]) for r in rows] == [(1, 1), (2, 2), (3, 3), (4, 4)]
