"""Multiple choice as an option set of the figure's quantities, the asked one drawn after the set
(`problems.option_set`, `writer.draw`): each option is the exact answer to a question on the
same figure, and the options alone say nothing about which one was asked."""

import collections
import contextlib
import json
import re
from unittest import mock

import numpy as np
import pytest

from data_prep.engine import __main__ as cli
from data_prep.engine import writer
from data_prep.engine.problems import ProgramRejected, Rejected, solve
from mathvlm.eval import choices_only as CO


def _drawn(seed, n, **kw):
  """Multiple-choice problems drawn in-process (scene in hand), as the writer draws them."""
  opts = writer.Options(seed=seed, mc=1.0, degrade=0.0, **kw)
  out = []
  for i in range(n):
    base = [seed, i, 0, 0]
    try:
      out.append(writer.draw(writer.domain_for("all", i), opts, np.random.default_rng(base + [0]),
                             np.random.default_rng(base + [1, 0, 0]), mc=True))
    except (Rejected, ProgramRejected):
      continue
  return out


def test_every_option_is_the_answer_to_a_question_on_the_figure():
  drawn = [d for d in _drawn(5, 110) if d.members]
  assert len(drawn) >= 40
  for d in drawn:
    targets = [d.scene.targets[i] for i in d.members]
    solved = [solve(d.scene, t) for t in targets]       # each checked like an answer
    texts = [x.text for x in solved]
    not_positive = any(float(x.value) <= 0 for x in solved)
    assert not not_positive or all(t.signed for t in targets), texts  # no negative area
    r = d.rec
    assert sorted(r["choices"]) == sorted(texts) and len(set(texts)) == 4
    assert r["choices"][r["answer_index"]] == r["answer"] == texts[d.asked]
    assert d.main is targets[d.asked]
    assert all(1 <= len(solve(d.scene, t).chain) <= 6 for t in targets)
    for k, why in enumerate(r["distractor_reasons"]):
      assert (why is None) == (k == r["answer_index"])
      assert why is None or why[0].endswith(f"instead of {d.main.phrase}")
    assert "which is option " + "ABCD"[r["answer_index"]] in r["cot"]


def test_no_zero_or_negative_option_beside_a_quantity_that_cannot_be_one():
  """A length or an area is never 0 or negative, so a reader of a length question strikes a 0
  option: shallow analytic sets mix lengths and areas with coordinates, and 4 of 36 sets at
  `--steps 1:2` showed a coordinate of 0 beside a length or an area before the rule covered 0."""
  opts = writer.Options(seed=5, domain="analytic", mc=1.0, degrade=0.0, steps=(1, 2))
  sets = 0
  for i in range(80):
    base = [5, i, 0, 0]
    try:
      d = writer.draw("analytic", opts, np.random.default_rng(base + [0]),
                      np.random.default_rng(base + [1, 0, 0]), mc=True)
    except (Rejected, writer.NoOptionSet):
      continue
    members = [d.scene.targets[k] for k in d.members]
    values = [float(solve(d.scene, t).value) for t in members]
    assert all(v > 0 for v in values) or all(t.signed for t in members), d.rec["choices"]
    sets += 1
  assert sets >= 25, sets


def _problems(seed, n):
  """(choices, answer index) of the multiple-choice problems among n, as the records hold them:
  `writer.sample` copies both from the drawn problem, so they are taken from `drawn_problem`,
  which stops before the PNGs are encoded (~40% of `make_problem`'s CPU here)."""
  opts = writer.Options(seed=seed, mc=1.0, degrade=0.0)
  recs = [writer.drawn_problem(opts, i)[1][0].rec for i in range(n)]
  return [(r["choices"], r["answer_index"]) for r in recs if r["choices"]]


