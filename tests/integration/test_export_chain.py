"""What one stage hands the next: the LoRA-merged WORKDIR/model against the unmerged model (and
the alpha/rank scale against a hand computation), `model.vision_init_from` putting exactly the
CLIP-Math tower into LLaVA, the lr the metrics log against optax's schedule, and the analytic
FLOP count against a count by hand."""

import math

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import faults
from train_utils import metrics, tiny_config


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
  # MAVIS stage 3 on the tiny model: LoRA rank 4, alpha 16 (scale 4), projector; warmup 2 of 6.
  cfg = tiny_config("lm", "model=tiny,recipe=mavis", steps=6, optim__warmup_ratio=0.34,
                    lora__alpha=16.0)
  workdir = str(tmp_path / "run")
  train(cfg, workdir)
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


# ---------------------------------------------------------------------------------------------
# FLOPs by hand for the tiny LLaVA (vision 64 wide x 4 layers, 16 patches + CLS; text 128 wide x
# 4 layers, 4 heads of 32, 2 KV heads, MLP 256, vocab 1024; projector 64 -> 128 -> 128), batch 8
# of 32 tokens. A weight used on t tokens: 2t forward, 4t more when it trains, 2t more when only
# gradients for something upstream pass through it. LLaVA reads vision layer -2: 3 blocks run.
# The language model's attention is counted causal (half of QK^T and AV), as MaxText does.

def llava_hand_count(vision_blocks: int, patch_tokens: int, vision_attention: float,
                     lora_rank: int = 0) -> float:
  """vision_attention: 1 for the full (bidirectional) QK^T and AV, 1/2 as if causal."""
  rows, seq, images = 8, 32, 8
  v_tok, d, f = 17, 64, 128
  patch = 3 * 14 * 14 * d * patch_tokens                # the patch embedding
  v_block = (v_tok * (4 * d * d + 2 * d * f)             # q, k, v, o and the MLP
             + vision_attention * 2 * 2 * v_tok * v_tok * d)  # QK^T and AV
  vision = 2 * images * (patch + vision_blocks * v_block)  # frozen, nothing upstream: forward
  projector = 6 * images * 16 * (64 * 128 + 128 * 128)   # trains
  h, q_heads, kv_heads, hd, mlp, vocab = 128, 4, 2, 32, 256, 1024
  block_w = h * hd * (2 * q_heads + 2 * kv_heads) + 3 * h * mlp
  block_attn = 2 * 2 * seq * seq * q_heads * hd // 2      # QK^T and AV, causal: half (MaxText)
  tokens = rows * seq
  text = tokens * 4 * block_w + 4 * rows * block_attn + tokens * h * vocab
  if not lora_rank:  # every text weight trains
    text = 6 * text
  else:  # base frozen, gradients pass to the projector; adapters on q,k,v,o,gate,up,down train
    ins_outs = [(h, q_heads * hd), (h, kv_heads * hd), (h, kv_heads * hd), (q_heads * hd, h),
                (h, mlp), (h, mlp), (mlp, h)]
    text = 4 * text + 6 * tokens * 4 * sum(lora_rank * (i + o) for i, o in ins_outs)
  return vision + projector + text


def analytic(arg: str) -> float:
  from mathvlm import train
  run = train.setup(tiny_config("lm", arg, data__max_len=32))
  assert run.batch_shapes["input_ids"] == (8, 32)
  return run.objective.flops(run.cfg, run.batch_shapes, sorted(run.train_set))


def test_flops_frozen_vision_tower_counts_forward_only():
  """Math-LLaVA's rules (vision frozen, projector and language model trained), counted by hand
  with flops.py's own convention for the tower (every block, the patch embedding on all 17
  tokens, attention halved as if causal): the tower forward only (2 per weight and token), the
  rest trained (6)."""
  assert analytic("model=tiny") == pytest.approx(llava_hand_count(4, 17, 0.5), rel=1e-12)


@pytest.mark.xfail(strict=True, reason="mathvlm/flops.py counts all 4 vision blocks, but LLaVA "
                   "reads hidden layer -2, so 3 run (vit.hidden_state skips the last); it counts "
                   "the patch embedding on 17 tokens (16 patches + CLS) and halves the tower's "
                   "bidirectional attention as if causal: for the owner of flops.py")
def test_flops_equal_a_hand_count_of_what_the_tiny_llava_runs():
  assert analytic("model=tiny") == pytest.approx(llava_hand_count(3, 16, 1.0), rel=1e-12)


@pytest.mark.xfail(strict=True, reason="mathvlm/flops.py counts a LoRA-adapted language model as "
                   "trained (6 per weight and token) rather than frozen with gradients passing "
                   "(4) plus the adapters (6 on rank x (in + out)): for the owner of flops.py")
def test_flops_equal_a_hand_count_for_the_tiny_llava_with_lora():
  got = analytic("model=tiny,recipe=mavis")
  assert got == pytest.approx(llava_hand_count(4, 17, 0.5, lora_rank=4), rel=1e-12)
