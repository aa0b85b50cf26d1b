"""Behaviour that a third mutation review (small plausible bugs applied to the sharding table and
mesh, the model folder's recorded inputs and the GRPO rollouts' pure helpers) found no test
guarding: each test here fails on such a mutant and passes on the real code. Tiny inputs only:
the whole file runs in seconds, on one CPU device."""

import dataclasses
import inspect
import json
import logging
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AbstractMesh, PartitionSpec

from mathvlm import checkpoint, sharding
from mathvlm.rl import rollouts as RO


TRAINED_INPUTS = {"template": "plain", "image_aspect": "crop"}


def _one_device_mesh():
  return sharding.make_mesh(1, 1, 1, jax.devices()[:1])


def test_no_mesh_leaves_the_function_as_it_is():
  """A model on one device (mesh None) traces fn itself; wrapping it anyway would enter a table
  with no mesh, and the layers' first `constrain` would fail on it."""
  def fn(x):
    return x
  assert sharding.traced_with_activation_sharding(fn, None) is fn


def test_a_mesh_makes_every_trace_constrain_by_the_table():
  """With a mesh the wrapped function runs inside the table (the trainer's step relies on it:
  without it `constrain` did nothing in training)."""
  seen = []
  traced = sharding.traced_with_activation_sharding(
      lambda x: seen.append(sharding._ACTIVATIONS.get()) or x, _one_device_mesh())
  traced(1)
  assert seen[0] is not None and seen[0][1] == sharding.DEFAULT_RULES
  assert sharding._ACTIVATIONS.get() is None  # left on return


def test_constrain_outside_a_table_returns_the_array_untouched():
  """A converter, a test or a single-device forward calls the layers with no table active."""
  x = jnp.ones((2, 3))
  assert sharding.constrain(x, "activation_batch", "activation_embed") is x


def test_constrain_names_a_rank_mismatch():
  x = jnp.ones((2, 3))
  with sharding.activation_sharding(_one_device_mesh()):
    with pytest.raises(ValueError, match="1 axis names .* rank 2"):
      sharding.constrain(x, "activation_batch")


@pytest.mark.parametrize("sizes,count,message", [
    ((-1, -1, 1), 4, "at most one mesh axis may be -1"),
    ((2, 4, 1), 16, "mesh data=2 fsdp=4 tensor=1 needs 8 devices, have 16"),
    ((2, 2, 1), 2, "needs 4 devices, have 2"),
])
def test_a_mesh_the_devices_cannot_fill_is_named(sizes, count, message):
  with pytest.raises(ValueError, match=message):
    sharding.mesh_sizes(*sizes, count)


@pytest.mark.parametrize("sizes,count,filled", [
    ((1, -1, 2), 8, (1, 4, 2)),
    ((-1, 2, 1), 2, (1, 2, 1)),
    ((2, 2, 1), 4, (2, 2, 1)),
])
def test_the_one_minus_one_takes_the_devices_left(sizes, count, filled):
  """The config's batch check and the mesh both read these sizes (`mesh_sizes`' docstring)."""
  assert sharding.mesh_sizes(*sizes, count) == filled


def test_devices_the_known_sizes_do_not_divide_are_named_as_such():
  with pytest.raises(ValueError, match=r"8 devices do not divide into mesh \[1, -1, 3\]"):
    sharding.mesh_sizes(1, -1, 3, 8)


def test_the_mesh_spreads_fsdp_over_every_device_by_default():
  """`make_mesh()` with no sizes: pure FSDP over all devices (a default of 1 would need exactly
  one device, and one CPU device cannot tell the two apart)."""
  assert inspect.signature(sharding.make_mesh).parameters["fsdp"].default == -1
  assert tuple(sharding.make_mesh(devices=jax.devices()[:1]).shape.values()) == (1, 1, 1)
  assert tuple(sharding.make_mesh().shape.values()) == (1, len(jax.devices()), 1)


def test_a_state_is_placed_by_each_variables_names_and_the_rest_replicated():
  """The trainer's state: named parameters by the table, unnamed ones and bare leaves (a step
  count) whole on each device; named dimensions past the names replicated too."""
  mesh = AbstractMesh((1, 2, 2), sharding.MESH_AXES)
  state = nnx.State({
      "w": nnx.Param(jax.ShapeDtypeStruct((4, 8, 3), jnp.float32), out_sharding=("vocab", "embed"),
                     eager_sharding=False),
      "bare": nnx.Param(jax.ShapeDtypeStruct((2, 3), jnp.float32), eager_sharding=False),
      "step": jax.ShapeDtypeStruct((), jnp.int32)})
  placed = sharding.state_shardings(state, mesh)
  assert placed["w"].get_value().spec == PartitionSpec("tensor", "fsdp", None)
  assert placed["bare"].get_value().spec == PartitionSpec(None, None)
  assert placed["step"].spec == PartitionSpec()


