"""Device mesh and the one table that maps the models' logical axis names to mesh axes.

Layers name their parameters' axes logically (`embed`, `mlp`, `heads`, ...); which mesh axis each
lands on is this table's business, overridable from the config, never the model's.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axis (or axes, or None = replicated). FSDP shards the model dimension of
# every weight; tensor parallelism splits heads and the MLP width.
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("layers", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("norm", None),
    ("activation_batch", ("data", "fsdp")),
)


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A (data, fsdp, tensor) mesh; one size may be -1 meaning 'all remaining devices'."""
  devices = list(devices if devices is not None else jax.devices())
  sizes = [data, fsdp, tensor]
  if sizes.count(-1) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got data={data} fsdp={fsdp} tensor={tensor}")
  known = int(np.prod([s for s in sizes if s != -1]))
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"{len(devices)} devices do not divide into mesh {sizes}")
    sizes[sizes.index(-1)] = len(devices) // known
  if int(np.prod(sizes)) != len(devices):
    raise ValueError(f"mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]} needs "
                     f"{int(np.prod(sizes))} devices, have {len(devices)}")
  return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def logical_to_spec(names: Sequence[str | None], rules=DEFAULT_RULES) -> PartitionSpec:
  """PartitionSpec for logical names; a mesh axis is used at most once per array."""
  table = dict(rules)
  used: set[str] = set()
  out = []
  for name in names:
    axes = table.get(name) if name is not None else None
    axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
    axes = tuple(a for a in axes if a not in used)
    used.update(axes)
    out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
  return PartitionSpec(*out)


def param_sharding(mesh: Mesh, rules=DEFAULT_RULES) -> Callable:
  """(path, logical names, shape) -> NamedSharding; axes that do not divide are replicated."""

  def fn(path, names, shape):
    spec = list(logical_to_spec(names, rules)) if names else [None] * len(shape)
    spec += [None] * (len(shape) - len(spec))
    for i, axes in enumerate(spec):
      if axes is None:
        continue
      size = int(np.prod([mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes)]))
      if shape[i] % size:
        spec[i] = None
    return NamedSharding(mesh, PartitionSpec(*spec))

  return fn


def state_shardings(abstract_state, mesh: Mesh, rules=DEFAULT_RULES):
  """NamedShardings for an nnx State (or any pytree of Variables / arrays) from the logical axis
  names its Variables carry; leaves without names are replicated."""
  from flax import nnx  # local: keeps this module importable without building models
  fn = param_sharding(mesh, rules)

  def one(x):
    if isinstance(x, nnx.Variable):
      names = x.get_metadata().get("out_sharding") or ()
      return x.replace(fn(None, names, x.shape))
    return NamedSharding(mesh, PartitionSpec())

  return jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """The leading (batch) dimension over (data, fsdp); everything else replicated."""
  return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def place_batch(local: dict, mesh: Mesh) -> dict:
  """Assembles each process's rows into global arrays sharded over (data, fsdp)."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
