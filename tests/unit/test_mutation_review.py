"""Behaviour that a mutation review (small plausible bugs applied to the objectives, the answer
judge, the data pipeline and the metrics writer) found no test guarding: each test here fails on
such a mutant and passes on the real code."""

import json
import types

import jax.numpy as jnp
import numpy as np
import pytest

from mathvlm.models.llm import LMOutput
from mathvlm.objectives import lm

V = 16


class FixedLogits:
  """A 'model' whose logits ignore the input and that has no `head_operands`: `lm.loss` then
  takes the full-logits path (`token_cross_entropy`), the one a LoRA on lm_head or a test double
  goes through."""

  def __init__(self, logits):
    self.logits = jnp.asarray(logits)

  def apply(self, input_ids, *args, **kw):
    return LMOutput(self.logits, None)


def test_lm_accuracy_on_the_full_logits_path_is_argmax_over_the_vocabulary():
  """`accuracy` of the full-logits path counts a target right when it is the argmax over the
  vocabulary at the position before it, and only at targets. The numpy checks of
  test_objectives go through our model's chunked head (`linear_ce`); on this path the metric
  was only compared between two runs, so counting the wrong tokens (`!=`) or the off-target
  positions went unnoticed, and the accuracy a LoRA-on-head run logs would be nonsense."""
  t = 5
  ids = np.array([[1, 9, 10, 11, 12], [1, 13, 14, 15, 8]], np.int32)   # targets >= t: no time index
  loss_mask = np.array([[0, 1, 1, 1, 1], [0, 1, 1, 0, 0]], np.int32)
  logits = np.zeros((2, t, V), np.float32)
  for b, p in [(0, 0), (1, 0)]:                      # 2 of the 6 targets are the argmax
    logits[b, p, ids[b, p + 1]] = 5.0
  for b, p in [(0, 1), (0, 3), (1, 1)]:
    logits[b, p, 2] = 5.0                            # a wrong token wins there (and 0 elsewhere)
  for b, p in [(1, 2), (1, 3)]:
    logits[b, p, ids[b, p + 1]] = 9.0                # off target: right, and must not count
  batch = dict(input_ids=ids, attention_mask=np.ones_like(ids), loss_mask=loss_mask)
  _, tokens, metrics = lm.loss(FixedLogits(logits), batch)
  assert float(tokens) == 6.0
  np.testing.assert_allclose(float(metrics["accuracy"]), 2 / 6, rtol=1e-6)


def _configs():
  data = types.SimpleNamespace(template="plain", max_len=32, image_aspect="pad")
  model = types.SimpleNamespace(vision=types.SimpleNamespace(image_size=28), image_token_id=63,
                                image_seq_len=4)
  return data, model


def test_text_sources_without_a_tokenizer_name_the_missing_field():
  """A text objective on built data without `data.tokenizer` stops with an error that names the
  field to set, not with an AttributeError on None deep in the source's construction."""
  data, model = _configs()
  with pytest.raises(ValueError, match="'dpo'.*data.tokenizer"):
    lm.text_source_args(None, data, model, "dpo")
  from mathvlm.objectives import contrastive
  with pytest.raises(ValueError, match="'contrastive'.*data.tokenizer"):
    contrastive.caption_source([], None, data, model)


@pytest.mark.parametrize("opts,named", [
    ({"label_smoothing": 0.5}, "label_smoothing=0.5"),
    ({"label_smoothing": -0.1}, "label_smoothing=-0.1"),
    ({"length_normalize": "yes"}, "length_normalize='yes'"),
    ({"reference": "ema"}, "reference='ema'"),
    ({"beta": 0.0}, "beta=0.0"),
])
def test_dpo_check_names_each_bad_option(opts, named):
  """Each out-of-range DPO option is named before a run starts: label_smoothing outside [0, 0.5)
  (at 0.5 the sigmoid loss is flat in the policy; above it the preference flips), a
  length_normalize that is no bool or None, an unknown reference, beta <= 0."""
  from mathvlm.objectives import dpo
  errors = dpo.check(dict(dpo.DEFAULTS, **opts))
  assert len(errors) == 1 and named in errors[0], errors


