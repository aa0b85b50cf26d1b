"""The engine and a builder as Apache Beam pipelines (DirectRunner, 2 worker processes) write
exactly the files the local path writes: images, JSON, ArrayRecord shards, shard markers,
report.json with its bad records, and the TFDS metadata."""

import filecmp
import json
import os
import subprocess
import sys

from train_utils import ROOT, build_wheel


def _run(*args):
  res = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**os.environ, "PYTHONPATH": ROOT})
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def _same_tree(a, b):
  files = sorted(os.path.relpath(os.path.join(r, f), a) for r, _, fs in os.walk(a) for f in fs)
  other = sorted(os.path.relpath(os.path.join(r, f), b) for r, _, fs in os.walk(b) for f in fs)
  assert files == other and files
  bad = [f for f in files if not filecmp.cmp(os.path.join(a, f), os.path.join(b, f),
                                             shallow=False)]
  assert not bad, bad
  return files


def test_beam_engine_and_builder_write_the_local_bytes(tmp_path):
  local, beam = str(tmp_path / "local"), str(tmp_path / "beam")
  args = ["data_prep.engine", "--n", "6", "--seed", "3", "--workers", "2", "--steps", "1:4"]
  _run(*args, "--out", local)
  _run(*args, "--out", beam, "--beam")
  assert len(_same_tree(local, beam)) > 6 + 4

  problems = json.load(open(f"{local}/instruct.json"))
  broken = dict(problems[0], id="broken", image_text_lite="images/missing.png")
  src = tmp_path / "with_bad.json"
  src.write_text(json.dumps(problems + [broken]))
  built = []
  for name, extra in (("built_local", []), ("built_beam", ["--beam"])):
    built.append(str(tmp_path / name))
    _run("data_prep.mavis_instruct", "--src", str(src), "--images", local, "--out", built[-1],
         "--num_shards", "2", "--workers", "2", "--no_progress", "--max_bad_fraction", "0.2",
         *extra)
  files = _same_tree(*built)
  assert "mavis_instruct/report.json" in files and any(f.endswith("dataset_info.json")
                                                       for f in files)
  report = json.load(open(f"{built[0]}/mavis_instruct/report.json"))
  assert report["bad"] == 1 and report["by_reason"]["missing_image"]["records"][0]["id"] == \
      "broken/text_lite"


def test_beam_names_a_bad_run_and_writes_no_problems_as_the_local_path(tmp_path):
  """The same checks before any work (a negative count, a file as the folder), and `--n 0`
  writes the local path's empty outputs."""
  import pytest
  from data_prep import beam
  from data_prep.engine import writer
  opts = writer.Options(seed=0)
  with pytest.raises(ValueError, match="--n -1; give the number of problems"):
    beam.generate(str(tmp_path / "neg"), -1, opts)
  a_file = tmp_path / "a_file"
  a_file.write_text("")
  with pytest.raises(NotADirectoryError, match="is a file; give a folder"):
    beam.generate(str(a_file), 1, opts)
  writer.generate(str(tmp_path / "local"), 0, opts)
  beam.generate(str(tmp_path / "beam"), 0, opts)
  assert len(_same_tree(str(tmp_path / "local"), str(tmp_path / "beam"))) == 4


def test_the_local_runner_fetches_nothing_and_leaves_no_temp_folder(tmp_path, monkeypatch):
  """The DirectRunner of Beam 2.6x hands a pipeline to Prism first, whose Go binary it downloads
  from GitHub at run time (offline it fell back, leaving /tmp/beam-temp*): the local run names
  the DirectRunner's batch engine instead. In process, in memory: a few seconds."""
  import tempfile

  from apache_beam.runners.portability import prism_runner

  from data_prep import beam
  from data_prep.engine import writer
  started = []

  def no_prism(self, *args, **kwargs):
    started.append(type(self).__name__)
    raise RuntimeError("Prism asked for: it would download its binary")

  monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", no_prism)
  temp = tmp_path / "temp"
  temp.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(temp))
  beam.generate(str(tmp_path / "beam"), 2, writer.Options(seed=0))
  writer.generate(str(tmp_path / "local"), 2, writer.Options(seed=0))
  assert started == [] and os.listdir(temp) == []
  _same_tree(str(tmp_path / "local"), str(tmp_path / "beam"))


