"""Generate with a model and score: `python -m mathvlm.eval.run --benchmark B --ckpt CKPT
--data DIR --out DIR [--mesh 1,-1,1] [--num_processes N --process_id I --coordinator H:P]`.

Loads a mathvlm checkpoint (`mathvlm.checkpoint.save_model`) sharded over a device mesh as the
trainer shards it, and its tokenizer (tokenizer.json beside it, or --tokenizer); formats each
problem's official query with the chat template, decodes in batches with the KV cache, each
batch split over the mesh's data axes and the processes (`mathvlm.eval.distributed`), with a
progress bar in problems/s; then scores the responses exactly as `mathvlm.eval.score` does.
Writes OUT/responses.jsonl (batch by batch: a rerun of the same command skips what is answered),
OUT/run.json, OUT/scores.json, .md, .png and the benchmark's official output files.

`--compile_only --preset llava-1.5-7b --fake_devices 8` compiles decoding for a preset on the
mesh without weights and prints per-device memory.

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

from mathvlm import paths
from mathvlm.eval import prompts, score
from mathvlm.eval.common import Problem

log = logging.getLogger(__name__)
_FILES = {"math_v": "{split}.jsonl", "mathvista": "{split}.json", "mathverse": "{split}.json",
          "engine": "{split}.json", "engine_dynamic": "{split}.json"}


def annotations_path(benchmark: str, data: str, split: str) -> str:
  path = os.path.join(data, _FILES[benchmark].format(split=split))
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --data should hold the {benchmark} "
                            f"{_FILES[benchmark].format(split=split)} (see --split)")
  return path


def load_image(problem: Problem, size: int, aspect: str = "pad") -> np.ndarray:
  """The problem's first image shaped as the model was trained (`image.to_pixels`: 'pad', LLaVA's,
  by default), uint8 (the vision tower normalises it with its own statistics); a blank
  (CLIP-mean) image when it has none (its prompt has no `<image>` to read it: `_batch_arrays`)."""
  from PIL import Image

  from mathvlm.data.image import CLIP_MEAN, to_pixels
  if not problem.images:
    return to_pixels(Image.new("RGB", (size, size), tuple(int(255 * m) for m in CLIP_MEAN)),
                     size, "pad")
  path = problem.images[0]
  if not os.path.isfile(path):
    raise FileNotFoundError(f"problem {problem.pid}: image {path} not found (or not a file); "
                            "pass --images DIR if the images live elsewhere")
  try:
    with Image.open(path) as im:
      return to_pixels(im, size, aspect)
  except Exception as e:  # noqa: BLE001 - PIL raises many types: OSError, SyntaxError, bombs..
    # PIL's own message for a truncated file names neither the file nor the problem
    raise ValueError(f"problem {problem.pid}: image {path} cannot be decoded "
                     f"({type(e).__name__}: {e}); replace the file with the benchmark's "
                     "original (responses so far are kept: run again to resume)") from e


class Encoder:
  """Prompt text -> token ids, with `cfg.image_seq_len` image tokens per `<image>`. eos: the
  ids that end a response: every id of the model config's `eos_token_id` (which `mathvlm.hf`
  takes from generation_config.json where a folder has one, as transformers' generate does),
  and the tokenizer's `</s>` where it has one (a tokenizer trained here may put it at another
  id than the preset's config names)."""

  def __init__(self, tokenizer, image_token_id: int, image_seq_len: int, max_len: int,
               eos_token_id: int | tuple[int, ...] | None = None):
    self.tok, self.image_id, self.image_len, self.max_len = (tokenizer, image_token_id,
                                                             image_seq_len, max_len)
    self.bos = tokenizer.token_to_id("<s>")
    ids = [] if eos_token_id is None else [int(e) for e in np.atleast_1d(eos_token_id)]
    end = tokenizer.token_to_id("</s>")
    ids += [] if end is None else [end]
    self.eos: tuple[int, ...] = tuple(dict.fromkeys(ids))  # in order, once each
    pad = tokenizer.token_to_id("<pad>")
    self.pad = pad if pad is not None else 0
    self.truncated = 0

  def encode(self, text: str) -> list[int]:
    """BOS, the text before `<image>`, the image tokens, the text after. Too long a prompt loses
    the start of its text before the image (the system line), then the start of the text after
    it; BOS, the image and the end ("... ASSISTANT:") always stay. A max_len that BOS and the
    image fill is an error: cutting every text token (the question and the assistant's turn
    with it) would leave nothing to answer, and a prompt still over max_len."""
    before, image, after = text.partition(prompts.IMAGE)
    bos = [self.bos] if self.bos is not None else []
    head, tail = self._ids(before), self._ids(after)
    body = [self.image_id] * self.image_len if image else []
    over = len(bos) + len(head) + len(body) + len(tail) - self.max_len
    if over >= len(head) + len(tail) > 0:
      raise ValueError(f"a prompt needs {len(bos) + len(body)} tokens for BOS and the image "
                       f"alone, leaving no room for its text under max_len={self.max_len}: "
                       "raise the prompt length (engine_accuracy: max_len) or lower "
                       "max_new_tokens")
    if over > 0:
      self.truncated += 1
      cut = min(over, len(head))
      head, over = head[cut:], over - cut
      tail = tail[min(over, len(tail)):]
    return bos + head + body + tail

  def _ids(self, s: str) -> list[int]:
    return self.tok.encode(s, add_special_tokens=False).ids if s else []

  def decode(self, ids) -> str:
    """A generated row's text: its tokens up to the first end id. The sampler writes the pad id
    only after a row's end, so the padding goes with the end and a pad id before it is a token
    the model chose: with no `<pad>` in the vocabulary the pad is id 0, the real token "!" in
    byte-level ones (Llama 3's, Qwen's), and dropping it anywhere read "5!" as 5."""
    out = []
    for t in ids:
      t = int(t)
      if t in self.eos:
        break
      out.append(t)
    return self.tok.decode(out)


