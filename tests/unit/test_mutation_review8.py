"""Behaviour that an eighth mutation review (small plausible bugs applied to the GRPO loss,
`mathvlm/objectives/grpo.py`, and to the rollouts' metrics, pass rates, refill slots and resume,
`mathvlm.rl.Rollouts`) found no test guarding: each test here fails on such a mutant and passes
on the real code. The loss is fed log-probs chosen by hand (`token_logps` replaced), so every
expected number below is written from the formula; the host step's parts are called on rows
made here. The whole file runs in seconds."""

import types

import numpy as np
import pytest

from mathvlm.objectives import grpo
from mathvlm.rl import rollouts as RO
from mathvlm.rl.curriculum import Curriculum

B = 0.04  # beta
K3 = lambda q: q - np.log(q) - 1  # noqa: E731 (the k3 estimate of KL at pi_ref / pi = q)

# Two answers of a 4-token row, targets where loss_mask and attention_mask both hold: answer 0
# at t = 1, 2 (advantage +1), answer 1 at t = 1 (advantage -1); answer 1's loss_mask also marks
# t = 3, which is padding (attention 0), so no target. Probabilities pi / pi_old / pi_ref:
# (0.6 / 0.4 / 0.4): ratio 1.5, past 1 + eps_high = 1.28 with A > 0: clipped to 1.28;
# (0.5 / 0.4 / 0.3): ratio 1.25, inside the range;
# (0.2 / 0.4 / 0.4): ratio 0.5, below 1 - eps_low = 0.8 with A < 0: clipped to 0.8.
# Off target every log-prob is 0, as `token_logps` makes it (ratio 1 there).
TARGETS = np.array([[0, 1, 1, 0], [0, 1, 0, 0]], bool)
PI = {(0, 1): 0.6, (0, 2): 0.5, (1, 1): 0.2}
OLD = {(0, 1): 0.4, (0, 2): 0.4, (1, 1): 0.4}
REF = {(0, 1): 0.4, (0, 2): 0.3, (1, 1): 0.4}
PER_TOKEN = [-(1.28 - B * K3(0.4 / 0.6)), -(1.25 - B * K3(0.3 / 0.5)), -(-0.8 - B * K3(2.0))]
SUMS = dict(kl=K3(0.4 / 0.6) + K3(0.6) + K3(2.0), ratio=1.5 + 1.25 + 0.5, clip_fraction=2.0,
            entropy=-np.log(0.6 * 0.5 * 0.2), answer_prob=0.6 + 0.5 + 0.2)


def _logps(probs: dict) -> np.ndarray:
  out = np.zeros(TARGETS.shape, np.float32)
  for (r, t), p in probs.items():
    out[r, t] = np.log(p)
  return out


def _batch(**extra) -> dict:
  return dict(input_ids=np.zeros((2, 4), np.int32),
              attention_mask=np.array([[1, 1, 1, 0], [1, 1, 1, 0]], np.int32),
              loss_mask=np.array([[0, 1, 1, 0], [0, 1, 0, 1]], np.int32),
              old_logps=_logps(OLD), ref_logps=_logps(REF),
              advantages=np.array([1.0, -1.0], np.float32), **extra)


def _loss(monkeypatch, batch, logps=None, **options):
  """grpo.loss with the learner's log-probs `logps` (default PI): (value, weight, metrics)."""
  logps = _logps(PI) if logps is None else logps
  monkeypatch.setattr(grpo, "token_logps", lambda model, b: np.asarray(logps))
  opts = dict(dict(eps_low=0.2, eps_high=0.28, beta=B, max_new_tokens=4), **options)
  value, weight, metrics = grpo.loss(None, batch, {"grpo": opts})
  return float(value), float(weight), {k: float(v) for k, v in metrics.items()}


