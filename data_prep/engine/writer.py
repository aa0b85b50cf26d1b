"""Problems to files: per-problem seeds, worker processes, output in index order.

Problem i is drawn from two generators seeded by (seed, i, attempt, split): the structure
generator (the figure program, the kind of question, multiple choice or not, the degradation)
and the values generator (numbers, letters, wrong options). Variant k of problem i
(`--variants K`) replays the same structure with its own values, so variants share the figure
program and differ in numbers and letters. Nothing depends on which worker made a problem, so
the output is byte-identical for any worker count, and for the Beam pipeline (`data_prep.beam`).
A problem that fails its re-check (`Rejected`) is redrawn with new values; a plane figure that
cannot be drawn (`FigureRejected`: shapes overlap, labels do not fit), a program that cannot ask
the question, or one that lands in the other split, with the next attempt. Rejections are counted
in meta.json, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
import sys

import numpy as np
import sympy as sp

from . import analytic, functions, plane_problem, render, wrong_rationale
from .exact import as_float
from .notation import machine
from .problems import (FigureRejected, NoOptions, ProgramRejected, Rejected, assemble, chain_of,
                       complexity, harder_of, is_fair, option_set, pick)

log = logging.getLogger(__name__)
DOMAINS = ("plane", "analytic", "function")
# A domain's maker: (srng, vrng, wanted steps, same_kind, steps=the --steps range) -> Scene. The
# range matters to the plane alone (a narrow shallow one puts shapes apart: `plane.beside_count`).
MAKERS = {"plane": plane_problem.make, "analytic": analytic.make, "function": functions.make}
# The most steps a question of each domain has (`--steps` MIN above it is refused at once): a
# plane figure's chains (shapes attached to shapes) reach 12; analytic and function programs
# that want more steps than their own quantities have ask sums of two of a kind
# (`problems.add_sums`), 13 and 11 steps at most.
MOST_STEPS = {"plane": 12, "analytic": 12, "function": 11}
SPLITS = {"all": 0, "train": 1, "test": 2}
VERSIONS = ("text_dominant", "text_lite", "vision_dominant")
SHORT = {"text_dominant": "td", "text_lite": "tl", "vision_dominant": "vd"}
CAPTION_ASK = ["Describe the diagram.", "What does this figure show?",
               "Give a detailed caption of this math diagram.",
               "Describe every element of the image."]
# figure: options are four quantities of the figure, one asked (chance for any choices-only
# rule; the rest free-form). figure+mistakes: where the figure has too few, options from wrong
# reasoning too (more multiple choice; a learned rule finds those answers above chance).
WRONG_OPTIONS = ("figure", "figure+mistakes")
# same (the default): a set holds the asked quantity's kind only, so the question's wording rules
# no option out. mixed: that kind first, then any other (more multiple choice at depth 1-2 and
# ~20% faster, but a model that tells an area from a length reads part of the answer: the demo's
# ranked 34.2% on mixed sets and 27.1% on sets of one kind, `mathvlm.demo.confirm --ranked`).
OPTION_KINDS = ("same", "mixed")
# Figure programs that may fail in a row per problem. A plane figure that cannot be drawn is a
# failed program (`FigureRejected`; before, one program tried up to MAX_VALUES sets of values):
# eleven-step plane problems failed up to 77 in a row (60 problems of seed 3), where the limit
# was 60.
MAX_PROGRAMS = 300
MAX_OTHER_SPLIT = 2000  # sound programs of the other split passed over before those count too
MAX_FAILED = 3000     # figure programs that may fail per problem in all, however interleaved
MAX_VALUES = 25       # values tried per program and variant
# Figure programs tried for a fair option set before asking free-form. 10 before plane figures
# that cannot be drawn became new programs (`FigureRejected`): the crowded programs so replaced
# hold many of the sets, and at 10 the multiple-choice problems asked free-form at `--steps
# 11:11` went from 2 to 9 of 106 and at 2:2 from 2 to 5 (150 problems of seed 3); at 40, 0 and 2.
MC_PROGRAMS = 40


@dataclasses.dataclass(frozen=True)
class Options:
  """Everything a problem depends on besides its index."""
  seed: int = 0
  domain: str = "all"
  split: str = "all"
  test_fraction: float = 0.1
  mc: float = 0.7
  degrade: float = 0.1
  steps: tuple = (1, 6)
  variants: int = 1
  wrong_options: str = "figure"
  option_kinds: str = "same"
  wrong_rationales: bool = False  # each record gets `wrong_rationale` (DPO's rejected side)

  def check(self):
    if self.seed < 0:  # NumPy's generators take no negative seed, and say so without naming it
      raise ValueError(f"engine: --seed {self.seed}; give 0 or more")
    if self.domain not in DOMAINS + ("all",):
      raise ValueError(f"engine: --domain {self.domain!r}; use one of {DOMAINS + ('all',)}")
    if self.split not in SPLITS:
      raise ValueError(f"engine: --split {self.split!r}; use all, train or test")
    lo, hi = self.steps
    if not 1 <= lo <= hi <= 12:
      raise ValueError(f"engine: --steps {lo}:{hi}; give MIN:MAX with 1 <= MIN <= MAX <= 12")
    for dom in DOMAINS if self.domain == "all" else (self.domain,):
      if lo > MOST_STEPS[dom]:
        raise ValueError(f"engine: --steps {lo}:{hi}; {dom} questions have at most "
                         f"{MOST_STEPS[dom]} steps: give MIN <= {MOST_STEPS[dom]} or a --domain "
                         f"whose questions go deeper")
    if self.wrong_options not in WRONG_OPTIONS:
      raise ValueError(f"engine: --wrong_options {self.wrong_options!r}; use one of "
                       f"{WRONG_OPTIONS}")
    if self.option_kinds not in OPTION_KINDS:
      raise ValueError(f"engine: --option_kinds {self.option_kinds!r}; use one of "
                       f"{OPTION_KINDS}")
    if self.variants < 1:
      raise ValueError(f"engine: --variants {self.variants}; give 1 or more")
    for name, value in (("mc", self.mc), ("degrade", self.degrade),
                        ("test_fraction", self.test_fraction)):
      if not 0 <= value <= 1:  # NaN too
        raise ValueError(f"engine: --{name} {value}; give a fraction from 0 to 1")
    empty = {"test": 0.0, "train": 1.0}.get(self.split)
    if self.test_fraction == empty:  # every program would be passed over until the engine gave up
      raise ValueError(f"engine: --split {self.split} with --test_fraction {self.test_fraction} "
                       f"holds no problem; give a test fraction between 0 and 1")
    return self


def check_run(out: str, n: int):
  """What a run of n problems into `out` needs, checked before any work (either runner)."""
  if n < 0:
    raise ValueError(f"engine: --n {n}; give the number of problems, 0 or more")
  if "://" not in out and os.path.exists(out) and not os.path.isdir(out):
    raise NotADirectoryError(f"engine: --out {out} is a file; give a folder (made if missing)")


# What a run writes, and so what it removes of an earlier run into the same --out: its texts
# (meta.json first: a folder without it is an unfinished run) and its images, by their names.
TEXTS = ("meta.json", "instruct.json", "caption.json", "scenes.jsonl")
IMAGE_NAME = re.compile(r"(%s)_\w+\.(png|jpg)" % "|".join(DOMAINS))


def earlier_images(names: list[str]) -> list[str]:
  """Those of `names` (paths relative to --out) that are images an engine run wrote."""
  return [n for n in names if n.count("/") == 2 and n.split("/")[0] == "images"
          and n.split("/")[1] in DOMAINS and IMAGE_NAME.fullmatch(n.split("/")[2])]


def clear_earlier(out: str) -> int:
  """Removes an earlier run's files from `out` (a local folder) before this run writes there:
  records name only this run's images, but the folder would keep every image the earlier run
  wrote past this one's (fewer problems, another domain, a degraded image now a JPEG), which
  a tool that lists images/ takes for data. Only a folder with an engine's meta.json is
  touched, and in it only the texts and images/<domain>/<domain>_*.png|jpg. Returns how many
  images went."""
  if not os.path.exists(os.path.join(out, "meta.json")):
    return 0
  for name in TEXTS:
    if os.path.exists(os.path.join(out, name)):
      os.remove(os.path.join(out, name))
  names = [f"images/{d}/{f}" for d in DOMAINS if os.path.isdir(os.path.join(out, "images", d))
           for f in os.listdir(os.path.join(out, "images", d))]
  gone = earlier_images(names)
  for name in gone:
    os.remove(os.path.join(out, name))
  log.info("engine: --out %s held an earlier run: removed its texts and %d image files, so the "
           "folder holds this run's alone", out, len(gone))
  return len(gone)


def steps_range(text: str) -> tuple:
  """"4:6" -> (4, 6), "3" -> (3, 3): --steps as the CLI and the GRPO stream take it."""
  try:
    lo, hi = (int(v) for v in text.split(":")) if ":" in text else (int(text),) * 2
  except ValueError:
    raise ValueError(f"--steps {text!r}: give MIN:MAX, e.g. 4:6") from None
  return lo, hi


def domain_for(domain: str, index: int) -> str:
  return DOMAINS[index % 3] if domain == "all" else domain


def is_test(key: str, test_fraction: float) -> bool:
  """Content-hash split: the same problem content always falls on the same side, any seed."""
  h = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16 ** 12
  return h < test_fraction


class NoProblem(RuntimeError):
  """No problem could be made with these settings (the CLI prints it without a traceback)."""


class OtherSplit(Exception):
  """The problem's content belongs to the other side of the split: the attempt ends."""


