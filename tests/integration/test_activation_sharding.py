"""Activation sharding constraints come from the logical table: under `activation_sharding` on 8
fake devices the lm loss pins its activations' batch to (data, fsdp) and gives the loss of one
device; outside it the program has no constraint at all. The trainer's step traces under the
table wherever it is called, and so LoRA dropout draws each device's masks for its rows only."""

import json

import pytest

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


# The trainer's step (sft recipe=mavis: LoRA with dropout) traces under the table, and LoRA
# dropout's masks are drawn at the size of a device's share of the batch. Before, the trainer
# never entered the table: every `constrain` was a no-op, the residual stream stayed as the
# embedding lookup leaves it (its width over fsdp, the whole batch on every device), and each
# dropout mask with it (at mavis-7b, 16.4 of 52.4 GiB a device at grad_accum=1).
DROPOUT_CODE = r'''
import json
import jax
jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)
import jax.numpy as jnp
import numpy as np
from flax import nnx
from mathvlm import sharding, train
from mathvlm.configs import sft
from mathvlm.models.layers import adapter_dropout, dense, scan_layers, stacked
from mathvlm.models.lora import add_lora, dropout_key

B, T, D, F = 8, 64, 64, 1024
mesh = sharding.make_mesh(1, 8, 1)


class Cfg:
  dtype = param_dtype = "float32"


class Mlp(nnx.Module):
  def __init__(self, rngs):
    self.up = dense(D, F, ("embed", "mlp"), bias=False, cfg=Cfg, rngs=rngs)
    self.down = dense(F, D, ("mlp", "embed"), bias=False, cfg=Cfg, rngs=rngs)

  def __call__(self, x):
    h = sharding.constrain(jax.nn.gelu(self.up(x)), "activation_batch", "activation_length",
                           "activation_mlp")
    return sharding.constrain(x + self.down(h), "activation_batch", "activation_length",
                              "activation_embed")


stack = stacked(Mlp, 2, nnx.Rngs(0))
add_lora(stack, "up|down", 8, 8.0)
graphdef, lora, rest = nnx.split(stack, nnx.LoRAParam, ...)


def forward(lora, rest, x, rate):
  with adapter_dropout(dropout_key(0, 1), rate):
    return scan_layers(nnx.merge(graphdef, lora, rest), lambda blk, h, _: (blk(h), None), x,
                       remat="full")[0]


def placed(state):
  return jax.device_put(state, sharding.state_shardings(state, mesh))


# as the embedding lookup leaves the residual stream: its table is [vocab, embed(fsdp)]
x_sharding = jax.NamedSharding(mesh, jax.P(None, None, "fsdp"))
x = jax.device_put(jax.random.normal(jax.random.key(1), (B, T, D)), x_sharding)
adapters = jax.tree.map(lambda a: a + 0.1, lora)   # B = 0 would hide the masks
args = (placed(adapters), placed(rest), x)


def temp_mib(rate):
  grad = jax.grad(lambda *a: jnp.sum(forward(*a, rate) ** 2))
  step = jax.jit(sharding.traced_with_activation_sharding(grad, mesh))
  return step.lower(*args).compile().memory_analysis().temp_size_in_bytes / 2 ** 20


def outputs(table, rate=0.5):
  fn = lambda *a: forward(*a, rate)
  return np.asarray(jax.jit(sharding.traced_with_activation_sharding(fn, mesh) if table else fn)(
      *args))


c = sft.get_config("model=tiny,recipe=mavis")
c.unlock(); c.mesh.fsdp = 8; c.data.global_batch = 8; c.lock()
run = train.setup(c, jax.devices())
batch = {k: jax.ShapeDtypeStruct(v, np.asarray(run.example[k]).dtype,
                                 sharding=sharding.batch_sharding(run.mesh))
         for k, v in run.batch_shapes.items()}
text = run.step_fn.lower(run.abstract_state, batch).as_text()
lines = [l for l in text.splitlines() if "sharding_constraint" in l]
print(json.dumps(dict(
    dropout=c.lora.dropout, constraints=len(lines),
    batch_split=sum('[{"data", "fsdp"}' in l for l in lines),
    extra_mib=temp_mib(0.05) - temp_mib(0.0), global_mask_mib=B * T * F * 4 / 2 ** 20,
    # the layout moves float rounding only; other masks would move the outputs as dropout does
    table_moves=float(np.abs(outputs(True) - outputs(False)).max()),
    dropout_moves=float(np.abs(outputs(True) - outputs(True, 0.0)).max()))))
'''


def test_the_step_traces_under_the_table_and_dropout_masks_are_per_device():
  out = json.loads(run_python(DROPOUT_CODE).strip().splitlines()[-1])
  assert out["dropout"] > 0   # the recipe drops, so its step draws masks
  assert out["constraints"] >= 6 and out["batch_split"] >= 6, out
  # A mask drawn whole on each device costs a multiple of the u32 bits of the whole batch
  # (XLA:CPU's threefry is a loop that keeps them: 8.1 MiB here); one device's share, 1.3.
  assert out["extra_mib"] < out["global_mask_mib"], out
  # threefry is partitionable: where the masks are drawn does not change them (resumed runs)
  assert out["table_moves"] < 1e-5 * out["dropout_moves"], out


