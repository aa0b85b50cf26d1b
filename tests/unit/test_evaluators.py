"""The evaluators shipped in `mathvlm.eval.evaluators`, on a tiny random LLaVA with a BPE
tokenizer made here: held-out engine accuracy (real engine problems and images drawn here),
held-out loss (token-weighted, whatever the batching) and benchmarks from files (the same
numbers as `python -m mathvlm.eval.run` on the same checkpoint). Each evaluator's numbers are
checked against a computation that does not go through it."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from flax import nnx

from mathvlm.eval import engine_heldout, evaluators, likelihood

from shared_data import shared


@pytest.fixture(scope="module")
def model():
  """(model, cfg): a tiny random LLaVA, <image> at id 3 as the demo tokenizer puts it."""
  from flax import nnx

  from mathvlm.models import registry
  from mathvlm.models.vlm import Llava
  cfg = registry.get("llava").preset("tiny")
  return Llava(cfg, rngs=nnx.Rngs(0)), cfg


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
  """(folder, tokenizer path): four engine test problems with their images, a tokenizer trained
  on their text with the demo's special tokens."""
  from engine_sets import write_engine_set
  root = tmp_path_factory.mktemp("evaluators")
  return root, write_engine_set(root)


@pytest.fixture(scope="module")
def ckpt(engine, model, tmp_path_factory):
  """The tiny model saved as a checkpoint with the tokenizer beside it (for the eval CLI)."""
  from mathvlm import checkpoint
  folder = tmp_path_factory.mktemp("ckpt") / "model"
  checkpoint.save_model(model[0], model[1], str(folder))
  shutil.copy(engine[1], folder / "tokenizer.json")
  return str(folder)


def config(tok_path, **evals):
  from mathvlm.configs import sft
  c = sft.get_config("model=tiny")
  with c.unlocked():
    c.data.tokenizer, c.data.template = tok_path, "mistral_instruct"
    for name, spec in evals.items():
      c.evals[name] = spec
  return c


def test_engine_accuracy_counts_right_answers_by_kind(engine, monkeypatch):
  """With answers stubbed as the right (or a wrong) value and letter, every breakdown is 100 (0):
  the evaluator scores what the two answer paths return, under the keys it promises."""
  root, tok_path = engine
  from mathvlm.models import registry
  model, cfg = None, registry.get("llava").preset("tiny")
  from mathvlm.eval import engine_benchmark
  problems = engine_benchmark.load(str(root / "engine/instruct.json"))
  value = lambda p: p.choices[ord(p.answer) - 65] if p.choices else p.answer  # noqa: E731
  for right in (True, False):
    monkeypatch.setattr(engine_heldout, "answer", lambda m, c, t, ps, **kw: [
        f"The answer is {value(p) if right else 'xyz'}." for p in ps])
    picks = lambda ps: [(p.answer if right else chr(ord(p.answer) + 1)) if p.choices  # noqa
                        else "" for p in ps]
    monkeypatch.setattr(likelihood, "rank", lambda m, c, t, ps, **kw: likelihood.Ranking(
        picks(ps), picks(ps), 0, 0))
    # through the registry, as a run's config.evals reaches it
    c = config(tok_path, held=dict(type="engine_accuracy", every=10,
                                   instruct=str(root / "engine/instruct.json")))
    [(name, every, ev)] = evaluators.from_config(c, cfg)
    assert (name, every) == ("held", 10)
    out = ev(model)
    assert out["problems"] == len(problems) == 12  # three versions of four problems
    # free-form problems count in ranked/* too, judged on their generated answers
    for key in ("generated/all", "ranked/all", "generated/version/text_lite",
                "ranked/type/multiple-choice", "generated/type/free-form",
                "ranked/type/free-form", "ranked_norm/all", "ranked_norm/type/multiple-choice"):
      assert out[key] == (100.0 if right else 0.0), key
  ev = evaluators.engine_accuracy({"instruct": str(root / "engine/instruct.json"),
                                   "versions": "text_lite", "ranked": False}, c, cfg)
  out = ev(model)
  assert out["problems"] == 4 and not any(k.startswith("ranked/") for k in out)
  assert set(k for k in out if k.startswith("generated/version/")) == {
      "generated/version/text_lite"}


