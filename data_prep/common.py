"""Shared machinery of the builders: bad-record reasons, checks, and the sharded ArrayRecord writer.

Why the builders write shards themselves instead of calling `download_and_prepare`:
TFDS's own writer runs in one process (parallelism needs Apache Beam), shuffles records by key
hash, and builds into an `incomplete.*` folder that is thrown away when a run dies, so it can be
neither parallel over processes nor resumed shard by shard. Each builder is still a
`tfds.core.GeneratorBasedBuilder` subclass: it owns the features (the schema) and writes
`dataset_info.json` / `features.json` through TFDS, so the output is an ordinary TFDS dataset
folder; only the shard files are written here, with `ArrayRecordWriter`, in TFDS's layout
(`<name>-train.array_record-0000i-of-0000N`), each record serialized by the builder's own
`features.serialize_example`. The format itself (schemas, reading back, the bad-data reasons) is
`mathvlm.data.records`, which the input pipeline reads with.

Records are split into `num_shards` contiguous ranges of the input, so the order read back is
the input order whatever the number of workers. Workers validate and serialize chunks; the main
process writes each shard to a temporary name, renames it when complete, then writes a marker
`<out>/<name>/_shards/<i>.json` with the shard's counts and bad records. A re-run skips every
shard whose marker matches the run's fingerprint (input files' sizes and mtimes, options,
shard count) and whose file has the recorded size; `report.json` is assembled from the markers.
A shard with a missing or unreadable image is always rebuilt: the fingerprint cannot see image
files, and the report's fix for those ("put the image file under the images folder") must work.
Under --strict a shard holding any bad record is rebuilt too, so the run stops at it.
"""

import codecs
import collections
import dataclasses
import hashlib
import importlib
import io
import itertools
import json
import logging
import multiprocessing
import os
import re
import sys
from typing import Any, Callable, Iterable

import tensorflow_datasets as tfds
import tqdm
from array_record.python.array_record_module import ArrayRecordWriter
from PIL import Image

from mathvlm.data import records
from mathvlm.data.image import ASPECTS

log = logging.getLogger(__name__)

SPLIT, VERSION, IMAGE_TOKEN, REASONS = (records.SPLIT, records.VERSION, records.IMAGE_TOKEN,
                                      records.BUILD_REASONS)


class BadRecord(Exception):
  """One input record that cannot be written; `key`/`where`/`file` are filled in by the runner."""

  def __init__(self, reason: str, detail: str, key: str | None = None):
    assert reason in REASONS, reason
    super().__init__(reason, detail, key)
    self.reason, self.detail, self.key = reason, detail, key
    self.where = self.file = None

  def entry(self) -> dict:
    return {"id": self.key, "at": self.where, "file": self.file, "detail": self.detail}

  def __str__(self):
    return (f"bad record {self.key!r} ({self.where} of {self.file}): {self.reason}: "
            f"{self.detail}. Fix: {REASONS[self.reason]}; or run without --strict to count "
            f"and skip bad records.")


class TooManyBadRecords(Exception):
  """The bad share of a run passed --max_bad_fraction (raised after report.json is written)."""


# ---------------------------------------------------------------------------------------------
# Features and reading back.

class ShardedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A TFDS builder whose shards are written by `build` (see the module docstring).

  Subclasses set `name` and `features`. Builders are not registered with TFDS, so reading by
  name always goes through the files on disk, in every process, whether or not `data_prep`
  was imported.
  """

  VERSION = tfds.core.Version(VERSION)
  features: Callable[[], tfds.features.FeaturesDict]

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=type(self).features(),
                                 description=type(self).__doc__)

  def _split_generators(self, dl_manager):
    raise RuntimeError(f"{self.name} is built by `python -m data_prep.{self.name} ... --out "
                       f"DATA_DIR`, not by download_and_prepare; then read it with "
                       f"tfds.data_source({self.name!r}, data_dir=DATA_DIR).")

  def _generate_examples(self):
    raise RuntimeError("see _split_generators")


# ---------------------------------------------------------------------------------------------
# Checks shared by the builders (pure, raise BadRecord).

def parse(payload: Any) -> dict:
  """A JSON-lines payload is a str (parsed here, in the worker), or its bytes when they are not
  UTF-8 (`load_json_items`); a JSON-list one a dict."""
  if isinstance(payload, bytes):
    try:
      payload = payload.decode("utf-8")
    except UnicodeDecodeError as e:
      raise BadRecord("malformed_json", f"not UTF-8 text: byte {payload[e.start]:#04x} at "
                      f"column {e.start + 1}; re-encode the file as UTF-8") from None
  if isinstance(payload, str):
    try:
      payload = json.loads(payload)
    except json.JSONDecodeError as e:
      raise BadRecord("malformed_json", f"not JSON: {e}") from None
  if not isinstance(payload, dict):
    raise BadRecord("malformed_record", f"a record must be a JSON object, got "
                    f"{type(payload).__name__}")
  return payload


SOURCE_FIELDS = ("source", "domain")


def source_of(rec: dict, image: str | None = None) -> str | None:
  """The dataset a record comes from, by one rule for every tool, so that the builders', the
  scorer's and the augmenter's sources of one record agree (select's ratio is per source): its
  `source` or `domain` field, else the first folder of its image path (MathV360K's
  `<Source>/images/<file>`), else None (each caller says what that means)."""
  for field in SOURCE_FIELDS:
    if isinstance(rec.get(field), str) and rec[field]:
      return rec[field]
  parts = (image or "").replace("\\", "/").split("/")
  return parts[0] if len(parts) >= 2 and parts[0] else None


def record_id(rec: dict, fallback: str) -> str:
  rid = rec.get("id")
  return fallback if rid is None or rid == "" else str(rid)


def read_image(path: str) -> bytes:
  """The file's bytes, after checking PIL can fully decode them."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError:
    raise BadRecord("missing_image", f"no file {path}") from None
  except OSError as e:
    raise BadRecord("missing_image", f"cannot read {path}: {e}") from None
  check_image_bytes(data, path)
  return data


def check_image_bytes(data: bytes, what: str) -> bytes:
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()
  except Exception as e:  # PIL raises many types: OSError, SyntaxError, DecompressionBombError..
    raise BadRecord("unreadable_image", f"{what}: {type(e).__name__}: {e}") from None
  return data


def image_paths(value: Any, max_images: int) -> list[str]:
  """A record's `image` field (absent, a path, or a list of paths) as a list of paths."""
  if value is None or value == "":
    return []
  paths = value if isinstance(value, list) else [value]
  if not all(isinstance(p, str) and p for p in paths):
    raise BadRecord("malformed_record", f"`image` must be a path or a list of paths, got "
                    f"{value!r}")
  if len(paths) > max_images:
    raise BadRecord("too_many_images", f"{len(paths)} images, --max_images is {max_images}")
  return paths


# An image file's path, by its name: a field other than `image` holding one
IMAGE_FILE = re.compile(r"\.(?:png|jpe?g|gif|bmp|webp|tiff?)$", re.I)


def record_images(rec: dict, max_images: int) -> list[str]:
  """The record's image paths (its `image` field, `image_paths`). A record without them whose
  other field holds an image file's path ("images", "img", "image_path": a misspelled
  `image`) is a bad record naming the field: without `<image>` in its text it was written as a
  text-only record, its image never seen, and nothing said so. The `id` (which may name a
  file) and extra fields that hold no image path (`source`, `model`, a dataset's own keys)
  are left alone."""
  paths = image_paths(rec.get("image"), max_images)
  if not paths:
    refuse_stray_image_path(rec)
  return paths


def refuse_stray_image_path(rec: dict, fields=("image",), fix: str = "") -> None:
  """`record_images`'s rule for a record without an image in `fields`: BadRecord
  ("malformed_record") naming the first other field that holds an image file's path (the `id`
  aside). fix: another way out, said after naming the field."""
  for key, value in rec.items():
    if key not in (*fields, "id") and _image_path_in(value):
      named = " or ".join(f"`{f}`" for f in fields)
      raise BadRecord("malformed_record", f"no {named} field, but `{key}` holds the image path "
                      f"{value!r:.80}: name the field `{fields[0]}`{fix}, or drop the path for a "
                      "text-only record")


def _image_path_in(value: Any) -> bool:
  """Whether a field's value is an image file's path, or a list of them."""
  values = value if isinstance(value, list) and value else [value]
  return all(isinstance(v, str) and IMAGE_FILE.search(v.strip()) for v in values)


def check_conversations(convs: Any, num_images: int) -> list[dict]:
  """The LLaVA turn list, checked: alternating human/gpt, every turn non-empty (training refuses an
  empty turn too: LLaVA has no rendering for it), one `<image>` per image, in a human turn.
  Returns the turns reduced to {"from", "value"}."""
  if not isinstance(convs, list) or not convs:
    raise BadRecord("malformed_record", "`conversations` must be a non-empty list of turns")
  turns = []
  for i, t in enumerate(convs):
    if not (isinstance(t, dict) and isinstance(t.get("from"), str)
            and isinstance(t.get("value"), str)):
      raise BadRecord("malformed_record", f"turn {i} must be {{'from': str, 'value': str}}, "
                      f"got {t!r:.80}")
    turns.append({"from": t["from"], "value": t["value"]})
  roles = [t["from"] for t in turns]
  want = ["human" if i % 2 == 0 else "gpt" for i in range(len(turns))]
  if roles != want or len(turns) % 2:
    raise BadRecord("roles_out_of_order", f"roles {roles}")
  for i, t in enumerate(turns):
    if not t["value"].strip():
      raise BadRecord("empty_answer" if t["from"] == "gpt" else "empty_question",
                      f"turn {i} ({t['from']}) is empty")
  check_image_tokens(sum(t["value"].count(IMAGE_TOKEN) for t in turns), num_images)
  check_image_in_question(turns)
  return turns


def check_image_in_question(turns: list[dict]):
  """An `<image>` in an answer is refused: training moves it to the front of ITS turn (LLaVA's
  preprocess_multimodal), so the question was asked without the image and the answer trained
  on it, while the count alone matched and the record was written."""
  for i, t in enumerate(turns):
    if t["from"] == "gpt" and IMAGE_TOKEN in t["value"]:
      raise BadRecord("missing_image_token", f"turn {i} (gpt) holds `{IMAGE_TOKEN}`: the image "
                      f"belongs in the question (a human turn), not in the answer")


def check_image_tokens(num_tokens: int, num_images: int):
  if num_tokens < num_images:
    raise BadRecord("missing_image_token", f"{num_images} image(s) but {num_tokens} "
                    f"`{IMAGE_TOKEN}` in the text")
  if num_tokens > num_images:
    raise BadRecord("too_many_image_tokens", f"{num_tokens} `{IMAGE_TOKEN}` in the text but "
                    f"{num_images} image(s)")


def dumps(obj) -> str:
  return json.dumps(obj, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Loading inputs: items are (key, where, file, payload); payload is a dict or a JSON line.

def _line_text(raw: bytes) -> str | bytes:
  """A JSON line as text, or its bytes when they are not UTF-8: `parse` makes those one bad
  record (a Latin-1 byte in one line used to stop the whole build with a bare
  UnicodeDecodeError naming no file or line)."""
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    return raw


def load_json_items(path: str) -> list[tuple]:
  """A `.jsonl` file line by line (parsed later, so a bad line is one bad record), any other
  file as one JSON list of records. Read as utf-8-sig: a byte-order mark (Windows editors write
  one) would make the first record malformed JSON."""
  items = []
  if path.endswith(".jsonl"):
    with open(path, "rb") as f:
      for n, raw in enumerate(f, 1):
        line = _line_text(raw[len(codecs.BOM_UTF8):] if n == 1 and raw.startswith(
            codecs.BOM_UTF8) else raw)
        if line.strip():
          items.append((f"line {n}", f"line {n}", path, line))
    return items
  with open(path, encoding="utf-8-sig") as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise SystemExit(f"{path} is not a JSON file ({e}); if it holds one record per line, "
                       f"name it .jsonl") from None
    except UnicodeDecodeError as e:
      raise SystemExit(f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x}: {e.reason}); "
                       "re-encode it as UTF-8") from None
  if not isinstance(data, list):
    raise SystemExit(f"{path} must hold a JSON list of records, got {type(data).__name__}")
  for n, rec in enumerate(data):
    key = record_id(rec, f"index {n}") if isinstance(rec, dict) else f"index {n}"
    # an element that is not an object travels JSON-encoded, so `parse` names its type: a string
    # was parsed as a JSON-lines line (a record encoded twice was built; other text was
    # "not JSON", with the advice to fix the file's syntax)
    items.append((key, f"index {n}", path, rec if isinstance(rec, dict) else json.dumps(rec)))
  return items


