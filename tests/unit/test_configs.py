"""Recipes are code with the papers' defaults; unknown or contradictory fields fail at start."""

import importlib
import re

import numpy as np
import pytest

from mathvlm.configs import align, common
from train_utils import hf_lr, run_cli, tiny_config

RECIPES = ["clip_math", "align", "sft", "dpo", "classify"]


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_builds_and_validates(name):
  config = importlib.import_module(f"mathvlm.configs.{name}").get_config("model=tiny")
  common.validate(config, process_count=1, device_count=1)
  with pytest.raises(AttributeError):
    config.optim.lrr = 1.0  # locked: no new fields


# Each shipped recipe at its paper preset: FACTS.md's numbers, and where the paper is silent the
# official scripts' (LLaVA-1.5's scripts/v1_5/finetune*.sh and pretrain.sh, Math-LLaVA's
# finetune_task.sh) or our choice, each said in the recipe's docstring. A value that drifts fails
# here by its field.
HF_ADAMW = dict(optim__b1=0.9, optim__b2=0.999, optim__eps=1e-8, optim__grad_clip=1.0)
LLAVA_RUN = dict(optim__schedule="cosine", optim__warmup_ratio=0.03, optim__weight_decay=0.0,
                 data__max_len=2048, data__image_aspect="pad", model__dtype="bfloat16",
                 model__remat="full", **HF_ADAMW)
MAVIS_LORA = dict(lora__rank=128, lora__alpha=256.0, lora__targets=align.LLM_LORA_TARGETS,
                  optim__lr=2e-6, data__global_batch=32, data__epochs=1, **LLAVA_RUN)
PAPER_TABLE = {
    "clip_math:model=clip-vit-l-336": dict(
        optim__lr=2e-6, data__global_batch=16, data__epochs=10, data__max_len=77,
        optim__schedule="cosine", optim__warmup_ratio=0.03, optim__weight_decay=0.0,
        data__image_aspect="pad", model__dtype="float32", lora__rank=0,
        contrastive__loss_type="softmax", contrastive__max_logit_scale=100.0, **HF_ADAMW),
    "align:model=mavis-7b": dict(MAVIS_LORA, lora__dropout=0.05, data__template="plain",
                                 data__group_by_length=False),
    "sft:model=llava-1.5-13b,data=mathv360k": dict(
        LLAVA_RUN, optim__lr=2e-5, data__global_batch=128, data__epochs=2,
        data__template="vicuna_v1", data__group_by_length=True, lora__rank=0),
    "sft:model=mavis-7b,recipe=mavis": dict(MAVIS_LORA, lora__dropout=0.05,
                                            data__template="vicuna_v1",
                                            data__group_by_length=False),
    # no LoRA dropout in DPO and GRPO: their losses compare log-probs with ones computed without it
    "dpo:model=mavis-7b": dict(MAVIS_LORA, lora__dropout=0.0, data__template="vicuna_v1",
                               dpo__beta=0.1, dpo__loss_type="sigmoid", dpo__reference="init",
                               dpo__label_smoothing=0.0, dpo__sft_weight=0.0),
    "grpo:model=mavis-7b": dict(
        HF_ADAMW, optim__lr=1e-6, optim__schedule="constant", optim__warmup_ratio=0.03,
        optim__weight_decay=0.0, data__global_batch=16, steps=1000, data__max_len=1024,
        data__template="vicuna_v1", model__dtype="bfloat16", model__remat="full",
        lora__rank=64, lora__alpha=128.0, lora__dropout=0.0, lora__targets=align.LLM_LORA_TARGETS,
        grpo__group=8, grpo__temperature=1.0, grpo__top_p=1.0, grpo__max_new_tokens=512,
        grpo__beta=0.04, grpo__eps_low=0.2, grpo__eps_high=0.2, grpo__aggregation="sequence",
        grpo__scale_rewards=True, grpo__passes=1),
    "classify:model=vit-l-16-224": dict(optim__lr=2e-4, data__epochs=5, data__global_batch=32,
                                        optim__schedule="cosine", optim__weight_decay=0.0),
}


def recipe(key: str):
  name, _, arg = key.partition(":")
  return importlib.import_module(f"mathvlm.configs.{name}").get_config(arg)


@pytest.mark.parametrize("key", sorted(PAPER_TABLE))
def test_each_recipe_holds_its_papers_table(key):
  c = recipe(key)
  got = {}
  for dotted in PAPER_TABLE[key]:
    node = c
    for part in dotted.split("__"):
      node = node[part]
    got[dotted] = node
  assert {k: v for k, v in got.items() if v != PAPER_TABLE[key][k]} == {}, key
  assert common.base("lm").lora.dropout == 0.0


