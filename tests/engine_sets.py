"""A few engine test problems with their images and a tokenizer trained on their text (the demo's
special tokens first), for the tests of evaluators that score engine problems."""

import json


def write_engine_set(root, problems: int = 4, seed: int = 3) -> str:
  """Writes ROOT/engine (the problems, three versions each) and ROOT/tokenizer.json; returns the
  tokenizer's path."""
  from data_prep.engine.writer import Options, generate
  from mathvlm.demo.data import SPECIALS, add_bos, train_tokenizer
  generate(str(root / "engine"), problems, Options(seed=seed, split="test"))
  records = json.load(open(root / "engine/instruct.json"))
  texts = [t for r in records for t in r["text_en"].values()] + [
      f"The answer is {c}." for r in records for c in r["choices"] + [r["answer"]]]
  tok = train_tokenizer(texts * 4, 600)
  add_bos(tok)
  assert [tok.token_to_id(t) for t in SPECIALS] == list(range(len(SPECIALS)))
  tok.save(str(root / "tokenizer.json"))
  return str(root / "tokenizer.json")
