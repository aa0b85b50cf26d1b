"""A demo's stages compared again on held-out problems it has never seen: a confirmatory test.

  python -m mathvlm.demo.confirm --demo out/demo --n 1000 --seed 1 [--stages sft,dpo,grpo]
      [--option_kinds same|mixed] [--ranked]

The demo's own held-out set (300 figures x 3 versions, seed 0) is where a difference between
stages is first seen, and where the decision to look closer is made; testing the same
difference on the same questions again would count them twice. This draws a new set from the
engine (the held-out side of its content-hash split, so no training problem; another seed, so
other problems than the demo's held-out ones; the demo's engine settings otherwise), answers it
with every stage's saved model exactly as the demo does (greedy, the demo's template and
lengths), and tests each later stage against each earlier one question by question (exact
McNemar, free-form and all). Writes DEMO/confirm_seed<S>/: the problems, <stage>.jsonl (one row
per question) and summary.json.

--ranked also picks each multiple-choice question's option by likelihood, as the demo's
held-out report does. --option_kinds draws the option sets another way than the demo's engine
did (DEMO/confirm_seed<S>_<kinds>/): on mixed sets a model that can tell an option's kind (an
area from a length) may rule out the options the question cannot mean, and the two ranked
accuracies side by side say how much of that a model does.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def answers(demo: str, stage: str, problems: list, batch: int,
            ranked: bool = False) -> list[dict]:
  """The stage's greedy answers and verdicts, as the demo's `held_out` writes them; with
  `ranked`, each multiple-choice question's likeliest option and its verdict too."""
  from tokenizers import Tokenizer

  from mathvlm.data.sources import load_tokenizer
  from mathvlm.demo.__main__ import FULL, STAGES, greedy_answers, load_model
  from mathvlm.eval import engine_heldout
  model, cfg = load_model(f"{demo}/{STAGES.index(stage) + 1}_{stage}")
  tok_path = f"{demo}/data/tokenizer.json"
  responses = greedy_answers(model, cfg, Tokenizer.from_file(tok_path), problems, batch=batch,
                             bucket=FULL["eval_bucket"])
  verdicts = engine_heldout.score(problems, responses)["verdicts"]
  rows = [{"pid": p.pid, "response": r, "answer": p.answer, "correct": verdicts[p.pid]}
          for p, r in zip(problems, responses)]
  if ranked:
    picks = engine_heldout.ranked(model, cfg, load_tokenizer(tok_path), problems,
                                  template="mistral_instruct", batch=batch)
    by_rank = engine_heldout.score(problems, responses, picks)["verdicts"]
    for row, p, k in zip(rows, problems, picks):
      row["ranked"], row["ranked_correct"] = k, by_rank[p.pid]
  return rows


def check_demo(demo: str, stages: list[str]) -> None:
  """A finished demo holds summary.json, its tokenizer and each asked stage's model."""
  from mathvlm.demo.__main__ import STAGES
  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise SystemExit(f"--stages {unknown}: not demo stages (they are {STAGES})")
  need = [f"{demo}/summary.json", f"{demo}/data/tokenizer.json"] + [
      f"{demo}/{STAGES.index(s) + 1}_{s}/model" for s in stages]
  missing = [p for p in need if not os.path.exists(p)]
  if missing:
    raise SystemExit(f"--demo {demo} is not a finished demo (python -m mathvlm.demo --out ...): "
                     f"missing {missing}")


def accuracy(rows: list[dict]) -> dict:
  free = [r for r in rows if r["answer"] not in set("ABCDEFGH")]
  mc = [r for r in rows if r["answer"] in set("ABCDEFGH")]

  def pct(rs, key="correct"):
    return round(100 * sum(r[key] for r in rs) / max(1, len(rs)), 2)

  out = dict(all=pct(rows), free_form=pct(free), multiple_choice=pct(mc), questions=len(rows),
             free_form_questions=len(free))
  if rows and "ranked_correct" in rows[0]:
    out["multiple_choice_ranked"] = pct(mc, "ranked_correct")
  return out


def stage_rows(demo: str, out: str, stage: str, problems: list, batch: int,
               ranked: bool) -> list[dict]:
  """OUT/<stage>.jsonl's rows, answered again unless they are for these very problems (and
  ranked, when asked)."""
  path = f"{out}/{stage}.jsonl"
  kept = [json.loads(x) for x in open(path)] if os.path.exists(path) else []
  if [r["pid"] for r in kept] != [p.pid for p in problems] or ranked and any(
      "ranked" not in r for r in kept):
    kept = answers(demo, stage, problems, batch, ranked)
    with open(path, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in kept)
  return kept


def parse(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m mathvlm.demo.confirm",
                              description=__doc__.split("\n")[0])
  p.add_argument("--demo", default="out/demo", help="a finished demo's --out")
  p.add_argument("--n", type=int, default=1000, help="new held-out figures (x3 versions)")
  p.add_argument("--seed", type=int, default=1, help="engine seed; the demo's own is 0")
  p.add_argument("--stages", default="sft,dpo,grpo")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--workers", type=int, default=2)
  p.add_argument("--option_kinds", default=None, choices=["same", "mixed"],
                 help="the engine's option sets (default: the demo's own)")
  p.add_argument("--ranked", action="store_true",
                 help="also rank each multiple-choice question's options by likelihood")
  return p.parse_args(argv)


def main(argv=None) -> dict:
  a = parse(argv)
  from mathvlm.demo import data, evaluate
  from mathvlm.eval import engine_benchmark
  demo, stages, t = os.path.abspath(a.demo), a.stages.split(","), time.time()
  check_demo(demo, stages)
  if a.seed == json.load(open(f"{demo}/summary.json"))["settings"]["seed"]:
    raise SystemExit(f"--seed {a.seed} is the demo's own: its held-out problems again")
  own = data.load_json(f"{demo}/engine/test/meta.json").get("option_kinds", "mixed")
  kinds = a.option_kinds or own  # a demo made before the option had mixed sets
  out = f"{demo}/confirm_seed{a.seed}" + ("" if kinds == own else f"_{kinds}")
  data.engine_set(f"{out}/engine", a.n, a.seed, a.workers, "test", option_kinds=kinds)
  problems = engine_benchmark.load(f"{out}/engine/instruct.json")
  seen = {json.dumps(r["text_en"], sort_keys=True)
          for r in data.load_json(f"{demo}/engine/test/instruct.json")}
  repeats = sum(json.dumps(r["text_en"], sort_keys=True) in seen
                for r in data.load_json(f"{out}/engine/instruct.json"))
  rows = {}
  for stage in stages:
    rows[stage] = stage_rows(demo, out, stage, problems, a.batch, a.ranked)
    print(f"{stage}: {accuracy(rows[stage])}", flush=True)
  paired = {f"{later}_vs_{earlier}": {
      "free_form": evaluate.paired_change(rows[earlier], rows[later], free_form_only=True),
      "all": evaluate.paired_change(rows[earlier], rows[later])}
      for i, later in enumerate(stages) for earlier in stages[:i]}
  summary = dict(demo=demo, seed=a.seed, option_kinds=kinds, figures=a.n,
                 questions=len(problems),
                 repeats_of_the_demos_held_out=repeats,
                 accuracy={s: accuracy(r) for s, r in rows.items()}, paired=paired,
                 seconds=round(time.time() - t))
  with open(f"{out}/summary.json", "w") as f:
    json.dump(summary, f, indent=1)
  print(json.dumps(summary["paired"]))
  return summary


if __name__ == "__main__":
  main()
