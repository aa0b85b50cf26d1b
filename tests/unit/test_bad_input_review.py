"""Bad input to the benchmark loaders, the scorer, eval.run's images and the training pipeline's
conversations: each gets an error naming the file, record and field, or is counted; none
crashes with a bare traceback or changes a score silently."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from mathvlm.data import conversations, templates
from mathvlm.eval import math_v, mathverse, mathvista, report, run, score
from mathvlm.eval.common import Problem

MATH_V = {"id": "1", "question": "How many?", "options": [], "answer": "6", "level": 1,
          "subject": "counting"}


def _write(path, text):
  path.write_text(text, encoding="utf-8")
  return str(path)


def _jsonl(path, rows):
  return _write(path, "".join(json.dumps(r) + "\n" for r in rows))


def test_a_one_line_jsonl_response_file_is_one_record(tmp_path):
  """A JSON-lines file of one response parses as a JSON object: it is that record, not a map of
  its field names to records (before: a bare 'dictionary update sequence' ValueError)."""
  problems = math_v.load(_jsonl(tmp_path / "test.jsonl", [MATH_V]))
  rows = score.read_records(_jsonl(tmp_path / "out.jsonl",
                                   [{"id": "1", "response": "The answer is 6"}]))
  assert rows == [{"id": "1", "response": "The answer is 6"}]
  assert score.score_responses("math_v", problems, rows)[0]["all"]["correct"] == 1


@pytest.mark.parametrize("text,named", [
    ('{"id": "1", "response": "6"}\n"the id is 2"\n', "line 2 is a JSON str"),
    ('{"1": "The answer is 6"}', "key '1' is a JSON str"),
    ('[{"id": "1", "response": "6"}, ["1", "6"]]', "item 1 is a JSON list"),
    ("", "no records"),
])
def test_a_response_that_is_not_an_object_is_named(tmp_path, text, named):
  path = _write(tmp_path / "out.jsonl", text)
  with pytest.raises(ValueError, match=named) as e:
    score.read_records(path)
  assert path in str(e.value)


def test_repeated_problem_ids_in_annotations_are_an_error(tmp_path):
  """Scoring keys problems by id: a repeated id kept the last record's answer and breakdowns
  and scored one problem where the file holds two."""
  path = _jsonl(tmp_path / "test.jsonl", [MATH_V, dict(MATH_V, answer="7", subject="logic")])
  with pytest.raises(ValueError, match=r"1 problem ids appear more than once.*'1'") as e:
    score.load_problems("math_v", path)
  assert path in str(e.value)


def _mathvista(tmp_path, rows):
  return _write(tmp_path / "testmini.json", json.dumps({r["pid"]: r for r in rows}))


MV = {"pid": "1", "question": "Is it?", "question_type": "multi_choice", "answer_type": "text",
      "answer": "no", "choices": ["yes", "no"], "query": "Is it?"}


def test_a_mathvista_response_without_text_is_scored_wrong(tmp_path):
  """An empty extraction normalises to the closest (shortest) choice: a record with no text
  was scored right whenever the answer is the shortest option."""
  problems = mathvista.load(_mathvista(tmp_path, [MV, dict(MV, pid="2", answer="yes")]))
  records = [{"pid": "1", "response": None}, {"pid": "2", "response": "The answer is (A) yes"}]
  scores, outputs = score.score_responses("mathvista", problems, records)
  assert scores["all"]["correct"] == 1 and scores["without_text"] == 1
  assert outputs[0]["true_false"] is False


@pytest.mark.parametrize("blank", ["", "  \n"])
def test_an_empty_response_is_scored_as_the_official_scorer_does_and_counted(tmp_path, blank):
  """The official MathVista pipeline extracts "" from an empty response and normalises it to the
  nearest choice (FACTS.md), here "no", the answer: scored right as there, but counted, so a
  model that says nothing is seen; a record with no text field at all stays wrong."""
  problems = mathvista.load(_mathvista(tmp_path, [MV, dict(MV, pid="2", answer="yes")]))
  records = [{"pid": "1", "response": blank}, {"pid": "2", "response": "The answer is (A) yes"}]
  scores, outputs = score.score_responses("mathvista", problems, records)
  assert scores["all"]["correct"] == 2 and outputs[0]["true_false"] is True
  assert scores["empty_responses"] == 1 and scores["without_text"] == 0
  assert "1 responses are empty or blank" in report.markdown(scores, "MathVista")
  every_blank = [dict(r, response=blank) for r in records]  # a field that is there, though empty
  scores, _ = score.score_responses("mathvista", problems, every_blank)
  assert scores["empty_responses"] == 2 and scores["all"]["correct"] == 1


@pytest.mark.parametrize("change,named", [
    ({"question_type": "multiple_choice"}, "question_type 'multiple_choice'"),
    ({"question_type": "free_form", "answer_type": "number", "query": None},
     "answer_type 'number'"),
    ({"choices": None}, "needs a non-empty `choices` list"),
    ({"question_type": "free_form", "answer_type": "float", "precision": None},
     "a float answer needs `precision`"),
])
def test_mathvista_unknown_types_and_choiceless_multi_choice_are_named(tmp_path, change, named):
  """Before: an unknown type was scored by the free-form rules (or a bare KeyError building the
  query), multi_choice without choices a bare `min() arg is an empty sequence`, and a float
  answer without precision was scored wrong whatever the response."""
  path = _mathvista(tmp_path, [dict(MV, **change)])
  with pytest.raises(ValueError, match=named) as e:
    mathvista.load(path)
  assert path in str(e.value) and "pid 1" in str(e.value)


def test_mathverse_unknown_question_type_is_named(tmp_path):
  rec = {"sample_index": "7", "problem_version": "Text Lite", "answer": "B",
         "question_type": "multi_choice", "query_wo": "Choices:\nA:1\nB:2"}
  path = _write(tmp_path / "testmini.json", json.dumps([rec]))
  with pytest.raises(ValueError, match="sample_index 7.*question_type 'multi_choice'"):
    mathverse.load(path)
  with pytest.raises(ValueError, match="a JSON dict, but MathVerse"):
    mathverse.load(_write(tmp_path / "other.json", json.dumps({"7": rec})))


@pytest.mark.parametrize("row,named", [
    ({k: v for k, v in MATH_V.items() if k != "question"}, r"\['question'\] missing or null"),
    (dict(MATH_V, answer=None), r"\['answer'\] missing or null"),
    (dict(MATH_V, options="ABCDE", answer="B"), "options is 'ABCDE'"),
    (["1", "6"], "a JSON list, not a MATH-Vision record"),
])
def test_math_v_malformed_records_are_named(tmp_path, row, named):
  """Before: a bare KeyError or TypeError, a null answer read as the gold answer "None", an
  options string split into five one-letter options."""
  path = _jsonl(tmp_path / "test.jsonl", [MATH_V, row])
  with pytest.raises(ValueError, match=named) as e:
    math_v.load(path)
  assert f"{path}:2" in str(e.value)


def test_eval_run_names_the_problem_and_file_of_an_undecodable_image(tmp_path):
  buf = io.BytesIO()
  Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(buf, "PNG")
  path = tmp_path / "4.png"
  path.write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
  problem = Problem("4", "q", "1", [], [str(path)], "q", {}, {})
  with pytest.raises(ValueError, match="problem 4: image .*4.png cannot be decoded"):
    run.load_image(problem, 16)
  (tmp_path / "5.png").mkdir()
  with pytest.raises(FileNotFoundError, match="problem 5"):
    run.load_image(Problem("5", "q", "1", [], [str(tmp_path / "5.png")], "q", {}, {}), 16)


@pytest.mark.parametrize("conv", [
    '[{"from": "human", "value": 5}, {"from": "gpt", "value": "x"}]',
    '["hi", "there"]',
    '[{"from": "human", "value": "q"}, {"from": "gpt"',
    '{"from": "human", "value": "q"}',
])
def test_a_malformed_conversation_is_counted_not_a_crash(conv):
  """The pipeline keeps such a record's slot and counts it as `bad_conversation`; before, a
  bare JSONDecodeError or AttributeError ended the training run."""
  src = conversations.ConversationSource(
      [{"id": "a", "image": b"", "conversations": conv}], tokenizer=None, template="vicuna_v1",
      image_size=8, image_token_id=3, image_seq_len=1, max_len=16)
  example = src[0]
  assert src.dropped == {"bad_conversation": 1}
  assert example["loss_mask"].sum() == 0
  with pytest.raises(templates.BadConversation):
    templates.normalise_turns(conv)


def test_augment_cuts_a_torn_last_line_before_appending(tmp_path):
  """A killed run leaves a torn last line in responses.jsonl; the rerun's first response was
  appended onto it, unreadable in every later run and asked again (perhaps answered otherwise)."""
  from data_prep import augment
  from data_prep.chat_backends import Request
  store = tmp_path / "responses.jsonl"
  store.write_text(json.dumps({"key": "a", "response": "A"}) + '\n{"key": "b", "resp')

  class Backend:
    def run(self, requests):
      return ((r, f"answer to {r.key}") for r in requests)

  one = augment.Original("1", "i.png", "S", "What is x?", "5")
  planned = [augment.Planned("rephrase", one, Request(k, "text", "i.png")) for k in "abc"]
  got, asked = augment.ask(Backend(), planned, str(store), progress=False)
  assert asked == 2 and sorted(got) == ["a", "b", "c"]
  assert augment.load_store(str(store)) == got


def test_a_selection_whose_records_is_not_a_list_is_named(tmp_path):
  """`"records": "12"` selected records "1" and "2" (its characters), with nothing missing."""
  from data_prep import select
  from mathvlm.data import subset
  line = {"id": "img1", "source": "s", "clarity": 1, "complexity": 0, "records": "12"}
  path = _jsonl(tmp_path / "selected.jsonl", [line])
  with pytest.raises(ValueError, match="line 1: `records` is '12'"):
    subset.read_ids(path)
  with pytest.raises(select.SelectionError, match="line 1: `records` is '12'"):
    select.read_scores(path, 4)


def test_a_line_that_is_not_utf8_is_one_bad_record(tmp_path):
  """A Latin-1 byte in one JSON line stopped the whole build with a bare UnicodeDecodeError that
  named no file or line; it is that line's bad record, and the lines around it are read."""
  from data_prep import common
  lines = [json.dumps({"id": "r1"}).encode(), '{"id": "caf\u00e9"}'.encode("latin-1"),
           json.dumps({"id": "r3"}).encode()]
  path = tmp_path / "src.jsonl"
  path.write_bytes(b"\n".join(lines) + b"\n")
  items = common.load_json_items(str(path))
  assert [common.parse(items[i][3])["id"] for i in (0, 2)] == ["r1", "r3"]
  with pytest.raises(common.BadRecord, match="not UTF-8 text: byte 0xe9 at column 12") as e:
    common.parse(items[1][3])
  assert (e.value.reason, items[1][1]) == ("malformed_json", "line 2")
  (tmp_path / "src.json").write_bytes(b"[" + lines[1] + b"]")
  with pytest.raises(SystemExit, match="src.json is not UTF-8 text"):
    common.load_json_items(str(tmp_path / "src.json"))


