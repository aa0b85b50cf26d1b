"""Behaviour that a tenth mutation review (small plausible bugs applied to the training data
sources: `mathvlm/data/conversations.py`'s ConversationSource and PreferenceSource,
`mathvlm/data/captions.py`'s CaptionSource and `mathvlm/data/labels.py`'s LabelSource) found no
test guarding: each test here fails on such a mutant and passes on the real code. The references
are `templates.encode` (what an example's tokens and loss mask must be, padded), the caption's
`[BOS] text [EOS]` layout, and the label range 0..num_classes-1; the tokenizer is a toy defined
here (a token per character, its offsets the character's) so the expected ids are written out.
Tiny inputs only: the whole file runs in seconds."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from mathvlm.data import templates
from mathvlm.data.captions import CaptionSource
from mathvlm.data.conversations import ConversationSource, PreferenceSource
from mathvlm.data.labels import NO_LABEL, LabelSource
from mathvlm.data.pipeline import DROPPED


class CharTokenizer:
  """A token per character, id ord(c) + 10; BOS 1 first (offsets (0, 0)) when special tokens are
  asked for, as a Llama tokenizer; EOS 2 and pad 0 exist but are never added to text."""

  bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

  def __call__(self, text, return_offsets_mapping=False, add_special_tokens=True):
    ids = [ord(c) + 10 for c in text]
    offsets = [(i, i + 1) for i in range(len(text))]
    if add_special_tokens:
      ids, offsets = [self.bos_token_id] + ids, [(0, 0)] + offsets
    out = {"input_ids": ids}
    if return_offsets_mapping:
      out["offset_mapping"] = offsets
    return out


TOK = CharTokenizer()
PAD = 7   # a pad id no other token has: a pad of 0 would hide a source that ignores pad_id
KW = dict(tokenizer=TOK, template="vicuna_v1", image_size=8, image_token_id=5, image_seq_len=3,
          pad_id=PAD)


def _png(colour=(255, 0, 0), size=(30, 20)) -> bytes:
  buf = io.BytesIO()
  Image.new("RGB", size, colour).save(buf, "PNG")
  return buf.getvalue()


def _conv(question, answer):
  return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def _encoded(conv, max_len):
  return templates.encode(conv, templates.get("vicuna_v1"), TOK, image_token_id=5,
                          image_seq_len=3, max_len=max_len)


def _targets(ids, mask) -> str:
  """The characters the loss is taken on."""
  return "".join(chr(int(t) - 10) for t, m in zip(ids, mask) if m)


# ---- ConversationSource: the example is encode's tokens, padded with pad_id


def test_an_example_is_encodes_tokens_and_mask_padded_with_the_pad_id():
  conv = _conv("<image>\nFind AC.", "AC = 12.")
  want = _encoded(conv, 10_000)
  n = len(want.input_ids)
  src = ConversationSource([{"id": "a", "image": _png(), "conversations": conv}], max_len=n + 5,
                           **KW)
  ex = src[0]
  np.testing.assert_array_equal(ex["input_ids"], list(want.input_ids) + [PAD] * 5)
  np.testing.assert_array_equal(ex["attention_mask"], [1] * n + [0] * 5)
  np.testing.assert_array_equal(ex["loss_mask"], list(want.loss_mask) + [0] * 5)
  assert _targets(ex["input_ids"], ex["loss_mask"]) == " AC = 12.</s>"
  assert str(ex[DROPPED]) == "" and not src.dropped


def test_the_image_fills_one_uint8_slot_and_a_blank_keeps_the_same_slot():
  """pixel_values is [1, H, W, 3] uint8 for every example (the trainer normalises on device and
  batches slots as [B, 1, H, W, 3]); a dropped example's slot is zeros of the same shape and its
  ids are pad_id, so a batch stacks and its padding is the tokenizer's."""
  records = [{"id": "a", "image": _png((255, 0, 0)), "conversations": _conv("<image>\nQ?", "A.")},
             {"id": "b", "image": b"not an image", "conversations": _conv("<image>\nQ?", "A.")}]
  src = ConversationSource(records, max_len=64, **KW)
  good, bad = src[0], src[1]
  assert good["pixel_values"].shape == bad["pixel_values"].shape == (1, 8, 8, 3)
  assert good["pixel_values"].dtype == bad["pixel_values"].dtype == np.uint8
  assert good["pixel_values"][0, 4, 4].tolist() == [255, 0, 0]
  assert not bad["pixel_values"].any() and str(bad[DROPPED]) == "bad_image"
  assert np.all(bad["input_ids"] == PAD) and not bad["attention_mask"].any()


