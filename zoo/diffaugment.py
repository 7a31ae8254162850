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
  centre, bilinear, -1 (the low end of the range) outside the image;
- `rotation` (not in the paper): turn by an angle uniform in [0, 360) degrees about the image
  centre, bilinear, -1 outside the image.

`scale`, `rotation` and `translation` are also what InfoGAN's `code_invariance` reads its
categorical code through, so that the code cannot encode size, orientation or position.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from synthblend.zoo import streams
from synthblend.zoo.registry import UsageError

POLICIES = ("color", "translation", "cutout", "scale", "rotation")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
SCALE_RANGE = 1.4


def parse(policy: str, accepted=POLICIES, flag="--diffaugment") -> tuple[str, ...]:
    """`color,translation,cutout` -> their names in the canonical order (`''`: none); UsageError
    naming `flag` if one is not in `accepted`, is given twice, or a comma separates nothing."""
    if not policy.strip():
        return ()
    names = tuple(part.strip() for part in policy.split(","))
    if "" in names:
        raise UsageError(f"{flag}={policy}: an empty policy between commas; accepted: {', '.join(accepted)} "
                         "('' for none)")
    unknown = [name for name in names if name not in accepted]
    if unknown:
        raise UsageError(f"{flag}: unknown policy {unknown[0]!r}; accepted: {', '.join(accepted)}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"{flag}={policy}: policy {twice[0]!r} is given twice; give each once")
    return tuple(name for name in accepted if name in names)


def diff_augment(images, policies, seed):
    """`images` through the `policies`, with parameters from `seed` (a SeedGenerator)."""
    for name in policies:
        images = CODE_TRANSFORMS[name](images, seed)
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


def rotation(images, seed):
    """Turns each image by an angle uniform in [0, 2 pi) about its centre: bilinear sampling
    (differentiable in the images), -1 where the source point falls outside the image."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    angle = streams.draw(keras.random.uniform, (batch, 1, 1), seed, 0.0, 2.0 * math.pi)
    cos, sin = tf.cos(angle), tf.sin(angle)
    y = tf.range(height, dtype=tf.float32)[None, :, None] - (height - 1) / 2.0
    x = tf.range(width, dtype=tf.float32)[None, None, :] - (width - 1) / 2.0
    # The source of each output pixel: the output grid turned back by the angle.
    source_x = cos * x - sin * y + (width - 1) / 2.0
    source_y = sin * x + cos * y + (height - 1) / 2.0
    left, top = tf.floor(source_x), tf.floor(source_y)
    weight_x, weight_y = (source_x - left)[..., None], (source_y - top)[..., None]

    def corner(rows, columns):
        inside = (rows >= 0) & (rows <= height - 1) & (columns >= 0) & (columns <= width - 1)
        index = tf.stack([tf.clip_by_value(tf.cast(rows, tf.int32), 0, height - 1),
                          tf.clip_by_value(tf.cast(columns, tf.int32), 0, width - 1)], axis=-1)
        values = tf.gather_nd(images, index, batch_dims=1)
        return tf.where(inside[..., None], values, tf.constant(-1.0, images.dtype))

    weight_x, weight_y = tf.cast(weight_x, images.dtype), tf.cast(weight_y, images.dtype)
    upper = corner(top, left) * (1 - weight_x) + corner(top, left + 1) * weight_x
    lower = corner(top + 1, left) * (1 - weight_x) + corner(top + 1, left + 1) * weight_x
    return upper * (1 - weight_y) + lower * weight_y


# Half-side of the frame `centre` crops, in units of the content's radius of gyration (a disc of
# radius R has R / sqrt(2)): the disc then spans about 65% of the frame.
CENTRE_HALF_SIDE = 2.2
# Side of the grid the frame is sampled on before it is brought back to the image's size: coarse
# enough that the smallest content is not sharper than the largest once both are framed.
CENTRE_SIDE = 12


def centre(images, seed=None):
    """Re-frames each image on its content: a square about the centre of mass of the brightness
    above the range's low end, of half-side `CENTRE_HALF_SIDE` times the content's radius of
    gyration, sampled on a `CENTRE_SIDE` grid (bilinear, -1 outside) and resized back to the
    image's size. Position and size are gone from the result, and so is sharpness (small content
    magnified would be blurrier than large); what is left is the outline. Deterministic: `seed`
    is unused. The frame is computed without gradient (the generator is not asked to move it)."""
    height, width = images.shape[1], images.shape[2]
    mass = tf.stop_gradient(tf.reduce_mean((images + 1.0) / 2.0, axis=3))  # (B, H, W), 0 on the background
    total = tf.reduce_sum(mass, axis=[1, 2]) + 1e-6
    # Pixel centres in the box coordinates of `crop_and_resize` (0 and 1 are the outer pixels' centres).
    rows = tf.range(height, dtype=mass.dtype) / (height - 1)
    columns = tf.range(width, dtype=mass.dtype) / (width - 1)
    centre_y = tf.reduce_sum(mass * rows[None, :, None], axis=[1, 2]) / total
    centre_x = tf.reduce_sum(mass * columns[None, None, :], axis=[1, 2]) / total
    spread = (tf.square(rows[None, :, None] - centre_y[:, None, None])
              + tf.square(columns[None, None, :] - centre_x[:, None, None]))
    radius = tf.sqrt(tf.reduce_sum(mass * spread, axis=[1, 2]) / total)
    half = tf.maximum(CENTRE_HALF_SIDE * radius, 2.0 / height)
    boxes = tf.cast(tf.stack([centre_y - half, centre_x - half, centre_y + half, centre_x + half], axis=1), tf.float32)
    framed = tf.image.crop_and_resize(images, boxes, tf.range(tf.shape(images)[0]), (CENTRE_SIDE, CENTRE_SIDE),
                                      extrapolation_value=-1.0)
    return tf.cast(tf.image.resize(framed, (height, width)), images.dtype)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout, "scale": scale, "rotation": rotation}
# What InfoGAN's code_invariance accepts: the augmentations, and `centre` first (before a rotation).
CODE_POLICIES = ("centre",) + POLICIES
CODE_TRANSFORMS = {"centre": centre, **TRANSFORMS}
