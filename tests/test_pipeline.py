"""Tests for datasets.pipeline: scaling into a model's range and the training stream."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from synthblend.datasets import pipeline, sources
from synthblend.datasets.sources import DataSpec

IMAGE_SPEC = DataSpec(name="images", shape=(2, 2, 1), value_range=(0.0, 255.0))


def _images(n=10, size=2):
    """uint8 images (n, size, size, 1) whose pixels all equal the example's index * 25."""
    return (np.arange(n, dtype=np.uint8) * 25)[:, None, None, None].repeat(size, 1).repeat(size, 2)


def _index(encoded):
    """The example index back from a batch of `_images` encoded to [-1, 1]."""
    return np.rint((encoded[:, 0, 0, 0] + 1.0) * 127.5 / 25).astype(int)


def _batches(dataset, n):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(n)]


# --- scaling ---------------------------------------------------------------------------------


def test_scaling_maps_uint8_range_onto_minus_one_one():
    scale = pipeline.scaling(IMAGE_SPEC, (-1.0, 1.0))
    encoded = scale.encode(np.array([0, 255, 127.5], np.float32)).numpy()
    np.testing.assert_allclose(encoded, [-1.0, 1.0, 0.0], atol=1e-6)


def test_scaling_encodes_uint8_tensors():
    scale = pipeline.scaling(IMAGE_SPEC, (-1.0, 1.0))
    encoded = scale.encode(tf.constant([0, 255], tf.uint8))
    assert encoded.dtype == tf.float32
    np.testing.assert_allclose(encoded.numpy(), [-1.0, 1.0], atol=1e-6)


def test_scaling_maps_onto_zero_one():
    scale = pipeline.scaling(IMAGE_SPEC, (0.0, 1.0))
    encoded = scale.encode(np.array([0, 51, 255], np.float32)).numpy()
    np.testing.assert_allclose(encoded, [0.0, 0.2, 1.0], atol=1e-6)
    np.testing.assert_allclose(scale.decode(encoded).numpy(), [0, 51, 255], atol=1e-4)


@pytest.mark.parametrize("model_range", [(-1.0, 1.0), (0.0, 1.0)])
def test_scaling_decode_inverts_encode(model_range):
    scale = pipeline.scaling(IMAGE_SPEC, model_range)
    x = np.array([0, 1, 17, 128, 254, 255], np.float32)
    np.testing.assert_allclose(scale.decode(scale.encode(x)).numpy(), x, atol=1e-4)


def test_scaling_decode_clips_to_data_range():
    scale = pipeline.scaling(IMAGE_SPEC, (-1.0, 1.0))
    decoded = scale.decode(np.array([-3.0, -1.0, 1.0, 1.5], np.float32))
    assert decoded.dtype == tf.float32
    np.testing.assert_allclose(decoded.numpy(), [0.0, 0.0, 255.0, 255.0], atol=1e-4)


def test_scaling_of_a_float_image_range():
    spec = dataclasses.replace(IMAGE_SPEC, value_range=(-1.0, 1.0))
    scale = pipeline.scaling(spec, (0.0, 1.0))
    np.testing.assert_allclose(scale.encode(np.array([-1.0, 0.0, 1.0])).numpy(), [0, 0.5, 1])
    np.testing.assert_allclose(scale.decode(np.array([-1.0, 2.0])).numpy(), [-1.0, 1.0])


