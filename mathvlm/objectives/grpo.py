"""GRPO (DeepSeekMath, arXiv 2402.03300) and its variants, Dr. GRPO (arXiv 2503.20783) and DAPO
(arXiv 2503.14476): reinforcement learning with verifiable rewards.

A step has three parts, kept apart as Tunix's GRPO keeps rollout, reward and learner apart:
1. rollout and reward, on the host (`mathvlm.rl.Rollouts`): each prompt is answered G times by the
   current policy with the KV-cache sampler, every answer is judged (`mathvlm.rl.rewards`), and
   the group-relative advantages below are computed; the rows that reach the step are
   prompt + answer, with `loss_mask` on the answer's tokens;
2. `prepare` (in the jitted step, outside the gradient): the old policy's and the frozen
   reference's per-token log-probs of those rows;
3. the loss below, optimised for `passes` updates on the same rollouts (the old log-probs stay
   those of the policy that sampled them, so the ratio moves away from 1 after the first pass).

Per answer token t of answer i: rho = pi/pi_old, the clipped surrogate
min(rho A_i, clip(rho, 1 - eps_low, 1 + eps_high) A_i) (clip-higher: eps_high > eps_low, DAPO),
minus beta times the k3 estimate of KL(pi || pi_ref) = pi_ref/pi - log(pi_ref/pi) - 1. The loss is
its negative, aggregated by `aggregation`:
- 'sequence' (GRPO): the mean over each answer's tokens, then over answers;
- 'token' (DAPO): the sum over all answer tokens of the batch, divided by their number;
- 'constant' (Dr. GRPO): the sum over each answer's tokens divided by a constant
  (`max_new_tokens`), then the mean over answers.
Advantages: (r_i - mean(r)) / (std(r) + eps) over the G answers of one prompt (GRPO, DAPO), or
r_i - mean(r) (Dr. GRPO: `scale_rewards=False`). A group whose rewards are all equal has zero
advantages, so with beta = 0 it contributes no gradient (DAPO's dynamic sampling replaces such
groups, or with `filter_metric='correct'` the groups all right or all wrong, as DAPO filters on
accuracy; `mathvlm.rl`).

Where the open implementations (TRL's GRPOTrainer, verl, Tunix) differ, the choices here:
- log-probs (old, current, reference) are the model's own, at temperature 1, while rollouts
  sample at `temperature` (and `top_p`). TRL and verl divide the logits by the sampling
  temperature before the log-softmax, so their ratio, clip range, KL and gradient are those of
  the tempered policy; at the default temperature 1.0 the two agree;
- std(r) is the population std (ddof 0, numpy's default); TRL and verl use torch's unbiased std,
  whose advantages are sqrt((G - 1) / G) times these (0.94 at G = 8): a rescaling of the step;
  and it adds 1e-6 to std(r) where TRL adds 1e-4 (a relative difference of about 1e-4 / std(r));
- the k3 term is not clamped (TRL's is not; verl's low_var_kl clamps it to [-10, 10]);
- an answer cut at `max_new_tokens` without EOS is trained on like any other (its reward usually
  0 or penalised by `length` or `overlong`; the built-in rewards count its answer only where it
  states one, `mathvlm.rl.rewards`); DAPO's overlong filtering, TRL's
  mask_truncated_completions, would drop it from the loss;
- the EOS token is a target (TRL's completion mask includes it), tokens after it are not;
- with beta = 0 there is no reference and no KL term in the loss (0 times a k3 that overflows,
  a token's log-prob 89 below its old one on a later pass, was NaN), and the logged `kl` is the
  k3 estimate against the old policy instead (0 on the first pass);
- with passes = 1 the old log-probs are computed anyway (one forward of the policy), which TRL
  skips (rho is 1 there by construction); here a one-pass step logs `ratio` 1 up to rounding.
"""

from __future__ import annotations

import ast
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mathvlm import flops
from mathvlm.objectives import lm
from mathvlm.objectives.base import Objective

Array = jax.Array