# ---------------------------------------------------------------------------------------------
# The sharded, parallel, resumable writer.

@dataclasses.dataclass(frozen=True)
class Spec:
  """What `build` needs of a builder module. `convert(item, options)` returns a list whose
  entries are examples (dicts of the features) or BadRecord; it must be a top-level function
  (it is sent to worker processes)."""
  builder: type
  convert: Callable[[tuple, dict], list]

  @property
  def name(self):
    return self.builder.name


_FEATURES = {}


def _features(builder):
  """(features, example serializer) of a builder, made once per process."""
  if builder.name not in _FEATURES:
    from tensorflow_datasets.core import example_serializer
    features = builder.features()
    _FEATURES[builder.name] = (features, example_serializer.ExampleSerializer(
        features.get_serialized_info()))
  return _FEATURES[builder.name]


def serialize(builder, record: dict) -> bytes:
  """The record as TFDS writes it (`features.serialize_example`), but deterministically: the
  proto's feature map is written in key order, not in an order that changes with each
  process's hash seed, so the shards are byte-identical across runs, worker counts and
  runners."""
  features, serializer = _features(builder)
  proto = serializer.get_tf_example(features.encode_example(record))
  return proto.SerializeToString(deterministic=True)


def _work(task):
  """Worker: convert and serialize one chunk; returns [("ok", bytes) | ("bad", BadRecord)]."""
  spec, options, chunk = task
  out = []
  for item in chunk:
    key, where, file, _ = item
    try:
      results = spec.convert(item, options)
    except BadRecord as e:
      results = [e]
    for r in results:
      if isinstance(r, BadRecord):
        r.key, r.where, r.file = r.key or key, where, file
        out.append(("bad", r))
      else:
        out.append(("ok", serialize(spec.builder, r), length_of(r)))
  return out


