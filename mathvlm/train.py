"""One trainer for every stage: the config picks the objective, the model, what trains and the mesh.

  python -m mathvlm.train --config configs/sft.py:model=tiny --workdir /tmp/run
  python -m mathvlm.train --config configs/sft.py:model=llava-1.5-13b --compile_only --fake_devices 8

Read top to bottom: flags -> config checks -> mesh -> model and what trains -> optimizer -> state
(resumed, initialised from a checkpoint, or random) -> data -> the jitted step -> the loop (metrics,
checkpoints). The step is a pure function of (state, batch), compiled once with explicit in/out
shardings and the state donated.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import re
import signal
import sys
import time
from typing import Any

from absl import app, flags
from etils import epath
from ml_collections import config_flags

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
# Model: build from preset, optional init, LoRA, and the trainable / frozen split.

def runtime(config) -> dict[str, str]:
  return dict(dtype=config.model.dtype, param_dtype=config.model.param_dtype,
              remat=config.model.remat)


def model_config(config):
  """The preset's architecture, or, with model.init_from, the checkpoint's (the preset is then
  only a name); dtypes and remat always come from the config."""
  from configs import models as presets
  from configs.common import FAMILY
  family = FAMILY[config.objective]
  if config.model.init_from:
    cfg = pretrained_config(config.model.init_from, config)
  else:
    cfg = presets.get(config.model.preset, family, **runtime(config))
    if family == "classifier":
      from mathvlm.models.classifier import ClassifierConfig
      cfg = ClassifierConfig(vision=cfg, num_classes=config.data.num_classes)
  if not _fits_family(cfg, family):
    raise ValueError(f"model.init_from={config.model.init_from!r} holds a "
                     f"{type(cfg).__name__}, but objective {config.objective!r} trains a "
                     f"{family} model")
  return cfg


def _fits_family(cfg, family: str) -> bool:
  return {"llava": "LlavaConfig", "clip": "CLIPConfig",
          "classifier": "ClassifierConfig"}[family] == type(cfg).__name__


def _model_dir(path: str) -> str:
  """A trainer workdir stands for the model it exported."""
  return os.path.join(path, "model") if epath.Path(path, "model").is_dir() else path


def pretrained_config(path: str, config):
  from mathvlm import convert
  from mathvlm.models.layers import with_runtime
  path = _model_dir(path)
  meta = convert.read_json(os.path.join(path, "config.json"))
  if meta.get("format") == "mathvlm":
    cls = convert.CHECKPOINT_CLASSES[meta["kind"]][1]
    return with_runtime(convert.config_from_dict(cls, meta["config"]), **runtime(config))
  clip = None
  if config.model.clip_dir:
    clip = convert.read_json(os.path.join(config.model.clip_dir, "config.json"))
  return convert.config_from_hf(convert.detect_kind(meta), meta, clip, **runtime(config))


def model_class(cfg):
  from mathvlm.models.classifier import ClassifierConfig, ImageClassifier
  from mathvlm.models.clip_text import CLIP, CLIPConfig
  from mathvlm.models.vlm import Llava, LlavaConfig
  return {LlavaConfig: Llava, CLIPConfig: CLIP, ClassifierConfig: ImageClassifier}[type(cfg)]


def load_pretrained(path: str, config, sharding_fn):
  """A model from a trainer workdir (its exported `model/`), a mathvlm checkpoint or an HF folder."""
  from mathvlm import convert
  path = _model_dir(path)
  if convert.read_json(os.path.join(path, "config.json")).get("format") == "mathvlm":
    return convert.load_checkpoint(path, sharding=sharding_fn, **runtime(config))[0]
  return convert.load_hf(path, config.model.param_dtype, compute_dtype=config.model.dtype,
                         clip_dir=config.model.clip_dir or None, sharding=sharding_fn,
                         remat=config.model.remat)[0]


def trainable_paths(paths: list[str], rules) -> set[str]:
  """First matching (regex, decision) rule wins; a parameter no rule covers is an error."""
  out, uncovered = set(), []
  for p in paths:
    for regex, decision in rules:
      if re.fullmatch(regex, p):
        if decision == "trainable":
          out.add(p)
        break
    else:
      uncovered.append(p)
  if uncovered:
    raise ValueError(f"train_rules cover no rule for {len(uncovered)} parameters, e.g. "
                     f"{uncovered[:3]}: end the rules with ('.*', 'frozen') or ('.*', 'trainable')")
  return out


# ---------------------------------------------------------------------------------------------
# Optimizer.

def make_optimizer(config, total_steps: int):
  import optax
  o = config.optim
  warmup = int(round(o.warmup_ratio * total_steps))
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
  tx = optax.chain(optax.clip_by_global_norm(o.grad_clip),
                   optax.adamw(schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay))
  return tx, schedule


# ---------------------------------------------------------------------------------------------
# The step.

def pairs_to_rows(batch: dict) -> dict:
  """DPO data comes as [pairs, 2, ...]; the objective wants chosen rows then rejected rows."""
  return {k: v.swapaxes(0, 1).reshape((-1,) + v.shape[2:]) for k, v in batch.items()}


def make_train_step(config, graphdef, objective, tx, schedule):
  import jax
  import jax.numpy as jnp
  import optax
  from flax import nnx

  from mathvlm.data.image import normalize
  from mathvlm.objectives.lm import batch_logps

  accum = config.optim.grad_accum
  dpo_ref = config.objective == "dpo" and config.dpo.reference == "init"

  def loss_fn(params, frozen, batch):
    model = nnx.merge(graphdef, params, frozen)
    if config.objective == "dpo":
      batch = pairs_to_rows(batch)
    loss, weight, metrics = objective.loss(model, batch, config)
    return loss * weight, (weight, metrics)

  def train_step(state, batch):
    if "pixel_values" in batch and batch["pixel_values"].dtype == jnp.uint8:
      batch = dict(batch, pixel_values=normalize(batch["pixel_values"], jnp))  # on device
    if dpo_ref:  # the frozen starting model's log-probs, outside the differentiated function
      ref = nnx.merge(graphdef, state["ref_params"], state["frozen"])
      rows = jax.lax.stop_gradient(batch_logps(ref, pairs_to_rows(batch)))  # as the policy's
      batch = dict(batch, ref_logps=rows.reshape(2, -1).T)  # back to [pairs, 2]
    micro = jax.tree.map(lambda x: x.reshape((accum, x.shape[0] // accum) + x.shape[1:]), batch)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def accumulate(carry, mb):
      (lw, (w, metrics)), grads = grad_fn(state["params"], state["frozen"], mb)
      weighted = jax.tree.map(lambda m: m * w, metrics)
      return jax.tree.map(jnp.add, carry, (lw, w, weighted, grads)), None

    (_, (_, metric_shapes)), _ = jax.eval_shape(
        grad_fn, state["params"], state["frozen"], jax.tree.map(lambda x: x[0], micro))
    zeros = (jnp.float32(0), jnp.float32(0),
             jax.tree.map(lambda m: jnp.zeros(m.shape, jnp.float32), metric_shapes),
             jax.tree.map(jnp.zeros_like, state["params"]))
    (lw, w, metrics, grads), _ = jax.lax.scan(accumulate, zeros, micro)
    w = jnp.maximum(w, 1e-9)
    grads = jax.tree.map(lambda g: g / w, grads)
    metrics = {k: v / w for k, v in metrics.items()}
    if config.objective == "lm":
      metrics["tokens"] = w  # the weight is the global target-token count
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics.update(loss=lw / w, grad_norm=optax.global_norm(grads),
                   lr=schedule(state["step"]))
    new_state = dict(state, params=params, opt_state=opt_state, step=state["step"] + 1)
    return new_state, metrics

  return train_step


# ---------------------------------------------------------------------------------------------
# Entry point.

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
  if FLAGS.compile_only and FLAGS.fake_devices:
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", FLAGS.fake_devices)
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
  setup_processes()
  train(FLAGS.config, FLAGS.workdir, compile_only=FLAGS.compile_only,
        preempt_after_step=FLAGS.preempt_after_step)


def train(config, workdir: str | None, *, compile_only: bool = False, devices=None,
          preempt_after_step: int = 0) -> dict[str, Any] | None:
  """Runs (or resumes) the config's training in `workdir`; returns the last metrics row.

  devices: the devices the mesh spans (default all; tests pass a subset). preempt_after_step: kill
  this process with SIGKILL once that step's checkpoint is on disk (to test preemption).
  workdir, model.init_from and model.vision_init_from may be bucket URLs (gs://...).
  """
  _log_to_stdout()
  if not compile_only:
    check_reachable(workdir, "workdir")
  check_reachable(config.model.init_from, "model.init_from")
  check_reachable(config.model.vision_init_from, "model.vision_init_from")
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from flax import nnx

  from configs.common import validate
  from mathvlm import checkpoint, flops, objectives, sharding
  from jax.experimental import multihost_utils

  from mathvlm.data import pipeline
  from mathvlm.data.pipeline import make_dataset
  from mathvlm.data.sources import make_source
  from mathvlm.metrics import MetricWriter
  from mathvlm.models.layers import path_str as _path
  from mathvlm.models.lora import add_lora

  devices = list(devices or jax.devices())
  validate(config, jax.process_count(), len(devices))
  objective = objectives.get(config.objective)
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor, devices)
  rules = tuple(tuple(r) for r in config.logical_axis_rules)
  sharding_fn = sharding.param_sharding(mesh, rules)
  cfg = model_config(config)
  model_cls = model_class(cfg)

  # --- model, LoRA and what trains -----------------------------------------------------------
  def build(init: bool):
    if init and config.model.init_from:
      model = load_pretrained(config.model.init_from, config, sharding_fn)
    else:
      model = model_cls(cfg, rngs=nnx.Rngs(config.seed))
    if init and config.model.vision_init_from:
      load_vision_tower(model, config.model.vision_init_from, config, sharding_fn)
    if config.lora.rank:
      add_lora(model, config.lora.targets, config.lora.rank, config.lora.alpha, config.seed)
    return model

  abstract = nnx.eval_shape(lambda: build(False))
  paths = [_path(p) for p, _ in nnx.to_flat_state(nnx.state(abstract, nnx.Param))]
  train_set = trainable_paths(paths, config.train_rules)
  is_trainable = lambda path, x: isinstance(x, nnx.Param) and _path(path) in train_set
  graphdef, abs_params, abs_frozen = nnx.split(abstract, is_trainable, ...)
  n_train = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abs_params))
  n_all = n_train + sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abs_frozen))
  log.info("model %s (%s): %s parameters, %s trainable", config.model.preset,
           type(cfg).__name__, f"{n_all:,}", f"{n_train:,}")

  # --- data ----------------------------------------------------------------------------------
  source = make_source(config.data, config.objective, cfg, config.seed)
  total_steps = (config.steps if config.steps > 0 else
                 len(source) * config.data.epochs // config.data.global_batch)
  dataset = make_dataset(source, global_batch=config.data.global_batch, seed=config.seed,
                         epochs=max(config.data.epochs, -(-total_steps * config.data.global_batch
                                                           // len(source))),
                         process_index=jax.process_index(), process_count=jax.process_count(),
                         lengths=getattr(source, "lengths", None), augment=config.data.augment,
                         workers=config.data.workers, packing=config.data.packing,
                         image_token_id=getattr(cfg, "image_token_id", -1))
  # Drop reasons come in each example (counters would stay behind in worker processes).
  first = source[0]
  dropped = collections.Counter() if pipeline.DROPPED in first else None
  if dropped is None and config.data.workers and hasattr(source, "dropped"):
    log.warning("data.workers=%d: this source counts drops only in its own counters, which stay "
                "in the workers; give its examples a %r field to have them reported",
                config.data.workers, pipeline.DROPPED)
  example = pipeline.trained_example(first, config.data.packing)
  objective.check_batch(dict(example, **({"ref_logps": None} if config.objective == "dpo"
                                         and config.dpo.reference == "init" else {})))
  batch_shapes = {k: (config.data.global_batch,) + np.shape(v) for k, v in example.items()}

  # --- optimizer, state shardings, the step ---------------------------------------------------
  tx, schedule = make_optimizer(config, total_steps)
  param_sh = sharding.state_shardings(abs_params, mesh, rules)
  frozen_sh = sharding.state_shardings(abs_frozen, mesh, rules)
  abs_opt = jax.eval_shape(tx.init, abs_params)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  opt_sh = optax.tree_map_params(tx, lambda _, s: s, abs_opt, param_sh,
                                 transform_non_params=lambda _: replicated)
  state_sh = dict(params=param_sh, frozen=frozen_sh, opt_state=opt_sh, step=replicated)
  if config.objective == "dpo" and config.dpo.reference == "init":
    state_sh["ref_params"] = param_sh
  batch_sh = {k: sharding.batch_sharding(mesh) for k in batch_shapes}
  step_fn = jax.jit(make_train_step(config, graphdef, objective, tx, schedule),
                    in_shardings=(state_sh, batch_sh), out_shardings=(state_sh, None),
                    donate_argnums=(0,))

  # The state's shapes, dtypes and shardings: what --compile_only lowers and a resume restores.
  abstract_state = dict(params=abs_params, frozen=abs_frozen, opt_state=abs_opt,
                        step=jax.ShapeDtypeStruct((), jnp.int32))
  if "ref_params" in state_sh:
    abstract_state["ref_params"] = abs_params
  abstract_state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                abstract_state, state_sh)

  if compile_only:
    abstract_batch = {k: jax.ShapeDtypeStruct(v, np.asarray(example[k]).dtype,
                                              sharding=batch_sh[k])
                      for k, v in batch_shapes.items()}
    return report_compiled_memory(step_fn, abstract_state, abstract_batch, mesh, config, n_all,
                                  n_train)

  # --- state: resume, or initialise -----------------------------------------------------------
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  ckpt = checkpoint.Checkpointer(workdir, every=config.checkpoint.every,
                                 keep=config.checkpoint.keep,
                                 use_async=config.checkpoint.use_async)
  data_iter = iter(dataset)

  def random_init():  # under jit with out_shardings: each device creates only its shards
    _, p, f = nnx.split(build(False), is_trainable, ...)
    return p, f

  resume = ckpt.latest_step()
  if resume is None:
    if config.model.init_from or config.model.vision_init_from:
      _, params, frozen = nnx.split(build(True), is_trainable, ...)
      params, frozen = jax.device_put(params, param_sh), jax.device_put(frozen, frozen_sh)
    else:
      params, frozen = jax.jit(random_init, out_shardings=(param_sh, frozen_sh))()
    opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
    state = dict(params=params, frozen=frozen, opt_state=opt_state,
                 step=jax.device_put(jnp.int32(0), replicated))
    if "ref_params" in state_sh:
      state["ref_params"] = jax.tree.map(jnp.copy, params)
    start = 0
  else:
    state = ckpt.restore(resume, abstract_state, data_iter)
    start = int(state["step"])
    log.info("resumed from step %d in %s", start, workdir)

  # --- the loop -------------------------------------------------------------------------------
  step_flops = flops.step_flops(config.objective, cfg, batch_shapes, sorted(train_set))
  peak = flops.peak_flops(jax.devices()[0], config.model.dtype, config.metrics.peak_flops)
  writer = MetricWriter(workdir, tensorboard=config.metrics.tensorboard,
                        enabled=jax.process_index() == 0)
  tokens_per_step = int(np.prod(batch_shapes.get("input_ids", (config.data.global_batch,))))
  t_start, t_last = time.time(), time.time()
  for step in range(start, total_steps):
    local = next(data_iter)
    if dropped is not None:
      local = pipeline.pop_dropped(local, dropped)
    if config.data.buckets and "attention_mask" in local:  # pad to a bucket, not to max_len
      length = pipeline.local_bucket(local, config.data.buckets)
      if jax.process_count() > 1:
        length = int(np.max(multihost_utils.process_allgather(np.int32(length))))
      local = pipeline.trim_to(local, length)
    data_stats = pipeline.batch_stats(local)  # this process's rows
    batch = sharding.global_batch(local, mesh)
    state, metrics = step_fn(state, batch)
    metrics = jax.device_get(metrics)
    if not np.isfinite(metrics["loss"]):
      ckpt.close()
      raise FloatingPointError(
          f"non-finite loss {metrics['loss']} at step {step + 1}; the last good checkpoint "
          f"(step {ckpt.latest_step()}) is kept in {workdir}/checkpoints")
    done = step + 1
    now = time.time()
    dt = now - t_last
    t_last = now
    if done % config.metrics.every == 0 or done == total_steps:
      per_device = step_flops / dt / jax.device_count()
      row = {k: float(v) for k, v in metrics.items()}
      row.update(step=done, step_time=dt, tokens_per_s=tokens_per_step / dt,
                 tflops_per_device=per_device / 1e12, **data_stats)
      if peak:
        row["mfu"] = per_device / peak
      writer.write(done, row)
      eta = (now - t_start) / (done - start) * (total_steps - done)
      log.info("step %d/%d loss %.4f lr %.2e grad_norm %.3f %.2fs/step mfu %s eta %ds%s", done,
               total_steps, row["loss"], row["lr"], row["grad_norm"], dt,
               f"{row['mfu']:.3f}" if peak else "n/a", eta,
               f" packed {row['data/examples']:.0f} examples, {row['data/nonpad_fraction']:.0%} "
               "real tokens" if "data/examples" in row else "")
    ckpt.save(done, state, data_iter, force=done == total_steps)
    if done == preempt_after_step:
      ckpt.manager.wait_until_finished()
      os.kill(os.getpid(), signal.SIGKILL)
  ckpt.close()
  writer.close()
  if hasattr(data_iter, "close"):
    data_iter.close()  # worker processes
  report_dropped(source, workdir, dropped)
  export_final_model(graphdef, state, workdir, cfg)
  log.info("done: %d steps; model in %s/model", total_steps, workdir)
  return row if total_steps > start else None


def report_dropped(source, workdir: str, counted=None) -> None:
  """Examples the input pipeline could not use (kept as zero-loss slots), by reason: logged and
  written to WORKDIR/data_report.json, never silent. counted: the reasons summed from the batches
  this run trained on; else the source's own counters (in this process only)."""
  dropped = dict((getattr(source, "dropped", None) or {}) if counted is None else counted)
  if dropped:
    log.warning("input pipeline: %d examples trained nothing: %s", sum(dropped.values()), dropped)
  with epath.Path(workdir, "data_report.json").open("w") as f:
    json.dump({"examples": len(source), "dropped": dropped}, f, indent=2)


def load_vision_tower(model, path: str, config, sharding_fn) -> None:
  """LLaVA's vision tower from a CLIP-Math stage (its CLIP model), a CLIP or LLaVA checkpoint."""
  from flax import nnx
  from mathvlm.models.clip_text import CLIP
  from mathvlm.models.vit import CLIPVisionTransformer
  from mathvlm.models.vlm import Llava
  source = load_pretrained(path, config, sharding_fn)
  tower = {CLIP: lambda m: m.vision_model, Llava: lambda m: m.vision_tower,
           CLIPVisionTransformer: lambda m: m}.get(type(source))
  if tower is None:
    raise ValueError(f"model.vision_init_from={path!r} holds a {type(source).__name__}, not a "
                     "CLIP, CLIP vision or LLaVA model")
  src, dst = tower(source), model.vision_tower
  if src.cfg.hidden_size != dst.cfg.hidden_size or src.cfg.num_layers != dst.cfg.num_layers:
    raise ValueError(f"model.vision_init_from={path!r}: its vision tower ({src.cfg.hidden_size} "
                     f"wide, {src.cfg.num_layers} layers) does not fit the preset's "
                     f"({dst.cfg.hidden_size}, {dst.cfg.num_layers})")
  nnx.update(dst, nnx.state(src, nnx.Param))


def export_final_model(graphdef, state, workdir: str, cfg) -> None:
  """`workdir/model`: the trained model with LoRA merged, loadable as `init_from` by the next stage
  and convertible to Hugging Face with `python -m mathvlm.convert --from-ckpt`."""
  from flax import nnx
  from mathvlm import convert
  from mathvlm.models.lora import merge_lora
  model = nnx.merge(graphdef, state["params"], state["frozen"])
  merge_lora(model)
  convert.save_checkpoint(model, cfg, os.path.join(workdir, "model"))


def report_compiled_memory(step_fn, abstract_state, abstract_batch, mesh, config, n_all, n_train):
  import jax
  t = time.time()
  compiled = step_fn.lower(abstract_state, abstract_batch).compile()
  mem = compiled.memory_analysis()
  gib = lambda b: round(b / 2 ** 30, 3)
  report = dict(
      preset=config.model.preset, objective=config.objective, devices=jax.device_count(),
      mesh=dict(mesh.shape), parameters=n_all, trainable=n_train,
      global_batch=config.data.global_batch, compile_seconds=round(time.time() - t, 1))
  if mem is not None:
    total = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
             - mem.alias_size_in_bytes)
    report["per_device_gib"] = dict(
        arguments=gib(mem.argument_size_in_bytes), outputs=gib(mem.output_size_in_bytes),
        temporaries=gib(mem.temp_size_in_bytes), aliased=gib(mem.alias_size_in_bytes),
        total=gib(total))
  print(json.dumps(report, indent=2))
  return report


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
