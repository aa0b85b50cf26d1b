"""Evaluators that run inside training (big_vision's `config.evals`), and after it.

A config lists them by name: `config.evals.heldout = dict(type="heldout_loss", every=100, ...)`.
`type` is a name in `EVALUATORS` or an import path `package.module:function`; the function is
called once, at setup, as `make(spec, config, model_cfg)` with `spec` the evaluator's own fields
(a dict, `type` and `every` removed), and returns `evaluate(model) -> {name: float}`. The trainer
calls it every `every` steps and at the end, logs the numbers as `eval/<name>/<key>` in
metrics.jsonl and keeps the last of each in WORKDIR/eval.json, which `launch/sweep.py` collects.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

Evaluate = Callable[[Any], dict]

EVALUATORS: dict[str, Callable[..., Evaluate]] = {}


def register(name: str):
  def deco(make):
    EVALUATORS[name] = make
    return make
  return deco


def resolve(kind: str) -> Callable[..., Evaluate]:
  if kind in EVALUATORS:
    return EVALUATORS[kind]
  module, sep, attr = kind.partition(":")
  if not sep:
    raise ValueError(f"evaluator type {kind!r}: one of {sorted(EVALUATORS)} or "
                     "'package.module:function'")
  return getattr(importlib.import_module(module), attr)


def from_config(config, model_cfg) -> list[tuple[str, int, Evaluate]]:
  """(name, every, evaluate) for each entry of `config.evals`, in name order."""
  out = []
  for name in sorted(config.evals):
    spec = dict(config.evals[name])
    kind, every = spec.pop("type", None), int(spec.pop("every", 0))
    if not kind:
      raise ValueError(f"evals.{name}: give it a type ({sorted(EVALUATORS)} or 'module:fn')")
    out.append((name, every, resolve(kind)(spec, config, model_cfg)))
  return out
