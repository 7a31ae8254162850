"""Differentiable augmentation for GANs trained on little data (Zhao et al. 2020, "Differentiable
Augmentation for Data-Efficient GAN Training").

The discriminator sees every image, real or generated, through the same random transform `T`,
and the generator's gradient flows back through `T`; the discriminator then cannot memorise the
few real images, while the generator is still asked for untransformed ones. Policies, on
batches of model-range images `(B, H, W, C)` in [-1, 1], each with parameters drawn per image:

- `color`: brightness shift in [-0.5, 0.5], saturation scale in [0, 2], contrast scale in
  [0.5, 1.5];
- `translation`: shift by up to 1/8 of the height and width, zero padded;
- `cutout`: a square of half the side set to zero, centred anywhere in the image;
- `scale` (not in the paper): zoom in or out by a factor in [1/1.4, 1.4] about a point near the
  centre, bilinear, -1 (the low end of the range) outside the image; with InfoGAN it keeps the
  codes from encoding size.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo import streams
from zoo.registry import UsageError

POLICIES = ("color", "translation", "cutout", "scale")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
SCALE_RANGE = 1.4


def parse(policy: str) -> tuple[str, ...]:
    """`color,translation,cutout` -> their names in the canonical order; UsageError if unknown."""
    names = tuple(part.strip() for part in policy.split(",") if part.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise UsageError(f"--diffaugment: unknown policy {unknown[0]!r}; accepted: {', '.join(POLICIES)}")
    return tuple(name for name in POLICIES if name in names)


def diff_augment(images, policies, seed):
    """`images` through the `policies`, with parameters from `seed` (a SeedGenerator)."""
    for name in policies:
        images = TRANSFORMS[name](images, seed)
    return images


def _uniform(images, seed, low=0.0, high=1.0):
    return streams.draw(keras.random.uniform, (tf.shape(images)[0], 1, 1, 1), seed, low, high)


def color(images, seed):
    images = images + _uniform(images, seed, -0.5, 0.5)
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - mean) * _uniform(images, seed, 0.0, 2.0) + mean
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * _uniform(images, seed, 0.5, 1.5) + mean


def translation(images, seed):
    """Shifts each image by whole pixels; what moves in from outside is zero."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    shift_y, shift_x = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
    offsets_y = streams.draw(keras.random.randint, (batch, 1, 1), seed, -shift_y, shift_y + 1)
    offsets_x = streams.draw(keras.random.randint, (batch, 1, 1), seed, -shift_x, shift_x + 1)
    rows = tf.range(height)[None, :, None] + offsets_y  # (B, H, 1): source row of each output row
    columns = tf.range(width)[None, None, :] + offsets_x  # (B, 1, W)
    inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
    rows = tf.clip_by_value(rows, 0, height - 1) + tf.zeros_like(columns)
    columns = tf.clip_by_value(columns, 0, width - 1) + tf.zeros_like(rows)
    shifted = tf.gather_nd(images, tf.stack([rows, columns], axis=-1), batch_dims=1)
    return shifted * tf.cast(inside, images.dtype)[..., None]


def cutout(images, seed):
    """Zeroes a square of half the image's side at a random place in each image."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    size_y, size_x = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    centre_y = streams.draw(keras.random.randint, (batch, 1, 1), seed, 0, height + (1 - size_y % 2))
    centre_x = streams.draw(keras.random.randint, (batch, 1, 1), seed, 0, width + (1 - size_x % 2))
    rows = tf.range(height)[None, :, None]
    columns = tf.range(width)[None, None, :]
    top, left = centre_y - size_y // 2, centre_x - size_x // 2
    inside = (rows >= top) & (rows < top + size_y) & (columns >= left) & (columns < left + size_x)
    return images * (1.0 - tf.cast(inside, images.dtype))[..., None]


def scale(images, seed):
    """Resamples each image from a box of side 1/z (z log-uniform in [1/1.4, 1.4]) shifted by
    up to a tenth of the image, so content grows (z > 1) or shrinks (z < 1)."""
    batch = tf.shape(images)[0]
    zoom = tf.exp(streams.draw(keras.random.uniform, (batch,), seed, -1.0, 1.0) * tf.math.log(SCALE_RANGE))
    shift = streams.draw(keras.random.uniform, (batch, 2), seed, -0.1, 0.1)
    half = 0.5 / zoom
    centre = 0.5 + shift
    boxes = tf.stack([centre[:, 0] - half, centre[:, 1] - half, centre[:, 0] + half, centre[:, 1] + half], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(batch), images.shape[1:3], extrapolation_value=-1.0)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout, "scale": scale}
