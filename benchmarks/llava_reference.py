"""A port of LLaVA's data path (llava/conversation.py, llava/mm_utils.py, llava/train/train.py):
`tokenizer_image_token`, `preprocess_multimodal`, `get_prompt` and `preprocess_v1/llama_2/plain`
with their length arithmetic, plus a `LazySupervisedDataset`-style loader. It is the reference the
template tests compare against token by token, and the baseline the loader benchmark races.

The conversations (system prompt, roles, separators) are LLaVA's own strings, copied here, not
read from `mathvlm.data.templates`: a reference that took ours could not catch a wrong one.
"""

import copy
import json
import os
from typing import NamedTuple

IGNORE = -100


class Conversation(NamedTuple):
  """The fields of LLaVA's `Conversation` that `preprocess` reads."""
  system: str
  roles: tuple[str, str]
  sep_style: str  # LLaVA's SeparatorStyle name
  sep: str
  sep2: str | None


# llava/conversation.py of haotian-liu/LLaVA at c121f0432da27facab705978f83c4ada465e46fd,
# literally; keyed by our template names (our `llama_2` is LLaVA's `llava_llama_2`).
CONVERSATIONS = {
    "vicuna_v1": Conversation(  # conv_vicuna_v1
        system="A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions.",
        roles=("USER", "ASSISTANT"), sep_style="TWO", sep=" ", sep2="</s>"),
    "llava_v1": Conversation(  # conv_llava_v1
        system="A chat between a curious human and an artificial intelligence assistant. "
               "The assistant gives helpful, detailed, and polite answers to the human's "
               "questions.",
        roles=("USER", "ASSISTANT"), sep_style="TWO", sep=" ", sep2="</s>"),
    "llama_2": Conversation(  # conv_llava_llama_2
        system="You are a helpful language and vision assistant. "
               "You are able to understand the visual content that the user provides, "
               "and assist the user with a variety of tasks using natural language.",
        roles=("USER", "ASSISTANT"), sep_style="LLAMA_2", sep="<s>", sep2="</s>"),
    "mistral_instruct": Conversation(  # conv_mistral_instruct
        system="", roles=("USER", "ASSISTANT"), sep_style="LLAMA_2", sep="", sep2="</s>"),
    "plain": Conversation(  # conv_llava_plain
        system="", roles=("", ""), sep_style="PLAIN", sep="\n", sep2=None),
}

def ref_tokenizer_image_token(prompt, tokenizer, image_token_index=-200):
  chunks = [tokenizer(c).input_ids for c in prompt.split("<image>")]
  sep = lambda X, s: [e for sub in zip(X, [s] * len(X)) for e in sub][:-1]
  ids, offset = [], 0
  if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
    offset = 1
    ids.append(chunks[0][0])
  for x in sep(chunks, [image_token_index] * (offset + 1)):
    ids.extend(x[offset:])
  return ids


def ref_preprocess_multimodal(source):
  source = copy.deepcopy(source)
  for s in source:
    if "<image>" in s["value"]:
      s["value"] = ("<image>\n" + s["value"].replace("<image>", "").strip()).strip()
  return source


def ref_get_prompt(style, system, roles, sep, sep2, messages):
  if style == "TWO":
    seps, ret = [sep, sep2], system + sep
    for i, (role, message) in enumerate(messages):
      ret += role + ": " + message + seps[i % 2]
    return ret
  wrap_sys = lambda m: f"<<SYS>>\n{m}\n<</SYS>>\n\n" if len(m) > 0 else m
  ret = ""
  for i, (role, message) in enumerate(messages):
    if i == 0:
      message = wrap_sys(system) + message
    if i % 2 == 0:
      ret += sep + f"[INST] {message} [/INST]"
    else:
      ret += " " + message + " " + sep2
  return ret.lstrip(sep)


