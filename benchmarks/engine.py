"""The data engine as a benchmark-grade source, measured; prints JSON.

  python -m benchmarks.engine [--n 600] [--long 3000] [--workers 2] [--rules 1000] [--sweep 1000]
      [--seed 0] [--wrong_options figure|figure+mistakes] [--option_kinds same|mixed]

speed: `writer.generate` end to end (problems, images, image files, JSON) with all domains mixed
  on --workers processes, problems/s, side by side in the same run with the bare Matplotlib render
  of the same drawings (every line and label our renderer drew, as a Matplotlib figure saved to
  PNG in memory, no problem generation at all) on as many processes; and the CPU time per problem
  in one process, per --split (all, train, test with 10% held out) and per --steps range (1:3,
  4:6: what depth costs, with the records' depths and the figures redrawn because their labels do
  not fit) in one process. The engine writes its files to a RAM folder (/dev/shm) where the
  machine has one, as the render keeps its PNGs in memory: `engine_long_run` is --long problems
  the same way (each worker fills its caches of values, texts and label tiles as it goes: a run of
  many problems, the data engine's use, costs less a problem than the --n of the side-by-side
  figure, whose workers start cold); `engine_files_on_disk` is the --n problems' run into the temp
  folder, and `file_create_cpu_ms` what creating one file costs in each (on this machine's disk
  0.02-1 ms, varying by the minute: as much as drawing an image). The machine's load average is
  printed before and after: the machine is shared, so read the figures with it.
rules: every choices-only rule of `mathvlm.eval.choices_only` on --rules fresh problems (all
  multiple-choice where the chain allows, seed 10**6 + --seed), beside chance; a rule more than
  10 points from chance would mean the options give the answer away. Beside the fixed rules, two
  learned ones (`choices_only.Learned`, linear and trees) fitted on as many problems of another
  seed (2 * 10**6 + --seed) and scored on the same fresh problems. --wrong_options: the engine's
  option mode (figure+mistakes: options from wrong reasoning where a figure has no option set).
  question_kind_rule_percent: a reader who knows the asked kind (the question names it) and each
  option's kind (read from the wrong options' `distractors`), picking among the options of the
  asked kind: an upper bound on what the wording gives away in sets that mix kinds
  (--option_kinds same: sets of the asked kind only, 25%).
layout: --sweep scenes drawn (all domains), each image checked from its rendered text boxes for
  a label over another label, a vertex or a drawn line (`layout.conflicts`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import io
import json
import multiprocessing as mp
import os
import re
import tempfile
import time
from unittest import mock

import numpy as np

from data_prep.engine import problems, render, writer
from data_prep.engine.problems import Rejected
from mathvlm.eval import choices_only


def _pool(workers: int):
  return mp.get_context("fork").Pool(workers)


def ram_folder() -> str | None:
  """A RAM-backed folder (/dev/shm) where the machine has one, else None (the temp folder)."""
  return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def file_create_ms(root: str | None, n: int = 300) -> float:
  """CPU milliseconds to create and write one 6 KB file under root (None: the temp folder)."""
  with tempfile.TemporaryDirectory(dir=root) as tmp:
    c = time.process_time()
    for i in range(n):
      with open(os.path.join(tmp, f"{i}.png"), "wb") as f:
        f.write(b"\0" * 6000)
    return round((time.process_time() - c) / n * 1000, 3)


def speed(n: int, workers: int, seed: int, root: str | None = None) -> dict:
  opts = writer.Options(seed=seed)
  with tempfile.TemporaryDirectory(dir=root) as tmp:
    t = time.perf_counter()
    meta = writer.generate(tmp, n, opts, workers)
    dt = time.perf_counter() - t
  return {"problems": meta["n"], "workers": workers, "seconds": round(dt, 2),
          "problems_per_s": round(meta["n"] / dt, 1), "per_domain": meta["per_domain"],
          "question_types": meta["question_types"],
          "rejected_attempts": meta["rejected_attempts"]}


def cpu_cost(n: int, seed: int, root: str | None = None) -> dict:
  """CPU milliseconds per problem in one process (what a busy machine does not change much):
  the rate an idle machine would reach is about 1000 / ms per worker; and the stages' share.
  `images_only_problems_per_s_per_idle_core`: the rate if making the problems (scenes, questions,
  options, rationales) cost nothing and only drawing and writing the images remained, a ceiling
  that no faster problem code can pass with these images."""
  spent = collections.Counter()
  with tempfile.TemporaryDirectory(dir=root) as tmp, _timed_stages(spent):
    c = time.process_time()
    writer.generate(tmp, n, writer.Options(seed=seed + 1), 1)
    ms = (time.process_time() - c) / n * 1000
  images_ms = (spent["drawing"] + spent["files"]) / n * 1000
  return {"problems": n, "cpu_ms_per_problem": round(ms, 1),
          "problems_per_s_per_idle_core": round(1000 / ms, 1),
          "images_ms_per_problem": round(images_ms, 2),
          "images_only_problems_per_s_per_idle_core": round(1000 / images_ms, 1),
          "stages_ms_per_problem": {k: round(spent[k] / n * 1000, 2) for k, _, _ in STAGES}}


def split_cost(n: int, seed: int, root: str | None = None) -> dict:
  """CPU milliseconds per problem in one process for each --split (10% held out): a held-out
  problem passes over ~9 programs of the other split, which cost only their scene and question
  since the split is decided before drawing (`writer.check_split`)."""
  out = {}
  with tempfile.TemporaryDirectory(dir=root) as tmp:
    for split in writer.SPLITS:
      ms, meta = _one_process(os.path.join(tmp, split), n, writer.Options(seed=seed + 2,
                                                                         split=split))
      out[split] = {"cpu_ms_per_problem": ms,
                    "other_split_passed_over": meta["rejected_attempts"].get("other_split", 0)}
  return {"problems": n, **out}


def _one_process(folder: str, n: int, opts) -> tuple:
  """(CPU milliseconds a problem, meta.json) of n problems written to folder in this process."""
  c = time.process_time()
  meta = writer.generate(folder, n, opts, 1)
  return round((time.process_time() - c) / n * 1000, 1), meta


def depth_cost(n: int, seed: int, root: str | None = None,
               depths: tuple = ((1, 3), (4, 6))) -> dict:
  """CPU milliseconds per problem in one process for each --steps range, with the depths the
  records hold and the figures redrawn because their labels do not fit (a deep plane figure
  has more shapes and labels: at 4:6 they were the largest single cost, docs/engine/README.md).
  A user choosing --steps reads what depth costs here; the engine's default 1:6 is `engine_cpu`."""
  out = {}
  with tempfile.TemporaryDirectory(dir=root) as tmp:
    for lo, hi in depths:
      folder = os.path.join(tmp, f"{lo}_{hi}")
      ms, meta = _one_process(folder, n, writer.Options(seed=seed + 3, steps=(lo, hi)))
      with open(os.path.join(folder, "instruct.json"), encoding="utf-8") as f:
        steps = collections.Counter(r["steps"] for r in json.load(f))
      out[f"{lo}:{hi}"] = {
          "cpu_ms_per_problem": ms,
          "records_by_steps": {str(k): steps[k] for k in sorted(steps)},
          "labels_do_not_fit_per_problem": round(sum(
              v for k, v in meta["rejected_attempts"].items()
              if k.startswith("labels do not fit")) / n, 2)}
  return {"problems": n, **out}


