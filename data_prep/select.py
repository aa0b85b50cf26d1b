"""Math-LLaVA's data selection: clear images, complexity levels in a ratio, per source.

  python -m data_prep.select --scores scores.jsonl --ratio 2:3:4:1 --size 40000 --seed 0 \
      --out DIR
  python -m data_prep.select --scores scores.jsonl --ratio random --size 40000 --seed 0 --out DIR

Reads `data_prep.score`'s lines (`id`, `source`, `clarity`, `complexity`; `records` is carried
along) and:
  - drops clarity 0 (blurred) images;
  - gives each source a share of --size proportional to its clear images (largest remainder);
  - inside each source, splits its share over complexity levels 0..L-1 by --ratio, rounding all
    sources' splits together: each (source, level) cell is its exact part rounded down or up,
    each source's cells sum to its share, and each level's cells to --size split by the ratio
    (largest remainder), so the totals per level follow the ratio as closely as integers allow;
    rounding units go to cells that can fill them first;
  - takes a (source, level) cell with fewer images than its target whole, and reports the
    shortfall: it is not refilled from another level or source (the ratio is the experiment);
  - draws each cell's images uniformly, from (seed, source, level) over the cell's sorted ids,
    so the same seed gives the same ids whatever the order of the scores file.
`--ratio random` instead draws --size images uniformly from all clear images (the paper's
baseline). Writes DIR/selected.jsonl (one line per image: id, source, complexity[, records]),
DIR/counts.json ({source: {level: {"target", "selected", "available"}}}; target is null for
random), DIR/counts.md (the table) and DIR/summary.json (totals, shortfalls, options).

`--qa_per_image K` keeps K of each selected image's `records` (its QA pairs), drawn from (seed,
image id): the questions-per-image ablation at a fixed image count. An image with fewer keeps all
and is listed in summary.json.

Training reads a selection without rebuilding the data: `mathvlm.data.subset` keeps the records
whose ids the selection lists (each image's `records`, else its `id`).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import zlib
from typing import NamedTuple

import numpy as np

FIELDS = ("id", "source", "clarity", "complexity")


class SelectionError(ValueError):
  """Bad input to the selection; the message names the line or argument and the fix."""


class Row(NamedTuple):
  id: str
  source: str
  complexity: int
  clarity: int
  records: list | None


# ---------------------------------------------------------------------------------------------
# Input.

def parse_ratio(spec: str, levels: int) -> list[int] | None:
  """'2:3:4:1' -> [2, 3, 4, 1]; 'random' -> None."""
  if spec.strip().lower() == "random":
    return None
  try:
    parts = [int(p) for p in spec.split(":")]
  except ValueError:
    raise SelectionError(f"--ratio {spec!r}: expected {levels} integers joined by ':' (e.g. "
                         f"2:3:4:1) or 'random'") from None
  if len(parts) != levels:
    raise SelectionError(f"--ratio {spec!r} has {len(parts)} parts, but there are {levels} "
                         f"complexity levels (0..{levels - 1}): give one part per level, or set "
                         f"--levels")
  if any(p < 0 for p in parts) or not sum(parts):
    raise SelectionError(f"--ratio {spec!r}: parts must be >= 0 and not all 0")
  return parts


def parse_row(line: str, where: str, levels: int) -> Row:
  try:
    rec = json.loads(line)
  except json.JSONDecodeError as e:
    raise SelectionError(f"{where}: not JSON ({e}); one JSON object per line") from None
  if not isinstance(rec, dict):
    raise SelectionError(f"{where}: expected a JSON object, got {type(rec).__name__}")
  missing = [f for f in FIELDS if f not in rec]
  if missing:
    raise SelectionError(f"{where}: no {', '.join(f'`{f}`' for f in missing)} field; every line "
                         f"needs {', '.join(FIELDS)} (score with both --ckpt clarity=... and "
                         f"--ckpt complexity=...)")
  level, clarity = rec["complexity"], rec["clarity"]
  if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < levels:
    raise SelectionError(f"{where}: unknown complexity level {level!r}; levels are "
                         f"0..{levels - 1} (set --levels to the scorer's class count)")
  if clarity not in (0, 1) or isinstance(clarity, bool):
    raise SelectionError(f"{where}: clarity {clarity!r}; expected 0 (blurred) or 1 (clear)")
  records = rec.get("records")
  if records is not None and not isinstance(records, list):
    raise SelectionError(f"{where}: `records` is {records!r:.60}; it must be a list of record "
                         "ids (data_prep.score writes one), or left out")
  return Row(str(rec["id"]), str(rec["source"]), level, clarity, records)


def read_scores(path: str, levels: int) -> list[Row]:
  rows, seen = [], {}
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      row = parse_row(line, f"{path} line {n}", levels)
      if row.id in seen:
        raise SelectionError(f"{path} line {n}: id {row.id!r} already on line {seen[row.id]}; "
                             f"score each image once")
      seen[row.id] = n
      rows.append(row)
  if not rows:
    raise SelectionError(f"{path}: no score lines")
  return rows


# ---------------------------------------------------------------------------------------------
# The pure core.

def allocate(total: int, weights, supply=None) -> list[int]:
  """`total` split in proportion to `weights`, in integers summing to `total` (largest
  remainder). With `supply`, the rounding units go first to parts whose floor is below their
  supply, so a short part does not swallow a unit another part could have used; a part of
  weight 0 never gets one (a ratio of 0 excludes its level)."""
  weights = np.asarray(weights, np.float64)
  if total == 0 or not weights.sum():
    return [0] * len(weights)
  exact = total * weights / weights.sum()
  out = np.floor(exact).astype(np.int64)
  rem = exact - out
  spare = (out < np.asarray(supply)) if supply is not None else np.ones(len(out), bool)
  order = sorted(range(len(out)), key=lambda i: (not weights[i], not spare[i], -rem[i], i))
  for i in order[:total - int(out.sum())]:
    out[i] += 1
  return [int(x) for x in out]


def cells(rows: list[Row]) -> dict[str, dict[int, list[Row]]]:
  """Clear rows by source and level, each cell sorted by id (the order draws are made in)."""
  out: dict[str, dict[int, list[Row]]] = {}
  for r in rows:
    if r.clarity == 1:
      out.setdefault(r.source, {}).setdefault(r.complexity, []).append(r)
  for by_level in out.values():
    for cell in by_level.values():
      cell.sort(key=lambda r: r.id)
  return dict(sorted(out.items()))


def check_levels(pool: dict, ratio: list[int]) -> None:
  """A ratio whose levels hold no clear image is an error: the shares would all be 0, so nothing
  would be selected and no cell would be short (the run once ended "0 of N selected, 0 short")."""
  by_level = [sum(len(by.get(lv, [])) for by in pool.values()) for lv in range(len(ratio))]
  if not any(n for n, w in zip(by_level, ratio) if w):
    taken = [lv for lv, w in enumerate(ratio) if w]
    raise SelectionError(f"--ratio {':'.join(map(str, ratio))} takes levels {taken}, which hold "
                         f"none of the clear images (clear images by level: {by_level}); give "
                         f"a ratio that takes a level holding some")


def targets(pool: dict, ratio: list[int], size: int) -> dict[str, list[int]]:
  """{source: [target per level]}: sources by their clear count in the levels the ratio takes
  (a level of ratio 0 gives its source no share), then levels by the ratio, rounded jointly
  (`round_jointly`). Each source rounded its own split once, and the same remainders won in
  every source: 40,000 images over 24 equal sources came out 7,992:12,000:16,000:4,008, not
  2:3:4:1's 8,000:12,000:16,000:4,000."""
  sources = list(pool)
  available = np.array([[len(pool[s].get(lv, [])) for lv in range(len(ratio))]
                        for s in sources], np.int64)
  shares = allocate(size, [sum(n for n, w in zip(a, ratio) if w) for a in available])
  levels = allocate(size, ratio, available.sum(0))
  plan = round_jointly(np.asarray(shares), np.asarray(ratio), np.asarray(levels), available)
  return {s: [int(x) for x in row] for s, row in zip(sources, plan)}


