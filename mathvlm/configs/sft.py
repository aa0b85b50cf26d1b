"""Instruction tuning: Math-LLaVA's fine-tuning (default) or MAVIS stage 3 (`recipe=mavis`).

Math-LLaVA (FACTS.md; its finetune_task.sh agrees): LLaVA-1.5-13B, vision tower frozen, projector +
LLM fully fine-tuned, vicuna_v1 template, images padded to square, lr 2e-5 cosine, warmup 0.03,
weight decay 0, 2 epochs, max length 2048, bf16, gradient checkpointing, ZeRO-3 (here: FSDP),
group_by_modality_length (`data.group_by_length`: on for a built dataset, whose build records the
lengths; `data=synthetic` has none, and a `data.mixture` is not grouped yet, so set it False
there). The global batch is not stated: 16 per device on LLaVA-1.5's 8 GPUs = 128.
MAVIS stage 3: projector + LLM LoRA rank 128, 1 epoch, batch 32, lr 2e-6, text-lite questions;
not published, so as stage 2 (`align.py`: LLaVA-1.5's LoRA alpha 256, dropout 0.05, schedule,
2048 tokens, bf16), with LLaVA-1.5's vicuna_v1 template (ours: MAVIS does not name its template);
no length grouping (ours).
  python -m mathvlm.train --config configs/sft.py:model=llava-1.5-13b,data=mathv360k
"""

from mathvlm.configs import common
from mathvlm.configs.align import LLM_LORA_TARGETS


def get_config(arg=None):
  a = common.parse_arg(arg, model="tiny", data="synthetic", recipe="math_llava")
  c = common.base("lm")
  c.model.preset = a.model
  c.data.name = a.data
  if a.recipe == "math_llava":
    c.data.global_batch, c.data.epochs, c.data.max_len = 128, 2, 2048
    c.optim.lr, c.optim.warmup_ratio, c.optim.weight_decay = 2e-5, 0.03, 0.0
    c.model.dtype, c.model.remat = "bfloat16", "full"
    c.train_rules = (("vision_tower/.*", "frozen"), (".*", "trainable"))
    c.data.group_by_length = a.data != "synthetic"
  elif a.recipe == "mavis":
    c.data.global_batch, c.data.epochs = 32, 1
    c.optim.lr = 2e-6
    c.lora.rank, c.lora.alpha, c.lora.targets = 128, 256.0, LLM_LORA_TARGETS
    c.lora.dropout = 0.05
    c.train_rules = ((".*/lora/.*", "trainable"), ("multi_modal_projector/.*", "trainable"),
                     (".*", "frozen"))
    common.llava_scale(c, a.model)
  else:
    raise ValueError(f"unknown sft recipe {a.recipe!r}: math_llava | mavis")
  if a.model == "tiny":  # the tiny model exists to run in seconds on a CPU
    c.data.global_batch, c.data.max_len, c.model.dtype = 8, 64, "float32"
  return common.finish(c)
