"""Math-LLaVA's augmentation, as one variable: 1, 2, 4 or 8 questions per image at a fixed image
count, over seeds. Each run selects the same kind of images (uniformly among the clear ones) and
keeps k of each image's QA pairs (data_prep.select --qa_per_image k), then instruction-tunes and
is evaluated on held-out problems.

Every run trains for the same number of steps (`steps`, default one pass over images x 8 at
batch 16): the runs differ in how many different questions they see per image, not in compute
(with equal epochs the k=8 run would also train 8 times longer).

Here (engine pool: 12-15 exact questions per figure, the three versions of each of the engine's
phrasings, so the extra questions are rephrasings and text-lite/vision-dominant forms):
  python launch/sweep.py configs/sweeps/qa_per_image.py --workdir out/sweeps/qa_per_image
At paper scale (a pool with several QA pairs per image, e.g. MathV360K with data_prep.augment's
output built beside it and scored with its `records`):
  python launch/sweep.py "configs/sweeps/qa_per_image.py:scale=paper,images=40000,steps=20000,\
seeds=1,scores=...,data=...,init=...,tokenizer=...,mathvista=...,math_v=..." \
      --workdir gs://B/sweeps/qa --launcher tpu --launcher_args "NAME ZONE v4-64"
"""

from mathvlm.configs.sweeps import recipe

PER_IMAGE = (1, 2, 4, 8)
DEFAULTS = dict(images=80, steps=0, ratio="random")
O = recipe.options("", **DEFAULTS)
X = "qa_per_image"
TREND = "log2"  # does accuracy climb with each doubling of the questions per image?
METRICS = dict(recipe.METRICS_HERE)


def configure(arg: str) -> None:
  global O
  O = recipe.options(arg, **DEFAULTS)
  recipe.set_metrics(METRICS, O)


def BASE() -> str:  # noqa: N802  (the sweep runner reads BASE; here it depends on the options)
  return recipe.base(O)


def FLAGS() -> dict:  # noqa: N802
  batch = 16 if O.scale == "engine" else 128  # configs/demo.py's sft, configs/sft.py
  return {"config.steps": O.steps or O.images * max(PER_IMAGE) // batch}


def setup(workdir: str) -> list:
  return recipe.setup(O)


def get_sweep():
  return [{"qa_per_image": k, "config.seed": s} for k in PER_IMAGE for s in range(O.seeds)]


def prepare(run: dict, data_dir: str):
  return recipe.select(O, data_dir, ratio=O.ratio, size=O.images, seed=run["config.seed"],
                       qa_per_image=run["qa_per_image"])