def test_engine_accuracy_shapes_images_as_the_run_trains(engine, monkeypatch):
  """Both answer paths get the run's data.image_aspect (a model trained on CLIP's centre crop is
  evaluated on cropped images, not LLaVA's padded ones)."""
  root, tok_path = engine
  from mathvlm.models import registry
  seen = []
  monkeypatch.setattr(engine_heldout, "answer", lambda m, c, t, ps, **kw: (
      seen.append(("answer", kw.get("image_aspect"))), [""] * len(ps))[1])
  monkeypatch.setattr(likelihood, "rank", lambda m, c, t, ps, **kw: (
      seen.append(("rank", kw.get("image_aspect"))),
      likelihood.Ranking([""] * len(ps), [""] * len(ps), 0, 0))[1])
  c = config(tok_path)
  c.data.image_aspect = "crop"
  evaluators.engine_accuracy({"instruct": str(root / "engine/instruct.json")}, c,
                             registry.get("llava").preset("tiny"))(None)
  assert seen == [("answer", "crop"), ("rank", "crop")]


def test_ranking_alone_leaves_free_form_out_and_a_full_prompt_fails_at_setup(engine, monkeypatch):
  """generated=False: every pick right is 100, not 75 (the three free-form problems used to be
  judged on the "" left in place of their generation). A max_len that the image tokens fill
  (tiny: 16 and BOS) fails at setup, naming the evaluator, not at its first evaluation."""
  root, tok_path = engine
  from mathvlm.models import registry
  cfg = registry.get("llava").preset("tiny")
  monkeypatch.setattr(likelihood, "rank", lambda m, c, t, ps, **kw: likelihood.Ranking(
      *[[p.answer if p.choices else "" for p in ps]] * 2, 0, 0))
  spec = {"instruct": str(root / "engine/instruct.json"), "generated": False}
  out = evaluators.engine_accuracy(spec, config(tok_path), cfg)(None)
  assert out["problems"] == 12 and out["ranked/all"] == out["ranked_norm/all"] == 100.0
  assert not any("free-form" in k for k in out)
  c = config(tok_path, held=dict(type="engine_accuracy", instruct=spec["instruct"], max_len=16))
  with pytest.raises(ValueError, match=r"evals.held .*max_len=16"):
    evaluators.from_config(c, cfg)


def _encoding_stub(model, cfg, encoder, problems, *, template, **kw):
  """Decoding stubbed: each prompt encoded as `run.generate_responses` encodes it, no answer."""
  from mathvlm.eval import prompts
  for p in problems:
    encoder.encode(prompts.format_prompt(p.query, template))
  return [""] * len(problems)


def test_evaluators_count_the_prompts_that_lost_their_start(engine, tmp_path, monkeypatch):
  """engine_accuracy and benchmark_accuracy report `prompts_truncated`, as the eval CLI's
  summary does: a score over cut questions says so. Counted per evaluation (not summed over
  the run's evaluations), 0 when every prompt fits."""
  root, tok_path = engine
  from mathvlm.eval import run
  from mathvlm.models import registry
  cfg = registry.get("llava").preset("tiny")
  monkeypatch.setattr(run, "generate_responses", _encoding_stub)
  spec = {"instruct": str(root / "engine/instruct.json"), "ranked": False}
  for max_len, cut in ((40, 12.0), (256, 0.0)):
    ev = evaluators.engine_accuracy(dict(spec, max_len=max_len), config(tok_path), cfg)
    assert [ev(None)["prompts_truncated"] for _ in range(2)] == [cut, cut]
  data = _mathvista_folder(tmp_path)
  bench = {"benchmark": "mathvista", "data": data}
  for new_tokens, cut in ((1024 - 40, 3.0), (16, 0.0)):
    ev = evaluators.benchmark_accuracy(dict(bench, max_new_tokens=new_tokens), config(tok_path),
                                       cfg)
    assert ev(None)["prompts_truncated"] == cut


@pytest.mark.slow
def test_engine_accuracy_on_a_model_equals_the_demo_path(engine, model):
  """The evaluator on a real (random) model gives what the demo's two calls give. Slow (each
  path compiles decoding and ranking); the stubbed test above is its quick form."""
  (root, tok_path), (model, cfg) = engine, model
  from tokenizers import Tokenizer

  from mathvlm.data.sources import load_tokenizer
  from mathvlm.eval import engine_benchmark
  spec = {"instruct": str(root / "engine/instruct.json"), "batch": 8, "max_new_tokens": 6}
  out = evaluators.engine_accuracy(spec, config(tok_path), cfg)(model)
  problems = engine_benchmark.load(spec["instruct"])
  responses = engine_heldout.answer(model, cfg, Tokenizer.from_file(tok_path), problems,
                                    template="mistral_instruct", batch=8, max_new_tokens=6,
                                    max_len=256)
  picks = engine_heldout.ranked(model, cfg, load_tokenizer(tok_path), problems,
                                template="mistral_instruct", batch=8)
  assert all(p in "ABCDEFGH" for p in picks) and any(picks)
  want = engine_heldout.score(problems, responses, picks)["accuracy"]
  assert out["ranked/all"] == want["all"]["accuracy"]
  assert out["ranked/type/multiple-choice"] == want["type/multiple-choice"]["accuracy"]
  assert out["generated/all"] == engine_heldout.score(problems, responses)["accuracy"]["all"][
      "accuracy"]


