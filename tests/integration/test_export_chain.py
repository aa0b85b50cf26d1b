"""What one stage hands the next: the LoRA-merged WORKDIR/model against the unmerged model (and
the alpha/rank scale against a hand computation), `model.vision_init_from` putting exactly the
CLIP-Math tower into LLaVA (and with `language_init_from`, on four devices, a start sharded at
birth that never holds a part twice), `model.init_from`'s LoRA adapters sharded at birth, the
lr the metrics log against optax's schedule, and the analytic FLOP count against a count by
hand."""

import json
import math

import jax
import numpy as np
import optax
from flax import nnx

import faults
from train_utils import cpu_env, metrics, run_python, tiny_config


def unmerged_model(cfg, workdir: str, step: int):
  """The model as the trainer holds it at `step`, adapters separate, restored the trainer's way."""
  from mathvlm import checkpoint, train
  run = train.setup(cfg, jax.devices()[:1])
  ckpt = checkpoint.Checkpointer(workdir, every=1, keep=10, use_async=False)
  state = ckpt.restore(step, run.abstract_state, iter(run.dataset))
  ckpt.close()
  return nnx.merge(run.graphdef, state["params"], state["frozen"]), run


def test_lora_merged_export_gives_the_unmerged_logits_and_the_schedule_is_optax(tmp_path):
  from mathvlm import checkpoint, sharding
  from mathvlm.train import train
  # MAVIS stage 3 on the tiny model: LoRA rank 4, alpha 16 (scale 4), projector; warmup 2 of 6
  # (ceil(6 x 0.33), as the HF Trainer counts).
  tokenizer = tmp_path / "tokenizer.json"  # synthetic data reads none; the export copies it
  tokenizer.write_text('{"version": "1.0", "model": {}}')
  cfg = tiny_config("lm", "model=tiny,recipe=mavis", steps=6, optim__warmup_ratio=0.33,
                    lora__alpha=16.0, data__tokenizer=str(tokenizer))
  workdir = str(tmp_path / "run")
  train(cfg, workdir)
  # eval.run --ckpt WORKDIR/model finds the run's tokenizer beside the weights
  assert (tmp_path / "run/model/tokenizer.json").read_bytes() == tokenizer.read_bytes()
  model, run = unmerged_model(cfg, workdir, 6)
  exported, exported_cfg = checkpoint.load_model(f"{workdir}/model")
  assert exported_cfg == run.cfg

  # alpha / rank by hand, on one adapted layer (stacked over layers: [L, in, out])
  q = model.language_model.layers.self_attn.q_proj
  assert q.lora_scale == 16.0 / 4
  w, a, b = (np.asarray(x[...], np.float64) for x in (q.kernel, q.lora.lora_a, q.lora.lora_b))
  merged = np.asarray(exported.language_model.layers.self_attn.q_proj.kernel[...], np.float64)
  np.testing.assert_allclose(merged, w + 4.0 * np.einsum("lir,lro->lio", a, b), atol=1e-6)
  assert np.abs(4.0 * np.einsum("lir,lro->lio", a, b)).max() > 1e-3  # the adapters trained

  batch = sharding.place_batch(next(iter(run.dataset)), run.mesh)
  logits = lambda m: np.asarray(m.apply(batch["input_ids"], batch["pixel_values"],
                                        attention_mask=batch["attention_mask"]).logits)
  unmerged, from_export = logits(model), logits(exported)
  for _, module in nnx.iter_modules(model):  # the same model with the adapters switched off
    if getattr(module, "lora", None) is not None:
      module.lora_scale = 0.0
  base = logits(model)
  assert np.abs(unmerged - from_export).max() <= 1e-5, np.abs(unmerged - from_export).max()
  assert np.abs(unmerged - base).max() > 1e-3  # so the merge is what makes them agree

  # the lr each row logs is optax's schedule at that update, and a hand cosine
  schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.optim.lr, 2, 6, end_value=0.0)
  hand = [cfg.optim.lr * k / 2 if k < 2 else
          cfg.optim.lr * 0.5 * (1 + math.cos(math.pi * (k - 2) / 4)) for k in range(6)]
  logged = [r["lr"] for r in metrics(workdir)]
  np.testing.assert_allclose(logged, [float(schedule(k)) for k in range(6)], rtol=1e-6)
  np.testing.assert_allclose(logged, hand, rtol=1e-6, atol=1e-12)


