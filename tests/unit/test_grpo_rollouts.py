"""The grpo host step (`mathvlm.rl.Rollouts`) driven directly with the tiny model on one CPU device,
no training loop: DAPO's dynamic sampling replaces groups whose rewards are all equal and says
what it cost; with `grpo.consistency` a group holds one problem's three question versions and
answers that agree across them earn the consistency reward, by the formula in `rl/rewards.py`."""

import collections
import dataclasses
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rl_toys
from mathvlm.rl import rewards as R
from mathvlm.objectives.grpo import keyword_options
from mathvlm.rl.rollouts import Rollouts

STEP = 3  # any step: the sampling seed is (config.seed, step, refill round)
G = 6      # answers per prompt; every test samples 2 prompts (the consistency test's 3 versions
           # x 2), so the sampler compiles twice: for 12 rows, and for a 6-row refill


def _config(tokenizer: str, problems: str = "rl_toys:HalfSolvedStream", **grpo):
  from mathvlm.configs import grpo as recipe
  c = recipe.get_config(f"model=tiny,problems={problems}")
  c.model.preset, c.data.tokenizer, c.data.template = "tiny-toy", tokenizer, "plain"
  c.data.max_len = 24
  c.lora.rank, c.lora.targets = 0, ""
  c.train_rules = ((".*", "trainable"),)
  c.grpo.update(dict(dict(group=G, max_new_tokens=3, beta=0.0,
                          rewards="rl_toys:solved_or_distinct=1.0"), **grpo))
  return c


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
  """(tokenizer path, the trainer's run, a state of random parameters): the tiny model with the
  toys' word-level vocabulary, so that every id it samples is a word. Parameters drawn by numpy
  (tests/random_models.py): jax's initialiser compiles for 20 s on this CPU."""
  from mathvlm import train
  from mathvlm.models import registry
  tokenizer = rl_toys.word_tokenizer(str(tmp_path_factory.mktemp("toy") / "tokenizer.json"))
  presets = registry.get("llava").presets
  tiny = presets["tiny"]
  presets["tiny-toy"] = dataclasses.replace(tiny, text=rl_toys.toy_text(tiny.text, 42))
  try:
    run = train.setup(_config(tokenizer), jax.devices()[:1])
    rng = np.random.default_rng(0)

    def draw(path, x):
      scale = "scale" in jax.tree_util.keystr(path)
      return jnp.asarray((scale + rng.normal(0, 0.1, x.shape)).astype(x.dtype))

    state = {k: jax.tree_util.tree_map_with_path(draw, run.abstract_state[k])
             for k in ("params", "frozen")}
    yield tokenizer, run, state
  finally:
    del presets["tiny-toy"]


def _host(toy, **options) -> tuple[Rollouts, dict]:
  """A host step of its own (fresh refill counter, curriculum) on the shared model and mesh."""
  tokenizer, run, state = toy
  config = _config(tokenizer, **options)
  return Rollouts(types.SimpleNamespace(config=config, cfg=run.cfg, mesh=run.mesh,
                                        graphdef=run.graphdef)), state


def _all_equal(batch: dict) -> list[bool]:
  """Per group of the update batch: all advantages zero, i.e. all rewards equal."""
  return np.all(batch["advantages"].reshape(-1, G) == 0, axis=1).tolist()


OPEN_SOLVED = {"problem_index": np.array([1, 0])}  # odd: open, even: solved


@pytest.mark.parametrize("options, message", [
    (dict(rewards="answr=1"), "unknown reward 'answr'"),
    (dict(rewards="answer=nan"), "the weight a finite number"),
    (dict(rewards="rl_toys:no_such_reward=1"), "grpo.rewards: 'rl_toys:no_such_reward' names"),
    (dict(problems="rl_toys:NoSuchStream"), "grpo.problems: 'rl_toys:NoSuchStream' names"),
    (dict(version="text_only"), "grpo.version='text_only'")])
def test_bad_options_fail_when_the_host_step_is_built(toy, options, message):
  """At setup (`train.setup` builds the host step before the weights load and the step
  compiles), not at the first rollout, where each of these failed or, `answer=nan`, made every
  advantage NaN."""
  with pytest.raises(ValueError, match=message):
    _host(toy, **options)


# ---------------------------------------------------------------------------------------------
# DAPO's dynamic sampling.

