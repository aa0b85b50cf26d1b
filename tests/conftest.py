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
  # train_utils.XLA_FLAGS (why: there); a subprocess with fake devices sets its own (cpu_env).
  from train_utils import XLA_FLAGS
  os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)


_share_compiled_programs()  # before anything imports jax (the cache and the flags)

import hf_models as H  # noqa: E402


@pytest.fixture(scope="session")
def llava_hf(tmp_path_factory):
  """(torch model, saved folder) of a tiny llava-hf LLaVA (Llama GQA text, CLIP vision)."""
  model = H.llava(0)
  return model, H.save(model, str(tmp_path_factory.mktemp("llava_hf")))

