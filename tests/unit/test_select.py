"""data_prep.select on synthetic score files (several sources, a short level, clarity-0 rows):
exact per-source ratios within rounding, short cells taken whole and reported, no clarity-0 image,
the same ids for the same seed, `--ratio random`, and the bad-input errors. Then
mathvlm.data.subset on a real built dataset: exactly the selected records, in reading order."""

import json
import random

import numpy as np
import pytest
from PIL import Image

from data_prep import llava_json, select
from mathvlm.data import records
from mathvlm.data.subset import Subset, read_ids

RATIO = [2, 3, 4, 1]
# clear images per (source, level); level 3 of `geo` is short, `tiny` is short almost everywhere
SUPPLY = {"chart": [300, 300, 300, 300], "geo": [200, 200, 250, 3], "tiny": [1, 2, 30, 0]}


def _rows(supply=SUPPLY, blurred=25):
  rows = []
  for s, per_level in supply.items():
    for lv, n in enumerate(per_level):
      rows += [{"id": f"{s}-{lv}-{i}", "source": s, "clarity": 1, "complexity": lv,
                "records": [f"{s}-{lv}-{i}-q0", f"{s}-{lv}-{i}-q1"]} for i in range(n)]
    rows += [{"id": f"{s}-blur-{i}", "source": s, "clarity": 0, "complexity": i % 4}
             for i in range(blurred)]
  return rows


def _write(path, rows):
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return str(path)


def _run(tmp_path, rows, *args, name="sel"):
  scores = _write(tmp_path / f"{name}.jsonl", rows)
  out = tmp_path / name
  summary = select.main(["--scores", scores, "--out", str(out), *args])
  chosen = [json.loads(x) for x in open(out / "selected.jsonl")]
  return summary, chosen, json.load(open(out / "counts.json"))


def test_ratio_within_each_source_and_short_cells_taken_whole(tmp_path):
  size = 1000
  summary, chosen, counts = _run(tmp_path, _rows(), "--ratio", "2:3:4:1", "--size", str(size))
  clear = {s: sum(v) for s, v in SUPPLY.items()}
  assert not any("blur" in c["id"] for c in chosen) and summary["clarity_0_dropped"] == 75
  assert sum(c["target"] for by in counts.values() for c in by.values()) == size  # exact
  for s, by in counts.items():
    share = sum(c["target"] for c in by.values())
    assert abs(share - size * clear[s] / sum(clear.values())) < 1  # proportional to clear images
    for lv, c in by.items():
      assert abs(c["target"] - share * RATIO[int(lv)] / 10) < 1  # the ratio, within rounding
      assert c["available"] == SUPPLY[s][int(lv)]
      assert c["selected"] == min(c["target"], c["available"])  # short: whole, never refilled
      picked = [x for x in chosen if x["source"] == s and x["complexity"] == int(lv)]
      assert len(picked) == c["selected"]
  assert counts["geo"]["3"] == {"target": 34, "selected": 3, "available": 3}
  assert {(x["source"], x["level"]) for x in summary["short_cells"]} == {
      ("geo", 3), ("tiny", 0), ("tiny", 1), ("tiny", 3)}
  assert summary["selected"] == len(chosen) == size - summary["shortfall"]
  assert len({c["id"] for c in chosen}) == len(chosen)
  assert chosen[0]["records"] == [chosen[0]["id"] + "-q0", chosen[0]["id"] + "-q1"]
  table = open(tmp_path / "sel" / "counts.md").read()
  assert "| geo | " in table and "3 / 34 (3)" in table
  assert f"| {len(chosen)} / {size} (" in table.splitlines()[-1]


def test_rounding_units_go_where_supply_allows():
  assert select.allocate(10, [1, 1, 1]) == [4, 3, 3]
  assert select.allocate(10, [1, 1, 1], supply=[3, 9, 9]) == [3, 4, 3]  # the short part no +1
  assert select.allocate(7, [2, 3, 4, 1]) == [1, 2, 3, 1]
  assert sum(select.allocate(40000, [2, 3, 4, 1], supply=[10**6] * 4)) == 40000
  assert select.allocate(5, [0, 1, 0, 1]) == [0, 3, 0, 2]


