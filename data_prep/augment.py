"""Math-LLaVA's four augmentations of a MathV360K-format dataset: new questions, harder,
rephrased and simplified ones, from a chat model that sees the image.

  python -m data_prep.augment --src train.json --images data_images --out OUT \
      --kinds new,harder,rephrase,simplify --backend openai --url http://HOST:PORT/v1 \
      --model MODEL [--api_key_env OPENAI_API_KEY] [--concurrency 8] [--retries 4]
  python -m data_prep.augment --src train.json --images data_images --out OUT \
      --kinds rephrase --backend local --ckpt CKPT [--tokenizer tokenizer.json]

Requests: `new`, one per image, few-shot with one example from each of 5 TF-IDF K-Means clusters
of the image's source's questions (`data_prep.few_shot`), up to 5 pairs back; `harder`,
`rephrase` and `simplify`, one per record, from its first question and answer. The prompts are
ours (`data_prep.augment_prompts`); answers are read from "The question is ... The answer is ...".

Each answer is judged, in a fixed order (images as in --src; per image new, harder, rephrase,
simplify): `failed` (no reply after the retries, a reply cut at its token limit, or an empty
one), `malformed` (no such pair), `empty` (an empty question or answer),
`duplicates` (the same question, words and case aside, as one of the image's own or an
already accepted one), `copied` (a pair the prompt showed, echoed: a few-shot example with its
answer, or the form's `<question>`), `answer_changed` (a rephrasing or simplification whose
final answer differs from the original's: both are asked to keep it), else `accepted`; pairs
past the ones asked for (past the first, or past 5 for `new`) are counted as `extra` (id
`<record>_<kind>+k`) and not judged. Only accepted pairs are merged:
OUT/augmented.json is a MathV360K-format list
(`{"id": "<record>_<kind>[k]", "image", "conversations"}`) that `data_prep.mathv360k` and
`data_prep.llava_json` build with --images as here. OUT/report.json counts every outcome per
kind, with ids. Failed requests are listed and not stored. Records whose image is missing or
does not decode are not asked: they are listed with the file among the unusable records.

Resumable: every response is appended to OUT/responses.jsonl as it arrives, under its kind,
record and a hash of its image and prompt; a rerun asks only for what is not there (delete the
file to ask again), and an empty reply is never stored (nor one an older store holds reused).
A store written before the image joined the key is read too, where its key names one image.
Answers are stored with the model that gave them; a rerun with another model is refused.
The exit status is 1 when some request failed, after writing everything: rerun to retry those.
A server that refuses requests whatever they hold (HTTP 401, 403, 404: a key, an endpoint or a
model it does not take) stops the run at its first such answer, naming it.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os

import tqdm

from data_prep import augment_prompts as P
from data_prep import common, few_shot
from data_prep.chat_backends import (NO_FILE, Failed, LocalChat, OpenAIChat, Refused, Request,
                                     unreadable)
from mathvlm import paths
from mathvlm.eval import answers

OUTCOMES = ("failed", "malformed", "empty", "duplicates", "copied", "answer_changed", "accepted",
            "extra")
# The kinds whose prompt asks for the original's answer (augment_prompts): a reply with another
# is not merged. `simplify` was once accepted with any answer, though its prompt says "Keep its
# answer": the image and the shorter question were trained on a different answer.
SAME_ANSWER = ("rephrase", "simplify")


@dataclasses.dataclass(frozen=True)
class Original:
  """A source record's first question and answer, and where its image is."""
  id: str
  image: str  # relative to --images, as in the record
  source: str
  question: str
  answer: str
  at: str = ""  # where in --src: "index 12", "line 13"


@dataclasses.dataclass(frozen=True)
class Planned:
  kind: str
  original: Original  # for `new`: the image's first record
  request: Request
  examples: tuple = ()  # `new`'s few-shot (question, answer) pairs from other images


# ---------------------------------------------------------------------------------------------
# Reading the source records.

def read_originals(path: str) -> tuple[list[Original], list[dict]]:
  """The records usable as originals, and the others ({id, at, reason, detail})."""
  out, bad = [], []
  for key, where, _, payload in common.load_json_items(path):
    try:
      rec = common.parse(payload)
      rid = common.record_id(rec, key)
      images = common.record_images(rec, 1)
      turns = common.check_conversations(rec.get("conversations"), len(images))
      if not images:
        raise common.BadRecord("missing_image", "a text-only record: nothing to look at")
    except common.BadRecord as e:
      bad.append({"id": e.key or key, "at": where, "reason": e.reason, "detail": e.detail})
      continue
    out.append(Original(rid, images[0], common.source_of(rec, images[0]) or "unknown",
                        turns[0]["value"], turns[1]["value"], where))
  return out, bad


