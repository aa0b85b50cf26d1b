"""Behaviour that a ninth mutation review (small plausible bugs applied to Math-LLaVA's data
selection, `data_prep/select.py` and `data_prep/mathv360k.py`, DynaMath's scores over seeds and
variants, `mathvlm/eval/engine_dynamic.py`, the cross-version agreement,
`mathvlm/eval/consistency.py`, and the training subset, `mathvlm/data/subset.py`) found no test
guarding: each test here fails on such a mutant and passes on the real code. The expected numbers
are worked out by hand from the paper's and DynaMath's definitions. Tiny inputs only: the whole
file runs in seconds."""

import json
import zlib

import numpy as np
import pytest

from data_prep import select
from mathvlm.eval import consistency, engine_dynamic
from mathvlm.eval.common import Problem

Row = select.Row


def _clear(source, level, n, prefix=None):
  """n clear images of one (source, level) cell, without records."""
  return [Row(f"{prefix or source}{level}_{i}", source, level, 1, None) for i in range(n)]


def _targets(counts):
  return {s: [c["target"] for c in by.values()] for s, by in counts.items()}


# ---------------------------------------------------------------------------------------------
# data_prep.select: what is read

@pytest.mark.parametrize("field, value, message", [
    ("complexity", True, "unknown complexity level True"),
    ("clarity", True, "clarity True"),
    ("clarity", 2, "clarity 2"),
])
def test_a_score_that_is_a_bool_or_out_of_range_is_named(field, value, message):
  """JSON true is Python's 1: read as level 1 or as clear, an image a scorer wrote a flag for
  would be selected; clarity 2 is no class of the clarity scorer (0 blurred, 1 clear)."""
  line = dict({"id": "a", "source": "s", "clarity": 1, "complexity": 0}, **{field: value})
  with pytest.raises(select.SelectionError, match=f"s.jsonl line 3: {message}"):
    select.parse_row(json.dumps(line), "s.jsonl line 3", 4)


def test_ratio_random_in_any_case_is_the_random_baseline():
  assert select.parse_ratio(" Random ", 4) is None and select.parse_ratio("RANDOM", 4) is None


def test_ids_are_read_as_text_and_blank_lines_are_skipped(tmp_path):
  """A numeric id is the id's text (the subset matches ids as text, and a cell mixing 7 and "12"
  could not be sorted to draw from); blank lines hold no image; an empty file is named."""
  path = tmp_path / "scores.jsonl"
  lines = [{"id": 7, "source": "s", "clarity": 1, "complexity": 0},
           {"id": "12", "source": "s", "clarity": 1, "complexity": 0}]
  path.write_text(json.dumps(lines[0]) + "\n\n   \n" + json.dumps(lines[1]) + "\n")
  rows = select.read_scores(str(path), 4)
  assert [r.id for r in rows] == ["7", "12"]
  chosen, _ = select.select(rows, [1, 0, 0, 0], size=2, seed=0)
  assert sorted(r.id for r in chosen) == ["12", "7"]
  path.write_text("\n")
  with pytest.raises(select.SelectionError, match="scores.jsonl: no score lines"):
    select.read_scores(str(path), 4)



def test_a_size_of_zero_is_named():
  """--size 0 passed the check and wrote an empty selection (0 of 0 selected, none short)."""
  with pytest.raises(select.SelectionError, match="--size 0: must be between 1 and the 2 clear"):
    select.check_size(_clear("s", 0, 2), 0)

# ---------------------------------------------------------------------------------------------
# data_prep.select: the counts

def test_allocate_with_no_weight_gives_nothing():
  assert select.allocate(3, [0, 0, 0]) == [0, 0, 0]


def test_a_rounding_unit_goes_to_a_part_with_supply_before_a_larger_remainder():
  """4 split 2:1 is 2.67 + 1.33 -> 2 + 1 and one unit: part 0 has the larger remainder but only
  2 to give, so the unit goes to part 1 (4 images selected), not to part 0 (3)."""
  assert select.allocate(4, [2, 1], supply=[2, 9]) == [2, 2]


