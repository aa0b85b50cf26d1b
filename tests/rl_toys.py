"""Problem streams and rewards for RL tests, named by import path in configs (`rl_toys:...`)."""

import dataclasses
import zlib

QUESTION = "Say a number."


class NumberStream:
  """Text-only prompts (no image) whose answer is 7 whatever the question: the optimal policy is
  known (always say 7), and a reward for one token is all there is to learn. Records in the
  engine's format (MAVIS-Geometry fields), as `data_prep.engine.online` makes them."""
  levels = 3

  def __init__(self, seed: int = 0):
    self.seed = seed

  def records(self, indices, level):
    return [({"id": f"q{i}", "answer": "7", "choices": [],
              "text_en": {"text_lite_question": f"{QUESTION} ({level})"}}, {})
            for i in indices]


def says_seven(response: str, problem: dict) -> float:
  del problem
  return 1.0 if response.strip().startswith("7") else 0.0


def digit_share(response: str, problem: dict) -> float:
  """A dense reward (every answer earns some): the share of its characters that are digits."""
  del problem
  text = response.replace(" ", "")
  return sum(ch.isdigit() for ch in text) / max(len(text), 1)


class HalfSolvedStream(NumberStream):
  """NumberStream in which every even index is a problem already solved: `solved_or_distinct`
  gives any answer to it the same reward, so its group's rewards are all equal (no gradient: what
  DAPO's dynamic sampling replaces), while odd ones get a reward that differs between any two
  different answers. Refills ask for indices 10**9, 10**9 + 1, ... (on any process count):
  solved, unsolved, solved, ..."""

  def records(self, indices, level):
    return [({"id": f"{'solved' if i % 2 == 0 else 'open'}{i}", "answer": "7", "choices": [],
              "text_en": {"text_lite_question": f"{QUESTION} ({level})"}}, {})
            for i in indices]


def solved_or_distinct(response: str, problem: dict) -> float:
  """1 for a solved problem's answers; else a checksum of the answer in [0, 1), the same on every
  process (unlike Python's hash), so a group's rewards are equal only if its answers are."""
  if problem["group"].startswith("solved"):
    return 1.0
  return zlib.crc32(response.encode()) / 2 ** 32


class PictureStream(HalfSolvedStream):
  """HalfSolvedStream whose questions come with a picture in a colour of the index's own, so that
  a prompt's pixels name its problem (the plain template keeps the image alone)."""

  def records(self, indices, level):
    out = []
    for i, (record, _) in zip(indices, super().records(indices, level)):
      record["image_text_lite"] = f"{i}.png"
      out.append((record, {f"{i}.png": _picture(i)}))
    return out


def _picture(index: int) -> bytes:
  import io

  from PIL import Image
  code = zlib.crc32(str(index).encode())
  buf = io.BytesIO()
  Image.new("RGB", (8, 8), (code & 255, code >> 8 & 255, code >> 16 & 255)).save(buf, "PNG")
  return buf.getvalue()


VERSION_QUESTIONS = {"text_dominant": "Say a number . ( {i} ) The answer is a number .",
                     "text_lite": "Say a number ( {i} )", "vision_dominant": "( {i} )"}


class VersionStream(NumberStream):
  """Records with all three question versions (MAVIS's text-dominant, text-lite and
  vision-dominant), each naming its index so that a prompt shows which problem it asks."""

  def records(self, indices, level):
    return [({"id": f"p{i}", "answer": "7", "choices": [],
              "text_en": {f"{v}_question": q.format(i=i) for v, q in VERSION_QUESTIONS.items()}},
             {}) for i in indices]


def toy_text(text, vocab_size: int):
  """A tiny preset's text config fitted to `word_tokenizer`: its vocabulary, and its `</s>` as
  the end id. The preset's eos 2 is `<unk>` here, which would end a response too (`run.Encoder`
  ends on the config's ids and the tokenizer's `</s>`, as transformers ends on the config's)."""
  from mathvlm.demo.data import SPECIALS
  return dataclasses.replace(text, vocab_size=vocab_size, eos_token_id=SPECIALS.index("</s>"))


def word_tokenizer(path: str) -> str:
  """A word-level tokenizer.json of 40 ids (the specials, the toys' words, the numbers 0..25) at
  `path`: one id in 40 is "7" at the start, so a random policy finds the reward in a few groups of
  8 (a byte-level vocabulary of 280 left it to luck whether any sample ever did)."""
  from tokenizers import Tokenizer, models, pre_tokenizers

  from mathvlm.demo.data import SPECIALS, add_bos
  words = list(SPECIALS) + "Say a number . ( ) The answer is".split() + [str(k) for k in range(26)]
  tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  add_bos(tok)
  tok.save(path)
  return path


def judged_digits(response: str, problem: dict):
  """1.0 or 0.0 where the answer holds a digit, else None: a function that cannot judge a wordy
  answer, which a reward may not say with a NaN (`mathvlm.rl.rewards`)."""
  del problem
  if not any(ch.isdigit() for ch in response):
    return None
  return float(response.strip().startswith("7"))
