"""LoRA adapters start as PEFT's do, so a recipe's rank, alpha and lr mean what they mean there."""

import math

import numpy as np
import torch
from flax import nnx

from mathvlm.models.llm import LlamaConfig, LlamaForCausalLM
from mathvlm.models.lora import add_lora


def test_adapters_start_as_peft_initialises_them():
  """A ~ U(+-1/sqrt(din)) (PEFT: kaiming_uniform_(a=sqrt(5)) on A [rank, din]), B = 0, for stacked
  adapters (one per layer, their own din: d for q_proj, the MLP width for down_proj) and a plain
  one (lm_head)."""
  cfg = LlamaConfig(vocab_size=64, hidden_size=256, intermediate_size=768, num_layers=2,
                    num_heads=4, num_kv_heads=2)
  model = LlamaForCausalLM(cfg, rngs=nnx.Rngs(0))
  add_lora(model, r"(q_proj|down_proj|lm_head)$", 8, 16.0)
  peft_a = torch.empty(8, 768)
  torch.nn.init.kaiming_uniform_(peft_a, a=math.sqrt(5))
  assert abs(float(peft_a.std()) * math.sqrt(3 * 768) - 1) < 0.1   # the reference's own scale
  for dense, din in ((model.layers.self_attn.q_proj, 256), (model.layers.mlp.down_proj, 768),
                     (model.lm_head, 256)):
    a, b = np.asarray(dense.lora.lora_a[...]), np.asarray(dense.lora.lora_b[...])
    assert a.shape[-2:] == (din, 8) and not b.any()
    assert np.abs(a).max() <= 1 / math.sqrt(din)
    assert abs(a.std() * math.sqrt(3 * din) - 1) < 0.1, (din, a.std())   # uniform: bound/sqrt(3)
