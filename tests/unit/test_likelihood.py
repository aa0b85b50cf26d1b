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
  """Each option's summed target log-prob from one unpadded row, reduced in numpy (no image for
  a text-only problem)."""
  from mathvlm.eval.run import load_image
  pixels = load_image(problem, cfg.vision.image_size)[None] if problem.images else None
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


def test_a_text_only_problem_leaves_each_image_with_its_own_rows(setup):
  """MathVerse's Text Only problems are asked with no image: their rows have no image tokens, and
  with the images in one global order the rows after them took the wrong image (problem 0's
  first option scored with the blank image of the text-only rows before it)."""
  model, cfg, tok, problems = setup
  text_only = dataclasses.replace(problems[1], pid="text", images=[])
  mixed = [text_only, problems[0], problems[2]]
  got = likelihood.option_logps(model, cfg, tok, mixed, template="mistral_instruct",
                                batch_size=3)  # the first batch: two text-only rows, one image row
  for p, g in zip(mixed, got):
    np.testing.assert_allclose(g, _unbatched(model, cfg, tok, p), rtol=2e-4)


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


def test_option_scores_give_each_options_target_tokens_and_written_bytes(setup):
  """Beside the summed log-prob, what acc and acc_norm divide by: the target tokens (the written
  answer and the turn end, as the mask scores them) and the UTF-8 bytes of `The answer is V.`."""
  model, cfg, tok, problems = setup
  got = likelihood.option_scores(model, cfg, tok, problems, template="mistral_instruct",
                                 batch_size=3)
  logps = likelihood.option_logps(model, cfg, tok, problems, template="mistral_instruct",
                                  batch_size=3)
  for p, s, l in zip(problems, got, logps):
    np.testing.assert_array_equal(s.logp, l)
    rows = likelihood.option_rows(p, "mistral_instruct", tok, image_token_id=cfg.image_token_id,
                                  image_seq_len=cfg.image_seq_len, max_len=256)
    assert all(m[0] == 0 for _, m in rows)  # the first token is never a target
    assert list(s.tokens) == [int(m.sum()) for _, m in rows]
    assert list(s.tokens) == likelihood.option_tokens(p, "mistral_instruct", tok)
    assert list(s.bytes) == [len(f"The answer is {o}.".encode()) for o in p.choices]
  assert list(got[0].bytes) == [19, 19, 20, 27]  # 4*pi, 2*pi, 12*pi, 4*sqrt(2)*pi
  surd = dataclasses.replace(problems[1], choices=["4√3", "2π"])  # bytes, not characters
  assert list(likelihood.option_scores(model, cfg, tok, [surd], template="mistral_instruct",
                                       batch_size=3)[0].bytes) == [20, 18]
  assert [len(s.logp) for s in got] == [4, 2, 3, 0]


def test_acc_norm_divides_by_bytes_and_can_pick_the_longer_option(setup):
  """Summed log-probs penalise the longer option; per byte it wins when it is likelier per byte."""
  problems = setup[3]
  s = likelihood.Scores(np.array([-10.0, -12.0]), np.array([3, 6]), np.array([10, 20]))
  assert likelihood.pick(problems[1:2], [s.logp]) == ["A"]
  np.testing.assert_allclose(likelihood.per_byte([s])[0], [-1.0, -0.6])
  assert likelihood.pick(problems[1:2], likelihood.per_byte([s])) == ["B"]


def test_rank_gives_acc_and_acc_norm_picks_from_one_pass(setup):
  model, cfg, tok, problems = setup
  r = likelihood.rank(model, cfg, tok, problems, template="mistral_instruct", batch_size=3)
  scores = likelihood.option_scores(model, cfg, tok, problems[:3], template="mistral_instruct",
                                    batch_size=3)
  assert r.acc == likelihood.pick(problems[:3], [s.logp for s in scores]) + [""]
  assert r.acc_norm == [chr(65 + int(np.argmax(s.logp / s.bytes))) for s in scores] + [""]
  assert r.ties == r.ties_norm == 0


