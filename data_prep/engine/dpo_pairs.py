"""DPO pairs as MAVIS stage 4: chosen = the annotated answer, rejected = the model's wrong answer
(`--rejected model`, MAVIS) or the engine's own wrong rationale (`--rejected engine`).

  python -m data_prep.engine.dpo_pairs --problems DIR/instruct.json --responses R.jsonl \
      --out pairs.jsonl [--answer cot|final|value]
  python -m data_prep.engine.dpo_pairs --rejected engine --problems DIR/instruct.json \
      --out pairs.jsonl [--answer ...] [--version vision_dominant]
  python -m data_prep.preferences --json pairs.jsonl --images DIR --out DATA_DIR

--rejected engine needs no model: the problems were generated with `--wrong_rationales`, and
each record's `wrong_rationale` (another option's quantity worked out, or one wrong turn carried
forward, `data_prep.engine.wrong_rationale`) is its rejected side, written in the chosen side's
style; records without one (no showable mistake) are counted, not paired.

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
REJECTED = ("model", "engine")


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


def wrong_text(record: dict, style: str) -> str:
  """The engine's wrong rationale in the chosen side's style: a pair whose two sides differ in
  form lets DPO separate them by that alone."""
  wrong = record["wrong_rationale"]
  if style == "cot":
    return wrong["CoT_reasoning"]
  return gpt_turn(wrong["CoT_reasoning"], wrong["answer"], style, wrong["answer"])


def engine_pairs(records: list, style: str = "cot",
                 version: str = "vision_dominant") -> tuple[list, dict]:
  """Pairs from the engine's wrong rationales, one per record that has one."""
  if style not in STYLES:
    raise ValueError(f"--answer {style!r}: one of {STYLES}")
  if version not in VERSIONS:
    raise ValueError(f"--version {version!r}: one of {VERSIONS}")
  out, stats = [], {"problems": len(records), "no_wrong_rationale": 0, "pairs": 0, "kinds": {}}
  for k, rec in enumerate(records):
    if "wrong_rationale" not in rec:
      raise ValueError(f"dpo_pairs: record {k} (id {rec.get('id')!r}) has no wrong_rationale "
                       "field: generate the problems with `python -m data_prep.engine "
                       "--wrong_rationales`, or give --rejected model and a model's responses")
    if rec["wrong_rationale"] is None:  # the engine had no showable mistake for it
      stats["no_wrong_rationale"] += 1
      continue
    kind = rec["wrong_rationale"].get("kind")  # None where made before kinds were recorded
    out.append({"id": f"{rec['id']}:{version}", "image": rec[f"image_{version}"],
                "prompt": human_turn(rec["text_en"][f"{version}_question"], answer_of(rec)[1]),
                "chosen": chosen_text(rec, style), "rejected": wrong_text(rec, style),
                "answer": rec["answer"], "mistake": rec["wrong_rationale"]["mistake"],
                "kind": kind})
    stats["kinds"][kind] = stats["kinds"].get(kind, 0) + 1
  stats["pairs"] = len(out)
  return out, stats


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
  p.add_argument("--rejected", default="model", choices=REJECTED,
                 help="model: a model's wrong responses (MAVIS); engine: each record's "
                 "wrong_rationale (problems generated with --wrong_rationales)")
  p.add_argument("--responses", help='JSON lines {"id", "response"[, "version"]} (--rejected '
                 "model)")
  p.add_argument("--version", choices=VERSIONS,
                 help="the image and question version of the pairs (--rejected engine; default "
                 "vision_dominant; a model's response carries its own)")
  p.add_argument("--out", required=True, help="pairs as JSON lines for data_prep.preferences")
  p.add_argument("--answer", default="cot", choices=STYLES,
                 help="chosen: the rationale (cot) or the short target (final, value)")
  a = p.parse_args(argv)
  if a.rejected == "engine":
    if a.responses is not None:
      p.error("--responses is for --rejected model: --rejected engine rejects each record's "
              "wrong_rationale")
    out, stats = engine_pairs(read_records(a.problems), a.answer, a.version or "vision_dominant")
  elif a.responses is None:
    p.error("--rejected model needs --responses (a model's answers to the problems)")
  elif a.version is not None:
    p.error("--version is for --rejected engine: a model's response carries its own version")
  else:
    out, stats = pairs(read_records(a.problems), read_records(a.responses), a.answer)
  with open(a.out, "w", encoding="utf-8") as f:
    for row in out:
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
  print(json.dumps(stats))
  return stats


if __name__ == "__main__":
  main()