def test_a_malformed_rule_is_one_error_line_not_a_crash():
  rules = sharding.DEFAULT_RULES + (("mlp", "tensor", "extra"),)
  errors = sharding.rule_errors(rules)
  assert len(errors) == 1 and "expected (logical name, mesh axis" in errors[0]


def test_an_unknown_mesh_axis_in_a_tuple_and_a_missing_name_are_named():
  rules = tuple(r for r in sharding.DEFAULT_RULES if r[0] not in ("layers", "norm"))
  errors = sharding.rule_errors(rules + (("norm", ("data", "bogus")),))
  assert len(errors) == 2 and "mesh axes ['bogus'] are not in" in errors[0]
  assert "leaves out ['layers']" in errors[1] and "e.g. ('layers', None)" in errors[1]
  assert "e.g. ('layers', None)" in sharding.missing_rule_errors(rules)[0]  # the first missing


def test_a_name_mapped_twice_is_named_among_well_formed_rules():
  errors = sharding.rule_errors(sharding.DEFAULT_RULES + (("mlp", None),))
  assert len(errors) == 1 and "maps 'mlp' twice" in errors[0]


# ---------------------------------------------------------------------------------------------
# The model folder: its config reader and the tokenizer copied beside it.

@dataclasses.dataclass(frozen=True)
class _Inner:
  sizes: tuple = ()


@dataclasses.dataclass(frozen=True)
class _Outer:
  width: int = 1
  inner: _Inner = _Inner()


def test_a_checkpoint_config_with_an_unknown_field_is_refused_by_name():
  """A field this code does not have (a newer or hand-edited config.json) would otherwise be
  dropped, and the model rebuilt without it."""
  cfg = checkpoint.config_from_dict(_Outer, {"width": 2, "inner": {"sizes": [[1, 2], 3]}})
  assert cfg == _Outer(2, _Inner(((1, 2), 3)))
  with pytest.raises(checkpoint.CheckpointError, match=r"unknown _Outer fields .*\['depth'\]"):
    checkpoint.config_from_dict(_Outer, {"width": 2, "depth": 3})


def test_a_folder_that_is_not_a_mathvlm_model_is_named_as_such(tmp_path):
  """A Hugging Face folder has a config.json too: `is_model_dir` tells the two apart (the
  commands then load it with hf), and reading it as ours says what it is."""
  assert not checkpoint.is_model_dir(tmp_path)  # no config.json at all
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
  assert not checkpoint.is_model_dir(tmp_path)
  (tmp_path / "ours").mkdir()
  (tmp_path / "ours" / "config.json").write_text(json.dumps({"format": "mathvlm"}))
  assert checkpoint.is_model_dir(tmp_path / "ours")
  with pytest.raises(checkpoint.CheckpointError, match="not a mathvlm checkpoint config"):
    checkpoint.read_model_config(tmp_path)


def test_a_run_records_the_input_settings_its_data_config_has():
  data = {"template": "plain", "image_aspect": "crop", "seq_len": 64}
  assert checkpoint.inputs_of(types.SimpleNamespace(data=data)) == TRAINED_INPUTS
  assert checkpoint.inputs_of(types.SimpleNamespace(data={"template": "plain"})) == {
      "template": "plain"}


def test_following_the_record_is_said_and_a_default_is_silent(caplog):
  """The record overriding a command's default changes what the model is fed: the log names it."""
  with caplog.at_level(logging.INFO, logger=checkpoint.log.name):
    assert checkpoint.input_setting("template", None, {"template": "plain"}, "vicuna_v1",
                                    "m") == "plain"
    assert "m: template=plain, as the model was trained" in caplog.text
    caplog.clear()
    assert checkpoint.input_setting("template", None, {}, "vicuna_v1", "m") == "vicuna_v1"
    assert checkpoint.input_setting("template", "plain", {}, "vicuna_v1", "m") == "plain"
  assert not caplog.text  # nothing recorded: no mismatch to name


