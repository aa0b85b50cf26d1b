"""The trainer's reading of the config: the lr each update applies with several passes per step,
what a bucketed step counts, and config mistakes that fail by name instead of training silently
something else (dead freeze rules, misspelt axis rules, buckets under a host step); which of the
step's forwards LoRA dropout reaches."""

import json
import logging
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mathvlm import train
from mathvlm.configs import common
from mathvlm.configs import grpo as grpo_recipe
from mathvlm.models.layers import dense
from train_utils import hf_lr, tiny_config


class _Scalar(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.zeros(()))


def test_with_passes_every_update_of_a_step_applies_that_steps_lr():
  """GRPO's passes: 4 updates a step; the schedule is in steps, so step k's updates all apply
  schedule(k) (and that is the lr logged), not schedule(4k..4k+3), and that is the Hugging Face
  Trainer's lr of step k (warmup ceil(0.1 x 12) = 2, where round gave 1)."""
  from mathvlm.objectives import grpo
  c = grpo_recipe.get_config("model=tiny")
  c.steps, c.optim.lr, c.optim.warmup_ratio, c.optim.schedule = 12, 1.0, 0.1, "cosine"
  c.optim.weight_decay, c.grpo.passes = 0.0, 4
  graphdef, params = nnx.split(_Scalar())
  tx, schedule = train.make_optimizer(c, c.steps, params)

  class Objective:  # grpo's passes, a loss of d(loss)/dw = 1: Adam moves w by -lr each update
    prepare = weight_metric = project = None
    updates_per_step = staticmethod(grpo.OBJECTIVE.updates_per_step)
    options = staticmethod(grpo.OBJECTIVE.options)

    @staticmethod
    def loss(model, batch, cfg):
      return model.w[...], jnp.float32(1), {}

  step = jax.jit(train.make_train_step(c, Objective, graphdef, tx, schedule))
  state = dict(params=params, frozen=nnx.State({}), opt_state=tx.init(params), step=jnp.int32(0))
  for k in range(c.steps):
    before = float(state["params"]["w"][...])
    state, metrics = step(state, {"x": jnp.zeros((1,))})
    applied = (before - float(state["params"]["w"][...])) / 4  # float32 w near 20: 5e-7 apart
    np.testing.assert_allclose(applied, float(schedule(k)), rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(applied, hf_lr(c.optim, c.steps, k), rtol=1e-5, atol=1e-6,
                               err_msg=k)
    np.testing.assert_allclose(float(metrics["lr"]), float(schedule(k)), rtol=1e-5)


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
@pytest.mark.parametrize("ratio,total", [(0.03, 170), (0.03, 100), (0.05, 7), (0.1, 25),
                                         (0.34, 6), (0.5, 3)])
def test_every_steps_lr_is_the_hugging_face_trainers(schedule, ratio, total):
  """The warmup is HF's ceil(steps x ratio) (TrainingArguments.get_warmup_steps), the schedules
  its get_*_schedule_with_warmup: at every step, for lengths where round(ratio x steps) gave
  another warmup (5 of Math-LLaVA's 170 steps at 0.03 against HF's 6; 0 of 7 at 0.05 against 1)
  and ones where both agree (3 of 100)."""
  c = tiny_config("lm", optim__lr=2e-5, optim__warmup_ratio=ratio, optim__schedule=schedule)
  _, params = nnx.split(_Scalar())
  _, lr = train.make_optimizer(c, total, params)
  for step in range(total):
    np.testing.assert_allclose(float(lr(step)), hf_lr(c.optim, total, step), rtol=1e-5,
                               atol=1e-6 * c.optim.lr, err_msg=f"step {step}")  # float32


def test_a_train_rule_that_matches_no_parameter_is_an_error_naming_it():
  """A misspelt freeze rule would leave the vision tower to the catch-all ('.*', 'trainable')."""
  paths = ["vision_tower/embed/kernel", "language_model/embed/embedding"]
  rules = (("vison_tower/.*", "frozen"), (".*", "trainable"))
  with pytest.raises(ValueError, match=r"train_rules \[\('vison_tower/\.\*', 'frozen'\)\] match "
                                       "no parameter"):
    train.trainable_paths(paths, rules)
  assert train.trainable_paths(paths, (("vision_tower/.*", "frozen"), (".*", "trainable"))) == {
      "language_model/embed/embedding"}


def test_a_rule_decides_the_paths_its_regex_matches_whole_not_their_prefixes():
  """As big_vision's rules: ('vision_tower', 'frozen') names no parameter (a dead rule), and the
  default ('(.*/)?bias', 'no_decay') leaves a kernel under a layer named 'bias_proj' decayed."""
  paths = ["vision_tower/embed/kernel", "bias_proj/kernel", "bias_proj/bias"]
  decided = train.rule_decisions(paths, (("vision_tower", "frozen"), (".*", "trainable")),
                                 "train_rules", ("frozen", "trainable"))
  assert set(decided.values()) == {"trainable"}
  assert train.rule_decisions(paths, common.DECAY_RULES, "optim.decay_rules",
                              ("decay", "no_decay")) == {
      "vision_tower/embed/kernel": "decay", "bias_proj/kernel": "decay",
      "bias_proj/bias": "no_decay"}


def test_a_bucketed_steps_tokens_and_flops_are_its_trimmed_batchs(tmp_path):
  """tokens/s, TFLOP/s and MFU of a step trimmed to a bucket count that bucket, not data.max_len."""
  import dataclasses

  from mathvlm import overlap, train_state
  from mathvlm.configs import sft
  from mathvlm.metrics import MetricWriter
  c = sft.get_config(None)
  c.data.max_len, c.data.buckets, c.steps, c.metrics.every = 128, (32, 64, 128), 2, 1
  run = train.setup(c, jax.devices()[:1])
  batch, stats, dropped, _ = train.next_batch(run, iter(run.dataset))
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



def test_padding_stats_are_the_global_batchs_not_this_processs_rows(monkeypatch):
  """Each process holds its rows of a batch, and metrics.jsonl is process 0's: its
  data/nonpad_fraction and data/examples were its own rows' (on 2 processes, packed steps
  reported half their examples). Here placing the batch adds a second process's rows, all
  padding: the global fraction of real tokens is half this process's."""
  from mathvlm import sharding
  from mathvlm.configs import sft
  c = sft.get_config(None)
  c.data.max_len, c.steps, c.data.packing, c.data.synthetic_text_only = 32, 2, True, 1.0
  run = train.setup(c, jax.devices()[:1])
  place, mine = sharding.place_batch, {}

  def with_other_process(local, mesh):
    mine.update(local)
    return place({k: np.concatenate([v, np.zeros_like(v)]) for k, v in local.items()}, mesh)

  monkeypatch.setattr(sharding, "place_batch", with_other_process)
  batch, stats, _, _ = train.next_batch(run, iter(run.dataset))
  assert batch["attention_mask"].shape[0] == 2 * mine["attention_mask"].shape[0]
  assert float(stats["data/nonpad_fraction"]) == pytest.approx(
      mine["attention_mask"].mean() / 2)
  assert float(stats["data/examples"]) == mine["segment_ids"].max(-1).sum() > 0

class FakeClock:
  """train's `time`, advanced where the loop's time passes: a step's call (dispatch) takes
  `compiling(batch)` seconds, which it reports as jax reports its compilation (a monitoring
  time span), then `inline` seconds (a CPU runs a single-device step inside the call), reading
  its metrics (the wait on the devices) one second, and the test's stand-ins `sleep` theirs.
  The timings read off it are exact: bounds on the real clock (a step_time under 0.25 s after a
  0.5 s sleep) measured the machine as well as the loop, and a test process left unscheduled, or
  a row's write stalled, for a quarter second failed them."""

  def __init__(self, monkeypatch, compiling=lambda batch: 0.0, inline=0.0):
    self.now, self.compiling, self.inline = 0.0, compiling, inline
    monkeypatch.setattr(train, "time", self)
    monkeypatch.setattr(train.overlap, "fetch", self.fetch)

  def time(self):
    return self.now

  def sleep(self, seconds: float) -> None:
    self.now += seconds

  def step(self, state, batch):
    seconds = self.compiling(batch)
    if seconds:
      jax.monitoring.record_event_time_span(train.COMPILE_EVENTS[-1], self.now, self.now + seconds)
    self.now += seconds + self.inline
    return state, STEP_METRICS

  def fetch(self, metrics):
    self.now += 1.0
    return metrics


def test_a_step_after_an_evaluation_is_timed_without_it(tmp_path, monkeypatch):
  """The evaluation runs between step k's row and step k+1's dispatch: counted in step k+1's
  step_time, it would report that step's tokens/s and MFU a fraction of the real ones."""
  from mathvlm import overlap
  from mathvlm.configs import sft
  from mathvlm.metrics import MetricWriter
  clock = FakeClock(monkeypatch)
  run = types.SimpleNamespace(config=sft.get_config("model=tiny"), total_steps=9, batch_shapes={})
  rows = train.Rows(run, MetricWriter(str(tmp_path), tensorboard=False), None, 0, None)
  rows.work = lambda batch: (1e9, 1000)  # (FLOPs, tokens): not what is measured here
  item = overlap.Prepared({}, {}, {}, None)
  rows.finish(1, STEP_METRICS, item, evaluate=lambda: (clock.sleep(0.5), {"eval/x": 1.0})[1])
  rows.finish(2, STEP_METRICS, item)
  assert rows.last["step"] == 2 and rows.last["step_time"] == 1.0, rows.last


class SlowSaves:
  """A checkpointer that saves every 2 steps (and when forced: the last step, a SIGTERM's), each
  save taking `seconds` of `clock`'s time."""

  def __init__(self, clock: FakeClock, seconds: float):
    self.clock, self.seconds = clock, seconds

  def should_save(self, step):
    return step % 2 == 0

  def save(self, *args, **kwargs):
    self.clock.sleep(self.seconds)

  def wait(self):
    pass


class StopAt:  # a SIGTERM (or a first SIGINT) that came during `step`
  def __init__(self, step):
    self.step = step

  def requested(self, step):
    return step == self.step


STEP_METRICS = {"loss": 1.0, "grad_norm": 1.0, "lr": 0.0}


def _loop_rows(tmp_path, monkeypatch, every, *, total=6, start=0, stop=None, clock=None,
               save_s=0.5, batches=None) -> dict:
  """metrics.jsonl's rows by step after train_loop from `start` with stand-ins for the model
  (`clock`'s step: 1 s a step, FakeClock), the data (`batches`, or empty ones) and the
  checkpoints (SlowSaves, `save_s` each)."""
  from mathvlm.configs import sft
  from mathvlm.metrics import MetricWriter
  clock = clock or FakeClock(monkeypatch)
  config = sft.get_config("model=tiny")
  config.metrics.every = every
  run = types.SimpleNamespace(config=config, total_steps=total, batch_shapes={}, host=None,
                              evaluators=[], step_fn=clock.step)
  batches = iter(batches or [{}] * total)
  monkeypatch.setattr(train, "next_batch", lambda *args: (next(batches), {}, {}, 0))
  monkeypatch.setattr(train.Rows, "work", lambda self, batch: (1e9, 1000))
  data_iter = types.SimpleNamespace(get_state=dict)
  writer = MetricWriter(str(tmp_path), tensorboard=False, start_step=start)
  train.train_loop(run, {}, start, data_iter, SlowSaves(clock, save_s), writer, stop=stop)
  writer.close()
  return {r["step"]: r for r in map(json.loads, open(tmp_path / "metrics.jsonl"))}


@pytest.mark.parametrize("every", [1, 2])
def test_a_step_after_a_checkpoint_save_is_timed_without_it(tmp_path, monkeypatch, every):
  """The loop saves between step k's row and step k+1's dispatch: counted in step k+1's
  step_time (as it was), the save reported that step's tokens/s and MFU a fraction of the real
  ones. Its seconds go to checkpoint_time of the next row written (every: metrics.every)."""
  rows = _loop_rows(tmp_path, monkeypatch, every)
  assert sorted(rows) == list(range(every, 7, every))
  after_a_save = [3, 5] if every == 1 else [4, 6]  # the next rows written, whose steps were timed
  for step, row in rows.items():
    if step in after_a_save:
      assert row["checkpoint_time"] == 0.5 and row["step_time"] == 1.0, row
    else:
      assert "checkpoint_time" not in row, row


@pytest.mark.parametrize("every, stop, amended", [
    (2, None, 6),        # the run's end: its last row
    (1, StopAt(3), 3),   # a SIGTERM's save, after its step's row
    (2, StopAt(3), 2),   # a step between metrics.every's: the last row, naming the step saved
])
def test_the_save_a_run_exits_after_is_timed_in_its_own_row(tmp_path, monkeypatch, every, stop,
                                                             amended):
  """No row follows the last save, so its seconds (checkpoint_time of a next row) were never
  written: they go to exit_checkpoint_time of its step's row, which was written before it. A
  stop at a step without a row lost them: the last row takes them, with the step saved."""
  rows = _loop_rows(tmp_path, monkeypatch, every, stop=stop)
  last = 6 if stop is None else stop.step
  assert sorted(rows) == list(range(every, last + 1, every))  # a row per logged step, as before
  for step, row in rows.items():
    if step == amended:
      assert row["exit_checkpoint_time"] == 0.5, row
      assert row.get("exit_checkpoint_step", step) == last, row
    else:
      assert "exit_checkpoint_time" not in row, row
  assert [s for s, r in rows.items() if "exit_checkpoint_step" in r] == [2] * (last % every > 0)


def test_a_stop_before_this_process_wrote_a_row_logs_its_save(tmp_path, monkeypatch, caplog):
  """No row to amend (metrics.every=4, a stop at step 3): the save's seconds go to the log."""
  with caplog.at_level(logging.INFO, logger="mathvlm.train"):
    assert _loop_rows(tmp_path, monkeypatch, 4, stop=StopAt(3)) == {}
  assert re.search(r"step 3: .*exit_checkpoint_time 0\.5s; no metrics row", caplog.text), \
      caplog.text


def test_the_eta_leaves_out_the_first_steps_compilation(tmp_path, monkeypatch, caplog):
  """The ETA was the time since the start over the steps done: 30 s of compiling and 1 s steps
  said 155 s left after step 1 of 6, where 5 s were."""
  calls = []

  def compiling(batch):
    calls.append(batch)
    return 30.0 if len(calls) == 1 else 0.0

  clock = FakeClock(monkeypatch, compiling)
  with caplog.at_level(logging.INFO, logger="mathvlm.train"):
    _loop_rows(tmp_path, monkeypatch, 1, clock=clock, save_s=0.0)
  etas = [int(m) for m in re.findall(r"eta (\d+)s", caplog.text)]
  assert etas == [5, 4, 3, 2, 1, 0], caplog.text


def test_each_buckets_first_compilation_is_timed_apart_in_its_own_row(tmp_path, monkeypatch):
  """Step 1's compilation was split out; a later bucket's (data.buckets: a new batch shape) was
  counted in the step_time of the row before it, read a step late, after the compile."""
  seen = set()

  def compiling(batch):  # a shape's first call compiles for 10 s
    new = batch["input_ids"].shape not in seen
    seen.add(batch["input_ids"].shape)
    return 10.0 if new else 0.0

  clock = FakeClock(monkeypatch, compiling)
  batches = [{"input_ids": np.zeros((2, n))} for n in (8, 8, 8, 16, 16, 16)]
  rows = _loop_rows(tmp_path, monkeypatch, 1, clock=clock, batches=batches)
  assert {s: r.get("compile_time") for s, r in rows.items()} == {
      1: 10.0, 2: None, 3: None, 4: 10.0, 5: None, 6: None}
  assert [r["step_time"] for r in rows.values()] == [1.0] * 6, rows


@pytest.mark.parametrize("start", [0, 2])
def test_the_first_steps_compilation_is_timed_apart(tmp_path, monkeypatch, start):
  """The first call of the jitted step traces and compiles it (24 s on the tiny model, against
  0.04 s a step): in step 1's step_time it made that row's tokens/s and MFU meaningless. Its
  seconds go to compile_time of the first row this process writes (a resumed run compiles
  again)."""
  calls = []

  def compiling(batch):  # the first call "compiles" for 0.5 s
    calls.append(1)
    return 0.5 if len(calls) == 1 else 0.0

  clock = FakeClock(monkeypatch, compiling)
  rows = _loop_rows(tmp_path, monkeypatch, 1, total=4, start=start, clock=clock)
  first = start + 1
  assert sorted(rows) == list(range(first, 5))
  assert rows[first]["compile_time"] == 0.5 and rows[first]["step_time"] == 1.0, rows[first]
  assert [s for s, r in rows.items() if "compile_time" in r] == [first]


def test_a_step_run_inside_the_call_that_compiled_it_keeps_its_own_time(tmp_path, monkeypatch):
  """On a CPU a single-device step runs inline, inside the call that compiles it: the whole call
  timed apart put step 1's run into compile_time and left its row 0.004 s a step and an MFU of
  1.36 (`python -m mathvlm.train --config configs/sft.py:model=tiny`, README's first command).
  Only what jax reports as tracing and compiling is compile_time."""
  calls = []

  def compiling(batch):  # the first call compiles for 5 s
    calls.append(1)
    return 5.0 if len(calls) == 1 else 0.0

  clock = FakeClock(monkeypatch, compiling, inline=0.25)
  rows = _loop_rows(tmp_path, monkeypatch, 1, total=3, clock=clock, save_s=0.0)
  # step 1's row: its own 0.25 s run, step 2's (dispatched before step 1 is read) and the wait
  assert (rows[1]["compile_time"], rows[1]["step_time"]) == (5.0, 1.5), rows[1]


def test_jax_reports_a_calls_compilation_under_the_events_the_trainer_listens_for():
  """The event names are jax's (jax._src.dispatch): renamed, compile_time would read 0 and step
  1's step_time hold its compilation again."""
  with train._compile_spans() as spans:
    jax.jit(lambda x: jnp.sin(x) * 3.0 + 0.123)(jnp.arange(7.0)).block_until_ready()
  assert len(spans) >= 2 and train._covered(spans, spans[0][0], spans[-1][1]) > 0, spans


def test_nested_compile_spans_count_once_and_only_inside_the_call():
  """A function jitted inside the step is traced inside the step's trace: spans nest."""
  spans = [(0.0, 1.0), (2.0, 6.0), (3.0, 4.0), (5.5, 7.0), (9.0, 12.0)]
  assert train._covered(spans, 0.5, 10.0) == 0.5 + 5.0 + 1.0


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
  # a mesh axis misspelt inside a tuple of axes is named too
  with c.unlocked():
    c.logical_axis_rules = tuple((k, ("fsdp", "tensr")) if k == "mpl" else (k, v)
                                 for k, v in c.logical_axis_rules)
  with pytest.raises(ValueError, match=r"\('mpl', \('fsdp', 'tensr'\)\): mesh axes \['tensr'\]"):
    common.validate(c)


def test_a_rules_override_that_leaves_names_out_fails_naming_them_and_how_to_replicate():
  """A table copied without 'mlp' and 'activation_mlp' would replicate those, silently; mapped to
  None they are replicated on purpose and the config is valid."""
  from mathvlm import sharding
  from mathvlm.configs import sft
  c = sft.get_config(None)
  left_out = ("mlp", "activation_mlp")
  with c.unlocked():
    c.logical_axis_rules = tuple((k, v) for k, v in c.logical_axis_rules if k not in left_out)
  with pytest.raises(ValueError, match=r"logical_axis_rules leaves out \['mlp', "
                     r"'activation_mlp'\], which the layers use.*map it to None, e\.g\. "
                     r"\('mlp', None\)"):
    common.validate(c)
  with c.unlocked():
    c.logical_axis_rules += tuple((k, None) for k in left_out)
  assert sharding.rule_errors(c.logical_axis_rules) == []
  common.validate(c)



def test_a_logical_axis_mapped_twice_fails_naming_the_name_and_both_entries():
  """An override appended after the entry it means to replace (or a MaxText-style fallback)
  would have one of the two win silently."""
  from mathvlm.configs import sft
  c = sft.get_config(None)
  with c.unlocked():
    c.logical_axis_rules += (("mlp", "fsdp"),)
  with pytest.raises(ValueError, match=r"logical_axis_rules maps 'mlp' twice, \('mlp', 'tensor'\) "
                     r"and \('mlp', 'fsdp'\): one entry per name"):
    common.validate(c)

def test_buckets_under_a_host_step_fail_naming_data_buckets():
  """GRPO's rows are a left-padded prompt then the answer: a bucket would cut the answers off."""
  c = grpo_recipe.get_config("model=tiny")
  c.data.buckets = (32, c.data.max_len)
  with pytest.raises(ValueError, match=r"data.buckets=\(32, 64\): objective 'grpo'.*cut the "
                                       r"answers off; set data.buckets=\(\)"):
    common.validate(c)


@pytest.mark.parametrize("field, value, said", [
    ("template", "vicuna", "data.template='vicuna': one of vicuna_v1, llava_v1, llama_2, "
     "mistral_instruct, plain"),
    ("max_len", 0, "data.max_len=0: the tokens of a row, >= 1"),
    ("buckets", (0, 64), "data.buckets=(0, 64): padded widths, each >= 1")])
def test_a_bad_data_field_fails_when_the_config_is_made_naming_it(field, value, said):
  """A misspelt template passed validation and failed later, named by no field: a built
  dataset's source after the model was set up, an evaluator or a GRPO rollout (which read
  data.template on synthetic data too) at its first prompt."""
  c = common.base("lm")
  c.data[field] = value
  with pytest.raises(ValueError, match=re.escape(said)):
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


class _Adapted(nnx.Module):
  def __init__(self):
    cfg = types.SimpleNamespace(dtype="float32", param_dtype="float32")
    self.proj = dense(8, 8, (None, None), bias=False, cfg=cfg, rngs=nnx.Rngs(0))


class _Recorded:
  """An objective whose `prepare` runs the model outside the gradient (as DPO's reference and
  GRPO's old policy do) and whose loss reports both forwards: their sums, and its output (a
  micro-batch of weight 0 adds nothing to the step's metrics, so one micro-batch's can be read)."""
  weight_metric = updates_per_step = project = None
  options = staticmethod(lambda cfg: {})

  @staticmethod
  def prepare(model_of, state, batch, opts):
    return dict(batch, seen=model_of(state["params"]).proj(batch["x"])), {}

  @staticmethod
  def loss(model, batch, cfg):
    y = model.proj(batch["x"])
    return jnp.mean(y ** 2), jnp.sum(batch["w"]), {
        "prepared": jnp.sum(batch["seen"]), "trained": jnp.sum(y), "y": y}


def test_lora_dropout_is_in_the_loss_forward_only_and_a_function_of_seed_and_step():
  """The loss's forward drops adapter inputs, with a key from the seed and the step; `prepare`'s
  never does. Same seed and step: the same step, bit for bit (with micro-batches too, each of
  which draws its own masks); another step or seed: other masks. Rate 0 puts no random bits in
  the program: a run without dropout compiles to what it compiled to before lora.dropout."""
  from mathvlm.configs import sft
  from mathvlm.models.lora import add_lora
  model = _Adapted()
  add_lora(model, "proj", 4, 8.0)
  b = model.proj.lora.lora_b
  b[...] = jax.random.normal(jax.random.key(1), b.shape)   # B = 0 would hide the adapter
  graphdef, params, frozen = nnx.split(model, nnx.LoRAParam, ...)
  batch = {"x": jax.random.normal(jax.random.key(2), (4, 8)), "w": jnp.ones(4)}
  c = sft.get_config("model=tiny,recipe=mavis")

  def run(rate, step, seed=0, accum=1, batch=batch):
    c.lora.dropout, c.seed, c.optim.grad_accum = rate, seed, accum
    tx, schedule = train.make_optimizer(c, 10, params)
    fn = jax.jit(train.make_train_step(c, _Recorded, graphdef, tx, schedule))
    state = dict(params=params, frozen=frozen, opt_state=tx.init(params), step=jnp.int32(step))
    metrics = {k: np.asarray(v) for k, v in fn(state, batch)[1].items()}
    return metrics, "threefry" in fn.lower(state, batch).as_text()

  whole, random_bits = run(0.0, 5)
  assert whole["trained"] == whole["prepared"] and not random_bits
  dropped, random_bits = run(0.5, 5)
  assert random_bits and dropped["prepared"] == whole["prepared"]
  assert abs(dropped["trained"] - whole["trained"]) > 1e-3
  assert all(np.array_equal(v, dropped[k]) for k, v in run(0.5, 5)[0].items())
  assert abs(run(0.5, 6)[0]["trained"] - dropped["trained"]) > 1e-3
  assert abs(run(0.5, 5, seed=1)[0]["trained"] - dropped["trained"]) > 1e-3
  # two micro-batches of the same rows: the first's output, then the second's
  twice = {"x": jnp.concatenate([batch["x"][:2]] * 2)}
  first = run(0.5, 5, 0, 2, dict(twice, w=jnp.array([1.0, 1, 0, 0])))[0]["y"]
  second = run(0.5, 5, 0, 2, dict(twice, w=jnp.array([0.0, 0, 1, 1])))[0]["y"]
  assert np.abs(first - second).max() > 1e-3
  assert np.array_equal(run(0.5, 5, 0, 2, dict(twice, w=jnp.array([1.0, 1, 0, 0])))[0]["y"],
                        first)


# ---------------------------------------------------------------------------------------------
# optim.decay_rules: what AdamW's weight decay reaches.

def _tower_no_decay(tower: str, norms: tuple[str, ...]) -> set[str]:
  """A CLIP tower's biases and norm weights: what the HF Trainer does not decay."""
  biased = ("layer_norm1", "layer_norm2", "mlp/fc1", "mlp/fc2", "self_attn/q_proj",
            "self_attn/k_proj", "self_attn/v_proj", "self_attn/out_proj")
  return ({f"{tower}/layers/{m}/bias" for m in biased}
          | {f"{tower}/layers/layer_norm{i}/scale" for i in (1, 2)}
          | {f"{tower}/{n}/{w}" for n in norms for w in ("bias", "scale")})


# transformers' Trainer.get_decay_parameter_names on these models' HF twins: no bias, no
# LayerNorm (CLIP's, `pre_layrnorm` too), no RMSNorm weight (Llama's `*layernorm`, `norm`); and,
# as open_clip's training code, no CLIP logit_scale
_NO_DECAY = {
    "llava": {"language_model/layers/input_layernorm/weight",
              "language_model/layers/post_attention_layernorm/weight",
              "language_model/norm/weight", "multi_modal_projector/linear_1/bias",
              "multi_modal_projector/linear_2/bias"}
             | _tower_no_decay("vision_tower", ("pre_layrnorm", "post_layernorm")),
    "clip": _tower_no_decay("vision_model", ("pre_layrnorm", "post_layernorm"))
            | _tower_no_decay("text_model", ("final_layer_norm",)) | {"logit_scale"},
}


def _abstract_params(family: str):
  """The tiny preset's parameters, LoRA adapters on every LLaVA language-model projection."""
  from mathvlm.models import registry
  from mathvlm.models.lora import add_lora

  def build():
    model = registry.get(family).build(registry.get(family).preset("tiny"), 0)
    if family == "llava":
      add_lora(model, r"language_model/.*_proj", 4, 8.0)
    return model
  return nnx.state(nnx.eval_shape(build), nnx.Param)


@pytest.mark.parametrize("family", sorted(_NO_DECAY))
def test_the_default_decay_rules_spare_biases_and_norm_weights_as_the_hf_trainer(family):
  """Scanned layers' norm weights are 2-D, so only their names tell them apart."""
  from mathvlm.models.layers import path_str
  mask = train.decay_mask(common.DECAY_RULES, _abstract_params(family))
  decays = {path_str(p): v.get_value() for p, v in nnx.to_flat_state(mask)}
  assert {p for p, d in decays.items() if not d} == _NO_DECAY[family]
  named = {"llava": ["language_model/embed_tokens/embedding", "language_model/lm_head/kernel",
                     "language_model/layers/self_attn/q_proj/lora/lora_a",
                     "vision_tower/class_embedding", "vision_tower/position_embedding",
                     "vision_tower/patch_embedding/kernel",
                     "multi_modal_projector/linear_1/kernel"],
           "clip": ["text_model/token_embedding", "visual_projection/kernel",
                    "text_model/layers/mlp/fc1/kernel"]}[family]
  assert all(decays[p] is True for p in named)


def _decay_config(weight_decay: float, rules=common.DECAY_RULES):
  c = common.base("lm")
  c.optim.lr, c.optim.warmup_ratio, c.optim.schedule = 0.5, 0.0, "constant"
  c.optim.weight_decay, c.optim.decay_rules = weight_decay, rules
  return c


class _Block(nnx.Module):
  def __init__(self):
    self.proj = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
    self.norm = nnx.LayerNorm(4, rngs=nnx.Rngs(0))


def _block_params():
  """proj/{kernel,bias}, norm/{scale,bias}, all nonzero (a zero bias shrinks to itself)."""
  params = nnx.state(_Block(), nnx.Param)
  return jax.tree.map(lambda x: x + jax.random.normal(jax.random.key(1), x.shape), params)


def test_a_step_of_zero_gradients_shrinks_decayed_weights_by_lr_times_wd_and_no_other():
  """AdamW's decay is lr * wd * w on top of Adam's step, which zero gradients make 0."""
  import optax
  params = _block_params()
  tx, _ = train.make_optimizer(_decay_config(0.1), 10, params)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  before = {"/".join(map(str, p)): np.asarray(v.get_value()) for p, v in
            nnx.to_flat_state(params)}
  after = {"/".join(map(str, p)): np.asarray(v.get_value()) for p, v in
           nnx.to_flat_state(optax.apply_updates(params, updates))}
  assert np.array_equal(after["proj/bias"], before["proj/bias"])
  assert np.array_equal(after["norm/scale"], before["norm/scale"])
  assert np.array_equal(after["norm/bias"], before["norm/bias"])
  np.testing.assert_allclose(after["proj/kernel"], before["proj/kernel"] * (1 - 0.5 * 0.1),
                             rtol=1e-6)


def test_the_optimizer_state_is_unmasked_adamws_where_the_rules_exclude_nothing():
  """Every recipe trains at weight_decay 0, and a run from before the rules decayed everything
  (resume: `(('.*', 'decay'),)`): their workdirs' optimizer state must keep its tree (optax's
  mask wraps the decay's state) to restore as it was."""
  import optax
  params = _block_params()
  structure = lambda c: jax.tree.structure(train.make_optimizer(c, 10, params)[0].init(params))
  plain = lambda wd: jax.tree.structure(optax.chain(  # a schedule, as the trainer's lr
      optax.clip_by_global_norm(1.0), optax.adamw(optax.constant_schedule(1e-3),
                                                  weight_decay=wd)).init(params))
  assert structure(_decay_config(0.0)) == plain(0.0)
  assert structure(_decay_config(0.1, ((".*", "decay"),))) == plain(0.1)
  assert structure(_decay_config(0.1)) != plain(0.1)  # the default spares biases and norms


def test_a_trainable_parameter_no_decay_rule_covers_is_an_error_naming_it(caplog):
  """And a rule that matches no trainable parameter is none: a LoRA-only run trains no bias."""
  params = _block_params()
  with pytest.raises(ValueError, match=re.escape("optim.decay_rules cover no rule for 1 "
                                                 "parameters, e.g. ['proj/kernel']")):
    train.make_optimizer(_decay_config(0.1, ((".*/(bias|scale)", "no_decay"),)), 10, params)
  kernel_only = nnx.state(_Adapted(), nnx.Param)
  with caplog.at_level("INFO", logger="mathvlm.train"):
    train.make_optimizer(_decay_config(0.1), 10, kernel_only)
  assert "optim.decay_rules: 1 tensors (64 parameters) decay, 0 (0) do not" in caplog.text
