"""Multiple choice answered by likelihood: each option written as the answer the model was trained
to give, scored by the model's summed log-probability of it, the most likely option taken.

This is how lm-evaluation-harness scores multiple choice, and it asks less of a model than
generation does: a small model can know which option is most plausible long before it can
produce that option's text unprompted, so the two numbers together say what it knows and what it
can say. Options are written through the training template (`templates.encode`), so they carry the
same tokens and target mask as an instruction-tuning example; the end-of-turn token is part of the
answer, so "4" cannot win merely by being a prefix of "4*pi".

Two accuracies, as lm-evaluation-harness reports them: `acc` takes the option with the highest
summed log-probability, which penalises every extra token (with a digit-level tokenizer the
longer options lose: the demo's alignment-stage model picked the fewest-token option 96.6% of
the time); `acc_norm` takes the highest log-probability per UTF-8 byte of the written answer
(`write(option)`, the text the model is scored on). Exact ties go to the first option; `Ranking`
counts them (the verdicts downstream are one letter per problem), and options repeated in one
problem, the one way real scores tie, are an error.
"""

from __future__ import annotations

import dataclasses
import functools
import string
from typing import Callable, NamedTuple, Union

import jax
import numpy as np

from mathvlm.data import templates
from mathvlm.eval.common import Problem

# What is scored for each option: a function of the option's text, or a format string with
# `{value}` (the option's text) and/or `{letter}` (its letter, A for the first).
Write = Union[Callable[[str], str], str]


def answer_text(option: str) -> str:
  """The `value` answer style of data_prep/mavis_instruct.py."""
  return f"The answer is {option}."


def writer(write: Write) -> Callable[[str, int], str]:
  """`write` as a function of (option text, option index); a format string is checked here."""
  if callable(write):
    return lambda option, j: write(option)
  names = {f for _, f, _, _ in string.Formatter().parse(write) if f is not None}
  if not names or names - {"value", "letter"}:
    raise ValueError(f"answer format {write!r}: use {{value}} (the option's text) and/or "
                     "{letter} (its letter), e.g. 'The answer is {value}.'")
  return lambda option, j: write.format(value=option, letter=chr(ord("A") + j))


def option_rows(problem: Problem, template: str, tokenizer, *, image_token_id: int,
                image_seq_len: int, max_len: int, write: Write = answer_text):
  """One tokenized training example per option of `problem`: (input_ids, loss_mask) pairs. Two
  options of the same text would score the same and the first would take every tie: an error."""
  seen = [o.strip() for o in problem.choices]
  repeated = sorted({o for o in seen if seen.count(o) > 1})
  if repeated:
    raise ValueError(f"problem {problem.pid}: option text(s) {repeated} repeated in "
                     f"{list(problem.choices)}; ranking needs distinct options (fix the data)")
  prompt = (templates.IMAGE + "\n" if problem.images else "") + problem.query
  tmpl = templates.get(template)
  fn = writer(write)
  rows = []
  for j, option in enumerate(problem.choices):
    t = templates.encode([{"from": "human", "value": prompt},
                          {"from": "gpt", "value": fn(option, j)}], tmpl, tokenizer,
                         image_token_id=image_token_id, image_seq_len=image_seq_len,
                         max_len=1 << 30)
    if len(t.input_ids) > max_len:  # a cut answer would be scored on part of its tokens
      raise ValueError(f"problem {problem.pid}: option {option!r} needs {len(t.input_ids)} "
                       f"tokens with its prompt, over max_len={max_len}; raise max_len")
    rows.append((t.input_ids, t.loss_mask))
  return rows


def option_tokens(problem: Problem, template: str, tokenizer,
                  write: Write = answer_text) -> list[int]:
  """Target tokens per option as `option_scores` scores them (the written answer and the
  end-of-turn token): what summed log-probs penalise. The image's tokens are all prompt, so one
  stands in for them."""
  return [int(np.sum(m[1:])) for _, m in option_rows(
      problem, template, tokenizer, image_token_id=0, image_seq_len=1, max_len=1 << 30,
      write=write)]


class Scores(NamedTuple):
  """One problem's options: [options] each."""
  logp: np.ndarray    # summed log-probability of the written answer's target tokens
  tokens: np.ndarray  # its target tokens (the end-of-turn token included)
  bytes: np.ndarray   # UTF-8 bytes of the written answer (`write(option)`)


