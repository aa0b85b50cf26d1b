"""Pillow rendering: fast, deterministic, and still a clean math diagram.

Line art is drawn at SS x resolution and reduced (anti-aliasing by supersampling); text is drawn
after the reduction at the final size from cached glyph tiles (a label's pixels are rendered once
per process, then pasted). Every line and vertex drawn is also kept in a `layout.Layout`, so each
label is placed where it overlaps nothing, and a finished canvas can be checked (`conflicts`).
A Matplotlib figure per sample costs tens of milliseconds; this costs a few.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from . import layout as LY
from .geometry import dot2

SIZE = 384
SS = 2
INK = (20, 20, 20)
GRID = (222, 226, 232)
FILLS = [(214, 228, 247), (250, 224, 205), (216, 240, 216), (242, 220, 240), (250, 244, 200),
         (220, 236, 240)]
COLORS = [(31, 97, 180), (200, 60, 40), (30, 140, 60), (140, 60, 160), (210, 120, 0)]
MARK = (190, 40, 40)
LABEL = (30, 70, 160)
TICK = (90, 90, 90)
DEGRADATIONS = ("blur", "noise", "lowres")


@lru_cache(maxsize=None)
def font_path() -> str | None:
  """DejaVu Sans as shipped with Matplotlib (a pinned dependency): it has every glyph the
  notation uses (π, √, ², ₂, ∞, ·, °), which Pillow's built-in font lacks."""
  import importlib.util
  spec = importlib.util.find_spec("matplotlib")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = os.path.join(spec.submodule_search_locations[0], "mpl-data", "fonts", "ttf",
                      "DejaVuSans.ttf")
  return path if os.path.exists(path) else None


@lru_cache(maxsize=None)
def font(size: int):
  path = font_path()
  if path is None:
    raise RuntimeError("engine: DejaVuSans.ttf not found in Matplotlib's mpl-data; install the "
                       "pinned matplotlib (requirements.txt): labels need its math glyphs")
  return ImageFont.truetype(path, size)


HALO = (255, 255, 255, 255)  # a label's stroke: opaque white


@lru_cache(maxsize=8192)
def halo(text: str, size: int):
  """(mask, its corner, ink box) relative to the text's centre: the text stroked 2 px wide and
  filled, its white halo, whose box is the label's ink box in any colour. The layout needs
  only the box, and sizes tried and given up (`Canvas.place_shrinking`, `functions._header`;
  ~15% of the labels made) were whole tiles; now they cost one FreeType render, and a tile
  drawn reuses the mask (2.0% of a problem's instructions, `benchmarks.engine_instructions`)."""
  mask, corner = font(size).getmask2(text, "L", stroke_width=2, anchor="mm", stroke_filled=True)
  x0, y0, x1, y1 = mask.getbbox() or (0, 0, 1, 1)
  return mask, corner, (corner[0] + x0, corner[1] + y0, corner[0] + x1, corner[1] + y1)


@lru_cache(maxsize=8192)
def tile(text: str, size: int, color: tuple):
  """(RGBA tile, its corner, ink box) relative to the text's centre: the text with its white
  halo. The halo's mask is pasted in white on Pillow's core image (`im.im`), the call
  `ImageDraw.text` makes for a stroke, and the text is drawn over it: `ImageDraw.text`'s pixels
  with `stroke_width=2`, without its second render of the halo and its layout pass for the
  tile's size (`getbbox`)."""
  mask, (l, t), rel = halo(text, size)
  im = Image.new("RGBA", mask.size, (255, 255, 255, 0))
  im.im.paste(HALO, (0, 0, *mask.size), mask)
  ImageDraw.Draw(im).text((-l, -t), text, font=font(size), fill=color + (255,), anchor="mm")
  return im, (l, t), rel


