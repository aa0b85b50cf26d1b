"""Evaluation on a device mesh: the model sharded as in training, each batch split over the data
axes, any number of processes; and a compile-only dry run that prints memory for a preset.

The mesh and the parameter placement are `mathvlm.sharding`'s, by its default logical-axis table:
a model folder does not record the `logical_axis_rules` a run trained with, and the placement
changes no number decoding gives (the same tokens on one device or eight), only where weights
live; a run's own table places what it loads (model.init_from and the parts). The batch goes over
("data", "fsdp") as in training. Each process encodes every prompt of a batch (cheap, and it
keeps the padded width the same everywhere), loads the images of its own rows only, and hands
its rows to `jax.make_array_from_process_local_data`; the generated tokens are gathered back to
every process, so every process holds every response and process 0 writes them. Greedy decoding
gives the same tokens on one device, eight, or two processes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MeshSpec:
  """Sizes of the (data, fsdp, tensor) mesh axes; one may be -1 (all remaining devices)."""
  data: int = 1
  fsdp: int = -1
  tensor: int = 1

  @classmethod
  def parse(cls, text: str) -> "MeshSpec":
    """"data,fsdp,tensor", e.g. "1,-1,1" (FSDP over every device) or "2,2,2"."""
    try:
      data, fsdp, tensor = (int(x) for x in text.split(","))
    except ValueError as e:
      raise ValueError(f"--mesh {text!r}: expected three integers data,fsdp,tensor such as "
                       "1,-1,1") from e
    return cls(data, fsdp, tensor)


def init_processes(coordinator: str = "", num_processes: int = 1, process_id: int = 0,
                   fake_devices: int = 0, auto: bool = False) -> None:
  """Fake CPU devices and `jax.distributed`, before anything touches a device. On CPU, several
  processes talk through gloo (see ENV.md); `auto` lets a cluster (TPU, SLURM) say who is who."""
  import jax

  from mathvlm import runtime
  if fake_devices:
    runtime.use_fake_cpu_devices(fake_devices)
  if num_processes > 1:
    if not coordinator:
      raise ValueError("--num_processes > 1 needs --coordinator host:port (process 0's address)")
    if fake_devices or os.environ.get("JAX_PLATFORMS", "") == "cpu":
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
  elif auto:
    jax.distributed.initialize()


def make_mesh(spec: MeshSpec, devices: Sequence[Any] | None = None):
  from mathvlm import sharding
  return sharding.make_mesh(spec.data, spec.fsdp, spec.tensor, devices)


def batch_rows(mesh) -> int:
  """How many ways the batch is split: the size of the data and fsdp axes together."""
  return int(mesh.shape["data"] * mesh.shape["fsdp"])


def mesh_of(model):
  """The mesh the model's parameters are placed on (the run's, for the trainer's model), or None
  for a model on one device. The in-training evaluators split their batches over it: the model
  carries its placement, so `evaluate(model)` needs nothing more from the run."""
  import jax
  from flax import nnx
  from jax.sharding import NamedSharding
  for x in jax.tree.leaves(nnx.state(model)):
    if isinstance(getattr(x, "sharding", None), NamedSharding):
      return x.sharding.mesh
  return None


def split_size(batch: int, mesh) -> int:
  """`batch` rounded up to a multiple of the data axes (`batch_rows`), so that it splits over
  them; `batch` itself without a mesh. The extra rows are padding whose results are dropped."""
  if mesh is None:
    return batch
  ways = batch_rows(mesh)
  return -(-batch // ways) * ways


def gather_rows(out) -> np.ndarray:
  """A jitted call's output, split over the data axes (and processes), as one host array on
  every process (the rows in global order)."""
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.process_allgather(out, tiled=True))


def local_rows(mesh, batch: int) -> tuple[int, int]:
  """[lo, hi): the rows of a global batch that this process's devices hold."""
  from mathvlm import sharding
  index = sharding.batch_sharding(mesh).addressable_devices_indices_map((batch,))
  starts = [s[0].start or 0 for s in index.values()]
  stops = [batch if s[0].stop is None else s[0].stop for s in index.values()]
  lo, hi = min(starts), max(stops)
  if hi - lo != batch // _process_count():
    raise ValueError(f"this process's devices hold rows {lo}..{hi} of {batch}: not one "
                     "contiguous share; use a mesh whose data x fsdp axes follow the processes")
  return lo, hi


def _process_count() -> int:
  import jax
  return jax.process_count()


def load_sharded(ckpt: str, mesh, **runtime):
  """(model, config) with every parameter placed on `mesh` as the trainer places it with the
  default logical_axis_rules (see the module's docstring for why not a run's own)."""
  from mathvlm import checkpoint, sharding
  return checkpoint.load_model(ckpt, sharding=sharding.param_sharding(mesh), **runtime)


