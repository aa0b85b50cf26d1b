"""python -m data_prep.engine --domain {plane,analytic,function,all} --n N --out DIR --seed S

Writes DIR/instruct.json (MAVIS-Geometry fields), DIR/caption.json (LLaVA format),
DIR/images/<domain>/*.png, DIR/scenes.jsonl (what each image draws, the deduction chain) and
DIR/meta.json (counts, rejected attempts).
"""

from __future__ import annotations

import argparse
import json
import logging

from .writer import DOMAINS, generate


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m data_prep.engine", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--domain", default="all", choices=DOMAINS + ("all",))
  p.add_argument("--n", type=int, required=True, help="number of samples")
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workers", type=int, default=1)
  p.add_argument("--split", default="all", choices=["all", "train", "test"],
                 help="train/test: keep only problems whose content hash falls on that side")
  p.add_argument("--test_fraction", type=float, default=0.1)
  p.add_argument("--mc", type=float, default=0.7, help="fraction multiple-choice (MAVIS: ~0.74)")
  p.add_argument("--degrade", type=float, default=0.1,
                 help="fraction of samples given a blur/noise/low-res degradation (clarity 0)")
  a = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  meta = generate(a.out, a.n, a.seed, a.domain, a.workers, a.split, a.test_fraction, a.mc, a.degrade)
  print(json.dumps(meta))


if __name__ == "__main__":
  main()