class NoOptionSet(Exception):
  """A multiple-choice problem's figure has no fair option set: the next program is drawn
  (at most MC_PROGRAMS times, then the question is asked free-form)."""


def is_mc(opts: Options, index: int) -> bool:
  """Whether problem `index` asks multiple choice: decided once per problem, not per attempt.

  Why: figures without a fair option set are redrawn (`NoOptionSet`), and the rarer such sets
  are at a depth, the more often a per-attempt coin would be thrown again until it fell on
  free-form. Asked free-form at once (as before), `--steps 1:2` gave 8% multiple choice and
  `--steps 1:6` 39% for `--mc 0.7`, so question type and depth were confounded in any
  difficulty sweep."""
  return bool(np.random.default_rng([opts.seed, index, SPLITS[opts.split], 2]).random()
              < opts.mc)


def content_key(scene, main) -> str:
  """What the split hashes: the figure with its values (`scene.key`) and the question asked."""
  return scene.key() + "|" + main.name


def check_split(opts: Options, scene, main) -> None:
  """Raises OtherSplit when the content (figure, values, question) is the other split's.

  Asked as soon as the question is chosen, before the figure is drawn and the options and
  rationales are made: with a 10% test split nine sound programs in ten are passed over, and
  drawing them first made `--split test` cost ~8x the CPU per problem of `--split all` (236
  against 31 ms, 60 problems of seed 1). Every accepted problem's own content was checked, so
  the split stays disjoint. A multiple-choice figure without a fair option set is asked too,
  with the question `pick` chose, before it counts against the problem's MC_PROGRAMS: the other
  split's set-less figures (nine in ten for `--split test`) used them up, and a held-out
  problem was asked free-form far more often than a training one."""
  if opts.split != "all" and is_test(content_key(scene, main),
                                     opts.test_fraction) != (opts.split == "test"):
    raise OtherSplit(opts.split)


