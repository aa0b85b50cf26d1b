"""REPORT.md and its plots: loss per stage, accuracy per stage and per domain, against baselines."""

from __future__ import annotations

import json
import os

STAGE_LABELS = {"align": "2 alignment", "sft": "3 instruction tuning", "dpo": "4 DPO",
                "grpo": "5 GRPO"}


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


def mc_share(evals: dict) -> float:
  """Percent of held-out questions asked as multiple choice."""
  acc = next(iter(evals.values()))
  return 100 * acc.get("type/multiple-choice", {"total": 0})["total"] / max(acc["all"]["total"], 1)


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


def ranked_norm_section(r: dict) -> list[str]:
  """The ranked table again with log-probs per byte (absent from summaries made before it)."""
  norm = r.get("ranked_norm") or {}
  if not norm:
    return []
  ties = r.get("ranked_ties") or {}
  tied = sum(t.get("acc", 0) + t.get("acc_norm", 0) for t in ties.values())
  return [
      "The same, with each option's log-probability divided by the UTF-8 bytes of its written "
      "answer, lm-evaluation-harness's `acc_norm`, which does not favour fewer tokens.",
      "",
      *accuracy_table(norm),
      "",
      *(["Exact ties for the best option (the first is taken): " + "; ".join(
          f"{STAGE_LABELS.get(st, st)} {t['acc']} summed, {t['acc_norm']} per byte"
          for st, t in ties.items()) + ".", ""] if tied else []),
  ]


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


# What `groups/all_equal` counts under each `grpo.filter_metric`: in a sentence, as a column head
EQUAL_GROUPS = {"reward": ("groups whose rewards are all equal", "equal-reward groups"),
                "correct": ("groups whose answers are all right or all wrong",
                            "all-right or all-wrong groups")}


def equal_groups(settings: dict) -> tuple[str, str]:
  """Groups equal in total reward (the default, and a summary from before the option) or, with
  DAPO's filter, in being right."""
  return EQUAL_GROUPS[settings.get("filter_metric", "reward")]


def plot_grpo(curve: list[dict], path: str, settings: dict) -> None:
  """GRPO's training reward and pass rate per step (left) and the curriculum's depth level with
  the running pass rate it follows (right)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  steps = [r["step"] for r in curve]
  fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
  a.plot(steps, [r["reward/mean"] for r in curve], lw=1,
         label="reward (mean of the batch trained on)")
  a.plot(steps, [r["pass@1"] for r in curve], lw=1, label="pass@1 (right answers)")
  a.plot(steps, [r["groups/all_equal"] for r in curve], lw=1, ls=":",
         label=equal_groups(settings)[0] + " (as sampled)")
  a.set_xlabel("step")
  a.legend(fontsize=7)
  a.grid(alpha=0.3)
  levels = [r["curriculum/level"] for r in curve]
  b.step(steps, levels, where="post", label="depth level (0: one-step problems)")
  b.set_yticks(range(0, int(max(levels + [4])) + 1))
  b.set_ylim(-0.3, max(levels + [4]) + 0.3)
  b.set_ylabel("curriculum level")
  b.set_xlabel("step")
  b2 = b.twinx()
  b2.plot(steps, [r["curriculum/pass_rate"] for r in curve], color="C1", lw=1,
          label="running pass rate (moves up above 0.75, down below 0.25)")
  b2.set_ylim(0, 1)
  b2.set_ylabel("running pass rate")
  b.grid(alpha=0.3)
  handles = b.get_legend_handles_labels()[0] + b2.get_legend_handles_labels()[0]
  b.legend(handles=handles, fontsize=7, loc="upper left")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def grpo_steps(settings: dict) -> str | None:
  """GRPO's one depth range (`steps=` in grpo.problem_options), None for the curriculum's
  levels."""
  from mathvlm.objectives.grpo import keyword_options
  return keyword_options(settings.get("problem_options", "")).get("steps")


def depth_words(settings: dict) -> str:
  """How deep GRPO's problems were: one depth range, or the curriculum's levels."""
  steps = grpo_steps(settings)
  if steps:
    return (f"problems of `--steps {steps}` throughout, the held-out problems' depths (one "
            "level: the curriculum stays)")
  least = settings.get("curriculum_min_steps")  # absent in a summary from before the option
  return ("the curriculum moves the reasoning depth up when the running pass rate passes 0.75 "
          "and down below 0.25" + (f", after at least {least} steps at a level" if least else "")
          + " (mathvlm/rl/curriculum.py)")


def pass_at_group(curve: list[dict], settings: dict) -> str:
  """The column beside pass@1: pass@G over each prompt's G answers as first sampled, named by
  the group size. The first other `pass@` key was `pass@1/trained` once rows logged it: the
  refilled batch's rate, which drifts towards 1/2 whatever the policy does (rl/rollouts.py)."""
  key = f"pass@{settings.get('group', 1)}"
  return key if key in curve[0] else "pass@1"


