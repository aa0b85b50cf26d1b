"""Behaviour that a sixth mutation review (small plausible bugs applied to the chat templates and
loss mask, `mathvlm/data/templates.py`, and the image preprocessing, `mathvlm/data/image.py`)
found no test guarding: each test here fails on such a mutant and passes on the real code. The
references are LLaVA's strings and `preprocess_multimodal` (benchmarks/llava_reference.py, a
port), LLaVA's `expand2square` and transformers' `convert_to_rgb`; the tokenizers are toys
defined here (characters, or words with their trailing space) whose offsets say exactly which
characters each token covers. Tiny inputs only: the whole file runs in seconds."""

import json
import re

import numpy as np
import pytest
from PIL import Image
from transformers.image_transforms import convert_to_rgb

from benchmarks.llava_reference import (CONVERSATIONS, expand2square, ref_get_prompt,
                                        ref_preprocess_multimodal)
from mathvlm.data import image as I
from mathvlm.data import templates as T


class RegexTokenizer:
  """A token per match of `pattern`, its offsets the match's span; BOS (id 1, offsets (0, 0))
  first, and, with `end_token`, an end token with empty offsets last, as a post-processor that
  appends EOS gives it. Ids are stable per token text."""

  bos_token_id = 1

  def __init__(self, pattern: str, end_token: bool = False):
    self.pattern, self.end_token, self.vocab = re.compile(pattern, re.S), end_token, {}

  def __call__(self, text, return_offsets_mapping=True):
    found = [(m.group(), m.span()) for m in self.pattern.finditer(text)]
    ids = [1] + [self.vocab.setdefault(t, 10 + len(self.vocab)) for t, _ in found]
    offsets = [(0, 0)] + [span for _, span in found]
    if self.end_token:
      ids, offsets = ids + [2], offsets + [(0, 0)]
    return {"input_ids": ids, "offset_mapping": offsets}


CHARS = RegexTokenizer(".")
WORDS = RegexTokenizer(r"\S+\s*")   # a word with the spaces after it: "ASSISTANT: " is one token

TWO_ROUNDS = [{"from": "human", "value": "<image>\nFind AC."}, {"from": "gpt", "value": "AC = 12."},
              {"from": "human", "value": "And BC?"}, {"from": "gpt", "value": "BC is 5 cm."}]
ONE_ROUND = TWO_ROUNDS[:2]


def _target_text(conv, name, tokenizer) -> str:
  """The text of the target tokens, joined: exactly the characters the loss is taken on."""
  prompt, spans = T.render(conv, T.get(name))
  ids, mask = T.tokenize(prompt, spans, tokenizer)
  text_of = {tid: text for text, tid in tokenizer.vocab.items()}
  return "".join(text_of.get(int(tid), "") for tid, m in zip(ids, mask) if m)


# ---- the loss mask, read back as text

ANSWERS = [t["value"] for t in TWO_ROUNDS[1::2]]


@pytest.mark.parametrize("name, closing", [("vicuna_v1", "{}</s>"), ("llava_v1", "{}</s>"),
                                           ("llama_2", "{} </s>"), ("mistral_instruct", "{} </s>")])
def test_every_character_of_each_answer_and_its_end_marker_is_a_target(name, closing):
  """A token per character: the loss covers each answer, the space before it (a token of its own
  here, as Llama's "▁" before a digit) and its closing "</s>" to the last character: an answer
  span one short of its end left ">" out (llama_2's span is answer + " " + "</s>")."""
  want = "".join(" " + closing.format(answer) for answer in ANSWERS)
  assert _target_text(TWO_ROUNDS, name, CHARS) == want


def test_the_plain_template_trains_the_caption_and_its_newline():
  assert _target_text(ONE_ROUND, "plain", CHARS) == ANSWERS[0] + "\n"


@pytest.mark.parametrize("name, want", [("vicuna_v1", "AC = 12.</s>"), ("llama_2", "AC = 12. </s>"),
                                        ("mistral_instruct", "AC = 12. </s>")])
def test_a_token_ending_in_the_space_before_the_answer_is_prompt(name, want):
  """A tokenizer that keeps a word's trailing space ("ASSISTANT: ", "[/INST] " one token each):
  that token ends where the answer starts and is the role's, not the answer's (LLaVA counts it in
  `instruction_len`). A span started one character early, or an overlap test with `>=`, made it a
  target."""
  assert _target_text(ONE_ROUND, name, WORDS) == want


