"""Behaviour that a seventh mutation review (small plausible bugs applied to the MATH-Vision
scorer, `mathvlm/eval/math_v.py`, and to the Hugging Face conversion, `mathvlm/hf.py`) found no
test guarding: each test here fails on such a mutant and passes on the real code. The MATH-Vision
readings are those of the official `evaluation/evaluate.py` and `utils.py` (mathllm/MATH-V);
the checkpoints are tiny ones written here (no downloads): the whole file runs in seconds."""

import dataclasses
import json
import os
import shutil

import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

import hf_models as H
from mathvlm import hf
from mathvlm.checkpoint import CheckpointError
from mathvlm.eval import math_v
from mathvlm.eval.common import Problem
from test_convert import _tensors, _write_original_layout
from test_convert_checks import _llava_hf_config
from test_convert_review import _original
from test_hf_original_tower import _tuned, _with_tower

# ---------------------------------------------------------------------------------------------
# MATH-Vision: loading.

RECORD = {"id": "1", "question": "How many?", "options": [], "answer": "6", "level": 1,
          "subject": "counting"}


def _write(tmp_path, rows, end="\n"):
  path = tmp_path / "test.jsonl"
  path.write_bytes("".join(json.dumps(r) + end for r in rows).encode())
  return str(path)


def test_an_answer_one_letter_past_the_options_is_refused_and_the_last_letter_taken(tmp_path):
  """With three options the answer letters are A-C: D (a record cut from five options) is an
  error, C is the third option (an off-by-one refused C or let D index past the list)."""
  options = ["1", "2", "3"]
  with pytest.raises(ValueError, match=r"test.jsonl:1 \(id 1\): answer 'D' is not one of"):
    math_v.load(_write(tmp_path, [dict(RECORD, options=options, answer="D")]))
  (p,) = math_v.load(_write(tmp_path, [dict(RECORD, options=options, answer="C")]))
  assert p.answer == "C" and math_v.judge(p, "3")


def test_blank_lines_of_a_windows_file_are_skipped_not_parsed(tmp_path):
  """A CRLF file's blank line is "\\r" after the split on "\\n": it is no record (a line that is
  only whitespace), not a JSON error."""
  path = _write(tmp_path, [RECORD, dict(RECORD, id="2")], end="\r\n\r\n")
  assert [p.pid for p in math_v.load(path)] == ["1", "2"]


def test_only_a_record_with_an_image_gets_an_image_path(tmp_path):
  """A text-only record (no image, or an empty one) is asked without an image; one with an
  image gets its path in images_dir (default: the file's folder)."""
  rows = [RECORD, dict(RECORD, id="2", image=""), dict(RECORD, id="3", image="images/3.jpg")]
  problems = math_v.load(_write(tmp_path, rows))
  assert [p.images for p in problems] == [[], [], [str(tmp_path / "images" / "3.jpg")]]
  assert math_v.load(_write(tmp_path, rows), images_dir="/d")[2].images == ["/d/images/3.jpg"]


@pytest.mark.parametrize("row,named", [
    ({k: v for k, v in RECORD.items() if k != "level"}, r"\['level'\] missing or null"),
    (dict(RECORD, subject=None), r"\['subject'\] missing or null"),
    (dict(RECORD, question=["How", "many?"]), r"question is \['How', 'many\?'\]"),
])
def test_a_record_without_its_breakdown_fields_or_a_text_question_is_named(tmp_path, row, named):
  """level and subject make the official score keys (a missing one was a bare KeyError at
  scoring); a question that is not text would be formatted into the prompt as a list."""
  with pytest.raises(ValueError, match=named):
    math_v.load(_write(tmp_path, [row]))


@pytest.mark.parametrize("answer,text", [(0, "0"), (2.5, "2.5"), ("0", "0")])
def test_a_numeric_or_zero_answer_is_an_answer(tmp_path, answer, text):
  """A gold answer written as a JSON number (0 included: falsy, not missing) is read as its
  text, as the official `str(answer)`."""
  (p,) = math_v.load(_write(tmp_path, [dict(RECORD, answer=answer)]))
  assert p.answer == text and math_v.judge(p, text)