def test_a_llava_recipe_at_a_paper_preset_has_room_for_the_image_and_clip_math_for_clips_text():
  """The base's 64 tokens, fewer than the 576 image tokens, dropped every image example of MAVIS
  stages 2-4 (`image_truncated`) before it trained; CLIP-Math's captions were cut at 64 of the
  77 tokens the text tower reads."""
  from mathvlm import pretrained
  for key in PAPER_TABLE:
    c = recipe(key)
    if c.objective in ("lm", "dpo", "grpo"):
      assert c.data.max_len >= pretrained.model_config(c).image_seq_len + 64, key
  clip = recipe("clip_math:model=clip-vit-l-336")
  assert clip.data.max_len == pretrained.model_config(clip).text.max_position_embeddings


def _lora_size(text, rank: int) -> int:
  """PEFT's adapter size on every linear layer of a Llama/Mistral block (LLaVA's
  find_all_linear_names): A [in, r] and B [r, out] for q, k, v, o, gate, up and down."""
  h, kv, inter = text.hidden_size, text.num_kv_heads * text.head_dim, text.intermediate_size
  return rank * text.num_layers * (2 * (h + h) + 2 * (h + kv) + 3 * (h + inter))


TRAINED_PARTS = {  # (trained, frozen) top-level parts; `<part>/lora`: that part's adapters
    "clip_math:model=clip-vit-l-336": ({"vision_model", "visual_projection", "logit_scale"},
                                       {"text_model", "text_projection"}),
    "align:model=mavis-7b": ({"language_model/lora", "multi_modal_projector"},
                             {"language_model", "vision_tower"}),
    "sft:model=llava-1.5-13b": ({"language_model", "multi_modal_projector"}, {"vision_tower"}),
    "sft:model=mavis-7b,recipe=mavis": ({"language_model/lora", "multi_modal_projector"},
                                        {"language_model", "vision_tower"}),
    "dpo:model=mavis-7b": ({"language_model/lora"},
                           {"language_model", "multi_modal_projector", "vision_tower"}),
    "grpo:model=mavis-7b": ({"language_model/lora"},
                            {"language_model", "multi_modal_projector", "vision_tower"}),
    "classify:model=vit-l-16-224": ({"vision_tower", "head"}, set()),
}


def _parts(state) -> dict[str, int]:
  import collections

  import numpy as np
  from flax import nnx

  from mathvlm.models.layers import path_str
  sizes = collections.Counter()
  for path, v in nnx.to_flat_state(state):
    p = path_str(path)
    sizes[p.split("/")[0] + ("/lora" if "/lora/" in p else "")] += int(np.prod(v.get_value().shape))
  return dict(sizes)


@pytest.mark.parametrize("key", sorted(TRAINED_PARTS))
def test_each_recipe_trains_its_papers_parts_at_hf_trainers_lr(key):
  """The recipe at its paper preset as the trainer builds it (abstract: no weights): which parts
  train and which stay frozen, the adapters' size (rank r on all seven linear layers of every
  LLM block, nothing else), and the lr of every trained weight at a few steps against the
  Hugging Face Trainer's schedule for the same peak, warmup ratio and length: 1000 steps, whose
  warmup at 0.03 is whole, and 170 (Math-LLaVA's run), where HF's ceil gives 6 and round 5."""
  import jax

  from mathvlm import objectives, sharding, train
  c = recipe(key)
  mesh = sharding.make_mesh(1, 1, 1, jax.devices()[:1])
  cfg, *_, abs_params, abs_frozen, _, _ = train.setup_model(
      c, objectives.get(c.objective), mesh, tuple(tuple(r) for r in c.logical_axis_rules))
  trained, frozen = _parts(abs_params), _parts(abs_frozen)
  assert (set(trained), set(frozen)) == TRAINED_PARTS[key]
  if c.lora.rank:
    assert trained["language_model/lora"] == _lora_size(cfg.text, c.lora.rank)
  for total, steps in ((1000, (0, 10, 29, 30, 31, 500, 999)), (170, range(170))):
    _, schedule = train.make_optimizer(c, total, abs_params)
    for step in steps:
      np.testing.assert_allclose(float(schedule(step)), hf_lr(c.optim, total, step), rtol=1e-5,
                                 atol=1e-6 * c.optim.lr,  # float32 near the cosine's end
                                 err_msg=f"{key} step {step} of {total}")


@pytest.mark.parametrize("stage", ["clip_math", "align", "sft", "dpo", "grpo"])
def test_the_demos_stages_run_in_float32_without_remat_whatever_their_recipe_sets(stage):
  """The recipes' bf16 and gradient checkpointing are a 7B's (`common.llava_scale`); the demo
  starts each stage from its recipe at the demo preset and trains it on two CPU cores."""
  from mathvlm.configs import demo
  c = demo.get_config(f"stage={stage},data=d")
  assert (c.model.dtype, c.model.remat) == ("float32", "none")


def test_argument_string_errors_name_the_key():
  with pytest.raises(ValueError, match="unknown config argument 'modle'"):
    importlib.import_module("mathvlm.configs.sft").get_config("modle=tiny")
  with pytest.raises(ValueError, match="unknown sft recipe 'llava'"):
    importlib.import_module("mathvlm.configs.sft").get_config("recipe=llava")