@pytest.mark.parametrize("sources, size", [(24, 40000), (10, 10), (7, 1000)])
def test_the_totals_per_level_follow_the_ratio_across_sources(sources, size):
  """Each source rounded its own split, and the same remainders won in every source: 40,000
  images over 24 equal sources came out 7,992:12,000:16,000:4,008, 10 images over 10 sources
  0:0:10:0. Rounded together, every level gets the ratio's split of the whole selection, every
  source its share, and every cell its exact part rounded down or up."""
  pool = {f"S{s:02d}": {lv: range(3000 + s) for lv in range(4)} for s in range(sources)}
  plan = select.targets(pool, RATIO, size)
  assert [sum(t[lv] for t in plan.values()) for lv in range(4)] == select.allocate(size, RATIO)
  shares = select.allocate(size, [4 * (3000 + s) for s in range(sources)])
  for (s, t), share in zip(plan.items(), shares):
    assert sum(t) == share
    assert all(abs(n - share * w / 10) < 1 for n, w in zip(t, RATIO)), (s, t, share)


def test_a_unit_no_fractional_cell_can_take_goes_to_a_level_that_needs_one():
  """Level totals `allocate` does not make (one more unit for level 0, whose cell is exact):
  rows still sum to their shares, and the unit goes where a level still needs one."""
  plan = select.round_jointly(np.array([2]), np.array([2, 1, 1]), np.array([2, 0, 0]),
                              np.full((1, 3), 9))
  assert plan.tolist() == [[2, 0, 0]]


def test_same_seed_same_ids_in_any_input_order(tmp_path):
  rows = _rows()
  _, a, _ = _run(tmp_path, rows, "--ratio", "2:3:4:1", "--size", "500", "--seed", "7", name="a")
  random.Random(0).shuffle(rows)
  _, b, _ = _run(tmp_path, rows, "--ratio", "2:3:4:1", "--size", "500", "--seed", "7", name="b")
  _, c, _ = _run(tmp_path, rows, "--ratio", "2:3:4:1", "--size", "500", "--seed", "8", name="c")
  assert [x["id"] for x in a] == [x["id"] for x in b]
  assert {x["id"] for x in a} != {x["id"] for x in c}
  assert len(a) == len(c)


def test_random_ratio_draws_uniformly_from_clear_images(tmp_path):
  summary, chosen, counts = _run(tmp_path, _rows(), "--ratio", "random", "--size", "900",
                                 "--seed", "1")
  assert len(chosen) == 900 and summary["shortfall"] == 0
  assert not any("blur" in c["id"] for c in chosen)
  assert all(c["target"] is None for by in counts.values() for c in by.values())
  assert sum(c["selected"] for by in counts.values() for c in by.values()) == 900
  # uniform: chart holds 1200 of 1886 clear images
  assert abs(sum(c["source"] == "chart" for c in chosen) / 900 - 1200 / 1886) < 0.06
  _, again, _ = _run(tmp_path, _rows(), "--ratio", "random", "--size", "900", "--seed", "1",
                     name="again")
  assert [x["id"] for x in again] == [x["id"] for x in chosen]


@pytest.mark.parametrize("edit,args,message", [
    (lambda r: r[5].pop("complexity"), [], r"line 6: no `complexity` field"),
    (lambda r: r[3].update(complexity=4), [], r"line 4: unknown complexity level 4"),
    (lambda r: r[3].update(complexity="2"), [], r"line 4: unknown complexity level '2'"),
    (lambda r: r[2].update(clarity=0.5), [], r"line 3: clarity 0.5"),
    (lambda r: r[7].update(id=r[1]["id"]), [], r"line 8: id 'chart-0-1' already on line 2"),
    (None, ["--ratio", "2:3:4"], r"--ratio '2:3:4' has 3 parts, but there are 4"),
    (None, ["--ratio", "2:x:4:1"], r"--ratio '2:x:4:1': expected 4 integers"),
    (None, ["--ratio", "0:0:0:0"], r"not all 0"),
    (None, ["--size", "1887"], r"--size 1887: must be between 1 and the 1886 clear images"),
    (None, ["--seed", "-1"], r"--seed -1: 0 or more"),
])
def test_bad_input_names_the_line_or_argument(tmp_path, edit, args, message):
  rows = _rows()
  if edit:
    edit(rows)
  opts = dict(zip(args[::2], args[1::2]))
  argv = ["--ratio", opts.get("--ratio", "2:3:4:1"), "--size", opts.get("--size", "100"),
          "--seed", opts.get("--seed", "0")]
  with pytest.raises(SystemExit, match=message):
    _run(tmp_path, rows, *argv)


