"""launch/sweep.py's bookkeeping, without training: the sweep definition a workdir holds
(sweep.json), the job folders (old job files, one folder per bucket workdir), job scripts that
skip finished runs and quote PYTHON, the Welch baseline, collecting from a bucket workdir and runs
copied down without their model, and the launcher arguments and workdirs each launcher needs."""

import importlib.util
import json
import os
import re
import stat
import subprocess

import pytest

from train_utils import ROOT

spec = importlib.util.spec_from_file_location("sweep_cli", os.path.join(ROOT, "launch/sweep.py"))
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)

QA = "configs/sweeps/qa_per_image.py"
PAPER = ("configs/sweeps/complexity_ratio.py:scale=paper,size=40000,qa_per_image=0,seeds=1,"
         "scores=/data/scores.jsonl,data=/data,init=gs://b/i,tokenizer=/t,mathvista=/mv,math_v=/mt")


@pytest.fixture
def repo(tmp_path, monkeypatch):
  """sweep.ROOT in a temporary folder: a bucket workdir's job files go to its out/sweep_jobs."""
  monkeypatch.setattr(sweep, "ROOT", str(tmp_path / "repo"))
  return tmp_path / "repo"


def _executable(path, text):
  path.write_text(text)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


# -- The sweep a workdir holds ----------------------------------------------------------------

def test_a_rerun_with_the_same_definition_goes_on(tmp_path):
  wd = str(tmp_path / "w")
  for _ in range(2):
    sweep.main([QA, "--workdir", wd, "--launcher", "slurm"])
  sweep.main([QA, "--workdir", wd, "--collect"])
  recorded = json.load(open(tmp_path / "w/sweep.json"))
  assert recorded["sweep"] == QA and recorded["FLAGS"] == {"config.steps": 40}
  assert len(recorded["runs"]) == 12 and recorded["runs"][0][0] == "00_qa_per_image=1,seed=0"
  argv = recorded["data"][0][0][0]  # the data step, with its folder left out
  assert argv[argv.index("--size") + 1] == "80" and argv[-1] == sweep.DATA_DIR


@pytest.mark.parametrize("option, field", [("images=160", "data"), ("seeds=5", "runs"),
                                           ("steps=7", "FLAGS"), ("epochs=2", "BASE"),
                                           ("pool=/elsewhere", "BASE")])
def test_a_rerun_with_other_options_is_refused(tmp_path, option, field):
  """Run folders are named by position and swept values: with other options the same names
  would be other runs (taken as finished, or shifted onto other runs' folders)."""
  wd = str(tmp_path / "w")
  sweep.main([QA, "--workdir", wd, "--launcher", "slurm"])
  before = sorted(os.listdir(tmp_path / "w/jobs"))
  for extra in ([], ["--collect"], ["--dry_run"]):
    launcher = [] if extra else ["--launcher", "slurm"]
    with pytest.raises(SystemExit, match=rf"another sweep definition.*differing: .*{field}"
                                         r".*use another --workdir"):
      sweep.main([f"{QA}:{option}", "--workdir", wd, *launcher, *extra])
  assert sorted(os.listdir(tmp_path / "w/jobs")) == before  # nothing rewritten
  assert json.load(open(tmp_path / "w/sweep.json"))["sweep"] == QA
  sweep.main([f"{QA}:{option}", "--workdir", str(tmp_path / "other"), "--launcher", "slurm"])


# -- Job folders --------------------------------------------------------------------------------

