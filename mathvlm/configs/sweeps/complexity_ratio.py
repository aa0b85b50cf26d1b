"""Math-LLaVA's Table 8: which mix of comprehension-complexity levels 0:1:2:3 to select, at one
size: 2:3:4:1 (the paper's), 3:3:3:1, 4:3:2:1, 2:4:3:1 and a uniform random draw, each over
seeds. Each run selects its images (clear ones, the ratio inside each source: data_prep.select),
instruction-tunes on them and is evaluated on held-out problems.

Here (engine pool, demo model; `size` clear figures of the ~2,700 in the pool, one question each):
  python launch/sweep.py configs/sweeps/complexity_ratio.py --workdir out/sweeps/complexity_ratio
At paper scale (MathV360K scored by data_prep.score, 40K images, one job per run on TPU):
  python launch/sweep.py "configs/sweeps/complexity_ratio.py:scale=paper,size=40000,\
qa_per_image=0,seeds=1,scores=/tmp/mathvlm-data/scores.jsonl,data=/tmp/mathvlm-data,\
init=gs://B/llava13b,tokenizer=/tmp/mathvlm-data/llava13b,mathvista=/tmp/mathvlm-data/mathvista,\
math_v=/tmp/mathvlm-data/math_v" \
      --workdir gs://B/sweeps/ratio --launcher tpu --launcher_args "NAME ZONE v4-64"
"""

from mathvlm.configs.sweeps import recipe

RATIOS = ("2:3:4:1", "3:3:3:1", "4:3:2:1", "2:4:3:1", "random")
O = recipe.options("", size=600, qa_per_image=1)
X = "ratio"
METRICS = dict(recipe.METRICS_HERE)


def configure(arg: str) -> None:
  global O
  O = recipe.options(arg, size=600, qa_per_image=1)
  recipe.set_metrics(METRICS, O)


def BASE() -> str:  # noqa: N802  (the sweep runner reads BASE; here it depends on the options)
  return recipe.base(O)


def setup(workdir: str) -> list:
  return recipe.setup(O)


def get_sweep():
  return [{"ratio": r, "config.seed": s} for r in RATIOS for s in range(O.seeds)]


def prepare(run: dict, data_dir: str):
  return recipe.select(O, data_dir, ratio=run["ratio"], size=O.size, seed=run["config.seed"],
                       qa_per_image=O.qa_per_image)
