"""A vision tower trained from scratch on diagrams: Hugging Face's CLIP initialisation, pixel
statistics that belong to the tower's config (a uint8 image is normalised by the tower that reads
it, with its own mean and std), and the consequence that matters: the tiny tower can fit engine
diagrams by what they show, which under CLIP's photograph statistics it could not."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import transformers as tf
from flax import nnx

from data_prep.engine import writer
from mathvlm import checkpoint
from mathvlm.data.image import to_pixels
from mathvlm.models import presets
from mathvlm.models.classifier import ClassifierConfig, ImageClassifier
from mathvlm.models.pixels import CLIP_MEAN, CLIP_STD, DIAGRAM_MEAN, DIAGRAM_STD, normalize
from mathvlm.models.vit import CLIPVisionTransformer


def _engine_images(n, size, seed=11):
  """(uint8 [n, size, size, 3], domain index) of fresh engine problems (vision-dominant image)."""
  import io

  from PIL import Image
  pixels, domains, raw = [], [], []
  for i in range(n):
    s = writer.make_problem(writer.Options(seed=seed), i)[0]
    rec, files = s["record"], dict(s["files"])
    image = Image.open(io.BytesIO(files[rec["image_vision_dominant"]]))
    raw.append(np.asarray(image.convert("RGB"), np.float64).reshape(-1, 3) / 255)
    pixels.append(to_pixels(image, size, "pad"))
    domains.append(["analytic", "function", "plane"].index(rec["domain"]))
  return np.stack(pixels), np.asarray(domains), np.concatenate(raw)


def test_init_matches_hugging_faces_clip_init():
  cfg = dataclasses.replace(presets.TINY_VISION, hidden_size=128, intermediate_size=256,
                            num_layers=6)
  ours = nnx.state(CLIPVisionTransformer(cfg, rngs=nnx.Rngs(0)), nnx.Param)
  torch.manual_seed(0)
  ref = tf.CLIPVisionModel(tf.CLIPVisionConfig(
      hidden_size=128, intermediate_size=256, num_hidden_layers=6, num_attention_heads=4,
      image_size=56, patch_size=14))
  ref = getattr(ref, "vision_model", ref)  # transformers 4 wraps the transformer; 5 does not
  layer = ref.encoder.layers[0]
  pairs = {"q_proj": layer.self_attn.q_proj.weight, "out_proj": layer.self_attn.out_proj.weight,
           "fc1": layer.mlp.fc1.weight, "fc2": layer.mlp.fc2.weight}
  flat = {".".join(map(str, k)): v for k, v in nnx.to_flat_state(ours)}
  for name, w in pairs.items():
    key = next(k for k in flat if k.endswith(f"{name}.kernel"))
    ratio = float(jnp.std(flat[key][...][0])) / float(w.detach().std())
    assert 0.9 < ratio < 1.1, (name, ratio)
  cls = float(jnp.std(flat["class_embedding"][...])) / float(ref.embeddings.class_embedding.detach().std())
  assert 0.75 < cls < 1.33


def test_diagram_statistics_are_those_of_engine_images():
  _, _, raw = _engine_images(12, 56)
  np.testing.assert_allclose(raw.mean(0), DIAGRAM_MEAN, atol=0.02)
  np.testing.assert_allclose(raw.std(0), DIAGRAM_STD, rtol=0.25)


def test_the_tower_normalises_uint8_with_its_own_statistics(tmp_path):
  cfg = presets.DIAGRAM_VISION
  tower = CLIPVisionTransformer(cfg, rngs=nnx.Rngs(1))
  pixels = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
  as_uint8 = tower(jnp.asarray(pixels))[1]
  np.testing.assert_allclose(as_uint8, tower(normalize(pixels, np, DIAGRAM_MEAN, DIAGRAM_STD))[1],
                             atol=1e-5)
  assert not np.allclose(as_uint8, tower(normalize(pixels, np, CLIP_MEAN, CLIP_STD))[1], atol=1e-3)
  model = ImageClassifier(ClassifierConfig(cfg, 3), rngs=nnx.Rngs(2))
  checkpoint.save_model(model, model.cfg, str(tmp_path / "m"))
  _, back = checkpoint.read_model_config(str(tmp_path / "m"))
  assert back.vision.image_mean == DIAGRAM_MEAN and back.vision.image_std == DIAGRAM_STD
  assert hash(back)  # tuples again: the config is part of a jit-static graph


@pytest.mark.parametrize("stats,fits", [("diagram", True), ("clip", False)])
def test_tiny_tower_fits_diagrams_by_domain_only_when_centred(stats, fits):
  pixels, domains, _ = _engine_images(24, 56)
  assert len(set(domains.tolist())) == 3
  mean, std = (DIAGRAM_MEAN, DIAGRAM_STD) if stats == "diagram" else (CLIP_MEAN, CLIP_STD)
  cfg = dataclasses.replace(presets.TINY_VISION, image_mean=mean, image_std=std)
  graphdef, params = nnx.split(ImageClassifier(ClassifierConfig(cfg, 3), rngs=nnx.Rngs(0)))
  tx = optax.adam(1e-3)
  x, y = jnp.asarray(pixels), jnp.asarray(domains)

  @jax.jit
  def step(params, opt):
    def loss(p):
      logits = nnx.merge(graphdef, p)(x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    value, grads = jax.value_and_grad(loss)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, value

  opt = tx.init(params)
  for _ in range(60):
    params, opt, value = step(params, opt)
  # ln 3 = 1.10 is the prior; centred, the tower memorises the 24 diagrams
  assert (float(value) < 0.2) is fits, float(value)


def test_pixel_statistics_survive_hugging_face_export_and_load(tmp_path):
  """export_hf writes preprocessor_config.json, transformers' processor then normalises as the
  tower does, and load_hf reads the statistics back."""
  from PIL import Image
  from transformers import CLIPImageProcessor

  from mathvlm import hf
  from mathvlm.models.vlm import Llava
  cfg = presets.LLAVA_PRESETS["demo"]
  model = Llava(cfg, rngs=nnx.Rngs(0))
  hf.export_hf(model, cfg, str(tmp_path / "out"))
  image = Image.fromarray(_engine_images(1, 56)[0][0])
  theirs = CLIPImageProcessor.from_pretrained(str(tmp_path / "out"))(
      images=image, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
  ours = normalize(to_pixels(image, 56, "pad"), np, DIAGRAM_MEAN, DIAGRAM_STD)
  np.testing.assert_allclose(theirs, ours, atol=1e-5)
  back = hf.load_hf(str(tmp_path / "out"))[1]
  assert (back.vision.image_mean, back.vision.image_std) == (DIAGRAM_MEAN, DIAGRAM_STD)


def test_a_preprocessor_config_with_half_the_statistics_is_an_error(tmp_path):
  import json

  from mathvlm import hf
  (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3}))
  with pytest.raises(checkpoint.CheckpointError, match="image_mean but not its partner"):
    hf.with_pixel_stats(presets.LLAVA_PRESETS["demo"], str(tmp_path))
  (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_resize": True}))
  assert hf.with_pixel_stats(presets.LLAVA_PRESETS["tiny"], str(tmp_path)).vision.image_mean \
      == CLIP_MEAN
