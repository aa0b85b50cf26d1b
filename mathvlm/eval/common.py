"""What every benchmark module shares: the `Problem` record and counting correct answers by key."""

from __future__ import annotations

import codecs
import dataclasses
from typing import Any, Iterable


@dataclasses.dataclass
class Problem:
  """One benchmark item, whatever its source.

  pid: the benchmark's id (string). query: the benchmark's own prompt text (no chat template).
  choices: option texts for multiple choice, else []. images: absolute paths.
  meta: the fields scores break down by. raw: the record as read, written back in output files.
  """
  pid: str
  question: str
  answer: str
  choices: list[str]
  images: list[str]
  query: str
  meta: dict[str, Any]
  raw: dict[str, Any]


def tally(items: Iterable[tuple[Iterable[str], bool]]) -> dict[str, list[int]]:
  """{key: [correct, total]} over (keys, ok) pairs: each item counts once under each of its keys."""
  counts: dict[str, list[int]] = {}
  for keys, ok in items:
    for key in keys:
      c = counts.setdefault(key, [0, 0])
      c[0] += bool(ok)
      c[1] += 1
  return counts


def entry(correct: int, total: int) -> dict[str, Any]:
  """{"correct", "total", "accuracy"} with accuracy in percent, 2 decimals."""
  return {"correct": correct, "total": total,
          "accuracy": round(100.0 * correct / total, 2) if total else 0.0}


def read_text(path: str) -> str:
  """A benchmark or response file's text (UTF-8, a byte-order mark skipped). A byte that is not
  UTF-8 is an error naming the file and line: Python's own UnicodeDecodeError names neither,
  and the scorer reads two files."""
  with open(path, "rb") as f:
    data = f.read()
  try:
    return codecs.decode(data, "utf-8-sig")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise ValueError(f"{path}: line {line} is not UTF-8 text (byte {data[e.start]:#04x}: "
                     f"{e.reason}); re-encode the file as UTF-8") from None