def _batch_arrays(encoder: Encoder, chunk: list[Problem], template: str, size: int, n: int,
                  bucket: int, rows: tuple[int, int], aspect: str = "pad"):
  """(input_ids, mask, images) for a batch padded to n rows (the last problem repeated) and to a
  multiple of `bucket` tokens, left-padded; images are loaded for rows[0]..rows[1] only (the
  rows this process feeds), the others stay zero. A problem without an image (MathVerse's Text
  Only version) is asked without one, as the official harness asks it (no `<image>`, where a
  blank image's tokens used to stand); a batch with such a row passes its images one slot per
  row, [n, 1, H, W, 3], which `Llava.embed` lets a row without image tokens leave unused (in
  the [n, H, W, 3] order a row without tokens would hand its image to the next row's tokens)."""
  ids = [encoder.encode(prompts.format_prompt(p.query, template, n_images=min(len(p.images), 1)))
         for p in chunk]
  width = -(-max(len(x) for x in ids) // bucket) * bucket
  input_ids = np.full((n, width), encoder.pad, np.int32)
  mask = np.zeros((n, width), np.int32)
  images = np.zeros((n, size, size, 3), np.uint8)
  for i in range(n):
    x = ids[min(i, len(ids) - 1)]
    input_ids[i, width - len(x):], mask[i, width - len(x):] = x, 1
    if rows[0] <= i < rows[1]:
      images[i] = load_image(chunk[min(i, len(chunk) - 1)], size, aspect)
  return input_ids, mask, (images if all(p.images for p in chunk) else images[:, None])


def generate_responses(model, cfg, encoder: Encoder, problems: list[Problem], *, template: str,
                       batch_size: int, max_new_tokens: int, temperature: float,
                       top_p: float = 1.0, seed: int = 0, bucket: int = 64, mesh=None,
                       on_batch=None, index: list[int] | None = None,
                       image_aspect: str = "pad") -> list[str]:
  """Responses in problem order (`generate_tokens`, each row decoded). on_batch(chunk,
  responses) is called after each batch (the run appends them to its responses file)."""
  import jax
  from tqdm import tqdm

  responses: list[str] = []
  bar = tqdm(total=len(problems), desc="generate", unit="problem",
             disable=jax.process_index() != 0)
  for chunk, tokens in generate_tokens(
      model, cfg, encoder, problems, template=template, batch_size=batch_size,
      max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
      bucket=bucket, mesh=mesh, index=index, image_aspect=image_aspect):
    done = [encoder.decode(row) for row in tokens]
    responses += done
    if on_batch is not None:
      on_batch(chunk, done)
    bar.update(len(chunk))
  bar.close()
  return responses


def generate_tokens(model, cfg, encoder: Encoder, problems: list[Problem], *, template: str,
                    batch_size: int, max_new_tokens: int, temperature: float,
                    top_p: float = 1.0, seed: int = 0, bucket: int = 64, mesh=None,
                    index: list[int] | None = None, image_aspect: str = "pad"):
  """Yields (problems, tokens [len(problems), max_new_tokens]) batch by batch, in problem order:
  the tokens as generated, so a caller can tell a row that ended at an EOS from one cut at
  max_new_tokens (`mathvlm.eval.chat`). Batches are padded to full size and prompts to a
  multiple of `bucket` tokens, so a run compiles a handful of shapes, not one per batch.
  mesh=None decodes on one device (`mathvlm.generate.generate`); with a mesh, each batch is
  split over its data axes and this process feeds its own rows (`distributed.generate_global`).
  Each problem samples from its own key, fold_in(key(seed), its position in the whole
  benchmark): `index[i]` where given (a resumed run's positions), else i. So a sampled response
  does not depend on --batch, on the problems beside it, or on where a resume started."""
  from mathvlm.eval import distributed
  from mathvlm.generate import generate
  size = cfg.vision.image_size
  if mesh is not None and batch_size % distributed.batch_rows(mesh):
    raise ValueError(f"--batch {batch_size} does not split over the mesh's data x fsdp = "
                     f"{distributed.batch_rows(mesh)} devices; use a multiple of it")
  rows = distributed.local_rows(mesh, batch_size) if mesh is not None else (0, batch_size)
  for start in range(0, len(problems), batch_size):
    chunk = problems[start:start + batch_size]
    places = [start + i if index is None else index[start + i] for i in range(len(chunk))]
    places += places[-1:] * (batch_size - len(chunk))     # the padding rows repeat the last
    ids, mask, images = _batch_arrays(encoder, chunk, template, size, batch_size, bucket, rows,
                                      image_aspect)
    if mesh is None:
      tokens = np.asarray(generate(model, ids, mask, images, max_new_tokens=max_new_tokens,
                                   eos_token_id=encoder.eos, pad_token_id=encoder.pad,
                                   temperature=temperature, top_p=top_p, seed=seed,
                                   rows=places).tokens)
    else:
      lo, hi = rows
      tokens = distributed.generate_global(
          model, mesh, ids[lo:hi], mask[lo:hi], images[lo:hi], max_new_tokens=max_new_tokens,
          eos=encoder.eos, pad=encoder.pad, temperature=temperature, top_p=top_p, seed=seed,
          rows=places)
    yield chunk, np.asarray(tokens)[:len(chunk)]


# ---------------------------------------------------------------------------------------------
# Resuming: OUT/responses.jsonl grows batch by batch; OUT/run.json says what produced it.

_ID_FIELD = {"mathvista": "pid", "math_v": "id", "mathverse": "sample_index", "engine": "pid",
             "engine_dynamic": "pid"}


def fingerprint(ckpt: str) -> str:
  """What identifies the weights: config.json's text, and for a local folder the size and time
  of every file under params/ (a retrained model of the same shape differs there)."""
  import hashlib

  root = paths.absolute(ckpt)
  h = hashlib.sha1((root / "config.json").read_text().encode())
  if os.path.isdir(str(root / "params")):
    for dirpath, _, files in sorted(os.walk(str(root / "params"))):
      for name in sorted(files):
        st = os.stat(os.path.join(dirpath, name))
        h.update(f"{os.path.relpath(os.path.join(dirpath, name), str(root))}:{st.st_size}:"
                 f"{st.st_mtime_ns}".encode())
  return h.hexdigest()


def run_signature(args, tokenizer) -> dict:
  """Everything that changes a response; a rerun with the same signature resumes. The tokenizer
  counts by what it does (its canonical JSON), so another --tokenizer starts over."""
  import hashlib

  tok = tokenizer.to_str()
  return {"benchmark": args.benchmark, "split": args.split, "data": os.path.abspath(args.data),
          "ckpt": str(paths.absolute(args.ckpt)), "weights": fingerprint(args.ckpt),
          "tokenizer": hashlib.sha1(tok.encode()).hexdigest(), "template": args.template,
          "prompt": args.prompt, "max_new_tokens": args.max_new_tokens,
          "temperature": args.temperature,
          **({"top_p": args.top_p, "seed": args.seed} if args.temperature > 0 else {}),
          **({"image_aspect": args.image_aspect} if args.image_aspect != "pad" else {}),
          # other image files answer otherwise; absent by default, so older run.json still match
          **({"images": os.path.abspath(args.images)} if args.images else {})}


def answered(out: str, signature: dict, restart: bool) -> dict[str, str]:
  """Responses already in OUT/responses.jsonl from a run with this signature ({id: response});
  a different signature (or --restart) starts over, keeping the old file as .old. A last line
  cut by a crash is dropped."""
  path, meta = os.path.join(out, "responses.jsonl"), os.path.join(out, "run.json")
  old = json.load(open(meta)) if os.path.exists(meta) else None
  if os.path.exists(path) and (restart or old != signature):
    log.warning("%s: %s; starting over (old responses kept as responses.jsonl.old)", out,
                "--restart" if restart else "made by another model or settings")
    os.replace(path, path + ".old")
  os.makedirs(out, exist_ok=True)
  with open(meta, "w") as f:
    json.dump(signature, f, indent=2)
  if not os.path.exists(path):
    return {}
  paths.cut_torn_line(path)  # a crash's partial last line: this run appends after it
  return _read_answers(path, _ID_FIELD[signature["benchmark"]])


def _read_answers(path: str, field: str) -> dict[str, str]:
  """{id: response} of responses.jsonl. A line that is not a record with `field` and `response`
  (a hand edit, a damaged file) is left out and its problem generated again, and how many and
  which lines is logged, rather than skipped without a word or ending the run on a KeyError."""
  found, bad = {}, []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
        found[str(rec[field])] = rec["response"]
      except (json.JSONDecodeError, KeyError, TypeError):
        bad.append(n)
  if bad:
    log.warning("%s: %d lines are not responses with `%s` and `response` (lines %s); their "
                "problems are generated again", path, len(bad), field, bad[:10])
  return found


def todo_mask(problems: list[Problem], done: dict[str, str]) -> np.ndarray:
  """Which problems still need a response, as process 0 sees it (its file), on every process."""
  import jax
  from jax.experimental import multihost_utils
  mask = np.array([p.pid not in done for p in problems], np.bool_)
  if jax.process_count() > 1:
    mask = np.asarray(multihost_utils.broadcast_one_to_all(mask))
  return mask


# ---------------------------------------------------------------------------------------------
# CLI.

def parse_args(argv: list[str] | None):
  from mathvlm.data.image import ASPECTS
  p = argparse.ArgumentParser(prog="python -m mathvlm.eval.run", description=__doc__.split("\n")[0])
  p.add_argument("--benchmark", required=True, choices=sorted(score.BENCHMARKS))
  p.add_argument("--ckpt", help="mathvlm checkpoint folder (save_checkpoint)")
  p.add_argument("--data", help="benchmark folder (annotations + images)")
  p.add_argument("--out")
  p.add_argument("--split", default="testmini")
  p.add_argument("--images", default=None, help="image folder, if not the default for the data")
  p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: CKPT/tokenizer.json)")
  p.add_argument("--template", default=None, choices=sorted(prompts.TEMPLATES),
                 help="the chat template (default: the one the model was trained with, as its "
                      "config.json records, else vicuna_v1)")
  p.add_argument("--image_aspect", default=None, choices=ASPECTS,
                 help="how images are shaped (default: as the model was trained, "
                      "data.image_aspect in its config.json, else pad)")
  p.add_argument("--prompt", default="",
                 help="the official prompt: MathVerse query_wo (default) or query_cot; "
                      "MATH-Vision direct (default) or cot; none for the others")
  p.add_argument("--batch", type=int, default=8, help="global batch (all processes together)")
  p.add_argument("--max_new_tokens", type=int, default=512)
  p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
  p.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling, with --temperature")
  p.add_argument("--seed", type=int, default=0,
                 help="sampling seed (each problem draws from its own key under it)")
  p.add_argument("--limit", type=int, default=0, help="first N problems only (0: all)")
  p.add_argument("--variants", type=int, default=0, help="engine_dynamic: variants 0..K-1 only")
  p.add_argument("--engine_judge", default="value", choices=("value", "math_verify"),
                 help="engine benchmarks: free-form answers by value or with math-verify")
  p.add_argument("--restart", action="store_true", help="discard responses of an earlier run")
  p.add_argument("--mesh", default="1,-1,1", help="data,fsdp,tensor axis sizes (-1: the rest)")
  p.add_argument("--coordinator", default="", help="multi-process: process 0's host:port")
  p.add_argument("--num_processes", type=int, default=1)
  p.add_argument("--process_id", type=int, default=0)
  p.add_argument("--distributed", action="store_true", help="jax.distributed from the cluster")
  p.add_argument("--fake_devices", type=int, default=0, help="this many CPU devices (tests)")
  p.add_argument("--compile_only", action="store_true",
                 help="compile decoding for --preset on the mesh, print memory, exit")
  p.add_argument("--preset", default="llava-1.5-7b", help="with --compile_only")
  p.add_argument("--prompt_len", type=int, default=1024, help="with --compile_only")
  p.add_argument("--dtype", default="bfloat16", help="with --compile_only")
  args = p.parse_args(argv)
  if not args.compile_only and not (args.ckpt and args.data and args.out):
    p.error("--ckpt, --data and --out are required (except with --compile_only)")
  if args.temperature < 0 or not 0 < args.top_p <= 1:
    p.error(f"need --temperature >= 0 and 0 < --top_p <= 1, got {args.temperature}, "
            f"{args.top_p}")
  try:  # the prompt asked, by name, so that run.json says which and a change starts over
    args.prompt = score.prompt_choice(args.benchmark, args.prompt).get("prompt", "")
  except ValueError as e:
    p.error(f"--prompt: {e}")
  _follow_the_model(args)
  return args


