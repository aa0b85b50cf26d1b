"""Held-out engine problems answered two ways, and scored by domain, question version and type:
generated (greedy, with the KV cache, prompts as `mathvlm.eval.run` builds them) and, for
multiple choice, ranked by likelihood (`mathvlm.eval.likelihood`).

The two numbers say different things about a small model: ranking asks only which of the given
answers it finds most plausible, which it learns long before it can write that answer unprompted.
The demo reports both after each stage; the `engine_accuracy` evaluator reports both inside a run.
"""

from __future__ import annotations

import collections
import logging

from mathvlm.eval import engine_benchmark
from mathvlm.eval.common import Problem, entry

log = logging.getLogger(__name__)


def answer(model, cfg, tokenizer, problems: list[Problem], *, template: str, batch: int,
           max_new_tokens: int, max_len: int, bucket: int = 32, image_aspect: str = "pad",
           encoder=None) -> list[str]:
  """Greedy answers with the KV cache, prompts as the evaluation CLI builds them. `tokenizer` is
  a `tokenizers.Tokenizer`; prompts longer than `max_len` lose their start (`run.Encoder`), are
  logged, and counted in `encoder.truncated` when the caller passes its own `encoder` (from
  `encoder_for`: the `engine_accuracy` evaluator reports the count); each batch is padded to a
  multiple of `bucket` tokens (each width compiles once: a coarser bucket compiles fewer shapes,
  a finer one pads less); images shaped as in training (image_aspect). A model placed on a mesh
  (the trainer's) has each batch split over its data axes, `batch` rounded up to a multiple of
  them (`distributed.split_size`: the padding rows' answers are dropped); one on one device
  decodes the whole batch there."""
  from mathvlm.eval import distributed
  from mathvlm.eval.run import generate_responses
  mesh = distributed.mesh_of(model)
  encoder = encoder if encoder is not None else encoder_for(cfg, tokenizer, max_len)
  before = encoder.truncated
  out = generate_responses(model, cfg, encoder, problems, template=template,
                           batch_size=distributed.split_size(batch, mesh),
                           max_new_tokens=max_new_tokens, temperature=0.0, bucket=bucket,
                           image_aspect=image_aspect, mesh=mesh)
  if encoder.truncated > before:
    log.warning("%d of %d engine prompts were longer than max_len=%d and lost their start",
                encoder.truncated - before, len(problems), encoder.max_len)
  return out


def encoder_for(cfg, tokenizer, max_len: int):
  """The prompt encoder `answer` uses: the model's image tokens and end ids, `max_len` tokens."""
  from mathvlm.eval.run import Encoder
  return Encoder(tokenizer, cfg.image_token_id, cfg.image_seq_len, max_len,
                 cfg.text.eos_token_id)


def ranked(model, cfg, tokenizer, problems: list[Problem], *, template: str, batch: int,
           max_len: int = 512, bucket: int = 32) -> list[str]:
  """Each multiple-choice problem's most likely option (`mathvlm.eval.likelihood`), "" for
  free-form ones, which have no options to rank. `tokenizer` is a transformers tokenizer;
  `max_len` holds every prompt with its option whole (the longest engine question with an option
  is about 270 tokens)."""
  from mathvlm.eval import likelihood
  return likelihood.rank(model, cfg, tokenizer, problems, template=template, batch_size=batch,
                         max_len=max_len, bucket=bucket).acc


def score(problems: list[Problem], responses: list[str], picks=None) -> dict:
  """Accuracy (percent) overall and by domain, question version and question type; per-problem
  verdicts. With `picks`, multiple choice is judged by the picked letter (free-form still by its
  response)."""
  verdicts = {}
  groups = collections.defaultdict(lambda: [0, 0])
  for i, (p, r) in enumerate(zip(problems, responses)):
    if picks is not None and p.choices:
      ok = picks[i] == p.answer
    else:
      ok = engine_benchmark.judge(p, engine_benchmark.extract(r, p))
    verdicts[p.pid] = ok
    kind = "multiple-choice" if p.choices else "free-form"
    for key in ("all", f"domain/{p.raw.get('domain', 'unknown')}",
                f"version/{p.meta['version']}", f"type/{kind}"):
      groups[key][0] += ok
      groups[key][1] += 1
  return dict(accuracy={k: entry(c, t) for k, (c, t) in sorted(groups.items())},
              verdicts=verdicts)