def test_old_job_files_are_removed_and_bucket_workdirs_get_their_own_folder(tmp_path, repo):
  wd = tmp_path / "w"
  sweep.main([f"{QA}:seeds=3", "--workdir", str(wd), "--launcher", "slurm"])
  assert len([f for f in os.listdir(wd / "jobs") if f.endswith(".sh")]) == 12 + 1  # + setup.sh
  os.remove(wd / "sweep.json")  # the same workdir for a sweep of fewer seeds, on purpose
  sweep.main([f"{QA}:seeds=1", "--workdir", str(wd), "--launcher", "slurm"])
  assert sorted(os.listdir(wd / "jobs")) == ["00_qa_per_image=1,seed=0.sh",
                                             "01_qa_per_image=2,seed=0.sh",
                                             "02_qa_per_image=4,seed=0.sh",
                                             "03_qa_per_image=8,seed=0.sh", "setup.sh"]

  for bucket in ("gs://b/a/ratio", "gs://b/c/ratio"):  # the same last folder
    sweep.main([PAPER, "--workdir", bucket, "--launcher", "tpu", "--launcher_args", "n z v4-8"])
  for sub in ("a", "c"):
    jobs = repo / "out/sweep_jobs/gs/b" / sub / "ratio"
    files = sorted(f for f in os.listdir(jobs) if f.endswith(".sh"))
    assert len(files) == 5 and f"--workdir=gs://b/{sub}/ratio/00_" in (jobs / files[0]).read_text()
    assert (jobs / "sweep.json").exists()  # a bucket workdir's definition, kept here
  assert sweep.jobs_dir("gs://b/../x//y/") == str(repo / "out/sweep_jobs/gs/b/x/y")


# -- Job scripts ----------------------------------------------------------------------------

def test_job_scripts_skip_finished_runs_and_quote_python(tmp_path):
  wd = tmp_path / "w"
  sweep.main([PAPER, "--workdir", str(wd), "--launcher", "slurm", "--launcher_args=--nodes=2"])
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _executable(bin_dir / "sbatch", '#!/usr/bin/env bash\necho "sbatch $*" >> "$LOG"\n')
  py_dir = tmp_path / "py dir"  # a PYTHON with a space in its path
  py_dir.mkdir()
  _executable(py_dir / "python", '#!/usr/bin/env bash\necho "python $*" >> "$LOG"\n')
  log = tmp_path / "log"
  env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log),
         "PYTHON": str(py_dir / "python")}
  job = wd / "jobs/00_ratio=2_3_4_1,seed=0.sh"
  res = subprocess.run(["bash", str(job)], capture_output=True, text=True, env=env)
  assert res.returncode == 0, res.stderr
  ran = log.read_text().splitlines()
  assert ran[0].startswith("python -m data_prep.select --scores /data/scores.jsonl")
  assert ran[1].startswith("sbatch --nodes=2 launch/gpu_slurm.sbatch")

  run = wd / "00_ratio=2_3_4_1,seed=0"
  (run / "model").mkdir(parents=True)
  (run / "model/config.json").write_text("{}")
  log.unlink()
  res = subprocess.run(["bash", str(job)], capture_output=True, text=True, env=env)
  assert res.returncode == 0 and "finished earlier" in res.stdout and "skipped" in res.stdout
  assert not log.exists()  # neither the data step nor sbatch ran


# A stand-in trainer for local.sh: runs until SIGTERM, then "saves" and exits 0 (as preemption.py).
SAVING_TRAINER = """#!/usr/bin/env bash
for a in "$@"; do case $a in --process_id=*) id=${a#*=};; esac; done
trap 'echo "process=$id saved"; exit 0' TERM
echo $$ > "$PIDS/$id"
while true; do sleep 0.05; done
"""