@pytest.mark.parametrize("aggregation, want, weight", [
    ("sequence", np.mean([np.mean(PER_TOKEN[:2]), PER_TOKEN[2]]), 2.0),
    ("token", np.sum(PER_TOKEN) / 3, 3.0),
    ("constant", np.mean([np.sum(PER_TOKEN[:2]) / 4, PER_TOKEN[2] / 4]), 2.0)],
    ids=grpo.AGGREGATIONS)
def test_each_aggregation_of_hand_computed_tokens(monkeypatch, aggregation, want, weight):
  """Clip-higher on each side (1.28 above for A > 0, 0.8 below for A < 0: each eps its own
  side), minus beta k3 against the reference (not the old policy), negated; aggregated over the
  targets alone (a loss_mask position that is padding is none) by answer, token, or the constant
  max_new_tokens; weighted by answers, or by tokens for 'token'."""
  value, got_weight, metrics = _loss(monkeypatch, _batch(), aggregation=aggregation)
  np.testing.assert_allclose(value, want, rtol=1e-5)
  assert got_weight == weight and metrics["loss"] == value


@pytest.mark.parametrize("aggregation", grpo.AGGREGATIONS)
def test_logged_token_means_of_hand_computed_tokens(monkeypatch, aggregation):
  """kl (k3 to the reference), ratio pi / pi_old, clip_fraction, entropy (-log pi) and
  answer_prob (pi) are means over the 3 targets, off-target positions (ratio 1, pi 1) left out;
  with `prepare`'s mean_answer_tokens (2.5 per row here) 'sequence' and 'constant' divide by its
  sum (5), 'token' by its own count still."""
  _, _, alone = _loss(monkeypatch, _batch(), aggregation=aggregation)
  _, _, prepared = _loss(monkeypatch, _batch(mean_answer_tokens=np.full(2, 2.5, np.float32)),
                         aggregation=aggregation)
  divisor = 3.0 if aggregation == "token" else 5.0
  for name, total in SUMS.items():
    np.testing.assert_allclose(alone[name], total / 3, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(prepared[name], total / divisor, rtol=1e-5, err_msg=name)


def test_without_beta_the_loss_has_no_kl_and_logs_the_k3_it_left_out(monkeypatch):
  """beta 0: the surrogate alone (the reference is not read into the loss); `kl` still logs k3
  against `ref_logps` (which `prepare` fills with the old policy's then)."""
  value, _, metrics = _loss(monkeypatch, _batch(), beta=0.0, aggregation="token")
  np.testing.assert_allclose(value, -(1.28 + 1.25 - 0.8) / 3, rtol=1e-5)
  np.testing.assert_allclose(metrics["kl"], SUMS["kl"] / 3, rtol=1e-5)


@pytest.mark.parametrize("aggregation, want", [
    ("sequence", PER_TOKEN[0] / 2), ("token", PER_TOKEN[0]), ("constant", PER_TOKEN[0] / 4 / 2)],
    ids=grpo.AGGREGATIONS)
def test_an_answer_without_targets_adds_nothing_and_nothing_is_nan(monkeypatch, aggregation,
                                                                   want):
  """One target in all (answer 0's first): it alone makes 'token''s mean; 'sequence' and
  'constant' still average over both answers, the empty one adding 0 (not 0 / 0). A batch
  without any target is a loss of 0 with finite token means (not NaN, which would stop the
  run)."""
  batch = _batch()
  batch["loss_mask"] = np.array([[0, 1, 0, 0], [0, 0, 0, 0]], np.int32)
  value, weight, metrics = _loss(monkeypatch, batch, aggregation=aggregation)
  np.testing.assert_allclose(value, want, rtol=1e-5)
  assert weight == (1.0 if aggregation == "token" else 2.0)
  np.testing.assert_allclose(metrics["ratio"], 1.5, rtol=1e-5)
  batch["loss_mask"][:] = 0
  value, weight, metrics = _loss(monkeypatch, batch, aggregation=aggregation)
  assert value == 0.0 and all(np.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("beta", [B, 0.0])
def test_prepare_reads_old_and_reference_log_probs_and_the_mean_answer_length(monkeypatch, beta):
  """`prepare`: the old log-probs are the step's parameters', the reference's (beta > 0) the
  frozen copy's; with beta 0 there is no copy and ref_logps are the old ones. Each row carries
  the batch's mean answer length: 3 targets over 2 answers (the padding that loss_mask marks is
  none)."""
  monkeypatch.setattr(grpo, "token_logps", lambda model, b: model)  # a 'model' is its log-probs
  state = {"params": _logps(OLD), **({"ref_params": _logps(REF)} if beta else {})}
  batch = {k: v for k, v in _batch().items() if not k.endswith("_logps")}
  prepared, _ = grpo.old_and_reference_logps(np.asarray, state, batch, {"beta": beta})
  np.testing.assert_array_equal(prepared["old_logps"], _logps(OLD))
  np.testing.assert_array_equal(prepared["ref_logps"], _logps(REF if beta else OLD))
  np.testing.assert_allclose(prepared["mean_answer_tokens"], [1.5, 1.5])
  assert prepared["loss_mask"] is batch["loss_mask"]  # the rows as given


# ---------------------------------------------------------------------------------------------
# The host step's parts, on a Rollouts holding only what each part reads (no model, no stream).

def _host(group: int, filter_metric: str = "reward") -> RO.Rollouts:
  host = object.__new__(RO.Rollouts)
  host.group, host.opts, host.refills = group, {"filter_metric": filter_metric}, 0
  host.curriculum = Curriculum(levels=3)
  host.encoder = types.SimpleNamespace(decode=lambda t: " ".join(str(int(x)) for x in t))
  return host


def test_pass_rates_are_the_right_share_and_the_groups_with_one_right():
  """Groups of 3: one right answer (the third) in the first, none in the second: pass@1 is 1 of
  6, pass@3 1 group of 2, read from `correct` (not the reward) by group of consecutive rows."""
  correct = np.array([0, 0, 1, 0, 0, 0], np.float32)
  rates = _host(3)._pass_rates({"correct": correct, "reward": correct + 0.1})
  assert rates.keys() == {"pass@1", "pass@3"}
  np.testing.assert_allclose([rates["pass@1"], rates["pass@3"]], [1 / 6, 1 / 2])


def test_metrics_are_the_batchs_reward_mean_std_and_mean_length():
  """reward/std is the population std of the batch's rewards (mean 3, sqrt(3)), the response
  length the mean of the answers' tokens (EOS counted), groups/all_equal as given, each reward
  term's mean by name."""
  rows = {"reward": np.array([0.0, 4.0, 4.0, 4.0]), "lengths": np.array([1, 2, 3, 6]),
          f"{RO.PART}format": np.array([1.0, 0.0, 1.0, 1.0])}
  got = _host(2)._metrics(rows, 0.25)
  want = {"reward/mean": 3.0, "reward/std": np.sqrt(3.0), "groups/all_equal": 0.25,
          "response_length": 3.0, "rewards/format": 0.75}
  assert got.keys() == want.keys()
  np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-6)


def test_a_saved_state_without_its_refill_counter_is_refused():
  """The refill counter numbers fresh problems: a state without it must not resume from 0 (the
  run would train again on problems it refilled with). The curriculum's state loads with it."""
  host, saved = _host(2), {"curriculum": Curriculum(levels=3, level=2).state_dict(),
                           "refills": 7}
  host.load_state_dict(saved)
  assert host.curriculum.level == 2 and host.refills == 7
  with pytest.raises(KeyError, match="refills"):
    _host(2).load_state_dict({"curriculum": saved["curriculum"]})


def _local_rows() -> dict:
  """A process's 2 groups of 2 rows, each value naming its group (5, 6)."""
  return {"reward": np.array([5.0, 5.0, 6.0, 6.0]), "correct": np.zeros(4, np.float32),
          f"{RO.PART}format": np.array([5.0, 5, 6, 6]), "lengths": np.array([5, 5, 6, 6]),
          "tokens": np.array([[5], [5], [6], [6]]), "ids": np.array([[5], [5], [6], [6]]),
          "responses": ["5", "5", "6", "6"], "problems": ["a5", "a5", "a6", "a6"]}


def _pool() -> dict:
  """A refill pool of 4 groups of 2, gathered from every process: 0 and 2 all equal, 1 and 3
  informative (their second reward 0.5 more); each row's values name its group (10 + k)."""
  k = np.repeat(np.arange(4), 2)
  informative = np.isin(k, (1, 3)) & (np.arange(8) % 2 == 1)
  every = {"reward": 10.0 + k + 0.5 * informative, "correct": np.float32(k % 2 == 0),
           f"{RO.PART}format": 10.0 + k, "lengths": 10 + k, "tokens": (10 + k)[:, None]}
  return {"every": every}


def _prompt_rows(sources, pool, indices, level):
  """`_prompt_rows` stood in for: the pool group's prompts, named by its number."""
  return {"ids": np.repeat(100 + sources, 2)[:, None],
          "problems": [f"p{k}" for k in sources for _ in range(2)]}


@pytest.mark.parametrize("process, slots, groups", [
    (1, [0, 2, 3], [13, 10]),   # global slot 0 <- 1 (process 0's); 2 <- 3, 3 <- 0 here
    (0, [0, 2, 3], [11, 6]),    # only slot 0 is this process's
    (0, [2, 3], [5, 6]),        # none is: the rows stay as they are
    (1, [1, 2], [13, 6])])      # 1 <- 1 (process 0's), 2 <- 3: this process's first
def test_fill_gives_the_global_slots_in_order_the_informative_groups_first(
    monkeypatch, process, slots, groups):
  """2 processes of 2 groups each (global groups 0-3; process 1 holds 2 and 3). The batch's
  all-equal slots, in order, take the pool's groups informative first, in sampled order (1, 3,
  then 0, 2); each process replaces the slots it holds, every value of the group (tokens, their
  decoding, lengths, reward and its terms, correct, the prompts) with the pool group's."""
  monkeypatch.setattr(RO, "_process_index", lambda: process)
  host = _host(2)
  host._prompt_rows = _prompt_rows
  rows = _local_rows()
  out = host._fill(rows, _pool(), np.array(slots), [], 0)
  expect = np.repeat(groups, 2)
  for key in ("lengths", f"{RO.PART}format", "tokens"):
    np.testing.assert_array_equal(np.ravel(out[key]), expect, err_msg=key)
  assert out["responses"] == [str(k) for k in expect]
  assert out["problems"] == [f"p{k - 10}" if k >= 10 else f"a{k}" for k in expect]
  np.testing.assert_array_equal(np.ravel(out["ids"]), [k + 90 if k >= 10 else k for k in expect])
  second = np.arange(4) % 2 == 1
  np.testing.assert_array_equal(out["reward"], expect + 0.5 * (np.isin(expect, (11, 13)) & second))
  np.testing.assert_array_equal(out["correct"], np.isin(expect, (10, 12)))
  assert rows["lengths"].tolist() == [5, 5, 6, 6]  # the rows given are not changed


def test_with_refills_rewards_are_the_trained_rows_and_pass_rates_the_sampled():
  """Under dynamic sampling the step's reward, length and reward terms describe the rows the
  update trains on (after the refills), while pass@k, groups/all_equal and the curriculum read
  the rows as first sampled (README: refills drift the trained pass rate to 1/2); pass@1/trained
  is the refilled rows'. Groups of 2: sampled all right (reward 1, length 2), refilled with a
  half-right group (rewards 0 and 1, lengths 4)."""
  host = _host(2)
  host.opts.update(dynamic_sampling=True)
  host.stream, host._truncated_seen, host._truncation_warned = object(), 0, False
  sampled = {"reward": np.ones(2), "correct": np.ones(2), "lengths": np.array([2, 2]),
             f"{RO.PART}answer": np.ones(2)}
  trained = {"reward": np.array([0.0, 1.0]), "correct": np.array([0.0, 1.0]),
             "lengths": np.array([4, 4]), f"{RO.PART}answer": np.array([0.0, 1.0])}
  host._problems = lambda indices, level: [[{}, {}]]
  host._rollout = lambda *a: sampled
  host._refill = lambda state, rows, step, level: (trained, {"groups/refilled": 1.0})
  host._assemble = lambda rows: {"rows": rows}
  batch, metrics = host(None, {"problem_index": np.array([0])}, 1)
  assert batch["rows"] is trained
  assert (metrics["reward/mean"], metrics["response_length"], metrics["rewards/answer"]) == (
      0.5, 4.0, 0.5)
  assert (metrics["pass@1"], metrics["pass@2"], metrics["groups/all_equal"]) == (1.0, 1.0, 1.0)
  assert (metrics["pass@1/trained"], metrics["pass@2/trained"]) == (0.5, 1.0)
  assert metrics["curriculum/pass_rate"] == 1.0 and metrics["groups/refilled"] == 1.0


def test_informative_first_keeps_the_sampled_order_in_a_large_pool():
  """Stable past numpy's small-array insertion sort (an argsort of the flags reorders 40)."""
  equal = np.arange(40) % 3 == 0
  order = RO._informative_first(equal).tolist()
  assert order == [k for k in range(40) if k % 3] + [k for k in range(40) if k % 3 == 0]


def test_prompt_rows_take_held_groups_from_this_process_and_remake_the_others():
  """Process 1 sampled pool groups 2 and 3 (its `first` is 2): those prompts are its own rows;
  groups 0 and 5 are remade from their fresh indices (100 + k), in the order of `sources`."""
  host = _host(2)
  host.encoder.truncated = 0
  host._problems = lambda indices, level: [[f"r{i}"] * 2 for i in indices]
  host._prompts = lambda problems: tuple(np.array([[int(p[1:])] for p in problems])
                                         for _ in range(3))
  held = np.array([[2], [2], [3], [3]])
  local = {"problems": ["h2", "h2", "h3", "h3"], "ids": held, "mask": held, "pixels": held}
  rows = host._prompt_rows(np.array([3, 0, 5, 2]), {"local": local, "first": 2},
                           [100 + k for k in range(6)], 0)
  assert rows["problems"] == ["h3", "h3", "r100", "r100", "r105", "r105", "h2", "h2"]
  for key in ("ids", "mask", "pixels"):
    assert np.ravel(rows[key]).tolist() == [3, 3, 100, 100, 105, 105, 2, 2], key


@pytest.mark.parametrize("equal, asked", [([1, 1, 1], 3), ([1, 1, 0], 2), ([1, 0, 0], 1)])
def test_a_refill_round_samples_the_slots_rounded_up_to_a_power_of_two_at_most_the_batch(
    equal, asked):
  """3 all-equal groups of a batch of 3 ask for 3 fresh groups (4, the next power of two, is
  more than the batch holds); 2 for 2, 1 for 1. One round, whose groups are all informative."""
  host = _host(2)
  host.opts.update(max_refills=1)
  rows = {"reward": np.concatenate([[1.0, 1.0] if e else [0.0, 1.0] for e in equal])}
  pools = []
  host._pool = lambda state, indices, step, round_, level: pools.append(indices)
  host._fill = lambda rows, pool, slots, indices, level: {"reward": np.arange(6.0)}
  _, metrics = host._refill(None, rows, 1, 0)
  assert pools == [[10 ** 9 + k for k in range(asked)]] and host.refills == asked
  assert metrics["groups/refilled"] == asked / 3 and metrics["groups/all_equal_after"] == 0.0