def with_images(originals: list[Original], images_dir: str,
                workers: int = 8) -> tuple[list[Original], list[dict]]:
  """The originals whose image file decodes, and the others as unusable records naming the file
  (`missing_image`, `unreadable_image`, as the builders count them). Asked, such a request
  failed on every run, and the command exited 1 asking for a rerun that could never succeed."""
  names = list(dict.fromkeys(o.image for o in originals))
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    why = dict(zip(names, pool.map(lambda n: unreadable(os.path.join(images_dir, n)), names)))
  bad = [{"id": o.id, "at": o.at,
          "reason": "missing_image" if why[o.image] == NO_FILE else "unreadable_image",
          "detail": f"{os.path.join(images_dir, o.image)}: {why[o.image]}"}
         for o in originals if why[o.image]]
  return [o for o in originals if not why[o.image]], bad


# ---------------------------------------------------------------------------------------------
# Planning and judging (pure).

def by_image(originals: list[Original]) -> dict[str, list[Original]]:
  groups: dict[str, list[Original]] = {}
  for o in originals:
    groups.setdefault(o.image, []).append(o)
  return groups


def plan(originals: list[Original], kinds: list[str], images_dir: str,
         shots: few_shot.FewShot | None) -> list[Planned]:
  """Every request, in judging order: per image, new then the per-record kinds."""
  out = []
  for image, group in by_image(originals).items():
    path = os.path.join(images_dir, image)
    for kind in P.KINDS:
      if kind not in kinds:
        continue
      for o in (group[:1] if kind == "new" else group):
        examples = shots.examples(o.source, image) if kind == "new" and shots else []
        text = P.prompt(kind, o.question, o.answer, o.source, examples)
        out.append(Planned(kind, o, Request(request_key(kind, o, text), text, path),
                           tuple(examples)))
  return out


def request_key(kind: str, o: Original, text: str) -> str:
  """What a response is stored under: kind, record id and a hash of the image and the prompt.
  The image is in the hash because ids repeat (MathV360K, and across sources) and two records'
  prompts can be the same text ('What is the value of x?'): on the id and prompt alone they
  shared one request, sent with one image, and its answer was merged for the other too."""
  digest = hashlib.sha256(f"{o.image}\n{text}".encode()).hexdigest()[:16]
  return f"{kind}/{o.id}/{digest}"


def legacy_answers(planned: list[Planned], stored: dict) -> dict:
  """{key: response} for the requests a store written before the image joined the key holds
  (kind, id and prompt hash): reused where that older key names one image, so an interrupted run
  does not pay for its answers again; where it names two, the one stored answer was asked with
  one image and neither image's request takes it."""
  if not stored:  # a first run: nothing to reuse
    return {}
  old = [legacy_key(p) for p in planned]
  images = collections.defaultdict(set)
  for p, k in zip(planned, old):
    images[k].add(p.original.image)
  return {p.request.key: stored[k] for p, k in zip(planned, old)
          if len(images[k]) == 1 and k in stored}


def legacy_key(p: Planned) -> str:
  return f"{p.kind}/{p.original.id}/{hashlib.sha256(p.request.text.encode()).hexdigest()[:16]}"


def judge(p: Planned, response: str | Failed, seen: set[str]) -> list[tuple[str, str, tuple]]:
  """[(outcome, id, (question, answer) or ())] for one response; accepted questions join
  `seen` (the image's question keys)."""
  rid = f"{p.original.id}_{p.kind}"
  if isinstance(replied(response), Failed):
    return [("failed", rid, ())]
  pairs = P.parse_pairs(response)
  if not pairs:
    return [("malformed", rid, ())]
  judged = P.MAX_NEW if p.kind == "new" else 1
  out = [("extra", f"{rid}+{k}", ()) for k in range(judged, len(pairs))]
  for k, (q, a) in enumerate(pairs[:judged]):
    pid = f"{rid}{k}" if p.kind == "new" else rid
    if not q or not a:
      out.append(("empty", pid, ()))
    elif P.question_key(q) in seen:
      out.append(("duplicates", pid, ()))
    elif copied(q, a, p.examples):
      out.append(("copied", pid, ()))
    elif p.kind in SAME_ANSWER and not same_answer(a, p.original.answer):
      out.append(("answer_changed", pid, ()))
    else:
      seen.add(P.question_key(q))
      out.append(("accepted", pid, (q, a)))
  return out