class Canvas:
  """World -> pixel transform, line art, and labels placed by the layout."""

  def __init__(self, bbox, size: int = SIZE, margin: float = 0.11, equal: bool = True):
    self.size = size
    x0, y0, x1, y1 = bbox
    w, h = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
    m = size * margin
    sx, sy = (size - 2 * m) / w, (size - 2 * m) / h
    if equal:
      sx = sy = min(sx, sy)
    self.sx, self.sy = sx, sy
    self.ox = (size - sx * w) / 2 - sx * x0
    self.oy = (size + sy * h) / 2 + sy * y0
    self._scale, self._origin = np.array([sx, -sy]), np.array([self.ox, self.oy])  # `px`
    self.img = Image.new("RGB", (size * SS, size * SS), "white")
    self.d = ImageDraw.Draw(self.img)
    self.k = SS
    self.texts = []        # (centre, text, size, color) waiting to be drawn
    self.drawn = []        # fact ids drawn
    self.labels = []       # (text, ink box) as drawn
    self.layout = LY.Layout(size)
    self.ink = None        # (x0, y0, x1, y1), final pixels: what anything drawn may cover
    self.inked = []        # (points, pad) drawn since `ink` was last grown (`_grown`)
    self.art = []          # line art waiting to be drawn (`_paint`)

  def _inked(self, q, pad: float):
    """Note points q (final pixels) padded by pad (a line's width, a dot's radius) for `ink`:
    outside it the canvas is white, so the reduction skips it. `ink` is grown when asked, over
    all the points noted, in one NumPy pass: item by item it was ~1% of a problem, and a
    figure whose labels do not fit never asks."""
    self.inked.append((q, pad))

  def _grown(self) -> tuple | None:
    """`ink` grown over the points noted since it was last grown. Rounding keeps order, so the
    least x - pad over all of them is each item's least x less its pad: the same box as
    growing it item by item."""
    if self.inked:
      qs = [np.asarray(q, float).reshape(-1, 2) for q, _ in self.inked]
      pad = np.repeat([p for _, p in self.inked], [len(q) for q in qs])[:, None]
      q = np.concatenate(qs)
      box = (*(q - pad).min(0).tolist(), *(q + pad).max(0).tolist())
      if self.ink is not None:
        box = (*map(min, box[:2], self.ink[:2]), *map(max, box[2:], self.ink[2:]))
      self.ink, self.inked = box, []
    return self.ink

  def px(self, p):
    """World points -> final-size pixel coordinates (float): ox + sx·x and oy - sy·y as one
    product and one sum, the same bits (~70 calls a problem)."""
    return np.asarray(p, float) * self._scale + self._origin

  def _hi(self, q):
    """Supersampled coordinates as one flat list of floats (Pillow reads x0, y0, x1, y1, ...):
    a tuple per point cost 17 µs a call, 1.2% of the engine."""
    return (np.asarray(q, float) * self.k).ravel().tolist()

  def _width(self, width):
    return max(1, round(width * self.k))

  def _paint(self, method: str, *args, **kwargs):
    """Draw now on a flattened canvas; before, queue the call for `flatten`. The layout is
    known at once either way, so a figure whose labels do not fit is given up before any of
    its line art is drawn (about half the plane figures tried; 0.8% of a problem's
    instructions, `benchmarks.engine_instructions`)."""
    if self.k > 1:
      self.art.append((method, args, kwargs))
    else:
      getattr(self.d, method)(*args, **kwargs)

  def poly(self, pts, fill=None, outline=INK, width=2.0):
    q = self.px(pts)
    self._inked(q, width)
    if fill is not None:
      self._paint("polygon", self._hi(q), fill=fill)
    if outline is not None:
      self._paint("line", self._hi(np.vstack([q, q[:1]])), fill=outline,
                  width=self._width(width), joint="curve")
      self.layout.add_segments(q, closed=True)

  def line(self, pts, color=INK, width=2.0, obstacle=True):
    q = self.px(pts)
    self._inked(q, width)
    self._paint("line", self._hi(q), fill=color, width=self._width(width), joint="curve")
    if obstacle:
      self.layout.add_segments(q)

  def curve(self, pts, color=INK, width=2.0):
    """A dense polyline (a function graph): no joint rounding needed, so much cheaper."""
    q = self.px(np.asarray(pts, float))
    self._inked(q, width)
    self._paint("line", (q * self.k).ravel().tolist(), fill=color, width=self._width(width))
    self.layout.add_segments(q)

  def dot(self, p, r=3.5, color=INK):
    x, y = self.px(p)
    k = self.k
    self._inked([x, y], r + 1)
    self._paint("ellipse", [(x - r) * k, (y - r) * k, (x + r) * k, (y + r) * k], fill=color)
    self.layout.add_vertices([x, y])

  def px_line(self, pts, color=INK, width=1.5):
    """A line given in final-size pixels (marks that have a fixed on-screen size)."""
    k = self.k
    self._inked(pts, width)
    self._paint("line", [(float(x) * k, float(y) * k) for x, y in pts], fill=color,
                width=max(1, round(width * k)))

  def place(self, text, size, centres, optional=False, keep=None):
    """Reserve the first free spot among `centres` (pixels) for a label (that `keep` accepts,
    when given); None when none is free. A required label that fits nowhere makes the figure
    unusable (the caller redraws)."""
    at = self.layout.place(halo(text, size)[2], centres, keep)
    if at is None and not optional:
      raise LabelsDoNotFit(f"no free place for the label {text!r}")
    return at

  def place_shrinking(self, text, size, centres, smallest: int = 11, keep=None) -> tuple:
    """(centre, size): the label at its size if it fits anywhere, else a size or two smaller
    (a crowded corner), else LabelsDoNotFit. Most labels fit at once, so the candidates are
    made as the first size asks for them and kept for the smaller ones by `itertools.tee`, in
    C: a generator of our own that kept them cost a Python frame for each (~250 a problem)."""
    candidates, kept = itertools.tee(centres)
    for s in range(size, smallest - 1, -2):
      at = self.place(text, s, candidates, optional=s > smallest, keep=keep)
      if at is not None:
        return at, s
      candidates = kept = list(kept)
    raise LabelsDoNotFit(f"no free place for the label {text!r}")

  def text(self, centre, text, size=15, color=INK):
    self.texts.append((centre, text, size, color))

  def flatten(self):
    """Reduce the supersampled line art now; later marks draw at final size (cheap copies)."""
    if self.k > 1:
      for method, args, kwargs in self.art:
        getattr(self.d, method)(*args, **kwargs)
      self.art = []
      self.img = self._reduced()
      self.d = ImageDraw.Draw(self.img)
      self.k = 1
    for centre, s, size, color in self.texts:
      im, (l, t), _ = tile(s, size, color)
      x, y = round(centre[0] + l), round(centre[1] + t)
      self.img.paste(im, (x, y), im)
      b = im.getbbox() or (0, 0, 1, 1)
      self.labels.append((s, (x + b[0], y + b[1], x + b[2], y + b[3])))
    self.texts = []

  def _reduced(self) -> Image.Image:
    """The supersampled art at final size, only its inked box reduced (~half the canvas): the
    rest is white either way, and `reduce` was 6% of a problem."""
    box = self.ink_box()
    out = Image.new("RGB", (self.size, self.size), "white")
    if box is not None:
      k = self.k
      out.paste(self.img.reduce(k, box=tuple(v * k for v in box)), box[:2])
    return out

  def ink_box(self) -> tuple | None:
    """`ink` in whole final pixels, a pixel more on each side, within the canvas."""
    if self._grown() is None:
      return None
    x0, y0, x1, y1 = self.ink
    s = self.size
    box = (max(0, math.floor(x0) - 1), max(0, math.floor(y0) - 1),
           min(s, math.ceil(x1) + 1), min(s, math.ceil(y1) + 1))
    return box if box[0] < box[2] and box[1] < box[3] else None

  def finish(self) -> Image.Image:
    """The image, done; its `over` (for `png`) says that it is white but in `drawn_box`."""
    self.flatten()
    box = self.drawn_box()
    self.img.over = (_white(self.size), [box] if box else [])
    return self.img

  def drawn_box(self) -> tuple | None:
    """The whole pixels anything was drawn on (the ink box and the labels'); white outside."""
    boxes = [_pixels(b, self.size) for _, b in self.labels] + [self.ink_box()]
    boxes = [b for b in boxes if b is not None]
    if not boxes:
      return None
    x0, y0, x1, y1 = zip(*boxes)
    return min(x0), min(y0), max(x1), max(y1)

  def conflicts(self) -> list:
    return LY.conflicts(self.labels, self.layout.segs, self.layout.verts)


