"""`mathvlm.eval.chat.LocalChat`: which sampling key each prompt draws from (the decoding itself is
`mathvlm.eval.run.generate_responses`, tested with it)."""

from mathvlm.eval import chat, run


def test_a_prompt_samples_from_its_own_key_whatever_call_it_comes_in(monkeypatch):
  """data_prep.chat_backends sends `batch_size` prompts per respond(); numbered by their place in
  the call, prompts 1 and 9 of a run drew from one key with --batch 8, and prompt 9 from another
  key with --batch 16. Now the key is the prompt's own: the same in any call, distinct across
  prompts."""
  keys = {}
  monkeypatch.setattr(run, "generate_responses", lambda m, c, e, ps, index=None, **kw: (
      keys.setdefault(kw["batch_size"], []).extend(index), [""] * len(ps))[1])
  prompts = [(f"question {i}", f"img{i % 3}.png") for i in range(16)]
  for batch in (8, 16):
    c = object.__new__(chat.LocalChat)  # no checkpoint: only the keys are looked at
    c.model = c.cfg = c.encoder = None
    c.template, c.batch_size, c.max_new_tokens, c.temperature = "vicuna_v1", batch, 2, 0.7
    for start in range(0, 16, batch):
      c.respond(prompts[start:start + batch])
  assert keys[8] == keys[16] and len(set(keys[8])) == 16
  assert all(0 <= k < 2 ** 32 for k in keys[8])  # fold_in takes uint32
