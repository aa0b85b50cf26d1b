"""`config.evals` inside a run that spans processes: a tiny SFT run on 2 processes (1 CPU device
each, the model sharded over both: fsdp) evaluates every step as 1 process with 2 devices (the
same mesh) does, the same numbers to the bit, and process 0 alone writes them. Subprocesses on
loopback, as the GRPO test's (gloo: CPU collectives)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from train_utils import ROOT, cpu_env, metrics

# One process of the run: the two shipped evaluators that decode, rank and score the sharded
# model (engine_accuracy, heldout_loss) and two probes defined here (`__main__:...`): `texts`, a
# checksum of the greedy answers and the summed option log-probs (engine_accuracy's generated
# accuracy is 0 for a random model: its answers could differ unseen), and `whose`, the process
# that computed the numbers, process 1 a second late: had it written eval.json too, its file
# would be the one left.
RUN = r"""
import os, sys, time, zlib
import jax
if os.environ.get("EVAL_COORDINATOR"):
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(os.environ["EVAL_COORDINATOR"], num_processes=2,
                             process_id=int(os.environ["EVAL_PROCESS"]))
import numpy as np
from tokenizers import Tokenizer
from mathvlm.configs import sft
from mathvlm.eval import engine_benchmark, engine_heldout, likelihood
from mathvlm.data.sources import load_tokenizer
from mathvlm.train import train
root, workdir = sys.argv[1], sys.argv[2]
instruct, tok_path = f"{root}/engine/instruct.json", f"{root}/tokenizer.json"
ASK = dict(template="mistral_instruct", batch=2, max_len=256, bucket=32)

def texts(spec, config, cfg):
  problems = engine_benchmark.load(instruct)[:2]
  def evaluate(model):
    said = engine_heldout.answer(model, cfg, Tokenizer.from_file(tok_path), problems,
                                 max_new_tokens=3, **ASK)
    logps = likelihood.option_logps(model, cfg, load_tokenizer(tok_path), problems,
                                    template=ASK["template"], batch_size=2, max_len=512)
    return {"crc32": float(zlib.crc32("\x00".join(said).encode())),
            "logp": float(sum(np.sum(x) for x in logps))}
  return evaluate

def whose(spec, config, cfg):
  def evaluate(model):
    time.sleep(jax.process_index())
    return {"process": float(jax.process_index())}
  return evaluate

c = sft.get_config("model=tiny")
c.steps, c.data.global_batch, c.data.num_examples, c.data.max_len = 2, 4, 8, 32
c.data.tokenizer, c.data.template = tok_path, ASK["template"]
c.checkpoint.use_async, c.checkpoint.every, c.metrics.tensorboard = False, 1000, False
with c.unlocked():
  c.evals.held = dict(type="engine_accuracy", every=1, instruct=instruct, limit=2,
                      max_new_tokens=3, rank_max_len=512, **ASK)
  c.evals.loss = dict(type="heldout_loss", every=1, name="synthetic", num_examples=6, batch=4)
  c.evals.texts = dict(type="__main__:texts", every=1)
  c.evals.whose = dict(type="__main__:whose", every=1)
train(c, workdir)
"""


def _port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run(root, workdir, devices: int, log: str, **env) -> subprocess.Popen:
  with open(log, "w") as out:
    return subprocess.Popen([sys.executable, "-c", RUN, str(root), str(workdir)], cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **cpu_env(devices),
                                 "PYTHONPATH": f"{ROOT}:{ROOT}/tests", **env})


@pytest.mark.long(60)
def test_two_processes_evaluate_together_and_process_0_writes(tmp_path):
  """Every process must take part in each evaluation (the model is sharded over both, so its
  forward is collective: one left out hangs the other), the numbers must be the run's on all
  problems and examples (not a process's share), and metrics.jsonl and eval.json must hold one
  copy of them, process 0's. All three processes at once: each is mostly compilation."""
  from engine_sets import write_engine_set
  write_engine_set(tmp_path, problems=1)
  port = _port()
  runs = {"one": _run(tmp_path, tmp_path / "one", 2, f"{tmp_path}/one.log")}
  runs.update({f"two{i}": _run(tmp_path, tmp_path / "two", 1, f"{tmp_path}/two{i}.log",
                               EVAL_COORDINATOR=f"127.0.0.1:{port}", EVAL_PROCESS=str(i))
               for i in range(2)})
  failed = []
  for name, proc in runs.items():
    try:
      failed += [name] * (proc.wait(timeout=300) != 0)
    except subprocess.TimeoutExpired:  # a process left waiting on a collective
      proc.kill()
      failed.append(f"{name} (hung)")
  assert not failed, "\n".join(f"{name}:\n" + open(f"{tmp_path}/{name.split()[0]}.log").read()[
      -3000:] for name in failed)
  want, got = metrics(str(tmp_path / "one")), metrics(str(tmp_path / "two"))
  assert [r["step"] for r in got] == [1, 2]  # one row per step: process 0's
  evals = lambda row: {k: v for k, v in row.items() if k.startswith("eval/")}  # noqa: E731
  for w, g in zip(want, got):
    assert evals(g) == evals(w) and evals(w)["eval/held/problems"] == 2
    assert evals(w)["eval/texts/logp"] < 0 and evals(w)["eval/loss/examples"] == 6
    assert g["eval/whose/process"] == 0
  saved = json.load(open(tmp_path / "two" / "eval.json"))
  assert saved == json.load(open(tmp_path / "one" / "eval.json"))
  assert saved["whose"] == {"process": 0.0, "step": 2}
