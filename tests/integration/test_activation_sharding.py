"""Activation sharding constraints come from the logical table: under `activation_sharding` on 8
fake devices the lm loss pins its activations' batch to (data, fsdp) and gives the loss of one
device; outside it the program has no constraint at all."""

import json

from train_utils import run_python

CODE = r'''
import json
import jax
jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)
import numpy as np
from flax import nnx
from mathvlm import sharding
from mathvlm.models.llm import LlamaConfig
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import Llava, LlavaConfig
from mathvlm.objectives import lm

cfg = LlavaConfig(vision=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_layers=2,
                                          num_heads=4, image_size=28, patch_size=14),
                  text=LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                   num_layers=2, num_heads=4, num_kv_heads=2),
                  image_token_id=63)
graphdef, state = nnx.split(Llava(cfg, rngs=nnx.Rngs(0)))
rs = np.random.RandomState(0)
ids = rs.randint(1, 63, (8, 12)).astype(np.int32)
ids[:, 1:5] = 63
batch = dict(input_ids=ids, attention_mask=np.ones_like(ids), loss_mask=(np.arange(12) > 5)[None]
             .repeat(8, 0).astype(np.int32), pixel_values=rs.randn(8, 28, 28, 3).astype(np.float32))
loss = lambda s, b: lm.loss(nnx.merge(graphdef, s), b)[0]
plain_text = jax.jit(loss).lower(state, batch).as_text()
plain = float(jax.jit(loss)(state, batch))
mesh = sharding.make_mesh(1, 8, 1)
with sharding.activation_sharding(mesh):
  lowered = jax.jit(loss).lower(state, batch)
text = lowered.as_text()
sharded = float(lowered.compile()(state, batch))
lines = [l for l in text.splitlines() if "sharding_constraint" in l]
print(json.dumps(dict(plain=plain, sharded=sharded,
                      plain_constraints=plain_text.count("sharding_constraint"),
                      constraints=len(lines),
                      batch_split=sum('[{"data", "fsdp"}' in l for l in lines))))
'''


def test_constraints_follow_the_table_and_change_no_number():
  out = json.loads(run_python(CODE).strip().splitlines()[-1])
  assert out["plain_constraints"] == 0
  assert out["constraints"] >= 6 and out["batch_split"] >= 6, out
  assert abs(out["sharded"] - out["plain"]) <= 1e-5 * abs(out["plain"])
