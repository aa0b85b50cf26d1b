"""The trainer: same numbers on any mesh and process count, exact resume, what trains is config."""

import json
import logging
import os
import re
import signal
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from train_utils import cpu_env, metrics, run_cli, run_python, tiny_config

EIGHT = cpu_env(8)

MESHES = r"""
import json, shutil, sys
import jax
from train_utils import tiny_config, metrics
from mathvlm.train import train
out = {}
for objective in sys.argv[2].split(","):
  for name, mesh, devices, accum in [("one_device", (1, 1, 1), jax.devices()[:1], 1),
                                     ("fsdp4_tensor2", (1, 4, 2), None, 1),
                                     ("data2_fsdp2_tensor2", (2, 2, 2), None, 1),
                                     ("fsdp8_accum2", (1, 8, 1), None, 2)]:
    if sys.argv[3] == "quick" and name in ("fsdp4_tensor2", "fsdp8_accum2"):
      continue  # data2_fsdp2_tensor2 shards over every axis; accumulation: test_per_token.py
    if name == "fsdp8_accum2" and objective != "lm":
      continue  # accumulation is objective-independent; InfoNCE per micro-batch is another loss
    # DPO's loss is a small difference of large summed log-probs: a gentler rate keeps it smooth
    cfg = tiny_config(objective, mesh__data=mesh[0], mesh__fsdp=mesh[1], mesh__tensor=mesh[2],
                      optim__grad_accum=accum, data__global_batch=16,
                      optim__lr=2e-4 if objective == "dpo" else 1e-3)
    workdir = f"{sys.argv[1]}/{objective}_{name}"
    shutil.rmtree(workdir, ignore_errors=True)  # a rerun (retry_stall) starts afresh
    train(cfg, workdir, devices=devices)
    out[f"{objective}/{name}"] = [m["loss"] for m in metrics(workdir)]
print("RESULT" + json.dumps(out))
"""


@pytest.mark.long(80)
@pytest.mark.parametrize("objectives,form", [
    # quick: lm in test_per_token.py; classify (the vision tower under a head, one device:
    # test_classify_on_labels.py) on meshes only in the slow form
    ("dpo", "quick"), ("contrastive", "quick"),
    pytest.param("lm,dpo", "full", marks=pytest.mark.slow),
    pytest.param("contrastive,classify", "full", marks=pytest.mark.slow)])
def test_meshes_and_accumulation_give_the_losses_of_one_device(tmp_path, objectives, form):
  out = run_python(MESHES, str(tmp_path), objectives, form, env=EIGHT, retry_stall=True)
  losses = json.loads(out.split("RESULT")[1])
  for objective in objectives.split(","):
    base = np.array(losses[f"{objective}/one_device"])
    assert len(base) == 5 and np.isfinite(base).all()
    assert not np.allclose(base[0], base[-1])  # it trained
    for name, got in losses.items():
      if name.startswith(objective + "/"):
        np.testing.assert_allclose(got, base, rtol=1e-5, err_msg=name)


@pytest.mark.slow  # the default run kills from outside instead: test_preemption.py's quick form
def test_killed_run_resumes_bitwise(tmp_path):
  common = ["--config", "configs/sft.py:model=tiny", "--config.steps=6",
            "--config.data.global_batch=8", "--config.data.max_len=32",
            "--config.optim.lr=1e-3", "--config.checkpoint.every=3",
            "--config.checkpoint.use_async=False", "--config.metrics.tensorboard=False"]
  run_cli(common + ["--workdir", str(tmp_path / "straight")])
  killed = run_cli(common + ["--workdir", str(tmp_path / "killed"), "--preempt_after_step=3"],
                   check=False)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  assert [m["step"] for m in metrics(str(tmp_path / "killed"))] == [1, 2, 3]
  resumed = run_cli(common + ["--workdir", str(tmp_path / "killed")])
  assert "resumed from step 3" in resumed.stdout
  a, b = metrics(str(tmp_path / "straight")), metrics(str(tmp_path / "killed"))
  assert [m["loss"] for m in a] == [m["loss"] for m in b]  # bitwise, data order included
  sa = ocp.StandardCheckpointer().restore(str(tmp_path / "straight/checkpoints/6/state"))
  sb = ocp.StandardCheckpointer().restore(str(tmp_path / "killed/checkpoints/6/state"))
  fa, fb = _flat(sa), _flat(sb)
  assert sorted(fa) == sorted(fb) and len(fa) > 10
  assert all(np.array_equal(fa[k], fb[k]) for k in fa)  # params, Adam moments, step: bitwise