AGGREGATIONS = ("sequence", "token", "constant")
# what dynamic sampling finds equal across a group: its total reward (ours), or whether each
# answer is right (DAPO's accuracy filter; verl's `algorithm.filter_groups.metric=acc`)
FILTER_METRICS = ("reward", "correct")
# refill rounds a step may sample: the rollouts' seed gives each (step, round) its own key, steps
# MAX_REFILLS + 1 apart (`mathvlm.rl.rollouts._seed`), so a later round would reuse the next step's
MAX_REFILLS = 100


def group_advantages(rewards: np.ndarray, group: int, scale: bool = True,
                     eps: float = 1e-6) -> np.ndarray:
  """[rows] rewards of consecutive groups of `group` answers -> [rows] advantages."""
  r = np.asarray(rewards, np.float64).reshape(-1, group)
  adv = r - r.mean(axis=1, keepdims=True)
  if scale:
    adv = adv / (r.std(axis=1, keepdims=True) + eps)
  return adv.reshape(-1).astype(np.float32)


def token_logps(model, batch: dict[str, Array]) -> Array:
  """[rows, T] log-probability of each token given the ones before it (0 where not a target);
  position t holds token t's, so it lines up with `loss_mask`. Through `lm.target_logps`, as the
  LM and DPO objectives: only the answers' positions go through the output layer, a chunk at a
  time (`mathvlm.models.linear_ce`), never the [rows, T, vocab] float32 logits of every prompt
  position, which a step would otherwise make three times (old, reference, learner)."""
  logp, _, _ = lm.target_logps(model, batch)
  return jnp.pad(logp, ((0, 0), (1, 0)))


def per_token_terms(logps: Array, old_logps: Array, ref_logps: Array, advantages: Array,
                    eps_low: float, eps_high: float, beta: float):
  """(per-token loss, clipped?, kl), each [rows, T], before masking."""
  ratio = jnp.exp(logps - old_logps)
  adv = advantages[:, None]
  unclipped = ratio * adv
  clipped = jnp.clip(ratio, 1 - eps_low, 1 + eps_high) * adv
  surrogate = jnp.minimum(unclipped, clipped)
  log_ref_ratio = ref_logps - logps
  kl = jnp.exp(log_ref_ratio) - log_ref_ratio - 1
  if not beta:  # no KL term (DAPO, Dr. GRPO): kl is only logged, and 0 * inf would be NaN
    return -surrogate, (clipped < unclipped), kl
  return -(surrogate - beta * kl), (clipped < unclipped), kl


def aggregate(per_token: Array, mask: Array, aggregation: str, constant: float):
  """(loss, weight): the weight combines micro-batches and processes into the same aggregate."""
  mask = mask.astype(jnp.float32)
  counts = jnp.sum(mask, axis=1)
  rows = jnp.float32(per_token.shape[0])
  if aggregation == "token":
    tokens = jnp.sum(counts)
    return jnp.sum(per_token * mask) / jnp.maximum(tokens, 1.0), tokens
  if aggregation == "sequence":
    per_row = jnp.sum(per_token * mask, axis=1) / jnp.maximum(counts, 1.0)
  else:
    per_row = jnp.sum(per_token * mask, axis=1) / constant
  return jnp.mean(per_row), rows


def metric_tokens(batch: dict[str, Array], mask: Array, aggregation: str) -> Array:
  """The denominator of the token means logged (kl, ratio, clip_fraction, ...), such that the
  trainer's combination of micro-batches (grad_accum), a mean weighted by the loss's weight, is
  the token mean of the whole batch. With 'token' the weight is a micro-batch's answer tokens, so
  its own count does. With 'sequence' and 'constant' the weight is its answers: a mean of token
  means weighted by answers is not the batch's token mean when micro-batches' answers differ in
  length, so each row carries the batch's mean answer length (`prepare`'s
  `mean_answer_tokens`) and n rows divide by n times it. Without that key (the loss called on a
  batch alone), its own count."""
  if aggregation == "token" or "mean_answer_tokens" not in batch:
    return jnp.maximum(jnp.sum(mask), 1.0)
  return jnp.maximum(jnp.sum(jnp.asarray(batch["mean_answer_tokens"], jnp.float32)), 1e-9)


