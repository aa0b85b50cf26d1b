"""`make demo`: a math VLM trained through MAVIS's four stages on engine data, on this machine.

  python -m mathvlm.demo [--out out/demo] [--quick] [--seed 0]

1. the data engine draws training and held-out problems (plane geometry, analytic geometry,
   functions) with captions, answers and rationales;
2. a BPE tokenizer is trained on their text; the data_prep builders write ArrayRecord datasets;
3. the real trainer runs configs/demo.py's stages: CLIP-Math (contrastive), alignment (captions),
   instruction tuning (problems), DPO (pairs from the stage-3 model's own wrong answers), then
   GRPO (rewards checked against the engine's answers, on problems the engine makes during
   training, at a difficulty that follows the pass rate);
4. after each stage the model is measured on held-out data (retrieval for CLIP-Math; accuracy by
   domain, question version and question type for the others) beside the baselines;
5. the final model answers K variants of held-out seed problems (the engine's dynamic benchmark,
   scored as DynaMath: average-case and worst-case accuracy over variants);
6. the final model runs the MATH-Vision testmini pipeline on the real files in ../shared/data;
7. OUT/REPORT.md with tables and plots, OUT/summary.json with every number.

Nothing is downloaded. A stage whose workdir already finished is resumed (a no-op), so a rerun
after an interruption continues. `--quick` is the test suite's variant: the same path, small
enough to finish in a few minutes, too small to learn much.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import shutil
import time
from typing import Any


# dynamic_seeds: seed problems of the dynamic benchmark, VARIANTS each (x 3 question versions);
# 72 (24 a domain) adds about 40-55 s to the full run on 2 cores (engine ~0.8 CPU s a seed,
# answers ~1 CPU s a batch of 64, plus a compile per new prompt width), within its minute.
# eval_bucket: prompts are padded to a multiple of it, and each width compiles once: the quick
# run's few problems are answered at fewer, wider widths (compiling is most of its time).
FULL = dict(n_train=10000, n_test=300, dpo_problems=2400, eval_batch=64, eval_bucket=32,
            dynamic_seeds=72,
            epochs={})
QUICK = dict(n_train=160, n_test=24, dpo_problems=48, eval_batch=36, eval_bucket=128,
             dynamic_seeds=6,
             epochs=dict(clip_math=1, align=1, sft=2, dpo=1))
VERSIONS = ["text_lite"]            # MAVIS's default for instruction tuning
ANSWER = "value"                    # `The answer is V.`: see configs/demo.py
MAX_NEW_TOKENS = 32
VARIANTS = 3                        # per seed problem of the dynamic benchmark (DynaMath: 10)


def say(msg: str) -> None:
  print(msg, flush=True)


def stage_config(stage: str, data: str, epochs: int, quick: bool, seed: int, **fields):
  """configs/demo.py as `--config configs/demo.py:...` gives it, with the seed and `fields`
  (`section.name`: value) set. The printed command names each of them as `--config.KEY=VALUE`:
  run with its workdir it reruns the stage, where one left out would train another run (stage 3
  from random weights instead of alignment's model)."""
  from mathvlm.configs import demo
  arg = (f"stage={stage},data={data}" + (",quick=True" if quick else "")
         + (f",epochs={epochs}" if epochs else ""))
  c = demo.get_config(arg)
  overrides = dict(fields, **({"seed": seed} if seed != c.seed else {}))
  for key, value in overrides.items():
    *sections, name = key.split(".")
    node = c
    for section in sections:
      node = node[section]
    node[name] = value
  flags = "".join(f" --config.{key}={shlex.quote(str(value))}" for key, value in overrides.items())
  recipe = shlex.quote(f"configs/demo.py:{arg}")
  return c, f"python -m mathvlm.train --config {recipe}{flags} --workdir WORKDIR"


def run_stage(name: str, config, command: str, workdir: str) -> dict:
  from mathvlm.demo.report import read_metrics
  from mathvlm.train import train
  say(f"      {command.replace('WORKDIR', shlex.quote(workdir))}")
  t = time.time()
  train(config, workdir)
  rows = read_metrics(workdir)
  if not rows:
    raise SystemExit(f"stage {name}: no metrics in {workdir}/metrics.jsonl")
  return dict(steps=rows[-1]["step"], first_loss=rows[0]["loss"], last_loss=rows[-1]["loss"],
              seconds=time.time() - t)


def load_model(workdir: str):
  from mathvlm import checkpoint
  return checkpoint.load_model(os.path.join(workdir, "model"))


@dataclasses.dataclass
class Demo:
  """What the stages share: the run's options, its data and what it has measured so far."""
  args: argparse.Namespace
  mode: dict
  out: str
  tok: Any = None            # tokenizers.Tokenizer (generation)
  hf_tok: Any = None         # transformers tokenizer (likelihood ranking, retrieval)
  train_problems: list = dataclasses.field(default_factory=list)
  test_problems: list = dataclasses.field(default_factory=list)
  dynamic_problems: list = dataclasses.field(default_factory=list)  # variants of held-out seeds
  results: dict = dataclasses.field(default_factory=lambda: dict(
      training={}, evals={}, ranked={}, ranked_norm={}, ranked_ties={}))

  def workdir(self, stage: str) -> str:
    return f"{self.out}/{STAGES.index(stage) + 1}_{stage}"

  def config(self, stage: str, **fields):
    return stage_config(stage, f"{self.out}/data", self.mode["epochs"].get(stage, 0),
                        self.args.quick, self.args.seed, **fields)

  def train(self, stage: str, label: str, **fields) -> None:
    config, command = self.config(stage, **fields)
    self.results["training"][label] = run_stage(stage, config, command, self.workdir(stage))


STAGES = ("clip_math", "align", "sft", "dpo", "grpo")
FINAL = STAGES[-1]


def make_data(d: Demo) -> None:
  """Engine problems (training, held-out, the dynamic benchmark's variants), the tokenizer, the
  ArrayRecord datasets, the held-out problems and baselines."""
  from tokenizers import Tokenizer

  from mathvlm.data.sources import load_tokenizer
  from mathvlm.demo import data, evaluate
  from mathvlm.eval import engine_benchmark

  out, mode = d.out, d.mode
  engine = data.generate_engine(out, mode["n_train"], mode["n_test"], d.args.seed,
                                d.args.workers)
  t = time.time()
  engine["dynamic"] = data.generate_variants(out, mode["dynamic_seeds"], VARIANTS, d.args.seed,
                                             d.args.workers)
  d.results["dynamic"] = dict(seconds=dict(engine=round(time.time() - t, 1)))
  d.train_problems = data.load_json(f"{out}/engine/train/instruct.json")
  say(f"[1/9] engine: {engine['train']['n']} training and {engine['test']['n']} held-out "
      f"problems ({engine['train']['per_domain']}), {mode['dynamic_seeds']} held-out seeds x "
      f"{VARIANTS} variants -> {out}/engine")
  tok_path = f"{out}/data/tokenizer.json"
  if not os.path.exists(tok_path):
    tok = data.train_tokenizer(data.engine_texts(
        d.train_problems, data.load_json(f"{out}/engine/train/caption.json")), 1024)
    data.add_bos(tok)
    os.makedirs(f"{out}/data", exist_ok=True)
    tok.save(tok_path)
  d.tok, d.hf_tok = Tokenizer.from_file(tok_path), load_tokenizer(tok_path)
  ids = [d.tok.token_to_id(s) for s in data.SPECIALS]
  if ids != list(range(len(data.SPECIALS))):
    raise SystemExit(f"{tok_path}: special tokens {data.SPECIALS} have ids {ids}; the demo "
                     "presets expect 0..4 (delete the file to retrain it)")
  built = data.build_all(out, 56, VERSIONS, ANSWER)
  say(f"[2/9] tokenizer: BPE, {d.tok.get_vocab_size()} tokens -> {tok_path}; ArrayRecord: " +
      ", ".join(f"{k} {v['written']}" for k, v in built.items()))
  d.test_problems = engine_benchmark.load(f"{out}/engine/test/instruct.json")
  d.dynamic_problems = unseen_variants(d)
  d.results.update(engine=engine, built=built, tokenizer=dict(vocab=d.tok.get_vocab_size()),
                   baselines=evaluate.baselines(d.train_problems, d.test_problems, d.hf_tok))


def unseen_variants(d: Demo) -> list:
  """The dynamic benchmark's problems, less every seed with a variant whose content is a training
  problem (`data.seen_in_training`): the benchmark is only worth something unseen."""
  from mathvlm.demo import data
  from mathvlm.eval import engine_benchmark
  problems = engine_benchmark.load(f"{d.out}/engine/dynamic/instruct.json")
  seen = data.seen_in_training(d.out)
  dropped = {p.meta["seed"] for p in problems if p.meta["group"] in seen}
  d.results["dynamic"]["seen_in_training"] = dict(variants=len(seen), seeds=len(dropped))
  return [p for p in problems if p.meta["seed"] not in dropped]


def generate(d: Demo, model, cfg, problems: list) -> list[str]:
  return greedy_answers(model, cfg, d.tok, problems, batch=d.mode["eval_batch"],
                        bucket=d.mode["eval_bucket"])


def greedy_answers(model, cfg, tok, problems: list, *, batch: int, bucket: int) -> list[str]:
  """Greedy answers as every evaluation here asks them (template, lengths), so the held-out,
  DPO-pool, dynamic and confirmatory (`mathvlm.demo.confirm`) numbers are comparable."""
  from mathvlm.eval import engine_heldout
  return engine_heldout.answer(model, cfg, tok, problems, template="mistral_instruct",
                               batch=batch, max_new_tokens=MAX_NEW_TOKENS, max_len=256,
                               bucket=bucket)


def held_out(d: Demo, stage: str) -> str:
  """The stage's model on the held-out problems: generated answers and options ranked by
  likelihood, per problem in WORKDIR/held_out.jsonl; returns the line the demo prints."""
  from mathvlm.eval import engine_heldout as evaluate
  from mathvlm.eval import likelihood
  model, cfg = load_model(d.workdir(stage))
  responses = generate(d, model, cfg, d.test_problems)
  ranking = likelihood.rank(model, cfg, d.hf_tok, d.test_problems, template="mistral_instruct",
                            batch_size=d.mode["eval_batch"])
  picks, normed = ranking.acc, ranking.acc_norm
  scored = evaluate.score(d.test_problems, responses)
  by_rank = evaluate.score(d.test_problems, responses, picks)
  by_norm = evaluate.score(d.test_problems, responses, normed)
  with open(f"{d.workdir(stage)}/held_out.jsonl", "w") as f:
    for p, r, k, n in zip(d.test_problems, responses, picks, normed):
      f.write(json.dumps({"pid": p.pid, "response": r, "ranked": k, "answer": p.answer,
                          "correct": scored["verdicts"][p.pid],
                          "ranked_correct": by_rank["verdicts"][p.pid], "ranked_norm": n,
                          "ranked_norm_correct": by_norm["verdicts"][p.pid]}) + "\n")
  a, b, c = scored["accuracy"], by_rank["accuracy"], by_norm["accuracy"]
  d.results["evals"][stage], d.results["ranked"][stage] = a, b
  d.results["ranked_norm"][stage] = c
  d.results["ranked_ties"][stage] = dict(acc=ranking.ties, acc_norm=ranking.ties_norm)
  return (f"held-out accuracy {a['all']['accuracy']:.1f}% generated (multiple choice "
          f"{a['type/multiple-choice']['accuracy']:.1f}%, free-form "
          f"{a.get('type/free-form', {'accuracy': 0})['accuracy']:.1f}%); "
          f"{b['all']['accuracy']:.1f}% with options ranked by likelihood (multiple choice "
          f"{b['type/multiple-choice']['accuracy']:.1f}% by summed log-prob, "
          f"{c['type/multiple-choice']['accuracy']:.1f}% per byte)")


def clip_math(d: Demo) -> None:
  """Stage 1, with image -> caption retrieval before (untrained tower) and after."""
  from mathvlm.data.records import read
  from mathvlm.demo import evaluate
  from mathvlm.models import registry
  from mathvlm.pretrained import model_config

  c, _ = d.config("clip_math")
  captions = read(f"{d.out}/data_test", "mavis_caption")
  untrained = registry.of_config(model_config(c)).build(model_config(c), c.seed)
  before = evaluate.retrieval(untrained, captions, d.hf_tok, c.data.max_len)
  d.train("clip_math", "1 CLIP-Math")
  after = evaluate.retrieval(load_model(d.workdir("clip_math"))[0], captions, d.hf_tok,
                             c.data.max_len)
  d.results["retrieval"] = dict(before=before, after=after)
  say(f"[3/9] CLIP-Math: image->caption top-1 on {after['pairs']} held-out pairs "
      f"{100 * before['image_to_caption_top1']:.1f}% untrained -> "
      f"{100 * after['image_to_caption_top1']:.1f}% (chance {100 * after['chance']:.1f}%), "
      f"top-5 {100 * before['image_to_caption_top5']:.1f}% -> "
      f"{100 * after['image_to_caption_top5']:.1f}% (chance {100 * after['chance_top5']:.1f}%)")


def dpo(d: Demo) -> None:
  """Stage 4 on the first dpo_problems training problems: rejecting the stage-3 model's own
  wrong answers to them (MAVIS), or with --rejected engine the engine's wrong rationales."""
  from mathvlm.demo import data

  folder, stats = (engine_pairs if d.args.rejected == "engine" else model_pairs)(d)
  d.results["built"]["preferences"] = data.build("preferences", [
      "--json", f"{folder}/dpo_pairs.jsonl", "--images", folder, "--out", f"{d.out}/data",
      "--image_size", "56"])
  d.train("dpo", "4 DPO", **{"model.init_from": d.workdir("sft")})
  d.results["dpo_pairs"] = dict(stats, rejected=d.args.rejected)
  made = (f"{stats['correct']} of {stats['responses']} training answers were right"
          if d.args.rejected == "model" else
          f"the engine's wrong rationales; {stats['no_wrong_rationale']} of "
          f"{stats['problems']} problems had none")
  say(f"[6/9] DPO on {stats['pairs']} pairs ({made}): {held_out(d, 'dpo')}")


def model_pairs(d: Demo) -> tuple[str, dict]:
  """(folder, counts): the stage-3 model answers the pool; its wrong answers are rejected."""
  from mathvlm.demo import data
  from mathvlm.eval import engine_benchmark
  folder = f"{d.out}/engine/train"
  model, cfg = load_model(d.workdir("sft"))
  pool = [p for p in engine_benchmark.load(f"{folder}/instruct.json")
          if p.meta["version"] == VERSIONS[0]][:d.mode["dpo_problems"]]
  responses = generate(d, model, cfg, pool)
  return folder, data.preference_pairs(f"{folder}/instruct.json",
                                       {p.meta["group"]: r for p, r in zip(pool, responses)},
                                       VERSIONS[0], ANSWER, f"{folder}/dpo_pairs.jsonl")


def engine_pairs(d: Demo) -> tuple[str, dict]:
  """(folder, counts): the same pool made again with --wrong_rationales (the engine's problems
  are pure in seed and index: the first dpo_problems training problems, byte for byte, each
  with a rationale that has one mistake), whose wrong rationales are rejected; no model is
  sampled."""
  from mathvlm.demo import data
  folder = f"{d.out}/engine/train_wrong"
  data.engine_set(folder, d.mode["dpo_problems"], d.args.seed, d.args.workers, "train",
                  wrong_rationales=True)
  return folder, data.engine_preference_pairs(f"{folder}/instruct.json", VERSIONS[0], ANSWER,
                                              f"{folder}/dpo_pairs.jsonl")


def grpo(d: Demo) -> None:
  """Stage 5: GRPO from the DPO model, on problems the engine makes during training (never a
  held-out one: the engine's content-hash split), rewarded by the evaluation's answer judge, at
  the reasoning depth the curriculum sets from the running pass rate."""
  from mathvlm.demo.report import read_metrics
  d.train("grpo", "5 GRPO", **{"model.init_from": d.workdir("dpo")})
  rows = read_metrics(d.workdir("grpo"))
  keep = ("step", "loss", "reward/mean", "reward/std", "groups/all_equal",
          "groups/all_equal_after", "groups/refilled", "curriculum/level", "curriculum/pass_rate",
          "response_length", "rollout_seconds", "clip_fraction", "entropy")
  c, _ = d.config("grpo")
  settings = dict(c.grpo.to_dict(), prompts_per_step=c.data.global_batch, lr=c.optim.lr,
                  steps=c.steps)
  logged = lambda k: k in keep or k.startswith("pass@")
  d.results["grpo"] = dict(settings=settings,
                           curve=[{k: v for k, v in r.items() if logged(k)} for r in rows])
  line = held_out(d, "grpo")
  d.results["grpo"]["paired"] = paired_changes(d, "grpo", ("sft", "dpo"))
  say(f"[7/9] GRPO, {len(rows)} steps (reward {rows[0]['reward/mean']:.2f} -> "
      f"{rows[-1]['reward/mean']:.2f}, depth level {rows[0]['curriculum/level']:.0f} -> "
      f"{rows[-1]['curriculum/level']:.0f}): {line}")


def paired_changes(d: Demo, stage: str, against: tuple[str, ...]) -> dict:
  """The stage's held-out answers against earlier stages', question by question (McNemar)."""
  from mathvlm.demo import evaluate
  rows = lambda s: [json.loads(x) for x in open(f"{d.workdir(s)}/held_out.jsonl")]
  after = rows(stage)
  return {f"vs_{s}": {"free_form": evaluate.paired_change(rows(s), after, free_form_only=True),
                      "all": evaluate.paired_change(rows(s), after)} for s in against}


def dynamic(d: Demo) -> None:
  """The final model on VARIANTS variants of held-out seed problems: a model that learned the
  method answers every variant; one that learned a seed's look or a plausible number does not,
  which the worst case shows (DynaMath). Per problem in OUT/engine/dynamic/responses.jsonl."""
  from mathvlm.demo import evaluate
  from mathvlm.eval import engine_dynamic
  t = time.time()
  model, cfg = load_model(d.workdir(FINAL))
  problems = d.dynamic_problems
  responses = dict(zip([p.pid for p in problems], generate(d, model, cfg, problems)))
  scored = engine_dynamic.evaluate(problems, responses, variants=VARIANTS)
  with open(f"{d.out}/engine/dynamic/responses.jsonl", "w") as f:
    for p in problems:
      f.write(json.dumps({"pid": p.pid, "seed": p.meta["seed"], "variant": p.meta["variant"],
                          "response": responses[p.pid], "answer": p.answer}) + "\n")
  before = d.results["dynamic"]
  r = d.results["dynamic"] = dict(
      evaluate.dynamic_summary(scored, problems), seen_in_training=before["seen_in_training"],
      seconds=dict(before["seconds"], answers=round(time.time() - t, 1)))
  say(f"[8/9] dynamic benchmark, {r['seeds']} held-out seeds x {r['variants']} variants x 3 "
      f"versions: average {r['average']:.1f}%, worst case {r['worst_case']:.1f}% (robustness "
      f"{r['robustness']:.2f}), versions agree on {r['consistency']['agreement']:.1f}%")


def math_v(d: Demo) -> None:
  """The final model through the MATH-Vision testmini pipeline on the real files, once."""
  from mathvlm.demo import data
  from mathvlm.eval import run as eval_run
  final, scores = f"{d.workdir(FINAL)}/model", f"{d.out}/math_v"
  shutil.copy(f"{d.out}/data/tokenizer.json", f"{final}/tokenizer.json")
  eval_run.main(["--benchmark", "math_v", "--ckpt", final,
                 "--data", os.path.join(data.SHARED, "math_v"),
                 "--out", scores, "--template", "mistral_instruct", "--batch", "32",
                 "--max_new_tokens", str(MAX_NEW_TOKENS)]
                + (["--limit", "32"] if d.args.quick else []))  # the suite checks the path
  with open(f"{scores}/scores.json") as f:
    d.results["math_v"] = json.load(f)
  a = d.results["math_v"]["all"]
  say(f"[9/9] MATH-Vision testmini: {a['correct']}/{a['total']} -> {scores}/scores.md")


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m mathvlm.demo", description=__doc__.split("\n")[0])
  p.add_argument("--out", default="out/demo")
  p.add_argument("--quick", action="store_true", help="the test suite's few-minute variant")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workers", type=int, default=2, help="engine and builder processes")
  p.add_argument("--rejected", choices=("model", "engine"), default="model",
                 help="DPO's rejected side: the stage-3 model's own wrong answers (MAVIS) or "
                      "the engine's wrong rationales for the same problems")
  args = p.parse_args(argv)
  t0 = time.time()
  d = Demo(args, QUICK if args.quick else FULL, os.path.abspath(args.out))
  os.makedirs(d.out, exist_ok=True)
  make_data(d)
  clip_math(d)
  d.train("align", "2 alignment", **{"model.vision_init_from": d.workdir("clip_math")})
  say(f"[4/9] alignment: {held_out(d, 'align')}")
  d.train("sft", "3 instruction tuning", **{"model.init_from": d.workdir("align")})
  say(f"[5/9] instruction tuning: {held_out(d, 'sft')}")
  dpo(d)
  grpo(d)
  dynamic(d)
  math_v(d)
  return write_summary(d, time.time() - t0)


def write_summary(d: Demo, seconds: float) -> dict:
  from mathvlm.demo import report
  r = d.results
  summary = dict(
      command=("make demo" if not d.args.quick else "python -m mathvlm.demo --quick")
      + (" --rejected engine" if d.args.rejected == "engine" else ""),
      machine=f"{platform.machine()}, {os.cpu_count()} CPU cores",
      settings=dict(seed=d.args.seed, quick=d.args.quick, versions=VERSIONS, answer=ANSWER,
                    max_new_tokens=MAX_NEW_TOKENS, variants=VARIANTS,
                    mc=r["engine"]["train"]["multiple_choice"],
                    **{k: v for k, v in d.mode.items() if k != "epochs"}),
      engine=r["engine"], tokenizer=r["tokenizer"],
      built={k: v["written"] for k, v in r["built"].items()},
      retrieval=r["retrieval"], baselines=r["baselines"], evals=r["evals"],
      ranked=r["ranked"], ranked_norm=r["ranked_norm"], ranked_ties=r["ranked_ties"],
      training=r["training"], dpo_pairs=r["dpo_pairs"], grpo=r["grpo"],
      dynamic=r["dynamic"], math_v=r["math_v"], workdirs={s: d.workdir(s) for s in STAGES},
      seconds=seconds)
  summary["reading"] = reading(summary)
  with open(f"{d.out}/summary.json", "w") as f:
    json.dump(summary, f, indent=1)
  path = report.write(d.out, summary)
  say(f"done in {summary['seconds']:.0f} s: {path}")
  return summary


def reading(s: dict) -> list[str]:
  """What the numbers say, written from the numbers (so it stays true when they change)."""
  b, e, k = s["baselines"], s["evals"], s["ranked"]
  best = max(b["random"], b["majority"])
  acc = lambda table, stage, key="all": table[stage].get(key, {"accuracy": 0.0})["accuracy"]
  mc = lambda table, stage: acc(table, stage, "type/multiple-choice")
  free = lambda stage: acc(e, stage, "type/free-form")
  vs = lambda x, y, yes, no: yes if x >= y else no
  step = lambda x, y: ("within a point of" if abs(x - y) <= 1 else vs(x, y, "above", "below"))
  n_mc = e["sft"].get("type/multiple-choice", {"total": 0})["total"]
  chance_mc = b["random"] * e["sft"]["all"]["total"] / max(n_mc, 1)  # free-form counts 0 there
  out = [
      f"- Instruction tuning: {acc(e, 'sft'):.1f}% of held-out answers right as generated "
      f"(multiple choice {mc(e, 'sft'):.1f}%, free-form {free('sft'):.1f}%), against the better "
      f"baseline's {best:.1f}% ({acc(e, 'sft') - best:+.1f} points); after alignment alone "
      f"{acc(e, 'align'):.1f}%.",
      f"- Multiple choice as generated: {mc(e, 'sft'):.1f}% after instruction tuning, "
      + vs(mc(e, 'sft'), chance_mc, "above", "below") + f" chance ({chance_mc:.1f}%): the model "
      "answers with a value (`The answer is V.`), and a value that is none of the options counts "
      "wrong. " + ranked_reading(s, chance_mc, n_mc),
      f"- DPO: {acc(e, 'dpo'):.1f}% generated, {acc(k, 'dpo'):.1f}% ranked: "
      f"{step(acc(e, 'dpo'), acc(e, 'sft'))} instruction tuning as generated "
      f"({acc(e, 'dpo') - acc(e, 'sft'):+.1f} points), {step(acc(k, 'dpo'), acc(k, 'sft'))} it "
      f"ranked ({acc(k, 'dpo') - acc(k, 'sft'):+.1f}). One point is "
      f"{e['sft']['all']['total'] / 100:g} questions (how DPO's settings were chosen is in "
      "configs/demo.py).",
      f"- Free-form: {free('sft'):.1f}% after instruction tuning: text-lite and "
      "vision-dominant questions put the measurements in a 56-pixel diagram, and a model this "
      "size, trained on answers alone, mostly learns which values are plausible for a question.",
      choices_only_reading(b, chance_mc / max(b["random"], 1e-9)),
  ]
  out.append(grpo_reading(e, s["grpo"]))
  out.append(dynamic_reading(s["dynamic"]))
  if s["settings"]["quick"]:
    out.append("- `--quick` trains for seconds: its numbers check the path, not the learning.")
  return out


def ranked_reading(s: dict, chance_mc: float, n_mc: int) -> str:
  """Multiple choice ranked by likelihood after instruction tuning, against chance (not against
  generated accuracy, which counts every value that is none of the options wrong): within two
  standard errors of a guesser's accuracy on these questions it is said to be chance."""
  k, norm = s["ranked"], s.get("ranked_norm") or {}
  mc = lambda table, stage: table.get(stage, {}).get("type/multiple-choice",
                                                     {"accuracy": 0.0})["accuracy"]
  p = chance_mc / 100
  noise = 200 * (p * (1 - p) / max(n_mc, 1)) ** 0.5
  both = [("summed log-prob", mc(k, "sft"), mc(k, "align"))]
  if "sft" in norm:
    both.append(("log-prob per byte, lm-evaluation-harness's acc_norm", mc(norm, "sft"),
                 mc(norm, "align")))
  said = "; ".join(f"{x:.1f}% by {name} (after alignment alone {y:.1f}%)"
                   for name, x, y in both)
  far = [(name.split(",")[0], x) for name, x, _ in both if abs(x - chance_mc) > noise]
  gauge = f"chance {chance_mc:.1f}%, two standard errors {noise:.1f} points on {n_mc} questions"
  if not far:
    verdict = (f"within noise of chance ({gauge}): ranking shows no preference for the right "
               "option")
  else:
    verdict = "; ".join(f"by {name} {x - chance_mc:+.1f} points, "
                        + ("above" if x > chance_mc else "below") + " chance by more than noise"
                        for name, x in far) + "".join(
        f"; by {name.split(',')[0]} within noise" for name, x, _ in both
        if abs(x - chance_mc) <= noise) + f" ({gauge})"
  return (f"Ranked by likelihood among the options it picks the right one in {said}: "
          f"{verdict}. Summed log-probs penalise every extra token, so they favour the options "
          "written with the fewest.")


def choices_only_reading(b: dict, to_mc: float) -> str:
  """The best rule that reads only the options, against chance, on the multiple-choice questions
  (`to_mc` turns a share of all questions into a share of those)."""
  rules = {k[len("choices_only_"):]: v * to_mc for k, v in b.items()
           if k.startswith("choices_only_")}
  if "slip_source" in rules:  # `rule` is its alias (evaluate.baselines): one rule, counted once
    rules.pop("rule", None)
  best, chance = max(rules, key=rules.get), b["random"] * to_mc
  return (f"- Options alone: the best of {len(rules)} choices-only rules ({best}) picks the right "
          f"option in {rules[best]:.1f}% of the multiple-choice questions, chance {chance:.1f}% "
          f"({rules[best] - chance:+.1f} points; the best of many rules on a few hundred "
          "questions, each problem's options asked in every version, is biased upward; "
          "`python -m benchmarks.engine` measures them on 1,000 fresh problems)"
          + (": the options give little away." if rules[best] - chance <= 10 else
             ": the options give part of the answer away."))


def grpo_reading(e: dict, g: dict) -> str:
  """GRPO's held-out change against where it started (DPO) and instruction tuning alone."""
  from mathvlm.demo.report import grpo_steps
  steps = grpo_steps(g["settings"])
  acc = lambda stage, key: e[stage].get(key, {"accuracy": 0.0})["accuracy"]
  free = lambda stage: acc(stage, "type/free-form")
  curve = g["curve"]
  head, tail = curve[:10], curve[-10:]
  mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)
  return (f"- GRPO ({len(curve)} steps): free-form {free('dpo'):.1f}% -> {free('grpo'):.1f}% "
          f"({free('grpo') - free('dpo'):+.1f} points; instruction tuning alone "
          f"{free('sft'):.1f}%), all questions "
          f"{acc('dpo', 'all'):.1f}% -> {acc('grpo', 'all'):.1f}%; the training reward went "
          f"from {mean(head, 'reward/mean'):.2f} (first 10 steps) to "
          f"{mean(tail, 'reward/mean'):.2f} (last 10) on problems made as it trained, "
          + (f"of `--steps {steps}` throughout" if steps else
             f"at reasoning-depth level {head[0]['curriculum/level']:.0f} -> "
             f"{tail[-1]['curriculum/level']:.0f}") + ". Question by question, free-form: "
          + paired_words(g.get("paired", {})) + ". One held-out point is "
          f"{e['grpo']['all']['total'] / 100:g} questions overall, "
          f"{e['grpo'].get('type/free-form', {'total': 0})['total'] / 100:.1f} free-form.")


