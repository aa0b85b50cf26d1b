"""LLaVA-format records (what the data_prep builders write) -> the trainer's `lm` examples.

A random-access view: record i -> decoded, padded/resized image (uint8: the trainer normalises on
device); the conversation
through the model's template and tokenizer, image tokens expanded; padded to `max_len`. Text-only
records are examples like any other (their image slot stays unused). An example that cannot be
used (truncation would cut the image, no answer token left, a broken conversation, an undecodable
image) keeps its slot with an all-zero loss mask, so indices and resumption stay
exact, and is counted by reason: in `dropped` here, and in the example's own `DROPPED` field,
which the trainer sums (with worker processes, counters stay behind in the workers; the field
travels with the example). An example whose answer max_len cuts trains on what is left and is
counted the same way, as `answer_truncated`. Nothing vanishes silently.
"""

from __future__ import annotations

import collections
import io

import numpy as np
from PIL import Image

from mathvlm.data import templates
from mathvlm.data.image import UNDECODABLE, to_pixels
from mathvlm.data.pipeline import DROPPED, mark_dropped
from mathvlm.data.records import CUT_REASONS, DROP_REASONS


class ConversationSource:
  def __init__(self, records, *, tokenizer, template: str, image_size: int, image_token_id: int,
               image_seq_len: int, max_len: int, aspect: str = "pad", pad_id: int = 0):
    self.records, self.tokenizer = records, tokenizer
    self.template = templates.get(template)
    self.image_size, self.aspect = image_size, aspect
    self.image_token_id, self.image_seq_len = image_token_id, image_seq_len
    self.max_len, self.pad_id = max_len, pad_id
    self.dropped: collections.Counter = collections.Counter()
    self.lengths = None  # (text lengths, has-image) when the pipeline groups by length

  def __len__(self) -> int:
    return len(self.records)

  def _blank(self) -> dict[str, np.ndarray]:
    """An example that trains nothing. pixel_values is one image slot per example
    ([1, H, W, 3]; batched [B, 1, H, W, 3]): the model gives each row its own slot, so a row
    without image tokens (text-only, or blank) simply leaves it unused."""
    return dict(input_ids=np.full(self.max_len, self.pad_id, np.int32),
                attention_mask=np.zeros(self.max_len, np.int32),
                loss_mask=np.zeros(self.max_len, np.int32),
                pixel_values=np.zeros((1, self.image_size, self.image_size, 3), np.uint8),
                **{DROPPED: np.asarray("")})

  def _drop(self, out: dict, reason: str) -> dict:
    return mark_dropped(out, reason, self.dropped)

  def _unmark(self, example: dict, reasons) -> None:
    """Takes back the example's reason if it is one of `reasons`, in its field and the count."""
    reason = str(example[DROPPED])
    if reason in reasons:
      self.dropped[reason] -= 1
      self.dropped += collections.Counter()  # no zero entries in the report
      example[DROPPED] = np.asarray("")

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    rec = self.records[i]
    return self._example(rec, rec["conversations"])

  def _example(self, rec, conv) -> dict[str, np.ndarray]:
    out = self._blank()
    image = rec.get("image") or b""
    try:
      if image:
        out["pixel_values"][0] = to_pixels(Image.open(io.BytesIO(image)), self.image_size,
                                           self.aspect)
      tok = templates.encode(conv, self.template, self.tokenizer,
                             image_token_id=self.image_token_id,
                             image_seq_len=self.image_seq_len, max_len=self.max_len)
    except templates.DropExample as e:
      return self._drop(out, e.reason)
    except templates.BadConversation:
      return self._drop(out, "bad_conversation")
    except UNDECODABLE:
      return self._drop(out, "bad_image")
    if tok.num_images != (1 if image else 0):
      return self._drop(out, "image_count")
    n = len(tok.input_ids)
    out["input_ids"][:n] = tok.input_ids
    out["attention_mask"][:n] = 1
    out["loss_mask"][:n] = tok.loss_mask
    if tok.cut:  # it trains, on less than its answer: counted, not dropped
      mark_dropped(out, "answer_truncated", self.dropped)
    return out


class PreferenceSource(ConversationSource):
  """`preferences` records (image, prompt with <image>, chosen, rejected) -> DPO examples laid out
  [2, ...]: chosen then rejected, the same prompt and image."""

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    rec = self.records[i]
    pair = []
    for answer in (rec["chosen"], rec["rejected"]):
      conv = [{"from": "human", "value": rec["prompt"]}, {"from": "gpt", "value": answer}]
      pair.append(super()._example(rec, conv))
    if any(p["loss_mask"].sum() == 0 for p in pair):  # both rows or neither
      for p in pair:
        p["loss_mask"][:] = 0
        self._unmark(p, CUT_REASONS)  # a pair that trains nothing is dropped, not cut
      if all(str(p[DROPPED]) for p in pair):  # one pair, one drop: a shared cause (the image,
        self._unmark(pair[1], DROP_REASONS)   # the prompt) fails both rows
    return {k: np.stack([pair[0][k], pair[1][k]]) for k in pair[0]}