@pytest.mark.parametrize("fields,message", [
    (dict(lora__rank=8, lora__targets=""), "lora.rank=8 and lora.targets=''"),
    (dict(lora__targets="q_proj"), "lora.rank=0 and lora.targets='q_proj'"),
    (dict(lora__dropout=1.0), r"lora.dropout=1.0: the probability .* in \[0, 1\)"),
    (dict(lora__dropout=-0.1), r"lora.dropout=-0.1: the probability"),
    (dict(lora__dropout=0.1), "lora.dropout=0.1 drops LoRA adapters' inputs, and lora.rank=0 "
                              "adds none"),
    (dict(optim__grad_accum=3), "optim.grad_accum=3 does not divide"),
    (dict(objective__="ppo"), "objective=.ppo."),
    (dict(train_rules=(("(", "frozen"),)), "train_rules regex '\\('"),
    (dict(train_rules=((".*", "sometimes"),)), "expected \\(regex, 'trainable'\\|'frozen'\\)"),
    (dict(optim__decay_rules=(("(", "decay"),)), "optim.decay_rules regex '\\('"),
    (dict(optim__decay_rules=((".*", "decayed"),)),
     r"optim.decay_rules entry \('.\*', 'decayed'\): expected \(regex, 'decay'\|'no_decay'\)"),
    (dict(optim__decay_rules=(".*", "decay")), r"optim.decay_rules entry '.\*': expected"),
    (dict(optim__warmup_ratio=1.5), "optim.warmup_ratio=1.5"),
    (dict(optim__warmup_ratio=1.0), r"optim.warmup_ratio=1.0: must be in \[0, 1\)"),
    (dict(data__global_batch=6, mesh__fsdp=4), r"divisible by mesh.data x mesh.fsdp = 1 x 4 = 4"),
    # mesh.data=-1 is the devices left over (2 of 4), not -1: 6 rows do not split over 2 x 2
    (dict(data__global_batch=6, mesh__data=-1, mesh__fsdp=2),
     r"mesh.data x mesh.fsdp = 2 x 2 = 4 \(mesh.data=-1, mesh.fsdp=2 on 4 devices\)"),
    (dict(mesh__fsdp=3), "mesh.data/fsdp/tensor: mesh data=1 fsdp=3 tensor=1 needs 3 devices, "
                         "have 4"),
    (dict(mesh__data=-1, mesh__fsdp=-1), "at most one mesh axis may be -1, got data=-1 fsdp=-1"),
    (dict(mesh__data=-1, mesh__fsdp=3), r"4 devices do not divide into mesh \[-1, 3, 1\]"),
    (dict(data__packing=True, steps=-1), "data.packing needs steps > 0"),
    (dict(data__packing=True, data__group_by_length=True), "both cut padding"),
    # found only after the model was built, and configs/sft.py groups a built dataset
    (dict(data__name="mathv360k", data__mixture="mathv360k=1,mavis_instruct=1",
          data__group_by_length=True), "data.group_by_length with data.mixture='mathv360k=1,"),
    # else ignored: neither has the record lengths a build writes, and the epoch is shuffled
    (dict(data__group_by_length=True), r"data.group_by_length orders a built dataset by the "
                                       r"lengths its build recorded, and data.name='synthetic'"),
    (dict(data__name="stream", data__group_by_length=True), "data.name='stream' has none"),
    (dict(data__augment="blur=2"), r"data.augment entry 'blur=2'"),
    (dict(data__augment="noise"), "data.augment works on the uint8 images of built datasets"),
    (dict(data__image_aspect="square"), r"data.image_aspect=.square.: one of pad, resize, crop"),
    (dict(data__workers=-1), "data.workers=-1"),
    # values optax takes silently: clip 0 zeroes every update, a negative one or lr ascends
    (dict(optim__grad_clip=0.0), r"optim.grad_clip=0.0: .* > 0 \(0 scales every update to zero"),
    (dict(optim__grad_clip=-1.0), "optim.grad_clip=-1.0"),
    (dict(optim__lr=-1e-3), "optim.lr=-0.001: the peak learning rate, > 0"),
    (dict(optim__weight_decay=-0.1), "optim.weight_decay=-0.1: >= 0"),
    (dict(optim__end_lr_ratio=1.5), r"optim.end_lr_ratio=1.5: .* in \[0, 1\]"),
    (dict(optim__b2=1.0), r"optim.b1=0.9, optim.b2=1.0: Adam's decay rates, in \[0, 1\)"),
    (dict(optim__b1=1.0), r"optim.b1=1.0, optim.b2=0.999: Adam's decay rates"),
    (dict(optim__eps=0.0), "optim.eps=0.0: > 0"),
    (dict(optim__grad_accum=0), "optim.grad_accum=0: micro-batches per step, >= 1"),
    (dict(data__global_batch=0), "data.global_batch=0: >= 1"),
    (dict(data__epochs=0), "data.epochs=0: >= 1"),  # steps from the epochs: 0 steps
    # a ZeroDivisionError after the first step; keep=0: orbax deletes every checkpoint
    (dict(metrics__every=0), "metrics.every=0: >= 1"),
    (dict(checkpoint__every=0), "checkpoint.every=0: >= 1"),
    (dict(checkpoint__keep=0), "checkpoint.keep=0: >= 1"),
    # validated before, and trained without adapters (rank -1) or rows of no tokens
    (dict(lora__rank=-1), r"lora.rank=-1: the adapters' rank, > 0, or 0 for none"),
    (dict(data__max_len=0), "data.max_len=0: the tokens of a row, >= 1"),
])
def test_contradictions_fail_naming_fields(fields, message):
  config = tiny_config("lm", **fields)
  with pytest.raises(ValueError, match=message):
    common.validate(config, process_count=1, device_count=4)


