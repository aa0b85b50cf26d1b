"""SIGTERM, what TPU and SLURM preemption (and `kill`, `docker stop`) send before SIGKILL: the run
finishes the step in flight, saves a checkpoint at that step and exits 0, and rerunning the same
command continues from it.

One process: a Python signal handler sets a flag that the loop reads after every step. Several
processes (`jax.distributed`): JAX's own preemption service catches SIGTERM on whichever process
gets it and agrees with the others on the step at which all save
(`multihost_utils.reached_preemption_sync_point`), so every process stops at the same step; no
Python handler is installed there, since it would take the signal from JAX's.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("mathvlm.train")


class Preemption:
  """`requested(step)`: whether the loop should save at `step` and stop. Use as a context
  manager: the previous SIGTERM handler comes back at exit."""

  def __init__(self):
    import jax
    self.multi = jax.process_count() > 1
    self.flag = threading.Event()
    self.previous = None

  def __enter__(self) -> "Preemption":
    if not self.multi and threading.current_thread() is threading.main_thread():
      self.previous = signal.signal(signal.SIGTERM, self._on_sigterm)
    return self

  def __exit__(self, *exc) -> None:
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)
      self.previous = None

  def _on_sigterm(self, signum, frame) -> None:
    del signum, frame
    self.flag.set()  # nothing else here: the loop saves once the step in flight is done

  def requested(self, step: int) -> bool:
    if self.multi:
      from jax.experimental import multihost_utils
      try:
        return multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError:  # the preemption service is off (jax_enable_preemption_service)
        return False
    return self.flag.is_set()
