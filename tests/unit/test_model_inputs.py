"""A trained model's folder says how its inputs were made (the chat template, how images were
shaped: `checkpoint.recorded_inputs`), and every command that feeds a model follows it unless
told otherwise: `eval.run`, `data_prep.score` (each scorer its own), the local chat back end,
`convert` (a copy keeps it; an original-layout export writes it as image_aspect_ratio). Before,
a model trained with data.image_aspect=crop or another template was fed LLaVA-1.5's defaults
without a word and scored lower."""

import io
import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from data_prep import score
from mathvlm import checkpoint, convert, hf
from mathvlm.data.image import to_pixels
from mathvlm.eval import run

TRAINED = {"template": "plain", "image_aspect": "crop"}


def _folder(path, **meta):
  path.mkdir(parents=True, exist_ok=True)
  (path / "config.json").write_text(json.dumps({"format": "mathvlm", "kind": "llava",
                                                "config": {}, **meta}))
  return str(path)


def test_the_record_the_trainer_writes_and_what_a_converted_original_llava_says(tmp_path):
  assert checkpoint.recorded_inputs(_folder(tmp_path / "trained", inputs=TRAINED)) == TRAINED
  # a trainer's workdir stands for its model/ folder
  _folder(tmp_path / "work" / "model", inputs=TRAINED)
  assert checkpoint.recorded_inputs(str(tmp_path / "work")) == TRAINED
  # converted from the original layout: its image_aspect_ratio, carried in hf_fields
  for llava, ours in (("square", "crop"), ("pad", "pad")):
    carried = {"config": {"hf_fields": [["image_aspect_ratio", json.dumps(llava)]]}}
    assert checkpoint.recorded_inputs(_folder(tmp_path / llava, **carried)) == {
        "image_aspect": ours}
  assert checkpoint.recorded_inputs(_folder(tmp_path / "silent")) == {}
  assert checkpoint.recorded_inputs(str(tmp_path / "nothing_here")) == {}
  bad = _folder(tmp_path / "edited", inputs={"template": "vicuna", "image_aspect": "crop"})
  with pytest.raises(checkpoint.CheckpointError, match=r"inputs.template='vicuna' is not one of"):
    checkpoint.recorded_inputs(bad)


def test_a_flag_wins_over_the_record_and_says_so(caplog):
  setting = checkpoint.input_setting
  assert setting("image_aspect", None, TRAINED, "pad", "m") == "crop"
  assert setting("image_aspect", None, {}, "pad", "m") == "pad"
  with caplog.at_level(logging.WARNING):
    assert setting("image_aspect", "pad", TRAINED, "pad", "m") == "pad"
  assert "m was trained with image_aspect=crop; --image_aspect pad" in caplog.text
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    assert setting("template", "plain", TRAINED, "vicuna_v1", "m") == "plain"
  assert not caplog.text  # the flag says what the record says


def test_eval_run_follows_the_model_unless_told(tmp_path):
  base = ["--benchmark", "math_v", "--data", "d", "--out", "o", "--ckpt"]
  args = run.parse_args(base + [_folder(tmp_path / "m", inputs=TRAINED)])
  assert (args.template, args.image_aspect) == ("plain", "crop")
  sig = run_signature_of(args)
  assert (sig["template"], sig["image_aspect"]) == ("plain", "crop")  # run.json says which
  args = run.parse_args(base + [str(tmp_path / "m"), "--template", "vicuna_v1",
                                "--image_aspect", "pad"])
  assert (args.template, args.image_aspect) == ("vicuna_v1", "pad")
  args = run.parse_args(base + [_folder(tmp_path / "old")])  # a folder that says nothing
  assert (args.template, args.image_aspect) == ("vicuna_v1", "pad")
  _folder(tmp_path / "work" / "model", inputs=TRAINED)  # a trainer's workdir: its model/
  args = run.parse_args(base + [str(tmp_path / "work")])
  assert (args.ckpt, args.template) == (str(tmp_path / "work" / "model"), "plain")


def run_signature_of(args):
  tok = type("Tok", (), {"to_str": staticmethod(lambda: "{}")})
  return run.run_signature(args, tok)


class _Scorer:
  """A scorer that keeps the pixels it was given."""

  def __init__(self, size):
    self.image_size, self.num_classes, self.seen = size, 2, []

  def start(self, pixels):
    self.seen.append(pixels)
    return pixels

  def finish(self, pixels):
    return np.full((len(pixels), 2), 0.5)


def test_each_scorer_sees_images_shaped_as_it_was_trained(tmp_path):
  wide = Image.fromarray(np.random.RandomState(0).randint(0, 255, (30, 70, 3), np.uint8))
  buf = io.BytesIO()
  wide.save(buf, format="PNG")
  item = score.Item("a", "src", ["r"], lambda: buf.getvalue())
  ckpts = {"clarity": _folder(tmp_path / "c", inputs={"image_aspect": "crop"}),
           "complexity": _folder(tmp_path / "x")}
  aspects = score.scorer_aspects(ckpts, None)
  assert aspects == {"clarity": "crop", "complexity": "pad"}
  assert score.scorer_aspects(ckpts, "resize") == {"clarity": "resize", "complexity": "resize"}
  scorers = {"clarity": _Scorer(28), "complexity": _Scorer(28)}
  with open(tmp_path / "out.jsonl", "w") as f:
    score.score_items([item], scorers, batch=4, aspects=aspects, workers=1, out_file=f,
                      progress=False)
  for name, aspect in aspects.items():
    np.testing.assert_array_equal(scorers[name].seen[0][0], to_pixels(wide, 28, aspect))
  assert (scorers["clarity"].seen[0] != scorers["complexity"].seen[0]).any()


