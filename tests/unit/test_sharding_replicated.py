"""A parameter dimension the logical table shards but the mesh axes do not divide (vocab 1023
over tensor=2) is replicated; setup names each such (parameter, dimension) once, so a user
learns that part of the model is whole on those devices, and says nothing when all divide."""

import logging

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import AbstractMesh, PartitionSpec

from mathvlm import objectives, sharding, train
from mathvlm.configs import sft

MESH = AbstractMesh((1, 2, 2), sharding.MESH_AXES)  # data=1, fsdp=2, tensor=2: no devices


def _param(shape, names):
  return nnx.Param(jax.ShapeDtypeStruct(shape, jnp.float32), out_sharding=names,
                   eager_sharding=False)


def _params(vocab):
  return nnx.State({"embed_tokens": _param((vocab, 8), ("vocab", "embed")),
                    "up_proj": _param((8, 16), ("embed", "mlp"))})


def test_an_undivided_dimension_is_logged_once_naming_the_parameter_and_the_axes(caplog):
  with caplog.at_level(logging.INFO, logger="mathvlm.train"):
    assert sharding.log_replicated(_params(1023), MESH) == 1
  assert len(caplog.records) == 1
  assert ("embed_tokens is replicated along dimension 0 ('vocab', length 1023): mesh axes "
          "tensor (2 devices) do not divide it") in caplog.text
  assert sharding.undivided_dims(MESH, sharding.DEFAULT_RULES, ("vocab", "embed"),
                                 (1023, 8)) == [(0, "tensor", 2)]


def test_the_parameter_sharding_replicates_the_dimension_it_logs():
  """What `log_replicated` reports is what `param_sharding` places: the undivided vocab whole on
  each device, the divided dimension still sharded."""
  place = sharding.param_sharding(MESH)
  assert place(None, ("vocab", "embed"), (1023, 8)).spec == PartitionSpec(None, "fsdp")
  assert place(None, ("vocab", "embed"), (1024, 8)).spec == PartitionSpec("tensor", "fsdp")


def test_nothing_is_logged_when_every_dimension_divides_or_is_replicated_on_purpose(caplog):
  rules = tuple((k, None if k == "vocab" else v) for k, v in sharding.DEFAULT_RULES)
  with caplog.at_level(logging.INFO, logger="mathvlm.train"):
    assert sharding.log_replicated(_params(1024), MESH) == 0
    assert sharding.log_replicated(_params(1023), MESH, rules) == 0
  assert caplog.text == ""


def test_setup_names_the_model_parameters_a_mesh_axis_does_not_divide(caplog):
  """The tiny model's widths are powers of two: tensor=3 divides none of them."""
  config = sft.get_config(None)
  rules = tuple(tuple(r) for r in config.logical_axis_rules)
  mesh = AbstractMesh((1, 1, 3), sharding.MESH_AXES)
  with caplog.at_level(logging.INFO, logger="mathvlm.train"):
    train.setup_model(config, objectives.get(config.objective), mesh, rules)
  assert ("language_model/embed_tokens/embedding is replicated along dimension 0 ('vocab', "
          "length 1024)") in caplog.text


def test_a_mesh_axis_an_earlier_dimension_took_is_logged_naming_both_dimensions(caplog):
  """embed on tensor like vocab and mlp: the embedding splits its vocab over tensor and leaves
  embed whole, up_proj its embed and leaves mlp whole (flax does the same, silently); setup
  names the parameter, the dimension, its name, the mesh axis and the dimension holding it."""
  rules = tuple((k, "tensor" if k == "embed" else v) for k, v in sharding.DEFAULT_RULES)
  assert sharding.logical_to_spec(("vocab", "embed"), rules) == PartitionSpec("tensor", None)
  assert sharding.taken_axes(("vocab", "embed"), rules) == [(1, "tensor", 0)]
  with caplog.at_level(logging.INFO, logger="mathvlm.train"):
    assert sharding.log_replicated(_params(1024), MESH, rules) == 2
  assert ("embed_tokens is not split over mesh axis 'tensor' along dimension 1 ('embed', length "
          "8): its dimension 0 ('vocab') has that axis") in caplog.text
  assert ("up_proj is not split over mesh axis 'tensor' along dimension 1 ('mlp', length 16): its "
          "dimension 0 ('embed') has that axis") in caplog.text


