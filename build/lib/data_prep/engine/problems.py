"""From a domain's deduced problem to the released MAVIS record: versions, choices, CoT, checks.

Each domain module returns a `Built` (its images, the facts drawn in each, the deduction chain and
an independently measured answer); `assemble` verifies it and writes the MAVIS-Geometry fields.
A problem whose chain or answer does not re-check raises `Rejected` and is never kept.
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from .captions import VISION_LEAD
from .exact import approx, distractors, fmt, recompute, run_chain, same

LETTERS = "ABCDEFGH"


class Rejected(Exception):
  """A generated problem failed its own re-check; the sample is redrawn with the next attempt."""


@dataclasses.dataclass
class Built:
  domain: str
  family: str
  images: dict            # version -> PIL image ("single" for one-image domains)
  drawn: dict             # version -> ids of facts drawn in that image
  facts: list             # [{"id", "text", "numeric"}]: the scene description the renderer used
  context: dict           # version -> the text before the question
  question: str
  alt_questions: list
  chain: list             # [Deriv], forward order
  givens: dict
  angles: set
  target: str
  measured: object        # float re-measured independently, or a checker result (True/False)
  caption: list           # sentences
  generation: list        # construction sentences
  complexity: int
  answer_text: str | None = None   # non-numeric answers (intervals); else the chain's value
  wrong_texts: list = dataclasses.field(default_factory=list)
  key: str = ""           # canonical content key for the held-out split


def verify(b: Built):
  """Every step recomputes from the steps before it; the answer equals its independent measure."""
  known = dict(b.givens)
  for d in b.chain:
    missing = [i for i in d.inputs if i not in known]
    if missing:
      raise Rejected(f"step {d.name} uses {missing} before they are known")
    if not same(recompute(d, known), d.value):
      raise Rejected(f"step {d.name}: formula {d.expr} does not give {d.value}")
    known[d.name] = d.value
  if b.answer_text is None:
    v = known[b.target]
    if isinstance(b.measured, bool):
      ok = b.measured
    else:
      ok = abs(float(v) - float(b.measured)) <= 1e-6 * max(1.0, abs(float(v)))
    if not ok:
      raise Rejected(f"answer {b.target} = {v} but the independent measure gives {b.measured}")
  elif b.measured is not True:
    raise Rejected(f"answer {b.answer_text} failed its independent check")
  return known


def assemble(b: Built, rng, sid: str, mc: bool) -> dict:
  """The instruct record (MAVIS-Geometry field names) plus what the writer and tests need."""
  known = verify(b)
  if b.answer_text is None:
    ans = known[b.target]
    answer = fmt(ans)
  else:
    ans, answer = None, b.answer_text
  choices, idx = [], None
  if mc:
    others = [known[d.name] for d in b.chain[:-1] if getattr(known[d.name], "is_number", False)]
    wrong = ([fmt(w) for w in distractors(ans, rng, extra=others)] if ans is not None
             else list(b.wrong_texts))
    wrong = [w for w in dict.fromkeys(wrong) if w != answer][:3]
    if len(wrong) < 2:
      mc = False
    else:
      idx = int(rng.integers(len(wrong) + 1))
      choices = wrong[:idx] + [answer] + wrong[idx:]
  tail = ("\nChoices:\n" + "\n".join(f"{LETTERS[k]}: {c}" for k, c in enumerate(choices))
          if mc else "")
  q = {v: (b.context[v] + " " + b.question).strip() + tail for v in b.context}
  if not b.context["vision_dominant"]:
    lead = VISION_LEAD[int(rng.integers(len(VISION_LEAD)))]
    q["vision_dominant"] = lead + b.question[:1].lower() + b.question[1:] + tail
  steps = [f"Step {k + 1}: {d.sentence(known, b.angles)}" for k, d in enumerate(b.chain)]
  final = f"The answer is {answer}"
  if ans is not None and not getattr(ans, "is_Rational", False):
    final += f" (≈ {approx(ans)})"
  if mc:
    final += f", which is option {LETTERS[idx]}"
  cot = "\n".join(steps + [final + "."])
  reph = [(b.context["text_dominant"] + " " + a).strip() + tail for a in b.alt_questions
          if a != b.question]
  return {
    "answer": answer, "answer_index": idx, "choices": choices,
    "question_type": "multi_choice" if mc else "free_form",
    "questions": q, "cot": cot, "rephrasings": reph,
    "value": ans,
  }
