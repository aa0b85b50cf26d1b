"""The engine as a problem stream for reinforcement learning: problems made on the fly, from the
index the training pipeline hands out and the difficulty the curriculum asks for.

  --config.grpo.problems=data_prep.engine.online:EngineStream

Problem `index` at level L is `writer.make_problem(Options(seed, split="train", steps=LEVELS[L],
...), index)`: pure in (seed, index, level), so a resumed run (the data iterator's position and
the curriculum's level are checkpointed) makes the same problems, and any worker makes the same
bytes. Only the training split is drawn (the engine's content-hash split), so no held-out problem
of the same seed's test split appears. A level is a reasoning depth (`--steps`): the curriculum
moves from one-step problems to six-step chains; `steps="MIN:MAX"` makes one level of that depth
range instead (a run that trains at the depths it is evaluated on: the curriculum then stays).
Problems are made in a pool of worker processes (`workers`), in index order, spawned rather than
forked (the trainer runs JAX, and a forked child of a process whose XLA threads hold locks can
deadlock), so a script that starts training needs Python's `if __name__ == "__main__":` guard.

Each problem comes as its MAVIS-Geometry record and its images in memory, {path: PNG bytes}; the
trainer's side (`mathvlm.rl.rollouts`) turns records into prompts with the evaluation's own loader
(`mathvlm.eval.engine_benchmark.problems_of`), so rollouts see exactly what held-out evaluation
asks.
"""

from __future__ import annotations

import functools
import multiprocessing as mp

from data_prep.engine.writer import Options, make_problem, pool_context, steps_range

LEVELS = ((1, 1), (1, 2), (2, 3), (3, 4), (4, 6))


def _make(opts: Options, index: int) -> tuple[dict, dict]:
  sample = make_problem(opts, index)[0]
  return sample["record"], dict(sample["files"])


class EngineStream:
  """records(indices, level) -> [(record, {image path: PNG bytes})], in the order asked."""
  versions = 3

  def __init__(self, seed: int = 0, domain: str = "all", mc: float = 0.7, degrade: float = 0.0,
               workers: int = 0, timeout: float = 600.0, steps: str = ""):
    self.seed, self.domain, self.mc, self.degrade = seed, domain, mc, degrade
    self.workers, self.timeout = workers, timeout
    self.depths = (steps_range(str(steps)),) if steps else LEVELS
    self.levels = len(self.depths)
    self.options(0)  # a bad depth range is said now, not at the first rollout
    self._pool = None

  def options(self, level: int) -> Options:
    if not 0 <= level < self.levels:
      raise ValueError(f"engine stream level {level}: 0..{self.levels - 1}")
    return Options(seed=self.seed, domain=self.domain, split="train", mc=self.mc,
                   degrade=self.degrade, steps=self.depths[level]).check()

  def records(self, indices: list[int], level: int) -> list[tuple[dict, dict]]:
    make = functools.partial(_make, self.options(level))
    if self.workers <= 1:
      return [make(int(i)) for i in indices]
    if self._pool is None:
      # the caller is a JAX trainer: spawn (a forked child once hung a CI run until it was killed)
      self._pool = pool_context().Pool(self.workers)
    pending = self._pool.map_async(make, [int(i) for i in indices])
    try:
      return pending.get(timeout=self.timeout)
    except mp.TimeoutError:
      raise RuntimeError(f"engine stream: {self.workers} workers made no {len(indices)} problems "
                         f"(level {level}) in {self.timeout} s; a worker hung or died (its "
                         "output above), or raise problem_options timeout=") from None

  def close(self):
    if self._pool is not None:
      self._pool.close()
      self._pool.join()
      self._pool = None
