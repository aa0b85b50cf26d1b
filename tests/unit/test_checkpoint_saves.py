"""Which steps a run's Checkpointer saves: every `checkpoint.every` steps (the loop adds the last
step and a preempted one, with force), nothing else."""

from mathvlm.checkpoint import Checkpointer


def test_a_fresh_run_saves_only_every_n_steps_not_its_first_step(tmp_path):
  """orbax's default policy adds InitialSavePolicy: a fresh run saved step 1 (and, before that
  save, found every step due) whatever checkpoint.every was, a whole extra checkpoint."""
  ckpt = Checkpointer(str(tmp_path), every=3, keep=5, use_async=False)
  try:
    assert [s for s in range(1, 8) if ckpt.should_save(s)] == [3, 6]
  finally:
    ckpt.close()