def test_vision_init_from_puts_exactly_the_clip_math_tower_into_llava(tmp_path):
  """A CLIP-Math stage's workdir (its exported model: a tiny CLIP with its own seed) as
  `model.vision_init_from` of a LLaVA run."""
  from mathvlm import checkpoint, train, train_state
  from mathvlm.models import registry
  clip_dir = str(tmp_path / "clip_math")
  family = registry.get("clip")
  clip_cfg = family.preset("tiny")
  checkpoint.save_model(family.build(clip_cfg, seed=7), clip_cfg, f"{clip_dir}/model")
  clip = faults.restore(f"{clip_dir}/model/params")
  tower = {k.replace("['vision_model']", "", 1): v for k, v in clip.items()
           if k.startswith("['vision_model']")}

  def llava_state(**fields):
    """The trainer's initial state; without vision_init_from, the same eager build (a jitted
    random init rounds differently) with no tower loaded."""
    run = train.setup(tiny_config("lm", **fields), jax.devices()[:1])
    if fields:
      state = train_state.initial_state(run)
    else:
      _, params, frozen = nnx.split(run.build(False), run.is_trainable, ...)
      state = dict(params=params, frozen=frozen)
    both = {**faults.flat(jax.tree.map(np.asarray, state["params"])),
            **faults.flat(jax.tree.map(np.asarray, state["frozen"]))}
    return {k.removesuffix(".value"): v for k, v in both.items()}

  chained, plain = llava_state(model__vision_init_from=clip_dir), llava_state()
  vision = {k: v for k, v in chained.items() if k.startswith("['vision_tower']")}
  assert len(vision) == len(tower) > 10
  for k, v in vision.items():
    src = tower[k.replace("['vision_tower']", "", 1)]
    assert np.array_equal(v, src), k                      # exactly the CLIP-Math weights
    assert not np.array_equal(v, plain[k]) or v.ndim == 0 or np.all(v == v.flat[0]), k
  rest = [k for k in chained if not k.startswith("['vision_tower']")]
  assert rest and all(np.array_equal(chained[k], plain[k]) for k in rest)  # nothing else moved


def _text_config(preset: str, **kw):
  """A Hugging Face LlamaConfig of the preset's own language model (kw: fields changed)."""
  import hf_models
  from mathvlm.models import registry
  t = registry.get("llava").preset(preset).text
  return hf_models.llama_config(**dict(
      vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
      num_hidden_layers=t.num_layers, num_attention_heads=t.num_heads,
      num_key_value_heads=t.num_kv_heads, max_position_embeddings=t.max_position_embeddings,
      rms_norm_eps=t.rms_norm_eps, rope_theta=t.rope_theta, pad_token_id=t.pad_token_id) | kw)


