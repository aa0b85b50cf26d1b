"""Device mesh and the one table that maps the models' logical axis names to mesh axes.

Layers name their parameters' axes logically (`embed`, `mlp`, `heads`, ...) and their activations'
(`activation_batch`, `activation_length`, ...; see `constrain`); which mesh axis each lands on is
this table's business, overridable from the config, never the model's. An override maps every
name the layers use, each once (None replicates on purpose: `rule_errors`). An array splits over a
mesh axis once: a dimension loses the mesh axes an earlier one of the same array took. A parameter
dimension that loses axes so, or whose mesh axes do not divide it, is split over fewer devices than
the table says (replicated if over none), and setup names each such one (`log_replicated`); an
activation dimension that loses axes so is named once per table while tracing (`constrain`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

log = logging.getLogger("mathvlm.train")  # the trainer's log, which it prints

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
    # Activations (MaxText's names): the batch over (data, fsdp), heads and MLP width over tensor;
    # the sequence and the residual stream's width stay whole on each device.
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    ("activation_embed", None),
    ("activation_heads", "tensor"),
    ("activation_kv_heads", "tensor"),
    ("activation_mlp", "tensor"),
    ("activation_vocab", "tensor"),
)

LOGICAL_AXES = tuple(name for name, _ in DEFAULT_RULES)  # every name the layers annotate with


def rule_errors(rules) -> list[str]:
  """What is wrong with a logical axis table (the config's `logical_axis_rules`), one line each: a
  logical name no layer uses (a misspelt 'mlp' would leave those weights replicated, silently),
  a mesh axis the mesh does not have, a name mapped twice (`duplicate_rule_errors`), or a name
  the layers use left out (an override copied without it would replicate those weights as
  silently; None replicates on purpose)."""
  errors = []
  for rule in rules:
    if len(rule) != 2:
      errors.append(f"logical_axis_rules entry {tuple(rule)!r}: expected (logical name, mesh "
                    "axis | (mesh axes) | None)")
      continue
    name, axes = rule
    if name not in LOGICAL_AXES:
      errors.append(f"logical_axis_rules entry {tuple(rule)!r}: no layer uses the logical axis "
                    f"{name!r}; the layers use {list(LOGICAL_AXES)}")
    unknown = [a for a in ((axes,) if isinstance(axes, str) else axes or ()) if a not in MESH_AXES]
    if unknown:
      errors.append(f"logical_axis_rules entry {tuple(rule)!r}: mesh axes {unknown} are not in "
                    f"the mesh's {list(MESH_AXES)}")
  return errors + duplicate_rule_errors(rules) + missing_rule_errors(rules)


def duplicate_rule_errors(rules) -> list[str]:
  """One line per logical name `rules` maps twice. flax's `logical_to_mesh_axes` (and MaxText's
  tables) read a repeat as a fallback, the first entry whose mesh axes are free winning; this
  table keeps one entry per name (the last, through `dict`) and needs no fallbacks, since a
  dimension keeps those of its mesh axes no earlier dimension took. A copied MaxText fallback,
  or an override appended after the entry it means to replace, would change the placement
  silently either way."""
  first: dict = {}
  errors = []
  for rule in (tuple(r) for r in rules if len(r) == 2):
    if rule[0] in first:
      errors.append(f"logical_axis_rules maps {rule[0]!r} twice, {first[rule[0]]!r} and "
                    f"{rule!r}: one entry per name (no fallbacks: a dimension keeps the mesh "
                    "axes no earlier dimension uses); keep the one you mean")
    first.setdefault(rule[0], rule)
  return errors


def missing_rule_errors(rules) -> list[str]:
  """The names in LOGICAL_AXES that no entry of `rules` maps, as one error line (or none)."""
  named = {rule[0] for rule in rules if len(rule) == 2}
  missing = [name for name in LOGICAL_AXES if name not in named]
  if not missing:
    return []
  return [f"logical_axis_rules leaves out {missing}, which the layers use: each needs an entry; "
          f"to replicate one on purpose map it to None, e.g. ({missing[0]!r}, None)"]


_ACTIVATIONS: contextvars.ContextVar = contextvars.ContextVar("activation_sharding", default=None)


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules=DEFAULT_RULES):
  """While tracing inside this context, `constrain` pins activations to `mesh` by the logical
  table `rules` (the config's `logical_axis_rules`). Outside it `constrain` does nothing, so a
  single-device forward, a test or a converter needs no mesh. It also sets jax's mesh context,
  which jit's trace cache keys on, so a function traced outside is traced again inside (the rules
  are not in that key: change them only between processes). A function jitted once and called
  from anywhere (the trainer's step) enters the table inside its trace instead:
  `traced_with_activation_sharding`."""
  # set_mesh: part of jit's cache key, so a trace from outside is not reused
  with _constraints(mesh, rules), jax.set_mesh(mesh):
    yield


def traced_with_activation_sharding(fn: Callable, mesh: Mesh | None,
                                    rules=DEFAULT_RULES) -> Callable:
  """fn, whose every trace constrains activations by `rules` on `mesh`: the trainer's step, which
  the loop, `--compile_only` and the tests call with no context of their own. Without it the
  layers' `constrain` did nothing in training and XLA's propagation chose the activations' layout:
  on 8 devices with mesh.fsdp=8 the MLP's ran at the global batch on every device (its frozen
  matmuls split over their fsdp-sharded contraction), and LoRA dropout's masks with them.
  The table is entered inside the trace, so jit caches only constrained traces; jax.set_mesh is
  left out (it cannot be entered under jit, and the shardings `constrain` makes name the mesh).
  Likelihood scoring and the evaluators' losses trace so too, on the mesh the model is placed on
  (decoding does not: `generate._generate`); mesh None (a model on one device) gives fn itself."""
  if mesh is None:
    return fn

  @functools.wraps(fn)
  def traced(*args, **kwargs):
    with _constraints(mesh, rules):
      return fn(*args, **kwargs)

  return traced


@contextlib.contextmanager
def _constraints(mesh: Mesh, rules):
  token = _ACTIVATIONS.set((mesh, tuple(tuple(r) for r in rules)))
  try:
    yield
  finally:
    _ACTIVATIONS.reset(token)


def constrain(x, *names: str | None):
  """`jax.lax.with_sharding_constraint` of x by logical axis names (one per dimension), through
  the active table; a mesh axis that does not divide its dimension is left out (replicated), and
  logged once (`_log_dropped_once`)."""
  active = _ACTIVATIONS.get()
  if active is None:
    return x
  mesh, rules = active
  if len(names) != x.ndim:
    raise ValueError(f"constrain: {len(names)} axis names {names} for an array of rank {x.ndim}")
  _log_dropped_once(names, x.shape, mesh, rules)
  return jax.lax.with_sharding_constraint(x, param_sharding(mesh, rules)(None, names, x.shape))


_TAKEN_LOGGED: set = set()  # the (logical names, rules) whose taken mesh axes were logged
_UNDIVIDED_LOGGED: set = set()  # the (names, shape, rules, mesh) whose replication was logged


def _log_dropped_once(names, shape, mesh, rules) -> None:
  """Names each mesh axis an activation loses, as `log_replicated` does for parameters: to an
  earlier dimension (`taken_axes`), once per names and table, or because it does not divide the
  dimension (a sequence of 100 over 8 devices: whole on each), once per shape and mesh too.
  `constrain` runs at every trace of every layer, and one line a trace would bury the log."""
  key = (tuple(names), str(rules))  # str: a config may give a rule's mesh axes as a list
  undivided = (key, tuple(shape), tuple(mesh.shape.items()))
  if undivided not in _UNDIVIDED_LOGGED:
    _UNDIVIDED_LOGGED.add(undivided)
    for dim, axes, size in undivided_dims(mesh, rules, names, shape):
      log.warning("sharding: activations %s are replicated along dimension %d (%r, length %d): "
                  "mesh axes %s (%d devices) do not divide it; give it a length they divide, "
                  "or map %r to None in logical_axis_rules to replicate it on purpose", names,
                  dim, names[dim], shape[dim], axes, size, names[dim])
  if key in _TAKEN_LOGGED:
    return
  _TAKEN_LOGGED.add(key)
  for dim, axis, holder in taken_axes(names, rules):
    log.warning("sharding: activations %s are not split over mesh axis %r along dimension %d "
                "(%r): dimension %d (%r) has that axis, and an array splits over a mesh axis "
                "once; map %r and %r to different mesh axes in logical_axis_rules, or %r without "
                "%r to mean it", names, axis, dim, names[dim], holder, names[holder],
                names[holder], names[dim], names[dim], axis)


def mesh_sizes(data: int, fsdp: int, tensor: int, device_count: int) -> tuple[int, int, int]:
  """The (data, fsdp, tensor) sizes a mesh over `device_count` devices gets, its one -1 (if any)
  filled in. One function for the mesh and for the config's checks of it: the batch check once
  multiplied mesh.data=-1 in as -1, and a batch the mesh cannot split passed it."""
  sizes = [data, fsdp, tensor]
  if sizes.count(-1) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got data={data} fsdp={fsdp} "
                     f"tensor={tensor}")
  known = int(np.prod([s for s in sizes if s != -1]))
  if -1 in sizes:
    if device_count % known:
      raise ValueError(f"{device_count} devices do not divide into mesh {sizes}")
    sizes[sizes.index(-1)] = device_count // known
  if int(np.prod(sizes)) != device_count:
    raise ValueError(f"mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]} needs "
                     f"{int(np.prod(sizes))} devices, have {device_count}")
  return tuple(sizes)


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A (data, fsdp, tensor) mesh; one size may be -1 meaning 'all remaining devices'."""
  devices = list(devices if devices is not None else jax.devices())
  sizes = mesh_sizes(data, fsdp, tensor, len(devices))
  return jax.make_mesh(sizes, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def _assign(names: Sequence[str | None], rules) -> tuple[list, list[tuple[int, str, int]]]:
  """Each dimension's mesh axes (None, one name or a tuple), and (dimension, mesh axis, earlier
  dimension) for each axis the table maps a dimension to that an earlier dimension took."""
  table = dict(rules)
  owner: dict[str, int] = {}
  spec, taken = [], []
  for i, name in enumerate(names):
    axes = table.get(name) if name is not None else None
    axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
    taken += [(i, a, owner[a]) for a in axes if a in owner]
    axes = tuple(a for a in axes if a not in owner)
    owner.update({a: i for a in axes})
    spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
  return spec, taken


def logical_to_spec(names: Sequence[str | None], rules=DEFAULT_RULES) -> PartitionSpec:
  """PartitionSpec for logical names; a mesh axis is used at most once per array, by the first
  dimension that names it (`taken_axes` lists the ones left out)."""
  return PartitionSpec(*_assign(names, rules)[0])


def taken_axes(names: Sequence[str | None], rules=DEFAULT_RULES) -> list[tuple[int, str, int]]:
  """(dimension, mesh axis, the earlier dimension using it) for each mesh axis the table gives a
  dimension but `logical_to_spec` leaves out, since an array splits over a mesh axis once
  (embed and mlp both on tensor: the MLP width whole on each tensor device). flax does the same
  without a word; here setup says so (`log_replicated`)."""
  return _assign(names, rules)[1]


def _table_spec(names: Sequence[str | None], shape, rules) -> list:
  """The table's mesh axes for each dimension (None past the named ones)."""
  spec = list(logical_to_spec(names, rules)) if names else [None] * len(shape)
  return spec + [None] * (len(shape) - len(spec))


def undivided_dims(mesh, rules, names, shape) -> list[tuple[int, str | tuple[str, ...], int]]:
  """(dimension, mesh axes, their size) of each dimension the table shards whose length those
  axes do not divide: `param_sharding` replicates it. mesh: anything with `.shape` (an
  AbstractMesh will do)."""
  out = []
  for i, axes in enumerate(_table_spec(names, shape, rules)):
    if axes is None:
      continue
    size = int(np.prod([mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes)]))
    if shape[i] % size:
      out.append((i, axes, size))
  return out