def grpo_section(g: dict, evals: dict) -> list[str]:
  """What GRPO saw while it trained (first and last ten steps) and what it changed held out."""
  curve, o = g["curve"], g["settings"]
  mean = lambda rows, k: sum(r.get(k, 0.0) for r in rows) / max(len(rows), 1)
  pass_g = pass_at_group(curve, o)
  row = lambda name, rows: (
      f"| {name} | {mean(rows, 'reward/mean'):.3f} | {mean(rows, 'pass@1'):.3f} | "
      f"{mean(rows, pass_g):.3f} | {mean(rows, 'groups/all_equal'):.2f} | "
      f"{mean(rows, 'groups/all_equal_after'):.2f} | {mean(rows, 'curriculum/level'):.1f} | "
      f"{mean(rows, 'response_length'):.1f} | {mean(rows, 'rollout_seconds'):.1f} |")
  acc = lambda stage, key: evals[stage].get(key, {"accuracy": 0.0})["accuracy"]
  keys = ("all", "type/free-form", "type/multiple-choice")
  return [
      "## Stage 5: GRPO on problems the engine makes as it trains",
      "",
      f"{o['prompts_per_step']} prompts a step, {o['group']} sampled answers each (temperature "
      f"{o['temperature']}, at most {o['max_new_tokens']} tokens) to the `{o['version']}` "
      "question of problems the engine makes on the fly from its training split (never a "
      f"held-out problem); rewards `{o['rewards']}` (answer: the evaluation's judge, 1 if "
      "right; format: the trained `The answer is V.`); "
      + (f"{equal_groups(o)[0]} are replaced by fresh problems (DAPO's dynamic "
         f"sampling, at most {o['max_refills']} rounds); " if o["dynamic_sampling"] else "")
      + f"clip {o['eps_low']}/{o['eps_high']}, KL beta {o['beta']}, learning rate {o['lr']:g}; "
      + depth_words(o) + " (configs/demo.py's grpo stage).",
      "",
      f"| steps | reward (trained batch) | pass@1 | {pass_g} | {equal_groups(o)[1]} sampled | "
      "left after refills | "
      "depth level | answer tokens | rollout s/step |",
      "|---|---|---|---|---|---|---|---|---|",
      row("first 10", curve[:10]),
      row("last 10", curve[-10:]),
      "",
      "Held out (percent, generated answers): " + "; ".join(
          f"{k.split('/')[-1]} {acc('dpo', k):.1f} after DPO -> {acc('grpo', k):.1f} after GRPO "
          f"(instruction tuning alone {acc('sft', k):.1f})" for k in keys) + ".",
      "",
      "Question by question (questions right after one stage and wrong after the other; exact "
      "McNemar test, two-sided):",
      "",
      "| GRPO against | free-form gained | lost | p | all gained | lost | p |",
      "|---|---|---|---|---|---|---|",
      *[f"| {k[3:]} | {x['free_form']['gained']} | {x['free_form']['lost']} | "
        f"{x['free_form']['p']:.3f} | {x['all']['gained']} | {x['all']['lost']} | "
        f"{x['all']['p']:.3f} |" for k, x in g.get("paired", {}).items()],
      "",
      "![grpo](grpo.png)",
      "",
  ]


def data_section(r: dict) -> list[str]:
  s = r["settings"]
  return [
      "## Data",
      f"- Engine problems: {r['engine']['train']['n']} for training, {r['engine']['test']['n']} "
      "held out (a content-hash split: no held-out problem appears in training), plane "
      "geometry, analytic geometry and functions in equal parts; multiple choice asked for "
      f"{pct(s['mc'])}% of problems, held {mc_share(r['evals']):.1f}% of held-out questions (a "
      "multiple-choice question shows four quantities of its figure and asks one; a figure "
      "with too few is redrawn, and the question asked free-form only after 40 such figures).",
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
  ]


def clip_math_section(ret: dict, seed: int) -> list[str]:
  return [
      "## Stage 1: CLIP-Math (contrastive, image <-> caption)",
      "",
      "| tower | image -> caption top-1 | top-5 | caption -> image top-1 |",
      "|---|---|---|---|",
      *[f"| {who} | {pct(ret[k]['image_to_caption_top1'])} | "
        f"{pct(ret[k]['image_to_caption_top5'])} | {pct(ret[k]['caption_to_image_top1'])} |"
        for who, k in ((f"untrained (seed {seed})", "before"), ("after CLIP-Math", "after"))],
      f"| chance | {pct(ret['after']['chance'])} | {pct(ret['after']['chance_top5'])} | "
      f"{pct(ret['after']['chance'])} |",
      "",
      f"On {ret['after']['pairs']} held-out diagram/caption pairs (percent).",
      "",
  ]


