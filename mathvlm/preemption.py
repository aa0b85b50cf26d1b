"""SIGTERM, what TPU and SLURM preemption (and `kill`, `docker stop`) send before SIGKILL: the run
finishes the step in flight, saves a checkpoint at that step and exits 0, and rerunning the same
command continues from it. A first SIGINT (Ctrl-C in a terminal) asks for the same save, since a
researcher stopping a run by hand expects to keep its steps; a second one raises
KeyboardInterrupt at once, wherever the loop is (a save it cuts short is left unfinished, as a
kill leaves it: the rerun resumes from the last checkpoint written). A SIGINT that was ignored
when the process started (a command put in the background by a script, as launch/local.sh starts
its trainers) stays ignored: its parent chose to keep Ctrl-C from it.

One process: a Python signal handler sets a flag that the loop reads after every step. Several
processes (`jax.distributed`): JAX's own preemption service catches SIGTERM on whichever process
gets it and agrees with the others on the step at which all save
(`multihost_utils.reached_preemption_sync_point`), so every process stops at the same step; no
Python SIGTERM handler is installed there, since it would take the signal from JAX's, and a first
SIGINT is turned into a SIGTERM to this process, for that service.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("mathvlm.train")


class Preemption:
  """`requested(step)`: whether the loop should save at `step` and stop; `name`: the signal that
  asked ("SIGINT" or "SIGTERM"), for the log. Use as a context manager: the previous handlers come
  back at exit."""

  def __init__(self):
    import jax
    self.multi = jax.process_count() > 1
    self.flag = threading.Event()
    self.interrupted = False
    self.previous = {}

  @property
  def name(self) -> str:
    return "SIGINT" if self.interrupted else "SIGTERM"

  def __enter__(self) -> "Preemption":
    if threading.current_thread() is not threading.main_thread():
      return self  # no handler can be set here
    if not self.multi:
      self.previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Ctrl-C reaches us
      self.previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_sigint)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self.previous.items():
      signal.signal(signum, handler)
    self.previous = {}

  def _on_sigterm(self, signum, frame) -> None:
    del signum, frame
    self.flag.set()  # nothing else here: the loop saves once the step in flight is done

  def _on_sigint(self, signum, frame) -> None:
    if self.interrupted:
      raise KeyboardInterrupt  # the second: stop now
    self.interrupted = True
    log.info("SIGINT: saving at the end of the step in flight, then exiting (Ctrl-C again to "
             "stop at once, without that save)")
    if self.multi:
      os.kill(os.getpid(), signal.SIGTERM)  # JAX's preemption service agrees on the step
    else:
      self._on_sigterm(signum, frame)

  def requested(self, step: int) -> bool:
    if self.multi:
      from jax.experimental import multihost_utils
      try:
        return multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError:  # the preemption service is off (jax_enable_preemption_service)
        return False
    return self.flag.is_set()
