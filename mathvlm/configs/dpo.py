"""MAVIS stage 4, DPO: the stage-3 model's wrong answers rejected, the annotated CoT chosen.

Paper settings (FACTS.md): only LoRA trained. Beta is not published: 0.1 (the common default); the
learning rate, batch and epochs are not published: 2e-6, 32 and 1 as stages 2 and 3, and LoRA as
theirs (rank 128, alpha 256, every linear layer of the LLM: fresh adapters on the stage-3 model,
whose export merged its own), with stage 3's template (vicuna_v1), schedule, 2048 tokens, bf16
and gradient checkpointing (`common.llava_scale`). The reference model is a frozen
copy of the starting (stage-3) model, or log-probs precomputed in the data (`dpo.reference=data`).
No LoRA dropout, although stage 3 trained with it: TRL's DPOTrainer disables dropout by default
(DPOConfig `disable_dropout=True`, "in `model` and `ref_model`"), as the loss compares the policy's
log-probs with the reference's, which are computed without it (`lora.dropout` > 0 would drop in
the policy's forward only). The 32 pairs (64 rows of 2048 tokens) go in one micro-batch: XLA
counts 27.0 GiB a device on 8 (README, "Will it fit?").
  python -m mathvlm.train --config configs/dpo.py:model=mavis-7b \
      --config.model.init_from=WORKDIR_OF_STAGE_3
"""

from mathvlm.configs import common
from mathvlm.configs.align import LLM_LORA_TARGETS


def get_config(arg=None):
  a = common.parse_arg(arg, model="tiny", data="synthetic")
  c = common.base("dpo")
  c.model.preset = a.model
  c.data.name = a.data
  c.data.global_batch = 32
  c.data.epochs = 1
  c.optim.lr = 2e-6
  c.dpo.beta = 0.1
  c.lora.rank, c.lora.alpha, c.lora.targets = 128, 256.0, LLM_LORA_TARGETS
  c.lora.dropout = 0.0
  c.train_rules = ((".*/lora/.*", "trainable"), (".*", "frozen"))
  common.llava_scale(c, a.model)
  return common.finish(c)