def length_of(record: dict) -> list[int]:
  """[characters of text, has image]: what length grouping needs, kept per record in the shard
  markers so training never has to read the (image-heavy) records to sort them."""
  text = sum(len(record.get(k) or "") for k in ("conversations", "prompt", "chosen", "rejected"))
  return [int(text), int(bool(record.get("image")))]


def _shard_name(name, i, n):
  return f"{name}-{SPLIT}.array_record-{i:05d}-of-{n:05d}"


def fingerprint(name: str, sources: Iterable[str], options: dict, num_shards: int,
                num_items: int) -> str:
  """What decides a shard's content: input files (path, size, mtime) in the order given,
  options, shard plan. The order is the records' order (mavis_instruct's --src a b): sorted, a
  rerun as --src b a resumed shard 0 from a's records and wrote a twice and b never."""
  h = hashlib.sha256()
  for p in sources:
    st = os.stat(p)
    h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
  h.update(json.dumps([name, options, num_shards, num_items], sort_keys=True).encode())
  return h.hexdigest()[:16]


def _write_json(path, obj):
  """Atomically (a temporary name, then a rename), on a local path or a Beam filesystem's."""
  text = json.dumps(obj, indent=1, ensure_ascii=False)
  tmp = f"{path}.tmp-{os.getpid()}" if "://" not in path else f"/tmp/{os.path.basename(path)}"
  try:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)
    _put(tmp, path)
  finally:
    _remove_if_there(tmp)


