"""CLIP-Math examples from caption records: the caption keeps its EOS when cut (the text tower
pools there), images decode to uint8, and unusable records keep their slot and are counted."""

import io
import json

import numpy as np
from PIL import Image

from mathvlm.data.captions import CaptionSource
from mathvlm.data.pipeline import DROPPED


def _tokenizer():
  from transformers import PreTrainedTokenizerFast

  from mathvlm.demo.data import add_bos, train_tokenizer
  tok = train_tokenizer(["A circle with centre O and radius 3.", "The graph of f(x) = 2x + 1."] * 5,
                        300)
  add_bos(tok)
  return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                 pad_token="<pad>", unk_token="<unk>")


def _png(colour) -> bytes:
  buf = io.BytesIO()
  Image.new("RGB", (30, 20), colour).save(buf, "PNG")
  return buf.getvalue()


def _rec(caption, image):
  conv = [{"from": "human", "value": "<image>\nDescribe the diagram."},
          {"from": "gpt", "value": caption}]
  return {"id": "r", "image": image, "conversations": json.dumps(conv)}


def test_caption_examples_and_drops():
  tok = _tokenizer()
  records = [_rec("A circle with centre O and radius 3.", _png((255, 0, 0))),
             _rec("The graph of f(x) = 2x + 1. " * 20, _png((0, 0, 255))),
             _rec("A circle.", b"not an image"),
             _rec("", _png((0, 0, 0))),
             _rec("A circle.", b"")]  # a text-only record: no image, not a broken one
  src = CaptionSource(records, tokenizer=tok, image_size=28, max_len=16, pad_id=0)
  short, long_, bad, empty, text_only = (src[i] for i in range(5))
  n = int(short["attention_mask"].sum())
  ids = tok("A circle with centre O and radius 3.", add_special_tokens=False)["input_ids"]
  assert short["input_ids"][:n].tolist() == [tok.bos_token_id] + ids + [tok.eos_token_id]
  assert short["pixel_values"].dtype == np.uint8 and short["pixel_values"].shape == (28, 28, 3)
  assert short["pixel_values"][14, 14].tolist() == [255, 0, 0]
  assert long_["attention_mask"].sum() == 16 and long_["input_ids"][-1] == tok.eos_token_id
  for ex, reason in ((bad, "bad_image"), (empty, "no_caption"), (text_only, "no_image")):
    assert ex["attention_mask"].sum() == 0 and str(ex[DROPPED]) == reason
  assert str(short[DROPPED]) == "" and dict(src.dropped) == {"bad_image": 1, "no_caption": 1,
                                                             "no_image": 1, "caption_truncated": 1}
  assert str(long_[DROPPED]) == "caption_truncated" and long_["attention_mask"].sum() == 16
