"""Reinforcement learning with verifiable rewards, the host side of the `grpo` objective:
rollouts with the KV-cache sampler (`rollouts.py`), rewards checked by the evaluation's own answer
judge (`rewards.py`), and a curriculum that keeps groups informative (`curriculum.py`). The loss
is `mathvlm.objectives.grpo`."""
