"""One full training step at LLaVA-1.5-7B's widths on a GPU: ours against transformers/PyTorch on
the same GPU, one process per side (each its own allocator), the same batch; prints JSON.

  python -m benchmarks.gpu_step [--layers 4] [--batch 4] [--seq 2048] [--repeats 5]
                                [--attention xla,cudnn] [--peak_tflops 989.4]

The shapes are LLaVA-1.5-7B's (Vicuna-7B: 4096 wide, MLP 11008, 32 heads, vocab 32000; CLIP
ViT-L/14-336: 24 layers, 576 image tokens; the 2-layer MLP projector) with `--layers` of the
LLM's 32 layers: all parameters train with AdamW and float32 states (16 bytes a parameter), which
for the whole 7B is ~112 GB, more than one GPU holds (FSDP's job, `configs/sft.py`); a layer's
work is the 7B's. Both sides keep float32 parameters and compute in bfloat16 (ours: dtype
bfloat16; the reference: `torch.autocast`), clip to 1.0 and run AdamW (torch's fused kernel).
The reference uses transformers' default attention (SDPA, which picks a flash kernel); ours runs
once per `--attention` implementation (`jax.nn.dot_product_attention`'s 'xla', which writes the
scores out, and 'cudnn', its fused flash kernel). MFU is the trainer's analytic step FLOPs
(`objectives.lm.flops`) over the median step, of the bf16 matmul peak measured in the same
process (an 8192^3 product; 512^3 on a CPU, `matmul_n`) and of the datasheet's dense bf16 peak
(`--peak_tflops`; H100 SXM).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from benchmarks import presets as P

CLIP_L_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                  num_attention_heads=16, image_size=336, patch_size=14)


def vicuna_7b(layers: int) -> dict:
  return dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
              num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=32,
              max_position_embeddings=4096)


def preset(layers: int, batch: int, seq: int) -> P.Preset:
  image_tokens = (336 // 14) ** 2
  return P.Preset(vision=CLIP_L_336, text=vicuna_7b(layers), batch=batch,
                  text_tokens=seq - image_tokens, image_token_id=31999)


def timed(run, repeats: int, sync) -> list[float]:
  """Seconds of each of `repeats` steps after two untimed ones (the compile, the allocator)."""
  for _ in range(2):
    run()
  sync()
  out = []
  for _ in range(repeats):
    t = time.perf_counter()
    run()
    sync()
    out.append(time.perf_counter() - t)
  return out


def matmul_n(on_gpu: bool) -> int:
  """The side of the square bf16 product that measures each side's matmul rate: 8192 on a GPU,
  512 on a CPU (`--smoke`), where 12 products of 8192^3 took minutes (the smoke run spent them
  all in this one measurement before the JAX side was given the reference's CPU size)."""
  return 8192 if on_gpu else 512


def jax_matmul_peak() -> tuple[int, float]:
  """(n, bf16 TFLOP/s of jax's n^3 product, the median of 10 after 2 untimed)."""
  import jax
  import jax.numpy as jnp
  n = matmul_n(jax.default_backend() == "gpu")
  a = jnp.ones((n, n), jnp.bfloat16)
  mm, last = jax.jit(lambda x: x @ x), []
  seconds = np.median(timed(lambda: last.append(mm(a)), 10,
                            lambda: jax.block_until_ready(last[-1])))
  return n, 2 * n ** 3 / seconds / 1e12


def side_ours(pre: P.Preset, attention: str, repeats: int) -> dict:
  import jax
  from flax import nnx

  from benchmarks.train_step import ours
  from mathvlm.models.layers import with_runtime
  from mathvlm.models.vlm import Llava
  cfg = with_runtime(P.ours_config(pre, "bfloat16"), attention_impl=attention)
  model = Llava(cfg, rngs=nnx.Rngs(0))
  data = P.batch(pre)
  run, flops, state = ours(model, data)
  del model

  def sync():
    jax.block_until_ready(state())

  seconds = timed(run, repeats, sync)
  n, matmul_tflops = jax_matmul_peak()
  stats = jax.devices()[0].memory_stats() or {}
  return dict(side=f"ours_{attention}", step_s=float(np.median(seconds)), steps_s=seconds,
              step_flops=float(flops), matmul_tflops=matmul_tflops, matmul_n=n,
              peak_gib=round(stats.get("peak_bytes_in_use", 0) / 2 ** 30, 2),
              attention_impl=cfg.text.attention_impl, device=jax.devices()[0].device_kind,
              jax=jax.__version__)


def side_ref(pre: P.Preset, repeats: int) -> dict:
  import torch
  import transformers as tf
  dev = "cuda" if torch.cuda.is_available() else "cpu"   # cpu: a smoke test of the script
  sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
  torch.manual_seed(0)
  ref = tf.LlavaForConditionalGeneration(P.hf_config(pre)).to(dev).train()
  data = P.batch(pre)
  opt = torch.optim.AdamW(ref.parameters(), lr=1e-5, weight_decay=0.0, eps=1e-8,
                          fused=dev == "cuda")
  ids = torch.from_numpy(data["input_ids"].astype(np.int64)).to(dev)
  labels = torch.where(torch.from_numpy(data["loss_mask"]).to(dev).bool(), ids, -100)
  pixels = torch.from_numpy(np.ascontiguousarray(
      data["pixel_values"].transpose(0, 3, 1, 2))).to(dev)
  mask = torch.from_numpy(data["attention_mask"].astype(np.int64)).to(dev)

  def run():
    with torch.autocast(dev, torch.bfloat16):
      out = ref(input_ids=ids, pixel_values=pixels, attention_mask=mask, labels=labels)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)

  seconds = timed(run, repeats, sync)
  n = matmul_n(dev == "cuda")
  a = torch.ones(n, n, dtype=torch.bfloat16, device=dev)
  peak = np.median(timed(lambda: a @ a, 10, sync))
  return dict(side="ref", step_s=float(np.median(seconds)), steps_s=seconds,
              matmul_tflops=2 * n ** 3 / peak / 1e12, matmul_n=n,
              peak_gib=round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if dev == "cuda"
              else None,
              attention_impl=ref.config._attn_implementation, torch=torch.__version__,
              transformers=tf.__version__)