# Reasons whose fix (an image file put in place) the fingerprint cannot see: a shard with such a
# bad record is rebuilt on every run, so fixing the image and rerunning is enough.
IMAGE_REASONS = ("missing_image", "unreadable_image")


def _read_marker(path, fp, shard_file, strict=False):
  """The marker of a shard a rerun may keep, or None. Under --strict a shard holding bad records
  (counted by an earlier run without it) is rebuilt, so the run stops at the first one: kept,
  a --strict rerun passed and reported them."""
  try:
    with open(path, encoding="utf-8") as f:
      m = json.load(f)
  except (OSError, json.JSONDecodeError):
    return None
  ok = (m.get("fingerprint") == fp and os.path.exists(shard_file)
        and os.path.getsize(shard_file) == m.get("num_bytes")
        and not any(b.get("reason") in IMAGE_REASONS for b in m.get("bad", []))
        and not (strict and m.get("bad")))
  return m if ok else None


@dataclasses.dataclass
class Plan:
  """What a build will do: where, under which fingerprint, which shards are already done.
  The local writer and the Beam pipeline (`data_prep.beam`) share it, so they write the same
  files."""
  name: str
  builder: Any
  ddir: str
  mdir: str
  fingerprint: str
  bounds: list
  num_shards: int
  markers: dict
  todo: list
  duplicates: dict = dataclasses.field(default_factory=dict)

  @property
  def skipped(self) -> list:
    return sorted(i for i in self.markers if i not in self.todo)

  def shard_path(self, i: int) -> str:
    return os.path.join(self.ddir, _shard_name(self.name, i, self.num_shards))

  def marker_path(self, i: int) -> str:
    return os.path.join(self.mdir, f"{i:05d}.json")


def _remove_stale(ddir: str, mdir: str, name: str, num_shards: int):
  """Shard files and markers of a previous run with more shards: a marker left behind would
  add the lengths of records that no longer exist to `records.read_lengths`."""
  keep = {_shard_name(name, i, num_shards) for i in range(num_shards)}
  for f in os.listdir(ddir):
    if f.startswith(f"{name}-{SPLIT}.array_record-") and f not in keep:
      os.remove(os.path.join(ddir, f))
  markers = {f"{i:05d}.json" for i in range(num_shards)}
  for f in os.listdir(mdir):
    if f.endswith(".json") and f not in markers:
      os.remove(os.path.join(mdir, f))