def test_a_learned_choices_only_rule_stays_at_chance(sklearn_on_one_thread):
  """The asked quantity is drawn uniformly after the set, and the set is shown in a drawn order,
  so P(answer = option i | options) = 1/4 whatever made the set. Gradient-boosted trees fitted
  on one seed's problems find nothing on another's; they found 39.5% on the options made from
  the answer by mistakes (`--wrong_options figure+mistakes` where the figure has no set: this
  test with those options scores 35-40%)."""
  seen, fresh = _problems(61, 700), _problems(62, 400)
  assert len(seen) >= 400 and len(fresh) >= 220
  trees = CO.Learned(seen, "trees").score(fresh)
  fixed = CO.scores(fresh)
  assert abs(trees - 0.25) < 0.07, trees
  assert max(v for k, v in fixed.items() if k != "chance") < 0.25 + 0.10, fixed


def test_the_answer_stands_at_every_place_and_every_member_is_asked():
  """The answer's place, the member asked, and where the set's first member (the quantity of
  the wanted depth) is shown are each uniform: were the set shown in its own order, that
  member would stand first or second, and its look (deeper chains, longer values) would tell
  the answer's place apart."""
  drawn = [d for d in _drawn(7, 200) if d.members]
  first = [d.rec["choices"].index(solve(d.scene, d.scene.targets[d.members[0]]).text)
           for d in drawn]
  assert len(drawn) >= 80
  for seen in ([d.rec["answer_index"] for d in drawn], [d.asked for d in drawn], first):
    counts = collections.Counter(seen)
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > len(drawn) / 8, counts


def test_variants_keep_the_option_set_and_the_asked_quantity(tmp_path):
  opts = writer.Options(seed=9, mc=1.0, degrade=0.0, variants=3)
  groups = 0
  for i in range(12):
    samples = writer.make_problem(opts, i)
    recs = [s["record"] for s in samples]
    asked = {s["scene"]["distractors"][(r["answer_index"] + 1) % 4][0].split(" instead of ")[1]
             for s, r in zip(samples, recs) if r["choices"]}
    if recs[0]["choices"]:
      groups += 1
      assert all(r["choices"] for r in recs) and len({r["steps"] for r in recs}) == 1
      shape = {re.sub(r"[A-Z]|-?\d*π?(/\d+)?|√", "", a) for a in asked}
      assert len(shape) == 1, asked   # the same quantity, in each variant's letters and numbers
  assert groups >= 6


def test_without_an_option_set_the_question_is_free_form_or_from_mistakes(tmp_path):
  """Function figures with mixed sets have no four seven-step quantities (three tangents'
  intercepts at most): --wrong_options figure (the default) redraws the figure MC_PROGRAMS
  times, then asks free-form, and meta.json counts both; figure+mistakes makes options from
  wrong reasoning there instead, and says so."""
  metas = {}
  for mode in ("figure", "figure+mistakes"):
    cli.main(["--n", "12", "--out", str(tmp_path / mode), "--seed", "3", "--mc", "1",
              "--degrade", "0", "--steps", "7:7", "--domain", "function", "--wrong_options",
              mode, "--option_kinds", "mixed"])
    metas[mode] = json.load(open(tmp_path / mode / "meta.json"))
    assert metas[mode]["wrong_options"] == mode
  mc = {m: metas[m]["question_types"].get("multi_choice", 0) for m in metas}
  rejected = metas["figure"]["rejected_attempts"]
  fell = rejected["multiple choice asked free-form: no fair set of options"]
  assert fell >= 10 and fell + mc["figure"] == 12, (fell, mc)
  assert rejected["multiple choice: figure redrawn for a fair set of options"] >= (
      writer.MC_PROGRAMS * fell)
  assert mc["figure"] < mc["figure+mistakes"] <= 12, mc
  with pytest.raises(SystemExit):
    cli.parse(["--n", "1", "--out", "x", "--wrong_options", "answer"])
  with pytest.raises(ValueError, match="wrong_options"):
    writer.Options(wrong_options="answer").check()


