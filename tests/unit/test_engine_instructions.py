"""The instruction-count benchmark's arithmetic (the run itself, under valgrind, is a slow test in
tests/integration/test_benchmarks_run.py)."""

import pytest

from benchmarks.engine_instructions import per_problem, total_instructions


def test_the_count_is_read_from_cachegrinds_summary_line(tmp_path):
  f = tmp_path / "cg.out"
  f.write_text("version: 1\ncmd: python\nevents: Ir\nfl=x.c\nfn=f\n12 345\n"
               "summary: 123456789\n")
  assert total_instructions(str(f)) == 123456789
  (tmp_path / "bad.out").write_text("events: Ir\n")
  with pytest.raises(ValueError, match="no `summary:` line"):
    total_instructions(str(tmp_path / "bad.out"))


def test_a_problem_costs_what_the_longer_run_spent_on_its_extra_problems():
  assert per_problem(1_000_000, 4_000_000, 300) == 10_000
  with pytest.raises(ValueError, match="longer run"):
    per_problem(4_000_000, 1_000_000, 300)
