"""Data held as rows: columns any example of which can be read by its number.

Arrays in memory are rows (`x`, `y`, ... one entry per example); so is a folder of image files
listed as paths and labels, whose `decode` reads an image when its row is drawn. The training
pipeline draws rows by position (`pipeline.positional_batches`), so a checkpoint stores where
the stream stands and not the examples, and a folder's pixels are never all in memory at once.

A source returns `rows_dataset(rows)`, a `tf.data.Dataset` of its examples like any other;
`rows_of(dataset)` gives the rows back to the pipeline (None for other datasets, such as tfds').
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Callable

import numpy as np
import tensorflow as tf

_ROWS: "weakref.WeakKeyDictionary[tf.data.Dataset, Rows]" = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class Rows:
    """Columns of equal length (`count` rows) and `decode(row) -> example`, the example of one
    row's entries (None: the entries are the example)."""

    columns: dict[str, np.ndarray]
    decode: Callable[[dict], dict] | None = None

    @property
    def count(self) -> int:
        return len(next(iter(self.columns.values())))

    def tensors(self) -> dict[str, tf.Tensor]:
        """The columns as tensors, made eagerly: a function that gathers from them captures
        them as inputs instead of copying them into its graph as constants."""
        return {key: tf.convert_to_tensor(column) for key, column in self.columns.items()}

    def example(self, tensors: dict[str, tf.Tensor], row):
        """The example of row number `row` (a scalar tensor) of `tensors` (see `tensors`), decoded."""
        entries = {key: tf.gather(column, row) for key, column in tensors.items()}
        return entries if self.decode is None else self.decode(entries)


def rows_dataset(columns: dict[str, np.ndarray], decode: Callable[[dict], dict] | None = None) -> tf.data.Dataset:
    """The dataset of the examples of `columns` in row order, known to the pipeline as rows."""
    rows = Rows(dict(columns), decode)
    dataset = tf.data.Dataset.from_tensor_slices(rows.columns)
    if decode is not None:
        dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    _ROWS[dataset] = rows
    return dataset


def rows_of(dataset: tf.data.Dataset) -> Rows | None:
    """The rows behind `dataset` when a source made it with `rows_dataset`."""
    try:
        return _ROWS.get(dataset)
    except TypeError:
        return None
