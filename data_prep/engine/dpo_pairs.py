"""DPO pairs as MAVIS stage 4: chosen = the annotated answer, rejected = the model's wrong answer.

  python -m data_prep.engine.dpo_pairs --problems DIR/instruct.json --responses R.jsonl \
      --out pairs.jsonl [--answer cot|final|value]
  python -m data_prep.preferences --json pairs.jsonl --images DIR --out DATA_DIR

Responses: JSON lines (or a JSON list) of {"id", "response"} and optionally "version" (text_dominant
| text_lite | vision_dominant, default vision_dominant). Right or wrong is decided by
`mathvlm.eval.answers` (`engine_answer`, `engine_correct`), the judge evaluation uses; correct,
unknown-id, duplicate and empty responses are counted, not paired (an empty answer, a model that
stopped at once, gives no text to reject: `data_prep.preferences` would refuse the record). A
response is rejected without its surrounding whitespace: decoded answers open with the space of
their first token (" The answer is 12. "), which chosen texts never have, and a pair whose two
sides differ in form lets DPO separate them by that alone. Each
pair is one line in the format `data_prep.preferences` builds: the prompt is the instruction-tuning
human turn (`mavis_instruct.human_turn`); chosen is the annotated rationale (`--answer cot`, MAVIS)
or the short target the model was instruction-tuned on (`final`, `value`:
`mavis_instruct.gpt_turn`).
"""

from __future__ import annotations

import argparse
import json

from data_prep.mavis_instruct import VERSIONS, answer_of, gpt_turn, human_turn
from mathvlm.eval.answers import engine_answer, engine_correct
from mathvlm.eval.score import read_records  # a JSON list or JSON lines, a bad line named

LETTERS = "ABCDEFGH"
STYLES = ("cot", "final", "value")


def is_correct(record: dict, response: str) -> bool:
  """The engine judge on a raw record: the option letter for multiple choice, else the value."""
  choices = [str(c) for c in record.get("choices") or []]
  gold = LETTERS[record["answer_index"]] if choices else str(record["answer"])
  return engine_correct(engine_answer(response, choices), gold, choices)


def chosen_text(record: dict, style: str) -> str:
  cot = record["text_en"]["CoT_reasoning"]
  if style == "cot":  # the engine's rationale already closes with its answer
    return cot
  answer, choices, idx = answer_of(record)
  return gpt_turn(cot, answer, style, choices[idx] if idx >= 0 else None)


def pairs(records: list, responses: list, style: str = "cot") -> tuple[list, dict]:
  if style not in STYLES:
    raise ValueError(f"--answer {style!r}: one of {STYLES}")
  by_id = {r["id"]: r for r in records}
  out, seen = [], set()
  stats = {"responses": len(responses), "correct": 0, "unknown_id": 0, "duplicate": 0,
           "empty": 0, "pairs": 0}
  for k, resp in enumerate(responses):
    if not isinstance(resp, dict) or not isinstance(resp.get("response"), str):
      raise ValueError(f"dpo_pairs: response {k} ({str(resp)[:80]}): give an object with a "
                       'string "response" (and "id", optionally "version")')
    ver = resp.get("version", "vision_dominant")
    if ver not in VERSIONS:
      raise ValueError(f"dpo_pairs: response {k} (id {resp.get('id')!r}): version {ver!r}; "
                       f"use one of {VERSIONS}")
    rec = by_id.get(resp.get("id"))
    if rec is None:
      stats["unknown_id"] += 1
      continue
    if (rec["id"], ver) in seen:
      stats["duplicate"] += 1
      continue
    seen.add((rec["id"], ver))
    if not resp["response"].strip():  # nothing to judge, nothing to reject
      stats["empty"] += 1
      continue
    if is_correct(rec, resp["response"]):
      stats["correct"] += 1
      continue
    out.append({"id": f"{rec['id']}:{ver}", "image": rec[f"image_{ver}"],
                "prompt": human_turn(rec["text_en"][f"{ver}_question"], answer_of(rec)[1]),
                "chosen": chosen_text(rec, style), "rejected": resp["response"].strip(),
                "answer": rec["answer"]})
  stats["pairs"] = len(out)
  return out, stats


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m data_prep.engine.dpo_pairs")
  p.add_argument("--problems", required=True, help="instruct.json written by the engine")
  p.add_argument("--responses", required=True, help='JSON lines {"id", "response"[, "version"]}')
  p.add_argument("--out", required=True, help="pairs as JSON lines for data_prep.preferences")
  p.add_argument("--answer", default="cot", choices=STYLES,
                 help="chosen: the rationale (cot) or the short target (final, value)")
  a = p.parse_args(argv)
  out, stats = pairs(read_records(a.problems), read_records(a.responses), a.answer)
  with open(a.out, "w", encoding="utf-8") as f:
    for row in out:
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
  print(json.dumps(stats))
  return stats


if __name__ == "__main__":
  main()
