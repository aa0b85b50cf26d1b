"""Pillow rendering: fast, deterministic, and still a clean math diagram.

Line art is drawn at SS x resolution and reduced (anti-aliasing by supersampling); text is drawn
after the reduction at the final size, with Pillow's built-in FreeType font (already smooth).
A Matplotlib figure per sample costs tens of milliseconds; this costs a few.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIZE = 384
SS = 2
INK = (20, 20, 20)
GRID = (222, 226, 232)
FILLS = [(214, 228, 247), (250, 224, 205), (216, 240, 216), (242, 220, 240), (250, 244, 200),
         (220, 236, 240)]
COLORS = [(31, 97, 180), (200, 60, 40), (30, 140, 60), (140, 60, 160), (210, 120, 0)]
MARK = (190, 40, 40)
LABEL = (30, 70, 160)


@lru_cache(maxsize=None)
def font(size: int):
  return ImageFont.load_default(size=size)


class Canvas:
  """World -> pixel transform plus deferred text. `fit` keeps the aspect ratio when asked."""

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
    self.img = Image.new("RGB", (size * SS, size * SS), "white")
    self.d = ImageDraw.Draw(self.img)
    self.k = SS
    self.texts = []
    self.drawn = []

  def flatten(self):
    """Reduce the supersampled line art now; later marks draw at final size (cheap copies)."""
    if self.k > 1:
      self.img = self.img.reduce(self.k)
      self.d = ImageDraw.Draw(self.img)
      self.k = 1
    self._draw_texts()

  def _draw_texts(self):
    for xy, s, size, color, anchor in self.texts:
      self.d.text(xy, s, font=font(size), fill=color, anchor=anchor, stroke_width=2,
                  stroke_fill="white")
    self.texts = []

  def px(self, p):
    """World points -> final-size pixel coordinates (float)."""
    p = np.asarray(p, float)
    return np.stack([self.ox + self.sx * p[..., 0], self.oy - self.sy * p[..., 1]], -1)

  def _hi(self, p):
    return [tuple(map(float, q)) for q in (self.px(p) * self.k).reshape(-1, 2)]

  def poly(self, pts, fill=None, outline=INK, width=2.0):
    q = self._hi(pts)
    if fill is not None:
      self.d.polygon(q, fill=fill)
    if outline is not None:
      self.d.line(q + [q[0]], fill=outline, width=max(1, round(width * self.k)), joint="curve")

  def line(self, pts, color=INK, width=2.0, dash=None):
    q = self._hi(pts)
    if dash:
      for a, b in zip(q[:-1], q[1:]):
        L = math.dist(a, b)
        k = max(1, int(L / (dash * self.k)))
        for t in range(0, k, 2):
          t0, t1 = t / k, min(1, (t + 1) / k)
          self.d.line([(a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0),
                       (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)],
                      fill=color, width=max(1, round(width * self.k)))
    else:
      self.d.line(q, fill=color, width=max(1, round(width * self.k)), joint="curve")

  def curve(self, pts, color=INK, width=2.0):
    """A dense polyline (a function graph): no joint rounding needed, so much cheaper."""
    flat = (self.px(np.asarray(pts, float)) * self.k).ravel().tolist()
    self.d.line(flat, fill=color, width=max(1, round(width * self.k)))

  def dot(self, p, r=3.5, color=INK):
    x, y = self._hi(p)[0]
    k = self.k
    self.d.ellipse([x - r * k, y - r * k, x + r * k, y + r * k], fill=color)

  def px_line(self, pts, color=INK, width=1.5):
    """A line given in final-size pixels (marks that have a fixed on-screen size)."""
    k = self.k
    self.d.line([(float(x) * k, float(y) * k) for x, y in pts], fill=color,
                width=max(1, round(width * k)))

  def text(self, xy_px, s, size=15, color=INK, anchor="mm"):
    self.texts.append((tuple(map(float, xy_px)), s, size, color, anchor))

  def finish(self) -> Image.Image:
    self.flatten()
    return self.img


def copy(c: Canvas) -> Canvas:
  n = Canvas.__new__(Canvas)
  n.__dict__.update(c.__dict__)
  n.img = c.img.copy()
  n.d = ImageDraw.Draw(n.img)
  n.texts, n.drawn = list(c.texts), list(c.drawn)
  return n


def _palette() -> Image.Image:
  """A fixed palette: every drawing colour blended with white (anti-aliased edges) and ink."""
  cols = FILLS + COLORS + [INK, MARK, GRID, LABEL, (90, 90, 90)]
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
  """PNG bytes, quantized to the fixed palette (4x faster to encode, a third of the size)."""
  global PALETTE
  if PALETTE is None:
    PALETTE = _palette()
  if img.mode == "RGB":
    img = img.quantize(palette=PALETTE, dither=Image.Dither.NONE)
  buf = io.BytesIO()
  img.save(buf, format="PNG", compress_level=1)
  return buf.getvalue()


def degrade(img: Image.Image, rng) -> tuple:
  """A clarity-0 version (Math-LLaVA's blurred/unclear label): blur, noise or low resolution."""
  kind = str(rng.choice(["blur", "noise", "lowres"]))
  if kind == "blur":
    out = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.8, 3.0))))
  elif kind == "noise":
    a = np.asarray(img, np.int16)
    a = a + rng.normal(0, 38, a.shape).astype(np.int16)
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
  else:
    f = int(rng.integers(4, 7))
    out = img.resize((img.width // f, img.height // f), Image.BILINEAR).resize(img.size,
                                                                                 Image.NEAREST)
  return out, kind


# ---------------------------------------------------------------- plane geometry


def _unit(v):
  v = np.asarray(v, float)
  n = np.hypot(*v)
  return v / n if n > 1e-12 else np.array([0.0, 1.0])


def _mark(c: Canvas, m: dict):
  t = m["type"]
  if t == "group":
    for it in m["items"]:
      _mark(c, it)
  elif t == "edge_label":
    p, q = c.px(m["p"]), c.px(m["q"])
    mid = (p + q) / 2
    nrm = _unit([-(q - p)[1], (q - p)[0]])
    if np.dot(nrm, mid - c.px(m["away"])) < 0:
      nrm = -nrm
    c.text(mid + nrm * 13, m["text"], 14, LABEL)
  elif t == "angle_label":
    v, p, q = c.px(m["v"]), c.px(m["p"]), c.px(m["q"])
    a, b = _unit(p - v), _unit(q - v)
    ang_a, ang_b = math.degrees(math.atan2(a[1], a[0])), math.degrees(math.atan2(b[1], b[0]))
    sweep = (ang_b - ang_a) % 360
    if sweep > 180:
      ang_a, ang_b, sweep = ang_b, ang_a, 360 - sweep
    r = 16
    ts = np.radians(np.linspace(ang_a, ang_a + sweep, 16))
    c.px_line(np.stack([v[0] + r * np.cos(ts), v[1] + r * np.sin(ts)], 1), MARK, 1.4)
    mid = math.radians(ang_a + sweep / 2)
    rr = 30 if sweep > 40 else 38
    c.text(v + rr * np.array([math.cos(mid), math.sin(mid)]), m["text"], 13, MARK)
  elif t == "right_angle":
    v, p, q = c.px(m["v"]), c.px(m["p"]), c.px(m["q"])
    a, b = _unit(p - v) * 9, _unit(q - v) * 9
    c.px_line([v + a, v + a + b, v + b], MARK, 1.3)
  elif t == "ticks":
    for p, q in m["segs"]:
      p, q = c.px(p), c.px(q)
      d = _unit(q - p)
      nrm = np.array([-d[1], d[0]]) * 5
      mid = (p + q) / 2
      for k in range(m["n"]):
        o = mid + d * (k - (m["n"] - 1) / 2) * 4
        c.px_line([o - nrm, o + nrm], MARK, 1.4)
  elif t == "inside_text":
    c.text(c.px(m["at"]), m["text"], 14, LABEL)
  elif t == "inherent":
    pass
  else:
    raise ValueError(f"engine: unknown mark type {t!r}")


def plane(sc) -> dict:
  """Three images of one scene: version -> (image, ids of the facts drawn in it).

  text_dominant: letters only; text_lite: letters and values; vision_dominant: letters, values and
  the structure marks (right angles, equal sides) that make the text's shape names unnecessary.
  """
  outl = [s.outline() for s in sc.shapes]
  allp = np.concatenate(outl)
  bbox = (*allp.min(0), *allp.max(0))
  c = Canvas(bbox, margin=0.13)
  for k, (s, o) in enumerate(zip(sc.shapes, outl)):
    c.poly(o, fill=FILLS[k % len(FILLS)], outline=None)
  for o in outl:
    c.poly(o, fill=None, outline=INK, width=1.8)
  where = {}
  for s, o in zip(sc.shapes, outl):
    cen = c.px(o.mean(0))
    for L, p in zip(s.letters, s.pts):
      where.setdefault(L, [c.px(p), []])[1].append(cen)
  for L, (p, cens) in where.items():
    d = _unit(sum(_unit(p - q) for q in cens))
    c.text(p + d * 13, L, 16, INK)
  c.flatten()
  base = c
  out = {}
  for ver in ("text_dominant", "text_lite", "vision_dominant"):
    v = copy(base)
    drawn = [f.id for f in sc.facts if f.mark.get("type") == "inherent"]
    for f in sc.facts:
      if (f.numeric and ver != "text_dominant") or (not f.numeric and ver == "vision_dominant"):
        _mark(v, f.mark)
        drawn.append(f.id)
    out[ver] = (v.finish(), sorted(set(drawn)))
  return out


# ---------------------------------------------------------------- coordinate plots


def nice_step(span: float) -> float:
  raw = span / 8
  p = 10 ** math.floor(math.log10(raw))
  for m in (1, 2, 5, 10):
    if m * p >= raw:
      return m * p
  return 10 * p


def axes(view, equal: bool) -> Canvas:
  """A Cartesian grid with labelled ticks and arrowed axes through the origin (or the edge)."""
  x0, x1, y0, y1 = view
  c = Canvas((x0, y0, x1, y1), margin=0.08, equal=equal)
  sx, sy = nice_step(x1 - x0), nice_step(y1 - y0)
  for k in range(math.ceil(x0 / sx), math.floor(x1 / sx) + 1):
    c.line([(k * sx, y0), (k * sx, y1)], GRID, 1.0)
  for k in range(math.ceil(y0 / sy), math.floor(y1 / sy) + 1):
    c.line([(x0, k * sy), (x1, k * sy)], GRID, 1.0)
  ax = min(max(0.0, y0), y1)
  ay = min(max(0.0, x0), x1)
  c.line([(x0, ax), (x1, ax)], INK, 1.4)
  c.line([(ay, y0), (ay, y1)], INK, 1.4)
  e = c.px([x1, ax])
  c.px_line([e + (-8, -4), e, e + (-8, 4)], INK, 1.4)
  e = c.px([ay, y1])
  c.px_line([e + (-4, 8), e, e + (4, 8)], INK, 1.4)
  c.text(c.px([x1, ax]) + (-6, 12), "x", 14, INK)
  c.text(c.px([ay, y1]) + (12, 6), "y", 14, INK)
  for k in range(math.ceil(x0 / sx), math.floor(x1 / sx) + 1):
    v = k * sx
    if abs(v) > 1e-9 and x0 < v < x1:
      c.text(c.px([v, ax]) + (0, 10), _num(v), 11, (90, 90, 90))
  for k in range(math.ceil(y0 / sy), math.floor(y1 / sy) + 1):
    v = k * sy
    if abs(v) > 1e-9 and y0 < v < y1:
      c.text(c.px([ay, v]) + (-5, 0), _num(v), 11, (90, 90, 90), "rm")
  return c


def _num(v: float) -> str:
  return f"{v:.10g}"


def items(c: Canvas, its: list):
  """Draw primitive items (from the analytic and function scenes) on a plotted canvas."""
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
      c.text(c.px(it["at"]) + np.asarray(it.get("offset", (0, 0))), it["text"], it.get("size", 14),
             col, it.get("anchor", "mm"))
    else:
      raise ValueError(f"engine: unknown drawing op {op!r}")
    if "id" in it:
      c.drawn.append(it["id"])