def test_beam_builder_moves_shards_from_a_temp_dir_on_another_filesystem(tmp_path, monkeypatch):
  """Shards were written in the system's temp dir and renamed into DATA_DIR: with the temp dir on
  another filesystem (TMPDIR=/dev/shm, a tmpfs /tmp) the rename failed with EXDEV and left the
  temporary file there. In process, DirectRunner in memory: a few seconds."""
  import shutil
  import tempfile

  import pytest
  from PIL import Image

  from data_prep import mathv360k
  shm = "/dev/shm"
  if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
    pytest.skip("needs /dev/shm on a filesystem other than the test's tmp_path")
  os.makedirs(tmp_path / "src/data_images/S/images")
  Image.new("RGB", (4, 4), "red").save(tmp_path / "src/data_images/S/images/a.png")
  recs = [{"id": f"r{i}", "image": "S/images/a.png", "conversations": [
      {"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": str(i)}]}
          for i in range(4)]
  (tmp_path / "src/train_samples_all_tuning.json").write_text(json.dumps(recs))
  other = tempfile.mkdtemp(dir=shm)  # holds what Beam and TFDS leave in the temp dir
  monkeypatch.setattr(tempfile, "tempdir", other)
  args = ["--src", str(tmp_path / "src"), "--num_shards", "2", "--no_progress"]
  try:
    mathv360k.main(args + ["--out", str(tmp_path / "local")])
    assert mathv360k.main(args + ["--out", str(tmp_path / "beam"), "--beam"])["written"] == 4
  finally:
    shutil.rmtree(other)
  assert any("array_record" in f for f in _same_tree(str(tmp_path / "local"),
                                                      str(tmp_path / "beam")))


def _pins(path: str) -> dict:
  """{package: version or None} of a requirements file (names as pip compares them)."""
  out = {}
  for line in open(path, encoding="utf-8"):
    line = line.split("#")[0].strip()
    if line:
      name, _, version = line.partition("==")
      out[name.strip().lower().replace("_", "-")] = version.strip() or None
  return out


def test_requirements_beam_pins_what_requirements_txt_pins():
  """A worker runs the versions the local run and the tests ran: the same bytes for a seed."""
  beam, main = (_pins(os.path.join(ROOT, f)) for f in ("requirements-beam.txt",
                                                         "requirements.txt"))
  assert beam and {k: main.get(k, "missing") for k in beam} == beam


def _worker_env() -> dict:
  """The environment the workers' Python runs in: this one less PYTHONPATH (not this checkout)
  and less PYTHONDONTWRITEBYTECODE where it is set (this machine sets it), so the fresh
  environment caches the bytecode of what it imports, as a worker's does: apache-beam's modules
  were compiled from source again in every process (each run and each of its workers), 13 of
  the 29 CPU seconds of the two runs here. It lands in the throwaway environment only (the
  interpreter's own library has its bytecode already, and this checkout is not imported there)."""
  return {k: v for k, v in os.environ.items()
          if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}


def _worker_python(folder) -> str:
  """The python of a fresh environment holding what a Beam worker has: the runner's apache-beam,
  requirements-beam.txt and the project's wheel; checked to hold the wheel's copy of data_prep
  and none of jax, torch and transformers."""
  uv = os.path.join(os.path.dirname(sys.executable), "uv")  # `make venv` installs it
  python = str(folder / "slim" / "bin" / "python")
  for cmd in ([sys.executable, "-m", "venv", "--without-pip", str(folder / "slim")],
              [uv, "pip", "install", "-q", "--python", python, "-r",
               os.path.join(ROOT, "requirements-beam.txt"), "apache-beam==2.71.0",
               build_wheel(folder / "build")]):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  env = _worker_env()
  res = subprocess.run([python, "-c", "import data_prep; print(data_prep.__file__)"],
                       cwd=folder, env=env, capture_output=True, text=True, timeout=60)
  assert str(folder / "slim") in res.stdout, res.stdout + res.stderr  # not this checkout's
  for missing in ("jax", "torch", "transformers"):
    found = subprocess.run([python, "-c", f"import {missing}"], env=env, capture_output=True,
                           timeout=60)
    assert found.returncode != 0, f"{missing} is in the workers' environment"
  return python


def test_beam_workers_need_only_requirements_beam_and_the_project_wheel(tmp_path):
  """What a Dataflow, Flink or Spark worker has: the runner's apache-beam, requirements-beam.txt
  and the project's wheel (--extra_package), not this checkout, jax, torch or transformers. An
  environment of exactly that, run from another folder, writes the engine's and the builder's
  files byte for byte as the local run does here."""
  import shutil
  python = _worker_python(tmp_path)
  env = _worker_env()
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()

  def slim_run(*args):
    res = subprocess.run([python, "-m", *args], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

  local, beam = str(tmp_path / "local"), str(tmp_path / "beam")
  args = ["data_prep.engine", "--n", "6", "--seed", "5", "--workers", "2", "--steps", "2:5"]
  _run(*args, "--out", local)
  slim_run(*args, "--out", beam, "--beam")
  _same_tree(local, beam)
  built = [str(tmp_path / "built_local"), str(tmp_path / "built_beam")]
  shared = ["--src", f"{local}/instruct.json", "--images", local, "--num_shards", "2",
            "--workers", "2", "--no_progress"]
  _run("data_prep.mavis_instruct", *shared, "--out", built[0])
  slim_run("data_prep.mavis_instruct", *shared, "--out", built[1], "--beam")
  assert any("array_record" in f for f in _same_tree(*built))
  shutil.rmtree(tmp_path / "slim")  # ~0.5 GB
