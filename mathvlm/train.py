"""One trainer for every stage: the config picks the objective, the model, what trains and the mesh.

  python -m mathvlm.train --config configs/sft.py:model=tiny --workdir /tmp/run
  python -m mathvlm.train --config sft.py:model=llava-1.5-13b --compile_only --fake_devices 8

`--config` takes a recipe file (`path.py:key=value,...`); a name that is no file here is looked up
among the recipes shipped in the package (`mathvlm/configs/`), so an installed copy trains from
any directory.

Read top to bottom: the model (preset or pretrained, LoRA, what trains) -> the optimizer -> the
step -> setup (mesh, model, data, shardings, the compiled step; the state's shardings and initial
values are in `train_state.py`) -> the loop (metrics read a step late, checkpoints, callbacks,
SIGTERM) -> the entry point (resumed or initialised state) -> what a run leaves (data report,
exported model). Faults and what the trainer does about each: docs/reliability/FAULTS.md.
The objective (`mathvlm.objectives`) fills in everything that differs between stages; this file
names none of them. The step is a pure function of (state, batch), compiled once with explicit
in/out shardings and the state donated.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import signal
import sys
import time
import types
from typing import Any, Callable

from absl import app, flags
from etils import epath
from ml_collections import config_flags

from mathvlm import overlap, train_state
from mathvlm.paths import check_reachable

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "recipe file[:key=value,...]", lock_config=True)
flags.DEFINE_string("workdir", None, "checkpoints, metrics.jsonl, TensorBoard and the final model "
                    "(a local folder or a bucket URL, gs://bucket/runs/x)")
flags.DEFINE_bool("compile_only", False, "lower and compile the step from abstract shapes, print "
                  "per-device memory, and exit (no weights are allocated)")
flags.DEFINE_integer("fake_devices", 0, "with --compile_only: this many CPU devices stand in for "
                     "the accelerators")
flags.DEFINE_string("coordinator", "", "multi-process: coordinator host:port")
flags.DEFINE_integer("num_processes", 1, "multi-process: number of processes")
flags.DEFINE_integer("process_id", 0, "multi-process: this process's index")
flags.DEFINE_integer("preempt_after_step", 0, "testing aid: SIGKILL this process once that "
                     "step's checkpoint is written, as a preemption would")
flags.DEFINE_bool("distributed", False, "call jax.distributed.initialize() with the cluster's own "
                  "settings (TPU pods, SLURM)")

log = logging.getLogger("mathvlm.train")

# ---------------------------------------------------------------------------------------------
# Model: what trains.

def rule_decisions(paths: list[str], rules, field: str,
                   decisions: tuple[str, str]) -> dict[str, str]:
  """path -> the decision of the first (regex, decision) rule that matches it; a path no rule
  covers is an error, since leaving it to a default would decide for the user unsaid."""
  out, uncovered = {}, []
  for p in paths:
    decision = next((d for regex, d in rules if re.fullmatch(regex, p)), None)
    if decision is None:
      uncovered.append(p)
    out[p] = decision
  if uncovered:
    raise ValueError(f"{field} cover no rule for {len(uncovered)} parameters, e.g. "
                     f"{uncovered[:3]}: end the rules with ('.*', '{decisions[0]}') or "
                     f"('.*', '{decisions[1]}')")
  return out


def trainable_paths(paths: list[str], rules) -> set[str]:
  """First matching (regex, decision) rule wins; a parameter no rule covers is an error, and so is
  a rule that matches no parameter (a misspelt freeze rule would hand its weights to the
  catch-all)."""
  decided = rule_decisions(paths, rules, "train_rules", ("frozen", "trainable"))
  dead = [tuple(r) for r in rules if not any(re.fullmatch(r[0], p) for p in paths)]
  if dead:
    raise ValueError(f"train_rules {dead} match no parameter of this model, e.g. {paths[:3]}: "
                     "fix the regex (a typo leaves those weights to a later rule) or drop the rule")
  return {p for p, d in decided.items() if d == "trainable"}


# ---------------------------------------------------------------------------------------------
# Optimizer.

def updates_per_step(config, objective) -> int:
  """Optimizer updates one step applies: several passes over one batch for RL rollouts, else 1."""
  if objective.updates_per_step is None:
    return 1
  return objective.updates_per_step(objective.options(config))


def decay_mask(rules, params):
  """AdamW's mask over the trainable `params` (an nnx.State, abstract or not): True where
  `optim.decay_rules` decay the tensor; None where they decay every one, since optax without a
  mask keeps the optimizer state's tree of the runs from before the rules, whose checkpoints then
  restore as they were. A rule that matches none of them is no error: a LoRA-only run trains no
  bias, and the default's no_decay rules then match nothing."""
  import numpy as np
  from flax import nnx

  from mathvlm.models.layers import path_str
  sizes = {path_str(p): int(np.prod(v.get_value().shape)) for p, v in nnx.to_flat_state(params)}
  decided = rule_decisions(list(sizes), rules, "optim.decay_rules", ("decay", "no_decay"))
  kept = [p for p, d in decided.items() if d == "no_decay"]
  log.info("optim.decay_rules: %d tensors (%s parameters) decay, %d (%s) do not, e.g. %s",
           len(sizes) - len(kept), f"{sum(sizes.values()) - sum(sizes[p] for p in kept):,}",
           len(kept), f"{sum(sizes[p] for p in kept):,}", kept[:2])
  if not kept:
    return None
  return nnx.map_state(lambda path, v: v.replace(decided[path_str(path)] == "decay"), params)


