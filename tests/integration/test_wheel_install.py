"""A plain install trains: the wheel built from this checkout, installed into a fresh folder, runs
`python -m mathvlm.train` with a shipped recipe from another directory, where neither this
checkout nor a `configs/` folder is on the path."""

import json
import os
import subprocess
import sys

from train_utils import build_wheel


def _run(cmd, **kw):
  res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
  assert res.returncode == 0, f"{cmd}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
  return res


def test_installed_wheel_trains_two_steps_from_another_directory(tmp_path):
  site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
  elsewhere.mkdir()
  wheel = build_wheel(tmp_path)
  _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
        str(wheel)])
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env.update(PYTHONPATH=str(site), JAX_PLATFORMS="cpu")
  where = _run([sys.executable, "-c", "import mathvlm; print(mathvlm.__file__)"],
               cwd=elsewhere, env=env).stdout.strip()
  assert where.startswith(str(site)), where
  _run([sys.executable, "-m", "mathvlm.train", "--config", "sft.py:model=tiny",
        "--config.steps=2", "--config.data.num_examples=32", "--config.checkpoint.use_async=False",
        "--config.metrics.tensorboard=False", "--workdir", str(elsewhere / "run")],
       cwd=elsewhere, env=env)
  rows = [json.loads(x) for x in open(elsewhere / "run" / "metrics.jsonl")]
  assert [r["step"] for r in rows] == [1, 2]
  assert (elsewhere / "run" / "model" / "config.json").exists()
