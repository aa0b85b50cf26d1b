"""No question asks for a number the figure prints: the value of f at a marked point's x, a zero
marked on the x-axis, an extremum at a marked point, the intercept of a line through a marked
point on that axis. Such a question is read, not worked, whatever its rationale says. Every
askable target of many scenes is checked, not only the one each problem asks."""

import numpy as np
import pytest

from data_prep.engine import writer
from data_prep.engine.exact import as_float
from data_prep.engine.problems import ProgramRejected, Rejected, solve


def _scenes(dom, n, seed=11):
  out = []
  for i in range(4 * n):
    if len(out) == n:
      break
    base = [seed, i]
    try:
      out.append(writer.MAKERS[dom](np.random.default_rng(base + [0]),
                                    np.random.default_rng(base + [1]), 1 + i % 6))
    except (Rejected, ProgramRejected):
      continue
  assert len(out) == n
  return out


def _marked(scene) -> set:
  """The points printed with their coordinates, as floats."""
  g = scene.givens
  return {(as_float(g[k]), as_float(g["y_" + k[2:]])) for k in g
          if k.startswith("x_") and "y_" + k[2:] in g}


def _same(a: float, b: float) -> bool:
  return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def read_off(scene, target) -> str | None:
  """Why the target's answer can be read from the figure, or None."""
  try:
    sol = solve(scene, target)
  except Rejected:
    return None
  if sol.value is None:
    return None
  v, last, marked = as_float(sol.value), sol.chain[-1], _marked(scene)
  known = {**scene.givens, **{d.name: d.value for d in sol.chain}}
  if last.expr == "q0.subs(x, q1)" and last.inputs[0] == "f(x)":  # f at a point, or at x_v
    at = as_float(known[last.inputs[1]])
    if any(_same(x, at) for x, _ in marked):
      return f"{target.name}: f at x = {at}, a marked point's x"
  if target.name == "x₀" or target.name.startswith("x₀("):  # a zero, an x-intercept
    if any(_same(x, v) and y == 0 for x, y in marked):
      return f"{target.name} = {v}: marked at ({v}, 0)"
  if target.name.startswith("b("):
    if any(x == 0 and _same(y, v) for x, y in marked):
      return f"{target.name} = {v}: marked at (0, {v})"
  return None


@pytest.mark.parametrize("dom,n", [("function", 240), ("analytic", 150)])
def test_no_question_asks_what_the_figure_prints(dom, n):
  found, checked = [], 0
  for scene in _scenes(dom, n):
    for t in scene.targets:
      checked += 1
      why = read_off(scene, t)
      if why:
        found.append(f"{scene.key()[:60]}: {why}")
  assert checked > 3 * n
  assert not found, f"{len(found)} of {checked} targets printed in the figure: {found[:5]}"
