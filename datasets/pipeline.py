"""How data flows to a model: draw examples in a shuffled order, batch, augment, scale, prefetch.

Data held as rows (arrays in memory, or file paths decoded as they are drawn; see
`rows.rows_of`) is drawn by position: example p of the endless stream is row
`index_shuffle(p mod N)` of a permutation seeded by (seed, epoch p div N), so every epoch is a new
permutation of all N rows, and where the stream stands is the one number p. The iterator is
then checkpointed symbolically, as that position (`tf.data.Options.experimental_symbolic_checkpoint`):
a checkpoint holds no examples, however large the data. Rows gathered a batch at a time (arrays
and tables, without augmentation) can also be drawn inside the training step itself
(`batch_draw`, which the loop uses on one replica): the same batches, without a `tf.data`
iterator's hand-over per batch, and the position is a variable of the run. Other sources (tfds)
are cached in memory when they fit, shuffled through a buffer, and checkpointed with that buffer.

Scaling is an affine map per feature, `model = (data - offset) / factor`, chosen from the
`DataSpec`: bounded data (images) maps its `value_range` onto the model's range (e.g. [-1, 1]
for a tanh generator); unbounded vectors are standardised with the spec's `loc` and `scale`.
`Scaling.decode` maps model outputs back to data space.
"""

from __future__ import annotations

import dataclasses
import weakref

import numpy as np
import tensorflow as tf

from synthblend.datasets import augment, rows as row_data
from synthblend.datasets.sources import DataSpec

# The shuffle buffer of streamed sources (`training_dataset`'s default), in examples.
SHUFFLE_BUFFER = 10000
# Datasets that are not already in memory are cached there when they fit under this size.
CACHE_LIMIT_BYTES = 2 * 1024**3


@dataclasses.dataclass(frozen=True)
class Scaling:
    """`encode(x) = (x - offset) / factor`; `decode` is its inverse, clipped to `clip` if set."""

    offset: np.ndarray
    factor: np.ndarray
    clip: tuple[float, float] | None = None

    def encode(self, x):
        return (tf.cast(x, tf.float32) - self.offset) / self.factor

    def decode(self, y):
        x = tf.cast(y, tf.float32) * self.factor + self.offset
        if self.clip is not None:
            x = tf.clip_by_value(x, *self.clip)
        return x


def scaling(spec: DataSpec, model_range: tuple[float, float] | None) -> Scaling:
    """The map from `spec`'s data space to a model working in `model_range` (None: standardised)."""
    if spec.value_range is not None and model_range is not None:
        low, high = spec.value_range
        model_low, model_high = model_range
        factor = (high - low) / (model_high - model_low)
        offset = low - model_low * factor
        return Scaling(np.float32(offset), np.float32(factor), clip=(low, high))
    if spec.value_range is None and model_range is None:
        if spec.loc is None or spec.scale is None:
            raise ValueError(f"unbounded data {spec.name} needs loc and scale in its spec to be standardised")
        return Scaling(np.asarray(spec.loc, np.float32), np.asarray(spec.scale, np.float32))
    raise ValueError(f"data range {spec.value_range} of {spec.name} does not fit model range {model_range}")


