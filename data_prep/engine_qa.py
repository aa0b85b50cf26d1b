"""Every question the data engine wrote about each of its figures, as LLaVA-format QA pairs, and
the figures' own clarity and complexity labels as a scores file for `data_prep.select`.

  python -m data_prep.engine_qa --instruct DIR/instruct.json --out OUT [--phrasings N]
  python -m data_prep.llava_json --json OUT/qa.json --images DIR --source engine --out DATA

An engine record asks one question about one figure in three versions (text-dominant: every
measurement in the text; text-lite: the structure only; vision-dominant: nothing but the ask) and
rephrases the ask three or four ways with the same answer. Crossing the phrasings with the three
versions gives 12-15 questions per figure, each with an exact answer: the engine's own kinds of
Math-LLaVA's rephrased and underspecified (simplified) augmentations. A version's questions go with
that version's image (plane geometry renders three; the other domains draw one figure for all).

Writes:
- OUT/qa.json: `{"id": "<figure>/<version>/<k>", "image", "conversations"}` with the answer as
  `The answer is V.` (V the option's text for multiple choice: `mavis_instruct --answer value`,
  what `mathvlm.eval.likelihood` ranks); phrasing 0 is the engine's own question;
- OUT/scores.jsonl: one line per figure, `id`, `source` (its domain), `clarity`, `complexity` (the
  engine's labels, in place of the scorers' predictions) and `records` (its QA ids), which
  `data_prep.select` reads (`--qa_per_image K` keeps K of each figure's records);
- OUT/report.json: counts, and the ids of records whose versions could not be taken apart (kept
  with the engine's own three questions and rephrasings only, never guessed).

`--phrasings N` keeps the first N phrasings (1: the engine's three versions, as a held-out set).
"""

from __future__ import annotations

import argparse
import json
import os

from data_prep.engine.captions import VISION_LEAD

VERSIONS = ("text_dominant", "text_lite", "vision_dominant")


class Unparsed(ValueError):
  """A record whose questions do not decompose into context + ask + choices as the engine writes
  them (problems.assemble)."""


def tail_of(rec: dict) -> str:
  """The choices block the engine appends to every question of a multiple-choice record."""
  choices = rec.get("choices") or []
  if not choices:
    return ""
  return "\nChoices:\n" + "\n".join(f"{chr(65 + k)}: {c}" for k, c in enumerate(choices))


def cut(text: str, tail: str, what: str) -> str:
  if not text.endswith(tail):
    raise Unparsed(f"{what} does not end with the choices block")
  return text[:len(text) - len(tail)] if tail else text


def decompose(rec: dict) -> tuple[dict, str, list[str], str]:
  """(context per version, the vision-dominant lead, the phrasings of the ask, the choices tail)
  such that each version's question is `context + " " + ask + tail` (vision-dominant: lead + ask
  with its first letter lowered), checked against the record's own text."""
  t, tail = rec["text_en"], tail_of(rec)
  bodies = {v: cut(t[f"{v}_question"], tail, v) for v in VERSIONS}
  vd = bodies["vision_dominant"]
  lead = next((x for x in VISION_LEAD if vd.startswith(x)), None)
  if lead is None:
    raise Unparsed("the vision-dominant question has no known lead")
  low = vd[len(lead):]
  ask = bodies["text_lite"][len(bodies["text_lite"]) - len(low):]
  if len(ask) != len(low) or ask[1:] != low[1:] or ask[:1].lower() != low[:1]:
    raise Unparsed("the text-lite question does not end with the vision-dominant ask")
  ctx = {}
  for v in ("text_dominant", "text_lite"):
    if not bodies[v].endswith(ask):
      raise Unparsed(f"the {v} question does not end with the ask")
    ctx[v] = bodies[v][:len(bodies[v]) - len(ask)].strip()
  for v in VERSIONS:
    if question(ctx, lead, ask, tail, v) != t[f"{v}_question"]:
      raise Unparsed(f"the {v} question is not its context, the ask and the choices")
  asks = [ask]
  for n, r in enumerate(rec.get("rephrasings") or []):
    body = cut(r, tail, f"rephrasing {n}")
    head = ctx["text_dominant"] + " " if ctx["text_dominant"] else ""
    if not body.startswith(head):
      raise Unparsed(f"rephrasing {n} does not start with the text-dominant context")
    if body[len(head):] not in asks:
      asks.append(body[len(head):])
  return ctx, lead, asks, tail


