"""A folder's files as bytes, for tests that compare what two runs wrote."""

from __future__ import annotations

import os


def snapshot(root: str) -> dict[str, bytes]:
  """{path relative to root: the file's bytes} for every file under root."""
  out = {}
  for dirpath, _, files in os.walk(root):
    for f in files:
      with open(os.path.join(dirpath, f), "rb") as fh:
        out[os.path.relpath(os.path.join(dirpath, f), root)] = fh.read()
  return out
