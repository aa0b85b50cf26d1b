"""Model-stack parity: the smallest real end-to-end run of conversion and generation, offline.

1. trains a small BPE tokenizer on MATH-Vision testmini questions (../shared/data) and builds a tiny
   random LLaVA in transformers (PyTorch) around it, saved as a Hugging Face folder;
2. converts it (HF -> orbax checkpoint -> our Flax model) and back to HF, checking the round trip;
3. runs real MATH-Vision images and questions through both, compares logits, and generates with
   the KV cache, checking the tokens against transformers' `generate`.

The weights are random, so the text is gibberish: what the demo shows is that the numbers match.
`make demo` (mathvlm/demo/__main__.py) is the main job; this is its model-stack companion:
  python -m mathvlm.demo.parity --out out/parity
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from mathvlm.demo.data import SHARED


def load_problems(n: int) -> list[dict]:
  path = os.path.join(SHARED, "math_v", "testmini.jsonl")
  if not os.path.exists(path):
    raise SystemExit(f"missing {path}: the demo reads MATH-Vision testmini from ../shared/data")
  with open(path) as f:
    rows = [json.loads(line) for line in f]
  return rows[:n], [r["question"] for r in rows]


def train_tokenizer(texts: list[str], vocab_size: int):
  from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
  tok = Tokenizer(models.BPE(unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[
      "<pad>", "<s>", "</s>", "<unk>", "<image>"], show_progress=False)
  tok.train_from_iterator(texts, trainer)
  return tok


def tiny_reference(tok, seed: int, hf_dir: str):
  """A tiny random LLaVA in transformers around `tok`, saved as a Hugging Face folder."""
  import torch
  import transformers as tf
  pad, bos, image_id, eos = (tok.token_to_id(t) for t in ("<pad>", "<s>", "<image>", "</s>"))
  torch.manual_seed(seed)
  hf_cfg = tf.LlavaConfig(
      vision_config=tf.CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                        num_attention_heads=4, image_size=56, patch_size=14),
      text_config=tf.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=96,
                                 intermediate_size=192, num_hidden_layers=4,
                                 num_attention_heads=6, num_key_value_heads=2,
                                 bos_token_id=bos, eos_token_id=eos, pad_token_id=pad),
      image_token_id=image_id)
  ref = tf.LlavaForConditionalGeneration(hf_cfg).eval()
  with torch.no_grad():  # HF initialises norms to 1 and biases to 0; perturb so every tensor counts
    for _, prm in ref.named_parameters():
      prm.add_(0.05 * torch.randn(prm.shape))
  ref.save_pretrained(hf_dir)
  return ref


def round_trip(hf_dir: str, out: str):
  """HF -> orbax checkpoint -> Flax -> HF: (our model, its config, whether the tensors came back
  bit for bit)."""
  from safetensors.numpy import load_file

  from mathvlm import checkpoint, hf
  ckpt = os.path.join(out, "ckpt")
  model, cfg = hf.load_llava(hf_dir)
  checkpoint.save_model(model, cfg, ckpt)
  model, cfg = checkpoint.load_model(ckpt)
  back = os.path.join(out, "hf_export")
  hf.export_hf(model, cfg, back)
  a = load_file(os.path.join(hf_dir, "model.safetensors"))
  b = load_file(os.path.join(back, "model.safetensors"))
  exact = sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
  print(f"[3/4] converted HF -> orbax ({ckpt}) -> Flax -> HF ({back}); "
        f"round trip bit-exact: {exact}")
  return model, cfg, exact


def batch(problems: list[dict], tok, cfg):
  """Real MATH-Vision images and left-padded prompts (as generation wants): ids, mask, images."""
  from PIL import Image

  from mathvlm.data.image import preprocess
  pad, bos, image_id = (tok.token_to_id(t) for t in ("<pad>", "<s>", "<image>"))
  size = cfg.vision.image_size
  images = np.stack([preprocess(Image.open(os.path.join(SHARED, "math_v", r["image"])), size, "pad")
                     for r in problems])
  prompts = [[bos] + [image_id] * cfg.image_seq_len +
             tok.encode("\nUSER: " + r["question"].replace("<image1>", "").strip()[:200]
                        + " ASSISTANT:").ids for r in problems]
  width = max(len(x) for x in prompts)
  ids = np.full((len(prompts), width), pad, np.int64)
  mask = np.zeros_like(ids)
  for i, x in enumerate(prompts):
    ids[i, width - len(x):], mask[i, width - len(x):] = x, 1
  return ids, mask, images


def compare(ref, model, ids, mask, images, new_tokens: int, tok):
  """Logits' largest difference relative to the reference's largest logit, our greedy tokens
  with the KV cache, whether they equal transformers.generate's, and the seconds ours took."""
  import torch

  from mathvlm.generate import generate
  pad, eos = tok.token_to_id("<pad>"), tok.token_to_id("</s>")
  pixels = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    ref_logits = ref(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                     pixel_values=pixels).logits.numpy()
  ours = np.asarray(model(ids, images, mask))
  rel = float(np.abs(ours - ref_logits)[mask.astype(bool)].max() / np.abs(ref_logits).max())
  t = time.time()
  out = generate(model, ids, mask, images, max_new_tokens=new_tokens, eos_token_id=eos,
                 pad_token_id=pad)
  tokens = np.asarray(out.tokens)
  seconds = time.time() - t
  with torch.no_grad():
    hf_tokens = ref.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                             pixel_values=pixels, max_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=eos, pad_token_id=pad)[:, ids.shape[1]:].numpy()
  same = bool(np.array_equal(tokens[:, :hf_tokens.shape[1]], hf_tokens))
  return rel, tokens, same, seconds


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", default="out/parity")
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--new_tokens", type=int, default=16)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  t0 = time.time()

  problems, all_questions = load_problems(args.batch)
  tok = train_tokenizer(all_questions, 512)
  tok.save(os.path.join(args.out, "tokenizer.json"))
  print(f"[1/4] tokenizer: BPE, {tok.get_vocab_size()} tokens, trained on "
        f"{len(all_questions)} MATH-Vision questions")

  hf_dir = os.path.join(args.out, "hf")
  ref = tiny_reference(tok, args.seed, hf_dir)
  n_params = sum(p.numel() for p in ref.parameters())
  print(f"[2/4] tiny random LLaVA in transformers: {n_params:,} parameters -> {hf_dir}")

  model, cfg, exact = round_trip(hf_dir, args.out)

  ids, mask, images = batch(problems, tok, cfg)
  rel, tokens, same, gen_s = compare(ref, model, ids, mask, images, args.new_tokens, tok)
  print(f"[4/4] {len(problems)} MATH-Vision problems, images padded and resized to "
        f"{cfg.vision.image_size}px, {ids.shape[1]}-token left-padded prompts")
  print(f"      logits vs transformers: max |diff| / max |ref| = {rel:.2e}")
  print(f"      greedy {args.new_tokens} tokens, KV cache: identical to transformers.generate: "
        f"{same} ({gen_s:.2f}s incl. compile)")
  pad = tok.token_to_id("<pad>")
  for r, row in zip(problems, tokens):
    print(f"      #{r['id']:>4}: {tok.decode([int(t) for t in row if t != pad])!r}")
  summary = dict(parameters=n_params, round_trip_exact=exact, logits_rel_diff=rel,
                 greedy_identical=same, seconds=round(time.time() - t0, 1))
  with open(os.path.join(args.out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  print(json.dumps(summary))
  if not (exact and same and rel < 1e-4):
    raise SystemExit("demo check failed: see the numbers above")


if __name__ == "__main__":
  main()