@dataclasses.dataclass
class Drawn:
  """One problem drawn and checked, before it becomes files. members: the option set's targets
  (indices in scene.targets, the asked one at `asked`), empty when the options are not one."""
  scene: object
  main: object
  rec: dict
  images: dict
  degradation: dict | None
  members: tuple = ()
  asked: int | None = None


def draw(dom: str, opts: Options, srng, vrng, first: Drawn | None = None, mc: bool = False,
         fallback: bool = True, kept: dict | None = None) -> Drawn:
  """Structure first (from srng, in a fixed order), then the scene, question, images, options.
  A multiple-choice question (`mc`, `is_mc`) asks one of an option set of the figure's
  quantities (`problems.option_set`), drawn after the set; without one, its options come from
  wrong reasoning (`--wrong_options figure+mistakes`), or the figure is redrawn (NoOptionSet)
  unless `fallback`, when it is asked free-form. Variants after the first keep the first's
  question type, option set and asked quantity (`first`). `kept`: what the program before, whose
  figure could not be drawn (`FigureRejected`), passes on: the depth it was made for ("wanted",
  instead of srng's) and the maker's own sizes (a plane figure's shape count)."""
  kept = kept or {}
  wanted = int(srng.integers(opts.steps[0], opts.steps[1] + 1))  # drawn always: srng's stream
  wanted = kept.get("wanted", wanted)                             # stays the same
  mc = mc if first is None else first.rec["question_type"] == "multi_choice"
  degraded = bool(srng.random() < opts.degrade)
  how = render.degradation(srng)
  sizes = {k: v for k, v in kept.items() if k != "wanted"}
  scene = MAKERS[dom](srng, vrng, wanted, same_kind=opts.option_kinds == "same",
                      steps=opts.steps, **sizes)
  main = pick(scene, opts.steps, wanted, srng)
  ask_rng = np.random.default_rng(srng.integers(2 ** 63))  # drawn always: srng's stream stays
  members, asked = None, None                               # the same in every variant
  if mc and first is None:
    members = option_set(scene, main, opts.steps, ask_rng,
                         same_kind=opts.option_kinds == "same")
    asked = int(ask_rng.integers(len(members))) if members else None
    if members is None and opts.wrong_options == "figure" and not fallback:
      check_split(opts, scene, main)  # the other split's figure is passed over, not counted
      raise NoOptionSet(dom)
  elif mc and first.members:
    members, asked = _first_set(scene, first, opts.steps), first.asked
  if members:
    main = members[asked]
  harder = harder_of(scene, main)
  if first is None:  # the first variant's content decides the problem's split
    check_split(opts, scene, main)
  try:  # before the options: a figure whose labels do not fit costs less this way
    images = scene.draw()
  except render.LabelsDoNotFit as e:
    raise Rejected(f"labels do not fit: {e}") from None
  try:
    rec = assemble(scene, main, harder, mc, srng, vrng, fallback=first is None and fallback,
                   members=members, from_mistakes=opts.wrong_options == "figure+mistakes")
  except NoOptions:  # no wrong reasoning gave fair options either
    if first is None:
      raise NoOptionSet(dom) from None
    raise
  if opts.wrong_rationales:  # last, from a generator of its own: the problem stays the same
    rec["wrong_rationale"] = wrong_rationale.of(scene, main, rec, members)
  index = [scene.targets.index(t) for t in members or ()]
  return Drawn(scene, main, rec, images, how if degraded else None, tuple(index), asked)


