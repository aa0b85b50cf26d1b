"""Checkpoints in our own format, orbax throughout.

- `Checkpointer`: a training run's state (parameters, optimizer, step, objective state) and the
  grain iterator state side by side in one CheckpointManager (async, keeps the last N, atomic). A
  run restarted with the same workdir resumes from the latest step and continues with the same
  next batch.
- `save_model` / `load_model`: a model alone (what a run exports to `WORKDIR/model`, what
  `python -m mathvlm.convert --to` writes): its parameters plus `config.json` naming its family in
  `mathvlm.models.registry` and the config that rebuilds it. Hugging Face folders are `mathvlm.hf`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import time
import typing
from typing import Any, Callable

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from mathvlm import paths
from mathvlm.data.image import ASPECTS
from mathvlm.data.templates import TEMPLATES
from mathvlm.models import registry
from mathvlm.models.layers import path_parts, with_runtime

log = logging.getLogger("mathvlm.train")


class CheckpointError(ValueError):
  """A checkpoint that does not fit the model: the message names the key and the fix."""


@contextlib.contextmanager
def config_errors(path):
  """Reading a model config from the file `path`: a field the config refuses (a ValueError
  naming it) or lacks (a KeyError), a missing or damaged file, are bad input: a CheckpointError
  naming the file, which the commands print without a traceback (`mathvlm.convert`)."""
  try:
    yield
  except FileNotFoundError as e:  # paths.read_json's names the file and what it is for
    raise CheckpointError(str(e)) from None
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path} is not JSON ({e}): download or copy it again") from e
  except KeyError as e:
    raise CheckpointError(f"{path}: no field {e.args[0]!r}, which this model's config needs: "
                          "download or copy the file again") from e
  except ValueError as e:
    raise CheckpointError(f"{path}: {e}") from e


class Checkpointer:
  """A run's checkpoints under WORKDIR/checkpoints: per step, the train state, the data
  iterator's state after that step's batch, and the loop's own counters (JSON)."""

  def __init__(self, workdir: str, *, every: int, keep: int, use_async: bool = True):
    self.every = every
    self.root = paths.absolute(workdir) / "checkpoints"
    self.manager = ocp.CheckpointManager(
        self.root,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, save_decision_policy=saves(every),
                                             enable_async_checkpointing=use_async, create=True,
                                             cleanup_tmp_directories=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def should_save(self, step: int) -> bool:
    return self.manager.should_save(step)

  def save(self, step: int, state, data_iter, *, force: bool = False,
           loop: dict | None = None) -> bool:
    """data_iter: the iterator, or anything with its `get_state()` (`overlap.SavedIteratorState`).
    loop: JSON the loop restores with the state (its drop counts)."""
    items = dict(state=ocp.args.StandardSave(state),
                 data=grain.checkpoint.CheckpointSave(data_iter))
    if loop is not None:
      items["loop"] = ocp.args.JsonSave(loop)
    return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

  def restore(self, step: int, abstract_state, data_iter, with_loop: bool = False):
    """abstract_state: ShapeDtypeStructs carrying the target shardings. with_loop: also return
    the loop's JSON ({} for a step saved without it, see `has_loop`)."""
    items = dict(state=ocp.args.StandardRestore(abstract_state),
                 data=grain.checkpoint.CheckpointRestore(data_iter))
    has_loop = with_loop and self.has_loop(step)
    if has_loop:
      items["loop"] = ocp.args.JsonRestore()
    out = self.manager.restore(step, args=ocp.args.Composite(**items))
    if not with_loop:
      return out.state
    return out.state, (dict(out.loop) if has_loop else {})

  def has_loop(self, step: int) -> bool:
    """Whether the step holds the loop's JSON (its drop counts, the objective's host state such
    as GRPO's curriculum). The trainer saves it with every step since 2026-11-30 (d188062); a
    step whose orbax metadata lists no `loop` item was saved before that, by a trainer that had
    none to save, and restores without it (a warning: the drop counts restart from zero). Any
    other step without the folder (copied partially, a failed upload) is a CheckpointError,
    which `restore_latest` handles as any unreadable step."""
    folder = self.root / str(step)
    if (folder / "loop").exists():
      return True
    saved = saved_items(folder)
    if saved is not None and "loop" not in saved:
      log.warning("checkpoint step %s was saved without the loop's state (by a trainer from "
                  "before 2026-11-30, which kept none): its drop counts restart from zero",
                  folder)
      return False
    raise CheckpointError(
        f"{folder}: no `loop` folder (the drop counts, GRPO's curriculum), "
        + ("which its metadata lists as saved" if saved is not None else
           f"and no {STEP_METADATA} to say it was never saved")
        + ": copied partially, or a failed upload. Copy the whole step again, or remove it to "
        "resume from the step before")

  def restore_latest(self, abstract_state, data_iter):
    """(state, step, loop JSON) of the newest step that reads back whole, or (None, None, {})
    when there is none. A newer step that cannot be read (truncated or partly deleted files) is
    logged, moved aside to WORKDIR/checkpoints_unreadable/ (kept for a look, and out of the way
    of the step's next save) and the previous step is tried; when no step reads, the error names
    each step and why, and nothing is moved."""
    steps = sorted(self.manager.all_steps(), reverse=True)
    failures = []
    for step in steps:
      self.check_process_count(step)
      why = "another process could not read it"
      try:
        state, loop = self.restore(step, abstract_state, data_iter, with_loop=True)
        ok = True
      except Exception as e:  # noqa: BLE001  (orbax, tensorstore and grain raise many kinds)
        ok, why = False, f"{type(e).__name__}: {str(e)[:300]}"
      if not _agree(ok):
        failures.append((step, why))
        continue
      for bad, why in failures:
        self._set_aside(bad, why, step)
      return state, step, loop
    if failures:
      raise CheckpointError(
          f"no checkpoint in {self.root} can be read; each step and why:\n  "
          + "\n  ".join(f"step {s}: {why}" for s, why in failures)
          + "\nNothing was moved or deleted. Restore the files from a copy, or move the "
          "checkpoints folder away to start over.")
    return None, None, {}

  def check_process_count(self, step: int) -> None:
    """Each process saves its own position in the data (its rows of every batch, its packing),
    so a step saved by another number of processes has no position for this run's: grain then
    reports a missing file, taken for an unreadable step, and the error said to restore the files
    or start over, which would throw away the training."""
    saved = saved_process_count(self.root / str(step))
    if saved is not None and saved != jax.process_count():
      raise CheckpointError(
          f"checkpoint step {step} in {self.root} was saved by {saved} processes (one data "
          f"position each, data/process_<i>-of-{saved}.json) and this run has "
          f"{jax.process_count()}: each process resumes from its own position in the data. "
          f"Resume on {saved} processes (hosts); nothing was moved")

  def _set_aside(self, step: int, why: str, fallback: int) -> None:
    dest = self.root.parent / "checkpoints_unreadable" / f"{step}-{int(time.time())}"
    log.warning("checkpoint step %d in %s cannot be read (%s): moved to %s; resuming from step "
                "%d", step, self.root, why, dest, fallback)
    if jax.process_index() == 0:
      dest.parent.mkdir(parents=True, exist_ok=True)
      (self.root / str(step)).rename(dest)
    _barrier("checkpoint_set_aside")
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def saves(every: int):
  """Every `every` steps, and at a preemption the processes agreed on: orbax's default policy
  without its InitialSavePolicy, which saved step 1 of every fresh run whatever `every` was (a
  whole extra checkpoint: a 7B model's parameters and Adam moments)."""
  policies = ocp.checkpoint_managers
  return policies.AnySavePolicy([policies.FixedIntervalPolicy(every),
                                 policies.PreemptionCheckpointingPolicy()])


STEP_METADATA = "_CHECKPOINT_METADATA"  # orbax's per-step file: the items the step was saved with


def saved_items(folder) -> set[str] | None:
  """The item names orbax recorded for a step folder when it saved it, or None when its metadata
  file is missing or unreadable. orbax's own `metadata(step)` lists the item folders present
  instead of what was saved, so it cannot tell a missing item from one never saved."""
  try:
    return set(json.loads((folder / STEP_METADATA).read_text())["item_handlers"])
  except (OSError, ValueError, KeyError, TypeError):
    return None


def saved_process_count(folder) -> int | None:
  """How many processes saved a step's data positions (grain writes one
  `process_<i>-of-<n>.json` per process), or None when its data folder holds none."""
  data = folder / "data"
  names = [f.name for f in data.iterdir()] if data.is_dir() else []
  counts = {int(m.group(1)) for m in map(re.compile(r"process_\d+-of-(\d+)\.json$").match, names)
            if m}
  return max(counts) if counts else None


def _agree(ok: bool) -> bool:
  """Whether every process could read (one small all-gather when there are several)."""
  if jax.process_count() == 1:
    return ok
  from jax.experimental import multihost_utils
  return bool(multihost_utils.process_allgather(np.int32(ok)).min())


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def abstract_like(tree):
  """ShapeDtypeStructs (with shardings) of a pytree of arrays, as a restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


# ---------------------------------------------------------------------------------------------
# A model alone: parameters + the config that rebuilds it.

def single_device(path, names, shape):
  """The default placement of a loaded parameter: the first device."""
  del path, names, shape
  return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def config_to_dict(cfg) -> dict[str, Any]:
  return dataclasses.asdict(cfg)


def _tupled(x):
  return tuple(_tupled(v) for v in x) if isinstance(x, list) else x


def config_from_dict(cls, d: dict[str, Any]):
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for field in dataclasses.fields(cls):
    if field.name not in d:
      continue
    value, hint = d[field.name], hints[field.name]
    if dataclasses.is_dataclass(hint):
      value = config_from_dict(hint, value)
    kwargs[field.name] = _tupled(value)
  unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
  if unknown:
    raise CheckpointError(f"unknown {cls.__name__} fields in checkpoint config: {sorted(unknown)}")
  return cls(**kwargs)


def model_dir(path: str) -> str:
  """A trainer workdir stands for the model it exported (`WORKDIR/model`)."""
  return os.path.join(path, "model") if paths.absolute(path).joinpath("model").is_dir() else path


def is_model_dir(path) -> bool:
  """Whether `path` holds a model saved by `save_model` (rather than a Hugging Face folder)."""
  config = paths.absolute(path) / "config.json"
  return config.exists() and paths.read_json(config).get("format") == "mathvlm"


def read_model_config(ckpt_dir, **runtime):
  """The family and the config (with runtime overrides) of a `save_model` folder."""
  ckpt_dir = paths.absolute(ckpt_dir)
  path = ckpt_dir / "config.json"
  with config_errors(path):
    meta = paths.read_json(path, "a mathvlm model folder has a config.json")
  if meta.get("format") != "mathvlm":
    raise CheckpointError(f"{path} is not a mathvlm checkpoint config (a Hugging Face folder? "
                          "use mathvlm.hf.load_hf / --from-hf)")
  with config_errors(path):
    family = registry.get(meta["kind"])
    cfg = config_from_dict(family.config_cls, meta["config"])
  return family, with_runtime(cfg, **runtime)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model")


def copy_tokenizer(source: str, dest) -> list[str]:
  """Copies the tokenizer a model was trained or converted with into its folder, as Hugging Face's
  save_pretrained keeps the two together: `eval.run --ckpt` and `augment --backend local --ckpt`
  read `CKPT/tokenizer.json` and otherwise need --tokenizer. `source`: a tokenizer.json, or a
  folder with any of TOKENIZER_FILES. A Hub repo id (nothing on disk) copies nothing and says so.
  Returns the names copied."""
  if not source:
    return []
  src, dest = paths.absolute(source), paths.absolute(dest)
  if src.is_file():
    pairs = [(src, "tokenizer.json" if src.suffix == ".json" else src.name)]
  else:
    pairs = [(src / n, n) for n in TOKENIZER_FILES] if src.is_dir() else []
    pairs = [(f, n) for f, n in pairs if f.exists()]
  if not pairs:
    log.info("no tokenizer file at %s (a Hub id?): %s gets none; pass --tokenizer to eval.run",
             source, dest)
    return []
  dest.mkdir(parents=True, exist_ok=True)
  for f, name in pairs:
    (dest / name).write_bytes(f.read_bytes())
  return [name for _, name in pairs]


# How a model's inputs were made, which its weights do not say: the chat template its prompts
# were written in and how its images were shaped (a run's data.template, data.image_aspect). A
# model fed otherwise answers worse without a word, so a trained model's folder records them and
# the commands that feed it (`eval.run`, `data_prep.score`, `augment --backend local`) follow
# the record unless told otherwise (`input_setting`).
INPUT_FIELDS = ("template", "image_aspect")
# data.image_aspect as LLaVA's image_aspect_ratio (an original-layout config.json): 'pad' pads to
# a square; LLaVA gives any other value CLIP's processor (resize the shortest side, centre crop).
LLAVA_ASPECT = {"pad": "pad", "crop": "square"}


def inputs_of(config) -> dict[str, str]:
  """What a run's model folder records of its inputs (INPUT_FIELDS of `config.data`)."""
  return {k: str(config.data[k]) for k in INPUT_FIELDS if k in config.data}


def recorded_inputs(path) -> dict[str, str]:
  """How the model at `path` (a `save_model` folder or a trainer workdir) was fed, as far as its
  folder says: the `inputs` a trainer's export wrote; for a LLaVA converted from the original
  layout without them, its image_aspect_ratio. {} for a folder that says nothing (a model
  converted from llava-hf, or exported before the record existed). A value no command knows (a
  hand edit) is an error naming the file."""
  config = paths.absolute(model_dir(str(path))) / "config.json"
  if not config.exists():
    return {}
  with config_errors(config):
    meta = paths.read_json(config)
  carried = dict(meta.get("config", {}).get("hf_fields") or ())
  aspect = json.loads(carried["image_aspect_ratio"]) if "image_aspect_ratio" in carried else None
  inputs = meta.get("inputs") or (
      {"image_aspect": "pad" if aspect == "pad" else "crop"} if aspect else {})
  for name, known in (("template", TEMPLATES), ("image_aspect", ASPECTS)):
    if name in inputs and inputs[name] not in known:
      raise CheckpointError(f"{config}: inputs.{name}={inputs[name]!r} is not one of "
                            f"{', '.join(known)}: correct it to how the model was trained")
  return dict(inputs)


def input_setting(name: str, given: str | None, recorded: dict[str, str], default: str,
                  model: str) -> str:
  """A command's `name` setting for the model at `model`: the flag where given (a warning where
  the model's folder records another: a deliberate mismatch is allowed, an accidental one is
  named), else the folder's record, else `default` (LLaVA-1.5's)."""
  kept = recorded.get(name)
  if given is None:
    if kept is not None:
      log.info("%s: %s=%s, as the model was trained (its config.json)", model, name, kept)
    return default if kept is None else kept
  if kept is not None and kept != given:
    log.warning("%s was trained with %s=%s; --%s %s feeds it otherwise", model, name, kept,
                name, given)
  return given


def save_model(model: nnx.Module, cfg, ckpt_dir: str, tokenizer: str = "",
               inputs: dict[str, str] | None = None) -> None:
  """The parameters (orbax), the tokenizer if given (`copy_tokenizer`), then config.json, with
  `inputs` (`inputs_of`: how a trained model's inputs were made) where given."""
  ckpt_dir = paths.absolute(ckpt_dir)  # a local folder or a bucket URL
  ckpt_dir.mkdir(parents=True, exist_ok=True)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(ckpt_dir / "params", nnx.to_pure_dict(nnx.state(model, nnx.Param)), force=True)
  if jax.process_index() == 0:
    copy_tokenizer(tokenizer, ckpt_dir)
  with (ckpt_dir / "config.json").open("w") as f:
    json.dump({"format": "mathvlm", "kind": registry.of_model(model).name,
               "config": config_to_dict(cfg), **({"inputs": inputs} if inputs else {})}, f,
              indent=2)


def export_model(model: nnx.Module, cfg, ckpt_dir: str, tokenizer: str = "",
                 inputs: dict[str, str] | None = None) -> None:
  """`save_model` with config.json removed first and written last. config.json is what makes a
  folder a model (`is_model_dir`), so a run killed while exporting leaves a folder that is never
  read as a model, and its rerun exports again. The same on a bucket, with no copy (object stores
  have no rename)."""
  config = paths.absolute(ckpt_dir) / "config.json"
  if jax.process_index() == 0 and config.exists():
    config.unlink()
  _barrier("export_model")
  save_model(model, cfg, ckpt_dir, tokenizer, inputs)  # the parameters (orbax: whole or
  # absent), the tokenizer, then config.json


def load_model(ckpt_dir: str, sharding: Callable | None = None, **runtime):
  """(model, config) from `save_model`'s folder, each parameter placed by `sharding`.

  runtime: dtype / param_dtype / remat / attention_impl to use instead of the saved ones."""
  family, cfg = read_model_config(ckpt_dir, **runtime)
  abstract = family.abstract(cfg)
  sharding = sharding or single_device
  target = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))
  names = {path_parts(path): var.get_metadata().get("out_sharding") or ()
           for path, var in nnx.to_flat_state(nnx.state(abstract, nnx.Param))}
  target = jax.tree_util.tree_map_with_path(
      lambda kp, x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding(
          path_parts(kp), names.get(path_parts(kp), ()), x.shape)), target)
  with ocp.StandardCheckpointer() as ckptr:
    _check_fits(ckptr, paths.absolute(ckpt_dir), target)
    restored = ckptr.restore(paths.absolute(ckpt_dir) / "params", target)
  graphdef, state = nnx.split(abstract)
  nnx.replace_by_pure_dict(state, restored)
  return nnx.merge(graphdef, state), cfg