def test_language_init_from_puts_exactly_a_hugging_face_llm_into_llava(tmp_path):
  """MAVIS stage 2 starts LLaVA from an LLM (MAmmoTH2) and the CLIP-Math tower: an HF LLM folder
  as `model.language_init_from` gives the language model transformers' logits and moves nothing
  else; an LLM of another architecture is refused, naming the fields."""
  import hf_models
  import pytest
  import torch

  from mathvlm import train
  llm = hf_models.llm(seed=3, cfg=_text_config("tiny"))
  folder = hf_models.save(llm, str(tmp_path / "llm"))
  run = train.setup(tiny_config("lm", model__language_init_from=folder), jax.devices()[:1])
  chained, plain = run.build(True), run.build(False)
  ids = np.array([[1, 5, 9, 17, 33, 2, 64, 100, 700, 1023]])
  with torch.no_grad():
    want = llm(torch.tensor(ids)).logits.numpy()
  np.testing.assert_allclose(np.asarray(chained.language_model(ids)), want, rtol=1e-4, atol=1e-4)
  assert np.abs(np.asarray(plain.language_model(ids)) - want).max() > 0.1
  params = lambda m: faults.flat(nnx.state(m, nnx.Param))
  a, b = params(chained), params(plain)
  rest = [k for k in a if not k.startswith("['language_model']")]
  assert len(rest) > 10 and all(np.array_equal(a[k], b[k]) for k in rest)  # nothing else moved
  other = hf_models.save(hf_models.llm(cfg=_text_config("tiny", rope_theta=1e6)),
                         str(tmp_path / "other"))
  run = train.setup(tiny_config("lm", model__language_init_from=other), jax.devices()[:1])
  with pytest.raises(ValueError, match=r"language_init_from=.*rope_theta: 1000000.0 there, "
                                       r"10000.0 here"):
    run.build(True)


# What each of the fake devices holds: its even share of each live array's bytes, after a
# collection (the rest of a loaded source, a CLIP's text tower, waits in reference cycles for it).
HELD = r"""
import gc, math, jax

def held():
  gc.collect()
  on = dict.fromkeys(jax.devices(), 0)
  for x in jax.live_arrays():
    for d in x.sharding.device_set:
      on[d] += x.on_device_size_in_bytes() // len(x.sharding.device_set)
  return list(on.values())

def shares_of(run):  # each parameter's bytes on one device, sharded as the run shards it
  return {jax.tree_util.keystr(k): math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
          for kind in ("params", "frozen")
          for k, x in jax.tree_util.tree_flatten_with_path(run.abstract_state[kind])[0]}
"""

# MAVIS stage 2 on four fake devices: both parts, LoRA on the LLM. At each source's load every
# device's live arrays are weighed.
PARTS_ON_FOUR_DEVICES = HELD + r"""
import json, sys
from faults import flat
from flax import nnx
from train_utils import tiny_config
from mathvlm import checkpoint, pretrained, train, train_state
from mathvlm.models import registry

out = sys.argv[1]
clip, llm, llava = registry.get("clip"), registry.get("llm"), registry.get("llava").preset("tiny")
checkpoint.save_model(clip.build(clip.preset("tiny"), seed=7), clip.preset("tiny"), out + "/clip")
checkpoint.save_model(llm.build(llava.text, seed=3), llava.text, out + "/llm")
run = train.setup(tiny_config("lm", "model=tiny,recipe=mavis", model__vision_init_from=out +
                              "/clip", model__language_init_from=out + "/llm"))

loads, read = [], pretrained.load_pretrained
pretrained.load_pretrained = lambda *a: loads.append(held()) or read(*a)
state = train_state.initial_state(run)
shares = shares_of(run)
# the state less the part loading (its own weights: its adapters stay), per device
rest = [sum(v for k, v in shares.items() if not k.startswith(f"['{part}']") or "['lora']" in k)
        for part in ("vision_tower", "language_model")]

old = run.build(False)  # the start as it was made: eager, the sources' weights put in
nnx.update(old.vision_tower, nnx.state(checkpoint.load_model(out + "/clip")[0].vision_model))
nnx.update(old.language_model, nnx.state(checkpoint.load_model(out + "/llm")[0]))
_, params, frozen = nnx.split(old, run.is_trainable, ...)
want, got = {**flat(params), **flat(frozen)}, {**flat(state["params"]), **flat(state["frozen"])}
print(json.dumps(dict(loads=loads, rest=rest, n=len(got), same=sorted(want) == sorted(got),
                      moved=[k for k in got if not (got[k] == want[k]).all()])))
"""


