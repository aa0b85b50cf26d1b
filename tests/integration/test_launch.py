"""The launchers: the SLURM script runs for real under a stand-in `srun` (two processes on
loopback, like two nodes); local.sh's two trainers stop together on a SIGTERM to the script
(`-m slow`); the TPU script's dry run prints the commands it would run; the sweep runner expands a
sweep file, runs it, skips finished runs and collects one table."""

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time

import pytest

from train_utils import ROOT, cpu_env, metrics

TINY = ["--config", "configs/sft.py:model=tiny", "--config.steps=3", "--config.data.global_batch=8",
        "--config.data.max_len=32", "--config.optim.lr=1e-3", "--config.checkpoint.use_async=False",
        "--config.metrics.tensorboard=False"]

# What srun does for the script: SLURM_NTASKS copies of the command, each with its SLURM_PROCID
# and SLURM_LOCALID, the job failing if one fails.
FAKE_SRUN = """#!/usr/bin/env bash
shift  # --kill-on-bad-exit=1
pids=()
for ((i = 0; i < SLURM_NTASKS; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i "$@" > "$SRUN_LOGS/task$i.log" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
exit $status
"""


def _sh(args, env=None, timeout=600):
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, "PYTHON": sys.executable, **(env or {})})


@pytest.mark.long(60)
def test_slurm_script_runs_two_processes_under_srun(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  srun = bin_dir / "srun"
  srun.write_text(FAKE_SRUN)
  srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
  env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_NTASKS": "2", "SRUN_LOGS": str(tmp_path),
         "SLURM_JOB_NODELIST": "127.0.0.1", "JAX_PLATFORMS": "cpu", "PORT": "0"}
  # PORT 0 is not a usable coordinator port: pick a free one as a cluster admin would
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    env["PORT"] = str(s.getsockname()[1])
  dry = _sh(["bash", "launch/gpu_slurm.sbatch", *TINY, "--workdir", "W"],
            env={**env, "DRY_RUN": "1"})
  assert dry.returncode == 0, dry.stderr
  task = shlex.split(dry.stdout)[-1]  # bash -c's command, as srun's shell reads it
  assert "--num_processes=2" in task and "--coordinator=127.0.0.1:" in task
  assert "--process_id=$SLURM_PROCID" in task and "CUDA_VISIBLE_DEVICES" not in task
  per_gpu = _sh(["bash", "launch/gpu_slurm.sbatch", "--workdir", "W"],
                env={**env, "DRY_RUN": "1", "PER_GPU": "1"})
  assert "CUDA_VISIBLE_DEVICES=$SLURM_LOCALID" in shlex.split(per_gpu.stdout)[-1]

  res = _sh(["bash", "launch/gpu_slurm.sbatch", *TINY, "--workdir", str(tmp_path / "run")],
            env=env)
  logs = "".join((tmp_path / f"task{i}.log").read_text() for i in range(2))
  assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:] + logs[-4000:]
  rows = metrics(str(tmp_path / "run"))
  assert [r["step"] for r in rows] == [1, 2, 3]
  data = sorted(os.listdir(tmp_path / "run/checkpoints/3/data"))
  assert [f for f in data if f.endswith(".json")] == ["process_0-of-2.json", "process_1-of-2.json"]