# ---------------------------------------------------------------------------------------------
# MATH-Vision: the official extraction's clean-ups (utils.py `find_math_answer`,
# `_strip_string`, `_fix_fracs`, `_fix_a_slash_b`; evaluate.py's letter rules).

def _p(answer, options=()):
  return Problem(pid="x", question="", answer=answer, choices=list(options), images=[], query="",
                 meta={"level": 1, "subject": "algebra"}, raw={})


@pytest.mark.parametrize("response,expected", [
    ("\\boxed{\\sqrt{3}\\frac1}", "\\sqrt{3}\\frac1"),            # \frac with one char: as is
    ("\\boxed{\\sqrt{2}\\frac12}", "\\sqrt{2}\\frac{1}{2}"),      # braces added to both
    ("\\boxed{01/2}", "01/2"),                                   # not int/int as written: kept
    ("\\boxed{\\\\\\frac{1}{2}}", "\\frac{1}{2}"),               # \\ collapsed twice
    ("\\boxed{\\tfrac{1}{3}}", "\\frac{1}{3}"),
    ("\\boxed{.5}", "\\frac{1}{2}"),                             # .5 is 0.5, then the quirk
    ("\\boxed{90^{\\!\\circ}}", "90"),                           # degrees after \! is dropped
    ("\\boxed{30{}^\\circ}", "30"),                              # LaTeX's {}^\circ
    ("\\boxed{(2, ∞)}", "(2,\\infty)"),
    ("\\boxed{(-\\infty, +\\infty)}", "(-\\infty,\\infty)"),
    ("\\boxed{\\begin{bmatrix}1\\\\2\\end{bmatrix}}", "\\begin{pmatrix}1\\2\\end{pmatrix}"),
    ("C\nThe triangle has three sides.", "c"),                   # a letter on the first line
    ("(C) C\nbecause the angle is 30", "c"),                     # "(X) X" on the first line
])
def test_the_official_clean_ups_each_apply(response, expected):
  assert math_v.extract(response) == expected


@pytest.mark.parametrize("response,gold", [
    ("\\boxed{\\\\\\frac{1}{2}}", "0.5"), ("\\boxed{.5}", "0.5"), ("\\boxed{90^{\\!\\circ}}", "90"),
    ("\\boxed{30{}^\\circ}", "30"), ("\\boxed{(2, ∞)}", "(2,\\infty)"),
])
def test_the_clean_ups_decide_the_verdict(response, gold):
  """Without them each answer above is judged wrong against its gold value."""
  assert math_v.judge(_p(gold), math_v.extract(response))


def test_a_final_letter_counts_only_as_a_word_of_its_own():
  """evaluate.py takes a last " X." as the letter X: "It is E." answers E, but a name ending in
  the letter ("segment DE.") is no answer E."""
  options = ["1", "2", "3", "4", "5"]
  assert math_v.judge(_p("E", options), math_v.extract("It is E."))
  assert not math_v.judge(_p("E", options), math_v.extract("It lies on segment DE."))


def test_a_published_score_string_is_read_past_leading_space():
  """`parse_official` reads "c/n=x%" as (correct, total), in that order, with any indentation
  an edited *_result.json gives its values."""
  assert math_v.parse_official(" 3/4=75.0%") == (3, 4)
  assert math_v.parse_official("0/2=0.0%") == (0, 2)


def _leveled(pid, level, subject="algebra"):
  return Problem(pid=pid, question="", answer="1", choices=[], images=[], query="",
                 meta={"level": level, "subject": subject}, raw={})


