#!/usr/bin/env bash
# N processes on this machine through the multi-host code path: jax.distributed over loopback,
# each process feeding its own rows of the global batch. The same trainer command as everywhere.
#
#   launch/local.sh N [trainer flags...]
#   CPU_DEVICES=4 launch/local.sh 2 --config configs/sft.py:model=tiny --workdir /tmp/run
#
# CPU_DEVICES=K: each process gets K fake CPU devices (JAX_PLATFORMS=cpu, gloo collectives).
# On a GPU machine each process gets an equal slice of the GPUs through CUDA_VISIBLE_DEVICES.
# Output lines are prefixed with the process index; the exit status is the first failure's.
set -euo pipefail
n=${1:?usage: launch/local.sh N [trainer flags...]}
shift
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
port=${PORT:-$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
gpus=0
if [[ -z "${CPU_DEVICES:-}" ]] && command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L | wc -l)
fi
pids=()
for ((i = 0; i < n; i++)); do
  (
    if [[ -n "${CPU_DEVICES:-}" ]]; then
      export JAX_PLATFORMS=cpu XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$CPU_DEVICES"
    elif ((gpus >= n)); then
      per=$((gpus / n))
      export CUDA_VISIBLE_DEVICES=$(seq -s, $((i * per)) $((i * per + per - 1)))
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
