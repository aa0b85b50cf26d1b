"""The data pool and starting model the engine-scale recipe sweeps share
(`configs/sweeps/complexity_ratio.py`, `configs/sweeps/qa_per_image.py`), made once:

  python -m mathvlm.demo.sweep_pool --out out/sweeps/pool [--n_train 3000] [--n_test 150]

1. engine problems, a training pool and a held-out split (no held-out problem is a training one);
2. every question the engine wrote about each training figure as QA pairs with the figures' own
   clarity/complexity labels as the scores file (`python -m data_prep.engine_qa`), and the
   held-out split's three question versions;
3. a BPE tokenizer on the engine text; ArrayRecord datasets (`data_prep.llava_json`,
   `data_prep.mavis_caption`);
4. alignment on captions (configs/demo.py's stage 2, vision tower frozen at random): the warm
   start each sweep run instruction-tunes from, as Math-LLaVA tunes from LLaVA-1.5.

Every step that finished is skipped on a rerun; OUT/DONE.json lists what was made. The sweeps
then only select (data_prep.select on OUT/qa/scores.jsonl), train and evaluate, each run on its
own. Like the demo this is an application: it runs the data_prep commands it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def tokenizer(out: str) -> str:
  """OUT/data/tokenizer.json, trained on the training problems and captions (the demo's)."""
  from mathvlm.demo import data
  path = f"{out}/data/tokenizer.json"
  if not os.path.exists(path):
    tok = data.train_tokenizer(data.engine_texts(
        data.load_json(f"{out}/engine/train/instruct.json"),
        data.load_json(f"{out}/engine/train/caption.json")), 1024)
    data.add_bos(tok)
    os.makedirs(f"{out}/data", exist_ok=True)
    tok.save(path)
  return path


def qa_datasets(out: str, image_size: int) -> dict:
  """QA pairs (all phrasings for training, the engine's three versions held out) and captions,
  each built once."""
  from mathvlm.demo import data
  built = {}
  for split, data_dir, phrasings in (("train", "data", "0"), ("test", "data_test", "1")):
    qa = f"{out}/qa/{split}"
    if not os.path.exists(f"{qa}/report.json"):
      data.run_command("data_prep.engine_qa", ["--instruct", f"{out}/engine/{split}/instruct.json",
                                               "--out", qa, "--phrasings", phrasings])
    built[f"qa_{split}"] = _build_once("llava_json", [
        "--json", f"{qa}/qa.json", "--images", f"{out}/engine/{split}", "--source", "engine",
        "--out", f"{out}/{data_dir}", "--image_size", str(image_size)])
  built["caption_train"] = _build_once("mavis_caption", [
      "--json", f"{out}/engine/train/caption.json", "--images", f"{out}/engine/train",
      "--out", f"{out}/data", "--image_size", str(image_size)])
  return built


def _build_once(builder: str, args: list[str]) -> int:
  from mathvlm.demo import data
  report = os.path.join(args[args.index("--out") + 1], builder, "report.json")
  if os.path.exists(report):
    with open(report) as f:
      return json.load(f)["written"]
  return data.build(builder, args)["written"]


def warm_start(out: str, seed: int) -> dict:
  """Alignment on captions (configs/demo.py's stage 2) with the vision tower frozen at its random
  initialisation. Not CLIP-Math first, as the demo does: on this 3,000-caption pool its
  contrastive loss fell to ln(32) (chance, batch 32) by step 10 and stayed there with a zero
  gradient (seed 0, measured before the towers' pixel statistics and initialisation were fixed:
  docs/recipe/MATH_LLAVA_DATA.md), a collapsed tower; a fixed random tower keeps images apart."""
  from mathvlm.demo.__main__ import run_stage, stage_config
  workdir = f"{out}/align"
  if os.path.exists(f"{workdir}/model/config.json"):
    return {"align": "finished earlier"}
  config, command = stage_config("align", f"{out}/data", 0, False, seed)
  return {"align": run_stage("align", config, command, workdir)}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m mathvlm.demo.sweep_pool",
                              description=__doc__.split("\n")[0])
  p.add_argument("--out", default="out/sweeps/pool")
  p.add_argument("--n_train", type=int, default=3000, help="training pool (figures)")
  p.add_argument("--n_test", type=int, default=150, help="held-out figures (x3 versions)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workers", type=int, default=2)
  p.add_argument("--steps", default="1:8",
                 help="the engine's reasoning depth MIN:MAX for the training pool; 7-8 steps are "
                      "complexity level 3, which the ratios select (the engine's default 1:6 "
                      "makes none)")
  p.add_argument("--test_steps", default="1:7",
                 help="the same for the held-out figures: on that side of the content-hash "
                      "split half of all figure programs are rejected, and an analytic problem "
                      "asked for 8 steps ran out of tries (60 programs) at 1:8")
  a = p.parse_args(argv)
  from mathvlm.demo import data
  out, t = os.path.abspath(a.out), time.time()
  engine = data.generate_engine(out, a.n_train, a.n_test, a.seed, a.workers,
                                dict(train=a.steps, test=a.test_steps))
  summary = dict(engine={k: v["n"] for k, v in engine.items()}, tokenizer=tokenizer(out),
                 built=qa_datasets(out, 56), stages=warm_start(out, a.seed),
                 scores=f"{out}/qa/train/scores.jsonl", seed=a.seed,
                 steps=dict(train=a.steps, test=a.test_steps))
  summary["seconds"] = round(time.time() - t)
  with open(f"{out}/DONE.json", "w") as f:
    json.dump(summary, f, indent=1)
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