def test_a_dimension_keeps_the_mesh_axes_no_earlier_dimension_took():
  """mlp over (fsdp, tensor) beside embed on fsdp: the MLP width keeps tensor, loses fsdp."""
  rules = tuple((k, ("fsdp", "tensor") if k == "mlp" else v) for k, v in sharding.DEFAULT_RULES)
  assert sharding.logical_to_spec(("embed", "mlp"), rules) == PartitionSpec("fsdp", "tensor")
  assert sharding.taken_axes(("embed", "mlp"), rules) == [(1, "fsdp", 0)]
  assert sharding.taken_axes(("embed", "mlp")) == []


def test_an_activation_losing_a_taken_mesh_axis_is_logged_once_per_names_and_table(caplog,
                                                                                monkeypatch):
  """`constrain` dropped the axis an earlier dimension took without a word, where setup names
  the parameters it happens to. Once per (names, table), though every layer's trace meets it."""
  monkeypatch.setattr(sharding, "_TAKEN_LOGGED", set())
  mesh = sharding.make_mesh(fsdp=1, devices=jax.devices()[:1])
  clash = tuple(dict(sharding.DEFAULT_RULES, activation_length="fsdp").items())
  names = ("activation_batch", "activation_length", "activation_embed")

  def traces(rules):
    with caplog.at_level(logging.INFO, logger="mathvlm.train"), \
        sharding.activation_sharding(mesh, rules):
      for _ in range(2):  # two layers, then a second trace of the same function
        jax.jit(lambda x: sharding.constrain(sharding.constrain(x, *names), *names)).lower(
            jnp.zeros((2, 4, 8)))
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

  assert traces(sharding.DEFAULT_RULES) == []
  lines = traces(clash)
  assert len(lines) == 1, lines
  assert ("not split over mesh axis 'fsdp' along dimension 1 ('activation_length'): dimension 0 "
          "('activation_batch') has that axis") in lines[0]


def test_an_activation_a_mesh_axis_does_not_divide_is_logged_once_per_shape_and_mesh(
    caplog, monkeypatch):
  """`constrain` replicated a dimension its mesh axes do not divide (logits over a vocabulary
  of 1,023 on tensor=4) without a word, where setup names the parameters it happens to. Once
  per (names, shape, table, mesh): every layer's trace meets it; another length, another line."""
  monkeypatch.setattr(sharding, "_UNDIVIDED_LOGGED", set())
  monkeypatch.setattr(sharding, "_TAKEN_LOGGED", set())
  names = ("activation_batch", "activation_length", "activation_vocab")
  mesh = AbstractMesh((1, 1, 4), sharding.MESH_AXES)
  with caplog.at_level(logging.WARNING, logger="mathvlm.train"):
    for shape in ((2, 6, 1023), (2, 6, 1023), (2, 6, 1024), (2, 6, 1022)):
      sharding._log_dropped_once(names, shape, mesh, sharding.DEFAULT_RULES)
  lines = [r.getMessage() for r in caplog.records]
  assert len(lines) == 2, lines  # 1023 once (two traces), 1024 divides, 1022 once
  assert ("replicated along dimension 2 ('activation_vocab', length 1023): mesh axes tensor (4 "
          "devices) do not divide it") in lines[0]
  assert "length 1022" in lines[1]
  spec = sharding.param_sharding(mesh)(None, names, (2, 6, 1023)).spec
  assert spec == PartitionSpec(("data", "fsdp"), None, None)  # what constrain applies
