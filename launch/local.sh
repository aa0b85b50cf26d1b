#!/usr/bin/env bash
# N processes on this machine through the multi-host code path: jax.distributed over loopback,
# each process feeding its own rows of the global batch. The same trainer command as everywhere.
#
#   launch/local.sh N [trainer flags...]
#   CPU_DEVICES=4 launch/local.sh 2 --config configs/sft.py:model=tiny --workdir /tmp/run
#
# CPU_DEVICES=K: each process gets K fake CPU devices (JAX_PLATFORMS=cpu, gloo collectives).
# On a GPU machine each process gets an equal slice of the GPUs through CUDA_VISIBLE_DEVICES: of
# the GPUs CUDA_VISIBLE_DEVICES already lists when it is set (CUDA_VISIBLE_DEVICES=4,5,6,7 with
# N=2: 4,5 and 6,7), else of all that nvidia-smi lists; GPUs an uneven split leaves over are
# named on stderr.
# Output lines are prefixed with the process index; the exit status is the first failure's.
# A SIGTERM to this script (`kill <its pid>`, a cluster's preemption) is passed on to every trainer,
# which saves its step and exits (mathvlm/preemption.py); the script then says so on stderr and
# exits 143: rerun the same command to resume. A SIGINT (Ctrl-C, which the trainers, started in
# the background, ignore) does the same, exit 130; a second one kills the trainers at once
# (SIGKILL: the rerun resumes from the last checkpoint they saved).
set -euo pipefail
usage="usage: launch/local.sh N [trainer flags...] (N: the number of processes, a positive integer)"
if [[ ! "${1:-}" =~ ^[1-9][0-9]*$ ]]; then
  echo "$usage; got N=${1:-<none>}" >&2
  exit 2
fi
n=$1
shift
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
port=${PORT:-$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
gpus=0
visible=()
if [[ -z "${CPU_DEVICES:-}" ]]; then
  if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then  # the GPUs this shell may use, as listed
    IFS=, read -r -a visible <<<"${CUDA_VISIBLE_DEVICES// /}"
    gpus=${#visible[@]}
  elif command -v nvidia-smi >/dev/null 2>&1; then
    gpus=$(nvidia-smi -L | wc -l)
    visible=($(seq 0 $((gpus - 1))))
  fi
fi
if ((gpus > n && gpus % n)); then  # an equal slice each: the rest would sit idle, unsaid
  echo "launch/local.sh: $gpus GPUs do not split evenly over $n processes: each gets" \
    "$((gpus / n)); left idle: ${visible[*]:$((gpus / n * n))} (list the GPUs to use in" \
    "CUDA_VISIBLE_DEVICES)" >&2
fi
# Each trainer runs under a shell that ignores SIGTERM and writes its exit status to run_dir; the
# script signals the trainers themselves (their pids in run_dir) and reads their statuses from
# there, not from `wait`: around a trap, bash 5.2's `wait` lost statuses (255 for trainers that
# exited 0). Once the trap is set, this shell runs nothing in the foreground: a command the signal
# killed would stop it (set -e).
run_dir=$(mktemp -d)
# A child forked after the traps are set runs them when a signal comes before it resets them:
# they act in this shell only.
trap '[[ $BASHPID == "$$" ]] && rm -rf "$run_dir"' EXIT
for ((i = 0; i < n; i++)); do mkfifo "$run_dir/$i"; done  # trainer i's output, for its printer
stopped=""  # the signal that stopped the run
interrupts=0
killed=0
signal_trainers() {
  local f trainer
  for f in "$run_dir"/*.pid; do
    if [[ -e "$f" ]] && read -r trainer <"$f"; then kill "-$1" "$trainer" 2>/dev/null || true; fi
  done
}
stop() {  # the mark first: a trainer whose pid is not written yet sees it once it is
  [[ $BASHPID == "$$" ]] || return 0
  stopped=${stopped:-$1}
  : >"$run_dir/stop"
  signal_trainers TERM
}
interrupt() {  # Ctrl-C: a save, as a SIGTERM; the second one stops the trainers at once
  [[ $BASHPID == "$$" ]] || return 0
  interrupts=$((interrupts + 1))
  if ((interrupts > 1)); then
    killed=1
    signal_trainers KILL
  else
    stop SIGINT
  fi
}
trap 'stop SIGTERM' TERM
trap interrupt INT
shells=()
printers=()
for ((i = 0; i < n; i++)); do
  # The printer ignores SIGTERM and SIGINT (sent to the whole process group too: Ctrl-C), so the
  # trainer's lines after it (its save) still come out; it ends when the trainer's output closes.
  # (bash leaves SIGINT as it was in a subshell put in the background, ignoring it only in a
  # plain command put there, as the trainer is.)
  (trap '' TERM INT; exec sed -u "s/^/[$i] /" <"$run_dir/$i") &
  printers+=($!)
  (
    if [[ -n "${CPU_DEVICES:-}" ]]; then
      export JAX_PLATFORMS=cpu XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$CPU_DEVICES"
    elif ((gpus >= n)); then
      per=$((gpus / n))
      slice=("${visible[@]:$((i * per)):$per}")
      export CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${slice[*]}")
    fi
    "$py" -m mathvlm.train "$@" --coordinator="127.0.0.1:$port" --num_processes="$n" \
      --process_id="$i" >"$run_dir/$i" 2>&1 &
    trainer=$!
    trap '' TERM INT  # this shell only: the trainer, started before, keeps its own
    echo "$trainer" >"$run_dir/$i.pid"
    if [[ -e "$run_dir/stop" ]]; then kill -TERM "$trainer" 2>/dev/null || true; fi
    wait "$trainer" && rc=0 || rc=$?
    echo "$rc" >"$run_dir/$i.status"
  ) &
  shells+=($!)
done
for pid in "${shells[@]}" "${printers[@]}"; do  # a SIGTERM cuts `wait` short (the trap): wait on
  while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done
done
status=0
codes=()
for ((i = 0; i < n; i++)); do
  read -r rc 2>/dev/null <"$run_dir/$i.status" || rc="?"  # ?: its shell was killed
  codes+=("$rc")
  ((status == 0)) && status=${rc/\?/1}
done
if ((killed)); then
  echo "launch/local.sh: a second SIGINT: the $n trainers were killed at once (exit statuses:" \
    "${codes[*]}); rerun the same command to resume from their last checkpoint" >&2
  exit 130
elif [[ -n $stopped ]]; then
  echo "launch/local.sh: $stopped: passed on to the $n trainers, which save their step and exit" \
    "(exit statuses: ${codes[*]}); the run was stopped: rerun the same command to resume it" >&2
  exit $([[ $stopped == SIGINT ]] && echo 130 || echo 143)
fi
exit $status