class LabelsDoNotFit(Exception):
  """Raised by `Canvas.place`; the domain turns it into a redraw of the figure's numbers."""


def copy(c: Canvas) -> Canvas:
  n = Canvas.__new__(Canvas)
  n.__dict__.update(c.__dict__)
  n.img = c.img.copy()
  n.d = ImageDraw.Draw(n.img)
  n.texts, n.drawn, n.labels, n.art = list(c.texts), list(c.drawn), list(c.labels), list(c.art)
  n.inked = list(c.inked)
  return n


def _palette() -> Image.Image:
  """A fixed palette: every drawing colour blended with white (anti-aliased edges) and ink."""
  cols = FILLS + COLORS + [INK, MARK, GRID, LABEL, TICK]
  pal = [(255, 255, 255)]
  for c in cols:
    pal += [tuple(int(255 * (1 - a) + a * x) for x in c) for a in (.12, .25, .4, .55, .7, .85, 1.)]
  for f in FILLS:
    pal += [tuple(int(f[k] * (1 - a) + a * INK[k]) for k in range(3)) for a in (.25, .5, .75)]
  flat = [v for c in pal for v in c]
  img = Image.new("P", (1, 1))
  img.putpalette(flat + [0] * (768 - len(flat)))
  return img


PALETTE = None