def copied(q: str, a: str, examples) -> bool:
  """A pair its prompt showed, given back: a few-shot example of another image with that image's
  answer, or the form's placeholder question. A model that echoes its prompt wrote them; they
  were accepted as new pairs of this image ("<question>" -> "<answer>", another figure's x)."""
  key = P.question_key(q)
  return key == P.question_key(P.PLACEHOLDER[0]) or any(
      key == P.question_key(eq) and same_answer(a, ea) for eq, ea in examples)


def replied(response: str | Failed) -> str | Failed:
  """The response, or Failed when it is empty or whitespace: such a reply holds no question
  (a server's hiccup, a model that stopped at once), and stored as an answer it was judged
  `empty` and never asked again; failed, it is not stored and a rerun asks again."""
  if isinstance(response, str) and not response.strip():
    return Failed("an empty reply: rerun to ask again")
  return response


def same_answer(a: str, b: str) -> bool:
  """The same value, or the same words whatever their case ('yes' for 'Yes', 'Dark Blue' for
  'dark blue'): a rephrasing that changes only the case keeps the answer. Each side is read as
  the stated answer (`stated`), so 'Answer: 12' keeps the answer 12."""
  a, b = stated(a), stated(b)
  return answers.same_value(a, b) or " ".join(a.casefold().split()) == " ".join(
      b.casefold().split())


def stated(answer: str) -> str:
  """The value an answer states, read as evaluation reads a response (`mathvlm.eval.answers`):
  after its last answer phrase ("The answer is", "Answer:", "**Final answer:**") or in its
  `\\boxed{}`, else the answer itself; a trailing full stop or ", which is option A" cut
  (`final_answer`). Only the shape goes: "12 cm" still states "12 cm"."""
  return answers.final_answer(answers.answer_span(answer) or answer)


def merge(planned: list[Planned], responses: dict, originals: list[Original]):
  """(records for augmented.json, report per kind): every planned request judged in order."""
  seen = {image: {P.question_key(o.question) for o in group}
          for image, group in by_image(originals).items()}
  report = {k: {"requests": 0, **{o: {"count": 0, "ids": []} for o in OUTCOMES}}
            for k in dict.fromkeys(p.kind for p in planned)}
  records = []
  for p in planned:
    r = responses.get(p.request.key, Failed("not asked"))  # judge fails an empty one
    report[p.kind]["requests"] += 1
    for outcome, pid, pair in judge(p, r, seen[p.original.image]):
      entry = report[p.kind][outcome]
      entry["count"] += 1
      entry["ids"].append({"id": pid, "error": r.error} if outcome == "failed" else pid)
      if pair:
        records.append({"id": pid, "image": p.original.image, "conversations": [
            {"from": "human", "value": f"{common.IMAGE_TOKEN}\n{pair[0]}"},
            {"from": "gpt", "value": pair[1]}]})
  return records, report


# ---------------------------------------------------------------------------------------------
# Asking, with the store of answers (resume).

def load_store(path: str) -> dict[str, str]:
  """{request key: response} from responses.jsonl; a torn last line (a killed run) is cut off,
  and an empty response (stored before empty replies failed) is left out, so it is asked
  again."""
  out, empty = {}, 0
  if os.path.exists(path):
    if paths.cut_torn_line(path):
      logging.warning("%s: cut off a torn last line (an interrupted write); its request is "
                      "asked again", path)
    with open(path, encoding="utf-8") as f:
      for line in f:
        try:
          rec = json.loads(line)
          key, response = rec["key"], rec["response"]
        except (json.JSONDecodeError, KeyError, TypeError):
          logging.warning("%s: skipping an unreadable line (an interrupted write)", path)
          continue
        if isinstance(replied(response), Failed):
          empty += 1
        else:
          out[key] = response
  if empty:
    logging.warning("%s: %d stored replies are empty; their requests are asked again", path,
                    empty)
  return out