def loss(model, batch: dict[str, Array], cfg: Any = None):
  """The GRPO loss of rows prompt + answer with `old_logps`, `ref_logps` [rows, T] and
  `advantages` [rows]; weight by the aggregation (answers, or answer tokens for 'token')."""
  o = OBJECTIVE.options(cfg)
  mask = lm.target_mask(batch)
  logps = token_logps(model, batch)
  old = jax.lax.stop_gradient(jnp.asarray(batch["old_logps"], jnp.float32))
  ref = jax.lax.stop_gradient(jnp.asarray(batch["ref_logps"], jnp.float32))
  adv = jax.lax.stop_gradient(jnp.asarray(batch["advantages"], jnp.float32))
  per_token, clipped, kl = per_token_terms(logps, old, ref, adv, o["eps_low"], o["eps_high"],
                                           o["beta"])
  value, weight = aggregate(per_token, mask, o["aggregation"], float(o["max_new_tokens"]))
  m = mask.astype(jnp.float32)
  tokens = metric_tokens(batch, m, o["aggregation"])
  probs = jnp.exp(logps)
  metrics = {
      "loss": value,
      "kl": jnp.sum(kl * m) / tokens,
      "clip_fraction": jnp.sum(clipped * m) / tokens,
      "ratio": jnp.sum(jnp.exp(logps - old) * m) / tokens,
      # a one-sample estimate of the policy's entropy at the sampled tokens: -log pi
      "entropy": -jnp.sum(logps * m) / tokens,
      "answer_prob": jnp.sum(probs * m) / tokens,
  }
  return value, weight, jax.tree.map(jax.lax.stop_gradient, metrics)


# ---------------------------------------------------------------------------------------------
# What the trainer needs beyond the loss.

DEFAULTS = dict(
    group=8,                 # G answers per prompt (VLM-R1, R1-V, MM-Eureka: 8)
    temperature=1.0,         # sampling temperature of the rollouts (the VLM recipes' 1.0)
    top_p=1.0,
    max_new_tokens=64,       # answer length; also Dr. GRPO's constant
    eps_low=0.2,             # PPO/GRPO clip range; DAPO: 0.2 low ...
    eps_high=0.2,            # ... 0.28 high (clip-higher)
    beta=0.04,               # KL weight (DeepSeekMath 0.04; 0 allowed: no reference kept)
    aggregation="sequence",  # sequence (GRPO) | token (DAPO) | constant (Dr. GRPO)
    scale_rewards=True,      # divide advantages by the group's std (GRPO); Dr. GRPO: False
    passes=1,                # optimisation passes over one rollout batch
    dynamic_sampling=False,  # DAPO: replace groups all equal (in filter_metric)
    max_refills=4,           # ... at most this many extra rollouts per step (<= MAX_REFILLS)
    filter_metric="reward",  # ... replacing groups equal in: reward (ours) | correct (DAPO)
    rewards="answer=1.0,format=0.1",  # name=weight: answer, exact_answer, format, length,
                                      # overlong, consistency, or a function by import path:
                                      # "pkg.mod:fn=0.5"
    length_target=0,         # the length reward's free length in tokens: with `length` among
                             # the rewards, 0 < length_target < max_new_tokens
    overlong_buffer=0,       # DAPO's L_cache, the overlong reward's ramp in tokens: with
                             # `overlong` among the rewards, 0 < overlong_buffer <= max_new_tokens
    problems="",             # rollout prompts on the fly: "module:factory" (the engine's stream)
    problem_options="",      # ... its keyword arguments: "mc=0.5,workers=2,levels=[1, 2]"
                             # (Python literals, else strings)
    curriculum=True,         # adapt the stream's difficulty to the running pass rate
    curriculum_min_steps=5,  # ... measuring at least this many steps at a level before moving
                             # (ours: the running rate's window, 1 / (1 - momentum 0.8))
    version="text_lite",     # the question version rollouts answer (MAVIS's instruction tuning)
    consistency=False,       # groups mix one problem's three question versions instead
)


