"""Training checkpoints: orbax CheckpointManager holding the train state and the grain iterator
state side by side (async, keeps the last N, atomic). A run restarted with the same workdir
resumes from the latest step by itself and continues with the same next batch."""

from __future__ import annotations

import grain
import jax
import orbax.checkpoint as ocp

from mathvlm import paths


class Checkpointer:
  def __init__(self, workdir: str, *, every: int, keep: int, use_async: bool = True):
    self.every = every
    self.manager = ocp.CheckpointManager(
        paths.absolute(workdir) / "checkpoints",
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=every,
                                             enable_async_checkpointing=use_async, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_iter, *, force: bool = False) -> bool:
    return self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(data_iter)),
        force=force)

  def restore(self, step: int, abstract_state, data_iter):
    """abstract_state: ShapeDtypeStructs carrying the target shardings."""
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=grain.checkpoint.CheckpointRestore(data_iter)))
    return out.state

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_like(tree):
  """ShapeDtypeStructs (with shardings) of a pytree of arrays, as a restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
