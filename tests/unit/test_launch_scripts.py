"""The launch scripts' shell logic with stand-ins for the commands they call (nvidia-smi, python,
srun, git, gcloud): local.sh's GPU slices and its N check, gpu_slurm.sbatch with a PYTHON path
holding a space, and tpu_vm.sh refusing a checkout whose uncommitted edits `git archive HEAD`
would leave behind (or a workdir off a bucket). local.sh passing a SIGTERM on to its trainers,
and a Ctrl-C as one (a second kills them).
Nothing here trains, and no real git or gcloud command runs."""

import contextlib
import os
import signal
import stat
import subprocess
import time

import pytest

from train_utils import ROOT, ctrl_c_reaches

NVIDIA_SMI = """#!/usr/bin/env bash
for ((i = 0; i < ${FAKE_GPUS:-8}; i++)); do echo "GPU $i: NVIDIA H100 (UUID: GPU-$i)"; done
"""
# A stand-in for the trainer: prints its process id and the GPUs it was given.
PYTHON = """#!/usr/bin/env bash
for a in "$@"; do case $a in --process_id=*) id=${a#*=};; esac; done
echo "process=$id gpus=${CUDA_VISIBLE_DEVICES-unset} args=$*"
"""
# A stand-in for a trainer that runs until SIGTERM, then "saves" (for SAVE_S seconds) and exits 0
# (as preemption.py). Its pid in $PIDS/<process id>; $PIDS/<process id>.saving once it saves.
SAVING = """#!/usr/bin/env bash
for a in "$@"; do case $a in --process_id=*) id=${a#*=};; esac; done
trap 'echo > "$PIDS/$id.saving"; sleep "${SAVE_S:-0}"; echo "process=$id saved"; exit 0' TERM
echo $$ > "$PIDS/$id"
while true; do sleep 0.05; done
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


@pytest.mark.parametrize("to_group", [False, True])
def test_local_sh_passes_a_sigterm_on_to_its_trainers(tmp_path, to_group):
  """`kill <local.sh's pid>` alone once left its trainers training, orphaned, beside the ones a
  rerun would start in the same workdir. A signal to the whole group reaches each trainer twice
  (harmless: it only asks for a save) and must not kill the printers before the save's lines."""
  with _local_sh_with_saving_trainers(tmp_path) as (proc, trainers):
    (os.killpg if to_group else os.kill)(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "[0] process=0 saved" in out and "[1] process=1 saved" in out, out
    assert "SIGTERM: passed on to the 2 trainers" in err and "(exit statuses: 0 0)" in err
    assert "rerun the same command to resume it" in err
    assert [_alive(p) for p in trainers] == [False, False]


@contextlib.contextmanager
def _local_sh_with_saving_trainers(tmp_path, **env):
  """local.sh 2 running two stand-in trainers that save on SIGTERM, in its own process group:
  (the script's process, the trainers' pids); both are killed on the way out if still there.
  Yielded once the script, too, has written each trainer's pid (its run_dir, under TMPDIR): the
  shell that waits on a trainer ignores SIGTERM and SIGINT only from then on, and a signal to
  the group a moment earlier (the trainer was up first) killed it: exit statuses '? ?'."""
  b = _bin(tmp_path, python=SAVING)
  pids, run_dirs = tmp_path / "pids", tmp_path / "tmp"
  pids.mkdir()
  run_dirs.mkdir()
  env = {**os.environ, "PYTHON": str(b / "python"), "PORT": "1", "CPU_DEVICES": "1",
         "PIDS": str(pids), "TMPDIR": str(run_dirs), **env}
  proc = subprocess.Popen(["bash", "launch/local.sh", "2", "--workdir", "W"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, preexec_fn=ctrl_c_reaches)
  trainers = []
  try:
    trainers = _written_pids(pids, 2)
    assert _written(run_dirs, ["*/0.pid", "*/1.pid"]) == [f"{p}\n" for p in trainers]
    yield proc, trainers
  finally:
    for p in trainers:  # the test's own trainers only, if the script left them behind
      if _alive(p):
        os.kill(p, signal.SIGKILL)
    if proc.poll() is None:
      proc.kill()
      proc.communicate()


@pytest.mark.parametrize("presses", [1, 2])
def test_local_sh_takes_ctrl_c_as_a_save_and_a_second_as_a_stop(tmp_path, presses):
  """Ctrl-C reaches the whole group, but the trainers, put in the background by the script,
  ignore SIGINT, and the script waited on: Ctrl-C did nothing at all. Now the first one is passed
  on as a SIGTERM (a save), and a second, during the save, kills the trainers at once. The
  printers ignore it too, or the trainers' save lines would go to a closed pipe. The second
  press waits for both saves to begin, not for a time: two SIGINTs that reach the script before
  it runs its trap are one (a pending signal is a flag), and a script left unscheduled for the
  0.5 s this once waited took them as one press."""
  with _local_sh_with_saving_trainers(tmp_path, SAVE_S="0" if presses == 1 else "5") as (
      proc, trainers):
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C
    if presses == 2:
      _written(tmp_path / "pids", ["0.saving", "1.saving"])  # the first press was passed on
      os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    if presses == 1:
      assert "[0] process=0 saved" in out and "[1] process=1 saved" in out, out
      assert "SIGINT: passed on to the 2 trainers" in err and "(exit statuses: 0 0)" in err
    else:
      assert "saved" not in out, out
      assert "a second SIGINT: the 2 trainers were killed at once (exit statuses: 137 137)" in err
    assert [_alive(p) for p in trainers] == [False, False]


def _written_pids(folder, n: int) -> list[int]:
  """The pids the n stand-in trainers wrote, once all have."""
  return [int(t) for t in _written(folder, [str(i) for i in range(n)])]


def _written(folder, names: list[str]) -> list[str]:
  """The texts of the files `names` (glob patterns, one file each) in `folder` once each is whole
  (its line ends)."""
  deadline = time.time() + 30
  while time.time() < deadline:
    texts = [next((f.read_text() for f in folder.glob(n)), "") for n in names]
    if all(t.endswith("\n") for t in texts):
      return texts
    time.sleep(0.05)
  raise AssertionError(f"{names} not all written in {folder} within 30 s: {os.listdir(folder)}")


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  return True


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


def _tpu(tmp_path, flags=("--workdir", "gs://b/r"), **env):
  b = _bin(tmp_path, git=LOGGED, gcloud=LOGGED)
  log = tmp_path / "log"
  if log.exists():
    log.unlink()
  res = _run(["bash", "launch/tpu_vm.sh", "n", "z", "v4-8", *flags],
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


@pytest.mark.parametrize("flags, named", [
    (["--workdir", "/tmp/run"], "/tmp/run"),
    (["--workdir=runs/x"], "runs/x"),
    (["-workdir=/tmp/run"], "/tmp/run"),  # absl's single dash
    (["--workdir", "gs://b/r", "--config.steps=2", "--workdir=/tmp/last"], "/tmp/last"),
    (["--workdir"], "<none>")])
def test_tpu_script_refuses_a_workdir_off_a_bucket(tmp_path, flags, named):
  """Each worker's own disk: checkpoints split over the hosts (one host: lost with its VM)."""
  for dry in (None, "1"):
    res, ran = _tpu(tmp_path, flags, DIRTY="0", DRY_RUN=dry)
    assert res.returncode == 2 and res.stdout == "" and ran == []  # before any git or gcloud
    assert f"--workdir {named} is not a bucket" in res.stderr
    assert "gs://BUCKET/runs/NAME" in res.stderr
  res, ran = _tpu(tmp_path, ["--workdir=gs://b/r", "-workdir", "gs://b/s"], DIRTY="0")
  assert res.returncode == 0 and len(ran) == 6