def test_a_ratio_whose_levels_hold_no_clear_image_is_an_error(tmp_path):
  """Level 3 only, on a pool whose level-3 images are all blurred: nothing was selected, and the
  summary said 0 short in 0 cells. One clear level-3 image is selected, the rest reported."""
  rows = _rows({"chart": [5, 5, 5, 0], "geo": [5, 0, 5, 0]}, blurred=8)
  with pytest.raises(SystemExit, match=r"takes levels \[3\], which hold none of the clear "
                     r"images \(clear images by level: \[10, 5, 10, 0\]\)"):
    _run(tmp_path, rows, "--ratio", "0:0:0:1", "--size", "4")
  rows.append({"id": "geo-3-0", "source": "geo", "clarity": 1, "complexity": 3})
  summary, chosen, _ = _run(tmp_path, rows, "--ratio", "0:0:0:1", "--size", "4", name="one")
  assert [c["id"] for c in chosen] == ["geo-3-0"] and summary["shortfall"] == 3


def test_malformed_line(tmp_path):
  path = tmp_path / "s.jsonl"
  path.write_text(json.dumps(_rows()[0]) + "\n{not json\n")
  with pytest.raises(SystemExit, match=r"s.jsonl line 2: not JSON"):
    select.main(["--scores", str(path), "--ratio", "2:3:4:1", "--size", "1", "--out",
                 str(tmp_path / "o")])


# ---------------------------------------------------------------------------------------------
# The subset a selection makes of a built dataset.

def _dataset(tmp_path, n=12):
  """A real llava_json dataset: records r0..r{n-1}, image k shown by records 2k and 2k+1."""
  recs = []
  for i in range(n):
    name = f"img{i // 2}.png"
    if not (tmp_path / name).exists():
      Image.new("RGB", (6, 6), (20 * i, 0, 0)).save(tmp_path / name)
    recs.append({"id": f"r{i}", "image": name, "conversations": [
        {"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": str(i)}]})
  (tmp_path / "d.json").write_text(json.dumps(recs))
  llava_json.main(["--json", str(tmp_path / "d.json"), "--images", str(tmp_path), "--out",
                   str(tmp_path / "data"), "--no_progress"])
  return records.read(str(tmp_path / "data"), "llava_json")


def test_subset_keeps_exactly_the_selected_records_in_order(tmp_path):
  ds = _dataset(tmp_path)
  lines = [{"id": "img4.png", "source": "x", "complexity": 1, "records": ["r9", "r8"]},
           {"id": "img1.png", "source": "x", "complexity": 0, "records": ["r2", "r3"]},
           {"id": "r5", "source": "x", "complexity": 2},  # no `records`: the id is the record
           {"id": "img9.png", "source": "x", "complexity": 2, "records": ["r99"]}]
  sel = _write(tmp_path / "selected.jsonl", lines)
  ids = read_ids(sel)
  assert ids == {"r9", "r8", "r2", "r3", "r5", "r99"}
  sub = Subset(ds, ids)
  assert [sub[i]["id"] for i in range(len(sub))] == ["r2", "r3", "r5", "r8", "r9"]
  assert sub.missing == 1
  assert json.loads(sub[3]["conversations"])[1]["value"] == "8"
  assert sub[0]["image"] == ds[2]["image"]
  assert list(sub.take(np.arange(12) * 10)) == [20, 30, 50, 80, 90]
  with pytest.raises(ValueError, match="none of the 1 ids"):
    Subset(ds, frozenset({"elsewhere"}))


def test_subset_of_a_selection_made_by_select(tmp_path):
  ds = _dataset(tmp_path, n=40)
  rows = [{"id": f"img{k}.png", "source": "s", "clarity": int(k % 5 != 0), "complexity": k % 4,
           "records": [f"r{2 * k}", f"r{2 * k + 1}"]} for k in range(20)]
  _, chosen, _ = _run(tmp_path, rows, "--ratio", "1:1:1:1", "--size", "8")
  sub = Subset(ds, read_ids(str(tmp_path / "sel" / "selected.jsonl")))
  want = sorted((r for c in chosen for r in c["records"]), key=lambda r: int(r[1:]))
  assert [sub[i]["id"] for i in range(len(sub))] == want and len(want) == 16
  assert sub.missing == 0