@pytest.mark.slow  # quick form: tests/unit/test_launch_scripts.py, with stand-in trainers
def test_local_sh_sigterm_saves_both_processes_at_one_step_and_a_rerun_finishes(tmp_path):
  """`kill <local.sh's pid>`: both trainers (JAX's preemption service agreeing on the step) save
  that step and exit 0, the script exits 143, and the same command then finishes the run."""
  wd = str(tmp_path / "run")
  flags = [*TINY, "--config.steps=40", "--config.checkpoint.every=1000", "--workdir", wd]
  env = {**os.environ, **cpu_env(), "CPU_DEVICES": "1", "PYTHON": sys.executable,
         "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "cache")}
  log = tmp_path / "log"
  with open(log, "w") as out:
    proc = subprocess.Popen(["bash", "launch/local.sh", "2", *flags], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
  try:
    deadline = time.time() + 500
    while "step 2/40" not in log.read_text() and proc.poll() is None and time.time() < deadline:
      time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
  finally:
    if proc.poll() is None or proc.returncode != 143:  # trainers left behind: this test's group
      try:
        os.killpg(proc.pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
  text = log.read_text()
  assert proc.returncode == 143, text[-3000:]
  assert "(exit statuses: 0 0); the run was stopped: rerun the same command" in text
  saved = {int(i): int(step) for i, step in
           re.findall(r"^\[(\d)\] .*SIGTERM: saved step (\d+) in", text, re.M)}
  assert sorted(saved) == [0, 1] and len(set(saved.values())) == 1, text[-3000:]
  assert 2 <= saved[0] < 40 and os.listdir(f"{wd}/checkpoints") == [str(saved[0])]
  res = _sh(["bash", "launch/local.sh", "2", *flags], env=env)
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  assert [r["step"] for r in metrics(wd)] == list(range(1, 41))


def test_tpu_script_dry_run_prints_every_step(tmp_path):
  # a stand-in git for the uncommitted-changes check (tests/unit/test_launch_scripts.py tests it):
  # a clean checkout, and no real git command from the test
  git = tmp_path / "git"
  git.write_text("#!/usr/bin/env bash\nexit 0\n")
  git.chmod(git.stat().st_mode | stat.S_IEXEC)
  res = _sh(["bash", "launch/tpu_vm.sh", "mathllava", "us-central2-b", "v4-64",
             "--config", "configs/sft.py:model=llava-1.5-13b", "--workdir", "gs://b/run"],
            env={"DRY_RUN": "1", "PROJECT": "proj", "PATH": f"{tmp_path}:{os.environ['PATH']}"})
  assert res.returncode == 0, res.stderr
  lines = [shlex.split(x) for x in res.stdout.strip().splitlines()]
  assert lines[0][:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"]
  assert "--accelerator-type" in lines[0] and "v4-64" in lines[0] and "proj" in lines[0]
  assert lines[1][:2] == ["git", "archive"]
  ssh = [x for x in lines if x[3:5] == ["tpu-vm", "ssh"]]
  assert len(ssh) == 2 and all("--worker=all" in x for x in ssh)
  setup, train = ssh[0][-1], ssh[1][-1]
  assert "pip install -q -r requirements.txt" in setup and "jax[tpu]==" in setup
  assert "-m mathvlm.train --distributed" in train
  assert "configs/sft.py:model=llava-1.5-13b" in train and "gs://b/run" in train


@pytest.mark.long(45)
def test_sweep_runs_skips_and_collects(tmp_path):
  out = tmp_path / "sweep"
  res = _sh([sys.executable, "launch/sweep.py", "configs/sweeps/tiny_lr.py", "--workdir", str(out)])
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  rows = json.load(open(out / "results.json"))
  assert [r["status"] for r in rows] == ["done", "done"]
  assert [r["optim.lr"] for r in rows] == [1e-4, 1e-3] and all(r["step"] == 4 for r in rows)
  assert rows[0]["loss"] != rows[1]["loss"]  # the swept value reached the trainer
  for r in rows:
    assert metrics(str(out / r["run"]))[-1]["loss"] == r["loss"]
  assert "| run |" in (out / "results.md").read_text()
  again = _sh([sys.executable, "launch/sweep.py", "configs/sweeps/tiny_lr.py", "--workdir",
               str(out)])
  assert again.stdout.count("finished earlier, skipped") == 2

  jobs = _sh([sys.executable, "launch/sweep.py", "configs/sweeps/tiny_lr.py", "--workdir",
              str(tmp_path / "cluster"), "--launcher", "slurm", "--launcher_args=--nodes=2"])
  assert jobs.returncode == 0, jobs.stderr
  files = sorted(os.listdir(tmp_path / "cluster/jobs"))
  assert len(files) == 2
  job = (tmp_path / "cluster/jobs" / files[1]).read_text()
  assert "sbatch --nodes=2 launch/gpu_slurm.sbatch --config=configs/sft.py:model=tiny" in job
  assert "--config.optim.lr=0.001" in job


def test_sweep_file_errors_name_the_problem(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("BASE = 'configs/sft.py'\ndef get_sweep():\n  return [{'optim.lr': 1}]\n")
  res = _sh([sys.executable, "launch/sweep.py", str(bad), "--workdir", str(tmp_path / "w")])
  assert res.returncode != 0 and "config.x.y" in res.stderr and "optim.lr" in res.stderr
