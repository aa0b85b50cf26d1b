"""LLaVA-format caption records (mavis_caption, or any llava_json dataset) -> CLIP-Math's
contrastive examples: the image and its caption (the first gpt turn) as the text tower's ids.

The caption is `[BOS] text [EOS]`, cut to `max_len` with the EOS kept last: the text tower pools
at the EOS, so a long caption loses its tail, never its end marker. An example that cannot be used
(an undecodable image, no caption) keeps its slot with an all-zero attention mask, so indices and
resumption stay exact, and is counted by reason in `dropped` and in the example's `DROPPED` field
(which travels out of grain worker processes); a caption that lost its tail trains and is counted
there as `caption_truncated`.
"""

from __future__ import annotations

import collections
import io

import numpy as np
from PIL import Image

from mathvlm.data import templates
from mathvlm.data.image import UNDECODABLE, to_pixels
from mathvlm.data.pipeline import DROPPED, mark_dropped


class CaptionSource:
  def __init__(self, records, *, tokenizer, image_size: int, max_len: int, aspect: str = "pad",
               pad_id: int = 0):
    self.records, self.tokenizer = records, tokenizer
    self.image_size, self.aspect, self.max_len, self.pad_id = image_size, aspect, max_len, pad_id
    self.bos, self.eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if self.eos is None:
      raise ValueError("the caption tokenizer has no EOS token: CLIP's text tower pools there")
    self.dropped: collections.Counter = collections.Counter()

  def __len__(self) -> int:
    return len(self.records)

  def caption_ids(self, text: str) -> tuple[list[int], bool]:
    """`[BOS] text [EOS]` within max_len, and whether the text lost tokens to it."""
    ids = ([self.bos] if self.bos is not None else []) + self.tokenizer(
        text, add_special_tokens=False)["input_ids"]
    return ids[:self.max_len - 1] + [self.eos], len(ids) > self.max_len - 1

  def _drop(self, out: dict, reason: str) -> dict:
    return mark_dropped(out, reason, self.dropped)

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    rec = self.records[i]
    out = dict(pixel_values=np.zeros((self.image_size, self.image_size, 3), np.uint8),
               input_ids=np.full(self.max_len, self.pad_id, np.int32),
               attention_mask=np.zeros(self.max_len, np.int32), **{DROPPED: np.asarray("")})
    try:  # a record that is not a list of turns is counted, as in ConversationSource
      turns = templates.normalise_turns(rec["conversations"])
    except templates.BadConversation:
      return self._drop(out, "bad_conversation")
    caption = next((text for who, text in turns if who == "gpt"), "").strip()
    if not caption:
      return self._drop(out, "no_caption")
    if not rec["image"]:  # a text-only record (b""): nothing to pair the caption with
      return self._drop(out, "no_image")
    try:
      out["pixel_values"] = to_pixels(Image.open(io.BytesIO(rec["image"])),
                                      self.image_size, self.aspect)
    except UNDECODABLE:
      return self._drop(out, "bad_image")
    ids, cut = self.caption_ids(caption)
    out["input_ids"][:len(ids)] = ids
    out["attention_mask"][:len(ids)] = 1
    if cut:  # it trains on the caption's first tokens: counted, not dropped
      mark_dropped(out, "caption_truncated", self.dropped)
    return out
