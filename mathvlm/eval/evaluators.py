"""Evaluators that run inside training (big_vision's `config.evals`), and after it.

A config lists them by name: `config.evals.heldout = dict(type="heldout_loss", every=100, ...)`.
`type` is a name in `EVALUATORS` or an import path `package.module:function`; the function is
called once, at setup, as `make(spec, config, model_cfg)` with `spec` the evaluator's own fields
(a dict, `type` and `every` removed), and returns `evaluate(model) -> {name: float}`. The trainer
calls it every `every` steps and at the end, logs the numbers as `eval/<name>/<key>` in
metrics.jsonl and keeps the last of each in WORKDIR/eval.json, which `launch/sweep.py` collects.

The shipped evaluators split each batch over the data axes of the mesh the model's parameters
are placed on (`distributed.mesh_of`: the run's, with nothing more passed in; so do
`engine_heldout.answer` and `likelihood`'s scoring, which an evaluator of one's own may call), as
`python -m mathvlm.eval.run --mesh` does: a device decodes and scores its share of the rows, not
the whole batch (whose KV cache, for a 7B on a pod, outgrew what training fits), and each process
feeds its own rows. A batch that does not divide over those axes is rounded up (decoding,
ranking: rows are independent) or padded with rows that weigh nothing (`heldout_loss`: a batch's
loss may depend on its rows together); the padding's results are dropped, so the numbers are
those of one device. Ranking's and `heldout_loss`'s forwards trace under the activation table on
that mesh, as the trainer's step does (`sharding.traced_with_activation_sharding`; `heldout_loss`
the run's table, ranking, which sees only the model, the default one), so a device's activations
are those of its rows. Decoding does not (`generate._generate` says why).

The evaluators shipped here (each reads its data once, at setup, so a bad path fails before the
first step):
- `engine_accuracy`: held-out engine problems (an engine `instruct.json` with its images), answered
  as generated and, for multiple choice, ranked by likelihood (`mathvlm.eval.engine_heldout`);
- `heldout_loss`: the run's own objective and loss over a built dataset (or held-out synthetic
  examples), weighted as the trainer weighs it (per target token for `lm`);
- `benchmark_accuracy`: MathVista, MATH-Vision or MathVerse from their files, generated as
  `python -m mathvlm.eval.run` generates and scored by `mathvlm.eval.score`.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, Callable

log = logging.getLogger(__name__)

Evaluate = Callable[[Any], dict]

EVALUATORS: dict[str, Callable[..., Evaluate]] = {}


def register(name: str):
  def deco(make):
    EVALUATORS[name] = make
    return make
  return deco


def resolve(kind: str) -> Callable[..., Evaluate]:
  if kind in EVALUATORS:
    return EVALUATORS[kind]
  module, sep, attr = kind.partition(":")
  if not sep:
    raise ValueError(f"evaluator type {kind!r}: one of {sorted(EVALUATORS)} or "
                     "'package.module:function'")
  return getattr(importlib.import_module(module), attr)


def from_config(config, model_cfg) -> list[tuple[str, int, Evaluate]]:
  """(name, every, evaluate) for each entry of `config.evals`, in name order. An evaluator that
  cannot be set up fails here, its message prefixed with `evals.<name>`."""
  out = []
  for name in sorted(config.evals):
    spec = dict(config.evals[name])
    kind, every = spec.pop("type", None), int(spec.pop("every", 0))
    if not kind:
      raise ValueError(f"evals.{name}: give it a type ({sorted(EVALUATORS)} or 'module:fn')")
    try:
      out.append((name, every, resolve(kind)(spec, config, model_cfg)))
    except (ValueError, FileNotFoundError) as e:
      raise type(e)(f"evals.{name} ({kind}): {e}") from e
  return out


# ---------------------------------------------------------------------------------------------
# Shared: the fields each evaluator takes, the tokenizer.

def due(evaluators: list, done: int, total: int) -> list:
  """(name, evaluate) of the evaluators due at step `done`: every N steps, and all at the end."""
  return [(name, fn) for name, every, fn in evaluators
          if done == total or (every and done % every == 0)]


def run_due(evaluators: list, model_fn: Callable, done: int, total: int,
            workdir: str) -> dict[str, float]:
  """The evaluators due at step `done` on `model_fn()` (built only when one is due):
  {eval/<name>/<key>: value}; WORKDIR/eval.json keeps the last numbers of each evaluator."""
  import json
  import time

  import jax
  from etils import epath
  todo = due(evaluators, done, total)
  if not todo:
    return {}
  model = model_fn()
  path = epath.Path(workdir, "eval.json")
  saved = json.loads(path.read_text()) if path.exists() else {}
  scores = {}
  for name, evaluate in todo:
    t = time.time()
    result = {k: float(v) for k, v in evaluate(model).items()}
    log.info("eval %s at step %d (%.1fs): %s", name, done, time.time() - t,
             ", ".join(f"{k} {v:.4g}" for k, v in result.items()))
    saved[name] = dict(result, step=done)
    scores.update({f"eval/{name}/{k}": v for k, v in result.items()})
  if jax.process_index() == 0:
    path.write_text(json.dumps(saved, indent=2))
  return scores


def forget_after(workdir: str, step: int) -> None:
  """Drops from WORKDIR/eval.json the numbers of steps after `step`, the checkpoint a run resumes
  from: a run killed after an evaluation but before its next save left numbers of a model that
  the resumed run has not reached yet (metrics.jsonl is cut at the same step)."""
  import json

  from etils import epath
  path = epath.Path(workdir, "eval.json")
  if not path.exists():
    return
  saved = json.loads(path.read_text())
  kept = {name: r for name, r in saved.items() if r.get("step", 0) <= step}
  if kept != saved:
    log.info("eval.json: dropped %s, evaluated after step %d (the resumed checkpoint)",
             sorted(set(saved) - set(kept)), step)
    path.write_text(json.dumps(kept, indent=2))


def fields(spec: dict, kind: str, defaults: dict, required: tuple[str, ...] = ()) -> dict:
  """The spec over its defaults; an unknown or missing field is an error naming it."""
  unknown = sorted(set(spec) - set(defaults) - set(required))
  if unknown:
    raise ValueError(f"{kind} takes no field(s) {unknown}; its fields: "
                     f"{sorted(set(defaults) | set(required))}")
  missing = [k for k in required if not spec.get(k)]
  if missing:
    raise ValueError(f"{kind} needs {missing}")
  return {**defaults, **spec}


def tokenizer_json(path: str) -> str:
  """A tokenizer.json from a file or a tokenizer folder (generation reads the fast-tokenizer file
  directly, as `mathvlm.eval.run` does)."""
  if not path:
    raise ValueError("no tokenizer: set the evaluator's `tokenizer` or config.data.tokenizer")
  found = path if path.endswith(".json") else os.path.join(path, "tokenizer.json")
  if not os.path.exists(found):
    raise FileNotFoundError(f"tokenizer {found} not found")
  return found


def flat(accuracy: dict, prefix: str) -> dict[str, float]:
  """{key: entry} (mathvlm.eval.common.entry, percent) -> {prefix/key: accuracy}."""
  return {f"{prefix}/{k}": float(v["accuracy"]) for k, v in accuracy.items()}


# ---------------------------------------------------------------------------------------------
# Held-out engine accuracy.

ENGINE_DEFAULTS = dict(images="", versions="", limit=0, tokenizer="", template="", batch=64,
                       max_new_tokens=32, max_len=256, rank_max_len=512, bucket=32,
                       generated=True, ranked=True, rank_answer="The answer is {value}.")


def _engine_problems(s: dict) -> list:
  """The engine problems an engine_accuracy spec selects (instruct, images, versions, limit)."""
  from mathvlm.eval import engine_benchmark
  if not os.path.exists(s["instruct"]):
    raise FileNotFoundError(f"instruct {s['instruct']} not found (an engine instruct.json)")
  problems = engine_benchmark.load(s["instruct"], s["images"] or None)
  versions = [v for v in str(s["versions"]).replace(" ", "").split(",") if v]
  unknown = sorted(set(versions) - set(engine_benchmark.VERSIONS))
  if unknown:
    raise ValueError(f"versions {unknown}: choose from {sorted(engine_benchmark.VERSIONS)}")
  if versions:
    problems = [p for p in problems if p.meta["version"] in versions]
  problems = problems[:s["limit"]] if s["limit"] else problems
  if not problems:
    raise ValueError(f"{s['instruct']}: no problems left (versions={versions}, "
                     f"limit={s['limit']})")
  return problems


@register("engine_accuracy")
def engine_accuracy(spec, config, model_cfg) -> Evaluate:
  """Accuracy (percent) on held-out engine problems: `generated/<key>` (greedy answers, judged by
  `mathvlm.eval.answers`), `ranked/<key>` (multiple choice by the option whose written answer has
  the highest summed log-prob, lm-evaluation-harness's `acc`: longer answers are penalised) and
  `ranked_norm/<key>` (by log-prob per byte of the written answer, its `acc_norm`), free-form
  still generated in both (with generated=False they have no answer to judge and are left out
  of the ranked numbers, not counted wrong: `problems` still counts them); keys `all`,
  `domain/*`, `version/*`, `type/*`; plus `problems`, `prompts_truncated` when generated (the
  prompts over max_len, which lost their start: a score over cut questions says so, as
  `python -m mathvlm.eval.run`'s summary does), and `ranked_ties` / `ranked_norm_ties`
  (multiple-choice problems whose best score several options share exactly: the first of them is
  taken; `mathvlm.eval.likelihood`).

  Fields: instruct (the engine's instruct.json, required), images (default: its folder),
  versions ("text_lite,vision_dominant"; default all three), limit (first N problems),
  tokenizer / template (default: the run's data), batch, max_new_tokens, max_len (generation
  prompt), rank_max_len (prompt + option), bucket (rows padded to a multiple of it: each width
  compiles once), generated / ranked (either may be turned off), rank_answer (what is scored for
  each option, a format string with {value}, the option's text, and/or {letter}). Ranking means
  something only when the option is written as the run was trained to answer: the default
  `The answer is {value}.` fits data whose assistant turn is that sentence (the engine and demo
  SFT data, `data_prep/mavis_instruct.py --answer value`); `--answer final` ends in
  `The answer is {letter}.`; `--answer cot` (that script's default) writes a rationale before
  its answer, which ranking cannot score: set ranked=False there."""
  from tokenizers import Tokenizer

  from mathvlm.data.sources import load_tokenizer
  from mathvlm.eval import engine_heldout, likelihood, prompts, run
  s = fields(spec, "engine_accuracy", ENGINE_DEFAULTS, ("instruct",))
  problems = _engine_problems(s)
  tok_path = tokenizer_json(s["tokenizer"] or config.data.tokenizer)
  tok, hf_tok = Tokenizer.from_file(tok_path), load_tokenizer(tok_path)
  template = s["template"] or config.data.template
  if not (s["generated"] or s["ranked"]):
    raise ValueError("generated and ranked are both off: nothing to measure")
  likelihood.writer(s["rank_answer"])  # a bad format fails at setup, not at the first eval
  if s["generated"]:  # so does a max_len that the image tokens fill (`run.Encoder`)
    run.Encoder(tok, model_cfg.image_token_id, model_cfg.image_seq_len, s["max_len"]).encode(
        prompts.format_prompt(problems[0].query, template))

  def evaluate(model) -> dict[str, float]:
    responses = [""] * len(problems)
    out = {"problems": float(len(problems))}
    if s["generated"]:
      encoder = engine_heldout.encoder_for(model_cfg, tok, s["max_len"])
      responses = engine_heldout.answer(model, model_cfg, tok, problems, template=template,
                                        batch=s["batch"], max_new_tokens=s["max_new_tokens"],
                                        max_len=s["max_len"], bucket=s["bucket"],
                                        image_aspect=config.data.image_aspect, encoder=encoder)
      out["prompts_truncated"] = float(encoder.truncated)
      out.update(flat(engine_heldout.score(problems, responses)["accuracy"], "generated"))
    if s["ranked"]:
      r = likelihood.rank(model, model_cfg, hf_tok, problems, template=template,
                          batch_size=s["batch"], max_len=s["rank_max_len"], bucket=s["bucket"],
                          write=s["rank_answer"], image_aspect=config.data.image_aspect)
      # without generation a free-form problem has no answer: judging "" would count it wrong
      kept = [i for i, p in enumerate(problems) if s["generated"] or p.choices]
      for key, picks in (("ranked", r.acc), ("ranked_norm", r.acc_norm)):
        out.update(flat(engine_heldout.score([problems[i] for i in kept],
                                             [responses[i] for i in kept],
                                             [picks[i] for i in kept])["accuracy"], key))
      out.update(ranked_ties=float(r.ties), ranked_norm_ties=float(r.ties_norm))
    return out

  return evaluate


# ---------------------------------------------------------------------------------------------
# Held-out loss.

LOSS_DEFAULTS = dict(path="", name="", subset="", limit=0, batch=0, seed=-1, num_examples=256)


@register("heldout_loss")
def heldout_loss(spec, config, model_cfg) -> Evaluate:
  """The run's objective and loss over held-out examples, averaged with the objective's own
  weights (target tokens for `lm`) over every example, however they fall into batches: `loss`,
  the objective's other metrics (token `accuracy` for lm), the summed weight and `examples`.

  Fields: path and name (a built dataset, as config.data.path / data.name; name `synthetic` makes
  `num_examples` held-out synthetic examples from `seed`, default the run's seed + 1), subset (a
  selection of it), limit (first N examples), batch (default: data.global_batch). The text
  settings (tokenizer, template, max_len, image_aspect) are the run's."""
  import copy

  from mathvlm import objectives
  from mathvlm.data.sources import make_source
  s = fields(spec, "heldout_loss", LOSS_DEFAULTS)
  objective = objectives.get(config.objective)
  if objective.prepare is not None:
    raise ValueError(f"objective {config.objective!r} computes part of each batch in `prepare` "
                     "from the train state (e.g. DPO's reference log-probs); heldout_loss "
                     "evaluates objectives without it")
  data = copy.deepcopy(config.data)
  with data.unlocked():
    data.name = s["name"] or config.data.name
    data.path, data.subset, data.mixture = s["path"], s["subset"], ""
    data.num_examples = s["num_examples"]
  if data.name != "synthetic" and not data.path:
    raise ValueError(f"give the built dataset's path (the name is {data.name!r})")
  seed = s["seed"] if s["seed"] >= 0 else config.seed + 1
  source = make_source(data, objective, model_cfg, seed)
  n = min(len(source), s["limit"]) if s["limit"] else len(source)
  return _loss_evaluate(objective, config, source, n, s["batch"] or config.data.global_batch)


def _loss_evaluate(objective, config, source, n: int, batch: int) -> Evaluate:
  """evaluate(model): batches of `batch` examples in order; on a model placed on a mesh each
  batch is split over its data axes (`_loss_batch`)."""
  import functools

  import jax
  from flax import nnx

  from mathvlm import sharding
  from mathvlm.eval import distributed
  # the run's table; the default where there is no run config (a loss of one's own, tests)
  rules = getattr(config, "logical_axis_rules", None) or sharding.DEFAULT_RULES

  @functools.partial(jax.jit, static_argnames=("graphdef", "mesh"))
  def weighted(graphdef, state, b, mesh=None):
    loss = sharding.traced_with_activation_sharding(objective.loss, mesh, rules)
    loss, weight, metrics = loss(nnx.merge(graphdef, state), b, config)
    return loss * weight, weight, {k: v * weight for k, v in metrics.items()}

  checked = []  # the blank rows' weight, checked once per evaluator (`_check_blank_weighs_0`)

  def evaluate(model) -> dict[str, float]:
    graphdef, state = nnx.split(model)
    mesh = distributed.mesh_of(model)
    total, weight, sums = 0.0, 0.0, {}
    for start in range(0, n, batch):
      indices = range(start, min(start + batch, n))
      if not checked and distributed.split_size(len(indices), mesh) > len(indices):
        _check_blank_weighs_0(objective, lambda b: weighted(graphdef, state, b, mesh=mesh),
                              _loss_batch(source, indices, mesh, blank_only=True))
        checked.append(True)
      b = _loss_batch(source, indices, mesh)
      lw, w, m = jax.device_get(weighted(graphdef, state, b, mesh=mesh))
      total, weight = total + float(lw), weight + float(w)
      for k, v in m.items():
        sums[k] = sums.get(k, 0.0) + float(v)
    if not weight:  # nothing to average: say so rather than report a loss of 0
      log.warning("heldout_loss: the %d held-out examples carry no weight (no target tokens: "
                  "cut by data.max_len?); loss is NaN", n)
      weight, total = float("nan"), float("nan")
    out = {k: v / weight for k, v in sums.items() if k != objective.weight_metric}
    out.update(loss=total / weight, examples=float(n),
               **{objective.weight_metric or "weight": weight if weight == weight else 0.0})
    return out

  return evaluate


def _check_blank_weighs_0(objective, weighted, blanks: dict) -> None:
  """A batch of blank rows only must weigh nothing: the shipped objectives' losses keep such rows
  out (no target token, no attention, no label), and nothing else would keep an objective of
  one's own from counting the padding in. Run once, before the first padded batch and on its
  shape (no other compile): every process reaches it alike, as its calls are collective."""
  import jax
  _, w, _ = jax.device_get(weighted(blanks))
  if float(w):
    raise ValueError(
        f"objective {objective.name!r} gives a batch of blank rows (evaluators._blank: zero ids, "
        f"masks and pixels, labels -1) a weight of {float(w)}: heldout_loss pads its batches "
        "on a mesh with such rows, which must count in nothing; make the objective's loss weigh "
        "a row with no attention, target tokens or label as 0, as the shipped objectives do")


def _loss_batch(source, indices: range, mesh, blank_only: bool = False) -> dict:
  """The examples `indices` as one batch: host arrays without a mesh; with one, padded to a
  multiple of its data axes with blank rows (`_blank`) and split over them, this process reading
  only its own rows (`distributed.local_rows`). Padding, not more examples: a batch's loss may
  depend on its rows together (CLIP's in-batch negatives), and blank rows count in none (checked
  for the objective's weight: `_check_blank_weighs_0`). blank_only: every row blank, the
  batch's shape kept."""
  import numpy as np

  from mathvlm import sharding
  from mathvlm.data.pipeline import DROPPED
  from mathvlm.eval import distributed
  stack = lambda rows: {k: np.stack([r[k] for r in rows]) for k in rows[0] if k != DROPPED}
  if mesh is None:
    return stack([source[i] for i in indices])
  lo, hi = distributed.local_rows(mesh, distributed.split_size(len(indices), mesh))
  rows = [source[indices[i]] for i in range(lo, min(hi, len(indices)))] if not blank_only else []
  blank = _blank(rows[0] if rows else source[indices[0]])
  return sharding.place_batch(stack(rows + [blank] * (hi - lo - len(rows))), mesh)


def _blank(example: dict) -> dict:
  """A row that weighs nothing in any shipped objective's loss, as a dropped example does: no
  target tokens (lm), no attention (contrastive: neither a positive nor a negative), no label
  (classify, `labels.NO_LABEL`). An objective of one's own must give such a row no weight too
  (`_check_blank_weighs_0` refuses one that does not)."""
  import numpy as np

  from mathvlm.data.labels import NO_LABEL
  return {k: np.full_like(v, NO_LABEL) if k == "labels" else np.zeros_like(v)
          for k, v in example.items()}


# ---------------------------------------------------------------------------------------------
# Benchmarks from files.

BENCH_DEFAULTS = dict(split="testmini", images=None, tokenizer="", template="", batch=8,
                      max_new_tokens=512, temperature=0.0, limit=0, prompt="",
                      breakdowns=())


@register("benchmark_accuracy")
def benchmark_accuracy(spec, config, model_cfg) -> Evaluate:
  """A benchmark's accuracy (percent) from its files, generated as `python -m mathvlm.eval.run`
  generates (the official query in the chat template, greedy unless `temperature`) and scored by
  `mathvlm.eval.score`: `accuracy`, `correct`, `total`, `prompts_truncated` (as the CLI's
  summary), and `<breakdown>/<value>` for each breakdown named in `breakdowns` (MathVista:
  "question_type,category"; MATH-V: "level").

  Fields: benchmark (mathvista | math_v | mathverse, required), data (the benchmark folder,
  required; layout as `mathvlm.eval.run`), split, images, tokenizer / template (default: the
  run's), batch, max_new_tokens, temperature, limit, prompt (MathVerse: query_wo / query_cot;
  MATH-V: direct / cot; default the first), breakdowns."""
  from tokenizers import Tokenizer

  from mathvlm.eval import distributed, run, score
  s = fields(spec, "benchmark_accuracy", BENCH_DEFAULTS, ("benchmark", "data"))
  if s["benchmark"] not in ("mathvista", "math_v", "mathverse"):
    raise ValueError(f"benchmark {s['benchmark']!r}: mathvista, math_v or mathverse (engine "
                     "problems: the engine_accuracy evaluator)")
  kwargs = score.prompt_choice(s["benchmark"], s["prompt"])
  problems = score.load_problems(s["benchmark"], run.annotations_path(
      s["benchmark"], s["data"], s["split"]), s["images"], **kwargs)
  problems = problems[:s["limit"]] if s["limit"] else problems
  missing = [p.pid for p in problems if p.images and not os.path.exists(p.images[0])]
  if missing:
    raise FileNotFoundError(f"{len(missing)} images of {s['benchmark']} are missing (first: "
                            f"problem {missing[0]}); set `images` to their folder")
  tok = Tokenizer.from_file(tokenizer_json(s["tokenizer"] or config.data.tokenizer))
  template = s["template"] or config.data.template
  breakdowns = [b for b in (s["breakdowns"].split(",") if isinstance(s["breakdowns"], str)
                            else s["breakdowns"]) if b]
  known = score.score_responses(s["benchmark"], problems,  # the keys, from empty responses
                                [{"pid": p.pid, "response": ""} for p in problems])[0]
  known = sorted(k for k, v in known.items() if isinstance(v, dict) and k not in ("all",
                                                                                  "official"))
  if set(breakdowns) - set(known):
    raise ValueError(f"breakdowns {sorted(set(breakdowns) - set(known))}: {s['benchmark']} "
                     f"has {known}")

  def evaluate(model) -> dict[str, float]:
    encoder = run.Encoder(tok, model_cfg.image_token_id, model_cfg.image_seq_len,
                          model_cfg.text.max_position_embeddings - s["max_new_tokens"],
                          model_cfg.text.eos_token_id)
    mesh = distributed.mesh_of(model)
    responses = run.generate_responses(model, model_cfg, encoder, problems, template=template,
                                       batch_size=distributed.split_size(s["batch"], mesh),
                                       max_new_tokens=s["max_new_tokens"],
                                       temperature=s["temperature"],
                                       image_aspect=config.data.image_aspect, mesh=mesh)
    records = [{"pid": p.pid, "response": r} for p, r in zip(problems, responses)]
    scores, _ = score.score_responses(s["benchmark"], problems, records)
    out = {"accuracy": float(scores["all"]["accuracy"]),
           "correct": float(scores["all"]["correct"]), "total": float(scores["all"]["total"]),
           "prompts_truncated": float(encoder.truncated)}
    for b in breakdowns:
      out.update(flat(scores[b], b))
    return out

  return evaluate
