"""`python -m benchmarks.engine` end to end at a small size (the README's engine figures come from
it): speed beside the Matplotlib render, where the CPU goes (every stage reached), the
choices-only rules and the layout sweep. Quick, so it runs by default, unlike
test_benchmarks_run.py."""

import json
import os
import subprocess
import sys

from train_utils import ROOT


def test_engine_benchmark_reports_speed_stages_rules_and_layout():
  res = subprocess.run([sys.executable, "-m", "benchmarks.engine", "--n", "12", "--long", "18",
                        "--rules", "24", "--sweep", "12"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stderr[-3000:]
  out = json.loads(res.stdout.strip().splitlines()[-1])
  speed = out["speed"]
  assert speed["engine"]["problems"] == speed["matplotlib_bare_render"]["problems"] == 12
  assert speed["engine_files_on_disk"]["problems"] == 12
  assert speed["engine_long_run"]["problems"] == 18 and speed["engine_long_run"]["workers"] == 2
  assert speed["file_create_cpu_ms"]["disk"] > 0 and os.path.isdir(speed["engine_files_in"])
  cpu = speed["engine_cpu"]
  st = cpu["stages_ms_per_problem"]
  assert list(st) == ["scene", "option_set", "drawing", "assemble", "options", "solve",
                      "rationales", "files", "encode", "degrade", "redrawn_attempts"]
  assert all(v > 0 for v in st.values()), st   # every stage was reached and timed
  # nested stages fit inside their parents, and the stages inside the measured CPU time
  assert st["options"] + st["solve"] + st["rationales"] <= st["assemble"] + 0.02
  assert st["encode"] + st["degrade"] <= st["files"] + 0.02
  outer = st["scene"] + st["option_set"] + st["drawing"] + st["assemble"]
  assert outer + st["files"] <= cpu["cpu_ms_per_problem"]
  assert st["redrawn_attempts"] < outer  # failed ones only
  images = cpu["images_ms_per_problem"]  # the drawing and the files alone, and their ceiling
  assert abs(images - st["drawing"] - st["files"]) <= 0.02 and images < cpu["cpu_ms_per_problem"]
  assert abs(cpu["images_only_problems_per_s_per_idle_core"] - 1000 / images) <= 0.1 * 1000 / images
  split = speed["split_cpu"]
  assert split["problems"] == 30 and split["all"]["other_split_passed_over"] == 0
  assert split["test"]["other_split_passed_over"] > split["train"]["other_split_passed_over"]
  assert all(split[k]["cpu_ms_per_problem"] > 0 for k in ("all", "train", "test"))
  depth = speed["depth_cpu"]
  assert depth["problems"] == 30 and set(depth) == {"problems", "1:3", "4:6"}
  for name, (lo, hi) in (("1:3", (1, 3)), ("4:6", (4, 6))):
    held = {int(k): v for k, v in depth[name]["records_by_steps"].items()}
    assert sum(held.values()) == 30 and min(held) >= lo and max(held) <= hi, (name, held)
    assert depth[name]["cpu_ms_per_problem"] > 0
    assert depth[name]["labels_do_not_fit_per_problem"] >= 0
  rules = out["choices_only_rules"]
  assert "largest_gap_points" in rules and rules["learned_from"] >= 10
  assert {"slip_source", "learned_linear", "learned_trees"} <= set(rules["percent"]["all"])
  kind_rule = rules["question_kind_rule_percent"]
  assert set(kind_rule) >= {"all", "plane"} and all(25 <= v <= 100 for v in kind_rule.values())
  assert out["layout"]["scenes"] == 12 and out["layout"]["conflicts"] == 0
