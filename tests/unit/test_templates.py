"""Templates and label masks against a port of LLaVA's reference `preprocess`, token by token, on
a Llama tokenizer built from a SentencePiece model trained here."""

import copy

import numpy as np
import pytest
import sentencepiece as spm
from transformers import LlamaTokenizer

from benchmarks.llava_reference import CONVERSATIONS, IGNORE, ref_preprocess
from mathvlm.data import templates as T

CORPUS = [
    T.VICUNA_SYSTEM, T.LLAMA2_SYSTEM,
    "USER: What is the area of the triangle? ASSISTANT: The area is 24 square units.",
    "In triangle ABC, angle C is 90 degrees, AB = 13 and BC = 5. Find AC. The answer is 12.",
    "[INST] <<SYS>> Describe the diagram. [/INST] A circle with center O and radius 3.",
] * 20


@pytest.fixture(scope="module", params=[False, True], ids=["nonlegacy", "legacy"])
def tokenizer(request, tmp_path_factory):
  d = tmp_path_factory.mktemp("spm")
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(CORPUS), model_prefix=str(d / "tokenizer"), vocab_size=400,
      model_type="bpe", character_coverage=1.0, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
      byte_fallback=True, split_digits=True, minloglevel=2)
  tok = LlamaTokenizer.from_pretrained(str(d), legacy=request.param, add_bos_token=True)
  tok.pad_token = tok.unk_token  # as LLaVA sets it for Vicuna
  return tok


# ---- conversations

ONE = [{"from": "human", "value": "What is the area of the triangle?\n<image>"},
       {"from": "gpt", "value": "The area is 24 square units."}]
MULTI = [{"from": "human", "value": "<image>\nIn triangle ABC, angle C is 90 degrees. Find AC."},
         {"from": "gpt", "value": "AC = 12."},
         {"from": "human", "value": "And the area?"},
         {"from": "gpt", "value": "The area is 30 square units."},
         {"from": "human", "value": "Describe the diagram."},
         {"from": "gpt", "value": "A right triangle ABC with the right angle at C."}]
CAPTION = [{"from": "human", "value": "<image>\nDescribe the diagram."},
           {"from": "gpt", "value": "A circle with center O and radius 3."}]


def _ours(conv, name, tok):
  prompt, spans = T.render(conv, T.get(name))
  return T.tokenize(prompt, spans, tok)


@pytest.mark.parametrize("name,conv", [
    ("vicuna_v1", ONE), ("vicuna_v1", MULTI), ("llama_2", ONE), ("llama_2", MULTI),
    ("mistral_instruct", ONE), ("mistral_instruct", MULTI), ("plain", CAPTION)])
def test_ids_and_masks_equal_llava_reference(tokenizer, name, conv):
  ids, labels = ref_preprocess(conv, name, tokenizer)
  assert any(x != IGNORE for x in labels), "the reference itself mismatched on a normal case"
  ours_ids, ours_mask = _ours(conv, name, tokenizer)
  assert ours_ids.tolist() == ids
  assert ours_mask.tolist() == [x != IGNORE for x in labels]


@pytest.mark.parametrize("name", sorted(T.TEMPLATES))
def test_system_prompts_roles_and_separators_are_llavas_strings(name):
  """Ours against LLaVA's literal strings (llava/conversation.py, copied into the reference): the
  token-by-token test above renders the reference with its own system prompt, so a wrong one of
  ours fails there too, but this names the field."""
  assert name in CONVERSATIONS, f"copy LLaVA's conversation for {name!r} into llava_reference"
  ours, llava = T.get(name), CONVERSATIONS[name]
  styles = {"two": "TWO", "llama_2": "LLAMA_2", "plain": "PLAIN"}
  assert ours.system == llava.system
  assert (ours.roles, styles[ours.style], ours.sep) == (llava.roles, llava.sep_style, llava.sep)
  assert llava.sep2 is None or ours.sep2 == llava.sep2  # plain's second separator is unused


def _target_text(ids, mask, tok):
  return tok.decode([int(i) for i, m in zip(ids, mask) if m and i >= 0])


