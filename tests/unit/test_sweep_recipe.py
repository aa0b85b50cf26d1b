"""launch/sweep.py's data steps and seed summaries, and the two recipe sweep files: each run's
selection before its training (here, in its job script, or on every TPU worker), the one-time
setup step, options after the file name, and the table averaged over seeds with its plot.
The real thing (tiny runs trained and evaluated) is tests/integration/test_sweep_data_step.py."""

import importlib.util
import json
import os
import shlex

import pytest

from train_utils import ROOT

spec = importlib.util.spec_from_file_location("sweep_cli", os.path.join(ROOT, "launch/sweep.py"))
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


def test_complexity_ratio_runs_select_then_train(tmp_path):
  mod, runs = sweep.load_sweep("configs/sweeps/complexity_ratio.py")
  assert len(runs) == 15 and {r["ratio"] for r in runs} == {
      "2:3:4:1", "3:3:3:1", "4:3:2:1", "2:4:3:1", "random"}
  assert sorted(r["config.seed"] for r in runs) == [0] * 5 + [1] * 5 + [2] * 5
  steps, flags = sweep.prepared(mod, runs[4], str(tmp_path / "d"))
  argv = steps[0]
  assert argv[:3] == ["python", "-m", "data_prep.select"]
  opt = dict(zip(argv[3::2], argv[4::2]))
  assert opt == {"--scores": "out/sweeps/pool/qa/train/scores.jsonl", "--ratio": "3:3:3:1",
                 "--size": "600", "--seed": "1", "--qa_per_image": "1",
                 "--out": str(tmp_path / "d")}
  assert flags == {"config.data.subset": str(tmp_path / "d/selected.jsonl")}
  args = sweep.trainer_args(mod.BASE, mod.FLAGS, {**runs[4], **flags}, "W")
  assert args[0] == "--config=configs/recipe_sweep.py:pool=out/sweeps/pool,epochs=1"
  assert "--config.seed=1" in args and not any(a.startswith("--ratio") for a in args)
  assert sweep.setup_steps(mod, "W") == [(["python", "-m", "mathvlm.demo.sweep_pool", "--out",
                                           "out/sweeps/pool"], "out/sweeps/pool/DONE.json")]


