"""The engine at the edges of its options (found by a sweep of 437 runs over every option):
values no run can use are refused at once by name, and accepted values make the problems they
promise, at every depth, split and variant count."""

from __future__ import annotations

import json

import pytest

from data_prep.engine import __main__ as cli
from data_prep.engine import writer


@pytest.mark.parametrize("args, said", [
    (["--seed=-1"], "--seed -1; give 0 or more"),  # was NumPy's "expected non-negative integer"
    (["--mc", "1.5"], "--mc 1.5; give a fraction from 0 to 1"),  # was a traceback
    (["--steps", "5:2"], "--steps 5:2"),
    (["--workers", "0"], "--workers 0; give 1 or more"),  # was run in one process, silently
])
def test_values_no_run_can_use_are_refused_by_name(args, said, tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["--n", "2", "--out", str(tmp_path / "o")] + args)
  assert e.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("domain, steps, seed", [("plane", (9, 9), 0), ("analytic", (11, 11), 1)])
def test_mixed_option_sets_leave_every_depth_askable(domain, steps, seed, tmp_path):
  """The deep sums and comparisons (plane) and the lines through two figures' points
  (analytic) were made for `--option_kinds same` only, so `mixed` had no question of these
  depths and gave up after 60 figure programs, free-form questions too."""
  opts = writer.Options(seed=seed, domain=domain, steps=steps, option_kinds="mixed", mc=0.5)
  meta = writer.generate(str(tmp_path), 3, opts)
  records = json.loads((tmp_path / "instruct.json").read_text())
  assert meta["n"] == 3 and {r["steps"] for r in records} == {steps[0]}


def test_a_held_out_split_of_deep_problems_is_made(tmp_path):
  """Sound programs of the other split did not start the failure count afresh: at 12 steps
  nine in ten sound programs are the other split's, and the failures between them added up to
  60 where `--split all` made every problem."""
  opts = writer.Options(seed=0, domain="plane", steps=(12, 12), split="test")
  assert writer.generate(str(tmp_path), 1, opts)["n"] == 1


def test_failures_between_sound_programs_of_the_other_split_are_bounded_in_all(tmp_path,
                                                                              monkeypatch):
  """A sound program of the other split starts the count of failures in a row afresh, so a
  hopeless setting with a few sound programs among thousands of failures would try ~118,000
  programs before giving up; MAX_FAILED bounds them in all."""
  monkeypatch.setattr(writer, "MAX_FAILED", 5)
  opts = writer.Options(seed=0, domain="plane", steps=(12, 12), split="test")
  with pytest.raises(writer.NoProblem, match="failed 5 figure programs in all"):
    writer.generate(str(tmp_path), 1, opts)


def test_a_split_that_holds_too_few_problems_says_so(tmp_path, monkeypatch):
  monkeypatch.setattr(writer, "MAX_OTHER_SPLIT", 30)
  opts = writer.Options(seed=0, domain="plane", split="test", test_fraction=1e-9)
  with pytest.raises(writer.NoProblem, match="give a --test_fraction nearer 0.5"):
    writer.generate(str(tmp_path), 1, opts)


def test_variants_ask_their_option_set_at_the_depth_asked_for(tmp_path):
  """A later variant asks the first's quantity, whose chain its own numbers may make shorter
  or longer: v1 of this problem had 2 steps at --steps 6:6."""
  opts = writer.Options(seed=29, domain="analytic", steps=(6, 6), variants=3, mc=1.0)
  writer.generate(str(tmp_path), 1, opts)
  records = json.loads((tmp_path / "instruct.json").read_text())
  assert [r["steps"] for r in records] == [6, 6, 6]