def test_a_start_from_parts_is_sharded_at_birth_and_never_holds_a_part_twice(tmp_path):
  """MAVIS stage 2 (`model.vision_init_from` and `model.language_init_from`, LoRA on the LLM) on
  four devices: the random model is created sharded, not whole on one device, and each part's
  random weights are gone before its source is read; what the run starts from is bitwise what
  the eager build gave (the projector, the adapters) and the sources' weights."""
  got = json.loads(run_python(PARTS_ON_FOUR_DEVICES, str(tmp_path), env=cpu_env(4)))
  assert got["n"] > 40 and got["same"] and got["moved"] == []
  assert len(got["loads"]) == 2
  for seen, rest in zip(got["loads"], got["rest"]):  # each device: its shards of the rest alone
    assert seen == [rest] * 4, (seen, rest)


# MAVIS stage 3 on four fake devices: a LLaVA checkpoint as model.init_from, LoRA on the LLM. The
# devices are weighed whenever add_lora returns (where the eager build made the adapters, whole on
# the default device) and when build(True) returns, before initial_state places anything.
INIT_FROM_WITH_LORA_ON_FOUR_DEVICES = HELD + r"""
import json, sys
from faults import flat
from flax import nnx
from train_utils import tiny_config
from mathvlm import checkpoint, train
from mathvlm.models import lora, registry

out = sys.argv[1]
llava = registry.get("llava")
checkpoint.save_model(llava.build(llava.preset("tiny"), seed=5), llava.preset("tiny"), out + "/m")
seen, add = [], lora.add_lora

def watched(*args):
  done = add(*args)
  if watching:
    seen.append(held())
  return done

lora.add_lora, watching = watched, True
run = train.setup(tiny_config("lm", "model=tiny,recipe=mavis", model__init_from=out + "/m"))
model = run.build(True)
seen.append(held())
watching = False
shares = shares_of(run)
split = [jax.tree_util.keystr(k) for k, x in
         jax.tree_util.tree_flatten_with_path(run.abstract_state["params"])[0]
         if "['lora']" in jax.tree_util.keystr(k) and x.sharding.shard_shape(x.shape) != x.shape]

eager = run.build(False)  # the adapters as the eager build makes them, the checkpoint's weights
nnx.update(eager, nnx.state(checkpoint.load_model(out + "/m")[0]))
want, got = flat(nnx.state(eager)), flat(nnx.state(model))
print(json.dumps(dict(seen=seen, share=sum(shares.values()), split=split, n=len(got),
                      same=sorted(want) == sorted(got),
                      moved=[k for k in got if not (got[k] == want[k]).all()])))
"""


def test_an_init_from_start_makes_its_lora_adapters_sharded_at_birth(tmp_path):
  """model.init_from with LoRA on four devices: each device makes only its shards of the adapters
  (whole on one device, LLaVA-1.5's rank-128 adapters on all of a 7B's linear layers were 1.3 GB),
  and they are bitwise the adapters the eager build gives (they depend on the seed and shapes
  alone), the checkpoint's weights beside them."""
  got = json.loads(run_python(INIT_FROM_WITH_LORA_ON_FOUR_DEVICES, str(tmp_path),
                              env=cpu_env(4)))
  assert got["split"], "no adapter is split over the devices: the test would show nothing"
  assert got["n"] > 40 and got["same"] and got["moved"] == []
  assert got["seen"] and all(max(seen) <= got["share"] for seen in got["seen"]), got
  assert got["seen"][-1] == [got["share"]] * 4, got

# ---------------------------------------------------------------------------------------------
# FLOPs by hand for the tiny LLaVA (vision 64 wide x 4 layers, 16 patches + CLS; text 128 wide x
# 4 layers, 4 heads of 32, 2 KV heads, MLP 256, vocab 1024; projector 64 -> 128 -> 128), batch 8
# of 32 tokens, one image a row. LLaVA reads vision layer -2: 3 of the 4 blocks run.