def round_jointly(shares, ratio, levels, available) -> np.ndarray:
  """[source, level] integers: share[s] * ratio[l] / sum(ratio) rounded down, plus one unit in
  the cells that need it for each row to sum to its share and each column to its level total.
  Units go greedily to cells with a fractional part, by (spare supply, largest fractional
  part, source, level), in integer arithmetic, so the result is the same on any machine;
  where the greedy pass leaves a row short, an augmenting path moves units between cells
  (`_augment`). A unit no fractional cell can take goes to the row's best cell, a level that
  still needs one first (the level totals may then miss by that unit; never seen with shares
  and totals from `allocate`)."""
  exact = shares[:, None] * ratio[None, :]
  total = int(ratio.sum())
  base, rem = exact // total, exact % total
  need_row, need_col = shares - base.sum(1), levels - base.sum(0)
  up = np.zeros(base.shape, bool)
  order = sorted(((s, lv) for s in range(len(shares)) for lv in range(len(ratio)) if ratio[lv]),
                 key=lambda c: (not rem[c], base[c] >= available[c], -rem[c], c))
  fractional = [c for c in order if rem[c]]
  for c in fractional:
    if need_row[c[0]] > 0 and need_col[c[1]] > 0:
      up[c], need_row[c[0]], need_col[c[1]] = True, need_row[c[0]] - 1, need_col[c[1]] - 1
  for s in range(len(shares)):
    while need_row[s] > 0 and _augment(s, up, need_col, fractional):
      need_row[s] -= 1
    rest = sorted((c for c in order if c[0] == s and not up[c]), key=lambda c: need_col[c[1]] <= 0)
    for c in rest[:need_row[s]]:
      up[c], need_col[c[1]] = True, need_col[c[1]] - 1
  return base + up


