"""Bucket workdirs (gs://...) as TPU pods use them: the early error when nothing installed can reach
gs://, and the epath code paths run against fsspec's in-memory filesystem standing in for gcsfs
(etils.epath sends gs:// to fsspec when TensorFlow is absent). A whole run, orbax's arrays
included (tensorstore's own GCS driver), against a GCS emulator: test_bucket_training.py."""

import importlib.util
import json
import logging
import sys

import pytest
from etils import epath
from etils.epath import backend as epath_backend
from fsspec.implementations.memory import MemoryFileSystem

from mathvlm import paths
from train_utils import tiny_config

BUCKET = "gs://bucket/runs/x"


def _importable(name: str) -> bool:
  try:
    return importlib.util.find_spec(name) is not None
  except ModuleNotFoundError:
    return False


@pytest.mark.skipif(_importable("tensorflow"), reason="TensorFlow is installed (a gs:// backend)")
@pytest.mark.parametrize("field", ["workdir", "model.init_from"])
def test_bucket_path_without_a_gcs_backend_fails_before_any_work(field, tmp_path, monkeypatch):
  from mathvlm import train
  monkeypatch.chdir(tmp_path)  # os calls on "gs://..." would leave a local "gs:" folder here
  # gcsfs is in requirements.txt: take it away, as on an install without it
  monkeypatch.setitem(sys.modules, "gcsfs", None)
  monkeypatch.setenv("EPATH_USE_TF", "false")
  epath_backend.fsspec_backend._get_filesystem.cache_clear()
  if field == "workdir":
    config, workdir = tiny_config("lm"), BUCKET
  else:
    config, workdir = tiny_config("lm", model__init_from=BUCKET), str(tmp_path / "run")
  with pytest.raises(ImportError) as e:
    train.train(config, workdir)
  assert f"{field}={BUCKET} is a bucket path" in str(e.value)
  assert "pip install gcsfs" in str(e.value)
  assert list(tmp_path.iterdir()) == []  # failed before making the workdir or anything else


class FakeGCS(MemoryFileSystem):
  """gcsfs's stand-in: fsspec's in-memory filesystem answering gs:// paths."""
  protocol = ("gs", "gcs")
  store: dict = {}
  pseudo_dirs = [""]

  @classmethod
  def _strip_protocol(cls, path):
    path = str(path)
    for prefix in ("gs://", "gcs://"):
      path = path.removeprefix(prefix)
    return super()._strip_protocol(path)


@pytest.fixture
def fake_gcs(tmp_path, monkeypatch):
  """gs:// served from memory through etils.epath's fsspec backend; the working directory is an
  empty tmp_path, so a write that went through `os` instead would show up there."""
  monkeypatch.setenv("EPATH_USE_TF", "false")  # etils would take tf.io.gfile if TF is installed
  registry = importlib.import_module("fsspec.registry")._registry  # fsspec.registry is a view
  monkeypatch.setitem(registry, "gcs", FakeGCS)
  monkeypatch.chdir(tmp_path)
  FakeGCS.store.clear()
  FakeGCS.pseudo_dirs[:] = [""]
  cached = epath_backend.fsspec_backend._get_filesystem  # etils caches gs://'s filesystem
  cached.cache_clear()
  yield FakeGCS
  cached.cache_clear()
  assert list(tmp_path.iterdir()) == [], "a bucket path was written through os"


def test_fake_bucket_is_what_etils_uses_for_gs(fake_gcs):
  paths.check_reachable(BUCKET, "workdir")  # a backend is there: no error
  epath.Path(BUCKET, "probe.txt").write_text("hello")
  assert fake_gcs.store["/bucket/runs/x/probe.txt"].getvalue() == b"hello"


def test_metrics_in_a_bucket_append_across_restarts_and_skip_tensorboard(fake_gcs, monkeypatch):
  import tensorboardX.record_writer
  from mathvlm.metrics import MetricWriter
  # gcsfs brings google-cloud-storage, with which tensorboardX would try the real bucket: the
  # writer is checked as on an install without it
  monkeypatch.setattr(tensorboardX.record_writer, "GCS_ENABLED", False)
  # a handler of its own on the logger: caplog's, added here, also sees the record again through
  # the root logger when nothing before this test stopped propagation (run alone, it saw 2)
  seen = []
  handler = logging.Handler(logging.WARNING)
  handler.emit = seen.append
  logging.getLogger("mathvlm.train").addHandler(handler)
  try:
    w = MetricWriter(BUCKET, tensorboard=True)
    assert w.tb is None
    w.write(1, {"loss": 2.5})
    w.write(2, {"loss": 2.0})
    w.close()
    # a run resumed from step 2: gcsfs's "a" would truncate (rows after the resumed step are
    # dropped first, see test_metrics_rows.py)
    w = MetricWriter(BUCKET, tensorboard=False, start_step=2)
    w.write(3, {"loss": 1.5})
    w.close()
  finally:
    logging.getLogger("mathvlm.train").removeHandler(handler)
  rows = [json.loads(line) for line in epath.Path(BUCKET, "metrics.jsonl").read_text().splitlines()]
  assert rows == [{"loss": 2.5, "step": 1}, {"loss": 2.0, "step": 2}, {"loss": 1.5, "step": 3}]
  skipped = [r.getMessage() for r in seen if "TensorBoard skipped" in r.getMessage()]
  assert len(skipped) == 1 and f"{BUCKET}/tensorboard" in skipped[0]
  assert "needs google-cloud-storage for gs://" in skipped[0]  # the fix, named


def test_data_report_in_a_bucket_has_the_local_bytes(fake_gcs, tmp_path_factory):
  from mathvlm.train import report_dropped
  local = tmp_path_factory.mktemp("local")
  source, dropped = list(range(10)), {"too_long": 2}
  report_dropped(source, str(local), dropped)
  report_dropped(source, BUCKET, dropped)
  assert (epath.Path(BUCKET, "data_report.json").read_bytes()
          == (local / "data_report.json").read_bytes())


def test_init_from_a_bucket_workdir_reads_its_model_config(fake_gcs):
  from mathvlm import checkpoint, pretrained
  from mathvlm.models import registry
  config = tiny_config("lm", model__init_from=BUCKET)
  cfg = registry.get("llava").preset(config.model.preset, **pretrained.runtime(config))
  meta = {"format": "mathvlm", "kind": "llava", "config": checkpoint.config_to_dict(cfg)}
  epath.Path(BUCKET, "model").mkdir(parents=True, exist_ok=True)
  epath.Path(BUCKET, "model", "config.json").write_text(json.dumps(meta))
  assert checkpoint.model_dir(BUCKET) == f"{BUCKET}/model"
  assert pretrained.model_config(config) == cfg


def test_hugging_face_folder_in_a_bucket_is_a_clear_error():
  from mathvlm import checkpoint, hf
  with pytest.raises(checkpoint.CheckpointError, match="only on local disk"):
    hf.SafetensorsDir("gs://bucket/llava-hf")
