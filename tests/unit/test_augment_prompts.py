"""Augmentation's pure parts: reading "The question is ... The answer is ..." back, what counts as
the same question, the prompts, and few-shot examples from TF-IDF K-Means clusters."""

import json
import re

import pytest

from data_prep import augment, few_shot
from data_prep import augment_prompts as P
from shared_data import shared


def test_parse_pairs():
  text = ("Here you go:\n1. The question is What is x? The answer is 5.\n"
          "2. The question is: How many sides? The answer is: 4\n"
          "- The question is \"Area of <image> ABC?\" The answer is 12.5 square units.")
  assert P.parse_pairs(text) == [("What is x?", "5"), ("How many sides?", "4"),
                                 ("Area of ABC?", "12.5 square units")]
  assert P.parse_pairs("THE QUESTION IS a\nb THE ANSWER IS c") == [("a b", "c")]
  assert P.parse_pairs("The question is Q? The answer is") == [("Q?", "")]
  assert P.parse_pairs("Sure, the answer is 4.") == [] and P.parse_pairs("") == []


@pytest.mark.parametrize("mark", ["**{}.**", "Question {}:", "({})", "Q{}.", "{}."])
def test_the_next_pairs_mark_on_its_own_line_is_not_part_of_an_answer(mark):
  """Pairs numbered "**1.**", "Question 1:" or "(1)", each on its own line, gave the first
  answers the next pair's mark ("4 **2.*", "4 Question 2:", "4 ("), and were accepted so."""
  text = "Here are two:\n" + "\n".join(
      f"{mark.format(i + 1)} The question is {q} The answer is {a}"
      for i, (q, a) in enumerate([("What is x?", "4"), ("What is y?", "5 cm\nsince y = 5"),
                                  ("What is z?", "6")]))
  assert P.parse_pairs(text) == [("What is x?", "4"), ("What is y?", "5 cm since y = 5"),
                                 ("What is z?", "6")]


def test_commentary_after_a_blank_line_is_not_part_of_the_answer():
  """"4.\n\nThis follows from the figure." was read as the answer "4. This follows from the
  figure.", and a harder or simplified question's answer is never checked, so it trained so."""
  text = ("The question is What is x? The answer is 4.\n\nThis follows from the figure.\n"
          "The question is What is y? The answer is 5 cm\nsince y = 5\n \nHope this helps!")
  assert P.parse_pairs(text) == [("What is x?", "4"), ("What is y?", "5 cm since y = 5")]


@pytest.mark.parametrize("written, kept", [
  ("3.5.", "3.5"), ('"7".', "7"), ("'x = 2'.", "x = 2"), ("5.", "5"), ("1, 2, 3...", "1, 2, 3..."),
  ("It is 4. So AB = 4.", "It is 4. So AB = 4.")])
def test_a_one_sentence_answer_loses_its_full_stop(written, kept):
  """A decimal point once counted as a second sentence ("3.5." kept its period) and a period
  after a closing quote kept the quote ('"7".' -> '7"')."""
  assert P.parse_pairs(f"The question is Q? The answer is {written}") == [("Q?", kept)]


@pytest.mark.parametrize("a, b, same", [
  ("The answer is yes.", "Yes", True), ("Dark Blue", "dark blue", True), ("3.5.", "3.5", True),
  ("No", "Yes", False), ("12 cm", "12", False)])
def test_a_rephrased_answer_is_the_same_whatever_its_case(a, b, same):
  """'yes' for the original 'Yes' was counted answer_changed and the rephrasing dropped."""
  assert augment.same_answer(a, b) is same


@pytest.mark.parametrize("a, b, same", [
  ("Answer: 12", "12", True), ("12", "Answer: 12", True), ("**Answer:** 12.", "12", True),
  ("The final answer is: 12", "12", True), ("Answer: Dark Blue", "dark blue", True),
  ("Answer: 12 cm", "12", False), ("Answer: 13", "12", False), ("Answer: No", "Yes", False)])
def test_an_answer_phrase_is_not_part_of_the_value(a, b, same):
  """'Answer: 12' against the original '12' was counted answer_changed: the phrase was read as
  part of the value. The phrase goes, as evaluation reads a response; nothing else does."""
  assert augment.same_answer(a, b) is same


def test_same_question_whatever_case_and_punctuation():
  assert P.question_key("<image>\nWhat is  X?") == P.question_key("what is x")
  assert P.question_key("What is x?") != P.question_key("What is y?")