def test_a_repeated_option_is_an_error_naming_the_problem(setup):
  model, cfg, tok, problems = setup
  twice = dataclasses.replace(problems[2], pid="rep7", choices=["1", "2", " 1"])
  with pytest.raises(ValueError, match=r"problem rep7: option text\(s\) \['1'\] repeated"):
    likelihood.option_rows(twice, "mistral_instruct", tok, image_token_id=cfg.image_token_id,
                           image_seq_len=cfg.image_seq_len, max_len=256)


def test_exact_ties_go_to_the_first_option_and_are_counted(setup):
  problems = setup[3]
  logps = [np.array([-3.0, -1.0, -1.0, -5.0]), np.array([-0.5, -0.7]), np.zeros(3), np.zeros(0)]
  assert likelihood.pick(problems, logps) == ["B", "A", "A", ""]
  assert likelihood.tied(problems, logps) == 2


def test_the_written_answer_can_be_a_format_with_the_letter(setup):
  """What is scored follows the run's answer style: `The answer is {letter}.` scores the letter."""
  model, cfg, tok, problems = setup
  rows = likelihood.option_rows(problems[1], "mistral_instruct", tok,
                                image_token_id=cfg.image_token_id,
                                image_seq_len=cfg.image_seq_len, max_len=256,
                                write="The answer is {letter}.")
  assert [tok.decode(ids[mask == 1]).strip() for ids, mask in rows] == [
      "The answer is A. </s>", "The answer is B. </s>"]
  for bad in ("The answer is {option}.", "The answer is 4."):
    with pytest.raises(ValueError, match="answer format"):
      likelihood.writer(bad)


# ---------------------------------------------------------------- the engine_accuracy evaluator

@pytest.fixture(scope="module")
def engine(tmp_path_factory):
  """Four engine test problems (three versions each) and a tokenizer trained on their text."""
  from engine_sets import write_engine_set
  root = tmp_path_factory.mktemp("engine_acc")
  return str(root / "engine/instruct.json"), write_engine_set(root)


def _config(tok_path):
  from mathvlm.configs import sft
  c = sft.get_config("model=tiny")
  with c.unlocked():
    c.data.tokenizer, c.data.template = tok_path, "mistral_instruct"
  return c


def test_engine_accuracy_reports_acc_norm_beside_acc_and_writes_as_told(engine, monkeypatch):
  """`ranked/*` keeps its meaning (summed log-prob), `ranked_norm/*` is acc_norm, ties are counted;
  `rank_answer` is what is scored, `The answer is {value}.` unless the config says otherwise."""
  from mathvlm.eval import engine_benchmark, engine_heldout, evaluators
  from mathvlm.models import registry
  instruct, tok_path = engine
  cfg = registry.get("llava").preset("tiny")
  problems = engine_benchmark.load(instruct)
  wrong = lambda p: chr(ord(p.answer) + 1) if p.answer != "D" else "A"  # noqa: E731
  seen = []

  def rank(m, c, t, ps, **kw):
    seen.append(kw["write"])
    return likelihood.Ranking([p.answer if p.choices else "" for p in ps],
                              [wrong(p) if p.choices else "" for p in ps], 2, 0)
  monkeypatch.setattr(likelihood, "rank", rank)
  monkeypatch.setattr(engine_heldout, "answer", lambda m, c, t, ps, **kw: [""] * len(ps))
  out = evaluators.engine_accuracy({"instruct": instruct, "generated": False}, _config(tok_path),
                                   cfg)(None)
  assert out["ranked/type/multiple-choice"] == 100.0
  assert out["ranked_norm/type/multiple-choice"] == 0.0
  assert out["ranked_ties"] == 2.0 and out["ranked_norm_ties"] == 0.0
  assert set(k for k in out if k.startswith("ranked_norm/")) == {
      k.replace("ranked/", "ranked_norm/") for k in out if k.startswith("ranked/")}
  assert likelihood.writer(seen[-1])("4π", 0) == likelihood.answer_text("4π")  # the default
  evaluators.engine_accuracy({"instruct": instruct, "rank_answer": "The answer is {letter}."},
                             _config(tok_path), cfg)(None)
  assert likelihood.writer(seen[-1])("4π", 1) == "The answer is B."
  with pytest.raises(ValueError, match="answer format"):
    evaluators.engine_accuracy({"instruct": instruct, "rank_answer": "The answer is V."},
                               _config(tok_path), cfg)
  assert len(problems) == 12
