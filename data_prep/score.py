"""Score every image of a pool with Math-LLaVA's scorers: one JSON line per image.

  python -m data_prep.score --ckpt clarity=RUN_A --ckpt complexity=RUN_B \
      --data DATA_DIR/mathv360k --out scores.jsonl [--batch 256] [--workers 8]
  python -m data_prep.score --ckpt clarity=RUN_A --ckpt complexity=RUN_B \
      --data train_samples_all_tuning.json --images data_images --out scores.jsonl

The scorers: `--ckpt LABEL=DIR`, once per scorer, where DIR is a classify run's workdir (or its
`model/` folder) and LABEL names the field its argmax is written to; `data_prep.select` reads
`clarity` (0 blurred, 1 clear) and `complexity` (levels 0..3). Each line:

  {"id": ..., "source": ..., "records": [record ids showing this image],
   "clarity": 1, "clarity_probs": [p0, p1], "complexity": 2, "complexity_probs": [p0, .., p3]}

--data is a built dataset folder (`DATA_DIR/<name>`, from any builder), whose records are grouped
by image content (the image id is the first record's id, with the image's hash when that id
already names another image); or a JSON list / JSONL of records with an image path under
--images (MathV360K, the engine's instruct.json, a labelled file), grouped by path (the image id
is the path). `source` is the record's `source` (or `domain`) field, else the
`<Source>/images/...` folder of MathV360K's layout. `records` lets a selection of images select
every QA record of those images (`mathvlm.data.subset`). Images that cannot be read are not
scored: they are listed with their ids in OUT's `.report.json` next to the counts, never dropped
silently; so are a JSON pool's text-only records (`no_image`) and its `malformed` ones, a
record whose image path sits under another field (`images`: a misspelled `image`) among them,
as the builders refuse it (`common.record_images`). With `--shard I/N` the report's `images`,
`scored` and `unreadable` are the shard's, and its pool counts (`pool_images`, `records` and
what could not be an image) the whole pool's, the same in every shard's report: sum the first
over shards, not the second. When no image can be read (a wrong --images), the run exits 1
after writing its report. Batched and jitted, each batch split over all devices
(`mathvlm.eval.image_scores`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import io
import json
import os
from typing import Callable, NamedTuple

import tqdm
from PIL import Image

from data_prep import common, labelled_images
from mathvlm.data import records
from mathvlm.data.image import ASPECTS, to_pixels


class Item(NamedTuple):
  """One image of the pool: its id, source, the record ids that show it, and how to read it."""
  id: str
  source: str
  records: list
  load: Callable[[], bytes]


# ---------------------------------------------------------------------------------------------
# The pool: images grouped from a built dataset or a JSON file.

def items_from_dataset(folder: str, progress: bool = True) -> tuple[list[Item], dict]:
  """A built dataset's images, grouped by content; text-only records are counted, not scored."""
  data_dir, name = os.path.split(os.path.normpath(folder))
  try:
    ds = records.read(data_dir, name)
  except Exception as e:  # tfds raises several types for a folder that is not a dataset
    raise SystemExit(f"--data {folder}: not a built dataset folder (DATA_DIR/<name>) nor a "
                     f".json/.jsonl file: {type(e).__name__}: {e}") from None
  by_hash, items, text_only, names = {}, [], [], set()
  for i in tqdm.trange(len(ds), desc="read", unit="rec", disable=not progress):
    rec = ds[i]
    if not rec["image"]:
      text_only.append(rec["id"])
      continue
    h = hashlib.sha256(rec["image"]).hexdigest()
    if h in by_hash:
      by_hash[h].records.append(rec["id"])
      continue
    by_hash[h] = Item(image_id(rec["id"], h, names), rec.get("source") or "unknown",
                      [rec["id"]], lambda i=i: ds[i]["image"])
    items.append(by_hash[h])
  return items, {"records": len(ds), "text_only": {"count": len(text_only), "ids": text_only}}


def image_id(first: str, digest: str, names: set) -> str:
  """An image's name: its first record's id, or, when that id already names another image (a
  source that repeats ids; the builders keep both records), the id with the image's content
  hash, so that no two score lines share an id (select refuses scores that do)."""
  name = first if first not in names else f"{first}@{digest[:12]}"
  names.add(name)
  return name


