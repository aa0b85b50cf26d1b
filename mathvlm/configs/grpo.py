"""Reinforcement learning with verifiable rewards: GRPO on engine problems made on the fly.

Defaults for a 7B LLaVA/MAVIS model, each cited (FACTS.md) or marked as our choice:
- lr 1e-6, constant after warmup: DeepSeekMath's GRPO and the VLM recipes (VLM-R1, R1-V,
  MM-Eureka) use about 1e-6;
- G = 8 answers per prompt, temperature 1.0 (VLM-R1, R1-V, MM-Eureka); DeepSeekMath used 64;
- KL beta 0.04 with the k3 estimator (DeepSeekMath); DAPO and Dr. GRPO drop it (beta=0);
- clip 0.2 (PPO, GRPO); `--config.grpo.eps_high=0.28` is DAPO's clip-higher;
- DAPO's other choices are options, off by default: `aggregation='token'` averages the loss over
  all answer tokens of the batch; `dynamic_sampling=True` replaces groups whose answers are all
  equal, in total reward or, with `filter_metric='correct'`, DAPO's, in being right (an all-wrong
  group that differs only in `format` is then replaced, not trained on); the `overlong` reward
  (e.g. `rewards='answer=1.0,format=0.1,overlong=1.0'`) is its soft overlong punishment, 0 until
  the last `overlong_buffer` tokens before max_new_tokens, then down to -1 at it (DAPO: 4096 of
  20480);
- answers of at most 512 new tokens (ours: DeepSeekMath allowed 1024; engine rationales are
  shorter), 16 prompts per step x 8 answers = 128 rollouts (ours);
- the batch in 2 micro-batches (`optim.grad_accum=2`, ours): XLA counts 20.8 GiB a device for the
  update with 8 devices and fsdp=8 (33.0 in one; 54.7 and 88.6 before the step traced under the
  activation table, 8965433; the rollouts' decoding 38.9, on the train state's float32 weights);
- LoRA on the LLM only, as MAVIS's DPO stage trains (ours: the RL papers fine-tune fully), rank 64
  and alpha 128 (ours: MAVIS's stages use 128 and 256, the same scale alpha / rank = 2), without
  dropout (ours): the old policy's and the reference's log-probs are computed without it, so
  dropout in the learner's forward would move the ratio pi/pi_old off 1, and the clip and KL
  with it, by noise alone. TRL's GRPOConfig leaves dropout on by default (`disable_dropout=False`;
  its help: disabling it "prevents the model from generating different logprobs for the same
  input", useful with a reference model);
- rewards: the exact answer (1.0) and the trained answer format (0.1) (ours);
- prompts in instruction tuning's template (vicuna_v1, the base's; `configs/sft.py:recipe=mavis`);
- problems from the data engine at a difficulty the curriculum adapts (ours; `grpo.problems`),
  moving a level after at least `grpo.curriculum_min_steps=5` steps measured at it (ours: the
  running pass rate's window at momentum 0.8, so one batch after a move cannot undo it).

  python -m mathvlm.train --config configs/grpo.py:model=mavis-7b \
      --config.model.init_from=WORKDIR_OF_STAGE_3 --config.data.tokenizer=TOKENIZER.json
  python -m mathvlm.train --config grpo.py:model=tiny ... --compile_only --fake_devices 8
"""

from mathvlm.configs import common
from mathvlm.configs.align import LLM_LORA_TARGETS


def get_config(arg=None):
  a = common.parse_arg(arg, model="tiny", problems="data_prep.engine.online:EngineStream")
  c = common.base("grpo")
  c.model.preset = a.model
  c.data.name = "stream"            # indices; the engine makes each problem in the host step
  c.data.num_examples = 1_000_000
  c.data.global_batch = 16          # prompts per step
  c.data.max_len = 1024             # prompt tokens (576 image tokens + the question)
  c.steps = 1000
  c.optim.lr, c.optim.schedule, c.optim.warmup_ratio = 1e-6, "constant", 0.03
  c.optim.weight_decay = 0.0
  c.model.dtype, c.model.remat = "bfloat16", "full"
  c.optim.grad_accum = 2
  c.lora.rank, c.lora.alpha, c.lora.targets = 64, 128.0, LLM_LORA_TARGETS
  c.lora.dropout = 0.0
  c.train_rules = ((".*/lora/.*", "trainable"), (".*", "frozen"))
  c.grpo.update(dict(group=8, temperature=1.0, max_new_tokens=512, beta=0.04, eps_low=0.2,
                     eps_high=0.2, problems=a.problems))
  if a.model == "tiny":  # runs in seconds on a CPU
    c.data.global_batch, c.data.max_len, c.steps = 4, 64, 8
    c.optim.grad_accum = 1
    c.model.dtype, c.model.remat = "float32", "none"
    c.optim.lr = 1e-3
    c.grpo.update(dict(group=4, max_new_tokens=8))
  return common.finish(c)