def plan_build(spec: Spec, items: list, out: str, options: dict, sources: list,
               num_shards: int, strict: bool = False) -> Plan:
  """Check the request, make the dataset folder unreadable while it is (re)built, and find the
  shards a previous run already finished under the same fingerprint."""
  name = spec.name
  if not items:
    raise SystemExit(f"{name}: no records in {sources}; check the --src/--json path")
  if num_shards < 1:
    raise SystemExit(f"--num_shards must be >= 1, got {num_shards}")
  builder = spec.builder(data_dir=out, file_format="array_record")
  ddir, mdir = builder.data_dir, records.shard_markers(out, name)
  os.makedirs(ddir, exist_ok=True)
  os.makedirs(mdir, exist_ok=True)
  for f in ("dataset_info.json", "features.json"):
    if os.path.exists(os.path.join(ddir, f)):
      os.remove(os.path.join(ddir, f))
  _remove_stale(ddir, mdir, name, num_shards)
  plan = Plan(name, builder, ddir, mdir, fingerprint(name, sources, options, num_shards,
                                                    len(items)),
              [len(items) * i // num_shards for i in range(num_shards + 1)], num_shards, {}, [],
              duplicate_ids(items))
  for i in range(num_shards):
    m = _read_marker(plan.marker_path(i), plan.fingerprint, plan.shard_path(i), strict)
    if m is None:
      plan.todo.append(i)
    else:
      plan.markers[i] = m
  if plan.skipped:
    log.info("%s: %d of %d shards already finished, skipping %s", name, len(plan.skipped),
             num_shards, plan.skipped)
  return plan


def duplicate_ids(items: list) -> dict:
  """{id: [where, ...]} for every id that more than one input record carries. Such records are
  written as they are (MathV360K may ask two questions under one id), but a selection by id
  takes all of them, so the report says which ids are shared. Read in the driver,
  from the inputs, so the local writer and Beam report the same; a JSON line is parsed here for
  its id (a line that does not parse is the worker's bad record, not a duplicate)."""
  seen = collections.defaultdict(list)
  for _, where, _, payload in items:
    rec = payload
    if isinstance(payload, (str, bytes)):
      try:
        rec = json.loads(payload)
      except ValueError:
        continue
    rid = rec.get("id") if isinstance(rec, dict) else None
    if rid is not None and rid != "":
      seen[str(rid)].append(where)
  return {rid: at for rid, at in seen.items() if len(at) > 1}


def chunk_tasks(plan: Plan, spec: Spec, options: dict, items: list, chunk_size: int) -> list:
  """[(shard, (spec, options, chunk))] for the shards to build, in input order."""
  tasks = []
  for i in plan.todo:
    lo, hi = plan.bounds[i], plan.bounds[i + 1]
    for s in (range(lo, hi, chunk_size) if hi > lo else [lo]):
      tasks.append((i, (spec, options, items[s:min(s + chunk_size, hi)])))
  return tasks


def write_shard(plan: Plan, i: int, chunks, strict: bool, tmp_dir: str | None = None,
                on_chunk=None) -> dict:
  """Shard i from its chunks' results, in order ([(chunk length, _work results)]): the
  ArrayRecord file under a temporary name, renamed when complete, then its marker. Returns
  the marker."""
  final = plan.shard_path(i)
  tmp = os.path.join(tmp_dir or plan.ddir, os.path.basename(final)) + f".tmp-{os.getpid()}"
  writer = ArrayRecordWriter(tmp, "group_size:1")
  state = {"written": 0, "bad": [], "items": 0, "lengths": []}
  try:
    for n, res in chunks:
      state["items"] += n
      for kind, r, *length in res:
        if kind == "ok":
          writer.write(r)
          state["written"] += 1
          state["lengths"].append(length[0])
        elif strict:
          raise r
        else:
          state["bad"].append({"reason": r.reason, **r.entry()})
      if on_chunk:
        on_chunk(n)
    writer.close()
    writer = None
    _put(tmp, final)
  finally:  # a bad record under --strict, a failed move: no temporary file is left behind
    if writer is not None:
      writer.close()
    _remove_if_there(tmp)
  marker = {"shard": i, "fingerprint": plan.fingerprint, "num_bytes": _size(final), **state}
  _write_json(plan.marker_path(i), marker)
  return marker


def _put(tmp: str, final: str):
  """Move a finished local file to its place (a local path, or any Beam filesystem's)."""
  if "://" not in final:
    os.replace(tmp, final)
    return
  from apache_beam.io.filesystems import FileSystems
  FileSystems.copy([tmp], [final])
  os.remove(tmp)


def _remove_if_there(path: str):
  try:
    os.remove(path)
  except FileNotFoundError:
    pass


def _size(path: str) -> int:
  if "://" not in path:
    return os.path.getsize(path)
  from apache_beam.io.filesystems import FileSystems
  return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def finish(plan: Plan, sources: list, max_bad_fraction: float, out: str) -> dict:
  """report.json from the markers; then, if the bad share is acceptable, the TFDS metadata that
  makes the dataset readable (never for a dataset that failed its check)."""
  report = _report(plan.name, sources, plan.markers, plan.num_shards, plan.skipped,
                   max_bad_fraction, plan.duplicates)
  _write_json(os.path.join(out, plan.name, "report.json"), report)
  if not report["ok"]:
    raise TooManyBadRecords(
      f"{plan.name}: {report['bad']} of {report['total']} records are bad "
      f"({report['bad_fraction']:.2%} > --max_bad_fraction {max_bad_fraction}); see "
      f"{os.path.join(out, plan.name, 'report.json')} for the records and the fix per reason, "
      f"then fix the sources or raise the threshold. The dataset was not finalized (finished "
      f"shards are kept for the re-run).")
  markers = plan.markers
  split = tfds.core.SplitInfo(
    name=SPLIT, shard_lengths=[markers[i]["written"] for i in range(plan.num_shards)],
    num_bytes=sum(markers[i]["num_bytes"] for i in range(plan.num_shards)),
    filename_template=tfds.core.ShardedFileTemplate(
      data_dir=plan.ddir, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
      dataset_name=plan.name, split=SPLIT, filetype_suffix="array_record"))
  plan.builder.info.set_splits(tfds.core.SplitDict([split]))
  plan.builder.info.set_file_format("array_record")
  plan.builder.info.write_to_directory(plan.ddir)
  return report


def build(spec: Spec, items: list[tuple], out: str, options: dict, *, sources: list[str],
          num_shards: int = 1, workers: int = 1, strict: bool = False,
          max_bad_fraction: float = 0.05, chunk_size: int = 64, progress: bool = True) -> dict:
  """Validates and writes `items` as DATA_DIR/<name>/1.0.0 and DATA_DIR/<name>/report.json.

  Returns the report. Raises BadRecord on the first bad record when `strict`, and
  TooManyBadRecords (after writing the report, without `dataset_info.json`, so the dataset
  cannot be read half-checked) when the bad share passes `max_bad_fraction`.
  """
  plan = plan_build(spec, items, out, options, sources, num_shards, strict)
  tasks = chunk_tasks(plan, spec, options, items, chunk_size)
  pool = None
  if workers > 1 and len(tasks) > 1:
    pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)))
    results = pool.imap(_work, [t for _, t in tasks])
  else:
    results = map(_work, [t for _, t in tasks])
  total = sum(plan.bounds[i + 1] - plan.bounds[i] for i in plan.todo)
  bar = tqdm.tqdm(total=total, unit="rec", desc=plan.name, disable=not progress)
  counts = collections.Counter(i for i, _ in tasks)
  try:
    paired = zip(tasks, results)  # ordered by shard: take each shard's count of chunks
    for i in plan.todo:
      chunks = ((len(t[2]), res) for (_, t), res in itertools.islice(paired, counts[i]))
      plan.markers[i] = write_shard(plan, i, chunks, strict, on_chunk=bar.update)
  finally:
    bar.close()
    if pool is not None:
      pool.terminate()
      pool.join()
  return finish(plan, sources, max_bad_fraction, out)


