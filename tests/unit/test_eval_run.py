"""`mathvlm.eval.run` end to end: a tiny random LLaVA and a BPE tokenizer made here, the 304
MATH-Vision testmini problems with their real images, greedy decoding with the KV cache, scores."""

import dataclasses
import json
import os

import pytest

from mathvlm.eval import prompts, run

from shared_data import REPO, SHARED, shared  # noqa: F401


def _tiny_checkpoint(folder):
  from flax import nnx

  from mathvlm.models import registry
  from mathvlm import checkpoint
  from mathvlm.demo.parity import train_tokenizer
  from mathvlm.models.vlm import Llava
  questions = [json.loads(x)["question"] for x in open(shared("math_v", "testmini.jsonl"))]
  tok = train_tokenizer(questions, 1024)
  cfg = dataclasses.replace(registry.get("llava").preset("tiny"), image_token_id=tok.token_to_id("<image>"))
  assert tok.get_vocab_size() <= cfg.text.vocab_size
  checkpoint.save_model(Llava(cfg, rngs=nnx.Rngs(0)), cfg, folder)
  tok.save(os.path.join(folder, "tokenizer.json"))
  return tok, cfg


@pytest.mark.slow  # default run: the demo runs this pipeline on the first 32 problems
def test_run_math_v_testmini(tmp_path, capsys):
  ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "eval")
  tok, cfg = _tiny_checkpoint(ckpt)
  run.main(["--benchmark", "math_v", "--ckpt", ckpt, "--data", shared("math_v"), "--out", out,
            "--batch", "32", "--max_new_tokens", "8"])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  scores = json.load(open(os.path.join(out, "scores.json")))
  assert scores["all"]["total"] == 304 and summary["all"] == scores["all"]
  assert sum(e["total"] for e in scores["subject"].values()) == 304
  assert scores["official"]["-all"].startswith(f"{scores['all']['correct']}/304=")
  responses = [json.loads(x) for x in open(os.path.join(out, "responses.jsonl"))]
  assert len(responses) == 304 and all(isinstance(r["response"], str) for r in responses)
  assert any(r["response"] for r in responses)   # the model did produce text
  for name in ("scores.md", "scores.png", "scores_result.json", "scores_outputs.jsonl"):
    assert os.path.getsize(os.path.join(out, name)) > 0


def test_encoder_puts_image_tokens_and_keeps_the_prompt_end(tmp_path):
  from tokenizers import Tokenizer

  from mathvlm.demo.parity import train_tokenizer
  tok = train_tokenizer(["USER: what is the area? ASSISTANT:"] * 20, 300)
  tok.save(str(tmp_path / "t.json"))
  tok = Tokenizer.from_file(str(tmp_path / "t.json"))
  enc = run.Encoder(tok, image_token_id=4, image_seq_len=16, max_len=40)
  text = prompts.format_prompt("what is the area? " * 20, "vicuna_v1")
  ids = enc.encode(text)
  assert len(ids) == 40 and enc.truncated == 1
  assert ids[0] == tok.token_to_id("<s>") and ids.count(4) == 16
  assert ids[1:17] == [4] * 16  # the text before the image went first, all of it
  assert tok.decode(ids[-6:]).endswith("ASSISTANT:")
  # a prompt of exactly max_len tokens is whole: not cut, not counted
  whole = run.Encoder(tok, image_token_id=4, image_seq_len=16, max_len=10_000).encode(text)
  fits = run.Encoder(tok, image_token_id=4, image_seq_len=16, max_len=len(whole))
  assert fits.encode(text) == whole and fits.truncated == 0


def test_a_max_len_that_the_image_fills_is_an_error():
  """engine_accuracy's max_len=256 with LLaVA-1.5's 576 image tokens: cutting the text could not
  fit the prompt, and it used to lose every text token (question and ASSISTANT: too) and come
  out at 577 tokens anyway, which only `truncated` counted."""
  from mathvlm.demo.parity import train_tokenizer
  tok = train_tokenizer(["USER: what is the area? ASSISTANT:"] * 20, 300)
  text = prompts.format_prompt("what is the area?", "vicuna_v1")
  with pytest.raises(ValueError, match="max_len=256"):
    run.Encoder(tok, image_token_id=4, image_seq_len=576, max_len=256).encode(text)
  with pytest.raises(ValueError, match="max_len=577"):  # BOS and the image, not one text token
    run.Encoder(tok, image_token_id=4, image_seq_len=576, max_len=577).encode(text)
  ids = run.Encoder(tok, image_token_id=4, image_seq_len=576, max_len=600).encode(text)
  assert len(ids) == 600 and tok.decode(ids[-6:]).endswith("ASSISTANT:")  # room: cut, kept

