"""MAVIS-Instruct (MAVIS-Geometry / MAVIS-Function problems) as an ArrayRecord dataset, one record
per (problem, question version).

  python -m data_prep.mavis_instruct --src FILE [FILE ...] [--images DIR] --out DATA_DIR \
      [--versions text_dominant text_lite vision_dominant] [--source NAME] \
      [--answer cot|final|value] [--num_shards N] [--workers W] [--strict] [--max_bad_fraction F]

FILE is the release's `.parquet` (images as {"bytes", "path"} structs), or a `.json` list /
`.jsonl` whose image fields are paths under DIR. A problem has `text_en.{caption,
text_dominant_question, text_lite_question, vision_dominant_question, CoT_reasoning}`, `choices`,
`answer_index` and `image_text_dominant`, `image_text_lite`, `image_vision_dominant`. The
release has no id and no free-form answer field, so: id = the record's `id` if present, else
`<file>-<row>` with `<file>` the path under the --src files' common folder, less its extension
(`abs/train-00000-of-00001-0` next to `sin/train-00000-of-00001-0`; one file: its stem); an id
given twice is an error naming both. The record id is `<problem id>/<version>`; a free-form
problem (`answer_index` -1 or no choices) takes its answer from an `answer` field and is a bad
record (`empty_answer`, one per question version) without one. Multiple-choice answers are the
letter; the human turn is `<image>\\n` + question + the choices lettered `A. ...` (unless the
question already lists them, as the release's and the engine's do); the gpt turn is the CoT
followed by
`The answer is X.` (`--answer cot`; `final` and `value` are the short targets of `gpt_turn`).
"""

import argparse
import json
import os

import numpy as np

from data_prep import common
from mathvlm.data import records

VERSIONS = ("text_dominant", "text_lite", "vision_dominant")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class MavisInstruct(common.ShardedBuilder, skip_registration=True):
  """MAVIS-Instruct: one record per (problem, question version) with CoT and final answer."""
  name = "mavis_instruct"

  features = staticmethod(records.instruct_schema)


def human_turn(question: str, choices: list[str]) -> str:
  text = f"{records.IMAGE_TOKEN}\n{question.strip()}"
  if choices and "\nChoices:\n" not in question:  # the release writes them into the question
    text += "\nChoices:\n" + "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
  return text


def gpt_turn(cot: str, answer: str, style: str = "cot", value: str | None = None) -> str:
  """`cot`: the rationale, then the answer (MAVIS). `final`: the rationale's closing sentence
  alone when it states the answer ("The answer is 7, which is option A."), else `The answer is X.`:
  a short target for small models and direct-answer ablations. `value`: `The answer is V.` with
  V the answer's value, the chosen option's text for multiple choice: every candidate answer is
  then one string of one format, so options can also be ranked by their likelihood."""
  if style == "value":
    return f"The answer is {answer if value is None else value}."
  if style == "final":
    last = cot.strip().splitlines()[-1].strip() if cot.strip() else ""
    return last if last.lower().startswith("the answer is") else f"The answer is {answer}."
  return f"{cot.rstrip()}\nThe answer is {answer}."


def answer_of(rec: dict) -> tuple[str, list[str], int]:
  """(answer, choices, answer_index): the letter for multiple choice, else the `answer` field."""
  choices = rec.get("choices")
  choices = [] if choices is None else list(choices)
  idx = rec.get("answer_index", -1)
  idx = -1 if idx is None else idx
  if not all(isinstance(c, str) for c in choices) or not isinstance(idx, (int, np.integer)):
    raise common.BadRecord("malformed_record", f"`choices` must be strings and `answer_index` "
                           f"an int, got {choices!r:.80} / {idx!r}")
  idx = int(idx)
  if len(choices) > len(LETTERS):
    raise common.BadRecord("malformed_record", f"{len(choices)} choices, at most {len(LETTERS)}")
  if choices and idx >= 0:
    if idx >= len(choices):
      raise common.BadRecord("malformed_record", f"answer_index {idx} but {len(choices)} choices")
    return LETTERS[idx], choices, idx
  given = rec.get("answer")  # a numeric 0 is an answer: only a missing or blank one is empty
  answer = "" if given is None else str(given).strip()
  if not answer:
    raise common.BadRecord("empty_answer", "free-form problem (answer_index -1 or no choices) "
                           "without an `answer` field")
  return answer, choices, -1


def image_of(value, images_dir: str, what: str) -> bytes:
  if isinstance(value, dict):  # parquet image struct
    if value.get("bytes"):
      return common.check_image_bytes(value["bytes"], what)
    value = value.get("path")
  if not isinstance(value, str) or not value:
    raise common.BadRecord("missing_image", f"no {what}")
  return common.read_image(os.path.join(images_dir, value))


