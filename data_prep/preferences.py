"""DPO preference pairs (image, prompt, chosen, rejected) from JSON lines, as an ArrayRecord
dataset.

  python -m data_prep.preferences --json FILE.jsonl --images DIR --out DATA_DIR \
      [--num_shards N] [--workers W] [--strict] [--max_bad_fraction F]

A line is `{"id" (optional: else "line N"), "image": <path under DIR> (optional), "prompt":
"...<image>...", "chosen": "...", "rejected": "..."}`; the prompt carries `<image>` where the
image goes (exactly one when there is an image, none without); `chosen` and `rejected` hold
none (a bad record, as `<image>` in an answer turn is: training would drop the pair later as
`image_count`, counted but never named by line).
"""

import argparse
import os


from data_prep import common
from mathvlm.data import records


class Preferences(common.ShardedBuilder, skip_registration=True):
  """Preference pairs: id, image (encoded bytes), prompt, chosen, rejected."""
  name = "preferences"

  features = staticmethod(records.preference_schema)


def convert(item: tuple, options: dict) -> list:
  key, _, _, payload = item
  rec = common.parse(payload)
  rid = common.record_id(rec, key)
  try:
    fields = {k: rec.get(k) for k in ("prompt", "chosen", "rejected")}
    for k, v in fields.items():
      if not isinstance(v, str):
        raise common.BadRecord("malformed_record", f"`{k}` must be a string, got {v!r:.80}")
    if not fields["prompt"].strip():
      raise common.BadRecord("empty_question", "empty `prompt`")
    for k in ("chosen", "rejected"):
      if not fields[k].strip():
        raise common.BadRecord("empty_answer", f"empty `{k}`")
    if fields["chosen"].strip() == fields["rejected"].strip():
      raise common.BadRecord("identical_pair", "`chosen` equals `rejected`")
    for k in ("chosen", "rejected"):  # the image belongs in the prompt (as in an answer turn)
      if records.IMAGE_TOKEN in fields[k]:
        raise common.BadRecord("missing_image_token", f"`{k}` holds `{records.IMAGE_TOKEN}`: the "
                               "image belongs in the prompt, not in a response")
    paths = common.record_images(rec, options["max_images"])
    common.check_image_tokens(fields["prompt"].count(records.IMAGE_TOKEN), len(paths))
    image = common.read_image(os.path.join(options["images"], paths[0])) if paths else b""
    image = common.prepare_image(image, options)
  except common.BadRecord as e:
    e.key = rid
    raise
  return [{"id": rid, "image": image, **fields}]


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m data_prep.preferences",
                              description=__doc__.split("\n")[0])
  p.add_argument("--json", required=True, help="preference pairs, .jsonl (or a .json list)")
  p.add_argument("--images", default=".", help="folder the records' image paths start in")
  common.add_run_flags(p, Preferences.name)
  args = p.parse_args(argv)
  items = common.load_json_items(args.json)
  options = {"images": os.path.abspath(args.images), "max_images": args.max_images}
  return common.run_main(common.Spec(Preferences, convert), args, items, options, [args.json])


if __name__ == "__main__":
  main()
