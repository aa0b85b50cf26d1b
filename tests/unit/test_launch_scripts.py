"""The launch scripts' shell logic with stand-ins for the commands they call (nvidia-smi, python,
srun, git, gcloud): local.sh's GPU slices and its N check, gpu_slurm.sbatch with a PYTHON path
holding a space, and tpu_vm.sh refusing a checkout whose uncommitted edits `git archive HEAD`
would leave behind. Nothing here trains, and no real git or gcloud command runs."""

import os
import stat
import subprocess

import pytest

from train_utils import ROOT

NVIDIA_SMI = """#!/usr/bin/env bash
for ((i = 0; i < ${FAKE_GPUS:-8}; i++)); do echo "GPU $i: NVIDIA H100 (UUID: GPU-$i)"; done
"""
# A stand-in for the trainer: prints its process id and the GPUs it was given.
PYTHON = """#!/usr/bin/env bash
for a in "$@"; do case $a in --process_id=*) id=${a#*=};; esac; done
echo "process=$id gpus=${CUDA_VISIBLE_DEVICES-unset} args=$*"
"""
LOGGED = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$LOG"
if [[ "$(basename "$0")" == git && "$1" == diff ]]; then exit "${DIRTY:-0}"; fi
exit 0
"""


def _bin(tmp_path, **scripts):
  d = tmp_path / "bin"
  d.mkdir(exist_ok=True)
  for name, text in scripts.items():
    (d / name).write_text(text)
    (d / name).chmod((d / name).stat().st_mode | stat.S_IEXEC)
  return d


def _run(args, env, **kw):
  env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=60, **kw)


def _gpus(res) -> dict:
  out = {}
  for line in res.stdout.splitlines():
    fields = dict(x.split("=", 1) for x in line.split("] ", 1)[1].split()[:2])
    out[int(fields["process"])] = fields["gpus"]
  return out


@pytest.mark.parametrize("visible, n, want", [
    (None, 2, {0: "0,1,2,3", 1: "4,5,6,7"}),          # unset: all the machine's GPUs
    ("4,5,6,7", 2, {0: "4,5", 1: "6,7"}),              # a slice of the given list
    ("6,7", 2, {0: "6", 1: "7"}),
    ("GPU-a,GPU-b,GPU-c,GPU-d", 4, {0: "GPU-a", 1: "GPU-b", 2: "GPU-c", 3: "GPU-d"}),
    ("3", 2, {0: "3", 1: "3"}),                          # fewer GPUs than processes: as given
    ("", 2, {0: "", 1: ""}),                             # none visible stays none
])
def test_local_sh_slices_the_visible_gpus(tmp_path, visible, n, want):
  b = _bin(tmp_path, **{"nvidia-smi": NVIDIA_SMI, "python": PYTHON})
  res = _run(["bash", "launch/local.sh", str(n), "--workdir", "W"],
             {"PATH": f"{b}:{os.environ['PATH']}", "PYTHON": str(b / "python"), "PORT": "1",
              "CPU_DEVICES": None, "CUDA_VISIBLE_DEVICES": visible})
  assert res.returncode == 0, res.stderr
  assert _gpus(res) == want


def test_local_sh_names_the_gpus_an_uneven_split_leaves_idle(tmp_path):
  b = _bin(tmp_path, python=PYTHON)
  res = _run(["bash", "launch/local.sh", "2", "--workdir", "W"],
             {"PYTHON": str(b / "python"), "PORT": "1", "CPU_DEVICES": None,
              "CUDA_VISIBLE_DEVICES": "4,5,6"})
  assert res.returncode == 0 and _gpus(res) == {0: "4", 1: "5"}
  assert "3 GPUs do not split evenly over 2 processes: each gets 1; left idle: 6" in res.stderr


@pytest.mark.parametrize("n", [None, "0", "-1", "two", "n z v4-8", "2x"])
def test_local_sh_needs_a_process_count(tmp_path, n):
  b = _bin(tmp_path, python=PYTHON)
  res = _run(["bash", "launch/local.sh"] + ([] if n is None else [n]) + ["--workdir", "W"],
             {"PYTHON": str(b / "python"), "PORT": "1"})
  assert res.returncode == 2 and res.stdout == ""
  assert "usage: launch/local.sh N" in res.stderr and "positive integer" in res.stderr


def test_slurm_script_runs_a_python_whose_path_has_a_space(tmp_path):
  py = tmp_path / "py dir" / "python"
  py.parent.mkdir()
  py.write_text(PYTHON)
  py.chmod(py.stat().st_mode | stat.S_IEXEC)
  b = _bin(tmp_path, srun='#!/usr/bin/env bash\nshift\nSLURM_PROCID=0 SLURM_LOCALID=0 "$@"\n')
  res = _run(["bash", "launch/gpu_slurm.sbatch", "--workdir", "W x"],
             {"PATH": f"{b}:{os.environ['PATH']}", "PYTHON": str(py),
              "SLURM_JOB_NODELIST": "127.0.0.1", "SLURM_NTASKS": "1", "DRY_RUN": None,
              "PER_GPU": None})
  assert res.returncode == 0, res.stderr
  assert res.stdout.startswith("process=0 ") and "--process_id=0 --workdir W x" in res.stdout
  assert "--coordinator=127.0.0.1:" in res.stdout and "--num_processes=1" in res.stdout


def _tpu(tmp_path, **env):
  b = _bin(tmp_path, git=LOGGED, gcloud=LOGGED)
  log = tmp_path / "log"
  if log.exists():
    log.unlink()
  res = _run(["bash", "launch/tpu_vm.sh", "n", "z", "v4-8", "--workdir", "gs://b/r"],
             {"PATH": f"{b}:{os.environ['PATH']}", "LOG": str(log), "DRY_RUN": None,
              "ALLOW_DIRTY": None, **env})
  return res, (log.read_text().splitlines() if log.exists() else [])


def test_tpu_script_refuses_uncommitted_changes(tmp_path):
  res, ran = _tpu(tmp_path, DIRTY="1")
  assert res.returncode != 0 and "uncommitted changes" in res.stderr
  assert "ALLOW_DIRTY=1" in res.stderr
  assert ran == ["git diff --quiet HEAD"]  # refused before any slice or copy

  res, ran = _tpu(tmp_path, DIRTY="1", ALLOW_DIRTY="1")
  assert res.returncode == 0, res.stderr
  assert "without them" in res.stderr and any(x.startswith("git archive") for x in ran)
  assert any(x.startswith("gcloud compute tpus tpu-vm ssh") for x in ran)

  res, ran = _tpu(tmp_path, DIRTY="0")
  assert res.returncode == 0 and res.stderr == "" and len(ran) == 6  # diff, describe, archive,
  #                                                                    scp, setup and train

  res, ran = _tpu(tmp_path, DIRTY="1", DRY_RUN="1")  # a dry run warns and prints the commands
  assert res.returncode == 0 and "would refuse" in res.stderr and "git archive" in res.stdout