@functools.partial(jax.jit, static_argnames=("graphdef", "mesh"))
def _logps(graphdef, state, batch, mesh=None):
  """mesh: the mesh the batch is split over; the activations follow the default table there (the
  one a model folder is placed by), so each device runs the forward for its rows, as the train
  step does (without it `constrain` did nothing here: on 8 devices with fsdp=8 the MLP ran at the
  whole batch on every device)."""
  from flax import nnx

  from mathvlm import sharding
  from mathvlm.objectives.lm import batch_logps
  logps = sharding.traced_with_activation_sharding(batch_logps, mesh)
  return logps(nnx.merge(graphdef, state), batch)


def option_scores(model, cfg, tokenizer, problems: list[Problem], *, template: str,
                  batch_size: int = 64, max_len: int = 256, bucket: int = 32,
                  write: Write = answer_text, image_aspect: str = "pad") -> list[Scores]:
  """`Scores` per problem (empty arrays for free-form problems). Rows are padded to a multiple
  of `bucket` tokens and batches to full size, so a run compiles a few shapes. Images are shaped
  as in training (image_aspect, `image.to_pixels`). A model placed on a mesh (the trainer's) has
  each batch split over its data axes (rounded up to a multiple of them, the padding rows' scores
  dropped), this process feeding and loading the images of its own rows, as
  `distributed.generate_global` decodes; one on one device scores the whole batch there."""
  from flax import nnx

  from mathvlm.eval import distributed
  mesh = distributed.mesh_of(model)
  rows, owner, nbytes = _scored_rows(cfg, tokenizer, problems, template, max_len, write)
  graphdef, state = nnx.split(model)
  batch_size = distributed.split_size(batch_size, mesh)
  local = distributed.local_rows(mesh, batch_size) if mesh is not None else (0, batch_size)
  images: dict = {}
  scores = np.zeros(len(rows), np.float64)
  for start in range(0, len(rows), batch_size):
    chunk = list(range(start, min(start + batch_size, len(rows))))
    batch = _option_batch(cfg, tokenizer, problems, rows, owner, chunk, batch_size, bucket,
                          local, images, image_aspect)
    scores[chunk] = _batch_logps(graphdef, state, batch, mesh, local)[:len(chunk)]
  owner = np.asarray(owner, np.int64)
  # the first target token is predicted from the last prompt token: loss_mask[1:] counts targets
  tokens = np.asarray([int(np.sum(m[1:])) for _, m in rows], np.int64)
  nbytes = np.asarray(nbytes, np.int64)
  return [Scores(scores[owner == k], tokens[owner == k], nbytes[owner == k])
          for k in range(len(problems))]


def _scored_rows(cfg, tokenizer, problems, template, max_len, write):
  """Every option of every problem as a row: (rows [(ids, loss_mask)], owner problem per row,
  UTF-8 bytes of each written answer)."""
  fn = writer(write)
  rows, owner, nbytes = [], [], []
  for k, p in enumerate(problems):
    for j, (ids, mask) in enumerate(option_rows(
        p, template, tokenizer, image_token_id=cfg.image_token_id,
        image_seq_len=cfg.image_seq_len, max_len=max_len, write=write)):
      rows.append((ids, mask))
      owner.append(k)
      nbytes.append(len(fn(p.choices[j], j).encode("utf-8")))
  return rows, owner, nbytes