def test_scores_count_the_right_answers_in_every_breakdown():
  """`scores`: "all" counts the right answers (not the total twice), the subject-by-level keys
  are "<subject>_levelN" as in the official file, whose strings carry the same counts."""
  problems = {"1": _leveled("1", 1), "2": _leveled("2", 2), "3": _leveled("3", 2, "logic")}
  out = math_v.scores(problems, {"1": True, "2": False, "3": True})
  assert out["all"] == {"correct": 2, "total": 3, "accuracy": 66.67}
  assert {k: (v["correct"], v["total"]) for k, v in out["subject_level"].items()} == {
      "algebra_level1": (1, 1), "algebra_level2": (0, 1), "logic_level2": (1, 1)}
  assert out["official"]["-all"] == "2/3=66.67%"
  assert out["official"]["algebra_level2"] == "0/1=0.0%"


def test_an_output_record_has_the_official_fields():
  """One line of the official outputs/*.jsonl, which `evaluate.py` re-reads by these names
  (`model_answer` is what it re-judges without --regen_answer)."""
  record = math_v.output_record(_leveled("7", 1), "It is 1.", "1", True)
  assert record == {"id": "7", "response": "It is 1.", "model_answer": "1", "correct": True}


# ---------------------------------------------------------------------------------------------
# Hugging Face checkpoints: reading.

def _params(model):
  return {"/".join(p): np.asarray(v[...]) for p, v in hf.param_paths(model)}


def _renamed(src, dst, rename):
  """The folder src with its tensors renamed (a key rename returns None to drop the tensor)."""
  os.makedirs(dst)
  tensors = {rename(k): v for k, v in _tensors(src).items() if rename(k) is not None}
  save_file(tensors, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
  shutil.copy(os.path.join(src, "config.json"), dst)
  return dst


def _in_memory_names(key):
  """transformers >= 4.52's LlavaForConditionalGeneration state-dict names, which checkpoints
  saved without its reverse mapping carry: model.language_model.*, model.vision_tower.*,
  model.multi_modal_projector.*, and the head at the top, lm_head.*."""
  if key.startswith("language_model.model."):
    return "model.language_model." + key[len("language_model.model."):]
  if key == "language_model.lm_head.weight":
    return "lm_head.weight"
  return "model." + key


def test_the_in_memory_llava_layout_loads_its_own_lm_head(llava_hf, tmp_path):
  """Under `model.language_model.` the head is `lm_head.weight`, not
  `language_model.lm_head.weight`: the same parameters as the saved layout, head included."""
  src = llava_hf[1]
  folder = _renamed(src, str(tmp_path / "mem"), _in_memory_names)
  assert "lm_head.weight" in _tensors(folder)
  ours, theirs = _params(hf.load_hf(folder)[0]), _params(hf.load_hf(src)[0])
  assert ours.keys() == theirs.keys() and "language_model/lm_head/kernel" in ours
  for k in ours:
    np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)


@pytest.fixture(scope="module")
def sharded_llm(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("sharded") / "llm")
  H.llm(0).save_pretrained(path, max_shard_size="20KB")
  return path


def test_an_index_naming_the_wrong_shard_names_that_shard(sharded_llm, tmp_path):
  """The error names the shard the index wrongly puts a tensor in (where a reader looks and
  finds nothing), not the shard that holds it."""
  path = str(shutil.copytree(sharded_llm, tmp_path / "llm"))
  index = os.path.join(path, "model.safetensors.index.json")
  meta = json.load(open(index))
  holder = meta["weight_map"]["model.norm.weight"]
  wrong = next(s for s in sorted(set(meta["weight_map"].values())) if s != holder)
  meta["weight_map"]["model.norm.weight"] = wrong
  json.dump(meta, open(index, "w"))
  with pytest.raises(CheckpointError, match=rf"puts 1 tensors in '{wrong}' that it does not hold"):
    hf.load_hf(path)


def test_a_tower_buffer_alone_is_no_tower_in_the_checkpoint(llava_hf, tmp_path):
  """An original-layout checkpoint whose only `model.vision_tower.*` tensor is a buffer
  (`position_ids`, which transformers < 4.31 saved) carries no tower: the tower is the separate
  CLIP's, as without the buffer (not "only part of a vision tower")."""
  llava_dir, clip_dir = _write_original_layout(llava_hf[1], str(tmp_path))
  plain = _params(hf.load_llava(llava_dir, clip_dir=clip_dir)[0])
  t = _tensors(llava_dir)
  t[hf.ORIGINAL_TOWER_PREFIX + "embeddings.position_ids"] = np.arange(5)[None]
  save_file(t, os.path.join(llava_dir, "model.safetensors"), metadata={"format": "pt"})
  assert not hf.original_tower(llava_dir, {}, clip_dir).in_checkpoint
  with_buffer = _params(hf.load_llava(llava_dir, clip_dir=clip_dir)[0])
  for k in plain:
    np.testing.assert_array_equal(with_buffer[k], plain[k], err_msg=k)