def check(o) -> list[str]:
  errors = []
  if o["aggregation"] not in AGGREGATIONS:
    errors.append(f"grpo.aggregation={o['aggregation']!r}: one of {AGGREGATIONS}")
  if o["group"] < 2:
    errors.append(f"grpo.group={o['group']}: group-relative advantages need at least 2 answers")
  if not 0 <= o["eps_low"] < 1 or o["eps_high"] < 0:
    errors.append(f"grpo.eps_low={o['eps_low']}, eps_high={o['eps_high']}: 0 <= eps_low < 1, "
                  "eps_high >= 0")
  if o["beta"] < 0:
    errors.append(f"grpo.beta={o['beta']}: >= 0 (0: no KL term, no reference model)")
  if o["temperature"] <= 0 or not 0 < o["top_p"] <= 1:
    errors.append(f"grpo.temperature={o['temperature']}, top_p={o['top_p']}: rollouts sample "
                  "(temperature > 0, 0 < top_p <= 1)")
  if o["filter_metric"] not in FILTER_METRICS:
    errors.append(f"grpo.filter_metric={o['filter_metric']!r}: one of {FILTER_METRICS} (what "
                  "dynamic sampling finds equal across a group: its total reward, or whether "
                  "each answer is right, DAPO's)")
  if not 0 <= o["max_refills"] <= MAX_REFILLS:
    errors.append(f"grpo.max_refills={o['max_refills']}: 0..{MAX_REFILLS} (each refill round "
                  "samples with a seed of its own within the step)")
  if not (isinstance(o["curriculum_min_steps"], int) and o["curriculum_min_steps"] >= 1):
    errors.append(f"grpo.curriculum_min_steps={o['curriculum_min_steps']!r}: an integer >= 1, the "
                  "steps measured at a level before it may move (1: the next step's batch alone)")
  if o["passes"] < 1 or o["max_new_tokens"] < 1:
    errors.append(f"grpo.passes={o['passes']}, max_new_tokens={o['max_new_tokens']}: >= 1")
  try:
    keyword_options(o["problem_options"])
  except ValueError as e:
    errors.append(str(e))
  errors += length_reward_errors(o) + overlong_reward_errors(o)
  return errors


def reward_terms(spec: str) -> list[tuple[str, str]]:
  """"answer=1.0,format=0.1,pkg.mod:fn=0.5" -> [(name, weight as written)]; a bare name weighs
  "1". The split only: `mathvlm.rl.rewards.parse` reads the weights and checks the names."""
  out = []
  for part in filter(None, (p.strip() for p in spec.split(","))):
    name, _, weight = part.rpartition("=") if "=" in part else (part, "", "1")
    out.append((name.strip(), weight))
  return out


def length_reward_errors(o) -> list[str]:
  """The length reward penalises tokens past length_target; at or past max_new_tokens (0 was
  taken as max_new_tokens) no answer can pass it, and the reward is a constant 0. A target
  without the reward would shape nothing, unsaid (as `overlong_reward_errors`)."""
  names = [name for name, _ in reward_terms(str(o["rewards"]))]
  if "length" in names and not 0 < o["length_target"] < o["max_new_tokens"]:
    return [f"grpo.length_target={o['length_target']} with the length reward in grpo.rewards: "
            f"it must be in (0, max_new_tokens={o['max_new_tokens']}), the free length before "
            "the penalty starts; else the reward never penalises anything"]
  if "length" not in names and o["length_target"]:
    return [f"grpo.length_target={o['length_target']!r} but grpo.rewards={o['rewards']!r} has no "
            "length reward: add one (e.g. length=0.5) or leave length_target at 0"]
  return []


def overlong_reward_errors(o) -> list[str]:
  """DAPO's overlong reward ramps from 0 to -1 over the last overlong_buffer tokens before
  max_new_tokens: with no buffer there is no ramp, with one past max_new_tokens the ramp would
  start before the answer does. A buffer without the reward would act on nothing, unsaid."""
  names = [name for name, _ in reward_terms(str(o["rewards"]))]
  buffer, most = o["overlong_buffer"], o["max_new_tokens"]
  if "overlong" in names and not (isinstance(buffer, int) and 0 < buffer <= most):
    return [f"grpo.overlong_buffer={buffer!r} with the overlong reward in grpo.rewards: it must "
            f"be an integer in (0, max_new_tokens={most}], the tokens before max_new_tokens over "
            "which the penalty grows from 0 to -1 (DAPO's L_cache)"]
  if "overlong" not in names and buffer:
    return [f"grpo.overlong_buffer={buffer!r} but grpo.rewards={o['rewards']!r} has no overlong "
            "reward: add one (e.g. overlong=1.0) or leave overlong_buffer at 0"]
  return []


