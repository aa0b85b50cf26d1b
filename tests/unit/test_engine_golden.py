"""The engine's output, byte for byte: speed work must not change what it makes.

Each case writes `generate(..., n, seed=0)` with some options and hashes every file it wrote
(instruct.json, caption.json, scenes.jsonl, meta.json and every PNG); the expected hashes in
engine_golden.json were taken before the engine was optimised. A change that alters bytes on
purpose (a better answer, a new field) updates them in a commit of its own:

  .venv/bin/python -m tests.unit.test_engine_golden --update
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile

import pytest

from data_prep.engine import writer

EXPECTED = os.path.join(os.path.dirname(__file__), "engine_golden.json")
CASES = {
  "plane": (60, writer.Options(seed=0, domain="plane")),
  "analytic": (60, writer.Options(seed=0, domain="analytic")),
  "function": (60, writer.Options(seed=0, domain="function")),
  "steps_4_6": (60, writer.Options(seed=0, steps=(4, 6))),
  "variants_3": (60, writer.Options(seed=0, variants=3)),
  "degraded_mc": (30, writer.Options(seed=0, degrade=1.0, mc=1.0)),
  "split_train": (30, writer.Options(seed=0, split="train", test_fraction=0.3)),
  "split_test": (30, writer.Options(seed=0, split="test", test_fraction=0.3)),
}


def digest(case: str) -> dict:
  """{"json": {name: sha256}, "images": count, "images_sha256": hash over (path, sha256)}."""
  n, opts = CASES[case]
  with tempfile.TemporaryDirectory() as tmp:
    writer.generate(tmp, n, opts)
    files = sorted(os.path.relpath(os.path.join(d, f), tmp)
                   for d, _, fs in os.walk(tmp) for f in fs)
    sha = {f: hashlib.sha256(open(os.path.join(tmp, f), "rb").read()).hexdigest() for f in files}
  images = [f for f in files if f.endswith((".png", ".jpg"))]
  return {"json": {f: sha[f] for f in files if f not in images}, "images": len(images),
          "images_sha256": hashlib.sha256("".join(f + sha[f] for f in images).encode()).hexdigest()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_output_is_unchanged(case):
  assert digest(case) == json.load(open(EXPECTED))[case]


if __name__ == "__main__":
  if sys.argv[1:] != ["--update"]:
    sys.exit("usage: python -m tests.unit.test_engine_golden --update")
  with open(EXPECTED, "w") as f:
    json.dump({c: digest(c) for c in sorted(CASES)}, f, indent=1)
    f.write("\n")