def test_without_dynamic_sampling_solved_groups_reach_the_update(toy):
  """The control: prompt 1 is open (answers rewarded apart), prompt 0 solved (every answer earns
  1); its group goes to the update with zero advantages, and no refill is reported."""
  host, state = _host(toy)
  batch, metrics = host(state, OPEN_SOLVED, STEP)
  assert _all_equal(batch) == [False, True]
  assert metrics["groups/all_equal"] == 0.5
  assert "groups/refilled" not in metrics and host.refills == 0


def test_dynamic_sampling_replaces_all_equal_groups_before_the_update(toy):
  """Slot 1 is all-equal. Round 1 samples fresh problem 10**9 (solved: slot 1 stays all-equal),
  round 2 10**9 + 1 (open): 2 fresh groups for a batch of 2, none all-equal left, and slot 0,
  informative from the start, is trained on as first sampled."""
  control, state = _host(toy)
  want, _ = control(state, OPEN_SOLVED, STEP)
  host, _ = _host(toy, dynamic_sampling=True, max_refills=4)
  batch, metrics = host(state, OPEN_SOLVED, STEP)
  assert _all_equal(batch) == [False, False]
  assert metrics["groups/all_equal"] == 0.5  # as sampled, before the refills
  assert metrics["groups/all_equal_after"] == 0.0
  assert metrics["groups/refill_rounds"] == 2 and metrics["groups/refilled"] == 1.0
  assert host.refills == 2 and host.state_dict()["refills"] == 2  # checkpointed: fresh indices
  assert batch["input_ids"].shape == want["input_ids"].shape == (2 * G, 24 + 3)
  for key in ("input_ids", "loss_mask", "advantages"):
    np.testing.assert_array_equal(batch[key][:G], want[key][:G], err_msg=key)
  assert not np.array_equal(batch["input_ids"][G:], want["input_ids"][G:])  # sampled afresh


def solved_is_right(host):
  """The host step with the toy's solved problems answered right and the open ones not: a pass@1
  of 1/2 on OPEN_SOLVED whatever the policy samples."""
  rollout = host._rollout
  host._rollout = lambda *a: (lambda rows: dict(rows, correct=(rows["reward"] == 1.0).astype(
      np.float32)))(rollout(*a))
  return host


def test_dynamic_sampling_leaves_pass_at_1_and_the_curriculum_to_the_sampled_rows(toy):
  """Refills swap the solved group for an open one, so the trained rows' pass rate is lower than
  what the policy scored as sampled: pass@k and the curriculum must read the latter (as without
  refills), or the curriculum never sees a level solved; the trained rows' rate is logged apart."""
  control, state = _host(toy)
  _, want = solved_is_right(control)(state, OPEN_SOLVED, STEP)
  host, _ = _host(toy, dynamic_sampling=True, max_refills=4)
  _, metrics = solved_is_right(host)(state, OPEN_SOLVED, STEP)
  assert want["pass@1"] == 0.5
  assert metrics["pass@1"] == want["pass@1"] and metrics[f"pass@{G}"] == want[f"pass@{G}"]
  assert metrics["curriculum/pass_rate"] == want["curriculum/pass_rate"]
  assert metrics["pass@1/trained"] < metrics["pass@1"]


def test_the_logged_running_pass_rate_is_the_one_that_moved_the_level(toy):
  """`curriculum/pass_rate` is the running rate the curriculum compared with its band, also at a
  step whose rate moves the level (which restarts the running rate): the plot of the rate beside
  the level shows the crossing, not a drop to 0. Up from level 0 (0.8 x 0.9 + 0.2 x 1/2 > 0.8),
  then down from level 2 (1/2 afresh < 0.6). `grpo.curriculum_min_steps=1` reaches the
  curriculum (at its default, 5, neither step could move the level)."""
  host, state = _host(toy, curriculum_min_steps=1)
  host.start()
  host.curriculum.high, host.curriculum.pass_rate = 0.8, 0.9
  _, up = solved_is_right(host)(state, OPEN_SOLVED, STEP)
  assert host.curriculum.level == 1 and up["curriculum/level"] == 0
  np.testing.assert_allclose(up["curriculum/pass_rate"], 0.82)
  host.curriculum.level, host.curriculum.low = 2, 0.6
  _, down = host(state, OPEN_SOLVED, STEP + 1)
  assert host.curriculum.level == 1 and down["curriculum/level"] == 2
  assert down["curriculum/pass_rate"] == down["pass@1"] == 0.5


def _levels_asked(host) -> list[tuple[list[int], int]]:
  """The (indices, level) of each `records` call the host's stream gets from now on."""
  host.start()
  asked, records = [], host.stream.records
  host.stream.records = lambda indices, level: (asked.append((list(indices), level)),
                                                records(indices, level))[1]
  return asked