def main(argv=None) -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--layers", type=int, default=4)
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--seq", type=int, default=2048)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--attention", default="xla,cudnn")
  p.add_argument("--peak_tflops", type=float, default=989.4,
                 help="the GPU's datasheet dense bf16 peak (H100 SXM: 989.4)")
  p.add_argument("--smoke", action="store_true",
                 help="benchmarks.presets' tiny shapes instead (a check of this script on a CPU)")
  p.add_argument("--side", default="", help=argparse.SUPPRESS)  # a child process's one side
  args = p.parse_args(argv)
  pre = P.PRESETS["tiny"] if args.smoke else preset(args.layers, args.batch, args.seq)
  if args.side:
    out = side_ref(pre, args.repeats) if args.side == "ref" else side_ours(
        pre, args.side, args.repeats)
    print("RESULT " + json.dumps(out), flush=True)
    return
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
  sides = {}
  for side in [*args.attention.split(","), "ref"]:
    res = subprocess.run([sys.executable, "-m", "benchmarks.gpu_step", *(argv or sys.argv[1:]),
                          "--side", side], env=env, text=True, capture_output=True)
    lines = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    sides[side] = (json.loads(lines[-1][7:]) if lines else
                   {"error": (res.stdout + res.stderr)[-2000:]})
  flops = next((s["step_flops"] for s in sides.values() if "step_flops" in s), None)
  for s in sides.values():
    if flops and "step_s" in s:
      s["tflops"] = round(flops / s["step_s"] / 1e12, 1)
      s["mfu_of_datasheet"] = round(flops / s["step_s"] / (args.peak_tflops * 1e12), 3)
      s["mfu_of_measured_matmul"] = round(flops / s["step_s"] / (s["matmul_tflops"] * 1e12), 3)
      s["tokens_per_s"] = round(pre.batch * pre.seq / s["step_s"], 1)
  ratios = {f"ref_over_{k}": round(sides["ref"]["step_s"] / s["step_s"], 3)
            for k, s in sides.items() if k != "ref" and "step_s" in s and "step_s" in sides["ref"]}
  print(json.dumps(dict(layers=args.layers, batch=pre.batch, seq=pre.seq,
                        step_gflop=round(flops / 1e9, 1) if flops else None,
                        peak_tflops_datasheet=args.peak_tflops, sides=sides, **ratios)))


if __name__ == "__main__":
  main()