# How many shared ids report.json lists by name (all are counted)
DUPLICATES_LISTED = 100


def _report(name, sources, markers, num_shards, skipped, max_bad_fraction,
            duplicates=None) -> dict:
  bad = [b for i in sorted(markers) for b in markers[i]["bad"]]
  written = sum(m["written"] for m in markers.values())
  total = written + len(bad)
  by_reason = {}
  for b in bad:
    r = by_reason.setdefault(b["reason"], {"count": 0, "fix": REASONS[b["reason"]],
                                           "records": []})
    r["count"] += 1
    r["records"].append({k: b[k] for k in ("id", "at", "file", "detail")})
  frac = len(bad) / total if total else 0.0
  return {"name": name, "sources": [os.path.abspath(s) for s in sources], "total": total,
          "written": written, "bad": len(bad), "bad_fraction": frac,
          "max_bad_fraction": max_bad_fraction, "ok": frac <= max_bad_fraction,
          "by_reason": by_reason,
          "duplicate_ids": _duplicates_entry(duplicates or {}),
          "shards": {"num_shards": num_shards, "skipped": skipped,
                     "built": [i for i in range(num_shards) if i not in skipped]}}


def _duplicates_entry(duplicates: dict) -> dict:
  return {"ids": len(duplicates), "records": sum(len(at) for at in duplicates.values()),
          "note": "written as they are; a selection by id (data.subset, augment --subset) "
                  "takes every record that shares one: give different records their own ids",
          "listed": [{"id": rid, "at": at} for rid, at in
                     list(duplicates.items())[:DUPLICATES_LISTED]]}


# ---------------------------------------------------------------------------------------------
# Command line, shared by the builders' `main`.