def test_another_objectives_option_set_is_an_error_naming_it():
  """--config.objective=lm on the DPO recipe keeps its dpo section, which lm never reads: at its
  defaults that is harmless, a value set there would be silently ignored."""
  common.validate(tiny_config("dpo", objective__="lm"), process_count=1, device_count=1)
  with pytest.raises(ValueError, match=r"dpo.beta=0.5: an option of objective 'dpo', which "
                                       r"objective='lm' never reads"):
    common.validate(tiny_config("dpo", objective__="lm", dpo__beta=0.5), process_count=1,
                    device_count=1)
  typo = tiny_config("dpo", objective__="lm")  # a key dpo does not have is no default either
  with typo.unlocked():
    typo.dpo.betta = 0.5
  with pytest.raises(ValueError, match=r"dpo.betta=0.5: an option of objective 'dpo'"):
    common.validate(typo, process_count=1, device_count=1)


def test_parameters_no_rule_covers_are_an_error(tmp_path):
  from mathvlm.train import train
  config = tiny_config("lm", train_rules=(("vision_tower/.*", "frozen"),))
  with pytest.raises(ValueError, match="train_rules cover no rule for .* parameters"):
    train(config, str(tmp_path))


def test_steps_from_epochs_over_fewer_examples_than_a_batch_is_an_error(tmp_path):
  """4 examples in batches of 8 with steps from the epochs: 0 steps, which trained nothing and
  exported the initial model as if done. With steps set the stream repeats the data and trains."""
  from mathvlm.train import setup
  common_fields = dict(data__num_examples=4, data__global_batch=8)
  with pytest.raises(ValueError, match=r"4 examples of 'synthetic' fill no global batch of "
                                       r"data.global_batch=8, so data.epochs=2 give 0 steps"):
    setup(tiny_config("lm", steps=-1, **common_fields))
  assert setup(tiny_config("lm", steps=2, **common_fields)).total_steps == 2


def test_unknown_command_line_field_fails_at_start(tmp_path):
  res = run_cli(["--config", "configs/sft.py:model=tiny", "--config.optim.lrr=1e-3",
                 "--workdir", str(tmp_path)], check=False, timeout=120)
  assert res.returncode != 0 and "lrr" in res.stderr
  assert not (tmp_path / "checkpoints").exists()


def test_dpo_with_reference_from_data_needs_ref_logps_in_the_data(tmp_path):
  from mathvlm.train import train
  config = tiny_config("dpo", dpo__reference="data")
  with pytest.raises(ValueError, match=r"missing \['ref_logps'\]"):
    train(config, str(tmp_path))


_FLAG_SCRIPT = """
import sys
from absl import flags
from ml_collections import config_flags
from mathvlm import configs
config_flags.DEFINE_config_file("config", None, "", lock_config=True)
flags.FLAGS(["x", "--config", configs.resolve("dpo.py:model=tiny")] + sys.argv[1:])
print(repr(flags.FLAGS.config.dpo.length_normalize))
"""


@pytest.mark.parametrize("flag, want", [(None, "None"), ("True", "True"), ("false", "False")])
def test_dpo_length_normalize_can_be_set_from_the_command_line(flag, want):
  """Its default is None (by loss type); a NoneType field would refuse any override."""
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(common.__file__))  # this checkout's mathvlm
  out = subprocess.run([sys.executable, "-c", _FLAG_SCRIPT]
                       + ([f"--config.dpo.length_normalize={flag}"] if flag else []),
                       capture_output=True, text=True, cwd=os.path.dirname(root),
                       env=dict(os.environ, PYTHONPATH=os.path.dirname(root)))
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == want


def test_resuming_with_another_worker_count_names_data_workers(tmp_path):
  """grain's checkpointed iterator state differs by worker count: the check must say so at
  start, not leave the run to fail later with 'no checkpoint can be read'."""
  from mathvlm.configs import resume
  config = importlib.import_module("mathvlm.configs.sft").get_config("model=tiny")
  resume.record(config, str(tmp_path))
  with config.unlocked():
    config.data.workers = 2
  with pytest.raises(ValueError, match=r"data\.workers: 0 -> 2"):
    resume.check(config, str(tmp_path), 4)


