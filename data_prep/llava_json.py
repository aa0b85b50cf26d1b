"""Any LLaVA-format JSON list or JSON-lines file plus an image folder, as an ArrayRecord dataset.

  python -m data_prep.llava_json --json FILE.json|FILE.jsonl --images DIR --out DATA_DIR \
      [--source NAME] [--num_shards N] [--workers W] [--strict] [--max_bad_fraction F]

A record is `{"id", "image": <path under DIR> (optional), "conversations": [{"from": "human",
"value": ...}, {"from": "gpt", ...}, ...]}`. `convert` here is shared by mathv360k and
mavis_caption, which differ only in their name and where `source` comes from.
"""

import argparse
import os

from data_prep import common
from mathvlm.data import records


class LlavaJson(common.ShardedBuilder, skip_registration=True):
  """LLaVA-format conversations: id, source, image (encoded bytes), conversations (JSON)."""
  name = "llava_json"
  features = staticmethod(records.conversation_schema)


def convert(item: tuple, options: dict) -> list:
  """One LLaVA record -> one example; options: images, max_images, source (None: from path)."""
  key, _, _, payload = item
  rec = common.parse(payload)
  rid = common.record_id(rec, key)
  try:
    paths = common.record_images(rec, options["max_images"])
    turns = common.check_conversations(rec.get("conversations"), len(paths))
    source = options["source"] or common.source_of(rec, paths[0] if paths else None)
    if source is None and paths:
      raise common.BadRecord("malformed_record", f"image path {paths[0]!r} is not "
                             f"<Source>/images/<file> and the record has no source field, so "
                             f"the source is unknown (or give --source)")
    source = source or "text_only"
    image = common.read_image(os.path.join(options["images"], paths[0])) if paths else b""
    image = common.prepare_image(image, options)
  except common.BadRecord as e:
    e.key = rid
    raise
  return [{"id": rid, "source": source, "image": image,
           "conversations": common.dumps(turns)}]


def run(builder, argv, default_source):
  """Shared main of llava_json and mavis_caption."""
  p = argparse.ArgumentParser(prog=f"python -m data_prep.{builder.name}",
                              description=__doc__.split("\n")[0])
  p.add_argument("--json", required=True, help="LLaVA-format .json list or .jsonl file")
  p.add_argument("--images", required=True, help="folder the records' image paths start in")
  p.add_argument("--source", default=default_source, help="value of the `source` field")
  common.add_run_flags(p, builder.name)
  args = p.parse_args(argv)
  items = common.load_json_items(args.json)
  options = {"images": os.path.abspath(args.images), "max_images": args.max_images,
             "source": args.source}
  return common.run_main(common.Spec(builder, convert), args, items, options, [args.json])


def main(argv=None):
  return run(LlavaJson, argv, "llava_json")


if __name__ == "__main__":
  main()
