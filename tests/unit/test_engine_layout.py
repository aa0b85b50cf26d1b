"""The label layout's occupancy and the exact module's remembered floats, at the level of one call:
a placed label's box stays taken after more line art is drawn (the mask is rebuilt then), the
stamped disks are Pillow's, wide lines are thinned only where their points are denser than the
clearance, a plane figure's versions are quantized where they differ from their base only (in
boxes joined where near; a finished canvas where it is not white), float values of sympy numbers
are the plain conversions, and a degraded image's remembered noise is its own seed's."""

import numpy as np
import sympy as sp
from PIL import Image, ImageDraw

from data_prep.engine import exact, layout, render, writer


def test_a_placed_label_stays_taken_after_more_lines_are_drawn():
  lay = layout.Layout(100)
  rel = (-6, -4, 6, 4)
  assert lay.place(rel, [(30, 30)]) == (30, 30)
  assert not lay.free(layout.box_at((30, 30), rel))
  assert not lay.free(layout.box_at((40, 30), rel))    # overlaps the first within GAP
  lay.add_segments([(70, 5), (70, 95)])                # redraws the occupancy from the mask
  assert not lay.free(layout.box_at((30, 30), rel))
  assert lay.place(rel, [(30, 30), (30, 60)]) == (30, 60)
  assert not lay.free(layout.box_at((70, 50), rel))    # the new line
  assert lay.free(layout.box_at((50, 80), rel))


def test_place_takes_the_first_free_box_as_free_says():
  """`Layout.place` reads a box's corner pixels before it counts its window; over random
  occupancies (lines and small rectangles, not symmetric about the diagonal), boxes of odd sizes
  at fractional centres, it takes the first candidate `free` accepts, or none."""
  rng = np.random.default_rng(5)
  for trial in range(60):
    lay = layout.Layout(120)
    for _ in range(rng.integers(1, 6)):
      lay.add_segments(rng.uniform(0, 120, (2, 2)))
    occupied = lay._occupied()
    for _ in range(rng.integers(0, 12)):
      r, c = rng.integers(0, 116, 2)
      occupied[r:r + rng.integers(1, 4), c:c + rng.integers(1, 4)] = 255
    rel = tuple(rng.uniform(-9, -1, 2)) + tuple(rng.uniform(1, 9, 2))
    centres = [tuple(v) for v in rng.uniform(-5, 125, (40, 2))]
    want = next((c for c in centres if lay.free(layout.box_at(c, rel))), None)
    assert lay.place(rel, centres) == want, trial
  rel, centre = (-7.3, -5.6, 8.2, 4.4), (30.4, 29.7)   # one taken pixel in and around the box
  for r in range(20, 38):
    for c in range(19, 43):
      lay = layout.Layout(60)
      lay._occupied()[r, c] = 255
      want = centre if lay.free(layout.box_at(centre, rel)) else None
      assert lay.place(rel, [centre]) == want, (r, c)


def test_thinning_keeps_sparse_corners_and_thins_dense_arcs():
  corners = np.array([[10.0, 10.0], [60.0, 10.0], [60.0, 50.0], [10.0, 10.0]])
  assert np.array_equal(layout._thin(corners, 3.0), corners)
  mixed = np.array([[0.0, 0.0], [10.0, 0.0], [10.5, 0.0], [20.0, 0.0]])  # one gap under 3 px
  assert np.array_equal(layout._thin(mixed, 3.0), mixed[[0, 1, 3]])
  t = np.linspace(0, np.pi, 400)
  arc = np.stack([50 + 20 * np.cos(t), 50 + 20 * np.sin(t)], 1)   # ~0.16 px apart
  thin = layout._thin(arc, 3.0)
  gaps = np.hypot(*np.diff(thin, axis=0).T)
  assert 15 < len(thin) < 30 and (gaps[:-1] >= 3.0).all()
  assert np.array_equal(thin[0], arc[0]) and np.array_equal(thin[-1], arc[-1])


def test_stamped_disks_are_pillows_ellipses():
  """The occupancy's disks (joints and vertices) stamped in NumPy are the pixels Pillow's
  `ellipse` fills, at any sub-pixel position and at the canvas's edges (corners outside it)."""
  pts = np.random.default_rng(3).uniform(-6, 106, (600, 2))
  for r in (3.5, layout.VERTEX_R + layout.GAP + 0.5):
    lay = layout.Layout(100)
    lay._disks(pts, r)
    want = Image.new("L", (100, 100), 0)
    for x, y in pts:
      ImageDraw.Draw(want).ellipse([x - r, y - r, x + r, y + r], fill=255)
    assert np.array_equal(lay._occupied(), np.asarray(want)), r


def test_a_plane_versions_png_is_that_of_the_whole_image_quantized():
  """`render.png` quantizes a plane figure's version anew only in the boxes where `_version`
  drew marks and labels over the base; its bytes are those of the whole image quantized."""
  opts = writer.Options(seed=4, domain="plane")
  for i in range(3):
    _, out, _ = writer.drawn_problem(opts, i)
    for ver, (img, _, _) in out[0].images.items():
      assert img.over[1] or ver == "text_dominant", (i, ver)  # marks and labels were drawn
      assert render.png(img) == render.png(img.copy()), (i, ver)  # the copy has no `over`