def ask(backend, planned: list[Planned], store_path: str, progress: bool,
        by: str | None = None) -> tuple[dict, int]:
  """All responses (stored ones and new ones), and how many were asked now. `by` names the
  model answering (`answered_by`): each new answer is stored under it, and a store holding
  another model's answers is refused (`check_store_models`)."""
  if by is not None:
    check_store_models(store_path, by)
  stored = load_store(store_path)
  stored = {**legacy_answers(planned, stored), **stored}
  todo = list({p.request.key: p.request for p in planned
               if p.request.key not in stored}.values())
  got = dict(stored)
  with open(store_path, "a", encoding="utf-8") as f, tqdm.tqdm(
      total=len(todo), desc="ask", unit="req", disable=not progress) as bar:

    def keep(req: Request, response: str | Failed) -> None:
      response = got[req.key] = replied(response)
      if not isinstance(response, Failed):
        line = {"key": req.key, "response": response, **({"by": by} if by else {})}
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
        f.flush()
      bar.update(1)

    answers = backend.run(todo)
    try:
      for req, response in answers:
        keep(req, response)
    finally:  # interrupted: the answers that came in flight (and paid for) are stored too
      answers.close()
      for req, response in getattr(backend, "unclaimed", ()):
        keep(req, response)
  return got, len(todo)


def answered_by(backend) -> str:
  """The model a back end's answers are stored under: the endpoint's model name (not its URL: a
  server restarted on another port serves the same model), or the local checkpoint."""
  info = backend.describe()
  return str(info.get("model") or info.get("ckpt"))


def check_store_models(path: str, by: str) -> None:
  """A rerun with another --model (or --ckpt) into the same --out reused the first model's
  answers and reported them as the second's: refused, naming the models. Lines stored before
  answers named their model are taken as the current one's."""
  if not os.path.exists(path):
    return
  others = collections.Counter()
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        model = json.loads(line).get("by")
      except (json.JSONDecodeError, AttributeError):
        continue  # a torn or unreadable line: load_store reports it
      if model not in (None, by):
        others[model] += 1
  if others:
    raise SystemExit(f"{path} holds {sum(others.values())} answers of another model "
                     f"({dict(others)}), not of {by!r}: this run would merge them as answered "
                     f"by {by!r}. Give this model another --out, or delete {path} to ask "
                     "everything again")


# ---------------------------------------------------------------------------------------------
# Command line.

def make_backend(args):
  if args.backend == "openai":
    if not args.url or not args.model:
      raise SystemExit("--backend openai needs --url (e.g. http://127.0.0.1:8000/v1) and --model")
    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if not key:
      logging.info("no API key in $%s: sending requests without one", args.api_key_env)
    return OpenAIChat(args.url, args.model, api_key=key, concurrency=args.concurrency,
                      retries=args.retries, backoff=args.backoff, timeout=args.timeout,
                      max_tokens=args.max_new_tokens, temperature=args.temperature)
  if not args.ckpt:
    raise SystemExit("--backend local needs --ckpt (a mathvlm LLaVA checkpoint)")
  return LocalChat(args.ckpt, args.tokenizer, batch_size=args.batch,
                   max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   template=args.template)


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m data_prep.augment",
                              description=__doc__.split("\n")[0])
  p.add_argument("--src", required=True, help="MathV360K-format .json list (or .jsonl)")
  p.add_argument("--images", required=True, help="folder the records' image paths start in")
  p.add_argument("--out", required=True)
  p.add_argument("--kinds", default=",".join(P.KINDS), help="any of " + ",".join(P.KINDS))
  p.add_argument("--backend", choices=("openai", "local"), required=True)
  p.add_argument("--url", help="openai: the endpoint's base URL (.../v1)")
  p.add_argument("--model", help="openai: the model name")
  p.add_argument("--api_key_env", default="OPENAI_API_KEY", help="openai: env var with the key")
  p.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight")
  p.add_argument("--retries", type=int, default=4, help="openai: retries per request")
  p.add_argument("--backoff", type=float, default=1.0, help="openai: first retry wait, seconds")
  p.add_argument("--timeout", type=float, default=120.0, help="openai: seconds per request")
  p.add_argument("--ckpt", help="local: mathvlm LLaVA checkpoint")
  p.add_argument("--tokenizer", help="local: tokenizer.json (default CKPT/tokenizer.json)")
  p.add_argument("--template", default=None,
                 help="local: chat template (default: the one the model was trained with, as "
                      "its config.json records, else vicuna_v1)")
  p.add_argument("--batch", type=int, default=8, help="local: requests per decoding batch")
  p.add_argument("--max_new_tokens", type=int, default=512)
  p.add_argument("--temperature", type=float, default=0.7)
  p.add_argument("--seed", type=int, default=0, help="clusters and few-shot draws")
  p.add_argument("--subset", help="a selection (data_prep.select's selected.jsonl): augment only "
                 "the records it keeps; `new`'s few-shot examples still come from all of --src")
  p.add_argument("--limit", type=int, default=0, help="first N source records only (0: all)")
  p.add_argument("--no_progress", action="store_true")
  args = p.parse_args(argv)
  args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
  unknown = sorted(set(args.kinds) - set(P.KINDS))
  if unknown or not args.kinds:
    p.error(f"--kinds: unknown {unknown}; choose from {','.join(P.KINDS)}")
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
  originals, bad = read_originals(args.src)
  if args.limit:
    originals = originals[:args.limit]
  if not originals:
    raise SystemExit(f"{args.src}: no usable records ({len(bad)} unusable, e.g. {bad[:3]})")
  shots = None
  if "new" in args.kinds:  # the source's questions, clustered: the selection's and the rest's
    pairs = {}
    for o in originals:
      pairs.setdefault(o.source, []).append((o.image, P.one_line(o.question), o.answer))
    shots = few_shot.FewShot(pairs, seed=args.seed)
  selection = None
  if args.subset:
    originals, selection = selected(originals, args.subset, args.src)
  originals, no_image = with_images(originals, os.path.abspath(args.images))
  bad += no_image
  if not originals:
    raise SystemExit(f"--images {args.images}: no record's image can be read there (e.g. "
                     f"{no_image[0]['detail']}); is it the folder the records' paths start in?")
  planned = plan(originals, args.kinds, os.path.abspath(args.images), shots)
  os.makedirs(args.out, exist_ok=True)
  backend = make_backend(args)
  store = os.path.join(args.out, "responses.jsonl")
  try:
    responses, asked = ask(backend, planned, store, not args.no_progress, answered_by(backend))
  except Refused as e:
    raise SystemExit(f"augment: stopped: {e}. Check --url, --model and the key in "
                     f"${args.api_key_env}; the answers received before are kept in {store} "
                     "and a rerun asks only for the rest") from None
  except KeyboardInterrupt:
    raise SystemExit(f"augment: interrupted; every answer received (those in flight "
                     f"included) is kept in {store}: rerun the same command to ask only for "
                     "the rest") from None
  return finish(args, backend, originals, bad, planned, responses, asked, selection)


