"""`python -m mathvlm.eval.run` at scale, on the tiny model and real MATH-Vision testmini problems:
the responses on a sharded 8-device mesh and from two processes equal a single-device run; a
rerun resumes (skips what is answered) and starts over when the model or settings change; the
compile-only dry run prints memory for a preset."""

import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest

from shared_data import REPO, shared
from train_utils import cpu_env

def _env(devices: int) -> dict:
  return dict(os.environ, **cpu_env(devices), PYTHONPATH=REPO)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
  """A tiny random LLaVA checkpoint (weights drawn with numpy: no per-parameter compiles) with a
  BPE tokenizer trained on the testmini questions."""
  import jax
  import numpy as np
  from flax import nnx

  from mathvlm import checkpoint
  from mathvlm.models import registry
  from mathvlm.demo.parity import train_tokenizer
  from mathvlm.models.vlm import Llava
  folder = str(tmp_path_factory.mktemp("ckpt"))
  questions = [json.loads(x)["question"] for x in open(shared("math_v", "testmini.jsonl"))]
  tok = train_tokenizer(questions, 512)
  cfg = dataclasses.replace(registry.get("llava").preset("tiny"), image_token_id=tok.token_to_id("<image>"))
  graphdef, state = nnx.split(nnx.eval_shape(lambda: Llava(cfg, rngs=nnx.Rngs(0))))
  rng = np.random.default_rng(0)
  state = jax.tree.map(lambda x: (rng.standard_normal(x.shape) * 0.05).astype(x.dtype), state)
  checkpoint.save_model(nnx.merge(graphdef, state), cfg, folder)
  tok.save(os.path.join(folder, "tokenizer.json"))
  return folder


def _cli(ckpt, out, *extra):
  return ["-m", "mathvlm.eval.run", "--benchmark", "math_v", "--ckpt", ckpt,
          "--data", shared("math_v"), "--out", str(out), "--batch", "8",
          "--max_new_tokens", "6", "--limit", "16", *extra]


def _run(args, devices=1, timeout=600):
  res = subprocess.run([sys.executable, *args], cwd=REPO, env=_env(devices), text=True,
                       capture_output=True, timeout=timeout)
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  return res


def _responses(out):
  rows = map(json.loads, open(os.path.join(out, "responses.jsonl")))
  return {r["id"]: r["response"] for r in rows}


