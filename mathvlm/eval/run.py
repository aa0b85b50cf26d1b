"""Generate with a model and score: `python -m mathvlm.eval.run --benchmark B --ckpt CKPT
--data DIR --out DIR`.

Loads a mathvlm checkpoint (`mathvlm.checkpoint.save_model`) and its tokenizer (tokenizer.json
beside it, or --tokenizer), formats each problem's official query with the chat template, decodes
in batches with the KV cache (`mathvlm.generate`), then scores the responses exactly as
`mathvlm.eval.score` does. Writes OUT/responses.jsonl, OUT/scores.json, .md, .png and the
benchmark's official output files.

Data layout: math_v: DIR/{testmini,test}.jsonl with images under DIR; mathvista and mathverse:
DIR/{testmini,test}.json with DIR/images/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import numpy as np

from mathvlm.eval import prompts, score
from mathvlm.eval.common import Problem

log = logging.getLogger(__name__)
_FILES = {"math_v": "{split}.jsonl", "mathvista": "{split}.json", "mathverse": "{split}.json",
          "engine": "{split}.json"}


def annotations_path(benchmark: str, data: str, split: str) -> str:
  path = os.path.join(data, _FILES[benchmark].format(split=split))
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --data should hold the {benchmark} "
                            f"{_FILES[benchmark].format(split=split)} (see --split)")
  return path


def load_image(problem: Problem, size: int) -> np.ndarray:
  """The problem's first image, preprocessed; a blank (CLIP-mean) image when it has none."""
  from PIL import Image

  from mathvlm.data.image import CLIP_MEAN, preprocess
  if not problem.images:
    return preprocess(Image.new("RGB", (size, size), tuple(int(255 * m) for m in CLIP_MEAN)),
                      size, "pad")
  path = problem.images[0]
  if not os.path.exists(path):
    raise FileNotFoundError(f"problem {problem.pid}: image {path} not found; pass --images DIR "
                            "if the images live elsewhere")
  with Image.open(path) as im:
    return preprocess(im, size, "pad")


class Encoder:
  """Prompt text -> token ids, with `cfg.image_seq_len` image tokens per `<image>`."""

  def __init__(self, tokenizer, image_token_id: int, image_seq_len: int, max_len: int):
    self.tok, self.image_id, self.image_len, self.max_len = (tokenizer, image_token_id,
                                                             image_seq_len, max_len)
    self.bos = tokenizer.token_to_id("<s>")
    self.eos = tokenizer.token_to_id("</s>")
    pad = tokenizer.token_to_id("<pad>")
    self.pad = pad if pad is not None else 0
    self.truncated = 0

  def encode(self, text: str) -> list[int]:
    """BOS, the text before `<image>`, the image tokens, the text after. Too long a prompt loses
    the start of its text before the image (the system line), then the start of the text after
    it; BOS, the image and the end ("... ASSISTANT:") always stay."""
    before, image, after = text.partition(prompts.IMAGE)
    bos = [self.bos] if self.bos is not None else []
    head, tail = self._ids(before), self._ids(after)
    body = [self.image_id] * self.image_len if image else []
    over = len(bos) + len(head) + len(body) + len(tail) - self.max_len
    if over > 0:
      self.truncated += 1
      cut = min(over, len(head))
      head, over = head[cut:], over - cut
      tail = tail[min(over, len(tail)):]
    return bos + head + body + tail

  def _ids(self, s: str) -> list[int]:
    return self.tok.encode(s, add_special_tokens=False).ids if s else []

  def decode(self, ids) -> str:
    out = []
    for t in ids:
      t = int(t)
      if t == self.eos:
        break
      if t != self.pad:
        out.append(t)
    return self.tok.decode(out)


