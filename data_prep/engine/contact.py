"""Contact sheets: 16 samples of a domain tiled 4x4, for a person to look at.

  python -m data_prep.engine.contact --out docs/engine [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import os

from PIL import Image, ImageDraw

from . import render
from .writer import DOMAINS, Options, make_problem


def sheet(domain: str, seed: int = 0, n: int = 16, cols: int = 4,
          version: str = "vd") -> Image.Image:
  tiles = []
  for i in range(n):
    s = make_problem(Options(seed=seed, domain=domain, degrade=0.0), i)[0]
    _, data = next(((r, d) for r, d in s["files"] if r.endswith(f"_{version}.png")), s["files"][0])
    tiles.append((Image.open(io.BytesIO(data)).convert("RGB"), s["record"]["family"]))
  w, h = tiles[0][0].size
  rows = (n + cols - 1) // cols
  img = Image.new("RGB", (cols * w, rows * h), "white")
  d = ImageDraw.Draw(img)
  for k, (t, fam) in enumerate(tiles):
    x, y = (k % cols) * w, (k // cols) * h
    img.paste(t, (x, y))
    d.rectangle([x, y, x + w - 1, y + h - 1], outline=(200, 200, 200))
    d.text((x + 6, y + h - 18), fam, font=render.font(11), fill=(120, 120, 120))
  return img


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m data_prep.engine.contact")
  p.add_argument("--out", default="docs/engine")
  p.add_argument("--seed", type=int, default=0)
  a = p.parse_args(argv)
  os.makedirs(a.out, exist_ok=True)
  for d in DOMAINS:
    sheet(d, a.seed).save(os.path.join(a.out, f"contact_{d}.png"), optimize=True)


if __name__ == "__main__":
  main()