def test_dpo_check_accepts_the_edges_of_the_valid_ranges():
  """The bounds are where documented: label_smoothing 0 and 0.49, length_normalize True / False /
  None, both references."""
  from mathvlm.objectives import dpo
  for opts in ({"label_smoothing": 0.0}, {"label_smoothing": 0.49}, {"length_normalize": True},
               {"length_normalize": False}, {"reference": "data"}, {"sft_weight": 0.0}):
    assert dpo.check(dict(dpo.DEFAULTS, **opts)) == [], opts


def test_dpo_examples_need_ref_logps_only_when_the_data_carries_the_reference():
  """reference='init' computes the reference log-probs in `prepare`, so built pairs without
  `ref_logps` must pass the example check; reference='data' needs them and names the key."""
  from mathvlm.objectives import dpo
  example = dict(input_ids=0, attention_mask=0, loss_mask=0)
  dpo.check_example(example, dict(dpo.DEFAULTS, reference="init"))
  dpo.check_example(dict(example, ref_logps=0), dict(dpo.DEFAULTS, reference="data"))
  with pytest.raises(ValueError, match=r"reference='data'.*missing \['ref_logps'\]"):
    dpo.check_example(example, dict(dpo.DEFAULTS, reference="data"))


def test_dpo_a_pair_whose_chosen_row_is_empty_is_no_pair():
  """A pair counts only when both rows have target tokens: an empty chosen answer (truncated
  away) with a real rejected one must add nothing, not a preference against an empty sequence
  (log-prob 0, always 'preferred') and a share of the weight."""
  from mathvlm.objectives import dpo
  rs = np.random.RandomState(0)
  t = 8
  ids = rs.randint(1, V, (4, t)).astype(np.int32)     # rows 0-1 chosen, 2-3 rejected
  loss_mask = np.zeros((4, t), np.int32)
  loss_mask[:, 3:] = 1
  batch = dict(input_ids=ids, attention_mask=np.ones_like(ids), loss_mask=loss_mask,
               ref_logps=np.full(4, -20.0, np.float32))
  logits = rs.randn(4, t, V).astype(np.float32)
  _, weight, _ = dpo.loss(FixedLogits(logits), batch)
  assert float(weight) == 2.0
  batch["loss_mask"] = loss_mask.copy()
  batch["loss_mask"][0] = 0                          # pair 0: chosen row empty
  loss, weight, m = dpo.loss(FixedLogits(logits), batch)
  assert float(weight) == 1.0
  only = {k: v[[1, 3]] for k, v in batch.items()}    # pair 1 alone
  loss1, weight1, m1 = dpo.loss(FixedLogits(logits[[1, 3]]), only)
  assert float(weight1) == 1.0
  np.testing.assert_allclose(float(loss), float(loss1), rtol=1e-6)
  np.testing.assert_allclose(float(m["rewards/accuracy"]), float(m1["rewards/accuracy"]))


@pytest.mark.parametrize("loss_type", ["softmax", "sigmoid"])
def test_contrastive_a_batch_of_only_dropped_rows_is_a_finite_zero(loss_type):
  """A (micro-)batch whose every caption example was dropped has weight 0 and a loss of exactly
  0 with finite gradients, which the trainer's weighting then ignores; a 0 / 0 there would be a
  NaN that poisons the accumulated gradient of the whole step."""
  import jax
  from mathvlm.objectives import contrastive
  rs = np.random.RandomState(0)
  img = rs.randn(3, 8).astype(np.float32)
  txt = rs.randn(3, 8).astype(np.float32)
  img /= np.linalg.norm(img, axis=-1, keepdims=True)
  txt /= np.linalg.norm(txt, axis=-1, keepdims=True)
  valid = np.zeros(3, bool)
  if loss_type == "softmax":
    f = lambda i, t: contrastive.softmax_loss(i, t, 10.0, valid)[0]
  else:
    f = lambda i, t: contrastive.sigmoid_loss(i, t, 10.0, -10.0, valid)[0]
  value, grads = jax.value_and_grad(f, argnums=(0, 1))(img, txt)
  assert float(value) == 0.0
  assert all(np.all(np.asarray(g) == 0) for g in grads)


