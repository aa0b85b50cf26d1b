"""Ctrl-C in a terminal (SIGINT, to the whole foreground process group): the trainer takes a first
one as a SIGTERM (save the step in flight, exit 0) and a second as KeyboardInterrupt, at once;
under several processes the first becomes a SIGTERM for JAX's preemption service. A SIGINT its
parent had ignored stays ignored. Each case in a process of its own: a signal that slips through
ends it, not pytest."""

import os
import subprocess
import sys

import pytest

from train_utils import ROOT, ctrl_c_reaches

CASES = {
    # one process: a save request, then KeyboardInterrupt; the handlers come back at exit
    "twice": """
with Preemption() as stop:
  os.kill(os.getpid(), signal.SIGINT)
  print("requested", stop.requested(1), stop.name)
  try:
    os.kill(os.getpid(), signal.SIGINT)
    print("no KeyboardInterrupt")
  except KeyboardInterrupt:
    print("KeyboardInterrupt")
print("restored", signal.getsignal(signal.SIGINT) is signal.default_int_handler,
      signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
""",
    # started with SIGINT ignored (as a script's background command): left ignored
    "ignored": """
signal.signal(signal.SIGINT, signal.SIG_IGN)
with Preemption() as stop:
  os.kill(os.getpid(), signal.SIGINT)
  print("requested", stop.requested(1))
""",
    # several processes: the first SIGINT goes to JAX's preemption service as a SIGTERM
    "multi": """
signal.signal(signal.SIGTERM, lambda *a: print("SIGTERM to this process"))
stop = Preemption()
stop.multi = True
with stop:
  os.kill(os.getpid(), signal.SIGINT)
  print("interrupted", stop.interrupted)
""",
}
WANT = {
    "twice": "requested True SIGINT\nKeyboardInterrupt\nrestored True True\n",
    "ignored": "requested False\n",
    "multi": "SIGTERM to this process\ninterrupted True\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_first_sigint_asks_for_a_save_and_a_second_stops_at_once(case):
  code = "import os, signal\nfrom mathvlm.preemption import Preemption\n" + CASES[case]
  res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "JAX_PLATFORMS": "cpu"},
                       preexec_fn=ctrl_c_reaches)
  assert res.returncode == 0, res.stderr[-2000:]
  assert res.stdout == WANT[case]