def test_a_resumed_host_samples_at_the_saved_level_and_numbers_refills_on(toy):
  """The state the trainer checkpoints (`state_dict`, through the JSON of the checkpoint's loop
  item) gives a fresh host the curriculum's level, running pass rate and steps measured, and the
  refill counter: its next step asks the stream for the saved level and its refills for fresh
  indices past those the saved run used. Either forgotten, a resumed run restarted at level 0 or
  trained again on problems it had refilled with."""
  host, state = _host(toy, curriculum_min_steps=1, dynamic_sampling=True)
  host.start()
  host.curriculum.update(0.9)  # up to level 1 (1 step measured: min_steps), measured afresh
  host.curriculum.update(0.5)  # in the band: stays, 1 step measured at level 1
  host.refills = 5
  saved = json.loads(json.dumps(host.state_dict()))  # as checkpoint.py's JsonSave stores it
  resumed, _ = _host(toy, curriculum_min_steps=1, dynamic_sampling=True)
  resumed.load_state_dict(saved)
  assert resumed.state_dict() == host.state_dict()
  assert (resumed.curriculum.level, resumed.curriculum.pass_rate,
          resumed.curriculum.measured, resumed.refills) == (1, 0.5, 1, 5)
  asked = _levels_asked(resumed)
  _, metrics = resumed(state, OPEN_SOLVED, STEP)
  # the solved prompt's slot refilled with fresh index 10**9 + 5 (odd: open), one round
  assert asked == [([1, 0], 1), ([10 ** 9 + 5], 1)] and metrics["curriculum/level"] == 1


def _count_every_prompt_as_cut(host):
  """Makes the host's Encoder count each prompt it encodes as cut; returns the real encode."""
  encode = host.encoder.encode

  def cutting(text):
    host.encoder.truncated += 1
    return encode(text)

  host.encoder.encode = cutting
  return encode


def test_cut_prompts_are_counted_and_warned_about_once(toy, caplog):
  """The Encoder cuts a prompt longer than data.max_len; the host step reports it per step."""
  host, state = _host(toy)
  host.start()
  encode = _count_every_prompt_as_cut(host)
  with caplog.at_level("WARNING", logger="mathvlm.train"):
    _, first = host(state, OPEN_SOLVED, STEP)
    _, second = host(state, OPEN_SOLVED, STEP + 1)
  assert first["prompts/truncated"] == second["prompts/truncated"] == 2 * G
  assert sum("data.max_len" in r.getMessage() for r in caplog.records) == 1
  host.encoder.encode = encode
  _, third = host(state, OPEN_SOLVED, STEP + 2)
  assert third["prompts/truncated"] == 0


def test_prompts_remade_for_another_processes_group_are_not_counted_again(toy):
  """A refill slot may take a group another process sampled: its prompts are remade here from
  the group's index, and were counted as cut where they were first made, so the remake leaves
  the count alone (else a multi-process run's prompts/truncated counted them twice)."""
  host, _ = _host(toy)
  host.start()
  _count_every_prompt_as_cut(host)
  before = host.encoder.truncated
  rows = host._prompt_rows(np.array([0]), dict(local={"problems": []}, first=0), [0], 0)
  assert len(rows["problems"]) == G and len(rows["ids"]) == G  # remade: the encoder ran
  assert host.encoder.truncated == before


def test_dynamic_sampling_stops_after_max_refills(toy):
  """With 1 round, slot 1 is still all-equal (10**9 is solved too): the update trains on it, and
  the metrics say so."""
  host, state = _host(toy, dynamic_sampling=True, max_refills=1)
  batch, metrics = host(state, OPEN_SOLVED, STEP)
  assert _all_equal(batch) == [False, True]
  assert metrics["groups/all_equal_after"] == 0.5
  assert metrics["groups/refill_rounds"] == 1 and metrics["groups/refilled"] == 0.5
  assert host.refills == 1