def generate_responses(model, cfg, encoder: Encoder, problems: list[Problem], *, template: str,
                       batch_size: int, max_new_tokens: int, temperature: float,
                       bucket: int = 64) -> list[str]:
  """Responses in problem order. Batches are padded to full size and prompts to a multiple of
  `bucket` tokens, so a run compiles a handful of shapes, not one per batch."""
  from tqdm import tqdm

  from mathvlm.generate import generate
  size = cfg.vision.image_size
  responses: list[str] = []
  for start in tqdm(range(0, len(problems), batch_size), desc="generate", unit="batch"):
    chunk = problems[start:start + batch_size]
    ids = [encoder.encode(prompts.format_prompt(p.query, template)) for p in chunk]
    width = -(-max(len(x) for x in ids) // bucket) * bucket
    n = batch_size
    input_ids = np.full((n, width), encoder.pad, np.int32)
    mask = np.zeros((n, width), np.int32)
    images = np.zeros((n, size, size, 3), np.float32)
    for i in range(n):
      x = ids[min(i, len(ids) - 1)]
      input_ids[i, width - len(x):], mask[i, width - len(x):] = x, 1
      if i < len(chunk):
        images[i] = load_image(chunk[i], size)
      else:
        images[i] = images[len(chunk) - 1]
    out = generate(model, input_ids, mask, images, max_new_tokens=max_new_tokens,
                   eos_token_id=encoder.eos, pad_token_id=encoder.pad, temperature=temperature,
                   seed=start)
    tokens = np.asarray(out.tokens)
    responses += [encoder.decode(tokens[i]) for i in range(len(chunk))]
  return responses


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m mathvlm.eval.run", description=__doc__.split("\n")[0])
  p.add_argument("--benchmark", required=True, choices=sorted(score.BENCHMARKS))
  p.add_argument("--ckpt", required=True, help="mathvlm checkpoint folder (save_checkpoint)")
  p.add_argument("--data", required=True, help="benchmark folder (annotations + images)")
  p.add_argument("--out", required=True)
  p.add_argument("--split", default="testmini")
  p.add_argument("--images", default=None, help="image folder, if not the default for the data")
  p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: CKPT/tokenizer.json)")
  p.add_argument("--template", default="vicuna_v1", choices=sorted(prompts.TEMPLATES))
  p.add_argument("--prompt", default="query_wo", help="MathVerse: query_wo or query_cot")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--max_new_tokens", type=int, default=512)
  p.add_argument("--temperature", type=float, default=0.0)
  p.add_argument("--limit", type=int, default=0, help="first N problems only (0: all)")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO)
  t0 = time.time()

  from tokenizers import Tokenizer

  from mathvlm import checkpoint
  tok_path = args.tokenizer or os.path.join(args.ckpt, "tokenizer.json")
  if not os.path.exists(tok_path):
    raise SystemExit(f"no tokenizer at {tok_path}: save tokenizer.json next to the checkpoint or "
                     "pass --tokenizer")
  ann = annotations_path(args.benchmark, args.data, args.split)
  kwargs = {"prompt": args.prompt} if args.benchmark == "mathverse" else {}
  problems = score.load_problems(args.benchmark, ann, args.images, **kwargs)
  if args.limit:
    problems = problems[:args.limit]
  model, cfg = checkpoint.load_model(args.ckpt)
  encoder = Encoder(Tokenizer.from_file(tok_path), cfg.image_token_id, cfg.image_seq_len,
                    cfg.text.max_position_embeddings - args.max_new_tokens)
  responses = generate_responses(model, cfg, encoder, problems, template=args.template,
                                 batch_size=args.batch, max_new_tokens=args.max_new_tokens,
                                 temperature=args.temperature)
  if encoder.truncated:
    log.warning("%d prompts were longer than the model's context and lost their start",
                encoder.truncated)
  os.makedirs(args.out, exist_ok=True)
  id_field = {"mathvista": "pid", "math_v": "id", "mathverse": "sample_index",
              "engine": "pid"}[args.benchmark]
  records = [{id_field: p.pid, "response": r} for p, r in zip(problems, responses)]
  with open(os.path.join(args.out, "responses.jsonl"), "w", encoding="utf-8") as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
  scores, outputs = score.score_responses(args.benchmark, problems, records, source=args.out)
  paths = score.write_outputs(args.benchmark, scores, outputs,
                              os.path.join(args.out, "scores.json"))
  print(json.dumps({"all": scores["all"], "seconds": round(time.time() - t0, 1), "files": paths}))


if __name__ == "__main__":
  main()
