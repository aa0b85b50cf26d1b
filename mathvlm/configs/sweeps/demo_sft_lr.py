"""Learning rate x seed for the demo's instruction-tuning stage (after `make demo` built its data
and ran alignment):
  python launch/sweep.py configs/sweeps/demo_sft_lr.py --workdir out/sweeps/demo_sft_lr
"""

BASE = "configs/demo.py:stage=sft,data=out/demo/data"
FLAGS = {"config.model.init_from": "out/demo/2_align"}


def get_sweep():
  return [{"config.optim.lr": lr, "config.seed": seed}
          for lr in (5e-4, 1e-3, 2e-3) for seed in (0, 1)]
