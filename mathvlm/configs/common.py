"""What every recipe shares: the full set of fields (so a typo is an error), the argument parser
for `file.py:key=value,...`, and the checks that run before anything is built.

A recipe file is code: `get_config(arg)` starts from `base()`, sets the paper's values and returns a
locked ConfigDict. Command-line overrides (`--config.optim.lr=2e-5`) can then only touch fields that
exist.
"""

from __future__ import annotations

import math
import re

import ml_collections

from mathvlm import objectives
from mathvlm.models import registry
from mathvlm.models.layers import ATTENTION_IMPLS
from mathvlm.sharding import DEFAULT_RULES, mesh_sizes, rule_errors

# Which trainable parameters AdamW decays: (regex over parameter paths, 'decay' | 'no_decay'), first
# match wins, and a trainable parameter no rule covers is an error. The default is the Hugging Face
# Trainer's, which LLaVA, Math-LLaVA and MAVIS train with (transformers' Trainer.
# get_decay_parameter_names): no bias and no norm's weight decays (LayerNorm's scale, RMSNorm's
# weight, `pre_layrnorm` included), everything else does (kernels, embeddings, LoRA adapters,
# class/position embeddings), but for CLIP's logit_scale, which open_clip's training code keeps
# out of decay (src/training/main.py): a log-temperature, not a weight, that decay would pull
# towards a temperature of 1. By name, not ndim: scanned layers' norm weights are 2-D. A workdir
# saved under other rules resumes at weight_decay 0 (no rule acts) and is refused above it
# (configs/resume.py).
DECAY_RULES = ((r"(.*/)?bias", "no_decay"), (r"(.*/)?[^/]*norm[^/]*/(scale|weight)", "no_decay"),
               (r"(.*/)?logit_scale", "no_decay"), (".*", "decay"))


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """'model=llava-1.5-13b,data=mathv360k' -> ConfigDict over `defaults`; unknown keys fail."""
  out = ml_collections.ConfigDict(defaults)
  for part in filter(None, (arg or "").split(",")):
    key, sep, value = part.partition("=")
    if not sep:
      raise ValueError(f"config argument {part!r} is not key=value")
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r}; known: {sorted(defaults)}")
    kind = type(defaults[key])
    out[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
  return out


def base(objective: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.objective = objective
  c.seed = 0

  c.model = ml_collections.ConfigDict(dict(
      preset="tiny",          # mathvlm/models/presets.py; the family follows the objective
      init_from="",           # HF folder, `python -m mathvlm.convert` checkpoint, or a workdir
      clip_dir="",            # the CLIP checkpoint for an original-LLaVA-layout init_from
      vision_init_from="",    # LLaVA only: vision tower from a CLIP-Math stage (workdir/ckpt/HF)
      language_init_from="",  # LLaVA only: language model from an LLM (HF folder, e.g. MAmmoTH2)
      dtype="float32",        # compute dtype
      param_dtype="float32",
      remat="none",           # none | full | dots | dots_no_batch
      attention_impl="",      # "": by platform (ours on CPU, jax's choice elsewhere); grouped |
                              # xla | cudnn (jax's fused kernel on GPUs; layers.attention)
      scan_unroll=1,          # layers per scan step (more compiles longer, runs faster); 0: the
                              # platform's choice, all on one CPU device, 1 elsewhere
                              # (layers.platform_unroll): set it for CPU runs that run longer
                              # than they compile
  ))
  # What trains: (regex over parameter paths, 'trainable' | 'frozen'); first match wins, and a
  # parameter no rule matches is an error. LoRA adapters are parameters like any other.
  c.train_rules = ((".*", "trainable"),)
  # dropout: PEFT's lora_dropout, the probability of dropping each element of an adapter's input
  # in the train step's loss (never the frozen path's, never in evaluation, sampling or the
  # log-probs a step takes outside its gradient; mathvlm/models/lora.py).
  c.lora = ml_collections.ConfigDict(dict(rank=0, alpha=16.0, targets="", dropout=0.0))

  c.data = ml_collections.ConfigDict(dict(
      name="synthetic",       # mathvlm/data/sources.py
      path="",
      global_batch=8,
      max_len=64,
      num_examples=256,
      epochs=1,
      num_classes=4,          # classify
      label="",               # classify on built labelled images: which label (clarity, complexity)
      subset="",              # a selection (data_prep.select's selected.jsonl): train on those ids
      tokenizer="",           # built datasets: a tokenizer folder or tokenizer.json
      template="vicuna_v1",   # vicuna_v1 | llava_v1 | llama_2 | mistral_instruct | plain
      image_aspect="pad",     # pad (LLaVA-1.5, Math-LLaVA) | crop (CLIP's) | resize (stretch)
      mixture="",             # 'mathv360k=3,mavis_instruct=1': several built datasets by weight
      buckets=(),             # e.g. (256, 512, 1024, 2048): pad each batch to the smallest that fits
      group_by_length=False,  # LLaVA's group_by_modality_length (built datasets, not mixtures)
      packing=False,          # lm: text-only examples packed several to a row (needs steps > 0)
      augment="",             # 'blur=0.3,noise=0.3,lowres=0.3': clarity augmentations, kind=prob
      workers=0,              # grain worker processes reading and preparing examples (0: none)
      synthetic_text_only=0.0,  # synthetic lm/dpo: the share of text-only examples
  ))
  c.optim = ml_collections.ConfigDict(dict(
      lr=2e-5, warmup_ratio=0.03, schedule="cosine", end_lr_ratio=0.0, weight_decay=0.0,
      b1=0.9, b2=0.999, eps=1e-8, grad_clip=1.0, grad_accum=1,
      decay_rules=DECAY_RULES))  # what weight_decay reaches: DECAY_RULES above
  c.steps = -1                # -1: epochs x examples / global batch

  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
  c.logical_axis_rules = tuple((k, v) for k, v in DEFAULT_RULES)

  c.checkpoint = ml_collections.ConfigDict(dict(every=100, keep=2, use_async=True))
  c.metrics = ml_collections.ConfigDict(dict(every=1, tensorboard=True, peak_flops=0.0))
  # Evaluators run inside training (big_vision's config.evals): name -> dict(type=..., every=N,
  # its own fields); `type` is a name in mathvlm/eval/evaluators.py or "module:function". Each
  # runs every N steps and at the end; its numbers go to metrics.jsonl as eval/<name>/<key> and
  # to WORKDIR/eval.json (the last of each).
  c.evals = ml_collections.ConfigDict()

  # The objective's options, with its defaults (mathvlm/objectives/<name>.py): --config.dpo.beta
  if objectives.get(objective).defaults:
    c[objective] = options_section(objectives.get(objective))
  return c


def options_section(objective) -> ml_collections.ConfigDict:
  """The objective's defaults as a ConfigDict; a None ('auto') default becomes a typed
  FieldReference so that `--config.<name>.<option>=...` and sweeps can still set it."""
  fields = {}
  for key, value in objective.defaults.items():
    if value is None:
      if key not in objective.option_types:
        raise TypeError(f"objective {objective.name!r}: option {key!r} defaults to None, which "
                        "the command line cannot override; give its type in option_types")
      value = ml_collections.FieldReference(None, field_type=objective.option_types[key])
    fields[key] = value
  return ml_collections.ConfigDict(fields)


def llava_scale(c: ml_collections.ConfigDict, model: str) -> None:
  """What LLaVA-1.5's training scripts set (scripts/v1_5/finetune.sh and finetune_lora.sh; Math-
  LLaVA's finetune_task.sh copies them) and MAVIS does not publish: rows of 2048 tokens, 576 of
  them an image's (the base's 64 cut into every image, and each image example was dropped),
  bfloat16 compute over float32 weights, gradient checkpointing. The tiny preset keeps the base's
  64 tokens in float32: it exists to run in seconds on a CPU."""
  if model != "tiny":
    c.data.max_len = 2048
    c.model.dtype, c.model.remat = "bfloat16", "full"


def finish(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  c.lock()
  return c


def validate(c: ml_collections.ConfigDict, process_count: int = 1, device_count: int | None = None):
  """Contradictions fail before anything is built, each naming its fields."""
  if c.objective not in objectives.OBJECTIVES:
    raise ValueError(f"invalid config:\n  objective={c.objective!r}: choose one of "
                     f"{sorted(objectives.OBJECTIVES)}")
  errors = []
  objective = objectives.get(c.objective)
  rows_per_example = 1
  try:
    rows_per_example = objective.rows_per_example(objective.options(c))
  except ValueError as e:
    errors.append(str(e))
  if c.lora.rank < 0:  # else the same as 0, and a typo'd rank trains without adapters unsaid
    errors.append(f"lora.rank={c.lora.rank}: the adapters' rank, > 0, or 0 for none")
  elif (c.lora.rank > 0) != bool(c.lora.targets):
    errors.append(f"lora.rank={c.lora.rank} and lora.targets={c.lora.targets!r}: set both or "
                  "neither")
  errors += lora_dropout_errors(c.lora)
  errors += rules_errors("train_rules", c.train_rules, ("trainable", "frozen"))
  errors += rules_errors("optim.decay_rules", c.optim.decay_rules, ("decay", "no_decay"))
  errors += optim_errors(c.optim) + loop_errors(c)
  if c.optim.grad_accum < 1 or c.data.global_batch < 1:  # the divisions below need them
    raise ValueError("invalid config:\n  " + "\n  ".join(errors))
  per_process = c.data.global_batch // max(process_count, 1)
  if c.data.global_batch % max(process_count, 1):
    errors.append(f"data.global_batch={c.data.global_batch} is not divisible by "
                  f"{process_count} processes")
  elif per_process * rows_per_example % c.optim.grad_accum:
    errors.append(f"optim.grad_accum={c.optim.grad_accum} does not divide the per-process "
                  f"batch {per_process * rows_per_example} (data.global_batch / processes"
                  f"{' x rows per example' if rows_per_example > 1 else ''})")
  if objective.in_batch_negatives and c.optim.grad_accum > 1:
    errors.append(f"optim.grad_accum={c.optim.grad_accum}: objective {c.objective!r} takes its "
                  "negatives from the whole batch, and each micro-batch would be a smaller "
                  "contrastive problem (global_batch / grad_accum negatives), not a part of the "
                  "batch's loss; set optim.grad_accum=1 and fit the batch with more devices or "
                  "mesh.fsdp")
  if device_count:
    micro = c.data.global_batch * rows_per_example // c.optim.grad_accum
    errors += micro_batch_errors(c.mesh, device_count, micro, rows_per_example)
  errors += (data_errors(c, objective) + rule_errors(c.logical_axis_rules)
             + foreign_option_errors(c))
  if c.model.attention_impl and c.model.attention_impl not in ATTENTION_IMPLS:
    errors.append(f"model.attention_impl={c.model.attention_impl!r}: one of {ATTENTION_IMPLS}, "
                  "or '' for the platform's choice")
  family = registry.get(objective.family)
  for field, (attr, words) in registry.INIT_PARTS.items():
    if c.model[field] and getattr(family, attr) is None:
      errors.append(f"model.{field}: objective {c.objective!r} trains a {objective.family} "
                    f"model, which has no {words}")
  if errors:
    raise ValueError("invalid config:\n  " + "\n  ".join(errors))


def foreign_option_errors(c: ml_collections.ConfigDict) -> list[str]:
  """Options of an objective the config does not train, set away from their defaults: a recipe
  switched with `--config.objective` keeps its own section, and the objective it now trains
  never reads it (configs/dpo.py with objective=lm and dpo.beta=0.5 trained lm, beta unread)."""
  errors = []
  for name, other in sorted(objectives.OBJECTIVES.items()):
    if name == c.objective or not other.defaults or name not in c:
      continue
    for key, value in c[name].items():
      if key not in other.defaults or value != other.defaults[key]:
        errors.append(f"{name}.{key}={value!r}: an option of objective {name!r}, which "
                      f"objective={c.objective!r} never reads; set objective={name!r} or leave "
                      f"{name}.* at its defaults")
  return errors


def micro_batch_errors(mesh, device_count: int, micro: int, rows_per_example: int) -> list[str]:
  """The micro-batch's rows must split evenly over the mesh's data x fsdp devices, with its -1
  resolved as the mesh resolves it (`sharding.mesh_sizes`); a mesh the devices cannot make is
  named here too, before anything is built."""
  try:
    data, fsdp, _ = mesh_sizes(mesh.data, mesh.fsdp, mesh.tensor, device_count)
  except ValueError as e:
    return [f"mesh.data/fsdp/tensor: {e}"]
  if micro % (data * fsdp) == 0:
    return []
  rows = f" x {rows_per_example} rows each" if rows_per_example > 1 else ""
  return [f"the micro-batch {micro} (data.global_batch{rows} / optim.grad_accum) must be "
          f"divisible by mesh.data x mesh.fsdp = {data} x {fsdp} = {data * fsdp} (mesh.data="
          f"{mesh.data}, mesh.fsdp={mesh.fsdp} on {device_count} devices)"]


def rules_errors(field: str, rules, decisions: tuple[str, str]) -> list[str]:
  """(regex, decision) rules that would fail mid-setup, or match as no one meant, unnamed."""
  errors = []
  for rule in rules:
    if not isinstance(rule, (tuple, list)) or len(rule) != 2 or rule[1] not in decisions:
      errors.append(f"{field} entry {rule!r}: expected (regex, '{decisions[0]}'|'{decisions[1]}')")
    else:
      try:
        re.compile(rule[0])
      except re.error as e:
        errors.append(f"{field} regex {rule[0]!r}: {e}")
  return errors


def warmup_steps(ratio: float, total_steps: int) -> int:
  """optim.warmup_ratio in steps as the Hugging Face Trainer counts them (LLaVA's, Math-LLaVA's:
  TrainingArguments.get_warmup_steps, ceil(steps x ratio)), so a run's lr is theirs step for
  step; round() had one warmup step fewer where the fraction is under a half (5 of Math-LLaVA's
  ~170 steps at 0.03 against their 6)."""
  return math.ceil(total_steps * ratio)


def optim_errors(o) -> list[str]:
  """Values optax takes without a word and trains wrongly with: clip_by_global_norm(0) scales
  every update to zero (a run that never moves), a negative grad_clip, lr or weight_decay turns
  the step or the decay around."""
  errors = []
  if not 0 <= o.warmup_ratio < 1:
    errors.append(f"optim.warmup_ratio={o.warmup_ratio}: must be in [0, 1)")
  if o.schedule not in ("cosine", "linear", "constant"):
    errors.append(f"optim.schedule={o.schedule!r}: cosine | linear | constant")
  if not o.lr > 0:
    errors.append(f"optim.lr={o.lr}: the peak learning rate, > 0")
  if not o.grad_clip > 0:
    errors.append(f"optim.grad_clip={o.grad_clip}: the global gradient norm to clip to, > 0 "
                  "(0 scales every update to zero; a large value such as 1e30 clips nothing)")
  if not 0 <= o.end_lr_ratio <= 1:
    errors.append(f"optim.end_lr_ratio={o.end_lr_ratio}: the final lr over the peak, in [0, 1]")
  if o.weight_decay < 0:
    errors.append(f"optim.weight_decay={o.weight_decay}: >= 0")
  if not (0 <= o.b1 < 1 and 0 <= o.b2 < 1):
    errors.append(f"optim.b1={o.b1}, optim.b2={o.b2}: Adam's decay rates, in [0, 1)")
  if not o.eps > 0:
    errors.append(f"optim.eps={o.eps}: > 0 (a weight with no gradient yet would get 0 / 0)")
  if o.grad_accum < 1:
    errors.append(f"optim.grad_accum={o.grad_accum}: micro-batches per step, >= 1")
  return errors


def loop_errors(c: ml_collections.ConfigDict) -> list[str]:
  """Counts the loop divides by or keeps, which would fail mid-run (a step's metrics divided
  by metrics.every) or silently keep nothing (orbax's max_to_keep=0 deletes every checkpoint,
  so a killed run starts over; data.epochs=0 with steps from the epochs trained 0 steps and
  exported the initial model)."""
  errors = []
  for field in ("data.global_batch", "data.epochs", "metrics.every", "checkpoint.every",
                "checkpoint.keep"):
    section, name = field.split(".")
    if c[section][name] < 1:
      errors.append(f"{field}={c[section][name]}: >= 1")
  return errors


def lora_dropout_errors(lora) -> list[str]:
  """A probability below 1 (1 would drop every input and scale by 1/0), and adapters to drop
  it from: without them the field would be a silent no-op."""
  if not 0 <= lora.dropout < 1:
    return [f"lora.dropout={lora.dropout}: the probability of dropping an adapter input, in "
            "[0, 1)"]
  if lora.dropout and lora.rank <= 0:
    return [f"lora.dropout={lora.dropout} drops LoRA adapters' inputs, and lora.rank="
            f"{lora.rank} adds none: set lora.rank and lora.targets, or lora.dropout=0"]
  return []


def data_errors(c: ml_collections.ConfigDict, objective) -> list[str]:
  """The `data.*` contradictions, one line each naming its fields."""
  errors = []
  if c.data.buckets and max(c.data.buckets) != c.data.max_len:
    errors.append(f"data.buckets={tuple(c.data.buckets)}: the largest bucket must be "
                  f"data.max_len={c.data.max_len}")
  if c.data.buckets and objective.host_step:
    errors.append(f"data.buckets={tuple(c.data.buckets)}: objective {c.objective!r} trains on "
                  "the rows its host step makes (a left-padded prompt, then the sampled answer), "
                  "and trimming them to a bucket would cut the answers off; set data.buckets=()")
  if c.data.packing:
    if objective.example != "lm":
      errors.append(f"data.packing packs the lm objective's text-only rows, not {c.objective!r}")
    if c.steps <= 0:
      errors.append(f"data.packing needs steps > 0 (steps={c.steps}): how many steps an epoch "
                    "packs into is known only after packing")
    if c.data.group_by_length:
      errors.append("data.packing and data.group_by_length both cut padding: choose one")
  from mathvlm.data.templates import TEMPLATES
  if c.data.template not in TEMPLATES:  # read by every source, evaluator and rollout that prompts
    errors.append(f"data.template={c.data.template!r}: one of {', '.join(TEMPLATES)}")
  if c.data.max_len < 1:
    errors.append(f"data.max_len={c.data.max_len}: the tokens of a row, >= 1")
  if any(b < 1 for b in c.data.buckets):
    errors.append(f"data.buckets={tuple(c.data.buckets)}: padded widths, each >= 1")
  from mathvlm.data.image import ASPECTS
  if c.data.image_aspect not in ASPECTS:
    errors.append(f"data.image_aspect={c.data.image_aspect!r}: one of {', '.join(ASPECTS)}")
  if c.data.augment:
    from mathvlm.data.image import parse_augment
    try:
      parse_augment(c.data.augment)
    except ValueError as e:
      errors.append(str(e))
    if c.data.name == "synthetic":
      errors.append("data.augment works on the uint8 images of built datasets; data.name is "
                    "'synthetic'")
  if c.data.mixture:
    from mathvlm.data.sources import parse_mixture
    try:
      parse_mixture(c.data.mixture)
    except ValueError as e:
      errors.append(str(e))
  if c.data.mixture and c.data.group_by_length:  # else found only after the model is built
    errors.append(f"data.group_by_length with data.mixture={c.data.mixture!r}: a mixture cannot "
                  "be grouped by length yet (configs/sft.py groups a built dataset); set "
                  "data.group_by_length=False or train one dataset")
  if c.data.group_by_length and c.data.name in ("synthetic", "stream"):  # else a plain shuffle
    errors.append(f"data.group_by_length orders a built dataset by the lengths its build "
                  f"recorded, and data.name={c.data.name!r} has none: set "
                  "data.group_by_length=False, or data.name to a built dataset")
  if c.data.mixture and c.data.name in ("synthetic", "stream"):
    errors.append(f"data.mixture={c.data.mixture!r} mixes built datasets, but "
                  f"data.name={c.data.name!r} never reads it; set data.name to a built dataset "
                  "(e.g. configs/sft.py:data=mathv360k) or leave data.mixture empty")
  if c.data.workers < 0:
    errors.append(f"data.workers={c.data.workers}: 0 (in-process) or more worker processes")
  if not 0 <= c.data.synthetic_text_only <= 1:
    errors.append(f"data.synthetic_text_only={c.data.synthetic_text_only}: a share in [0, 1]")
  return errors