def _changes(recorded: int, *versions: int) -> str:
  """The start-up error's text for a workdir of order `recorded`: exactly these changes named."""
  from mathvlm.data.pipeline import ORDER_VERSION
  return (rf"data order {recorded} .* order {ORDER_VERSION};[^\n]*"
          + "".join(rf"\n  {v}: [^\n]*" for v in versions) + r"\nResume")


def _recorded_with_order(tmp_path, config, version):
  """A workdir recorded by code whose data order was `version` (None: before it was kept)."""
  import json

  from mathvlm.configs import resume
  resume.record(config, str(tmp_path))
  path = tmp_path / resume.FILE
  rec = json.loads(path.read_text())
  if version is None:
    del rec[resume.ORDER_KEY]
  else:
    rec[resume.ORDER_KEY]["version"] = version
  path.write_text(json.dumps(rec))


def test_resuming_a_mixture_across_a_data_order_change_fails_naming_the_change(tmp_path):
  """A resume cannot see a code change: a mixture run started before 034efb0 (order 1) and
  resumed after it drew its examples in another order, silently. The recorded order version
  makes it fail at start; a single dataset, which that change does not touch, resumes."""
  from mathvlm.configs import resume
  mixed = importlib.import_module("mathvlm.configs.sft").get_config("model=tiny")
  with mixed.unlocked():
    mixed.data.mixture = "a=1,b=3"
  (tmp_path / "m").mkdir()
  _recorded_with_order(tmp_path / "m", mixed, 1)
  with pytest.raises(ValueError, match=_changes(1, 2, 4, 5, 6)):  # not 3 (grouping)
    resume.check(mixed, str(tmp_path / "m"), 4)
  # orders 4 and 5 (a mixture's later epochs; each epoch shuffled) leave one epoch's order
  with pytest.raises(ValueError, match=_changes(1, 2, 6)):
    resume.check(mixed, str(tmp_path / "m"), 4, epochs=1)
  (tmp_path / "m3").mkdir()
  _recorded_with_order(tmp_path / "m3", mixed, 3)
  with pytest.raises(ValueError, match=_changes(3, 6)):  # 6: the sources' seeds, every epoch
    resume.check(mixed, str(tmp_path / "m3"), 4, epochs=1)
  with pytest.raises(ValueError, match=_changes(3, 4, 5, 6)):
    resume.check(mixed, str(tmp_path / "m3"), 4, epochs=2)
  (tmp_path / "m6").mkdir()
  _recorded_with_order(tmp_path / "m6", mixed, 6)
  resume.check(mixed, str(tmp_path / "m6"), 4, epochs=2)
  single = importlib.import_module("mathvlm.configs.sft").get_config("model=tiny")
  (tmp_path / "s").mkdir()
  _recorded_with_order(tmp_path / "s", single, 1)
  resume.check(single, str(tmp_path / "s"), 4, epochs=1)
  # order 3: epochs of data.group_by_length go on in whole batches (pipeline.grouped_order)
  grouped = importlib.import_module("mathvlm.configs.sft").get_config("model=tiny")
  with grouped.unlocked():
    grouped.data.group_by_length = True
  (tmp_path / "g").mkdir()
  _recorded_with_order(tmp_path / "g", grouped, 2)
  with pytest.raises(ValueError, match=_changes(2, 3)):  # not 5: grouping orders its epochs
    resume.check(grouped, str(tmp_path / "g"), 4)
  resume.check(grouped, str(tmp_path / "g"), 4, epochs=1)  # one epoch: the same order


def test_a_run_of_several_epochs_from_before_each_epoch_was_shuffled_fails_to_resume(tmp_path):
  """Order 5: each epoch a permutation of its own, no longer one shuffle over all the epochs.
  A workdir of order 4 whose run spans several epochs (data.epochs, or steps that need them)
  fails at start naming the change; one of a single epoch, whose order is the same, resumes.
  Either run's epoch count decides: the checkpoint points into the order the recorded one
  trained in (steps 8 -> 12 over 64 examples in batches of 8: 1 epoch -> 2)."""
  from mathvlm import train
  from mathvlm.configs import resume
  make = lambda steps, epochs=1: tiny_config("lm", steps=steps, data__num_examples=64,
                                             data__global_batch=8, data__epochs=epochs)
  epochs_of = lambda c: (lambda s: train.plan_of(c, 64, s)["epochs"])
  for name, recorded, resumed, fails in [("one", make(8), make(8), False),
                                         ("more", make(8), make(12), True),
                                         ("fewer", make(12), make(8), True),
                                         ("two", make(-1, 2), make(-1, 2), True)]:
    (tmp_path / name).mkdir()
    _recorded_with_order(tmp_path / name, recorded, 4)
    epochs = train.plan_of(resumed, 64, resumed.steps)["epochs"]
    check = lambda: resume.check(resumed, str(tmp_path / name), 4, epochs_of(resumed), epochs)
    if not fails:
      check()
      continue
    with pytest.raises(ValueError, match=_changes(4, 5)):
      check()


