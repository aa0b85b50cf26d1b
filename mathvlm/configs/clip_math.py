"""MAVIS stage 1, CLIP-Math: contrastive training of the vision tower on MAVIS-Caption.

Paper settings (FACTS.md): text tower frozen, vision tower trained, 10 epochs, batch 16, lr 2e-6.
The temperature is not published: CLIP's learnable logit scale (1/0.07 in a new model; the start
checkpoint's, CLIP's 100, when initialised from openai/clip-vit-large-patch14-336), trained with
the vision tower and its projection, clamped at 100 (`contrastive.max_logit_scale`). Captions get
CLIP's whole context, 77 tokens (the text tower's position embeddings; the tiny preset has 64), cut
at the end with their EOS kept. Not published, ours: cosine with warmup 0.03, weight decay 0,
float32, images padded to square as LLaVA-1.5 feeds the tower in the later stages.
  python -m mathvlm.train --config configs/clip_math.py:model=clip-vit-l-336,data=mavis_caption
"""

from mathvlm.configs import common

CLIP_CONTEXT = 77  # openai CLIP's text context: the text tower has no position past it


def get_config(arg=None):
  a = common.parse_arg(arg, model="tiny", data="synthetic")
  c = common.base("contrastive")
  c.model.preset = a.model
  c.data.name = a.data
  c.data.global_batch = 16
  c.data.epochs = 10
  c.optim.lr = 2e-6
  c.data.max_len = 64 if a.model == "tiny" else CLIP_CONTEXT
  c.train_rules = (("text_model/.*", "frozen"), ("text_projection/.*", "frozen"),
                   (".*", "trainable"))
  return common.finish(c)
