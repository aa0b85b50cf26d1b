"""Multiple choice answered by likelihood: each option written as the answer the model was trained
to give, scored by the model's summed log-probability of it, the most likely option taken.

This is how lm-evaluation-harness scores multiple choice (its `acc`), and it asks less of a model
than generation does: a small model can know which option is most plausible long before it can
produce that option's text unprompted, so the two numbers together say what it knows and what it
can say. Options are written through the training template (`templates.encode`), so they carry the
same tokens and target mask as an instruction-tuning example; the end-of-turn token is part of the
answer, so "4" cannot win merely by being a prefix of "4*pi".
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np

from mathvlm.data import templates
from mathvlm.eval.common import Problem


def answer_text(option: str) -> str:
  """The `value` answer style of data_prep/mavis_instruct.py."""
  return f"The answer is {option}."


def option_rows(problem: Problem, template: str, tokenizer, *, image_token_id: int,
                image_seq_len: int, max_len: int, write: Callable[[str], str] = answer_text):
  """One tokenized training example per option of `problem`: (input_ids, loss_mask) pairs."""
  prompt = (templates.IMAGE + "\n" if problem.images else "") + problem.query
  tmpl = templates.get(template)
  rows = []
  for option in problem.choices:
    t = templates.encode([{"from": "human", "value": prompt},
                          {"from": "gpt", "value": write(option)}], tmpl, tokenizer,
                         image_token_id=image_token_id, image_seq_len=image_seq_len,
                         max_len=1 << 30)
    if len(t.input_ids) > max_len:  # a cut answer would be scored on part of its tokens
      raise ValueError(f"problem {problem.pid}: option {option!r} needs {len(t.input_ids)} "
                       f"tokens with its prompt, over max_len={max_len}; raise max_len")
    rows.append((t.input_ids, t.loss_mask))
  return rows


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _logps(graphdef, state, batch):
  from flax import nnx

  from mathvlm.objectives.lm import batch_logps
  return batch_logps(nnx.merge(graphdef, state), batch)


def option_logps(model, cfg, tokenizer, problems: list[Problem], *, template: str,
                 batch_size: int = 64, max_len: int = 256, bucket: int = 32,
                 write: Callable[[str], str] = answer_text) -> list[np.ndarray]:
  """[len(choices)] summed log-probs per problem (empty for free-form problems). Rows are padded
  to a multiple of `bucket` tokens and batches to full size, so a run compiles a few shapes."""
  from flax import nnx

  from mathvlm.eval.run import load_image
  size = cfg.vision.image_size
  pad = tokenizer.pad_token_id or 0
  rows, owner, images = [], [], {}
  for k, p in enumerate(problems):
    for ids, mask in option_rows(p, template, tokenizer, image_token_id=cfg.image_token_id,
                                 image_seq_len=cfg.image_seq_len, max_len=max_len, write=write):
      rows.append((ids, mask))
      owner.append(k)
  graphdef, state = nnx.split(model)
  scores = np.zeros(len(rows), np.float64)
  for start in range(0, len(rows), batch_size):
    chunk = list(range(start, min(start + batch_size, len(rows))))
    width = -(-max(len(rows[i][0]) for i in chunk) // bucket) * bucket
    input_ids = np.full((batch_size, width), pad, np.int32)
    loss_mask = np.zeros((batch_size, width), np.int32)
    attention = np.zeros((batch_size, width), np.int32)
    pixels = np.zeros((batch_size, size, size, 3), np.uint8)
    for j, i in enumerate(chunk):
      ids, mask = rows[i]
      input_ids[j, :len(ids)], loss_mask[j, :len(ids)], attention[j, :len(ids)] = ids, mask, 1
      if owner[i] not in images:
        images.clear()  # rows of one problem are adjacent: keep one image at a time
        images[owner[i]] = load_image(problems[owner[i]], size)
      pixels[j] = images[owner[i]]
    batch = dict(input_ids=input_ids, attention_mask=attention, loss_mask=loss_mask,
                 pixel_values=pixels)
    scores[chunk] = np.asarray(_logps(graphdef, state, batch))[:len(chunk)]
  owner = np.asarray(owner, np.int64)
  return [scores[owner == k] for k in range(len(problems))]


def pick(problems: list[Problem], logps: list[np.ndarray]) -> list[str]:
  """The most likely option's letter per problem ("" for free-form)."""
  return [chr(ord("A") + int(np.argmax(s))) if p.choices else ""
          for p, s in zip(problems, logps)]