def test_a_level_with_no_image_gives_its_rounding_unit_to_a_level_with_some():
  """7 images at 2:3:4:1 are 1.4 : 2.1 : 2.8 : 0.7 -> 1 : 2 : 2 : 0 and two units. With no
  level-3 image the units go to levels 2 (.8) and 0 (.4): 2 : 2 : 3 : 0, all 7 selected; by
  remainder alone level 3 took one it cannot fill (6 selected, one short)."""
  rows = [r for lv in range(3) for r in _clear("A", lv, 10)]
  chosen, counts = select.select(rows, [2, 3, 4, 1], size=7, seed=0)
  assert _targets(counts) == {"A": [2, 2, 3, 0]} and len(chosen) == 7


def test_joint_rounding_gives_a_cell_at_its_supply_no_unit_another_cell_can_fill():
  """Two sources of 20 clear images, 6 selected at 1:1: every cell is 1.5, so each source and
  level takes one rounding unit. A's level 0 holds 1 image: its unit goes to A's level 1, B's
  to level 0 (A 1 + 2, B 2 + 1: 6 selected). Ignoring supply, A's level 0 took it (5 selected)."""
  rows = _clear("A", 0, 1) + _clear("A", 1, 19) + _clear("B", 0, 10) + _clear("B", 1, 10)
  chosen, counts = select.select(rows, [1, 1], size=6, seed=0)
  assert _targets(counts) == {"A": [1, 2], "B": [2, 1]}
  assert len(chosen) == 6 and not select.shortfalls(counts)


# ---------------------------------------------------------------------------------------------
# data_prep.select: which images

def test_a_cell_is_drawn_from_seed_source_and_level_over_its_sorted_ids():
  """The draw the module documents, spelled out: numpy's default_rng([seed, crc32(source),
  level]) picks k positions of the cell's ids in sorted order. A selection rerun with the same
  seed must give the same ids as the run a paper's numbers came from: reversing the sort, or
  seeding without the source or level (or with Python's salted hash), gives others."""
  ids = [f"x{i}" for i in (5, 3, 9, 1, 7, 0, 8, 2)]
  rows = [Row(i, "geo", 2, 1, None) for i in ids] + _clear("geo", 1, 4)
  chosen, _ = select.select(rows, [0, 0, 1, 0], size=3, seed=11)
  rng = np.random.default_rng([11, zlib.crc32(b"geo"), 2])
  want = [sorted(ids)[i] for i in sorted(rng.choice(len(ids), 3, replace=False))]
  assert [r.id for r in chosen] == want


def test_the_same_selection_whichever_source_comes_first_in_the_file():
  """Two sources of 5 images and 3 to select: one source takes the odd unit. Which one must not
  depend on the order of the scores file (the same seed gives the same ids)."""
  a, b = _clear("a", 0, 5), _clear("b", 0, 5)
  first, counts_first = select.select(b + a, [1, 0, 0, 0], size=3, seed=0)
  second, counts_second = select.select(a + b, [1, 0, 0, 0], size=3, seed=0)
  assert sorted(r.id for r in first) == sorted(r.id for r in second) and len(first) == 3
  assert counts_first == counts_second


def test_an_augmenting_path_moves_a_unit_into_a_cell_with_supply_first():
  """4 images at 1:1:1 from S0 (9 + 9 at levels 1, 2) and S1 (9 at level 0, 2 at level 2):
  shares 2 + 2, level totals 2 : 1 : 1, every cell 2/3. Greedily S0 takes levels 1 and 2, S1
  level 0; level 0 needs its second unit from S0 (which has no level-0 image: one short, forced),
  and S1's second unit then comes from a cell S0 gives up: level 2 (S1 has 2 there: 3 selected)
  before level 1 (S1 has none: a second short cell, 2 selected)."""
  rows = (_clear("S0", 1, 9) + _clear("S0", 2, 9) + _clear("S1", 0, 9) + _clear("S1", 2, 2))
  chosen, counts = select.select(rows, [1, 1, 1], size=4, seed=0)
  assert _targets(counts) == {"S0": [1, 1, 0], "S1": [1, 0, 1]} and len(chosen) == 3


