"""Greedy decoding with a KV cache: ours (`mathvlm.generate.generate`) against transformers'
`generate` on the same LLaVA weights and prompts (an image and a short question), batch 1 and 8,
128 new tokens, in one process, alternating runs; prints JSON.

  python -m benchmarks.generate --preset small [--new_tokens 128] [--repeats 3] [--dtype bfloat16]

Tokens/s count generated tokens only (batch x new tokens over the whole call: prefill included,
as a user waits for it). Both sides decode all `new_tokens` (no EOS), and the tokens are compared.
`--dtype bfloat16` stores and computes both sides in bf16 (ours: `load_hf(..., "bfloat16")`,
torch: `model.to(torch.bfloat16)`); their roundings differ, so greedy tokens part where two
logits are close (random weights make that common): `greedy_agreement` is the fraction equal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from benchmarks import presets as P


def prompts(preset: P.Preset, batch: int, text: int = 31, seed: int = 1):
  """[BOS, image tokens, `text` question tokens] per row, and normalised images."""
  rs = np.random.RandomState(seed)
  ids = rs.randint(10, preset.text["vocab_size"] - 1, (batch, 1 + preset.image_tokens + text))
  ids[:, 0] = 1
  ids[:, 1:1 + preset.image_tokens] = preset.image_token_id
  size = preset.vision["image_size"]
  return ids.astype(np.int32), rs.randn(batch, size, size, 3).astype(np.float32)


def sides(model, ref, ids, pixels, new: int):
  """(ours, reference): each a function returning the new tokens [batch, new] as numpy."""
  import torch

  from mathvlm.generate import generate
  mask = np.ones_like(ids)
  t_ids, t_mask = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask.astype(np.int64))
  t_px = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))).to(ref.dtype)

  def ours():
    return np.asarray(generate(model, ids, mask, pixels, max_new_tokens=new, eos_token_id=-1,
                               pad_token_id=0).tokens)

  def reference():
    with torch.no_grad():
      out = ref.generate(input_ids=t_ids, attention_mask=t_mask, pixel_values=t_px,
                         max_new_tokens=new, min_new_tokens=new, do_sample=False,
                         pad_token_id=0)
    return out[:, ids.shape[1]:].numpy()

  return ours, reference


def phases(prompt_len: int, new: int):
  """Our decode's loops on this machine: [(cache block written, step ending the loop)] when the
  steps hold the KV cache as blocks (one CPU device, `mathvlm.generate.block_phases`), else None
  (one loop)."""
  from mathvlm.generate import block_phases, cache_slots
  from mathvlm.models.layers import one_cpu_device
  return block_phases(prompt_len, new, cache_slots(prompt_len, new)) if one_cpu_device() else None


def main(argv=None) -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--preset", choices=sorted(P.PRESETS), default="small")
  p.add_argument("--new_tokens", type=int, default=128)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--batches", default="1,8")
  p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                 help="both sides' parameter and compute dtype")
  p.add_argument("--no_runtime", action="store_true", help="skip mathvlm.runtime.configure")
  args = p.parse_args(argv)
  if not args.no_runtime:
    from mathvlm import runtime
    runtime.configure("cpu")
  import torch
  torch.set_num_threads(os.cpu_count() or 1)

  preset = P.PRESETS[args.preset]
  ref = P.hf_llava(preset).eval()
  model, _ = P.ours_from_hf(ref, args.dtype, param_dtype=args.dtype)
  ref = ref.to(getattr(torch, args.dtype))
  out = dict(preset=args.preset, dtype=args.dtype, new_tokens=args.new_tokens,
             repeats=args.repeats)
  for b in (int(x) for x in args.batches.split(",")):
    ids, pixels = prompts(preset, b)
    ours, reference = sides(model, ref, ids, pixels, args.new_tokens)
    a, r = ours(), reference()   # also the warm-up (compile)
    sec = P.alternate({"ours": ours, "ref": reference}, args.repeats, warm=False)
    tokens = b * args.new_tokens
    out.update({f"ours_tokens_per_s_b{b}": round(tokens / sec["ours"], 1),
                f"ref_tokens_per_s_b{b}": round(tokens / sec["ref"], 1),
                f"ratio_b{b}": round(sec["ref"] / sec["ours"], 3),
                f"greedy_identical_b{b}": bool(np.array_equal(a, r)),
                f"greedy_agreement_b{b}": round(float(np.mean(a == r)), 4),
                f"prompt_len_b{b}": ids.shape[1],
                f"cache_phases_b{b}": phases(ids.shape[1], args.new_tokens)})
  out.update(P.load())
  json.dump(out, sys.stdout)
  print()


if __name__ == "__main__":
  main()
