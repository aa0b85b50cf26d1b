"""Samples to files: per-sample seeds, worker processes, output in index order.

Sample i is drawn from rng(seed, i, attempt, split): it does not depend on which worker made it,
so the output is byte-identical for any worker count. A sample whose problem fails its re-check
(`Rejected`) or lands in the other split is redrawn with the next attempt; rejections are counted
in meta.json, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os

import numpy as np
import sympy as sp

from . import analytic, functions, plane_problem, render
from .problems import Rejected, assemble

log = logging.getLogger(__name__)
DOMAINS = ("plane", "analytic", "function")
MAKERS = {"plane": plane_problem.make, "analytic": analytic.make, "function": functions.make}
SPLITS = {"all": 0, "train": 1, "test": 2}
VERSIONS = ("text_dominant", "text_lite", "vision_dominant")
SHORT = {"text_dominant": "td", "text_lite": "tl", "vision_dominant": "vd"}
CAPTION_ASK = ["Describe the diagram.", "What does this figure show?",
               "Give a detailed caption of this math diagram.", "Describe every element of the image."]
MAX_ATTEMPTS = 200


def domain_for(domain: str, index: int) -> str:
  return DOMAINS[index % 3] if domain == "all" else domain


def is_test(key: str, test_fraction: float) -> bool:
  """Content-hash split: the same problem content always falls on the same side, any seed."""
  h = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16 ** 12
  return h < test_fraction


def make_sample(job: tuple) -> dict:
  """One sample: its records and PNG bytes. Pure in (seed, index, options)."""
  seed, index, domain, split, test_fraction, mc_p, degrade_p = job
  dom = domain_for(domain, index)
  rejected = {}
  for attempt in range(MAX_ATTEMPTS):
    rng = np.random.default_rng([seed, index, attempt, SPLITS[split]])
    try:
      b = MAKERS[dom](rng)
      if split != "all" and is_test(b.key, test_fraction) != (split == "test"):
        rejected["other_split"] = rejected.get("other_split", 0) + 1
        continue
      rec = assemble(b, rng, "", bool(rng.random() < mc_p))
      break
    except Rejected as e:
      why = str(e).split(":")[0][:60]
      rejected[why] = rejected.get(why, 0) + 1
  else:
    raise RuntimeError(f"engine: sample {index} ({dom}) failed {MAX_ATTEMPTS} attempts: {rejected}; "
                       "widen the generator's parameter ranges")
  sid = f"{dom}_{split}_{seed}_{index:07d}"
  clarity, degradation = 1, None
  imgs = dict(b.images)
  if rng.random() < degrade_p:
    clarity = 0
    drng = np.random.default_rng([seed, index, 99])
    kind = None
    for k in list(imgs):
      imgs[k], kind = render.degrade(imgs[k], np.random.default_rng(drng.integers(2 ** 32)))
    degradation = kind
  files, paths = [], {}
  if "single" in imgs:
    rel = f"images/{dom}/{sid}.png"
    files.append((rel, render.png(imgs["single"])))
    paths = {v: rel for v in VERSIONS}
  else:
    for v in VERSIONS:
      rel = f"images/{dom}/{sid}_{SHORT[v]}.png"
      files.append((rel, render.png(imgs[v])))
      paths[v] = rel
  caption = " ".join(b.caption)
  record = {
    "id": sid, "domain": dom, "family": b.family, "split": split,
    "image_text_dominant": paths["text_dominant"], "image_text_lite": paths["text_lite"],
    "image_vision_dominant": paths["vision_dominant"],
    "versions_share_image": "single" in imgs,
    "answer_index": rec["answer_index"], "choices": rec["choices"], "answer": rec["answer"],
    "question_type": rec["question_type"], "complexity": b.complexity, "clarity": clarity,
    "degradation": degradation,
    "text_en": {
      "diagram_generation": " ".join(b.generation), "caption": caption,
      "text_dominant_question": rec["questions"]["text_dominant"],
      "text_lite_question": rec["questions"]["text_lite"],
      "vision_dominant_question": rec["questions"]["vision_dominant"],
      "CoT_reasoning": rec["cot"],
    },
    "rephrasings": rec["rephrasings"],
  }
  cap = {"id": sid, "image": paths["vision_dominant"], "conversations": [
    {"from": "human", "value": "<image>\n" + CAPTION_ASK[index % len(CAPTION_ASK)]},
    {"from": "gpt", "value": caption}]}
  val = rec["value"]
  scene = {"id": sid, "target": b.target, "facts": b.facts, "drawn": b.drawn,
           "givens": {k: str(v) for k, v in b.givens.items()},
           "chain": [{"name": d.name, "expr": d.expr, "inputs": list(d.inputs), "value": str(d.value)}
                     for d in b.chain],
           "answer_float": None if val is None or not getattr(val, "is_number", False) else float(val),
           "measured": b.measured if isinstance(b.measured, bool) else float(b.measured)}
  return {"record": record, "caption": cap, "scene": scene, "files": files, "rejected": rejected}


def generate(out: str, n: int, seed: int, domain: str = "all", workers: int = 1,
             split: str = "all", test_fraction: float = 0.1, mc: float = 0.7,
             degrade: float = 0.1, start: int = 0) -> dict:
  """Write n samples under `out`; returns the summary also written to meta.json."""
  if domain not in DOMAINS + ("all",):
    raise ValueError(f"engine: --domain {domain!r}; use one of {DOMAINS + ('all',)}")
  if split not in SPLITS:
    raise ValueError(f"engine: --split {split!r}; use all, train or test")
  jobs = [(seed, i, domain, split, test_fraction, mc, degrade) for i in range(start, start + n)]
  records, caps, rejected = [], [], {}
  made = set()
  os.makedirs(out, exist_ok=True)
  sc_path = os.path.join(out, "scenes.jsonl")
  with open(sc_path, "w") as sc_f:
    def take(s):
      for rel, data in s["files"]:
        d = os.path.dirname(rel)
        if d not in made:
          os.makedirs(os.path.join(out, d), exist_ok=True)
          made.add(d)
        with open(os.path.join(out, rel), "wb") as f:
          f.write(data)
      records.append(s["record"])
      caps.append(s["caption"])
      sc_f.write(json.dumps(s["scene"], ensure_ascii=False) + "\n")
      for k, v in s["rejected"].items():
        rejected[k] = rejected.get(k, 0) + v
      if len(records) % 1000 == 0:
        log.info("engine: %d / %d samples", len(records), n)
    if workers <= 1:
      for j in jobs:
        take(make_sample(j))
    else:
      ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
      with ctx.Pool(workers) as pool:
        for s in pool.imap(make_sample, jobs, chunksize=max(1, min(32, n // (workers * 8) or 1))):
          take(s)
  with open(os.path.join(out, "instruct.json"), "w") as f:
    json.dump(records, f, ensure_ascii=False, indent=1)
  with open(os.path.join(out, "caption.json"), "w") as f:
    json.dump(caps, f, ensure_ascii=False, indent=1)
  counts = {}
  for r in records:
    counts[r["domain"]] = counts.get(r["domain"], 0) + 1
  meta = {"n": len(records), "seed": seed, "domain": domain, "split": split,
          "test_fraction": test_fraction, "multiple_choice": mc, "degrade": degrade,
          "per_domain": counts, "rejected_attempts": dict(sorted(rejected.items())),
          "sympy": sp.__version__}
  with open(os.path.join(out, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
  return meta