def test_level_totals_hold_when_several_sources_need_an_augmenting_path():
  """78 images at 4:4:4:3 are 20.8 + 20.8 + 20.8 + 15.6 -> 21 : 21 : 21 : 15 per level, and each
  source gets its share. On this pool (found by a random search) two rows need augmenting paths;
  a path that did not count its level's unit as filled let a later one end there too, and
  levels 1 and 2 came out 20 and 22."""
  supply = {"S0": [30, 0, 9, 3], "S1": [3, 30, 9, 0], "S2": [5, 2, 9, 30], "S3": [0, 0, 30, 30],
            "S4": [30, 2, 1, 9], "S5": [1, 30, 30, 1], "S6": [2, 2, 0, 0], "S7": [2, 1, 30, 9],
            "S8": [30, 30, 9, 9]}
  pool = {s: {lv: range(n) for lv, n in enumerate(per_level)} for s, per_level in supply.items()}
  plan = select.targets(pool, [4, 4, 4, 3], 78)
  assert [sum(t[lv] for t in plan.values()) for lv in range(4)] == [21, 21, 21, 15]
  shares = select.allocate(78, [sum(n for n in per_level) for per_level in supply.values()])
  assert [sum(t) for t in plan.values()] == shares



def test_random_baseline_takes_each_image_once_whatever_the_input_order():
  """--ratio random at --size = every clear image is every clear image once (drawn with
  replacement, some came twice and others not at all); and a shuffled scores file draws the same
  ids (the pool is ordered by source, level and id, not by the file's order of levels)."""
  rows = _clear("b", 2, 3) + _clear("a", 1, 2) + _clear("a", 0, 2) + [Row("z", "a", 0, 0, None)]
  everything, _ = select.select(rows, None, size=7, seed=3)
  assert sorted(r.id for r in everything) == sorted(r.id for r in rows if r.clarity)
  some, _ = select.select(rows, None, size=3, seed=5)
  again, _ = select.select(rows[::-1], None, size=3, seed=5)
  assert [r.id for r in again] == [r.id for r in some]


def test_the_random_baseline_is_drawn_from_the_seed_over_the_ordered_clear_images():
  """The paper's random-40K baseline rerun with the same seed gives the same ids: numpy's
  default_rng([seed]) picks positions in the clear images ordered by source, level and id."""
  rows = _clear("b", 2, 3) + _clear("a", 1, 2) + _clear("a", 0, 2)
  chosen, _ = select.select(rows, None, size=3, seed=5)
  ordered = ["a0_0", "a0_1", "a1_0", "a1_1", "b2_0", "b2_1", "b2_2"]
  want = [ordered[i] for i in sorted(np.random.default_rng([5]).choice(7, 3, replace=False))]
  assert [r.id for r in chosen] == want


def test_an_image_with_exactly_k_records_is_not_listed_as_having_fewer():
  """--qa_per_image 2: an image with 2 QA pairs keeps both and is not short; one with 1 is."""
  two, one = Row("i2", "s", 0, 1, ["q1", "q2"]), Row("i1", "s", 0, 1, ["q3"])
  out, short = select.per_image([two, one], 2, seed=0)
  assert [r.records for r in out] == [["q1", "q2"], ["q3"]] and short == ["i1"]


def test_qa_per_image_keeps_k_different_records():
  """K of an image's QA pairs are K different pairs, in their listed order (drawn with
  replacement, a pair came twice and the image trained on fewer questions)."""
  image = Row("i", "s", 0, 1, [f"q{k}" for k in range(6)])
  for seed in range(5):
    (kept,), _ = select.per_image([image], 5, seed=seed)
    assert len(set(kept.records)) == 5 and kept.records == sorted(kept.records)


def test_the_table_of_a_random_selection_has_no_target_and_orders_levels_as_numbers():
  """counts.md: a random selection has no target per cell, so none per row or in all ("-", not
  a sum of nothing to 0); 11 levels are columns 0, 1, 2, ..., 10, not 0, 1, 10, 2, ..."""
  cell = {"selected": 1, "target": None, "available": 2}
  table = select.markdown({"s": {str(lv): cell for lv in range(11)}}, "t").splitlines()
  assert table[4] == "| source | " + " | ".join(f"level {lv}" for lv in range(11)) + " | total |"
  assert table[6].endswith("| 11 / - (22) |") and table[7].endswith("| 11 / - (22) |")