def ref_preprocess(source, name, tokenizer):
  """(input_ids, labels) as LLaVA's preprocess_v1 / preprocess_llama_2 / preprocess_plain."""
  t = CONVERSATIONS[name]
  source = ref_preprocess_multimodal(source)
  if t.sep_style == "PLAIN":
    source[0]["value"] = "<image>"
    conversation = source[0]["value"] + source[1]["value"] + t.sep
    ids = ref_tokenizer_image_token(conversation, tokenizer)
    labels = list(ids)
    n = len(ref_tokenizer_image_token(source[0]["value"], tokenizer))
    labels[:n] = [IGNORE] * n
    return ids, labels
  roles = {"human": t.roles[0], "gpt": t.roles[1]}
  conversation = ref_get_prompt(t.sep_style, t.system, t.roles, t.sep, t.sep2,
                                [(roles[s["from"]], s["value"]) for s in source])
  ids = ref_tokenizer_image_token(conversation, tokenizer)
  labels = list(ids)
  sep = (t.sep + t.roles[1] + ": ") if t.sep_style == "TWO" else "[/INST] "
  total_len = sum(1 for x in ids if x != tokenizer.pad_token_id)
  rounds = conversation.split(t.sep2)
  cur_len = 1
  labels[:cur_len] = [IGNORE] * cur_len
  for i, rou in enumerate(rounds):
    if rou == "":
      break
    parts = rou.split(sep)
    if len(parts) != 2:
      break
    parts[0] += sep
    round_len = len(ref_tokenizer_image_token(rou, tokenizer))
    instruction_len = len(ref_tokenizer_image_token(parts[0], tokenizer)) - 2
    if t.sep_style == "TWO" and i != 0 and not tokenizer.legacy:  # only preprocess_v1 has this fix
      round_len -= 1
      instruction_len -= 1
    labels[cur_len:cur_len + instruction_len] = [IGNORE] * max(instruction_len, 0)
    cur_len += round_len
  labels[cur_len:] = [IGNORE] * max(len(labels) - cur_len, 0)
  if cur_len != total_len:  # LLaVA's "tokenization mismatch": the whole example is ignored
    labels = [IGNORE] * len(labels)
  return ids, labels




def expand2square(image, background):
  from PIL import Image
  w, h = image.size
  if w == h:
    return image
  side = max(w, h)
  out = Image.new(image.mode, (side, side), background)
  out.paste(image, ((side - w) // 2, (side - h) // 2))
  return out


class LazySupervisedDataset:
  """LLaVA's training dataset: the JSON list in memory; each item opens its image file, pads it
  to a square, runs CLIPImageProcessor and LLaVA's preprocess (template + round re-tokenising)."""

  def __init__(self, json_path, image_folder, tokenizer, processor, template="vicuna_v1"):
    with open(json_path) as f:
      self.items = json.load(f)
    self.folder, self.tokenizer, self.processor, self.template = (
        image_folder, tokenizer, processor, template)

  def __len__(self):
    return len(self.items)

  def __getitem__(self, i):
    import torch
    from PIL import Image
    src = self.items[i]
    image = Image.open(os.path.join(self.folder, src["image"])).convert("RGB")
    image = expand2square(image, tuple(int(x * 255) for x in self.processor.image_mean))
    pixels = self.processor.preprocess(image, return_tensors="pt")["pixel_values"][0]
    ids, labels = ref_preprocess(src["conversations"], self.template, self.tokenizer)
    return dict(input_ids=torch.tensor(ids), labels=torch.tensor(labels), image=pixels)


def collate(instances, pad_id):
  """LLaVA's DataCollatorForSupervisedDataset: pad ids and labels, stack images."""
  import torch
  ids = torch.nn.utils.rnn.pad_sequence([x["input_ids"] for x in instances], batch_first=True,
                                        padding_value=pad_id)
  labels = torch.nn.utils.rnn.pad_sequence([x["labels"] for x in instances], batch_first=True,
                                           padding_value=IGNORE)
  return dict(input_ids=ids, labels=labels, attention_mask=ids.ne(pad_id),
              images=torch.stack([x["image"] for x in instances]))