def selected(originals: list[Original], path: str, src: str) -> tuple[list[Original], dict]:
  """The originals a selection keeps (Math-LLaVA augments its 40K selected images, not the
  pool), and what the report says of it: selected ids that --src does not hold are counted and
  listed, and a selection none of whose ids are there is an error (another pool's selection)."""
  from mathvlm.data.subset import read_ids
  ids = read_ids(path)
  kept = [o for o in originals if o.id in ids]
  missing = sorted(ids - {o.id for o in kept})
  if not kept:
    raise SystemExit(f"--subset {path}: none of its {len(ids)} record ids is a usable record of "
                     f"{src} (e.g. {missing[:3]}); was it selected from another pool?")
  if missing:
    logging.warning("--subset %s: %d of its %d record ids are not usable records of %s (e.g. %s)",
                path, len(missing), len(ids), src, missing[:3])
  return kept, {"path": os.path.abspath(path), "ids": len(ids), "records": len(kept),
                "missing": {"count": len(missing), "ids": missing}}


def finish(args, backend, originals, bad, planned, responses, asked, selection=None) -> dict:
  records, kinds = merge(planned, responses, originals)
  out_json = os.path.join(args.out, "augmented.json")
  with open(out_json + ".tmp", "w", encoding="utf-8") as f:
    json.dump(records, f, ensure_ascii=False, indent=1)
  os.replace(out_json + ".tmp", out_json)
  failed = sum(k["failed"]["count"] for k in kinds.values())
  report = {"src": os.path.abspath(args.src), **backend.describe(),
            "records": len(originals), "images": len(by_image(originals)),
            "unusable_records": {"count": len(bad), "ids": bad},
            **({"subset": selection} if selection else {}),
            "requests": len(planned), "asked": asked, "reused": len(planned) - asked,
            "written": len(records), "kinds": kinds}
  with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, ensure_ascii=False, indent=1)
  line = "; ".join(f"{k}: {v['accepted']['count']} accepted of {v['requests']} requests"
                   for k, v in kinds.items())
  print(f"augment: {len(records)} pairs written to {out_json} ({line}); asked {asked}, reused "
        f"{len(planned) - asked}; {failed} failed; {len(bad)} records unusable (no image, "
        f"malformed: unusable_records); report {args.out}/report.json")
  if failed:
    raise SystemExit(f"augment: {failed} requests failed after their retries (listed in "
                     f"report.json); rerun the same command to ask only for those")
  return report


if __name__ == "__main__":
  main()
