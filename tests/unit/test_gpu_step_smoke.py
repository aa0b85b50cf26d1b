"""`python -m benchmarks.gpu_step --smoke` is the check of the GPU benchmark on a CPU (README,
"GPU"). Its JAX side measured its matmul rate on 8192^3 bf16 products there, 12 of them, and the
smoke run took minutes, past any check's patience; a CPU now measures on the reference's 512."""

import math
import time

from benchmarks import gpu_step


def test_on_a_cpu_the_matmul_rate_is_measured_on_a_small_product():
  t = time.perf_counter()
  n, tflops = gpu_step.jax_matmul_peak()
  assert n == gpu_step.matmul_n(on_gpu=False) == 512
  assert math.isfinite(tflops) and tflops > 0
  assert time.perf_counter() - t < 30
  assert gpu_step.matmul_n(on_gpu=True) == 8192
