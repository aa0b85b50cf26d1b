"""Convert checkpoints: Hugging Face folders <-> our model checkpoints.

  python -m mathvlm.convert --from-hf HF_DIR --to CKPT_DIR [--clip-dir DIR] [--dtype float32]
  python -m mathvlm.convert --from-ckpt CKPT_DIR --to-hf HF_DIR [--layout original]
                           [--image-aspect-ratio pad|square]

The formats are `mathvlm.hf` (safetensors, the layouts it lists) and `mathvlm.checkpoint`
(`save_model` / `load_model`, orbax). Bad input (a flag, a missing or damaged file, a config
field the model refuses or of the wrong type, a layout that cannot hold the model) ends with one
line naming it and exit status 1 (2 for a flag argparse refuses); anything else is a bug and
shows its traceback.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from mathvlm import checkpoint, hf
from mathvlm.models.layers import DTYPES

LAYOUTS = {"llava-hf": "llava", "original": "llava_original"}  # --layout -> mathvlm.hf's names


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m mathvlm.convert", description=__doc__.split("\n")[0])
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--from-hf", help="Hugging Face folder (config.json + safetensors)")
  src.add_argument("--from-ckpt", help="mathvlm checkpoint folder")
  p.add_argument("--to", help="output mathvlm checkpoint folder (with --from-hf)")
  p.add_argument("--to-hf", help="output Hugging Face folder (a LLaVA in the layout --layout "
                                  "names)")
  p.add_argument("--layout", choices=sorted(LAYOUTS),
                 help="a LLaVA's layout with --to-hf: llava-hf (LlavaForConditionalGeneration) or "
                      "original (haotian-liu/LLaVA's LlavaLlamaForCausalLM, Math-LLaVA's). "
                      "Default: llava-hf, or original for a model read from the original layout "
                      "(its image id -200 has no llava-hf form)")
  p.add_argument("--vision-tower",
                 help="with --layout original: the CLIP to name as mm_vision_tower instead of "
                      "writing the tower (only for an untrained tower; a local folder is checked "
                      "to hold it). Default: the source's own name where the tower came from a "
                      "separate CLIP unchanged (--from-hf), else the tower is written to "
                      "HF_DIR/vision_tower")
  p.add_argument("--image-aspect-ratio", choices=hf.IMAGE_ASPECT_RATIOS,
                 help="with --layout original: LLaVA's image_aspect_ratio, how the model's images "
                      "were shaped: pad (padded to a square, data.image_aspect pad) or square "
                      "(CLIP's resize and centre crop, data.image_aspect crop). Default: as "
                      "the source was trained (a trainer's export records data.image_aspect), "
                      "else the source's own (an original-layout import), else pad")
  p.add_argument("--clip-dir", help="CLIP checkpoint for the original LLaVA layout")
  p.add_argument("--dtype", default=None, choices=sorted(DTYPES),
                 help="parameter dtype (default: float32 from a Hugging Face folder, the "
                      "checkpoint's own with --from-ckpt)")
  p.add_argument("--strict", action="store_true", help="unused checkpoint tensors are an error")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  try:
    if not (args.to or args.to_hf):  # else nothing would be written, silently
      p.error("give --to CKPT_DIR and/or --to-hf HF_DIR")
    if args.from_hf:
      model, cfg = hf.load_hf(args.from_hf, args.dtype or "float32", clip_dir=args.clip_dir,
                              strict=args.strict)
    else:  # --dtype casts here too (it was ignored with --from-ckpt)
      runtime = {} if args.dtype is None else dict(param_dtype=args.dtype, dtype=args.dtype)
      model, cfg = checkpoint.load_model(args.from_ckpt, **runtime)
    n = sum(int(np.prod(v.shape)) for _, v in hf.param_paths(model))
    source = args.from_hf or args.from_ckpt  # its tokenizer files travel with the weights
    inputs = checkpoint.recorded_inputs(args.from_ckpt) if args.from_ckpt else {}
    if args.to:  # how a trained model was fed travels with it (`checkpoint.recorded_inputs`)
      checkpoint.save_model(model, cfg, args.to, tokenizer=source, inputs=inputs)
      print(f"wrote {type(model).__name__} ({n:,} parameters) to {args.to}")
    if args.to_hf:
      layout = hf.export_layout(model, cfg, LAYOUTS.get(args.layout))
      tower = args.vision_tower
      if tower is None and layout == "llava_original" and args.from_hf:
        tower = hf.separate_tower_name(args.from_hf, args.clip_dir)
      aspect = args.image_aspect_ratio
      if aspect is None and layout == "llava_original":
        aspect = hf.llava_aspect_ratio(inputs.get("image_aspect"), args.from_ckpt)
      hf.export_hf(model, cfg, args.to_hf, layout=layout,  # in the parameters' dtype, from above
                   vision_tower=tower, image_aspect_ratio=aspect)
      checkpoint.copy_tokenizer(source, args.to_hf)
      print(f"wrote {type(model).__name__} ({n:,} parameters) to {args.to_hf} ({layout} layout)")
  except checkpoint.CheckpointError as e:  # bad input, named (hf's and checkpoint's readers)
    raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
  main()