def _augment(s: int, up: np.ndarray, need_col: np.ndarray, cells: list) -> bool:
  """One more unit for row s: a path s -> level -> row -> level ... through `cells`, taking a
  unit into a cell that has none and out of one that has, ending at a level that still needs
  one (breadth first, cells in their priority order); False when there is none."""
  back, queue, seen = {}, [("row", s)], {("row", s)}
  while queue:
    kind, i = queue.pop(0)
    if kind == "col" and need_col[i] > 0:
      node = (kind, i)
      while node in back:
        cell, node = back[node]
        up[cell] = not up[cell]
      need_col[i] -= 1
      return True
    for c in cells:
      nxt = ("col", c[1]) if kind == "row" and c[0] == i and not up[c] else (
          ("row", c[0]) if kind == "col" and c[1] == i and up[c] else None)
      if nxt and nxt not in seen:
        seen.add(nxt)
        back[nxt] = (c, (kind, i))
        queue.append(nxt)
  return False


def draw(cell: list[Row], k: int, seed: int, source: str, level: int) -> list[Row]:
  """k rows of a cell, uniformly, from (seed, source, level); the whole cell if it is short."""
  if k >= len(cell):
    return list(cell)
  rng = np.random.default_rng([seed, zlib.crc32(source.encode()), level])
  return [cell[i] for i in sorted(rng.choice(len(cell), k, replace=False))]


def check_size(rows: list[Row], size: int) -> int:
  clear = sum(r.clarity == 1 for r in rows)
  if not 0 < size <= clear:
    raise SelectionError(f"--size {size}: must be between 1 and the {clear} clear images "
                         f"(of {len(rows)} scored, {len(rows) - clear} have clarity 0)")
  return clear


def select(rows: list[Row], ratio: list[int] | None, size: int, seed: int, levels: int = 4):
  """(selected rows, counts {source: {level: {target, selected, available}}}); ratio None draws
  `size` uniformly from all clear rows."""
  check_size(rows, size)
  pool = cells(rows)
  if ratio is None:
    clear = [r for by in pool.values() for lv in sorted(by) for r in by[lv]]
    rng = np.random.default_rng([seed])
    chosen = [clear[i] for i in sorted(rng.choice(len(clear), size, replace=False))]
    plan = None
  else:
    levels = len(ratio)
    check_levels(pool, ratio)
    plan = targets(pool, ratio, size)
    chosen = [r for s in pool for lv in range(levels)
              for r in draw(pool[s].get(lv, []), plan[s][lv], seed, s, lv)]
  got = collections.Counter((r.source, r.complexity) for r in chosen)
  counts = {s: {str(lv): {"target": None if plan is None else plan[s][lv],
                          "selected": got[s, lv], "available": len(pool[s].get(lv, []))}
                for lv in range(levels)} for s in pool}
  return chosen, counts


def per_image(chosen: list[Row], k: int, seed: int) -> tuple[list[Row], list[str]]:
  """Each image's records cut to k (Math-LLaVA's QA pairs per image), drawn uniformly from
  (seed, image id) over the image's records in their listed order; an image with fewer keeps
  them all and is listed (the second value), never filled up from another image."""
  out, short = [], []
  for r in chosen:
    if r.records is None:
      raise SelectionError(f"--qa_per_image: image {r.id!r} has no `records` in the scores; "
                           "score a pool whose records are known (data_prep.score, "
                           "data_prep.engine_qa)")
    if len(r.records) < k:
      short.append(r.id)
      out.append(r)
      continue
    rng = np.random.default_rng([seed, zlib.crc32(r.id.encode())])
    keep = sorted(rng.choice(len(r.records), k, replace=False))
    out.append(r._replace(records=[r.records[i] for i in keep]))
  return out, short


def shortfalls(counts: dict) -> list[dict]:
  return [{"source": s, "level": int(lv), "target": c["target"], "selected": c["selected"],
           "short": c["target"] - c["selected"]}
          for s, by in counts.items() for lv, c in by.items()
          if c["target"] is not None and c["selected"] < c["target"]]


