"""One run of Math-LLaVA's data-recipe sweeps (configs/sweeps/complexity_ratio.py, qa_per_image.py):
instruction tuning on a selection of a built pool (`data.subset`, from data_prep.select), with
held-out accuracy and loss measured at the end (`config.evals`), so the sweep's table carries
accuracy.

scale=engine (default): what two CPU cores finish. The pool of `python -m mathvlm.demo.sweep_pool`
(engine QA pairs, llava_json) and its aligned warm start; configs/demo.py's instruction-tuning
stage (the demo model, value answers, mistral_instruct) for `epochs` passes; evaluators: held-out
engine problems generated and ranked, and the loss on the held-out QA pairs.
  python -m mathvlm.train --config configs/recipe_sweep.py:pool=out/sweeps/pool \
      --config.data.subset=SEL/selected.jsonl --workdir W

scale=paper: Math-LLaVA's recipe (configs/sft.py: LLaVA-1.5, vicuna_v1, lr 2e-5, 2 epochs) on
MathV360K built under `data` (with `tokenizer`, from `init`), evaluated on MathVista testmini and
MATH-Vision testmini from their folders (greedy, 512 new tokens: the paper samples at 0.2).
  --config configs/recipe_sweep.py:scale=paper,model=llava-1.5-13b,data=/data,init=/ckpt/llava13b,\
tokenizer=/ckpt/llava13b,mathvista=/data/mathvista,math_v=/data/math_v
"""

import os

from mathvlm.configs import common, demo, sft

ARGS = dict(scale="engine", pool="out/sweeps/pool", epochs=1, model="llava-1.5-13b", data="",
            init="", tokenizer="", mathvista="", math_v="", eval_batch=64)


def get_config(arg=None):
  a = common.parse_arg(arg, **ARGS)
  if a.scale == "engine":
    return engine(a)
  if a.scale == "paper":
    return paper(a)
  raise ValueError(f"recipe_sweep scale={a.scale!r}: engine | paper")


def engine(a):
  pool = os.path.abspath(a.pool)
  c = demo.get_config(f"stage=sft,data={pool}/data,epochs={a.epochs}")
  c.data.name = "llava_json"
  # Text-dominant QA pairs reach ~300 tokens; two buckets (and two evaluation widths) keep the
  # compiles per run few, which on two shared cores cost as much as the training itself.
  c.data.max_len, c.data.buckets = 320, (192, 320)
  c.model.init_from = f"{pool}/align"
  with c.unlocked():
    c.evals.heldout = dict(type="engine_accuracy", instruct=f"{pool}/engine/test/instruct.json",
                           batch=a.eval_batch, max_len=320, max_new_tokens=24, bucket=160)
    c.evals.loss = dict(type="heldout_loss", name="llava_json", path=f"{pool}/data_test",
                        batch=75)  # 450 held-out pairs: six batches of one shape
  return c


def paper(a):
  missing = [k for k in ("data", "init", "tokenizer", "mathvista", "math_v") if not a[k]]
  if missing:
    raise ValueError(f"recipe_sweep scale=paper needs {missing} (key=value in the argument)")
  c = sft.get_config(f"model={a.model},data=mathv360k")
  c.data.path, c.data.tokenizer, c.model.init_from = a.data, a.tokenizer, a.init
  with c.unlocked():
    for name, folder in (("mathvista", a.mathvista), ("math_v", a.math_v)):
      c.evals[name] = dict(type="benchmark_accuracy", benchmark=name, data=folder,
                           batch=a.eval_batch, max_new_tokens=512)
  return c