def test_a_sigterm_to_a_job_script_reaches_the_trainers(tmp_path):
  """A scheduler stops a job by a SIGTERM to the job script's pid. The script ran local.sh as a
  child, so the signal killed the script's shell alone: the trainers trained on, unsaved, until
  the scheduler's SIGKILL. Now the script execs local.sh, which passes it on."""
  import signal
  import time
  wd = tmp_path / "w"
  sweep.main(["configs/sweeps/tiny_lr.py", "--workdir", str(wd), "--launcher", "local.sh",
              "--launcher_args", "2"])
  job = sorted((wd / "jobs").glob("*.sh"))[0]
  _executable(tmp_path / "python", SAVING_TRAINER)
  (tmp_path / "pids").mkdir()
  env = {**os.environ, "PYTHON": str(tmp_path / "python"), "PIDS": str(tmp_path / "pids"),
         "PORT": "1", "CPU_DEVICES": "1"}
  proc = subprocess.Popen(["bash", str(job)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True)
  pids = [tmp_path / "pids" / str(i) for i in range(2)]
  try:
    deadline = time.time() + 30
    while not all(p.exists() and p.read_text().endswith("\n") for p in pids):
      assert time.time() < deadline and proc.poll() is None, proc.communicate()
      time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
  finally:
    if proc.poll() is None:  # this test's own processes only: the job's session
      os.killpg(proc.pid, signal.SIGKILL)
      proc.communicate()
    for p in pids:
      if p.exists() and p.read_text().strip():
        try:
          os.kill(int(p.read_text()), signal.SIGKILL)
        except ProcessLookupError:
          pass
  assert proc.returncode == 143, err
  assert "[0] process=0 saved" in out and "[1] process=1 saved" in out, out
  assert "SIGTERM: passed on to the 2 trainers" in err and "(exit statuses: 0 0)" in err


def test_bucket_job_scripts_ask_the_bucket_whether_the_run_finished(tmp_path, repo):
  sweep.main([PAPER, "--workdir", "gs://b/r", "--launcher", "tpu", "--launcher_args", "n z v4-8"])
  job = repo / "out/sweep_jobs/gs/b/r/00_ratio=2_3_4_1,seed=0.sh"
  assert "gcloud storage ls gs://b/r/00_ratio=2_3_4_1,seed=0/model/config.json" in job.read_text()
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _executable(bin_dir / "gcloud", '#!/usr/bin/env bash\necho "gcloud $*" >> "$LOG"\n')
  log = tmp_path / "log"
  res = subprocess.run(["bash", str(job)], capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                            "LOG": str(log)})
  assert res.returncode == 0 and "skipped" in res.stdout, res.stderr  # the file is listed
  assert log.read_text().splitlines() == [
      "gcloud storage ls gs://b/r/00_ratio=2_3_4_1,seed=0/model/config.json"]


# -- Results ---------------------------------------------------------------------------------

TOY = """
BASE = "configs/sft.py:model=tiny"
METRICS = {"eval/held/loss": "held-out loss"}
def get_sweep():
  return [{"width": w, "config.seed": s} for w in (8, 16, 32) for s in (0, 1, 2)]
def prepare(run, data_dir):
  return [], {}
"""


def _finished(wd, runs, which, *, model=True):
  for i, (name, f) in enumerate(runs):
    if (f["width"], f["config.seed"]) not in which:
      continue
    run = wd / name
    if model:
      (run / "model").mkdir(parents=True)
      (run / "model/config.json").write_text("{}")
    else:  # copied down from a bucket without the model: what train() writes at its end
      run.mkdir(parents=True)
      (run / "data_report.json").write_text('{"examples": 64, "dropped": {}}')
    (run / "metrics.jsonl").write_text(json.dumps({"step": 5, "loss": 0.5}) + "\n")
    (run / "eval.json").write_text(json.dumps(
        {"held": {"loss": 1.0 + i + f["width"] / 10 + f["config.seed"] ** 2, "step": 5}}))


def _toy(tmp_path):
  """(the TOY sweep file, its module, its (run name, flags))."""
  path = tmp_path / "toy.py"
  path.write_text(TOY)
  mod, flag_sets = sweep.load_sweep(str(path))
  return path, mod, [(sweep.run_name(k, f), f) for k, f in enumerate(flag_sets)]


