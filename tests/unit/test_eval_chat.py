"""`mathvlm.eval.chat.LocalChat`: which sampling key each prompt draws from, and which replies
were cut at max_new_tokens (the decoding itself is `mathvlm.eval.run.generate_tokens`, tested
with `generate_responses`)."""

import numpy as np

from mathvlm.eval import chat, run


def _chat(batch, max_new_tokens=2):
  c = object.__new__(chat.LocalChat)  # no checkpoint: the decoding is scripted
  c.model = c.cfg = None
  c.encoder = run.Encoder.__new__(run.Encoder)
  c.encoder.eos, c.encoder.pad = (2, 7), 0
  c.encoder.tok = type("Tok", (), {"decode": staticmethod(lambda ids: " ".join(map(str, ids)))})
  c.template, c.image_aspect, c.batch_size, c.temperature = "vicuna_v1", "pad", batch, 0.7
  c.max_new_tokens = max_new_tokens
  return c


def test_a_prompt_samples_from_its_own_key_whatever_call_it_comes_in(monkeypatch):
  """data_prep.chat_backends sends `batch_size` prompts per respond(); numbered by their place in
  the call, prompts 1 and 9 of a run drew from one key with --batch 8, and prompt 9 from another
  key with --batch 16. Now the key is the prompt's own: the same in any call, distinct across
  prompts."""
  keys = {}
  monkeypatch.setattr(run, "generate_tokens", lambda m, c, e, ps, index=None, **kw: (
      keys.setdefault(kw["batch_size"], []).extend(index), [(ps, np.full((len(ps), 2), 2))])[1])
  prompts = [(f"question {i}", f"img{i % 3}.png") for i in range(16)]
  for batch in (8, 16):
    c = _chat(batch)
    for start in range(0, 16, batch):
      c.respond(prompts[start:start + batch])
  assert keys[8] == keys[16] and len(set(keys[8])) == 16
  assert all(0 <= k < 2 ** 32 for k in keys[8])  # fold_in takes uint32
  # one question asked of several images (a caption prompt) draws from a key per image
  assert len({chat.prompt_key("Describe the figure.", f"img{i}.png") for i in range(8)}) == 8


def test_a_reply_without_an_eos_is_cut(monkeypatch):
  """A reply that filled max_new_tokens with no EOS came back as text like any other, so
  data_prep.augment merged a cut answer ("1" of "12") from the local model while it failed
  the server's (finish_reason 'length'). Any of the model's EOS ids ends a reply; the padding
  after it is no text."""
  rows = np.array([[5, 6, 2, 0], [5, 6, 8, 9], [7, 0, 0, 0], [2, 0, 0, 0]])
  monkeypatch.setattr(run, "generate_tokens", lambda *a, **kw: iter([(["p"] * 4, rows)]))
  replies = _chat(4, max_new_tokens=4).respond([("q", "img.png")] * 4)
  assert replies == [chat.Reply("5 6", False), chat.Reply("5 6 8 9", True),
                     chat.Reply("", False), chat.Reply("", False)]
