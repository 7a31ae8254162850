"""Measures of generated data that need no pretrained weights.

- `train_classifier`: a small domain classifier trained on the real data; its predictions say
  which class a generated example looks like.
- `best_matching_accuracy`: accuracy of unsupervised cluster assignments (InfoGAN's categorical
  code) after the best one-to-one matching of clusters to classes (Hungarian algorithm).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from datasets.sources import DataSpec


def classifier(spec: DataSpec, width: int = 32) -> keras.Model:
    """A small classifier taking data-space inputs (raw pixel values, or raw vectors).

    Images go through two stride-2 convolutions and a dense layer; vectors through an MLP.
    Inputs are rescaled inside the model, so it reads data as the source yields it.
    """
    inputs = keras.Input(spec.shape, name="data")
    if spec.value_range is not None:
        low, high = spec.value_range
        x = keras.layers.Rescaling(1.0 / (high - low), offset=-low / (high - low))(inputs)
    else:
        x = keras.layers.Normalization(mean=spec.loc, variance=np.square(spec.scale))(inputs)
    if spec.is_image:
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(4 * width, activation="relu", name="features")(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(spec.num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="domain_classifier")


def train_classifier(dataset: tf.data.Dataset, spec: DataSpec, *, epochs: int = 5, batch_size: int = 128,
                     seed: int = 0) -> keras.Model:
    """Fits `classifier(spec)` on the labelled examples of `dataset` (unbatched `{"x", "y"}`)."""
    if spec.num_classes < 2:
        raise ValueError(f"{spec.name} has no labels to train a classifier on")
    keras.utils.set_random_seed(seed)
    model = classifier(spec)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    batches = (
        dataset.map(lambda e: (tf.cast(e["x"], tf.float32), e["y"]))
        .shuffle(min(spec.num_examples or 10000, 10000), seed=seed)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    model.fit(batches, epochs=epochs, verbose=0, shuffle=False)  # the dataset shuffles itself
    return model


def predict_classes(model: keras.Model, data: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Predicted class of each data-space example."""
    return np.argmax(model.predict(np.asarray(data, np.float32), batch_size=batch_size, verbose=0), axis=-1)


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost one-to-one assignment (Hungarian algorithm, O(n^3)).

    Every row of a cost matrix with no more rows than columns is assigned a distinct column;
    a wider-than-tall matrix is handled by transposing.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.shape[0] > cost.shape[1]:
        columns, rows = linear_sum_assignment(cost.T)
        order = np.argsort(rows)
        return rows[order], columns[order]
    n, m = cost.shape
    # Potentials u (rows) and v (columns), 1-based with a virtual column 0, as in the classic
    # shortest augmenting path formulation.
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match = np.zeros(m + 1, dtype=int)  # match[column] = row assigned to it (1-based), 0 = none
    for row in range(1, n + 1):
        match[0] = row
        column = 0
        shortest = np.full(m + 1, np.inf)
        previous = np.zeros(m + 1, dtype=int)
        used = np.zeros(m + 1, dtype=bool)
        while match[column] != 0:
            used[column] = True
            current_row = match[column]
            reduced = cost[current_row - 1] - u[current_row] - v[1:]
            free = ~used[1:]
            better = free & (reduced < shortest[1:])
            shortest[1:][better] = reduced[better]
            previous[1:][better] = column
            candidates = np.where(free, shortest[1:], np.inf)
            next_column = int(np.argmin(candidates)) + 1
            delta = candidates[next_column - 1]
            u[match[used]] += delta
            v[used] -= delta
            shortest[1:][free] -= delta
            column = next_column
        while column != 0:
            prior = previous[column]
            match[column] = match[prior]
            column = prior
    rows = np.array([match[c] - 1 for c in range(1, m + 1) if match[c] != 0])
    columns = np.array([c - 1 for c in range(1, m + 1) if match[c] != 0])
    order = np.argsort(rows)
    return rows[order], columns[order]


def best_matching_accuracy(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, dict[int, int]]:
    """Accuracy of cluster ids `predicted` against `labels` under the best one-to-one matching.

    Returns the accuracy and the matching `{cluster: label}`. Clusters left unmatched (more
    clusters than labels) count as errors.
    """
    predicted, labels = np.asarray(predicted).astype(int), np.asarray(labels).astype(int)
    clusters, classes = predicted.max() + 1, labels.max() + 1
    counts = np.zeros((clusters, classes))
    np.add.at(counts, (predicted, labels), 1)
    rows, columns = linear_sum_assignment(-counts)
    return float(counts[rows, columns].sum() / len(labels)), dict(zip(rows.tolist(), columns.tolist()))
