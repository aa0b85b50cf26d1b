"""`mathvlm.eval.likelihood`: multiple choice ranked by the model's log-probability of each option
written as a training answer. A tiny random LLaVA and a BPE tokenizer made here, real MATH-Vision
images; each score is checked against an unbatched forward and summed log-softmax in numpy."""

import dataclasses

import numpy as np
import pytest

from mathvlm.eval import likelihood
from mathvlm.eval.common import Problem

from shared_data import shared

QUESTIONS = [("What is the area of the circle?", ["4*pi", "2*pi", "12*pi", "4*sqrt(2)*pi"]),
             ("Compute the gradient of line DQ.", ["4/7", "2/7"]),
             ("How many zeros does f have?", ["1", "2", "3"]),
             ("Find the length of AB.", [])]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  from flax import nnx

  from mathvlm.models import registry
  from mathvlm.data.sources import load_tokenizer
  from mathvlm.demo.data import add_bos, train_tokenizer
  from mathvlm.models.vlm import Llava
  texts = [q + " The answer is " + " ".join(c) + "." for q, c in QUESTIONS] * 30
  tok = train_tokenizer(texts, 400)
  add_bos(tok)
  path = str(tmp_path_factory.mktemp("tok") / "tokenizer.json")
  tok.save(path)
  cfg = dataclasses.replace(registry.get("llava").preset("tiny"), image_token_id=tok.token_to_id("<image>"))
  model = Llava(cfg, rngs=nnx.Rngs(0))
  images = [shared("math_v", "images", f"{i}.jpg") for i in (4, 10, 100, 1008)]
  problems = [Problem(pid=str(i), question=q, answer="A" if c else "x", choices=c,
                      images=[images[i]], query=q + ("\nChoices:\n" + "\n".join(
                          f"{chr(65 + j)}: {o}" for j, o in enumerate(c)) if c else ""),
                      meta={}, raw={}) for i, (q, c) in enumerate(QUESTIONS)]
  return model, cfg, load_tokenizer(path), problems


def _unbatched(model, cfg, tok, problem):
  """Each option's summed target log-prob from one unpadded row, reduced in numpy."""
  from mathvlm.eval.run import load_image
  pixels = load_image(problem, cfg.vision.image_size)[None]
  out = []
  for ids, mask in likelihood.option_rows(problem, "mistral_instruct", tok,
                                          image_token_id=cfg.image_token_id,
                                          image_seq_len=cfg.image_seq_len, max_len=256):
    logits = np.asarray(model.apply(ids[None], pixels).logits[0], np.float64)
    m = logits.max(-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    t = np.flatnonzero(mask[1:]) + 1
    out.append(logp[t - 1, ids[t]].sum())
  return np.asarray(out)


def test_option_rows_target_exactly_the_written_answer(setup):
  model, cfg, tok, problems = setup
  rows = likelihood.option_rows(problems[0], "mistral_instruct", tok,
                                image_token_id=cfg.image_token_id,
                                image_seq_len=cfg.image_seq_len, max_len=256)
  assert len(rows) == 4
  for (ids, mask), option in zip(rows, problems[0].choices):
    assert np.sum(ids == cfg.image_token_id) == cfg.image_seq_len
    target = tok.decode(ids[mask == 1])
    assert target.strip() == f"The answer is {option}. </s>"  # LLaVA's llama_2 turn end
  prompts = [ids[mask == 0] for ids, mask in rows]
  assert all(np.array_equal(p, prompts[0]) for p in prompts)  # one prompt, four answers


@pytest.mark.parametrize("batch_size", [3, pytest.param(16, marks=pytest.mark.slow)])
def test_option_logps_equal_unbatched_forward(setup, batch_size):
  """Padding, bucketing, batches that split a problem's options, images paired with their rows."""
  model, cfg, tok, problems = setup
  got = likelihood.option_logps(model, cfg, tok, problems, template="mistral_instruct",
                                batch_size=batch_size)
  assert [len(g) for g in got] == [4, 2, 3, 0]
  for p, g in zip(problems[:3], got):
    np.testing.assert_allclose(g, _unbatched(model, cfg, tok, p), rtol=2e-4)
  assert all(np.all(g < 0) for g in got[:3])


def test_an_option_over_max_len_is_an_error_naming_the_problem(setup):
  model, cfg, tok, problems = setup
  with pytest.raises(ValueError, match=r"problem 0: option '4\*pi' needs \d+ tokens.*max_len=40"):
    likelihood.option_logps(model, cfg, tok, problems[:1], template="mistral_instruct",
                            max_len=40)


def test_pick_takes_the_most_likely_option_and_leaves_free_form_empty(setup):
  problems = setup[3]
  logps = [np.array([-3.0, -1.0, -2.0, -5.0]), np.array([-0.5, -0.7]),
           np.array([-9.0, -9.5, -1.0]), np.zeros(0)]
  assert likelihood.pick(problems, logps) == ["B", "A", "C", ""]
