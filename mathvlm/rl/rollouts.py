"""The grpo objective's host step: prompts -> G sampled answers each -> rewards -> advantages ->
the rows the jitted step trains on (prompt + answer, `loss_mask` on the answer).

Prompts come from a problem stream (`grpo.problems`, "package.module:factory", called as
factory(seed=..., **grpo.problem_options)): problems made on the fly from the indices the data
pipeline hands out (`data.name='stream'`: shuffled, sharded over processes, resumable), at the
difficulty the curriculum sets. A stream has `levels` and `records(indices, level)` returning,
per index, a MAVIS-Geometry record (the engine's format) and its images {path: encoded bytes}; the
records become prompts through the evaluation's own loader (`engine_benchmark.problems_of`), so a
rollout is asked exactly what held-out evaluation asks. A group answers the question version
`grpo.version` G times or, with `grpo.consistency`, each of the three versions G/3 times.

Sampling runs the model on the trainer's mesh (`mathvlm.eval.distributed.generate_global`, the
KV-cache sampler of evaluation); its seed is a function of (config.seed, step, refill round), so
a resumed run samples what the uninterrupted one sampled. The curriculum's state is checkpointed
beside the train state (`state_dict`). With `grpo.dynamic_sampling` (DAPO) the refills are a
function of the global batch alone, so any number of processes trains on the rows one would; they
replace the groups all equal in `grpo.filter_metric`: the total reward (ours), or whether each
answer is right (DAPO's accuracy filter), which also drops an all-wrong group whose answers differ
only in `format`.
"""

from __future__ import annotations

import io
import logging
import math
import time

import numpy as np

from mathvlm.objectives import grpo
from mathvlm.rl import rewards as R
from mathvlm.rl.curriculum import Curriculum

log = logging.getLogger("mathvlm.train")