def items_from_json(path: str, images: str, image_fields: list[str]) -> tuple[list[Item], dict]:
  """A JSON/JSONL file's images, grouped by path. Records without an image path are counted, and
  those that cannot be read or hold their path under another field (`pool_image`) too."""
  by_path, items, no_image, malformed = {}, [], [], []
  entries = common.load_json_items(path)
  for key, where, _, payload in entries:
    try:
      rec = common.parse(payload)
      rid = common.record_id(rec, key)
      rel = pool_image(rec, image_fields)
    except common.BadRecord as e:
      (no_image if "no image path" in e.detail else malformed).append(
          {"id": key, "at": where, "detail": e.detail})
      continue
    if rel in by_path:
      by_path[rel].records.append(rid)
      continue
    full = os.path.join(images, rel)
    by_path[rel] = Item(rel, common.source_of(rec, rel) or "unknown", [rid],
                        lambda full=full: _read(full))
    items.append(by_path[rel])
  return items, {"records": len(entries), "no_image": {"count": len(no_image), "ids": no_image},
                 "malformed": {"count": len(malformed), "ids": malformed}}


def pool_image(rec: dict, fields: list[str]) -> str:
  """The record's image path under `fields`. A record without one is text-only (BadRecord "no
  image path", counted in `no_image`) unless another field holds an image file's path (`images`,
  `image_path`: a misspelled field): malformed, named, as the builders' `common.record_images`
  refuses it, rather than counted among the text-only records and its image never scored."""
  if not any(rec.get(f) not in (None, "") for f in fields):
    common.refuse_stray_image_path(rec, fields, fix=" (or read it with --image_field)")
  return labelled_images.image_path(rec, fields)