def test_a_dataset_that_repeats_an_id_on_two_images_scores_two_image_ids(tmp_path):
  """The scorer named a built dataset's image by its first record's id, so a source that repeats
  an id on two images (the builders keep both) gave two score lines one id, and select refused
  them ("score each image once")."""
  from data_prep import score
  recs = []
  for rid, img, colour in [("1", "a", "red"), ("2", "a", "red"), ("1", "b", "blue"),
                           ("1", "c", "green")]:
    Image.new("RGB", (6, 6), colour).save(tmp_path / f"{img}.png")
    recs.append({"id": rid, "image": f"{img}.png", "source": "s", "conversations": [
        {"from": "human", "value": f"<image>\nQ{rid}{img}?"}, {"from": "gpt", "value": "4"}]})
  (tmp_path / "d.json").write_text(json.dumps(recs))
  llava_json.main(["--json", str(tmp_path / "d.json"), "--images", str(tmp_path), "--out",
                   str(tmp_path / "data"), "--no_progress"])
  items, _ = score.items_from_dataset(str(tmp_path / "data" / "llava_json"), progress=False)
  assert [it.records for it in items] == [["1", "2"], ["1"], ["1"]]
  assert items[0].id == "1" and len({it.id for it in items}) == 3
  rows = [{"id": it.id, "source": it.source, "clarity": 1, "complexity": 0, "records": it.records}
          for it in items]
  summary, chosen, _ = _run(tmp_path, rows, "--ratio", "1:0:0:0", "--size", "3")
  assert summary["selected"] == 3 and sorted(c["id"] for c in chosen) == sorted(
      it.id for it in items)


def test_read_ids_names_a_bad_line(tmp_path):
  path = tmp_path / "bad.jsonl"
  path.write_text('{"id": "a"}\n{"source": "x"}\n')
  with pytest.raises(ValueError, match=r"bad.jsonl line 2: expected a JSON object with `id`"):
    read_ids(str(path))


def test_qa_per_image_keeps_k_records_of_each_image(tmp_path):
  """--qa_per_image K: the same images as without it, each with K of its own records (drawn by
  the seed, listed order kept); an image with fewer keeps all and is reported; none is refilled."""
  rows = _rows()
  for r in rows:
    if r["clarity"] == 1:
      r["records"] = [f"{r['id']}-q{k}" for k in range(3 if r["id"].startswith("tiny") else 6)]
  base, full, _ = _run(tmp_path, rows, "--ratio", "2:3:4:1", "--size", "500", name="all")
  summary, cut, _ = _run(tmp_path, rows, "--ratio", "2:3:4:1", "--size", "500",
                         "--qa_per_image", "4", name="k4")
  assert [c["id"] for c in cut] == [c["id"] for c in full]  # the images do not change
  few = [c["id"] for c in cut if c["id"].startswith("tiny")]
  assert few and summary["images_with_fewer_records"] == {"count": len(few), "ids": few}
  for c, f in zip(cut, full):
    want = 3 if c["id"].startswith("tiny") else 4
    assert len(c["records"]) == want and set(c["records"]) <= set(f["records"])
    assert c["records"] == sorted(c["records"], key=f["records"].index)
  assert summary["records"] == sum(len(c["records"]) for c in cut)
  positions = {tuple(f["records"].index(x) for x in c["records"]) for c, f in zip(cut, full)
               if not c["id"].startswith("tiny")}
  assert len(positions) > 1  # drawn per image, not always the same k
  _, again, _ = _run(tmp_path, rows, "--ratio", "2:3:4:1", "--size", "500",
                     "--qa_per_image", "4", name="k4b")
  assert again == cut
  bare = [dict(r, records=None) for r in rows]
  with pytest.raises(SystemExit, match="has no `records`"):
    _run(tmp_path, bare, "--ratio", "random", "--size", "10", "--qa_per_image", "2", name="bare")