def test_every_shard_of_an_export_holds_a_tensor_the_index_names(sharded_llm, tmp_path):
  """With a shard limit below a tensor's size each tensor is a shard of its own: no empty
  first shard (a file the index never names, and a count in every name that is one too many)."""
  model, cfg = hf.load_hf(sharded_llm)
  out = str(tmp_path / "out")
  hf.export_hf(model, cfg, out, max_shard_bytes=1)
  files = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
  weight_map = json.load(open(os.path.join(out, "model.safetensors.index.json")))["weight_map"]
  assert sorted(set(weight_map.values())) == files and len(files) == len(weight_map)
  assert files[0] == f"model-00001-of-{len(files):05d}.safetensors"


def test_an_image_id_equal_to_the_vocabulary_size_is_outside_it(llava_hf):
  """Ids run 0 .. vocab_size - 1: an image id of vocab_size has no row in the embedding, so the
  model has no llava-hf form and goes to the original layout by default."""
  model, cfg = hf.load_hf(llava_hf[1])
  assert hf.export_layout(model, cfg) == "llava"
  outside = dataclasses.replace(cfg, image_token_id=cfg.text.vocab_size)
  assert hf.export_layout(model, outside) == "llava_original"
  with pytest.raises(CheckpointError, match=rf"image_token_id={cfg.text.vocab_size} is outside"):
    hf.export_layout(model, outside, "llava")


def test_the_feature_layer_and_projector_bias_are_read_and_written_in_both_layouts():
  """vision_feature_layer (llava-hf) and mm_vision_select_layer (original) pick the tower layer
  the projector reads; -1 (the last layer, not LLaVA-1.5's -2) is read from either and written
  back to both; multimodal_projector_bias false is a projector without biases."""
  hf_cfg = hf.config_from_hf("llava", _llava_hf_config(vision_feature_layer=-1,
                                                       multimodal_projector_bias=False))
  assert hf_cfg.vision_feature_layer == -1 and hf_cfg.projector_bias is False
  assert hf_cfg.to_hf()["vision_feature_layer"] == -1
  original = hf.config_from_hf("llava_original", dict(_original(), mm_vision_select_layer=-1),
                               H.clip_vision_config().to_dict())
  assert original.vision_feature_layer == -1
  assert hf.original_config(original, "clip")["mm_vision_select_layer"] == -1


def test_a_clip_models_vision_side_loads_strictly_its_text_side_unread(tmp_path):
  """layout='clip_vision' reads a CLIPModel folder's tower (its config's vision_config, not the
  top level) and leaves the text side unread without a word, even under strict."""
  ref = H.clip(0)
  src = H.save(ref, str(tmp_path / "clip"))
  vision, cfg = hf.load_hf(src, layout="clip_vision", strict=True)
  assert (cfg.hidden_size, cfg.num_layers) == (32, 3)
  whole = _params(hf.load_hf(src)[0])
  for k, v in _params(vision).items():
    np.testing.assert_array_equal(v, whole["vision_model/" + k], err_msg=k)