def test_the_question_type_is_the_problems_whatever_the_depth():
  """--mc is the share of multiple choice at any depth: whether a problem asks multiple choice
  is decided once (`is_mc`), and a figure without a fair option set is redrawn, not asked
  free-form, until MC_PROGRAMS such figures have been tried. Were the coin thrown per attempt,
  the redraws would land on free-form; were the figure not redrawn, --steps 2:3 gave 15%
  multiple choice for --mc 0.7. (2:3 now puts plane shapes apart and redraws little: 1:3 here.)"""
  opts = writer.Options(seed=4, mc=0.6, degrade=0.0, steps=(1, 3))
  wanted = redrawn = fell = 0
  for i in range(45):
    sample = writer.make_problem(opts, i)[0]
    rejected = sample["rejected"]
    redrawn += rejected.get("multiple choice: figure redrawn for a fair set of options", 0)
    fell_back = "multiple choice asked free-form: no fair set of options" in rejected
    fell += fell_back
    wanted += writer.is_mc(opts, i)
    is_mc = sample["record"]["question_type"] == "multi_choice"
    assert is_mc == (writer.is_mc(opts, i) and not fell_back), i
  assert redrawn >= 20 and 0.4 < wanted / 45 < 0.8, (redrawn, wanted)
  assert (wanted - fell) / 45 >= 0.3, (wanted, fell)


def test_a_sound_figure_without_an_option_set_does_not_count_as_a_failed_program(monkeypatch):
  """Where figures of the wanted depth are rare (most programs fail `no question with 6
  steps`), the failures before a figure redrawn for its options start afresh, else a
  multiple-choice problem ran out of its MAX_PROGRAMS and the whole run stopped (11 of 60
  six-step analytic problems, before their deeper quantities). With MAX_PROGRAMS at 40, a
  problem here still fails more programs than that in all (67; eleven-step plane figures, since
  the lines through two marked points, now in every run, give six-step analytic figures
  often; a figure that cannot be drawn is a failed program)."""
  monkeypatch.setattr(writer, "MAX_PROGRAMS", 40)
  results = []
  variants = writer._variants

  def counted(*args):
    try:
      out = variants(*args)
    except writer.NoOptionSet:
      results.append("redrawn")
      raise
    except writer.FigureRejected:
      results.append(False)
      raise
    results.append(out is not None)
    return out

  monkeypatch.setattr(writer, "_variants", counted)
  opts = writer.Options(seed=3, steps=(11, 11), domain="plane", mc=1.0)
  most = 0
  for i in range(8):
    results.clear()
    writer.make_problem(opts, i)
    most = max(most, results.count(False))
  assert most > writer.MAX_PROGRAMS, most


def test_the_others_are_of_the_first_quantitys_kind_as_far_as_the_figure_has_them():
  """Lengths with lengths, areas with areas: a quantity of the set's first member's kind is left
  out only when it could not join (a value or text it shares, or a length that would stand
  out), so a wrong option is the similar quantity a student confuses where there is one. Values
  of f with values, rates with rates: function quantities have kinds too (`functions.kind_of`;
  before, a function figure's set mixed them at random). Mixed sets (`--option_kinds mixed`):
  sets of one kind have no others."""
  from data_prep.engine import problems as P
  checked = mixed = 0
  domains = collections.Counter()
  for d in _drawn(13, 150, option_kinds="mixed"):
    if not d.members:
      continue
    scene, members = d.scene, [d.scene.targets[i] for i in d.members]
    kind = scene.kind_of(members[0].name)
    if kind is None:
      continue
    checked += 1
    domains[scene.domain] += 1
    left = [t for t in scene.targets if t not in members and t.main_ok and t.answer_text is None
            and not t.parts and scene.kind_of(t.name) == kind
            and 1 <= len(P.chain_of(scene, t)) <= 6]
    others = [t for t in members[1:] if scene.kind_of(t.name) != kind]
    mixed += bool(others)
    if others:
      texts = [P._figure_text(scene, t) for t in members[:1] + [t for t in members[1:]
                                                                   if t not in others]]
      for t in left:
        x = P._figure_text(scene, t)
        assert x is None or not P._fair(texts, x), (t.name, [m.name for m in members])
  assert checked >= 40 and mixed >= 10 and domains["function"] >= 15, (checked, mixed, domains)


