"""Model-stack figures, side by side with transformers/PyTorch in one run; prints JSON.

  python -m benchmarks.model_stack [--quick]

- forward: a ~60M-parameter Llama (same weights in both), tokens/s, GFLOP/s and MFU against this
  machine's measured matmul peak (../shared/docs/ENV.md: jax f32 ~420, bf16->f32 ~785 GFLOP/s;
  torch f32 ~180, bf16 ~860) or, on a GPU, the device's bf16 dense peak given by --peak_gflops;
- compile: seconds to compile the forward of 2- and 16-layer models (scanned layers);
- decode: greedy generation tokens/s with the KV cache, ours vs transformers' generate.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

CPU_PEAK_GFLOPS = {"jax_float32": 420.0, "jax_bfloat16": 785.0, "torch_float32": 180.0,
                   "torch_bfloat16": 860.0}


def timeit(fn, repeats: int) -> float:
  fn()  # warm (compile)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def forward_flops(cfg, batch: int, seq: int) -> float:
  d, f, h = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
  per_layer = 2 * d * (cfg.num_heads * h * 2 + cfg.num_kv_heads * h * 2) + 2 * 3 * d * f
  attn = 2 * 2 * seq * cfg.num_heads * h  # scores + weighted sum, per token, full (not causal)
  return batch * seq * (cfg.num_layers * (per_layer + attn) + 2 * d * cfg.vocab_size)


def main(argv=None) -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
  p.add_argument("--peak_gflops", type=float, default=None, help="device peak for MFU")
  args = p.parse_args(argv)

  import jax
  import jax.numpy as jnp
  import torch
  import transformers as tf
  from flax import nnx

  from mathvlm import checkpoint, hf
  from mathvlm.generate import generate
  from mathvlm.models.llm import LlamaConfig, LlamaForCausalLM

  torch.set_num_threads(os.cpu_count() or 1)
  layers, batch, seq, repeats = (4, 2, 128, 3) if args.quick else (8, 4, 256, 5)
  hf_cfg = tf.LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1408,
                          num_hidden_layers=layers, num_attention_heads=8, num_key_value_heads=4,
                          bos_token_id=1, eos_token_id=2, pad_token_id=0)
  torch.manual_seed(0)
  ref = tf.LlamaForCausalLM(hf_cfg).eval()
  with torch.no_grad():  # HF's init (std 0.02, unit norms) gives near-tied logits over 32k tokens,
    for prm in ref.parameters():  # which makes greedy identity a coin toss; spread them out
      prm.add_(0.03 * torch.randn(prm.shape))
  out: dict = {"device": str(jax.devices()[0].device_kind), "jax": jax.__version__,
               "torch": torch.__version__, "batch": batch, "seq": seq}
  with tempfile.TemporaryDirectory() as d:
    ref.save_pretrained(d)
    models = {dt: hf.load_hf(d, "float32", compute_dtype=dt)[0]
              for dt in ("float32", "bfloat16")}
  cfg = models["float32"].cfg
  out["parameters"] = sum(p.numel() for p in ref.parameters())
  flops = forward_flops(cfg, batch, seq)
  ids = np.random.RandomState(0).randint(3, 32000, (batch, seq))
  on_cpu = jax.devices()[0].platform == "cpu"

  forward = {}
  for dt, model in models.items():
    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    x = jnp.asarray(ids)
    sec = timeit(lambda: fn(state, x).block_until_ready(), repeats)
    peak = args.peak_gflops or (CPU_PEAK_GFLOPS[f"jax_{dt}"] if on_cpu else None)
    forward[f"jax_{dt}"] = _row(sec, flops, batch * seq, peak)
  for dt, tdt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
    m = copy.deepcopy(ref).to(tdt)  # a copy: casting `ref` itself would round its weights
    x = torch.tensor(ids)
    with torch.no_grad():
      sec = timeit(lambda: m(x).logits, repeats)
    forward[f"torch_{dt}"] = _row(sec, flops, batch * seq, CPU_PEAK_GFLOPS[f"torch_{dt}"])
  out["forward"] = forward

  compile_s = {}
  for n in (2, 16):
    small = LlamaForCausalLM(LlamaConfig(vocab_size=1024, hidden_size=256, intermediate_size=512,
                                         num_layers=n, num_heads=4, num_kv_heads=2),
                             rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(small)
    lowered = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)).lower(state, jnp.ones((2, 64),
                                                                                     jnp.int32))
    t = time.perf_counter()
    lowered.compile()
    compile_s[f"layers_{n}"] = round(time.perf_counter() - t, 3)
  compile_s["ratio_16_over_2"] = round(compile_s["layers_16"] / compile_s["layers_2"], 2)
  out["compile_seconds"] = compile_s

  new, prompt = (16, 32) if args.quick else (64, 64)
  pids = np.random.RandomState(1).randint(3, 32000, (batch, prompt))
  mask = np.ones_like(pids)
  model = models["float32"]
  run = lambda: np.asarray(generate(model, pids, mask, max_new_tokens=new, eos_token_id=-1).tokens)
  ours_s = timeit(run, max(1, repeats // 2))
  with torch.no_grad():
    hf_run = lambda: ref.generate(input_ids=torch.tensor(pids), attention_mask=torch.tensor(mask),
                                  max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                  pad_token_id=0)
    hf_s = timeit(hf_run, max(1, repeats // 2))
    same = bool(np.array_equal(run(), hf_run()[:, prompt:].numpy()))
  out["decode"] = {"new_tokens": new, "prompt": prompt, "greedy_identical": same,
                   "jax_float32_tokens_per_s": round(batch * new / ours_s, 1),
                   "torch_float32_tokens_per_s": round(batch * new / hf_s, 1)}
  json.dump(out, sys.stdout, indent=2)
  print()


def _row(sec: float, flops: float, tokens: int, peak: float | None) -> dict:
  gflops = flops / sec / 1e9
  row = {"ms": round(sec * 1e3, 2), "tokens_per_s": round(tokens / sec, 1),
         "gflops": round(gflops, 1)}
  if peak:
    row["mfu"] = round(gflops / peak, 3)
  return row


if __name__ == "__main__":
  main()
