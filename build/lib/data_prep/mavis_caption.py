"""MAVIS-Caption (LLaVA-format JSON of diagram/caption pairs) as an ArrayRecord dataset.

  python -m data_prep.mavis_caption --json FILE.json|FILE.jsonl --images DIR --out DATA_DIR \
      [--source NAME] [--num_shards N] [--workers W] [--strict] [--max_bad_fraction F]

The release is LLaVA-format, so checking and encoding are llava_json's; `source` is
`mavis_caption` unless --source says otherwise.
"""

from data_prep import common, llava_json
from mathvlm.data import records


class MavisCaption(common.ShardedBuilder, skip_registration=True):
  """MAVIS-Caption: id, source, image (encoded bytes), conversations (JSON)."""
  name = "mavis_caption"
  features = staticmethod(records.conversation_schema)


def main(argv=None):
  return llava_json.run(MavisCaption, argv, "mavis_caption")


if __name__ == "__main__":
  main()