# ---- PreferenceSource: chosen first, a pair that trains nothing is one drop


def _pair(chosen, rejected, prompt="<image>\nWhat is 1 + 3?", image=None):
  return {"id": "p", "image": _png() if image is None else image, "prompt": prompt,
          "chosen": chosen, "rejected": rejected}


def test_a_pair_is_chosen_then_rejected_on_the_same_prompt():
  src = PreferenceSource([_pair("4", "five")], max_len=256, **KW)
  ex = src[0]
  assert ex["input_ids"].shape == (2, 256) and ex["pixel_values"].shape == (2, 1, 8, 8, 3)
  assert _targets(ex["input_ids"][0], ex["loss_mask"][0]) == " 4</s>"
  assert _targets(ex["input_ids"][1], ex["loss_mask"][1]) == " five</s>"
  prompt_len = len(_encoded(_conv("<image>\nWhat is 1 + 3?", "4"), 10_000).input_ids) - 5
  np.testing.assert_array_equal(ex["input_ids"][0, :prompt_len], ex["input_ids"][1, :prompt_len])


PROMPT_LEN = 197  # the vicuna_v1 prompt of "<image>\nWhat is 1 + 3?" with 3 image tokens
LONG = "4" + "0" * 20


def test_a_pair_with_a_cut_row_trains_both_and_counts_one_cut():
  """The rejected answer is cut by max_len: both rows train (the cut one on what is left) and the
  pair is counted once as answer_truncated, on the row that was cut."""
  src = PreferenceSource([_pair("4", LONG)], max_len=PROMPT_LEN + 4, **KW)
  ex = src[0]
  assert ex["loss_mask"][0].sum() > 0 and ex["loss_mask"][1].sum() > 0
  assert [str(r) for r in ex[DROPPED]] == ["", "answer_truncated"]
  assert dict(src.dropped) == {"answer_truncated": 1}


@pytest.mark.parametrize("chosen, rejected", [(LONG, ""), ("", LONG)])
def test_a_pair_with_a_cut_row_and_a_broken_row_is_one_drop_and_no_cut(chosen, rejected):
  """One row is cut, the other (an empty answer) cannot be rendered: the pair trains nothing, so
  both loss masks are zero, the broken row's reason is the pair's one count, and the cut row's
  `answer_truncated` is taken back, in its field and in the counts (no zero entry left there:
  data_report.json would list a reason with no examples)."""
  assert len(_encoded(_conv("<image>\nWhat is 1 + 3?", "4"), 10_000).input_ids) == PROMPT_LEN
  src = PreferenceSource([_pair(chosen, rejected)], max_len=PROMPT_LEN + 4, **KW)
  ex = src[0]
  assert not ex["loss_mask"].any()
  reasons = [str(r) for r in ex[DROPPED]]
  assert reasons == (["", "bad_conversation"] if chosen else ["bad_conversation", ""])
  assert dict(src.dropped) == {"bad_conversation": 1}


@pytest.mark.parametrize("image, question", [(_png(), "No image placeholder here?"),
                                             (b"", "<image>\nAn image that is not there?")],
                         ids=["image_no_placeholder", "placeholder_no_image"])
def test_an_image_without_its_placeholder_or_a_placeholder_without_its_image_is_image_count(
    image, question):
  """The record's `<image>` count must equal its images, both ways: an image no token points at
  would train a text-only example beside an unused image, and a placeholder with no image would
  train on the zero slot as if it were the picture."""
  src = ConversationSource([{"id": "a", "image": image, "conversations": _conv(question, "A.")}],
                           max_len=256, **KW)
  ex = src[0]
  assert str(ex[DROPPED]) == "image_count" and not ex["loss_mask"].any()
  assert dict(src.dropped) == {"image_count": 1}


