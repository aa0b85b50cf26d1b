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
pids=()
for ((i = 0; i < n; i++)); do
  (
    if [[ -n "${CPU_DEVICES:-}" ]]; then
      export JAX_PLATFORMS=cpu XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$CPU_DEVICES"
    elif ((gpus >= n)); then
      per=$((gpus / n))
      slice=("${visible[@]:$((i * per)):$per}")
      export CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${slice[*]}")
    fi
    exec "$py" -m mathvlm.train "$@" --coordinator="127.0.0.1:$port" --num_processes="$n" \
      --process_id="$i" 2>&1 | sed -u "s/^/[$i] /"
  ) &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || { rc=$?; ((status == 0)) && status=$rc; }
done
exit $status