def png(img: Image.Image) -> bytes:
  """PNG bytes; clean diagrams quantized to the fixed palette (4x faster to encode, a third of
  the size), degraded ones (noise, blur) kept in full colour."""
  global PALETTE
  if PALETTE is None:
    PALETTE = _palette()
  degraded = getattr(img, "degraded", False)
  if img.mode == "RGB" and not degraded:
    img = _quantized(img)
  buf = io.BytesIO()  # run-length matches only for full colour: 20% faster and smaller there
  img.save(buf, format="PNG", compress_level=1, compress_type=zlib.Z_RLE if degraded else -1)
  return buf.getvalue()


def _quantized(img: Image.Image) -> Image.Image:
  """`img` in the fixed palette. Quantizing costs ~25 instructions a pixel (3.7M an image, a
  quarter of a plane problem's three), and without dither it maps each pixel by its colour
  alone, so an image that differs from another only in a few boxes (its `over`: that base and
  the boxes) is the base's quantized image, made once, with only those boxes quantized anew
  (`_merged`): a plane figure's version over its base (`_version`), a finished canvas over a
  white one, where it drew nothing (`Canvas.finish`; ~40% of a canvas)."""
  base, boxes = getattr(img, "over", (None, ()))
  if base is None:
    return img.quantize(palette=PALETTE, dither=Image.Dither.NONE)
  if not hasattr(base, "quantized"):
    base.quantized = _quantized(base)
  out = base.quantized.copy()
  for box in _merged(boxes):
    out.paste(img.crop(box).quantize(palette=PALETTE, dither=Image.Dither.NONE), box[:2])
  return out


# What one quantize call costs besides its pixels, in pixels: ~81K instructions (crop, quantize
# and paste of a 16x16 box: 87K) against ~25 a pixel
CALL_PIXELS = 3300


def _merged(boxes) -> list:
  """The boxes to quantize (empty ones left out), each joined to the first before it (from the
  left) whose bounding box grows by fewer pixels than quantizing it apart would cost
  (CALL_PIXELS and its own): a plane figure's version has ~24 small boxes, most beside
  another. Outside its boxes an image is its base, so the pixels a joined box adds quantize to
  the base's indices, and the bytes stay the same."""
  out = []
  for x0, y0, x1, y1 in sorted(boxes):
    if x0 >= x1 or y0 >= y1:
      continue
    apart = CALL_PIXELS + (x1 - x0) * (y1 - y0)
    for k, (a0, b0, a1, b1) in enumerate(out):
      u0, v0, u1, v1 = min(a0, x0), min(b0, y0), max(a1, x1), max(b1, y1)
      if (u1 - u0) * (v1 - v0) - (a1 - a0) * (b1 - b0) < apart:
        out[k] = (u0, v0, u1, v1)
        break
    else:
      out.append((x0, y0, x1, y1))
  return out


@lru_cache(maxsize=None)
def _white(size: int) -> Image.Image:
  return Image.new("RGB", (size, size), "white")


JPEG_KINDS = ("blur", "noise")


def encode(img: Image.Image, how: dict | None = None) -> tuple:
  """(file extension, bytes) of one image. A blurred or noisy image is stored as JPEG (quality
  90): its smooth or grainy pixels are a photographed page's, which PNG stores badly (a noisy
  image: PNG 268 KB in 10 ms, JPEG 84 KB in 0.5 ms; a blurred one 25 KB in 2 ms against 8 KB in
  0.2 ms). Clean and low-resolution images (sharp edges, few colours) stay PNG."""
  if how is not None and how["kind"] in JPEG_KINDS:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return "jpg", buf.getvalue()
  return "png", png(img)


def degradation(rng) -> dict:
  """One clarity-0 degradation for a whole problem (Math-LLaVA's blurred/unclear label): its
  kind and parameters, applied identically to every image of the problem."""
  kind = DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))]
  return {"kind": kind, "radius": float(rng.uniform(1.8, 3.0)), "sigma": 38.0,
          "noise_seed": int(rng.integers(2 ** 31)), "factor": int(rng.integers(4, 7))}


