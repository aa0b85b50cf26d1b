"""A plain install trains: the wheel built from this checkout, installed into a fresh folder, runs
`python -m mathvlm.train` with a shipped recipe from another directory, where neither this
checkout nor a `configs/` folder is on the path."""

import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(cmd, **kw):
  res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
  assert res.returncode == 0, f"{cmd}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
  return res


def test_installed_wheel_trains_two_steps_from_another_directory(tmp_path):
  wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
  src = tmp_path / "src"  # a copy: setuptools leaves build/ and *.egg-info in the tree it builds
  elsewhere.mkdir()
  for part in ("mathvlm", "data_prep"):
    shutil.copytree(os.path.join(ROOT, part), src / part,
                    ignore=shutil.ignore_patterns("__pycache__"))
  for part in ("pyproject.toml", "README.md"):
    shutil.copy(os.path.join(ROOT, part), src / part)
  _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", str(wheels), str(src)])
  (wheel,) = wheels.glob("mathvlm-*.whl")
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
