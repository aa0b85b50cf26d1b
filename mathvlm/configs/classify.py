"""Math-LLaVA's image scorers: clarity (2 classes) and comprehension complexity (4 classes).

Paper settings (FACTS.md): ViT-L/16-224 with a new linear head, cross-entropy, lr 2e-4, 5 epochs.
Not published, ours: the whole tower trains with the head, batch 32, cosine with warmup 0.03,
weight decay 0.
  python -m mathvlm.train --config configs/classify.py:model=vit-l-16-224,classes=4
  python -m mathvlm.train --config classify.py:data=labelled_images,label=complexity,classes=4 \
      --config.data.path=DATA_DIR --workdir W   # built by `python -m data_prep.labelled_images`
A tower trained from scratch on diagrams wants `model=tiny-diagram` (pixels centred on diagram
statistics; under CLIP's, a white diagram is one large constant and the tower learns only the prior:
docs/recipe/MATH_LLAVA_DATA.md); a CLIP-initialised tower keeps CLIP's.
"""

from mathvlm.configs import common


def get_config(arg=None):
  a = common.parse_arg(arg, model="tiny", data="synthetic", classes=4, label="")
  c = common.base("classify")
  c.model.preset = a.model
  c.data.name = a.data
  c.data.num_classes, c.data.label = a.classes, a.label
  c.data.epochs = 5
  c.data.global_batch = 32
  c.optim.lr = 2e-4
  return common.finish(c)
