"""Image classifiers run over many images: Math-LLaVA's clarity and complexity scorers applied to a
whole pool before selection (`python -m data_prep.score`).

A scorer is compiled once for a fixed batch; the batch is split over the `data` axis of a mesh of
all the devices there are (parameters replicated: a ViT-L scorer fits on any accelerator), so 8
devices score 8 slices of every batch at once. The last, short batch is padded to the fixed size
and the padding's outputs are discarded, so nothing recompiles. Images arrive as uint8 [H, W, 3]
at the scorer's own size and are normalised on device, as in training. One process: on a pod,
run one scoring command per host over its share of the images (`--shard`).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from mathvlm.sharding import make_mesh


def load_classifier(path: str, mesh=None):
  """(model, cfg) of a classifier checkpoint (`save_model`'s folder or a trainer workdir),
  every parameter replicated over `mesh`'s devices."""
  from mathvlm import checkpoint
  from mathvlm.models.classifier import ImageClassifier
  path = checkpoint.model_dir(path)
  if not os.path.isfile(os.path.join(path, "config.json")):
    raise FileNotFoundError(f"{path} holds no config.json: pass a classify run's workdir or its "
                            f"model/ folder")
  sharding = None
  if mesh is not None:
    replicated = NamedSharding(mesh, PartitionSpec())
    sharding = lambda *_: replicated  # noqa: E731
  model, cfg = checkpoint.load_model(path, sharding=sharding)
  if not isinstance(model, ImageClassifier):
    raise ValueError(f"{path} holds a {type(model).__name__}, not an image classifier (a "
                     f"classify run's model)")
  return model, cfg


class Scorer:
  """Class probabilities of one classifier, `batch_size` images per call, split over devices."""

  def __init__(self, model, batch_size: int, mesh):
    devices = mesh.devices.size
    self.batch_size = -(-batch_size // devices) * devices  # a multiple of the device count
    self.image_size = model.cfg.vision.image_size
    self.num_classes = model.cfg.num_classes
    self.in_sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names))
    replicated = NamedSharding(mesh, PartitionSpec())
    graphdef, state = nnx.split(model)
    self.state = jax.device_put(state, replicated)

    def probs(state, pixels):
      logits = nnx.merge(graphdef, state)(pixels)  # uint8: the tower normalises
      return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

    self._probs = jax.jit(probs, in_shardings=(replicated, self.in_sharding),
                          out_shardings=replicated)

  def start(self, pixels: np.ndarray):
    """Dispatches one batch (uint8 [n <= batch_size, H, W, 3]); returns a handle for `finish`.
    Dispatch is asynchronous, so the next batch can be decoded while this one runs."""
    n = len(pixels)
    if not 0 < n <= self.batch_size:
      raise ValueError(f"a batch of {n} images; this scorer takes 1..{self.batch_size}")
    full = np.zeros((self.batch_size,) + pixels.shape[1:], np.uint8)
    full[:n] = pixels
    return self._probs(self.state, jax.device_put(full, self.in_sharding)), n

  @staticmethod
  def finish(handle) -> np.ndarray:
    """[n, num_classes] float32 probabilities of a dispatched batch."""
    out, n = handle
    return np.asarray(out)[:n]

  def __call__(self, pixels: np.ndarray) -> np.ndarray:
    return self.finish(self.start(pixels))


def data_mesh(devices=None):
  """All devices on the `data` axis (fsdp and tensor of size 1)."""
  devices = list(devices if devices is not None else jax.devices())
  return make_mesh(data=len(devices), fsdp=1, tensor=1, devices=devices)