def test_scaling_standardises_unbounded_vectors():
    x = np.array([[0.0, 10.0], [2.0, 30.0], [4.0, 20.0], [6.0, 40.0]], np.float32)
    _, spec = sources.from_arrays("vectors", x)
    scale = pipeline.scaling(spec, None)
    encoded = scale.encode(x).numpy()
    np.testing.assert_allclose(encoded.mean(axis=0), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(encoded.std(axis=0), [1.0, 1.0], rtol=1e-5)
    # Per feature: the second column's scale is not the first's.
    np.testing.assert_allclose(encoded[:, 0], (x[:, 0] - 3.0) / np.std(x[:, 0]), rtol=1e-5)


def test_scaling_of_vectors_round_trips_without_clipping():
    _, spec = sources.from_arrays("vectors", np.array([[0.0, 1.0], [2.0, 5.0]], np.float32))
    scale = pipeline.scaling(spec, None)
    assert scale.clip is None
    x = np.array([[-100.0, 3.0], [1.0, 1000.0]], np.float32)
    np.testing.assert_allclose(scale.decode(scale.encode(x)).numpy(), x, rtol=1e-5)


@pytest.mark.parametrize(
    "spec, model_range",
    [
        (IMAGE_SPEC, None),
        (DataSpec("v", (2,), value_range=None, loc=(0.0, 0.0), scale=(1.0, 1.0)), (-1.0, 1.0)),
    ],
    ids=["bounded-data-unbounded-model", "unbounded-data-bounded-model"],
)
def test_scaling_range_mismatch(spec, model_range):
    with pytest.raises(ValueError, match=rf"data range .* of {spec.name} does not fit model range"):
        pipeline.scaling(spec, model_range)


def test_scaling_of_vectors_without_statistics_is_rejected():
    spec = DataSpec("vectors", (2,), value_range=None)
    with pytest.raises(ValueError):
        pipeline.scaling(spec, None)


# --- training_dataset ------------------------------------------------------------------------


def _training(dataset, spec, *, batch_size=4, seed=0, model_range=(-1.0, 1.0), **kwargs):
    scale = pipeline.scaling(spec, model_range)
    return pipeline.training_dataset(
        dataset, spec, batch_size=batch_size, scale=scale, seed=seed, **kwargs
    )


@pytest.fixture
def labelled_images():
    x = _images(10)
    y = np.arange(10) % 3
    factors = np.arange(20, dtype=np.float32).reshape(10, 2)
    return sources.from_arrays("images", x, y, factors=factors, factor_names=("a", "b"))


def test_training_batches_have_the_batch_size(labelled_images):
    stream = _training(*labelled_images, batch_size=4)
    assert stream.element_spec["x"].shape == (4, 2, 2, 1)
    assert stream.element_spec["y"].shape == (4,)
    assert [b["x"].shape[0] for b in _batches(stream, 6)] == [4] * 6


def test_training_images_are_float32_in_model_range(labelled_images):
    stream = _training(*labelled_images, batch_size=10)
    [batch] = _batches(stream, 1)
    assert batch["x"].dtype == np.float32
    # The raw pixels are 0, 25, ..., 225: all of them, encoded to [-1, 1].
    expected = np.arange(10) * 25 / 127.5 - 1.0
    np.testing.assert_allclose(np.sort(batch["x"][:, 0, 0, 0]), expected, atol=1e-6)


def test_training_keeps_labels_with_their_images(labelled_images):
    stream = _training(*labelled_images, batch_size=5)
    for batch in _batches(stream, 4):
        assert batch["y"].dtype == np.int64
        np.testing.assert_array_equal(batch["y"], _index(batch["x"]) % 3)


def test_training_drops_keys_not_asked_for(labelled_images):
    dataset, spec = labelled_images
    assert "factors" in dataset.element_spec
    assert set(_training(dataset, spec).element_spec) == {"x", "y"}
    assert set(_training(dataset, spec, keys=("x",)).element_spec) == {"x"}


def test_training_on_unlabelled_data():
    stream = _training(*sources.from_arrays("images", _images(6)), batch_size=3)
    assert set(stream.element_spec) == {"x"}
    assert len(_batches(stream, 3)) == 3


def test_training_stream_is_endless(labelled_images):
    stream = _training(*labelled_images, batch_size=4)
    batches = _batches(stream, 25)  # 100 examples: ten epochs of 10
    assert len(batches) == 25
    index = np.concatenate([_index(b["x"]) for b in batches])
    counts = np.bincount(index, minlength=10)
    np.testing.assert_array_equal(counts, [10] * 10)


def test_training_each_epoch_is_a_permutation(labelled_images):
    stream = _training(*labelled_images, batch_size=5)
    index = np.concatenate([_index(b["x"]) for b in _batches(stream, 2)])
    assert sorted(index) == list(range(10))
    assert list(index) != list(range(10))  # shuffled


def _first_batches(seed, n=3):
    x = _images(64, size=1)
    dataset, spec = sources.from_arrays("images", x, np.arange(64) % 7)
    return _batches(_training(dataset, spec, batch_size=8, seed=seed), n)


def test_training_same_seed_same_batches():
    first, second = _first_batches(seed=3), _first_batches(seed=3)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["x"], b["x"])
        np.testing.assert_array_equal(a["y"], b["y"])