def add_run_flags(parser, name):
  parser.add_argument("--out", required=True, help=f"DATA_DIR; writes DATA_DIR/{name}/")
  parser.add_argument("--num_shards", type=int, default=1)
  parser.add_argument("--workers", type=int, default=1, help="processes that check and encode")
  parser.add_argument("--strict", action="store_true", help="stop at the first bad record")
  parser.add_argument("--max_bad_fraction", type=float, default=0.05,
                      help="fail the run (after writing report.json) above this bad share")
  parser.add_argument("--max_images", type=int, default=1, help="images per record the model "
                      "supports; the schema stores one, so only 1 is accepted for now")
  parser.add_argument("--no_progress", action="store_true")
  parser.add_argument("--image_size", type=int, default=0,
                      help="pad/resize images once, here, to the model's input size (e.g. 336) "
                      "so the training pipeline only decodes them; 0 keeps the originals")
  parser.add_argument("--image_aspect", default="pad", choices=ASPECTS,
                      help="with --image_size: LLaVA's pad-to-square (default), CLIP's centre "
                      "crop or a stretching resize")
  parser.add_argument("--beam", action="store_true",
                      help="run as an Apache Beam pipeline (DirectRunner with --workers "
                      "processes unless --beam_options names another runner); same files")
  parser.add_argument("--beam_options", default="",
                      help='Beam pipeline options, e.g. "--runner=DataflowRunner --project=P '
                      '--region=R --temp_location=gs://B/tmp"')


def prepare_image(data: bytes, options: dict) -> bytes:
  """The stored image: the original bytes, or (--image_size) padded and resized once, as PNG."""
  size = options.get("image_size") or 0
  if not data or not size:
    return data
  from mathvlm.data.image import to_pixels  # the training pipeline's own geometry
  with Image.open(io.BytesIO(data)) as im:
    pixels = to_pixels(im, size, options.get("image_aspect", "pad"))
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
  return out.getvalue()


def importable(spec: Spec) -> Spec:
  """The spec with its builder and convert function looked up by their module's real name: run
  as `python -m data_prep.X` they live in `__main__`, which other processes (Beam's workers)
  cannot import, and TFDS would record `__main__` as the dataset's module."""
  main = sys.modules.get("__main__")
  real = getattr(getattr(main, "__spec__", None), "name", None)
  if not real:
    return spec
  mod = importlib.import_module(real)
  def pick(obj):
    return getattr(mod, obj.__name__) if obj.__module__ == "__main__" else obj
  return Spec(pick(spec.builder), pick(spec.convert))


def run_main(spec, args, items, options, sources) -> dict:
  """Entry-point glue: build, print the outcome, turn known failures into exit messages."""
  spec = importable(spec)
  if args.max_images != 1:
    raise SystemExit(f"--max_images {args.max_images}: the {spec.name} schema stores one "
                     f"image per record; only --max_images 1 is supported")
  options = dict(options, image_size=args.image_size, image_aspect=args.image_aspect)
  kw = dict(sources=sources, num_shards=args.num_shards, workers=args.workers,
            strict=args.strict, max_bad_fraction=args.max_bad_fraction)
  try:
    if getattr(args, "beam", False):
      from data_prep import beam
      report = beam.build(spec, items, args.out, options, beam_options=args.beam_options, **kw)
    else:
      report = build(spec, items, args.out, options, progress=not args.no_progress, **kw)
  except (BadRecord, TooManyBadRecords) as e:
    raise SystemExit(f"error: {e}") from None
  sh = report["shards"]
  reasons = ", ".join(f"{k}: {v['count']}" for k, v in report["by_reason"].items()) or "none"
  dup = report["duplicate_ids"]
  if dup["ids"]:
    print(f"{spec.name}: {dup['records']} records share {dup['ids']} ids (written; listed in "
          f"report.json under duplicate_ids)")
  print(f"{spec.name}: wrote {report['written']} records, {report['bad']} bad ({reasons}); "
        f"shards built {sh['built']}, skipped {sh['skipped']} (already finished); "
        f"report {os.path.join(args.out, spec.name, 'report.json')}")
  return report
