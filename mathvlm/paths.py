"""Local folders and bucket URLs (gs://bucket/runs/x) alike, through etils.epath as orbax does.

etils.epath reaches gs:// through TensorFlow's tf.io.gfile when TensorFlow is installed, else
through fsspec, whose gs:// filesystem is the separate gcsfs package (s3:// s3fs, az:// adlfs).
Local paths go through `os` as before."""

from __future__ import annotations

import json
import os
from typing import Any

from etils import epath

_PACKAGES = {"gs": "gcsfs", "s3": "s3fs", "az": "adlfs"}


def is_remote(path) -> bool:
  return "://" in str(path)


def absolute(path) -> epath.Path:
  """Local paths made absolute (orbax wants them so); URLs as they are."""
  return epath.Path(path if is_remote(path) else os.path.abspath(path))


def check_reachable(path, what: str) -> None:
  """A bucket URL that nothing installed can reach fails here, naming it and the fix, rather than
  deep inside a run. Local paths: nothing is checked."""
  if not path or not is_remote(path):
    return
  try:
    epath.Path(path).exists()
  except ImportError as e:
    scheme = str(path).split("://")[0]
    package = _PACKAGES.get(scheme, f"fsspec's filesystem package for {scheme}://")
    raise ImportError(
        f"{what}={path} is a bucket path, but no filesystem for {scheme}:// is installed: "
        f"etils.epath (which orbax uses too) reaches it through fsspec, which needs {package}. "
        f"Fix: pip install {package}"
        + (" (or install TensorFlow: etils.epath then uses tf.io.gfile)" if scheme == "gs" else "")
        + f". [{e}]") from e


def cut_torn_line(path: str) -> bool:
  """Cuts a last line without its newline (a write that a killed run did not finish) off an
  append-only JSON-lines file, and says whether it did: a resumed run appends to the file, and
  its first record glued onto the torn line would be unreadable for good."""
  with open(path, "rb+") as f:
    data = f.read()
    if not data or data.endswith(b"\n"):
      return False
    f.truncate(data.rfind(b"\n") + 1)
  return True


def read_json(path, missing: str = "") -> dict[str, Any]:
  """A JSON file in a local folder or a bucket; a missing one is a FileNotFoundError naming it
  and, when given, what it should have been."""
  path = epath.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"missing {path}" + (f": {missing}" if missing else ""))
  with path.open() as f:
    return json.load(f)
