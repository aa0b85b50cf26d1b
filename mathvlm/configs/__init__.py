"""Recipes (one file per stage: a config file is code) and sweeps, shipped inside the package so
an installed copy trains: `python -m mathvlm.train --config sft.py:model=tiny` from any directory.
"""

from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def resolve(arg: str) -> str:
  """A recipe or sweep argument (`path.py[:key=value,...]`) with its path made real: an existing
  file is kept; otherwise `configs/sft.py`, `sft.py` or `sft` names the shipped recipe, and
  `configs/sweeps/x.py` or `sweeps/x.py` the shipped sweep."""
  path, sep, rest = arg.partition(":")
  if os.path.exists(path):
    return arg
  name = os.path.basename(path)
  name = name if name.endswith(".py") else name + ".py"
  sub = "sweeps" if os.path.basename(os.path.dirname(path)) == "sweeps" else ""
  candidate = os.path.join(HERE, sub, name)
  return candidate + sep + rest if os.path.exists(candidate) else arg