def test_the_encoder_ends_on_the_configs_eos_and_the_tokenizers_end_of_text():
  """A tokenizer without `</s>` (Llama 3's, Qwen's) ends responses on the config's eos ids (all
  of them, as transformers' generate does); one with `</s>` ends on it too."""
  from tokenizers import Tokenizer, models, pre_tokenizers

  vocab = {w: i for i, w in enumerate(["<unk>", "a", "b", "<|eot_id|>", "<|end_of_text|>"])}
  tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  enc = run.Encoder(tok, image_token_id=0, image_seq_len=1, max_len=8, eos_token_id=(4, 3))
  assert enc.eos == (4, 3)
  assert enc.decode([1, 2, 3, 1, 1]) == tok.decode([1, 2])
  assert run.Encoder(tok, 0, 1, 8, eos_token_id=4).decode([1, 3, 4, 2]) == tok.decode([1, 3])
  assert run.Encoder(tok, 0, 1, 8).eos == ()
  from mathvlm.demo.parity import train_tokenizer
  with_end = train_tokenizer(["what is the area"] * 10, 300)
  end = with_end.token_to_id("</s>")
  assert run.Encoder(with_end, 0, 1, 8, eos_token_id=7).eos == (7, end)
  assert run.Encoder(with_end, 0, 1, 8, eos_token_id=(end, 7)).eos == (end, 7)  # each once
  assert run.Encoder(with_end, 0, 1, 8).eos == (end,)


def test_a_pad_id_before_the_end_is_text():
  """A byte-level vocabulary without `<pad>` (Llama 3's, Qwen's shape) pads with id 0, which is
  "!": the sampler writes the pad only after the end, so "5!" keeps its "!" (it read as 5)."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(["The answer is 5!"] * 5, trainers.BpeTrainer(
      vocab_size=280, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  end = tok.add_special_tokens(["<|end_of_text|>"]) and tok.token_to_id("<|end_of_text|>")
  enc = run.Encoder(tok, image_token_id=end + 1, image_seq_len=1, max_len=8, eos_token_id=end)
  assert tok.id_to_token(enc.pad) == "!"
  assert enc.decode(tok.encode("The answer is 5!").ids + [end] + [enc.pad] * 3) == (
      "The answer is 5!")

def test_templates():
  text = prompts.format_prompt("Question: 1+1?", "vicuna_v1")
  assert text.endswith("USER: <image>\nQuestion: 1+1? ASSISTANT:")
  assert text.startswith("A chat between a curious user")  # LLaVA's conv_vicuna_v1
  assert prompts.format_prompt("q", "plain") == "<image>"   # captioning: the question is dropped
  assert prompts.format_prompt("q", "mistral_instruct") == "[INST] <image>\nq [/INST]"


def test_a_resumed_run_appends_after_a_line_cut_by_a_crash(tmp_path):
  """A crash mid-write leaves a partial last line; the resumed run appends to the file, and its
  first record must land on a line of its own (not glued onto the partial one, unreadable)."""
  sig = {"benchmark": "math_v", "max_new_tokens": 4}
  (tmp_path / "run.json").write_text(json.dumps(sig))
  (tmp_path / "responses.jsonl").write_text('{"id": "1", "response": "a"}\n{"id": "2", "resp')
  assert run.answered(str(tmp_path), sig, restart=False) == {"1": "a"}
  with open(tmp_path / "responses.jsonl", "a", encoding="utf-8") as f:   # as run.main appends
    f.write(json.dumps({"id": "2", "response": "b"}) + "\n")
  rows = [json.loads(x) for x in open(tmp_path / "responses.jsonl")]
  assert rows == [{"id": "1", "response": "a"}, {"id": "2", "response": "b"}]


def test_images_are_shaped_as_the_model_was_trained(tmp_path):
  """--image_aspect reaches the image loader: a model trained with CLIP's centre crop is evaluated
  on cropped images, not LLaVA's padded ones."""
  import numpy as np
  from PIL import Image

  from mathvlm.data.image import to_pixels
  from mathvlm.eval.common import Problem
  rs = np.random.RandomState(0)
  Image.fromarray(rs.randint(0, 255, (30, 70, 3), np.uint8)).save(tmp_path / "wide.png")
  problem = Problem("1", "q", "a", [], [str(tmp_path / "wide.png")], "q", {}, {})
  crop, pad = run.load_image(problem, 28, "crop"), run.load_image(problem, 28)
  with Image.open(tmp_path / "wide.png") as im:
    np.testing.assert_array_equal(crop, to_pixels(im, 28, "crop"))
  assert (crop != pad).any()
  base = ["--benchmark", "math_v", "--ckpt", "c", "--data", "d", "--out", "o"]
  assert run.parse_args(base + ["--image_aspect", "crop"]).image_aspect == "crop"
  assert run.parse_args(base).image_aspect == "pad"
  with pytest.raises(SystemExit):
    run.parse_args(base + ["--image_aspect", "square"])