def test_separator_inside_a_user_turn(tokenizer):
  """A user turn quoting the separator: LLaVA's split finds three parts, gives up and masks the
  whole example ("tokenization mismatch"); ours trains exactly the answer."""
  conv = [{"from": "human", "value": "<image>\nA student wrote ASSISTANT: 7. Is it right?"},
          {"from": "gpt", "value": "No, the answer is 8."}]
  ref_ids, labels = ref_preprocess(conv, "vicuna_v1", tokenizer)
  assert all(x == IGNORE for x in labels)
  ids, mask = _ours(conv, "vicuna_v1", tokenizer)
  assert ids.tolist() == ref_ids
  assert _target_text(ids, mask, tokenizer).replace(" </s>", "</s>") == "No, the answer is 8.</s>"
  assert "student" not in _target_text(ids, mask, tokenizer)


def test_truncation_keeps_images_whole_and_counts_drops(tokenizer):
  kw = dict(image_token_id=399, image_seq_len=16)
  full = T.encode(MULTI, T.get("vicuna_v1"), tokenizer, max_len=4096, **kw)
  assert full.num_images == 1 and int(np.sum(full.input_ids == 399)) == 16
  image_end = int(np.flatnonzero(full.input_ids == 399)[-1]) + 1
  first_answer_end = int(np.flatnonzero(full.loss_mask)[0]) + 3
  cut = T.encode(MULTI, T.get("vicuna_v1"), tokenizer, max_len=first_answer_end, **kw)
  assert len(cut.input_ids) == first_answer_end
  assert cut.loss_mask.tolist() == full.loss_mask[:first_answer_end].tolist()
  with pytest.raises(T.DropExample) as e:
    T.encode(MULTI, T.get("vicuna_v1"), tokenizer, max_len=image_end - 1, **kw)
  assert e.value.reason == "image_truncated"
  with pytest.raises(T.DropExample) as e:
    T.encode(MULTI, T.get("vicuna_v1"), tokenizer, max_len=image_end + 2, **kw)
  assert e.value.reason == "no_targets"


def test_bad_conversations_are_named():
  with pytest.raises(T.BadConversation, match="turn 1 is from 'human'"):
    T.render([{"from": "human", "value": "a"}, {"from": "human", "value": "b"}],
             T.get("vicuna_v1"))
  with pytest.raises(T.BadConversation, match="end with a gpt turn"):
    T.render([{"from": "human", "value": "a"}], T.get("vicuna_v1"))
  with pytest.raises(ValueError, match="unknown conversation template 'chatml'"):
    T.get("chatml")


@pytest.mark.parametrize("name", ["vicuna_v1", "llama_2", "mistral_instruct"])
@pytest.mark.parametrize("answer", ["8", "12.5", "(A) 30"])
def test_an_answer_whose_space_is_its_own_token_masks_as_llava(tokenizer, name, answer):
  """Llama splits digits and bytes from the space before them ("▁", "8"): LLaVA's targets start
  at that "▁" (right after "ASSISTANT:" / "[/INST]"), not one token later. MathV360K's answers
  are often bare numbers."""
  conv = [{"from": "human", "value": "<image>\nWhat is AC?"}, {"from": "gpt", "value": answer}]
  ids, labels = ref_preprocess(conv, name, tokenizer)
  ours_ids, ours_mask = _ours(conv, name, tokenizer)
  assert ours_ids.tolist() == ids
  assert ours_mask.tolist() == [x != IGNORE for x in labels]


def test_text_that_tokenizes_to_the_image_token_is_dropped_by_name(tokenizer):
  """A preset whose image token is a vocabulary token (mavis-7b reads id 31999 as the image, a
  token of Mistral's 32,000) would put image features over that text token: the example is
  dropped, counted under its reason, instead of trained on so."""
  ids, _ = _ours(ONE, "vicuna_v1", tokenizer)
  text_token = int(ids[ids >= 0][5])
  with pytest.raises(T.DropExample) as e:
    T.encode(ONE, T.get("vicuna_v1"), tokenizer, image_token_id=text_token, image_seq_len=4,
             max_len=4096)
  assert e.value.reason == "image_token_in_text" and str(text_token) in str(e.value)
  T.encode(ONE, T.get("vicuna_v1"), tokenizer, image_token_id=399, image_seq_len=4, max_len=4096)