def test_qa_per_image_same_steps_and_options(tmp_path):
  mod, runs = sweep.load_sweep("configs/sweeps/qa_per_image.py")
  assert [r["qa_per_image"] for r in runs] == [1] * 3 + [2] * 3 + [4] * 3 + [8] * 3
  assert mod.FLAGS == {"config.steps": 80 * 8 // 16}  # one pass over images x 8, batch 16
  argv = sweep.prepared(mod, runs[-1], "D")[0][0]
  assert argv[argv.index("--qa_per_image") + 1] == "8" and argv[argv.index("--size") + 1] == "80"
  mod, runs = sweep.load_sweep("configs/sweeps/qa_per_image.py:images=40,seeds=1,steps=7")
  assert len(runs) == 4 and mod.FLAGS == {"config.steps": 7}
  with pytest.raises(SystemExit, match="scale=paper needs"):
    sweep.load_sweep("configs/sweeps/qa_per_image.py:scale=paper")
  with pytest.raises(SystemExit, match="unknown config argument 'imgs'"):
    sweep.load_sweep("configs/sweeps/qa_per_image.py:imgs=4")
  with pytest.raises(SystemExit, match="takes no options"):
    sweep.load_sweep("configs/sweeps/tiny_lr.py:x=1")


def test_job_scripts_carry_the_data_step(tmp_path):
  paper = ("configs/sweeps/complexity_ratio.py:scale=paper,size=40000,qa_per_image=0,seeds=1,"
           "scores=/data/scores.jsonl,data=/data,init=gs://b/i,tokenizer=/t,mathvista=/mv,"
           "math_v=/mt")
  sweep.main([paper, "--workdir", str(tmp_path / "slurm"), "--launcher", "slurm",
              "--launcher_args=--nodes=2"])
  job = (tmp_path / "slurm/jobs/00_ratio=2_3_4_1,seed=0.sh").read_text().splitlines()
  assert job[-2].startswith('"${PYTHON:-.venv/bin/python}" -m data_prep.select --scores '
                            "/data/scores.jsonl --ratio 2:3:4:1 --size 40000 --seed 0")
  assert job[-1].startswith("exec sbatch --nodes=2 launch/gpu_slurm.sbatch --config=configs/"
                            "recipe_sweep.py:scale=paper,data=/data,init=gs://b/i")
  subset = str(tmp_path / "slurm/00_ratio=2_3_4_1,seed=0/data/selected.jsonl")
  assert f"--config.data.subset={subset}" in job[-1]
  assert not (tmp_path / "slurm/jobs/setup.sh").exists()  # paper scale: nothing to set up

  cwd = os.getcwd()
  os.chdir(tmp_path)  # a bucket workdir: no local `gs:` folder; the jobs go to out/sweep_jobs
  try:
    sweep.ROOT = str(tmp_path / "repo")
    sweep.main([paper, "--workdir", "gs://b/sweeps/ratio", "--launcher", "tpu",
                "--launcher_args", "n z v4-64"])
  finally:
    os.chdir(cwd)
    sweep.ROOT = ROOT
  assert not (tmp_path / "gs:").exists()
  bucket_jobs = tmp_path / "repo/out/sweep_jobs/gs/b/sweeps/ratio"  # keyed by the whole path
  jobs = sorted(f for f in os.listdir(bucket_jobs) if f.endswith(".sh"))
  assert len(jobs) == 5 and "--workdir=gs://b/sweeps/ratio/00_ratio=2_3_4_1,seed=0" in (
      bucket_jobs / jobs[0]).read_text()
  line = (bucket_jobs / "04_ratio=random,seed=0.sh").read_text().splitlines()[-1]
  env, *rest = shlex.split(line)
  prepare = env.split("=", 1)[1]  # run by tpu_vm.sh on every worker before training
  assert env.startswith("PREPARE=.venv/bin/python -m data_prep.select") and "--ratio random" in env
  assert prepare.endswith("--out /tmp/mathvlm-sweep/ratio/04_ratio=random,seed=0")  # worker-local
  assert rest[:6] == ["exec", "bash", "launch/tpu_vm.sh", "n", "z", "v4-64"]
  assert "--config.data.subset=/tmp/mathvlm-sweep/ratio/04_ratio=random,seed=0/selected.jsonl" in (
      rest)

  sweep.main(["configs/sweeps/qa_per_image.py", "--workdir", str(tmp_path / "eng"),
              "--launcher", "local.sh", "--launcher_args", "2"])
  setup = (tmp_path / "eng/jobs/setup.sh").read_text()
  assert "-m mathvlm.demo.sweep_pool --out out/sweeps/pool" in setup


def _sweep_file(tmp_path, body: str) -> str:
  path = tmp_path / "toy_sweep.py"
  path.write_text(body)
  return str(path)


TOY = """
BASE = "configs/sft.py:model=tiny"
X = "width"
TREND = "log2"
METRICS = {"eval/held/loss": "held-out loss", "loss": "train loss"}
def setup(workdir):
  return [(["python", "-c", "import sys; open(sys.argv[1], 'a').write('x')", workdir + "/made"],
           workdir + "/made")]
def get_sweep():
  return [{"width": w, "config.seed": s} for w in (8, 16) for s in (0, 1, 2)]
def prepare(run, data_dir):
  return [], {"config.data.num_examples": 64 * run["width"]}
"""


def test_setup_runs_once_and_summary_averages_seeds(tmp_path):
  """Finished runs (written here) are skipped; the one-time setup step runs only while its file
  is missing; mean and sample std over seeds per setting, a missing seed left out, the plot."""
  path = _sweep_file(tmp_path, TOY)
  wd = tmp_path / "w"
  mod, flag_sets = sweep.load_sweep(path)
  runs = [(sweep.run_name(k, f), f) for k, f in enumerate(flag_sets)]
  held = {(8, 0): 2.0, (8, 1): 3.0, (8, 2): 4.0, (16, 0): 1.0, (16, 1): 1.5}  # (16, 2) missing
  for name, f in runs:
    if (f["width"], f["config.seed"]) not in held:
      continue
    os.makedirs(wd / name / "model")
    (wd / name / "model/config.json").write_text("{}")
    (wd / name / "metrics.jsonl").write_text(json.dumps({"step": 5, "loss": 0.5}) + "\n")
    (wd / name / "eval.json").write_text(json.dumps(
        {"held": {"loss": held[f["width"], f["config.seed"]], "step": 5}}))
  for _ in range(2):
    sweep.main([path, "--workdir", str(wd), "--collect"])
  assert not (wd / "made").exists()  # --collect runs nothing
  rows = json.load(open(wd / "results.json"))
  assert [r["status"] for r in rows] == ["done"] * 5 + ["missing"]
  assert rows[0]["eval/held/loss"] == 2.0 and rows[0]["width"] == 8 and rows[0]["seed"] == 0
  summary = json.load(open(wd / "summary.json"))
  assert [(e["width"], e["seeds"]) for e in summary] == [(8, [0, 1, 2]), (16, [0, 1])]
  assert summary[0]["eval/held/loss"] == {"mean": 3.0, "std": 1.0, "values": [2.0, 3.0, 4.0]}
  assert summary[1]["eval/held/loss"]["mean"] == 1.25
  assert abs(summary[1]["eval/held/loss"]["std"] - 0.3536) < 1e-4
  md = (wd / "summary.md").read_text()
  assert "| width | seeds | held-out loss | train loss |" in md and "| 8 | 3 | 3 ± 1 |" in md
  assert (wd / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # Welch (unequal variances; Student's pooled test gives p = 0.107 here): t = 1.75 /
  # sqrt(1/3 + 0.125/2) = 2.7815 on Welch-Satterthwaite's 2.635 degrees of freedom
  tests = json.load(open(wd / "tests.json"))
  welch = tests["welch_vs_first"]["eval/held/loss"]["16"]
  assert abs(welch["t"] - 2.7815) < 1e-4 and abs(welch["df"] - 2.6350) < 1e-4
  assert abs(welch["p"] - 0.07982) < 1e-5
  assert tests["welch_vs_first"]["loss"]["16"] is None  # every seed 0.5: nothing to test
  # the trend per doubling of width over the 5 runs (two widths: the gap of the means)
  assert tests["trend"]["x"] == "width" and tests["trend"]["scale"] == "log2"
  fit = tests["trend"]["fits"]["eval/held/loss"]
  assert abs(fit["slope"] + 1.75) < 1e-9 and abs(fit["p"] - 0.10716) < 1e-5 and fit["runs"] == 5
  assert "- held-out loss: 16 p = 0.0798" in md and "- held-out loss: -1.75 (p = 0.107, 5 runs)" in md
  assert "held-out loss" in (wd / "results.md").read_text()

  todo = lambda: [s for s, c in sweep.setup_steps(mod, str(wd)) if not os.path.exists(c)]  # noqa
  sweep.run_steps(todo(), "setup")
  assert (wd / "made").read_text() == "x" and todo() == []


def test_plain_keys_need_a_prepare(tmp_path):
  path = _sweep_file(tmp_path, "BASE = 'configs/sft.py'\ndef get_sweep():\n"
                               "  return [{'ratio': '2:3:4:1'}]\n")
  with pytest.raises(SystemExit, match=r"data settings need a prepare\(run, data_dir\)"):
    sweep.load_sweep(path)


def test_an_unknown_trend_scale_fails_at_load(tmp_path):
  """Before any run, not at the collect step after the last one."""
  path = _sweep_file(tmp_path, "BASE = 'configs/sft.py'\nTREND = 'log10'\ndef get_sweep():\n"
                               "  return [{'config.optim.lr': 1e-3}]\n")
  with pytest.raises(SystemExit, match=r"TREND = 'log10'; use 'linear' or 'log2'"):
    sweep.load_sweep(path)