def test_compile_only_lowers_decoding_for_what_an_eval_passes_it(tmp_path, monkeypatch):
  """`run --compile_only`'s memory figure is the program an eval runs: the sampler lowered for
  the images and keys `generate_responses` passes `generate_global` (uint8 images, a key per
  problem), not float32 images and one key."""
  import jax
  from tokenizers import Tokenizer

  from mathvlm import checkpoint
  from mathvlm import generate as gen
  from mathvlm.eval import distributed, math_v
  seen, jitted = {}, gen._generate

  class Recording:
    def __call__(self, graphdef, *args, **kwargs):
      seen["eval"] = args
      return jitted(graphdef, *args, **kwargs)

    def lower(self, graphdef, *args, **kwargs):
      seen["compile_only"] = args
      return jitted.lower(graphdef, *args, **kwargs)

  monkeypatch.setattr(gen, "_generate", Recording())
  ckpt = str(tmp_path / "ckpt")
  _tiny_checkpoint(ckpt)
  model, cfg = checkpoint.load_model(ckpt)
  enc = run.Encoder(Tokenizer.from_file(ckpt + "/tokenizer.json"), cfg.image_token_id,
                    cfg.image_seq_len, 512)
  mesh = distributed.make_mesh(distributed.MeshSpec(1, 1, 1))
  run.generate_responses(model, cfg, enc, math_v.load(shared("math_v", "testmini.jsonl"))[:2],
                         template="vicuna_v1", batch_size=2, max_new_tokens=2,
                         temperature=0.0, mesh=mesh)
  distributed.compile_only("tiny", mesh, batch=2, prompt_len=64, max_new_tokens=2)
  # (state, ids, mask, images, key, temperature, top_p)
  shapes = {k: [(tuple(a.shape), str(a.dtype)) for a in v[3:5]] for k, v in seen.items()}
  assert shapes["eval"][0] == ((2, cfg.vision.image_size, cfg.vision.image_size, 3), "uint8")
  assert shapes["compile_only"] == shapes["eval"]


def test_variants_keep_each_problems_sampling_key(tmp_path, monkeypatch):
  """A problem samples from fold_in(key(seed), its place in the benchmark file); --variants drops
  problems before it and used to renumber the rest, so fn-0002's variant 0 drew from key 2
  instead of 6 and its sampled response changed with --variants (a resume that changed it mixed
  the two)."""
  import shutil

  from mathvlm.demo.parity import train_tokenizer
  from mathvlm.eval import distributed
  from mathvlm.models import registry
  shutil.copy(os.path.join(REPO, "tests/eval_fixtures/engine_dynamic.json"), tmp_path / "test.json")
  train_tokenizer(["what is the answer"] * 10, 300).save(str(tmp_path / "tokenizer.json"))
  (tmp_path / "config.json").write_text("{}")  # the run's fingerprint reads it
  cfg = registry.get("llava").preset("tiny")
  monkeypatch.setattr(distributed, "load_sharded", lambda ckpt, mesh: (None, cfg))
  keys = {}
  monkeypatch.setattr(run, "generate_responses", lambda m, c, e, ps, index, **kw: (
      keys.update((p.pid, i) for p, i in zip(ps, index)), [""] * len(ps))[1])
  argv = ["--benchmark", "engine_dynamic", "--ckpt", str(tmp_path), "--data", str(tmp_path),
          "--split", "test", "--temperature", "1"]
  run.main(argv + ["--out", str(tmp_path / "all")])
  every = dict(keys)
  keys.clear()
  run.main(argv + ["--out", str(tmp_path / "v1"), "--variants", "1"])
  assert len(every) == 12 and len(keys) == 4
  assert keys == {pid: every[pid] for pid in keys}
  assert keys["fn-0002#v0:text_dominant"] == 6


def test_other_image_files_start_the_run_over(tmp_path):
  """--images changes what the model sees, so it is part of the run's signature (it was not: a
  rerun on other image files resumed with the old images' responses); a run without it keeps
  the signature it had, so its responses still resume."""
  from mathvlm.demo.parity import train_tokenizer
  (tmp_path / "config.json").write_text("{}")
  tok = train_tokenizer(["a b c"] * 5, 300)
  argv = ["--benchmark", "mathvista", "--ckpt", str(tmp_path), "--data", str(tmp_path),
          "--out", str(tmp_path)]
  sign = lambda *extra: run.run_signature(run.parse_args(argv + list(extra)), tok)  # noqa: E731
  assert sign("--images", "/a") != sign("--images", "/b") != sign()
  assert "images" not in sign()