# (name, module, attribute): the stages of one problem, outermost first (`writer.draw`: the
# scene, a multiple-choice question's option set, the drawing, then `assemble` with the
# options, the two solved chains and rationales; `writer.sample`: the files, their encoding
# (PNG, or JPEG for a blurred or noisy image) and degradation). `redrawn_attempts` is the time
# of the `writer.draw` calls that were rejected, whatever stage they got to.
STAGES = (("scene", None, "MAKERS"), ("option_set", writer, "option_set"),
          ("drawing", None, "scene.draw"),
          ("assemble", writer, "assemble"), ("options", problems, "options"),
          ("solve", problems, "solve"), ("rationales", problems, "cot"),
          ("files", writer, "_files"), ("encode", render, "encode"),
          ("degrade", render, "degrade"),
          ("redrawn_attempts", writer, "draw"))


def _timer(spent: collections.Counter, name: str, fn, failed_only: bool = False):
  @functools.wraps(fn)
  def timed(*args, **kwargs):
    t = time.process_time()
    try:
      out = fn(*args, **kwargs)
    except Exception:
      spent[name] += time.process_time() - t
      raise
    if not failed_only:
      spent[name] += time.process_time() - t
    return out
  return timed


@contextlib.contextmanager
def _timed_stages(spent: collections.Counter):
  """Every stage of STAGES wrapped in a CPU timer for the duration (the scenes' `draw` through
  the domain makers that build them)."""
  def maker(make):
    def made(*args, **kwargs):
      scene = make(*args, **kwargs)
      scene.draw = _timer(spent, "drawing", scene.draw)
      return scene
    return _timer(spent, "scene", made)

  with contextlib.ExitStack() as stack:
    stack.enter_context(mock.patch.dict(writer.MAKERS, {
        d: maker(m) for d, m in writer.MAKERS.items()}))
    for name, module, attr in STAGES:
      if module is not None:
        stack.enter_context(mock.patch.object(module, attr, _timer(
            spent, name, getattr(module, attr), failed_only=name == "redrawn_attempts")))
    yield