def test_a_carried_tower_is_checked_against_a_clip_models_vision_config(llava_hf, tmp_path):
  """clip_dir may be a whole CLIPModel folder (model_type clip): the tower the checkpoint
  carries is checked against its vision_config, not its top level (CLIP-B's defaults, which
  this tiny tower would lack most tensors of)."""
  llava_dir, clip_dir = _write_original_layout(llava_hf[1], str(tmp_path))
  _with_tower(llava_dir, _tuned(_tensors(clip_dir)))
  vision = json.load(open(os.path.join(clip_dir, "config.json")))
  json.dump({"model_type": "clip", "vision_config": vision, "text_config": {}},
            open(os.path.join(clip_dir, "config.json"), "w"))
  tower = hf.original_tower(llava_dir, {}, clip_dir)
  assert tower.in_checkpoint and tower.clip_hf["model_type"] == "clip"
  model, cfg = hf.load_llava(llava_dir, clip_dir=clip_dir)
  assert (cfg.vision.hidden_size, cfg.vision.num_layers) == (32, 3)


def test_a_shard_of_the_layer_axis_reads_only_its_layers(sharded_llm, monkeypatch):
  """`load_hf` fills each array shard by shard (`jax.make_array_from_callback`): a sharding
  that splits the stacked layers (any `sharding` function may) asks for a slice of them, and
  gets those layers only, as the whole array holds them."""
  fetches = []
  make = jax.make_array_from_callback

  def spy(shape, sharding, fetch):
    fetches.append((shape, fetch))
    return make(shape, sharding, fetch)

  monkeypatch.setattr(jax, "make_array_from_callback", spy)
  hf.load_hf(sharded_llm)
  stacked = [(s, f) for s, f in fetches if len(s) == 3 and s[0] == 2]  # (layers, in, out)
  assert len(stacked) == 7  # q, k, v, o, gate, up, down
  for shape, fetch in stacked:
    whole = fetch((slice(None),) * 3)
    np.testing.assert_array_equal(fetch((slice(1, 2), slice(None), slice(None))), whole[1:])


# ---------------------------------------------------------------------------------------------
# Hugging Face checkpoints: the mutants the seventh review wrote but ran only later.

def test_a_folder_of_pytorch_bin_weights_is_told_to_resave_them(tmp_path):
  """A folder with PyTorch .bin weights and no safetensors gets the fix (re-save them), one with
  neither only the plain error."""
  with pytest.raises(CheckpointError, match=r"no \*\.safetensors in \S+$"):
    hf.SafetensorsDir(str(tmp_path))
  (tmp_path / "pytorch_model.bin").write_bytes(b"")
  with pytest.raises(CheckpointError, match=r"found PyTorch \.bin weights: re-save them"):
    hf.SafetensorsDir(str(tmp_path))


def test_an_index_whose_weight_map_is_a_list_is_named_a_damaged_index(tmp_path):
  """A weight_map that is a JSON list (not a tensor -> shard object) is a damaged index, named;
  not a ValueError from dict() deep inside the read."""
  (tmp_path / "model.safetensors.index.json").write_text(
      json.dumps({"weight_map": ["model-00001-of-00001.safetensors"]}))
  with pytest.raises(CheckpointError, match=r"index.json is not a safetensors index.*"
                     r"weight_map is a list"):
    hf.SafetensorsDir(str(tmp_path))


def test_a_llama_config_naming_a_vision_tower_is_an_original_llava():
  """LLaVA's older releases keep model_type llama (or another the code does not list) and say
  they are LLaVAs only by mm_vision_tower: read as a plain Llama the projector would be dropped."""
  for mt in ("llama", "llava_qwen"):
    hf_cfg = {"model_type": mt, "mm_vision_tower": "openai/clip-vit-large-patch14-336"}
    assert hf.detect_layout(hf_cfg) == "llava_original", mt
  assert hf.detect_layout({"model_type": "llama"}) == "llm"


def test_a_text_config_without_a_model_type_is_a_llama():
  """transformers' LlavaConfig makes a text_config without model_type a LlamaConfig: its
  omitted fields are Llama's defaults (11008-wide MLP), not Mistral's."""
  cfg = hf.config_from_hf("llava", _llava_hf_config(text_config={"vocab_size": 100}))
  assert cfg.text.model_type == "llama" and cfg.text.intermediate_size == 11008


def _vision_cfg():
  return hf.config_from_hf("clip_vision", H.clip_vision_config().to_dict())


def _llm_cfg(**fields):
  return hf.config_from_hf("llm", dict(H.llama_config().to_dict(), **fields))