# Likelihood ranking and the held-out loss trace under the table on the mesh the batch is split
# over (`likelihood._logps`'s mesh, the evaluators' model's): before, neither entered it, and on
# 8 devices with fsdp=8 their forwards ran the MLP at the whole batch on every device. Decoding
# does not, on purpose (`generate._generate`): under the table each decode step would gather
# every layer's weights for a token a row.
FORWARDS_CODE = r'''
import json
import jax
jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)
import jax.numpy as jnp
import numpy as np
from flax import nnx
from mathvlm import generate as gen, sharding
from mathvlm.configs import sft
from mathvlm.eval import distributed, evaluators, likelihood
from mathvlm.models import registry
from mathvlm.models.llm import LlamaConfig
from mathvlm.models.vit import CLIPVisionConfig
from mathvlm.models.vlm import Llava, LlavaConfig

B, F = 16, 256
cfg = LlavaConfig(vision=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_layers=2,
                                          num_heads=4, image_size=28, patch_size=14),
                  text=LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=F,
                                   num_layers=2, num_heads=4, num_kv_heads=2),
                  image_token_id=127)
mesh = sharding.make_mesh(1, 8, 1)
graphdef, state = nnx.split(Llava(cfg, rngs=nnx.Rngs(0)))
state = jax.device_put(state, sharding.state_shardings(state, mesh))
rs = np.random.RandomState(0)
ids = rs.randint(1, 127, (B, 12)).astype(np.int32)
ids[:, 1:5] = 127
batch = sharding.place_batch(dict(input_ids=ids, attention_mask=np.ones_like(ids),
                                  loss_mask=np.ones_like(ids),
                                  pixel_values=rs.randint(0, 255, (B, 28, 28, 3)).astype(np.uint8)),
                             mesh)


def constraints(lowered):
  lines = [l for l in lowered.as_text().splitlines() if "sharding_constraint" in l]
  return [len(lines), sum('[{"data", "fsdp"}' in l for l in lines)]


def logps(table):
  kw = dict(mesh=mesh) if table else {}
  lowered = likelihood._logps.lower(graphdef, state, batch, **kw)
  return constraints(lowered), np.asarray(lowered.compile()(state, batch))


calls = []  # every constraint the held-out loss makes (outside the table there are none)
pin = jax.lax.with_sharding_constraint
jax.lax.with_sharding_constraint = lambda x, s: (calls.append(str(s.spec)), pin(x, s))[1]
c = sft.get_config("model=tiny")
with c.unlocked():
  c.evals.loss = dict(type="heldout_loss", name="synthetic", num_examples=8, batch=8)
tiny_cfg = registry.get("llava").preset("tiny")
(_, _, heldout), = evaluators.from_config(c, tiny_cfg)
tiny = nnx.eval_shape(lambda: Llava(tiny_cfg, rngs=nnx.Rngs(0)))
tiny_def, tiny_state = nnx.split(tiny)
tiny_state = jax.tree.map(lambda x: np.full(x.shape, 0.01, x.dtype), tiny_state)
traced = {}  # the callers on a mesh, traced first (a trace jit cached would record nothing)
heldout(nnx.merge(tiny_def, jax.device_put(tiny_state,
                                           sharding.state_shardings(tiny_state, mesh))))
traced["heldout"], calls[:] = sum("('data', 'fsdp')" in s for s in calls), []
host = {k: np.asarray(v) for k, v in batch.items()}
distributed.generate_global(nnx.merge(graphdef, state), mesh, ids, host["attention_mask"],
                            host["pixel_values"], max_new_tokens=2, eos=(2,), pad=0,
                            temperature=0.0, seed=0)
traced["generate_global"], calls[:] = sum("('data', 'fsdp')" in s for s in calls), []
likelihood._batch_logps(graphdef, state, host, mesh, (0, B))
traced["rank"] = sum("('data', 'fsdp')" in s for s in calls)
(plain_c, plain), (table_c, table) = logps(False), logps(True)
print(json.dumps(dict(logps_constraints=[plain_c, table_c],
                      logps_moves=float(np.abs(plain - table).max()),
                      logps_scale=float(np.abs(plain).max()), traced=traced)))
'''


@pytest.mark.long(15)
def test_ranking_and_heldout_loss_trace_under_the_table_and_decoding_does_not():
  out = json.loads(run_python(FORWARDS_CODE).strip().splitlines()[-1])
  (plain_c, table_c) = out["logps_constraints"]
  assert plain_c == [0, 0] and table_c[1] >= 6, out
  assert out["logps_moves"] <= 1e-5 * out["logps_scale"], out
  # the batch-split constraints the callers' traces made: held-out loss and likelihood ranking;
  # none in eval and GRPO decoding (`distributed.generate_global`), whose weights stay in place
  assert out["traced"]["heldout"] >= 6 and out["traced"]["rank"] >= 6, out
  assert out["traced"]["generate_global"] == 0, out
