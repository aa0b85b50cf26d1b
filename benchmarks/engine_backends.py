"""What a faster engine would be built on: other rasterizers and exact arithmetic, measured.

A study, not a rewrite (docs/engine/speed_history.md, 2026-12-07 ~12:30 UTC). Issue 14 asks
for 400 problems/s on 2 workers, ~5 ms of CPU a problem against ~11.5 today; sessions said "a
cheaper renderer and exact arithmetic without sympy" without measuring what those reach. This
script:

- in the project's venv, times the engine's own stages with the Pillow and sympy parts split
  out (`engine_split`), records every drawing call and label of n problems' images
  (`record_drawings`: the calls `Canvas` queues, at its scale) and every exact formula the
  engine evaluates anew over n problems (`record_formulas`), and profiles `writer.generate`
  grouped by the engine function that called into sympy (`profile`);
- in a study venv (`--study_python`, with skia-python, aggdraw, cairocffi, symengine; the
  project's requirements stay as they are), replays the drawings with each back end at 384x384
  (Pillow at 2x reduced, as the engine; Pillow at 1x; aggdraw, skia and cairo at 1x with
  anti-aliasing), encodes them, and replays the formulas in sympy, symengine and Fraction.

Back ends and packages missing are skipped and named in the JSON. Run:
  python -m benchmarks.engine_backends --study_python /tmp/s47/backends/venv/bin/python \
      --out docs/engine/backends_2026-12-07.json --pngs /tmp/s47/backends/pngs
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import io
import json
import math
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- project venv: the engine


def _spend(spent: collections.Counter, name: str, fn):
  """fn with its CPU time added to spent[name] (nested timers each count their own)."""
  @functools.wraps(fn)
  def timed(*args, **kwargs):
    t = time.process_time()
    try:
      return fn(*args, **kwargs)
    finally:
      spent[name] += time.process_time() - t
  return timed


# What of the drawing stage a back end replaces (Pillow's canvas, line art, reduction, label
# tiles) and what it keeps (the layout: occupancy mask and label search, a label's box).
RASTER_PARTS = (("canvas_new", "render", "Canvas.__init__"), ("copy", "render", "copy"),
                ("flatten", "render", "Canvas.flatten"), ("new_tiles", "render", "tile"),
                ("label_boxes", "render", "halo"),
                ("layout_lines", "layout", "Layout.add_segments"),
                ("layout_vertices", "layout", "Layout.add_vertices"),
                ("layout_place", "layout", "Layout.place"),
                ("quantize", "render", "_quantized"), ("png", "render", "png"),
                ("exact_evaluate", "exact", "_evaluate_exact"),
                ("float_of", "exact", "_float_of"), ("complex_of", "exact", "_complex_of"),
                ("human", "notation", "_human"), ("machine", "notation", "_machine"),
                ("written", "notation", "_written"))


def _patch_target(module: str, attr: str):
  from data_prep.engine import exact, layout, notation, render
  mod = {"render": render, "layout": layout, "exact": exact, "notation": notation}[module]
  owner, _, name = attr.rpartition(".")
  return (getattr(mod, owner) if owner else mod), name


def engine_split(n: int, seed: int) -> dict:
  """The benchmark's CPU stages (`benchmarks.engine.cpu_cost`, one process, n problems of seed
  + 1) with the parts a back end or symengine would replace timed too. `tile` and `halo` are
  lru-cached, so their time is that of new tiles and boxes; `flatten` includes `tile`'s, and
  `exact_evaluate` the floats and printing it calls."""
  from benchmarks import engine as bench
  from data_prep.engine import writer
  spent, parts = collections.Counter(), collections.Counter()
  with contextlib.ExitStack() as stack:
    for name, module, attr in RASTER_PARTS:
      owner, a = _patch_target(module, attr)
      fn = getattr(owner, a)
      if hasattr(fn, "cache_info"):  # time the cache's misses: patch what it wraps
        wrapped = functools.lru_cache(maxsize=None)(_spend(parts, name, fn.__wrapped__))
        stack.enter_context(mock.patch.object(owner, a, wrapped))
      else:
        stack.enter_context(mock.patch.object(owner, a, _spend(parts, name, fn)))
    stack.enter_context(bench._timed_stages(spent))
    with tempfile.TemporaryDirectory() as tmp:
      writer.generate(os.path.join(tmp, "warm"), 20, writer.Options(seed=seed + 100), 1)
      spent.clear()
      parts.clear()
      c = time.process_time()
      writer.generate(os.path.join(tmp, "run"), n, writer.Options(seed=seed + 1), 1)
      ms = (time.process_time() - c) / n * 1000
  per = lambda counter: {k: round(v / n * 1000, 3) for k, v in sorted(counter.items())}
  return {"problems": n, "cpu_ms_per_problem": round(ms, 2), "stages_ms": per(spent),
          "parts_ms": per(parts)}


def _recording_canvas(stack: contextlib.ExitStack):
  """Every Canvas keeps `ops`: its queued line art (method, scale, args), a `reduce` where the
  supersampled art is reduced, and its labels (centre, text, size, colour) as pasted; a copy
  shares its base's ops (the same objects, which pickle keeps shared)."""
  from data_prep.engine import render
  init, paint, flatten, copy = (render.Canvas.__init__, render.Canvas._paint,
                                render.Canvas.flatten, render.copy)

  def new_init(self, *a, **kw):
    init(self, *a, **kw)
    self.ops = []

  def new_paint(self, method, *args, **kwargs):
    self.ops.append(("art", method, self.k, _plain(args), _plain(kwargs)))
    return paint(self, method, *args, **kwargs)

  def new_flatten(self):
    if self.k > 1:
      self.ops.append(("reduce",))
    self.ops += [("text", tuple(map(float, c)), s, size, tuple(col))
                 for c, s, size, col in self.texts]
    return flatten(self)

  def new_copy(c):
    n = copy(c)
    n.ops = list(c.ops)
    return n
  for attr, fn in (("__init__", new_init), ("_paint", new_paint), ("flatten", new_flatten)):
    stack.enter_context(mock.patch.object(render.Canvas, attr, fn))
  stack.enter_context(mock.patch.object(render, "copy", new_copy))