def param_sharding(mesh: Mesh, rules=DEFAULT_RULES) -> Callable:
  """(path, logical names, shape) -> NamedSharding; axes that do not divide are replicated
  (`log_replicated` names them once, at setup)."""

  def fn(path, names, shape):
    spec = _table_spec(names, shape, rules)
    for i, _, _ in undivided_dims(mesh, rules, names, shape):
      spec[i] = None
    return NamedSharding(mesh, PartitionSpec(*spec))

  return fn


def log_replicated(params, mesh, rules=DEFAULT_RULES) -> int:
  """Logs each (parameter, dimension) the table shards but `param_sharding` does not, or over
  fewer mesh axes: the mesh axes do not divide it (vocab 1023 over tensor=2), or an earlier
  dimension of the parameter took one (`taken_axes`). That part of the model is whole on each of
  those devices, more memory than the table suggests. Once, at setup (the step's shardings are
  fixed then); nothing when the table's placement holds. params: an nnx State (abstract will do).
  Returns how many lines it logged."""
  from flax import nnx  # local: keeps this module importable without building models
  lines = 0
  for path, var in nnx.to_flat_state(params):
    names, shape = var.get_metadata().get("out_sharding") or (), var.shape
    where = "/".join(map(str, path))
    for dim, axes, size in undivided_dims(mesh, rules, names, shape):
      log.warning("sharding: %s is replicated along dimension %d (%r, length %d): mesh axes %s "
                  "(%d devices) do not divide it; map %r to None in logical_axis_rules to "
                  "replicate it on purpose", where, dim, names[dim], shape[dim], axes, size,
                  names[dim])
      lines += 1
    for dim, axis, holder in taken_axes(names, rules):
      log.warning("sharding: %s is not split over mesh axis %r along dimension %d (%r, length "
                  "%d): its dimension %d (%r) has that axis, and an array splits over a mesh "
                  "axis once; map %r and %r to different mesh axes in logical_axis_rules, or %r "
                  "without %r to mean it", where, axis, dim, names[dim], shape[dim], holder,
                  names[holder], names[holder], names[dim], names[dim], axis)
      lines += 1
  return lines


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
