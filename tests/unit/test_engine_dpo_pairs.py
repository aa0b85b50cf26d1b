"""DPO pairs: wrong answers become (chosen = annotated rationale, rejected = response) pairs."""

import json

from data_prep.engine import dpo_pairs as PR
from data_prep.engine import writer
from mathvlm.eval.answers import final_answer


def _recs():
  opts = writer.Options(seed=4, mc=0.5, degrade=0.0)
  return [writer.make_problem(opts, i)[0]["record"] for i in range(12)]


def test_final_answer_extraction():
  assert final_answer("Step 1: x.\nThe answer is 8*sqrt(3)/3 (≈ 4.62).") == "8*sqrt(3)/3"
  assert final_answer("so the answer is: B.") == "B"
  assert final_answer("I think 12") == "I think 12"


def test_pairs_only_for_wrong_answers(tmp_path):
  recs = _recs()
  resp = []
  for k, r in enumerate(recs):
    if k % 2:
      resp.append({"id": r["id"], "response": r["text_en"]["CoT_reasoning"]})   # correct
    else:
      resp.append({"id": r["id"], "response": " Guessing. The answer is 123456. "})  # wrong,
      # as decoded: the first token's space in front, a space token before the end
  resp.append({"id": "nope", "response": "x"})
  resp.append({"id": recs[0]["id"], "response": " \n", "version": "text_lite"})  # stopped at once
  out, stats = PR.pairs(recs, resp)
  assert stats == {"responses": 14, "correct": 6, "unknown_id": 1, "duplicate": 0, "empty": 1,
                   "pairs": 6}
  for p, r in zip(out, recs[::2]):
    assert p["chosen"] == r["text_en"]["CoT_reasoning"]
    assert p["rejected"] == "Guessing. The answer is 123456."   # no form to tell it by
    assert p["prompt"] == "<image>\n" + r["text_en"]["vision_dominant_question"]
    assert p["image"] == r["image_vision_dominant"]
  pj, rj, oj = tmp_path / "p.json", tmp_path / "r.jsonl", tmp_path / "o.jsonl"
  pj.write_text(json.dumps(recs))
  rj.write_text("\n".join(json.dumps(x) for x in resp))
  PR.main(["--problems", str(pj), "--responses", str(rj), "--out", str(oj)])
  assert len(oj.read_text().splitlines()) == 6


def test_multiple_choice_letter_and_numeric_equivalence():
  r = next(x for x in _recs() if x["choices"])
  right = "ABCDEFGH"[r["answer_index"]]
  wrong = "ABCDEFGH"[(r["answer_index"] + 1) % len(r["choices"])]
  assert PR.is_correct(r, f"The answer is {right}.")
  assert not PR.is_correct(r, f"The answer is {wrong}.")
  f = {"answer": "8*sqrt(3)/3", "choices": [], "answer_index": None}
  assert PR.is_correct(f, "The answer is 4.62")
  assert not PR.is_correct(f, "The answer is 4.7")


def test_a_bad_response_or_line_is_named(tmp_path):
  """A line that is not JSON named by file and line (it was a bare JSONDecodeError), a response
  without a string "response" or with an unknown version named by its place (they were a
  KeyError deep in the pairing, or a response read as None)."""
  import pytest
  recs = _recs()
  rj = tmp_path / "r.jsonl"
  rj.write_text(json.dumps({"id": recs[0]["id"], "response": "A"}) + "\n\nnot json\n")
  with pytest.raises(ValueError, match=f"{rj}:3: neither JSON nor JSON lines"):
    PR.main(["--problems", str(rj), "--responses", str(rj), "--out", str(tmp_path / "o")])
  with pytest.raises(ValueError, match='response 1 .*string "response"'):
    PR.pairs(recs, [{"id": recs[0]["id"], "response": "A"}, {"id": recs[1]["id"]}])
  with pytest.raises(ValueError, match="response 0 .*version 'vision'"):
    PR.pairs(recs, [{"id": recs[0]["id"], "response": "A", "version": "vision"}])
