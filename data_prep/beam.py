"""The builders and the engine as Apache Beam pipelines: the same files, on any Beam runner.

  python -m data_prep.mavis_instruct --src ... --out DATA_DIR --beam [--workers 2] \
      [--beam_options "--runner=DataflowRunner --project=P --region=R \
                       --temp_location=gs://B/tmp --requirements_file=requirements-beam.txt \
                       --extra_package=dist/mathvlm-0.1.0-py3-none-any.whl"]
  python -m data_prep.engine --n N --out DIR --seed S --beam [--beam_options "..."]

The local path and these pipelines share every step that decides content (the build plan and
its fingerprint, the per-chunk conversion, the shard writer, the report; the engine's
per-problem draw and its JSON outputs), so for the same inputs and seed the files are
byte-identical whichever runs them. Without --beam_options the DirectRunner runs here with
--workers processes (multi-processing mode).

Builders: chunks of records are converted and serialized in parallel, grouped by shard, and each
shard is written in input order by one worker (ArrayRecord to a temporary file beside it, or in
the worker's temp dir for a bucket, then moved to DATA_DIR, which may be any Beam filesystem
such as gs://); report.json and the TFDS metadata are written by the launcher from the shard
markers, as locally. A re-run skips finished shards.
Engine: problems are drawn in parallel, each writing its own images; one step writes the JSON
files in index order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex

from data_prep import common


def pipeline_options(beam_options: str, workers: int):
  """Beam options from a string; the DirectRunner gets `workers` processes unless told.

  The DirectRunner is run as its batch engine, the FnApiRunner, by name: since Beam 2.6x the
  DirectRunner first hands a pipeline to Prism, a Go runner whose binary it downloads from
  GitHub at run time. Offline, as here, the download failed and it fell back, leaving a
  /tmp/beam-temp* folder a run; with a network it fetched a binary at run time and ran the
  pipeline outside the --workers processes asked for. `--runner=PrismRunner` still asks for it."""
  from apache_beam.options.pipeline_options import PipelineOptions
  args = shlex.split(beam_options or "")
  runner = next((a.split("=", 1)[1] for a in args if a.startswith("--runner=")), "DirectRunner")
  if runner in ("DirectRunner", "direct"):
    args = [a for a in args if not a.startswith("--runner=")] + ["--runner=FnApiRunner"]
    if not any("direct_num_workers" in a for a in args):
      args += [f"--direct_num_workers={max(1, workers)}",
               "--direct_running_mode=" + ("multi_processing" if workers > 1 else "in_memory")]
  if not any("sdk_harness_log_level" in a for a in args):
    args.append("--default_sdk_harness_log_level=WARNING")
  return PipelineOptions(args)


# ---------------------------------------------------------------- builders


def _convert(task):
  """(shard, (chunk index, chunk length, the chunk's results))."""
  k, i, payload = task
  return i, (k, len(payload[2]), common._work(payload))


def _write(shard, plan, strict):
  i, chunks = shard
  ordered = sorted(chunks, key=lambda c: c[0])
  return i, common.write_shard(plan, i, [(n, res) for _, n, res in ordered], strict,
                               tmp_dir=_local_tmp(plan.ddir))


def _local_tmp(ddir: str) -> str | None:
  """Where a shard is written before it is moved into `ddir`: beside it when `ddir` is local
  (a rename within one filesystem; from the system's temp dir, e.g. TMPDIR=/dev/shm, it failed
  with EXDEV), the worker's temp dir when it is a bucket (ArrayRecord writes local files)."""
  if "://" not in ddir:
    return None
  import tempfile
  return tempfile.gettempdir()


def build(spec, items, out, options, *, sources, num_shards=1, workers=1, strict=False,
          max_bad_fraction=0.05, chunk_size=64, beam_options="") -> dict:
  """`common.build` as a Beam pipeline (same plan, same shards, same report)."""
  import apache_beam as beam
  logging.getLogger("apache_beam").setLevel(logging.WARNING)
  spec = common.importable(spec)
  plan = common.plan_build(spec, items, out, options, sources, num_shards, strict)
  tasks = [(k, i, t) for k, (i, t) in enumerate(common.chunk_tasks(plan, spec, options, items,
                                                                   chunk_size))]
  light = dataclasses.replace(plan, builder=None)  # what a worker needs to write a shard
  if tasks:
    try:
      with beam.Pipeline(options=pipeline_options(beam_options, workers)) as p:
        _ = (p | "chunks" >> beam.Create(tasks) | beam.Reshuffle() | beam.Map(_convert)
             | beam.GroupByKey() | beam.Map(_write, light, strict))
    except Exception as e:  # noqa: BLE001 - the runner wraps a worker's error; keep its text
      if isinstance(e, common.BadRecord) or "bad record" in str(e):
        raise SystemExit(f"error: {_bad_record_text(e)}") from None
      raise
  for i in plan.todo:
    with open(plan.marker_path(i), encoding="utf-8") as f:
      plan.markers[i] = json.load(f)
  return common.finish(plan, sources, max_bad_fraction, out)


def _bad_record_text(e) -> str:
  text = str(e)
  at = text.find("bad record")
  return text[at:].splitlines()[0] if at >= 0 else text


# ---------------------------------------------------------------- the engine


def _problem(index, opts, out):
  """Draw problem `index`, write its images; keep the light parts for the JSON files."""
  from data_prep.engine import writer
  samples = writer.make_problem(opts, index)
  for s in samples:
    for rel, data in s["files"]:
      _write_bytes(os.path.join(out, rel), data)
  return index, [writer.encoded(s) for s in samples]


def _clear_earlier(out: str) -> None:
  """`writer.clear_earlier` through Beam's file systems, which take a bucket and a local folder
  alike: the same files."""
  from apache_beam.io.filesystems import FileSystems

  from data_prep.engine import writer
  if not FileSystems.exists(os.path.join(out, "meta.json")):
    return
  texts = [os.path.join(out, t) for t in writer.TEXTS if FileSystems.exists(os.path.join(out, t))]
  FileSystems.delete(texts)
  found = FileSystems.match([os.path.join(out, "images", "*", "*")])[0].metadata_list
  rel = {m.path[len(out.rstrip("/")) + 1:]: m.path for m in found}
  gone = writer.earlier_images(list(rel))
  if gone:
    FileSystems.delete([rel[g] for g in gone])
  logging.getLogger(__name__).info("engine: --out %s held an earlier run: removed its texts and "
                                   "%d image files", out, len(gone))


def _write_bytes(path: str, data: bytes):
  if "://" in path:
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.create(path) as f:
      f.write(data)
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


def _outputs(problems, opts, out):
  from data_prep.engine import writer
  items = [it for _, samples in sorted(problems, key=lambda p: p[0]) for it in samples]
  for name, text in writer.outputs_of(items, opts).items():
    _write_bytes(os.path.join(out, name), text.encode("utf-8"))


def generate(out: str, n: int, opts, workers: int = 1, beam_options: str = "",
             start: int = 0) -> dict:
  """`writer.generate` as a Beam pipeline: the same files; returns meta.json's summary."""
  import apache_beam as beam
  logging.getLogger("apache_beam").setLevel(logging.WARNING)
  from data_prep.engine import writer
  opts.check()
  writer.check_run(out, n)
  if "://" not in out:
    os.makedirs(out, exist_ok=True)
  _clear_earlier(out)
  with beam.Pipeline(options=pipeline_options(beam_options, workers)) as p:
    _ = (p | "indices" >> beam.Create(list(range(start, start + n))) | beam.Reshuffle()
         | beam.Map(_problem, opts, out) | beam.combiners.ToList()
         | beam.Map(_outputs, opts, out))
  if "://" in out:
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(os.path.join(out, "meta.json")) as f:
      return json.loads(f.read())
  with open(os.path.join(out, "meta.json"), encoding="utf-8") as f:
    return json.load(f)
