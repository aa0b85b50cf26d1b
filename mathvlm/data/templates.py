"""Conversation templates and label masks, token for token as LLaVA's `preprocess` builds them.

The prompt string is LLaVA's `Conversation.get_prompt()` and the token ids are its
`tokenizer_image_token` (each chunk between `<image>` tokens tokenised on its own, BOS kept only on
the first). The label mask is where this differs in method, not in result: LLaVA recovers the
assistant spans by re-tokenising each round and counting (`round_len`, `instruction_len - 2`,
`-1` for non-legacy tokenizers), which breaks, and silently masks the whole example ("tokenization
mismatch"), when a turn (the user's or the answer) contains the separator (" ASSISTANT: ",
"[/INST] "), when the tokenizer merges across a round boundary, or when the conversation is
truncated. Here the renderer records the character span of every assistant message (with its
closing separator) and a token is a target when its character offsets overlap such a span: the same
mask wherever LLaVA's arithmetic holds, and still right where it does not. Two kinds of turn LLaVA
also cannot use are refused here rather than trained another way: an empty turn (LLaVA's get_prompt
writes a bare "ASSISTANT:" with no end token for it) and a turn holding the end marker "</s>" (it
tokenizes to the end token: as a target mid-answer it would teach the model to stop there).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

IMAGE = "<image>"
IMAGE_PLACEHOLDER = -200  # LLaVA's IMAGE_TOKEN_INDEX, before expansion to the model's image tokens

# LLaVA's conv_vicuna_v1 (`--version v1`, what LLaVA-1.5 and Math-LLaVA train with) says "user";
# its conv_llava_v1 says "human". Otherwise the two are the same template.
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's "
                 "questions.")
LLAVA_V1_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                   "The assistant gives helpful, detailed, and polite answers to the human's "
                   "questions.")
# Ours `llama_2` is LLaVA's `llava_llama_2` (conv_llava_llama_2, what the LLaVA-LLaMA-2 checkpoints
# train with); LLaVA's own `llama_2` name carries Llama-2-chat's safety system prompt instead.
LLAMA2_SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the "
                 "visual content that the user provides, and assist the user with a variety of "
                 "tasks using natural language.")


@dataclasses.dataclass(frozen=True)
class Template:
  name: str
  style: str                 # 'two' (vicuna_v1), 'llama_2' (also mistral_instruct), 'plain'
  system: str = ""
  roles: tuple[str, str] = ("USER", "ASSISTANT")
  sep: str = " "
  sep2: str = "</s>"


TEMPLATES = {
    "vicuna_v1": Template("vicuna_v1", "two", VICUNA_SYSTEM, sep=" ", sep2="</s>"),
    "llava_v1": Template("llava_v1", "two", LLAVA_V1_SYSTEM, sep=" ", sep2="</s>"),
    "llama_2": Template("llama_2", "llama_2", LLAMA2_SYSTEM, sep="<s>", sep2="</s>"),
    "mistral_instruct": Template("mistral_instruct", "llama_2", "", sep="", sep2="</s>"),
    "plain": Template("plain", "plain", "", roles=("", ""), sep="\n", sep2=""),
}


def get(name: str) -> Template:
  if name not in TEMPLATES:
    raise ValueError(f"unknown conversation template {name!r}; choose one of {sorted(TEMPLATES)}")
  return TEMPLATES[name]


class BadConversation(ValueError):
  """A conversation the template cannot render; the message says which rule it breaks."""


def _turn_list(conversations) -> list:
  """The turns as a list, from the list or its JSON text. A record that is not a JSON list (cut
  short, an object, a turn's value a number) is a BadConversation, which the pipeline counts as
  `bad_conversation`, rather than a bare JSONDecodeError or AttributeError that ends the run."""
  if isinstance(conversations, (str, bytes)):
    try:
      conversations = json.loads(conversations)
    except ValueError as e:
      raise BadConversation(f"the conversation is not JSON ({e})") from None
  if not isinstance(conversations, list):
    raise BadConversation(f"the conversation is a {type(conversations).__name__}, not a list of "
                          "turns")
  return conversations


def normalise_turns(conversations) -> list[tuple[str, str]]:
  """[(role 'human'|'gpt', text)] from LLaVA's list (or its JSON), with LLaVA's
  `preprocess_multimodal`: a single `<image>` moves to the front of its turn, then a newline."""
  turns = []
  for i, turn in enumerate(_turn_list(conversations)):
    if not isinstance(turn, dict) or not isinstance(turn.get("value") or "", str):
      raise BadConversation(f"turn {i} is {turn!r:.80}: a turn is {{'from': str, 'value': str}}")
    who = turn.get("from")
    if who not in ("human", "gpt") or who != ("human", "gpt")[i % 2]:
      raise BadConversation(f"turn {i} is from {who!r}: turns must alternate human, gpt, ...")
    turns.append((who, turn.get("value") or ""))
  if not turns or turns[-1][0] != "gpt":
    raise BadConversation("a conversation must end with a gpt turn")
  if sum(text.count(IMAGE) for _, text in turns) == 1:
    turns = [(who, (IMAGE + "\n" + text.replace(IMAGE, "").strip()).strip() if IMAGE in text
              else text) for who, text in turns]
  return turns


def usable_turns(conversations, template: Template) -> list[tuple[str, str]]:
  """normalise_turns, less the turns LLaVA cannot train on either (an empty turn; the end marker in
  the text), refused by name: LLaVA masks such an example whole ("tokenization mismatch")."""
  turns = normalise_turns(conversations)
  for i, (who, text) in enumerate(turns):
    if not text.strip():
      raise BadConversation(f"turn {i} ({who}) is empty: the template has no rendering for it")
    if template.sep2 and template.sep2 in text:
      raise DropExample("end_token_in_text", f"turn {i} ({who}) holds {template.sep2!r}, the "
                        f"{template.name} template's end of turn, which tokenizes to the end token")
  return turns


def render(conversations, template: Template) -> tuple[str, list[tuple[int, int]]]:
  """(prompt, character spans the loss covers): LLaVA's get_prompt for the template's style."""
  turns = usable_turns(conversations, template)
  spans: list[tuple[int, int]] = []
  if template.style == "plain":  # alignment: the image, then the caption; the question is dropped
    if len(turns) != 2 or IMAGE not in turns[0][1]:
      raise BadConversation("the plain template wants one human turn with <image> and one answer")
    prompt = IMAGE
    spans.append((len(prompt), len(prompt) + len(turns[1][1]) + len(template.sep)))
    return prompt + turns[1][1] + template.sep, spans
  if template.style == "two":
    out = template.system + template.sep
    for who, text in turns:
      role = template.roles[who == "gpt"]
      out += role + ": "
      if who == "gpt":
        spans.append((len(out), len(out) + len(text) + len(template.sep2)))
        out += text + template.sep2
      else:
        out += text + template.sep
    return out, spans
  if template.style == "llama_2":
    out = ""
    for i, (who, text) in enumerate(turns):
      if i == 0 and template.system:
        text = f"<<SYS>>\n{template.system}\n<</SYS>>\n\n" + text
      if who == "human":
        out += template.sep + f"[INST] {text} [/INST]"
      else:
        spans.append((len(out) + 1, len(out) + 1 + len(text) + 1 + len(template.sep2)))
        out += " " + text + " " + template.sep2
    stripped = out.lstrip(template.sep) if template.sep else out
    shift = len(out) - len(stripped)
    return stripped, [(a - shift, b - shift) for a, b in spans]
  raise ValueError(f"unknown template style {template.style!r}")


def generation_prompt(query: str, template: Template, num_images: int = 1) -> str:
  """The prompt a model continues at evaluation: one human turn (images in front, as LLaVA moves
  them), then the assistant's role left open (LLaVA's get_prompt with an empty last message).
  The query goes in as written, as LLaVA's eval scripts pass a question (model_vqa.py: `<image>\n`
  and the text): a strip took off the closing newline that MATH-Vision's official CoT prompt
  (`geninput`) ends every question on."""
  text = (IMAGE * num_images + "\n" + query) if num_images else query
  if template.style == "plain":
    return IMAGE * num_images
  if template.style == "two":
    return (template.system + template.sep + template.roles[0] + ": " + text + template.sep
            + template.roles[1] + ":")
  if template.system:
    text = f"<<SYS>>\n{template.system}\n<</SYS>>\n\n" + text
  return f"[INST] {text} [/INST]"


def tokenize(prompt: str, spans: list[tuple[int, int]], tokenizer) -> tuple[np.ndarray, np.ndarray]:
  """(ids with IMAGE_PLACEHOLDER per image, boolean target mask), as `tokenizer_image_token`."""
  ids: list[int] = []
  targets: list[bool] = []
  offset = 0
  bos = tokenizer.bos_token_id
  # LLaVA's targets start right after the role's tokens ("ASSISTANT:", "[/INST]"), so the space
  # before an answer is a target too when the tokenizer makes it a token of its own (Llama's "▁"
  # before a digit or a byte: "▁", "8"), not only when it rides on the answer's first word.
  gaps = []
  for start, _ in spans:
    ws = start
    while ws > 0 and prompt[ws - 1] == " ":
      ws -= 1
    gaps.append((ws, start))
  for k, chunk in enumerate(prompt.split(IMAGE)):
    if k:
      ids.append(IMAGE_PLACEHOLDER)
      targets.append(False)
      offset += len(IMAGE)
    enc = tokenizer(chunk, return_offsets_mapping=True)
    pairs = list(zip(enc["input_ids"], enc["offset_mapping"]))
    if k and pairs and pairs[0][0] == bos:
      pairs = pairs[1:]
    for tid, (a, b) in pairs:
      a, b = a + offset, b + offset
      ids.append(tid)
      targets.append(b > a and (any(a < end and b > start for start, end in spans)
                                or any(ws <= a and b <= start for ws, start in gaps)))
    offset += len(chunk)
  return np.asarray(ids, np.int32), np.asarray(targets, bool)


@dataclasses.dataclass(frozen=True)
class Tokenized:
  input_ids: np.ndarray    # [T] int32, image tokens expanded
  loss_mask: np.ndarray    # [T] int32, 1 on target tokens
  num_images: int
  cut: bool = False        # answer tokens lay beyond max_len (the example trains on the rest)


class DropExample(ValueError):
  """An example that cannot be used as is; `reason` is what the pipeline counts."""

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason


def encode(conversations, template: Template, tokenizer, *, image_token_id: int,
           image_seq_len: int, max_len: int) -> Tokenized:
  """Template -> tokens -> image placeholders expanded to `image_seq_len` model image tokens ->
  truncated to `max_len`, never inside an image's tokens and never to zero targets; `cut` says
  whether answer tokens were lost (tokens of the prompt or template beyond max_len are not)."""
  prompt, spans = render(conversations, template)
  ids, targets = tokenize(prompt, spans, tokenizer)
  if (ids == image_token_id).any():  # the model would put image features there
    raise DropExample("image_token_in_text", f"the text holds token {image_token_id}, the "
                      "model's image token")
  images = int(np.sum(ids == IMAGE_PLACEHOLDER))
  if images:
    reps = np.where(ids == IMAGE_PLACEHOLDER, image_seq_len, 1)
    ids = np.repeat(np.where(ids == IMAGE_PLACEHOLDER, image_token_id, ids), reps)
    targets = np.repeat(targets, reps)
  cut = bool(targets[max_len:].any())  # answer tokens past max_len (none when it fits)
  if len(ids) > max_len:
    if images and np.flatnonzero(ids == image_token_id)[-1] >= max_len:
      raise DropExample("image_truncated", f"max_len={max_len} would cut into the image tokens "
                        f"({images} x {image_seq_len}; {len(ids)} tokens in all)")
    ids, targets = ids[:max_len], targets[:max_len]
  if not targets.any():
    raise DropExample("no_targets", f"no answer tokens within max_len={max_len}")
  return Tokenized(ids.astype(np.int32), targets.astype(np.int32), images, cut)