def _first_set(scene, first: Drawn, steps: tuple) -> list:
  """A later variant's option set: the first variant's quantities, by their place in the
  figure program, redrawn (Rejected) unless they are all there, within `steps` (a chain may be
  longer or shorter with the variant's numbers) and still a fair set with its values."""
  if max(first.members) >= len(scene.targets):
    raise Rejected("option set: this variant's figure has fewer quantities")
  members = [scene.targets[i] for i in first.members]
  if not all(steps[0] <= len(chain_of(scene, t)) <= steps[1] for t in members):
    raise Rejected("option set: a quantity's depth in this variant is outside --steps")
  if not is_fair(scene, members):
    raise Rejected("option set: values collide in this variant")
  return members


def make_problem(opts: Options, index: int) -> list:
  """The samples of problem `index` (one per variant): records and PNG bytes, pure in
  (options, index)."""
  dom, out, rejected = drawn_problem(opts, index)
  sid = f"{dom}_{opts.split}_{opts.seed}_{index:07d}"
  samples = [sample(d, sid, k, opts, index) for k, d in enumerate(out)]
  if out[0].rec["fell_back"]:
    rejected["multiple choice asked free-form: no fair set of options"] = 1
  samples[0]["rejected"] = rejected
  return samples


def drawn_problem(opts: Options, index: int) -> tuple:
  """(domain, [Drawn per variant], {why: count} of the attempts rejected) for problem `index`."""
  dom = domain_for(opts.domain, index)
  mc, no_set = is_mc(opts, index), 0
  rejected, failed, failed_in_all, attempt, kept = {}, 0, 0, -1, None
  while failed < MAX_PROGRAMS and failed_in_all < MAX_FAILED:
    attempt += 1
    base = [opts.seed, index, attempt, SPLITS[opts.split]]
    carried, kept = kept, None
    try:
      out = _variants(dom, opts, base, rejected, mc, no_set >= MC_PROGRAMS, carried)
    except FigureRejected as e:  # the next program, of the figure's depth and size
      failed, failed_in_all, kept = failed + 1, failed_in_all + 1, e.kept
      continue
    except NoOptionSet:  # a sound figure, but not for this question: failures start afresh
      no_set, failed = no_set + 1, 0
      why = "multiple choice: figure redrawn for a fair set of options"
      rejected[why] = rejected.get(why, 0) + 1
      continue
    except OtherSplit:
      # a sound program of the other split: not this problem's failure (with a 10% test split,
      # nine in ten are), and a sign the settings work, so failures start afresh as for
      # NoOptionSet (counted on, `--split test` at 12:12 gave up where `all` did not); but
      # bounded, so a test fraction of 0.001 cannot spin for ever, and MAX_FAILED bounds the
      # failures in between (a few sound programs among thousands failed)
      rejected["other_split"] = rejected.get("other_split", 0) + 1
      failed = failed + 1 if rejected["other_split"] > MAX_OTHER_SPLIT else 0
      continue
    if out is None:
      failed, failed_in_all = failed + 1, failed_in_all + 1
      continue
    return dom, out, rejected
  fix = ("give a --test_fraction nearer 0.5: this split holds too few of these problems"
         if rejected.get("other_split", 0) > MAX_OTHER_SPLIT
         else "widen --steps or the generator's parameter ranges")
  row = f"{MAX_PROGRAMS} figure programs in a row" if failed >= MAX_PROGRAMS else (
      f"{failed_in_all} figure programs in all")
  raise NoProblem(f"engine: problem {index} ({dom}) failed {row} ({attempt + 1} tried): "
                  f"{rejected}; {fix}")


