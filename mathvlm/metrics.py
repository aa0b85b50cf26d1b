"""Training metrics: one JSON line per logged step in WORKDIR/metrics.jsonl (big_vision style) and
the same scalars in TensorBoard (tensorboardX: no TensorFlow needed). Only process 0 writes."""

from __future__ import annotations

import json
import os


class MetricWriter:
  def __init__(self, workdir: str, *, tensorboard: bool = True, enabled: bool = True):
    self.enabled = enabled
    self.tb = None
    if not enabled:
      return
    self.file = open(os.path.join(workdir, "metrics.jsonl"), "a")
    if tensorboard:
      from tensorboardX import SummaryWriter
      self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    self.file.write(json.dumps(dict(scalars, step=step)) + "\n")
    self.file.flush()
    if self.tb is not None:
      for k, v in scalars.items():
        if k != "step":
          self.tb.add_scalar(k, v, step)

  def close(self) -> None:
    if self.enabled:
      self.file.close()
      if self.tb is not None:
        self.tb.close()
