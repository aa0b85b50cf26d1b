"""Benchmark evaluation: loaders, prompts, GPT-free answer extraction, each benchmark's official
normalisation and scores (MathVista, MATH-Vision, MathVerse, the engine's held-out sets and its
variants as a dynamic benchmark).

Entry points: `python -m mathvlm.eval.score` (score response files) and `python -m
mathvlm.eval.run` (generate with a checkpoint on a device mesh, resumably, then score);
`mathvlm.eval.engine_dynamic.evaluate` for the engine's variants.
"""