def test_the_command_line_defaults_and_what_it_writes_for_images_without_records(tmp_path):
  """No --seed is seed 0 (the same ids as --seed 0); no --qa_per_image keeps "all"; an image
  scored without `records` is written as id, source, complexity only (no `records: null`)."""
  lines = [{"id": f"i{k}", "source": "s", "clarity": 1, "complexity": k % 4} for k in range(40)]
  scores = tmp_path / "scores.jsonl"
  scores.write_text("".join(json.dumps(x) + "\n" for x in lines))

  def run(name, *flags):
    summary = select.main(["--scores", str(scores), "--ratio", "random", "--size", "5",
                           "--out", str(tmp_path / name), *flags])
    return summary, (tmp_path / name / "selected.jsonl").read_text().splitlines()
  summary, default = run("default")
  assert run("seed0", "--seed", "0")[1] == default and run("seed1", "--seed", "1")[1] != default
  assert summary["seed"] == 0 and summary["qa_per_image"] == "all"
  assert sorted(json.loads(default[0])) == ["complexity", "id", "source"]

# ---------------------------------------------------------------------------------------------
# eval.engine_dynamic: DynaMath's scores

def _problem(seed, variant, version="text_dominant"):
  """A free-form engine problem whose answer is 4 (a response "4" is right, "5" wrong)."""
  return Problem(pid=f"{seed}#v{variant}:{version}", question="q", answer="4", choices=[],
                 images=[], query="q", meta={"seed": seed, "variant": variant,
                                             "version": version, "group": f"{seed}#v{variant}"},
                 raw={})


def test_average_is_over_every_answered_variant_and_robustness_over_exact_scores():
  """Seed A answered in 3 variants (right, right, wrong), B and C in 1 each (right; as when
  their other variants went unanswered). DynaMath: average = 4 / 5 = 80.0 (not the mean of the
  seeds' accuracies, 88.89); worst case = seeds right in all their variants = 2 / 3 = 66.67;
  robustness = (2/3) / (4/5) = 0.8333 (0.8334 from the rounded scores 66.67 / 80.0)."""
  problems = [_problem("A", k) for k in range(3)] + [_problem("B", 0), _problem("C", 0)]
  responses = {"A#v0:text_dominant": "4", "A#v1:text_dominant": "4",
               "A#v2:text_dominant": "5", "B#v0:text_dominant": "4", "C#v0:text_dominant": "4"}
  d = engine_dynamic.evaluate(problems, responses)["dynamic"]
  assert d == {"average": 80.0, "worst_case": 66.67, "robustness": 0.8333, "seeds": 3,
               "variants_per_seed": [1, 3]}


def test_missing_and_the_accuracy_count_only_the_kept_variants_that_have_a_response():
  """Seed A in variants 0..2, two versions each; responses to text dominant v0 and v1 only, and
  variants=2 keeps v0 and v1: 4 problems kept, 2 answered (both right), so "all" is 2 of 2,
  missing is 2 (the vision-dominant ones; variant 2 is not asked for), and only the text-dominant
  version is scored."""
  problems = [_problem("A", k, v) for k in range(3) for v in ("text_dominant", "vision_dominant")]
  responses = {"A#v0:text_dominant": "4", "A#v1:text_dominant": "4"}
  out = engine_dynamic.evaluate(problems, responses, variants=2)
  assert out["missing"] == 2
  assert out["all"] == {"correct": 2, "total": 2, "accuracy": 100.0}
  assert list(out["version"]) == ["text_dominant"]


def test_no_scored_problem_gives_zero_scores():
  assert engine_dynamic.dynamic([], {}) == {"average": 0.0, "worst_case": 0.0, "robustness": 0.0,
                                            "seeds": 0, "variants_per_seed": [0, 0]}


# ---------------------------------------------------------------------------------------------
# eval.consistency

def test_pairwise_agreement_is_pooled_over_all_pairs():
  """Group g: 4, 4, 5 (3 pairs, 1 agreeing); group h: 4, 4 (1 pair, agreeing). Pooled over the
  4 pairs: 2 / 4 = 50.0 (the mean of the groups' shares would be (1/3 + 1) / 2 = 66.67)."""
  items = [("g", "4", True), ("g", "4", True), ("g", "5", False), ("h", "4", True),
           ("h", "4", True)]
  out = consistency.agreement(items)
  assert (out["pairwise"], out["agreement"], out["groups"]) == (50.0, 50.0, 2)


