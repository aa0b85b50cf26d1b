"""MAVIS stage 1, CLIP-Math: contrastive training of the vision tower on MAVIS-Caption.

Paper settings (FACTS.md): text tower frozen, vision tower trained, 10 epochs, batch 16, lr 2e-6.
The temperature is not published: CLIP's learnable logit scale, initialised at 1/0.07.
  python -m mathvlm.train --config configs/clip_math.py:model=clip-vit-l-336,data=mavis_caption
"""

from mathvlm.configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, model="tiny", data="synthetic")
  c = common.base("contrastive")
  c.model.preset = a.model
  c.data.name = a.data
  c.data.global_batch = 16
  c.data.epochs = 10
  c.optim.lr = 2e-6
  c.train_rules = (("text_model/.*", "frozen"), ("text_projection/.*", "frozen"),
                   (".*", "trainable"))
  return common.finish(c)
