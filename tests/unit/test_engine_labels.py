"""Exact labels: one degradation kind per problem, the record's kind read back from every image;
label layout: no label over another label, a vertex or a drawn line, checked from the boxes of
the text as rendered (a sweep over 10,000 scenes is `python -m benchmarks.engine --sweep 10000`
and the slow test below)."""

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks import engine as engine_bench
from data_prep.engine import __main__ as cli
from data_prep.engine import render


def kind_of(clean: np.ndarray, seen: np.ndarray) -> str:
  """Which degradation turned `clean` into `seen`, from the pixels alone."""
  c, s = clean.astype(float), seen.astype(float)
  white = (c > 250).all(-1)
  if s[white].std() > 15:
    return "noise"
  same_rows = (np.abs(np.diff(s, axis=0)).sum((1, 2)) == 0).mean()
  if same_rows > 0.6:
    return "lowres"
  if np.abs(np.diff(s, axis=1)).mean() < 0.75 * np.abs(np.diff(c, axis=1)).mean():
    return "blur"
  return "none"


def _images(folder, rec):
  keys = ("image_text_dominant", "image_text_lite", "image_vision_dominant")
  return [np.asarray(Image.open(folder / rec[k]).convert("RGB")) for k in keys]


def test_one_degradation_per_problem_read_back_from_every_image(tmp_path):
  for deg, out in (("1", tmp_path / "deg"), ("0", tmp_path / "clean")):
    cli.main(["--n", "12", "--out", str(out), "--seed", "4", "--degrade", deg])
  degraded = json.load(open(tmp_path / "deg" / "instruct.json"))
  clean = json.load(open(tmp_path / "clean" / "instruct.json"))
  kinds = set()
  for r, c in zip(degraded, clean):
    assert r["id"] == c["id"] and r["clarity"] == 0 and c["clarity"] == 1
    assert r["degradation"] in render.DEGRADATIONS and c["degradation"] is None
    kinds.add(r["degradation"])
    for seen, ref in zip(_images(tmp_path / "deg", r), _images(tmp_path / "clean", c)):
      assert kind_of(ref, seen) == r["degradation"], r["id"]
  assert kinds == set(render.DEGRADATIONS)


def _sweep(n, seed):
  """The benchmark's layout sweep, scene by scene (half of them on a narrow --steps range)."""
  drawn, conflicts = 0, []
  for i in range(n):
    images, _, found = engine_bench._sweep_one(seed, i)
    drawn += images
    conflicts += found if images else []  # an undrawn scene reports why, not conflicts
  return drawn, conflicts


def test_no_label_overlaps_a_label_vertex_or_line():
  drawn, conflicts = _sweep(90, 12)
  assert drawn > 80 and conflicts == []


@pytest.mark.slow
def test_no_label_overlaps_in_10000_scenes():
  drawn, conflicts = _sweep(10000, 13)
  assert drawn > 8000 and conflicts == [], conflicts[:10]


def test_the_layout_check_sees_an_overlap():
  c = render.Canvas((0, 0, 10, 10))
  c.poly([(0, 0), (10, 0), (10, 10)], fill=None)
  c.text(c.px((5, 0)), "AB = 5", 14)    # centred on the bottom edge: over the line
  c.text(c.px((10, 10)), "C", 16)       # on a corner point
  c.layout.add_vertices(c.px([(10, 10)]))
  c.finish()
  assert {what for _, what in c.conflicts()} == {"a drawn line", "a vertex"}


def test_the_font_has_every_glyph_the_notation_draws():
  from PIL import ImageDraw

  def ink(ch):
    im = Image.new("L", (40, 40), 0)
    ImageDraw.Draw(im).text((20, 20), ch, font=render.font(20), fill=255, anchor="mm")
    return np.asarray(im)

  missing = ink("\ue000")  # a private-use code point: the font's "no glyph" box
  for ch in "π√²³₂∞·°≤≥∛":
    assert ink(ch).any() and not np.array_equal(ink(ch), missing), ch