def test_option_kinds_same_makes_sets_of_the_asked_kind_only(tmp_path):
  """--option_kinds same (the default): every member of a set is of the asked quantity's kind,
  so the question's wording rules none out; with mixed sets some mix kinds. meta.json says which
  mode made the data."""
  def kinds(d):
    return [d.scene.kind_of(d.scene.targets[i].name) for i in d.members]
  same = [kinds(d) for d in _drawn(7, 80) if d.members]
  mixed = [kinds(d) for d in _drawn(7, 60, option_kinds="mixed") if d.members]
  assert len(same) >= 8 and all(k[0] is not None and len(set(k)) == 1 for k in same), same
  assert sum(len(set(k)) > 1 for k in mixed) >= 10
  cli.main(["--n", "6", "--out", str(tmp_path / "o"), "--seed", "2", "--mc", "1",
            "--degrade", "0", "--option_kinds", "mixed"])
  assert json.load(open(tmp_path / "o" / "meta.json"))["option_kinds"] == "mixed"
  with pytest.raises(ValueError, match="option_kinds"):
    writer.Options(option_kinds="pure").check()


def test_a_variant_whose_figure_cannot_hold_the_set_is_redrawn_not_a_crash():
  """Variants name the first's quantities by their place in the figure program: a figure with
  fewer quantities, or whose values make two options equal, is a redraw of the values."""
  opts = writer.Options(seed=5, mc=1.0, degrade=0.0)
  rngs = lambda i, k: (np.random.default_rng([5, i, 0, 0, 0]),  # noqa: E731
                       np.random.default_rng([5, i, 0, 0, 1, k, 0]))
  for i in range(40):
    try:
      d = writer.draw(writer.domain_for("all", i), opts, *rngs(i, 0), mc=True)
    except (Rejected, ProgramRejected):
      continue
    if d.members:
      break
  first = writer.Drawn(d.scene, d.main, d.rec, {}, None, (0, 1, 2, 99), 0)
  with pytest.raises(Rejected, match="fewer quantities"):
    writer.draw(writer.domain_for("all", i), opts, *rngs(i, 1), first)


def test_function_figures_offer_an_option_set_at_shallow_and_middle_depths():
  """f at three points, f' and the tangent at two, two average rates (`function_questions.
  extras`): a one-step or a 3-4-step function figure has four quantities of its depth, where it
  had at most two and was never multiple choice. The extras are never the question `pick`
  chooses (their priority), so the questions asked first are as before."""
  from data_prep.engine import problems as P
  for steps in ((1, 1), (3, 4)):
    opts = writer.Options(seed=5, domain="function", mc=1.0, degrade=0.0, steps=steps)
    recs = [writer.make_problem(opts, i)[0]["record"] for i in range(12)]
    mc = sum(r["question_type"] == "multi_choice" for r in recs)
    assert mc >= 8, (steps, mc)
  picked = 0
  for i in range(40):
    srng, vrng = np.random.default_rng([6, i, 0]), np.random.default_rng([6, i, 1])
    wanted = 1 + i % 4
    try:
      scene = writer.MAKERS["function"](srng, vrng, wanted)
      main = P.pick(scene, (1, 6), wanted, srng)
    except Rejected:
      continue
    assert any(t.priority == 1 for t in scene.targets)
    assert main.priority == 0, main.name
    picked += 1
  assert picked >= 30


def test_a_function_programs_quantities_stand_in_the_same_places_in_every_variant():
  """A variant's option set names its quantities by place, so every variant of a program has
  the same list of quantities, extras included, even where an extra found no point of its own
  (it is kept, never asked), and a kept extra is never the same quantity as another."""
  shape = lambda t: re.sub(r"-?\d*π?(/\d+)?", "", t.phrase)  # noqa: E731
  compared = 0
  for i in range(40):
    lists = []
    for k in range(3):
      try:
        scene = writer.MAKERS["function"](np.random.default_rng([8, i, 0]),
                                          np.random.default_rng([8, i, 1, k]), 1 + i % 5)
      except Rejected:
        continue
      lists.append([shape(t) for t in scene.targets])
      asked = [t.name for t in scene.targets if t.main_ok]
      assert len(asked) == len(set(asked)), asked
    if len(lists) > 1:
      compared += 1
      assert all(x == lists[0] for x in lists), lists
  assert compared >= 25