def keyword_options(text: str) -> dict:
  """"mc=0.5,workers=2,domain='plane',levels=[1, 2]" -> {"mc": 0.5, "workers": 2, "domain":
  "plane", "levels": [1, 2]}: values are Python literals, or else taken as strings
  (domain=plane, steps=1:6). Entries are split at the commas outside brackets and quotes, so a
  list, tuple or dict value keeps its own; a bracketed value that is no literal is an error,
  not a string (`levels=[plane, solid]` would reach the stream as the text "[plane, solid]")."""
  out = {}
  for part in filter(None, (p.strip() for p in _entries(text))):
    key, eq, value = part.partition("=")
    if not eq or not key.strip().isidentifier():
      raise ValueError(f"grpo.problem_options entry {part!r}: expected name=value")
    try:
      out[key.strip()] = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      if value.strip().startswith(("(", "[", "{")):
        raise ValueError(f"grpo.problem_options entry {part!r}: a bracketed value must be a "
                         "Python literal; quote its strings (e.g. ['plane', 'solid'])") from None
      out[key.strip()] = value.strip()
  return out


def _entries(text: str) -> list[str]:
  """`text` split at its commas outside brackets and quotes; a quote counts inside brackets or
  where it opens a value, so an apostrophe in a plain string (name=O'Neil) is text, as it was."""
  parts, depth, quote, start = [], 0, "", 0
  for i, ch in enumerate(text):
    if quote:
      quote = "" if ch == quote else quote
    elif ch in "'\"" and (depth or text[start:i].rstrip().endswith("=")):
      quote = ch
    elif ch in "([{" or ch in ")]}":
      depth += 1 if ch in "([{" else -1
    elif ch == "," and depth == 0:
      parts, start = parts + [text[start:i]], i + 1
    if depth < 0:
      break
  if depth or quote:
    raise ValueError(f"grpo.problem_options {text!r}: a bracket or quote is not closed (or "
                     "closed twice)")
  return parts + [text[start:]]


def reference_copy(params, opts) -> dict:
  """beta > 0: the starting policy, frozen, for the KL term."""
  return {"ref_params": jax.tree.map(jnp.copy, params)} if opts["beta"] > 0 else {}


def old_and_reference_logps(model_of, state, batch, opts):
  """Per-token log-probs of the rollouts under the policy that sampled them (the parameters at the
  start of this step) and under the reference, before any update; and, per row, the whole batch's
  mean answer length, which the logged token means divide by (`metric_tokens`)."""
  old = jax.lax.stop_gradient(token_logps(model_of(state["params"]), batch))
  ref = (jax.lax.stop_gradient(token_logps(model_of(state["ref_params"]), batch))
         if opts["beta"] > 0 else old)
  mask = lm.target_mask(batch).astype(jnp.float32)
  mean = jnp.full(mask.shape[:1], jnp.sum(mask) / mask.shape[0], jnp.float32)
  return dict(batch, old_logps=old, ref_logps=ref, mean_answer_tokens=mean), {}


def step_flops(model_cfg, batch_shapes, trainable, opts) -> float:
  """`passes` updates (forward + backward each), `prepare`'s forward of the old policy and, with
  beta > 0, the reference's; the rollouts' decoding is not counted."""
  forwards = 1 + (opts["beta"] > 0)
  return (opts["passes"] * flops.lm_step(model_cfg, batch_shapes, trainable)
          + forwards * flops.lm_step(model_cfg, batch_shapes, {}))


OBJECTIVE = Objective(
    name="grpo", family="llava", loss=loss, example="lm", flops=step_flops,
    batch_keys=("input_ids", "attention_mask", "loss_mask", "old_logps", "ref_logps",
                "advantages"),
    defaults=DEFAULTS, check=check, extra_state=reference_copy, prepare=old_and_reference_logps,
    check_example=lambda example, opts: None, host_step="mathvlm.rl.rollouts:Rollouts",
    updates_per_step=lambda opts: opts["passes"], rows_per_example=lambda opts: opts["group"])