def _add(a: dict, b: dict) -> dict:
  """Sums of counts; a null target (random selection) stays null."""
  return {k: None if a[k] is None or b[k] is None else a[k] + b[k] for k in a}


def markdown(counts: dict, title: str) -> str:
  """The counts as a table: per source and level, selected / target (available)."""
  levels = sorted({lv for by in counts.values() for lv in by}, key=int)
  fmt = lambda c: (f"{c['selected']} / {'-' if c['target'] is None else c['target']} "  # noqa
                   f"({c['available']})")
  zero = {"selected": 0, "target": 0, "available": 0}
  lines = [f"# {title}", "", "selected / target (available); a short cell is taken whole", "",
           "| source | " + " | ".join(f"level {lv}" for lv in levels) + " | total |",
           "|---|" + "---|" * (len(levels) + 1)]
  column = {lv: zero for lv in levels}
  for s, by in counts.items():
    row = zero
    for lv in levels:
      row, column[lv] = _add(row, by[lv]), _add(column[lv], by[lv])
    lines.append(f"| {s} | " + " | ".join(fmt(by[lv]) for lv in levels) + f" | {fmt(row)} |")
  total = zero
  for lv in levels:
    total = _add(total, column[lv])
  lines.append("| **total** | " + " | ".join(fmt(column[lv]) for lv in levels)
               + f" | {fmt(total)} |")
  return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Command line.

def write(out: str, chosen: list[Row], counts: dict, summary: dict) -> None:
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "selected.jsonl"), "w", encoding="utf-8") as f:
    for r in chosen:
      line = {"id": r.id, "source": r.source, "complexity": r.complexity}
      if r.records is not None:
        line["records"] = r.records
      f.write(json.dumps(line, ensure_ascii=False) + "\n")
  with open(os.path.join(out, "counts.json"), "w", encoding="utf-8") as f:
    json.dump(counts, f, indent=1, ensure_ascii=False)
  with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1, ensure_ascii=False)
  title = f"Selection: ratio {summary['ratio']}, size {summary['size']}, seed {summary['seed']}"
  with open(os.path.join(out, "counts.md"), "w", encoding="utf-8") as f:
    f.write(markdown(counts, title))


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m data_prep.select",
                              description=__doc__.split("\n")[0])
  p.add_argument("--scores", required=True, help="data_prep.score's scores.jsonl")
  p.add_argument("--ratio", required=True, help="e.g. 2:3:4:1 (levels 0..3), or random")
  p.add_argument("--size", type=int, required=True, help="images to select")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--levels", type=int, default=4, help="complexity levels (the scorer's classes)")
  p.add_argument("--qa_per_image", type=int, default=0,
                 help="keep K of each selected image's records (0: all of them)")
  p.add_argument("--out", required=True)
  args = p.parse_args(argv)
  try:
    if args.qa_per_image < 0:
      raise SelectionError(f"--qa_per_image {args.qa_per_image}: 0 (all) or more")
    if args.seed < 0:  # numpy's seeds are non-negative; its own error names no flag
      raise SelectionError(f"--seed {args.seed}: 0 or more")
    ratio = parse_ratio(args.ratio, args.levels)
    rows = read_scores(args.scores, args.levels)
    chosen, counts = select(rows, ratio, args.size, args.seed, args.levels)
    few = []
    if args.qa_per_image:
      chosen, few = per_image(chosen, args.qa_per_image, args.seed)
  except SelectionError as e:
    raise SystemExit(f"select: {e}") from None
  short = shortfalls(counts)
  summary = {"scores": os.path.abspath(args.scores), "ratio": args.ratio, "size": args.size,
             "seed": args.seed, "scored": len(rows),
             "clarity_0_dropped": sum(r.clarity == 0 for r in rows), "selected": len(chosen),
             "shortfall": sum(c["short"] for c in short), "short_cells": short,
             "qa_per_image": args.qa_per_image or "all",
             "records": sum(len(r.records) for r in chosen if r.records is not None),
             "images_with_fewer_records": {"count": len(few), "ids": few}}
  write(args.out, chosen, counts, summary)
  print(f"select: {len(chosen)} of {args.size} images selected ({summary['shortfall']} short in "
        f"{len(short)} cells, taken whole), {summary['clarity_0_dropped']} clarity-0 dropped"
        + (f", {summary['records']} records ({args.qa_per_image} per image, {len(few)} images "
           "with fewer)" if args.qa_per_image else "") + "; "
        f"{os.path.join(args.out, 'counts.md')}")
  return summary


if __name__ == "__main__":
  main()
