"""The loss and gradient of `lm` are the per-token mean over the global batch, whatever splits the
batch: devices of any mesh, micro-batches of grad_accum 2 and 4, two processes. Rows with 1 and
30 target tokens make any mean of means (per micro-batch, device or process) far off; see
tests/per_token.py for the reference."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from train_utils import ROOT, cpu_env, run_python

ENV = cpu_env(8)

# name, (data, fsdp, tensor), devices used, grad_accum; batch pieces = shards x micro-batches.
# The quick form (default) takes one mesh with accumulation; `-m slow` the rest.
QUICK = [("fsdp4_tensor2_accum2", (1, 4, 2), 8, 2)]
SLOW = [("one_device", (1, 1, 1), 1, 1), ("fsdp8", (1, 8, 1), 8, 1),
        ("data2_fsdp2_tensor2", (2, 2, 2), 8, 1), ("accum2", (1, 1, 1), 1, 2),
        ("fsdp2_accum4", (1, 2, 1), 2, 4)]

MESHES = r"""
import json, sys
import jax
import per_token as P
out = {}
sums = grads = None
for name, mesh, n, accum in json.loads(sys.argv[1]):
  loss, got, state, run = P.trainer_step(P.config(tuple(mesh), accum), jax.devices()[:n])
  if sums is None:
    sums, grads = P.per_row(run, state)
    ref_loss, ref_grad = P.combine(sums, grads)
  # means of means: per micro-batch, per device (and micro-batch), per row on one device
  for pieces in sorted({accum, mesh[0] * mesh[1] * accum, 8 if n == 1 and accum == 1 else 1}):
    if pieces == 1:
      continue
    mom_loss, mom_grad = P.combine(sums, grads, P.groups_of(pieces))
    out[f"{name}/{pieces}"] = dict(loss=loss, ref_loss=ref_loss, mom_loss=mom_loss,
                                   grad_error=P.relative_error(got, ref_grad),
                                   mom_gap=P.relative_error(mom_grad, ref_grad),
                                   mom_error=P.relative_error(got, mom_grad))
print("RESULT" + json.dumps(out))
"""


def check(name: str, r: dict) -> None:
  print(name, r)
  assert abs(r["loss"] - r["ref_loss"]) <= 1e-5 * abs(r["ref_loss"]), (name, r)
  assert r["grad_error"] < 1e-4, (name, r)
  # a mean of means is off by over 100 times those tolerances, and the trainer is not it
  assert abs(r["mom_loss"] - r["ref_loss"]) > 1e-3 * abs(r["ref_loss"]), (name, r)
  assert abs(r["mom_loss"] - r["loss"]) > 1e-3 * abs(r["ref_loss"]), (name, r)
  assert r["mom_gap"] > 1e-2 and r["mom_error"] > 1e-2, (name, r)


@pytest.mark.long(60)
@pytest.mark.parametrize("cases", [pytest.param(QUICK, id="quick"),
                                   pytest.param(SLOW, id="every_mesh", marks=pytest.mark.slow)])
def test_per_token_mean_on_meshes_and_accumulation(cases):
  out = run_python(MESHES, json.dumps(cases), env=ENV, retry_stall=True)
  results = json.loads(out.split("RESULT")[1])
  assert sorted({k.split("/")[0] for k in results}) == sorted(c[0] for c in cases)
  for name, r in results.items():
    check(name, r)


PROCESS = r"""
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
import numpy as np
import per_token as P
p = jax.process_index()
loss, got, state, run = P.trainer_step(P.config((1, 8, 1)), None, slice(4 * p, 4 * p + 4))
if p == 0:
  np.savez(sys.argv[3], loss=loss, **{k: v for k, v in got.items()})
"""

REFERENCE = r"""
import json, sys
import jax
import numpy as np
import per_token as P
_, _, state, run = P.trainer_step(P.config(), jax.devices()[:1])
sums, grads = P.per_row(run, state)
ref_loss, ref_grad = P.combine(sums, grads)
mom_loss, mom_grad = P.combine(sums, grads, P.groups_of(2))
two = np.load(sys.argv[1])
got = {k: two[k] for k in ref_grad}
print("RESULT" + json.dumps(dict(loss=float(two["loss"]), ref_loss=ref_loss, mom_loss=mom_loss,
      grad_error=P.relative_error(got, ref_grad), mom_gap=P.relative_error(mom_grad, ref_grad),
      mom_error=P.relative_error(got, mom_grad))))
"""


@pytest.mark.slow
def test_per_token_mean_over_two_processes(tmp_path):
  """Process 0 holds the four 1-token rows, process 1 the four 30-token rows."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.path.join(ROOT, "tests"),
         **cpu_env(4)}
  out = str(tmp_path / "two.npz")
  procs = [subprocess.Popen([sys.executable, "-c", PROCESS, f"127.0.0.1:{port}", str(i), out],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True) for i in range(2)]
  logs = [p.communicate(timeout=600)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), "\n".join(x[-3000:] for x in logs)
  r = json.loads(run_python(REFERENCE, out, env=ENV).split("RESULT")[1])
  check("two_processes", r)
