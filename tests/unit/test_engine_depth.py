"""Difficulty as a parameter: --steps MIN:MAX gives rationales of that many steps, each step's
number re-measured from the scene (coordinates, the function's own evaluator), never from the
chain; complexity follows the depth; the harder version is a longer chain on the same figure."""

import numpy as np
import pytest

from data_prep.engine import geometry as G
from data_prep.engine import plane as P
from data_prep.engine import shapes as SH
from data_prep.engine import writer
from data_prep.engine.exact import X, fill
from data_prep.engine.problems import ProgramRejected, Rejected, chain_of, complexity


def _drawn(dom, steps, n, seed=3, mc=0.7, fallback=True):
  """Problems of one domain drawn in-process (scene and chain in hand), as the writer draws."""
  opts = writer.Options(seed=seed, domain=dom, steps=steps, degrade=0.0, mc=mc)
  out = []
  for i in range(40 * n):
    if len(out) == n:
      break
    base = [seed, i, 0, 0]
    try:
      out.append(writer.draw(dom, opts, np.random.default_rng(base + [0]),
                             np.random.default_rng(base + [1, 0, 0]), mc=writer.is_mc(opts, i),
                             fallback=fallback))
    except (Rejected, ProgramRejected, writer.NoOptionSet):  # redrawn, as the writer does
      continue
  assert len(out) == n, f"only {len(out)} {dom} problems with {steps} steps"
  return out


def fill_chain(scene, target) -> list:
  """A target's steps with their values (filled from their formulas if not yet)."""
  chain = chain_of(scene, target)
  fill(chain, scene.givens)
  return chain


def _check_step(scene, d):
  """One step's value against the scene's own measurement of that quantity."""
  m = scene.measure(d.name)
  if m is None:  # an antiderivative: only fixed up to a constant
    return
  if callable(m):  # an expression in x: compare at points of the plot
    lo, hi = m.domain
    xs = np.linspace(lo, hi, 9)[1:-1] + 0.0123
    f = [complex(d.value.subs(X, x)).real for x in xs]
    assert np.allclose(f, m(xs), rtol=1e-4, atol=1e-4), d.name
  elif isinstance(m, list):
    assert np.allclose(sorted(float(v) for v in d.value), m, atol=1e-6), d.name
  else:
    assert abs(float(d.value) - m) <= 1e-6 * max(1.0, abs(m)), (d.name, d.value, m)


@pytest.mark.parametrize("dom", writer.DOMAINS)
def test_steps_4_to_6_each_step_measured_from_the_scene(dom):
  for d in _drawn(dom, (4, 6), 6):
    chain, rec = d.rec["chain"], d.rec
    assert 4 <= len(chain) <= 6 and rec["steps"] == len(chain)
    assert rec["cot"].count("Step ") == len(chain)
    assert [line.split(":")[0] for line in rec["cot"].splitlines()[:-1]] == [
        f"Step {k + 1}" for k in range(len(chain))]
    for step in chain:
      _check_step(d.scene, step)


def test_depth_labels_and_harder_version():
  assert [complexity(s) for s in range(1, 9)] == [0, 0, 1, 1, 2, 2, 3, 3]
  for dom in writer.DOMAINS:
    for d in _drawn(dom, (1, 6), 4, seed=5):
      h = d.rec["harder"]
      assert h["steps"] > d.rec["steps"] and h["CoT_reasoning"].count("Step ") == h["steps"]
      assert h["answer"] and h["answer_expr"]
      assert d.rec["simplified"] == d.rec["questions"]["text_lite"]


def test_cli_steps_range(tmp_path):
  from data_prep.engine import __main__ as cli
  cli.main(["--n", "6", "--out", str(tmp_path), "--steps", "5:6", "--degrade", "0"])
  import json
  recs = json.load(open(tmp_path / "instruct.json"))
  assert {r["steps"] for r in recs} <= {5, 6} and {r["complexity"] for r in recs} == {2}
  with pytest.raises(SystemExit):
    cli.main(["--n", "1", "--out", str(tmp_path), "--steps", "four"])


@pytest.mark.parametrize("dom,steps", [("analytic", (7, 9)), ("analytic", (11, 12)),
                                       ("function", (8, 10)), ("function", (11, 11))])
def test_deeper_than_a_domains_own_quantities_asks_sums_of_one_kind(dom, steps):
  """Analytic quantities stop at 6 steps (rare 8s and 10s), a function graph's at 7: deeper
  programs ask two quantities of one kind added, each step still measured from the scene (the
  sum as the sum of its parts' own measures), and a multiple-choice set of such sums is one kind."""
  lo, hi = steps
  for d in _drawn(dom, steps, 4):
    chain, scene = d.rec["chain"], d.scene
    assert lo <= len(chain) <= hi and d.rec["cot"].count("Step ") == len(chain)
    for step in chain:
      _check_step(scene, step)
    a, b = chain[-1].inputs
    assert chain[-1].name == d.main.name == f"{a} + {b}" and chain[-1].expr == "q0 + q1"
    kind = scene.kind_of(d.main.name)
    assert kind is not None and scene.kind_of(a) == scene.kind_of(b) == kind
    assert {scene.kind_of(scene.targets[i].name) for i in d.members} <= {kind}