def test_classify_a_dropped_example_counts_for_nothing():
  """An image the input pipeline dropped carries label -1: it adds nothing to the loss, the
  accuracy or the weight, so the batch equals the batch without it (label 0 would train it as
  class 0; counting it would shrink the real examples' gradient)."""
  from mathvlm.objectives import classify
  logits = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                    np.float32)
  labels = np.array([0, 2, -1, 2], np.int32)     # rows 0 and 3 right, row 1 wrong, row 2 dropped
  model = lambda px: jnp.asarray(logits)             # any callable giving logits is a model
  without = lambda px: jnp.asarray(logits[[0, 1, 3]])
  px = np.zeros((4, 2, 2, 3), np.float32)
  loss, weight, m = classify.loss(model, dict(pixel_values=px, labels=labels))
  kept, kept_weight, kept_m = classify.loss(without, dict(pixel_values=px[:3],
                                                          labels=labels[[0, 1, 3]]))
  assert float(weight) == float(kept_weight) == 3.0
  np.testing.assert_allclose(float(loss), float(kept), rtol=1e-6)
  np.testing.assert_allclose(float(m["accuracy"]), 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(float(kept_m["accuracy"]), 2 / 3, rtol=1e-6)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  np.testing.assert_allclose(float(loss), -np.mean(logp[[0, 1, 3], [0, 2, 2]]), rtol=1e-5)
  # every example dropped: weight 0 and a finite 0
  loss, weight, m = classify.loss(model, dict(pixel_values=px, labels=np.full(4, -1, np.int32)))
  assert float(weight) == 0.0 and float(loss) == 0.0 and float(m["accuracy"]) == 0.0


@pytest.mark.parametrize("ls,ok", [(0.0, True), (0.99, True), (1.0, False), (-0.1, False)])
def test_classify_label_smoothing_range(ls, ok):
  """label_smoothing must lie in [0, 1): at 1 the target is uniform and carries no label."""
  from mathvlm.objectives import classify
  errors = classify.check(dict(label_smoothing=ls))
  if ok:
    assert errors == []
  else:
    assert len(errors) == 1 and f"label_smoothing={ls}" in errors[0], errors


def test_classify_without_a_label_field_names_it():
  """A classify run on labelled images must say which label to learn; without `data.label` it
  stops with an error naming the field (not a KeyError on '' inside the source)."""
  from mathvlm.objectives import classify
  data = types.SimpleNamespace(name="labelled", label="", num_classes=3, image_aspect="pad")
  _, model = _configs()
  with pytest.raises(ValueError, match="data.name='labelled'.*set data.label"):
    classify.label_source([], None, data, model)


# ---------------------------------------------------------------------------------------------
# eval.answers

def test_choice_letter_with_no_choices_is_none():
  """A free-form question has no option letters: `choice_letter(text, 0)` is None for any text,
  not a regular-expression error from an empty letter class."""
  from mathvlm.eval import answers
  for text in ("(A)", "B", "The answer is C.", ""):
    assert answers.choice_letter(text, 0) is None


def test_choice_text_prefers_the_longest_choice_the_text_states():
  """A choice stated verbatim wins, the longest of several ("30√3 m" over "30 m", which it
  contains); short choices (under 3 words) are found only this way, not by the word-share
  fallback."""
  from mathvlm.eval import answers
  assert answers.choice_text("so the height is 30√3 m.", ["30 m", "30√3 m", "60 m"]) == "30√3 m"
  assert answers.choice_text("It is blue", ["red", "blue"]) == "blue"
  assert answers.choice_text("It is green", ["red", "blue"]) is None


def test_stated_number_takes_the_conclusion_first_then_there_are_then_the_first_sentence():
  """Without an answer phrase a response's number is, in this order: what its concluding
  sentence states ("Therefore, the total is 7."), the first "There are N" sentence, the first
  sentence. MathVista's and MathVerse's extraction fall back on it, so the order decides scores."""
  from mathvlm.eval import answers
  assert answers.stated_number("We add 3 and 4. Therefore, the total is 7.") == "7"
  assert answers.stated_number("We add 3 and 4. Therefore, the total is 7.",
                               conclusions=False) == "3"
  assert answers.stated_number("The box has 12 sides. There are 5 apples in it.") == "5"
  assert answers.stated_number("No numbers here.") is None
  # only the first of each: a later sentence's number is no stated answer
  assert answers.stated_number("No numbers here. Then 7 came.") is None
  assert answers.stated_number("There are no apples. There are 3 pears.") is None


def test_yes_no_compares_both_sides_of_the_question_and_the_statement():
  """"Is the red bar taller than the blue bar?" answered by a statement whose comparison keeps
  the question's sides is Yes, with the sides swapped No, negated No. Both sides' shared words
  count for the statement's agreeing with the question (here each side shares "bar" with the
  other, so counting one side against the other would read the first statement as a swap)."""
  from mathvlm.eval import answers
  q = "Is the red bar taller than the blue bar?"
  assert answers.yes_no("The red bar is taller than the blue bar.", q) == "Yes"
  assert answers.yes_no("The blue bar is taller than the red bar.", q) == "No"
  assert answers.yes_no("The red bar is not taller than the blue bar.", q) == "No"
  assert answers.yes_no("The blue bar is shorter than the red bar.", q) == "Yes"


def test_math_verify_judge_answers_a_bool_when_math_verify_fails(monkeypatch):
  """math-verify's own errors (its timeouts, parse failures) make the answer wrong: the judge
  returns False itself, a bool like every judge's, not None (which a score row would write as
  null)."""
  import math_verify
  from mathvlm.eval import answers

  def broken(*args, **kwargs):
    raise TimeoutError("math-verify timed out")

  monkeypatch.setattr(math_verify, "verify", broken)
  assert answers.math_verify_correct("8√3/3", "8*sqrt(3)/3", []) is False


def test_math_verify_judge_reads_latex_written_without_dollars():
  """An extraction in LaTeX without `$` (`\\frac{1}{2}`, which sympy's reader cannot parse) is
  handed to math-verify wrapped in `$...$` and judged by value."""
  from mathvlm.eval import answers
  assert answers.math_verify_correct("\\frac{1}{2}", "1/2", []) is True
  assert answers.math_verify_correct("\\frac{1}{3}", "1/2", []) is False


def test_loose_choice_needs_each_content_word_of_the_choice_once_per_use():
  """A choice's words are matched in order, each at a later word of the text: a choice that
  repeats a word ("dog dog") needs it twice, and one mention does not state it."""
  from mathvlm.eval import answers
  assert answers.loose_choice("the dog barks", ["dog dog", "cat"]) is None
  assert answers.loose_choice("the dog and the dog bark", ["dog dog", "cat"]) == "dog dog"
  assert answers.loose_choice("plants may increase", ["plants increase", "plants decrease"]) \
      == "plants increase"


def test_unicode_roots_and_pi_become_latex():
  """`2√3`, `√{2}`, `∛(9)` and `4π` are read as LaTeX roots and pi: a bracketed argument loses
  its brackets and keeps its content (an empty root would read as a different number)."""
  from mathvlm.eval import answers
  assert answers.unicode_latex("2√3") == "2\\sqrt{3}"
  assert answers.unicode_latex("√{2}") == "\\sqrt{2}"
  assert answers.unicode_latex("∛(9)") == "\\sqrt[3]{9}"
  assert answers.unicode_latex("4π") == "4\\pi "


def test_clean_number_writes_a_leading_zero():
  """".5" and "-.5" are written "0.5" and "-0.5", the form gold answers have, so a string
  comparison (MathVista's and MathVerse's normalised answers) matches them."""
  from mathvlm.eval import answers
  assert answers.clean_number(".5") == "0.5"
  assert answers.clean_number("-.5") == "-0.5"
  assert answers.clean_number("1,000") == "1000"
  assert answers.numbers("a share of .25 and -.5") == ["0.25", "-0.5"]


# ---------------------------------------------------------------------------------------------
# data.subset

def test_read_ids_skips_blank_lines(tmp_path):
  """A selection file edited by hand or joined from pieces has blank lines (a trailing newline,
  a line of spaces between parts): they hold no selection and are skipped, not reported as a bad
  line."""
  from mathvlm.data import subset
  path = tmp_path / "selected.jsonl"
  path.write_text('{"id": "a"}\n\n   \n{"id": "img", "records": ["b", "c"]}\n\n',
                  encoding="utf-8")
  assert subset.read_ids(str(path)) == frozenset({"a", "b", "c"})


# ---------------------------------------------------------------------------------------------
# metrics

def test_metric_writer_defaults_to_a_fresh_start_and_keeps_rows_without_a_step(tmp_path):
  """A writer opened without start_step is a fresh start (step 0): rows of a killed earlier run
  go; a row that names no step counts as step 0 and stays."""
  from mathvlm import metrics
  from mathvlm.metrics import MetricWriter
  (tmp_path / "metrics.jsonl").write_text('{"note": "header"}\n{"loss": 1.0, "step": 1}\n')
  MetricWriter(str(tmp_path), tensorboard=False).close()
  assert (tmp_path / "metrics.jsonl").read_text() == '{"note": "header"}\n'
  assert metrics.rows_up_to('{"a": 1}\n{"step": 0}\n{"step": 1}\n', 0, "p") == \
      '{"a": 1}\n{"step": 0}\n'


def test_a_disabled_metric_writer_touches_nothing(tmp_path):
  """Only process 0 writes: a writer with enabled=False (every other process) creates no file,
  not even an empty metrics.jsonl or a TensorBoard folder, and its calls do nothing."""
  from mathvlm.metrics import MetricWriter
  w = MetricWriter(str(tmp_path), enabled=False)
  w.write(1, {"loss": 1.0})
  w.flush(1)
  w.close()
  assert list(tmp_path.iterdir()) == []


def _step_of(line):
  return json.loads(line)["step"]


def test_bucket_rows_are_written_out_at_flush_and_close(tmp_path):
  """A bucket's metrics.jsonl (`BucketFile`) is rewritten at most every minute while training;
  `flush(step)` (before that step's checkpoint) and `close` must write every row so far, or a
  kill after the checkpoint loses rows the resumed run never writes again."""
  from etils import epath
  from mathvlm.metrics import BucketFile, MetricWriter
  path = epath.Path(tmp_path) / "metrics.jsonl"
  w = MetricWriter(str(tmp_path), tensorboard=False)
  w.file.close()
  w.file = BucketFile(path)                       # what a gs:// workdir gets, on a local path
  w.write(1, {"loss": 1.0})                       # the first row is written at once
  w.write(2, {"loss": 2.0})                       # within the minute: kept in memory
  assert [_step_of(x) for x in path.read_text().splitlines()] == [1]
  w.flush(2)
  assert [_step_of(x) for x in path.read_text().splitlines()] == [1, 2]
  w.write(3, {"loss": 3.0})
  w.close()
  assert [_step_of(x) for x in path.read_text().splitlines()] == [1, 2, 3]


def test_flush_starts_a_new_tensorboard_file_named_for_the_step(tmp_path):
  """`flush(step)` closes TensorBoard's writer (writing its queued events) and opens a new one
  whose file name ends in `.<step>`: two event files opened in the same second would otherwise
  get one name, the second overwriting the first's events. Without TensorBoard, flush is a
  plain flush."""
  from mathvlm.metrics import MetricWriter
  w = MetricWriter(str(tmp_path), start_step=0)
  w.write(1, {"loss": 1.0})
  w.flush(1)
  w.write(2, {"loss": 2.0})
  w.close()
  names = sorted(p.name for p in (tmp_path / "tensorboard").iterdir())
  assert len(names) == 2 and sum(n.endswith(".1") for n in names) == 1, names
  (tmp_path / "plain").mkdir()
  plain = MetricWriter(str(tmp_path / "plain"), tensorboard=False)
  plain.write(1, {"loss": 1.0})
  plain.flush(1)
  plain.close()


def test_tensorboard_on_a_bucket_it_cannot_write_is_skipped_with_a_reason(caplog):
  """TensorBoard on a workdir URL tensorboardX has no writer for is skipped with one log line
  naming why (metrics.jsonl is still written), not an error that stops the run."""
  from mathvlm import metrics
  with caplog.at_level("WARNING", logger="mathvlm.train"):
    assert metrics._tensorboard("hdfs://cluster/run", start_step=0) is None
  assert "it has no writer for hdfs://" in caplog.text


# ---------------------------------------------------------------------------------------------
# data.pipeline

def _text_example(tokens, t=8):
  ex = dict(input_ids=np.zeros(t, np.int32), attention_mask=np.zeros(t, np.int32),
            loss_mask=np.zeros(t, np.int32))
  ex["input_ids"][:len(tokens)] = tokens
  ex["attention_mask"][:len(tokens)] = 1
  ex["loss_mask"][1:len(tokens)] = 1
  return ex


def test_make_dataset_rejects_a_global_batch_the_processes_cannot_split():
  """Each process takes global_batch / process_count rows of every step: a remainder would
  leave rows no process feeds, so the pipeline refuses it and names both numbers."""
  from mathvlm.data import pipeline
  source = [_text_example([1, 2, 3]) for _ in range(12)]
  with pytest.raises(ValueError, match="global batch 6 is not divisible by 4 processes"):
    pipeline.make_dataset(source, global_batch=6, seed=0, process_count=4)


class _Device:
  def __init__(self, process_index):
    self.process_index = process_index


def _mesh(shape, processes):
  """A stand-in mesh: axes (data, fsdp, tensor), device k on process processes[k]."""
  devices = np.array([_Device(p) for p in processes], dtype=object).reshape(shape)
  return types.SimpleNamespace(devices=devices, axis_names=("data", "fsdp", "tensor"))


def test_check_process_rows_refuses_a_batch_shard_on_two_processes():
  """`ProcessRows` gives each process rows of its own, so every (data, fsdp) batch shard must lie
  on one process: tensor parallelism across processes would feed its halves different rows
  (and a silently smaller global batch). A mesh that keeps tensor within a process passes."""
  from mathvlm.data import pipeline
  pipeline.check_process_rows(_mesh((2, 1, 2), [0, 0, 1, 1]))     # tensor inside a process
  pipeline.check_process_rows(_mesh((1, 2, 2), [0, 0, 1, 1]))
  with pytest.raises(ValueError, match=r"data=0, fsdp=0 lies on processes \[0, 1\]"):
    pipeline.check_process_rows(_mesh((2, 1, 2), [0, 1, 0, 1]))   # tensor across processes


def test_local_bucket_is_the_smallest_bucket_holding_the_longest_row():
  """Padding is cut to the smallest bucket that holds this process's longest row (over every
  micro-batch), the largest bucket when none does."""
  from mathvlm.data import pipeline
  mask = np.zeros((2, 3, 16), np.int32)                # [micro-batches, rows, T]
  mask[0, 1, :5] = 1
  mask[1, 2, :9] = 1
  assert pipeline.local_bucket({"attention_mask": mask}, (16, 8, 12)) == 12
  mask[1, 2, :] = 1
  assert pipeline.local_bucket({"attention_mask": mask}, (8, 12)) == 12


def test_pack_row_leaves_its_examples_untouched():
  """Packing copies the first example's arrays before laying the others over them: the
  examples themselves (which a source may cache and hand out again) stay as they were."""
  from mathvlm.data import pipeline
  a, b = _text_example([1, 5, 6]), _text_example([1, 7])
  before = {k: v.copy() for k, v in a.items()}
  row = pipeline.pack_row([a, b], [3, 2])
  np.testing.assert_array_equal(row["input_ids"], [1, 5, 6, 1, 7, 0, 0, 0])
  np.testing.assert_array_equal(row["segment_ids"], [1, 1, 1, 2, 2, 0, 0, 0])
  for k in before:
    np.testing.assert_array_equal(a[k], before[k], err_msg=k)


def test_trained_example_drops_only_the_drop_reason():
  """The step sees an example without its `DROPPED` field and with everything else; with
  packing a `segment_ids` row (one segment over the tokens)."""
  from mathvlm.data import pipeline
  ex = dict(_text_example([1, 5, 6]), **{pipeline.DROPPED: np.asarray("")})
  out = pipeline.trained_example(ex, packing=False)
  assert sorted(out) == ["attention_mask", "input_ids", "loss_mask"]
  out = pipeline.trained_example(ex, packing=True)
  assert sorted(out) == ["attention_mask", "input_ids", "loss_mask", "segment_ids"]
  np.testing.assert_array_equal(out["segment_ids"], [1, 1, 1, 0, 0, 0, 0, 0])


def test_a_packed_iterator_restored_before_its_first_batch_starts_at_the_beginning():
  """The state of a fresh packed iterator (saved by a checkpoint at step 0) is the stream's
  start: restoring it gives the same first batch."""
  import grain
  from mathvlm.data import pipeline
  source = [_text_example([1] + [10 + i] * (1 + i % 3)) for i in range(12)]
  ds = pipeline.PackedBatches(grain.MapDataset.source(source).to_iter_dataset(), 2, 63)
  it = iter(ds)
  state = it.get_state()
  first = next(it)
  next(it)
  it.set_state(state)
  again = next(it)
  for k in first:
    np.testing.assert_array_equal(again[k], first[k], err_msg=k)


def test_augment_passes_a_text_only_example_through():
  """data.augment on a mixture with text-only examples (no `pixel_values`) leaves those as they
  are: augmenting images must not fail on an example that has none."""
  from mathvlm.data import pipeline
  ex = _text_example([1, 5, 6])
  out = pipeline.Augment({"blur": 1.0}, seed=0, num_records=4)(5, ex)
  assert out is ex