@pytest.mark.parametrize("name", ["plain", "vicuna_v1", "llama_2"])
def test_tokens_with_no_characters_are_never_targets(name):
  """A tokenizer whose post-processor appends an end token gives it empty offsets (0, 0); after
  the image it sits at the caption's first character, which a zero-width test `b >= a` counted
  as inside the plain template's answer."""
  tok = RegexTokenizer(".", end_token=True)
  prompt, spans = T.render(ONE_ROUND, T.get(name))
  ids, mask = T.tokenize(prompt, spans, tok)
  assert (ids == 2).sum() == 2 and not mask[ids == 2].any() and not mask[ids == 1].any()
  assert mask.any()



def test_cut_counts_lost_answer_tokens_not_lost_tokens():
  """With a tokenizer that appends an end token (no characters, never a target) the last token
  is not the answer's: cutting only it loses no answer token, so the example is not `cut`
  (counted as answer_truncated) though it was truncated."""
  tok = RegexTokenizer(".", end_token=True)
  kw = dict(image_token_id=3, image_seq_len=2)
  full = T.encode(ONE_ROUND, T.get("vicuna_v1"), tok, max_len=4096, **kw)
  n = len(full.input_ids)
  short = T.encode(ONE_ROUND, T.get("vicuna_v1"), tok, max_len=n - 1, **kw)
  assert not full.cut and not short.cut and full.input_ids[-1] == 2
  assert short.loss_mask.tolist() == full.loss_mask[:n - 1].tolist()
  assert T.encode(ONE_ROUND, T.get("vicuna_v1"), tok, max_len=n - 2, **kw).cut

# ---- turns: what the records may hold

def test_a_conversation_as_json_bytes_reads_as_its_text():
  """Arrow/parquet binary columns hand the conversation over as bytes: the same turns as from the
  text; bytes that are not UTF-8 are a BadConversation (json raises UnicodeDecodeError)."""
  text = json.dumps(ONE_ROUND)
  assert T.normalise_turns(text.encode()) == T.normalise_turns(text)
  with pytest.raises(T.BadConversation, match="not JSON"):
    T.normalise_turns(text.encode()[:-3] + b"\xe9\"}]")  # a Latin-1 byte in the text


@pytest.mark.parametrize("conv, message", [
    ('{"from": "human", "value": "q"}', "is a dict, not a list of turns"),
    ("[]", "must end with a gpt turn"), ([], "must end with a gpt turn")])
def test_a_conversation_that_is_not_a_list_of_turns_says_so(conv, message):
  with pytest.raises(T.BadConversation, match=message):
    T.normalise_turns(conv)


def test_a_turn_without_a_value_is_an_empty_turn():
  """{"from": "gpt"} or "value": null reads as "" (captions strip it: None would crash), and the
  templates refuse it as empty, by name."""
  for gpt in ({"from": "gpt"}, {"from": "gpt", "value": None}):
    conv = [{"from": "human", "value": "q"}, gpt]
    assert T.normalise_turns(conv) == [("human", "q"), ("gpt", "")]
    with pytest.raises(T.BadConversation, match=r"turn 1 \(gpt\) is empty"):
      T.render(conv, T.get("vicuna_v1"))


@pytest.mark.parametrize("value", ["<image>", "  <image>\n", "What is AC?\n<image>",
                                   "<image>\n\nWhat is AC?  "])
def test_one_image_moves_to_the_front_as_llava_preprocess_multimodal(value):
  """A turn that is the image alone stays "<image>" (LLaVA strips after adding the newline)."""
  conv = [{"from": "human", "value": value}, {"from": "gpt", "value": "12"}]
  want = [(t["from"], t["value"]) for t in ref_preprocess_multimodal(conv)]
  assert T.normalise_turns(conv) == want


def test_two_images_stay_where_they_are_and_count_two():
  """Only a single <image> moves (LLaVA's move would merge two into one); with two, the text is
  as written and the example says two images (the pipeline drops it as `image_count` when its
  record has one)."""
  conv = [{"from": "human", "value": "Compare <image> and\n<image>"},
          {"from": "gpt", "value": "Same."}]
  assert T.normalise_turns(conv)[0][1] == "Compare <image> and\n<image>"
  tok = T.encode(conv, T.get("vicuna_v1"), CHARS, image_token_id=3, image_seq_len=2,
                 max_len=4096)
  assert tok.num_images == 2 and int((tok.input_ids == 3).sum()) == 4


NO_IMAGE = [{"from": "human", "value": "Describe it."}, {"from": "gpt", "value": "A square."}]


@pytest.mark.parametrize("conv", [TWO_ROUNDS, NO_IMAGE])
def test_the_plain_template_refuses_other_than_one_image_and_one_caption(conv):
  """Two rounds (the second would be dropped silently) or no image: a BadConversation, which the
  pipeline counts, not a ValueError, which ends the run."""
  with pytest.raises(T.BadConversation, match="plain template wants one human turn"):
    T.render(conv, T.get("plain"))


