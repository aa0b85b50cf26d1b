"""The in-training evaluators on a model placed on a mesh (4 fake CPU devices, fsdp=4) split each
batch over its data axes, as `python -m mathvlm.eval.run --mesh` does: every jitted call that
engine_accuracy, benchmark_accuracy and heldout_loss make (decoding, option scoring, the loss)
gets its rows split one per device, not the whole
batch on every device (which made the eval's KV cache of a 7B on a pod outgrow training), and
the numbers are those of the same model on one device. Batches of 3 on 4 devices: the padding
rows are dropped, not scored."""

import json
import os
import subprocess
import sys

import pytest

from shared_data import shared
from train_utils import ROOT, cpu_env

RUN = r"""
import json, sys
import jax, numpy as np
from flax import nnx
from tokenizers import Tokenizer
from mathvlm import generate as gen, sharding
from mathvlm.configs import sft
from mathvlm.data.sources import load_tokenizer
from mathvlm.eval import engine_benchmark, engine_heldout, evaluators, likelihood
from mathvlm.models import registry
from mathvlm.models.vlm import Llava
instruct, tok_path, math_v = sys.argv[1:4]
cfg = registry.get("llava").preset("tiny")
graphdef, state = nnx.split(nnx.eval_shape(lambda: Llava(cfg, rngs=nnx.Rngs(0))))
rng = np.random.default_rng(0)  # weights drawn with numpy: no per-parameter compiles
state = jax.tree.map(lambda x: (rng.standard_normal(x.shape) * 0.05).astype(x.dtype), state)
one, mesh = nnx.merge(graphdef, state), sharding.make_mesh(1, -1, 1)
split = nnx.merge(graphdef, jax.device_put(state, sharding.state_shardings(state, mesh)))
seen = []  # (call, rows on each device, rows in all, split over the data axes)

def record(name, x):
  spec = getattr(getattr(x, "sharding", None), "spec", None)  # None: one device, or numpy
  is_split = spec == sharding.batch_sharding(mesh).spec
  rows = x.addressable_shards[0].data.shape[0] if is_split else x.shape[0]
  seen.append((name, int(rows), int(x.shape[0]), is_split))

def spy(name, fn, pick):  # records the batch a jitted function gets
  return lambda *args, **kwargs: (record(name, pick(*args)), fn(*args, **kwargs))[1]

def loss_batch(*args, batch_of=evaluators._loss_batch, **kwargs):  # what heldout_loss's jit gets
  b = batch_of(*args, **kwargs)
  record("loss", b["input_ids"])
  return b

gen._generate = spy("generate", gen._generate, lambda g, s, ids, *a: ids)
likelihood._logps = spy("rank", likelihood._logps, lambda g, s, b: b["input_ids"])
evaluators._loss_batch = loss_batch
ASK = dict(template="mistral_instruct", batch=3, max_len=256, bucket=32)
c = sft.get_config("model=tiny")
c.data.tokenizer, c.data.template, c.data.max_len = tok_path, ASK["template"], 32
with c.unlocked():
  c.evals.held = dict(type="engine_accuracy", instruct=instruct, max_new_tokens=3,
                      rank_max_len=512, **ASK)
  c.evals.loss = dict(type="heldout_loss", name="synthetic", num_examples=7, batch=3)
  c.evals.bench = dict(type="benchmark_accuracy", benchmark="math_v", data=math_v, limit=3,
                       batch=3, max_new_tokens=3)
evals = evaluators.from_config(c, cfg)
out = {}
for name, model in (("one", one), ("split", split)):
  seen.clear()
  problems = engine_benchmark.load(instruct)
  texts = engine_heldout.answer(model, cfg, Tokenizer.from_file(tok_path), problems,
                                max_new_tokens=3, **ASK)
  logps = likelihood.option_logps(model, cfg, load_tokenizer(tok_path), problems,
                                  template=ASK["template"], batch_size=3, max_len=512)
  scores = {n: fn(model) for n, _, fn in evals}
  out[name] = dict(texts=texts, logps=[x.tolist() for x in logps], seen=list(seen), **scores)
print("RESULT" + json.dumps(out))
"""


@pytest.mark.long(25)
def test_evaluators_split_their_batches_over_the_mesh(tmp_path):
  from engine_sets import write_engine_set
  tok = write_engine_set(tmp_path, problems=1)
  res = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "engine/instruct.json"), tok,
                        shared("math_v")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, **cpu_env(4), "PYTHONPATH": f"{ROOT}:{ROOT}/tests"})
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  out = json.loads(res.stdout.split("RESULT")[-1])
  one, split = out["one"], out["split"]
  calls = {name for name, *_ in split["seen"]}
  assert calls == {"generate", "rank", "loss"}, split["seen"]
  assert [s[0] for s in split["seen"]].count("generate") == 3  # answer, held, bench
  # each call: the batch of 3 padded to 4, one row per device, split over (data, fsdp)
  assert all(s[1:] == [1, 4, True] for s in split["seen"]), split["seen"]
  assert not any(s[3] for s in one["seen"])  # the unplaced model: one device, as before
  assert split["texts"] == one["texts"] and len(one["texts"]) == 3
  for got, want in zip(split["logps"], one["logps"]):
    assert len(got) == len(want) and all(abs(g - w) <= 1e-5 * abs(w) for g, w in zip(got, want))
  assert one["held"]["problems"] == one["bench"]["total"] == 3
  for name in ("held", "bench"):  # accuracies on the answers and picks above
    assert split[name] == pytest.approx(one[name], rel=1e-6), name
  assert split["loss"]["examples"] == one["loss"]["examples"] == 7
  assert split["loss"]["tokens"] == one["loss"]["tokens"] > 0  # blank padding rows weigh nothing
  for key in ("loss", "accuracy"):
    assert split["loss"][key] == pytest.approx(one["loss"][key], rel=1e-5)
