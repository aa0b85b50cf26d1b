"""Scores as files people read: JSON, a markdown table per breakdown, a bar chart PNG (Pillow, so
no plotting dependency)."""

from __future__ import annotations

import json
import os
from typing import Any

from PIL import Image, ImageDraw, ImageFont


def breakdowns(scores: dict[str, Any]) -> dict[str, dict[str, dict]]:
  """The {name: {value: entry}} parts of a scores dict (everything but "all" and "official")."""
  return {k: v for k, v in scores.items() if k not in ("all", "official") and isinstance(v, dict)
          and v and all(isinstance(e, dict) and "total" in e for e in v.values())}


def markdown(scores: dict[str, Any], title: str) -> str:
  a = scores["all"]
  lines = [f"# {title}", "", f"**All: {a['accuracy']:.2f}% ({a['correct']}/{a['total']})**", ""]
  if scores.get("missing"):
    lines += [f"{scores['missing']} problems have no response and are left out of the totals.", ""]
  if scores.get("without_text"):
    lines += [f"{scores['without_text']} responses hold no text field and are scored wrong.", ""]
  if scores.get("empty_responses"):
    lines += [f"{scores['empty_responses']} responses are empty or blank, scored as the official "
              "scorer scores them (MathVista's: the choice nearest to \"\").", ""]
  for name, rows in breakdowns(scores).items():
    lines += [f"## {name}", "", f"| {name} | accuracy | correct | total |", "|---|---:|---:|---:|"]
    lines += [f"| {v} | {e['accuracy']:.2f} | {e['correct']} | {e['total']} |"
              for v, e in rows.items()]
    lines.append("")
  return "\n".join(lines + dynamic_markdown(scores))


def dynamic_markdown(scores: dict[str, Any]) -> list[str]:
  """The engine variants' DynaMath table (average, worst case, robustness), overall and per
  question version; nothing for other benchmarks."""
  if "dynamic" not in scores:
    return []
  rows = [("all", scores["dynamic"])] + [(v, e["dynamic"]) for v, e in
                                         scores.get("version", {}).items() if "dynamic" in e]
  lines = ["## variants (DynaMath metrics)", "",
           "| version | average % | worst case % | robustness | seed questions |",
           "|---|---:|---:|---:|---:|"]
  lines += [f"| {v} | {d['average']:.2f} | {d['worst_case']:.2f} | {d['robustness']:.3f} | "
            f"{d['seeds']} |" for v, d in rows]
  return lines + [""]


def bar_chart(scores: dict[str, Any], path: str, title: str, key: str | None = None) -> None:
  """Horizontal bars: overall accuracy, then one bar per value of the breakdown `key` (default: the
  first breakdown)."""
  parts = breakdowns(scores)
  key = key or next(iter(parts), None)
  rows = [("ALL", scores["all"])] + (list(parts[key].items()) if key else [])
  font = ImageFont.load_default()
  label_w, bar_w, row_h, pad = 260, 420, 22, 12
  img = Image.new("RGB", (label_w + bar_w + 90, pad * 3 + row_h * (len(rows) + 1)), "white")
  d = ImageDraw.Draw(img)
  d.text((pad, pad), f"{title}: accuracy (%) by {key or 'all'}", fill="black", font=font)
  for i, (name, e) in enumerate(rows):
    y = pad * 2 + row_h * (i + 1)
    d.text((pad, y + 4), str(name)[:40], fill="black", font=font)
    w = int(bar_w * e["accuracy"] / 100)
    d.rectangle([label_w, y + 2, label_w + max(w, 1), y + row_h - 4],
                fill=(200, 80, 60) if name == "ALL" else (70, 110, 180))
    d.text((label_w + w + 6, y + 4), f"{e['accuracy']:.1f} ({e['total']})", fill="black",
           font=font)
  img.save(path)


def write(scores: dict[str, Any], out_json: str, title: str) -> dict[str, str]:
  """SCORES.json plus SCORES.md and SCORES.png beside it; returns the three paths."""
  os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
  stem = os.path.splitext(out_json)[0]
  paths = {"json": out_json, "md": stem + ".md", "png": stem + ".png"}
  with open(paths["json"], "w", encoding="utf-8") as f:
    json.dump(scores, f, indent=2, ensure_ascii=False)
  with open(paths["md"], "w", encoding="utf-8") as f:
    f.write(markdown(scores, title))
  bar_chart(scores, paths["png"], title)
  return paths