def training_dataset(
    dataset: tf.data.Dataset,
    spec: DataSpec,
    *,
    batch_size: int,
    scale: Scaling,
    seed: int,
    shuffle_buffer: int | None = None,
    keys: tuple[str, ...] = ("x", "y"),
    augmentation=None,
    shard=None,
) -> tf.data.Dataset:
    """An endless stream of batches `{"x": float32 in model range, "y": int64}` for training.

    Raw examples are cached before scaling (uint8 images take a quarter of the memory of
    float32); scaling runs once per batch, vectorised, after batching. `augmentation` (a
    `datasets.augment.augmenter`) transforms each batch in data space before it is scaled.
    `shard(dataset)` keeps this worker's share of the examples, before caching and shuffling
    (`trainers.distribute.input_fn`); `batch_size` is then the batch of one replica.
    """
    rows, draw = row_data.rows_of(dataset), None

    def scaled(batch):
        return {**batch, "x": scale.encode(batch["x"])}

    if rows is not None:
        # A worker's step takes one batch per replica of it.
        worker = (getattr(shard, "index", 0), getattr(shard, "count", 1))
        share = batch_size * getattr(shard, "replicas", 1)
        # Without augmentation (which works in data space) the batch is scaled where it is gathered.
        then = scaled if augmentation is None else None
        dataset = positional_batches(rows, seed=seed, worker=worker, batch_size=share, keys=keys, then=then)
        if augmentation is None and share == batch_size:
            draw = positional_draw(rows, seed=seed, worker=worker, batch_size=share, keys=keys, then=then)
        if share != batch_size:  # one batch per replica of this worker
            dataset = dataset.unbatch().batch(batch_size, drop_remainder=True)
    else:
        dataset = dataset.map(lambda example: {k: example[k] for k in keys if k in example})
        if shard is not None:
            dataset = shard(dataset)
        if not spec.in_memory and _fits_in_cache(spec):
            dataset = dataset.cache()
        shuffle_buffer = shuffle_buffer or SHUFFLE_BUFFER
        buffer = min(shuffle_buffer, spec.num_examples or shuffle_buffer)
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()
        dataset = dataset.batch(batch_size, drop_remainder=True)
    if augmentation is not None:
        dataset = augment.apply(dataset, augmentation)
    if rows is None or augmentation is not None:
        dataset = dataset.map(scaled, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    # The iterator is checkpointed. State it cannot serialize is left out instead of failing the
    # save: the augmentation layers' seed state (a variable, which the trainer checkpoints beside
    # the iterator) and Python functions of some sources (decoding, generators).
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    # Drawn by position, the stream is saved as its position. Augmented batches are not: a
    # symbolic restore would draw the batches that were prefetched again, from seed states
    # already moved on; their checkpoint holds those few batches instead.
    options.experimental_symbolic_checkpoint = rows is not None and augmentation is None
    dataset = dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
    if draw is not None:
        _DRAWS[dataset] = (draw, batch_size)
    return dataset


def stream_rows(rows, *, seed: int, batch_size: int, worker: tuple[int, int] = (0, 1)):
    """`shuffled(k)`: the row numbers of this worker's stream entries `k` (a vector), as
    `positional_batches` describes."""
    index, count = worker
    rows_count = tf.constant(rows.count, tf.int64)
    seed = tf.constant(seed, tf.int64)
    width, share = tf.constant(count * batch_size, tf.int64), tf.constant(batch_size, tf.int64)

    def shuffled(k):
        position = (k // share) * width + index * share + k % share
        epoch = position // rows_count
        # The raw op takes one [3] seed per index; `tf.random.experimental.index_shuffle` pads a
        # [2] seed with this constant in front (its padding of an [n, 2] seed pads the wrong axis).
        seeds = tf.stack([tf.fill(tf.shape(epoch), tf.constant(498247692, tf.int64)),
                          tf.fill(tf.shape(epoch), seed), epoch], axis=1)
        return tf.raw_ops.RandomIndexShuffle(index=position % rows_count, seed=seeds, max_index=rows_count - 1,
                                             rounds=4)

    return shuffled


def positional_draw(rows, *, seed: int, batch_size: int, worker: tuple[int, int] = (0, 1),
                    keys: tuple[str, ...] = ("x", "y"), then=None):
    """`draw(k)`: the batch of this worker's stream entries `k` (a vector of `batch_size` stream
    indices), gathered from the rows' tensors in one op per column (and decoded, when the rows'
    decode is vectorised), then transformed by `then`; None when the rows are decoded one example
    at a time (image files)."""
    shuffled = stream_rows(rows, seed=seed, batch_size=batch_size, worker=worker)
    then = then or (lambda batch: batch)
    if rows.decode is None:
        wanted = {key: column for key, column in rows.tensors.items() if key in keys}
        return row_data.plain(lambda k: then({key: tf.gather(column, shuffled(k)) for key, column in wanted.items()}))
    if rows.vectorised:
        return row_data.plain(lambda k: then({key: value for key, value in rows.example(shuffled(k)).items()
                                              if key in keys}))
    return None


def positional_batches(rows, *, seed: int, batch_size: int, worker: tuple[int, int] = (0, 1),
                       keys: tuple[str, ...] = ("x", "y"), then=None) -> tf.data.Dataset:
    """The endless stream of batches of `rows`' examples (`rows.Rows`) drawn by position: example
    p of the whole run's stream is row `index_shuffle(p mod N, (seed, p div N))`, each epoch a new
    permutation of the N rows. Worker `index` of `count` takes, of each global batch of
    `count * batch_size` positions, the `index`-th run of `batch_size`: the workers' batches of a
    step together are the batch one process would draw. Rows held as arrays are gathered a batch
    at a time (`positional_draw`, one op per batch, not per example), and decoded so when their
    `decode` is vectorised; rows with another `decode` are decoded one by one, in parallel.
    `then(batch)`, when given, transforms each gathered batch in the same step."""
    stream = tf.data.Dataset.range(2**62)
    draw = positional_draw(rows, seed=seed, batch_size=batch_size, worker=worker, keys=keys, then=then)
    if draw is not None:
        return stream.batch(batch_size, drop_remainder=True).map(draw, num_parallel_calls=tf.data.AUTOTUNE,
                                                                 deterministic=True)
    shuffled = stream_rows(rows, seed=seed, batch_size=batch_size, worker=worker)
    examples = stream.map(lambda k: {key: value for key, value in rows.example(shuffled(k[None])[0]).items()
                                     if key in keys}, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return examples.batch(batch_size, drop_remainder=True).map(then or (lambda batch: batch),
                                                                num_parallel_calls=tf.data.AUTOTUNE,
                                                                deterministic=True)


class BatchDraw(tf.Module):
    """The batches of a `training_dataset` of rows drawn by position, drawn inside the training
    step instead of through a `tf.data` iterator: `next(draw)` gathers the batch at the stream's
    position from the rows held as tensors and moves the position on, in the graph of the step
    that calls it. For small models a `tf.data` iterator's hand-over of each batch is a large
    share of the step; here a batch costs its gather. The stream is the dataset's, batch for
    batch. Its position (`position`, the stream entries drawn) is all a checkpoint holds of the
    data; `skip(n)` moves it past `n` batches."""

    def __init__(self, draw, batch_size: int):
        super().__init__(name="batch_draw")
        self._draw = draw
        self.batch_size = batch_size
        self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position")

    def __iter__(self):
        return self

    def __next__(self):
        start = self.position.assign_add(self.batch_size) - self.batch_size
        return self._draw(start + tf.range(self.batch_size, dtype=tf.int64))

    def skip(self, num_batches) -> None:
        self.position.assign_add(tf.cast(num_batches, tf.int64) * self.batch_size)


# Training datasets whose batches a `BatchDraw` can draw in the step: dataset -> (draw, batch size).
_DRAWS: "weakref.WeakKeyDictionary[tf.data.Dataset, tuple]" = weakref.WeakKeyDictionary()


def batch_draw(dataset) -> BatchDraw | None:
    """A new `BatchDraw` of the batches `dataset` yields, at the stream's start, when
    `training_dataset` made it from rows that are gathered a batch at a time (arrays, tables)
    without augmentation; None for any other dataset."""
    try:
        made = _DRAWS.get(dataset)
    except TypeError:
        return None
    return None if made is None else BatchDraw(*made)


def evaluation_dataset(dataset: tf.data.Dataset, *, batch_size: int, scale: Scaling,
                       keys: tuple[str, ...] = ("x", "y")) -> tf.data.Dataset:
    """One pass over `dataset` in order, in batches scaled like the training ones."""
    dataset = dataset.map(lambda example: {k: example[k] for k in keys if k in example})
    dataset = dataset.batch(batch_size).map(lambda batch: {**batch, "x": scale.encode(batch["x"])})
    return dataset.prefetch(tf.data.AUTOTUNE)


def _fits_in_cache(spec: DataSpec) -> bool:
    if spec.num_examples is None:
        return False
    return spec.num_examples * int(np.prod(spec.shape)) <= CACHE_LIMIT_BYTES


def take_examples(dataset: tf.data.Dataset, num: int) -> dict[str, np.ndarray]:
    """The first `num` raw examples (`x`, and `y` when labelled) as arrays."""
    batch = next(iter(dataset.batch(num).take(1)))
    return {key: batch[key].numpy() for key in ("x", "y") if key in batch}