def test_a_json_lists_element_that_is_not_an_object_is_a_malformed_record(tmp_path):
  """A string in a JSON list was parsed as a JSON-lines line: a record encoded twice was built
  as a record, and other text was "not JSON", with the advice to fix the file's syntax."""
  from data_prep import common
  rec = {"id": "r1", "conversations": []}
  path = _write(tmp_path / "src.json", json.dumps([rec, json.dumps(rec), "just text", 7]))
  items = common.load_json_items(path)
  assert common.parse(items[0][3]) == rec
  for (_, _, _, payload), kind in zip(items[1:], ["str", "str", "int"]):
    with pytest.raises(common.BadRecord) as e:
      common.parse(payload)
    assert (e.value.reason, e.value.detail) == ("malformed_record", f"a record must be a JSON "
                                                f"object, got {kind}")


def test_a_benchmark_or_response_file_that_is_not_utf8_is_named(tmp_path):
  """Before: a bare UnicodeDecodeError ("can't decode byte 0xe9 in position 37") naming neither
  the file, of the two the scorer reads, nor the line."""
  good = json.dumps({"id": "1", "response": "6"}).encode()
  bad = '{"id": "2", "response": "caf\u00e9"}'.encode("latin-1")
  (tmp_path / "out.jsonl").write_bytes(good + b"\n" + bad + b"\n")
  with pytest.raises(ValueError, match=r"out.jsonl: line 2 is not UTF-8 text \(byte 0xe9"):
    score.read_records(str(tmp_path / "out.jsonl"))
  (tmp_path / "test.jsonl").write_bytes(json.dumps(dict(MATH_V, question="caf\u00e9"),
                                                   ensure_ascii=False).encode("latin-1"))
  with pytest.raises(ValueError, match=r"test.jsonl: line 1 is not UTF-8 text"):
    math_v.load(str(tmp_path / "test.jsonl"))
  (tmp_path / "mv.json").write_bytes(json.dumps({"1": dict(MV, question="caf\u00e9")},
                                                ensure_ascii=False).encode("latin-1"))
  for load in (mathvista.load, mathverse.load):
    with pytest.raises(ValueError, match=r"mv.json: line 1 is not UTF-8 text"):
      load(str(tmp_path / "mv.json"))


