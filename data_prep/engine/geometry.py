"""Pure 2-D geometry in floats: rotation, convex overlap, areas, arcs.

Float geometry is the engine's *independent* check: answers are deduced symbolically from
formulas, then re-measured here from the coordinates the renderer draws.

No BLAS or LAPACK here or wherever the engine computes a float (`@`, `np.dot`,
`np.linalg.solve`): OpenBLAS picks its kernels by CPU at run time, and their sums differ in the
last bit between machines (a plane figure's measured area read 36.084391824351606 on an AVX-512
host and 36.0843918243516 on an AVX2 one), so the same seed wrote different bytes on different
machines. Products and sums written out (`dot2`, `solve2`) give one answer everywhere;
`tests/unit/test_engine.py` runs the engine under several OpenBLAS kernels to keep it so.
"""

from __future__ import annotations

import math

import numpy as np


def unit(a, b):
  d = np.subtract(b, a, dtype=float)
  return d / np.hypot(*d)


def rot(v, deg: float):
  """v rotated counter-clockwise by deg degrees."""
  t = math.radians(deg)
  c, s = math.cos(t), math.sin(t)
  return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def dot2(u, v) -> float:
  """u·v of two 2-D vectors, the same bits on every CPU (see the module docstring)."""
  return float(u[0]) * float(v[0]) + float(u[1]) * float(v[1])


def solve2(m, r) -> np.ndarray:
  """The solution of the 2x2 system m·x = r (see the module docstring), by elimination with
  the larger of the first column's entries as pivot, as LAPACK's LU does: the systems here
  are the independent measures' circumcentres, midpoints and lines."""
  (a, b), (c, d) = ((float(v) for v in row) for row in m)
  e, f = float(r[0]), float(r[1])
  if abs(c) > abs(a):
    a, b, e, c, d, f = c, d, f, a, b, e
  k = c / a if a else 0.0
  pivot = d - k * b if a else 0.0  # a zero first column, or rows in proportion
  if pivot == 0:
    raise np.linalg.LinAlgError("Singular matrix")  # as np.linalg.solve says it
  y = (f - k * e) / pivot
  return np.array([(e - b * y) / a, y])


def left(v):
  return np.array([-v[1], v[0]])


def arc_points(center, radius: float, a0: float, a1: float, n: int = 24):
  """Points on a circular arc from angle a0 to a1 (degrees, counter-clockwise)."""
  t = np.radians(np.linspace(a0, a1, n))
  return np.stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)], 1)


def angle_of(v) -> float:
  return math.degrees(math.atan2(v[1], v[0]))


def shoelace(poly) -> float:
  p = np.asarray(poly, float)
  x, y = p[:, 0], p[:, 1]
  return 0.5 * (math.fsum(x * np.roll(y, -1)) - math.fsum(y * np.roll(x, -1)))


def perimeter(poly) -> float:
  p = np.asarray(poly, float)
  return float(np.hypot(*(np.roll(p, -1, 0) - p).T).sum())


def overlap(p, q, eps: float = 1e-6) -> bool:
  """Whether two convex polygons' interiors intersect (separating-axis test).

  Touching along an edge or at a point is not overlap: projections that meet within eps
  count as separated, which is exactly "share only the attaching edge". Both polygons' edge
  normals go through one set of NumPy calls, not a set each: a polygon has a few corners, so
  the calls are the cost (35 -> 20 µs, ~4 tests a problem).
  """
  p, q = np.asarray(p, float), np.asarray(q, float)
  scale = max((p.max(0) - p.min(0)).max(), (q.max(0) - q.min(0)).max(), 1.0)
  e = np.concatenate([p[1:] - p[:-1], p[:1] - p[-1:], q[1:] - q[:-1], q[:1] - q[-1:]])
  nx, ny = -e[:, 1], e[:, 0]
  norms = np.hypot(nx, ny)
  ok = norms > 1e-12
  nx, ny = nx[ok] / norms[ok], ny[ok] / norms[ok]
  a, b = p[:, :1] * nx + p[:, 1:] * ny, q[:, :1] * nx + q[:, 1:] * ny  # written out: no BLAS
  tol = eps * scale
  return not ((a.max(0) <= b.min(0) + tol) | (b.max(0) <= a.min(0) + tol)).any()


def seg_dist(p, a, b) -> np.ndarray:
  """Distances from points p (n,2) to segment ab."""
  p = np.asarray(p, float)
  a, b = np.asarray(a, float), np.asarray(b, float)
  ab = b - a
  along = (p[:, 0] - a[0]) * ab[0] + (p[:, 1] - a[1]) * ab[1]  # written out: no BLAS
  t = np.clip(along / max(dot2(ab, ab), 1e-18), 0, 1)
  return np.hypot(*(p - (a + t[:, None] * ab)).T)


def inside(pt, poly) -> bool:
  """Point strictly inside a simple polygon (ray casting)."""
  x, y = pt
  p = np.asarray(poly, float)
  c = False
  for (x1, y1), (x2, y2) in zip(p, np.roll(p, -1, 0)):
    if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
      c = not c
  return c
