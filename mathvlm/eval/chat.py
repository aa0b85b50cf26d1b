"""This project's own model as a chat back end: (prompt text, image path) in, the response text
out, with whether it was cut at max_new_tokens (no EOS), as a server's `finish_reason: "length"`
says.

What `data_prep.augment --backend local` generates questions with, and any other caller that has
free-form prompts rather than a benchmark's problems. The prompt goes through the chat template
with `<image>` in front, is encoded with the checkpoint's tokenizer and decoded in batches with
the KV cache, exactly as `mathvlm.eval.run` does for benchmarks (it reuses that path).
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

import numpy as np

from mathvlm.eval import run
from mathvlm.eval.common import Problem


class Reply(NamedTuple):
  text: str
  cut: bool  # the model wrote max_new_tokens tokens and no EOS: the text may stop mid-answer


class LocalChat:
  """A mathvlm LLaVA checkpoint answering prompts about images, `batch_size` at a time."""

  def __init__(self, ckpt: str, tokenizer: str | None = None, *, template: str | None = None,
               batch_size: int = 8, max_new_tokens: int = 512, temperature: float = 0.0,
               image_aspect: str | None = None):
    """template, image_aspect: None follows the model's folder (how it was trained,
    `checkpoint.recorded_inputs`), else LLaVA-1.5's vicuna_v1 and pad."""
    from tokenizers import Tokenizer

    from mathvlm import checkpoint
    ckpt = checkpoint.model_dir(ckpt)  # a trainer's workdir: its model/
    tok_path = tokenizer or os.path.join(ckpt, "tokenizer.json")
    if not os.path.exists(tok_path):
      raise FileNotFoundError(f"no tokenizer at {tok_path}: save tokenizer.json next to the "
                              f"checkpoint or pass its path")
    self.model, self.cfg = checkpoint.load_model(ckpt)
    if not hasattr(self.cfg, "image_token_id"):
      raise ValueError(f"{ckpt} holds a {type(self.model).__name__}, not a LLaVA model")
    self.encoder = run.Encoder(Tokenizer.from_file(tok_path), self.cfg.image_token_id,
                               self.cfg.image_seq_len,
                               self.cfg.text.max_position_embeddings - max_new_tokens,
                               self.cfg.text.eos_token_id)
    recorded = checkpoint.recorded_inputs(ckpt)
    self.template = checkpoint.input_setting("template", template, recorded, "vicuna_v1", ckpt)
    self.image_aspect = checkpoint.input_setting("image_aspect", image_aspect, recorded, "pad",
                                                 ckpt)
    self.batch_size = batch_size
    self.max_new_tokens, self.temperature = max_new_tokens, temperature

  def respond(self, prompts: list[tuple[str, str]]) -> list[Reply]:
    """Replies, in order, to (prompt text, image path) pairs. Sampled ones draw from each
    prompt's own key (`prompt_key`), not from its place in this call. A reply without an EOS
    is `cut`: returned as text alone, a reply stopped at the limit ("The answer is 1" of 12)
    could not be told from a finished one."""
    problems = [Problem(pid=str(i), question=text, answer="", choices=[], images=[image],
                        query=text, meta={}, raw={}) for i, (text, image) in enumerate(prompts)]
    out = []
    for _, tokens in run.generate_tokens(
        self.model, self.cfg, self.encoder, problems, template=self.template,
        batch_size=self.batch_size, max_new_tokens=self.max_new_tokens,
        temperature=self.temperature, image_aspect=self.image_aspect,
        index=[prompt_key(text, image) for text, image in prompts]):
      out += [Reply(self.encoder.decode(row), not np.isin(row, self.encoder.eos).any())
              for row in tokens]
    return out


def prompt_key(text: str, image: str) -> int:
  """A prompt's sampling stream (`generate_responses`' index): 32 bits of a hash of its image
  and text. Numbered by their place in a call, the prompts of a caller that sends `batch_size`
  at a time (`data_prep.chat_backends`) drew from the same few keys in every call, and a sampled
  response changed with --batch and with where a resumed run started."""
  digest = hashlib.sha1(f"{image}\0{text}".encode("utf-8")).digest()
  return int.from_bytes(digest[:4], "little")