def test_heldout_loss_is_token_weighted_over_uneven_batches(model):
  """Rows with 1..9 target tokens in batches of 3, 3 and 1: the evaluator's loss is the sum of
  every target token's cross-entropy over their count (one forward of all rows, in numpy), not
  a mean of batch means."""
  model, cfg = model
  from mathvlm import objectives
  rng = np.random.default_rng(0)
  rows = []
  for k in range(7):
    n = 12 + k
    ids = rng.integers(10, 600, 40).astype(np.int32)
    ids[0], ids[1:1 + cfg.image_seq_len] = 1, cfg.image_token_id
    mask, loss = np.zeros(40, np.int32), np.zeros(40, np.int32)
    end = n + cfg.image_seq_len
    mask[:end] = 1
    loss[end - (k + 2):end] = 1  # k + 2 targets
    rows.append(dict(input_ids=ids, attention_mask=mask, loss_mask=loss,
                     pixel_values=rng.integers(0, 255, (56, 56, 3)).astype(np.uint8)))
  c = config("")
  got = evaluators._loss_evaluate(objectives.get("lm"), c, rows, len(rows), 3)(model)
  from mathvlm.data.image import normalize
  logits = np.asarray(model.apply(np.stack([r["input_ids"] for r in rows]),
                                  normalize(np.stack([r["pixel_values"] for r in rows])),
                                  attention_mask=np.stack([r["attention_mask"] for r in rows])
                                  ).logits, np.float64)
  ce = []
  for b, r in enumerate(rows):
    for t in np.flatnonzero(r["loss_mask"] * r["attention_mask"]):
      lg = logits[b, t - 1]
      ce.append(np.log(np.exp(lg - lg.max()).sum()) + lg.max() - lg[r["input_ids"][t]])
  assert got["tokens"] == len(ce) == sum(k + 2 for k in range(7))
  np.testing.assert_allclose(got["loss"], np.mean(ce), rtol=1e-5)
  assert got["examples"] == 7 and 0 <= got["accuracy"] <= 1
  empty = [dict(r, loss_mask=np.zeros_like(r["loss_mask"])) for r in rows]  # cut by max_len
  none = evaluators._loss_evaluate(objectives.get("lm"), c, empty, len(rows), 3)(model)
  assert np.isnan(none["loss"]) and none["tokens"] == 0  # not a loss of 0


def test_heldout_loss_from_config_and_its_errors(model):
  model, cfg = model
  tok_path = ""
  c = config(tok_path)
  spec = {"name": "synthetic", "num_examples": 8, "batch": 4}
  a = evaluators.heldout_loss(spec, c, cfg)(model)
  assert a["examples"] == 8 and a["tokens"] > 0 and np.isfinite(a["loss"])
  assert evaluators.heldout_loss(spec, c, cfg)(model) == a  # the same held-out examples
  with pytest.raises(ValueError, match=r"takes no field\(s\) \['pth'\]"):
    evaluators.heldout_loss({"pth": "x"}, c, cfg)
  with pytest.raises(ValueError, match="path"):
    evaluators.heldout_loss({"name": "llava_json"}, c, cfg)
  from mathvlm.configs import dpo
  with pytest.raises(ValueError, match="prepare"):
    evaluators.heldout_loss({"name": "synthetic"}, dpo.get_config("model=tiny"), cfg)
  with pytest.raises(ValueError, match=r"evals.held \(heldout_loss\): .*pth"):
    evaluators.from_config(config(tok_path, held=dict(type="heldout_loss", pth="x")), cfg)