def llava_hand_count(vision_trains: bool = False, lora_rank: int = 0) -> int:
  """One step of the tiny LLaVA, the projector and (without LoRA) the language model trained.

  A weight on t tokens: 2t forward, 2t more for its input gradient when something earlier trains,
  2t more for its own gradient when it trains. QK^T and AV over t tokens of width d: 2t²d each
  forward, the whole square for the causal language model too (its mask is a select on dense
  scores: every score is computed), and twice that backward whenever a gradient passes through
  (both operands are activations).

  The earlier count wrote attention as 2 x 2 x t² x d a layer, already the forward FLOPs, then
  doubled it again with the weights: it matched flops.py only with the vision attention "halved
  as if causal", and its "causal: half" text attention was the whole square after all. Under
  LoRA it also gave the text attention the 4 of a frozen weight; having no weight, it costs 6.
  """
  images, rows, seq, t, d, f = 8, 8, 32, 17, 64, 128
  v = 1 + 2 * vision_trains                       # forward, + both gradients when trained
  patch = 2 * images * 16 * 3 * 14 * 14 * d * (1 + vision_trains)  # 16 patches; pixels: no grad
  block = 2 * t * (4 * d * d + 2 * d * f) + 2 * 2 * t * t * d  # q, k, v, out, MLP; QK^T, AV
  vision = patch + 3 * images * block * v
  projector = 2 * images * 16 * (64 * 128 * (2 + vision_trains) + 128 * 128 * 3)
  h, hd, mlp, vocab, layers, tokens = 128, 32, 256, 1024, 4, rows * seq
  # weights: weight x token products (2 FLOPs each forward); attention: its forward FLOPs
  weights = tokens * (layers * (h * hd * (2 * 4 + 2 * 2) + 3 * h * mlp) + h * vocab)
  attention = rows * layers * 2 * 2 * seq * seq * 4 * hd
  if not lora_rank:  # every text weight trains
    return vision + projector + 3 * (2 * weights + attention)
  # base frozen, gradients pass to the projector (4); adapters on q,k,v,o,gate,up,down train (6)
  adapted = [(h, 4 * hd), (h, 2 * hd), (h, 2 * hd), (4 * hd, h), (h, mlp), (h, mlp), (mlp, h)]
  adapters = tokens * layers * sum(lora_rank * (i + o) for i, o in adapted)
  return vision + projector + 2 * 2 * weights + 3 * attention + 6 * adapters


def analytic(arg: str, **fields) -> float:
  """The step FLOPs the trainer logs MFU against, for the tiny LLaVA with this recipe."""
  from mathvlm import train
  run = train.setup(tiny_config("lm", arg, data__max_len=32, **fields))
  assert run.batch_shapes["input_ids"] == (8, 32)
  assert run.batch_shapes["pixel_values"] == (8, 56, 56, 3)
  from mathvlm import train_state
  return train_state.step_flops(run)


def test_flops_frozen_vision_tower_counts_forward_only():
  """Math-LLaVA's rules (vision frozen, projector and language model trained): the 3 vision
  blocks that run, forward only, the patch embedding on the 16 patches; the rest trained."""
  assert analytic("model=tiny") == llava_hand_count(vision_trains=False)


def test_flops_equal_a_hand_count_of_what_the_tiny_llava_runs():
  """Everything trained: the vision tower's backward too, but no input gradient for the patch
  embedding (pixels) while the projector's first layer now needs one."""
  got = analytic("model=tiny", train_rules=((".*", "trainable"),))
  assert got == llava_hand_count(vision_trains=True)


def test_flops_equal_a_hand_count_for_the_tiny_llava_with_lora():
  """MAVIS stage 3 (LoRA rank 4 on the language model, projector trained): the base weights
  frozen with gradients passing (4 per weight and token), the adapters trained (6 on rank x (in +
  out) for each adapted matmul)."""
  assert analytic("model=tiny,recipe=mavis") == llava_hand_count(lora_rank=4)