def test_lora_dropout_run_resumed_matches_the_uninterrupted_run(tmp_path):
  """LoRA dropout's masks come from the seed and the step the state holds, not from RNG state a
  checkpoint would have to carry: the run resumed from its step-2 checkpoint (a copy of the
  workdir with step 4 and the export removed, as a kill after step 2 leaves it) ends as the
  uninterrupted run, its losses and every array of its final state bitwise."""
  import shutil

  from mathvlm.train import train
  config = lambda: tiny_config("lm", "model=tiny,recipe=mavis", steps=4, checkpoint__every=2,
                               lora__dropout=0.3)
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  train(config(), straight)
  shutil.copytree(straight, resumed)
  shutil.rmtree(f"{resumed}/checkpoints/4")
  shutil.rmtree(f"{resumed}/model")
  ran = []
  train(config(), resumed, callbacks=[lambda done, ckpt: ran.append(done)])
  assert ran == [3, 4] and [m["step"] for m in metrics(resumed)] == [1, 2, 3, 4]
  assert [m["loss"] for m in metrics(straight)] == [m["loss"] for m in metrics(resumed)]
  fa, fb = _flat(_restore_state(straight, 4)), _flat(_restore_state(resumed, 4))
  assert sorted(fa) == sorted(fb) and any("lora" in k for k in fa)
  assert all(np.array_equal(fa[k], fb[k]) for k in fa)  # params, Adam moments, step


def test_a_weight_decay_run_with_its_decay_mask_resumes_bitwise(tmp_path):
  """optim.weight_decay > 0 under the default decay_rules: the mask reaches the trainer's state
  (its shardings, the jitted step, orbax's save and restore), and the run resumed from step 1
  ends as the uninterrupted one. MAVIS stage 3 trains the projector (biases: no decay) and LoRA."""
  import shutil

  from mathvlm.train import train
  config = lambda: tiny_config("lm", "model=tiny,recipe=mavis", steps=2, checkpoint__every=1,
                               optim__weight_decay=0.1)
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  seen, handler = [], logging.Handler(logging.INFO)  # the trainer's logger does not propagate
  handler.emit = lambda record: seen.append(record.getMessage())
  log, level = logging.getLogger("mathvlm.train"), logging.getLogger("mathvlm.train").level
  log.addHandler(handler)
  log.setLevel(logging.INFO)
  try:
    train(config(), straight)
  finally:
    log.removeHandler(handler)
    log.setLevel(level)
  assert any(re.match(r"optim.decay_rules: 16 tensors .* decay, 2 \(256\) do not", m)
             for m in seen), seen
  shutil.copytree(straight, resumed)
  shutil.rmtree(f"{resumed}/checkpoints/2")
  shutil.rmtree(f"{resumed}/model")
  ran = []
  train(config(), resumed, callbacks=[lambda done, ckpt: ran.append(done)])
  assert ran == [2] and [m["loss"] for m in metrics(straight)] == [
      m["loss"] for m in metrics(resumed)]
  fa, fb = _flat(_restore_state(straight, 2)), _flat(_restore_state(resumed, 2))
  assert sorted(fa) == sorted(fb) and any("linear_1']['bias" in k for k in fa)
  assert all(np.array_equal(fa[k], fb[k]) for k in fa)


