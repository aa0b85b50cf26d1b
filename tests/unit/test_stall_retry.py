"""run_python's retry_stall reruns a program only when XLA aborted a collective that a fake device
never reached, and only once; any other failure, or a second stall, still fails the test."""

import pytest

from train_utils import XLA_STALL, run_python

# Stalls (prints XLA's abort and aborts) while the marker file is missing, then succeeds.
STALLS_ONCE = r"""
import os, sys
marker, times = sys.argv[1], int(sys.argv[2])
n = int(open(marker).read()) if os.path.exists(marker) else 0
open(marker, "w").write(str(n + 1))
if n < times:
  sys.stderr.write("F1201 rendezvous.cc:139] [id=3] %s collective permute` of 120 seconds\n"
                   % sys.argv[3])
  os.abort()
print("ok", n)
"""


def test_one_stall_is_run_again(tmp_path):
  marker = str(tmp_path / "n")
  with pytest.warns(UserWarning, match="never reached"):
    assert run_python(STALLS_ONCE, marker, "1", XLA_STALL, retry_stall=True).split() == ["ok", "1"]


def test_two_stalls_fail(tmp_path):
  with pytest.raises(AssertionError, match="Termination timeout"), pytest.warns(UserWarning):
    run_python(STALLS_ONCE, str(tmp_path / "n"), "2", XLA_STALL, retry_stall=True)


@pytest.mark.parametrize("message,retry", [("Some other fatal error", True), (XLA_STALL, False)])
def test_other_failures_are_not_retried(tmp_path, message, retry):
  marker = tmp_path / "n"
  with pytest.raises(AssertionError):
    run_python(STALLS_ONCE, str(marker), "1", message, retry_stall=retry)
  assert marker.read_text() == "1"