def test_an_unknown_style_is_an_error_naming_it():
  with pytest.raises(ValueError, match="unknown template style 'chatml'"):
    T.render(ONE_ROUND, T.Template("x", "chatml"))


# ---- the evaluation prompt

@pytest.mark.parametrize("name", ["vicuna_v1", "llava_v1", "llama_2", "mistral_instruct"])
@pytest.mark.parametrize("images", [0, 1, 2])
def test_generation_prompt_is_llavas_prompt_with_the_answer_left_open(name, images):
  """LLaVA's get_prompt for one user message (the images in front, then a newline; no image: the
  query alone), the assistant's role open ("ASSISTANT:" for the 'two' style, nothing after
  "[/INST]" for llama_2's); llama_2's system block ends in two newlines."""
  conv = CONVERSATIONS[name]
  message = (T.IMAGE * images + "\n" if images else "") + "What is AC?\n"
  want = ref_get_prompt(conv.sep_style, conv.system, conv.roles, conv.sep, conv.sep2,
                        [(conv.roles[0], message)])
  if conv.sep_style == "TWO":
    want += conv.roles[1] + ":"
  assert T.generation_prompt("What is AC?\n", T.get(name), images) == want


def test_the_plain_generation_prompt_is_its_images():
  assert T.generation_prompt("q", T.get("plain"), 2) == T.IMAGE * 2


# ---- image.py: transparency and the square canvas

def _premultiplied(mode: str) -> tuple[Image.Image, Image.Image]:
  """(image in `mode` RGBa or La, its straight-alpha twin RGBA or LA): a clear background whose
  colour is black, black strokes, and a half-transparent grey (127 at alpha 128, stored
  premultiplied as 64)."""
  bands = 3 if mode == "RGBa" else 1
  straight = np.zeros((8, 8, bands + 1), np.uint8)
  straight[4, :, bands] = 255                     # a black stroke
  straight[6, :, :bands], straight[6, :, bands] = 127, 128
  premult = straight.copy()
  premult[..., :bands] = (straight[..., :bands].astype(int) * straight[..., bands:] + 127) // 255
  size = (8, 8)
  return (Image.frombytes(mode, size, premult.tobytes()),
          Image.frombytes("RGBA" if bands == 3 else "LA", size, straight.tobytes()))


@pytest.mark.parametrize("mode", ["RGBa", "La"])
def test_premultiplied_alpha_is_flattened_onto_white(mode):
  """RGBa and La carry their alpha in a band named "a": the clear background turns white as in
  the straight-alpha twin (transformers' convert_to_rgb, which knows only "A"), not the black of
  .convert("RGB"). Pillow has no La -> RGBA conversion: to_rgb raised ValueError on La."""
  image, straight = _premultiplied(mode)
  assert I.has_transparency(image)
  want = convert_to_rgb(straight, return_numpy=True)
  np.testing.assert_array_equal(np.asarray(I.to_rgb(image)), want)
  assert (want[0] == 255).all() and (want[4] == 0).all() and (want[6] < 255).all()


@pytest.mark.parametrize("w, h", [(7, 4), (4, 7), (9, 2), (5, 5)])
def test_expand_to_square_is_llavas_expand2square(w, h):
  """An odd difference of sides puts the extra row or column of canvas after the image (offset
  rounded down), as LLaVA's expand2square."""
  a = np.random.default_rng(w * 10 + h).integers(0, 256, (h, w, 3), dtype=np.uint8)
  image, fill = Image.fromarray(a), (122, 116, 104)
  np.testing.assert_array_equal(np.asarray(I.expand_to_square(image, fill)),
                                np.asarray(expand2square(image, fill)))


# ---- image.py: the augmentation spec

@pytest.mark.parametrize("spec, want", [
    ("blur, noise=0.5", {"blur": 1.0, "noise": 0.5}), (" lowres =0.25,", {"lowres": 0.25}),
    ("", {}), ("noise=1", {"noise": 1.0})])
def test_parse_augment_reads_spaces_and_bare_kinds(spec, want):
  assert I.parse_augment(spec) == want


@pytest.mark.parametrize("spec, message", [
    ("blur=0", r"in \(0, 1\]"), ("blur=-0.5", r"in \(0, 1\]"), ("blur=1.00000005", r"in \(0, 1\]"),
    ("blur=0.3,blur=0.5", "'blur' is given twice")])
