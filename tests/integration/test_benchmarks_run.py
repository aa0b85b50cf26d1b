"""The performance benchmarks (benchmarks/, issue 16) run end to end on the tiny preset and print
the JSON the README's figures come from. Slow (a minute of compiles and torch steps): the default
run has no other check that a refactor kept the benchmarks' calls into the library working (one
did not: `convert.load_hf` moved to `mathvlm.hf`, `make_train_step` changed its arguments)."""

import json
import shutil
import os
import subprocess
import sys

import pytest

from train_utils import ROOT

pytestmark = pytest.mark.slow


def _run(*args: str, drop: tuple[str, ...] = ()) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in drop}
  res = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**env, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stderr[-3000:]
  return json.loads(res.stdout.strip().splitlines()[-1])


def test_train_step_benchmark_runs_both_sides_from_the_same_weights():
  out = _run("benchmarks.train_step", "--preset", "tiny", "--repeats", "1")
  assert out["first_loss"]["ours"] == pytest.approx(out["first_loss"]["ref"], rel=1e-4)
  for key in ("ours_tokens_per_s", "ref_tokens_per_s", "ratio", "mfu"):
    assert out[key] > 0, key
  assert out["malloc"] == "runtime"
  if sys.platform.startswith("linux"):
    assert out["allocator"] == {"M_MMAP_MAX": 0, "M_TRIM_THRESHOLD": -1}
  assert set(out["per_step_os"]) == {"ours", "ref"}
  for side in out["per_step_os"].values():
    assert side["page_faults"] >= 0 and side["system_cpu_s"] >= 0


def test_generate_benchmark_decodes_what_transformers_decodes():
  """90 new tokens after the tiny preset's 48-token prompts: a 256-slot cache, so our steps run in
  three loops over the cache held as blocks, and still decode transformers' tokens."""
  out = _run("benchmarks.generate", "--preset", "tiny", "--repeats", "1", "--new_tokens", "90")
  assert out["greedy_identical_b1"] and out["greedy_identical_b8"]
  assert out["ratio_b1"] > 0 and out["ratio_b8"] > 0
  assert out["prompt_len_b8"] == 48 and out["cache_phases_b8"] == [[0, 17], [1, 81], [2, 90]]


def test_decode_bound_benchmark_splits_both_calls_and_times_the_same_chain():
  """Both sides' prefill and step, and the decode-matmul chain computing the same numbers in XLA
  and torch (a chain that dropped a product, or read other weights, would disagree)."""
  out = _run("benchmarks.decode_bound", "--preset", "tiny", "--repeats", "1", "--new_tokens",
             "4", "--passes", "2", "--batches", "2")
  assert out["stream_GBps"] > 0
  row = out["b2"]
  assert row["ours_prefill_s"] > 0 and row["ref_prefill_s"] > 0
  chain = row["weights_chain"]
  assert chain["max_abs_diff"] < 1e-5 and chain["ours_weights_GBps"] > 0
  assert chain["ref_weights_GBps"] > 0


def test_scaling_benchmark_reports_fsdp_memory_per_device():
  out = _run("benchmarks.scaling", "--preset", "tiny", "--depths", "2")
  memory = out["memory"]
  assert sorted(memory) == ["devices_1", "devices_2", "devices_4", "devices_8"]
  assert all(m["ratio_to_one_over_n"] < 1.15 for m in memory.values())


def test_collective_stall_benchmark_runs_both_pools():
  """A few calls per run: whether it stalls is a count for the benchmark, not for a test."""
  out = _run("benchmarks.cpu_collective_stall", "--runs", "1", "--calls", "20")
  assert out["default"]["stalled_runs"] in (0, 1) and out["mathvlm"]["pool_threads"] >= 64


def test_matmul_grad_benchmark_compares_the_same_gradients():
  """The flat weight gradient and autodiff's agree bit for bit at XLA's default optimisation level
  (so the subprocess drops the suite's level-0 XLA_FLAGS); the step runs both ways."""
  out = _run("benchmarks.matmul_grad", "--preset", "tiny", "--repeats", "2", "--step",
             drop=("XLA_FLAGS",))
  assert out["mlp"]["bitwise_equal"] and out["mlp"]["flat_ms"] > 0
  assert out["step"]["flat_s"] > 0 and out["step"]["autodiff_s"] > 0


def test_step_bound_benchmark_times_the_steps_own_dots():
  """Every dot of the compiled tiny step found (some inside the layer loops), timed alone, and
  the floor they sum to set against both steps."""
  out = _run("benchmarks.step_bound", "--preset", "tiny", "--repeats", "1")
  assert out["dots_per_step"] > out["distinct_dots"] > 0 and out["dot_gflop"] > 0
  assert out["matmul_floor_s"] > 0 and out["ratio_ceiling"] > 0 and out["ours_step_s"] > 0
  assert out["loops_of_data_dependent_length"] >= 1  # the loss's chunk loops


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_engine_instruction_count_runs_on_both_checkouts():
  out = _run("benchmarks.engine_instructions", "--warm", "1", "--n", "2", "--against", ROOT)
  counts = out["instructions_per_problem"]
  assert counts["this"] > 1e6 and counts["against"] > 1e6
  assert abs(out["change"]) < 0.05  # the same code counted twice