def _variants(dom, opts, base, rejected, mc: bool, fallback: bool,
              kept: dict | None) -> list | None:
  """The program's variants, each tried with up to MAX_VALUES sets of values; None when the
  program cannot give one. A first variant whose figure cannot be drawn raises FigureRejected
  (the next program is drawn); a later one's values are tried again, as its program drew."""
  out = []
  for k in range(opts.variants):
    for tries in range(MAX_VALUES):
      srng = np.random.default_rng(base + [0])
      vrng = np.random.default_rng(base + [1, k, tries])
      first = out[0] if out else None
      try:
        out.append(draw(dom, opts, srng, vrng, first, mc, fallback, kept))
        break
      except Rejected as e:
        why = str(e).split(":")[0][:60]
        rejected[why] = rejected.get(why, 0) + 1
        if isinstance(e, ProgramRejected):
          return None
        if isinstance(e, FigureRejected) and first is None:
          raise
    else:
      return None
  return out


def _files(d: Drawn, dom: str, rid: str) -> tuple:
  imgs = {v: im for v, (im, _, _) in d.images.items()}
  if d.degradation is not None:
    imgs = {v: render.degrade(im, d.degradation) for v, im in imgs.items()}
  if "single" in imgs:
    ext, data = render.encode(imgs["single"], d.degradation)
    rel = f"images/{dom}/{rid}.{ext}"
    return [(rel, data)], {v: rel for v in VERSIONS}
  files, paths = [], {}
  for v in VERSIONS:
    ext, data = render.encode(imgs[v], d.degradation)
    rel = f"images/{dom}/{rid}_{SHORT[v]}.{ext}"
    files.append((rel, data))
    paths[v] = rel
  return files, paths