def _follow_the_model(args) -> None:
  """--ckpt a trainer's workdir: its model/ folder (as `data_prep.score` and `init_from` read
  it). --template and --image_aspect not given: as the checkpoint's folder records its training
  (`checkpoint.recorded_inputs`), else LLaVA-1.5's; resolved here, so run.json says which."""
  from mathvlm import checkpoint
  recorded = {}
  if not args.compile_only:
    args.ckpt = checkpoint.model_dir(args.ckpt)
    recorded = checkpoint.recorded_inputs(args.ckpt)
  args.template = checkpoint.input_setting("template", args.template, recorded, "vicuna_v1",
                                           args.ckpt)
  args.image_aspect = checkpoint.input_setting("image_aspect", args.image_aspect, recorded,
                                               "pad", args.ckpt)


def _load(args):
  """(problems, places, model, cfg, encoder, mesh) for a run. places: each problem's position
  in the whole benchmark file, which names its sampling key (`generate_responses`' index), so
  --variants, which drops problems before it, does not change what a problem samples."""
  from tokenizers import Tokenizer

  from mathvlm.eval import distributed
  tok_path = args.tokenizer or os.path.join(args.ckpt, "tokenizer.json")
  if not os.path.exists(tok_path):
    raise SystemExit(f"no tokenizer at {tok_path}: save tokenizer.json next to the checkpoint or "
                     "pass --tokenizer")
  ann = annotations_path(args.benchmark, args.data, args.split)
  kwargs = score.prompt_choice(args.benchmark, args.prompt)
  problems = score.load_problems(args.benchmark, ann, args.images, **kwargs)
  places = [i for i, p in enumerate(problems)
            if not args.variants or p.meta.get("variant", 0) < args.variants]
  places = places[:args.limit] if args.limit else places
  problems = [problems[i] for i in places]
  mesh = distributed.make_mesh(distributed.MeshSpec.parse(args.mesh))
  model, cfg = distributed.load_sharded(args.ckpt, mesh)
  encoder = Encoder(Tokenizer.from_file(tok_path), cfg.image_token_id, cfg.image_seq_len,
                    cfg.text.max_position_embeddings - args.max_new_tokens, cfg.text.eos_token_id)
  return problems, places, model, cfg, encoder, mesh