def test_the_tokenizer_is_copied_beside_the_model_and_no_source_copies_nothing(tmp_path,
                                                                               monkeypatch):
  """No source (a run given no tokenizer) copies nothing, even from a working directory that
  holds a tokenizer.json; a file source lands as the folder's tokenizer.json."""
  (tmp_path / "tok.json").write_text("{}")
  assert checkpoint.copy_tokenizer(str(tmp_path / "tok.json"), tmp_path / "m") == [
      "tokenizer.json"]
  assert (tmp_path / "m" / "tokenizer.json").read_text() == "{}"
  # again into the same folder (a re-export), and into one whose parents do not exist yet
  assert checkpoint.copy_tokenizer(str(tmp_path / "tok.json"), tmp_path / "m") == [
      "tokenizer.json"]
  assert checkpoint.copy_tokenizer(str(tmp_path / "tok.json"), tmp_path / "a" / "b") == [
      "tokenizer.json"]
  (tmp_path / "tokenizer.json").write_text("{}")
  (tmp_path / "special_tokens_map.json").write_text("[]")
  assert checkpoint.copy_tokenizer(str(tmp_path), tmp_path / "f") == [
      "tokenizer.json", "special_tokens_map.json"]  # a folder: the files it has
  monkeypatch.chdir(tmp_path)
  assert checkpoint.copy_tokenizer("", tmp_path / "none") == []
  assert checkpoint.copy_tokenizer("org/hub-id", tmp_path / "none") == []  # nothing on disk
  assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------------------------------------
# The GRPO rollouts' pure helpers.

def test_a_problem_is_read_with_its_first_image_as_bytes():
  problem = types.SimpleNamespace(pid="p", query="q", images=["a.png", "b.png"], answer="1",
                                  choices=None, meta={"group": "g", "version": "v"})
  row = RO._as_dict(problem, {"a.png": b"A", "b.png": b"B"})
  assert row["image"] == b"A" and row["id"] == "p" and row["group"] == "g"
  assert RO._as_dict(types.SimpleNamespace(**{**vars(problem), "images": []}), {})["image"] is None


def test_bucket_is_the_next_power_of_two_at_least_n():
  assert [RO._bucket(n) for n in (0, 1, 2, 3, 4, 5, 8, 9)] == [1, 1, 2, 4, 4, 8, 8, 16]


def test_informative_groups_come_first_in_sampled_order():
  equal = np.array([True, False, True, False, False])
  assert RO._informative_first(equal).tolist() == [1, 3, 4, 0, 2]


def test_replaced_groups_land_in_their_slots_and_the_rows_given_are_not_changed():
  rows = {"r": np.arange(6), "ids": ["a", "b", "c", "d", "e", "f"]}
  new = {"r": np.array([10, 11, 12, 13]), "ids": ["w", "x", "y", "z"]}
  out = RO._replace_groups(rows, new, np.array([2, 0]), group=2)
  assert out["r"].tolist() == [12, 13, 2, 3, 10, 11]
  assert out["ids"] == ["y", "z", "c", "d", "w", "x"]
  assert rows["r"].tolist() == list(range(6)) and rows["ids"][0] == "a"


def test_an_answers_length_counts_its_first_eos_and_a_cut_answer_is_unfinished():
  assert RO._length(np.array([5, 6, 2, 0, 2]), (2, 3), 0) == 3
  assert RO._length(np.array([5, 3, 2]), (2, 3), 0) == 2
  assert RO._length(np.array([5, 6, 7]), (2,), 0) == 3
  tokens = np.array([[5, 2, 0], [5, 6, 7], [3, 0, 0]])
  assert RO._finished(tokens, (2, 3)).tolist() == [True, False, True]


def test_the_seed_of_a_round_is_the_documented_mix_of_seed_step_and_round():
  assert RO._seed(0, 0, 0) == 0 and RO._seed(0, 1, 0) == 101 and RO._seed(0, 0, 7) == 7
  assert RO._seed(1, 0, 0) == 1_000_003
  assert RO._seed(3000, 0, 0) == 3000 * 1_000_003 % 2 ** 31  # within int32


def test_reward_terms_are_each_rewards_batch_mean_by_name():
  rows = {"reward": np.array([1.0, 0.0]), f"{RO.PART}accuracy": np.array([1.0, 0.0, 0.5, 0.5]),
          f"{RO.PART}format": np.array([1, 1])}
  assert RO._reward_terms(rows) == {"rewards/accuracy": 0.5, "rewards/format": 1.0}


def test_gathered_rows_are_32_bit_on_one_process():
  ints = RO._gathered_rows(np.array([1, 2], np.int64), 4)
  assert ints.dtype == np.int32 and ints.tolist() == [1, 2]  # no padding rows on one process
  assert RO._gathered_rows(np.array([1.5], np.float64), 4).dtype == np.float32
  assert RO._gathered(np.array([1, 2])).dtype == np.float32