class Rollouts:
  """`host(state, local_batch, step) -> (batch, metrics)`, built by the trainer at setup."""

  def __init__(self, run):
    c = run.config
    self.run, self.config, self.opts = run, c, grpo.OBJECTIVE.options(c)
    if not self.opts["problems"]:
      raise ValueError("grpo.problems: name the problem stream, e.g. "
                       "'data_prep.engine.online:EngineStream'")
    self.group, self.refills = self.opts["group"], 0
    self.prompt_len, self.new = c.data.max_len, self.opts["max_new_tokens"]
    self.size = run.cfg.vision.image_size
    rows, width = c.data.global_batch * self.group, self.prompt_len + self.new
    self.batch_shapes = dict(input_ids=(rows, width), attention_mask=(rows, width),
                             loss_mask=(rows, width), advantages=(rows,),
                             pixel_values=(rows, 1, self.size, self.size, 3))
    self.example = dict(input_ids=np.int32(0), attention_mask=np.int32(0),
                        loss_mask=np.int32(0), advantages=np.float32(0),
                        pixel_values=np.uint8(0))
    self.stream = self.encoder = None
    self._truncated_seen, self._truncation_warned = 0, False
    self.curriculum = Curriculum(levels=1, enabled=self.opts["curriculum"],
                                 min_steps=self.opts["curriculum_min_steps"])
    # checked here, at setup: the first rollout comes after the weights load and the step compiles
    self.factory = R.imported(self.opts["problems"], "grpo.problems")
    self.versions = self._versions()
    R.check(self.opts["rewards"])

  def start(self) -> None:
    """The stream and the tokenizer, on first use (a --compile_only run needs neither)."""
    if self.stream is not None:
      return
    from tokenizers import Tokenizer

    from mathvlm.eval.run import Encoder
    c, cfg = self.config, self.run.cfg
    if not c.data.tokenizer.endswith(".json"):
      raise ValueError("grpo rollouts need data.tokenizer: a tokenizer.json (to decode answers)")
    self.stream = self.factory(seed=c.seed, **grpo.keyword_options(self.opts["problem_options"]))
    self.curriculum.levels = self.stream.levels
    self.encoder = Encoder(Tokenizer.from_file(c.data.tokenizer), cfg.image_token_id,
                           cfg.image_seq_len, c.data.max_len, cfg.text.eos_token_id)

  def _versions(self) -> list[str]:
    """The question versions a group answers: `grpo.version`, or with `grpo.consistency` all
    three, each G/3 times."""
    from mathvlm.eval.engine_benchmark import VERSIONS
    versions = list(VERSIONS) if self.opts["consistency"] else [self.opts["version"]]
    if versions[0] not in VERSIONS:
      raise ValueError(f"grpo.version={versions[0]!r}: one of {list(VERSIONS)}")
    if self.group % len(versions):
      raise ValueError(f"grpo.group={self.group}: with grpo.consistency, a group holds each of "
                       f"the {len(versions)} question versions equally often")
    return versions

  def compile_only(self, abstract_state: dict) -> dict:
    """Per-device memory of the rollouts' decoding on the trainer's mesh, for --compile_only:
    the sampler lowered for what `_rollout` passes it, the model merged from the train state's
    params and frozen parts (abstract_state: ShapeDtypeStructs with their shardings, so the
    param dtype and any LoRA adapters are the run's) and the prompts' arrays as `_prompts`
    lays them out and `_sampler_inputs` hands them on (uint8 images, one slot per row)."""
    import jax
    from flax import nnx

    from mathvlm import sharding
    from mathvlm.eval import distributed
    rows, shard = self.batch_shapes["input_ids"][0], sharding.batch_sharding(self.run.mesh)
    prompts = [jax.ShapeDtypeStruct(shape, dtype, sharding=shard)
               for shape, dtype in self._prompt_layout(rows)]
    inputs = jax.eval_shape(self._sampler_inputs, *prompts)
    inputs = [jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=shard) for x in inputs]
    model = nnx.merge(self.run.graphdef, abstract_state["params"], abstract_state["frozen"])
    graphdef, state = nnx.split(model)
    report = {"batch": rows, "prompt_len": self.prompt_len, "max_new_tokens": self.new,
              "parameters": sum(int(x.size) for x in jax.tree.leaves(state))}
    return dict(report, **distributed.compile_generate(graphdef, state, *inputs,
                                                       max_new_tokens=self.new))

  # --- checkpointed state -------------------------------------------------------------------
  def state_dict(self) -> dict:
    return {"curriculum": self.curriculum.state_dict(), "refills": self.refills}

  def load_state_dict(self, state: dict) -> None:
    self.curriculum.load_state_dict(state["curriculum"])
    self.refills = int(state["refills"])

  # --- one step -----------------------------------------------------------------------------
  def __call__(self, state, local: dict, step: int) -> tuple[dict, dict]:
    self.start()
    t0 = time.time()
    level = self.curriculum.level
    problems = self._problems(np.asarray(local["problem_index"]).tolist(), level)
    rows = self._rollout(state, problems, step, 0)
    all_equal = float(np.mean(_gathered(self._equal_groups(rows))))
    sampled = self._pass_rates(rows)  # round 0: what the policy does at this level
    refill = {}
    if self.opts["dynamic_sampling"]:
      rows, refill = self._refill(state, rows, step, level)
    batch, metrics = self._assemble(rows), dict(self._metrics(rows, all_equal), **refill)
    # Refills swap all-right and all-wrong groups for mixed ones, so the trained rows' pass rate
    # drifts towards 1/2 whatever the policy does: the curriculum and pass@k read round 0's.
    trained = self._pass_rates(rows) if self.opts["dynamic_sampling"] else sampled
    metrics.update({f"{k}/trained": v for k, v in trained.items()}, **sampled)
    metrics.update(rollout_seconds=time.time() - t0, **{"curriculum/level": float(level)})
    metrics.update(self._truncation())
    # of the global batch: the same on every process
    metrics["curriculum/pass_rate"] = self.curriculum.update(metrics["pass@1"])
    return batch, metrics

  def _problems(self, indices: list[int], level: int) -> list[list[dict]]:
    """Per prompt, the G problems its group answers (one version G times, or each version)."""
    from mathvlm.eval.engine_benchmark import problems_of
    per, out = self.group // len(self.versions), []
    for index, (record, files) in zip(indices, self.stream.records(indices, level)):
      by_version = {p.meta["version"]: p for p in problems_of(record, index)}
      missing = [v for v in self.versions if v not in by_version]
      if missing:
        raise ValueError(f"problem {record.get('id', index)} of the stream has no {missing} "
                         "question")
      out.append([_as_dict(by_version[v], files) for v in self.versions for _ in range(per)])
    return out

  def _rollout(self, state, groups: list[list[dict]], step: int, round_: int,
               pad: int = 0) -> dict:
    """Samples an answer for every row; rewards and advantages per group. pad: placeholder rows
    after them (a refill's share of padding, see `_pool`): sampled, then dropped."""
    from flax import nnx

    from mathvlm.eval import distributed
    flat = [p for g in groups for p in g]
    ids, mask, pixels = self._prompts(flat + [None] * pad)
    model = nnx.merge(self.run.graphdef, state["params"], state["frozen"])
    total = len(ids) * _process_count()
    # a refill's placeholders come after all its real rows (`_pool`), and jax's threefry
    # (partitionable, its default) draws a row's bits by its place in the batch: no real row's
    # draw depends on how much padding the process count asks for
    if pad and not _partitionable_draws():
      log.warning("jax_threefry_partitionable is off: a padded refill's draws depend on the "
                  "padding, so another process count samples other answers")
    tokens = distributed.generate_global(
        model, self.run.mesh, *self._sampler_inputs(ids, mask, pixels), max_new_tokens=self.new,
        eos=self.encoder.eos, pad=self.encoder.pad, temperature=self.opts["temperature"],
        top_p=self.opts["top_p"], seed=_seed(self.config.seed, step, round_))
    lo, hi = distributed.local_rows(self.run.mesh, total)
    n = len(flat)
    ids, mask, pixels, tokens = ids[:n], mask[:n], pixels[:n], tokens[lo:hi][:n]
    lengths = np.array([_length(t, self.encoder.eos, self.encoder.pad) for t in tokens], np.int32)
    responses = [self.encoder.decode(t) for t in tokens]
    reward, parts = R.score(responses, flat, lengths, self.opts["rewards"], self.new,
                            self.opts["length_target"],
                            finished=_finished(tokens, self.encoder.eos),
                            overlong_buffer=self.opts["overlong_buffer"])
    return dict(problems=flat, ids=ids, mask=mask, pixels=pixels, tokens=tokens,
                lengths=lengths, responses=responses, reward=reward,
                correct=parts.pop("correct"), **{PART + k: v for k, v in parts.items()})

  def _refill(self, state, rows: dict, step: int, level: int) -> tuple[dict, dict]:
    """DAPO's dynamic sampling: all-equal groups (`_equal_groups`: in total reward, or with
    `grpo.filter_metric='correct'` in the answers' verdicts) are replaced by fresh prompts, for
    at most `max_refills` rounds. A function of the global batch alone, so that any process
    count trains on the rows one process would: the all-equal groups are counted over every
    process, the fresh problems numbered and sampled once for all of them (`_pool`), and
    informative ones fill the global batch's all-equal slots in order (`_fill`).
    Returns the rows and what it cost, of the global batch: `groups/refill_rounds` (rounds that
    sampled), `groups/refilled` (fresh groups sampled per group of the batch: 0.5 is half again
    the step's rollouts) and `groups/all_equal_after` (the share of all-equal groups the update
    still trains on: > 0 when `max_refills` rounds did not suffice)."""
    rounds = sampled = 0
    for round_ in range(1, self.opts["max_refills"] + 1):
      equal = _gathered(self._equal_groups(rows)) > 0
      slots = np.flatnonzero(equal)
      if not len(slots):
        break
      # as many fresh groups as there are all-equal ones, rounded up to a power of two (at most
      # the batch's groups) so that the sampler compiles for a few shapes, not for every count;
      # the extra groups are a choice: informative ones (not all equal) fill the slots
      # first, in sampled order (DAPO's filter)
      size = min(_bucket(len(slots)), len(equal))
      indices = self._fresh_indices(size)
      rows = self._fill(rows, self._pool(state, indices, step, round_, level), slots, indices,
                        level)
      rounds, sampled = round_, sampled + size
    after = _gathered(self._equal_groups(rows))
    return rows, {"groups/refill_rounds": float(rounds), "groups/refilled": sampled / len(after),
                  "groups/all_equal_after": float(np.mean(after))}

  def _fresh_indices(self, n: int) -> list[int]:
    """Indices past any the data pipeline hands out, in a fixed order (checkpointed counter),
    the same on every process: numbered for the global batch, not per process."""
    out = [10 ** 9 + self.refills + k for k in range(n)]
    self.refills += n
    return out

  def _pool(self, state, indices: list[int], step: int, round_: int, level: int) -> dict:
    """The fresh groups `indices` sampled as one batch over all processes: each makes, samples
    and scores the whole groups of its share (placeholders pad the pool where the processes or
    the batch's shards do not divide it). `every`: the per-row results of all groups, gathered
    (tokens and numbers, no images); `local`: this process's own rows, its first group `first`."""
    from mathvlm.eval import distributed
    total = _padded(len(indices), _process_count(), self.group,
                    distributed.batch_rows(self.run.mesh))
    per = total // _process_count()
    first = _process_index() * per
    mine = indices[first:first + per]
    local = self._rollout(state, self._problems(mine, level) if mine else [], step, round_,
                          (per - len(mine)) * self.group)
    every = {k: _gathered_rows(v, per * self.group)[:len(indices) * self.group]
             for k, v in local.items() if k in SHARED or k.startswith(PART)}
    return dict(every=every, local=local, first=first)

  def _fill(self, rows: dict, pool: dict, slots: np.ndarray, indices: list[int],
            level: int) -> dict:
    """The global batch's all-equal `slots`, in order, take the pool's groups, informative first
    (stable: sampled order); this process replaces the slots it holds. Tokens and rewards are the
    gathered ones; a prompt another process made is remade here from its index (`_prompt_rows`)."""
    every, g = pool["every"], self.group
    order = _informative_first(self._equal_groups(every))[:len(slots)]
    groups = len(rows["reward"]) // g
    start = _process_index() * groups
    mine = [(s - start, k) for s, k in zip(slots, order) if start <= s < start + groups]
    if not mine:
      return rows
    sources = np.array([k for _, k in mine])
    take = (sources[:, None] * g + np.arange(g)[None, :]).reshape(-1)
    new = {k: v[take] for k, v in every.items()}
    new["responses"] = [self.encoder.decode(t) for t in new["tokens"]]
    new.update(self._prompt_rows(sources, pool, indices, level))
    return _replace_groups(rows, new, [s for s, _ in mine], g)

  def _prompt_rows(self, sources: np.ndarray, pool: dict, indices: list[int],
                   level: int) -> dict:
    """Problems, prompt ids, mask and pixels of the pool's groups `sources`: as this process
    made them where it sampled the group, else remade from the group's index (the stream is pure
    in it), which costs a problem where gathering would cost its image."""
    local, first, g = pool["local"], pool["first"], self.group
    held = range(first, first + len(local["problems"]) // g)
    remote = sorted({int(k) for k in sources if k not in held})
    made = {}
    if remote:
      truncated = getattr(self.encoder, "truncated", 0)  # counted where they were first made
      problems = self._problems([indices[k] for k in remote], level)
      ids, mask, pixels = self._prompts([p for group in problems for p in group])
      self.encoder.truncated = truncated
      made = {k: dict(problems=problems[j], ids=ids[j * g:(j + 1) * g],
                      mask=mask[j * g:(j + 1) * g], pixels=pixels[j * g:(j + 1) * g])
              for j, k in enumerate(remote)}
    for k in held:
      a = (k - first) * g
      made[k] = {key: local[key][a:a + g] for key in ("problems", "ids", "mask", "pixels")}
    return {key: ([p for k in sources for p in made[int(k)][key]] if key == "problems" else
                  np.concatenate([made[int(k)][key] for k in sources]))
            for key in ("problems", "ids", "mask", "pixels")}

  def _equal_groups(self, rows: dict) -> np.ndarray:
    """Per group, whether `grpo.filter_metric` is the same for all its answers: the total
    `reward` (the default: equal rewards, zero advantages) or `correct` (DAPO's accuracy filter:
    all right or all wrong, whatever the other rewards, e.g. `format`, add; right by the `answer`
    judge pass@1 reads, whatever `grpo.rewards` weighs). What dynamic sampling replaces and
    `groups/all_equal` and `groups/all_equal_after` count."""
    r = np.asarray(rows[self.opts["filter_metric"]]).reshape(-1, self.group)
    return np.all(r == r[:, :1], axis=1)

  def _prompt_layout(self, rows: int) -> list[tuple[tuple[int, ...], type]]:
    """(shape, dtype) of `_prompts`' arrays: ids, mask, images; --compile_only lowers for them."""
    ids = ((rows, self.prompt_len), np.int32)
    return [ids, ids, ((rows, self.size, self.size, 3), np.uint8)]

  @staticmethod
  def _sampler_inputs(ids, mask, pixels) -> tuple:
    """What the sampler is fed: each row's image as its one image slot ([rows, 1, H, W, 3], the
    trained batch's layout), so a text-only row leaves its slot unused."""
    return ids, mask, pixels[:, None]

  def _prompts(self, problems: list[dict]):
    """Left-padded prompt ids [rows, prompt_len], their mask, uint8 images [rows, H, W, 3];
    None: a placeholder row."""
    from PIL import Image

    from mathvlm.data.image import to_pixels
    from mathvlm.eval import prompts
    (ids_shape, ids_dtype), _, (pixels_shape, pixels_dtype) = self._prompt_layout(len(problems))
    ids = np.full(ids_shape, self.encoder.pad, ids_dtype)
    mask = np.zeros_like(ids)
    pixels = np.zeros(pixels_shape, pixels_dtype)
    for i, p in enumerate(problems):
      if p is None:  # a placeholder row (`_rollout`'s pad): one token, no image
        bos = self.encoder.bos
        ids[i, -1], mask[i, -1] = self.encoder.pad if bos is None else bos, 1
        continue
      x = self.encoder.encode(prompts.format_prompt(p["query"], self.config.data.template,
                                                    n_images=int(p["image"] is not None)))
      ids[i, self.prompt_len - len(x):], mask[i, self.prompt_len - len(x):] = x, 1
      if p["image"] is not None:
        pixels[i] = to_pixels(Image.open(io.BytesIO(p["image"])), self.size,
                              self.config.data.image_aspect)
    return ids, mask, pixels

  def _assemble(self, rows: dict) -> dict:
    """Prompt + answer rows: attention on the answer up to and with its EOS, targets there."""
    n = len(rows["tokens"])
    answer = (np.arange(self.new)[None, :] < rows["lengths"][:, None]).astype(np.int32)
    adv = grpo.group_advantages(rows["reward"], self.group, self.opts["scale_rewards"])
    return dict(input_ids=np.concatenate([rows["ids"], rows["tokens"]], 1).astype(np.int32),
                attention_mask=np.concatenate([rows["mask"], answer], 1),
                loss_mask=np.concatenate([np.zeros_like(rows["mask"]), answer], 1),
                advantages=adv, pixel_values=rows["pixels"].reshape(n, 1, self.size,
                                                                    self.size, 3))

  def _metrics(self, rows: dict, all_equal: float) -> dict:
    """Of the global batch (every process's rows, gathered in process order), so that the row
    process 0 writes is the one a single process would write."""
    reward, lengths = _gathered(rows["reward"]), _gathered(rows["lengths"])
    return {"reward/mean": float(np.mean(reward)),
            "reward/std": float(np.std(reward)),
            "groups/all_equal": all_equal,
            "response_length": float(np.mean(lengths)),
            **_reward_terms(rows)}

  def _pass_rates(self, rows: dict) -> dict:
    """pass@1 and pass@G of the global batch's rows."""
    correct = _gathered(rows["correct"]).reshape(-1, self.group)
    return {"pass@1": float(np.mean(correct)),
            f"pass@{self.group}": float(np.mean(correct.max(axis=1)))}

  def _truncation(self) -> dict:
    """Prompts the Encoder cut to data.max_len since the last step (all processes); warned once,
    as an answer to a cut question is judged against the whole one."""
    cut = int(getattr(self.encoder, "truncated", 0)) - self._truncated_seen
    self._truncated_seen += cut
    cut = int(np.sum(_gathered(np.asarray([cut], np.int64))))
    if cut and not self._truncation_warned:
      self._truncation_warned = True
      log.warning("%d rollout prompt(s) were longer than data.max_len=%d and cut; raise "
                  "data.max_len (prompts/truncated counts them each step)", cut,
                  self.config.data.max_len)
    return {"prompts/truncated": float(cut)}


# rows' key prefix of one reward's unweighted values (`rewards/<name>` in the metrics)
PART = "reward:"


def _reward_terms(rows: dict) -> dict:
  """`rewards/<name>`: each reward of `grpo.rewards`, unweighted, averaged over the global batch
  (TRL's `rewards/<name>/mean`), so that reward/mean = sum of weight x rewards/<name> can be read
  apart: which term moved. The names in `grpo.rewards`' order, the same on every process (the
  gathers are collective)."""
  return {f"rewards/{k[len(PART):]}": float(np.mean(_gathered(v)))
          for k, v in rows.items() if k.startswith(PART)}


def _as_dict(p, files: dict) -> dict:
  """What rewards and prompts read of a problem; its image as bytes from the stream's files."""
  image = files[p.images[0]] if p.images else None
  return {"id": p.pid, "query": p.query, "image": image, "answer": p.answer,
          "choices": p.choices, "group": p.meta["group"], "version": p.meta["version"]}


def _bucket(n: int) -> int:
  """The next power of two >= n."""
  return 1 << max(0, int(n) - 1).bit_length()


def _informative_first(equal: np.ndarray) -> np.ndarray:
  """Group numbers, those not all equal (`Rollouts._equal_groups`) first (stable: sampled
  order)."""
  return np.concatenate([np.flatnonzero(~equal), np.flatnonzero(equal)])


def _padded(groups: int, processes: int, group: int, shards: int) -> int:
  """The fewest groups >= `groups` that split into whole groups per process and into equal rows
  per batch shard (the sampler's batch is split over the mesh's data x fsdp devices)."""
  unit = math.lcm(processes, shards // math.gcd(group, shards))
  return -(-groups // unit) * unit


def _replace_groups(rows: dict, new: dict, slots: np.ndarray, group: int) -> dict:
  out = {k: (list(v) if isinstance(v, list) else np.array(v)) for k, v in rows.items()}
  for j, slot in enumerate(slots):
    a, b = slot * group, (slot + 1) * group
    for k, v in new.items():
      out[k][a:b] = v[j * group:(j + 1) * group]
  return out


def _length(tokens: np.ndarray, eos: tuple[int, ...], pad: int) -> int:
  """Tokens generated, EOS included (the sampler pads after it)."""
  hits = np.flatnonzero(np.isin(tokens, eos))
  return int(hits[0]) + 1 if len(hits) else len(tokens)


def _finished(tokens: np.ndarray, eos: tuple[int, ...]) -> np.ndarray:
  """[rows] whether each answer ended with EOS rather than at max_new_tokens."""
  return np.isin(tokens, eos).any(axis=1)


def _seed(seed: int, step: int, round_: int) -> int:
  """The sampling seed of a step's refill round (0: the first rollout): distinct for every
  (step, round) of a run, as round_ <= grpo.MAX_REFILLS (checked with the options)."""
  return (seed * 1_000_003 + step * (grpo.MAX_REFILLS + 1) + round_) % (2 ** 31)


def _process_count() -> int:
  import jax
  return jax.process_count()


def _gathered(x: np.ndarray) -> np.ndarray:
  """Every process's values of a per-row (or per-group) array, concatenated in process order:
  the global batch's, as one process holding it all would have them. As float32 on any process
  count (rewards, 0/1 flags, lengths: all exact), so that their means agree bitwise."""
  import jax
  x = np.asarray(x, np.float32)
  if jax.process_count() == 1:
    return x
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.process_allgather(x, tiled=True), np.float32)


def _partitionable_draws() -> bool:
  import jax
  return bool(jax.config.jax_threefry_partitionable)


def _process_index() -> int:
  import jax
  return jax.process_index()


# a refill pool's per-row results every process needs (`Rollouts._pool`), with PART's
SHARED = ("tokens", "lengths", "reward", "correct")


def _gathered_rows(x: np.ndarray, rows: int) -> np.ndarray:
  """Every process's rows of `x` (each padded to `rows`), concatenated in process order, in one
  dtype per kind on any process count (jax's gather makes 64-bit values 32-bit), so that one
  process and several hold the same values."""
  x = np.asarray(x)
  x = x.astype(np.int32 if np.issubdtype(x.dtype, np.integer) else np.float32)
  if _process_count() == 1:
    return x
  from jax.experimental import multihost_utils
  x = np.concatenate([x, np.zeros((rows - len(x),) + x.shape[1:], x.dtype)])
  return np.asarray(multihost_utils.process_allgather(x, tiled=True), x.dtype)