def graded_with_format(host):
  """The host step with answers graded as `answer=1.0,format=0.1` would grade them, by a rule in
  the problem (the toy's sampled words are neither right nor formatted): a solved problem's
  answers all right and formatted, an open one's all wrong, every second formatted, except fresh
  problem 10**9 + 1's, whose first answer is right. `_assemble`'s rows are kept in
  `host.trained`."""
  rollout, assemble = host._rollout, host._assemble

  def graded(*a):
    rows = rollout(*a)
    groups = [p["group"] for p in rows["problems"]]
    k = np.arange(len(groups)) % G
    solved = np.array([g.startswith("solved") for g in groups])
    correct = (solved | ((np.array(groups) == f"open{10 ** 9 + 1}") & (k == 0))).astype(
        np.float32)
    formatted = (solved | (k % 2 == 1)).astype(np.float32)
    return dict(rows, correct=correct, reward=correct + np.float32(0.1) * formatted)

  host._rollout = graded
  host._assemble = lambda rows: (setattr(host, "trained", rows), assemble(rows))[1]
  return host


@pytest.mark.parametrize("metric, groups, all_equal, refilled", [
    ("reward", ["open1", f"solved{10 ** 9}"], 0.5, 0.5),
    ("correct", [f"open{10 ** 9 + 1}", f"solved{10 ** 9}"], 1.0, 1.0)])
def test_filter_metric_correct_refills_an_all_wrong_group_whose_format_rewards_differ(
    toy, metric, groups, all_equal, refilled):
  """Open problem 1's answers are all wrong, their format rewards differ (0, 0.1, ...). By total
  reward (the default) the group is informative: kept, trained on format alone, and only the
  solved slot is refilled. By `correct` (DAPO's accuracy filter) it is all equal, as the solved
  one is: both are refilled in one round of 2 fresh groups, the open one with a right answer
  (10**9 + 1) taking slot 0 before solved 10**9; `groups/all_equal*` count by the same metric."""
  host, state = _host(toy, dynamic_sampling=True, max_refills=1, filter_metric=metric)
  _, metrics = graded_with_format(host)(state, OPEN_SOLVED, STEP)
  assert [p["group"] for p in host.trained["problems"][::G]] == groups
  assert metrics["groups/all_equal"] == all_equal
  assert metrics["groups/refill_rounds"] == 1 and metrics["groups/refilled"] == refilled
  assert metrics["groups/all_equal_after"] == 0.5  # the solved slot: one round did not suffice


def test_the_overlong_reward_reaches_the_host_step_with_its_buffer(toy):
  """`grpo.overlong_buffer` is the L_cache the host step scores with: under a buffer of 2 of
  max_new_tokens 3, an answer of 1 token earns 0, of 2 -1/2, of 3 -1 (this sample holds 2s and
  3s), and `rewards/overlong` logs them."""
  host, state = _host(toy, rewards="rl_toys:solved_or_distinct=1.0,overlong=1.0",
                      overlong_buffer=2)
  trained, assemble = [], host._assemble
  host._assemble = lambda rows: trained.append(rows) or assemble(rows)
  _, metrics = host(state, OPEN_SOLVED, STEP)
  lengths, overlong = trained[0]["lengths"], trained[0]["reward:overlong"]
  assert set(lengths.tolist()) == {2, 3}
  np.testing.assert_allclose(overlong, np.select([lengths <= 1, lengths == 2], [0.0, -0.5], -1.0))
  np.testing.assert_allclose(metrics["rewards/overlong"], overlong.mean(), rtol=1e-6)


def test_refills_sample_power_of_two_groups_and_fill_slots_with_informative_ones_first(toy):
  """Three of 4 groups all-equal: round 1 samples 4 fresh groups (3 rounded up: the sampler
  compiles for a few batch shapes, not one per count), and the two open ones among them (10**9 + 1,
  10**9 + 3) fill the first two slots before a solved one takes the third; rounds 2 and 3 need
  one group each."""
  host, state = _host(toy, dynamic_sampling=True, max_refills=4)
  sizes, rollout = [], host._rollout
  host._rollout = lambda st, groups, *a: sizes.append(len(groups)) or rollout(st, groups, *a)
  batch, metrics = host(state, {"problem_index": np.array([1, 0, 2, 4])}, STEP)
  assert sizes == [4, 4, 1, 1]
  assert _all_equal(batch) == [False] * 4 and metrics["groups/all_equal"] == 0.75
  assert metrics["groups/refill_rounds"] == 3 and metrics["groups/refilled"] == 6 / 4
  assert host.refills == 6


