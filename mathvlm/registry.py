"""A name -> entry table that fails loudly: the one shape of every registry here (model families,
objectives, evaluators)."""

from __future__ import annotations

import contextlib
from typing import Iterator, TypeVar

T = TypeVar("T")


class Registry(dict):
  """`register` refuses a name twice; `get` names what is registered when it fails; `registered`
  adds an entry for the length of a block (tests, experiments)."""

  def __init__(self, kind: str):
    super().__init__()
    self.kind = kind

  def register(self, name: str, entry: T) -> T:
    if name in self:
      raise ValueError(f"{self.kind} {name!r} is already registered")
    self[name] = entry
    return entry

  @contextlib.contextmanager
  def registered(self, name: str, entry: T) -> Iterator[T]:
    self.register(name, entry)
    try:
      yield entry
    finally:
      self.pop(name, None)

  def get(self, name: str):  # noqa: D102 - a dict's get that fails instead of returning None
    if name not in self:
      raise ValueError(f"unknown {self.kind} {name!r}; choices: {', '.join(sorted(self))}")
    return self[name]
