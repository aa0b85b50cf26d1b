"""Data-mix ablation at paper scale: MathV360K against MAVIS-Instruct by weight (Math-LLaVA's
recipe, 7B). The built datasets, with LLaVA-1.5-7B's tokenizer folder beside them (llava7b/), live
in a bucket folder that launch/tpu_vm.sh copies to every worker's /tmp/mathvlm-data (DATA_FROM);
the runs read them there (`data.mixture` names datasets under `data.path`). One job per run:
  python launch/sweep.py configs/sweeps/mixture.py --workdir gs://BUCKET/sweeps/mixture \
      --launcher tpu --launcher_args "mathllava us-central2-b v4-64"
  for j in out/sweep_jobs/gs/BUCKET/sweeps/mixture/*.sh; do
    DATA_FROM=gs://BUCKET/data bash "$j"; done
"""

# data=mathv360k: a built dataset (data.name "synthetic", sft.py's default, would never read
# data.mixture); each run's data.mixture then names the datasets it mixes. Not grouped by length,
# which the recipe does on one built dataset: a mixture cannot be grouped yet.
BASE = "configs/sft.py:model=llava-1.5-7b,data=mathv360k"
FLAGS = {"config.data.group_by_length": False,
         "config.data.path": "/tmp/mathvlm-data",
         "config.data.tokenizer": "/tmp/mathvlm-data/llava7b",
         "config.model.init_from": "gs://BUCKET/ckpt/llava7b"}


def get_sweep():
  return [{"config.data.mixture": f"mathv360k={a},mavis_instruct={b}"}
          for a, b in ((1, 0.001), (3, 1), (1, 1), (1, 3))]
