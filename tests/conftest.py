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


def _one_openmp_thread() -> None:
  """OpenMP's pools (torch's intra-op threads, scikit-learn's) held to one thread here and in the
  suite's subprocesses (they inherit the environment): `make test`'s two workers keep both cores
  busy, and a pool's threads spin waiting for a partner that has no core to run on (see
  `sklearn_on_one_thread`). With both cores busy, tests/unit/test_parity.py took 19.9 CPU s
  instead of 23.9, test_parity_check_runs 13.3-14.3 instead of 14.8-16.1. XLA's threads are its
  own and untouched; threadpoolctl still sets another count where a test compares counts. Before
  torch and scikit-learn are imported (they read it once); a value already set wins."""
  os.environ.setdefault("OMP_NUM_THREADS", "1")


_one_openmp_thread()

import hf_models as H  # noqa: E402


@pytest.fixture(scope="session")
def llava_hf(tmp_path_factory):
  """(torch model, saved folder) of a tiny llava-hf LLaVA (Llama GQA text, CLIP vision)."""
  model = H.llava(0)
  return model, H.save(model, str(tmp_path_factory.mktemp("llava_hf")))


@pytest.fixture
def sklearn_on_one_thread():
  """scikit-learn's OpenMP pool held to one thread: with both cores busy (`make test`'s two
  workers) its threads spin waiting for each other, and one fit of `choices_only.Learned`'s
  gradient-boosted trees took 10 s of CPU instead of 0.9 (same score: the trees' histograms are
  built a feature per thread). sklearn.ensemble is imported first: threadpoolctl limits only the
  libraries already loaded."""
  import sklearn.ensemble  # noqa: F401
  from threadpoolctl import threadpool_limits
  with threadpool_limits(1):
    yield


def pytest_configure(config):
  config.addinivalue_line("markers", "long(seconds): runs about that long in `make test` here; "
                                     "started first, spread over the workers (see below)")


def pytest_collection_modifyitems(config, items):
  """The long tests first, dealt over the workers longest first, each to the least loaded.
  xdist's worksteal hands each worker a contiguous share of the collection and lets an idle one
  steal from the *end* of another's queue: a long test late in a share starts late and makes
  the other worker wait at the end. Every worker collects, and all must order alike: the
  order is a pure function of the items."""
  workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
  if workers < 2:
    return
  seconds = {id(i): i.get_closest_marker("long").args[0] for i in items
             if i.get_closest_marker("long")}
  shares, loads = [[] for _ in range(workers)], [0.0] * workers
  for item in sorted((i for i in items if id(i) in seconds), key=lambda i: -seconds[id(i)]):
    k = loads.index(min(loads))
    shares[k].append(item)
    loads[k] += seconds[id(item)]
  rest = [i for i in items if id(i) not in seconds]
  order, start = [], 0
  for k, share in enumerate(shares):  # worksteal's first shares: n // workers_left each
    size = (len(items) - len(order)) // (workers - k)
    take = max(0, size - len(share))
    order += share + rest[start:start + take]
    start += take
  order += rest[start:]
  items[:] = order