def _check_fits(ckptr, ckpt_dir, target) -> None:
  """Names the parameters whose saved shapes differ from the ones config.json describes, or that
  are on one side only: orbax's own error gives two shapes and no parameter name."""
  meta = ckptr.metadata(ckpt_dir / "params")
  meta = getattr(meta, "item_metadata", meta)
  shapes = lambda tree: {"/".join(path_parts(kp)): tuple(x.shape)
                         for kp, x in jax.tree_util.tree_leaves_with_path(tree)}
  saved, wanted = shapes(meta), shapes(target)
  problems = [f"{k}: {saved[k]} saved, {wanted[k]} from config.json"
              for k in sorted(set(saved) & set(wanted)) if saved[k] != wanted[k]]
  problems += [f"{k}: not saved" for k in sorted(set(wanted) - set(saved))]
  problems += [f"{k}: saved, not in the model config.json describes"
               for k in sorted(set(saved) - set(wanted))]
  adapters = sorted(k for k in set(saved) - set(wanted) if "/lora/" in f"/{k}/")
  if adapters and len(adapters) == len(problems):  # all else fits: saved with adapters unmerged
    raise CheckpointError(
        f"{ckpt_dir}: holds {len(adapters)} LoRA adapter weights beside the layers they adapt "
        f"(e.g. {adapters[0]}): it was saved from a model with its adapters unmerged. Merge them "
        "first (`models.lora.merge_lora(model)`, then `save_model`), as the trainer's export "
        "(WORKDIR/model) does, or load the run's WORKDIR/model")
  if problems:
    raise CheckpointError(
        f"{ckpt_dir}: the parameters do not fit the model its config.json describes "
        f"({len(problems)} differ, e.g. " + "; ".join(problems[:5]) + "). The config.json was "
        "edited or belongs to other parameters: restore the one saved with them")
