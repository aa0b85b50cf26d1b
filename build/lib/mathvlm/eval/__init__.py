"""Benchmark evaluation: loaders, prompts, GPT-free answer extraction, each benchmark's official
normalisation and scores (MathVista, MATH-Vision, MathVerse, the engine's held-out sets).

Entry points: `python -m mathvlm.eval.score` (score response files) and `python -m
mathvlm.eval.run` (generate with a checkpoint, then score).
"""