def question(ctx: dict, lead: str, ask: str, tail: str, version: str) -> str:
  if version == "vision_dominant":
    return lead + ask[:1].lower() + ask[1:] + tail
  return (ctx[version] + " " + ask).strip() + tail


def answer_text(rec: dict) -> str:
  choices, idx = rec.get("choices") or [], rec.get("answer_index")
  if choices and isinstance(idx, int) and 0 <= idx < len(choices):
    return str(choices[idx])
  return str(rec["answer"])


def figure_qa(rec: dict, phrasings: int) -> tuple[list[dict], bool]:
  """The figure's QA records (versions x phrasings), and whether its text decomposed."""
  try:
    ctx, lead, asks, tail = decompose(rec)
    texts = {v: [question(ctx, lead, a, tail, v) for a in asks] for v in VERSIONS}
    ok = True
  except Unparsed:
    t = rec["text_en"]
    texts = {v: [t[f"{v}_question"]] for v in VERSIONS}
    texts["text_dominant"] += list(rec.get("rephrasings") or [])
    ok = False
  gpt = f"The answer is {answer_text(rec)}."
  out = []
  for v in VERSIONS:
    for k, q in enumerate(texts[v][:phrasings or None]):
      out.append({"id": f"{rec['id']}/{v}/{k}", "image": rec[f"image_{v}"], "conversations": [
          {"from": "human", "value": "<image>\n" + q}, {"from": "gpt", "value": gpt}]})
  return out, ok


def convert(records: list[dict], phrasings: int, where: str):
  """(qa records, score lines, report) for a list of engine records."""
  qa, scores, unparsed = [], [], []
  for n, rec in enumerate(records):
    if not isinstance(rec, dict):
      raise SystemExit(f"{where}: record {n} is a JSON {type(rec).__name__}, not an object: not "
                       "an engine instruct.json")
    missing = [f for f in ("id", "domain", "clarity", "complexity", "text_en") if f not in rec]
    if missing:
      raise SystemExit(f"{where}: record {n} has no {missing}: not an engine instruct.json")
    items, ok = figure_qa(rec, phrasings)
    if not ok:
      unparsed.append(rec["id"])
    qa += items
    scores.append({"id": rec["id"], "source": rec["domain"], "clarity": rec["clarity"],
                   "complexity": rec["complexity"], "records": [q["id"] for q in items]})
  per = [len(s["records"]) for s in scores]
  report = {"instruct": where, "figures": len(records), "qa": len(qa),
            "qa_per_figure": {"min": min(per, default=0), "max": max(per, default=0)},
            "phrasings": phrasings or "all", "unparsed": {"count": len(unparsed),
                                                          "ids": unparsed}}
  return qa, scores, report


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m data_prep.engine_qa",
                              description=__doc__.split("\n")[0])
  p.add_argument("--instruct", required=True, help="the engine's instruct.json")
  p.add_argument("--out", required=True)
  p.add_argument("--phrasings", type=int, default=0, help="first N phrasings of each ask (0: all)")
  a = p.parse_args(argv)
  if a.phrasings < 0:  # a slice [:-1] would quietly drop each ask's last phrasing
    p.error(f"--phrasings {a.phrasings}: give 0 (all) or how many to keep")
  with open(a.instruct, encoding="utf-8") as f:
    try:
      records = json.load(f)
    except json.JSONDecodeError as e:
      raise SystemExit(f"{a.instruct}: not JSON ({e}); give the engine's instruct.json") from None
  if not isinstance(records, list):
    raise SystemExit(f"{a.instruct}: a JSON {type(records).__name__}, not the engine's list of "
                     "records (instruct.json)")
  qa, scores, report = convert(records, a.phrasings, a.instruct)
  os.makedirs(a.out, exist_ok=True)
  with open(os.path.join(a.out, "qa.json"), "w", encoding="utf-8") as f:
    json.dump(qa, f, ensure_ascii=False, indent=0)
  with open(os.path.join(a.out, "scores.jsonl"), "w", encoding="utf-8") as f:
    f.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in scores)
  with open(os.path.join(a.out, "report.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  print(json.dumps({k: v for k, v in report.items() if k != "unparsed"}
                   | {"unparsed": report["unparsed"]["count"]}))
  return report


if __name__ == "__main__":
  main()
