"""Shared fixtures: tiny random Hugging Face checkpoints, built once per test process."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _share_compiled_programs() -> None:
  """One persistent JAX compilation cache for the run and its subprocesses (they inherit the
  environment): many tests compile the same tiny-model programs, and XLA's compile is most of
  their time on 2 cores. Per user, so parallel sessions never write each other's files; a value
  already in the environment wins."""
  import tempfile
  cache = os.path.join(tempfile.gettempdir(), f"mathvlm-test-jax-cache-{os.getuid()}")
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", cache)
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  # LLVM's optimisation off: the tests' programs are tiny, compile ~35% faster and run fast
  # enough; XLA's own passes (fusion, layout) still run. A test's own XLA_FLAGS replace it.
  # Fake CPU devices are threads: on 2 busy cores one can reach a collective more than XLA's
  # default 40 s after the others, which then abort the process (seen once in `make test`).
  os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 "
                                     "--xla_cpu_collective_call_terminate_timeout_seconds=600")


_share_compiled_programs()  # before anything imports jax (the cache and the flags)

import hf_models as H  # noqa: E402


@pytest.fixture(scope="session")
def llava_hf(tmp_path_factory):
  """(torch model, saved folder) of a tiny llava-hf LLaVA (Llama GQA text, CLIP vision)."""
  model = H.llava(0)
  return model, H.save(model, str(tmp_path_factory.mktemp("llava_hf")))