def test_a_response_holding_a_unicode_line_separator_is_read_back(tmp_path):
  """`mathvlm.eval.run` writes responses.jsonl with ensure_ascii=False, which leaves U+2028 and
  U+0085 raw inside a JSON string; splitting the file with str.splitlines cut such a record in
  two and the whole file was refused ("neither JSON nor JSON lines")."""
  rows = [{"id": "1", "response": "It is 6.\u2028The answer is 6."},
          {"id": "2", "response": "x\x85y"}]
  path = _write(tmp_path / "out.jsonl",
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
  assert score.read_records(path) == rows


def test_a_byte_order_mark_is_read_past(tmp_path):
  """Before: the builders rejected a BOM file's first record as malformed JSON (counted, with
  "fix the JSON syntax" as the fix), and the scorer and loaders refused the file."""
  from data_prep import common
  rec = {"id": "r1", "conversations": []}
  for name in ("src.jsonl", "src.json"):
    path = tmp_path / name
    path.write_text(json.dumps(rec if name.endswith("l") else [rec]) + "\n",
                    encoding="utf-8-sig")
    assert common.parse(common.load_json_items(str(path))[0][3]) == rec
  (tmp_path / "out.jsonl").write_text(json.dumps({"id": "1", "response": "6"}) + "\n",
                                      encoding="utf-8-sig")
  (tmp_path / "test.jsonl").write_text(json.dumps(MATH_V) + "\n", encoding="utf-8-sig")
  (tmp_path / "mv.json").write_text(json.dumps({"1": MV}), encoding="utf-8-sig")
  assert score.read_records(str(tmp_path / "out.jsonl")) == [{"id": "1", "response": "6"}]
  assert [p.pid for p in math_v.load(str(tmp_path / "test.jsonl"))] == ["1"]
  assert [p.pid for p in mathvista.load(str(tmp_path / "mv.json"))] == ["1"]


def test_reading_a_dataset_that_is_not_built_names_the_folder_and_the_fix(tmp_path):
  """Before: TFDS's DatasetNotFoundError, 260 lines listing its catalogue of public datasets and
  suggesting tfds-nightly, for a misspelt data.path or a build not run yet."""
  from mathvlm.data import records
  built = tmp_path / "mavis_instruct" / records.VERSION
  built.mkdir(parents=True)
  (built / "mavis_instruct-train.array_record-00000-of-00001").touch()
  with pytest.raises(ValueError, match=r"no built dataset 'mathv360k' under .*datasets built "
                                       r"there: mavis_instruct\)\. Fix: .*data_prep"):
    records.read(str(tmp_path), "mathv360k")


def test_the_score_command_prints_how_many_problems_have_no_response(tmp_path, capsys):
  """A response file covering 1 of 2 problems printed only "all": 1/1 = 100%; the count of
  problems left out was in SCORES.json alone."""
  ann = _jsonl(tmp_path / "test.jsonl", [MATH_V, dict(MATH_V, id="2")])
  out = _jsonl(tmp_path / "out.jsonl", [{"id": "1", "response": "The answer is 6"}])
  score.main(["--benchmark", "math_v", "--responses", out, "--annotations", ann,
              "--out", str(tmp_path / "scores.json")])
  printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert printed["all"]["total"] == 1 and printed["missing"] == 1


@pytest.mark.parametrize("conv", ['[{"from": "human", "value": "q"}, {"from": "gpt"', '["a", "b"]',
                                  '[{"from": "human", "value": "q"}, {"from": "gpt", "value": 3}]'])
def test_a_malformed_caption_conversation_is_counted_not_a_crash(conv):
  from mathvlm.data import captions

  class Tok:
    bos_token_id, eos_token_id = 1, 2

  src = captions.CaptionSource([{"id": "a", "image": b"", "conversations": conv}],
                               tokenizer=Tok(), image_size=8, max_len=8)
  assert src[0]["attention_mask"].sum() == 0 and src.dropped == {"bad_conversation": 1}


def test_eval_run_resume_counts_lines_that_are_not_responses(tmp_path, caplog):
  """Before: a line without the id field ended the run on a bare KeyError, and a damaged middle
  line was skipped without a word."""
  signature = {"benchmark": "math_v"}
  (tmp_path / "run.json").write_text(json.dumps(signature))
  (tmp_path / "responses.jsonl").write_text(
      '{"id": "1", "response": "a"}\n{"pid": "2", "response": "b"}\n{"id": "3", "resp\n'
      '{"id": "4", "response": "d"}\n')
  with caplog.at_level("WARNING"):
    assert run.answered(str(tmp_path), signature, False) == {"1": "a", "4": "d"}
  assert "2 lines are not responses with `id` and `response` (lines [2, 3])" in caplog.text


def test_a_damaged_shard_marker_is_named_when_grouping_by_length(tmp_path):
  """data.group_by_length reads the build's shard markers; a damaged one was a bare
  JSONDecodeError naming no file."""
  from mathvlm.data import records
  markers = tmp_path / "llava_json" / "_shards"
  markers.mkdir(parents=True)
  (markers / "00000.json").write_text('{"lengths": [[1, 0]')
  with pytest.raises(ValueError, match=r"_shards/00000.json: not a shard marker .*run the "
                                       r"builder of 'llava_json' again"):
    records.read_lengths(str(tmp_path), "llava_json")
  with pytest.raises(ValueError, match=r"other/_shards is missing: data.group_by_length"):
    records.read_lengths(str(tmp_path), "other")


def test_a_pretrained_path_that_does_not_exist_is_named_as_such(tmp_path):
  """model.init_from naming a stage that has not run (a sweep before `make demo`) said "a Hugging
  Face folder needs its config.json", which sends the reader to the wrong fix."""
  from mathvlm.checkpoint import CheckpointError
  from mathvlm.pretrained import model_config
  from train_utils import tiny_config
  with pytest.raises(CheckpointError, match="no such folder.*run the stage that writes it"):
    model_config(tiny_config("lm", model__init_from=str(tmp_path / "2_align")))