def test_a_packed_one_epoch_plan_is_stopped_by_an_order_change_to_the_passes_after_it(tmp_path):
  """Packed steps take several examples a row, so a packed run whose plan is one epoch (steps x
  batch examples) reads on into later passes: 6 steps over a 24-example mixture read 3.6. Order
  4 reorders a mixture's passes after the first, so a packed mixture workdir of order 3 must
  fail at start, one epoch or not; it resumed, silently in another order. Unpacked, the run
  reads its one epoch, which order 4 keeps. Order 5 keeps a one-epoch stream's order past its
  end too (one shuffle over one epoch is that epoch's), so it does not stop a packed workdir of
  order 4. (Order 6, the sources' seeds, stops every mixture workdir before it.)"""
  from mathvlm.configs import resume
  make = lambda packing: tiny_config("lm", steps=6, data__mixture="a=1,b=1",
                                     data__packing=packing)
  for name, recorded, packing, named in [("packed", 3, True, (4, 6)), ("plain", 3, False, (6,)),
                                         ("packed4", 4, True, (6,)), ("packed6", 6, True, ())]:
    (tmp_path / name).mkdir()
    _recorded_with_order(tmp_path / name, make(packing), recorded)
    check = lambda: resume.check(make(packing), str(tmp_path / name), 4, epochs=1)  # noqa: B023
    if not named:
      check()
      continue
    with pytest.raises(ValueError, match=_changes(recorded, *named)):
      check()


def test_resuming_with_steps_that_need_another_epoch_is_quiet(tmp_path, caplog):
  """Each epoch is shuffled on its own, so E epochs' order starts E + 1 epochs' (see
  test_pipeline): steps 8 -> 12 over 64 examples in batches of 8 (1 epoch -> 2) goes on in the
  order it trained in. One shuffle over all the epochs had reshuffled it (a warning then)."""
  from mathvlm import train
  from mathvlm.configs import resume
  config = tiny_config("lm", steps=8, data__num_examples=64, data__global_batch=8, data__epochs=1)
  resume.record(config, str(tmp_path))
  longer = tiny_config("lm", steps=12, data__num_examples=64, data__global_batch=8,
                       data__epochs=1)
  with caplog.at_level("WARNING", logger="mathvlm.train"):
    resume.check(longer, str(tmp_path), 4, lambda s: train.plan_of(longer, 64, s)["epochs"], 2)
  assert caplog.text == ""


def test_resuming_a_mixture_recorded_before_the_order_was_kept_warns(tmp_path, caplog):
  from mathvlm.configs import resume
  mixed = importlib.import_module("mathvlm.configs.sft").get_config("model=tiny")
  with mixed.unlocked():
    mixed.data.mixture = "a=1,b=3"
  _recorded_with_order(tmp_path, mixed, None)
  with caplog.at_level("WARNING", logger="mathvlm.train"):
    resume.check(mixed, str(tmp_path), 4)
  assert "before the data order was recorded" in caplog.text and "034efb0" in caplog.text


def test_resuming_with_another_grain_warns_and_the_same_order_is_quiet(tmp_path, caplog):
  import json

  from mathvlm.configs import resume
  config = importlib.import_module("mathvlm.configs.sft").get_config("model=tiny")
  resume.record(config, str(tmp_path))
  with caplog.at_level("WARNING", logger="mathvlm.train"):
    resume.check(config, str(tmp_path), 4)
  assert caplog.text == ""
  path = tmp_path / resume.FILE
  rec = json.loads(path.read_text())
  rec[resume.ORDER_KEY]["grain"] = "0.0.1"
  path.write_text(json.dumps(rec))
  with caplog.at_level("WARNING", logger="mathvlm.train"):
    resume.check(config, str(tmp_path), 4)
  assert "grain 0.0.1" in caplog.text


def _recorded_before_ceil_warmup(workdir, config):
  """A workdir recorded by the code that took round(optim.warmup_ratio x steps)."""
  import json

  from mathvlm.configs import resume
  resume.record(config, str(workdir))
  path = workdir / resume.FILE
  rec = json.loads(path.read_text())
  del rec[resume.WARMUP_KEY]
  path.write_text(json.dumps(rec))


