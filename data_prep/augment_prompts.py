"""The prompts for Math-LLaVA's four augmentations, and reading the answers back.

Math-LLaVA asked GPT-4V for (FACTS.md): new questions about an image, few-shot with one example
question from each of 5 TF-IDF K-Means clusters of the image's source, up to 5 new pairs per
image written as "The question is ... The answer is ..."; and, per existing question, a harder
one needing more steps, a rephrasing with the same answer (logical consistency) and a
simplified, shorter one that leaves out what the image already shows (underspecification).
The paper does not publish its prompt texts: the wording below is OURS, written from that
description. Every kind asks for the same output form, so one parser reads them all.
"""

from __future__ import annotations

import re

KINDS = ("new", "harder", "rephrase", "simplify")
MAX_NEW = 5  # new pairs per image (the paper's "up to 5")
PLACEHOLDER = ("<question>", "<answer>")
FORM = f"The question is {PLACEHOLDER[0]} The answer is {PLACEHOLDER[1]}"

_NEW = """You are looking at an image from the {source} collection of math problems.
Here are example questions about other images of that collection, with their answers:

{examples}

The image already has this question:
The question is {question} The answer is {answer}

Write up to {n} new questions about THIS image that can be answered from it, different from the
question above and from each other, each with its correct answer. Vary what they ask (values,
relations, counts, calculations). Write each on its own line, exactly as:
{form}"""

_HARDER = """Here is a question about this image, with its answer:
The question is {question} The answer is {answer}

Write one harder question about the same image: one that needs more reasoning steps (for example
combining several quantities shown, or one more calculation), with its correct answer. Write it
exactly as:
{form}"""

_REPHRASE = """Here is a question about this image, with its answer:
The question is {question} The answer is {answer}

Rewrite the question in different words, keeping its meaning, so that its answer stays exactly
the same. Write it exactly as:
{form}
with the same answer."""

_SIMPLIFY = """Here is a question about this image, with its answer:
The question is {question} The answer is {answer}

Write a shorter, simplified version of the question: leave out the details that the image
already shows, so that the image is needed to answer it. Keep its answer. Write it exactly as:
{form}"""

TEMPLATES = {"new": _NEW, "harder": _HARDER, "rephrase": _REPHRASE, "simplify": _SIMPLIFY}


def prompt(kind: str, question: str, answer: str, source: str = "",
           examples: list[tuple[str, str]] = ()) -> str:
  """The request text for one kind (the image travels beside it)."""
  shots = "\n".join(f"The question is {q} The answer is {a}" for q, a in examples)
  return TEMPLATES[kind].format(question=one_line(question), answer=one_line(answer),
                                source=source, examples=shots or "(none)", n=MAX_NEW,
                                form=FORM)


def one_line(text: str) -> str:
  return " ".join(text.replace("<image>", " ").split())


# An answer ends where the next pair starts: at its "The question is" with a list mark before it
# on the same line, or at the line break before a line that holds the next pair, whatever that
# line starts with ("**2.**", "Question 2:", "(2)"): such a mark is not part of the answer. It
# also ends at a blank line: the form asks for one line, and what a model writes after a blank
# line ("This follows from the figure.") is commentary, not the answer a record would train on.
_PAIR = re.compile(r"the question is[:\s]*(.*?)\s*the answer is[:\s]*(.*?)"
                   r"(?=\s*(?:\d+[.)]\s*|[-*]\s*)?the question is"
                   r"|[ \t]*\n[^\n]*?the question is|[ \t]*\n[ \t]*\n|\Z)", re.I | re.S)


def parse_pairs(text: str) -> list[tuple[str, str]]:
  """Every "The question is ... The answer is ..." in a response, as (question, answer) on one
  line each, without surrounding quotes, list marks or `<image>`; [] when there is none."""
  out = []
  for q, a in _PAIR.findall(text or ""):
    out.append((_clean(q), _clean(a)))
  return out


def _clean(s: str) -> str:
  """One line, no quotes around it; a one-sentence answer's final period dropped ("5." -> "5",
  "3.5." -> "3.5", '"7".' -> "7"): a sentence ends at a period before a space, so a decimal
  point does not make a second sentence; an ellipsis is kept."""
  s = " ".join(s.replace("<image>", " ").split())
  s = re.sub(r"([\"'`])\.$", r"\1", s).strip(" \"'`")  # the period after a closing quote
  one_sentence = not re.search(r"\.\s", s)
  return s[:-1] if s.endswith(".") and not s.endswith("..") and one_sentence else s


def question_key(q: str) -> str:
  """What makes two questions the same question: words, case and punctuation aside."""
  return " ".join(re.sub(r"[^\w]+", " ", q.replace("<image>", " ").lower()).split())
