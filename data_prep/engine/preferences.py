"""DPO pairs as MAVIS stage 4: chosen = the annotated rationale, rejected = the model's wrong answer.

  python -m data_prep.engine.preferences --problems DIR/instruct.json --responses R.jsonl --out P.json

Responses: JSON lines (or a JSON list) of {"id", "response"} and optionally "version"
(text_dominant | text_lite | vision_dominant, default vision_dominant). A response is wrong when
its final answer (the last "answer is ..." phrase, a choice letter, or the last number) does not
match the record's answer; correct, unparsable-id and duplicate responses are counted, not paired.
"""

from __future__ import annotations

import argparse
import json
import re

import sympy as sp

LETTERS = "ABCDEFGH"


def final_answer(response: str) -> str:
  """The response's final answer as written: after the last 'answer is', else its last line."""
  m = list(re.finditer(r"answer is[:\s]*(.+)", response, flags=re.I))
  s = m[-1].group(1) if m else response.strip().splitlines()[-1] if response.strip() else ""
  s = re.split(r"(?:,\s*which|\s\(≈)", s)[0]
  return s.strip().rstrip(".").strip()


def _num(s: str):
  try:
    return complex(sp.N(sp.sympify(s.replace("^", "**").replace("π", "pi").replace("√", "sqrt"))))
  except Exception:  # noqa: BLE001 - any unparsable answer is simply not numeric
    return None


def is_correct(record: dict, response: str) -> bool:
  """Letter for multiple choice, exact-or-numeric (2 decimals) match for the answer text."""
  ans = final_answer(response)
  gold = record["answer"]
  if record["choices"]:
    m = re.fullmatch(r"\(?([A-H])\)?(?:[:.]\s*.*)?", ans)
    if m:
      k = LETTERS.index(m.group(1))
      return k == record["answer_index"]
    if "option" in response.lower():
      m = re.findall(r"option\s+([A-H])\b", response)
      if m:
        return LETTERS.index(m[-1]) == record["answer_index"]
  return same_value(ans, gold)


def same_value(ans: str, gold: str) -> bool:
  """The same text (spaces aside), or the same number to 0.5% (sympy reads `8*sqrt(3)/3`)."""
  if ans.replace(" ", "") == gold.replace(" ", ""):
    return True
  a, g = _num(ans), _num(gold)
  return a is not None and g is not None and abs(a - g) < 5e-3 * max(1.0, abs(g))


def pairs(records: list, responses: list) -> tuple:
  by_id = {r["id"]: r for r in records}
  out, stats, seen = [], {"responses": len(responses), "correct": 0, "unknown_id": 0,
                          "duplicate": 0, "pairs": 0}, set()
  for resp in responses:
    rec = by_id.get(resp.get("id"))
    if rec is None:
      stats["unknown_id"] += 1
      continue
    ver = resp.get("version", "vision_dominant")
    if (rec["id"], ver) in seen:
      stats["duplicate"] += 1
      continue
    seen.add((rec["id"], ver))
    if is_correct(rec, resp["response"]):
      stats["correct"] += 1
      continue
    q = rec["text_en"][f"{ver}_question"]
    out.append({"id": f"{rec['id']}:{ver}", "image": rec[f"image_{ver}"],
                "conversations": [{"from": "human", "value": "<image>\n" + q}],
                "chosen": rec["text_en"]["CoT_reasoning"], "rejected": resp["response"],
                "answer": rec["answer"]})
  stats["pairs"] = len(out)
  return out, stats


def _load(path: str) -> list:
  with open(path) as f:
    text = f.read()
  s = text.lstrip()
  if s.startswith("["):
    return json.loads(s)
  return [json.loads(line) for line in text.splitlines() if line.strip()]


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m data_prep.engine.preferences")
  p.add_argument("--problems", required=True, help="instruct.json written by the engine")
  p.add_argument("--responses", required=True, help='JSON lines {"id", "response"[, "version"]}')
  p.add_argument("--out", required=True)
  a = p.parse_args(argv)
  out, stats = pairs(_load(a.problems), _load(a.responses))
  with open(a.out, "w") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
  print(json.dumps(stats))


if __name__ == "__main__":
  main()
