"""Data sources by name (config.data.name): the `synthetic` source for any objective, or built
ArrayRecord datasets (one, or a weighted `data.mixture`) made into examples by the objective's own
`make_source`. Each is a random-access source of example dicts shaped for the objective and the
model (image size, image tokens, vocabulary)."""

from __future__ import annotations

import collections
import logging
import math

import grain
import numpy as np

from mathvlm.data.records import read, read_lengths
from mathvlm.data.subset import Subset, not_found, read_ids
from mathvlm.data.synthetic import SyntheticSource


def make_source(data_cfg, objective, model_cfg, seed: int):
  """objective: a `mathvlm.objectives.base.Objective`."""
  vision = getattr(model_cfg, "vision", model_cfg)
  text = getattr(model_cfg, "text", None)
  if data_cfg.name == "stream":  # the objective's host step makes the examples (RL rollouts)
    return IndexSource(data_cfg.num_examples)
  if data_cfg.name == "synthetic":
    return SyntheticSource(
        objective.example, num_examples=data_cfg.num_examples, max_len=data_cfg.max_len,
        image_size=vision.image_size, vocab_size=getattr(text, "vocab_size", 0),
        image_seq_len=getattr(model_cfg, "image_seq_len", 0),
        image_token_id=getattr(model_cfg, "image_token_id", -1),
        num_classes=data_cfg.num_classes, seed=seed, text_only=data_cfg.synthetic_text_only)
  if objective.make_source is None:
    raise ValueError(f"data.name={data_cfg.name!r}: objective {objective.name!r} reads no built "
                     "datasets yet; train it on data.name='synthetic'")
  if not data_cfg.path:
    raise ValueError(f"data.name={data_cfg.name!r} needs data.path (the builders' DATA_DIR) and, "
                     "for text, data.tokenizer (a tokenizer folder or tokenizer.json)")
  tokenizer = load_tokenizer(data_cfg.tokenizer) if data_cfg.tokenizer else None
  if tokenizer is not None:
    check_tokenizer(tokenizer, data_cfg.tokenizer, getattr(text, "vocab_size", None))
  parts = parse_mixture(data_cfg.mixture or data_cfg.name)
  ids = read_ids(data_cfg.subset) if data_cfg.subset else None
  records = {name: read(data_cfg.path, name) for name, _ in parts}
  if ids is not None:
    records = {name: Subset(r, ids, where=f"data.subset={data_cfg.subset}")
               for name, r in records.items()}
    missing = not_found(ids, records.values())
    if missing:
      logging.getLogger("mathvlm.data").warning(
          "data.subset=%s: %d of its %d ids are in none of the datasets %s, e.g. %s: they are "
          "not trained on (selected from another build?)", data_cfg.subset, len(missing),
          len(ids), sorted(records), missing[:5])
    for name, sub in records.items():
      if sub.repeated:
        logging.getLogger("mathvlm.data").warning(
            "data.subset=%s: %d of the %d records it keeps in %s share their id with another "
            "kept record (the dataset repeats ids); every record with a selected id is trained "
            "on", data_cfg.subset, sub.repeated, len(sub), name)
  sources = [objective.make_source(records[name], tokenizer, data_cfg, model_cfg)
             for name, _ in parts]
  if data_cfg.group_by_length:
    if len(sources) > 1:
      raise ValueError("data.group_by_length with a data.mixture is not supported yet: group "
                       "one dataset, or mix without grouping")
    lengths = read_lengths(data_cfg.path, parts[0][0])
    sources[0].lengths = lengths if ids is None else tuple(
        records[parts[0][0]].take(x) for x in lengths)
  if len(sources) == 1:
    return sources[0]
  return Mixture(sources, [w for _, w in parts], seed=seed)


def parse_mixture(spec: str) -> list[tuple[str, float]]:
  """'mathv360k=3,mavis_instruct=1' -> [(name, weight)]; a bare name weighs 1."""
  out = []
  for part in filter(None, spec.split(",")):
    name, _, weight = part.partition("=")
    try:
      out.append((name.strip(), float(weight) if weight else 1.0))
    except ValueError:
      raise ValueError(f"data.mixture entry {part!r}: expected name=weight") from None
  names = [n for n, _ in out]
  if not out or any(not n for n in names) or any(not (0 < w < math.inf) for _, w in out):
    raise ValueError(f"data.mixture={spec!r}: needs names with positive, finite weights")
  if len(set(names)) < len(names):
    raise ValueError(f"data.mixture={spec!r}: names a dataset twice; give it one weight")
  return out


def require_tokenizer(tokenizer, objective: str):
  """The tokenizer a text objective needs on built data, or an error naming the field."""
  if tokenizer is None:
    raise ValueError(f"objective {objective!r} on built data needs data.tokenizer (a tokenizer "
                     "folder or tokenizer.json)")
  return tokenizer


