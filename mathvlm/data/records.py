"""The on-disk record format: the one module the builders (`data_prep`) and the input pipeline
share. Schemas, reading back, decoding, and the vocabulary of bad data.

A built dataset is a TFDS dataset folder (`DATA_DIR/<name>/<version>/`) whose shards are
ArrayRecord files, one serialized example per record (`data_prep/common.py` writes them). Images are
stored as the source file's encoded bytes in a plain bytes feature, never as a
`tfds.features.Image`: read back through `data_source`, an `Image` feature is decoded to a numpy
array (with PIL, so it works without TF), which loses the exact bytes and the format and spends the
decode at read time; the grain pipeline decodes instead. Reading back needs no TensorFlow:

  ds = records.read(DATA_DIR, "mavis_instruct")   # random access, what grain reads
  rec = ds[i]                                      # Text fields as str, image as bytes

`REASONS` is the one vocabulary of bad data: every reason a builder rejects a record for or the
input pipeline drops an example for or cuts it for (`CUT_REASONS`), with the fix; `report.json`
and `data_report.json` name reasons from here and nowhere else.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow_datasets as tfds

VERSION = "1.0.0"
SPLIT = "train"
IMAGE_TOKEN = "<image>"

# reason -> the fix. Builders reject records for these (report.json) ...
BUILD_REASONS = {
  "malformed_json": "fix the JSON syntax of this line (one JSON object per line)",
  "malformed_record": "give the record the fields the builder needs, with the right types",
  "missing_image": "put the image file under the images folder, or fix the record's image path",
  "unreadable_image": "replace the image file: PIL cannot decode it (truncated or not an image)",
  "missing_image_token": "put one `<image>` in the human turn for each image",
  "too_many_image_tokens": "leave exactly one `<image>` per image (a text-only record has none)",
  "too_many_images": "split the record or raise --max_images (the schema stores one image)",
  "empty_answer": "give every answer (gpt turn, chosen/rejected, CoT, final answer) some text",
  "empty_question": "give the question some text",
  "roles_out_of_order": "make the turns alternate human, gpt, ..., starting with human and "
                        "ending with gpt",
  "identical_pair": "a preference pair needs different chosen and rejected answers",
  "bad_label": "give the record each --labels field as an integer class in range (0..K-1 with "
               "--num_classes), or leave the record out",
}
# ... and the input pipeline drops examples for these (kept as zero-loss slots, data_report.json).
DROP_REASONS = {
  "image_truncated": "raise data.max_len: it would cut into the image tokens",
  "no_targets": "raise data.max_len: the prompt fills it and no answer token is left",
  "no_caption": "give the record a caption (the gpt turn) for contrastive training",
  "bad_image": "rebuild the dataset: an image in it cannot be decoded",
  "no_image": "leave text-only records out of image-only training (CLIP-Math, labels): the "
              "record has no image to pair with its caption or label",
  "bad_conversation": "rebuild the dataset: a record's conversation cannot be rendered",
  "image_count": "rebuild the dataset: the record's `<image>` count does not match its images",
  "bad_labels": "rebuild the dataset with data_prep.labelled_images: a record's `labels` field "
                "is not a JSON object",
  "label_range": "set data.num_classes to cover the dataset's labels (its report.json and "
                 "labels lists them), or rebuild it with --num_classes",
  "image_token_in_text": "the record's text tokenizes to the id the model reads as an image "
                         "(model image_token_id): clean the record, or use a model whose image "
                         "token is no text token",
  "end_token_in_text": "clean the record: a turn's text holds the template's end-of-turn marker "
                       "(`</s>`), which tokenizes to the end token; trained, the model would "
                       "learn to stop mid-answer (LLaVA masks such an example whole)",
}
# ... and counts these of examples that train, but on less than their record holds (the example
# keeps its tokens up to data.max_len; data_report.json's `truncated`).
CUT_REASONS = {
  "answer_truncated": "raise data.max_len, or shorten the record's answers: the example trains "
                      "on its answer tokens up to max_len only (the rest, often the final answer "
                      "and the end-of-answer token, is never learned)",
  "caption_truncated": "raise data.max_len (up to the text tower's positions) or shorten the "
                       "captions: the text tower sees the caption's first max_len - 1 tokens and "
                       "the end token only",
}
REASONS = {**BUILD_REASONS, **DROP_REASONS, **CUT_REASONS}


def split_counts(counts) -> tuple[dict, dict]:
  """Counts by reason -> (dropped: examples that trained nothing, truncated: examples cut)."""
  return ({r: n for r, n in counts.items() if r not in CUT_REASONS},
          {r: n for r, n in counts.items() if r in CUT_REASONS})


# ---------------------------------------------------------------------------------------------
# Schemas.

def bytes_feature():
  """Encoded image bytes, kept exactly (b"" for a text-only record)."""
  return tfds.features.Tensor(shape=(), dtype=np.object_)


def text():
  return tfds.features.Text()


def conversation_schema():
  """mathv360k, llava_json and mavis_caption: LLaVA conversations as JSON text."""
  return tfds.features.FeaturesDict({
    "id": text(), "source": text(), "image": bytes_feature(), "conversations": text()})


def instruct_schema():
  """mavis_instruct: one record per (problem, question version), with its answer and options."""
  return tfds.features.FeaturesDict({
    "id": text(), "source": text(), "question_version": text(),
    "image": bytes_feature(), "conversations": text(), "answer": text(),
    "choices": text(), "answer_index": tfds.features.Scalar(dtype=np.int64)})


def preference_schema():
  """preferences: a prompt (with `<image>` where the image goes), chosen and rejected answers."""
  return tfds.features.FeaturesDict({
    "id": text(), "image": bytes_feature(), "prompt": text(),
    "chosen": text(), "rejected": text()})


def label_schema():
  """labelled_images: an image and its integer labels, as JSON text (`{"clarity": 1,
  "complexity": 2}`): any set of label names fits one schema, so a dataset needs no builder of
  its own per label set, and a source picks the label it trains on by name."""
  return tfds.features.FeaturesDict({
    "id": text(), "source": text(), "image": bytes_feature(), "labels": text()})


# ---------------------------------------------------------------------------------------------
# Reading back.

def decode_record(raw: dict) -> dict:
  """A record from `tfds.data_source` with its Text fields as str (image stays bytes)."""
  return {k: v.decode("utf-8") if isinstance(v, bytes) and k != "image" else v
          for k, v in raw.items()}


class Decoded:
  """Random-access source (`__len__`, `__getitem__`) of decoded records, for grain."""

  def __init__(self, source):
    self._source = source

  def __len__(self):
    return len(self._source)

  def __getitem__(self, i):
    return decode_record(self._source[i])

  def __repr__(self):
    return f"Decoded({self._source!r})"


def read(data_dir: str, name: str, split: str = SPLIT) -> Decoded:
  """The built dataset `name` under `data_dir` as a random-access source of decoded dicts. Every
  shard is opened first (`check_shards`), so a damaged one fails here, named, rather than as a
  nameless RuntimeError from the reader in the middle of training."""
  check_built(data_dir, name, split)
  check_shards(data_dir, name, split)
  return Decoded(tfds.data_source(name, data_dir=data_dir, download=False)[split])


def check_built(data_dir: str, name: str, split: str = SPLIT) -> None:
  """A local dataset that is not there (a misspelt data.path or name, a build not run yet) is
  an error naming the folder, the datasets that are there and the fix; TFDS's own error lists
  its catalogue of public datasets (260 lines) and suggests tfds-nightly. Remote paths
  (gs://...) are left to TFDS."""
  if "://" in data_dir or shard_files(data_dir, name, split):
    return
  there = sorted(d for d in os.listdir(data_dir)
                 if os.path.isdir(os.path.join(data_dir, d, VERSION))) if os.path.isdir(
                     data_dir) else []
  raise ValueError(
      f"no built dataset {name!r} under {data_dir}: {os.path.join(data_dir, name, VERSION)} "
      f"holds no {name}-{split}.array_record-* shards (datasets built there: "
      f"{', '.join(there) or 'none'}). Fix: correct data.path / the dataset name, or build it "
      f"first (python -m data_prep.<builder> ... --out {data_dir})")


def shard_files(data_dir: str, name: str, split: str = SPLIT) -> list[str]:
  folder = os.path.join(data_dir, name, VERSION)
  if not os.path.isdir(folder):
    return []
  prefix = f"{name}-{split}.array_record-"
  return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.startswith(prefix))