def _plain(v):
  """NumPy scalars and arrays as Python floats and lists (tuples, colours, kept), for the study
  venv's pickle."""
  if isinstance(v, dict):
    return {k: _plain(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return type(v)(_plain(x) for x in v)
  if hasattr(v, "tolist"):
    return v.tolist()
  return v


def record_drawings(n: int, seed: int) -> list:
  """[problem: [image: ops]] of n problems of seed (the benchmark's `drawings`, with every
  call): what a back end must draw."""
  from data_prep.engine import writer
  out = []
  with contextlib.ExitStack() as stack:
    _recording_canvas(stack)
    for i in range(n):
      drawn = writer.drawn_problem(writer.Options(seed=seed), i)[1][0].images
      out.append([c.ops for _, _, c in drawn.values()])
  return out


def record_formulas(n: int, seed: int) -> dict:
  """The formulas `exact` evaluates anew (its cache's misses) over n problems, with their
  inputs and result (sympy's own pickles: both venvs have sympy 1.14), and the values whose
  float was asked anew."""
  from data_prep.engine import exact, writer
  pairs, floats = [], []
  evaluate, float_of = exact._evaluate_exact.__wrapped__, exact._float_of.__wrapped__

  def recorded(expr, values):
    out = evaluate(expr, values)
    pairs.append((expr, list(values), out))
    return out

  def recorded_float(v):
    floats.append(v)
    return float_of(v)
  with mock.patch.object(exact, "_evaluate_exact", functools.lru_cache(1 << 16)(recorded)), \
       mock.patch.object(exact, "_float_of", functools.lru_cache(1 << 16)(recorded_float)), \
       tempfile.TemporaryDirectory() as tmp:
    writer.generate(tmp, n, writer.Options(seed=seed), 1)
  return {"problems": n, "pairs": pairs, "floats": floats}


def profile(n: int, seed: int) -> dict:
  """cProfile of `writer.generate` (one process): total, and the cumulative time of the
  engine's calls into sympy grouped by the engine function that made them (ms a problem)."""
  import cProfile
  import pstats
  from data_prep.engine import writer
  with tempfile.TemporaryDirectory() as tmp:
    writer.generate(os.path.join(tmp, "warm"), 20, writer.Options(seed=seed + 100), 1)
    pr = cProfile.Profile()
    c = time.process_time()
    pr.enable()
    writer.generate(os.path.join(tmp, "run"), n, writer.Options(seed=seed), 1)
    pr.disable()
    total = (time.process_time() - c) / n * 1000
  by_caller = collections.Counter()
  for (fn, _, _), (_, _, _, _, callers) in pstats.Stats(pr).stats.items():
    if "/sympy/" not in fn and "/mpmath/" not in fn:
      continue
    for (cfn, _, cname), v in callers.items():
      if "data_prep/engine" in cfn:
        by_caller[f"{os.path.basename(cfn)}:{cname}"] += v[3]
  top = {k: round(v / n * 1000, 3) for k, v in by_caller.most_common(15)}
  entries = {f"{os.path.basename(fn)}:{name}": ct
             for (fn, _, name), (_, _, _, ct, _) in pstats.Stats(pr).stats.items()
             if "data_prep/engine" in fn}
  return {"problems": n, "profiled_ms_per_problem": round(total, 2),
          "cumulative_ms": {k: round(entries.get(k, 0) / n * 1000, 3) for k in PROFILED},
          "sympy_cumulative_by_engine_caller_ms": top}


# The engine's entries into exact arithmetic and printing (cumulative; printing nests in some)
PROFILED = ("exact.py:evaluate", "exact.py:_float_of", "exact.py:_complex_of",
            "exact.py:derivative", "exact.py:same", "notation.py:human", "notation.py:machine",
            "notation.py:written", "notation.py:with_slot", "notation.py:has_symbols")


# ---------------------------------------------------------------- study venv: back ends


SIZE = 384


def _art_1x(op):
  """An art op at final pixels: coordinates / scale, Pillow's integer width / scale."""
  _, method, k, args, kw = op
  flat = [float(v) for v in _flatten(args[0])]
  width = kw.get("width", 1) / k
  return method, [v / k for v in flat], width, kw.get("fill")


def _flatten(v):
  if isinstance(v, (list, tuple)):
    for x in v:
      yield from _flatten(x)
  else:
    yield v


class PillowSS:
  """The engine's path: line art at 2x, the inked box reduced, cached label tiles pasted."""
  name = "pillow_2x"

  def __init__(self):
    from PIL import Image, ImageDraw
    from data_prep.engine import render
    self.Image, self.ImageDraw, self.render = Image, ImageDraw, render

  def new(self):
    img = self.Image.new("RGB", (SIZE * 2, SIZE * 2), "white")
    return {"img": img, "d": self.ImageDraw.Draw(img), "k": 2, "box": None}

  def copy(self, s):
    img = s["img"].copy()
    return dict(s, img=img, d=self.ImageDraw.Draw(img))

  def art(self, s, op):
    _, method, k, args, kw = op
    getattr(s["d"], method)(*args, **kw)
    s["box"] = _grow(s["box"], [float(v) / k for v in _flatten(args[0])], 3)

  def reduce(self, s):
    box = _clip(s["box"])
    out = self.Image.new("RGB", (SIZE, SIZE), "white")
    if box:
      out.paste(s["img"].reduce(2, box=tuple(v * 2 for v in box)), box[:2])
    s.update(img=out, d=self.ImageDraw.Draw(out), k=1)

  def text(self, s, centre, text, size, color):
    im, (l, t), _ = self.render.tile(text, size, color)
    x, y = round(centre[0] + l), round(centre[1] + t)
    s["img"].paste(im, (x, y), im)
    s["box"] = _grow(s["box"], [x, y, x + im.width, y + im.height], 0)

  def rgb(self, s):
    return s["img"]


class Pillow1x(PillowSS):
  """Pillow at final size: no anti-aliasing of lines (ImageDraw has none), the cost floor."""
  name = "pillow_1x"

  def new(self):
    img = self.Image.new("RGB", (SIZE, SIZE), "white")
    return {"img": img, "d": self.ImageDraw.Draw(img), "k": 1, "box": None}

  def art(self, s, op):
    method, xy, width, fill = _art_1x(op)
    kw = {"fill": fill}
    if method == "line":
      kw["width"] = max(1, round(width))
      if op[4].get("joint"):
        kw["joint"] = "curve"
    getattr(s["d"], method)(xy, **kw)
    s["box"] = _grow(s["box"], xy, 3)

  def reduce(self, s):
    pass


class Agg(Pillow1x):
  """aggdraw (Anti-Grain Geometry) on the Pillow image at 1x; labels as Pillow's tiles."""
  name = "aggdraw_1x"

  def __init__(self):
    super().__init__()
    import aggdraw
    self.agg = aggdraw

  @functools.lru_cache(maxsize=None)
  def _pen(self, color, width):
    return self.agg.Pen(color, width)

  @functools.lru_cache(maxsize=None)
  def _brush(self, color):
    return self.agg.Brush(color)

  def new(self):
    s = super().new()
    s["a"] = self.agg.Draw(s["img"])
    return s

  def copy(self, s):
    self._flush(s)
    img = s["img"].copy()
    return dict(s, img=img, a=self.agg.Draw(img))

  def art(self, s, op):
    method, xy, width, fill = _art_1x(op)
    fill = tuple(fill)
    if method == "line":
      s["a"].line(xy, self._pen(fill, width))
    elif method == "polygon":
      s["a"].polygon(xy, self._brush(fill))
    else:
      s["a"].ellipse(xy, self._brush(fill))
    s["box"] = _grow(s["box"], xy, 3)
    s["dirty"] = True

  def _flush(self, s):
    if s.get("dirty"):
      s["a"].flush()
      s["dirty"] = False

  def text(self, s, *label):
    self._flush(s)
    super().text(s, *label)

  def rgb(self, s):
    self._flush(s)
    return s["img"]


class Skia(Pillow1x):
  """skia-python at 1x, anti-aliased paths; labels drawn by Skia itself (a 4 px white stroke
  under the fill, as Pillow's stroke_width=2), their text blobs cached."""
  name = "skia_1x"

  def __init__(self):
    super().__init__()
    import numpy as np
    import skia
    self.skia, self.np = skia, np
    self.face = skia.Typeface.MakeFromFile(self.render.font_path())

  @functools.lru_cache(maxsize=None)
  def _paint(self, color, width):
    sk = self.skia
    p = sk.Paint(AntiAlias=True, Color=sk.Color(*color))
    if width is not None:
      p.setStyle(sk.Paint.kStroke_Style)
      p.setStrokeWidth(width)
      p.setStrokeJoin(sk.Paint.kRound_Join)
    return p

  @functools.lru_cache(maxsize=None)
  def _blob(self, text, size):
    sk = self.skia
    font = sk.Font(self.face, size)
    m = font.getMetrics()
    w = font.measureText(text)
    return sk.TextBlob.MakeFromString(text, font), -w / 2, -(m.fAscent + m.fDescent) / 2

  def new(self, pixels=None):
    """A surface drawing into a NumPy array that Pillow reads without a copy (`rgb`): a
    snapshot's `toarray` cost 0.26 ms an image more."""
    if pixels is None:
      pixels = self.np.full((SIZE, SIZE, 4), 255, self.np.uint8)
    surf = self.skia.Surface(pixels, colorType=self.skia.kRGBA_8888_ColorType)
    return {"surf": surf, "pixels": pixels, "box": None}

  def copy(self, s):
    return dict(self.new(s["pixels"].copy()), box=s["box"])

  def art(self, s, op):
    method, xy, width, fill = _art_1x(op)
    sk, canvas, fill = self.skia, s["surf"].getCanvas(), tuple(fill)
    if method == "ellipse":
      canvas.drawOval(sk.Rect(*xy), self._paint(fill, None))
    else:
      path = sk.Path()
      path.addPoly([sk.Point(xy[i], xy[i + 1]) for i in range(0, len(xy), 2)],
                   method == "polygon")
      canvas.drawPath(path, self._paint(fill, None if method == "polygon" else width))
    s["box"] = _grow(s["box"], xy, 3)

  def text(self, s, centre, text, size, color):
    blob, dx, dy = self._blob(text, size)
    canvas = s["surf"].getCanvas()
    x, y = centre[0] + dx, centre[1] + dy
    canvas.drawTextBlob(blob, x, y, self._paint((255, 255, 255), 4.0))
    canvas.drawTextBlob(blob, x, y, self._paint(tuple(color), None))
    b = blob.bounds()
    s["box"] = _grow(s["box"], [x + b.left() - 3, y + b.top() - 3, x + b.right() + 3,
                                y + b.bottom() + 3], 0)

  def rgb(self, s):
    return self.Image.frombuffer("RGBA", (SIZE, SIZE), s["pixels"], "raw", "RGBA", 0,
                                 1).convert("RGB")


class Cairo(Pillow1x):
  """cairo (cairocffi over the system's libcairo) at 1x, anti-aliased; labels as Pillow's tiles
  turned into cairo surfaces once (cairo's own text API takes no font file)."""
  name = "cairo_1x"

  def __init__(self):
    super().__init__()
    import cairocffi
    import numpy as np
    self.cairo, self.np = cairocffi, np

  def new(self):
    surf = self.cairo.ImageSurface(self.cairo.FORMAT_RGB24, SIZE, SIZE)
    ctx = self.cairo.Context(surf)
    ctx.set_source_rgb(1, 1, 1)
    ctx.paint()
    ctx.set_line_join(self.cairo.LINE_JOIN_ROUND)
    return {"surf": surf, "ctx": ctx, "box": None}

  def copy(self, s):
    n = self.new()
    n["ctx"].set_source_surface(s["surf"], 0, 0)
    n["ctx"].paint()
    n["box"] = s["box"]
    return n

  def art(self, s, op):
    method, xy, width, fill = _art_1x(op)
    ctx = s["ctx"]
    ctx.set_source_rgb(*(v / 255 for v in fill))
    if method == "ellipse":
      x0, y0, x1, y1 = xy
      ctx.arc((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, 0, 2 * math.pi)
      ctx.fill()
    else:
      ctx.move_to(xy[0], xy[1])
      for i in range(2, len(xy), 2):
        ctx.line_to(xy[i], xy[i + 1])
      if method == "polygon":
        ctx.close_path()
        ctx.fill()
      else:
        ctx.set_line_width(width)
        ctx.stroke()
    s["box"] = _grow(s["box"], xy, 3)

  @functools.lru_cache(maxsize=None)
  def _tile(self, text, size, color):
    im, corner, _ = self.render.tile(text, size, color)
    a = self.np.asarray(im, self.np.float32)
    alpha = a[..., 3:] / 255
    bgra = self.np.concatenate([a[..., 2::-1] * alpha, a[..., 3:]], 2).round()
    data = bytearray(bgra.astype(self.np.uint8).tobytes())
    surf = self.cairo.ImageSurface.create_for_data(data, self.cairo.FORMAT_ARGB32,
                                                   im.width, im.height, im.width * 4)
    return surf, corner, data

  def text(self, s, centre, text, size, color):
    surf, (l, t), _ = self._tile(text, size, tuple(color))
    x, y = round(centre[0] + l), round(centre[1] + t)
    s["ctx"].set_source_surface(surf, x, y)
    s["ctx"].paint()
    s["box"] = _grow(s["box"], [x, y, x + surf.get_width(), y + surf.get_height()], 0)

  def rgb(self, s):
    s["surf"].flush()
    return self.Image.frombuffer("RGB", (SIZE, SIZE), bytes(s["surf"].get_data()), "raw",
                                 "BGRX", 0, 1)


def _grow(box, flat, pad):
  xs, ys = flat[0::2], flat[1::2]
  b = (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)
  return b if box is None else (min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]),
                                max(box[3], b[3]))


def _clip(box):
  if box is None:
    return None
  b = (max(0, math.floor(box[0])), max(0, math.floor(box[1])), min(SIZE, math.ceil(box[2])),
       min(SIZE, math.ceil(box[3])))
  return b if b[0] < b[2] and b[1] < b[3] else None


def _apply(backend, s, ops):
  for op in ops:
    if op[0] == "art":
      backend.art(s, op)
    elif op[0] == "reduce":
      backend.reduce(s)
    else:
      backend.text(s, *op[1:])


def _shared(images: list) -> int:
  """How many ops all of a problem's images share (a plane figure's versions copy their base)."""
  if len(images) < 2:
    return 0
  k = 0
  while all(len(ops) > k and ops[k] is images[0][k] for ops in images):
    k += 1
  return k


def draw_problem(backend, images: list) -> list:
  """A problem's images as the engine draws them: a shared base drawn once and copied."""
  k = _shared(images)
  if k:
    base = backend.new()
    _apply(backend, base, images[0][:k])
  out = []
  for ops in images:
    s = backend.copy(base) if k else backend.new()
    _apply(backend, s, ops[k:])
    out.append(s)
  return out


def _palette_png(backend, s) -> bytes:
  """The engine's file: quantized to its palette in the drawn box, PNG at compress_level 1."""
  img, render = backend.rgb(s), backend.render
  if render.PALETTE is None:
    render.PALETTE = render._palette()
  box = _clip(s["box"])
  img.over = (render._white(SIZE), [box] if box else [])
  return render.png(img)


def _rgb_png(backend, s) -> bytes:
  buf = io.BytesIO()
  backend.rgb(s).save(buf, format="PNG", compress_level=1)
  return buf.getvalue()


def _grey_png(backend, s) -> bytes:
  buf = io.BytesIO()
  backend.rgb(s).convert("L").save(buf, format="PNG", compress_level=1)
  return buf.getvalue()


def _skia_png(backend, s) -> bytes:
  return bytes(s["surf"].makeImageSnapshot().encodeToData(backend.skia.kPNG, 100))


ENCODINGS = {"palette_png1": _palette_png, "rgb_png1": _rgb_png, "grey_png1": _grey_png}


def _median_ms(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t = time.process_time()
    fn()
    times.append(time.process_time() - t)
  return statistics.median(times) * 1000


def time_backends(problems: list, repeats: int, pngs: str | None) -> dict:
  """CPU ms a problem and an image (median of repeats, after one warm pass that fills the tile
  and paint caches, as a worker's long run has them) to draw, and to encode each way."""
  out, n_img = {}, sum(len(p) for p in problems)
  for cls in (PillowSS, Pillow1x, Agg, Skia, Cairo):
    try:
      backend = cls()
    except ImportError as e:
      out[cls.name] = {"skipped": f"not installed: {e}"}
      continue
    drawn = [draw_problem(backend, p) for p in problems]  # warm
    draw_ms = _median_ms(lambda: [draw_problem(backend, p) for p in problems], repeats)
    row = {"draw_ms_per_problem": round(draw_ms / len(problems), 3),
           "draw_ms_per_image": round(draw_ms / n_img, 3)}
    encodings = dict(ENCODINGS, **({"skia_png": _skia_png} if cls is Skia else {}))
    for name, enc in encodings.items():
      [enc(backend, s) for p in drawn for s in p]  # warm: the palette, the white base
      ms = _median_ms(lambda: [enc(backend, s) for p in drawn for s in p], repeats)
      size = sum(len(enc(backend, s)) for s in drawn[0])
      row[f"{name}_ms_per_problem"] = round(ms / len(problems), 3)
      row[f"{name}_bytes_first_problem"] = size
    out[cls.name] = row
    if pngs:
      os.makedirs(pngs, exist_ok=True)
      for i, p in enumerate(drawn[:6]):
        for j, s in enumerate(p):
          with open(os.path.join(pngs, f"p{i}_{j}_{cls.name}.png"), "wb") as f:
            f.write(_palette_png(backend, s))
  return {"problems": len(problems), "images": n_img, "repeats": repeats, "backends": out}


def time_label_boxes(problems: list, repeats: int) -> dict:
  """What a label's layout box costs: Pillow's stroked FreeType render (`render.halo`, new
  labels only in the engine) against Skia's measure of the text's bounds, per label."""
  from data_prep.engine import render
  labels = {(op[2], op[3]) for p in problems for ops in p for op in ops if op[0] == "text"}
  out = {"labels": len(labels)}
  halo = render.halo.__wrapped__
  out["pillow_halo_us"] = round(_median_ms(
      lambda: [halo(t, s) for t, s in labels], repeats) / len(labels) * 1000, 1)
  try:
    import skia
  except ImportError:
    return out
  face = skia.Typeface.MakeFromFile(render.font_path())

  def measure():
    for t, s in labels:
      skia.Font(face, s).measureText(t, bounds=skia.Rect())
  out["skia_measure_us"] = round(_median_ms(measure, repeats) / len(labels) * 1000, 1)
  return out


def time_occupancy(problems: list, repeats: int) -> dict:
  """The layout's occupancy mask is its own raster of the geometry (`layout.Layout`: lines
  widened by the clearance, disks), not the drawn pixels, so any back end keeps it. For
  comparison: a Skia A8 surface drawing the same lines at that width and read back."""
  out = {}
  try:
    import numpy as np
    import skia
  except ImportError:
    return out
  from data_prep.engine import layout
  width = 2 * math.ceil(layout.LINE_HALF + layout.GAP) + 1
  lines = [[_art_1x(op)[1] for op in ops if op[0] == "art" and op[1] == "line"]
           for p in problems for ops in p]
  paint = skia.Paint(AntiAlias=False, StrokeWidth=width, Style=skia.Paint.kStroke_Style,
                     StrokeJoin=skia.Paint.kRound_Join, StrokeCap=skia.Paint.kRound_Cap)

  def skia_masks():
    for image in lines:
      surf = skia.Surface.MakeRaster(skia.ImageInfo.MakeA8(SIZE, SIZE))
      c = surf.getCanvas()
      for xy in image:
        path = skia.Path()
        path.addPoly([skia.Point(xy[i], xy[i + 1]) for i in range(0, len(xy), 2)], False)
        c.drawPath(path, paint)
      np.asarray(surf.makeImageSnapshot().toarray(colorType=skia.kAlpha_8_ColorType))

  def pillow_masks():
    for image in lines:
      lay = layout.Layout(SIZE)
      for xy in image:
        lay.add_segments(np.reshape(xy, (-1, 2)))
      lay._occupied()
  out["skia_a8_mask_ms_per_problem"] = round(_median_ms(skia_masks, repeats) / len(problems), 3)
  out["layout_mask_ms_per_problem"] = round(_median_ms(pillow_masks, repeats) / len(problems), 3)
  return out


# ---------------------------------------------------------------- study venv: arithmetic


ARITHMETIC = ("sqrt", "sin", "cos", "tan", "pi", "Abs", "Max", "Min", "log")


def _symengine_namespace():
  import symengine as se
  ns = {k: getattr(se, k) for k in ARITHMETIC}
  ns.update(x=se.Symbol("x"), __builtins__={"sorted": sorted})
  return ns


def _calculus(expr: str) -> bool:
  """A formula symengine has no counterpart for (or one we would write ourselves)."""
  return any(w in expr for w in ("Poly", "solve", "integrate", "diff", "_slip", "constant_term",
                                 "subs", "expand", "Piecewise", "x"))


def time_arithmetic(recorded: dict, repeats: int) -> dict:
  """The recorded formulas (the engine's cache misses) in sympy (the engine's namespace, the
  cache cleared before each pass: each was new to the engine), in symengine where it has the
  functions, and in Fraction where inputs and result are rational; the values checked equal.
  Also the conversions back to sympy (the printers are sympy's) and the floats."""
  import sympy as sp
  from sympy.core.cache import clear_cache
  from data_prep.engine import exact
  pairs = [(e, [sp.sympify(v) for v in vs], r) for e, vs, r in recorded["pairs"]]
  n = recorded["problems"]
  out = {"problems": n, "evaluations": len(pairs),
         "evaluations_per_problem": round(len(pairs) / n, 2)}

  def sympy_all(subset):
    clear_cache()
    for e, vs, _ in subset:
      exact._evaluate(e, vs, exact.EXACT)
  plain = [p for p in pairs if not _calculus(p[0])
           and all(isinstance(v, sp.Expr) for v in p[1])]
  out["arithmetic_only"] = len(plain)
  out["sympy_all_ms_per_problem"] = round(_median_ms(lambda: sympy_all(pairs), repeats) / n, 3)
  out["sympy_arithmetic_ms_per_problem"] = round(
      _median_ms(lambda: sympy_all(plain), repeats) / n, 3)
  try:
    import symengine as se
  except ImportError:
    out["symengine"] = "not installed"
    return out
  ns = _symengine_namespace()
  se_in = [(e, [se.sympify(v) for v in vs], r) for e, vs, r in plain]
  code = {e: compile(e, "<step>", "eval") for e, _, _ in plain}

  def se_all():
    return [eval(code[e], ns, {f"q{k}": v for k, v in enumerate(vs)}) for e, vs, _ in se_in]
  results = se_all()
  out["symengine_arithmetic_ms_per_problem"] = round(_median_ms(se_all, repeats) / n, 3)

  def back(convert):  # sympy's cache cleared: each value was new to the engine
    clear_cache()
    [convert(r) for r in results]
  out["symengine_to_sympy_ms_per_problem"] = round(
      _median_ms(lambda: back(lambda r: r._sympy_()), repeats) / n, 3)
  out["symengine_to_sympy_by_str_ms_per_problem"] = round(
      _median_ms(lambda: back(lambda r: sp.sympify(str(r))), repeats) / n, 3)
  out["sympy_to_symengine_ms_per_problem"] = round(
      _median_ms(lambda: [[se.sympify(v) for v in vs] for _, vs, _ in plain], repeats) / n, 3)
  out.update(_compared(plain, results))
  out.update(_float_times(recorded["floats"], n, repeats))
  out.update(_fractions(pairs, n, repeats))
  return out


def _compared(plain: list, results: list) -> dict:
  """symengine's values against sympy's: the same value (equal, or a difference simplify makes
  0), and how many of those come in another canonical form (the printers would write it
  otherwise)."""
  import sympy as sp
  out = {"symengine_same_value": 0, "symengine_other_value": 0, "differing": []}
  for (e, _, r), s in zip(plain, results):
    value = s._sympy_()
    if value == r or sp.simplify(value - r) == 0:
      out["symengine_same_value"] += 1
    else:
      out["symengine_other_value"] += 1
      if len(out["differing"]) < 5:
        out["differing"].append({"formula": e, "sympy": str(r), "symengine": str(s)})
    if value != r:
      out["equal_value_other_form"] = out.get("equal_value_other_form", 0) + 1
  return out


def _float_times(recorded_floats: list, n: int, repeats: int) -> dict:
  """The engine's float conversions of exact values, in sympy (its cache cleared: each value was
  new to the engine) and in symengine, ms a problem."""
  import symengine as se
  import sympy as sp
  from sympy.core.cache import clear_cache
  floats = [v for v in recorded_floats if isinstance(v, sp.Expr) and v.is_number]
  se_floats = [se.sympify(v) for v in floats]

  def sympy_floats():
    clear_cache()
    [float(v) for v in floats]
  return {"floats_per_problem": round(len(floats) / n, 2),
          "sympy_float_ms_per_problem": round(_median_ms(sympy_floats, repeats) / n, 3),
          "symengine_float_ms_per_problem": round(
              _median_ms(lambda: [float(v) for v in se_floats], repeats) / n, 3)}


def _fractions(pairs: list, n: int, repeats: int) -> dict:
  """The evaluations whose inputs and result are rational and whose formula is arithmetic
  alone, in Python's Fraction."""
  from fractions import Fraction
  import sympy as sp
  from sympy.core.cache import clear_cache
  from data_prep.engine import exact
  rational = [(e, vs, r) for e, vs, r in pairs if not _calculus(e) and r.is_Rational
              and all(getattr(v, "is_Rational", False) for v in vs)
              and not any(f in e for f in ARITHMETIC)]
  if not rational:
    return {"rational_only": 0}
  fr = [(compile(e, "<step>", "eval"), [Fraction(int(v.p), int(v.q)) for v in vs], r)
        for e, vs, r in rational]
  ns = {"__builtins__": {"sorted": sorted, "abs": abs}}
  got = [eval(c, ns, {f"q{k}": v for k, v in enumerate(vs)}) for c, vs, _ in fr]
  wrong = sum(Fraction(g) != Fraction(int(r.p), int(r.q)) for g, (_, _, r) in zip(got, fr))

  def sympy_rational():
    clear_cache()
    for e, vs, _ in rational:
      exact._evaluate(e, vs, exact.EXACT)
  return {"rational_only": len(rational), "fraction_other_value": wrong,
          "sympy_rational_ms_per_problem": round(_median_ms(sympy_rational, repeats) / n, 3),
          "fraction_ms_per_problem": round(_median_ms(
              lambda: [eval(c, ns, {f"q{k}": v for k, v in enumerate(vs)}) for c, vs, _ in fr],
              repeats) / n, 3)}


def study(drawings: str, formulas: str, font: str, repeats: int, pngs: str | None) -> dict:
  """The study venv's half: back ends and arithmetic over what the project venv recorded, with
  the engine's font file (the study venv has no Matplotlib to find it in)."""
  from data_prep.engine import render
  render.font_path = lambda: font
  with open(drawings, "rb") as f:
    problems = pickle.load(f)
  with open(formulas, "rb") as f:
    recorded = pickle.load(f)
  versions = {}
  for name in ("PIL", "skia", "aggdraw", "cairocffi", "symengine", "sympy", "numpy"):
    try:
      versions[name] = getattr(__import__(name), "__version__", "?")
    except ImportError:
      versions[name] = None
  return {"python": sys.executable, "versions": versions,
          "render": time_backends(problems, repeats, pngs),
          "label_boxes": time_label_boxes(problems, repeats),
          "occupancy": time_occupancy(problems, repeats),
          "arithmetic": time_arithmetic(recorded, repeats)}


# ---------------------------------------------------------------- together


def _images_ms(parts: dict, studied: dict, name: str) -> float:
  """A back end's ms a problem for what it replaces of today's (the canvas, line art,
  reduction, label tiles and boxes, quantize + PNG): today's figure for each part times the
  ratio the replay measured against Pillow at 2x. Skia draws the labels itself, so a new
  label's tile goes and its box is Skia's measure; the others paste Pillow's tiles."""
  be, lb = studied["render"]["backends"], studied["label_boxes"]
  ref, me = be["pillow_2x"], be[name]
  art = parts["canvas_new"] + parts["copy"] + parts["flatten"] - parts["new_tiles"]
  ms = (art * _ratio(me["draw_ms_per_problem"], ref["draw_ms_per_problem"]) + parts["png"]
        * _ratio(me["palette_png1_ms_per_problem"], ref["palette_png1_ms_per_problem"]))
  if name == "skia_1x":
    return ms + parts["label_boxes"] * _ratio(lb["skia_measure_us"], lb["pillow_halo_us"])
  return ms + parts["new_tiles"] + parts["label_boxes"]


def _ratio(a: float, b: float) -> float:
  return a / b if b > 0 else float("nan")


def summary(split: dict, studied: dict, plain_ms: float) -> dict:
  """Stage -> today's ms (the engine's own timers) -> the replacement's ms, each the engine's
  figure times the ratio the study measured between the two on the same replayed work (the
  replay draws and encodes each image alone, with its tiles cached, so its absolute figures
  are not the engine's); the total after, from the engine's CPU a problem without the part
  timers (`plain_ms`), and the rate it implies on 2 workers (the long run's pool overhead:
  1000 / 11.5 x 2 = 174 against 167.8 measured, x 1.037)."""
  parts, be = split["parts_ms"], studied["render"]["backends"]
  ar, occ = studied["arithmetic"], studied["occupancy"]
  anti_aliased = [k for k, v in be.items() if "draw_ms_per_problem" in v and k != "pillow_1x"]
  by_backend = {k: round(_images_ms(parts, studied, k), 2) for k in anti_aliased}
  best = min(by_backend, key=by_backend.get)
  rows = [("images: canvas, line art, reduction, label tiles and boxes, quantize + PNG",
           by_backend["pillow_2x"], by_backend[best], f"{best}, the engine's palette PNG")]
  if "skia_a8_mask_ms_per_problem" in occ:
    lay = parts["layout_lines"] + parts["layout_vertices"]
    rows.append(("the layout's occupancy mask (`Layout.add_segments`, `add_vertices`; moves "
                 "labels)", lay, lay * _ratio(occ["skia_a8_mask_ms_per_problem"],
                                              occ["layout_mask_ms_per_problem"]),
                 "skia A8 surface, read back"))
  exact_today = parts["exact_evaluate"] + parts["float_of"]
  replay = ar["sympy_all_ms_per_problem"] + ar.get("sympy_float_ms_per_problem", 0)
  rewritten = None
  if "symengine_arithmetic_ms_per_problem" in ar:
    rest = ar["sympy_all_ms_per_problem"] - ar["sympy_arithmetic_ms_per_problem"]
    se = (ar["symengine_arithmetic_ms_per_problem"] + ar["sympy_to_symengine_ms_per_problem"]
          + rest + ar["symengine_float_ms_per_problem"])
    back = min(ar["symengine_to_sympy_ms_per_problem"],
               ar["symengine_to_sympy_by_str_ms_per_problem"])
    rows.append(("exact arithmetic and floats (`exact._evaluate_exact`, `_float_of`), values "
                 "back in sympy for the printers", exact_today,
                 exact_today * _ratio(se + back, replay), "symengine, then ._sympy_()"))
    rewritten = exact_today * _ratio(se, replay)
  saved = sum(t - r for _, t, r, _ in rows)
  rate = lambda ms: round(2 * 1000 / ms / 1.037, 1)
  out = {"rows": [{"stage": s, "today_ms": round(t, 2), "replacement_ms": round(r, 2),
                   "with": w} for s, t, r, w in rows],
         "images_ms_by_backend": by_backend,
         "cpu_ms_per_problem_today_timed": split["cpu_ms_per_problem"],
         "cpu_ms_per_problem_today": plain_ms,
         "cpu_ms_per_problem_after": round(plain_ms - saved, 2),
         "problems_per_s_2_workers_today": rate(plain_ms),
         "problems_per_s_2_workers_after": rate(plain_ms - saved),
         "cpu_ms_per_problem_for_400": round(2 * 1000 / 400 / 1.037, 2)}
  if rewritten is not None:  # printers for symengine's values: no conversion back
    out["cpu_ms_per_problem_after_printers_rewritten"] = round(
        plain_ms - saved - (rows[-1][2] - rewritten), 2)
  return out


def _part(part: str, a) -> dict:
  """The engine's CPU a problem as `benchmarks.engine` measures it (`plain`), with the parts
  timed too (`split`), or profiled (`profile`); all of the problems of seed + 1."""
  n, seed = a.split_problems, a.seed
  if part == "split":
    return engine_split(n, seed)
  if part == "profile":
    return profile(a.profile_problems, seed + 1)
  from benchmarks import engine as bench
  with tempfile.TemporaryDirectory() as tmp:
    bench.cpu_cost(20, seed + 100, tmp)  # imports and first-use costs out of the figure
    return bench.cpu_cost(n, seed, tmp)


def _fresh(part: str, a) -> dict:
  """`_part` in a process of its own: no cache warmed by another measurement's problems."""
  cmd = [sys.executable, "-m", "benchmarks.engine_backends", "--part", part,
         "--split_problems", str(a.split_problems), "--seed", str(a.seed),
         "--profile_problems", str(a.profile_problems)]
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  return json.loads(subprocess.run(cmd, cwd=ROOT, env=env, check=True, text=True,
                                   stdout=subprocess.PIPE).stdout)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--problems", type=int, default=150, help="problems drawn and replayed")
  ap.add_argument("--split_problems", type=int, default=300, help="problems for the stages")
  ap.add_argument("--formula_problems", type=int, default=200)
  ap.add_argument("--profile_problems", type=int, default=300, help="0: no profile")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--study_python", help="a venv's python with the back ends (else this one)")
  ap.add_argument("--pngs", help="a folder for the first problems' images of each back end")
  ap.add_argument("--out", help="also write the JSON here")
  ap.add_argument("--study", nargs=3, metavar=("DRAWINGS", "FORMULAS", "FONT"),
                  help=argparse.SUPPRESS)
  ap.add_argument("--part", choices=("plain", "split", "profile"), help=argparse.SUPPRESS)
  a = ap.parse_args()
  if a.part:
    json.dump(_part(a.part, a), sys.stdout)
    return
  if a.study:
    json.dump(study(*a.study, a.repeats, a.pngs), sys.stdout)
    return
  with tempfile.TemporaryDirectory() as tmp:
    paths = [os.path.join(tmp, "drawings.pkl"), os.path.join(tmp, "formulas.pkl")]
    for path, made in zip(paths, (record_drawings(a.problems, a.seed),
                                  record_formulas(a.formula_problems, a.seed))):
      with open(path, "wb") as f:
        pickle.dump(made, f)
    from data_prep.engine import render
    cmd = [a.study_python or sys.executable, "-m", "benchmarks.engine_backends", "--study",
           *paths, render.font_path(), "--repeats", str(a.repeats)]
    cmd += ["--pngs", a.pngs] if a.pngs else []
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    studied = json.loads(subprocess.run(cmd, cwd=ROOT, env=env, check=True, text=True,
                                        stdout=subprocess.PIPE).stdout)
  plain, split = (_fresh(part, a) for part in ("plain", "split"))
  out = {"seed": a.seed, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "load_average_before": os.getloadavg()[0], "engine_cpu_cost": plain,
         "engine": split, "study": studied,
         "summary": summary(split, studied, plain["cpu_ms_per_problem"])}
  if a.profile_problems:
    out["profile"] = _fresh("profile", a)
  text = json.dumps(out, indent=1)
  print(text)
  if a.out:
    with open(a.out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