# ---------------------------------------------------------------------------------------------
# data_prep.mathv360k's command line

@pytest.fixture
def mathv360k_inputs(tmp_path, monkeypatch):
  """A MathV360K folder (its JSON list and image folder), another JSON and image folder, and the
  builder's run replaced by one that returns what it was given."""
  from data_prep import common, mathv360k
  for folder in ("src/data_images", "other_images"):
    (tmp_path / folder).mkdir(parents=True)
  for name in ("src/train_samples_all_tuning.json", "other.json"):
    (tmp_path / name).write_text("[]")
  monkeypatch.setattr(common, "run_main", lambda spec, args, items, options, sources: (
      sources, options["images"]))
  return tmp_path, mathv360k.main


def test_json_and_images_given_win_over_the_src_folder(mathv360k_inputs):
  tmp, main = mathv360k_inputs
  src = ["--src", str(tmp / "src"), "--out", str(tmp / "out")]
  assert main(src) == ([str(tmp / "src/train_samples_all_tuning.json")],
                       str(tmp / "src/data_images"))
  assert main(src + ["--json", str(tmp / "other.json")])[0] == [str(tmp / "other.json")]
  assert main(src + ["--images", str(tmp / "other_images")])[1] == str(tmp / "other_images")


def test_json_without_images_or_a_missing_image_folder_is_named(mathv360k_inputs, capsys):
  tmp, main = mathv360k_inputs
  with pytest.raises(SystemExit):
    main(["--json", str(tmp / "other.json"), "--out", str(tmp / "out")])
  assert "give --src DIR, or both --json FILE and --images DIR" in capsys.readouterr().err
  with pytest.raises(SystemExit, match="nowhere does not exist"):
    main(["--json", str(tmp / "other.json"), "--images", str(tmp / "nowhere"), "--out",
          str(tmp / "out")])


@pytest.mark.parametrize("a, b, agree", [
    ("2x", "2X", False),              # two variables: the same text only up to case
    ("triangle\n", "triangle", True),  # a trailing newline is no other answer
])
def test_answers_agree_as_text_exactly_but_for_surrounding_space(a, b, agree):
  out = consistency.agreement([("g", a, True), ("g", b, True)])
  assert out["agreement"] == (100.0 if agree else 0.0)


# ---------------------------------------------------------------------------------------------
# data.subset

def test_a_selection_line_with_null_records_stands_for_its_id(tmp_path):
  """`"records": null` is a line without records (an image scored without them): its id is the
  record, as for a line that leaves `records` out."""
  from mathvlm.data import subset
  path = tmp_path / "selected.jsonl"
  path.write_text('{"id": "r1", "records": null}\n{"id": "img2", "records": ["r2", 3]}\n')
  assert subset.read_ids(str(path)) == frozenset({"r1", "r2", "3"})


def test_a_selection_that_keeps_no_record_is_named(tmp_path):
  from mathvlm.data import subset
  path = tmp_path / "selected.jsonl"
  path.write_text('{"id": "img1", "records": []}\n\n')
  with pytest.raises(ValueError, match="selected.jsonl: the selection is empty"):
    subset.read_ids(str(path))


def test_the_ids_no_dataset_holds_are_named_in_order():
  """The run's warning names the first few: sorted, so the same ids on every run."""
  import types

  from mathvlm.data import subset
  ids = frozenset(f"id{k:02d}" for k in range(12))
  held = [types.SimpleNamespace(found={"id03"}), types.SimpleNamespace(found={"id07", "x"})]
  assert subset.not_found(ids, held) == sorted(ids - {"id03", "id07"})


def test_a_record_id_that_is_a_number_matches_the_selected_text():
  from mathvlm.data import subset
  sub = subset.Subset([{"id": 7}, {"id": "8"}, {"id": 9}], frozenset({"7", "8"}))
  assert [sub[i]["id"] for i in range(len(sub))] == [7, "8"] and sub.missing == 0
