"""python -m data_prep.engine --domain {plane,analytic,function,all} --n N --out DIR --seed S
    [--steps MIN:MAX] [--variants K] [--workers W] [--beam [--beam_options "..."]]

Writes DIR/instruct.json (MAVIS-Geometry fields and ours, see docs/engine/README.md),
DIR/caption.json (LLaVA format), DIR/images/<domain>/*.png (.jpg if blurred or noisy),
DIR/scenes.jsonl (what each image draws, the deduction chain, why each wrong option is wrong)
and DIR/meta.json (counts, rejected attempts). --beam runs the same problems as an Apache Beam
pipeline (DirectRunner here; for Dataflow pass --beam_options "--runner=DataflowRunner
--project=... --region=... --temp_location=gs://...") and writes the same bytes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import writer
from .writer import DOMAINS, Options, generate


def steps_range(text: str) -> tuple:
  try:
    return writer.steps_range(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


def parse(argv=None):
  return parser().parse_args(argv)


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m data_prep.engine", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--domain", default="all", choices=DOMAINS + ("all",))
  p.add_argument("--n", type=int, required=True, help="number of problems (seed problems with "
                 "--variants)")
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workers", type=int, default=1)
  p.add_argument("--split", default="all", choices=["all", "train", "test"],
                 help="train/test: keep only problems whose content hash falls on that side")
  p.add_argument("--test_fraction", type=float, default=0.1)
  p.add_argument("--mc", type=float, default=0.7, help="fraction multiple-choice (MAVIS: ~0.74)")
  p.add_argument("--degrade", type=float, default=0.1,
                 help="fraction of problems given a blur/noise/low-res degradation (clarity 0)")
  p.add_argument("--steps", type=steps_range, default=(1, 6),
                 help="reasoning depth MIN:MAX: the rationale's number of steps (default 1:6; "
                 "up to 11, 12 for --domain plane or analytic; a narrow range of at most 3 steps "
                 "also puts plane shapes apart, so multiple choice keeps its share)")
  p.add_argument("--variants", type=int, default=1,
                 help="K variants per problem: same figure program, new numbers and letters "
                 "(records carry variant_of and variant)")
  p.add_argument("--wrong_options", default="figure", choices=["figure", "figure+mistakes"],
                 help="figure: a question asks one of four quantities of its figure, shown as "
                 "the options (no choices-only rule beats chance); figure+mistakes: where the "
                 "figure has too few, wrong options from wrong reasoning instead of free-form")
  p.add_argument("--option_kinds", default="same", choices=["same", "mixed"],
                 help="same: a multiple-choice set holds the asked quantity's kind only (no "
                 "option the question's wording rules out); mixed: that kind first, then "
                 "others (more multiple choice at depth 1-2, faster, but readable by kind)")
  p.add_argument("--wrong_rationales", action="store_true",
                 help="give each record a wrong rationale made by the engine (field "
                 "wrong_rationale: another option's quantity worked out, or one wrong turn "
                 "carried forward), DPO's rejected side without a model: "
                 "python -m data_prep.engine.dpo_pairs --rejected engine")
  p.add_argument("--beam", action="store_true", help="run as an Apache Beam pipeline")
  p.add_argument("--beam_options", default="",
                 help="Beam pipeline options, e.g. \"--runner=DataflowRunner --project=P\"")
  return p


def main(argv=None):
  p = parser()
  a = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  try:  # a value argparse cannot judge alone: refused like one it can, naming the option
    opts = Options(seed=a.seed, domain=a.domain, split=a.split, test_fraction=a.test_fraction,
                   mc=a.mc, degrade=a.degrade, steps=a.steps, variants=a.variants,
                   wrong_options=a.wrong_options, option_kinds=a.option_kinds,
                   wrong_rationales=a.wrong_rationales).check()
    writer.check_run(a.out, a.n)
    if a.workers < 1:
      raise ValueError(f"engine: --workers {a.workers}; give 1 or more")
  except (ValueError, OSError) as e:
    p.error(str(e))
  try:
    if a.beam:
      from data_prep import beam
      meta = beam.generate(a.out, a.n, opts, workers=a.workers, beam_options=a.beam_options)
    else:
      meta = generate(a.out, a.n, opts, a.workers)
  except writer.NoProblem as e:
    sys.exit(str(e))
  print(json.dumps(meta))


if __name__ == "__main__":
  main()
