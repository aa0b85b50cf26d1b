"""The demo's and the sweep pool's engine step: made once, remade when its depth range, its seed
or split, or the engine's sources change."""

import json
import os

from mathvlm.demo import data


def test_engine_set_is_reused_only_with_the_same_steps(tmp_path, capsys):
  d = str(tmp_path / "engine")
  meta = data.engine_set(d, 3, 0, 1, "train", steps="1:2")
  assert meta["n"] == 3 and meta["steps"] == [1, 2]
  assert all(r["steps"] <= 2 for r in json.load(open(f"{d}/instruct.json")))
  made = os.path.getmtime(f"{d}/meta.json")
  capsys.readouterr()
  data.engine_set(d, 3, 0, 1, "train", steps="1:2")
  data.engine_set(d, 3, 0, 1, "train")  # no steps asked for: whatever was made
  assert os.path.getmtime(f"{d}/meta.json") == made
  assert "data_prep.engine" not in capsys.readouterr().out
  assert data.engine_set(d, 3, 0, 1, "train", steps="3:4")["steps"] == [3, 4]
  assert all(r["steps"] >= 3 for r in json.load(open(f"{d}/instruct.json")))


def test_engine_set_is_remade_for_another_seed_split_or_engine(tmp_path, monkeypatch, capsys):
  d = str(tmp_path / "engine")
  data.engine_set(d, 3, 0, 1, "train")
  made = open(f"{d}/instruct.json").read()
  capsys.readouterr()
  data.engine_set(d, 3, 0, 1, "train")
  assert "data_prep.engine" not in capsys.readouterr().out   # the same call resumes
  assert data.engine_set(d, 3, 1, 1, "train")["seed"] == 1     # another seed is not reused
  assert open(f"{d}/instruct.json").read() != made
  assert data.engine_set(d, 3, 1, 1, "test")["split"] == "test"
  assert data.engine_set(d, 1, 1, 1, "test", variants=3)["variants"] == 3   # 3 records again
  capsys.readouterr()
  monkeypatch.setattr(data, "engine_source", lambda: "an edited engine")
  data.engine_set(d, 3, 1, 1, "test")
  assert "data_prep.engine" in capsys.readouterr().out       # new code draws it again
