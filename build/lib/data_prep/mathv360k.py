"""MathV360K (Math-LLaVA's instruction data) as an ArrayRecord dataset.

  python -m data_prep.mathv360k --src DIR --out DATA_DIR [--num_shards N] [--workers W] \
      [--strict] [--max_bad_fraction F]
  python -m data_prep.mathv360k --json train_samples_all_tuning.json --images data_images ...

DIR holds `train_samples_all_tuning.json` (one JSON list of LLaVA records) and `data_images/`
with `<Source>/images/<file>`; `source` is that `<Source>`, taken from the record's image path.
"""

import argparse
import os

from data_prep import common, llava_json
from mathvlm.data import records

JSON_NAME = "train_samples_all_tuning.json"
IMAGES_NAME = "data_images"


class Mathv360k(common.ShardedBuilder, skip_registration=True):
  """MathV360K: id, source (from the image path), image (encoded bytes), conversations (JSON)."""
  name = "mathv360k"
  features = staticmethod(records.conversation_schema)


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m data_prep.mathv360k",
                              description=__doc__.split("\n")[0])
  p.add_argument("--src", help=f"folder with {JSON_NAME} and {IMAGES_NAME}/")
  p.add_argument("--json", help=f"the JSON list (default: SRC/{JSON_NAME})")
  p.add_argument("--images", help=f"the image folder (default: SRC/{IMAGES_NAME})")
  common.add_run_flags(p, Mathv360k.name)
  args = p.parse_args(argv)
  json_path = args.json or (args.src and os.path.join(args.src, JSON_NAME))
  images = args.images or (args.src and os.path.join(args.src, IMAGES_NAME))
  if not json_path or not images:
    p.error("give --src DIR, or both --json FILE and --images DIR")
  for path in (json_path, images):
    if not os.path.exists(path):
      raise SystemExit(f"{path} does not exist; --src must be the folder holding {JSON_NAME} "
                       f"and {IMAGES_NAME}/ (or pass --json and --images)")
  items = common.load_json_items(json_path)
  options = {"images": os.path.abspath(images), "max_images": args.max_images, "source": None}
  return common.run_main(common.Spec(Mathv360k, llava_json.convert), args, items, options,
                         [json_path])


if __name__ == "__main__":
  main()