def _analytic_scenes(seed, n, wanted):
  for i in range(n):
    try:
      yield writer.MAKERS["analytic"](np.random.default_rng([seed, i, 0]),
                                      np.random.default_rng([seed, i, 1]), wanted)
    except Rejected:
      continue


def test_analytic_one_step_quantities_solve_against_their_own_measures():
  """Midpoints, changes in x and y, a centroid, a rectangle's sides and centre, a diameter
  (`analytic._one_step_targets`): each is one step from the coordinates, and its chain's value
  is re-measured with another formula (a perpendicular bisector, two medians crossing), so a
  wrong template or a wrong measure fails `solve`. The lines through two figures' points
  (`analytic._cross_targets`, several steps) are left out here."""
  from data_prep.engine import analytic
  from data_prep.engine import problems as P
  seen = collections.Counter()
  with mock.patch.object(analytic, "_cross_targets", lambda F, plot: []):
    scenes = list(_analytic_scenes(11, 60, 1))
  for scene in scenes:
    for t in scene.targets:
      if t.priority != 1 or t.name.startswith(DEEP + TO_AXIS):
        continue
      assert len(P.chain_of(scene, t)) == 1, t.name
      sol = solve(scene, t)
      assert float(sol.measured) == pytest.approx(float(sol.value), abs=1e-9), t.name
      seen[re.sub(r"\(.*", "", t.name)] += 1
  assert {"xₘ", "yₘ", "Δx", "Δy", "x̄", "ȳ", "d"} <= set(seen), seen
  assert any(k.startswith("|") for k in seen), seen


DEEP = ("S(△", "ℓ(", "a(")  # analytic._deep_targets: the axes' triangle, inscribed polygons
TO_AXIS = ("|xₘ(", "|yₘ(", "|x̄(", "|ȳ(")  # analytic._axis_targets: two steps


def test_analytic_deep_quantities_solve_against_their_own_measures():
  """The triangle a line cuts off with the axes, the piece of the line between them, and the
  square and equilateral triangle inscribed in a circle (`analytic._deep_targets`): each chain's
  value is re-measured another way (the axes' crossings by a linear solve and Heron; polygons
  of points on the drawn circle), so a wrong template or measure fails `solve`. With the radius
  from a point on the circle, and for any line, they are six steps deep."""
  from data_prep.engine import problems as P
  seen, six = collections.Counter(), collections.Counter()
  for scene in _analytic_scenes(13, 80, 6):
    for t in scene.targets:
      if not t.name.startswith(DEEP):
        continue
      sol = solve(scene, t)
      assert float(sol.measured) == pytest.approx(float(sol.value), rel=1e-9), t.name
      kind = re.sub(r"\(.*", "", t.name) + ("axes" if "axes" in t.name else "")
      seen[kind] += 1
      six[kind] += len(P.chain_of(scene, t)) == 6
  assert set(seen) == {"Saxes", "ℓ", "a", "S"}, seen
  assert six["Saxes"] == seen["Saxes"] and six["ℓ"] == seen["ℓ"] and six["a"] >= 4, (seen, six)


def test_six_step_analytic_figures_can_be_multiple_choice():
  """Before the deeper quantities a six-step analytic figure had one quantity of that depth
  (the inscribed square's area), so `--steps 6:6` was never multiple choice (0 of 50 at
  --mc 0.7); at --mc 1 most are now, and the question is not always the same one."""
  opts = writer.Options(seed=4, domain="analytic", mc=1.0, degrade=0.0, steps=(6, 6))
  recs = [writer.make_problem(opts, i)[0]["record"] for i in range(10)]
  assert all(r["steps"] == 6 for r in recs)
  assert sum(r["question_type"] == "multi_choice" for r in recs) >= 5
  assert len({re.sub(r"[A-Z]", "", r["text_en"]["text_dominant_question"].split(".")[-1])
              for r in recs}) >= 3