def held_out_section(r: dict) -> list[str]:
  b = r["baselines"]
  return [
      "## Stages 2-5: held-out problems (percent correct)",
      "",
      "Answers as the model generates them (greedy, at most "
      f"{r['settings']['max_new_tokens']} tokens), scored as the evaluation CLI scores MathVerse: "
      "the stated option, or the stated value's option, or the value itself for free-form.",
      "",
      *accuracy_table(r["evals"]),
      "",
      "The same, with each multiple-choice question answered by the option whose answer "
      "(`The answer is V.`) has the highest summed log-probability, lm-evaluation-harness's "
      "`acc`; free-form answers are still generated. It measures what the model prefers "
      "among given answers; a sum penalises every extra token, so it favours the options "
      "written with the fewest (read it against chance and the fewest-tokens baseline).",
      "",
      *accuracy_table(r["ranked"]),
      "",
      *ranked_norm_section(r),
      "Baselines on the same problems: "
      f"random {b['random']:.1f}, always the training set's most common answer "
      f"({b['majority_answer']['letter']} / `{b['majority_answer']['value']}`) "
      f"{b['majority']:.1f}; the choices-only rule that exploited the old engine's "
      f"distractors (the option the others derive from) {b['choices_only_rule']:.1f}"
      + (f"; always the option written with the fewest tokens "
         f"{b['choices_only_fewest_tokens']:.1f}" if "choices_only_fewest_tokens" in b else "")
      + ".",
      "",
      "![accuracy](accuracy.png)",
      "",
  ]


def training_section(r: dict) -> list[str]:
  pairs = r["dpo_pairs"]
  return [
      "## Training",
      "",
      "| stage | steps | first loss | last loss | seconds |",
      "|---|---|---|---|---|",
      *[f"| {st} | {v['steps']} | {v['first_loss']:.3f} | {v['last_loss']:.3f} | "
        f"{v['seconds']:.0f} |" for st, v in r["training"].items()],
      "",
      "GRPO's loss is about 0 by construction (its advantages sum to 0 in each group); what it "
      "optimises, the reward, is in the Stage 5 table.",
      "",
      dpo_pairs_said(pairs),
      "",
      "![losses](losses.png)",
      "",
  ]


def dpo_pairs_said(pairs: dict) -> str:
  if pairs.get("rejected") == "engine":
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(pairs["kinds"].items()))
    return (f"DPO pairs (`--rejected engine`): the engine's wrong rationales for "
            f"{pairs['problems']} training problems became {pairs['pairs']} (annotated answer, "
            f"wrong rationale's answer) pairs ({kinds}); {pairs['no_wrong_rationale']} problems "
            "had none.")
  return (f"DPO pairs: the stage-3 model answered {pairs['responses']} training problems; "
          f"{pairs['correct']} right, {pairs['pairs']} wrong answers became "
          "(annotated answer, model answer) pairs" + (
              f"; {pairs['empty']} empty answers were left out (no text to reject)."
              if pairs.get("empty") else "."))


def math_v_section(m: dict) -> list[str]:
  return [
      "## MATH-Vision testmini (the benchmark pipeline, once)",
      "",
      f"The final model on the {m['total']} real testmini problems "
      f"(../shared/data): {m['correct']} correct ({m['accuracy']:.1f}%). "
      "A model this size trained on engine diagrams is not expected to solve them: this checks "
      "that the pipeline runs end to end on the real files.",
      "",
  ]


def write(out: str, r: dict) -> str:
  """r: everything the demo measured (also saved as summary.json); REPORT.md and its plots."""
  os.makedirs(out, exist_ok=True)
  plot_losses(r["workdirs"], os.path.join(out, "losses.png"))
  plot_accuracy(r["evals"], r["ranked"], r["baselines"], os.path.join(out, "accuracy.png"))
  plot_grpo(r["grpo"]["curve"], os.path.join(out, "grpo.png"), r["grpo"]["settings"])
  s = r["settings"]
  lines = [
      "# mathvlm demo report",
      "",
      f"`{r['command']}` on {r['machine']}, seed {s['seed']}, {r['seconds']:.0f} s in all. "
      "Every number below was measured by that run; rerunning the command with the same seed "
      "reproduces the data, the training order and the initialisation.",
      "",
      *data_section(r),
      *clip_math_section(r["retrieval"], s["seed"]),
      *held_out_section(r),
      *training_section(r),
      *grpo_section(r["grpo"], r["evals"]),
      *dynamic_section(r["dynamic"]),
      *math_v_section(r["math_v"]["all"]),
      "## Reading it",
      "",
      *r["reading"],
      "",
  ]
  path = os.path.join(out, "REPORT.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path
