"""Label layout: every label goes where it overlaps no other label, no vertex and no drawn line.

Geometry is in final-image pixels. Drawn line art is kept as segments (x0, y0, x1, y1) and points
as vertices; a label is tried at candidate centres in order of preference and takes the first
whose box (the rendered text's ink box, white halo included) is clear of all of them.
`conflicts` checks a finished canvas from what was actually drawn: the sweep in
benchmarks/engine.py and the tests run it on thousands of scenes.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw

# `Layout.place`'s, as globals: NumPy's count_nonzero without its Python wrapper (0.9 against
# 1.4 µs a box; `.any()` 3.2)
_floor, _ceil = math.floor, math.ceil
_count_nonzero = getattr(np._core.multiarray, "count_nonzero", np.count_nonzero)

GAP = 1.0          # free pixels between a label's box and anything else
VERTEX_R = 3.0     # a vertex is a disk this wide
LINE_HALF = 1.3    # half the width of the thickest line
FEW_DISKS = 8      # up to this many disks Pillow draws them one by one (`Layout._disks`)


def box_at(centre, rel) -> tuple:
  """A box (x0, y0, x1, y1) given a centre and a box relative to it."""
  return (centre[0] + rel[0], centre[1] + rel[1], centre[0] + rel[2], centre[1] + rel[3])


def boxes_overlap(a, b, gap: float = GAP) -> bool:
  return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def segments_hit(segs: np.ndarray, box, pad: float) -> np.ndarray:
  """Which segments (N, 4) pass through the box grown by pad (Liang-Barsky clipping)."""
  if len(segs) == 0:
    return np.zeros(0, bool)
  x0, y0, x1, y1 = box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad
  sx, sy, ex, ey = segs[:, 0], segs[:, 1], segs[:, 2], segs[:, 3]
  near = ((np.minimum(sx, ex) <= x1) & (np.maximum(sx, ex) >= x0)
          & (np.minimum(sy, ey) <= y1) & (np.maximum(sy, ey) >= y0))
  if not near.any():
    return near
  sx, sy, ex, ey = sx[near], sy[near], ex[near], ey[near]
  dx, dy = ex - sx, ey - sy
  t0, t1 = np.zeros(len(sx)), np.ones(len(sx))
  ok = np.ones(len(sx), bool)
  with np.errstate(divide="ignore", invalid="ignore"):
    for p, q in ((-dx, sx - x0), (dx, x1 - sx), (-dy, sy - y0), (dy, y1 - sy)):
      par = p == 0
      ok &= ~(par & (q < 0))
      r = q / np.where(par, 1, p)
      t0 = np.where(~par & (p < 0), np.maximum(t0, r), t0)
      t1 = np.where(~par & (p > 0), np.minimum(t1, r), t1)
  hit = np.zeros(len(near), bool)
  hit[np.flatnonzero(near)] = ok & (t0 <= t1)
  return hit


def box_distances(box, pts: np.ndarray) -> np.ndarray:
  """Distance from each point (N, 2) to the box (0 inside it)."""
  cx = np.clip(pts[:, 0], box[0], box[2])
  cy = np.clip(pts[:, 1], box[1], box[3])
  return np.hypot(pts[:, 0] - cx, pts[:, 1] - cy)


def vertices_hit(pts: np.ndarray, box, pad: float) -> np.ndarray:
  if len(pts) == 0:
    return np.zeros(0, bool)
  return box_distances(box, pts) < pad


def _thin(p: np.ndarray, spacing: float) -> np.ndarray:
  """A polyline's points at least `spacing` pixels apart (ends kept): Pillow draws a wide line
  of sub-pixel pieces (a dense arc) too thin to hold the clearance."""
  if len(p) < 3 or np.hypot(*np.diff(p, axis=0).T).min() >= spacing:
    return p  # a polygon's corners: every point would be kept
  xy = p.tolist()  # Python floats: this loop runs over every point of a function's graph
  keep, (kx, ky) = [0], xy[0]
  for i in range(1, len(xy) - 1):
    x, y = xy[i]
    if math.hypot(x - kx, y - ky) >= spacing:
      keep.append(i)
      kx, ky = x, y
  keep.append(len(xy) - 1)
  return p[keep]


class Layout:
  """What is on the canvas so far, and where the next label fits.

  Obstacles are kept twice: exactly (segments, vertices, boxes: what `conflicts` checks) and
  rasterized with their clearance into an occupancy mask (placed labels' boxes too), so testing
  a candidate box is one array slice however many lines the figure has.
  """

  def __init__(self, size: int):
    self.size = size
    self.seg_list, self.vert_list, self.boxes = [], [], []
    self.mask = Image.new("L", (size, size), 0)
    self._draw = ImageDraw.Draw(self.mask)
    self._dots = np.zeros((size, size), np.uint8)  # the disks, stamped in NumPy (`_disks`)
    self._arr = None
    self._width = 2 * math.ceil(LINE_HALF + GAP) + 1

  @property
  def segs(self) -> np.ndarray:
    return np.vstack(self.seg_list) if self.seg_list else np.zeros((0, 4))

  @property
  def verts(self) -> np.ndarray:
    return np.vstack(self.vert_list) if self.vert_list else np.zeros((0, 2))

  def add_segments(self, pts, closed: bool = False):
    p = np.asarray(pts, float).reshape(-1, 2)
    if closed:
      p = np.vstack([p, p[:1]])
    if len(p) > 1:
      self.seg_list.append(np.hstack([p[:-1], p[1:]]))
      q = _thin(p, 3.0)
      self._draw.line(q.ravel().tolist(), fill=255, width=self._width)
      self._disks(q, self._width / 2)  # wide lines leave wedges open at their joints: round them
      self._arr = None

  def add_vertices(self, pts):
    p = np.asarray(pts, float).reshape(-1, 2)
    self.vert_list.append(p)
    self._disks(p, VERTEX_R + GAP + 0.5)
    self._arr = None

  def _disks(self, pts: np.ndarray, r: float):
    """Pillow's filled disk of radius r around each point, the same pixels as its `ellipse`
    (whose box corner it floors), stamped in one NumPy assignment: a function graph's joints
    were ~170 `ellipse` calls, ~0.2 ms. A disk crossing the top or left edge goes to Pillow,
    as do a few disks (a vertex, a polygon's corners): there one call each costs less."""
    few, lo = len(pts) <= FEW_DISKS, pts - r
    edge = np.ones(len(pts), bool) if few else (lo < 0).any(1)
    for x, y in pts[edge]:
      self._draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    if few:
      return
    dy, dx = _disk(r)
    corner = np.floor(lo[~edge]).astype(np.intp)
    ys, xs = (corner[:, 1, None] + dy).ravel(), (corner[:, 0, None] + dx).ravel()
    inside = (ys < self.size) & (xs < self.size)
    self._dots[ys[inside], xs[inside]] = 255

  def free(self, box) -> bool:
    """Whether the box, a pixel more around it, is clear of everything occupied (no clamp at
    0: a box inside the 1-pixel margin starts at 1 or more). `place` runs the same test."""
    x0, y0, x1, y1 = box
    edge = self.size - 1
    if x0 < 1 or y0 < 1 or x1 > edge or y1 > edge:
      return False
    return not _count_nonzero(self._occupied()[_floor(y0) - 1:_ceil(y1) + 2,
                                               _floor(x0) - 1:_ceil(x1) + 2])

  def _occupied(self) -> np.ndarray:
    if self._arr is None:
      self._arr = np.maximum(np.asarray(self.mask), self._dots)
      self._pixel = memoryview(self._arr)  # `place`'s one-pixel tests, without NumPy's calls
    return self._arr

  def place(self, rel, centres, keep=None) -> tuple | None:
    """The first candidate centre whose box is free and that `keep(centre, box)` accepts (a
    label must also read as its own object's: `render.owner`), reserved; else None. `free`'s
    test is written out in the loop, on the array fetched once: ~320 boxes are tried a
    problem, and the call and lookups were a third of each one's cost. The box's four corner
    pixels are read first, one by one: 92% of the boxes tried are not free, and three in four
    of those have a corner taken (a line or label beside the spot), where NumPy's slice and
    count cost ~6K instructions a box whatever they find."""
    occupied, edge = self._occupied(), self.size - 1
    pixel = self._pixel
    left, top, right, bottom = rel
    for c in centres:
      x, y = c
      x0, y0, x1, y1 = box = (x + left, y + top, x + right, y + bottom)
      if x0 < 1 or y0 < 1 or x1 > edge or y1 > edge:
        continue
      r0, r1, c0, c1 = _floor(y0), _ceil(y1), _floor(x0), _ceil(x1)
      if (pixel[r0, c0] or pixel[r1, c1] or pixel[r0, c1] or pixel[r1, c0]
          or _count_nonzero(occupied[r0 - 1:r1 + 2, c0 - 1:c1 + 2])):
        continue
      if keep is None or keep(c, box):
        self.boxes.append(box)
        g = math.ceil(GAP)  # the box grown by GAP, in the array now and in the mask for later
        r0, r1 = max(0, math.floor(box[1]) - g), math.ceil(box[3]) + g + 1
        c0, c1 = max(0, math.floor(box[0]) - g), math.ceil(box[2]) + g + 1
        occupied[r0:r1, c0:c1] = 255
        self._draw.rectangle([c0, r0, c1 - 1, r1 - 1], fill=255)
        return c
    return None


@functools.lru_cache(maxsize=None)
def _disk(r: float) -> tuple:
  """(rows, columns) of the pixels Pillow fills for an ellipse in the box (0, 0, 2r, 2r)."""
  n = math.ceil(2 * r) + 2
  im = Image.new("L", (n, n), 0)
  ImageDraw.Draw(im).ellipse([0, 0, 2 * r, 2 * r], fill=255)
  return np.nonzero(np.asarray(im))


SPREAD = (0, 25, -25, 50, -50, 80, -80, 115, -115, 150, -150, 180)


def around(anchor, direction, radii, spread=SPREAD):
  """Candidate centres around an anchor: preferred direction first, then turning away from it,
  each at growing distances (generated lazily: most labels take the first)."""
  base = math.atan2(direction[1], direction[0])
  ax, ay = float(anchor[0]), float(anchor[1])
  for r in radii:
    for s in spread:
      a = base + math.radians(s)
      yield ax + r * math.cos(a), ay + r * math.sin(a)


def along(p, q, normal, radii, ts=(0.5, 0.38, 0.62, 0.27, 0.73)):
  """Candidate centres beside segment pq: on the preferred side first, then the other."""
  (px, py), (qx, qy), (nx, ny) = p, q, normal
  for side in (1, -1):
    for r in radii:
      for t in ts:
        yield px + (qx - px) * t + side * r * nx, py + (qy - py) * t + side * r * ny


def segment_distances(segs: np.ndarray):
  """point -> its distance to each segment (N, 4). A label's owner asks at every free spot
  (~3.5 a problem), so what depends on the segments alone is taken once, and the
  columns go through NumPy's ufuncs without `np.clip`'s wrapper: 8.8 against 14.9 µs a call,
  the same bits."""
  (ax, ay), (dx, dy) = segs[:, :2].T, (segs[:, 2:] - segs[:, :2]).T
  squared = np.maximum(dx * dx + dy * dy, 1e-12)

  def distances(point) -> np.ndarray:
    wx, wy = point[0] - ax, point[1] - ay
    t = np.minimum(np.maximum((wx * dx + wy * dy) / squared, 0.0), 1.0)
    return np.hypot(wx - t * dx, wy - t * dy)
  return distances


def crossings(p, segs: np.ndarray):
  """q -> which segments (N, 4) the segment pq crosses (proper crossings, by the signs of the
  turns). An angle label's owner asks from its vertex p to each spot inside the angle, so the
  turns and differences that depend on p and the segments alone are taken once: 13.4 against
  28.6 µs a call, the same signs."""
  (px, py), (ax, ay), (bx, by) = p, segs[:, :2].T, segs[:, 2:].T
  ex, ey = bx - ax, by - ay
  p_turn = np.sign(ex * (py - ay) - ey * (px - ax))  # a -> b -> p, for each segment ab
  a_py, a_px, b_py, b_px = ay - py, ax - px, by - py, bx - px

  def crossed(q) -> np.ndarray:
    qx, qy = q
    dx, dy = qx - px, qy - py
    return ((p_turn * np.sign(ex * (qy - ay) - ey * (qx - ax)) < 0)
            & (np.sign(dx * a_py - dy * a_px) * np.sign(dx * b_py - dy * b_px) < 0))
  return crossed


def conflicts(labels: list, segs: np.ndarray, verts: np.ndarray) -> list:
  """Every overlap on a finished canvas: [(label text, what it overlaps)]. labels: [(text, box)]
  with the boxes of the text as drawn."""
  out = []
  for k, (text, box) in enumerate(labels):
    for other, b in labels[k + 1:]:
      if boxes_overlap(box, b, 0.0):
        out.append((text, f"label {other!r}"))
    if vertices_hit(verts, box, VERTEX_R).any():
      out.append((text, "a vertex"))
    if segments_hit(segs, box, LINE_HALF).any():
      out.append((text, "a drawn line"))
  return out