def test_six_step_function_figures_can_be_multiple_choice():
  """A function figure's deepest quantities are its tangents' intercepts and average rates (six
  steps where the expression is deduced from marked points). With two of each, `--steps 6:6`
  was never multiple choice (0 of 50 at --mc 0.7); a deep program now has three tangents and
  four rates (`function_questions.extras`), and shallower programs are as before."""
  opts = writer.Options(seed=4, domain="function", mc=1.0, degrade=0.0, steps=(6, 6))
  recs = [writer.make_problem(opts, i)[0]["record"] for i in range(10)]
  assert all(r["steps"] == 6 for r in recs)
  assert sum(r["question_type"] == "multi_choice" for r in recs) >= 4


def test_analytic_figures_ask_and_offer_one_step_questions():
  """At `--steps 1:1` an analytic figure used to offer a triangle's area and a circle's area or
  circumference, nothing else: shallow sweeps were those questions only and nearly never
  multiple choice (1 of 50 at --mc 0.7). The one-step quantities make both: several kinds of
  question asked, and most problems multiple choice at --mc 1. Where the figure has another
  question of the wanted depth, that one is asked as before (`pick` prefers priority 0)."""
  from data_prep.engine import problems as P
  opts = writer.Options(seed=5, domain="analytic", mc=1.0, degrade=0.0, steps=(1, 1))
  recs = [writer.make_problem(opts, i)[0] for i in range(12)]
  mc = sum(s["record"]["question_type"] == "multi_choice" for s in recs)
  assert mc >= 8, mc
  free = writer.Options(seed=6, domain="analytic", mc=0.0, degrade=0.0, steps=(1, 1))
  asked = {re.sub(r"\(.*", "", writer.make_problem(free, i)[0]["scene"]["target"])
           for i in range(16)}
  assert len(asked - {"S", "C"}) >= 3, asked
  as_before = 0
  for wanted in (1, 2):  # deeper, a one-step quantity is never in `pick`'s pool
    for scene in _analytic_scenes(12, 50, wanted):
      lens = {t.name: len(P.chain_of(scene, t)) for t in scene.targets}
      if not any(t.priority == 0 and lens[t.name] == wanted for t in scene.targets):
        continue
      for k in range(3):
        main = P.pick(scene, (1, 6), wanted, np.random.default_rng(k))
        assert not re.match(r"(xₘ|yₘ|x̄|ȳ|Δx|Δy|\||d)\(?", main.name), main.name
      as_before += 1
  assert as_before >= 15, as_before


PLANE_EXTRA = re.compile(r"the (?:length of |area of the )?(diagonal|height|diameter|"
                         r"radius of the circle through|radius|chord|square inscribed) ")


def test_plane_diagonals_heights_and_diameters_solve_against_their_own_measures():
  """A quadrilateral's diagonals, a triangle's or a parallelogram's height, a circle's or a
  semicircle's diameter or radius, the circle through a square's, a rectangle's or a
  triangle's vertices, a sector's chord, the square inscribed in a circle (`shapes.EXTRA`):
  each re-measured from the coordinates (a height as the vertex's distance to the base's line
  by the cross product, a circumradius from where two perpendicular bisectors meet, the
  inscribed square from four points of the drawn circle), so a wrong formula fails `solve`."""
  seen = collections.Counter()
  for i in range(240):
    try:
      scene = writer.MAKERS["plane"](np.random.default_rng([13, i, 0]),
                                     np.random.default_rng([13, i, 1]), 1 + i % 4)
    except Rejected:
      continue
    for t in scene.targets:
      if t.main_ok and (m := PLANE_EXTRA.match(t.phrase)):
        assert t.priority == 1, t.name
        sol = solve(scene, t)
        assert float(sol.measured) == pytest.approx(float(sol.value), rel=1e-9), t.name
        seen[m.group(1)] += 1
  assert set(seen) == {"height", "diagonal", "diameter", "radius", "chord", "square inscribed",
                       "radius of the circle through"}, seen


