"""Augmentation of image batches in the tf.data pipeline, built from Keras preprocessing layers.

    --augment=flip,rotate:0.1,zoom:0.1,translate:0.1,contrast:0.2,brightness:0.2

Each name maps to one Keras 3 preprocessing layer (`AUGMENTATIONS`), applied in order to whole
batches of images in data space (before scaling to the model's range), with labels and other
fields of the batch left as they are, so they stay aligned. Each layer draws its own parameters
for every image of the batch.

Reproducibility: each layer is seeded from `--seed` and its position in the spec, and the map
that applies them runs sequentially (one batch after another), so the random stream advances
in the same order on every run and no two batches reuse a draw, which a parallel map over a
shared random state cannot promise. The layers are cheap next to a training step, and the
scaling and prefetching that follow still run in parallel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import tensorflow as tf

from synthblend.zoo.registry import Registry, UsageError


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """How to build one layer: `build(factor, seed, value_range)`, the accepted factors
    (exclusive low, inclusive high) and the factor used when none is given (None: required)."""

    build: Callable
    low: float = 0.0
    high: float = 1.0
    default: float | None = None
    meaning: str = ""


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")
AUGMENTATIONS.add("flip", Augmentation(
    lambda factor, seed, value_range: keras.layers.RandomFlip("horizontal", seed=seed),
    default=1.0, meaning="mirror left-right with probability 1/2"))
AUGMENTATIONS.add("vflip", Augmentation(
    lambda factor, seed, value_range: keras.layers.RandomFlip("vertical", seed=seed),
    default=1.0, meaning="mirror top-bottom with probability 1/2"))
AUGMENTATIONS.add("rotate", Augmentation(
    lambda factor, seed, value_range: keras.layers.RandomRotation(factor, fill_mode="constant", seed=seed),
    high=0.5, meaning="rotate by up to factor x 360 degrees"))
AUGMENTATIONS.add("zoom", Augmentation(
    lambda factor, seed, value_range: keras.layers.RandomZoom(factor, fill_mode="constant", seed=seed),
    high=0.9, meaning="zoom in or out by up to the factor"))
AUGMENTATIONS.add("translate", Augmentation(
    lambda factor, seed, value_range: keras.layers.RandomTranslation(factor, factor, fill_mode="constant", seed=seed),
    high=0.5, meaning="shift by up to the factor of the height and width"))
AUGMENTATIONS.add("contrast", Augmentation(
    lambda factor, seed, value_range: keras.layers.RandomContrast(factor, value_range=value_range, seed=seed),
    high=1.0, meaning="scale contrast by 1 +- factor"))
AUGMENTATIONS.add("brightness", Augmentation(
    lambda factor, seed, value_range: keras.layers.RandomBrightness(factor, value_range=value_range, seed=seed),
    high=1.0, meaning="shift brightness by up to the factor of the range"))


def accepted() -> str:
    """The names, each with the range of its factor where it takes one."""
    return ", ".join(
        name if AUGMENTATIONS.get(name).default is not None else f"{name}:F with 0<F<={AUGMENTATIONS.get(name).high:g}"
        for name in AUGMENTATIONS.names()
    )


def parse(spec: str) -> list[tuple[str, float]]:
    """`name[:factor],...` -> [(name, factor)], with UsageError naming what is wrong."""
    steps = []
    items = [part.strip() for part in spec.split(",")]
    if any(items) and "" in items:
        raise UsageError(f"--augment={spec}: an empty augmentation between commas; accepted: {accepted()}")
    for item in [item for item in items if item]:
        name, _, text = item.partition(":")
        if name not in AUGMENTATIONS:
            raise UsageError(f"--augment: unknown augmentation {name!r}; accepted: {accepted()}")
        augmentation = AUGMENTATIONS.get(name)
        if not text:
            if augmentation.default is None:
                raise UsageError(f"--augment: {name} needs a factor, e.g. {name}:0.1 ({augmentation.meaning})")
            factor = augmentation.default
        else:
            try:
                factor = float(text)
            except ValueError:
                raise UsageError(f"--augment: factor {text!r} of {name} is not a number") from None
            if not augmentation.low < factor <= augmentation.high:
                raise UsageError(
                    f"--augment: {name}:{text} is out of range; the factor must lie in "
                    f"({augmentation.low:g}, {augmentation.high:g}] ({augmentation.meaning})"
                )
        steps.append((name, factor))
    if not steps:
        raise UsageError(f"--augment={spec!r} names no augmentation; accepted: {accepted()}")
    return steps


def augmenter(spec: str, image_shape, value_range, seed: int) -> keras.Sequential:
    """The Keras model applying `spec` to batches of `image_shape` images in `value_range`."""
    if len(image_shape) != 3:
        raise UsageError(f"--augment applies to images; this data is vectors of shape {tuple(image_shape)}")
    layers = [
        AUGMENTATIONS.get(name).build(factor, seed * 1000 + index, tuple(value_range))
        for index, (name, factor) in enumerate(parse(spec))
    ]
    return keras.Sequential([keras.Input(tuple(image_shape)), *layers], name="augmentation")


def apply(dataset: tf.data.Dataset, model: keras.Sequential) -> tf.data.Dataset:
    """Augments the `x` of each batch of `dataset` (sequentially: see the module docstring)."""

    def augment(batch):
        return {**batch, "x": model(tf.cast(batch["x"], tf.float32), training=True)}

    return dataset.map(augment)
