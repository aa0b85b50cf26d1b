"""data_prep.engine_qa on real engine records: each figure's questions are its three versions of
every phrasing the engine wrote, the engine's own questions among them verbatim, each with its
version's image and the exact answer; labels become a scores file data_prep.select reads; a record
whose text does not decompose keeps only its own questions and is reported."""

import json

import pytest

from data_prep import engine_qa, select


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  from data_prep.engine.writer import Options, generate
  out = tmp_path_factory.mktemp("engine")
  generate(str(out), 9, Options(seed=5, split="train", degrade=0.3))
  return json.load(open(out / "instruct.json"))


def test_every_version_of_every_phrasing_with_the_exact_answer(records):
  qa, scores, report = engine_qa.convert(records, 0, "instruct.json")
  assert report["unparsed"]["count"] == 0 and report["figures"] == 9
  by_id = {q["id"]: q for q in qa}
  for rec, line in zip(records, scores):
    assert line["id"] == rec["id"] and line["source"] == rec["domain"]
    assert (line["clarity"], line["complexity"]) == (rec["clarity"], rec["complexity"])
    mine = [by_id[i] for i in line["records"]]
    phrasings = 1 + len(rec["rephrasings"])
    assert len(mine) == 3 * phrasings >= 6  # the engine rephrases each ask 1-3 times
    answer = rec["choices"][rec["answer_index"]] if rec["choices"] else rec["answer"]
    texts = {}
    for q in mine:
      version = q["id"].split("/")[1]
      assert q["image"] == rec[f"image_{version}"]
      human, gpt = q["conversations"]
      assert human["value"].startswith("<image>\n") and gpt["value"] == f"The answer is {answer}."
      texts.setdefault(version, []).append(human["value"][len("<image>\n"):])
    for version, qs in texts.items():
      assert qs[0] == rec["text_en"][f"{version}_question"]  # phrasing 0: the engine's own
      assert len(set(qs)) == phrasings                        # all different
      tail = "".join(f"\n{chr(65 + k)}: {c}" for k, c in enumerate(rec["choices"]))
      assert all(q.endswith("\nChoices:" + tail) for q in qs) if tail else True
    assert texts["text_dominant"][1:] == rec["rephrasings"]    # the engine's rephrasings


def test_first_phrasing_only_and_scores_for_select(records, tmp_path):
  qa, scores, _ = engine_qa.convert(records, 1, "instruct.json")
  assert len(qa) == 27 and all(len(s["records"]) == 3 for s in scores)
  path = tmp_path / "scores.jsonl"
  path.write_text("".join(json.dumps(s) + "\n" for s in scores))
  rows = select.read_scores(str(path), 4)
  assert [r.id for r in rows] == [r["id"] for r in records]


def test_undecomposable_record_keeps_its_own_questions_and_is_reported(records):
  bad = json.loads(json.dumps(records[0]))
  bad["text_en"]["vision_dominant_question"] = "Look: " + bad["text_en"][
      "vision_dominant_question"]
  qa, scores, report = engine_qa.convert([bad, records[1]], 0, "x.json")
  assert report["unparsed"] == {"count": 1, "ids": [bad["id"]]}
  own = [q["conversations"][0]["value"][len("<image>\n"):] for q in qa
         if q["id"].startswith(bad["id"] + "/")]
  t = bad["text_en"]
  assert own == [t["text_dominant_question"], *bad["rephrasings"], t["text_lite_question"],
                 t["vision_dominant_question"]]
  with pytest.raises(SystemExit, match="record 0 has no"):
    engine_qa.convert([{"id": "x"}], 0, "x.json")


@pytest.mark.parametrize("text,args,message", [
  ("not json", [], "not JSON"),
  ('{"id": 1}', [], "a JSON dict, not the engine's list"),
  ("[1, 2]", [], "record 0 is a JSON int, not an object"),
  ("[]", ["--phrasings", "-1"], "--phrasings -1: give 0 (all)"),
])
def test_a_bad_instruct_file_or_count_is_named(tmp_path, capsys, text, args, message):
  """Each was a traceback (JSONDecodeError, TypeError) or, for a negative count, a quiet slice
  that dropped every ask's last phrasing."""
  src = tmp_path / "instruct.json"
  src.write_text(text)
  with pytest.raises(SystemExit) as e:
    engine_qa.main(["--instruct", str(src), "--out", str(tmp_path / "out"), *args])
  assert message in str(e.value) + capsys.readouterr().err
