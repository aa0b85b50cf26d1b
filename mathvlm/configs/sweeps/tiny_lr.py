"""Seconds-long sweep on synthetic data (what the test suite runs):
  python launch/sweep.py configs/sweeps/tiny_lr.py --workdir /tmp/sweep
"""

BASE = "configs/sft.py:model=tiny"
FLAGS = {"config.steps": 4, "config.data.num_examples": 64, "config.checkpoint.use_async": False,
         "config.metrics.tensorboard": False}


def get_sweep():
  return [{"config.optim.lr": lr} for lr in (1e-4, 1e-3)]