def test_an_unset_token_id_is_not_written_to_generation_config():
  """transformers reads a written null as "no pad id" too, but vLLM's defaults read every key:
  an unset id is left out, a tuple of end ids is a list."""
  cfg = _llm_cfg(pad_token_id=None, eos_token_id=[2, 3])
  assert hf.generation_config(cfg) == {"bos_token_id": cfg.bos_token_id, "eos_token_id": [2, 3]}


def test_the_image_processor_resizes_bicubic_to_the_towers_side():
  """As openai/clip-vit-*'s preprocessor_config.json: the shortest edge resized to the tower's
  image side with PIL's bicubic (3), then centre-cropped to a square of that side."""
  cfg = _vision_cfg()
  out = hf.preprocessor_config(cfg)
  assert out["resample"] == 3
  assert out["size"] == {"shortest_edge": cfg.image_size}
  assert out["crop_size"] == {"height": cfg.image_size, "width": cfg.image_size}


def test_a_shard_limit_is_inclusive_and_the_index_counts_every_shard(sharded_llm, tmp_path):
  """Tensors that add up to exactly max_shard_bytes share one file; the index's total_size is
  the bytes of all shards, not the last one's."""
  model, cfg = hf.load_hf(sharded_llm)
  one = str(tmp_path / "one")
  hf.export_hf(model, cfg, one)
  total = sum(v.nbytes for v in _tensors(one).values())
  exact = str(tmp_path / "exact")
  hf.export_hf(model, cfg, exact, max_shard_bytes=total)
  assert sorted(f for f in os.listdir(exact) if f.endswith(".safetensors")) == \
      ["model.safetensors"]
  many = str(tmp_path / "many")
  hf.export_hf(model, cfg, many, max_shard_bytes=total // 3)
  index = json.load(open(os.path.join(many, "model.safetensors.index.json")))
  assert len(set(index["weight_map"].values())) > 1
  assert index["metadata"]["total_size"] == total


def test_a_llavas_written_dtype_is_its_language_models():
  """A LLaVA whose text and tower keep parameters in different dtypes is written as its
  language model's (the bulk of its weights)."""
  cfg = hf.config_from_hf("llava", _llava_hf_config())
  cfg = dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, param_dtype="bfloat16"),
                            vision=dataclasses.replace(cfg.vision, param_dtype="float32"))
  assert hf._param_dtype_name(cfg) == "bfloat16"


def test_the_same_folder_spelled_otherwise_does_not_override_itself(tmp_path):
  """clip_dir and mm_vision_tower naming one folder (a trailing slash, a relative path) is no
  override: no "two different CLIPs" comparison, no warning."""
  (tmp_path / "clip").mkdir()
  named = str(tmp_path / "clip")
  assert not hf._overrides(named + "/", named)
  assert hf._overrides(str(tmp_path), named)


def test_a_tensor_only_one_of_two_clip_folders_holds_makes_them_differ(llava_hf, tmp_path):
  """mm_vision_tower's local CLIP and clip_dir differ when one has a tower tensor the other
  lacks (named 'missing'), not only when a shape differs."""
  llava_dir, clip_dir = _write_original_layout(llava_hf[1], str(tmp_path))
  named = str(shutil.copytree(clip_dir, tmp_path / "named"))
  t = _tensors(named)
  t["vision_model.extra.weight"] = np.zeros(3, np.float32)
  save_file(t, os.path.join(named, "model.safetensors"), metadata={"format": "pt"})
  with pytest.raises(CheckpointError, match=r"1 tensors differ, e.g. extra.weight: \(3,\) there, "
                     "missing in clip_dir"):
    hf._overridden_tower(llava_dir, {"mm_vision_tower": named}, clip_dir)


def test_a_bucket_path_is_refused_with_the_copy_command():
  """safetensors reads local files only: a bucket path gets the copy command, not a crash."""
  with pytest.raises(CheckpointError, match=r"gcloud storage cp -r"):
    hf.SafetensorsDir("gs://bucket/model")
