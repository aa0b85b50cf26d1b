"""Examples that train on less than their record: an answer or a caption cut by data.max_len
trains on what is left and is counted (`answer_truncated`, `caption_truncated`) in the source,
in the batches (also packed, also out of worker processes) and in data_report.json's
`truncated`, apart from the examples that train nothing (`dropped`)."""

import collections
import io
import json

from PIL import Image

from mathvlm.data.captions import CaptionSource
from mathvlm.data.conversations import ConversationSource, PreferenceSource
from mathvlm.data.pipeline import DROPPED, make_dataset, pop_dropped
from mathvlm.train import report_dropped


def _tokenizer():
  from transformers import PreTrainedTokenizerFast

  from mathvlm.demo.data import add_bos, train_tokenizer
  tok = train_tokenizer(["What is AC? The answer is 12.", "USER: ASSISTANT: a b c d e f"] * 5, 300)
  add_bos(tok)
  return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                 pad_token="<pad>", unk_token="<unk>")


def _conv(question, answer):
  return json.dumps([{"from": "human", "value": question}, {"from": "gpt", "value": answer}])


def _png() -> bytes:
  buf = io.BytesIO()
  Image.new("RGB", (30, 20), (255, 0, 0)).save(buf, "PNG")
  return buf.getvalue()


KW = dict(template="vicuna_v1", image_size=8, image_token_id=3, image_seq_len=4)


def _lengths(tok, records):
  """Each record's tokens, uncut."""
  src = ConversationSource(records, tokenizer=tok, max_len=4096, **KW)
  return [int(src[i]["attention_mask"].sum()) for i in range(len(records))]


def test_answers_cut_at_max_len_are_counted_from_the_source_to_data_report(tmp_path):
  tok = _tokenizer()
  records = [{"id": str(i), "image": b"", "conversations": _conv("What is AC?", "a " * k)}
             for i, k in enumerate([1, 2, 3, 4, 6, 8, 9, 12])]
  lengths = _lengths(tok, records)
  max_len = lengths[4]  # record 4 fits exactly: not cut; 5, 6 and 7 are
  assert len(set(lengths)) == len(lengths) and max_len < lengths[5]
  src = ConversationSource(records, tokenizer=tok, max_len=max_len, **KW)
  examples = [src[i] for i in range(len(records))]
  assert [str(e[DROPPED]) for e in examples] == [""] * 5 + ["answer_truncated"] * 3
  assert all(e["loss_mask"].sum() > 0 for e in examples)  # they train, on what is left
  assert src.dropped == {"answer_truncated": 3}
  for packing in (False, True):  # a cut example fills its packed row alone and keeps its note
    counted = collections.Counter()
    ds = make_dataset(src, global_batch=4, seed=0, packing=packing, image_token_id=3)
    for batch, _ in zip(ds, range(2)):
      pop_dropped(batch, counted)
    if not packing:
      assert counted == {"answer_truncated": 3}
    else:
      assert counted["answer_truncated"] >= 1 and set(counted) == {"answer_truncated"}
  counted["no_targets"] = 2
  report_dropped(src, str(tmp_path), counted)
  report = json.loads((tmp_path / "data_report.json").read_text())
  assert report["dropped"] == {"no_targets": 2}
  assert report["truncated"] == {"answer_truncated": counted["answer_truncated"]}


def test_a_preference_pair_counts_each_cut_answer_and_no_cut_in_a_dropped_pair():
  tok = _tokenizer()
  prompt, short, long_ = "What is AC?", "a b", "a b c d e f " * 3
  n = _lengths(tok, [{"id": "0", "image": b"", "conversations": _conv(prompt, short)}])[0]
  records = [{"id": "0", "image": b"", "prompt": prompt, "chosen": long_, "rejected": short},
             {"id": "1", "image": b"", "prompt": prompt, "chosen": long_, "rejected": long_},
             {"id": "2", "image": b"not an image", "prompt": "<image>\n" + prompt,
              "chosen": long_, "rejected": short},  # both rows fail: one drop
             # the rejected row alone fails (an <image> in its answer, cut by max_len) ...
             {"id": "3", "image": b"", "prompt": prompt, "chosen": short, "rejected": "<image>"},
             # ... and takes the chosen row, cut, with it: a drop, not a cut
             {"id": "4", "image": b"", "prompt": prompt, "chosen": long_, "rejected": "<image>"}]
  src = PreferenceSource(records, tokenizer=tok, max_len=n, **KW)
  pairs = [src[i] for i in range(len(records))]
  assert [list(map(str, p[DROPPED])) for p in pairs] == [
      ["answer_truncated", ""], ["answer_truncated", "answer_truncated"], ["bad_image", ""],
      ["", "image_truncated"], ["", "image_truncated"]]
  assert (pairs[0]["loss_mask"].sum(-1) > 0).all() and (pairs[1]["loss_mask"].sum(-1) > 0).all()
  assert all(p["loss_mask"].sum() == 0 for p in pairs[2:])
  assert src.dropped == {"answer_truncated": 3, "bad_image": 1, "image_truncated": 2}


def test_a_caption_is_cut_one_token_past_its_length_not_at_it():
  tok = _tokenizer()
  text = "The answer is 12. What is AC?"
  n = 2 + len(tok(text, add_special_tokens=False)["input_ids"])  # BOS, text, EOS
  for max_len, note in ((n, ""), (n - 1, "caption_truncated")):
    record = {"id": "r", "image": _png(), "conversations": _conv("<image>\nDescribe it.", text)}
    src = CaptionSource([record], tokenizer=tok, image_size=8, max_len=max_len)
    ex = src[0]
    assert str(ex[DROPPED]) == note and int(ex["attention_mask"].sum()) == max_len
    assert ex["input_ids"][max_len - 1] == tok.eos_token_id
    assert src.dropped == ({note: 1} if note else {})