def test_training_different_seed_different_batches():
    first, second = _first_batches(seed=3), _first_batches(seed=4)
    assert not all(np.array_equal(a["x"], b["x"]) for a, b in zip(first, second))


def test_training_vectors_are_standardised():
    x = np.random.default_rng(0).normal([5.0, -3.0], [2.0, 0.5], size=(40, 2)).astype(np.float32)
    dataset, spec = sources.from_arrays("vectors", x)
    stream = _training(dataset, spec, batch_size=40, model_range=None)
    [batch] = _batches(stream, 1)
    assert batch["x"].dtype == np.float32
    np.testing.assert_allclose(batch["x"].mean(axis=0), [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(batch["x"].std(axis=0), [1.0, 1.0], rtol=1e-4)


class _CountingSource:
    """A generator-backed dataset that counts how often it is read from the start."""

    def __init__(self, n=6):
        self.n = n
        self.reads = 0

    def __call__(self):
        self.reads += 1
        for i in range(self.n):
            yield {"x": np.full((2, 2, 1), i * 25, np.uint8), "y": np.int64(i % 2)}

    def dataset(self):
        signature = {
            "x": tf.TensorSpec((2, 2, 1), tf.uint8),
            "y": tf.TensorSpec((), tf.int64),
        }
        return tf.data.Dataset.from_generator(self, output_signature=signature)


def test_training_from_a_source_not_in_memory():
    source = _CountingSource(6)
    spec = dataclasses.replace(IMAGE_SPEC, in_memory=False, num_examples=6, num_classes=2)
    batches = _batches(_training(source.dataset(), spec, batch_size=4), 6)  # four epochs
    assert [b["x"].shape for b in batches] == [(4, 2, 2, 1)] * 6
    assert all(b["x"].dtype == np.float32 and b["y"].dtype == np.int64 for b in batches)
    assert min(b["x"].min() for b in batches) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "in_memory, num_examples, cached",
    [(False, 6, True), (False, None, False), (True, 6, False)],
    ids=["not-in-memory-known-size", "not-in-memory-unknown-size", "in-memory"],
)
def test_training_caches_sources_not_in_memory(in_memory, num_examples, cached):
    source = _CountingSource(6)
    spec = dataclasses.replace(IMAGE_SPEC, in_memory=in_memory, num_examples=num_examples)
    _batches(_training(source.dataset(), spec, batch_size=4), 6)  # four epochs
    assert (source.reads == 1) == cached


def test_training_does_not_cache_what_is_too_big(monkeypatch):
    monkeypatch.setattr(pipeline, "CACHE_LIMIT_BYTES", 6 * 4 - 1)  # 6 examples of 4 bytes
    source = _CountingSource(6)
    spec = dataclasses.replace(IMAGE_SPEC, in_memory=False, num_examples=6)
    _batches(_training(source.dataset(), spec, batch_size=4), 6)
    assert source.reads > 1


# --- take_examples ---------------------------------------------------------------------------


def test_take_examples_returns_the_first_raw_examples(labelled_images):
    dataset, _ = labelled_images
    taken = pipeline.take_examples(dataset, 4)
    assert set(taken) == {"x", "y"}
    assert taken["x"].dtype == np.uint8 and taken["y"].shape == (4,)
    np.testing.assert_array_equal(taken["x"], _images(10)[:4])


def test_take_examples_of_vectors():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    dataset, _ = sources.from_arrays("vectors", x)
    taken = pipeline.take_examples(dataset, 3)
    assert set(taken) == {"x"}
    np.testing.assert_array_equal(taken["x"], x[:3])



def test_rows_are_drawn_as_a_new_permutation_each_epoch_and_workers_split_each_batch():
    from synthblend.datasets import rows
    from synthblend.trainers import distribute

    data = rows.rows_dataset({"x": np.arange(10)[:, None].astype(np.float32), "y": np.arange(10)})
    spec = DataSpec(name="toy", shape=(1,), value_range=None, loc=(0.0,), scale=(1.0,), num_examples=10)
    scale = pipeline.scaling(spec, None)
    stream = pipeline.training_dataset(data, spec, batch_size=5, scale=scale, seed=3)
    drawn = np.concatenate([batch["y"].numpy() for batch in stream.take(8)])
    epochs = drawn.reshape(4, 10)
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 4  # each epoch its own order
    again = np.concatenate([batch["y"].numpy() for batch in stream.take(8)])
    np.testing.assert_array_equal(again, drawn)
    # Two workers with batches of 2 (a global batch of 4): together, step by step, one process's batches.
    whole = np.concatenate([b["y"].numpy() for b in pipeline.training_dataset(
        data, spec, batch_size=4, scale=scale, seed=3).take(5)])
    workers = [[b["y"].numpy() for b in pipeline.training_dataset(
        data, spec, batch_size=2, scale=scale, seed=3, shard=distribute.Shard(index, 2)).take(5)] for index in (0, 1)]
    np.testing.assert_array_equal(np.concatenate([np.concatenate(pair) for pair in zip(*workers)]), whole)


def test_a_shuffle_buffer_for_data_drawn_by_position_is_refused(tmp_path):
    from test_train import TINY, run_train

    code, _, err = run_train("--model=gan", "--dataset=ring", "--shuffle_buffer=100", f"--model_dir={tmp_path / 'r'}",
                             *TINY)
    assert code == 2 and "--shuffle_buffer=100 changes nothing: 'ring' is drawn as a new permutation" in err, err


def test_one_replica_draws_the_datasets_batches_inside_the_step_and_saves_only_its_position(tmp_path):
    """Rows gathered a batch at a time are drawn inside the compiled step (`BatchDraw`): the same
    batches as the dataset yields, in order; a checkpoint holds the position it reached, from
    which a new draw continues. Augmented data and other datasets keep their `tf.data` iterator."""
    from synthblend.datasets import rows
    from synthblend.trainers import distribute

    data = rows.rows_dataset({"x": np.arange(10)[:, None].astype(np.float32), "y": np.arange(10)})
    spec = DataSpec(name="toy", shape=(1,), value_range=None, loc=(1.0,), scale=(2.0,), num_examples=10)
    stream = pipeline.training_dataset(data, spec, batch_size=4, scale=pipeline.scaling(spec, None), seed=3)
    expected = list(stream.take(6))
    draw, share = distribute.worker_iterator(tf.distribute.get_strategy(), stream)
    assert isinstance(draw, pipeline.BatchDraw) and share is None

    pull = tf.function(lambda: next(draw))
    for batch in expected[:3]:
        drawn = pull()
        assert set(drawn) == set(batch)
        for key in batch:
            np.testing.assert_array_equal(drawn[key].numpy(), batch[key].numpy())
    path = tf.train.Checkpoint(iterator=draw).write(str(tmp_path / "ckpt"))
    assert {name for name, _ in tf.train.list_variables(path)} == {
        "iterator/position/.ATTRIBUTES/VARIABLE_VALUE", "_CHECKPOINTABLE_OBJECT_GRAPH"}
    resumed = pipeline.batch_draw(stream)
    tf.train.Checkpoint(iterator=resumed).read(path).assert_consumed()
    resumed.skip(1)
    np.testing.assert_array_equal(next(resumed)["y"].numpy(), expected[4]["y"].numpy())

    augmented = pipeline.training_dataset(data, spec, batch_size=4, scale=pipeline.scaling(spec, None), seed=3,
                                          augmentation=lambda x, training: x)
    assert pipeline.batch_draw(augmented) is None and pipeline.batch_draw(tf.data.Dataset.range(3)) is None
    assert isinstance(distribute.worker_iterator(tf.distribute.get_strategy(), augmented)[0], tf.data.Iterator)