def check_tokenizer(tokenizer, path: str, vocab_size: int | None) -> None:
  """Every id the tokenizer can emit must have a row in the model's embedding: an id past it is
  not an error on an accelerator (gathers clamp) but silently trains the last row instead."""
  if not vocab_size:
    return
  special = {f"{name}_token": getattr(tokenizer, f"{name}_token_id", None)
             for name in ("bos", "eos", "pad", "unk")}
  for token in getattr(tokenizer, "additional_special_tokens", None) or []:
    special[token] = tokenizer.convert_tokens_to_ids(token)
  outside = {k: v for k, v in special.items() if v is not None and v >= vocab_size}
  if outside or len(tokenizer) > vocab_size:
    raise ValueError(
        f"data.tokenizer={path}: its ids do not fit the model's vocabulary of {vocab_size} "
        f"(ids 0..{vocab_size - 1}): {len(tokenizer)} tokens"
        + (f", special tokens {outside}" if outside else "") + ". Use the tokenizer the model "
        "was trained with, or a model (model.preset / model.init_from) whose vocabulary covers "
        "this one; a pad token added past the vocabulary can reuse an existing id (LLaVA sets "
        "pad = unk)")


def load_tokenizer(path: str):
  """A tokenizer.json, a tokenizer folder, or a Hugging Face repo id. A path (leading '/' or '.')
  that does not exist is named as such, not sent to the Hub as a repo id."""
  import os
  if path.startswith(("/", ".")) and not os.path.exists(path):
    raise FileNotFoundError(f"data.tokenizer={path!r}: no such file or folder (a tokenizer "
                            "folder or tokenizer.json; on TPU workers, copied there through "
                            "DATA_FROM?)")
  from transformers import AutoTokenizer, PreTrainedTokenizerFast
  if path.endswith(".json"):
    return PreTrainedTokenizerFast(tokenizer_file=path, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")
  return AutoTokenizer.from_pretrained(path)


class IndexSource:
  """`{"problem_index": i}` for i < n: the pipeline shuffles, shards and resumes indices, and the
  objective's host step makes each problem from its index (the engine in the RL loop)."""

  def __init__(self, n: int):
    self.n = n

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, i: int) -> dict:
    return {"problem_index": np.int64(i)}


def source_seed(seed: int, i: int) -> int:
  """The shuffle seed of a mixture's source i: (seed, i) hashed by numpy's SeedSequence. grain
  seeds pass p of a shuffle (its keys past the length) with its seed + p, so with seed + 1 + i
  source i's second pass was source i+1's first permutation: sources of one size (versions of
  the same problems) drew the same record numbers in later passes (all 10 of one source's in
  the other's 20, against ~3 by chance), and a run of seed s shuffled source 1 as one of seed
  s + 1 did source 0. Hashed seeds are 2**32 apart at random: no pass of a run meets another."""
  return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


class Mixture:
  """Several sources by weight through `grain.MapDataset.mix` (a fixed, random-access interleave:
  shuffled, sharded and resumed downstream like one source), summing their drop counters.

  grain's mix reads each source from its first record and ends where the first source runs out,
  so a source it does not exhaust is cut short. Each source is shuffled (seeded) before mixing, so
  the records an epoch uses are a uniform sample of it, not a prefix in reading order (the same
  first problems of MAVIS-Instruct with all their question versions; never the tail of
  MathV360K's file). Later epochs read on through each source (`over_epochs`), so such a source
  gives other records each epoch. How many records an epoch leaves out is logged."""

  def __init__(self, sources, weights, seed: int = 0):
    self.sources = sources
    self.mixed = grain.MapDataset.mix(
        [grain.MapDataset.source(s).shuffle(seed=source_seed(seed, i))
         for i, s in enumerate(sources)], weights)
    total = sum(len(s) for s in sources)
    if len(self.mixed) < total:
      logging.getLogger("mathvlm.data").warning(
          "data.mixture: an epoch draws %d of the %d records (weights %s over sizes %s), a "
          "seeded random sample of each source; each further epoch draws the next records of "
          "each source's shuffle", len(self.mixed), total, list(weights), [len(s) for s in sources])

  def __len__(self) -> int:
    return len(self.mixed)

  def over_epochs(self) -> grain.MapDataset:
    """The mix, whose keys past its length are the later passes, each reading on through every
    source, as the pipeline's epoch-wise shuffle asks for them (key e * len + i: pass e). Read
    as one source again each epoch, every epoch would draw the first epoch's sample: with
    a=3,b=1 over b's 300 records, the same 100 three times. Past the first pass the mix takes
    each source's next keys, which grain's shuffle answers from a new permutation for that pass
    over the source, so b gives 300 different records in 3 epochs, and over a run every record
    of a source is drawn as often as any other, give or take one."""
    return self.mixed

  def __getitem__(self, i: int):
    return self.mixed[i]

  @property
  def dropped(self) -> collections.Counter:
    total = collections.Counter()
    for s in self.sources:
      total.update(s.dropped)
    return total
