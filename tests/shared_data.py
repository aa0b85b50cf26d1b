"""Paths into ../shared/data (real benchmark files and outputs beside the repo, as CI has them).
A missing file fails the test with the path: these checks must not pass by skipping."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data")


def shared(*parts: str) -> str:
  path = os.path.join(SHARED, *parts)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} is missing: the tests read ../shared/data beside the repo")
  return path