def sample(d: Drawn, sid: str, k: int, opts: Options, index: int) -> dict:
  """One record (MAVIS-Geometry fields and ours), its caption pair, scene line and files."""
  dom, rec, scene = d.scene.domain, d.rec, d.scene
  rid = sid if opts.variants == 1 else f"{sid}_v{k}"
  files, paths = _files(d, dom, rid)
  caption = " ".join(scene.caption)
  record = {
    "id": rid, "variant_of": sid, "variant": k, "domain": dom, "family": scene.family,
    "split": opts.split,
    "image_text_dominant": paths["text_dominant"], "image_text_lite": paths["text_lite"],
    "image_vision_dominant": paths["vision_dominant"],
    "versions_share_image": "single" in d.images,
    "answer_index": rec["answer_index"], "choices": rec["choices"], "answer": rec["answer"],
    "answer_expr": rec["answer_expr"], "choices_expr": rec["choices_expr"],
    "question_type": rec["question_type"], "steps": rec["steps"],
    "complexity": complexity(rec["steps"]), "clarity": 0 if d.degradation else 1,
    "degradation": d.degradation["kind"] if d.degradation else None,
    "text_en": {
      "diagram_generation": " ".join(scene.generation), "caption": caption,
      "text_dominant_question": rec["questions"]["text_dominant"],
      "text_lite_question": rec["questions"]["text_lite"],
      "vision_dominant_question": rec["questions"]["vision_dominant"],
      "CoT_reasoning": rec["cot"],
    },
    "rephrasings": rec["rephrasings"], "simplified": rec["simplified"], "harder": rec["harder"],
  }
  if opts.wrong_rationales:
    record["wrong_rationale"] = rec["wrong_rationale"]
  cap = {"id": rid, "image": paths["vision_dominant"], "conversations": [
    {"from": "human", "value": "<image>\n" + CAPTION_ASK[index % len(CAPTION_ASK)]},
    {"from": "gpt", "value": caption}]}
  return {"record": record, "caption": cap, "scene": _scene_line(d, rid), "files": files,
          "rejected": {}}


def _scene_line(d: Drawn, rid: str) -> dict:
  val, scene = d.rec["value"], d.scene
  measured = None if d.main.answer_text is not None else d.rec["measured"]  # solve's
  return {"id": rid, "target": d.main.name, "facts": scene.facts,
          "drawn": {v: drawn for v, (_, drawn, _) in d.images.items()},
          "givens": {k: machine(v) for k, v in scene.givens.items()},
          "chain": [s.machine() for s in d.rec["chain"]],
          "answer_float": as_float(val) if getattr(val, "is_number", False) else None,
          "measured": True if measured is None else float(measured),
          "distractors": d.rec["distractor_reasons"]}


# ---------------------------------------------------------------- the local run


def pool_context():
  """fork where it is safe (no JAX in this process: the CLI, the benchmark), as workers then start
  at once; spawn where JAX is running (a trainer, a test), since forking a process whose XLA
  threads hold locks can deadlock the child."""
  return mp.get_context("spawn" if "jax" in sys.modules or not hasattr(os, "fork") else "fork")


