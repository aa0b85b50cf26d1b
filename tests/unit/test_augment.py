"""Clarity augmentations: each kind does what it says, draws are fixed by (seed, record, epoch),
and off means the pipeline's pixels are the source's, bit for bit."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mathvlm.data.image import augment, parse_augment
from mathvlm.data.pipeline import make_dataset

S = 48


def _diagram(i=0):
  """A line drawing with fine detail: strokes, text-like ticks and a 1-pixel checkerboard."""
  img = Image.new("RGB", (S, S), (200, 200, 200))
  d = ImageDraw.Draw(img)
  d.rectangle([4, 4, 30 + i % 10, 40], outline="black", width=1)
  d.line([0, 47, 47, 0 + i % 5], fill=(200, 0, 0), width=1)
  for x in range(6, 40, 4):
    d.line([x, 42, x, 46], fill="blue")
  px = np.asarray(img).copy()
  px[32:46, 34:46] = np.where((np.indices((14, 12)).sum(0) % 2)[..., None], 0, 255)
  return px


def _high_freq(px):
  """Mean squared difference of neighbouring pixels: the energy of the finest detail."""
  x = px.astype(np.float64)
  return np.mean(np.diff(x, axis=0) ** 2) + np.mean(np.diff(x, axis=1) ** 2)


def _aug(kinds, seed=0):
  return augment(_diagram(), parse_augment(kinds), np.random.default_rng(seed))


def test_each_kind_does_what_it_says():
  px = _diagram()
  hf = _high_freq(px)
  blurred, low, noisy = _aug("blur"), _aug("lowres"), _aug("noise")
  for out in (blurred, low, noisy):
    assert out.shape == px.shape and out.dtype == np.uint8
    assert abs(out.astype(float).mean() - px.mean()) < 6  # the picture, not a different one
  assert _high_freq(blurred) < 0.6 * hf
  assert _high_freq(low) < 0.6 * hf
  checker = lambda a: a[34:44, 36:44].astype(float).std()  # the 1-px checkerboard is gone
  assert checker(low) < 0.5 * checker(px)
  diff = (noisy.astype(float) - px)[px == 200]  # the grey background: noise there is unclipped
  assert 3 < diff.std() < 17 and abs(diff.mean()) < 1
  both = _aug("lowres,blur,noise")
  assert not np.array_equal(both, low) and not np.array_equal(both, blurred)


def test_draws_are_deterministic_and_off_is_identity():
  px = _diagram()
  assert augment(px, {}, np.random.default_rng(0)) is px
  assert np.array_equal(_aug("blur=0.5,noise=0.5,lowres=0.5", 3),
                        _aug("blur=0.5,noise=0.5,lowres=0.5", 3))
  outs = [_aug("blur=0.5,noise=0.5,lowres=0.5", s) for s in range(12)]
  assert sum(np.array_equal(o, px) for o in outs) < 6   # mostly changed ...
  assert len({o.tobytes() for o in outs}) > 6           # ... and differently
  for bad, msg in [("sharpen", "kinds are"), ("blur=x", "kind=probability"),
                   ("noise=1.5", r"in \(0, 1\]")]:
    with pytest.raises(ValueError, match=msg):
      parse_augment(bad)


class Diagrams:
  """uint8 image examples that say which record they are; record 5 has an empty image slot."""

  def __len__(self):
    return 12

  def __getitem__(self, i):
    px = np.zeros((1, S, S, 3), np.uint8) if i == 5 else _diagram(i)[None]
    return {"record": np.int64(i), "pixel_values": px}


def _epochs(augment_spec, seed=0, lengths=None):
  """{(epoch, record): pixels} over two epochs of the pipeline."""
  ds = make_dataset(Diagrams(), global_batch=4, seed=seed, epochs=2, augment=augment_spec,
                    lengths=lengths)
  seen, out = {}, {}
  for b in ds:
    for rec, px in zip(b["record"], b["pixel_values"]):
      epoch = seen.get(int(rec), -1) + 1
      seen[int(rec)] = epoch
      out[epoch, int(rec)] = px
  return out


@pytest.mark.parametrize("grouped", [False, True])
def test_pipeline_augments_by_seed_record_and_epoch(grouped):
  lengths = (np.arange(12) % 4 + 5, np.ones(12, bool)) if grouped else None
  spec = "blur=0.5,noise=0.5,lowres=0.5"
  a, again, other = _epochs(spec, lengths=lengths), _epochs(spec, lengths=lengths), _epochs(
      spec, seed=1, lengths=lengths)
  off = _epochs("", lengths=lengths)
  src = Diagrams()
  assert len(a) == 24
  assert all(np.array_equal(off[k], src[k[1]]["pixel_values"]) for k in off)  # off: untouched
  assert all(np.array_equal(a[k], again[k]) for k in a)                        # same run, same
  assert not np.any(a[0, 5]) and not np.any(a[1, 5])                           # empty slot kept
  changed = [k for k in a if not np.array_equal(a[k], off[k])]
  assert len(changed) > 12
  assert sum(not np.array_equal(a[0, r], a[1, r]) for r in range(12) if r != 5) > 6  # per epoch
  assert sum(not np.array_equal(a[k], other[k]) for k in a) > 12                   # per seed


def test_each_epochs_shuffle_augments_the_record_it_gives_with_its_epochs_draw():
  """The shuffle comes after the augmentation, whose key says (epoch, record): the example at
  each place of a 2-epoch stream (12 records, each epoch a permutation of its own) is its record
  augmented by the draws of (seed, record, that epoch)."""
  kinds = parse_augment("blur=0.5,noise=0.5,lowres=0.5")
  src = Diagrams()
  ds = make_dataset(src, global_batch=4, seed=7, epochs=2, augment="blur=0.5,noise=0.5,lowres=0.5")
  stream = [(int(r), px) for b in ds for r, px in zip(b["record"], b["pixel_values"])]
  assert len(stream) == 24
  for place, (rec, px) in enumerate(stream):
    img = src[rec]["pixel_values"][0]
    want = augment(img, kinds, np.random.default_rng([7, rec, place // 12])) if rec != 5 else img
    np.testing.assert_array_equal(px[0], want, err_msg=f"place {place}, record {rec}")
