"""LoRA as configuration: adapters on every Dense whose parameter path matches a regex.

Adapters are `nnx.LoRA` modules (`nnx.LoRAParam` variables) attached to our `Dense` layers after the
model is built, so no model file knows about LoRA. Dense layers inside a scanned stack get stacked
adapters (a leading `layers` axis, made with `nnx.vmap`), so the scan still traces one block.
`merge_lora` folds them back into the kernels (for export or fast inference).

Dropout (`lora.dropout`, PEFT's lora_dropout) drops elements of each adapter's input, never the
frozen path's, and only where the trainer asks for it: the forward of a train step's loss, under
`layers.adapter_dropout` with `dropout_key(seed, step, ...)`. Every other forward (evaluators,
rollout and answer sampling, the log-probs a step computes outside its gradient: DPO's
reference, GRPO's old policy and reference) runs the adapters whole.
"""

from __future__ import annotations

import re
import zlib

import jax
import jax.numpy as jnp
from flax import nnx

from mathvlm.models.layers import Dense, path_str as _path, stacked

# Separates the dropout masks' keys from the other draws of the run's seed (nnx.Rngs(seed)
# folds its counter into jax.random.key(seed): the same keys `fold_in(key(seed), step)` gives).
DROPOUT_STREAM = zlib.crc32(b"lora.dropout")


def dropout_key(seed: int, step, *more) -> jax.Array:
  """The key of a train step's adapter dropout: the run's seed, the step (a traced int is fine),
  then whatever else tells the step's forwards apart (the pass, the micro-batch). No state: a
  resumed run draws the masks the uninterrupted one drew."""
  key = jax.random.fold_in(jax.random.key(seed), DROPOUT_STREAM)
  for value in (step, *more):
    key = jax.random.fold_in(key, value)
  return key


# A's initialiser as PEFT's (and Microsoft's loralib) default: torch.nn.Linear's reset,
# kaiming_uniform_(a=sqrt(5)) on A [rank, din], i.e. U(-1/sqrt(din), 1/sqrt(din)). nnx.LoRA's own
# default (he_uniform) draws sqrt(6) times wider; as B starts at zero and Adam's first steps move B
# by about lr whatever the gradient's size, the update to W = scale * A @ B would be ~2.45x what
# the same rank, alpha and lr give in the LLaVA/MAVIS recipes (PEFT), so their settings would not
# carry over.
PEFT_A_INIT = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def add_lora(model: nnx.Module, targets: str, rank: int, alpha: float, seed: int = 0) -> list[str]:
  """Attaches rank-`rank` adapters (scale alpha/rank; A uniform in +-1/sqrt(din) and B zero, as
  PEFT initialises them) to each Dense whose path (e.g. `language_model/layers/self_attn/q_proj`)
  matches `targets` (re.search). Returns the paths adapted; no match is an error, so a typo in a
  config cannot silently train nothing."""
  if rank <= 0:
    raise ValueError(f"lora rank must be positive, got {rank}")
  rngs = nnx.Rngs(seed)
  done = []
  for path, module in list(nnx.iter_modules(model)):
    name = _path(path)
    if not isinstance(module, Dense) or not re.search(targets, name):
      continue
    kernel = module.kernel
    din, dout = kernel.shape[-2:]
    axes = kernel.get_metadata().get("out_sharding") or ()
    in_axis, out_axis = (axes[-2], axes[-1]) if len(axes) >= 2 else (None, None)

    def make(r, din=din, dout=dout, in_axis=in_axis, out_axis=out_axis, module=module):
      return nnx.LoRA(din, rank, dout, dtype=module.dtype, param_dtype=module.param_dtype, rngs=r,
                      a_initializer=PEFT_A_INIT,
                      a_metadata=dict(out_sharding=(in_axis, None), eager_sharding=False),
                      b_metadata=dict(out_sharding=(None, out_axis), eager_sharding=False))

    module.lora = stacked(make, kernel.shape[0], rngs) if kernel.ndim == 3 else make(rngs)
    module.lora_scale = alpha / rank
    module.lora_stream = zlib.crc32(name.encode())  # adapters reading one x drop apart
    done.append(name)
  if not done:
    dense_paths = [_path(p) for p, m in nnx.iter_modules(model) if isinstance(m, Dense)]
    raise ValueError(f"lora targets {targets!r} match no Dense layer; Dense paths look like "
                     f"{dense_paths[:4]}")
  return done


def merge_lora(model: nnx.Module) -> int:
  """kernel += scale * A @ B for every adapter, then drops the adapters. Returns how many."""
  n = 0
  for _, module in list(nnx.iter_modules(model)):
    if isinstance(module, Dense) and module.lora is not None:
      a, b = module.lora.lora_a[...], module.lora.lora_b[...]
      delta = jnp.einsum("...ir,...ro->...io", a.astype(jnp.float32), b.astype(jnp.float32))
      kernel = module.kernel[...]
      module.kernel[...] = (kernel.astype(jnp.float32) + module.lora_scale * delta).astype(
          kernel.dtype)
      module.lora = None
      n += 1
  return n
