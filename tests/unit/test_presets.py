"""Paper-sized presets build abstractly (no weights allocated) with the published sizes."""

import jax
import numpy as np
import pytest
from flax import nnx

from mathvlm.models import registry
from mathvlm.models.vlm import Llava


def _count(cfg) -> int:
  abstract = nnx.eval_shape(lambda: Llava(cfg, rngs=nnx.Rngs(0)))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


@pytest.mark.parametrize("name,low,high", [
    ("llava-1.5-7b", 7.0e9, 7.1e9),     # Vicuna-7B 6.74B + CLIP-L 0.30B + projector 0.02B
    ("llava-1.5-13b", 13.3e9, 13.4e9),  # Vicuna-13B 13.02B + CLIP-L + projector
    ("mavis-7b", 7.5e9, 7.6e9),         # Mistral-7B 7.24B + CLIP-L + projector
])
def test_paper_presets_have_the_published_sizes(name, low, high):
  assert low < _count(registry.get("llava").preset(name)) < high


def test_tiny_preset_runs_and_overrides_are_checked():
  cfg = registry.get("llava").preset("tiny", dtype="bfloat16")
  assert cfg.text.dtype == cfg.vision.dtype == "bfloat16"
  model = Llava(cfg, rngs=nnx.Rngs(0))
  ids = np.full((1, 4 + cfg.image_seq_len), 5)
  ids[0, 1:1 + cfg.image_seq_len] = cfg.image_token_id
  logits = model(ids, np.zeros((1, 56, 56, 3), np.float32))
  assert logits.shape == (1, ids.shape[1], cfg.text.vocab_size) and np.isfinite(logits).all()
  with pytest.raises(ValueError, match="unknown model override"):
    registry.get("llava").preset("tiny", hidden_size=3)
  with pytest.raises(ValueError, match="unknown llava model preset 'huge'"):
    registry.get("llava").preset("huge")


def test_the_demo_preset_ends_responses_where_its_tokenizer_does():
  """A response ends on every id the config names and the tokenizer's `</s>` (`run.Encoder`):
  the demo's config must name its tokenizer's `</s>`, not the Llama default 2 (its `<unk>`)."""
  from mathvlm.demo.data import SPECIALS
  text = registry.get("llava").preset("demo").text
  assert SPECIALS[text.eos_token_id] == "</s>" and SPECIALS[text.bos_token_id] == "<s>"