# ---- CaptionSource: [BOS] caption [EOS], the EOS kept when cut, counted at the exact boundary


def _caption_rec(caption, image=None, question="<image>\nDescribe the diagram."):
  return {"id": "c", "image": _png() if image is None else image,
          "conversations": json.dumps(_conv(question, caption))}


def _ids(text):
  return [ord(c) + 10 for c in text]


def test_a_caption_is_bos_text_eos_padded_with_the_pad_id():
  src = CaptionSource([_caption_rec("  abc \n")], tokenizer=TOK, image_size=8, max_len=8,
                      pad_id=PAD)
  ex = src[0]
  np.testing.assert_array_equal(ex["input_ids"], [1] + _ids("abc") + [2, PAD, PAD, PAD])
  np.testing.assert_array_equal(ex["attention_mask"], [1] * 5 + [0] * 3)
  assert str(ex[DROPPED]) == "" and not src.dropped
  assert ex["pixel_values"].shape == (8, 8, 3) and ex["pixel_values"].dtype == np.uint8


@pytest.mark.parametrize("length, cut", [(5, False), (6, True), (9, True)])
def test_a_caption_is_cut_to_max_len_with_its_eos_last_and_counted_only_when_cut(length, cut):
  """max_len 7 holds BOS, 5 characters and EOS: a 5-character caption fits whole (not counted),
  a longer one keeps its first 5 characters and the EOS (the text tower pools there)."""
  text = "abcdefghi"[:length]
  src = CaptionSource([_caption_rec(text)], tokenizer=TOK, image_size=8, max_len=7, pad_id=PAD)
  ex = src[0]
  np.testing.assert_array_equal(ex["input_ids"], [1] + _ids(text[:5]) + [2])
  assert ex["attention_mask"].all()
  assert str(ex[DROPPED]) == ("caption_truncated" if cut else "")
  assert dict(src.dropped) == ({"caption_truncated": 1} if cut else {})


def test_a_tokenizer_without_bos_starts_the_caption_at_its_text():
  class NoBos(CharTokenizer):
    bos_token_id = None
  src = CaptionSource([_caption_rec("ab")], tokenizer=NoBos(), image_size=8, max_len=4,
                      pad_id=PAD)
  np.testing.assert_array_equal(src[0]["input_ids"], _ids("ab") + [2, PAD])


def test_a_tokenizer_without_eos_is_refused():
  class NoEos(CharTokenizer):
    eos_token_id = None
  with pytest.raises(ValueError, match="no EOS"):
    CaptionSource([], tokenizer=NoEos(), image_size=8, max_len=4)


@pytest.mark.parametrize("rec, reason", [
    (_caption_rec("   "), "no_caption"),
    (_caption_rec("A circle.", image=b""), "no_image"),
    (_caption_rec("A circle.", image=b"not an image"), "bad_image"),
    ({"id": "c", "image": _png(), "conversations": "[{\"from\": "}, "bad_conversation"),
], ids=["blank_caption", "no_image", "bad_image", "bad_conversation"])
def test_a_caption_record_that_cannot_train_is_counted_by_its_reason(rec, reason):
  src = CaptionSource([rec], tokenizer=TOK, image_size=8, max_len=8, pad_id=PAD)
  ex = src[0]
  assert str(ex[DROPPED]) == reason and dict(src.dropped) == {reason: 1}
  assert not ex["attention_mask"].any() and np.all(ex["input_ids"] == PAD)


def test_the_caption_is_the_gpt_turn_not_the_question():
  src = CaptionSource([_caption_rec("ab", question="<image>\nxyz")], tokenizer=TOK,
                      image_size=8, max_len=6, pad_id=PAD)
  np.testing.assert_array_equal(src[0]["input_ids"], [1] + _ids("ab") + [2, PAD, PAD])


