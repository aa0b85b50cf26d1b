"""The per-token mean over the global batch, against numpy, for the trainer's own step.

One fixed batch of 8 rows whose target counts are very different: rows 0-3 have 1 target token
each, rows 4-7 have 30. Whatever splits the batch (micro-batches of `grad_accum`, devices of a
mesh, processes) puts 4 targets on one side and 120 on the other, so any mean taken per part and
then averaged (a mean of means) differs from the token mean, by far.

The reference: per-token cross-entropies computed in numpy (float64) from the model's logits,
summed over all 124 targets and divided by 124; the gradient is the sum of each row's gradient
of its summed cross-entropy (jax.grad of a plain log-softmax, one row at a time), divided by 124,
in numpy. The trainer's gradient is read from its real step (`make_train_step`, the objective's
loss, its accumulation, the mesh's shardings) with the optimizer replaced by `optax.scale(SCALE)`,
so new params = params + SCALE * grads.
"""

from __future__ import annotations

import numpy as np

COUNTS = (1, 1, 1, 1, 30, 30, 30, 30)
LENGTH, MAX_LEN, SCALE = 50, 64, 1e3


def config(mesh=(1, 1, 1), accum=1):
  from train_utils import tiny_config
  return tiny_config("lm", data__global_batch=8, data__max_len=MAX_LEN, optim__grad_accum=accum,
                     mesh__data=mesh[0], mesh__fsdp=mesh[1], mesh__tensor=mesh[2])


def batch(cfg_model) -> dict[str, np.ndarray]:
  """Rows of LENGTH real tokens ([BOS, image tokens, words]), the last COUNTS[i] targets."""
  rng = np.random.default_rng(0)
  rows = len(COUNTS)
  ids = rng.integers(10, cfg_model.text.vocab_size, (rows, MAX_LEN)).astype(np.int32)
  ids[:, 0] = 1
  ids[:, 1:1 + cfg_model.image_seq_len] = cfg_model.image_token_id
  ids[:, LENGTH:] = 0
  attention = np.zeros((rows, MAX_LEN), np.int32)
  attention[:, :LENGTH] = 1
  loss_mask = np.zeros((rows, MAX_LEN), np.int32)
  for i, n in enumerate(COUNTS):
    loss_mask[i, LENGTH - n:LENGTH] = 1
  size = cfg_model.vision.image_size
  pixels = rng.standard_normal((rows, size, size, 3)).astype(np.float32)
  return dict(input_ids=ids, attention_mask=attention, loss_mask=loss_mask, pixel_values=pixels)


def trainer_step(cfg, devices, local_rows: slice = slice(None)):
  """(loss, grads {path: float64}, the state before the step) from the trainer's step on `cfg`'s
  mesh; local_rows: this process's rows of the batch."""
  import jax
  import optax

  from mathvlm import sharding, train, train_state
  run = train.setup(cfg, devices)
  state = sharpen(train_state.initial_state(run))
  tx = optax.scale(SCALE)
  state["opt_state"] = tx.init(state["params"])
  step = jax.jit(train.make_train_step(cfg, run.objective, run.graphdef, tx,
                                       optax.constant_schedule(0.0)))
  full = batch(run.cfg)
  placed = sharding.place_batch({k: v[local_rows] for k, v in full.items()}, run.mesh)
  before = gather(state["params"])
  new, metrics = step(state, placed)
  after = gather(new["params"])
  grads = {k: (after[k].astype(np.float64) - before[k]) / SCALE for k in before}
  return float(jax.device_get(metrics["loss"])), grads, state, run


def sharpen(state, factor: float = 40.0):
  """The output layer scaled up: at initialisation every token's cross-entropy is about
  log(vocab), which would make a mean of means look right; sharp logits make them differ."""
  import jax
  params = jax.tree_util.tree_map_with_path(
      lambda p, x: x * factor if "lm_head" in jax.tree_util.keystr(p) else x, state["params"])
  return dict(state, params=params)


def gather(tree) -> dict[str, np.ndarray]:
  import jax
  from jax.experimental import multihost_utils
  out = {}
  for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if jax.process_count() > 1:
      x = multihost_utils.process_allgather(x, tiled=True)
    out[jax.tree_util.keystr(path)] = np.asarray(x)
  return out


def per_row(run, state):
  """Each row's summed cross-entropy (numpy, float64, from the model's logits) and the gradient
  of its summed cross-entropy (jax.grad of a plain log-softmax), on one device."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  device = jax.devices()[0]
  params, frozen = jax.device_put((state["params"], state["frozen"]), device)
  full = batch(run.cfg)

  def row_sum(p, row):
    model = nnx.merge(run.graphdef, p, frozen)
    logits = model.apply(row["input_ids"], row["pixel_values"],
                         attention_mask=row["attention_mask"]).logits.astype(jnp.float32)
    logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
    picked = jnp.take_along_axis(logp, row["input_ids"][:, 1:, None], axis=-1)[..., 0]
    return -jnp.sum(jnp.where(row["loss_mask"][:, 1:] > 0, picked, 0.0)), logits

  grad = jax.jit(jax.value_and_grad(row_sum, has_aux=True))
  sums, grads = [], []
  for i in range(len(COUNTS)):
    row = {k: v[i:i + 1] for k, v in full.items()}
    (_, logits), g = grad(params, row)
    logits = np.asarray(logits, np.float64)[0, :-1]
    top = logits.max(-1)
    logz = np.log(np.exp(logits - top[:, None]).sum(-1)) + top
    ce = logz - logits[np.arange(len(logits)), full["input_ids"][i, 1:]]
    sums.append(float(np.sum(ce * (full["loss_mask"][i, 1:] > 0))))
    grads.append({jax.tree_util.keystr(k): np.asarray(v, np.float64)
                  for k, v in jax.tree_util.tree_flatten_with_path(g)[0]})
  return np.array(sums), grads


def combine(sums, grads, groups=None):
  """The token mean over all rows (groups=None), or the mean over groups of each group's token
  mean: a mean of means, what averaging per micro-batch, device or process would give."""
  counts = np.array(COUNTS, np.float64)
  groups = groups or [list(range(len(COUNTS)))]
  means = [sum(sums[i] for i in g) / counts[g].sum() for g in groups]
  gmeans = [{k: sum(grads[i][k] for i in g) / counts[g].sum() for k in grads[0]} for g in groups]
  return float(np.mean(means)), {k: np.mean([m[k] for m in gmeans], axis=0) for k in grads[0]}


def groups_of(parts: int) -> list[list[int]]:
  per = len(COUNTS) // parts
  return [list(range(i * per, (i + 1) * per)) for i in range(parts)]


def relative_error(got: dict, want: dict) -> float:
  num = np.sqrt(sum(np.sum((got[k] - want[k]) ** 2) for k in want))
  return float(num / np.sqrt(sum(np.sum(want[k] ** 2) for k in want)))
