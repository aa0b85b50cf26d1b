"""REPORT.md and its plots: loss per stage, accuracy per stage and per domain, against baselines."""

from __future__ import annotations

import json
import os

STAGE_LABELS = {"align": "2 alignment", "sft": "3 instruction tuning", "dpo": "4 DPO"}


def read_metrics(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def plot_losses(workdirs: dict[str, str], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(workdirs), figsize=(4 * len(workdirs), 3.2))
  for ax, (stage, wd) in zip(axes, workdirs.items()):
    rows = read_metrics(wd)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1)
    ax.set_title(stage)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("training loss")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_accuracy(evals: dict[str, dict], ranked: dict[str, dict], base: dict, path: str) -> None:
  """Grouped bars: overall and per-domain accuracy after each stage, answers as generated (left)
  and with multiple choice ranked by likelihood (right); baselines as lines."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  keys = ["all"] + sorted(k for k in next(iter(evals.values())) if k.startswith("domain/"))
  width = 0.8 / len(evals)
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
  titles = ("generated answers", "multiple choice ranked by likelihood, free-form generated")
  for ax, title, table in zip(axes, titles, (evals, ranked)):
    for i, (stage, acc) in enumerate(table.items()):
      xs = [k + (i - (len(table) - 1) / 2) * width for k in range(len(keys))]
      ax.bar(xs, [acc[k]["accuracy"] for k in keys], width, label=STAGE_LABELS.get(stage, stage))
    for name, style in (("random", ":"), ("majority", "--")):
      ax.axhline(base[name], color="grey", ls=style, lw=1, label=f"{name} baseline (all)")
    ax.set_xticks(range(len(keys)), [k.split("/")[-1] for k in keys])
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
  axes[0].set_ylabel("held-out accuracy")
  axes[1].legend(fontsize=7, loc="upper right")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def pct(x: float) -> str:
  return f"{100 * x:.1f}"


def accuracy_table(evals: dict[str, dict]) -> list[str]:
  keys = list(next(iter(evals.values())))
  head = "| | " + " | ".join(k.replace("/", ": ") for k in keys) + " |"
  lines = [head, "|---" * (len(keys) + 1) + "|"]
  for stage, acc in evals.items():
    lines.append(f"| after {STAGE_LABELS.get(stage, stage)} | " +
                 " | ".join(f"{acc[k]['accuracy']:.1f}" for k in keys) + " |")
  lines.append(f"| n | " + " | ".join(str(next(iter(evals.values()))[k]["total"]) for k in keys)
               + " |")
  return lines


VERSION_LABELS = {"text_dominant": "text dominant", "text_lite": "text lite",
                  "vision_dominant": "vision dominant"}


def dynamic_section(dyn: dict) -> list[str]:
  """The dynamic benchmark's table: DynaMath's average, worst case and robustness, overall and
  per question version, and how often the versions of one variant agree."""
  row = lambda name, x: (f"| {name} | {x['average']:.1f} | {x['worst_case']:.1f} | "
                         f"{x['robustness']:.2f} |")
  c = dyn["consistency"]
  return [
      "## Dynamic engine benchmark (the final model on variants)",
      "",
      f"{dyn['seeds']} held-out seed problems, {dyn['variants']} variants each (same figure "
      "program, new numbers and letters), in three question versions: "
      f"{dyn['questions']} questions, answered as above. DynaMath's metric: the average is over "
      "every variant; the worst case counts a seed question right only if all its variants are "
      "answered right; robustness is worst case / average (1 when right answers come from a "
      "method that carries over to new numbers).",
      "",
      "| questions | average | worst case | robustness |",
      "|---|---|---|---|",
      row("all", dyn),
      *[row(VERSION_LABELS.get(v, v), x) for v, x in dyn["version"].items()],
      "",
      f"Across question versions: the three versions of a variant give the same answer in "
      f"{c['agreement']:.1f}% of variants (pairwise {c['pairwise']:.1f}%), all three are right "
      f"in {c['consistent_correct']:.1f}%; a seed is right in every variant and version in "
      f"{dyn['all_versions_worst_case']:.1f}%.",
      "",
  ]


def write(out: str, r: dict) -> str:
  """r: everything the demo measured (also saved as summary.json)."""
  os.makedirs(out, exist_ok=True)
  plot_losses(r["workdirs"], os.path.join(out, "losses.png"))
  plot_accuracy(r["evals"], r["ranked"], r["baselines"], os.path.join(out, "accuracy.png"))
  b, ret, s = r["baselines"], r["retrieval"], r["settings"]
  last = list(r["evals"])[-1]
  lines = [
      "# mathvlm demo report",
      "",
      f"`{r['command']}` on {r['machine']}, seed {s['seed']}, {r['seconds']:.0f} s in all. "
      "Every number below was measured by that run; rerunning the command with the same seed "
      "reproduces the data, the training order and the initialisation.",
      "",
      "## Data",
      f"- Engine problems: {r['engine']['train']['n']} for training, {r['engine']['test']['n']} "
      "held out (a content-hash split: no held-out problem appears in training), plane "
      "geometry, analytic geometry and functions in equal parts, "
      f"{pct(s['mc'])}% multiple choice.",
      f"- Dynamic benchmark: {r['dynamic']['seeds']} held-out seed problems, "
      f"{r['dynamic']['variants']} variants each, drawn with the held-out set's seed and split "
      "(variant 0 of seed i is held-out problem i, unless a variant could not be drawn); "
      f"{r['dynamic']['seen_in_training']['seeds']} seeds left out because a variant's content "
      "was a training problem's.",
      f"- Tokenizer: byte-level BPE, {r['tokenizer']['vocab']} tokens, trained on the engine text.",
      f"- ArrayRecord datasets: {r['built']}.",
      f"- Instruction tuning on the `{'`, `'.join(s['versions'])}` question versions, answer "
      f"style `{s['answer']}`; held-out evaluation on all three versions.",
      "",
      "## Stage 1: CLIP-Math (contrastive, image <-> caption)",
      "",
      "| tower | image -> caption top-1 | top-5 | caption -> image top-1 |",
      "|---|---|---|---|",
      *[f"| {who} | {pct(ret[k]['image_to_caption_top1'])} | "
        f"{pct(ret[k]['image_to_caption_top5'])} | {pct(ret[k]['caption_to_image_top1'])} |"
        for who, k in ((f"untrained (seed {s['seed']})", "before"), ("after CLIP-Math", "after"))],
      f"| chance | {pct(ret['after']['chance'])} | {pct(ret['after']['chance_top5'])} | "
      f"{pct(ret['after']['chance'])} |",
      "",
      f"On {ret['after']['pairs']} held-out diagram/caption pairs (percent).",
      "",
      "## Stages 2-4: held-out problems (percent correct)",
      "",
      "Answers as the model generates them (greedy, at most "
      f"{s['max_new_tokens']} tokens), scored as the evaluation CLI scores MathVerse: "
      "the stated option, or the stated value's option, or the value itself for free-form.",
      "",
      *accuracy_table(r["evals"]),
      "",
      "The same, with each multiple-choice question answered by the option whose answer "
      "(`The answer is V.`) the model finds most likely, as lm-evaluation-harness scores "
      "multiple choice; free-form answers are still generated. It measures what the model "
      "prefers among given answers, which a small model learns before it can write them.",
      "",
      *accuracy_table(r["ranked"]),
      "",
      "Baselines on the same problems: "
      f"random {b['random']:.1f}, always the training set's most common answer "
      f"({b['majority_answer']['letter']} / `{b['majority_answer']['value']}`) "
      f"{b['majority']:.1f}; a choices-only rule that exploits how the engine writes "
      f"distractors (the option the others derive from) {b['choices_only_rule']:.1f}.",
      "",
      "![accuracy](accuracy.png)",
      "",
      "## Training",
      "",
      "| stage | steps | first loss | last loss | seconds |",
      "|---|---|---|---|---|",
      *[f"| {st} | {v['steps']} | {v['first_loss']:.3f} | {v['last_loss']:.3f} | "
        f"{v['seconds']:.0f} |" for st, v in r["training"].items()],
      "",
      f"DPO pairs: the stage-3 model answered {r['dpo_pairs']['responses']} training problems; "
      f"{r['dpo_pairs']['correct']} right, {r['dpo_pairs']['pairs']} wrong answers became "
      "(annotated answer, model answer) pairs.",
      "",
      "![losses](losses.png)",
      "",
      *dynamic_section(r["dynamic"]),
      "## MATH-Vision testmini (the benchmark pipeline, once)",
      "",
      f"The final model on the {r['math_v']['all']['total']} real testmini problems "
      f"(../shared/data): {r['math_v']['all']['correct']} correct "
      f"({r['math_v']['all']['accuracy']:.1f}%). "
      "A model this size trained on engine diagrams is not expected to solve them: this checks "
      "that the pipeline runs end to end on the real files.",
      "",
      "## Reading it",
      "",
      *r["reading"],
      "",
  ]
  path = os.path.join(out, "REPORT.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path
