"""--variants K: for each seed problem, K variants from the same figure program with new numbers
and new letters, each carrying `variant_of` and `variant` (the contract issue 17 scores on)."""

import collections
import json
import re

from data_prep.engine import __main__ as cli


def test_variants_share_the_program_and_change_values(tmp_path):
  cli.main(["--n", "6", "--variants", "3", "--out", str(tmp_path), "--seed", "8",
            "--degrade", "0"])
  recs = json.load(open(tmp_path / "instruct.json"))
  assert len(recs) == 18
  groups = collections.defaultdict(list)
  for r in recs:
    groups[r["variant_of"]].append(r)
    assert r["id"] == f"{r['variant_of']}_v{r['variant']}"
  assert len(groups) == 6
  for seed_id, vs in groups.items():
    assert [v["variant"] for v in vs] == [0, 1, 2]
    same = lambda key: len({json.dumps(v[key]) for v in vs}) == 1  # noqa: E731
    assert same("domain") and same("family") and same("question_type") and same("steps")
    assert len({v["answer"] for v in vs}) >= 2 or len({v["text_en"]["text_dominant_question"]
                                                       for v in vs}) == 3
    letters = [frozenset("".join(re.findall(r"\b[A-Z]{2,5}\b|\b[A-Z](?=\()",
                                            v["text_en"]["caption"]))) for v in vs]
    if vs[0]["domain"] != "function":  # graphs are named by their points' letters A, B, P
      assert len(set(letters)) >= 2, seed_id
    questions = [re.sub(r"[A-Z]|-?\d*π?(/\d+)?|√", "", v["text_en"]["text_lite_question"]
                        .split("\nChoices")[0]) for v in vs]
    assert len(set(questions)) == 1, questions   # the same question, other letters and numbers
  meta = json.load(open(tmp_path / "meta.json"))
  assert meta["variants"] == 3 and meta["n"] == 18


def test_without_variants_ids_are_unchanged(tmp_path):
  cli.main(["--n", "3", "--out", str(tmp_path), "--seed", "8", "--degrade", "0"])
  recs = json.load(open(tmp_path / "instruct.json"))
  assert [r["id"] for r in recs] == [f"{d}_all_8_{i:07d}" for i, d in
                                     enumerate(["plane", "analytic", "function"])]
  assert all(r["variant_of"] == r["id"] and r["variant"] == 0 for r in recs)
