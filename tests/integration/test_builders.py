"""data_prep builders: round trips through real ArrayRecord files, bad-record reports, --strict,
--max_bad_fraction, resume and worker-count independence. Fixtures are made in tmp dirs."""

import io
import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds
from PIL import Image

from data_prep import common, llava_json, mathv360k, mavis_caption, mavis_instruct, preferences
from mathvlm.data import records

from train_utils import ROOT  # noqa: E402
Q = "<image>\nWhat is x?"


def encoded(fmt, colour, size=(7, 5)):
  b = io.BytesIO()
  Image.new("RGB", size, colour).save(b, fmt)
  return b.getvalue()


def put(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


def conv(*values):
  return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


def read_all(out, name):
  ds = records.read(str(out), name)
  return [ds[i] for i in range(len(ds))]


def report(out, name):
  with open(os.path.join(out, name, "report.json")) as f:
    return json.load(f)


def flags(out, *extra):
  return ["--out", str(out), "--no_progress", *extra]


# ---------------------------------------------------------------------------------------------
# Round trips.

def test_mathv360k_round_trip(tmp_path):
  src = tmp_path / "src"
  images = {"GEOS/images/a.png": encoded("PNG", "red"),
            "ChartQA/images/b.jpg": encoded("JPEG", "blue"),
            "IconQA/images/sub/c.png": encoded("PNG", "green", (3, 9))}
  for p, data in images.items():
    put(str(src / "data_images" / p), data)
  recs = [{"id": f"q{i}", "image": p, "conversations": conv(Q + f" {i}", "ünïcode ∑ 3",
                                                            "And y?", "4")}
          for i, p in enumerate(images)]
  (src / "train_samples_all_tuning.json").write_text(json.dumps(recs))
  rep = mathv360k.main(["--src", str(src), *flags(tmp_path / "out", "--num_shards", "2")])
  assert (rep["total"], rep["written"], rep["bad"]) == (3, 3, 0)
  got = read_all(tmp_path / "out", "mathv360k")
  assert [r["id"] for r in got] == ["q0", "q1", "q2"]
  assert [r["source"] for r in got] == ["GEOS", "ChartQA", "IconQA"]
  for r, rec, data in zip(got, recs, images.values()):
    assert r["image"] == data
    assert json.loads(r["conversations"]) == rec["conversations"]
  # The same files read through TFDS's own directory reader, without data_prep.
  raw = tfds.builder_from_directory(str(tmp_path / "out/mathv360k/1.0.0")).as_data_source()
  assert raw["train"][1]["image"] == images["ChartQA/images/b.jpg"]
  assert raw["train"][1]["id"] == b"q1"


@pytest.mark.parametrize("module,name", [(llava_json, "llava_json"),
                                         (mavis_caption, "mavis_caption")])
def test_llava_format_round_trip(tmp_path, module, name):
  put(str(tmp_path / "img/x.png"), png := encoded("PNG", "red"))
  recs = [{"id": "a", "image": "x.png", "conversations": conv(Q, "Caption: a red square.")},
          {"id": "b", "conversations": conv("Text only?", "Yes.")},
          {"id": "c", "image": ["x.png"], "conversations": conv("Describe <image>", "Red.")}]
  (tmp_path / "d.json").write_text(json.dumps(recs))
  module.main(["--json", str(tmp_path / "d.json"), "--images", str(tmp_path / "img"),
               *flags(tmp_path / "out")])
  got = read_all(tmp_path / "out", name)
  assert [r["id"] for r in got] == ["a", "b", "c"]
  assert {r["source"] for r in got} == {name}
  assert [r["image"] for r in got] == [png, b"", png]
  assert [json.loads(r["conversations"]) for r in got] == [r["conversations"] for r in recs]


def mavis_problem(pid, **over):
  rec = {"id": pid, "answer_index": 1, "choices": ["3", "4", "5"],
         "text_en": {"diagram_generation": "", "caption": "A triangle.",
                     "text_dominant_question": "AB=3, BC=4, right angle at B. Find AC.",
                     "text_lite_question": "Find AC.", "vision_dominant_question": "Find AC.",
                     "CoT_reasoning": "By Pythagoras AC = sqrt(9+16) = 5."},
         "image_text_dominant": "td.png", "image_text_lite": "tl.png",
         "image_vision_dominant": "vd.png"}
  rec.update(over)
  return rec


def test_mavis_instruct_round_trip(tmp_path):
  imgs = {v: encoded("PNG", c) for v, c in zip(["td", "tl", "vd"], ["red", "green", "blue"])}
  for k, data in imgs.items():
    put(str(tmp_path / f"img/{k}.png"), data)
  free = mavis_problem("p2", answer_index=-1, choices=[], answer="5")
  lines = [json.dumps(mavis_problem("p1")), json.dumps(free)]
  (tmp_path / "geo.jsonl").write_text("\n".join(lines) + "\n")
  mavis_instruct.main(["--src", str(tmp_path / "geo.jsonl"), "--images", str(tmp_path / "img"),
                       *flags(tmp_path / "out")])
  got = read_all(tmp_path / "out", "mavis_instruct")
  assert [r["id"] for r in got] == [f"{p}/{v}" for p in ("p1", "p2")
                                    for v in mavis_instruct.VERSIONS]
  r = got[1]
  assert (r["question_version"], r["answer"], r["answer_index"]) == ("text_lite", "B", 1)
  assert r["image"] == imgs["tl"]
  assert json.loads(r["choices"]) == ["3", "4", "5"]
  assert json.loads(r["conversations"]) == conv(
    "<image>\nFind AC.\nChoices:\nA. 3\nB. 4\nC. 5",
    "By Pythagoras AC = sqrt(9+16) = 5.\nThe answer is B.")
  f = got[3]
  assert (f["answer"], f["answer_index"], f["choices"], f["image"]) == ("5", -1, "[]",
                                                                        imgs["td"])
  assert json.loads(f["conversations"])[1]["value"].endswith("\nThe answer is 5.")


@pytest.mark.parametrize("style,mc,free", [
    ("cot", "By Pythagoras AC = sqrt(9+16) = 5.\nThe answer is B.",
     "By Pythagoras AC = sqrt(9+16) = 5.\nThe answer is 5."),
    ("final", "The answer is 5, which is option C.", "The answer is 5, which is option C."),
    ("value", "The answer is 4.", "The answer is 5.")])
def test_mavis_instruct_answer_styles(tmp_path, style, mc, free):
  """`--answer`: the assistant turn for a multiple-choice and a free-form problem. `value` writes
  the chosen option's text (answer_index 1 -> "4"), never the letter."""
  put(str(tmp_path / "img/tl.png"), encoded("PNG", "green"))
  cot = "Step 1: x.\nThe answer is 5, which is option C." if style == "final" else None
  recs = [mavis_problem("m"), mavis_problem("f", answer_index=-1, choices=[], answer="5")]
  for r in recs:
    if cot:
      r["text_en"]["CoT_reasoning"] = cot
  (tmp_path / "g.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
  mavis_instruct.main(["--src", str(tmp_path / "g.jsonl"), "--images", str(tmp_path / "img"),
                       "--versions", "text_lite", "--answer", style, *flags(tmp_path / "out")])
  got = read_all(tmp_path / "out", "mavis_instruct")
  assert [json.loads(r["conversations"])[1]["value"] for r in got] == [mc, free]
  assert [r["answer"] for r in got] == ["B", "5"]  # the record's answer stays the letter


def test_mavis_instruct_parquet_versions(tmp_path):
  pa = pytest.importorskip("pyarrow")
  import pyarrow.parquet as pq
  imgs = [encoded("PNG", "red"), encoded("JPEG", "green"), encoded("PNG", "blue")]
  rec = mavis_problem(None)
  del rec["id"]
  for k, data in zip(["image_text_dominant", "image_text_lite", "image_vision_dominant"], imgs):
    rec[k] = {"bytes": data, "path": k + ".png"}
  pq.write_table(pa.Table.from_pylist([rec, rec]), str(tmp_path / "vis.parquet"))
  mavis_instruct.main(["--src", str(tmp_path / "vis.parquet"), "--versions", "vision_dominant",
                       "text_dominant", *flags(tmp_path / "out")])
  got = read_all(tmp_path / "out", "mavis_instruct")
  assert [r["id"] for r in got] == ["vis-0/vision_dominant", "vis-0/text_dominant",
                                    "vis-1/vision_dominant", "vis-1/text_dominant"]
  assert [r["image"] for r in got] == [imgs[2], imgs[0]] * 2


def _mavis_files(tmp_path, names, ids):
  """One problem per file, image paths under tmp_path/img; returns the --src arguments."""
  for k in ("td", "tl", "vd"):
    put(str(tmp_path / f"img/{k}.png"), encoded("PNG", "red"))
  for name, pid in zip(names, ids):
    rec = mavis_problem(pid)
    if pid is None:
      del rec["id"]
    os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
    (tmp_path / name).write_text(json.dumps(rec) + "\n")
  return ["--src", *(str(tmp_path / n) for n in names), "--images", str(tmp_path / "img"),
          "--versions", "text_lite"]


def test_mavis_instruct_fallback_ids_keep_the_folder_of_same_named_files(tmp_path):
  """The HF release's configs are folders of same-named files (abs/train-00000-of-00001.parquet,
  sin/...): ids from the file stem alone were the same in each, written without a word."""
  names = ["abs/train.jsonl", "sin/train.jsonl"]
  mavis_instruct.main(_mavis_files(tmp_path, names, [None, None]) + flags(tmp_path / "out"))
  assert [r["id"] for r in read_all(tmp_path / "out", "mavis_instruct")] == [
      "abs/train-0/text_lite", "sin/train-0/text_lite"]


def test_mavis_instruct_names_an_id_given_twice(tmp_path):
  args = _mavis_files(tmp_path, ["a.jsonl", "b.jsonl"], ["p1", "p1"]) + flags(tmp_path / "out")
  with pytest.raises(SystemExit, match=r"problem id 'p1' is given twice: line 1 of \S*a\.jsonl "
                     r"and line 1 of \S*b\.jsonl"):
    mavis_instruct.main(args)


def test_a_rerun_with_the_sources_in_another_order_resumes_nothing(tmp_path):
  """The sources' order is the records' order: a build of --src a b that died before shard 1 was
  finished, rerun as --src b a, once kept shard 0 (a) and built shard 1 from a again: a written
  twice, b never."""
  args = _mavis_files(tmp_path, ["a.jsonl", "b.jsonl"], ["a1", "b1"])
  swapped = [args[0], args[2], args[1], *args[3:]]
  out = tmp_path / "out"
  mavis_instruct.main(args + flags(out, "--num_shards", "2"))
  os.remove(out / "mavis_instruct/_shards/00001.json")
  rep = mavis_instruct.main(swapped + flags(out, "--num_shards", "2"))
  assert rep["shards"]["built"] == [0, 1]
  assert [r["id"] for r in read_all(out, "mavis_instruct")] == ["b1/text_lite", "a1/text_lite"]


def test_preferences_round_trip(tmp_path):
  put(str(tmp_path / "img/x.jpg"), jpg := encoded("JPEG", "red"))
  recs = [{"id": "d1", "image": "x.jpg", "prompt": "<image>\nFind x.",
           "chosen": "x = 2.\nThe answer is 2.", "rejected": "x = 3."},
          {"prompt": "No image: 1+1?", "chosen": "2", "rejected": "3"}]
  (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
  preferences.main(["--json", str(tmp_path / "p.jsonl"), "--images", str(tmp_path / "img"),
                    *flags(tmp_path / "out")])
  got = read_all(tmp_path / "out", "preferences")
  assert got == [{"id": "d1", "image": jpg, **{k: recs[0][k] for k in
                                                ("prompt", "chosen", "rejected")}},
                 {"id": "line 2", "image": b"", **recs[1]}]


# ---------------------------------------------------------------------------------------------
# Bad records.

def bad_fixture(tmp_path):
  """A JSONL with every kind of bad record among good ones; returns (args, good ids, expected)."""
  img = tmp_path / "img"
  put(str(img / "ok.png"), png := encoded("PNG", "red"))
  put(str(img / "ok.jpg"), encoded("JPEG", "blue"))
  put(str(img / "trunc.png"), png[:len(png) // 2])
  put(str(img / "trunc.jpg"), encoded("JPEG", "blue", (64, 64))[:300])
  put(str(img / "notimage.png"), b"this is not an image")
  lines = [
    {"id": "g1", "image": "ok.png", "conversations": conv(Q, "5")},
    {"id": "g2", "image": "ok.jpg", "conversations": conv(Q, "5", "Why?", "Because.")},
    {"id": "g3", "conversations": conv("Text only.", "Fine.")},
    {"id": "missing", "image": "nope.png", "conversations": conv(Q, "5")},
    {"id": "trunc_png", "image": "trunc.png", "conversations": conv(Q, "5")},
    {"id": "trunc_jpg", "image": "trunc.jpg", "conversations": conv(Q, "5")},
    {"id": "not_image", "image": "notimage.png", "conversations": conv(Q, "5")},
    '{"id": "broken", "image": "ok.png", "conversations": [',
    {"id": "no_token", "image": "ok.png", "conversations": conv("What is x?", "5")},
    {"id": "two_tokens", "image": "ok.png", "conversations": conv(Q + "<image>", "5")},
    {"id": "token_no_image", "conversations": conv(Q, "5")},
    {"id": "two_images", "image": ["ok.png", "ok.jpg"],
     "conversations": conv("<image><image>", "5")},
    {"id": "empty", "image": "ok.png", "conversations": conv(Q, "  ")},
    {"id": "gpt_first", "image": "ok.png",
     "conversations": [{"from": "gpt", "value": "Hi"}, {"from": "human", "value": Q}]},
    {"id": "no_answer", "image": "ok.png", "conversations": conv(Q, "5", "And?")},
    {"id": "no_convs", "image": "ok.png"},
    {"id": "g4", "image": "ok.png", "conversations": conv("Look: <image> then?", "7")},
  ]
  text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n"
  (tmp_path / "d.jsonl").write_text(text)
  expected = {"missing_image": ["missing"],
              "unreadable_image": ["trunc_png", "trunc_jpg", "not_image"],
              "malformed_json": ["line 8"], "missing_image_token": ["no_token"],
              "too_many_image_tokens": ["two_tokens", "token_no_image"],
              "too_many_images": ["two_images"], "empty_answer": ["empty"],
              "roles_out_of_order": ["gpt_first", "no_answer"],
              "malformed_record": ["no_convs"]}
  args = ["--json", str(tmp_path / "d.jsonl"), "--images", str(img)]
  return args, ["g1", "g2", "g3", "g4"], expected


def test_every_bad_record_is_reported(tmp_path):
  args, good, expected = bad_fixture(tmp_path)
  out = tmp_path / "out"
  llava_json.main(args + flags(out, "--num_shards", "3", "--max_bad_fraction", "0.9"))
  assert [r["id"] for r in read_all(out, "llava_json")] == good
  rep = report(out, "llava_json")
  assert {k: [r["id"] for r in v["records"]] for k, v in rep["by_reason"].items()} == expected
  assert {k: v["count"] for k, v in rep["by_reason"].items()} == {
    k: len(v) for k, v in expected.items()}
  n_bad = sum(len(v) for v in expected.values())
  assert (rep["total"], rep["written"], rep["bad"]) == (len(good) + n_bad, len(good), n_bad)
  bad = rep["by_reason"]["malformed_json"]["records"][0]
  assert bad["at"] == "line 8" and bad["file"].endswith("d.jsonl")
  assert rep["by_reason"]["missing_image"]["records"][0]["at"] == "line 4"


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_records_that_share_an_id_are_written_and_listed(tmp_path, capsys, suffix):
  """A selection by id takes every record that shares one, so the report lists shared ids; the
  records themselves are written (MathV360K may ask two questions under one id). An id that
  is also a later record's fallback key, or a torn line, is not a shared id."""
  recs = [{"id": "a", "conversations": conv("Q1?", "1")},
          {"id": "b", "conversations": conv("Q2?", "2")},
          {"id": "a", "conversations": conv("Q3?", "3")},
          {"id": 7, "conversations": conv("Q4?", "4")},
          {"id": "7", "conversations": conv("Q5?", "5")},
          {"conversations": conv("Q6?", "6")}]
  path = tmp_path / f"d{suffix}"
  path.write_text(json.dumps(recs) if suffix == ".json" else
                  "\n".join(json.dumps(r) for r in recs) + '\n{"id": "a", "conv')
  rep = llava_json.main(["--json", str(path), "--images", str(tmp_path),
                         *flags(tmp_path / "out", "--num_shards", "2", "--max_bad_fraction", "0.5")])
  assert [r["id"] for r in read_all(tmp_path / "out", "llava_json")][:5] == ["a", "b", "a", "7", "7"]
  at = (lambda *n: [f"index {i}" for i in n]) if suffix == ".json" else (
      lambda *n: [f"line {i + 1}" for i in n])
  dup = rep["duplicate_ids"]
  assert (dup["ids"], dup["records"]) == (2, 4)
  assert dup["listed"] == [{"id": "a", "at": at(0, 2)}, {"id": "7", "at": at(3, 4)}]
  assert report(tmp_path / "out", "llava_json")["duplicate_ids"] == dup
  assert "4 records share 2 ids" in capsys.readouterr().out


def test_strict_names_record_and_file(tmp_path, capsys):
  args, _, _ = bad_fixture(tmp_path)
  with pytest.raises(SystemExit) as e:
    llava_json.main(args + flags(tmp_path / "out", "--strict"))
  msg = str(e.value)
  assert "'missing'" in msg and "line 4" in msg and "d.jsonl" in msg and "missing_image" in msg


def test_a_strict_rerun_stops_at_a_bad_record_of_a_finished_shard(tmp_path):
  """A shard finished without --strict holds its bad records in its marker: a --strict rerun
  once kept it and passed, reporting the very records --strict promises to stop at."""
  (tmp_path / "d.jsonl").write_text(json.dumps({"id": "a", "conversations": conv("Q?", "1")})
                                    + '\n{"id": "b", "conv\n')
  args = ["--json", str(tmp_path / "d.jsonl"), "--images", str(tmp_path)]
  llava_json.main(args + flags(tmp_path / "out", "--max_bad_fraction", "1"))
  with pytest.raises(SystemExit, match=r"line 2 of \S*d\.jsonl\): malformed_json"):
    llava_json.main(args + flags(tmp_path / "out", "--max_bad_fraction", "1", "--strict"))


def test_an_image_in_an_answer_is_a_bad_record():
  """Training moves a lone `<image>` to the front of its own turn: in the gpt turn the question
  was asked without the image and the answer trained on it; the count matched, so it was
  written."""
  with pytest.raises(common.BadRecord, match=r"turn 1 \(gpt\) holds `<image>`") as e:
    common.check_conversations(conv("What is x?", "<image>\n5"), 1)
  assert e.value.reason == "missing_image_token"
  assert len(common.check_conversations(conv("What is x?", "5", "And <image>?", "6"), 1)) == 4


def test_an_empty_turn_is_a_bad_record():
  """Training refuses an empty turn (LLaVA renders none): the builder names it, human or gpt."""
  with pytest.raises(common.BadRecord, match=r"turn 2 \(human\) is empty") as e:
    common.check_conversations(conv("<image>\nWhat is x?", "5", " ", "6"), 1)
  assert e.value.reason == "empty_question"
  with pytest.raises(common.BadRecord, match=r"turn 1 \(gpt\) is empty") as e:
    common.check_conversations(conv("<image>\nWhat is x?", "\n"), 1)
  assert e.value.reason == "empty_answer"


@pytest.mark.parametrize("module", [llava_json, preferences])
def test_an_image_path_under_another_field_is_a_bad_record(tmp_path, module):
  """A misspelled `image` ("images", "image_path") on a record without `<image>` made it a
  text-only record: written, its image never seen, nothing counted. A field that holds an image
  path on a record without `image` is now a bad record naming it; other extra fields (and an id
  that names a file) still pass."""
  put(str(tmp_path / "GEOS/images/a.png"), encoded("PNG", "red"))
  if module is llava_json:
    body = {"conversations": conv("What is x?", "5")}
  else:
    body = {"prompt": "What is x?", "chosen": "5", "rejected": "6"}
  options = {"images": str(tmp_path), "max_images": 1, "source": None}
  for field, value in [("images", "GEOS/images/a.png"), ("image_path", ["GEOS/images/a.JPG"]),
                       ("img", " a.jpeg")]:
    rec = {"id": "r", field: value, **body}
    with pytest.raises(common.BadRecord, match=f"`{field}` holds the image path") as e:
      module.convert(("k", "index 0", "f", rec), options)
    assert e.value.reason == "malformed_record" and e.value.key == "r"
  for extra in [{"model": "", "source": "GEOS", "tags": ["a", "b"]}, {"id": "a.png"},
                {"image": "GEOS/images/a.png", "thumb": "b.png"}]:
    rec = {"id": "r", **body, **extra}
    if "image" in extra:  # a record with its image: the <image> goes in the question
      rec = {**rec, **({"conversations": conv(Q, "5")} if module is llava_json else
                       {"prompt": Q})}
    assert len(module.convert(("k", "index 0", "f", rec), options)) == 1


def test_max_bad_fraction_fails_after_report(tmp_path):
  args, _, _ = bad_fixture(tmp_path)
  out = tmp_path / "out"
  with pytest.raises(SystemExit) as e:
    llava_json.main(args + flags(out, "--max_bad_fraction", "0.5"))
  assert "max_bad_fraction" in str(e.value) and "report.json" in str(e.value)
  rep = report(out, "llava_json")
  assert not rep["ok"] and rep["bad"] == 13
  assert not os.path.exists(out / "llava_json/1.0.0/dataset_info.json")  # not readable
  # A re-run with a looser threshold finalizes; the one shard is rebuilt, not kept, because
  # it has missing and unreadable images (they may be in place now: see the test below).
  rep = llava_json.main(args + flags(out, "--max_bad_fraction", "0.8"))
  assert rep["ok"] and rep["shards"]["built"] == [0] and rep["written"] == 4


def test_mavis_instruct_bad_versions(tmp_path):
  put(str(tmp_path / "img/td.png"), encoded("PNG", "red"))
  put(str(tmp_path / "img/tl.png"), encoded("PNG", "red"))
  lines = [mavis_problem("ok1", image_vision_dominant="td.png"),
           mavis_problem("noimg", image_vision_dominant="td.png",
                         image_text_lite="gone.png"),
           mavis_problem("free", answer_index=-1, choices=[], image_vision_dominant="td.png"),
           mavis_problem("q", image_vision_dominant="td.png",
                         text_en={**mavis_problem("q")["text_en"], "text_lite_question": ""})]
  (tmp_path / "g.json").write_text(json.dumps(lines))
  mavis_instruct.main(["--src", str(tmp_path / "g.json"), "--images", str(tmp_path / "img"),
                       *flags(tmp_path / "out", "--max_bad_fraction", "1")])
  rep = report(tmp_path / "out", "mavis_instruct")
  assert {k: [r["id"] for r in v["records"]] for k, v in rep["by_reason"].items()} == {
    "missing_image": ["noimg/text_lite"],
    "empty_answer": [f"free/{v}" for v in mavis_instruct.VERSIONS],
    "empty_question": ["q/text_lite"]}
  # A problem that writes nothing is as many bad records as a good one writes: counted once, the
  # bad share read 3.6% for 10% bad problems and passed --max_bad_fraction 0.05.
  assert (rep["total"], rep["written"], rep["bad"]) == (12, 7, 5)
  ids = [r["id"] for r in read_all(tmp_path / "out", "mavis_instruct")]
  assert ids == [f"ok1/{v}" for v in mavis_instruct.VERSIONS] + [
    "noimg/text_dominant", "noimg/vision_dominant", "q/text_dominant", "q/vision_dominant"]


def test_preferences_bad(tmp_path):
  put(str(tmp_path / "img/x.png"), encoded("PNG", "red"))
  recs = [{"id": "ok", "image": "x.png", "prompt": Q, "chosen": "a", "rejected": "b"},
          {"id": "same", "image": "x.png", "prompt": Q, "chosen": "a", "rejected": "a "},
          {"id": "empty", "image": "x.png", "prompt": Q, "chosen": "a", "rejected": ""},
          {"id": "notoken", "image": "x.png", "prompt": "Find x", "chosen": "a",
           "rejected": "b"},
          {"id": "nofile", "image": "y.png", "prompt": Q, "chosen": "a", "rejected": "b"},
          {"id": "inanswer", "image": "x.png", "prompt": Q, "chosen": "a",
           "rejected": "<image>\nb"},
          # each check reads both responses, and a response that is no string is named
          {"id": "emptychosen", "image": "x.png", "prompt": Q, "chosen": " ", "rejected": "b"},
          {"id": "inchosen", "image": "x.png", "prompt": Q, "chosen": "<image>\na",
           "rejected": "b"},
          {"id": "number", "image": "x.png", "prompt": Q, "chosen": 3, "rejected": "b"}]
  (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + "{oops\n")
  preferences.main(["--json", str(tmp_path / "p.jsonl"), "--images", str(tmp_path / "img"),
                    *flags(tmp_path / "out", "--max_bad_fraction", "1")])
  rep = report(tmp_path / "out", "preferences")
  assert {k: [r["id"] for r in v["records"]] for k, v in rep["by_reason"].items()} == {
    "identical_pair": ["same"], "empty_answer": ["empty", "emptychosen"],
    "missing_image_token": ["notoken", "inanswer", "inchosen"], "missing_image": ["nofile"],
    "malformed_record": ["number"], "malformed_json": ["line 10"]}
  assert [r["id"] for r in read_all(tmp_path / "out", "preferences")] == ["ok"]


# ---------------------------------------------------------------------------------------------
# Resume and parallelism.

def many_records(tmp_path, n=40):
  colours = ["red", "green", "blue", "white"]
  for i, c in enumerate(colours):
    put(str(tmp_path / f"src/data_images/S{i}/images/{c}.png"), encoded("PNG", c))
  recs = [{"id": f"r{i:03d}", "image": f"S{i % 4}/images/{colours[i % 4]}.png",
           "conversations": conv(Q, str(i))} for i in range(n)]
  recs[7]["image"] = "S0/images/gone.png"
  (tmp_path / "src/train_samples_all_tuning.json").write_text(json.dumps(recs))
  return ["--src", str(tmp_path / "src")]


def test_a_rerun_with_other_options_or_an_edited_source_rebuilds_every_shard(tmp_path):
  """The fingerprint holds the options and each source's mtime: a rerun with another
  --image_size, or after the source was edited in place (the same size), kept the shards of the
  earlier build beside new ones."""
  args = many_records(tmp_path)
  out = tmp_path / "out"
  mathv360k.main(args + flags(out, "--num_shards", "4"))
  rep = mathv360k.main(args + flags(out, "--num_shards", "4", "--image_size", "4"))
  assert rep["shards"]["built"] == [0, 1, 2, 3]
  src = tmp_path / "src/train_samples_all_tuning.json"
  os.utime(src, ns=(os.stat(src).st_atime_ns, os.stat(src).st_mtime_ns + 10**9))
  rep = mathv360k.main(args + flags(out, "--num_shards", "4", "--image_size", "4"))
  assert rep["shards"]["built"] == [0, 1, 2, 3]


def test_rerun_skips_finished_shards(tmp_path, capsys):
  args = many_records(tmp_path)
  out = tmp_path / "out"
  run = args + flags(out, "--num_shards", "4")
  mathv360k.main(run)
  first = read_all(out, "mathv360k")
  shard = lambda i: out / f"mathv360k/1.0.0/mathv360k-train.array_record-{i:05d}-of-00004"
  mtimes = [os.stat(shard(i)).st_mtime_ns for i in range(4)]
  capsys.readouterr()
  rep = mathv360k.main(run)  # shard 0 holds r007, whose image is missing: rebuilt (see below)
  assert "skipped [1, 2, 3] (already finished)" in capsys.readouterr().out
  assert [os.stat(shard(i)).st_mtime_ns for i in range(1, 4)] == mtimes[1:]
  assert rep["bad"] == 1 and rep["by_reason"]["missing_image"]["records"][0]["id"] == "r007"
  # An unfinished shard (no marker: the run died while writing it) is rebuilt.
  os.remove(out / "mathv360k/_shards/00002.json")
  rep = mathv360k.main(run)
  assert rep["shards"] == {"num_shards": 4, "skipped": [1, 3], "built": [0, 2]}
  assert [os.stat(shard(i)).st_mtime_ns for i in (1, 3)] == [mtimes[i] for i in (1, 3)]
  assert read_all(out, "mathv360k") == first
  # Another shard plan rebuilds everything and leaves no stale shard files nor markers: the
  # markers of shards 2 and 3 once stayed, and read_lengths gave 59 lengths for 39 records.
  rep = mathv360k.main(args + flags(out, "--num_shards", "2"))
  assert rep["shards"]["built"] == [0, 1]
  assert sorted(f for f in os.listdir(out / "mathv360k/1.0.0") if "array_record" in f) == [
    f"mathv360k-train.array_record-0000{i}-of-00002" for i in range(2)]
  assert sorted(os.listdir(out / "mathv360k/_shards")) == ["00000.json", "00001.json"]
  assert read_all(out, "mathv360k") == first
  assert len(records.read_lengths(str(out), "mathv360k")[0]) == len(first) == 39


def test_read_lengths_refuses_markers_of_another_build(tmp_path):
  args = many_records(tmp_path, n=8)
  out = tmp_path / "out"
  mathv360k.main(args + flags(out, "--num_shards", "2", "--max_bad_fraction", "0.2"))
  shutil.copy(out / "mathv360k/_shards/00001.json", out / "mathv360k/_shards/00002.json")
  with pytest.raises(ValueError, match=r"_shards: the shard markers give lengths of 10 records "
                     r"but mathv360k under .* has 7.*run the builder of 'mathv360k' again"):
    records.read_lengths(str(out), "mathv360k")


def test_a_shard_with_a_missing_image_is_rebuilt_once_the_image_is_there(tmp_path):
  """report.json's fix for a missing image is "put the image file under the images folder";
  the rerun once skipped the shard (its fingerprint sees the JSON, not the images) and failed
  again on the same record."""
  args = many_records(tmp_path, n=8) + flags(tmp_path / "out", "--max_bad_fraction", "0")
  with pytest.raises(SystemExit, match="1 of 8 records are bad"):
    mathv360k.main(args)
  put(str(tmp_path / "src/data_images/S0/images/gone.png"), encoded("PNG", "black"))
  rep = mathv360k.main(args)
  assert (rep["written"], rep["bad"], rep["shards"]["built"]) == (8, 0, [0])
  assert read_all(tmp_path / "out", "mathv360k")[7]["image"] == encoded("PNG", "black")


def test_a_shard_that_cannot_be_moved_leaves_no_temporary_file(tmp_path):
  """A rename across filesystems (EXDEV) once left the shard's temporary file behind."""
  shm = "/dev/shm"
  if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
    pytest.skip("needs /dev/shm on a filesystem other than the test's tmp_path")
  plan = common.Plan("mathv360k", None, str(tmp_path), str(tmp_path), "fp", [0, 0], 1, {}, [0])
  with pytest.raises(OSError, match="cross-device"):
    common.write_shard(plan, 0, [], strict=False, tmp_dir=shm)
  tmp = os.path.basename(plan.shard_path(0)) + f".tmp-{os.getpid()}"
  assert not os.path.exists(os.path.join(shm, tmp)) and not os.listdir(tmp_path)


def test_two_workers_same_records_as_one(tmp_path):
  args = many_records(tmp_path)
  mathv360k.main(args + flags(tmp_path / "one", "--num_shards", "3"))
  mathv360k.main(args + flags(tmp_path / "two", "--num_shards", "3", "--workers", "2"))
  one, two = read_all(tmp_path / "one", "mathv360k"), read_all(tmp_path / "two", "mathv360k")
  assert len(one) == 39 and one == two
  assert report(tmp_path / "one", "mathv360k")["by_reason"] == report(
    tmp_path / "two", "mathv360k")["by_reason"]


def test_command_line(tmp_path):
  args = many_records(tmp_path, n=8)
  res = subprocess.run([sys.executable, "-m", "data_prep.mathv360k", *args,
                        *flags(tmp_path / "out", "--workers", "2", "--num_shards", "2",
                               "--max_bad_fraction", "0.2")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert res.returncode == 0, res.stderr
  assert "wrote 7 records, 1 bad (missing_image: 1)" in res.stdout
  ds = tfds.data_source("mathv360k", data_dir=str(tmp_path / "out"))["train"]
  assert len(ds) == 7 and ds[0]["source"] == b"S0"


@pytest.mark.parametrize("given, kept", [(0, "0"), (0.0, "0.0"), ("0", "0"), (5, "5")])
def test_mavis_instruct_keeps_a_numeric_answer_of_zero(given, kept):
  assert mavis_instruct.answer_of({"answer_index": -1, "answer": given})[0] == kept


@pytest.mark.parametrize("given", [None, "", "  "])
def test_mavis_instruct_names_a_missing_or_blank_answer(given):
  with pytest.raises(common.BadRecord, match="without an `answer` field"):
    mavis_instruct.answer_of({"answer_index": -1, "answer": given})