@pytest.mark.slow  # default run: GRPO's 2-process test and the SLURM launcher's 2 processes
def test_two_processes_match_one_process_with_eight_devices(tmp_path):
  from train_utils import ROOT
  common = ["--config", "configs/sft.py:model=tiny", "--config.steps=4",
            "--config.data.global_batch=16", "--config.data.max_len=32",
            "--config.optim.lr=1e-3", "--config.mesh.fsdp=8", "--config.checkpoint.every=2"]
  run_cli(common + ["--workdir", str(tmp_path / "one")], env=EIGHT)
  res = subprocess.run(["bash", "launch/local.sh", "2", *common, "--workdir", str(tmp_path / "two")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "CPU_DEVICES": "4", "PYTHON": sys.executable})
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  assert "[0] " in res.stdout and "[1] " in res.stdout
  one = [m["loss"] for m in metrics(str(tmp_path / "one"))]
  two = [m["loss"] for m in metrics(str(tmp_path / "two"))]
  assert len(one) == 4
  np.testing.assert_allclose(two, one, rtol=1e-5)
  # both processes wrote their own iterator state into the shared checkpoint
  data = [f for f in os.listdir(tmp_path / "two/checkpoints/4/data") if f.endswith(".json")]
  assert sorted(data) == ["process_0-of-2.json", "process_1-of-2.json"]
  events = os.listdir(tmp_path / "two/tensorboard")
  assert all(e.startswith("events.out.tfevents") for e in events)
  # process 0 only: one file from its start (named for the host), then one after each checkpoint
  # (named for its step: mathvlm/metrics.py writes the events out before each save)
  import socket
  assert sum(e.endswith(socket.gethostname()) for e in events) == 1, events


def _restore_state(workdir, step):
  return ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step),
                                                         "state"))


def _flat(tree):
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_frozen_parameters_unchanged_and_lora_trains_only_adapters(tmp_path):
  from mathvlm.models.lora import add_lora
  from mathvlm.models import registry
  from mathvlm.pretrained import model_config
  from mathvlm.train import train
  # MAVIS stage 3: projector + LoRA train, everything else frozen.
  cfg = tiny_config("lm", "model=tiny,recipe=mavis", steps=2, checkpoint__every=2)
  train(cfg, str(tmp_path))
  model_cfg = model_config(cfg)

  def init():  # as the trainer initialises: under jit (eager init rounds differently)
    model = registry.of_config(model_cfg).build(model_cfg, cfg.seed)
    add_lora(model, cfg.lora.targets, cfg.lora.rank, cfg.lora.alpha, cfg.seed)
    return nnx.state(model, nnx.Param)

  init_flat = {"/".join(str(x) for x in p): np.asarray(v[...])
               for p, v in nnx.to_flat_state(jax.jit(init)())}
  state = _restore_state(str(tmp_path), 2)
  frozen, params = _flat(state["frozen"]), _flat(state["params"])
  assert params and frozen
  assert all("lora" in k or "multi_modal_projector" in k for k in params)
  assert not any("lora" in k or "multi_modal_projector" in k for k in frozen)
  key = lambda k: "/".join(x.strip("[]'") for x in k.split("][")).removesuffix("/value")
  for k, v in frozen.items():
    assert np.array_equal(v, init_flat[key(k)]), f"frozen {k} changed"
  changed = [k for k, v in params.items() if not np.array_equal(v, init_flat[key(k)])]
  assert len(changed) == len(params), set(params) - set(changed)
  # frozen parameters have no optimizer state: Adam's moments cover exactly the trainable ones
  mu = _flat(state["opt_state"][1][0]["mu"])
  assert len(mu) == len(params)


