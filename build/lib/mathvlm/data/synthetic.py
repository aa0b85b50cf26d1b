"""A learnable synthetic source for every objective, so the trainer runs and is tested on this CPU
before any real dataset is prepared (the ArrayRecord sources arrive with issue 4).

Example i is drawn from a generator seeded by (seed, i), so the data is the same whatever the
process count or order of access. Each image is a noisy solid colour from one of `num_classes`
classes; the text names the class, so the task can be learned:
  lm          [BOS, image tokens x P, prompt..., answer tokens..., EOS]; loss on the answer + EOS
  dpo         chosen = the right answer, rejected = a wrong one, same prompt and image
  contrastive an image and a caption naming its class
  classify    an image and its class
With `text_only` > 0 (lm, dpo), that share of examples has no image tokens and the class named in
the prompt instead, and every example carries its image in a slot [1, H, W, 3] (a text-only one
leaves it unused), as the built sources do: the mixed batches that packing works on.
"""

from __future__ import annotations

import numpy as np

PALETTE = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.9], [0.9, 0.9, 0.1],
                    [0.8, 0.1, 0.8], [0.1, 0.9, 0.9], [0.5, 0.5, 0.5], [0.1, 0.1, 0.1]],
                   np.float32)


class SyntheticSource:
  """Random-access source (len, getitem) of numpy example dicts, as grain wants."""

  def __init__(self, objective: str, *, num_examples: int, max_len: int, image_size: int,
               vocab_size: int, image_seq_len: int = 0, image_token_id: int = -1,
               num_classes: int = 4, seed: int = 0, bos: int = 1, eos: int = 2, pad: int = 0,
               text_only: float = 0.0):
    if num_classes > len(PALETTE):
      raise ValueError(f"synthetic data has at most {len(PALETTE)} classes, got {num_classes}")
    self.objective = objective
    self.n, self.max_len, self.size = num_examples, max_len, image_size
    self.vocab, self.p, self.image_id = vocab_size, image_seq_len, image_token_id
    self.classes, self.seed = num_classes, seed
    self.bos, self.eos, self.pad = bos, eos, pad
    self.text_only = text_only
    self.words = 10  # ids [10, vocab) are ordinary words
    if objective in ("lm", "dpo") and 1 + image_seq_len + 8 > max_len:
      raise ValueError(f"data.max_len={max_len} leaves no room for the {image_seq_len} image "
                       "tokens and a question")

  def __len__(self) -> int:
    return self.n

  def _image(self, rng, label) -> np.ndarray:
    img = PALETTE[label] + 0.15 * rng.standard_normal((self.size, self.size, 3))
    return ((img - 0.45) / 0.27).astype(np.float32)

  def _answer(self, label) -> list[int]:
    return [self.words + 3 * label + k for k in range(3)]

  def _sequence(self, rng, answer, context=None) -> dict[str, np.ndarray]:
    """context: the image tokens, or (text-only) a word naming the class."""
    context = [self.image_id] * self.p if context is None else context
    prompt = [self.bos] + context + list(
        rng.integers(self.words, self.vocab, 4 + int(rng.integers(0, 4))))
    ids = (prompt + answer + [self.eos])[:self.max_len]
    n = len(ids)
    out_ids = np.full(self.max_len, self.pad, np.int32)
    out_ids[:n] = ids
    mask = np.zeros(self.max_len, np.int32)
    mask[:n] = 1
    loss = np.zeros(self.max_len, np.int32)
    loss[len(prompt):n] = 1
    return dict(input_ids=out_ids, attention_mask=mask, loss_mask=loss)

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    if not 0 <= i < self.n:
      raise IndexError(f"example {i} out of range [0, {self.n})")
    rng = np.random.default_rng([self.seed, int(i)])
    label = int(rng.integers(0, self.classes))
    image = self._image(rng, label)
    if self.objective == "classify":
      return dict(pixel_values=image, labels=np.int32(label))
    if self.objective == "contrastive":
      caption = [self.bos] + self._answer(label) + list(rng.integers(self.words, self.vocab, 3))
      ids = np.full(self.max_len, self.pad, np.int32)
      ids[:len(caption) + 1] = caption + [self.eos]
      return dict(pixel_values=image, input_ids=ids, attention_mask=(ids != self.pad).astype(
          np.int32))
    context = None
    if self.text_only:  # its own draw: the stream above stays as without text-only examples
      image = image[None]
      if np.random.default_rng([self.seed, int(i), 1]).random() < self.text_only:
        context, image = [self.words + 3 * self.classes + label], np.zeros_like(image)
    state = rng.bit_generator.state
    seq = self._sequence(rng, self._answer(label), context)
    if self.objective == "lm":
      return dict(pixel_values=image, **seq)
    wrong = (label + 1 + int(rng.integers(0, self.classes - 1))) % self.classes
    rng.bit_generator.state = state  # same prompt for both answers
    rejected = self._sequence(rng, self._answer(wrong), context)
    # [2, ...]: chosen then rejected; the trainer lays pairs out as rows.
    return {k: np.stack([seq[k], rejected[k]]) for k in seq} | dict(
        pixel_values=np.stack([image, image]))