def test_welch_baseline_is_the_first_setting_even_unfinished(tmp_path):
  path, mod, runs = _toy(tmp_path)
  wd = tmp_path / "w"
  _finished(wd, runs, {(w, s) for w in (16, 32) for s in (0, 1, 2)})  # width 8: none finished
  sweep.collect(str(wd), runs, mod)
  summary = json.load(open(wd / "summary.json"))
  assert [(e["width"], e["seeds"]) for e in summary] == [(8, []), (16, [0, 1, 2]),
                                                          (32, [0, 1, 2])]
  tests = json.load(open(wd / "tests.json"))
  assert tests["baseline"] == "8"
  assert tests["welch_vs_first"]["eval/held/loss"] == {"16": None, "32": None}  # not 16 vs 32
  md = (wd / "summary.md").read_text()
  assert "baseline 8 (the first setting): none yet, the baseline has 0 finished seeds" in md

  _finished(wd, runs, {(8, 0), (8, 1)})
  sweep.collect(str(wd), runs, mod)
  tests = json.load(open(wd / "tests.json"))
  assert tests["baseline"] == "8" and set(tests["welch_vs_first"]["eval/held/loss"]) == {"16", "32"}
  assert all(r is not None for r in tests["welch_vs_first"]["eval/held/loss"].values())
  assert "each setting against the baseline 8" in (wd / "summary.md").read_text()


def test_a_run_copied_down_without_its_model_counts_as_done(tmp_path):
  path, mod, runs = _toy(tmp_path)
  wd = tmp_path / "w"
  _finished(wd, runs, {(8, 0), (8, 1)}, model=False)
  (wd / runs[2][0]).mkdir(parents=True)  # (8, 2) interrupted: metrics, no data_report.json
  (wd / runs[2][0] / "metrics.jsonl").write_text(json.dumps({"step": 2, "loss": 0.9}) + "\n")
  rows = sweep.collect(str(wd), runs, mod)
  assert [r["status"] for r in rows[:4]] == ["done", "done", "partial", "missing"]
  assert not sweep.finished(str(wd / runs[0][0]))  # still trained again by a local rerun


def test_collect_reads_and_writes_a_bucket_workdir(tmp_path, repo, monkeypatch):
  """Through sweep.path (etils.epath, gcsfs for gs://): here the bucket is a local folder."""
  from etils import epath
  bucket = tmp_path / "bucket"
  real = sweep.path
  monkeypatch.setattr(sweep, "path", lambda p: epath.Path(str(p).replace("gs://b", str(bucket)))
                      if str(p).startswith("gs://") else real(p))
  path, mod, runs = _toy(tmp_path)
  _finished(bucket / "sweeps/toy", runs, {(w, s) for w in (8, 16) for s in (0, 1)}, model=False)
  sweep.main([str(path), "--workdir", "gs://b/sweeps/toy", "--collect"])
  rows = json.load(open(bucket / "sweeps/toy/results.json"))
  assert [r["status"] for r in rows].count("done") == 4 and rows[0]["eval/held/loss"] == 1.8
  for name in ("results.md", "summary.md", "summary.json", "tests.json", "summary.png"):
    assert (bucket / "sweeps/toy" / name).exists(), name
  assert not os.path.exists("gs:") and not (tmp_path / "gs:").exists()


RULES = """
BASE = "configs/sft.py:model=tiny"
def get_sweep():
  return [{"config.train_rules": rules, "config.seed": s}
          for rules in ([[".*", "trainable"]], [["vision.*", "frozen"], [".*", "trainable"]])
          for s in (0, 1)]
"""


def test_list_valued_settings_are_averaged_over_their_seeds(tmp_path):
  """A swept value written as a list (the trainer reads it as a tuple) groups its seeds too."""
  (tmp_path / "rules.py").write_text(RULES)
  mod, flag_sets = sweep.load_sweep(str(tmp_path / "rules.py"))
  runs = [(sweep.run_name(k, f), f) for k, f in enumerate(flag_sets)]
  for i, (name, _) in enumerate(runs):
    (tmp_path / "w" / name / "model").mkdir(parents=True)
    (tmp_path / "w" / name / "model/config.json").write_text("{}")
    (tmp_path / "w" / name / "metrics.jsonl").write_text(json.dumps({"step": 4, "loss": i}))
  sweep.collect(str(tmp_path / "w"), runs, mod)
  summary = json.load(open(tmp_path / "w/summary.json"))
  assert [(e["train_rules"], e["seeds"], e["loss"]["mean"]) for e in summary] == [
      ([[".*", "trainable"]], [0, 1], 0.5), ([["vision.*", "frozen"], [".*", "trainable"]],
                                             [0, 1], 2.5)]