def test_a_level_of_ratio_zero_gets_no_image_even_when_the_others_are_short():
  """Level 2 is short (2 of a target of 3) and level 3 empty: the rounding unit once went to
  level 0, which the ratio 0:3:4:1 excludes, and level 0's images counted towards the source's
  share."""
  assert select.allocate(7, [0, 3, 4, 1], supply=[10, 10, 2, 0]) == [0, 3, 3, 1]
  rows = [select.Row(f"L{lv}_{i}", "A", lv, 1, None)
          for lv, n in {0: 10, 1: 10, 2: 2, 3: 0}.items() for i in range(n)]
  rows += [select.Row(f"B{i}", "B", 1, 1, None) for i in range(12)]
  chosen, counts = select.select(rows, [0, 3, 4, 1], size=14, seed=0)
  assert not [r.id for r in chosen if r.complexity == 0]
  assert counts["A"]["0"]["target"] == 0
  # the unit level 0 does not take is a named shortfall of the short levels, not refilled
  assert [(c["source"], c["level"], c["short"]) for c in select.shortfalls(counts)
          if c["source"] == "A"] == [("A", 2, 1), ("A", 3, 1)]
  # shares by the images the ratio can take: A has 12, B 12 -> 7 each
  assert sum(c["target"] for c in counts["A"].values()) == 7


def test_selected_ids_no_dataset_holds_are_named(tmp_path, caplog):
  """A selection made on another build trains on the ids it shares with this one; the others
  were counted (`Subset.missing`) and never reported."""
  from mathvlm import objectives
  from mathvlm.data import sources
  from mathvlm.demo.data import train_tokenizer
  from mathvlm.models import registry
  from train_utils import tiny_config
  _dataset(tmp_path)
  train_tokenizer(["What is r1?"] * 10, 300).save(str(tmp_path / "tokenizer.json"))
  sel = _write(tmp_path / "selected.jsonl", [{"id": "r1"}, {"id": "r2"}, {"id": "gone"}])
  data = tiny_config("lm", data__name="llava_json", data__path=str(tmp_path / "data"),
                     data__subset=sel, data__tokenizer=str(tmp_path / "tokenizer.json")).data
  model = registry.get("llava").preset("tiny")
  with caplog.at_level("WARNING", logger="mathvlm.data"):
    source = sources.make_source(data, objectives.get("lm"), model, seed=0)
  assert len(source) == 2
  assert ("data.subset=" + sel + ": 1 of its 3 ids are in none of the datasets ['llava_json'], "
          "e.g. ['gone']") in caplog.text


def test_a_subset_of_a_dataset_that_repeats_ids_counts_the_repeats(tmp_path):
  """Two source records with one id: the selection keeps both (it cannot tell them apart) and
  says how many kept records repeat an id, instead of training on them without a word."""
  ds = _dataset(tmp_path)
  twice = [dict(ds[i], id="r1") if i == 4 else ds[i] for i in range(len(ds))]
  sub = Subset(twice, frozenset({"r1", "r2"}))
  assert [sub[i]["id"] for i in range(len(sub))] == ["r1", "r2", "r1"]
  assert sub.repeated == 1 and sub.missing == 0
  assert Subset(ds, frozenset({"r1", "r2"})).repeated == 0


def test_a_run_on_a_subset_names_the_records_that_repeat_an_id(tmp_path, caplog):
  from mathvlm import objectives
  from mathvlm.data import sources
  from mathvlm.demo.data import train_tokenizer
  from mathvlm.models import registry
  from train_utils import tiny_config
  Image.new("RGB", (6, 6)).save(tmp_path / "a.png")
  recs = [{"id": rid, "image": "a.png", "conversations": [
      {"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": str(i)}]}
      for i, rid in enumerate(["r0", "r1", "r1", "r2"])]
  (tmp_path / "d.json").write_text(json.dumps(recs))
  llava_json.main(["--json", str(tmp_path / "d.json"), "--images", str(tmp_path), "--out",
                   str(tmp_path / "data"), "--no_progress"])
  train_tokenizer(["What is r1?"] * 10, 300).save(str(tmp_path / "tokenizer.json"))
  sel = _write(tmp_path / "selected.jsonl", [{"id": "r1"}, {"id": "r2"}])
  data = tiny_config("lm", data__name="llava_json", data__path=str(tmp_path / "data"),
                     data__subset=sel, data__tokenizer=str(tmp_path / "tokenizer.json")).data
  with caplog.at_level("WARNING", logger="mathvlm.data"):
    source = sources.make_source(data, objectives.get("lm"), registry.get("llava").preset("tiny"),
                                 seed=0)
  assert len(source) == 3
  assert ("1 of the 3 records it keeps in llava_json share their id with another kept record"
          in caplog.text)