def test_prompts_are_one_line_per_question_and_ask_for_the_form():
  for kind in P.KINDS:
    text = P.prompt(kind, "<image>\nWhat is\nx?", "5", "GEOS", [("Q1?", "1"), ("Q2?", "2")])
    assert "The question is What is x? The answer is 5" in text and P.FORM in text
    assert "<image>" not in text
  assert "The question is Q2? The answer is 2" in P.prompt("new", "q", "a", "GEOS",
                                                          [("Q1?", "1"), ("Q2?", "2")])


def test_clusters_group_questions_by_kind():
  kinds = ["What is the area of triangle {}?", "How many bars are taller than {}?",
           "Which colour is the largest slice in chart {}?", "Find the angle {} in degrees.",
           "What year has the highest value in table {}?"]
  qs = [k.format(name) for name in ("ABC", "XYZ", "DEF", "GHI") for k in kinds]
  groups = few_shot.cluster(qs, 5, seed=0)
  assert len(groups) == 5
  assert sorted(sorted(int(i) % 5 for i in g) for g in groups) == [[k] * 4 for k in range(5)]
  shots = few_shot.FewShot({"S": [(f"img{i}", q, str(i)) for i, q in enumerate(qs)]}, seed=1)
  ex = shots.examples("S", "img0")
  assert len(ex) == 5 and qs[0] not in [q for q, _ in ex]
  assert ex == shots.examples("S", "img0") and shots.examples("T", "img0") == []


def test_questions_alike_but_for_numbers_make_one_cluster():
  assert [list(g) for g in few_shot.cluster([f"What is side {i}?" for i in range(9)])] == [
      list(range(9))]
  assert few_shot.cluster([]) == [] and [list(g) for g in few_shot.cluster(["1", "2"])] == [[0, 1]]


class _ShowsImage:
  """A back end that asks about the image it was shown."""

  def run(self, requests):
    for r in requests:
      yield r, f"The question is What is drawn in {r.image}? The answer is 5"


def test_records_sharing_an_id_and_question_on_two_images_get_one_request_each(tmp_path):
  """Two sources' records with one id and one question made the same prompt, hence one request
  key: one request went out, with one of the images, and both images got its question."""
  originals = [augment.Original("1", f"{s}/images/{f}", s, "<image>\nWhat is x?", "5")
               for s, f in [("GEOS", "a.png"), ("UniGeo", "b.png")]]
  planned = augment.plan(originals, ["harder"], "/imgs", None)
  responses, asked = augment.ask(_ShowsImage(), planned, str(tmp_path / "responses.jsonl"),
                                 False)
  records, _ = augment.merge(planned, responses, originals)
  assert asked == 2 and len(records) == 2
  for r in records:
    assert r["conversations"][0]["value"].endswith(f"What is drawn in /imgs/{r['image']}?")


@pytest.mark.parametrize("content, text", [
    ("Q", "Q"), (None, ""), ([{"type": "text", "text": "a"}, {"type": "text", "text": None},
                              {"type": "image_url"}, {"type": "text", "text": "b"}], "ab"),
    (5, ValueError), ({"text": "x"}, ValueError), ([{"type": "text", "text": 7}], ValueError)])
def test_a_completion_whose_content_is_not_text_fails_the_request(content, text):
  """A number came back as the response: stored, it made every later run die in judge()
  (AttributeError on .strip); a text part of null raised TypeError out of the back end."""
  from data_prep.chat_backends import message_text
  payload = {"choices": [{"message": {"content": content}}]}
  if text is ValueError:
    with pytest.raises(ValueError, match="the message content is not text"):
      message_text(payload)
  else:
    assert message_text(payload) == text


