"""Math-LLaVA's scorers on the engine's labels: does a classifier trained on engine images predict
held-out clarity and complexity better than always answering the majority class? Prints JSON.

  python -m benchmarks.scorers --out docs/recipe/scorers [--train 4000] [--test 600] \
      [--steps 1500] [--lr 2e-4] [--image_size 112 --patch 14]

Engine train and test splits (content-hashed, disjoint) -> `data_prep.labelled_images` -> one
classifier per label trained by `mathvlm.train` on `mathvlm.data.labels.LabelSource` -> the test
images scored by `data_prep.score` -> accuracy, the majority-class baseline, confusion matrices
(`OUT/summary.json`, `OUT/confusion.png`), through the shipped recipe
`classify.py:data=labelled_images,label=...`.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys

import numpy as np

LABELS = {"clarity": 2, "complexity": 4}


def engine(out: str, split: str, n: int, seed: int) -> str:
  folder = os.path.join(out, f"engine_{split}")
  meta = os.path.join(folder, "meta.json")
  if os.path.exists(meta):
    made = json.load(open(meta))
    if (made["n"], made["seed"]) == (n, seed):
      return folder  # made by an earlier run
  subprocess.run([sys.executable, "-m", "data_prep.engine", "--n", str(n), "--out", folder,
                  "--split", split, "--seed", str(seed), "--workers", "2"], check=True,
                 capture_output=True)
  return folder


def tiny_at(size: int, patch: int) -> str:
  """The tiny diagram tower (`tiny-diagram`: pixels centred on diagram statistics) at another
  input size, registered here under a new preset name: the engine's degradations (blur, noise,
  low resolution) vanish when a 384-px diagram is shrunk to the tiny preset's 56 px."""
  import dataclasses

  from mathvlm.models import presets
  name = f"tiny-{size}"
  presets.CLASSIFIER_PRESETS[name] = dataclasses.replace(presets.DIAGRAM_VISION, image_size=size,
                                                         patch_size=patch)
  return name


def train_scorer(data_dir: str, label: str, workdir: str, steps: int, seed: int,
                 preset: str, lr: float = 2e-4) -> None:
  from mathvlm.configs.classify import get_config
  from mathvlm.train import train
  config = get_config(f"model={preset},classes={LABELS[label]},data=labelled_images,label={label}")
  config.seed, config.steps, config.data.path = seed, steps, data_dir
  config.optim.lr, config.optim.warmup_ratio = lr, 0.05
  config.checkpoint.use_async, config.checkpoint.every = False, steps
  config.metrics.tensorboard, config.metrics.every = False, 50
  train(config, workdir)


def confusion(gold: list[int], pred: list[int], k: int) -> np.ndarray:
  m = np.zeros((k, k), np.int64)
  for g, p in zip(gold, pred):
    m[g, p] += 1
  return m


def auc(gold: list[int], probs: np.ndarray) -> float:
  """ROC AUC (one-vs-rest for several classes): whether the probabilities rank the images by
  their label at all, even where the argmax is always the majority class (0.5: no signal)."""
  from sklearn.metrics import roc_auc_score
  present = sorted(set(gold))          # a level the held-out images lack has no curve
  if len(present) < 2:
    return float("nan")
  if len(present) == 2:
    return float(roc_auc_score(np.equal(gold, present[1]), probs[:, present[1]]))
  p = probs[:, present] / probs[:, present].sum(1, keepdims=True)
  return float(roc_auc_score(gold, p, multi_class="ovr", labels=present))


def against_majority(gold: list[int], pred: list[int], majority: int) -> dict:
  """Image by image against always answering the majority class: right where it is wrong
  (`gained`), wrong where it is right (`lost`), and the exact two-sided sign test of the two
  (McNemar's), so "above the majority class" is a claim with a p-value, not a gap of a few
  images."""
  from scipy.stats import binomtest
  gained = sum(g == q != majority for g, q in zip(gold, pred))
  lost = sum(g == majority != q for g, q in zip(gold, pred))
  p = binomtest(gained, gained + lost, 0.5).pvalue if gained + lost else 1.0
  return {"gained": int(gained), "lost": int(lost), "p": round(float(p), 6)}


def evaluate(test_dir: str, scores: str) -> dict:
  gold = {r["image_vision_dominant"]: r for r in json.load(
      open(os.path.join(test_dir, "instruct.json")))}
  lines = [json.loads(x) for x in open(scores)]
  out = {}
  for label, k in LABELS.items():
    g = [gold[x["id"]][label] for x in lines]
    p = [x[label] for x in lines]
    probs = np.asarray([x[f"{label}_probs"] for x in lines])
    majority = collections.Counter(g).most_common(1)[0]
    out[label] = {"test_images": len(g), "accuracy": round(float(np.mean(np.equal(g, p))), 4),
                  "majority_class": majority[0],
                  "majority_baseline": round(majority[1] / len(g), 4),
                  "vs_majority": against_majority(g, p, majority[0]),
                  "auc": round(auc(g, probs), 4), "confusion": confusion(g, p, k).tolist()}
  return out


def plot(results: dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8))
  for ax, (label, r) in zip(axes, results.items()):
    m = np.asarray(r["confusion"])
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
      ax.text(j, i, str(v), ha="center", va="center",
              color="white" if v > m.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="engine label", xticks=range(len(m)), yticks=range(len(m)),
           title=f"{label}: {r['accuracy']:.0%} (majority {r['majority_baseline']:.0%}), "
                 f"AUC {r['auc']:.2f}")
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--out", default="docs/recipe/scorers")
  p.add_argument("--work", default="out/scorers", help="data, runs and scores")
  p.add_argument("--train", type=int, default=4000)
  p.add_argument("--test", type=int, default=600)
  p.add_argument("--steps", type=int, default=1500)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--lr", type=float, default=2e-4, help="peak; the paper's")
  p.add_argument("--image_size", type=int, default=112)
  p.add_argument("--patch", type=int, default=14)
  a = p.parse_args()
  preset = tiny_at(a.image_size, a.patch)
  from data_prep import labelled_images, score
  os.makedirs(a.out, exist_ok=True)
  tr, te = engine(a.work, "train", a.train, a.seed), engine(a.work, "test", a.test, a.seed)
  labelled_images.main(["--json", os.path.join(tr, "instruct.json"), "--images", tr, "--labels",
                        "clarity,complexity", "--num_classes", "2,4", "--out",
                        os.path.join(a.work, "labels"), "--no_progress"])
  for label in LABELS:
    train_scorer(os.path.join(a.work, "labels"), label, os.path.join(a.work, label), a.steps,
                 a.seed, preset, a.lr)
  scores = os.path.join(a.work, "test_scores.jsonl")
  score.main([*sum((["--ckpt", f"{x}={os.path.join(a.work, x)}"] for x in LABELS), []),
              "--data", os.path.join(te, "instruct.json"), "--images", te, "--out", scores,
              "--batch", "64", "--no_progress"])
  results = evaluate(te, scores)
  summary = {"train_images": a.train, "test_images": a.test, "steps": a.steps, "lr": a.lr,
             "global_batch": 32, "model": f"CLIP ViT, {a.image_size} px, patch {a.patch}, "
             "4 layers, width 64",
             "seed": a.seed, **results}
  with open(os.path.join(a.out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  plot(results, os.path.join(a.out, "confusion.png"))
  print(json.dumps(summary))


if __name__ == "__main__":
  main()