def test_one_shape_plane_figures_can_now_be_multiple_choice():
  """A one-step plane figure is one shape with one or two givens: two one-step quantities
  before, so `--steps 1:1` plane problems were never multiple choice (0 of 16 at --mc 1, 160
  figures redrawn). With the diagonals, heights and the diameter, a trapezoid had four and most
  shapes three (11 of 16); with a circumradius, a chord and the inscribed square, most shapes
  have four, and every problem here is multiple choice. Where the last shape has a question of
  the wanted depth, `pick` still asks it (the extras' priority). Mixed sets: a shape has one
  area and one perimeter, so sets of one kind are fewer at one step (7 of 16)."""
  from data_prep.engine import problems as P
  opts = writer.Options(seed=5, domain="plane", mc=1.0, degrade=0.0, steps=(1, 1),
                        option_kinds="mixed")
  mc = sum(writer.make_problem(opts, i)[0]["record"]["question_type"] == "multi_choice"
           for i in range(16))
  assert mc >= 15, mc
  as_before = 0
  for i in range(60):
    srng = np.random.default_rng([14, i, 0])
    try:
      scene = writer.MAKERS["plane"](srng, np.random.default_rng([14, i, 1]), 1 + i % 3)
    except Rejected:
      continue
    lens = {t.name: len(P.chain_of(scene, t)) for t in scene.targets}
    wanted = 1 + i % 3
    if not any(not PLANE_EXTRA.match(t.phrase) and t.main_ok and lens[t.name] == wanted
               and t.priority == 0 for t in scene.targets):
      continue
    for k in range(3):
      main = P.pick(scene, (1, 6), wanted, np.random.default_rng(k))
      assert not PLANE_EXTRA.match(main.phrase), main.name
    as_before += 1
  assert as_before >= 20, as_before


KIND_WORDS = {"length": ("distance", "length", "side"), "slope": ("slope",),
              "intercept": ("intercept",), "coordinate": ("coordinate",), "area": ("area",),
              "value": ("value of f",), "derivative": ("derivative",), "rate": ("rate",),
              "perimeter": ("perimeter",)}


def _same_kind_extras(dom, seed, n, wanted):
  """(scene, the quantities added for sets of one kind): the same program made with and
  without them (function: `--option_kinds same` adds them; analytic and plane: every run has
  them since 2026-12-06, so they are left out here by hand)."""
  from data_prep.engine import analytic, plane
  without = {"analytic": (analytic, "_cross_targets", lambda F, plot: []),
             "plane": (plane, "_pair_targets", lambda fig: [])}
  for i in range(n):
    made = []
    for same in (False, True):
      try:
        with (mock.patch.object(*without[dom]) if dom in without and not same
              else contextlib.nullcontext()):
          made.append(writer.MAKERS[dom](np.random.default_rng([seed, i, 0]),
                                         np.random.default_rng([seed, i, 1]), wanted,
                                         same_kind=same))
      except Rejected:
        break
    if len(made) == 2:
      plain = [t.name for t in made[0].targets]
      assert [t.name for t in made[1].targets][:len(plain)] == plain  # after the others
      yield made[1], made[1].targets[len(plain):]