def paired_words(paired: dict) -> str:
  """'20 gained, 11 lost against instruction tuning (McNemar p = 0.15), ...'."""
  names = {"vs_sft": "instruction tuning", "vs_dpo": "DPO"}
  parts = [f"{x['free_form']['gained']} gained and {x['free_form']['lost']} lost against "
           f"{names.get(k, k)} (exact McNemar p = {x['free_form']['p']:.2f})"
           for k, x in paired.items()]
  return "; ".join(parts) if parts else "not compared"


def dynamic_reading(r: dict) -> str:
  """The dynamic benchmark against chance at its own average: if right answers fell on variants
  independently at the average rate, a seed question would be right in all K of them with
  probability average^K; a worst case above that means some seed questions are solved whatever
  the numbers."""
  k = r["variants"] if isinstance(r["variants"], int) else min(r["variants"])
  luck = 100 * (r["average"] / 100) ** k
  if not r["average"]:
    return (f"- Dynamic benchmark (DynaMath's metric): none of the {r['questions']} variant "
            "questions answered right.")
  return (f"- Dynamic benchmark (DynaMath's metric): {r['average']:.1f}% of the {r['questions']} "
          f"variant questions right, {r['worst_case']:.1f}% of seed questions right in all "
          f"{k} variants (robustness {r['robustness']:.2f}); independent right answers at the "
          f"average rate would give {luck:.1f}%: "
          + ("right answers cluster on some seed questions, solved whatever the numbers."
             if r["worst_case"] > luck
             else "no more seed questions are right in every variant than luck gives, so what "
             "the model gets right does not carry over to new numbers."))


if __name__ == "__main__":
  main()