def test_a_store_from_before_the_image_joined_the_key_is_reused_where_it_names_one_image(
    tmp_path):
  """Answers stored under (kind, id, prompt hash) are not paid for again on a rerun, except
  where two images shared that key: that one answer was asked with one of them."""
  import hashlib
  import json
  originals = [augment.Original("1", f"{s}/images/{f}", s, "<image>\nWhat is x?", "5")
               for s, f in [("GEOS", "a.png"), ("UniGeo", "b.png")]]
  originals.append(augment.Original("2", "GEOS/images/c.png", "GEOS", "<image>\nWhat is y?", "6"))
  planned = augment.plan(originals, ["harder"], "/imgs", None)
  store = tmp_path / "responses.jsonl"
  with open(store, "w") as f:
    for p in planned:
      old = f"harder/{p.original.id}/{hashlib.sha256(p.request.text.encode()).hexdigest()[:16]}"
      f.write(json.dumps({"key": old, "response": "The question is Old? The answer is 6"}) + "\n")
  responses, asked = augment.ask(_ShowsImage(), planned, str(store), False)
  assert asked == 2  # the two images of id 1 again; id 2's stored answer reused
  assert responses[planned[2].request.key] == "The question is Old? The answer is 6"


def test_pairs_past_the_ones_asked_for_are_counted_as_extra_not_dropped_unseen():
  """A harder question answered with two pairs, or `new` with seven, used the first one (five)
  and said nothing of the rest: nothing is dropped silently."""
  o = augment.Original("7", "GEOS/images/a.png", "GEOS", "<image>\nWhat is x?", "5")
  pair = "The question is What is {0}? The answer is {0}\n"
  harder = augment.Planned("harder", o, None)
  got = augment.judge(harder, pair.format("p") + pair.format("q"), set())
  assert got == [("extra", "7_harder+1", ()), ("accepted", "7_harder", ("What is p?", "p"))]
  new = augment.Planned("new", o, None)
  got = augment.judge(new, "".join(pair.format(c) for c in "abcdefg"), set())
  assert [g[1] for g in got if g[0] == "extra"] == ["7_new+5", "7_new+6"]
  assert [g[1] for g in got if g[0] == "accepted"] == [f"7_new{k}" for k in range(5)]


def test_a_reply_cut_at_max_tokens_fails_the_request():
  """The server cut the reply at max_tokens: its answer "12" ended as "1" and was merged as the
  answer. Failed, it is not stored, so a rerun with more tokens asks again."""
  from data_prep.chat_backends import message_text
  cut = {"choices": [{"message": {"content": "The question is 2*6? The answer is 1"},
                      "finish_reason": "length"}]}
  with pytest.raises(ValueError, match="cut at max_tokens.*--max_new_tokens"):
    message_text(cut)
  cut["choices"][0]["finish_reason"] = "stop"
  assert message_text(cut) == "The question is 2*6? The answer is 1"


@pytest.mark.parametrize("kind, outcome", [("rephrase", "answer_changed"),
                                           ("simplify", "answer_changed"),
                                           ("harder", "accepted")])
def test_a_kind_asked_to_keep_the_answer_is_not_merged_with_another(kind, outcome):
  """`simplify`'s prompt says "Keep its answer", but only rephrasings were checked: a shorter
  question with another answer was merged, training the image on that answer. A harder question
  has its own answer."""
  o = augment.Original("7", "GEOS/images/a.png", "GEOS", "<image>\nAB=3, BC=4. AC?", "5")
  got = augment.judge(augment.Planned(kind, o, None), "The question is AC? The answer is 7",
                      set())
  assert [g[0] for g in got] == [outcome]
  assert augment.judge(augment.Planned(kind, o, None), "The question is AC? The answer is 5.",
                       set())[0][0] == "accepted"


def test_clusters_do_not_depend_on_the_number_of_threads():
  """K-Means sums each thread's share of the points, so another thread count (a 2-core laptop,
  a 96-core host) adds them in another order; the clusters, and with them every prompt's
  few-shot examples, must not move. Real questions: MathVista's and MATH-Vision's."""
  from threadpoolctl import threadpool_limits
  with open(shared("mathvista", "testmini.json")) as f:
    qs = [r["question"] for r in json.load(f).values()][:600]
  with open(shared("math_v", "test.jsonl")) as f:
    qs += [json.loads(line)["question"] for line in f][:600]
  by_threads = []
  for threads in (1, 4):
    with threadpool_limits(threads):
      by_threads.append([g.tolist() for g in few_shot.cluster(qs, seed=3)])
  assert len(by_threads[0]) == few_shot.CLUSTERS and by_threads[0] == by_threads[1]


class _Says:
  """A back end that answers every request with one reply, counting what it is asked."""

  def __init__(self, reply):
    self.reply, self.asked = reply, 0

  def run(self, requests):
    for r in requests:
      self.asked += 1
      yield r, self.reply


