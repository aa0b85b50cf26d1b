"""What the demo measures after each stage: CLIP-Math retrieval on held-out diagram/caption pairs,
and the baselines a model must beat to have learned anything. Answers to held-out engine problems
(generated and ranked, scored by domain, question version and type) come from the library:
`mathvlm.eval.engine_heldout`, which the `engine_accuracy` evaluator also uses inside training.
"""

from __future__ import annotations

import collections

import numpy as np

from mathvlm.eval import choices_only
from mathvlm.eval import engine_benchmark as eval_engine


def retrieval(model, records, tokenizer, max_len: int, batch: int = 100) -> dict:
  """Image -> caption top-1 and top-5 (and caption -> image top-1) among all held-out pairs, by
  cosine similarity; chance is 1/n and 5/n."""
  from mathvlm.data.captions import CaptionSource
  from mathvlm.data.records import split_counts
  size = model.cfg.vision.image_size
  src = CaptionSource(records, tokenizer=tokenizer, image_size=size, max_len=max_len,
                      pad_id=tokenizer.pad_token_id or 0)
  img, txt = [], []
  for start in range(0, len(src), batch):
    rows = [src[i] for i in range(start, min(start + batch, len(src)))]
    stack = lambda k: np.stack([r[k] for r in rows])
    img.append(np.asarray(model.image_features(stack("pixel_values"))))
    txt.append(np.asarray(model.text_features(stack("input_ids"), stack("attention_mask"))))
  img, txt = np.concatenate(img), np.concatenate(txt)
  img /= np.linalg.norm(img, axis=-1, keepdims=True)
  txt /= np.linalg.norm(txt, axis=-1, keepdims=True)
  sim = img @ txt.T
  n = len(sim)
  i2t, t2i = ranks(sim), ranks(sim.T)
  return dict(pairs=n, image_to_caption_top1=float(np.mean(i2t == 0)),
              image_to_caption_top5=float(np.mean(i2t < 5)),
              caption_to_image_top1=float(np.mean(t2i == 0)),
              chance=1.0 / n, chance_top5=min(5, n) / n,
              **dict(zip(("dropped", "truncated"), split_counts(src.dropped))))


def ranks(sim: np.ndarray) -> np.ndarray:
  """Per row of a [queries, candidates] similarity matrix whose diagonal is the right pair: how
  many other candidates score at or above the right one (0 = a top-1 hit). A tie counts as a
  miss: identical captions of different diagrams tie exactly, and a tie retrieves nothing."""
  return np.sum(sim >= np.diag(sim)[:, None], axis=1) - 1


def baselines(train_records, problems, tokenizer=None,
              template: str = "mistral_instruct") -> dict:
  """Accuracy of answering without a model: uniformly at random; always the training set's most
  common answer (the letter for multiple choice, the value for free-form); and every
  choices-only rule of `mathvlm.eval.choices_only` (`choices_only_rule` is its `slip_source`,
  the rule that exploited the old engine's distractors), so the table says how much of a
  model's score the options alone could give. With a (transformers) `tokenizer`, also
  `choices_only_fewest_tokens`: the option whose written answer has the fewest target tokens
  (`likelihood.option_tokens`), what ranking by summed log-prob favours when a model knows
  nothing (choices_only's rules read strings alone, so this one lives here). With 10 or more
  multiple-choice training records, also the two learned rules (`choices_only.Learned`), fitted
  on those records' options."""
  letters = collections.Counter(chr(65 + r["answer_index"]) for r in train_records if r["choices"])
  values = collections.Counter(r["answer"] for r in train_records if not r["choices"])
  top_letter = letters.most_common(1)[0][0] if letters else "A"
  top_value = values.most_common(1)[0][0] if values else ""
  rand = maj = fewest = 0.0
  rules = dict.fromkeys(choices_only.RULES, 0.0)
  for p in problems:
    if p.choices:
      rand += 1 / len(p.choices)
      maj += p.answer == top_letter
      for rule in rules:
        rules[rule] += choices_only.expected(rule, p.choices, ord(p.answer) - 65)
      if tokenizer is not None:
        from mathvlm.eval import likelihood
        fewest += fewest_tokens(likelihood.option_tokens(p, template, tokenizer),
                                ord(p.answer) - 65)
    else:
      maj += bool(top_value) and eval_engine.judge(p, top_value)
  pct = 100 / max(len(problems), 1)  # percent, as every accuracy here (eval.common.entry)
  out = dict(random=rand * pct, majority=maj * pct, choices_only_rule=rules["slip_source"] * pct,
             majority_answer=dict(letter=top_letter, value=top_value))
  out.update({f"choices_only_{rule}": v * pct for rule, v in rules.items()})
  if tokenizer is not None:
    out["choices_only_fewest_tokens"] = fewest * pct
  seen = [(r["choices"], r["answer_index"]) for r in train_records if r["choices"]]
  asked = [(p.choices, ord(p.answer) - 65) for p in problems if p.choices]
  if len(seen) >= 10:
    for kind in ("linear", "trees"):
      out[f"choices_only_learned_{kind}"] = (choices_only.Learned(seen, kind).score(asked)
                                             * len(asked) * pct)
  return out


def fewest_tokens(tokens: list[int], answer_index: int) -> float:
  """The fewest-token rule's expected score on one problem (ties split, as `choices_only`)."""
  picks = [i for i, n in enumerate(tokens) if n == min(tokens)]
  return (answer_index in picks) / len(picks) if picks else 0.0


def dynamic_summary(scored: dict, problems) -> dict:
  """`engine_dynamic.evaluate`'s scores as the demo reports them: seeds and variants counted from
  the problems themselves (so a short engine set shows), DynaMath's three numbers overall and per
  question version, consistency across versions."""
  dyn = scored["dynamic"]
  lo, hi = dyn["variants_per_seed"]
  three = lambda x: {k: x[k] for k in ("average", "worst_case", "robustness")}
  return dict(
      seeds=len({p.meta["seed"] for p in problems}), variants=lo if lo == hi else [lo, hi],
      questions=scored["all"]["total"], seed_questions=dyn["seeds"], **three(dyn),
      version={v: three(s["dynamic"]) for v, s in scored["version"].items()},
      all_versions_worst_case=scored["all_versions_worst_case"],
      consistency=scored["consistency"], missing=scored["missing"])


def paired_change(before: list[dict], after: list[dict], free_form_only: bool = False) -> dict:
  """Questions one model gets right and the other wrong (rows of two stages' held_out.jsonl, by
  pid), with the exact McNemar test's two-sided p: the chance of a split at least this uneven if
  gains and losses were equally likely. Accuracy differences of a point or two on a few hundred
  questions are within what retraining noise gives; the test says how far."""
  from scipy.stats import binomtest
  was = {r["pid"]: r for r in before}
  rows = [r for r in after if not free_form_only or r["answer"] not in set("ABCDEFGH")]
  gained = sum(1 for r in rows if r["correct"] and not was[r["pid"]]["correct"])
  lost = sum(1 for r in rows if was[r["pid"]]["correct"] and not r["correct"])
  p = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
  return dict(questions=len(rows), gained=gained, lost=lost, p=round(float(p), 4))
