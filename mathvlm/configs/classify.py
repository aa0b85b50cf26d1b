"""Math-LLaVA's image scorers: clarity (2 classes) and comprehension complexity (4 classes).

Paper settings (FACTS.md): ViT-L/16-224 with a new linear head, cross-entropy, lr 2e-4, 5 epochs.
  python -m mathvlm.train --config configs/classify.py:model=vit-l-16-224,classes=4
"""

from mathvlm.configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, model="tiny", data="synthetic", classes=4)
  c = common.base("classify")
  c.model.preset = a.model
  c.data.name = a.data
  c.data.num_classes = a.classes
  c.data.epochs = 5
  c.data.global_batch = 32
  c.optim.lr = 2e-4
  return common.finish(c)
