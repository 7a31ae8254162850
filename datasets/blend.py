"""Ways of blending synthetic data with real data (or several real sources with each other).

Every function takes and returns `tf.data.Dataset`s of flat dicts `{"x": ..., "y": ..., ...}`:

- `synthetic`: an endless source of examples drawn from a trained generator (a model
  directory's or an export's, through `trainers.sample.ModelSource` / `ExportSource`), in
  graph, with labels for conditional models in a chosen class balance;
- `mix`: ratio-based mixing. Each output example is drawn from one of several UNBATCHED
  sources with fixed probabilities and tagged with the source's name in `"source"`; batch once
  after mixing, so every batch holds the ratio on average. `realised_shares` counts the tags
  of a mixed stream to report the ratio actually obtained.
- `interpolate`: element-wise blending of paired real and synthetic examples,
  `x = (1 - ratio) * real_x + ratio * synthetic_x`, with an optional soft label.
- `mixup` and `cutmix`: the MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019)
  augmentations on BATCHED data, mixing each example with a partner from its batch; labels
  become mixed one-hot rows. Random draws are stateless, seeded by `(seed, batch index)`.
- `join`: key-value association of two finite sources on a shared key field, like a database
  join (inner or left), with a policy for duplicate keys.
- `concat_features`: feature fusion; aligned sources' vector `x`s are concatenated.
- `dedupe`: removes examples whose content repeats an earlier one, with a report.

`join` and `dedupe` read their inputs into memory and return datasets built from NumPy arrays;
the others are lazy transformations that keep working on endless streams.
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from synthblend.zoo.registry import DataError, UsageError

# The field `mix` adds to every example: the name of the source it came from.
SOURCE_FIELD = "source"
JOIN_HOWS = ("inner", "left")
DUPLICATE_POLICIES = ("error", "first", "last")
# How many examples are stacked at a time when a dataset is read into NumPy arrays.
READ_BATCH = 1024
# `dedupe`'s report lists at most this many removed indices, to stay small for big datasets.
REPORTED_INDICES = 100


# --- synthetic -------------------------------------------------------------------------------


def synthetic(
    source,
    *,
    batch_size: int = 256,
    class_weights: Sequence[float] | None = None,
    seed: int = 0,
    like: Mapping[str, tf.TensorSpec] | None = None,
) -> tf.data.Dataset:
    """An endless, unbatched stream of examples drawn from a trained generator.

    Samples are drawn `batch_size` at a time inside the input pipeline (no Python in the loop),
    each batch from its own stateless seed `(seed, batch index)`, so the stream is the same on
    every run. Conditional models draw their labels from `class_weights` (normalised; default:
    equal), and the examples carry them as `y`.

    Args:
      source: what draws samples: an object with `spec` (a `DataSpec`), `conditional`,
        `max_samples` (None: no cap) and `draw_graph(count, seed, labels)` returning samples in
        data space (`trainers.sample.ModelSource` and `ExportSource` are such objects).
      batch_size: samples drawn per call of the generator.
      class_weights: a weight per class for conditional models.
      seed: seed of the stream.
      like: the element spec of a real dataset to mix with; `x` and `y` are cast to its
        dtypes (integers rounded and clipped to the data's range), so that `mix` accepts both.
        Without it, images in 0..255 come as uint8 and labels as int64.

    Returns:
      The unbatched dataset `{"x"[, "y"]}`.

    Raises:
      UsageError: class weights for an unconditional model, weights of the wrong count.
    """
    spec = source.spec
    if source.max_samples:
        batch_size = min(batch_size, source.max_samples)
    if class_weights is not None and not source.conditional:
        raise UsageError("class weights were given for a model trained without --conditional")
    logits = None
    if source.conditional:
        names = [str(index) for index in range(spec.num_classes)]
        weights = normalised_weights(names, class_weights if class_weights is not None else [1.0] * len(names))
        logits = tf.math.log(tf.constant([list(weights.values())], tf.float32))
    x_dtype = like["x"].dtype if like is not None else (
        tf.uint8 if spec.value_range is not None and tuple(spec.value_range) == (0.0, 255.0) else tf.float32)
    y_dtype = like["y"].dtype if like is not None and "y" in like else tf.int64

    def draw(index):
        batch_seed = tf.cast(seed, tf.int64) * (2**31) + index
        labels = None
        if logits is not None:
            labels = tf.cast(tf.random.stateless_categorical(logits, batch_size, seed=[batch_seed, 1])[0], tf.int32)
        x = source.draw_graph(batch_size, batch_seed, labels)
        if x_dtype.is_integer:
            low, high = spec.value_range or (x_dtype.min, x_dtype.max)
            x = tf.clip_by_value(tf.round(x), low, high)
        example = {"x": tf.cast(x, x_dtype)}
        if labels is not None:
            example["y"] = tf.cast(labels, y_dtype)
        return example

    return tf.data.Dataset.counter().map(draw).unbatch()


# --- mix -------------------------------------------------------------------------------------


def mix(
    sources: dict[str, tf.data.Dataset],
    weights: dict[str, float] | Sequence[float],
    seed: int | None = 0,
    *,
    stop_on_empty: bool = False,
) -> tf.data.Dataset:
    """Mixes unbatched sources so that each example comes from a source with a given probability.

    Each output example is drawn from source `name` with probability `weights[name] / sum(weights)`
    (`tf.data.Dataset.sample_from_datasets`) and gets a `"source"` field: a tf.string scalar
    holding `name`. The ratio only holds while every source still has examples, so pass
    endless (`.repeat()`ed, shuffled) sources; batch the mixture once, after mixing.

    When a finite source runs out, `stop_on_empty=False` (the default) keeps drawing from the
    sources that remain, so the realised ratio drifts away from `weights` from then on;
    `stop_on_empty=True` ends the mixture at the first draw from an exhausted source instead.

    Args:
      sources: unbatched datasets by name; all must have the same element spec (same fields,
        shapes and dtypes) and no field named `"source"`.
      weights: a non-negative weight per source, as a dict with the same names as `sources` or
        as a sequence in the order of `sources`; they are normalised to sum to 1, so `[3, 1]`
        means three examples of the first source for each of the second.
      seed: seed of the draws; the same seed gives the same sequence of sources. None draws a
        different sequence every time.
      stop_on_empty: whether the mixture ends when a source is exhausted (see above).

    Returns:
      The mixed, unbatched dataset, each example tagged with `"source"`.

    Raises:
      UsageError: no sources, weights that do not match the sources, a negative or non-finite
        weight, all-zero weights, or sources whose element specs differ.
    """
    if not isinstance(sources, Mapping) or not sources:
        raise UsageError(f"mix needs a non-empty dict of datasets by name; got {sources!r}")
    for name in sources:
        if not isinstance(name, str) or not name:
            raise UsageError(f"mix source names must be non-empty strings; got {name!r}")
    shares = normalised_weights(list(sources), weights)
    specs = {name: _fields(dataset, f"source {name!r}") for name, dataset in sources.items()}
    _check_same_specs(specs)
    for name, fields in specs.items():
        if SOURCE_FIELD in fields:
            raise UsageError(
                f"source {name!r} already has a {SOURCE_FIELD!r} field, which mix sets to the source's name; "
                f"rename or drop that field first"
            )
    logging.info("mixing sources with weights %s", ", ".join(f"{n}={w:.4f}" for n, w in shares.items()))
    tagged = [_tag(dataset, name) for name, dataset in sources.items()]
    return tf.data.Dataset.sample_from_datasets(
        tagged, weights=list(shares.values()), seed=seed, stop_on_empty_dataset=stop_on_empty
    )


def normalised_weights(names: Sequence[str], weights: Mapping[str, float] | Sequence[float]) -> dict[str, float]:
    """The weights per name, checked and scaled to sum to 1 (what `mix` draws with).

    Args:
      names: the source names, in order.
      weights: a dict by name (exactly `names`) or a sequence with one weight per name.

    Returns:
      `{name: weight / sum(weights)}` in the order of `names`.

    Raises:
      UsageError: weights that do not match the names, negative or non-finite, or all zero.
    """
    if isinstance(weights, Mapping):
        missing = [n for n in names if n not in weights]
        extra = [n for n in weights if n not in names]
        if missing or extra:
            raise UsageError(
                f"mix weights are for {sorted(weights)!r} but the sources are {list(names)!r}"
                f" (missing: {missing!r}, unknown: {extra!r})"
            )
        values = [weights[n] for n in names]
    elif isinstance(weights, (str, bytes)) or not isinstance(weights, Iterable):
        raise UsageError(f"mix weights={weights!r} must be a dict by source name or a list of numbers")
    else:
        values = list(weights)
        if len(values) != len(names):
            raise UsageError(
                f"mix weights={values!r} has {len(values)} values for {len(names)} sources {list(names)!r}"
            )
    checked = {}
    for name, value in zip(names, values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"mix weight {value!r} of source {name!r} is not a number") from None
        if isinstance(value, bool) or not math.isfinite(number) or number < 0:
            raise UsageError(f"mix weight {value!r} of source {name!r} must be a finite number >= 0")
        checked[name] = number
    total = sum(checked.values())
    if total <= 0:
        raise UsageError(f"mix weights {values!r} are all zero; at least one source needs a positive weight")
    return {name: value / total for name, value in checked.items()}


def realised_shares(dataset: tf.data.Dataset, num: int, *, names: Iterable[str] = ()) -> dict[str, float]:
    """The share of each source among the first `num` examples of a mixed dataset.

    Args:
      dataset: a dataset from `mix` (unbatched, or batched: batches are split into examples).
      num: how many examples to count (examples, also when the dataset is batched).
      names: source names to report even when none of their examples turned up (share 0.0).

    Returns:
      `{source name: share}`, shares summing to 1, names in order of `names` then first sight.
      When the dataset ends early, shares are of the examples it had.

    Raises:
      UsageError: `num` is not a positive integer, or the examples have no `"source"` field.
      DataError: the dataset holds no examples.
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num <= 0:
        raise UsageError(f"realised_shares num={num!r} must be a positive number of examples")
    fields = _fields(dataset, "dataset")
    if SOURCE_FIELD not in fields:
        raise UsageError(f"dataset has no {SOURCE_FIELD!r} field to count; its fields: {sorted(fields)}; use mix")
    tags = dataset.map(lambda example: example[SOURCE_FIELD])
    if fields[SOURCE_FIELD].shape.rank == 1:
        tags = tags.unbatch()
    elif fields[SOURCE_FIELD].shape.rank != 0:
        raise UsageError(f"{SOURCE_FIELD!r} field has shape {fields[SOURCE_FIELD].shape}; expected () or (batch,)")
    counts = {str(name): 0 for name in names}
    total = 0
    for chunk in tags.take(num).batch(READ_BATCH).as_numpy_iterator():
        found, found_counts = np.unique(chunk, return_counts=True)
        for tag, count in zip(found, found_counts):
            name = tag.decode("utf-8", errors="replace")
            counts[name] = counts.get(name, 0) + int(count)
        total += len(chunk)
    if total == 0:
        raise DataError("dataset holds no examples to count sources of")
    return {name: count / total for name, count in counts.items()}


def _tag(dataset: tf.data.Dataset, name: str) -> tf.data.Dataset:
    tag = tf.constant(name, tf.string)
    return dataset.map(lambda example: {**example, SOURCE_FIELD: tag})


def _check_same_specs(specs: dict[str, dict[str, tf.TensorSpec]]) -> None:
    """Raises UsageError naming the first difference between a source's spec and the first one's."""
    first_name, first = next(iter(specs.items()))
    for name, fields in specs.items():
        only_first = sorted(set(first) - set(fields))
        only_this = sorted(set(fields) - set(first))
        if only_first or only_this:
            raise UsageError(
                f"mix needs sources with equal fields: {only_first} only in {first_name!r}, "
                f"{only_this} only in {name!r}; map the sources to the same fields first"
            )
        for key in first:
            if first[key].shape != fields[key].shape or first[key].dtype != fields[key].dtype:
                raise UsageError(
                    f"mix needs sources with equal element specs: field {key!r} is {_describe(first[key])} "
                    f"in {first_name!r} but {_describe(fields[key])} in {name!r}; cast or reshape to one spec first"
                )


# --- interpolate -----------------------------------------------------------------------------


def interpolate(
    real: tf.data.Dataset,
    synthetic: tf.data.Dataset,
    ratio: float,
    num_classes: int | None = None,
) -> tf.data.Dataset:
    """Blends paired examples: `x = real_x * (1 - ratio) + synthetic_x * ratio`, as float32.

    Examples are paired by position (`zip`), which stops at the shorter dataset; both must be in
    the same data space (decode generator outputs to the real data's range first). Lengths
    that are both known and finite must agree.

    Labels: `y` is the real example's label, except at `ratio == 1`, where `x` is exactly the
    synthetic example and `y` is the synthetic label (absent when the synthetic data has
    none). Between 0 and 1 `y` therefore keeps the real label even when most of `x` is
    synthetic; pass `num_classes` to also get `y_soft`, float32 `(num_classes,)`, the same
    mixture of the two one-hot labels (`(1 - ratio) * one_hot(real_y) + ratio *
    one_hot(synthetic_y)`, exactly one-hot at ratio 0 and 1). The real example's other fields
    are kept; the synthetic example's other fields are dropped.

    Args:
      real: unbatched real examples with `x` (and optionally `y`).
      synthetic: unbatched synthetic examples with `x` of the same shape (any numeric dtype).
      ratio: share of the synthetic example, in [0, 1].
      num_classes: number of classes; when given, both datasets need `y` in [0, num_classes).

    Returns:
      The unbatched dataset of blended examples.

    Raises:
      UsageError: ratio outside [0, 1], `x` missing or of different shapes, `num_classes`
        given without labels on both sides, or known lengths that differ.
    """
    ratio = _fraction("interpolate ratio", ratio)
    if num_classes is not None:
        _check_num_classes(num_classes)
    real_fields = _fields(real, "real")
    synthetic_fields = _fields(synthetic, "synthetic")
    for what, fields in (("real", real_fields), ("synthetic", synthetic_fields)):
        _check_numeric_x(fields, what)
    if not real_fields["x"].shape.is_compatible_with(synthetic_fields["x"].shape):
        raise UsageError(
            f"interpolate needs x of one shape: real x is {real_fields['x'].shape}, "
            f"synthetic x is {synthetic_fields['x'].shape}"
        )
    if num_classes is not None and not ("y" in real_fields and "y" in synthetic_fields):
        raise UsageError(
            f"interpolate num_classes={num_classes} makes soft labels from y of both datasets; "
            f"y is in real: {'y' in real_fields}, in synthetic: {'y' in synthetic_fields}"
        )
    _check_lengths([real, synthetic], ["real", "synthetic"], infinite_is_known=False)
    label_from_synthetic = ratio == 1.0

    def blend(real_example, synthetic_example):
        blended = {key: value for key, value in real_example.items() if key not in ("x", "y")}
        blended["x"] = (
            tf.cast(real_example["x"], tf.float32) * (1.0 - ratio)
            + tf.cast(synthetic_example["x"], tf.float32) * ratio
        )
        labelled = synthetic_example if label_from_synthetic else real_example
        if "y" in labelled:
            blended["y"] = labelled["y"]
        if num_classes is not None:
            blended["y_soft"] = (
                _one_hot(real_example["y"], num_classes) * (1.0 - ratio)
                + _one_hot(synthetic_example["y"], num_classes) * ratio
            )
        return blended

    return tf.data.Dataset.zip((real, synthetic)).map(blend, num_parallel_calls=tf.data.AUTOTUNE)


# --- mixup and cutmix ------------------------------------------------------------------------


def mixup(dataset: tf.data.Dataset, num_classes: int, alpha: float = 0.2, seed: int = 0) -> tf.data.Dataset:
    """MixUp (Zhang et al. 2018) on batches: each example blends with a partner from its batch.

    For example `i` with partner `p(i)` (a random permutation of the batch, which may leave an
    example paired with itself) and `lam_i ~ Beta(alpha, alpha)`:
    `x_i = lam_i * x_i + (1 - lam_i) * x_p(i)` and `y_i = lam_i * one_hot(y_i) + (1 - lam_i) *
    one_hot(y_p(i))`. Other fields are kept unchanged from example `i`.

    Draws are stateless, seeded by `(seed, batch index)` from `dataset.enumerate()`, so the
    output is reproducible, parallel-safe, and every batch draws afresh. Iterating the
    returned dataset again restarts the batch count and repeats the draws: apply `mixup` after
    `.repeat()` (or change `seed` per epoch) for new draws every epoch.

    Args:
      dataset: batches `{"x": (B, D) or (B, H, W, C), "y": (B,) integers in [0, num_classes)}`.
      num_classes: number of classes of `y`.
      alpha: Beta concentration, > 0; small values keep most examples close to themselves.
      seed: integer seed of the draws.

    Returns:
      Batches with float32 `x` of the same shape and float32 `y` of shape `(B, num_classes)`.

    Raises:
      UsageError: unbatched or unlabelled data, or a bad `num_classes`, `alpha` or `seed`.
    """
    _check_batches(dataset, "mixup", images_only=False)
    _check_num_classes(num_classes)
    alpha = _positive("mixup alpha", alpha)
    seed = _seed("mixup", seed)

    def mix_batch(index, batch):
        x = tf.cast(batch["x"], tf.float32)
        size = tf.shape(x)[0]
        permutation_seed, gamma_seed_a, gamma_seed_b = tf.unstack(_batch_seeds(seed, index, 3))
        partner = _permutation(size, permutation_seed)
        lam = tf.cast(_beta(size, alpha, gamma_seed_a, gamma_seed_b), tf.float32)
        lam_x = tf.reshape(lam, [-1] + [1] * (x.shape.rank - 1))
        labels = _one_hot(batch["y"], num_classes)
        mixed = dict(batch)
        mixed["x"] = lam_x * x + (1.0 - lam_x) * tf.gather(x, partner)
        mixed["y"] = lam[:, None] * labels + (1.0 - lam[:, None]) * tf.gather(labels, partner)
        return mixed

    return dataset.enumerate().map(mix_batch, num_parallel_calls=tf.data.AUTOTUNE)


def cutmix(dataset: tf.data.Dataset, num_classes: int, alpha: float = 1.0, seed: int = 0) -> tf.data.Dataset:
    """CutMix (Yun et al. 2019) on image batches: each image gets a box pasted from a partner.

    For example `i` with partner `p(i)` (a random permutation of the batch) and
    `lam_i ~ Beta(alpha, alpha)`, a box of height `floor(H * sqrt(1 - lam_i))` and width
    `floor(W * sqrt(1 - lam_i))` centred on a uniformly drawn pixel, clipped to the image, is
    copied from `x_p(i)` into `x_i`. The label is mixed by the share of pixels actually pasted
    (`share`, after clipping and rounding): `y_i = (1 - share) * one_hot(y_i) + share *
    one_hot(y_p(i))`. Other fields are kept unchanged from example `i`.

    Draws are stateless, seeded by `(seed, batch index)` like `mixup`'s (see there for epochs).

    Args:
      dataset: batches `{"x": (B, H, W, C), "y": (B,) integers in [0, num_classes)}`.
      num_classes: number of classes of `y`.
      alpha: Beta concentration, > 0; 1.0 draws box areas uniformly.
      seed: integer seed of the draws.

    Returns:
      Batches with float32 `x` of the same shape and float32 `y` of shape `(B, num_classes)`.

    Raises:
      UsageError: unbatched, unlabelled or non-image data, or a bad `num_classes`, `alpha` or
        `seed`.
    """
    _check_batches(dataset, "cutmix", images_only=True)
    _check_num_classes(num_classes)
    alpha = _positive("cutmix alpha", alpha)
    seed = _seed("cutmix", seed)

    def cut_batch(index, batch):
        x = tf.cast(batch["x"], tf.float32)
        size, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        seeds = tf.unstack(_batch_seeds(seed, index, 5))
        partner = _permutation(size, seeds[0])
        lam = _beta(size, alpha, seeds[1], seeds[2])
        cut = tf.sqrt(1.0 - lam)
        rows = _box_mask(height, cut, seeds[3])  # (B, H)
        columns = _box_mask(width, cut, seeds[4])  # (B, W)
        pasted = rows[:, :, None] & columns[:, None, :]  # (B, H, W)
        share = tf.reduce_mean(tf.cast(pasted, tf.float32), axis=[1, 2])[:, None]
        labels = _one_hot(batch["y"], num_classes)
        mixed = dict(batch)
        mixed["x"] = tf.where(pasted[..., None], tf.gather(x, partner), x)
        mixed["y"] = (1.0 - share) * labels + share * tf.gather(labels, partner)
        return mixed

    return dataset.enumerate().map(cut_batch, num_parallel_calls=tf.data.AUTOTUNE)


def _box_mask(length, cut, seed):
    """Per example, which of `length` positions the box covers: `floor(length * cut)` positions
    centred on a uniform draw, clipped to `[0, length)`; returns bool `(B, length)`."""
    size = tf.shape(cut)[0]
    extent = tf.cast(tf.floor(tf.cast(length, tf.float64) * cut), tf.int32)
    centre = tf.random.stateless_uniform([size], seed=seed, minval=0, maxval=length, dtype=tf.int32)
    start = centre - extent // 2
    end = tf.clip_by_value(start + extent, 0, length)
    start = tf.clip_by_value(start, 0, length)
    positions = tf.range(length)[None, :]
    return (positions >= start[:, None]) & (positions < end[:, None])


def _check_batches(dataset: tf.data.Dataset, what: str, images_only: bool) -> None:
    fields = _fields(dataset, f"{what} dataset")
    if "x" not in fields or "y" not in fields:
        raise UsageError(f"{what} needs batches with fields 'x' and 'y'; the dataset has {sorted(fields)}")
    x, y = fields["x"], fields["y"]
    ranks = (4,) if images_only else (2, 4)
    accepted = "images (B, H, W, C)" if images_only else "vectors (B, D) or images (B, H, W, C)"
    if x.shape.rank not in ranks:
        raise UsageError(
            f"{what} needs batches of {accepted}; x has shape {x.shape}"
            + ("" if images_only or x.shape.rank != 3 else "; batch the dataset first")
        )
    if y.shape.rank != 1 or not y.dtype.is_integer:
        raise UsageError(f"{what} needs integer class labels y of shape (B,); y is {_describe(y)}")
    if not (x.dtype.is_floating or x.dtype.is_integer):
        raise UsageError(f"{what} needs numeric x; x is {_describe(x)}")


def _batch_seeds(seed: int, index, count: int):
    """`count` independent stateless seeds `(count, 2)` for the batch at `index`."""
    base = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
    return tf.random.experimental.stateless_split(base, num=count)


def _permutation(size, seed):
    return tf.argsort(tf.random.stateless_uniform([size], seed=seed))


def _beta(size, alpha: float, seed_a, seed_b):
    """`size` draws of Beta(alpha, alpha) as `a / (a + b)` of two Gamma(alpha) draws, float64.

    Float64 keeps small-alpha Gamma draws from underflowing to 0; if both still do, the draw
    is 0.5 instead of 0 / 0.
    """
    a = tf.random.stateless_gamma([size], seed=seed_a, alpha=alpha, dtype=tf.float64)
    b = tf.random.stateless_gamma([size], seed=seed_b, alpha=alpha, dtype=tf.float64)
    total = a + b
    return tf.where(total > 0, a / tf.where(total > 0, total, 1.0), tf.constant(0.5, tf.float64))


def _one_hot(labels, num_classes: int):
    """float32 one-hot rows; labels outside [0, num_classes) fail when the data is read instead
    of silently giving all-zero rows."""
    labels = tf.cast(labels, tf.int64)
    checks = [
        tf.debugging.assert_non_negative(labels, message="class labels must be >= 0"),
        tf.debugging.assert_less(
            labels, tf.constant(num_classes, tf.int64), message=f"class labels must be < num_classes={num_classes}"
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.one_hot(labels, num_classes, dtype=tf.float32)


# --- join ------------------------------------------------------------------------------------


def join(
    left: tf.data.Dataset,
    right: tf.data.Dataset,
    key: str,
    how: str = "inner",
    duplicates: str = "error",
) -> tf.data.Dataset:
    """Associates examples of two finite sources by a shared key field, like a database join.

    Both datasets are read into memory: `right` into a lookup table by key (pass the smaller
    side as `right`), `left` to build the output, which is a dataset of NumPy arrays in `left`'s
    order. Each output example holds all of the left example's fields and the matching right
    example's fields except the key; a right field whose name the left side already uses is
    renamed `right_<name>`. Several left examples may match the same right one.

    Args:
      left: unbatched finite examples with field `key`.
      right: unbatched finite examples with field `key`.
      key: name of the key field: an integer or string scalar on both sides (integer widths
        may differ; integer and string keys never match).
      how: "inner" keeps left examples that have a match; "left" keeps all left examples,
        fills the right fields of unmatched ones with zeros (empty strings, False) and adds
        a boolean `matched` field.
      duplicates: what to do when a key occurs more than once in `right`: "error" raises,
        "first" keeps its first example, "last" its last.

    Returns:
      The joined, unbatched dataset.

    Raises:
      UsageError: unknown `how` or `duplicates`, a missing or non-scalar key field, key types
        that differ, an endless dataset, output field names that collide, or (with
        duplicates="error") a key repeated in `right`.
      DataError: examples that cannot be stacked into arrays (shapes varying between examples).
    """
    if how not in JOIN_HOWS:
        raise UsageError(f"unknown join how={how!r}; accepted: {', '.join(JOIN_HOWS)}")
    if duplicates not in DUPLICATE_POLICIES:
        raise UsageError(f"unknown join duplicates={duplicates!r}; accepted: {', '.join(DUPLICATE_POLICIES)}")
    left_fields = _fields(left, "left")
    right_fields = _fields(right, "right")
    for what, fields in (("left", left_fields), ("right", right_fields)):
        if key not in fields:
            raise UsageError(f"join key {key!r} is not a field of {what}; its fields: {sorted(fields)}")
        spec = fields[key]
        if spec.shape.rank != 0 or not (spec.dtype.is_integer or spec.dtype == tf.string):
            raise UsageError(f"join key {key!r} of {what} is {_describe(spec)}; expected an integer or string scalar")
    if (left_fields[key].dtype == tf.string) != (right_fields[key].dtype == tf.string):
        raise UsageError(
            f"join key {key!r} is {left_fields[key].dtype.name} in left but {right_fields[key].dtype.name} in right; "
            f"cast one side so both are integers or both strings"
        )
    renamed = {}  # right field -> output field
    for name in right_fields:
        if name != key:
            renamed[name] = f"right_{name}" if name in left_fields else name
    output_names = list(left_fields) + list(renamed.values()) + (["matched"] if how == "left" else [])
    collisions = sorted({n for n in output_names if output_names.count(n) > 1})
    if collisions:
        raise UsageError(f"join output would hold fields {collisions} twice; rename those fields first")

    left_arrays = _read(left, left_fields, "left")
    right_arrays = _read(right, right_fields, "right")
    lookup: dict = {}
    for row, value in enumerate(right_arrays[key]):
        value = _key_value(value)
        if value in lookup:
            if duplicates == "error":
                raise UsageError(
                    f"right holds join key {_show_key(value)} more than once (examples {lookup[value]} and {row}); "
                    f"accepted duplicates policies: {', '.join(DUPLICATE_POLICIES)}"
                )
            if duplicates == "first":
                continue
        lookup[value] = row
    right_rows = np.array([lookup.get(_key_value(v), -1) for v in left_arrays[key]], dtype=np.int64)
    matched = right_rows >= 0
    logging.info("join on %r: %d of %d left examples matched %d right examples",
                 key, int(matched.sum()), len(right_rows), len(right_arrays[key]))

    columns = {}
    if how == "inner":
        keep = np.flatnonzero(matched)
        for name, spec in left_fields.items():
            columns[name] = (left_arrays[name][keep], spec.dtype)
        for name, out_name in renamed.items():
            columns[out_name] = (right_arrays[name][right_rows[keep]], right_fields[name].dtype)
    else:
        for name, spec in left_fields.items():
            columns[name] = (left_arrays[name], spec.dtype)
        for name, out_name in renamed.items():
            values = _blank(len(right_rows), right_arrays[name])
            values[matched] = right_arrays[name][right_rows[matched]]
            columns[out_name] = (values, right_fields[name].dtype)
        columns["matched"] = (matched, tf.bool)
    return _dataset_of(columns)


def _key_value(value):
    return value if isinstance(value, bytes) else int(value)


def _show_key(value) -> str:
    return repr(value.decode("utf-8", errors="replace")) if isinstance(value, bytes) else str(value)


def _blank(count: int, like: np.ndarray) -> np.ndarray:
    """`count` rows shaped like `like`'s: zeros, False, or empty strings."""
    shape = (count,) + like.shape[1:]
    if like.dtype == object:
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dtype=like.dtype)


# --- concat_features -------------------------------------------------------------------------


def concat_features(*sources: tf.data.Dataset, names: Sequence[str] | None = None) -> tf.data.Dataset:
    """Fuses aligned sources: their vector `x`s are concatenated into one float32 `x`.

    Example `i` of the output joins example `i` of every source (`zip`, which stops at the
    shortest source; lengths that are known, finite or endless, must agree). `x` is the
    concatenation along the last axis in the order given; `y` comes from the first source
    that has it; other fields come from the first source.

    Args:
      *sources: unbatched datasets whose `x` are vectors `(D_k,)` of a numeric dtype.
      names: a name per source for messages and the log of where each source's features sit
        in `x`; defaults to "source 0", "source 1", ...

    Returns:
      The unbatched dataset of fused examples, `x` of shape `(sum of D_k,)`.

    Raises:
      UsageError: no sources, `names` of the wrong length, a source without vector `x`, or
        known lengths that differ.
    """
    if not sources:
        raise UsageError("concat_features needs at least one dataset")
    if names is None:
        names = [f"source {i}" for i in range(len(sources))]
    elif isinstance(names, str) or len(names) != len(sources):
        raise UsageError(f"concat_features names={names!r} must give one name per source ({len(sources)})")
    names = [str(name) for name in names]
    specs = [_fields(dataset, name) for dataset, name in zip(sources, names)]
    for name, fields in zip(names, specs):
        _check_numeric_x(fields, name)
        if fields["x"].shape.rank != 1:
            raise UsageError(
                f"concat_features joins vectors (D,); x of {name} has shape {fields['x'].shape}; flatten it first"
            )
    _check_lengths(list(sources), names, infinite_is_known=True)
    labelled = next((i for i, fields in enumerate(specs) if "y" in fields), None)
    widths = [fields["x"].shape[0] for fields in specs]
    if all(width is not None for width in widths):
        offsets = np.concatenate([[0], np.cumsum(widths)])
        logging.info("concatenating features: %s", ", ".join(
            f"{name}=x[{start}:{end}]" for name, start, end in zip(names, offsets[:-1], offsets[1:])
        ))

    def fuse(*examples):
        fused = {"x": tf.concat([tf.cast(example["x"], tf.float32) for example in examples], axis=-1)}
        fused.update({key: value for key, value in examples[0].items() if key != "x"})
        if labelled is not None:
            fused["y"] = examples[labelled]["y"]
        return fused

    return tf.data.Dataset.zip(tuple(sources)).map(fuse, num_parallel_calls=tf.data.AUTOTUNE)


# --- dedupe ----------------------------------------------------------------------------------


def dedupe(dataset: tf.data.Dataset) -> tuple[tf.data.Dataset, dict]:
    """Removes examples whose content repeats an earlier example's.

    An example's content is the bytes of `x`, and of `y` when the dataset has labels, compared
    by SHA-256; other fields are ignored, and the same `x` with different labels counts as
    different. The first occurrence is kept, order is preserved. The dataset is read into
    memory and the result is a dataset of NumPy arrays.

    Args:
      dataset: unbatched finite examples with `x`.

    Returns:
      `(deduplicated dataset, report)` with report `{"examples": number read, "kept": number
      kept, "removed": number removed, "removed_indices": positions (from 0) of the first 100
      removed examples}`.

    Raises:
      UsageError: a dataset without `x`, or an endless one.
      DataError: examples that cannot be stacked into arrays (shapes varying between examples).
    """
    fields = _fields(dataset, "dataset")
    if "x" not in fields:
        raise UsageError(f"dedupe compares examples by x; the dataset has fields {sorted(fields)}")
    arrays = _read(dataset, fields, "dataset")
    count = len(arrays["x"])
    content_fields = [name for name in ("x", "y") if name in fields]
    seen: set[bytes] = set()
    kept, removed = [], []
    for index in range(count):
        digest = hashlib.sha256()
        for name in content_fields:
            digest.update(_content_bytes(arrays[name][index]))
        fingerprint = digest.digest()
        if fingerprint in seen:
            removed.append(index)
        else:
            seen.add(fingerprint)
            kept.append(index)
    report = {
        "examples": count,
        "kept": len(kept),
        "removed": len(removed),
        "removed_indices": removed[:REPORTED_INDICES],
    }
    logging.info("dedupe: kept %d of %d examples, removed %d", len(kept), count, len(removed))
    keep = np.asarray(kept, dtype=np.int64)
    deduplicated = _dataset_of({name: (arrays[name][keep], spec.dtype) for name, spec in fields.items()})
    return deduplicated, report


def _content_bytes(value) -> bytes:
    """Bytes of one field value; strings are length-prefixed so that their boundaries count."""
    value = np.asarray(value)
    if value.dtype == object:
        return b"".join(len(item).to_bytes(8, "little") + item for item in value.reshape(-1))
    return np.ascontiguousarray(value).tobytes()


# --- shared helpers --------------------------------------------------------------------------


def _fields(dataset: tf.data.Dataset, what: str) -> dict[str, tf.TensorSpec]:
    """The element spec of a dataset of flat dicts of tensors; UsageError for anything else."""
    if not isinstance(dataset, tf.data.Dataset):
        raise UsageError(f"{what} must be a tf.data.Dataset; got {type(dataset).__name__}")
    spec = dataset.element_spec
    if not isinstance(spec, Mapping):
        raise UsageError(f"{what} must yield dicts of tensors such as {{'x': ..., 'y': ...}}; it yields {spec}")
    for name, field in spec.items():
        if not isinstance(field, tf.TensorSpec):
            raise UsageError(f"{what} field {name!r} is {field}; expected a plain tensor")
    return dict(spec)


def _describe(spec: tf.TensorSpec) -> str:
    return f"shape {tuple(spec.shape.as_list()) if spec.shape.rank is not None else 'unknown'} {spec.dtype.name}"


def _check_numeric_x(fields: dict[str, tf.TensorSpec], what: str) -> None:
    if "x" not in fields:
        raise UsageError(f"{what} has no field 'x'; its fields: {sorted(fields)}")
    if not (fields["x"].dtype.is_floating or fields["x"].dtype.is_integer):
        raise UsageError(f"x of {what} is {_describe(fields['x'])}; expected numbers")


def _check_lengths(datasets: list[tf.data.Dataset], names: list[str], infinite_is_known: bool) -> None:
    """Raises UsageError when two datasets zipped together have different known lengths.

    `infinite_is_known=False` lets an endless dataset pair with a finite one (zip then ends
    with the finite one).
    """
    known = []
    for dataset, name in zip(datasets, names):
        length = int(dataset.cardinality())
        if length == tf.data.UNKNOWN_CARDINALITY or (length == tf.data.INFINITE_CARDINALITY and not infinite_is_known):
            continue
        known.append((name, length))
    if len({length for _, length in known}) > 1:
        described = ", ".join(
            f"{name} has {'endless' if length == tf.data.INFINITE_CARDINALITY else length} examples"
            for name, length in known
        )
        raise UsageError(f"aligned datasets differ in length ({described}); zip would drop the surplus examples")


def _read(dataset: tf.data.Dataset, fields: dict[str, tf.TensorSpec], what: str) -> dict[str, np.ndarray]:
    """All examples of a finite dataset as one NumPy array per field (strings as bytes objects)."""
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise UsageError(f"{what} is endless; it must be finite to be read into memory (drop .repeat())")
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in fields}
    try:
        for batch in dataset.batch(READ_BATCH).as_numpy_iterator():
            for name in fields:
                chunks[name].append(batch[name])
    except tf.errors.InvalidArgumentError as error:
        reason = (error.message or "").splitlines()[0] if error.message else type(error).__name__
        raise DataError(f"{what}: cannot stack its examples into arrays ({reason})") from None
    arrays = {}
    for name, spec in fields.items():
        if chunks[name]:
            arrays[name] = np.concatenate(chunks[name])
        else:
            dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
            shape = (0,) + tuple(d if d is not None else 0 for d in spec.shape.as_list())
            arrays[name] = np.empty(shape, dtype=dtype)
    return arrays


def _dataset_of(columns: dict[str, tuple[np.ndarray, tf.DType]]) -> tf.data.Dataset:
    """An unbatched dataset of the rows of equally long arrays, each field of the given dtype."""
    tensors = {name: tf.constant(values, dtype=dtype) for name, (values, dtype) in columns.items()}
    return tf.data.Dataset.from_tensor_slices(tensors)


def _fraction(what: str, value) -> float:
    number = _number(what, value)
    if not 0.0 <= number <= 1.0:
        raise UsageError(f"{what}={value!r} must lie in [0, 1]")
    return number


def _positive(what: str, value) -> float:
    number = _number(what, value)
    if number <= 0:
        raise UsageError(f"{what}={value!r} must be a finite number > 0")
    return number


def _number(what: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what}={value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise UsageError(f"{what}={value!r} must be a finite number")
    return number


def _check_num_classes(num_classes) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise UsageError(f"num_classes={num_classes!r} must be a positive integer")


def _seed(what: str, seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UsageError(f"{what} seed={seed!r} must be an integer")
    return int(seed)