def main(argv: list[str] | None = None) -> dict | None:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO)
  from mathvlm.eval import distributed
  distributed.init_processes(args.coordinator, args.num_processes, args.process_id,
                             args.fake_devices, args.distributed)
  if args.compile_only:
    mesh = distributed.make_mesh(distributed.MeshSpec.parse(args.mesh))
    report = distributed.compile_only(args.preset, mesh, batch=args.batch,
                                      prompt_len=args.prompt_len,
                                      max_new_tokens=args.max_new_tokens, dtype=args.dtype)
    distributed.print_report(report)
    return report
  import jax
  t0 = time.time()
  problems, places, model, cfg, encoder, mesh = _load(args)
  lead = jax.process_index() == 0
  done = answered(args.out, run_signature(args, encoder.tok), args.restart) if lead else {}
  need = np.flatnonzero(todo_mask(problems, done))
  index, todo = [places[i] for i in need], [problems[i] for i in need]
  field = _ID_FIELD[args.benchmark]
  out_file = (open(os.path.join(args.out, "responses.jsonl"), "a", encoding="utf-8")
              if lead else None)

  def save(chunk, texts):
    if out_file is not None:
      out_file.writelines(json.dumps({field: p.pid, "response": r}, ensure_ascii=False) + "\n"
                          for p, r in zip(chunk, texts))
      out_file.flush()

  t1 = time.time()
  new = generate_responses(model, cfg, encoder, todo, template=args.template,
                           batch_size=args.batch, max_new_tokens=args.max_new_tokens,
                           temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                           mesh=mesh, on_batch=save, image_aspect=args.image_aspect,
                           index=index)
  seconds = time.time() - t1
  if encoder.truncated:
    log.warning("%d prompts were longer than the model's context and lost their start",
                encoder.truncated)
  if not lead:
    return None
  out_file.close()
  done.update({p.pid: r for p, r in zip(todo, new)})
  return _score_and_report(args, problems, done, len(todo), seconds, t0, encoder.truncated)


def _score_and_report(args, problems: list[Problem], done: dict[str, str], generated: int,
                      seconds: float, t0: float, truncated: int = 0) -> dict:
  """Scores every problem's response, writes the files, prints and returns the summary;
  `prompts_truncated` counts this run's prompts that lost their start to the context (logged
  too), so a score over cut questions says so where its numbers are kept."""
  field = _ID_FIELD[args.benchmark]
  records = [{field: p.pid, "response": done[p.pid]} for p in problems if p.pid in done]
  scores, outputs = score.score_responses(args.benchmark, problems, records, source=args.out,
                                          engine_judge=args.engine_judge)
  paths = score.write_outputs(args.benchmark, scores, outputs,
                              os.path.join(args.out, "scores.json"))
  summary = {"all": scores["all"], "generated": generated,
             "resumed": len(problems) - generated,
             "prompts_truncated": truncated,
             "problems_per_second": round(generated / seconds, 3) if generated else None,
             "seconds": round(time.time() - t0, 1), "files": paths}
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
