"""Input pipeline throughput: ours (ArrayRecord -> grain, templates and masks) against a LLaVA-style
loader (JSON + image files -> LazySupervisedDataset -> torch DataLoader) at equal worker counts, on
the same MAVIS-engine diagrams, tokenizer and template, at LLaVA-1.5's 336 px. Both end with
batches ready for the step (ours ships uint8 images that the step normalises on the device; the
reference ships normalised float32 tensors). Prints JSON.

  python -m benchmarks.data_pipeline [--n 1024] [--workers 2] [--batch 16] [--no_prepared]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _make_data(tmp: str, n: int, prepared: bool):
  env = {**os.environ, "PYTHONPATH": ROOT}
  for args in (["data_prep.engine", "--domain", "all", "--n", str(n), "--out", f"{tmp}/engine",
                "--seed", "0", "--workers", "2"],
               ["data_prep.mavis_caption", "--json", f"{tmp}/engine/caption.json", "--images",
                f"{tmp}/engine", "--out", f"{tmp}/built", "--no_progress", "--workers", "2"]
               + (["--image_size", "336"] if prepared else [])):
    subprocess.run([sys.executable, "-m", *args], check=True, cwd=ROOT, env=env,
                   capture_output=True)
  import sentencepiece as spm
  from transformers import LlamaTokenizer
  from mathvlm.data import templates
  captions = [c["conversations"][1]["value"] for c in json.load(open(f"{tmp}/engine/caption.json"))]
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(captions + [templates.VICUNA_SYSTEM] * 10),
      model_prefix=f"{tmp}/tokenizer", vocab_size=1000, model_type="bpe", character_coverage=1.0,
      bos_id=1, eos_id=2, unk_id=0, pad_id=-1, byte_fallback=True, minloglevel=2)
  tok = LlamaTokenizer.from_pretrained(tmp, legacy=False, add_bos_token=True)
  tok.pad_token = tok.unk_token
  return tok


WARM = 8  # batches before the steady rate is timed


def _rate(make, warm: int = WARM) -> tuple[float, float]:
  """(steady examples/s after `warm` batches, seconds to the first batch). Steady state is what a
  training run sees; start-up (grain spawns workers that import jax, torch forks) is reported
  apart. The consumer takes batches as fast as they come, so prefetch buffers cannot hide work."""
  t0 = time.perf_counter()
  it = iter(make())
  next(it)
  first = time.perf_counter() - t0
  for _ in range(warm - 1):
    next(it)
  t, seen = time.perf_counter(), 0
  for b in it:
    seen += len(b["input_ids"])
  return seen / (time.perf_counter() - t), first


def main(argv=None) -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=1024)
  p.add_argument("--workers", type=int, default=2)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--no_prepared", action="store_true",
                 help="store original images (resize in the pipeline, as the reference does)")
  a = p.parse_args(argv)
  if a.n < a.batch * (WARM + 1):  # else a bare StopIteration once the data runs out
    p.error(f"--n {a.n}: the rate is timed after {WARM} batches of --batch {a.batch}, so --n "
            f"must be at least {a.batch * (WARM + 1)}")
  from absl import flags
  flags.FLAGS(sys.argv[:1])  # grain's worker processes read absl flags
  import grain
  import torch
  from transformers import CLIPImageProcessor

  from benchmarks.llava_reference import LazySupervisedDataset, collate
  from mathvlm.data.records import read
  from mathvlm.data.conversations import ConversationSource
  from mathvlm.data.pipeline import make_dataset

  torch.set_num_threads(1)
  with tempfile.TemporaryDirectory() as tmp:
    tok = _make_data(tmp, a.n, not a.no_prepared)
    processor = CLIPImageProcessor(size={"shortest_edge": 336},
                                   crop_size={"height": 336, "width": 336})
    ref = LazySupervisedDataset(f"{tmp}/engine/caption.json", f"{tmp}/engine", tok, processor)
    loader = torch.utils.data.DataLoader(
        ref, batch_size=a.batch, shuffle=True, num_workers=a.workers,
        collate_fn=functools.partial(collate, pad_id=tok.pad_token_id))
    src = ConversationSource(read(f"{tmp}/built", "mavis_caption"), tokenizer=tok,
                             template="vicuna_v1", image_size=336, image_token_id=999,
                             image_seq_len=576, max_len=1024)
    def ours_epoch():
      ds = make_dataset(src, global_batch=a.batch, seed=0).to_iter_dataset()
      if a.workers:
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=a.workers))
      return ds

    (ours, ours_first), (llava, llava_first) = _rate(ours_epoch), _rate(lambda: loader)
    print(json.dumps({"examples": a.n, "workers": a.workers, "batch": a.batch, "image_px": 336,
                      "images_prepared_at_build": not a.no_prepared,
                      "ours_examples_per_s": round(ours, 1),
                      "llava_style_examples_per_s": round(llava, 1),
                      "speedup": round(ours / llava, 2),
                      "seconds_to_first_batch": {"ours": round(ours_first, 1),
                                                 "llava_style": round(llava_first, 1)}}, indent=2))


if __name__ == "__main__":
  main()
