"""Images with integer labels (Math-LLaVA's clarity and complexity) as an ArrayRecord dataset.

  python -m data_prep.labelled_images --json FILE.json|FILE.jsonl --images DIR \
      --labels clarity,complexity [--num_classes 2,4] --out DATA_DIR \
      [--image_field image] [--source NAME] [--num_shards N] [--workers W] [--strict]

Any JSON list or JSON-lines file whose records carry an image path (under DIR) and one integer
field per label. The data engine's `instruct.json` works as it is: its records have `clarity`
(0 blurred / 1 clear) and `complexity` (0-3), their image under `image_vision_dominant` and their
source under `domain`, which the defaults below look for. A record whose label is missing, not
an integer, negative or (with --num_classes) out of range is a `bad_label` in report.json, with
its id; it is never written with a guessed label.

Reading it back: `mathvlm.data.labels.LabelSource(records.read(DATA_DIR, "labelled_images"),
label="complexity", ...)` gives the classify objective's examples.
"""

import argparse
import os

from data_prep import common
from mathvlm.data import records

# Where the image path is looked for, first present wins: a plain `image` field, else the
# MAVIS-Geometry / data-engine layout (its vision-dominant figure, the one without text).
IMAGE_FIELDS = "image,image_vision_dominant"


class LabelledImages(common.ShardedBuilder, skip_registration=True):
  """Labelled images: id, source, image (encoded bytes), labels (JSON {name: int})."""
  name = "labelled_images"
  features = staticmethod(records.label_schema)


def check_label(rec: dict, name: str, num_classes: int | None) -> int:
  """The record's `name` label as an int, or BadRecord("bad_label") saying what is wrong."""
  value = rec.get(name)
  if value is None:
    raise common.BadRecord("bad_label", f"no `{name}` field")
  if isinstance(value, bool) or not isinstance(value, int):
    raise common.BadRecord("bad_label", f"`{name}` is {value!r}, not an integer class")
  if value < 0 or (num_classes is not None and value >= num_classes):
    top = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
    raise common.BadRecord("bad_label", f"`{name}` is {value}, outside {top}")
  return value


def image_path(rec: dict, fields: list[str]) -> str:
  """The first of `fields` the record has, as one relative path."""
  for field in fields:
    if rec.get(field) not in (None, ""):
      paths = common.image_paths(rec[field], 1)
      return paths[0]
  raise common.BadRecord("malformed_record", f"no image path in {', '.join(fields)} "
                         f"(choose the field with --image_field)")


def record_source(rec: dict, default: str | None) -> str:
  if default:
    return default
  return common.source_of(rec) or LabelledImages.name


def convert(item: tuple, options: dict) -> list:
  """One labelled record -> one example; options: images, image_fields, labels, num_classes,
  source (None: from the record's `source` or `domain`)."""
  key, _, _, payload = item
  rec = common.parse(payload)
  rid = common.record_id(rec, key)
  try:
    labels = {name: check_label(rec, name, k)
              for name, k in zip(options["labels"], options["num_classes"])}
    path = image_path(rec, options["image_fields"])
    image = common.read_image(os.path.join(options["images"], path))
    image = common.prepare_image(image, options)
  except common.BadRecord as e:
    e.key = rid
    raise
  return [{"id": rid, "source": record_source(rec, options["source"]), "image": image,
           "labels": common.dumps(labels)}]


def parse_labels(labels: str, num_classes: str) -> tuple[list[str], list[int | None]]:
  """'clarity,complexity' and '2,4' (or '') -> names and class counts (None: unbounded)."""
  names = [n.strip() for n in labels.split(",") if n.strip()]
  if not names or len(set(names)) != len(names):
    raise SystemExit(f"--labels {labels!r}: give one or more distinct label field names, "
                     f"e.g. --labels clarity,complexity")
  if not num_classes:
    return names, [None] * len(names)
  try:
    counts = [int(k) for k in num_classes.split(",")]
  except ValueError:
    counts = []
  if len(counts) != len(names) or any(k < 1 for k in counts):
    raise SystemExit(f"--num_classes {num_classes!r}: give one positive class count per label "
                     f"in --labels {labels!r} (e.g. 2,4 for clarity,complexity)")
  return names, counts


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m data_prep.labelled_images",
                              description=__doc__.split("\n")[0])
  p.add_argument("--json", required=True, help=".json list or .jsonl of labelled records")
  p.add_argument("--images", required=True, help="folder the records' image paths start in")
  p.add_argument("--labels", required=True, help="integer label fields, e.g. clarity,complexity")
  p.add_argument("--num_classes", default="", help="classes per label, e.g. 2,4 (labels must "
                 "then be in 0..K-1); default: any integer >= 0")
  p.add_argument("--image_field", default=IMAGE_FIELDS, help="field(s) holding the image path, "
                 "first present wins")
  p.add_argument("--source", default=None, help="value of `source` (default: the record's "
                 "`source` or `domain` field, else labelled_images)")
  common.add_run_flags(p, LabelledImages.name)
  args = p.parse_args(argv)
  names, counts = parse_labels(args.labels, args.num_classes)
  items = common.load_json_items(args.json)
  options = {"images": os.path.abspath(args.images), "labels": names, "num_classes": counts,
             "image_fields": [f.strip() for f in args.image_field.split(",") if f.strip()],
             "source": args.source}
  return common.run_main(common.Spec(LabelledImages, convert), args, items, options,
                         [args.json])


if __name__ == "__main__":
  main()
