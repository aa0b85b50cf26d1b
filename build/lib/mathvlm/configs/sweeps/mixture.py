"""Data-mix ablation at paper scale: MathV360K against MAVIS-Instruct by weight (Math-LLaVA's
recipe, 7B). One job per run for a cluster:
  python launch/sweep.py configs/sweeps/mixture.py --workdir gs://BUCKET/sweeps/mixture \
      --launcher tpu --launcher_args "mathllava us-central2-b v4-64"
"""

BASE = "configs/sft.py:model=llava-1.5-7b"
FLAGS = {"config.data.path": "gs://BUCKET/data", "config.model.init_from": "gs://BUCKET/ckpt/llava7b",
         "config.data.tokenizer": "gs://BUCKET/ckpt/llava7b"}


def get_sweep():
  return [{"config.data.mixture": f"mathv360k={a},mavis_instruct={b}"}
          for a, b in ((1, 0.001), (3, 1), (1, 1), (1, 3))]
