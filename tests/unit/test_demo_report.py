"""The demo's reading of ranked (likelihood) accuracy: against chance, with its noise, never
against generated accuracy (a model that writes values none of the options counts wrong, so
ranking beats it at chance); acc_norm beside acc in the report when the summary has it."""

import pytest

from mathvlm.demo import report
from mathvlm.demo.__main__ import reading

N_MC, N_FREE = 561, 339


def table(mc: float, free: float = 5.0) -> dict:
  entry = lambda a, n: {"correct": round(a * n / 100), "total": n, "accuracy": a}  # noqa: E731
  return {"all": entry(round((mc * N_MC + free * N_FREE) / (N_MC + N_FREE), 2), N_MC + N_FREE),
          "type/multiple-choice": entry(mc, N_MC), "type/free-form": entry(free, N_FREE)}


def summary(ranked_sft: float, ranked_norm_sft: float | None = None) -> dict:
  """A demo summary as `reading` reads it: generated multiple choice 4.5%, chance 25%."""
  stages = ("align", "sft", "dpo", "grpo")
  s = dict(
      baselines={"random": 25.0 * N_MC / (N_MC + N_FREE), "majority": 20.7,
                 "choices_only_rule": 15.0, "choices_only_odd_form": 18.0},
      evals={st: table(4.5) for st in stages},
      ranked={st: table(ranked_sft if st == "sft" else 24.4) for st in stages},
      grpo=dict(settings={}, paired={}, curve=[{"reward/mean": 0.2, "curriculum/level": 1.0}]),
      dynamic=dict(variants=3, average=6.0, questions=648, worst_case=0.9, robustness=0.15),
      settings=dict(quick=False))
  if ranked_norm_sft is not None:
    s["ranked_norm"] = {st: table(ranked_norm_sft if st == "sft" else 25.1) for st in stages}
  return s


def ranked_line(s: dict) -> str:
  return next(x for x in reading(s) if "Ranked by likelihood" in x)


@pytest.mark.parametrize("ranked", [24.4, 21.6, 28.6])
def test_ranked_accuracy_within_noise_of_chance_is_said_to_be_chance(ranked):
  """561 questions at chance 25%: two standard errors are 3.7 points. Generated multiple choice
  is 4.5%, so the old reading ("it prefers the right option more often than it writes it") held
  for any ranking at all."""
  line = ranked_line(summary(ranked))
  assert "within noise of chance (chance 25.0%, two standard errors 3.7 points on 561" in line
  assert "no preference for the right option" in line
  assert "more often than it writes it" not in line


def test_ranked_accuracy_beyond_noise_is_said_to_be_above_or_below_chance():
  assert "by summed log-prob +10.0 points, above chance by more than noise" in ranked_line(
      summary(35.0))
  assert "by summed log-prob -7.0 points, below chance by more than noise" in ranked_line(
      summary(18.0))


def test_acc_norm_is_read_beside_acc_when_the_summary_has_it():
  line = ranked_line(summary(24.4, 33.0))
  assert "24.4% by summed log-prob" in line
  assert "33.0% by log-prob per byte, lm-evaluation-harness's acc_norm" in line
  assert "by log-prob per byte +8.0 points, above chance by more than noise" in line
  assert "by summed log-prob within noise" in line


def test_the_report_shows_the_acc_norm_table_and_ties_when_measured():
  s = summary(24.4, 33.0)
  assert report.ranked_norm_section(summary(24.4)) == []  # summaries made before acc_norm
  lines = report.ranked_norm_section(s)
  assert "acc_norm" in lines[0] and "| after 3 instruction tuning | " in "\n".join(lines)
  assert not any("ties" in x for x in lines)
  s["ranked_ties"] = {"align": {"acc": 3, "acc_norm": 0}, "sft": {"acc": 0, "acc_norm": 0}}
  assert any("2 alignment 3 summed, 0 per byte" in x for x in report.ranked_norm_section(s))


def test_the_choices_only_reading_counts_slip_sources_alias_once():
  """`choices_only_rule` is `choices_only_slip_source` under its old name: the reading counted
  it twice ("the best of 16" for 15 rules)."""
  s = summary(24.4)
  s["baselines"]["choices_only_slip_source"] = s["baselines"]["choices_only_rule"]
  line = next(x for x in reading(s) if x.startswith("- Options alone"))
  assert "the best of 2 choices-only rules (odd_form)" in line, line


def test_the_grpo_table_shows_pass_at_group_not_the_refilled_batchs_rate():
  """Rows log `pass@1/trained` before `pass@8`: picking the first other `pass@` key put the
  refilled batch's rate (drifting to 1/2 under dynamic sampling) in pass@G's column."""
  row = {"reward/mean": 0.2, "pass@1/trained": 0.5, "pass@8/trained": 0.9, "pass@1": 0.02,
         "pass@8": 0.125, "groups/all_equal": 0.8, "groups/all_equal_after": 0.4,
         "curriculum/level": 0.0, "response_length": 10.0, "rollout_seconds": 3.0}
  settings = dict(prompts_per_step=8, group=8, temperature=1.0, max_new_tokens=16,
                  version="text_lite", rewards="answer=1.0", dynamic_sampling=False,
                  eps_low=0.2, eps_high=0.28, beta=0.0, lr=5e-5, problem_options="steps=1:6")
  stages = ("sft", "dpo", "grpo")
  lines = report.grpo_section(dict(curve=[row] * 10, settings=settings),
                              {st: table(4.5) for st in stages})
  head = next(x for x in lines if x.startswith("| steps |"))
  first = next(x for x in lines if x.startswith("| first 10 |"))
  assert "| pass@1 | pass@8 |" in head, head
  assert first.startswith("| first 10 | 0.200 | 0.020 | 0.125 |"), first


@pytest.mark.parametrize("metric,words,column", [
    (None, "groups whose rewards are all equal are replaced", "| equal-reward groups sampled |"),
    ("reward", "groups whose rewards are all equal are replaced",
     "| equal-reward groups sampled |"),
    ("correct", "groups whose answers are all right or all wrong are replaced",
     "| all-right or all-wrong groups sampled |")])
def test_the_grpo_section_names_what_dynamic_sampling_filters_on(metric, words, column):
  """With `grpo.filter_metric='correct'` the groups replaced (and counted in `groups/all_equal`)
  are those all right or all wrong, not those equal in reward: an all-wrong group whose format
  rewards differ is one. A summary from before the option has no field: the reward."""
  row = {"reward/mean": 0.2, "pass@1": 0.02, "groups/all_equal": 0.8,
         "groups/all_equal_after": 0.4, "curriculum/level": 0.0, "response_length": 10.0,
         "rollout_seconds": 3.0}
  settings = dict(prompts_per_step=8, group=8, temperature=1.0, max_new_tokens=16,
                  version="text_lite", rewards="answer=1.0,format=0.1", dynamic_sampling=True,
                  max_refills=2, eps_low=0.2, eps_high=0.28, beta=0.0, lr=5e-5,
                  problem_options="steps=1:6")
  if metric:
    settings["filter_metric"] = metric
  lines = report.grpo_section(dict(curve=[row] * 10, settings=settings),
                              {st: table(4.5) for st in ("sft", "dpo", "grpo")})
  text = "\n".join(lines)
  assert words in text and column in text, text[:2000]