@pytest.mark.parametrize("accum", [1, 2])
def test_bfloat16_weights_train_with_moments_in_their_dtype(tmp_path, accum):
  """model.param_dtype=bfloat16 (the MAVIS recipe: LoRA and the projector train), with and
  without accumulation: the gradients divided by the float32 token count were float32, Adam's
  moments turned float32 from bfloat16, and the step's two branches (a non-finite step keeps
  the old state) no longer matched: "cond branches must have equal output types"."""
  from mathvlm.train import train
  cfg = tiny_config("lm", "model=tiny,recipe=mavis", steps=2, checkpoint__every=2,
                    model__param_dtype="bfloat16", optim__grad_accum=accum)
  train(cfg, str(tmp_path))
  losses = [m["loss"] for m in metrics(str(tmp_path))]
  assert np.isfinite(losses).all() and losses[0] != losses[1], losses
  state = _restore_state(str(tmp_path), 2)
  for tree in (state["params"], state["frozen"], state["opt_state"][1][0]["mu"],
               state["opt_state"][1][0]["nu"]):
    dtypes = {str(v.dtype) for v in _flat(tree).values()}
    assert dtypes == {"bfloat16"}, dtypes


@pytest.mark.slow  # the default run has test_faults.py's non-finite tests
def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  from mathvlm.train import train
  cfg = tiny_config("lm", checkpoint__every=1, optim__lr=1e12, optim__grad_clip=1e30, steps=8)
  with pytest.raises(FloatingPointError, match=r"non-finite loss .* at step (\d+)") as err:
    train(cfg, str(tmp_path))
  bad = int(str(err.value).split("at step ")[1].split(";")[0])
  kept = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  assert kept and max(kept) == bad - 1
  assert np.isfinite([m["loss"] for m in metrics(str(tmp_path))]).all()


def test_compile_only_reports_memory_for_the_13b_recipe_without_weights():
  res = run_cli(["--config", "configs/sft.py:model=llava-1.5-13b", "--config.mesh.fsdp=8",
                 "--config.optim.grad_accum=16", "--compile_only", "--fake_devices=8"])
  report = json.loads(res.stdout[res.stdout.index("{"):])
  assert report["parameters"] > 13e9 and report["devices"] == 8
  mem = report["per_device_gib"]
  # params (f32) and Adam moments of 13B over 8 devices: ~18.4 GiB of arguments
  assert 17 < mem["arguments"] < 20 and mem["total"] > mem["arguments"]


def test_stages_chain_through_init_from_and_hf_weights_initialise(tmp_path, llava_hf):
  """SFT from a Hugging Face LLaVA folder, then DPO from the SFT workdir (MAVIS stages 3 -> 4)."""
  from mathvlm import checkpoint, hf
  from mathvlm.train import train
  sft = tiny_config("lm", model__init_from=llava_hf[1], steps=3)
  train(sft, str(tmp_path / "sft"))
  hf_model, _ = hf.load_llava(llava_hf[1])
  sft_model, sft_cfg = checkpoint.load_model(str(tmp_path / "sft/model"))
  assert sft_cfg.text.vocab_size == 101  # the checkpoint's architecture, not the tiny preset's
  q = lambda m: np.asarray(m.language_model.layers.self_attn.q_proj.kernel[...])
  assert not np.array_equal(q(hf_model), q(sft_model))   # SFT trained from the HF weights
  assert np.allclose(q(hf_model), q(sft_model), atol=0.05)
  dpo = tiny_config("dpo", model__init_from=str(tmp_path / "sft"), steps=2, optim__lr=1e-4)
  first = train(dpo, str(tmp_path / "dpo"))
  rows = metrics(str(tmp_path / "dpo"))
  # the reference is the SFT model and LoRA starts at zero: the first DPO loss is exactly log 2
  assert abs(rows[0]["loss"] - np.log(2)) < 1e-6 and abs(rows[0]["rewards/margin"]) < 1e-5
  assert first["step"] == 2
  with pytest.raises(ValueError, match="holds a LlavaConfig, but objective 'contrastive'"):
    train(tiny_config("contrastive", model__init_from=str(tmp_path / "sft")), str(tmp_path / "x"))