def drawings(n: int, seed: int) -> list:
  """What our renderer drew for the engine's n problems, per image: pixel segments and labels."""
  out = []
  for i in range(n):
    d = writer.drawn_problem(writer.Options(seed=seed), i)[1][0].images
    out.append([(np.vstack(c.layout.seg_list), [(t, b) for t, b in c.labels])
                for _, _, c in d.values()])
  return out


def matplotlib_png(images: list) -> int:
  """The bare Matplotlib render of one problem's drawings (one PNG per image); returns bytes."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  from matplotlib.collections import LineCollection
  size = 0
  for segs, labels in images:
    fig = plt.figure(figsize=(3.84, 3.84), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, render.SIZE)
    ax.set_ylim(render.SIZE, 0)
    ax.axis("off")
    ax.add_collection(LineCollection(segs.reshape(-1, 2, 2), colors="k", linewidths=1.5))
    for text, (x0, y0, x1, y1) in labels:
      ax.text((x0 + x1) / 2, (y0 + y1) / 2, text, ha="center", va="center", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    size += buf.tell()
  return size


def matplotlib_speed(n: int, workers: int, seed: int) -> dict:
  specs = drawings(n, seed)
  with _pool(workers) as pool:
    pool.map(matplotlib_png, specs[:workers])  # import Matplotlib in every worker first
    t = time.perf_counter()
    pool.map(matplotlib_png, specs, chunksize=4)
    dt = time.perf_counter() - t
  images = sum(len(s) for s in specs)
  return {"problems": n, "images": images, "workers": workers, "seconds": round(dt, 2),
          "problems_per_s": round(n / dt, 1), "images_per_s": round(images / dt, 1)}


def multiple_choice(n: int, workers: int, seed: int, wrong_options: str = "figure",
                    kinds: dict | None = None, option_kinds: str = "same") -> dict:
  """{domain: [(choices, answer index)]} of the multiple-choice problems among n of this seed;
  `kinds`, if given, gets {domain: [(the asked quantity's kind, each option's kind)]}."""
  opts = writer.Options(seed=seed, mc=1.0, degrade=0.0, wrong_options=wrong_options,
                        option_kinds=option_kinds).check()
  by_domain = collections.defaultdict(list)
  with _pool(workers) as pool:
    for samples in pool.imap(functools.partial(writer.make_problem, opts), range(n), chunksize=8):
      r = samples[0]["record"]
      if r["choices"]:
        by_domain[r["domain"]].append((r["choices"], r["answer_index"]))
        if kinds is not None:
          kinds.setdefault(r["domain"], []).append(kinds_of_options(samples[0]["scene"]))
  return dict(sorted(by_domain.items()))


# The kind of quantity a phrase names, as a reader of the question would class it.
KIND_WORDS = (("area", ("area",)), ("perimeter", ("perimeter", "circumference")),
              ("arc", ("arc",)), ("rate", ("rate of change",)),
              ("slope", ("slope", "gradient", "derivative")), ("intercept", ("intercept",)),
              ("coordinate", ("coordinate",)), ("change", ("change in",)),
              ("value", ("value of f",)), ("zero", ("zero",)),
              ("length", ("length", "diagonal", "height", "radius", "diameter", "distance", "side",
                          "chord", "piece")))


def kind_named(phrase: str) -> str:
  low = phrase.lower()
  return next((k for k, words in KIND_WORDS if any(w in low for w in words)), "other")


def kinds_of_options(scene: dict) -> tuple:
  """(asked kind, each option's kind), read from `distractors`: each wrong option is "gave <the
  quantity it answers> instead of <the asked one>" (`problems.option_set`)."""
  said = [re.match(r"gave (the .*?) instead of (the .*)$", d[0]) if d else None
          for d in scene["distractors"]]
  asked = next(kind_named(m.group(2)) for m in said if m)
  return asked, [asked if m is None else kind_named(m.group(1)) for m in said]


def question_kind_rule(kinds: list) -> float:
  """Expected accuracy of a reader who knows the asked kind (the question names it) and each
  option's kind, and picks uniformly among the options of the asked kind: an upper bound on
  what telling kinds apart gives (a reader has to guess an option's kind from its value)."""
  return sum(1 / opts.count(asked) for asked, opts in kinds) / max(1, len(kinds))


def rules(n: int, workers: int, seed: int, wrong_options: str = "figure",
          option_kinds: str = "same") -> dict:
  kinds = {}
  by_domain = multiple_choice(n, workers, 10 ** 6 + seed, wrong_options, kinds, option_kinds)
  every = [p for v in by_domain.values() for p in v]
  seen = [p for v in multiple_choice(n, workers, 2 * 10 ** 6 + seed, wrong_options,
                                     option_kinds=option_kinds).values() for p in v]
  learned = {f"learned_{kind}": choices_only.Learned(seen, kind) for kind in ("linear", "trees")}
  table = {}
  for d, p in [("all", every), *by_domain.items()]:
    table[d] = {k: round(100 * v, 1) for k, v in choices_only.scores(p).items()}
    table[d].update({k: round(100 * m.score(p), 1) for k, m in learned.items()})
  worst = max(abs(v - table["all"]["chance"]) for k, v in table["all"].items() if k != "chance")
  by_kind = {"all": [k for v in kinds.values() for k in v], **kinds}
  return {"problems": n, "wrong_options": wrong_options, "option_kinds": option_kinds,
          "multiple_choice": len(every),
          "learned_from": len(seen),
          "percent": table, "largest_gap_points": round(worst, 1),
          "all_within_10_points": worst <= 10,
          "question_kind_rule_percent": {d: round(100 * question_kind_rule(k), 1)
                                         for d, k in by_kind.items()}}


def _sweep_one(seed: int, i: int) -> tuple:
  dom = writer.domain_for("all", i)
  srng = np.random.default_rng([seed, i, 0])
  vrng = np.random.default_rng([seed, i, 1])
  wanted = int(srng.integers(1, 7))
  steps = (wanted, wanted) if i // 3 % 2 else (1, 6)  # half narrow: plane shapes apart
  try:
    scene = writer.MAKERS[dom](srng, vrng, wanted, steps=steps)
    images = scene.draw()
  except (Rejected, render.LabelsDoNotFit) as e:
    return 0, 0, [type(e).__name__]
  found = [(dom, i, v, *c) for v, (_, _, canvas) in images.items() for c in canvas.conflicts()]
  return len(images), sum(len(c.labels) for _, _, c in images.values()), found


def layout(n: int, workers: int, seed: int) -> dict:
  images = labels = 0
  conflicts, skipped = [], collections.Counter()
  with _pool(workers) as pool:
    for k, m, found in pool.imap(functools.partial(_sweep_one, 2 * 10 ** 6 + seed), range(n),
                                 chunksize=16):
      images, labels = images + k, labels + m
      if k == 0:
        skipped.update(found)
      else:
        conflicts += found
  return {"scenes": n, "images": images, "labels": labels, "conflicts": len(conflicts),
          "examples": conflicts[:5], "scenes_not_drawn": dict(skipped)}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=600, help="problems for the speed figures")
  p.add_argument("--workers", type=int, default=2)
  p.add_argument("--long", type=int, default=3000,
                 help="problems for the long-run figure (0: none)")
  p.add_argument("--rules", type=int, default=1000, help="fresh problems for the rules")
  p.add_argument("--sweep", type=int, default=1000, help="scenes for the layout sweep")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--wrong_options", default="figure", choices=list(writer.WRONG_OPTIONS),
                 help="the engine's option mode for the choices-only rules")
  p.add_argument("--option_kinds", default="same", choices=list(writer.OPTION_KINDS),
                 help="the engine's option kinds for the choices-only rules")
  a = p.parse_args()
  res = {"load_before": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
  ram = ram_folder()
  # The engine runs come first: anything that makes problems in this process (the render's
  # drawings, the CPU figures) would leave the forked workers caches warm with the same values.
  res["speed"] = {"engine": speed(a.n, a.workers, a.seed, ram),
                  "engine_files_on_disk": speed(a.n, a.workers, a.seed),
                  "engine_long_run": speed(a.long, a.workers, a.seed, ram) if a.long else None,
                  "matplotlib_bare_render": matplotlib_speed(a.n, a.workers, a.seed),
                  "engine_files_in": ram or tempfile.gettempdir(),
                  "file_create_cpu_ms": {"ram": file_create_ms(ram) if ram else None,
                                         "disk": file_create_ms(None)},
                  "engine_cpu": cpu_cost(max(60, a.n // 4), a.seed, ram),
                  "split_cpu": split_cost(max(30, a.n // 10), a.seed, ram),
                  "depth_cpu": depth_cost(max(30, a.n // 4), a.seed, ram)}
  res["load_after_speed"] = [round(x, 2) for x in os.getloadavg()]
  if a.rules:
    res["choices_only_rules"] = rules(a.rules, a.workers, a.seed, a.wrong_options,
                                      a.option_kinds)
  if a.sweep:
    res["layout"] = layout(a.sweep, a.workers, a.seed)
  res["load_after"] = [round(x, 2) for x in os.getloadavg()]
  print(json.dumps(res, ensure_ascii=False))


if __name__ == "__main__":
  main()