def test_a_refill_pool_is_padded_to_whole_groups_per_process_and_equal_rows_per_shard():
  """The sampler splits a refill's rows over the mesh's data x fsdp shards and each process
  scores whole groups: 1 group of 6 on 4 shards is padded to 2 (12 rows; 6 do not split in 4),
  1 of 4 on 2 processes to 2, 5 of 6 on 2 processes x 8 shards to 8; 3 of 8 on 8 need none."""
  from mathvlm.rl.rollouts import _padded
  assert _padded(1, 1, 6, 4) == 2 and _padded(1, 2, 4, 2) == 2
  assert _padded(5, 2, 6, 8) == 8 and _padded(3, 1, 8, 8) == 3 and _padded(4, 1, 4, 1) == 4


# ---------------------------------------------------------------------------------------------
# --compile_only.

def _avals(args) -> list[tuple[str, tuple[int, ...], str]]:
  """(path, shape, dtype) of every array of the sampler's arguments, concrete or abstract."""
  return [(jax.tree_util.keystr(path), tuple(x.shape), str(x.dtype))
          for path, x in jax.tree_util.tree_flatten_with_path(args)[0]]


def test_compile_only_lowers_the_sampler_for_what_a_rollout_passes_it(toy, monkeypatch):
  """--compile_only's memory figure for the rollouts is the program they run: the sampler lowered
  for the arguments a real rollout of a global batch passes it, shape and dtype, the images
  (uint8, one slot per row: [rows, 1, H, W, 3]) and the model's state (the train state's params
  and frozen parts) included."""
  from mathvlm import generate as gen
  seen, jitted = [], gen._generate

  class Recording:
    def __call__(self, graphdef, *args, **kwargs):
      seen.append(("rollout", _avals(args)))
      return jitted(graphdef, *args, **kwargs)

    def lower(self, graphdef, *args, **kwargs):
      seen.append(("compile_only", _avals(args)))
      return jitted.lower(graphdef, *args, **kwargs)

  monkeypatch.setattr(gen, "_generate", Recording())
  _, run, _ = toy
  host, state = _host(toy)
  assert host.config.data.global_batch == 4
  host(state, {"problem_index": np.arange(4)}, STEP)
  report = host.compile_only(run.abstract_state)
  (_, rollout), (_, compiled) = seen
  # (state, ids, mask, images, key, temperature, top_p): the images as `_prompts` makes them
  assert [a for a in rollout if a[0] == "[3]"] == [("[3]", (4 * G, 1, host.size, host.size, 3),
                                                     "uint8")]
  assert compiled == rollout
  assert report["per_device_gib"]["total"] > 0 and report["batch"] == 4 * G


# ---------------------------------------------------------------------------------------------
# Consistency across question versions.

VERSIONS = ["text_dominant", "text_dominant", "text_lite", "text_lite", "vision_dominant",
            "vision_dominant"]
CHOICES = ["1", "2", "3", "4"]


def _problems(group: str) -> list[dict]:
  return [{"group": group, "version": v, "answer": "B", "choices": CHOICES} for v in VERSIONS]


def test_consistency_reward_is_the_agreeing_share_of_the_groups_other_answers_when_right():
  """The formula (rl/rewards.py): answer i earns correct_i x (the share of the other answers of
  its group whose final answer is i's). Three problems of 6 answers (2 per version) in one call:
  all versions right and agreeing; some right, some wrong or unanswered; all agreeing on a wrong
  option (which earns nothing). Groups are told apart by their id, not by position."""
  responses = (["The answer is B."] * 6
               + ["The answer is B.", "The answer is B.", "The answer is C.", "The answer is B.",
                  "The answer is A.", "I do not know."]
               + ["The answer is C."] * 6)
  problems = _problems("agree") + _problems("mixed") + _problems("wrong")
  total, parts = R.score(responses, problems, np.ones(18), "answer=1.0,consistency=0.5", 8)
  np.testing.assert_array_equal(parts["correct"], [1] * 6 + [1, 1, 0, 1, 0, 0] + [0] * 6)
  # mixed: a right answer's 5 others say B, C, B, A, "" (or B, B, C, A, ""): 2 of 5 agree
  np.testing.assert_allclose(parts["consistency"], [1] * 6 + [.4, .4, 0, .4, 0, 0] + [0] * 6)
  np.testing.assert_allclose(total, [1.5] * 6 + [1.2, 1.2, 0, 1.2, 0, 0] + [0] * 6, rtol=1e-6)
  # without the weight's term the reward is the answer's alone
  alone, _ = R.score(responses, problems, np.ones(18), "answer=1.0", 8)
  np.testing.assert_array_equal(alone, parts["correct"])