def _read(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


# ---------------------------------------------------------------------------------------------
# Scoring.

def pixels_for(item: Item, shapes: set[tuple[int, str]]) -> dict:
  """{(size, aspect): uint8 [size, size, 3]} for each scorer's input shape, or {"error": why}."""
  try:
    with Image.open(io.BytesIO(item.load())) as im:
      im.load()
      return {(s, a): to_pixels(im, s, a) for s, a in shapes}
  except Exception as e:  # noqa: BLE001 - PIL raises many types: OSError, SyntaxError, bombs..
    return {"error": f"{type(e).__name__}: {e}"}


def batches(items: list[Item], batch: int, shapes: set[tuple[int, str]], workers: int):
  """(items, decoded) per batch; decoding runs in threads, one batch ahead. The batch ahead is
  handed out by a thread of its own: on the decoding pool it would wait for its items queued
  behind it, for ever with one worker."""
  with concurrent.futures.ThreadPoolExecutor(workers) as pool, \
       concurrent.futures.ThreadPoolExecutor(1) as prefetch:
    decode = lambda chunk: list(pool.map(lambda it: pixels_for(it, shapes), chunk))  # noqa
    chunks = [items[i:i + batch] for i in range(0, len(items), batch)]
    ahead = prefetch.submit(decode, chunks[0]) if chunks else None
    for k, chunk in enumerate(chunks):
      decoded = ahead.result()
      ahead = prefetch.submit(decode, chunks[k + 1]) if k + 1 < len(chunks) else None
      yield chunk, decoded


def score_items(items, scorers: dict, *, batch: int, aspects: dict[str, str], workers: int,
                out_file, progress: bool = True) -> list[dict]:
  """Writes one line per scorable item to `out_file`; returns the unreadable ones. aspects:
  {label: how its scorer's images were shaped in training} (`scorer_aspects`)."""
  import numpy as np
  shape = {name: (s.image_size, aspects[name]) for name, s in scorers.items()}
  unreadable = []
  bar = tqdm.tqdm(total=len(items), desc="score", unit="img", disable=not progress)
  for chunk, decoded in batches(items, batch, set(shape.values()), workers):
    ok = [(it, d) for it, d in zip(chunk, decoded) if "error" not in d]
    unreadable += [{"id": it.id, "detail": d["error"]} for it, d in zip(chunk, decoded)
                   if "error" in d]
    if ok:
      handles = {name: s.start(np.stack([d[shape[name]] for _, d in ok]))
                 for name, s in scorers.items()}
      probs = {name: s.finish(handles[name]) for name, s in scorers.items()}
      for j, (it, _) in enumerate(ok):
        line = {"id": it.id, "source": it.source, "records": it.records}
        for name, p in probs.items():
          line[name] = int(np.argmax(p[j]))
          line[f"{name}_probs"] = [round(float(x), 6) for x in p[j]]
        out_file.write(json.dumps(line, ensure_ascii=False) + "\n")
    bar.update(len(chunk))
  bar.close()
  return unreadable


# ---------------------------------------------------------------------------------------------
# Command line.

def parse_ckpts(specs: list[str]) -> dict[str, str]:
  out = {}
  for spec in specs:
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
      raise SystemExit(f"--ckpt {spec!r}: write LABEL=DIR, e.g. --ckpt clarity=runs/clarity "
                       f"--ckpt complexity=runs/complexity (LABEL is the output field)")
    if label in out or label in ("id", "source", "records"):
      raise SystemExit(f"--ckpt {spec!r}: label {label!r} is used twice or is a reserved field")
    out[label] = path
  return out


def shard_of(items: list, spec: str) -> list:
  """'I/N' -> the I-th of N contiguous parts (0-based), for one command per host."""
  try:
    i, n = (int(x) for x in spec.split("/"))
    assert 0 <= i < n
  except (ValueError, AssertionError):
    raise SystemExit(f"--shard {spec!r}: expected I/N with 0 <= I < N, e.g. 0/4") from None
  return items[len(items) * i // n:len(items) * (i + 1) // n]


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m data_prep.score",
                              description=__doc__.split("\n")[0])
  p.add_argument("--ckpt", action="append", required=True, help="LABEL=DIR, once per scorer")
  p.add_argument("--data", required=True, help="built dataset folder, or a .json/.jsonl file")
  p.add_argument("--images", help="with a JSON --data: the folder its image paths start in")
  p.add_argument("--image_field", default=labelled_images.IMAGE_FIELDS)
  p.add_argument("--out", required=True, help="scores.jsonl (a .report.json goes beside it)")
  p.add_argument("--batch", type=int, default=256, help="images per step, over all devices")
  p.add_argument("--workers", type=int, default=8, help="image-decoding threads")
  p.add_argument("--image_aspect", default=None, choices=ASPECTS,
                 help="how every scorer's images are shaped (default: each as it was trained, "
                      "data.image_aspect in its config.json, else pad)")
  p.add_argument("--shard", default="0/1", help="I/N: score the I-th of N parts of the pool")
  p.add_argument("--no_progress", action="store_true")
  args = p.parse_args(argv)
  if args.workers < 1:
    raise SystemExit(f"--workers {args.workers}: give the number of image-decoding threads, "
                     f"1 or more (e.g. --workers 8)")
  ckpts = parse_ckpts(args.ckpt)
  if os.path.isfile(args.data):
    if not args.images:
      p.error("a JSON --data needs --images DIR (the folder its image paths start in)")
    if not os.path.isdir(args.images):  # every image "unreadable", and the run exited 0
      p.error(f"--images {args.images} is not a folder: give the folder the image paths of "
              f"{args.data} start in")
    items, counts = items_from_json(args.data, args.images,
                                    [f for f in args.image_field.split(",") if f])
  else:
    items, counts = items_from_dataset(args.data, not args.no_progress)
  counts = {"shard": args.shard, "pool_images": len(items), **counts}
  items = shard_of(items, args.shard)
  if not items:
    raise SystemExit(f"--data {args.data}: no images to score ({counts})")
  return run(args, ckpts, items, counts)


def scorer_aspects(ckpts: dict[str, str], given: str | None) -> dict[str, str]:
  """{label: image_aspect}: --image_aspect where given, else each scorer's own training's (a
  clarity and a complexity scorer may have been trained differently)."""
  from mathvlm import checkpoint
  return {label: checkpoint.input_setting("image_aspect", given,
                                          checkpoint.recorded_inputs(path), "pad", path)
          for label, path in ckpts.items()}


def run(args, ckpts: dict, items: list[Item], counts: dict) -> dict:
  from mathvlm.eval import image_scores as scoring
  mesh = scoring.data_mesh()
  scorers = {label: scoring.Scorer(scoring.load_classifier(path, mesh)[0], args.batch, mesh)
             for label, path in ckpts.items()}
  aspects = scorer_aspects(ckpts, args.image_aspect)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  tmp = f"{args.out}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    unreadable = score_items(items, scorers, batch=args.batch, aspects=aspects,
                             workers=args.workers, out_file=f, progress=not args.no_progress)
  os.replace(tmp, args.out)
  report = {"scores": os.path.abspath(args.out), "images": len(items),
            "scored": len(items) - len(unreadable), **counts,
            "unreadable": {"count": len(unreadable), "ids": unreadable},
            "scorers": {k: {"ckpt": os.path.abspath(v), "classes": s.num_classes,
                            "image_size": s.image_size, "image_aspect": aspects[k]}
                        for (k, v), s in
                        zip(ckpts.items(), scorers.values())},
            "devices": int(mesh.devices.size), "batch": next(iter(scorers.values())).batch_size}
  report_path = os.path.splitext(args.out)[0] + ".report.json"
  with open(report_path, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1, ensure_ascii=False)
  print(f"score: {report['scored']} of {report['images']} images scored on {report['devices']} "
        f"device(s), {len(unreadable)} unreadable; {args.out}, report {report_path}")
  if not report["scored"]:  # an empty scores file, exit 0: select then found "no score lines"
    raise SystemExit(f"score: none of the {len(items)} images could be read (e.g. "
                     f"{unreadable[0]['detail']}); is --images the folder the paths start in? "
                     f"All are listed in {report_path}")
  return report


if __name__ == "__main__":
  main()