def test_cut_says_whether_answer_tokens_fell_beyond_max_len(tokenizer):
  """At exactly its length an example loses nothing; one token shorter and it loses its last
  target (the answer's end token), which the input pipeline counts as `answer_truncated`."""
  kw = dict(image_token_id=399, image_seq_len=4)
  full = T.encode(ONE, T.get("vicuna_v1"), tokenizer, max_len=4096, **kw)
  n = len(full.input_ids)
  whole = T.encode(ONE, T.get("vicuna_v1"), tokenizer, max_len=n, **kw)
  assert not full.cut and not whole.cut and whole.input_ids.tolist() == full.input_ids.tolist()
  short = T.encode(ONE, T.get("vicuna_v1"), tokenizer, max_len=n - 1, **kw)
  assert short.cut and short.loss_mask.tolist() == full.loss_mask[:n - 1].tolist()


@pytest.mark.parametrize("name", ["vicuna_v1", "llama_2", "mistral_instruct"])
@pytest.mark.parametrize("who", [0, 1])
def test_the_end_marker_in_a_turn_is_refused_by_name(name, who):
  """"</s>" in a turn's text tokenizes to the end token: in an answer it would be a target mid-
  answer (the model learns to stop there); LLaVA's round split breaks on it and masks the example
  whole. Refused, counted under its own reason, not trained another way."""
  conv = copy.deepcopy(ONE)
  conv[who]["value"] += " Done.</s> More."
  with pytest.raises(T.DropExample) as e:
    T.render(conv, T.get(name))
  assert e.value.reason == "end_token_in_text" and f"turn {who}" in str(e.value)


@pytest.mark.parametrize("name", ["vicuna_v1", "mistral_instruct", "plain"])
def test_an_empty_turn_is_a_bad_conversation(name):
  """LLaVA writes an empty message as a bare "ASSISTANT:" without the end token and masks the
  example; rendered as any other turn, an empty answer would train " </s>" alone."""
  for conv in ([{"from": "human", "value": "<image>\nWhat is AC?"}, {"from": "gpt", "value": ""}],
               [{"from": "human", "value": "<image>\nWhat is AC?"},
                {"from": "gpt", "value": " \n"}]):
    with pytest.raises(T.BadConversation, match="turn 1 \\(gpt\\) is empty"):
      T.render(conv, T.get(name))
  later = copy.deepcopy(MULTI)
  later[2]["value"] = ""
  with pytest.raises(T.BadConversation, match="turn 2 \\(human\\) is empty"):
    T.render(later, T.get("vicuna_v1"))


def test_the_input_pipeline_counts_refused_turns_by_reason():
  """The refusals reach data_report.json as counted drops (a reason outside records.REASONS would
  stop the run instead), the example's slot kept with no loss."""
  import json

  from transformers import PreTrainedTokenizerFast

  from mathvlm.data.conversations import ConversationSource
  from mathvlm.demo.data import add_bos, train_tokenizer
  raw = train_tokenizer(["USER: What is AC? ASSISTANT: The answer is 12."] * 5, 300)
  add_bos(raw)
  tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>",
                                pad_token="<pad>", unk_token="<unk>")
  answers = ["The answer is 12.", "The answer is 12.</s> Done.", ""]
  records = [{"image": b"", "conversations": json.dumps(
      [{"from": "human", "value": "What is AC?"}, {"from": "gpt", "value": a}])} for a in answers]
  src = ConversationSource(records, tokenizer=tok, template="vicuna_v1", image_size=8,
                           image_token_id=3, image_seq_len=4, max_len=512)
  masks = [int(src[i]["loss_mask"].sum()) for i in range(3)]
  assert masks[0] > 0 and masks[1:] == [0, 0], src.dropped
  assert src.dropped == {"end_token_in_text": 1, "bad_conversation": 1}
