"""Model presets: the architectures the papers train, and `tiny`/`demo` ones that run on a CPU.

Each model family in `mathvlm.models.registry` names its presets here; ask the registry
(`registry.preset(family, name, dtype=...)`), which applies runtime overrides (dtype, param_dtype,
remat, attention_impl) to every tower. Real weights come from `python -m mathvlm.convert`; the
presets let the trainer build abstract models (no allocation) for compile-only memory checks and let
sweeps name a size.
"""

from __future__ import annotations

import dataclasses

from mathvlm.models.clip_text import CLIPConfig, CLIPTextConfig
from mathvlm.models.llm import LlamaConfig
from mathvlm.models.pixels import DIAGRAM_MEAN, DIAGRAM_STD
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import LlavaConfig

# openai/clip-vit-large-patch14-336: LLaVA-1.5's and MAVIS's starting vision tower.
CLIP_L14_336 = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_layers=24,
                                num_heads=16, image_size=336, patch_size=14)


def _vicuna(hidden, inter, layers, heads) -> LlamaConfig:
  # llava-hf's Vicuna-v1.5 vocabulary: 32000 + <image> + padding to 32064.
  return LlamaConfig(vocab_size=32064, hidden_size=hidden, intermediate_size=inter,
                     num_layers=layers, num_heads=heads, num_kv_heads=heads, rms_norm_eps=1e-5,
                     max_position_embeddings=4096, pad_token_id=0)


TINY_VISION = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_layers=4, num_heads=4,
                               image_size=56, patch_size=14)
# The same tower trained from scratch on engine diagrams (`make demo`, the scorers' benchmark): its
# pixels are centred on diagram statistics, not CLIP's (mathvlm/models/pixels.py says why).
DIAGRAM_VISION = dataclasses.replace(TINY_VISION, image_mean=DIAGRAM_MEAN, image_std=DIAGRAM_STD)

# `make demo`: what two CPU cores train through all four stages in minutes. Its tokenizer is
# trained on engine text with <image> at id 3 and </s> at id 4 (mathvlm/demo/data.py), which ends
# a response (id 2, the Llama default, is its <unk>).
DEMO_TEXT = LlamaConfig(vocab_size=1024, hidden_size=128, intermediate_size=384, num_layers=4,
                        num_heads=4, num_kv_heads=2, max_position_embeddings=1024,
                        eos_token_id=4)

LLAVA_PRESETS = {
    "tiny": LlavaConfig(
        vision=TINY_VISION,
        text=LlamaConfig(vocab_size=1024, hidden_size=128, intermediate_size=256, num_layers=4,
                         num_heads=4, num_kv_heads=2, max_position_embeddings=1024),
        image_token_id=3),
    "demo": LlavaConfig(vision=DIAGRAM_VISION, text=DEMO_TEXT, image_token_id=3),
    "llava-1.5-7b": LlavaConfig(vision=CLIP_L14_336, text=_vicuna(4096, 11008, 32, 32)),
    "llava-1.5-13b": LlavaConfig(vision=CLIP_L14_336, text=_vicuna(5120, 13824, 40, 40)),
    # MAVIS: CLIP-Math (ViT-L/14-336 architecture) + MAmmoTH2-7B, a MistralForCausalLM.
    "mavis-7b": LlavaConfig(
        vision=CLIP_L14_336,
        text=LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                         num_layers=32, num_heads=32, num_kv_heads=8, rms_norm_eps=1e-5,
                         rope_theta=1e6, max_position_embeddings=32768, model_type="mistral",
                         sliding_window=None),
        image_token_id=32000 - 1),
}

# CLIP models for MAVIS stage 1 (CLIP-Math starts from openai/clip-vit-large-patch14-336).
CLIP_PRESETS = {
    "tiny": CLIPConfig(
        vision=TINY_VISION,
        text=CLIPTextConfig(vocab_size=1024, hidden_size=64, intermediate_size=128, num_layers=2,
                            num_heads=4, max_position_embeddings=64, eos_token_id=2),
        projection_dim=64),
    "demo": CLIPConfig(
        vision=DIAGRAM_VISION,
        text=CLIPTextConfig(vocab_size=1024, hidden_size=64, intermediate_size=128, num_layers=2,
                            num_heads=4, max_position_embeddings=128, eos_token_id=4),
        projection_dim=64),
    "clip-vit-l-336": CLIPConfig(vision=CLIP_L14_336, text=CLIPTextConfig(), projection_dim=768),
}

# Vision towers for Math-LLaVA's clarity / complexity scorers (a ViT-L/16 at 224 in the paper; here
# the CLIP architecture, so CLIP weights can initialise it). The head size comes from the data.
CLASSIFIER_PRESETS = {
    "tiny": TINY_VISION,
    "tiny-diagram": DIAGRAM_VISION,   # from scratch on diagrams (benchmarks/scorers.py)
    "vit-l-16-224": CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_layers=24,
                                     num_heads=16, image_size=224, patch_size=16),
}
