"""Issue 12's rule for data_prep/: no function over 100 lines (read at once, split by step)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_no_function_over_100_lines_in_data_prep():
  long = []
  for path in sorted((ROOT / "data_prep").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        n = node.end_lineno - node.lineno + 1
        if n > 100:
          long.append(f"{path.relative_to(ROOT)}:{node.name} {n} lines")
  assert not long, long