@pytest.mark.parametrize("name", ["classify", "contrastive", "contrastive:sigmoid"])
def test_heldout_loss_padding_rows_weigh_nothing(name):
  """On a mesh heldout_loss pads a batch to a multiple of its data axes with `_blank` rows: in
  each shipped objective it takes, such a row changes no loss, weight or metric (lm's: the token
  counts of tests/integration/test_evals_split.py). Models that return fixed outputs, a row
  for the blank one too, so only the blank row's fields can keep it out."""
  import jax.numpy as jnp

  from mathvlm import objectives
  name, _, loss_type = name.partition(":")
  cfg = {"contrastive": {"loss_type": loss_type}} if loss_type else None
  rng = np.random.default_rng(0)
  out = rng.standard_normal((4, 8)).astype(np.float32)
  batch = dict(pixel_values=rng.integers(0, 255, (3, 8, 8, 3)).astype(np.uint8))
  if name == "classify":
    batch["labels"] = np.asarray([0, 2, 1], np.int32)
    model = lambda px: jnp.asarray(out[:len(px)])  # noqa: E731
  else:
    batch.update(input_ids=rng.integers(1, 60, (3, 6)).astype(np.int32),
                 attention_mask=np.ones((3, 6), np.int32))
    txt = rng.standard_normal((4, 8)).astype(np.float32)
    model = lambda px, ids, mask=None: dict(  # noqa: E731
        image_embeds=jnp.asarray(out[:len(px)]), text_embeds=jnp.asarray(txt[:len(px)]),
        logit_scale=jnp.float32(10.0))
  blank = evaluators._blank({k: v[0] for k, v in batch.items()})
  padded = {k: np.concatenate([v, blank[k][None]]) for k, v in batch.items()}
  loss = objectives.get(name).loss
  (want, want_w, want_m), (got, got_w, got_m) = loss(model, batch, cfg), loss(model, padded, cfg)
  assert float(got_w) == float(want_w) == 3.0
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
  for k in want_m:
    np.testing.assert_allclose(float(got_m[k]), float(want_m[k]), rtol=1e-6, err_msg=k)


class _Linear(nnx.Module):
  """A classifier of 8x8 images in one matmul: quick to compile."""

  def __init__(self):
    self.linear = nnx.Linear(8 * 8 * 3, 4, rngs=nnx.Rngs(0))

  def __call__(self, pixel_values):
    return self.linear(pixel_values.reshape(len(pixel_values), -1).astype(np.float32) / 255)


def test_heldout_loss_refuses_an_objective_that_weighs_its_blank_padding(monkeypatch):
  """On a mesh whose data axes take 2 rows (one CPU device stands in: `batch_rows`), batches of 3
  are padded with a blank row. The shipped classify loss keeps it out: the same numbers as
  without a mesh. An objective of one's own that counts every row would count the padding:
  refused, naming it, before its first padded batch; the check runs once per evaluator, not per
  batch or evaluation."""
  import dataclasses

  import jax
  import jax.numpy as jnp

  from mathvlm import objectives, sharding
  from mathvlm.eval import distributed
  rng = np.random.default_rng(0)
  rows = [dict(pixel_values=rng.integers(0, 255, (8, 8, 3)).astype(np.uint8),
               labels=np.int32(k % 4)) for k in range(7)]
  plain = _Linear()
  placed = _Linear()
  mesh = sharding.make_mesh(1, 1, 1, jax.devices()[:1])
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  nnx.update(placed, jax.device_put(nnx.state(placed), replicated))
  monkeypatch.setattr(distributed, "batch_rows", lambda mesh: 2)
  checks = []
  check = evaluators._check_blank_weighs_0
  monkeypatch.setattr(evaluators, "_check_blank_weighs_0",
                      lambda *a: (checks.append(1), check(*a))[1])
  classify = objectives.get("classify")
  want = evaluators._loss_evaluate(classify, None, rows, 7, 3)(plain)
  assert not checks  # no mesh, no padding, no check
  padded = evaluators._loss_evaluate(classify, None, rows, 7, 3)
  assert want["weight"] == 7
  for _ in range(2):  # 3 padded batches an evaluation
    assert padded(placed) == pytest.approx(want)
  assert len(checks) == 1

  def every_row(model, batch, cfg):
    loss, _, metrics = classify.loss(model, batch, cfg)
    return loss, jnp.float32(len(batch["labels"])), metrics
  counting = dataclasses.replace(classify, name="counts_rows", loss=every_row)
  with pytest.raises(ValueError, match=r"objective 'counts_rows' gives a batch of blank rows "
                                       r"\(evaluators._blank: .*\) a weight of 4.0: heldout_loss"):
    evaluators._loss_evaluate(counting, None, rows, 7, 3)(placed)


