"""metrics.jsonl after a resume: a run killed between checkpoints wrote rows for steps it trains
again; the writer of the resumed run drops them (and a last line cut short by the kill), so the
file holds exactly one row per step."""

import json

from mathvlm.metrics import MetricWriter


def test_a_resumed_writer_drops_the_rows_after_its_start_step(tmp_path):
  w = MetricWriter(str(tmp_path), tensorboard=False)
  for step in range(1, 6):
    w.write(step, {"loss": float(step)})
  w.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"loss": 6.0, "st')  # killed in the middle of a line
  w = MetricWriter(str(tmp_path), tensorboard=False, start_step=3)  # resumed from step 3
  for step in (4, 5, 6):
    w.write(step, {"loss": step + 0.5})
  w.close()
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
  assert [r["loss"] for r in rows] == [1.0, 2.0, 3.0, 4.5, 5.5, 6.5]


def test_a_fresh_start_drops_the_rows_of_a_run_killed_before_its_first_checkpoint(tmp_path):
  (tmp_path / "metrics.jsonl").write_text('{"loss": 1.0, "step": 1}\n')
  MetricWriter(str(tmp_path), tensorboard=False, start_step=0).close()
  assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_tensorboard_events_after_the_start_step_are_purged(tmp_path, monkeypatch):
  import tensorboardX
  made = []

  class Recorder:
    def __init__(self, logdir, **kw):
      made.append(kw)

    def close(self):
      pass

  monkeypatch.setattr(tensorboardX, "SummaryWriter", Recorder)
  MetricWriter(str(tmp_path), tensorboard=True, start_step=3).close()
  MetricWriter(str(tmp_path), tensorboard=True, start_step=0).close()
  # TensorBoard drops the events of steps 4, 5, ... and, at a fresh start, those a run killed
  # before its first checkpoint wrote (one event per step, as metrics.jsonl has one row)
  assert made == [{"purge_step": 4}, {"purge_step": 1}]


def test_amend_adds_to_the_last_row_on_a_local_file_and_a_bucket(tmp_path):
  """The last save's seconds are known only after its step's row is on disk: `amend` adds them
  to that row (one row per step still), and later rows append after it."""
  from etils import epath

  from mathvlm.metrics import BucketFile
  for name in ("local", "bucket"):
    (tmp_path / name).mkdir()
    w = MetricWriter(str(tmp_path / name), tensorboard=False)
    if name == "bucket":  # what a gs:// workdir gets, on a local path
      w.file.close()
      w.file = BucketFile(epath.Path(tmp_path / name / "metrics.jsonl"))
    w.write(1, {"loss": 1.0})
    w.write(2, {"loss": 2.0})
    w.amend(2, {"exit_checkpoint_time": 0.5})
    w.write(3, {"loss": 3.0})
    w.close()
    rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"loss": 1.0, "step": 1}, {"loss": 2.0, "exit_checkpoint_time": 0.5, "step": 2},
                    {"loss": 3.0, "step": 3}], name


def test_amend_refuses_a_step_that_is_not_the_last_rows(tmp_path):
  import pytest
  w = MetricWriter(str(tmp_path), tensorboard=False)
  w.write(1, {"loss": 1.0})
  with pytest.raises(ValueError, match=r"metrics.jsonl: the last row is step 1's, not 2's"):
    w.amend(2, {"exit_checkpoint_time": 0.5})