def make_optimizer(config, total_steps: int, params):
  """(tx, schedule): `schedule(step)` is the lr of every update of that step. The optimizer counts
  updates, several per step for an objective with passes (RL), so it gets the schedule over
  updates: warmup and decay stay in steps, and the passes of one step share one lr. params: the
  trainable parameters (abstract will do), which `optim.decay_rules` pick the decayed ones of.
  The schedules and their warmup's length are the Hugging Face Trainer's (LLaVA's, Math-LLaVA's;
  `common.warmup_steps`)."""
  import optax

  from mathvlm import objectives
  from mathvlm.configs import common
  passes = updates_per_step(config, objectives.get(config.objective))
  o = config.optim
  warmup = common.warmup_steps(o.warmup_ratio, total_steps)
  end = o.lr * o.end_lr_ratio
  if o.schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(0.0, o.lr, warmup, max(total_steps, warmup + 1),
                                                  end_value=end)
  elif o.schedule == "linear":
    schedule = optax.join_schedules([optax.linear_schedule(0.0, o.lr, warmup),
                                     optax.linear_schedule(o.lr, end, total_steps - warmup)],
                                    [warmup])
  else:
    schedule = optax.join_schedules([optax.linear_schedule(0.0, o.lr, warmup),
                                     optax.constant_schedule(o.lr)], [warmup])
  per_update = schedule if passes == 1 else lambda count: schedule(count // passes)
  mask = decay_mask(o.decay_rules, params) if o.weight_decay else None
  tx = optax.chain(optax.clip_by_global_norm(o.grad_clip),
                   optax.adamw(per_update, b1=o.b1, b2=o.b2, eps=o.eps,
                               weight_decay=o.weight_decay, mask=mask))
  return tx, schedule


# ---------------------------------------------------------------------------------------------
# The step: prepare (outside the gradient), accumulate the weighted loss over micro-batches,
# one optimizer update.

def _per_weight(grads, w):
  """grads / w in each gradient's own dtype (its weight's): w is float32, and bfloat16 weights'
  gradients promoted by it turned Adam's bfloat16 moments float32, so the step's two branches
  (`train_step`'s cond) no longer matched and a `model.param_dtype=bfloat16` run did not
  compile."""
  import jax
  return jax.tree.map(lambda g: (g / w).astype(g.dtype), grads)


def make_train_step(config, objective, graphdef, tx, schedule) -> Callable:
  """The step. With `lora.dropout` > 0 only the loss's forward drops adapter inputs (PEFT's
  lora_dropout), with a key from the seed, the step, the pass and the micro-batch
  (`lora.dropout_key`); `objective.prepare` (DPO's reference log-probs, GRPO's old-policy and
  reference log-probs) runs without it, as do evaluators and rollouts, which never enter here."""
  import jax
  import jax.numpy as jnp
  import optax
  from flax import nnx

  from mathvlm.models.layers import adapter_dropout
  from mathvlm.models.lora import dropout_key

  accum = config.optim.grad_accum
  opts = objective.options(config)
  passes = updates_per_step(config, objective)
  rate = float(config.lora.dropout)

  def loss_fn(params, frozen, batch, key):
    with adapter_dropout(key, rate):
      loss, weight, metrics = objective.loss(nnx.merge(graphdef, params, frozen), batch, config)
    return loss * weight, (weight, metrics)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def accumulate(state, batch, key):
    """sum_i w_i * loss_i and its gradient over micro-batches, divided by sum_i w_i: a per-token
    (per-pair, per-example) mean over the global batch, whatever the accumulation. key: the
    dropout key of this pass (None: no dropout), one of its own for each micro-batch."""
    if accum == 1:  # no scan: a carry of zeros and its additions are full passes over the grads
      (lw, (w, metrics)), grads = grad_fn(state["params"], state["frozen"], batch, key)
      w = jnp.maximum(w, 1e-9)
      return (lw / w, w, {k: (v * w) / w for k, v in metrics.items()}, _per_weight(grads, w))
    micro = jax.tree.map(lambda x: x.reshape((accum, x.shape[0] // accum) + x.shape[1:]), batch)
    keys = None if key is None else jax.random.split(key, accum)

    def add(carry, inputs):
      mb, k = inputs
      (lw, (w, metrics)), grads = grad_fn(state["params"], state["frozen"], mb, k)
      return jax.tree.map(jnp.add, carry, (lw, w, jax.tree.map(lambda m: m * w, metrics),
                                           grads)), None

    (_, (_, shapes)), _ = jax.eval_shape(grad_fn, state["params"], state["frozen"],
                                         jax.tree.map(lambda x: x[0], micro), None)
    zeros = (jnp.float32(0), jnp.float32(0),
             jax.tree.map(lambda m: jnp.zeros(m.shape, jnp.float32), shapes),
             jax.tree.map(jnp.zeros_like, state["params"]))
    (lw, w, metrics, grads), _ = jax.lax.scan(add, zeros, (micro, keys))
    w = jnp.maximum(w, 1e-9)
    return lw / w, w, {k: v / w for k, v in metrics.items()}, _per_weight(grads, w)

  def train_step(old, batch):
    """A non-finite loss or gradient norm keeps the old state whole (no update is applied); the
    loop sees it in the metrics and stops before saving anything."""
    state = old  # uint8 pixels go to the vision tower, which normalises them with its statistics
    if objective.prepare is not None:
      model_of = lambda params: nnx.merge(graphdef, params, state["frozen"])
      batch, changed = objective.prepare(model_of, state, batch, opts)
      state = dict(state, **changed)
    finite = jnp.bool_(True)
    for p in range(passes):  # several optimisation passes over one batch (RL rollouts)
      key = dropout_key(config.seed, old["step"], p) if rate else None
      loss, w, metrics, grads = accumulate(state, batch, key)
      grad_norm = optax.global_norm(grads)
      finite = finite & jnp.isfinite(loss) & jnp.isfinite(grad_norm)
      change, opt_state = tx.update(grads, state["opt_state"], state["params"])
      params = optax.apply_updates(state["params"], change)
      if objective.project is not None:  # a constraint on the parameters (CLIP's logit scale)
        params = objective.project(params, opts)
      state = dict(state, params=params, opt_state=opt_state)
    if objective.weight_metric:
      metrics[objective.weight_metric] = w
    metrics.update(loss=loss, grad_norm=grad_norm, lr=schedule(old["step"]))
    new = dict(state, step=old["step"] + 1)
    # one branch or the other, not an elementwise select over every parameter and moment
    return jax.lax.cond(finite, lambda: new, lambda: old), metrics

  return train_step


# ---------------------------------------------------------------------------------------------
# Setup: mesh, model, data, shardings, the compiled step.

@dataclasses.dataclass
class Run:
  """Everything setup builds: what the loop, the checkpoints and --compile_only use."""
  config: Any
  objective: Any
  mesh: Any
  cfg: Any                  # the model config
  build: Callable           # init: bool -> the model (pretrained weights when init)
  is_trainable: Callable
  graphdef: Any
  n_all: int
  n_train: int
  train_set: set
  source: Any
  dataset: Any
  total_steps: int
  plan: dict                # data_plan: epochs, steps, examples trained and left untrained
  example: dict
  batch_shapes: dict
  step_fn: Any
  abstract_state: dict
  state_sh: dict
  tx: Any
  evaluators: list          # (name, every, evaluate(model) -> {key: float}), from config.evals
  host: Any                 # the objective's host step (RL rollouts), or None


def model_of(run: Run, state):
  """The model a train state holds (its trained and frozen parts merged)."""
  from flax import nnx
  return nnx.merge(run.graphdef, state["params"], state["frozen"])


def setup_model(config, objective, mesh, rules):
  """The model builder, the trainable/frozen split and the abstract parameters."""
  import jax
  import numpy as np
  from flax import nnx

  from mathvlm import pretrained, sharding
  from mathvlm.models import registry
  from mathvlm.models.layers import path_str
  from mathvlm.models.lora import add_lora

  sharding_fn = sharding.param_sharding(mesh, rules)
  cfg = pretrained.model_config(config)
  family = registry.get(objective.family)

  def with_lora(model):  # adapters from the seed and the shapes alone, whatever the weights
    if config.lora.rank:
      add_lora(model, config.lora.targets, config.lora.rank, config.lora.alpha, config.seed)
    return model

  def born_sharded(make_state):
    """make_state() (a State) jitted so each device creates only its shards, bit for bit what an
    eager call gives (`train_state.eager_values`)."""
    out = sharding.state_shardings(jax.eval_shape(make_state), mesh, rules)
    return jax.jit(train_state.eager_values(make_state), out_shardings=out)()

  def adapters():  # on the model's shapes alone: nothing else of it is created
    shapes = nnx.eval_shape(lambda: family.build(cfg, config.seed))
    return nnx.state(with_lora(shapes), nnx.LoRAParam)

  def build(init: bool):
    """The random model (eager, whole on the default device) or, with init, the run's start,
    never whole on one device (a 7B LLaVA in float32, 28 GB, is more than a TPU v5e chip holds;
    LLaVA-1.5's rank-128 adapters add 1.3 GB): model.init_from's weights read sharded or the
    random model, and the LoRA adapters, created sharded with the eager build's values; then each
    part from another model (the tower, the LLM), its random weights freed first
    (`pretrained.load_part`)."""
    if not init:
      return with_lora(family.build(cfg, config.seed))
    if config.model.init_from:
      weights = nnx.state(pretrained.load_pretrained(config.model.init_from, config, sharding_fn))
    else:
      weights = born_sharded(lambda: nnx.state(family.build(cfg, config.seed)))
    # the run's graphdef: the one its step merges the state with anyway
    model = nnx.merge(nnx.graphdef(abstract), weights, born_sharded(adapters))
    for field in registry.INIT_PARTS:
      if config.model[field]:
        pretrained.load_part(model, field, config.model[field], config, sharding_fn)
    return model

  abstract = nnx.eval_shape(lambda: build(False))
  sharding.log_replicated(nnx.state(abstract, nnx.Param), mesh, rules)
  paths = [path_str(p) for p, _ in nnx.to_flat_state(nnx.state(abstract, nnx.Param))]
  train_set = trainable_paths(paths, config.train_rules)
  is_trainable = lambda path, x: isinstance(x, nnx.Param) and path_str(path) in train_set
  graphdef, abs_params, abs_frozen = nnx.split(abstract, is_trainable, ...)
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
  n_train = count(abs_params)
  log.info("model %s (%s): %s parameters, %s trainable", config.model.preset,
           type(cfg).__name__, f"{n_train + count(abs_frozen):,}", f"{n_train:,}")
  return cfg, build, is_trainable, graphdef, abs_params, abs_frozen, train_set, n_train


def data_plan(examples: int, global_batch: int, epochs: int, steps: int, packing: bool) -> dict:
  """The passes over the data the stream holds (data.epochs, or more when `steps` need them) and
  what the steps take of it: the stream's examples past the last step are never trained (with
  steps from data.epochs, each epoch's remainder under a global batch, gathered at the stream's
  end: `untrained_why`). data.epochs stays a floor under explicit steps: a workdir's recorded
  passes say which data orders it trained in (configs/resume.py). Packed steps take a varying
  number of examples: no such count there (the run counts what it read, `with_read`)."""
  epochs = max(epochs, -(-steps * global_batch // examples))
  plan = {"epochs": epochs, "steps": steps}
  if not packing:
    trained = steps * global_batch
    plan.update(trained=trained, untrained=examples * epochs - trained)
  return plan


def plan_of(config, examples: int, steps: int) -> dict:
  """The data_plan of `steps` (<= 0: data.epochs' worth) over `examples`."""
  d = config.data
  total = steps if steps > 0 else examples // d.global_batch * d.epochs
  return data_plan(examples, d.global_batch, d.epochs, total, d.packing)


def untrained_why(plan: dict, examples: int, config) -> str:
  """Why the stream's last `plan["untrained"]` examples train nothing, for the setup log, which
  said they fill no global batch whatever their count: 24 of 20 examples x 2 epochs in batches of
  8, where steps=2 ended the run inside the first epoch, or 8, a whole batch, where data.epochs'
  steps leave each epoch's remainder and those gather at the stream's end (batches run on across
  epoch ends)."""
  batch, left = config.data.global_batch, plan["untrained"]
  if left < batch:
    return f"they fill no global batch of {batch}"
  if config.steps > 0:
    return (f"the run's steps={config.steps} end before them (data.epochs="
            f"{config.data.epochs} only sets the passes the stream holds, at least those the "
            "steps need)")
  return (f"data.epochs' worth of steps is {examples // batch} an epoch (examples // "
          "data.global_batch), and batches run on across epoch ends, so each epoch's remainder "
          f"of {examples % batch} gathers at the stream's end (steps="
          f"{plan['steps'] + left // batch} trains each whole batch of them)")


def setup_data(config, objective, cfg):
  """The source, the batched (and resumable) dataset, its data_plan and one trained example."""
  import jax
  import numpy as np

  from mathvlm.data import pipeline
  from mathvlm.data.sources import make_source

  source = make_source(config.data, objective, cfg, config.seed)
  plan = plan_of(config, len(source), config.steps)
  total = plan["steps"]
  if total < 1:  # steps from the epochs, and fewer examples than a global batch
    raise ValueError(f"data: {len(source)} examples of {config.data.name!r} fill no global batch "
                     f"of data.global_batch={config.data.global_batch}, so data.epochs="
                     f"{config.data.epochs} give 0 steps; lower data.global_batch, or set steps "
                     "(the stream then repeats the data)")
  epochs = plan["epochs"]
  if plan.get("untrained"):
    log.info("data: %d steps train %d of the %d examples x %d epoch(s); the last %d of the "
             "shuffled stream are not trained: %s", total, plan["trained"], len(source), epochs,
             plan["untrained"], untrained_why(plan, len(source), config))
  dataset = pipeline.make_dataset(
      source, global_batch=config.data.global_batch, seed=config.seed, epochs=epochs,
      process_index=jax.process_index(), process_count=jax.process_count(),
      lengths=getattr(source, "lengths", None), augment=config.data.augment,
      workers=config.data.workers, packing=config.data.packing,
      image_token_id=getattr(cfg, "image_token_id", -1))
  example = pipeline.trained_example(source[0], config.data.packing)
  objective.check_data(example, config)
  shapes = {k: (config.data.global_batch,) + np.shape(v) for k, v in example.items()}
  return source, dataset, plan, example, shapes


def setup(config, devices=None) -> Run:
  import jax

  from mathvlm import objectives, sharding
  from mathvlm.configs.common import validate
  from mathvlm.eval import evaluators

  devices = list(devices or jax.devices())
  validate(config, jax.process_count(), len(devices))
  objective = objectives.get(config.objective)
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor, devices)
  from mathvlm.data.pipeline import check_process_rows
  check_process_rows(mesh)  # each process feeds rows of its own
  rules = tuple(tuple(r) for r in config.logical_axis_rules)
  (cfg, build, is_trainable, graphdef, abs_params, abs_frozen, train_set,
   n_train) = setup_model(config, objective, mesh, rules)
  source, dataset, plan, example, shapes = setup_data(config, objective, cfg)
  total = plan["steps"]
  host = objective.make_host_step(types.SimpleNamespace(config=config, cfg=cfg, mesh=mesh,
                                                        graphdef=graphdef))
  if host is not None:  # the step trains on what the host step makes of the data
    example, shapes = host.example, host.batch_shapes
  tx, schedule = make_optimizer(config, total, abs_params)
  abstract_state, state_sh = train_state.state_shardings(
      objective, objective.options(config), abs_params, abs_frozen, tx, mesh, rules)
  batch_sh = {k: sharding.batch_sharding(mesh) for k in shapes}
  step_fn = jax.jit(sharding.traced_with_activation_sharding(
                        make_train_step(config, objective, graphdef, tx, schedule), mesh, rules),
                    in_shardings=(state_sh, batch_sh), out_shardings=(state_sh, None),
                    donate_argnums=(0,))
  n_all = n_train + sum(int(x.size) for x in jax.tree.leaves(abs_frozen))
  return Run(config, objective, mesh, cfg, build, is_trainable, graphdef, n_all, n_train,
             train_set, source, dataset, total, plan, example, shapes, step_fn, abstract_state,
             state_sh, tx, evaluators.from_config(config, cfg), host)


# ---------------------------------------------------------------------------------------------
# The loop.

def kill_after(step: int) -> Callable:
  """A callback that SIGKILLs this process once `step`'s checkpoint is on disk (a preemption)."""
  def callback(done: int, ckpt) -> None:
    if done == step:
      ckpt.wait()
      os.kill(os.getpid(), signal.SIGKILL)
  return callback


def next_batch(run: Run, data_iter, now: dict | None = None):
  """This process's rows of the next global batch, made into what the step trains on by the
  objective's host step (if any: it samples with `now`'s state), trimmed to a bucket and placed
  on the mesh; the global batch's padding statistics (with the host step's metrics) and the drop
  reasons of its examples."""
  import jax
  import numpy as np
  from jax.experimental import multihost_utils

  from mathvlm import sharding
  from mathvlm.data import pipeline

  local, dropped, host_metrics = next(data_iter), collections.Counter(), {}
  local = pipeline.pop_dropped(local, dropped)
  read = pipeline.examples_in(local)
  if run.host is not None:
    local, host_metrics = run.host(now["state"], local, now["step"])
  buckets = run.config.data.buckets
  if buckets and "attention_mask" in local:  # pad to a bucket, not to max_len
    length = pipeline.local_bucket(local, buckets)
    if jax.process_count() > 1:
      length = int(np.max(multihost_utils.process_allgather(np.int32(length))))
    local = pipeline.trim_to(local, length)
  batch = sharding.place_batch(local, run.mesh)
  return batch, dict(global_stats(batch, run.mesh), **host_metrics), dropped, read


def global_stats(batch: dict, mesh) -> dict:
  """`pipeline.batch_stats` of the whole global batch, computed on the devices: this process
  holds only its rows, and metrics.jsonl (process 0's) reported its share (on 2 processes, packed
  steps half their examples; with data.group_by_length, the longest rows of every batch). Left
  as device scalars: read when the step's row is written, after its metrics, they add no wait."""
  keys = ("attention_mask", "segment_ids")
  return _stats_fn(mesh)({k: batch[k] for k in keys if k in batch})


@functools.cache
def _stats_fn(mesh):
  import jax

  from mathvlm.data import pipeline
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.jit(pipeline.batch_stats, out_shardings=replicated)


class Rows:
  """Step metrics from the devices to metrics.jsonl: read (the loop's only wait on the devices),
  checked finite, counted into the drop reasons, written every `metrics.every` steps."""

  def __init__(self, run: Run, writer, ckpt, start: int, dropped, read: int | None = 0):
    import jax

    from mathvlm import flops
    self.run, self.writer, self.ckpt, self.start, self.dropped = run, writer, ckpt, start, dropped
    self.read = read  # this process's examples in the steps done (restored with the state)
    self.peak = flops.peak_flops(jax.devices()[0], run.config.model.dtype,
                                 run.config.metrics.peak_flops)
    self.per_shape = {}  # batch shapes -> (FLOPs, tokens) of a step
    self.t_start = self.t_last = time.time()
    self.last = None
    self.apart = {}  # field -> seconds the loop spent between steps since the last row written
    self.spent = {}  # field -> seconds the loop spent between steps in all (for the ETA)
    self.stepped = set()  # the batch shapes the step was called on (traced and compiled for)

  def work(self, batch: dict) -> tuple[float, int]:
    """(FLOPs, tokens) of a step on this batch, from its own shape: with data.buckets a batch is
    trimmed to its bucket, not data.max_len. Counted once per bucket."""
    import numpy as np
    key = _shapes(batch)
    shapes = dict(key)
    if key not in self.per_shape:
      run = dataclasses.replace(self.run, batch_shapes={**self.run.batch_shapes, **shapes})
      tokens = shapes.get("input_ids", (self.run.config.data.global_batch,))
      self.per_shape[key] = (train_state.step_flops(run), int(np.prod(tokens)))
    return self.per_shape[key]

  @contextlib.contextmanager
  def timed_apart(self, field: str):
    """Work between steps (a checkpoint save): its seconds go to `field` of the next row written
    and the next step's time starts after it, since in that step's step_time they would report
    its tokens/s, TFLOP/s and MFU a fraction of the real ones."""
    began = time.time()
    try:
      yield
    finally:
      self.t_last = time.time()
      self._count_apart(field, self.t_last - began)

  def _count_apart(self, field: str, seconds: float) -> None:
    """`seconds` to `field` of the next row written and of the run's totals."""
    for spent in (self.apart, self.spent):
      spent[field] = spent.get(field, 0.0) + seconds

  def compiles(self, batch: dict) -> bool:
    """Whether the step's call on this batch traces and compiles it first: the first call of
    this process, and with data.buckets the first of each bucket's shape."""
    return _shapes(batch) not in self.stepped

  def compiling(self, batch: dict):
    """Around the step's call: a call that compiles (`compiles`) takes seconds (tens, against a
    step's fraction of one) that go to `compile_time` of the next row written, its step's when
    it has one, not to a step_time and tokens/s."""
    if not self.compiles(batch):
      return contextlib.nullcontext()
    self.stepped.add(_shapes(batch))
    return self.compiled_apart()

  @contextlib.contextmanager
  def compiled_apart(self):
    """The seconds jax spends tracing, lowering and compiling in the block go to compile_time,
    and the step's time starts as if they came first. The call's other seconds stay the step's:
    on a CPU a single-device step runs inline (mathvlm/runtime.py), inside the call that compiled
    it, so timing the whole call apart left step 1 a few milliseconds and an MFU above 1."""
    began = time.time()
    with _compile_spans() as spans:
      yield
    seconds = _covered(spans, began, time.time())
    self.t_last = began + seconds
    self._count_apart("compile_time", seconds)

  def eta(self, now: float, done: int) -> float:
    """Seconds left at the pace of this process's steps so far, their compilation left out: it
    is paid once (per bucket), and counted in, it made the first rows' ETA many times too long.
    Checkpoint saves and evaluations recur, so they stay in."""
    compiled = self.spent.get("compile_time", 0.0)
    return (now - self.t_start - compiled) / (done - self.start) * (self.run.total_steps - done)

  def amend_last(self, step: int) -> None:
    """Time apart after the last row that no row follows (the save a process exits after, at
    the run's end or on a SIGTERM/SIGINT, at `step`) goes into that row instead of being lost
    with the process. A stop between metrics.every's has no row of its own: the last row takes
    it with `exit_checkpoint_step` naming the step saved, rather than a row of its own at a step
    an uninterrupted run logs none for (a resumed run's metrics.jsonl stays that run's rows)."""
    fields, self.apart = self.apart, {}
    if not fields:
      return
    if self.last is None:  # this process wrote no row yet: the log keeps it
      log.info("step %d: %s; no metrics row of this process to hold them", step,
               ", ".join(f"{k} {v:.1f}s" for k, v in fields.items()))
      return
    if self.last["step"] != step:
      fields["exit_checkpoint_step"] = step
    self.last.update(fields)
    self.writer.amend(self.last["step"], fields)

  def finish(self, done: int, metrics, item, evaluate: Callable | None = None) -> None:
    """evaluate: () -> evaluator scores for this step's row, run once the step is found finite."""
    import jax
    import numpy as np
    metrics = overlap.fetch(metrics)
    if not (np.isfinite(metrics["loss"]) and np.isfinite(metrics["grad_norm"])):
      self.ckpt.wait()  # saves of earlier (finite) steps in flight
      kept = self.ckpt.latest_step()
      raise FloatingPointError(
          f"non-finite loss {metrics['loss']} or gradient norm {metrics['grad_norm']} at step "
          f"{done}; its update was not applied and nothing after step {done - 1} was saved; "
          + (f"the last good checkpoint (step {kept}) is kept in {self.writer.workdir}/"
             "checkpoints. Rerun with a lower optim.lr (or optim.grad_clip) to resume from it"
             if kept is not None else "no checkpoint was saved before it (checkpoint.every="
             f"{self.run.config.checkpoint.every}). Rerun with a lower optim.lr (or "
             "optim.grad_clip) to start over")
          + " (docs/reliability/FAULTS.md)")
    if self.dropped is not None:
      self.dropped.update(item.dropped)
    if self.read is not None:
      self.read += item.read
    now, config = time.time(), self.run.config
    dt, self.t_last = now - self.t_last, now
    scores = evaluate() if evaluate is not None else {}
    if evaluate is not None:  # the next step's time starts after the evaluation, not before it
      self.t_last = time.time()
    if done % config.metrics.every and done != self.run.total_steps and not scores:
      return
    step_flops, tokens = self.work(item.batch)
    per_device = step_flops / dt / jax.device_count()
    row = {k: float(v) for k, v in metrics.items()}
    row.update(step=done, step_time=dt, tokens_per_s=tokens / dt,
               tflops_per_device=per_device / 1e12,
               **{k: float(v) for k, v in item.stats.items()}, **scores, **self.apart)
    if self.peak:
      row["mfu"] = per_device / self.peak
    self.writer.write(done, row)
    self.apart = {}
    log_progress(row, self.run.total_steps, self.eta(now, done), self.peak)
    self.last = row


# jax's monitoring events around its tracing, lowering and XLA compilation (or a persistent
# cache read) of a jitted call: jax._src.dispatch's JAXPR_TRACE_EVENT, JAXPR_TO_MLIR_MODULE_EVENT
# and BACKEND_COMPILE_EVENT.
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")


@contextlib.contextmanager
def _compile_spans():
  """Yields a list that fills with the (start, end) of each compile event in the block."""
  import jax

  spans = []

  def heard(event, start, end, **_):
    if event in COMPILE_EVENTS:
      spans.append((start, end))

  jax.monitoring.register_event_time_span_listener(heard)
  try:
    yield spans
  finally:
    jax.monitoring.unregister_event_time_span_listener(heard)


def _covered(spans, began: float, ended: float) -> float:
  """Seconds of [began, ended] the spans cover, each second once: a function jitted inside the
  step is traced inside the step's own trace, so their spans nest."""
  total, reached = 0.0, began
  for start, end in sorted(spans):
    start, end = max(start, reached), min(end, ended)
    if end > start:
      total, reached = total + end - start, end
  return total


def _shapes(batch: dict) -> tuple:
  """A batch's shapes, by key: what a jitted step traces and compiles for."""
  return tuple(sorted((k, tuple(v.shape)) for k, v in batch.items()))


def train_loop(run: Run, state, start: int, data_iter, ckpt, writer, callbacks=(), *,
               dropped=None, read: int | None = 0, stop=None):
  """Steps start..total; returns (state, last row, the step a SIGTERM stopped at or None, this
  process's examples read by the steps done).

  The loop never waits on the host (mathvlm/overlap.py): step k+1 is dispatched, and batch k+2
  placed, before step k's metrics are read. It waits on the devices only where a step's state is
  used: a checkpoint (every `checkpoint.every` steps and at the end), evaluators, a SIGTERM
  (`stop`). A step's state is saved only after its loss and gradient norm were found finite.
  dropped: a Counter of drop reasons (restored with the state) or None; read: the examples the
  steps before `start` read (restored with the state; None where a checkpoint does not say).
  callbacks: (step, checkpointer) after each step."""
  from mathvlm.eval import evaluators
  rows = Rows(run, writer, ckpt, start, dropped, read)
  now = {"state": state, "step": start}  # what a host step (RL rollouts) samples with
  batches = overlap.Prefetch(lambda: next_batch(run, data_iter, now), data_iter,
                             run.total_steps - start)
  pending = None
  for step in range(start, run.total_steps):
    item = batches.take()
    if pending is not None and rows.compiles(item.batch):  # a new shape (a bucket's) compiles:
      rows.finish(*pending)  # the step before is read first, else its step_time holds that
      pending = None
    with rows.compiling(item.batch):
      state, metrics = run.step_fn(state, item.batch)
    now.update(state=state, step=step + 1)
    if run.host is None:  # a host step (RL rollouts) samples with the new state: no read-ahead
      batches.fill()  # the next batch read and placed while this step runs
    if pending is not None:
      rows.finish(*pending)  # the previous step's metrics, a step late
    done, pending = step + 1, (step + 1, metrics, item)
    preempted = stop is not None and stop.requested(done)
    evaluate = None
    if evaluators.due(run.evaluators, done, run.total_steps):
      evaluate = lambda: evaluators.run_due(  # noqa: B023
          run.evaluators, lambda: model_of(run, state), done, run.total_steps, writer.workdir)
    force = preempted or done == run.total_steps
    saving = force or ckpt.should_save(done)
    if saving or evaluate:
      rows.finish(*pending, evaluate)  # checked finite before its state is used
      pending = None
    if saving:  # out of the next step's step_time; the last save, which no row follows, apart
      with rows.timed_apart("exit_checkpoint_time" if force else "checkpoint_time"):
        loop = {"dropped": dict(all_processes(dropped) or {}),  # every process's, summed
                "read": summed_over_processes(rows.read)}
        if run.host is not None:
          loop["host"] = run.host.state_dict()  # e.g. the RL curriculum
        writer.flush(done)  # its rows written out before its checkpoint can exist
        ckpt.save(done, state, overlap.SavedIteratorState(item.iterator_state), loop=loop,
                  force=force)
        if force:  # timed whole: the process waits for it on its way out anyway
          ckpt.wait()
      if force:
        rows.amend_last(done)
    for callback in callbacks:
      callback(done, ckpt)
    if preempted:
      return state, rows.last, done, rows.read
  return state, rows.last, None, rows.read


def log_progress(row: dict, total: int, eta: float, peak: float) -> None:
  log.info("step %d/%d loss %.4f lr %.2e grad_norm %.3f %.2fs/step mfu %s eta %ds%s",
           row["step"], total, row["loss"], row["lr"], row["grad_norm"], row["step_time"],
           f"{row['mfu']:.3f}" if peak else "n/a", eta,
           f" packed {row['data/examples']:.0f} examples, {row['data/nonpad_fraction']:.0%} "
           "real tokens" if "data/examples" in row else "")


# ---------------------------------------------------------------------------------------------
# Entry point.

def train(config, workdir: str | None, *, compile_only: bool = False, devices=None,
          callbacks=()) -> dict[str, Any] | None:
  """Runs (or resumes) the config's training in `workdir`; returns the last metrics row.

  devices: the devices the mesh spans (default all; tests pass a subset). callbacks: functions
  (step, checkpointer) called after each step's checkpoint (see `kill_after`). workdir,
  model.init_from, model.vision_init_from and model.language_init_from may be bucket URLs
  (gs://...).
  """
  _log_to_stdout()
  if not compile_only:
    check_reachable(workdir, "workdir")
  check_reachable(config.model.init_from, "model.init_from")
  check_reachable(config.model.vision_init_from, "model.vision_init_from")
  check_reachable(config.model.language_init_from, "model.language_init_from")
  import jax

  from mathvlm import checkpoint
  from mathvlm.eval import evaluators
  from mathvlm.metrics import MetricWriter
  from mathvlm.preemption import Preemption

  run = setup(config, devices)
  if compile_only:
    from mathvlm.compile_report import report_compiled_memory
    return report_compiled_memory(run)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  ckpt = checkpoint.Checkpointer(workdir, every=config.checkpoint.every,
                                 keep=config.checkpoint.keep, use_async=config.checkpoint.use_async)
  data_iter = iter(run.dataset)
  try:
    state, start, dropped, read = resume_or_initialise(run, ckpt, data_iter, workdir)
    if jax.process_index() == 0:
      evaluators.forget_after(workdir, start)
    writer = MetricWriter(workdir, tensorboard=config.metrics.tensorboard,
                          enabled=jax.process_index() == 0, start_step=start)
    try:
      with Preemption() as stop:
        state, row, stopped, read = train_loop(run, state, start, data_iter, ckpt, writer,
                                               callbacks, dropped=dropped, read=read, stop=stop)
    finally:
      writer.close()
  finally:
    ckpt.close()
    if hasattr(data_iter, "close"):
      data_iter.close()  # worker processes
  if stopped is not None:
    log.info("%s: saved step %d in %s/checkpoints; run the same command to continue",
             stop.name, stopped, workdir)
    return row
  report_dropped(run.source, workdir, dropped, config.data.workers,
                 with_read(run.plan, read, len(run.source)))
  export_final_model(run, state, workdir)
  log.info("done: %d steps; model in %s/model", run.total_steps, workdir)
  return row if run.total_steps > start else None


def resume_or_initialise(run: Run, ckpt, data_iter, workdir: str):
  """(state, step, drop counts): from the newest readable checkpoint, after checking that the
  config trains what the workdir was trained with (mathvlm/configs/resume.py); else the
  initial state at step 0. The config the run trains with is then recorded in the workdir."""
  import jax

  from mathvlm.configs import resume
  from mathvlm.data import pipeline
  if ckpt.latest_step() is not None:
    epochs_of = lambda steps: plan_of(run.config, len(run.source), steps)["epochs"]
    resume.check(run.config, workdir, ckpt.latest_step(), epochs_of, run.plan["epochs"],
                 run.total_steps)
  state, start, loop = ckpt.restore_latest(run.abstract_state, data_iter)
  if state is None:
    state, start = train_state.initial_state(run), 0
  else:
    start = int(state["step"])
    check_not_past_the_end(start, run.total_steps, workdir)
    log.info("resumed from step %d in %s", start, workdir)
  resume.record(run.config, workdir)
  if run.host is not None and "host" in loop:
    run.host.load_state_dict(loop["host"])
  # The saved counts are every process's summed (train_loop): one process carries them on, or
  # the next sum would count them once per process.
  counts = collections.Counter(loop.get("dropped", {}) if jax.process_index() == 0 else {})
  read = loop.get("read", 0 if start == 0 else None)  # None: saved before reads were counted
  if read is not None and jax.process_index() != 0:
    read = 0
  return state, start, counts if pipeline.DROPPED in run.source[0] else None, read


def check_not_past_the_end(start: int, total: int, workdir: str) -> None:
  """`steps` may change on resume, but not below the checkpoint: a run cannot train backwards,
  and the run would export the later step's model, and write a data report of `total` steps, as
  if it had trained `total`."""
  if start > total:
    raise ValueError(
        f"{workdir}/checkpoints holds step {start}, past this config's {total} steps (steps, or "
        f"data.epochs' worth): a run cannot go back. Set steps to {start} or more to go on from "
        "it, or train the shorter run in a new workdir")


def summed_over_processes(n: int | None) -> int | None:
  """A count every process keeps of its own rows, summed (the same on all of them)."""
  import jax
  import numpy as np
  from jax.experimental import multihost_utils
  if n is None or jax.process_count() == 1:
    return n
  return int(np.asarray(multihost_utils.process_allgather(np.int32(n))).sum())


def with_read(plan: dict, read: int | None, examples: int) -> dict:
  """The data plan with the examples the run's steps read, counted: a packed step takes a
  varying number, so there the plan's `epochs` (the passes the stream holds, at least those
  steps x global batch rows need) says nothing of how many passes it trained on; unpacked, the
  count is the plan's `trained`. `examples_read` is null where the run resumed from a
  checkpoint that did not count them."""
  read = summed_over_processes(read)
  return dict(plan, examples_read=read,
              passes_read=None if read is None else round(read / examples, 4))


def all_processes(counts):
  """Drop counts summed over the processes: each counts only the rows of its own share of every
  batch (and its own source's counters), so one process's counts are about 1/P of the run's."""
  import jax
  import numpy as np
  from jax.experimental import multihost_utils

  from mathvlm.data.records import REASONS
  if counts is None or jax.process_count() == 1:
    return counts
  local = np.asarray([counts.get(r, 0) for r in REASONS], np.int32)
  total = np.asarray(multihost_utils.process_allgather(local)).sum(0)
  return collections.Counter({r: int(n) for r, n in zip(REASONS, total) if n})


def report_dropped(source, workdir: str, counted=None, workers: int = 0,
                   plan: dict | None = None) -> None:
  """Examples the input pipeline could not use (kept as zero-loss slots), and those it trained on
  cut to data.max_len (`truncated`), by reason: logged and written to WORKDIR/data_report.json
  with the run's `data_plan`, never silent. counted: the
  reasons summed from the batches this run trained on; else the source's own counters (in this
  process only)."""
  if counted is None and workers and hasattr(source, "dropped"):
    log.warning("data.workers=%d: this source counts drops only in its own counters, which stay "
                "in the workers; give its examples a 'dropped' field to have them reported",
                workers)
  import jax

  from mathvlm.data.records import CUT_REASONS, split_counts
  dropped, truncated = split_counts(all_processes(
      (getattr(source, "dropped", None) or collections.Counter()) if counted is None else counted))
  if dropped:
    log.warning("input pipeline: %d examples trained nothing: %s", sum(dropped.values()), dropped)
  for reason, n in truncated.items():
    log.warning("input pipeline: %d examples trained cut (%s): %s", n, reason, CUT_REASONS[reason])
  if jax.process_index() != 0:  # one writer of the summed counts
    return
  with epath.Path(workdir, "data_report.json").open("w") as f:
    json.dump({"examples": len(source), **(plan or {}), "dropped": dropped,
               "truncated": truncated}, f, indent=2)


def export_final_model(run: Run, state, workdir: str) -> None:
  """`workdir/model`: the trained model with LoRA merged, loadable as `init_from` by the next stage
  and convertible to Hugging Face with `python -m mathvlm.convert --from-ckpt`."""
  from flax import nnx

  from mathvlm import checkpoint
  from mathvlm.models.lora import merge_lora
  model = model_of(run, state)
  merge_lora(model)
  checkpoint.export_model(model, run.cfg, os.path.join(workdir, "model"),
                          tokenizer=run.config.data.get("tokenizer", ""),
                          inputs=checkpoint.inputs_of(run.config))


def _log_to_stdout() -> None:
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax and grain log every file at INFO
  if not log.handlers:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def setup_processes() -> None:
  import jax

  from mathvlm import runtime
  if FLAGS.compile_only and FLAGS.fake_devices:
    runtime.use_fake_cpu_devices(FLAGS.fake_devices)
  if FLAGS.num_processes > 1:
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(FLAGS.coordinator, num_processes=FLAGS.num_processes,
                               process_id=FLAGS.process_id)
  elif FLAGS.distributed:
    jax.distributed.initialize()


def main(argv) -> None:
  del argv
  if not FLAGS.workdir and not FLAGS.compile_only:
    raise app.UsageError("--workdir is required")
  from mathvlm import runtime
  runtime.configure()  # per-platform settings, before the backend starts (mathvlm/runtime.py)
  setup_processes()
  callbacks = [kill_after(FLAGS.preempt_after_step)] if FLAGS.preempt_after_step else []
  train(FLAGS.config, FLAGS.workdir, compile_only=FLAGS.compile_only, callbacks=callbacks)


def run_main(argv=None) -> None:
  """`python -m mathvlm.train`: shipped recipes resolved, then absl parses the flags."""
  from mathvlm import configs
  argv = list(sys.argv if argv is None else argv)
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      argv[i] = "--config=" + configs.resolve(a[len("--config="):])
    elif a == "--config" and i + 1 < len(argv):
      argv[i + 1] = configs.resolve(argv[i + 1])
  flags.mark_flag_as_required("config")
  app.run(main, argv=argv)


if __name__ == "__main__":
  run_main()