def generate_global(model, mesh, input_ids: np.ndarray, mask: np.ndarray, images: np.ndarray,
                    *, max_new_tokens: int, eos: tuple[int, ...], pad: int, temperature: float,
                    seed: int, top_p: float = 1.0,
                    rows: Sequence[int] | None = None) -> np.ndarray:
  """Decodes one global batch of which this process passes its own rows (`local_rows`); returns
  all rows' tokens [batch, max_new_tokens] on every process. The eager checks `generate` makes
  run here on the local rows (a global array spanning processes cannot be read back), and the
  jitted loop is `generate`'s own (`_generate`), so the tokens are the same as there. rows: a
  number per row of the global batch (every process passes all of them), as in `generate`.
  Decoding traces without the activation table (`generate._generate`'s docstring says why)."""
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from mathvlm import generate as gen
  from mathvlm import sharding
  if not mask[:, -1].all():
    raise ValueError("prompts must be left-padded: the last position is a token in every row")
  model.check_image_tokens(input_ids, images)
  local = sharding.place_batch({"ids": input_ids.astype(np.int32),
                                 "mask": mask.astype(np.int32), "images": images}, mesh)
  graphdef, state = nnx.split(model)
  out = gen._generate(graphdef, state, local["ids"], local["mask"], local["images"],
                      jax.random.key(seed) if rows is None else gen.row_keys(seed, rows),
                      jnp.float32(0.0 if temperature == 0 else max(temperature, 1e-6)),
                      jnp.float32(top_p), max_new_tokens=max_new_tokens,
                      eos=tuple(int(e) for e in eos), pad=int(pad))
  return gather_rows(out.tokens)


# ---------------------------------------------------------------------------------------------
# Compile-only: will a preset fit?

def compile_only(preset: str, mesh, *, batch: int, prompt_len: int, max_new_tokens: int,
                 dtype: str = "bfloat16") -> dict[str, Any]:
  """Lowers and compiles greedy decoding for `preset` (an abstract model: nothing allocated) on
  `mesh`, and returns per-device memory from XLA's analysis, as the trainer's --compile_only."""
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from mathvlm import sharding
  from mathvlm.models import registry
  family = registry.get("llava")
  cfg = family.preset(preset, dtype=dtype, param_dtype=dtype)
  abstract = family.abstract(cfg)
  graphdef, state = nnx.split(abstract)
  shardings = sharding.state_shardings(state, mesh)
  state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                       state, shardings)
  rows = sharding.batch_sharding(mesh)
  size = cfg.vision.image_size
  ids = jax.ShapeDtypeStruct((batch, prompt_len), jnp.int32, sharding=rows)
  # as `run.generate_responses` feeds `generate_global`: uint8 images (the tower normalises
  # them), one sampling key per row (each problem's own stream)
  images = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.uint8, sharding=rows)
  params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))
  report = {"preset": preset, "dtype": dtype, "devices": jax.device_count(),
            "mesh": dict(mesh.shape), "parameters": params, "batch": batch,
            "prompt_len": prompt_len, "max_new_tokens": max_new_tokens}
  return dict(report, **compile_generate(graphdef, state, ids, ids, images,
                                         max_new_tokens=max_new_tokens, row_keys=True))


def compile_generate(graphdef, state, ids, mask, images, *, max_new_tokens: int,
                     row_keys: bool = False) -> dict:
  """Compile seconds and per-device memory of the sampler (`generate._generate`) lowered for
  abstract arguments (ShapeDtypeStructs carrying their shardings). Greedy: temperature and
  top_p are traced, so sampling runs the same program. row_keys: a key per row, as
  `generate_global` passes with `rows` (the eval), else one key (the rollouts)."""
  import jax
  import jax.numpy as jnp

  from mathvlm import generate as gen
  key = gen.row_keys(0, range(ids.shape[0])) if row_keys else jax.random.key(0)
  t = time.time()
  compiled = gen._generate.lower(
      graphdef, state, ids, mask, images, key, jnp.float32(0.0), jnp.float32(1.0),
      max_new_tokens=max_new_tokens, eos=(2,), pad=0,
      unstack=False).compile()   # the accelerator's program: no CPU-only copy of the layers
  return {"compile_seconds": round(time.time() - t, 1), **memory_report(compiled)}


def memory_report(compiled) -> dict[str, Any]:
  """Per-device GiB (arguments, outputs, temporaries, total) of a compiled program, if known."""
  mem = compiled.memory_analysis()
  if mem is None:
    return {"per_device_gib": None}
  gib = lambda b: round(b / 2 ** 30, 3)
  total = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
           - mem.alias_size_in_bytes)
  return {"per_device_gib": {"arguments": gib(mem.argument_size_in_bytes),
                             "outputs": gib(mem.output_size_in_bytes),
                             "temporaries": gib(mem.temp_size_in_bytes), "total": gib(total)}}


def print_report(report: dict[str, Any]) -> None:
  print(json.dumps(report, indent=2))