def test_same_kind_quantities_solve_against_their_own_measures_and_say_their_kind():
  """`--option_kinds same` adds quantities of each kind: the line through two marked points of
  different figures (`analytic._cross_targets`: its length, slope, intercepts, midpoint, the
  triangle it cuts off with the axes), f, f', tangents and rates at more points
  (`function_questions.extras`), and two shapes' areas and perimeters added and compared
  (`plane._pair_targets`). Each solves against its own measure (a vertical or horizontal
  pair, or one through the origin, would not: `_cross_pairs` leaves them out), and its phrase
  names the kind `kind_of` gives it, since a set of one kind is what they are for."""
  seen = collections.Counter()
  for dom, wanted in (("analytic", 2), ("analytic", 5), ("function", 2), ("function", 5),
                      ("plane", 4), ("plane", 6)):
    for scene, extra in _same_kind_extras(dom, 21, 25, wanted):
      for t in extra:
        kind = scene.kind_of(t.name)
        sol = solve(scene, t)  # f' is measured by a finite difference
        assert float(sol.measured) == pytest.approx(float(sol.value), rel=1e-6, abs=1e-6)
        assert any(w in t.phrase for w in KIND_WORDS[kind]), (t.name, kind, t.phrase)
        seen[dom, kind] += 1
  assert {k for d, k in seen if d == "analytic"} == {"length", "slope", "intercept",
                                                     "coordinate", "area"}, seen
  assert {k for d, k in seen if d == "function"} >= {"value", "derivative", "intercept",
                                                     "rate"}, seen
  assert {k for d, k in seen if d == "plane"} == {"area", "perimeter"}, seen


def test_same_kind_sets_are_there_at_every_depth():
  """With sets of one kind only, an analytic figure at `--steps 6:6`, a function figure at
  `3:4` and a plane figure at `6:6` were multiple choice 3, 0 and 1 times in 12 at --mc 1 (the
  figure was redrawn, then asked free-form); with the quantities `--option_kinds same` adds,
  nearly every one is."""
  for dom, steps in (("analytic", (6, 6)), ("function", (3, 4)), ("analytic", (1, 1)),
                     ("plane", (6, 6))):
    opts = writer.Options(seed=4, domain=dom, mc=1.0, degrade=0.0, steps=steps,
                          option_kinds="same")
    recs = [writer.make_problem(opts, i)[0]["record"] for i in range(12)]
    assert sum(r["question_type"] == "multi_choice" for r in recs) >= 10, (dom, steps)


def test_a_same_kind_set_may_be_led_by_another_quantity_of_the_depth():
  """Where the question first picked has no set of its kind (a figure's one perimeter), another
  quantity of the same depth leads one (`problems._other_leads`) before the figure is redrawn:
  24 analytic figures were redrawn for 12 problems at `--steps 1:3` without it, 6 with it."""
  opts = writer.Options(seed=6, domain="analytic", mc=1.0, degrade=0.0, steps=(1, 3),
                        option_kinds="same")
  samples = [writer.make_problem(opts, i)[0] for i in range(12)]
  redrawn = sum(s["rejected"].get("multiple choice: figure redrawn for a fair set of options", 0)
                for s in samples)
  assert redrawn <= 12, redrawn
  assert all(s["record"]["question_type"] == "multi_choice" for s in samples)


def test_same_kind_function_points_come_from_a_wider_grid():
  """A sine's or cosine's special angles give seven values at most, so four points from
  π/6-2π/3 often gave two equal values and no set of four: the same-kind extras take their
  points from a wider grid (`function_questions.WIDE_SIXTHS`). 27 function figures were
  redrawn for 24 problems at `--steps 3:4` without it, 14 with it."""
  opts = writer.Options(seed=8, domain="function", mc=1.0, degrade=0.0, steps=(3, 4),
                        option_kinds="same")
  redrawn = sum(writer.make_problem(opts, i)[0]["rejected"].get(
      "multiple choice: figure redrawn for a fair set of options", 0) for i in range(24))
  assert redrawn <= 18, redrawn


def test_plane_figures_redrawn_as_new_programs_still_find_their_option_sets():
  """A plane figure that cannot be drawn is replaced by a new program (`FigureRejected`), and the
  crowded programs so replaced hold many of the option sets: with MC_PROGRAMS at 10, 16 of 40
  two-step plane problems drawn multiple choice were asked free-form (7 when such figures were
  redrawn with new values); at 40, 2."""
  opts = writer.Options(seed=3, steps=(2, 2), domain="plane", mc=1.0, degrade=0.0)
  fell = [i for i in range(40) if "multiple choice asked free-form: no fair set of options"
          in writer.make_problem(opts, i)[0]["rejected"]]
  assert len(fell) <= 4, fell
