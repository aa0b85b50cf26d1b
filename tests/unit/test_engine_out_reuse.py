"""An engine run into an --out that holds an earlier run leaves only its own files there: the
records name this run's images, and images the earlier run wrote past them (more problems,
another domain) would otherwise stay beside them as if they were data."""

import json
import os

from data_prep import beam
from data_prep.engine import writer

IMAGE_FIELDS = ("image_text_dominant", "image_text_lite", "image_vision_dominant")


def _named(out: str) -> set:
  with open(os.path.join(out, "instruct.json"), encoding="utf-8") as f:
    return {r[k] for r in json.load(f) for k in IMAGE_FIELDS}


def _images(out: str) -> set:
  root = os.path.join(out, "images")
  return {os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(root) for f in fs}


def test_a_rerun_with_fewer_problems_leaves_only_its_images(tmp_path):
  out = str(tmp_path / "eng")
  writer.generate(out, 5, writer.Options(seed=0, degrade=0.0))
  first = _images(out)
  writer.generate(out, 2, writer.Options(seed=0, degrade=0.0))
  assert _images(out) == _named(out)
  assert len(first) > len(_images(out))  # the earlier run did leave more behind


def test_a_folder_without_an_engine_run_is_not_touched(tmp_path):
  out = tmp_path / "mine"
  (out / "images" / "plane").mkdir(parents=True)
  for name in ("plane_mine_1.png", "notes.txt"):
    (out / "images" / "plane" / name).write_bytes(b"x")
  assert writer.clear_earlier(str(out)) == 0
  writer.generate(str(out), 1, writer.Options(seed=0, domain="function", degrade=0.0))
  assert (out / "images" / "plane" / "plane_mine_1.png").exists()
  # once the folder holds a run, only what an engine writes goes: the notes stay
  writer.generate(str(out), 1, writer.Options(seed=0, domain="function", degrade=0.0))
  assert not (out / "images" / "plane" / "plane_mine_1.png").exists()
  assert (out / "images" / "plane" / "notes.txt").exists()


def test_the_clear_removes_the_earlier_runs_texts_first(tmp_path):
  """Cleared, a folder no longer looks like a finished run: a rerun killed after the clear would
  otherwise leave the old meta.json and instruct.json naming images that are gone."""
  out = str(tmp_path / "eng")
  writer.generate(out, 2, writer.Options(seed=0, degrade=0.0))
  assert writer.clear_earlier(out) > 0
  assert not any(os.path.exists(os.path.join(out, t)) for t in writer.TEXTS)


def test_the_beam_runner_clears_through_its_file_systems(tmp_path):
  """The bucket path (`gs://`) of the Beam runner, run on a local path: Beam's FileSystems take
  both, so the same listing, name check and deletes run."""
  out = str(tmp_path / "eng")
  writer.generate(out, 2, writer.Options(seed=0, degrade=0.0))
  (tmp_path / "eng" / "images" / "plane" / "keep.txt").write_bytes(b"x")
  # a folder of the user's own beside the domains: its files are no engine's, whatever their name
  (tmp_path / "eng" / "images" / "mine").mkdir()
  (tmp_path / "eng" / "images" / "mine" / "plane_1.png").write_bytes(b"x")
  beam._clear_earlier(out)
  assert _images(out) == {os.path.join("images", "plane", "keep.txt"),
                          os.path.join("images", "mine", "plane_1.png")}
  assert not any(os.path.exists(os.path.join(out, t)) for t in writer.TEXTS)