@pytest.mark.parametrize("aspect", ["pad", "resize"])
def test_caption_and_label_images_follow_the_aspect_option(aspect):
  """A 30x20 image: padded to a square it has background bands, resized it is red throughout."""
  from mathvlm.data.image import to_pixels
  want = to_pixels(Image.open(io.BytesIO(_png())), 8, aspect)
  caps = CaptionSource([_caption_rec("ab")], tokenizer=TOK, image_size=8, max_len=6,
                       aspect=aspect)
  labs = LabelSource([_label_rec(0)], label="clarity", image_size=8, num_classes=2,
                     aspect=aspect)
  np.testing.assert_array_equal(caps[0]["pixel_values"], want)
  np.testing.assert_array_equal(labs[0]["pixel_values"], want)
  assert (want[0, 0] == [255, 0, 0]).all() == (aspect == "resize")


# ---- LabelSource: labels within 0..num_classes-1, dropped ones -1 and named


def _label_rec(value, image=None, labels=None):
  return {"id": "l", "image": _png() if image is None else image,
          "labels": json.dumps({"clarity": value}) if labels is None else labels}


@pytest.mark.parametrize("value, want", [(0, 0), (2, 2), (3, None), (-1, None), (True, None),
                                         (1.0, None), ("1", None), (None, None)])
def test_a_label_is_kept_only_when_it_is_an_int_class(value, want):
  src = LabelSource([_label_rec(0), _label_rec(value)], label="clarity", image_size=8,
                    num_classes=3)
  ex = src[1]
  assert int(ex["labels"]) == (NO_LABEL if want is None else want)
  assert str(ex[DROPPED]) == ("" if want is not None else "label_range")
  assert dict(src.dropped) == ({} if want is not None else {"label_range": 1})


def test_a_missing_label_in_a_later_record_is_a_range_drop():
  src = LabelSource([_label_rec(1), _label_rec(0, labels=json.dumps({"other": 1}))],
                    label="clarity", image_size=8, num_classes=2)
  assert int(src[0]["labels"]) == 1
  assert int(src[1]["labels"]) == NO_LABEL and str(src[1][DROPPED]) == "label_range"


@pytest.mark.parametrize("labels, reason", [
    (b'{"clarity": 1}', ""), ("not json", "bad_labels"), ("[1]", "bad_labels"),
    (None, "bad_labels")], ids=["bytes", "not_json", "list", "missing"])
def test_labels_as_json_text_or_bytes_and_damaged_ones(labels, reason):
  rec = _label_rec(0)
  if labels is None:
    del rec["labels"]
  else:
    rec["labels"] = labels
  src = LabelSource([_label_rec(0), rec], label="clarity", image_size=8, num_classes=2)
  assert str(src[1][DROPPED]) == reason
  assert int(src[1]["labels"]) == (1 if not reason else NO_LABEL)


@pytest.mark.parametrize("image, reason", [(b"", "no_image"), (b"not an image", "bad_image")])
def test_a_label_record_without_a_usable_image_is_named(image, reason):
  src = LabelSource([_label_rec(0), _label_rec(1, image=image)], label="clarity", image_size=8,
                    num_classes=2)
  ex = src[1]
  assert str(ex[DROPPED]) == reason and int(ex["labels"]) == NO_LABEL
  assert dict(src.dropped) == {reason: 1}


def test_one_class_is_allowed_and_none_is_refused():
  assert int(LabelSource([_label_rec(0)], label="clarity", image_size=8,
                         num_classes=1)[0]["labels"]) == 0
  with pytest.raises(ValueError, match="at least one class"):
    LabelSource([_label_rec(0)], label="clarity", image_size=8, num_classes=0)


@pytest.mark.parametrize("records, match", [
    ([], "empty"), ([_label_rec(0, labels="oops")], "no `labels` JSON object"),
    ([_label_rec(0, labels=json.dumps({"complexity": 1}))], "'clarity' is not in the dataset")])
def test_a_dataset_that_cannot_give_the_label_is_refused_at_construction(records, match):
  with pytest.raises(ValueError, match=match):
    LabelSource(records, label="clarity", image_size=8, num_classes=2)
