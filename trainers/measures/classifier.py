"""Measures of generated data that need no pretrained weights.

- `train_classifier`: a small domain classifier trained on the real data; its predictions say
  which class a generated example looks like.
- `best_matching_accuracy`: accuracy of unsupervised cluster assignments (InfoGAN's categorical
  code) after the best one-to-one matching of clusters to classes (Hungarian algorithm).
"""

from __future__ import annotations

import keras
import numpy as np
from scipy.optimize import linear_sum_assignment
import tensorflow as tf

from synthblend.datasets.sources import DataSpec


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
                     seed: int = 0, steps: int | None = None) -> keras.Model:
    """Fits `classifier(spec)` on the labelled examples of `dataset` (unbatched `{"x", "y"}`):
    `epochs` passes, or `steps` batches of the examples repeated (reshuffled each pass) when given."""
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
    )
    if steps is not None:
        batches, epochs = batches.repeat(), 1
    model.fit(batches.prefetch(tf.data.AUTOTUNE), epochs=epochs, steps_per_epoch=steps, verbose=0,
              shuffle=False)  # the dataset shuffles itself
    return model


def predict_classes(model: keras.Model, data: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Predicted class of each data-space example."""
    return np.argmax(model.predict(np.asarray(data, np.float32), batch_size=batch_size, verbose=0), axis=-1)


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
