"""The train state outside the loop: its abstract shapes and shardings (what the step compiles
against and a checkpoint restores into) and its initial values (pretrained or random, each device
creating only its shards)."""

from __future__ import annotations


def state_shardings(objective, opts, abs_params, abs_frozen, tx, mesh, rules):
  """Abstract train state and its shardings: params, frozen, optimizer state, step and the
  objective's own state (sharded like the parameters when it has their structure)."""
  import jax
  import jax.numpy as jnp
  import optax

  from mathvlm import sharding

  param_sh = sharding.state_shardings(abs_params, mesh, rules)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  abs_opt = jax.eval_shape(tx.init, abs_params)
  opt_sh = optax.tree_map_params(tx, lambda _, s: s, abs_opt, param_sh,
                                 transform_non_params=lambda _: replicated)
  abstract = dict(params=abs_params, frozen=abs_frozen, opt_state=abs_opt,
                  step=jax.ShapeDtypeStruct((), jnp.int32))
  shardings = dict(params=param_sh, frozen=sharding.state_shardings(abs_frozen, mesh, rules),
                   opt_state=opt_sh, step=replicated)
  if objective.extra_state is not None:
    extra = jax.eval_shape(lambda p: objective.extra_state(p, opts), abs_params)
    same = jax.tree.structure(abs_params)
    for k, v in extra.items():
      abstract[k] = v
      shardings[k] = (param_sh if jax.tree.structure(v) == same
                      else jax.tree.map(lambda _: replicated, v))
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          abstract, shardings)
  return abstract, shardings


def initial_state(run) -> dict:
  """Parameters from the pretrained model(s) or random (each device creating or reading only its
  shards, LoRA adapters included: `run.build`), a fresh optimizer state, step 0, and the
  objective's own state."""
  import jax
  import jax.numpy as jnp
  from flax import nnx

  config, sh = run.config, run.state_sh
  if config.model.init_from or config.model.vision_init_from or config.model.language_init_from:
    _, params, frozen = nnx.split(run.build(True), run.is_trainable, ...)
    params, frozen = jax.device_put(params, sh["params"]), jax.device_put(frozen, sh["frozen"])
  else:
    random_init = lambda: nnx.split(run.build(False), run.is_trainable, ...)[1:]
    params, frozen = jax.jit(random_init, out_shardings=(sh["params"], sh["frozen"]))()
  state = dict(params=params, frozen=frozen,
               opt_state=jax.jit(run.tx.init, out_shardings=sh["opt_state"])(params),
               step=jax.device_put(jnp.int32(0), sh["step"]))
  if run.objective.extra_state is not None:
    extra = run.objective.extra_state(params, run.objective.options(config))
    state.update({k: jax.device_put(v, sh[k]) for k, v in extra.items()})
  return state


def eager_values(fn):
  """`fn` (no arguments) as a function to jit that computes, bit for bit, what calling `fn`
  eagerly computes. Eagerly each op (and each jitted function it calls) is compiled alone; under
  one jit XLA simplifies across them: `normal(key) * std`, normal being sqrt(2) * erfinv(u),
  becomes erfinv(u) * (sqrt(2) * std), one rounding for two (a quarter of the tiny LLaVA's
  random weights move by an ulp), and a function of a constant is folded at compile time by
  another implementation than the device's. So fn's ops are replayed from its jaxpr (the calls
  eager dispatch makes, in order) with an optimization barrier on every floating-point operand,
  constants included, which XLA can neither fold nor fuse across; integer and key arithmetic is
  exact however it is compiled. Under a jit's out_shardings each device still computes only its
  shards."""
  import jax
  import jax.numpy as jnp
  from jax.extend.core import Literal

  closed, shape = jax.make_jaxpr(fn, return_shape=True)()
  jaxpr = closed.jaxpr

  def opaque(value, aval):
    if not jnp.issubdtype(aval.dtype, jnp.floating):
      return value
    return jax.lax.optimization_barrier(jnp.asarray(value, aval.dtype))

  def replay():
    env = dict(zip(jaxpr.constvars, closed.consts))
    read = lambda v: v.val if isinstance(v, Literal) else env[v]
    for eqn in jaxpr.eqns:
      args = [opaque(read(v), v.aval) for v in eqn.invars]
      out = eqn.primitive.bind(*args, **eqn.primitive.get_bind_params(eqn.params))
      env.update(zip(eqn.outvars, out if eqn.primitive.multiple_results else [out]))
    return jax.tree.unflatten(jax.tree.structure(shape), [read(v) for v in jaxpr.outvars])

  return replay


def step_flops(run) -> float:
  """The objective's analytic FLOPs of one step (`mathvlm.flops`). Its flops function gets each
  trainable parameter's size, not only its path: a LoRA adapter costs in proportion to its rank,
  which no model config holds."""
  import math

  from flax import nnx

  from mathvlm.models.layers import path_str
  params = nnx.to_flat_state(run.abstract_state["params"])
  sizes = {path_str(path): math.prod(v.shape) for path, v in params}
  return run.objective.flops(run.cfg, run.batch_shapes, sizes, run.objective.options(run.config))