def check_shards(data_dir: str, name: str, split: str = SPLIT) -> None:
  """Opens each ArrayRecord shard (its footer and index: a few KB each). A file cut short or
  damaged after the build is an error naming it and the fix."""
  from array_record.python import array_record_module
  for path in shard_files(data_dir, name, split):
    try:
      reader = array_record_module.ArrayRecordReader(path, "readahead_buffer_size:0")
      reader.close()
    except (RuntimeError, ValueError, OSError) as e:
      raise ValueError(
          f"{path}: not a whole ArrayRecord shard ({e}). It was cut short or damaged after the "
          f"build. Fix: run the builder of {name!r} again with the same arguments and --out "
          f"{data_dir}; it rebuilds the shards whose file does not match their marker in "
          f"{shard_markers(data_dir, name)}") from None


def shard_markers(data_dir: str, name: str) -> str:
  """The folder of per-shard markers (counts, bad records, record lengths) a build leaves."""
  return os.path.join(data_dir, name, "_shards")


def read_lengths(data_dir: str, name: str) -> tuple[np.ndarray, np.ndarray]:
  """(text lengths, has-image flags) of the built dataset's records, in reading order. Their
  count is checked against the dataset's: a marker left by another build would give lengths of
  records that do not exist, and data.group_by_length would read past the last one."""
  mdir = shard_markers(data_dir, name)
  if not os.path.isdir(mdir):  # a dataset copied without its markers
    raise ValueError(f"{mdir} is missing: data.group_by_length reads the record lengths a build "
                     f"leaves there. Fix: copy it with the dataset, run the builder of {name!r} "
                     f"again with --out {data_dir}, or set data.group_by_length=False")
  rows = []
  for f in sorted(f for f in os.listdir(mdir) if f.endswith(".json")):
    try:
      with open(os.path.join(mdir, f), encoding="utf-8") as fh:
        m = json.load(fh)
    except json.JSONDecodeError as e:  # a marker cut short or damaged after the build
      raise ValueError(f"{mdir}/{f}: not a shard marker ({e}). Fix: run the builder of "
                       f"{name!r} again with --out {data_dir}; it rebuilds the shard of a "
                       "damaged marker") from None
    if not isinstance(m, dict) or "lengths" not in m:
      raise ValueError(f"{mdir}/{f} has no record lengths (built by an older version): rebuild "
                       f"{name} to use data.group_by_length")
    rows += m["lengths"]
  count = len(tfds.data_source(name, data_dir=data_dir, download=False)[SPLIT])
  if len(rows) != count:
    raise ValueError(f"{mdir}: the shard markers give lengths of {len(rows)} records but "
                     f"{name} under {data_dir} has {count}: they are not this build's. Fix: run "
                     f"the builder of {name!r} again with --out {data_dir}; it rewrites them")
  arr = np.asarray(rows, np.int64).reshape(-1, 2)
  return arr[:, 0], arr[:, 1].astype(bool)
