"""Marked points of a deduced function lie on the graph drawn, and its text fixes the function.

Found by an audit that recomputed answers from the question text alone: a sinusoid with b = 2
marked A, stated as its maximum a + d, at a minimum for every other period (the maxima were
spaced by the period divided by b once more), so the rationale's a and d, every value and slope
from them and the drawn points disagreed with the drawn curve. And a·|x - h| + k with two
marked points has three unknowns: the text never said which point was the vertex.
"""

import numpy as np
import pytest
import sympy as sp

from data_prep.engine import function_graphs as FG
from data_prep.engine import functions
from data_prep.engine.exact import X
from data_prep.engine.problems import Rejected


def deduced(fam: str, seeds=range(300)):
  for seed in seeds:
    vrng = np.random.default_rng(seed)
    g = FG.family(vrng, fam, "deduce")
    Fm = FG.Formulas(g)
    try:
      FG.deduce(Fm, vrng)
    except Rejected:
      continue
    yield g


@pytest.mark.parametrize("fam", FG.DEDUCIBLE)
def test_every_marked_point_is_on_the_drawn_graph(fam):
  graphs = list(deduced(fam))
  assert len(graphs) > 100
  for g in graphs:
    for name, (x, y) in g.points.items():
      drawn = float(g.fn(np.array([float(x)]))[0])
      assert abs(drawn - float(y)) < 1e-9, (fam, g.info, name, x, y, drawn)
  if fam in ("sin", "cos"):  # the period the bug was in is among those drawn
    assert {g.info["b"] for g in graphs} == {sp.Integer(1), sp.Integer(2), sp.Rational(1, 2)}


def test_the_text_of_an_absolute_value_graph_names_its_vertex():
  """Two points fix a·|x - h| + k only when one is known to be the vertex: the text (and the
  caption, which opens with it) says which, and the vertex it names fits both points."""
  graphs = list(deduced("abs"))
  assert len(graphs) > 100
  for g in graphs:
    text = functions.context(g)
    (xa, ya), (xb, yb) = g.points["A"], g.points["B"]
    assert f"A({functions.human(xa)}, {functions.human(ya)}), the vertex," in text, text
    # with A the vertex, the one a through B is the graph's own
    a = (yb - ya) / abs(xb - xa)
    assert sp.simplify(a * sp.Abs(X - xa) + ya - g.f) == 0
