"""An image over PIL's pixel limit in a record: PIL refuses one over twice its
`MAX_IMAGE_PIXELS` as a decompression bomb with `DecompressionBombError`, which is no OSError,
so the sources' `except OSError` let it out and it ended the run, naming no record. Each source
now drops it as `bad_image`, counted like a broken file. The limit is lowered for the test (an
image of 600 pixels over a limit of 100), not met with a real 358M-pixel image."""

import io
import json

import pytest
from PIL import Image

from mathvlm.data.captions import CaptionSource
from mathvlm.data.conversations import ConversationSource, PreferenceSource
from mathvlm.data.labels import LabelSource
from mathvlm.data.pipeline import DROPPED
from test_captions import _tokenizer


@pytest.fixture
def big() -> bytes:
  """A 30x20 PNG, over twice a pixel limit of 100: a bomb to PIL."""
  buf = io.BytesIO()
  Image.new("RGB", (30, 20), "red").save(buf, "PNG")
  return buf.getvalue()


@pytest.fixture(autouse=True)
def low_limit(monkeypatch):
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)


def _conv(answer: str) -> list[dict]:
  return [{"from": "human", "value": "<image>\nWhat is 1 + 3?"}, {"from": "gpt", "value": answer}]


def test_a_caption_record_over_the_pixel_limit_is_a_counted_bad_image(big):
  src = CaptionSource([{"id": "c", "image": big, "conversations": json.dumps(_conv("4"))}],
                      tokenizer=_tokenizer(), image_size=8, max_len=16, pad_id=0)
  assert str(src[0][DROPPED]) == "bad_image" and dict(src.dropped) == {"bad_image": 1}


def test_a_conversation_or_pair_over_the_pixel_limit_is_a_counted_bad_image(big):
  kw = dict(tokenizer=None, template="vicuna_v1", image_size=8, image_token_id=3,
            image_seq_len=4, max_len=64)
  conv = ConversationSource([{"id": "s", "image": big, "conversations": json.dumps(_conv("4"))}],
                            **kw)
  pair = PreferenceSource([{"id": "p", "image": big, "prompt": "<image>\nWhat is 1 + 3?",
                            "chosen": "4", "rejected": "5"}], **kw)
  assert str(conv[0][DROPPED]) == "bad_image"
  assert pair[0][DROPPED].tolist() == ["bad_image", ""]  # the pair's two rows, counted once
  for src in (conv, pair):
    assert dict(src.dropped) == {"bad_image": 1}


def test_a_labelled_record_over_the_pixel_limit_is_a_counted_bad_image(big):
  src = LabelSource([{"id": "l", "image": big, "labels": json.dumps({"colour": 1})}],
                    label="colour", image_size=8, num_classes=3)
  assert str(src[0][DROPPED]) == "bad_image" and src.dropped == {"bad_image": 1}