def test_parse_augment_refuses_probabilities_outside_0_1_and_repeats(spec, message):
  """Probability 0 would be a kind named but never applied; a kind given twice kept the last
  probability and dropped the first without a word."""
  with pytest.raises(ValueError, match=message):
    I.parse_augment(spec)


class ScriptedRng:
  """Stands in for np.random.Generator: `random(2)` hands out the given pairs in turn, `normal`
  records its scale and shape and returns `noise` everywhere."""

  def __init__(self, pairs, noise=0.0):
    self.pairs, self.noise, self.normal_calls = list(pairs), noise, []

  def random(self, n):
    assert n == 2
    return np.asarray(self.pairs.pop(0))

  def normal(self, loc, scale, size):
    self.normal_calls.append((loc, scale, size))
    return np.full(size, self.noise)


ON, OFF = 0.0, 0.99


def _picture(w=40, h=24) -> np.ndarray:
  return np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pil(pixels):
  return Image.fromarray(pixels)


@pytest.mark.parametrize("u, side", [(0.0, 0.25), (1.0, 0.5)])
def test_lowres_goes_down_to_a_quarter_or_a_half_of_each_side_bilinear_and_up_bicubic(u, side):
  """The draws come in the order lowres, blur, noise, two each (first: on or off; second: how
  strong); each kind draws whether on or not, so its draws stay put when another is switched."""
  px = _picture()
  out = I.augment(px, {"lowres": 0.5, "blur": 0.5, "noise": 0.5},
                  ScriptedRng([(ON, u), (OFF, 0.0), (OFF, 0.0)]))
  small = _pil(px).resize((round(40 * side), round(24 * side)), Image.Resampling.BILINEAR)
  np.testing.assert_array_equal(out, np.asarray(small.resize((40, 24),
                                                             Image.Resampling.BICUBIC)))


@pytest.mark.parametrize("u, radius", [(0.0, 0.5), (1.0, 2.0)])
def test_blur_radius_runs_from_half_a_pixel_to_two(u, radius):
  from PIL import ImageFilter
  px = _picture()
  out = I.augment(px, {"noise": 0.5, "blur": 0.5}, ScriptedRng([(ON, 0.0), (ON, u), (OFF, 0.0)]))
  np.testing.assert_array_equal(out, np.asarray(_pil(px).filter(ImageFilter.GaussianBlur(radius))))


@pytest.mark.parametrize("u, sigma", [(0.0, 4.0), (1.0, 16.0)])
def test_noise_sigma_runs_from_4_to_16_per_pixel_and_channel(u, sigma):
  rng = ScriptedRng([(OFF, 0.0), (OFF, 0.0), (ON, u)])
  px = _picture()
  out = I.augment(px, {"noise": 0.5}, rng)
  assert rng.normal_calls == [(0.0, sigma, px.shape)]
  np.testing.assert_array_equal(out, px)


def test_noise_rounds_to_the_nearest_level_and_clips_at_0_and_255():
  """+0.6 is one level up, not truncated; +100 on 200 is 255, not 300 wrapped round to 44."""
  px = np.array([[[200, 10, 254]]], np.uint8)
  out = I.augment(px, {"noise": 1.0}, ScriptedRng([(0.5, 0.5)] * 3, noise=0.6))
  assert out.tolist() == [[[201, 11, 255]]]
  out = I.augment(px, {"noise": 1.0}, ScriptedRng([(0.5, 0.5)] * 3, noise=100.0))
  assert out.tolist() == [[[255, 110, 255]]]
  out = I.augment(px, {"noise": 1.0}, ScriptedRng([(0.5, 0.5)] * 3, noise=-100.0))
  assert out.tolist() == [[[100, 0, 154]]]


def test_lowres_of_a_two_pixel_image_keeps_one_pixel():
  """round(2 * 0.25) is 0: the small side is held at one pixel, not a zero-size resize."""
  px = _picture(2, 2)
  out = I.augment(px, {"lowres": 1.0}, ScriptedRng([(ON, 0.0), (OFF, 0.0), (OFF, 0.0)]))
  assert out.shape == (2, 2, 3)


def test_a_kind_switched_on_or_off_leaves_the_others_draws():
  """Noise from seed 5 is the same whether blur and lowres are named (and off) or not: every
  kind takes its two draws from the stream in the fixed order."""
  px = _picture()
  alone = I.augment(px, {"noise": 1.0}, np.random.default_rng(5))
  draws = np.random.default_rng(5).random(6)
  off = {"lowres": draws[0] / 2, "blur": draws[2] / 2, "noise": 1.0}   # both named, both off
  np.testing.assert_array_equal(I.augment(px, off, np.random.default_rng(5)), alone)
  assert not np.array_equal(alone, px)