def degrade(img: Image.Image, how: dict) -> Image.Image:
  """The blur is taken at half resolution and scaled back (3.6 -> 1.8 ms an image against
  Pillow's Gaussian at full size); the noise is drawn in float32. Both look the same to a reader
  and to `tests/unit/test_engine_labels.py`'s read-back of the kind."""
  kind = how["kind"]
  if kind == "blur":
    half = img.reduce(2).filter(ImageFilter.GaussianBlur(radius=how["radius"] / 2))
    out = half.resize(img.size, Image.BILINEAR)
  elif kind == "noise":
    a = np.asarray(img, np.float32)
    out = Image.fromarray(np.clip(a + _noise(how["noise_seed"], a.shape, how["sigma"]), 0, 255)
                          .astype(np.uint8))
  elif kind == "lowres":
    f = how["factor"]
    out = img.resize((img.width // f, img.height // f), Image.BILINEAR).resize(img.size,
                                                                                 Image.NEAREST)
  else:
    raise ValueError(f"engine: unknown degradation {kind!r}; one of {DEGRADATIONS}")
  out.degraded = True
  return out


@lru_cache(maxsize=1)
def _noise(seed: int, shape: tuple, sigma: float) -> np.ndarray:
  """`degrade`'s noise, remembered: a plane problem's three images draw the same (one seed and
  shape a problem), 442k normals each. Read-only, as it is shared."""
  noise = sigma * np.random.default_rng(seed).standard_normal(shape, np.float32)
  noise.flags.writeable = False
  return noise


# ---------------------------------------------------------------- plane geometry


def unit(v):
  v = np.asarray(v, float)
  n = np.hypot(*v)
  return v / n if n > 1e-12 else np.array([0.0, 1.0])


def mark_lines(c: Canvas, m: dict) -> list:
  """The pixel polylines a mark draws (right-angle corners, equal-side ticks, angle arcs)."""
  t = m["type"]
  if t == "group":
    return [pl for it in m["items"] for pl in mark_lines(c, it)]
  if t == "right_angle":
    v, p, q = c.px(m["v"]), c.px(m["p"]), c.px(m["q"])
    a, b = unit(p - v) * 9, unit(q - v) * 9
    return [np.array([v + a, v + a + b, v + b])]
  if t == "ticks":
    out = []
    for p, q in m["segs"]:
      p, q = c.px(p), c.px(q)
      d = unit(q - p)
      nrm, mid = np.array([-d[1], d[0]]) * 5, (p + q) / 2
      for k in range(m["n"]):
        o = mid + d * (k - (m["n"] - 1) / 2) * 4
        out.append(np.array([o - nrm, o + nrm]))
    return out
  if t == "angle_label":
    v, a0, sweep = _angle(c, m)
    ts = np.radians(np.linspace(a0, a0 + sweep, 16))
    return [np.stack([v[0] + 16 * np.cos(ts), v[1] + 16 * np.sin(ts)], 1)]
  return []


def _angle(c: Canvas, m: dict):
  v, p, q = c.px(m["v"]), c.px(m["p"]), c.px(m["q"])
  a, b = unit(p - v), unit(q - v)
  ang_a, ang_b = math.degrees(math.atan2(a[1], a[0])), math.degrees(math.atan2(b[1], b[0]))
  sweep = (ang_b - ang_a) % 360
  if sweep > 180:
    ang_a, sweep = ang_b, 360 - sweep
  return v, ang_a, sweep


# A label reads as its object's when it is nearer that object than any other by this much (px)
OWN_MARGIN = 3.0
# An angle's label, inside the angle, may be at most this many times as far from its vertex as
# from another (its arc marks the angle; requiring the nearest vertex redrew 1 figure in 2)
ANGLE_REACH = 2.0
# The smallest size a value label may shrink to in a crowded corner before the figure is redrawn
SMALLEST = 9


def _segments(polylines) -> np.ndarray:
  """The closed outlines' sides as segments (N, 4), in pixels."""
  return np.vstack([np.hstack([o, np.roll(o, -1, axis=0)]) for o in polylines])


def owner(c: Canvas, m: dict, sides: np.ndarray, verts: np.ndarray):
  """keep(centre, box) for a mark's value label (`_owned`), None for one that owns nothing. Its
  test reads the centre alone, so each answer is kept: a label refused everywhere asks again at
  each smaller size at the spots it was refused at (1,121 of 2,983 asks in 300 problems)."""
  owned = _owned(c, m, sides, verts)
  if owned is None:
    return None
  answer = lru_cache(maxsize=None)(owned)
  return lambda at, box: answer(at)


def _owned(c: Canvas, m: dict, sides: np.ndarray, verts: np.ndarray):
  """centre -> whether a mark's value label there reads as its own: a length label must be
  nearer its own edge than any other side drawn; an angle label centred inside its own angle,
  in sight of its vertex and not far nearer another vertex than its own (`ANGLE_REACH`). Free
  space alone put 49% of angle labels outside their angle (often in a neighbour's corner) and
  swapped the lengths of two edges meeting at a vertex: read by nearness, the figure told
  another problem. Where no spot is both free and its own, the figure is redrawn
  (`LabelsDoNotFit`), as for a label that fits nowhere."""
  if m["type"] == "edge_label":
    p, q = c.px(m["p"]), c.px(m["q"])
    segs = np.vstack([[*p, *q], sides[~_on_segment(sides, p, q)]])  # its own first, one call
    distances = LY.segment_distances(segs)
    return lambda at: _nearest_own(distances(at))
  if m["type"] == "angle_label":
    v, p, q = c.px(m["v"]), c.px(m["p"]), c.px(m["q"])
    a, b = p - v, q - v
    turn = np.sign(a[0] * b[1] - a[1] * b[0])
    others = verts[np.hypot(*(verts - v).T) > 1.0]
    apart = sides[np.minimum(np.hypot(*(sides[:, :2] - v).T),
                             np.hypot(*(sides[:, 2:] - v).T)) > 1.0]  # sides not at v
    crossed = LY.crossings(v, apart)

    def keep(at):
      """Its centre inside the angle and in sight of the vertex (not past a side that closes
      the angle, where it read as that side's length): the box cannot cross a drawn side."""
      w = (at[0] - v[0], at[1] - v[1])
      if not (turn * (a[0] * w[1] - a[1] * w[0]) > 0 and turn * (w[0] * b[1] - w[1] * b[0]) > 0):
        return False  # outside the angle: the NumPy tests below are not needed
      reach = ANGLE_REACH * np.hypot(*(others - at).T).min(initial=np.inf)
      return math.hypot(*w) < reach and not crossed(at).any()
    return keep
  return None


def _on_segment(segs: np.ndarray, p, q, tol: float = 1.5) -> np.ndarray:
  """Which segments lie along pq (both ends on its line, within its length): the edge itself,
  or a piece of it where another shape's vertex splits it."""
  d = (q - p) / max(math.hypot(*(q - p)), 1e-9)
  out = np.ones(len(segs), bool)
  for e in (segs[:, :2], segs[:, 2:]):
    w = e - p
    along, off = w @ d, np.abs(w[:, 0] * d[1] - w[:, 1] * d[0])
    out &= (off < tol) & (along > -tol) & (along < math.hypot(*(q - p)) + tol)
  return out


def label_spots(c: Canvas, m: dict) -> list:
  """Candidate centres for a mark's value label, best first."""
  t = m["type"]
  if t == "edge_label":
    p, q = c.px(m["p"]), c.px(m["q"])
    nrm = unit([-(q - p)[1], (q - p)[0]])
    if dot2(nrm, (p + q) / 2 - c.px(m["away"])) < 0:
      nrm = -nrm
    return LY.along(p, q, nrm, (11, 14, 18, 23, 29, 36), (0.5, 0.38, 0.62, 0.27, 0.73, 0.18, 0.82))
  if t == "angle_label":
    v, a0, sweep = _angle(c, m)
    mid = math.radians(a0 + sweep / 2)
    return LY.around(v, (math.cos(mid), math.sin(mid)), (22, 26, 30, 36, 43, 52, 62, 74, 88),
                     (0, 12, -12, 24, -24, 40, -40, 60, -60))
  if t == "inside_text":
    return LY.around(c.px(m["at"]), (0, 1), (0, 8, 16, 26), (0, 90, -90, 180, 45, -45))
  return []


LABEL_STYLE = {"edge_label": (14, LABEL), "angle_label": (13, MARK), "inside_text": (14, LABEL)}


def plane(fig) -> dict:
  """Three images of one figure: version -> (image, ids of the facts drawn in it).

  text_dominant: letters only; text_lite: letters and values; vision_dominant: letters, values and
  the structure marks (right angles, equal sides) that make the text's shape names unnecessary.
  Every label is placed once, clear of all lines, marks and other labels of the fullest version.
  """
  outl = [s.outline() for s in fig.shapes]
  allp = np.concatenate(outl)
  c = Canvas((*allp.min(0), *allp.max(0)), margin=0.13)
  for k, o in enumerate(outl):
    c.poly(o, fill=FILLS[k % len(FILLS)], outline=None)
  for o in outl:
    c.poly(o, fill=None, outline=INK, width=1.8)
  radii = [r for r in (s.radius() for s in fig.shapes) if r is not None]
  for r in radii:  # the circle's radius OR and centre: its label named a segment not drawn
    c.line(r, INK, 1.8)
    c.dot(r[0], 2.5)
  plans = []
  for f in fig.facts:
    lines = mark_lines(c, f.mark)
    for pl in lines:
      c.layout.add_segments(pl)
    plans.append((f, lines))
  _vertex_letters(c, fig, outl)
  sides = np.vstack([_segments([c.px(o) for o in outl])]
                    + [np.hstack(c.px(r)).reshape(1, 4) for r in radii])
  verts = c.px(np.concatenate([s.pts for s in fig.shapes]))
  marks = [m for f, _ in plans for m in (f.mark["items"] if f.mark["type"] == "group"
                                          else [f.mark]) if m["type"] in LABEL_STYLE]
  for m in marks:
    m["at_px"], m["size"] = c.place_shrinking(m["text"], LABEL_STYLE[m["type"]][0],
                                              label_spots(c, m),
                                              keep=owner(c, m, sides, verts), smallest=SMALLEST)
  c.finish()  # the base of the versions (`_version`)
  return {ver: _version(c, plans, ver) for ver in ("text_dominant", "text_lite", "vision_dominant")}


def _vertex_letters(c: Canvas, fig, outl):
  where = {}
  for s, o in zip(fig.shapes, outl):
    cen = c.px(o.mean(0))
    for L, p in zip(s.letters, s.pts):
      where.setdefault(L, [c.px(p), []])[1].append(cen)
  c.layout.add_vertices([p for p, _ in where.values()])
  for L, (p, cens) in where.items():
    d = unit(sum(unit(p - q) for q in cens))
    at, size = c.place_shrinking(L, 16, LY.around(p, d, (12, 15, 19, 24, 30)))
    c.text(at, L, size, INK)


def _version(base: Canvas, plans, ver: str):
  v = copy(base)
  drawn, over, labelled = [], [], len(v.labels)
  for f, lines in plans:
    show = (f.numeric and ver != "text_dominant") or (not f.numeric and ver == "vision_dominant")
    if f.mark["type"] == "inherent" or not show:
      drawn += [f.id] if f.mark["type"] == "inherent" else []
      continue
    for pl in lines:
      v.px_line(pl, MARK, 1.4)
      (x0, y0), (x1, y1) = np.min(pl, 0), np.max(pl, 0)
      over.append((x0 - 3, y0 - 3, x1 + 3, y1 + 3))  # a 1-pixel line, with room to spare
    for m in (f.mark["items"] if f.mark["type"] == "group" else [f.mark]):
      if m["type"] in LABEL_STYLE:
        v.text(m["at_px"], m["text"], m["size"], LABEL_STYLE[m["type"]][1])
    drawn.append(f.id)
  img = v.finish()
  over += [box for _, box in v.labels[labelled:]]  # a tile leaves its pixels off its ink box
  img.over = (base.img, [_pixels(b, v.size) for b in over])  # for `png`
  return img, sorted(set(drawn)), v


def _pixels(box, size: int) -> tuple:
  """A box in whole pixels around `box`, within the canvas."""
  return (max(0, math.floor(box[0])), max(0, math.floor(box[1])),
          min(size, math.ceil(box[2])), min(size, math.ceil(box[3])))


# ---------------------------------------------------------------- coordinate plots


def nice_step(span: float) -> float:
  raw = span / 8
  p = 10 ** math.floor(math.log10(raw))
  for m in (1, 2, 5, 10):
    if m * p >= raw:
      return m * p
  return 10 * p


def axes(view, equal: bool) -> Canvas:
  """A Cartesian grid with arrowed axes through the origin (or the edge); the tick labels come
  last (`tick_labels`), only where they overlap nothing."""
  x0, x1, y0, y1 = view
  c = Canvas((x0, y0, x1, y1), margin=0.1, equal=equal)
  sx, sy = nice_step(x1 - x0), nice_step(y1 - y0)
  for k in range(math.ceil(x0 / sx), math.floor(x1 / sx) + 1):
    c.line([(k * sx, y0), (k * sx, y1)], GRID, 1.0, obstacle=False)
  for k in range(math.ceil(y0 / sy), math.floor(y1 / sy) + 1):
    c.line([(x0, k * sy), (x1, k * sy)], GRID, 1.0, obstacle=False)
  ax, ay = min(max(0.0, y0), y1), min(max(0.0, x0), x1)
  c.line([(x0, ax), (x1, ax)], INK, 1.4)
  c.line([(ay, y0), (ay, y1)], INK, 1.4)
  e = c.px([x1, ax])
  c.px_line([e + (-8, -4), e, e + (-8, 4)], INK, 1.4)
  c.layout.add_segments([e + (-8, -4), e, e + (-8, 4)])
  e2 = c.px([ay, y1])
  c.px_line([e2 + (-4, 8), e2, e2 + (4, 8)], INK, 1.4)
  c.layout.add_segments([e2 + (-4, 8), e2, e2 + (4, 8)])
  c.ticks = (sx, sy, ax, ay)
  return c


def axis_names(c: Canvas, view):
  x0, x1, y0, y1 = view
  _, _, ax, ay = c.ticks
  for name, p, d in (("x", c.px([x1, ax]), (-0.5, 1)), ("y", c.px([ay, y1]), (1, 0.6))):
    at = c.place(name, 14, LY.around(p, d, (12, 16, 21), (0, 30, -30, 60, -60, 90, -90)))
    c.text(at, name, 14, INK)


def tick_labels(c: Canvas, view):
  """Numbers along the axes, each kept only where it overlaps nothing already drawn."""
  x0, x1, y0, y1 = view
  sx, sy, ax, ay = c.ticks
  for k in range(math.ceil(x0 / sx), math.floor(x1 / sx) + 1):
    v = k * sx
    if abs(v) > 1e-9 and x0 < v < x1:
      _tick(c, _num(v), c.px([v, ax]) + (0, 11))
  for k in range(math.ceil(y0 / sy), math.floor(y1 / sy) + 1):
    v = k * sy
    if abs(v) > 1e-9 and y0 < v < y1:
      s = _num(v)
      rel = halo(s, 11)[2]
      _tick(c, s, c.px([ay, v]) + (-6 - rel[2], 0))


def _tick(c: Canvas, s: str, centre):
  at = c.place(s, 11, [tuple(centre)], optional=True)
  if at is not None:
    c.text(at, s, 11, TICK)


def _point_owner(p, points: np.ndarray):
  """keep(centre, box) for a point's label: its box nearer its own point than any other drawn
  point (a label that sat under another point's dot named that point); None for a label that
  names no drawn point (a curve's name, a radius)."""
  dist = np.hypot(*(points - p).T)
  if not len(points) or dist.min() > 1.0:
    return None
  pts = np.vstack([p, points[dist > 1.0]])  # its own first, one call
  return lambda at, box: _nearest_own(LY.box_distances(box, pts))


def _nearest_own(dist: np.ndarray) -> bool:
  """Whether the first of the distances (a label's to its own object) is OWN_MARGIN less than
  every other: the owners measure to their own object and the others in one NumPy call."""
  return dist[0] + OWN_MARGIN < dist[1:].min(initial=np.inf)


def _num(v: float) -> str:
  return f"{v:.10g}"


def items(c: Canvas, its: list):
  """Draw primitive items (from the analytic and function scenes) on a plotted canvas; labels
  are placed after every line and point is known."""
  labels = []
  for it in its:
    op, col = it["op"], it.get("color", INK)
    if op == "polyline":
      for seg in it["segments"]:
        if len(seg) > 1:
          c.curve(seg, col, it.get("width", 2.2))
    elif op == "polygon":
      c.poly(it["pts"], fill=it.get("fill"), outline=col, width=2.0)
    elif op == "point":
      c.dot(it["at"], 3.5, col)
    elif op == "label":
      labels.append(it)
      continue
    else:
      raise ValueError(f"engine: unknown drawing op {op!r}")
    if "id" in it:
      c.drawn.append(it["id"])
  points = np.array([c.px(it["at"]) for it in its if it["op"] == "point"]).reshape(-1, 2)
  for it in labels:
    size, col = it.get("size", 14), it.get("color", INK)
    p = c.px(it["at"])
    at, size = c.place_shrinking(it["text"], size,
                                 LY.around(p, it.get("direction", (0, -1)),
                                           it.get("radii", (13, 17, 22, 28, 35, 44, 55, 68))),
                                 smallest=9, keep=_point_owner(p, points))
    c.text(at, it["text"], size, col)
    if "id" in it:
      c.drawn.append(it["id"])