def test_two_step_analytic_problems_have_sets_of_one_kind():
  """Two-step analytic quantities were only on circles of given radius: at `--steps 2:2` most
  programs had no question and 4 of 34 multiple-choice problems a set. A worked point's distance
  to an axis (a midpoint's, a centroid's, a rectangle's centre's) is two steps: every problem
  drawn here is multiple choice from a set of one kind, each step measured from the plot."""
  drawn = _drawn("analytic", (2, 2), 8, mc=1.0, fallback=False)
  assert sum(d.main.name.startswith("|") and d.main.name[1] in "xyx̄ȳ" for d in drawn) >= 2
  for d in drawn:
    chain, scene = d.rec["chain"], d.scene
    assert len(chain) == 2 and d.rec["question_type"] == "multi_choice" and d.members
    assert len({scene.kind_of(scene.targets[i].name) for i in d.members}) == 1
    for step in chain:
      _check_step(scene, step)
  negative = 0
  for d in drawn:  # every such distance of the figure, and some of them of a negative coordinate
    for t in d.scene.targets:
      if t.name.startswith("|") and t.name[1] in "xyx̄ȳ":
        coordinate, distance = fill_chain(d.scene, t)[-2:]
        _check_step(d.scene, distance)
        negative += float(coordinate.value) < 0
  assert negative >= 3


@pytest.mark.parametrize("steps", [(1, 1), (2, 2), (3, 3)])
def test_narrow_shallow_plane_ranges_put_shapes_apart_with_sets_of_one_kind(steps):
  """One plane shape has one area, one perimeter and a few lengths of each depth, so at
  `--steps 1:1` to 3:3 few problems drawn multiple choice had a set of one kind (13, 6 and 9 of
  32). A narrow shallow range puts two shapes apart beside the figure, each with its own given:
  every problem drawn here is multiple choice from a set of one kind, each step measured."""
  for d in _drawn("plane", steps, 6, mc=1.0, fallback=False):
    chain, scene = d.rec["chain"], d.scene
    assert len(chain) == steps[0] and d.rec["question_type"] == "multi_choice" and d.members
    assert len({scene.kind_of(scene.targets[i].name) for i in d.members}) == 1
    assert d.rec["questions"]["text_lite"].count("Separate from the other shapes") == 2
    for step in chain:
      _check_step(scene, step)


def test_shapes_apart_stand_clear_of_the_figure_and_only_for_narrow_shallow_ranges():
  assert [P.beside_count(s) for s in ((1, 1), (2, 3), (3, 3), (1, 3), (1, 6), (4, 4))] == [
      2, 2, 2, 0, 0, 0]
  made = 0
  for i in range(40):
    srng, vrng = np.random.default_rng([17, i, 0]), np.random.default_rng([17, i, 1])
    try:
      fig = P.realize(P.program(srng, 1 + i % 2, 2), vrng)
    except Rejected:
      continue
    made += 1
    apart = [r[1] for r in fig.relations if r[0] == "beside"]
    assert len(apart) == 2 and fig.shapes[-2:] == apart
    for k, s in enumerate(apart):  # right of the figure, then below both; its own given
      before = np.concatenate([o.outline() for o in fig.shapes[:len(fig.shapes) - 2 + k]])
      if k == 0:
        assert s.outline()[:, 0].min() > before[:, 0].max()
      else:
        assert s.outline()[:, 1].max() < before[:, 1].min()
      assert not any(G.overlap(s.outline(), o.outline()) for o in fig.shapes if o is not s)
      assert any(n in fig.givens for n in list(s.targets) + [SH.edge(*s.letters[:2])])
  assert made >= 30


def test_depth_past_a_domains_deepest_is_refused_before_any_problem():
  with pytest.raises(ValueError, match="function questions have at most 11 steps"):
    writer.Options(steps=(12, 12)).check()
  writer.Options(steps=(12, 12), domain="plane").check()
  writer.Options(steps=(11, 12)).check()


def test_steps_7_with_every_domain(tmp_path):
  """`--steps 7:7` stopped at its first analytic problem (no analytic quantity of 7 steps)."""
  meta = writer.generate(str(tmp_path), 3, writer.Options(seed=2, steps=(7, 7), degrade=0.0))
  import json
  recs = json.load(open(tmp_path / "instruct.json"))
  assert [r["domain"] for r in recs] == list(writer.DOMAINS) and {r["steps"] for r in recs} == {7}
  assert meta["per_domain"] == {d: 1 for d in writer.DOMAINS}