def test_a_workdir_from_the_rounded_warmup_resumes_only_where_ceil_gives_the_same(tmp_path):
  """The warmup is now HF's ceil(steps x ratio). At 0.03 of 170 steps round gave 5 and ceil
  gives 6, so every lr from the checkpoint on would change: the resume fails at start naming
  both counts and the ways on. Of 100 or 1000 steps both agree (3, 30): it resumes, as does a
  workdir the new code recorded."""
  from mathvlm.configs import resume
  config = tiny_config("lm", optim__warmup_ratio=0.03)
  (tmp_path / "old").mkdir()
  _recorded_before_ceil_warmup(tmp_path / "old", config)
  with pytest.raises(ValueError, match=r"optim.warmup_ratio=0.03 of 170 steps as round\(0.03 x "
                                       r"170\) = 5 warmup steps; this code counts ceil.*: 6, .*"
                                       r"add \"_warmup\": \"ceil\" to"):
    resume.check(config, str(tmp_path / "old"), 4, epochs=1, total_steps=170)
  for total in (100, 1000):
    resume.check(config, str(tmp_path / "old"), 4, epochs=1, total_steps=total)
  resume.record(config, str(tmp_path / "old"))  # as the resumed run does: the new count kept
  resume.check(config, str(tmp_path / "old"), 4, epochs=1, total_steps=170)


def test_the_trainer_checks_its_warmup_and_epochs_on_resume(tmp_path):
  """resume_or_initialise hands the check the run's steps and its data plan's epochs: a
  workdir of order 4 resumes (gets past the check to the restore) at 1 epoch, not at 22."""
  import types

  from mathvlm import train

  class Restored(Exception):
    pass

  def restore_latest(*_):
    raise Restored

  def run_of(steps, **fields):
    config = tiny_config("lm", steps=steps, data__num_examples=64, data__epochs=1, **fields)
    return config, types.SimpleNamespace(config=config, source=range(64), total_steps=steps,
                                         plan=train.plan_of(config, 64, steps),
                                         abstract_state=None)
  ckpt = types.SimpleNamespace(latest_step=lambda: 4, restore_latest=restore_latest)
  config, run = run_of(170, optim__warmup_ratio=0.03)
  _recorded_before_ceil_warmup(tmp_path, config)
  with pytest.raises(ValueError, match=r"round\(0.03 x 170\) = 5"):
    train.resume_or_initialise(run, ckpt, None, str(tmp_path))
  _recorded_with_order(tmp_path, config, 4)  # 170 steps of 8 over 64 examples: 22 epochs
  with pytest.raises(ValueError, match=_changes(4, 5)):
    train.resume_or_initialise(run, ckpt, None, str(tmp_path))
  config, run = run_of(8)
  _recorded_with_order(tmp_path, config, 4)
  with pytest.raises(Restored):
    train.resume_or_initialise(run, ckpt, None, str(tmp_path))


def _recorded_without(recipe: str, field: str, workdir, config=None):
  """The recipe's tiny config (or `config`), recorded in workdir as a run from before `field`
  existed would have recorded it."""
  import json

  from mathvlm.configs import resume
  config = config or importlib.import_module(f"mathvlm.configs.{recipe}").get_config("model=tiny")
  resume.record(config, str(workdir))
  path = workdir / resume.FILE
  rec = json.loads(path.read_text())
  del rec[field]
  path.write_text(json.dumps(rec))
  return config


def test_a_field_added_after_a_workdir_was_written_resumes_at_its_default(tmp_path):
  """A workdir recorded before `model.language_init_from` existed resumes while the run leaves it
  empty; set, it is a change like any other."""
  from mathvlm.configs import resume
  config = _recorded_without("sft", "model.language_init_from", tmp_path)
  resume.check(config, str(tmp_path), 4)
  with config.unlocked():
    config.model.language_init_from = "/llm"
  with pytest.raises(ValueError, match=r"model.language_init_from: '<absent>' -> '/llm'"):
    resume.check(config, str(tmp_path), 4)


def test_a_part_init_from_a_family_without_that_part_is_a_config_error():
  from mathvlm.configs import clip_math
  c = clip_math.get_config("model=tiny")
  c.model.language_init_from = "/llm"
  with pytest.raises(ValueError, match=r"model.language_init_from: objective 'contrastive' "
                                       r"trains a clip model, which has no language model"):
    common.validate(c, process_count=1, device_count=1)


def test_attention_impl_reaches_every_tower_and_an_unknown_one_is_named():
  """A GPU run picks jax's fused kernel (`cudnn`) from its config; no field reached it."""
  import jax

  from mathvlm import train
  from train_utils import tiny_config
  run = train.setup(tiny_config("lm", model__attention_impl="xla"), jax.devices()[:1])
  assert (run.cfg.text.attention_impl, run.cfg.vision.attention_impl) == ("xla", "xla")
  assert train.setup(tiny_config("lm"), jax.devices()[:1]).cfg.text.attention_impl is None
  c = tiny_config("lm", model__attention_impl="flash")
  with pytest.raises(ValueError, match=r"model.attention_impl='flash': one of \('grouped', "
                                       r"'xla', 'cudnn'\)"):
    common.validate(c, process_count=1, device_count=1)