def test_convert_keeps_the_record_and_writes_it_as_llavas_image_aspect_ratio(llava_hf, tmp_path):
  model, cfg = hf.load_hf(llava_hf[1])
  src = str(tmp_path / "trained")
  checkpoint.save_model(model, cfg, src, inputs=TRAINED)
  convert.main(["--from-ckpt", src, "--to", str(tmp_path / "copy"), "--dtype", "bfloat16"])
  assert checkpoint.recorded_inputs(str(tmp_path / "copy")) == TRAINED

  def exported_aspect(name, *flags):
    out = str(tmp_path / name)
    convert.main(["--from-ckpt", src, "--to-hf", out, "--layout", "original", *flags])
    return json.load(open(f"{out}/config.json"))["image_aspect_ratio"]

  assert exported_aspect("crop") == "square"  # LLaVA's name for CLIP's resize and centre crop
  assert exported_aspect("given", "--image-aspect-ratio", "pad") == "pad"
  # the original layout read back: LLaVA's square is crop again (its template is not recorded)
  convert.main(["--from-hf", str(tmp_path / "crop"), "--to", str(tmp_path / "back")])
  assert checkpoint.recorded_inputs(str(tmp_path / "back")) == {"image_aspect": "crop"}
  checkpoint.save_model(model, cfg, src, inputs={"template": "plain", "image_aspect": "resize"})
  with pytest.raises(SystemExit, match=r"data.image_aspect='resize'.*--image-aspect-ratio pad"):
    exported_aspect("resize")
  assert exported_aspect("resize_given", "--image-aspect-ratio", "square") == "square"


def test_the_local_chat_back_end_prompts_and_shapes_as_the_model_was_trained(
    llava_hf, tmp_path, monkeypatch):
  from mathvlm.eval import chat
  from rl_toys import word_tokenizer
  model, cfg = hf.load_hf(llava_hf[1])
  ckpt = str(tmp_path / "trained")
  checkpoint.save_model(model, cfg, ckpt, inputs=TRAINED)
  word_tokenizer(f"{ckpt}/tokenizer.json")
  asked = {}
  monkeypatch.setattr(run, "generate_tokens", lambda *a, **kw: (
      asked.update(kw), iter([(["p"], np.full((1, 2), 2))]))[1])
  chat.LocalChat(ckpt, max_new_tokens=2).respond([("q", "img.png")])
  assert (asked["template"], asked["image_aspect"]) == ("plain", "crop")
  chat.LocalChat(ckpt, template="vicuna_v1", max_new_tokens=2).respond([("q", "img.png")])
  assert (asked["template"], asked["image_aspect"]) == ("vicuna_v1", "crop")
  os.rename(ckpt, tmp_path / "model")  # a trainer's workdir stands for its model/
  chat.LocalChat(str(tmp_path), max_new_tokens=2).respond([("q", "img.png")])
  assert asked["template"] == "plain"


def test_a_run_started_from_a_model_fed_otherwise_is_warned(tmp_path, caplog):
  """model.init_from and the part fields: a mismatch in what the part depends on is named (the
  tower: how images were shaped; the language model: its chat format); a `plain` captioning
  template, which the next stage replaces as LLaVA's recipe does, and a folder that records
  nothing are not."""
  from mathvlm import pretrained
  from train_utils import tiny_config
  chat = _folder(tmp_path / "chat", inputs={"template": "vicuna_v1", "image_aspect": "crop"})
  aligned = _folder(tmp_path / "aligned", inputs=TRAINED)
  warned = lambda **f: pretrained.warn_fed_otherwise(tiny_config(
      "lm", data__template="mistral_instruct", data__image_aspect="pad", **f))
  assert [w.split(";")[0] for w in warned(model__init_from=chat)] == [
      f"model.init_from={chat} was trained with data.template=vicuna_v1",
      f"model.init_from={chat} was trained with data.image_aspect=crop"]
  assert [w.split(";")[0] for w in warned(model__init_from=aligned)] == [
      f"model.init_from={aligned} was trained with data.image_aspect=crop"]
  assert [w.split(";")[0] for w in warned(model__vision_init_from=chat)] == [
      f"model.vision_init_from={chat} was trained with data.image_aspect=crop"]
  assert [w.split(";")[0] for w in warned(model__language_init_from=chat)] == [
      f"model.language_init_from={chat} was trained with data.template=vicuna_v1"]
  assert warned(model__init_from=_folder(tmp_path / "silent")) == []
  assert pretrained.warn_fed_otherwise(tiny_config(
      "lm", model__init_from=chat, data__template="vicuna_v1", data__image_aspect="crop")) == []
  caplog.clear()
  with caplog.at_level(logging.WARNING):  # what the trainer's setup reads the architecture with
    pretrained.model_config(tiny_config("lm", model__init_from=chat))
  assert f"{chat} was trained with data.image_aspect=crop; this run feeds it" in caplog.text