def test_consistency_judges_free_form_agreement_by_value_not_by_string():
  """Free-form answers agree when the judge counts both right: `4√3`, `6.93` and `4*sqrt(3)` are
  the same answer written three ways (string equality would give each 0 agreement); `7` is not."""
  responses = ["The answer is 4√3.", "The answer is 6.93.", "The answer is 4*sqrt(3).",
               "The answer is 7.", "The answer is 4√3.", "no idea"]
  problems = [{"group": "f", "version": v, "answer": "4√3", "choices": []} for v in VERSIONS]
  _, parts = R.score(responses, problems, np.ones(6), "answer=1.0,consistency=1.0", 8)
  np.testing.assert_array_equal(parts["correct"], [1, 1, 1, 0, 1, 0])
  np.testing.assert_allclose(parts["consistency"], [.6, .6, .6, 0, .6, 0])


def test_consistency_groups_hold_one_problems_three_versions(toy):
  """With `grpo.consistency`, group g of the batch answers problem g's text-dominant, text-lite
  and vision-dominant questions, G/3 times each: in what the rewards see and in the prompts the
  update trains on (the vicuna template, which keeps the question)."""
  host, state = _host(toy, problems="rl_toys:VersionStream", consistency=True, group=6,
                      rewards="answer=1.0,consistency=0.5")
  host.config.data.template = "vicuna_v1"
  host.start()
  groups = host._problems([5, 9], 0)
  for index, g in zip([5, 9], groups):
    assert {p["group"] for p in g} == {f"p{index}"}
    assert collections.Counter(p["version"] for p in g) == collections.Counter(VERSIONS)
  batch, metrics = host(state, {"problem_index": np.array([5, 9])}, STEP)
  prompts = [host.encoder.decode(ids) for ids in batch["input_ids"][:, :24]]
  for row, prompt in enumerate(prompts):
    p = groups[row // 6][row % 6]
    question = rl_toys.VERSION_QUESTIONS[p["version"]].format(i=p["group"][1:])
    # "...questions. USER: q ASSISTANT:", the words outside the toy vocabulary unknown
    assert prompt.endswith(f"<unk> . <unk> <unk> {question} <unk> <unk>"), (row, prompt)
  assert np.isfinite(metrics["reward/mean"])
  with pytest.raises(ValueError, match="each of the 3 question versions equally often"):
    _host(toy, problems="rl_toys:VersionStream", consistency=True, group=4)  # at setup


def test_problem_options_are_the_streams_keyword_arguments():
  assert keyword_options("mc=0.5, workers=2,domain=plane,degrade=0.1") == dict(
      mc=0.5, workers=2, domain="plane", degrade=0.1)
  assert keyword_options("") == {}
  with pytest.raises(ValueError, match="'workers 2': expected name=value"):
    keyword_options("mc=0.5,workers 2")
  from mathvlm.objectives import grpo  # a config error before anything runs
  assert any("expected name=value" in e for e in grpo.check(
      dict(grpo.DEFAULTS, problem_options="workers 2")))


def test_problem_options_carry_list_tuple_and_dict_values():
  """A comma inside brackets or quotes belongs to the value (they split the entry, an error);
  the plain forms read as before, an apostrophe in a plain string included; a bracket left
  open, or a bracketed value that is no literal, is an error naming the fix."""
  text = "levels=[1, 2, 3],mc=0.5, pair=('a', 'b'),w={'x': 1, 'y': [2, 3]}"
  assert keyword_options(text) == dict(levels=[1, 2, 3], mc=0.5, pair=("a", "b"),
                                       w={"x": 1, "y": [2, 3]})
  assert keyword_options('tag="x,y",steps=1:6,name=O\'Neil') == dict(
      tag="x,y", steps="1:6", name="O'Neil")
  with pytest.raises(ValueError, match="not closed"):
    keyword_options("levels=[1, 2,mc=0.5")
  with pytest.raises(ValueError, match=r"must be a Python literal; quote its strings"):
    keyword_options("domains=[plane, solid]")


@pytest.mark.parametrize("response, right", [
    ("The answer is $\\frac{8\\sqrt{3}}{3}$.", True), ("\\boxed{\\dfrac{8\\sqrt3}{3}}", True),
    ("The answer is 8√3/3.", True), ("The answer is $\\frac{8\\sqrt{2}}{3}$.", False)])
def test_the_answer_reward_reads_latex_like_textbook_notation(response, right):
  """A policy that writes LaTeX (most models trained on math do) is rewarded for a right value
  as one that writes 8√3/3 is."""
  assert R.answer_reward(response, {"choices": [], "answer": "8√3/3"}) == float(right)