def _mathvista_folder(root) -> str:
  """Three MathVista-format problems (multiple choice, integer, float) with real images."""
  folder = root / "mathvista"
  (folder / "images").mkdir(parents=True, exist_ok=True)
  base = dict(unit=None, precision=None, metadata=dict(
      split="testmini", language="english", source="x", category="math-targeted-vqa",
      task="geometry problem solving", context="geometry diagram", grade="high school",
      skills=["algebraic reasoning"], img_width=1, img_height=1))
  items = [dict(pid="1", question="Which is larger?", choices=["3", "5"], answer="5",
                question_type="multi_choice", answer_type="text"),
           dict(pid="2", question="How many sides?", choices=None, answer="4",
                question_type="free_form", answer_type="integer"),
           dict(pid="3", question="What is x?", choices=None, answer="1.5", precision=1,
                question_type="free_form", answer_type="float")]
  data = {}
  for k, it in enumerate(items):
    shutil.copy(shared("math_v", "images", f"{4 + k}.jpg"), folder / "images" / f"{k + 1}.jpg")
    rec = dict(base, **it, image=f"images/{k + 1}.jpg")
    rec["query"] = f"Question: {it['question']}"
    data[it["pid"]] = rec
  json.dump(data, open(folder / "testmini.json", "w"))
  return str(folder)


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", ["math_v", "mathvista"])
def test_benchmark_accuracy_equals_the_eval_cli(engine, model, ckpt, tmp_path, capsys, benchmark):
  """Slow (a decoding compile per benchmark, twice); the quick form below checks the plumbing."""
  (_, tok_path), (model, cfg) = engine, model
  from mathvlm.eval import run
  data = shared("math_v") if benchmark == "math_v" else _mathvista_folder(tmp_path)
  spec = {"benchmark": benchmark, "data": data, "limit": 6, "batch": 4, "max_new_tokens": 6,
          "breakdowns": "level" if benchmark == "math_v" else "question_type"}
  out = evaluators.benchmark_accuracy(spec, config(tok_path), cfg)(model)
  cli = str(tmp_path / "cli")
  run.main(["--benchmark", benchmark, "--ckpt", ckpt, "--data", data, "--out", cli,
            "--limit", "6", "--batch", "4", "--max_new_tokens", "6",
            "--template", "mistral_instruct"])
  scores = json.load(open(os.path.join(cli, "scores.json")))
  assert out["total"] == scores["all"]["total"] == (6 if benchmark == "math_v" else 3)
  assert out["accuracy"] == scores["all"]["accuracy"] and out["correct"] == scores["all"][
      "correct"]
  key = "level" if benchmark == "math_v" else "question_type"
  assert {k: v for k, v in out.items() if k.startswith(key + "/")} == {
      f"{key}/{k}": v["accuracy"] for k, v in scores[key].items()}
  with pytest.raises(ValueError, match="breakdowns"):
    evaluators.benchmark_accuracy(dict(spec, breakdowns="nope"), config(tok_path), cfg)
  capsys.readouterr()


def test_benchmark_accuracy_scores_what_generation_returns(engine, tmp_path, monkeypatch):
  """Quick form of the CLI comparison: decoding stubbed with each MathVista problem's answer
  (or a wrong one), the evaluator reads the files, scores and breaks down as promised."""
  _, tok_path = engine
  from mathvlm.eval import run
  from mathvlm.models import registry
  cfg = registry.get("llava").preset("tiny")
  data = _mathvista_folder(tmp_path)
  answers = {"Which is larger?": "5", "How many sides?": "4", "What is x?": "1.5"}
  for right in (True, False):
    monkeypatch.setattr(run, "generate_responses", lambda m, c, e, ps, **kw: [
        f"The answer is {answers[p.question] if right else '7'}." for p in ps])
    out = evaluators.benchmark_accuracy(
        {"benchmark": "mathvista", "data": data, "breakdowns": "question_type"},
        config(tok_path), cfg)(None)
    assert out["total"] == 3 and out["accuracy"] == (100.0 if right else 0.0)
    assert out["question_type/multi_choice"] == out["question_type/free_form"] == out[
        "accuracy"]
  with pytest.raises(ValueError, match="breakdowns"):
    evaluators.benchmark_accuracy({"benchmark": "mathvista", "data": data,
                                   "breakdowns": "nope"}, config(tok_path), cfg)
  with pytest.raises(FileNotFoundError, match="missing"):
    os.remove(os.path.join(data, "images", "2.jpg"))
    evaluators.benchmark_accuracy({"benchmark": "mathvista", "data": data}, config(tok_path),
                                  cfg)