def test_merged_boxes_cover_every_box_and_join_only_near_ones():
  """`render._merged` (the boxes a version is quantized in) covers every box that is not empty,
  joins two boxes side by side and keeps two far apart, each as it was."""
  rng = np.random.default_rng(2)
  for trial in range(50):
    lo = rng.integers(0, 360, (int(rng.integers(0, 30)), 2))
    boxes = [(*p, *(p + rng.integers(0, 25, 2))) for p in lo.tolist()]
    out = render._merged(boxes)
    assert len(out) <= len(boxes) and all(b[0] < b[2] and b[1] < b[3] for b in out), trial
    for x0, y0, x1, y1 in boxes:
      assert x0 == x1 or y0 == y1 or any(
          u[0] <= x0 and u[1] <= y0 and x1 <= u[2] and y1 <= u[3] for u in out), trial
  assert render._merged([(20, 10, 36, 26), (0, 10, 16, 26)]) == [(0, 10, 36, 26)]
  far = [(0, 0, 16, 16), (300, 300, 316, 316)]
  assert render._merged(far[::-1]) == far

def test_a_finished_canvas_png_is_that_of_the_whole_image_quantized():
  """`Canvas.finish` marks its image as white but in the box where it drew (`drawn_box`: the
  line art, tick numbers, point labels, the expression above a graph) and `render.png`
  quantizes only that box; the bytes are those of the whole image quantized."""
  for domain in ("analytic", "function"):
    opts = writer.Options(seed=4, domain=domain)
    for i in range(4):
      _, out, _ = writer.drawn_problem(opts, i)
      img = out[0].images["single"][0]
      assert img.over[0].size == img.size and len(img.over[1]) == 1, (domain, i)
      assert render.png(img) == render.png(img.copy()), (domain, i)


def test_the_ink_box_grown_at_once_is_the_one_grown_item_by_item():
  """`Canvas.ink` is grown from every item noted since it was last asked, in one pass: the
  same floats as growing it by each item's least and greatest x and y less or plus its own pad
  (items of 1 to 40 points, pads that differ, asked twice, and a copy that draws more)."""
  rng = np.random.default_rng(8)
  for trial in range(40):
    c, want = render.Canvas((0, 0, 10, 10)), None
    for k in range(int(rng.integers(1, 9))):
      q = rng.uniform(-20, 400, (int(rng.integers(1, 40)), 2)) * rng.uniform(0.1, 1)
      pad = float(rng.choice([1.4, 1.8, 2.0, 3.5, 2.2]))
      c._inked(q if k % 2 else list(q), pad)
      box = (*(q.min(0) - pad), *(q.max(0) + pad))
      want = box if want is None else (*np.minimum(box[:2], want[:2]),
                                        *np.maximum(box[2:], want[2:]))
      if k == 2:
        assert c._grown() == tuple(want), trial
    assert c._grown() == tuple(want), trial
    v, q = render.copy(c), rng.uniform(0, 384, (3, 2))
    v._inked(q, 1.4)
    assert v._grown() == (*np.minimum(want[:2], q.min(0) - 1.4),
                          *np.maximum(want[2:], q.max(0) + 1.4)), trial
    assert c._grown() == tuple(want), trial


def test_canvas_px_is_the_per_coordinate_transform():
  """`Canvas.px`, one product and one sum, gives the bits of ox + sx·x and oy - sy·y for an
  array of points, a list of them and one point."""
  rng = np.random.default_rng(5)
  for bbox, equal in (((-3.7, -2.1, 5.3, 4.9), True), ((-6.0, -1.3, 7.0, 8.6), False)):
    c = render.Canvas(bbox, margin=0.13, equal=equal)
    pts = rng.uniform(-8, 12, (200, 2))
    want = np.stack([c.ox + c.sx * pts[:, 0], c.oy - c.sy * pts[:, 1]], 1)
    assert np.array_equal(c.px(pts), want)
    assert np.array_equal(c.px(pts.tolist()), want)
    assert np.array_equal(c.px(pts[3]), want[3])


def test_remembered_floats_are_the_plain_conversions():
  for v in (sp.sqrt(3) * 4 / 3, sp.pi * 169 / 8, sp.Rational(-7, 2), sp.Integer(5), 2.5):
    assert exact.as_float(v) == float(v) and exact.as_complex(v) == complex(v)
  hits = exact._float_of.cache_info().hits
  exact.as_float(sp.sqrt(3) * 4 / 3)
  assert exact._float_of.cache_info().hits == hits + 1
  assert exact.approx(sp.sqrt(3) * 4 / 3) == "2.31"


def test_degrades_remembered_noise_is_each_seeds_own():
  """`render.degrade` draws a problem's noise once (`render._noise`): each image still gets the
  noise of its own seed and shape, whichever seed or shape asked before it."""
  rng = np.random.default_rng(5)
  imgs = [Image.fromarray(rng.integers(0, 256, (h, 40, 3), np.uint8)) for h in (30, 30, 20)]
  for seed in (7, 7, 8, 7):
    how = {"kind": "noise", "sigma": 38.0, "noise_seed": seed}
    for img in imgs:
      a = np.asarray(img, np.float32)
      noise = np.random.default_rng(seed).standard_normal(a.shape, np.float32)
      want = np.clip(a + 38.0 * noise, 0, 255).astype(np.uint8)
      assert np.array_equal(np.asarray(render.degrade(img, how)), want), (seed, img.size)