def test_the_summary_counts_the_prompts_cut_to_the_context(tmp_path, monkeypatch):
  """A prompt longer than the context loses its start (`Encoder.encode`); the run logged how
  many, and its summary, which is kept beside the scores, did not say."""
  import shutil

  from mathvlm.demo.parity import train_tokenizer
  from mathvlm.eval import distributed
  from mathvlm.models import registry
  shutil.copy(os.path.join(REPO, "tests/eval_fixtures/engine_dynamic.json"), tmp_path / "test.json")
  tok = train_tokenizer(["what is the answer"] * 10, 300)
  tok.save(str(tmp_path / "tokenizer.json"))
  (tmp_path / "config.json").write_text("{}")  # the run's fingerprint reads it
  cfg = registry.get("llava").preset("tiny")
  cfg = dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, max_position_embeddings=300))
  monkeypatch.setattr(distributed, "load_sharded", lambda ckpt, mesh: (None, cfg))
  seen = []

  def encode_only(model, c, encoder, problems, template, **kw):  # the prompts as generation does
    seen.extend(len(tok.encode(prompts.format_prompt(p.query, template).replace(
        prompts.IMAGE, "")).ids) for p in problems)
    for p in problems:
      encoder.encode(prompts.format_prompt(p.query, template))
    return [""] * len(problems)

  monkeypatch.setattr(run, "generate_responses", encode_only)
  summary = run.main(["--benchmark", "engine_dynamic", "--ckpt", str(tmp_path), "--data",
                      str(tmp_path), "--split", "test", "--max_new_tokens", "6",
                      "--out", str(tmp_path / "out")])
  room = 300 - 6 - 1 - cfg.image_seq_len  # the context less the answer, BOS and the image
  cut = sum(n > room for n in seen)
  assert len(seen) == 12 and 0 < cut < 12
  assert summary["prompts_truncated"] == cut


def test_the_run_names_the_prompt_it_asks():
  """--prompt defaults to the benchmark's official prompt and run.json records it by name, so a
  run made with another prompt (MATH-V's before 2026-12-07 recorded "query_wo") starts over."""
  base = ["--ckpt", "c", "--data", "d", "--out", "o", "--benchmark"]
  assert run.parse_args(base + ["math_v"]).prompt == "direct"
  assert run.parse_args(base + ["math_v", "--prompt", "cot"]).prompt == "cot"
  assert run.parse_args(base + ["mathverse"]).prompt == "query_wo"
  assert run.parse_args(base + ["mathvista"]).prompt == ""
  for bad in (["math_v", "--prompt", "query_wo"], ["mathvista", "--prompt", "query_cot"]):
    with pytest.raises(SystemExit):
      run.parse_args(base + bad)


def test_a_problem_without_an_image_is_asked_without_one(tmp_path):
  """MathVerse's Text Only problems have no image; the official harness asks them with none.
  They were asked with a blank image's tokens; now their prompt has no `<image>`, and a batch
  that mixes them with image problems still gives each image to its own row (one slot per row:
  in the [n, H, W, 3] order the image row's tokens would read the text row's blank image)."""
  import numpy as np
  from tokenizers import Tokenizer

  from mathvlm import checkpoint
  from mathvlm.eval import math_v
  ckpt = str(tmp_path / "ckpt")
  _tiny_checkpoint(ckpt)
  model, cfg = checkpoint.load_model(ckpt)
  enc = run.Encoder(Tokenizer.from_file(ckpt + "/tokenizer.json"), cfg.image_token_id,
                    cfg.image_seq_len, 512)
  with_image = math_v.load(shared("math_v", "testmini.jsonl"))[0]
  text_only = dataclasses.replace(with_image, pid="t", images=[])
  size = cfg.vision.image_size
  ids, mask, images = run._batch_arrays(enc, [text_only, with_image], "vicuna_v1", size, 2, 64,
                                        (0, 2))
  assert [int((row == cfg.image_token_id).sum()) for row in ids] == [0, cfg.image_seq_len]
  alone = run._batch_arrays(enc, [with_image, with_image], "vicuna_v1", size, 2, 64, (0, 2))
  np.testing.assert_array_equal(model.embed(ids, images)[1][mask[1] == 1],
                                model.embed(alone[0], alone[2])[1][alone[1][1] == 1])
  out = run.generate_responses(model, cfg, enc, [text_only, with_image], template="vicuna_v1",
                               batch_size=2, max_new_tokens=2, temperature=0.0)
  assert len(out) == 2
