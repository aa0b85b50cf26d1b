"""DPO pairs the input pipeline drops: one pair, one count (data_report.json counts pairs)."""

import collections

from mathvlm.data.conversations import PreferenceSource
from mathvlm.data.pipeline import make_dataset, pop_dropped


def test_a_preference_pair_whose_image_fails_counts_one_drop_not_two():
  """A bad image fails both rows of its pair (chosen and rejected); data_report.json counts
  pairs (`examples`), so the pair is one drop, in the source's counter and in the batches."""
  records = [{"id": f"p{i}", "image": b"not an image", "prompt": "<image>\nWhat is 1 + 3?",
              "chosen": "4", "rejected": "5"} for i in range(4)]
  src = PreferenceSource(records, tokenizer=None, template="vicuna_v1", image_size=8,
                         image_token_id=3, image_seq_len=4, max_len=64)
  counted = collections.Counter()
  for batch in make_dataset(src, global_batch=4, seed=0):
    pop_dropped(batch, counted)
  assert counted == {"bad_image": 4} and src.dropped == {"bad_image": 4}
  assert all(src[i]["loss_mask"].sum() == 0 for i in range(4))