def _option_batch(cfg, tokenizer, problems, rows, owner, chunk, batch_size, bucket, local,
                  images, image_aspect) -> dict:
  """The rows `chunk` as one batch of `batch_size` rows (padding rows all zero), images loaded
  for the rows local[0]..local[1] only (this process's). A text-only problem's rows (no
  `<image>`, as MathVerse's Text Only version is asked) make the images one slot per row,
  [batch, 1, H, W, 3], which `Llava.embed` lets such a row leave unused: in the [batch, H, W, 3]
  order the k-th image goes to the k-th run of image tokens, so each image after a text-only row
  went to the next problem's rows. Generation passes its images so too (`run._batch_arrays`)."""
  from mathvlm.eval.run import load_image
  size = cfg.vision.image_size
  pad = tokenizer.pad_token_id or 0
  width = -(-max(len(rows[i][0]) for i in chunk) // bucket) * bucket
  input_ids = np.full((batch_size, width), pad, np.int32)
  loss_mask = np.zeros((batch_size, width), np.int32)
  attention = np.zeros((batch_size, width), np.int32)
  pixels = np.zeros((batch_size, size, size, 3), np.uint8)
  for j, i in enumerate(chunk):
    ids, mask = rows[i]
    input_ids[j, :len(ids)], loss_mask[j, :len(ids)], attention[j, :len(ids)] = ids, mask, 1
    if not local[0] <= j < local[1]:
      continue
    if owner[i] not in images:
      images.clear()  # rows of one problem are adjacent: keep one image at a time
      images[owner[i]] = load_image(problems[owner[i]], size, image_aspect)
    pixels[j] = images[owner[i]]
  with_images = all(problems[owner[i]].images for i in chunk)  # the same chunk in every process
  return dict(input_ids=input_ids, attention_mask=attention, loss_mask=loss_mask,
              pixel_values=pixels if with_images else pixels[:, None])


def _batch_logps(graphdef, state, batch: dict, mesh, local: tuple[int, int]) -> np.ndarray:
  """[batch] summed log-probs: on every device (no mesh), or split over the mesh's data axes,
  this process passing its rows and every process getting all of them back."""
  if mesh is None:
    return np.asarray(_logps(graphdef, state, batch))
  from mathvlm import sharding
  from mathvlm.eval import distributed
  lo, hi = local
  placed = sharding.place_batch({k: v[lo:hi] for k, v in batch.items()}, mesh)
  return distributed.gather_rows(_logps(graphdef, state, placed, mesh=mesh))


def option_logps(model, cfg, tokenizer, problems: list[Problem], *, template: str,
                 batch_size: int = 64, max_len: int = 256, bucket: int = 32,
                 write: Write = answer_text) -> list[np.ndarray]:
  """[len(choices)] summed log-probs per problem (empty for free-form problems): `option_scores`
  without the lengths."""
  return [s.logp for s in option_scores(model, cfg, tokenizer, problems, template=template,
                                        batch_size=batch_size, max_len=max_len, bucket=bucket,
                                        write=write)]


def per_byte(scores: list[Scores]) -> list[np.ndarray]:
  """lm-evaluation-harness's `acc_norm` score: summed log-prob over the written answer's bytes."""
  return [s.logp / np.maximum(s.bytes, 1) for s in scores]


def pick(problems: list[Problem], logps: list[np.ndarray]) -> list[str]:
  """The most likely option's letter per problem ("" for free-form); an exact tie goes to the
  first of the tied options (`tied` counts them)."""
  return [chr(ord("A") + int(np.argmax(s))) if p.choices else ""
          for p, s in zip(problems, logps)]


def tied(problems: list[Problem], logps: list[np.ndarray]) -> int:
  """Multiple-choice problems whose highest score is shared exactly by two or more options."""
  return sum(int(np.sum(s == np.max(s)) > 1) for p, s in zip(problems, logps)
             if p.choices and len(s))


@dataclasses.dataclass
class Ranking:
  """Per problem, the picked letter ("" for free-form) by summed log-prob (`acc`) and by
  log-prob per byte (`acc_norm`); the multiple-choice problems each left to a tie."""
  acc: list[str]
  acc_norm: list[str]
  ties: int
  ties_norm: int


def rank(model, cfg, tokenizer, problems: list[Problem], *, template: str, batch_size: int = 64,
         max_len: int = 512, bucket: int = 32, write: Write = answer_text,
         image_aspect: str = "pad") -> Ranking:
  """Both picks for `problems`, free-form ones included (they get ""), from one scoring pass."""
  mc = [p for p in problems if p.choices]
  scores = option_scores(model, cfg, tokenizer, mc, template=template, batch_size=batch_size,
                         max_len=max_len, bucket=bucket, write=write, image_aspect=image_aspect)
  summed, normed = [s.logp for s in scores], per_byte(scores)

  def spread(picks):
    it = iter(picks)
    return [next(it) if p.choices else "" for p in problems]
  return Ranking(spread(pick(mc, summed)), spread(pick(mc, normed)), tied(mc, summed),
                 tied(mc, normed))
