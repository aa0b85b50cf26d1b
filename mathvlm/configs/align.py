"""MAVIS stage 2, alignment: captioning on MAVIS-Caption with the `plain` template.

Paper settings (FACTS.md): CLIP-Math frozen; projector (2-layer MLP) and LLM LoRA rank 128 trained;
1 epoch, batch 32, lr 2e-6. Not published, so LLaVA-1.5's (scripts/v1_5/pretrain.sh and
finetune_lora.sh): LoRA alpha 256 for rank 128 and lora_dropout 0.05 (the default of its
llava/train/train.py), LoRA on every linear layer of the LLM (its find_all_linear_names), the
`plain` template of its captioning stage (the image, then the caption), cosine with warmup 0.03,
weight decay 0, 2048 tokens, bf16, gradient checkpointing (`common.llava_scale`). Images are padded
to square as in the later stages and evaluation (ours: LLaVA-1.5's pretrain.sh left CLIP's crop).
  python -m mathvlm.train --config configs/align.py:model=mavis-7b \
      --config.model.vision_init_from=WORKDIR_OF_STAGE_1 \
      --config.model.language_init_from=HF_MAMMOTH2
The projector starts new; the tower and the LLM each must fit the preset's architecture.
"""

from mathvlm.configs import common

LLM_LORA_TARGETS = r"language_model/layers/.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


def get_config(arg=None):
  a = common.parse_arg(arg, model="tiny", data="synthetic")
  c = common.base("lm")
  c.model.preset = a.model
  c.data.name = a.data
  c.data.template = "plain"
  c.data.global_batch = 32
  c.data.epochs = 1
  c.optim.lr = 2e-6
  c.lora.rank, c.lora.alpha, c.lora.targets = 128, 256.0, LLM_LORA_TARGETS
  c.lora.dropout = 0.05
  c.train_rules = ((".*/lora/.*", "trainable"), ("multi_modal_projector/.*", "trainable"),
                   (".*", "frozen"))
  common.llava_scale(c, a.model)
  return common.finish(c)
