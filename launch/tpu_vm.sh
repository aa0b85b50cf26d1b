#!/usr/bin/env bash
# A TPU VM slice: create it (or reuse it), put this checkout on every worker, build the venv there,
# and run the same trainer command on all workers at once. Each worker is one JAX process;
# `--distributed` lets jax.distributed.initialize() read the slice's topology itself.
#
#   launch/tpu_vm.sh NAME ZONE ACCELERATOR [trainer flags...]
#   launch/tpu_vm.sh mathllava us-central2-b v4-64 \
#       --config configs/sft.py:model=llava-1.5-13b,data=mathv360k \
#       --config.data.path=gs://BUCKET/data --config.model.init_from=gs://BUCKET/ckpt/llava13b \
#       --workdir gs://BUCKET/runs/math-llava
#
# Checkpoints and the workdir live on a bucket (gs://...): orbax writes one checkpoint from all
# workers; a --workdir that is not gs://... is refused before anything runs. The ArrayRecord
# datasets are copied from DATA_FROM (a bucket folder) to DATA_TO on every worker (default
# /tmp/mathvlm-data; point --config.data.path there), and each worker reads its own rows.
# DRY_RUN=1 prints the commands instead of running them. Optional: PROJECT, RUNTIME (TPU software
# version), SPOT=1, REPO_DIR (remote checkout path, default ~/mathvlm), PREPARE (a command every
# worker runs before training), ALLOW_DIRTY=1 (ship HEAD although this checkout has uncommitted
# changes: refused otherwise).
set -euo pipefail
name=${1:?usage: launch/tpu_vm.sh NAME ZONE ACCELERATOR [trainer flags...]}
zone=${2:?zone, e.g. us-central2-b}
accel=${3:?accelerator type, e.g. v4-64}
shift 3

# The workdir on a bucket: the workers' disks are their own (and not here), so with a local path
# each worker would write its part of the run to its own disk, which neither a resume, an export
# nor this checkout reads whole. One host too: its disk goes with the VM when it is preempted.
for ((k = 1; k <= $#; k++)); do
  case ${!k} in
    --workdir=* | -workdir=*) workdir=${!k#*=} ;;
    --workdir | -workdir) next=$((k + 1)); workdir=${!next:-} ;;
    *) continue ;;
  esac
  if [[ "$workdir" != gs://* ]]; then
    echo "launch/tpu_vm.sh: --workdir ${workdir:-<none>} is not a bucket: a TPU slice's" \
      "checkpoints, metrics and model go to a bucket every worker writes, e.g. --workdir" \
      "gs://BUCKET/runs/NAME (a local path would be each worker's own disk)" >&2
    exit 2
  fi
done
cd "$(dirname "$0")/.."
runtime=${RUNTIME:-tpu-ubuntu2204-base}
remote=${REPO_DIR:-mathvlm}
project=()
[[ -n "${PROJECT:-}" ]] && project=(--project "$PROJECT")
spot=()
[[ "${SPOT:-0}" == 1 ]] && spot=(--spot)

run() {  # print with DRY_RUN=1, else execute
  if [[ "${DRY_RUN:-0}" == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

# `git archive HEAD` ships the last commit: uncommitted edits to tracked files (and untracked
# files) would not reach the workers, which would run other code than this checkout. So a checkout
# with uncommitted changes to tracked files is refused, before anything is created; ALLOW_DIRTY=1
# ships HEAD anyway (a dry run only warns).
dirty=0
git diff --quiet HEAD || dirty=$?
if ((dirty > 1)) && [[ "${DRY_RUN:-0}" != 1 ]]; then
  echo "launch/tpu_vm.sh: \`git diff --quiet HEAD\` failed (exit $dirty): this script ships" \
    "\`git archive HEAD\` and needs a git checkout" >&2
  exit 1
elif ((dirty == 1)); then
  if [[ "${ALLOW_DIRTY:-0}" == 1 ]]; then
    echo "launch/tpu_vm.sh: uncommitted changes (ALLOW_DIRTY=1): the workers get HEAD" \
      "without them" >&2
  elif [[ "${DRY_RUN:-0}" == 1 ]]; then
    echo "launch/tpu_vm.sh: uncommitted changes: a real run would refuse (commit them, or" \
      "ALLOW_DIRTY=1 to ship HEAD without them)" >&2
  else
    echo "launch/tpu_vm.sh: this checkout has uncommitted changes to tracked files" \
      "(git diff HEAD), and the workers get \`git archive HEAD\` without them: commit them" \
      "first, or set ALLOW_DIRTY=1 to ship HEAD as it is" >&2
    exit 1
  fi
fi

# Create the slice unless it exists (describe fails when it does not).
if [[ "${DRY_RUN:-0}" == 1 ]] || ! gcloud compute tpus tpu-vm describe "$name" --zone "$zone" \
    "${project[@]}" >/dev/null 2>&1; then
  run gcloud compute tpus tpu-vm create "$name" --zone "$zone" --accelerator-type "$accel" \
    --version "$runtime" "${project[@]}" "${spot[@]}"
fi

# This checkout (tracked files only) to every worker, then the pinned environment plus jax[tpu]
# and gcsfs (the workdir's gs:// filesystem for etils.epath).
archive=$(mktemp -u /tmp/mathvlm-XXXXXX).tar.gz
run git archive --format=tar.gz -o "$archive" HEAD
run gcloud compute tpus tpu-vm scp "$archive" "$name:/tmp/mathvlm.tar.gz" --zone "$zone" \
  --worker=all "${project[@]}"
setup="mkdir -p $remote && tar -xzf /tmp/mathvlm.tar.gz -C $remote && cd $remote && \
python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt && \
.venv/bin/pip install -q gcsfs 'jax[tpu]==$(sed -n 's/^jax==//p' requirements.txt)'"
if [[ -n "${DATA_FROM:-}" ]]; then  # datasets read from local disk on every worker
  setup="$setup && mkdir -p ${DATA_TO:-/tmp/mathvlm-data} && \
gcloud storage rsync --recursive $DATA_FROM ${DATA_TO:-/tmp/mathvlm-data}"
fi
run gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all "${project[@]}" \
  --command "$setup"

# The same command on every worker, after PREPARE (a shell command, e.g. a sweep run's data
# selection, run on every worker into a worker-local folder) when it is set.
train="cd $remote && ${PREPARE:+$PREPARE && }.venv/bin/python -m mathvlm.train --distributed ${*@Q}"
run gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all "${project[@]}" \
  --command "$train"
