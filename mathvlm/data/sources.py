"""Data sources by name (config.data.name). Each returns a random-access source of example dicts
shaped for the objective and the model (image size, image tokens, vocabulary)."""

from __future__ import annotations

from mathvlm.data.synthetic import SyntheticSource


def make_source(data_cfg, objective: str, model_cfg, seed: int):
  vision = getattr(model_cfg, "vision", model_cfg)
  text = getattr(model_cfg, "text", None)
  if data_cfg.name == "synthetic":
    return SyntheticSource(
        objective, num_examples=data_cfg.num_examples, max_len=data_cfg.max_len,
        image_size=vision.image_size, vocab_size=getattr(text, "vocab_size", 0),
        image_seq_len=getattr(model_cfg, "image_seq_len", 0),
        image_token_id=getattr(model_cfg, "image_token_id", -1),
        num_classes=data_cfg.num_classes, seed=seed)
  raise ValueError(f"unknown data source data.name={data_cfg.name!r}; available: synthetic "
                   "(ArrayRecord datasets arrive with the data issue)")
