"""The import contract in pyproject.toml (DESIGN.md's layers; `mathvlm` never imports `data_prep`)
holds. Seen failing: one `import data_prep.common` added to mathvlm/eval/latex.py broke the first."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_import_contract_holds():
  lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
  res = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
  assert "0 broken" in res.stdout