def _ordered(made, n: int, workers: int, start: int):
  """`made(i)` for i in start..start+n, in index order, from `workers` processes."""
  idx = range(start, start + n)
  if workers <= 1:
    yield from map(made, idx)
    return
  with pool_context().Pool(workers) as pool:
    yield from pool.imap(made, idx, chunksize=max(1, min(16, n // (workers * 8) or 1)))


def write_files(out: str, files: list, made: set):
  for rel, data in files:
    folder = os.path.dirname(rel)
    if folder not in made:
      os.makedirs(os.path.join(out, folder), exist_ok=True)
      made.add(folder)
    with open(os.path.join(out, rel), "wb") as f:
      f.write(data)


@dataclasses.dataclass(frozen=True)
class Encoded:
  """A sample as the output files hold it: its JSON texts and what meta.json counts."""
  record: str    # instruct.json's element, indented as there
  caption: str   # caption.json's element
  scene: str     # scenes.jsonl's line
  domain: str
  question_type: str
  rejected: dict
  wrong_rationale: bool = False  # the record has one (`--wrong_rationales`)


def _element(obj) -> str:
  """`obj` as an element of a list that `json.dumps(..., indent=1)` writes: the same text one
  level deeper (JSON strings hold no raw newline, so indenting every line is exact)."""
  return " " + json.dumps(obj, ensure_ascii=False, indent=1).replace("\n", "\n ")


def encoded(sample: dict) -> Encoded:
  """A sample's JSON, encoded where it is made (a worker): the parent then only joins texts."""
  rec = sample["record"]
  return Encoded(_element(rec), _element(sample["caption"]),
                 json.dumps(sample["scene"], ensure_ascii=False), rec["domain"],
                 rec["question_type"], sample["rejected"], bool(rec.get("wrong_rationale")))


def _written(opts: Options, out: str, folders: set, index: int) -> list:
  """Problem `index` made, its images written and its JSON encoded, all in the worker: the
  parent only joins texts. It received every image's bytes and encoded every record before,
  ~0.2 ms of CPU a problem on a machine whose two cores the workers already fill, and 52 ms of
  serial JSON after the last of 600 problems."""
  samples = make_problem(opts, index)
  for s in samples:
    write_files(out, s["files"], folders)
  return [encoded(s) for s in samples]


def generate(out: str, n: int, opts: Options, workers: int = 1, start: int = 0) -> dict:
  """Write n problems (n x variants records) under `out`; returns meta.json's summary."""
  opts.check()
  check_run(out, n)
  os.makedirs(out, exist_ok=True)  # also for n = 0: the texts are written either way
  clear_earlier(out)
  folders = {f"images/{domain_for(opts.domain, i)}" for i in range(start, start + min(n, 3))}
  for folder in folders:  # made here, before the workers start: they only write files
    os.makedirs(os.path.join(out, folder), exist_ok=True)
  items = []
  for samples in _ordered(functools.partial(_written, opts, out, folders), n, workers, start):
    items += samples
    if len(items) % 1000 < len(samples):
      log.info("engine: %d / %d records", len(items), n * opts.variants)
  return _write_texts(out, outputs_of(items, opts))


def _write_texts(out: str, texts: dict) -> dict:
  for name, text in texts.items():
    with open(os.path.join(out, name), "wb") as f:
      f.write(text.encode("utf-8"))
  return json.loads(texts["meta.json"])


def outputs_of(items: list, opts: Options) -> dict:
  """instruct.json, caption.json, scenes.jsonl and meta.json's texts from the encoded samples
  (`Encoded`) in order: the same bytes from either runner."""
  counts, types, rejected = {}, {}, {}
  for it in items:
    for k, v in it.rejected.items():
      rejected[k] = rejected.get(k, 0) + v
    counts[it.domain] = counts.get(it.domain, 0) + 1
    types[it.question_type] = types.get(it.question_type, 0) + 1
  meta = {"n": len(items), "seed": opts.seed, "domain": opts.domain, "split": opts.split,
          "test_fraction": opts.test_fraction, "multiple_choice": opts.mc,
          "degrade": opts.degrade, "steps": list(opts.steps), "variants": opts.variants,
          "wrong_options": opts.wrong_options, "option_kinds": opts.option_kinds,
          "per_domain": counts, "question_types": dict(sorted(types.items())),
          "rejected_attempts": dict(sorted(rejected.items())),
          "sympy": sp.__version__}
  if opts.wrong_rationales:  # how many records have one: the others had no showable mistake
    meta["wrong_rationales"] = sum(it.wrong_rationale for it in items)
  return {
    "instruct.json": _json_list([it.record for it in items]),
    "caption.json": _json_list([it.caption for it in items]),
    "scenes.jsonl": "".join(it.scene + "\n" for it in items),
    "meta.json": json.dumps(meta, indent=1),
  }


def _json_list(elements: list) -> str:
  """What `json.dumps(values, indent=1)` writes, from its elements' texts (`_element`)."""
  return "[\n" + ",\n".join(elements) + "\n]" if elements else "[]"