@pytest.mark.parametrize("kind", P.KINDS)
@pytest.mark.parametrize("reply", ["", " \n\t "])
def test_an_empty_reply_fails_and_is_asked_again(tmp_path, kind, reply):
  """An empty reply was stored, judged `empty` and never asked again: a rerun reused it. Now it
  fails the request as a reply cut at max_tokens does: named, not stored, asked again."""
  o = augment.Original("7", "GEOS/images/a.png", "GEOS", "<image>\nWhat is x?", "5")
  planned = augment.plan([o], [kind], "/imgs", None)
  store = str(tmp_path / "responses.jsonl")
  got, asked = augment.ask(_Says(reply), planned, store, False)
  _, report = augment.merge(planned, got, [o])
  failed = report[kind]["failed"]
  assert asked == 1 and failed["count"] == 1 and report[kind]["empty"]["count"] == 0
  assert failed["ids"][0]["error"].startswith("an empty reply")
  assert augment.judge(planned[0], reply, set()) == [("failed", f"7_{kind}", ())]
  assert (tmp_path / "responses.jsonl").read_text() == ""  # not stored
  again = _Says(f"The question is What is {kind}? The answer is 5")
  got, asked = augment.ask(again, planned, store, False)
  assert asked == again.asked == 1
  records, report = augment.merge(planned, got, [o])
  assert report[kind]["accepted"]["count"] == len(records) == 1


def test_an_empty_reply_an_older_store_holds_is_asked_again(tmp_path, caplog):
  o = augment.Original("7", "GEOS/images/a.png", "GEOS", "<image>\nWhat is x?", "5")
  planned = augment.plan([o], ["harder", "rephrase"], "/imgs", None)
  store = tmp_path / "responses.jsonl"
  store.write_text("".join(json.dumps({"key": p.request.key, "response": r}) + "\n"
                           for p, r in zip(planned, [" ", "The question is Q? The answer is 5"])))
  backend = _Says("The question is What is y? The answer is 5")
  _, asked = augment.ask(backend, planned, str(store), False)
  assert asked == 1 and "1 stored replies are empty" in caplog.text


class _Chat:
  """mathvlm.eval.chat.LocalChat's replies, scripted: (text, cut) per prompt, in turn."""

  def __init__(self, replies):
    self.replies, self.max_new_tokens = list(replies), 6

  def respond(self, prompts):
    from mathvlm.eval.chat import Reply
    return [Reply(*self.replies.pop(0)) for _ in prompts]


def test_a_local_reply_cut_at_max_new_tokens_fails_the_request(tmp_path):
  """The local model's reply was returned as text whether it ended or hit max_new_tokens, so a
  cut answer ("1" of "12") was merged; the server back end fails such a reply (finish_reason
  'length'), and now the local one does too, by the same words."""
  from PIL import Image

  from data_prep.chat_backends import Failed, LocalChat, Request
  image = str(tmp_path / "a.png")
  Image.new("RGB", (4, 4)).save(image)
  backend = object.__new__(LocalChat)  # no checkpoint: the replies are scripted
  backend.chat, backend.batch_size = _Chat([("The answer is 1", True), ("Done", False)]), 1
  got = dict(backend.run([Request("cut", "q", image), Request("ended", "q", image)]))
  assert got[next(r for r in got if r.key == "ended")] == "Done"
  cut = got[next(r for r in got if r.key == "cut")]
  assert isinstance(cut, Failed)
  assert re.search(r"cut at max_new_tokens=6 \(finish_reason 'length'\).*--max_new_tokens",
                   cut.error)


def test_an_original_whose_image_sits_under_another_field_is_named(tmp_path):
  """A misspelled `image` made the record text-only, reported as one ("missing_image"): the
  report now names the field that holds the path."""
  conv = [{"from": "human", "value": "What is x?"}, {"from": "gpt", "value": "5"}]
  src = tmp_path / "src.json"
  src.write_text(json.dumps([{"id": "a", "images": "GEOS/images/a.png", "conversations": conv},
                             {"id": "b", "conversations": conv}]))
  originals, bad = augment.read_originals(str(src))
  assert originals == [] and [(b["id"], b["reason"]) for b in bad] == [
      ("a", "malformed_record"), ("b", "missing_image")]
  assert "`images` holds the image path" in bad[0]["detail"]