SHARDED = r"""
import json, sys
from tokenizers import Tokenizer
from mathvlm import checkpoint
from mathvlm.eval import distributed, math_v, run
ckpt, data = sys.argv[1:3]
problems = math_v.load(data + "/testmini.jsonl")[:16]
out = {}
for name, spec in [("one", None), ("data2_fsdp2_tensor2", (2, 2, 2))]:
  mesh = distributed.make_mesh(distributed.MeshSpec(*spec)) if spec else None
  model, cfg = (distributed.load_sharded(ckpt, mesh) if mesh else checkpoint.load_model(ckpt))
  enc = run.Encoder(Tokenizer.from_file(ckpt + "/tokenizer.json"), cfg.image_token_id,
                    cfg.image_seq_len, 512)
  out[name] = run.generate_responses(model, cfg, enc, problems, template="vicuna_v1",
                                     batch_size=8, max_new_tokens=6, temperature=0.0, mesh=mesh)
mesh = distributed.make_mesh(distributed.MeshSpec(2, 4, 1))
out["compile_only"] = distributed.compile_only("tiny", mesh, batch=8, prompt_len=128,
                                               max_new_tokens=16, dtype="float32")
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def eight_devices(ckpt):
  """One process with 8 CPU devices: responses on one device and on a (2, 2, 2) mesh, and a
  compile-only report for the tiny preset."""
  res = _run(["-c", SHARDED, ckpt, shared("math_v")], devices=8)
  return json.loads(res.stdout.strip().splitlines()[-1])


def test_sharded_mesh_equals_one_device(eight_devices):
  assert len(eight_devices["one"]) == 16 and any(eight_devices["one"])
  assert eight_devices["data2_fsdp2_tensor2"] == eight_devices["one"]


def test_compile_only_reports_memory(eight_devices):
  report = eight_devices["compile_only"]
  assert report["devices"] == 8 and report["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
  assert report["per_device_gib"]["total"] > 0


def test_resume_skips_answered_and_restarts_on_new_settings(ckpt, tmp_path):
  from mathvlm.eval import run
  out, small = tmp_path / "eval", ["--limit", "8", "--batch", "4", "--max_new_tokens", "4"]
  first = run.main(_cli(ckpt, out, *small, "--limit", "4")[2:])
  assert (first["generated"], first["resumed"]) == (4, 0)
  again = run.main(_cli(ckpt, out, *small)[2:])          # 8 problems, 4 of them answered
  assert (again["generated"], again["resumed"]) == (4, 4)
  assert len(open(out / "responses.jsonl").readlines()) == 8
  assert again["problems_per_second"] > 0
  fresh = run.main(_cli(ckpt, tmp_path / "fresh", *small)[2:])
  assert _responses(out) == _responses(tmp_path / "fresh") and fresh["all"] == again["all"]
  changed = run.main(_cli(ckpt, out, *small, "--max_new_tokens", "3")[2:])
  assert (changed["generated"], changed["resumed"]) == (8, 0)
  assert os.path.exists(out / "responses.jsonl.old")
  # Another tokenizer is another run (its responses were once kept); the same one rewritten
  # (another layout of its JSON) is not.
  tok = json.load(open(os.path.join(ckpt, "tokenizer.json")))
  json.dump(tok, open(tmp_path / "same.json", "w"), indent=3)
  tok["model"]["vocab"]["<an added token>"] = max(tok["model"]["vocab"].values()) + 1
  json.dump(tok, open(tmp_path / "other.json", "w"))
  same = run.main(_cli(ckpt, out, *small, "--max_new_tokens", "3", "--tokenizer",
                       str(tmp_path / "same.json"))[2:])
  assert (same["generated"], same["resumed"]) == (0, 8)
  other = run.main(_cli(ckpt, out, *small, "--max_new_tokens", "3", "--tokenizer",
                        str(tmp_path / "other.json"))[2:])
  assert (other["generated"], other["resumed"]) == (8, 0)


def test_sampled_responses_do_not_depend_on_the_batch_or_a_resume(ckpt, tmp_path):
  """With temperature > 0 each problem draws from its own key, fold_in(key(--seed), its place in
  the benchmark): a resumed run equals an uninterrupted one, --batch 4 equals --batch 2 (5
  problems: the last batch is padded differently), and another --seed answers otherwise."""
  from mathvlm.eval import run
  sampled = ["--limit", "5", "--temperature", "1.0", "--top_p", "0.9"]
  out = tmp_path / "eval"
  run.main(_cli(ckpt, out, *sampled, "--batch", "2")[2:])
  fresh = _responses(out)
  assert len(set(fresh.values())) == 5
  lines = open(out / "responses.jsonl").readlines()
  open(out / "responses.jsonl", "w").writelines(lines[:2])     # stopped after the first batch
  again = run.main(_cli(ckpt, out, *sampled, "--batch", "2")[2:])
  assert (again["generated"], again["resumed"]) == (3, 2)
  assert _responses(out) == fresh
  run.main(_cli(ckpt, tmp_path / "b4", *sampled, "--batch", "4")[2:])
  assert _responses(tmp_path / "b4") == fresh
  run.main(_cli(ckpt, tmp_path / "s1", *sampled, "--batch", "2", "--seed", "1")[2:])
  other = _responses(tmp_path / "s1")
  assert sum(other[k] != fresh[k] for k in fresh) >= 4


@pytest.mark.slow
def test_two_processes_equal_one_device(ckpt, tmp_path):
  one = tmp_path / "one"
  _run(_cli(ckpt, one))
  sock = socket.socket()
  sock.bind(("127.0.0.1", 0))
  port = sock.getsockname()[1]
  sock.close()
  two = tmp_path / "two"
  procs = [subprocess.Popen(
      [sys.executable, *_cli(ckpt, two, "--num_processes", "2", "--process_id", str(i),
                             "--coordinator", f"127.0.0.1:{port}")],
      cwd=REPO, env=_env(4), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
      for i in range(2)]
  logs = [p.communicate(timeout=600)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), "\n".join(x[-3000:] for x in logs)
  assert _responses(two) == _responses(one) and len(_responses(one)) == 16
  summary = json.loads(logs[0].strip().splitlines()[-1])
  assert summary["all"] == json.load(open(one / "scores.json"))["all"]


@pytest.mark.slow
def test_compile_only_7b_fits_eight_devices():
  """The command line's dry run for a 7B preset (no weights allocated; memory per device)."""
  res = _run(["-m", "mathvlm.eval.run", "--benchmark", "math_v", "--compile_only",
              "--preset", "llava-1.5-7b", "--fake_devices", "8", "--mesh", "1,8,1",
              "--batch", "8", "--prompt_len", "1024", "--max_new_tokens", "512"], timeout=900)
  report = json.loads(res.stdout[res.stdout.index("{"):])
  assert report["parameters"] > 6e9
  assert 0 < report["per_device_gib"]["total"] < 80
