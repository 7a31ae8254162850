"""Data held as rows: columns any example of which can be read by its number.

Arrays in memory are rows (`x`, `y`, ... one entry per example); so is a folder of image files
listed as paths and labels, whose `decode` reads an image when its row is drawn. The training
pipeline draws rows by position (`pipeline.positional_batches`), so a checkpoint stores where
the stream stands and not the examples, and a folder's pixels are never all in memory at once.

A source returns `rows_dataset(rows)`, a `tf.data.Dataset` of its examples like any other;
`rows_of(dataset)` gives the rows back to the pipeline (None for other datasets, such as tfds').
"""

from __future__ import annotations

import weakref
from typing import Callable

import numpy as np
import tensorflow as tf

_ROWS: "weakref.WeakKeyDictionary[tf.data.Dataset, Rows]" = weakref.WeakKeyDictionary()


class Rows:
    """Columns of equal length (`count` rows), held once as tensors, and `decode(row) -> example`,
    the example of one row's entries (None: the entries are the example). A `vectorised` decode
    takes a batch of rows' entries as well as one row's (TensorFlow ops over the leading axes),
    and is applied to each gathered batch."""

    def __init__(self, columns: dict, decode: Callable[[dict], dict] | None = None, vectorised: bool = False):
        # Made eagerly, once: the dataset of the examples and the pipeline's gathers share these
        # tensors (a function that gathers from them captures them as inputs, not as constants).
        self.tensors = {key: as_tensor(column) for key, column in columns.items()}
        self.decode = decode
        self.vectorised = vectorised

    @property
    def count(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """The columns as arrays (views of the tensors where NumPy can share their memory)."""
        return {key: tensor.numpy() for key, tensor in self.tensors.items()}

    def example(self, row):
        """The example of row number `row` (a scalar tensor; a vector of them for a batch, when
        the decode is vectorised or there is none), decoded."""
        entries = {key: tf.gather(column, row) for key, column in self.tensors.items()}
        return entries if self.decode is None else self.decode(entries)

    def subset(self, index: np.ndarray) -> tf.data.Dataset:
        """The dataset of the rows numbered `index`, in that order, known to the pipeline as rows."""
        index = tf.constant(index)
        return rows_dataset({key: tf.gather(column, index) for key, column in self.tensors.items()}, self.decode,
                            self.vectorised)


def plain(function):
    """`function` traced as written: it holds no Python control flow over tensors, so converting
    it with AutoGraph would only cost time (a few hundred milliseconds the first time)."""
    return tf.autograph.experimental.do_not_convert(function)


# Rows decoded together when a pass over the examples of a vectorised decode reads them in order.
DECODE_RUN = 1024

# TensorFlow's kernels take CPU tensors aligned to this many bytes (Eigen's largest alignment).
ALIGNMENT = 64


def as_tensor(column) -> tf.Tensor:
    """`column` as a tensor. A NumPy array of numbers is handed over through DLPack, sharing its
    memory (copied first into an aligned buffer if it is not aligned as TensorFlow's kernels
    require): `tf.convert_to_tensor` copies it and takes twice its size while it does. Anything
    else (strings, tensors) is converted."""
    if not (isinstance(column, np.ndarray) and column.dtype.kind in "biuf" and column.size):
        return tf.convert_to_tensor(column)
    if column.ctypes.data % ALIGNMENT or not column.flags.c_contiguous or not column.flags.writeable:
        buffer = np.empty(column.nbytes + ALIGNMENT, np.uint8)
        start = -buffer.ctypes.data % ALIGNMENT
        aligned = buffer[start:start + column.nbytes].view(column.dtype).reshape(column.shape)
        aligned[...] = column
        column = aligned
    return tf.experimental.dlpack.from_dlpack(column.__dlpack__())


def rows_dataset(columns: dict[str, np.ndarray], decode: Callable[[dict], dict] | None = None,
                 vectorised: bool = False) -> tf.data.Dataset:
    """The dataset of the examples of `columns` in row order, known to the pipeline as rows
    (`decode` and `vectorised` as `Rows` takes them)."""
    rows = Rows(columns, decode, vectorised)
    # Gathered from the tensors rather than sliced: an iterator over `from_tensor_slices` would
    # copy the whole data once more. A vectorised decode runs on runs of rows, then split into
    # examples: one expansion per example would make a pass over a large table take minutes.
    if vectorised:
        dataset = tf.data.Dataset.range(rows.count).batch(DECODE_RUN).map(
            plain(rows.example), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True).unbatch()
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(rows.count))
    else:
        dataset = tf.data.Dataset.range(rows.count).map(rows.example, num_parallel_calls=tf.data.AUTOTUNE,
                                                        deterministic=True)
    _ROWS[dataset] = rows
    return dataset


def rows_of(dataset: tf.data.Dataset) -> Rows | None:
    """The rows behind `dataset` when a source made it with `rows_dataset`."""
    try:
        return _ROWS.get(dataset)
    except TypeError:
        return None