def read_problem(item: tuple) -> tuple:
  """(record, problem id, text_en, answer, choices, answer_index, CoT), or the problem's
  BadRecord."""
  key, _, _, payload = item
  rec = common.parse(payload)
  pid = common.record_id(rec, key)
  text = rec.get("text_en")
  try:
    if not isinstance(text, dict):
      raise common.BadRecord("malformed_record", "no `text_en` object")
    answer, choices, idx = answer_of(rec)
    cot = text.get("CoT_reasoning")
    if not isinstance(cot, str) or not cot.strip():
      raise common.BadRecord("empty_answer", "empty text_en.CoT_reasoning")
  except common.BadRecord as e:
    e.key = pid
    raise
  return rec, pid, text, answer, choices, idx, cot


def convert(item: tuple, options: dict) -> list:
  """One problem -> one example (or BadRecord) per requested question version. A fault of the
  whole problem (its JSON, answer or CoT) is a bad record per version, as many as a good problem
  writes: counted once, 10% of problems bad read as 3.6% and passed --max_bad_fraction 0.05."""
  try:
    rec, pid, text, answer, choices, idx, cot = read_problem(item)
  except common.BadRecord as e:
    pid = e.key or item[0]
    return [common.BadRecord(e.reason, e.detail, key=f"{pid}/{v}") for v in options["versions"]]
  out = []
  for v in options["versions"]:
    rid = f"{pid}/{v}"
    try:
      question = text.get(f"{v}_question")
      if not isinstance(question, str) or not question.strip():
        raise common.BadRecord("empty_question", f"empty text_en.{v}_question")
      turns = common.check_conversations(
        [{"from": "human", "value": human_turn(question, choices)},
         {"from": "gpt", "value": gpt_turn(cot, answer, options["answer"],
                                          choices[idx] if idx >= 0 else None)}], 1)
      image = common.prepare_image(
          image_of(rec.get(f"image_{v}"), options["images"], f"image_{v}"), options)
    except common.BadRecord as e:
      e.key = rid
      out.append(e)
      continue
    out.append({"id": rid, "source": options["source"], "question_version": v, "image": image,
                "conversations": common.dumps(turns), "answer": answer,
                "choices": common.dumps(choices), "answer_index": idx})
  return out


def load_items(path: str, root: str | None = None) -> list[tuple]:
  """Parquet rows (ids `<stem>-<row>`) or JSON records (ids from `id`, else `<stem>-<row>`);
  the stem is the path under `root` (the sources' common folder), so that the HF release's
  `abs/train-00000-of-00001.parquet` and `sin/train-00000-of-00001.parquet` differ."""
  rel = os.path.relpath(os.path.abspath(path), root) if root else os.path.basename(path)
  stem = os.path.splitext(rel)[0].replace(os.sep, "/")
  if path.endswith(".parquet"):
    import pyarrow.parquet as pq  # only parquet inputs need pyarrow
    rows = pq.read_table(path).to_pylist()
    return [(common.record_id(r, f"{stem}-{n}"), f"row {n}", path, r)
            for n, r in enumerate(rows)]
  items = []
  for n, (key, where, file, payload) in enumerate(common.load_json_items(path)):
    if key.startswith(("line ", "index ")):
      key = f"{stem}-{n}"
    items.append((key, where, file, payload))
  return items


def load_all(paths: list[str]) -> list[tuple]:
  """Every source's items; an id given twice (two records, or two files' fallback ids) is an
  error naming both places: the records would be written under one id without a word."""
  root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
  items, seen = [], {}
  for path in paths:
    for item in load_items(path, root):
      pid, where, file = _problem_id(item), item[1], item[2]
      if pid in seen:
        raise SystemExit(f"problem id {pid!r} is given twice: {seen[pid][0]} of {seen[pid][1]} "
                         f"and {where} of {file}. Fix: give the problems distinct `id` fields, "
                         f"or pass each file once")
      seen[pid] = (where, file)
      items.append(item)
  return items


def _problem_id(item: tuple) -> str:
  """The id `convert` will give the item (a JSON line is parsed here once more for it; one that
  does not parse keeps its fallback id and is reported bad by the build)."""
  key, _, _, payload = item
  if isinstance(payload, str):
    try:
      payload = json.loads(payload)
    except json.JSONDecodeError:
      return key
  return common.record_id(payload, key) if isinstance(payload, dict) else key


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m data_prep.mavis_instruct",
                              description=__doc__.split("\n")[0])
  p.add_argument("--src", nargs="+", required=True, help=".parquet, .json or .jsonl files")
  p.add_argument("--images", default=".", help="folder image paths start in (JSON inputs)")
  p.add_argument("--versions", nargs="+", choices=VERSIONS, default=list(VERSIONS))
  p.add_argument("--source", default="mavis_instruct", help="value of the `source` field")
  p.add_argument("--answer", default="cot", choices=("cot", "final", "value"),
                 help="assistant turn: the CoT then the answer (MAVIS), only its final sentence, "
                      "or `The answer is V.` with V the value (the option's text)")
  common.add_run_flags(p, MavisInstruct.name)
  args = p.parse_args(argv)
  items = load_all(args.src)
  options = {"images": os.path.abspath(args.images), "versions": list(args.versions),
             "source": args.source, "max_images": args.max_images,
             "answer": args.answer}
  return common.run_main(common.Spec(MavisInstruct, convert), args, items, options, args.src)


if __name__ == "__main__":
  main()
