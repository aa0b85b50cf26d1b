"""Shared fixtures: tiny random Hugging Face checkpoints, built once per test process."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hf_models as H  # noqa: E402


@pytest.fixture(scope="session")
def llava_hf(tmp_path_factory):
  """(torch model, saved folder) of a tiny llava-hf LLaVA (Llama GQA text, CLIP vision)."""
  model = H.llava(0)
  return model, H.save(model, str(tmp_path_factory.mktemp("llava_hf")))