@pytest.mark.parametrize("body, match", [
    ("FLAGS = {'config.steps': 4, 'optim.lr': 1.0}\ndef get_sweep():\n"
     "  return [{'config.seed': 0}]\n", r"FLAGS keys must be .* got \['optim.lr'\]"),
    ("def get_sweep():\n  return [{'config.optim.lr': lr} for lr in (1e-4, 1e-3, 0.001)]\n",
     r"the same run more than once \(positions \[\[1, 2\]\]\)"),
    ("X = 'config.optim.lrr'\ndef get_sweep():\n  return [{'config.optim.lr': 1e-3}]\n",
     r"X = 'config.optim.lrr' is no swept key; use one of \['config.optim.lr', 'optim.lr'\]"),
    # one run whose flags are written in another order is still one run
    ("def get_sweep():\n  return [{'config.optim.lr': 1e-3, 'config.seed': 0},\n"
     "          {'config.seed': 0, 'config.optim.lr': 1e-3}]\n",
     r"the same run more than once \(positions \[\[0, 1\]\]\)"),
    ("TREND = 'log'\ndef get_sweep():\n  return [{'config.optim.lr': 1e-3}]\n",
     r"TREND = 'log'; use 'linear' or 'log2'"),
    # trainer_args passes config.* keys only: 'config_lr' would reach no run, every run alike
    ("def get_sweep():\n  return [{'config_lr': 1e-3}]\n",
     r"sweep keys must be trainer config fields \(config.x.y\), got \['config_lr'\]")],
    ids=["flags", "repeats", "x", "repeats_reordered", "trend", "sweep_keys"])
def test_unused_flags_repeated_runs_and_an_unswept_x_are_refused(tmp_path, body, match):
  """A FLAGS key without `config.` was left out of every run's flags; a run listed twice trained
  twice and counted as two seeds of its setting; an X that names no swept key failed the plot
  once every run had trained."""
  (tmp_path / "s.py").write_text("BASE = 'configs/sft.py:model=tiny'\n" + body)
  with pytest.raises(SystemExit, match=match):
    sweep.main([str(tmp_path / "s.py"), "--workdir", str(tmp_path / "w"), "--dry_run"])


def test_options_for_a_sweep_file_that_takes_none_are_refused(tmp_path):
  """`file.py:arg` with no configure(arg) in the file: the options would go unread."""
  (tmp_path / "s.py").write_text("BASE = 'configs/sft.py:model=tiny'\n"
                                 "def get_sweep():\n  return [{'config.seed': 0}]\n")
  with pytest.raises(SystemExit, match=r"takes no options .* got 'width=8'"):
    sweep.load_sweep(f"{tmp_path / 's.py'}:width=8")


# A stand-in run: its SIGTERM handler says what it heard; it sends the sweep a SIGTERM itself
# (or the signal argv[2] names).
PREEMPTED_RUN = """import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (open(sys.argv[1], "w").write("saved"), sys.exit(0)))
os.kill(os.getppid(), getattr(signal, sys.argv[2] if len(sys.argv) > 2 else "SIGTERM"))
time.sleep(30)
"""
# The sweep's side, in a process of its own (a SIGTERM that nothing catches ends it, not pytest).
SWEEP_SIDE = """import importlib.util, sys
spec = importlib.util.spec_from_file_location("s", sys.argv[1])
s = importlib.util.module_from_spec(spec)
spec.loader.exec_module(s)
print("exit", s.run_here([sys.executable, "-c", "exit(3)"], "run 01_y"))
s.run_here([sys.executable, "-c", sys.argv[2], *sys.argv[3:]], "run 00_x")
"""