def test_a_pair_the_prompt_showed_is_copied_not_a_new_pair():
  """A model that echoed its prompt had the few-shot examples (other images' questions, with
  their answers) and the form's "<question> -> <answer>" merged as new pairs of this image. A
  question an example asked is kept when its answer is this image's own."""
  originals = [augment.Original(f"r{i}", f"GEOS/images/{i}.png", "GEOS", f"<image>\n{q}", a)
               for i, (q, a) in enumerate([("What is x?", "5"), ("Find the area.", "12"),
                                           ("How many sides?", "4")])]
  shots = few_shot.FewShot({"GEOS": [(o.image, P.one_line(o.question), o.answer)
                                     for o in originals]})
  planned = augment.plan(originals[:1], ["new"], "/imgs", shots)
  assert planned[0].examples == (("Find the area.", "12"), ("How many sides?", "4"))
  own = ("The question is Find the area. The answer is 30\n"
         "The question is What is y? The answer is 2")
  records, report = augment.merge(planned, {planned[0].request.key: planned[0].request.text
                                            + "\n" + own}, originals[:1])
  assert report["new"]["copied"]["ids"] == ["r0_new0", "r0_new1", "r0_new3"]
  assert report["new"]["duplicates"]["ids"] == ["r0_new2"]  # its own question, as before
  assert [r["conversations"][1]["value"] for r in records] == ["30"]
  assert report["new"]["extra"]["count"] == 1


def test_a_record_whose_image_cannot_be_read_is_unusable_not_a_failed_request(tmp_path):
  """A missing or corrupt image failed its request on every run: the command exited 1 asking
  for a rerun, which failed it again. Such a record is now unusable, named with its file, and
  never asked; a wrong --images, where no image is found, stops before any request."""
  from PIL import Image
  (tmp_path / "S").mkdir()
  Image.new("RGB", (4, 4)).save(tmp_path / "S" / "ok.png")
  (tmp_path / "S" / "bad.png").write_bytes(b"not an image")
  originals = [augment.Original(f"r{i}", f"S/{name}", "S", "Q?", "1", f"index {i}")
               for i, name in enumerate(["ok.png", "bad.png", "gone.png", "ok.png"])]
  kept, bad = augment.with_images(originals, str(tmp_path))
  assert [o.id for o in kept] == ["r0", "r3"]
  assert [(b["id"], b["at"], b["reason"]) for b in bad] == [
      ("r1", "index 1", "unreadable_image"), ("r2", "index 2", "missing_image")]
  assert bad[0]["detail"].startswith(f"{tmp_path}/S/bad.png: UnidentifiedImageError")
  conv = [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "1"}]
  src = tmp_path / "src.json"
  src.write_text(json.dumps([{"id": "a", "image": "S/ok.png", "conversations": conv}]))
  with pytest.raises(SystemExit, match=r"--images .*elsewhere: no record's image can be read"):
    augment.main(["--src", str(src), "--images", str(tmp_path / "elsewhere"), "--out",
                  str(tmp_path / "out"), "--kinds", "harder", "--backend", "openai", "--url",
                  "http://127.0.0.1:9/v1", "--model", "m", "--no_progress"])


def test_a_rerun_with_another_model_is_refused_not_merged_under_its_name(tmp_path):
  """A rerun into the same --out with another --model reused every answer of the first and its
  report named the second as the model that gave them."""
  o = augment.Original("7", "GEOS/images/a.png", "GEOS", "<image>\nWhat is x?", "5")
  planned = augment.plan([o], ["harder", "rephrase"], "/imgs", None)
  store = str(tmp_path / "responses.jsonl")
  got, asked = augment.ask(_ShowsImage(), planned[:1], store, False, by="cheap")
  assert asked == 1 and json.loads(open(store).readline())["by"] == "cheap"
  assert augment.ask(_ShowsImage(), planned, store, False, by="cheap")[1] == 1  # same model
  with pytest.raises(SystemExit, match=r"holds 2 answers of another model \({'cheap': 2}\), "
                                       r"not of 'gpt-4v'.*another --out, or delete"):
    augment.ask(_ShowsImage(), planned, store, False, by="gpt-4v")
  with open(store, "w") as f:  # an older store names no model: its answers are reused
    f.write(json.dumps({"key": planned[0].request.key, "response": "old"}) + "\n")
  assert augment.ask(_ShowsImage(), planned, store, False, by="gpt-4v")[1] == 1