def test_grpo_divisibility_counts_answer_rows_not_prompts():
  """GRPO's step trains on prompts x group rows, and grad_accum splits those rows: 16 prompts x 8
  answers in 4 micro-batches are 32 rows each, which 8 devices divide, though 16 / 4 prompts do
  not (the 7B recipe at grad_accum 4 was refused); 2 prompts x 2 answers in micro-batches of 1
  row are still refused, naming the rows."""
  from mathvlm.configs import grpo
  c = grpo.get_config("model=tiny")
  c.data.global_batch, c.grpo.group, c.optim.grad_accum, c.mesh.fsdp = 16, 8, 4, 8
  common.validate(c, process_count=1, device_count=8)
  c.data.global_batch, c.grpo.group = 2, 2
  with pytest.raises(ValueError, match=r"micro-batch 1 \(data.global_batch x 2 rows each"):
    common.validate(c, process_count=1, device_count=8)


def test_a_workdir_from_before_the_curriculums_min_steps_resumes_only_as_it_ran(tmp_path):
  """Before `grpo.curriculum_min_steps` a level could move after any step (as 1); the default is
  now 5, so an old GRPO workdir resumed at the default would train another curriculum: it is
  refused, naming the field and what the run did, and resumes with the value it ran with."""
  from mathvlm.configs import resume
  config = _recorded_without("grpo", "grpo.curriculum_min_steps", tmp_path)
  with pytest.raises(ValueError, match=r"grpo.curriculum_min_steps: <absent: ran as 1> -> 5"):
    resume.check(config, str(tmp_path), 4)
  with config.unlocked():
    config.grpo.curriculum_min_steps = 1
  resume.check(config, str(tmp_path), 4)


@pytest.mark.parametrize("field, changed", [("grpo.filter_metric", "correct"),
                                            ("grpo.overlong_buffer", 16)])
def test_a_grpo_workdir_from_before_the_dapo_options_resumes_at_their_defaults_only(
    tmp_path, field, changed):
  """`grpo.filter_metric` and `grpo.overlong_buffer` came after GRPO workdirs were written; their
  defaults (total reward, no buffer) are what those runs did, so such a workdir resumes with
  them. Either changed changes training (which groups are refilled, what an answer earns), so it
  is refused on resume like any grpo field, naming it."""
  from mathvlm.configs import resume
  config = _recorded_without("grpo", field, tmp_path)
  resume.check(config, str(tmp_path), 4)
  section, name = field.split(".")
  with config.unlocked():
    config[section][name] = changed
  with pytest.raises(ValueError, match=rf"{field}: '<absent>' -> {changed!r}"):
    resume.check(config, str(tmp_path), 4)


def test_a_clip_workdir_saved_before_logit_scale_left_decay_resumes_at_weight_decay_0_only(
    tmp_path):
  """DECAY_RULES gained logit_scale (no_decay, as open_clip). At weight_decay 0 no rule acts, so a
  workdir saved under the rules before (or any others) resumes with the new default; above 0 the
  new rules would stop decaying the temperature mid-run: refused, naming the field, and it
  resumes with the rules it ran with."""
  from mathvlm.configs import clip_math, resume
  before = tuple(r for r in common.DECAY_RULES if "logit_scale" not in r[0])
  assert len(before) == len(common.DECAY_RULES) - 1
  for weight_decay in (0.0, 0.1):
    workdir = tmp_path / str(weight_decay)
    workdir.mkdir()
    config = clip_math.get_config("model=tiny")
    config.optim.weight_decay, config.optim.decay_rules = weight_decay, before
    resume.record(config, str(workdir))
    config.optim.decay_rules = common.DECAY_RULES
    if weight_decay:
      with pytest.raises(ValueError, match=r"these fields differ:\n  optim.decay_rules: "
                                           r"\[\['\(\.\*/\)\?bias'"):
        resume.check(config, str(workdir), 4)
      config.optim.decay_rules = before
    resume.check(config, str(workdir), 4)


def test_a_workdir_from_before_decay_rules_resumes_at_weight_decay_0_only_as_it_ran(tmp_path):
  """Before `optim.decay_rules` AdamW decayed every trainable tensor. At weight_decay 0 nothing
  decays whatever the rules, so such a workdir resumes with the new default; above 0 the default
  (no bias or norm decays) would train another run: refused, naming what the run did, and it
  resumes with that."""
  from mathvlm.configs import resume
  config = _recorded_without("sft", "optim.decay_rules", tmp_path)
  assert config.optim.weight_decay == 0
  resume.check(config, str(tmp_path), 4)
  (tmp_path / "wd").mkdir()
  with config.unlocked():
    config.optim.weight_decay = 0.1
  config = _recorded_without("sft", "optim.decay_rules", tmp_path / "wd", config)
  ran_as = re.escape("optim.decay_rules: <absent: ran as (('.*', 'decay'),)> -> [['(.*/)?bias'")
  with pytest.raises(ValueError, match=ran_as):
    resume.check(config, str(tmp_path / "wd"), 4)
  with config.unlocked():
    config.optim.decay_rules = ((".*", "decay"),)
  resume.check(config, str(tmp_path / "wd"), 4)