def test_a_sigterm_to_a_local_sweep_stops_its_run_and_the_sweep(tmp_path):
  """Before, the sweep died alone: its run trained on, orphaned, beside the one a rerun started in
  the same workdir."""
  import sys
  heard = tmp_path / "heard"
  res = subprocess.run([sys.executable, "-c", SWEEP_SIDE, os.path.join(ROOT, "launch/sweep.py"),
                        PREEMPTED_RUN, str(heard)], capture_output=True, text=True, timeout=60)
  assert res.returncode == 1 and heard.read_text() == "saved", res
  assert res.stdout == "exit 3\n"  # a run's own exit status, without a SIGTERM
  assert "SIGTERM: run 00_x stopped (exit 0), and the sweep with it" in res.stderr


def test_a_ctrl_c_to_a_local_sweep_waits_for_its_runs_save(tmp_path):
  """Ctrl-C raised KeyboardInterrupt in the sweep at once: it died, and its run went on saving
  (or training) alone, after the prompt came back. Now the sweep passes it on as a SIGTERM and
  waits for the run to save and exit."""
  import sys
  heard = tmp_path / "heard"
  res = subprocess.run([sys.executable, "-c", SWEEP_SIDE, os.path.join(ROOT, "launch/sweep.py"),
                        PREEMPTED_RUN, str(heard), "SIGINT"], capture_output=True, text=True,
                       timeout=60)
  assert res.returncode == 1 and heard.read_text() == "saved", res
  assert "SIGINT: run 00_x stopped (exit 0), and the sweep with it" in res.stderr


# -- What each launcher needs ------------------------------------------------------------------

def test_slurm_refuses_a_bucket_workdir_for_a_data_step(tmp_path, repo):
  with pytest.raises(SystemExit, match="SLURM needs a shared-filesystem --workdir for the data "
                                       "step"):
    sweep.main([PAPER, "--workdir", "gs://b/r", "--launcher", "slurm"])
  assert not (repo / "out").exists()
  # without a data step a bucket workdir is the trainer's business
  sweep.main(["configs/sweeps/tiny_lr.py", "--workdir", "gs://b/lr", "--launcher", "slurm"])
  assert len(os.listdir(repo / "out/sweep_jobs/gs/b/lr")) == 3  # 2 runs + sweep.json


@pytest.mark.parametrize("launcher, args, match", [
    ("local.sh", "", "local.sh needs --launcher_args N"),
    ("local.sh", "n z v4-8", "local.sh needs --launcher_args N"),
    ("local.sh", "0", "a positive integer"),
    ("tpu", "", r"tpu needs --launcher_args \"NAME ZONE TYPE\""),
    ("tpu", "n z", r"3 words"),
    ("tpu", "2", r"3 words")])
def test_launcher_args_are_checked(tmp_path, repo, launcher, args, match):
  wd = {"local.sh": str(tmp_path / "w"), "tpu": "gs://b/w"}[launcher]
  with pytest.raises(SystemExit, match=match):
    sweep.main(["configs/sweeps/tiny_lr.py", "--workdir", wd, "--launcher", launcher,
                f"--launcher_args={args}"])
  assert not (tmp_path / "w").exists() and not (repo / "out").exists()
  good = {"local.sh": "2", "tpu": "n z v4-8"}[launcher]
  sweep.main(["configs/sweeps/tiny_lr.py", "--workdir", wd, "--launcher", launcher,
              f"--launcher_args={good}"])


@pytest.mark.parametrize("accelerator", ["v4-64", "v4-8"])  # several hosts, and one
@pytest.mark.parametrize("extra", [[], ["--dry_run"]])
def test_tpu_refuses_a_workdir_off_a_bucket(tmp_path, repo, accelerator, extra):
  """A local path would be each worker's own disk: checkpoints split over the workers, lost with
  a preempted VM, never seen by resume, export or --collect here."""
  wd = tmp_path / "w"
  said = rf"tpu needs a bucket --workdir \(gs://BUCKET/sweeps/NAME\), got {re.escape(str(wd))}: "
  with pytest.raises(SystemExit, match=said + "a local path is each TPU worker's own disk"):
    sweep.main(["configs/sweeps/tiny_lr.py", "--workdir", str(wd), "--launcher", "tpu",
                "--launcher_args", f"n z {accelerator}", *extra])
  assert not wd.exists() and not (repo / "out").exists()  # refused before anything is written
