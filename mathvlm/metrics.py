"""Training metrics: one JSON line per logged step in WORKDIR/metrics.jsonl (big_vision style) and
the same scalars in TensorBoard (tensorboardX: no TensorFlow needed). Only process 0 writes.
WORKDIR may be a bucket URL (gs://...): see `BucketFile`.

A run killed between checkpoints has written rows for steps it will train again after resuming
from the last checkpoint. A writer opened for a run that starts at step s therefore first drops
the rows after s (and a last line cut short by the kill), so metrics.jsonl ends with exactly one
row per logged step, the rows an uninterrupted run writes; TensorBoard drops its events after s
the same way (`purge_step`).

A row is written before its step's checkpoint; what is known of the step only after that save
(its time, when no later row follows to take it) is added to the row by `amend` (to the last row
written, naming the step saved, when a stop saved a step without a row: `train.Rows.amend_last`)."""

from __future__ import annotations

import json
import logging
import os
import time

from etils import epath

from mathvlm import paths

log = logging.getLogger("mathvlm.train")  # the trainer's log, which it prints


class MetricWriter:
  def __init__(self, workdir: str, *, tensorboard: bool = True, enabled: bool = True,
               start_step: int = 0):
    """start_step: the step the run starts from (0, or the checkpoint it resumes): rows after it
    are dropped first."""
    self.workdir, self.enabled = workdir, enabled
    self.tb = None
    if not enabled:
      return
    self.path = path = epath.Path(workdir) / "metrics.jsonl"
    if paths.is_remote(workdir):
      self.file = BucketFile(path)
      self.file.text = rows_up_to(self.file.text, start_step, path)
    else:
      if path.exists():
        _replace(path, rows_up_to(path.read_text(), start_step, path))
      self.file = path.open("a")
    if tensorboard:
      self.tb = _tensorboard(workdir, start_step)

  def write(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    self.file.write(json.dumps(dict(scalars, step=step)) + "\n")
    self.file.flush()
    if self.tb is not None:
      for k, v in scalars.items():
        if k != "step":
          self.tb.add_scalar(k, v, step)

  def amend(self, step: int, scalars: dict[str, float]) -> None:
    """Adds scalars to the last row written, `step`'s: what is known of a step only once its row
    had to be on disk (the time of the checkpoint save after it, which `flush` puts the row
    before). A local file is rewritten whole (write aside, then rename), so a kill leaves the row
    with or without them, never without the row."""
    if not self.enabled:
      return
    bucket = isinstance(self.file, BucketFile)
    if not bucket:
      self.file.close()
    text = self.file.text if bucket else self.path.read_text()
    head, _, last = text.rstrip("\n").rpartition("\n")
    row = json.loads(last)
    if row.get("step") != step:
      raise ValueError(f"{self.path}: the last row is step {row.get('step')}'s, not {step}'s")
    row = dict({k: v for k, v in row.items() if k != "step"}, **scalars, step=step)
    text = (head + "\n" if head else "") + json.dumps(row) + "\n"
    if bucket:
      self.file.text = text
    else:
      _replace(self.path, text)
      self.file = self.path.open("a")
    if self.tb is not None:
      for k, v in scalars.items():
        self.tb.add_scalar(k, v, step)

  def flush(self, step: int) -> None:
    """Writes out every row up to `step`. The loop calls it before saving that step's
    checkpoint: a bucket's file is otherwise rewritten at most every minute, and tensorboardX
    keeps events in memory for up to two minutes, so a kill after the checkpoint would lose its
    last rows, which the resumed run never writes again (it starts after them)."""
    if not self.enabled:
      return
    if isinstance(self.file, BucketFile):
      self.file.flush(force=True)
    if self.tb is not None:
      # tensorboardX's flush() leaves the events still queued for its writer thread unwritten;
      # close() writes them all. Later events go to a new file, named for the step: two files
      # opened in the same second would otherwise get one name, the second overwriting the first.
      self.tb.close()
      self.tb = _tensorboard(self.workdir, suffix=f".{step}")

  def close(self) -> None:
    if self.enabled:
      self.file.close()
      if self.tb is not None:
        self.tb.close()


def rows_up_to(text: str, step: int, path) -> str:
  """The lines of metrics.jsonl `text` whose step is at most `step`, with a count in the log of
  the rows dropped (steps the resumed run trains again) and of a cut-short last line."""
  kept, dropped, broken = [], 0, 0
  for line in text.splitlines():
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      broken += 1
      continue
    if row.get("step", 0) <= step:
      kept.append(line)
    else:
      dropped += 1
  if dropped or broken:
    log.info("%s: dropped the rows of %d steps after step %d%s, which this run trains again",
             path, dropped, step, f" and {broken} unreadable line(s)" if broken else "")
  return "".join(line + "\n" for line in kept)


def _replace(path: epath.Path, text: str) -> None:
  """Rewrites a local file whole (write aside, then rename), so a kill leaves the old or new."""
  tmp = path.parent / (path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def _tensorboard(workdir: str, start_step: int | None = None, suffix: str = ""):
  """tensorboardX's writer (events after `start_step` purged, if given; `suffix` ends its file's
  name), or None (with one log line) for a bucket it cannot write to."""
  from tensorboardX import SummaryWriter, record_writer
  logdir = os.path.join(workdir, "tensorboard")
  # Purged at a fresh start (step 0) too, as metrics.jsonl's rows are: a run killed before its
  # first checkpoint left events of steps this run writes again.
  purge = dict(purge_step=start_step + 1) if start_step is not None else {}
  if suffix:
    purge["filename_suffix"] = suffix
  if not paths.is_remote(workdir):
    return SummaryWriter(logdir, **purge)
  # Checked first: a writer that fails half-built prints a traceback when garbage-collected.
  scheme = str(workdir).split("://")[0]
  needs = {"gs": ("google-cloud-storage", record_writer.GCS_ENABLED),
           "s3": ("boto3", record_writer.S3_ENABLED)}
  if scheme not in needs:
    reason = f"it has no writer for {scheme}://"
  elif not needs[scheme][1]:
    reason = f"it needs {needs[scheme][0]} for {scheme}://, which is not installed"
  else:
    try:
      return SummaryWriter(logdir, **purge)
    except Exception as e:  # noqa: BLE001  (no credentials, no access, ...)
      reason = f"{type(e).__name__}: {e}"
  log.warning("TensorBoard skipped: tensorboardX cannot write to %s (%s); metrics.jsonl is still "
              "written", logdir, reason)
  return None


class BucketFile:
  """A text file in a bucket, appended to as a local file opened with "a" would be. Object stores
  cannot append (gcsfs opens "a" as "w", which would drop what the run wrote before a resume) and
  show an object only once it is closed, so the text is kept here and the whole object rewritten:
  at the first flush, then at most every `every_s` seconds, and on close."""

  def __init__(self, path: epath.Path, every_s: float = 60.0):
    self.path, self.every_s = path, every_s
    self.text = path.read_text() if path.exists() else ""
    self.written = -float("inf")

  def write(self, s: str) -> None:
    self.text += s

  def flush(self, force: bool = False) -> None:
    if force or time.monotonic() - self.written >= self.every_s:
      self.path.write_text(self.text)
      self.written = time.monotonic()

  def close(self) -> None:
    self.flush(force=True)
