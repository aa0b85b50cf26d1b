"""Evaluation prompts: the benchmark's query wrapped in the chat template the evaluated model was
trained with (mathvlm.data.templates, LLaVA's conversation.py), `<image>` where the image goes.
vicuna_v1 is Math-LLaVA's (and LLaVA-1.5's) template.
"""

from __future__ import annotations

from mathvlm.data import templates

IMAGE = templates.IMAGE
TEMPLATES = templates.TEMPLATES


def format_prompt(query: str, template: str = "vicuna_v1", n_images: int = 1) -> str:
  """The full prompt text: the template around `query`, `<image>` once per image in front (LLaVA
  moves the image to the front of the first turn), the assistant's turn left open."""
  return templates.generation_prompt(query, templates.get(template), n_images)