def _watched_draws(monkeypatch, fail):
  """Every plane program a problem makes: [attempt, variant, values tried, wanted depth, shape
  count, drawing made to fail], the drawing made to fail (labels that do not fit) where
  `fail(made)` says."""
  from data_prep.engine import render
  made, maker, program, plane = [], writer.MAKERS["plane"], P.program, render.plane

  def making(srng, vrng, wanted, **kw):
    attempt = srng.bit_generator.seed_seq.entropy[2]
    variant, tries = vrng.bit_generator.seed_seq.entropy[-2:]
    made.append([attempt, variant, tries, wanted, None, False])
    return maker(srng, vrng, wanted, **kw)

  def programming(srng, n_shapes, *a):
    made[-1][4] = n_shapes
    return program(srng, n_shapes, *a)

  def drawing(fig):
    if fail(made):
      made[-1][5] = True
      raise render.LabelsDoNotFit("made to fail")
    return plane(fig)

  monkeypatch.setitem(writer.MAKERS, "plane", making)
  monkeypatch.setattr(P, "program", programming)
  monkeypatch.setattr(render, "plane", drawing)
  return made


def test_a_plane_figure_that_cannot_be_drawn_is_redrawn_as_a_program_of_its_depth_and_size(
    monkeypatch):
  """New values of a plane program whose figure cannot be drawn rarely fit (17% of retries after
  labels that did not fit, `FigureRejected`), so the next program is drawn, with the same depth
  and shape count: `--steps`'s mix and the figures' sizes stay as they were when the program was
  retried."""
  made = _watched_draws(monkeypatch, lambda made: sum(m[5] for m in made) < 2)
  sizes, failed = set(), 0
  for index in range(4):
    made.clear()
    opts = writer.Options(seed=index, domain="plane", steps=(1, 6), mc=0.0)
    writer.make_problem(opts, index)
    for (a0, _, t0, w0, n0, forced), (a1, _, t1, w1, n1, _) in zip(made, made[1:]):
      if forced:
        failed += 1
        assert (a1, t1) == (a0 + 1, 0), made  # the next program, never new values
        assert (w1, n1) == (w0, n0), made     # with the failed one's depth and shape count
        own = int(np.random.default_rng([index, index, a1, 0, 0]).integers(1, 7))
        sizes.add((n0, w0 == own))
  assert failed == 8 and len({n for n, _ in sizes}) > 1, sizes
  assert (False in {own for _, own in sizes}), sizes  # a depth other than its own srng's


def test_a_later_variants_figure_is_tried_with_new_values_of_its_program(monkeypatch):
  """The first variant drew the program's figure, so a later variant that cannot is tried with
  other values (MAX_VALUES), keeping the problem's program and its first variant."""
  made = _watched_draws(monkeypatch, lambda made: [m[1] for m in made].count(1) == 1 and
                        made[-1][1] == 1)
  opts = writer.Options(seed=4, domain="plane", mc=0.0, variants=2)
  writer.make_problem(opts, 2)
  at = [m[1] for m in made].index(1)
  (a0, v0, t0, w0, n0, _), (a1, v1, t1, w1, n1, _), (a2, v2, t2, w2, n2, _) = made[at - 1:at + 2]
  assert (v0, v1, v2) == (0, 1, 1) and a0 == a1 == a2 and (t1, t2) == (0, 1), made
  assert w0 == w1 == w2 and n0 == n1 == n2


def test_other_figures_that_cannot_be_drawn_are_tried_with_new_values(monkeypatch):
  """Analytic figures whose labels do not fit are redrawn with new values of their program, as
  before: 40% of those retries succeed (600 problems of seed 1)."""
  from data_prep.engine import analytic, render
  seen, draw = [], analytic.draw

  def drawing(plot):
    seen.append(1)
    if len(seen) == 1:
      raise render.LabelsDoNotFit("made to fail")
    return draw(plot)

  monkeypatch.setattr(analytic, "draw", drawing)
  opts = writer.Options(seed=2, domain="analytic", mc=0.0)
  calls = []
  maker = writer.MAKERS["analytic"]

  def making(srng, vrng, wanted, **kw):
    calls.append((srng.bit_generator.seed_seq.entropy[2], vrng.bit_generator.seed_seq.entropy[-1]))
    return maker(srng, vrng, wanted, **kw)

  monkeypatch.setitem(writer.MAKERS, "analytic", making)
  assert writer.make_problem(opts, 1)[0]["rejected"]["labels do not fit"] == 1
  assert calls[1] == (calls[0][0], calls[0][1] + 1), calls
