#!/usr/bin/env bash
# The GPU checks in one go, for a lent GPU machine whose image has jax[cuda], torch and
# transformers but not all our pins and data packages (no network there):
#   mkdir -p .gpu_wheels && pip download --no-deps --python-version 3.12 --only-binary=:all: \
#     -d .gpu_wheels flax==0.12.8 optax==0.2.8 ml-collections==1.1.0 grain==0.2.18 \
#     array-record==0.8.6 tensorflow-datasets==4.9.10 ...   (what `import mathvlm.hf` needs)
#   then on the machine: OUT=<folder> bash benchmarks/gpu_check.sh
# 1. versions and the device; 2. the GPU-only test (cuDNN attention on left-padded rows) and the
# transformers parity tests on the GPU (float32 at full matmul precision: XLA:GPU's default
# float32 matmul is TF32); 3. benchmarks.gpu_step (LLaVA-1.5-7B widths, ours against PyTorch).
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PY:-python3}
if [ -d .gpu_wheels ]; then
  $PY -m pip install --no-deps --no-index -q .gpu_wheels/*.whl >"$OUT/pip.txt" 2>&1
fi
export PYTHONPATH=$PWD
$PY - >"$OUT/versions.txt" 2>&1 <<'EOF'
import jax, flax, optax, torch, transformers, numpy
print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__,
      "torch", torch.__version__, "transformers", transformers.__version__,
      "numpy", numpy.__version__)
print(jax.devices(), jax.devices()[0].device_kind)
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
  >>"$OUT/versions.txt" 2>&1
XLA_FLAGS= JAX_DEFAULT_MATMUL_PRECISION=highest timeout "${TEST_TIMEOUT:-220}" \
  $PY -m pytest -p no:cacheprovider -o addopts= -m "not slow" -rA \
  tests/unit/test_attention_gpu.py tests/unit/test_parity.py tests/unit/test_generate.py \
  tests/unit/test_decode.py >"$OUT/pytest_gpu.txt" 2>&1
echo "pytest rc $?" >>"$OUT/pytest_gpu.txt"
timeout "${STEP_TIMEOUT:-320}" $PY -m benchmarks.gpu_step ${STEP_ARGS:-} \
  >"$OUT/gpu_step.json" 2>"$OUT/gpu_step.err"
echo "gpu_step rc $?" >>"$OUT/gpu_step.err"
tail -5 "$OUT/pytest_gpu.txt"
cat "$OUT/gpu_step.json"
