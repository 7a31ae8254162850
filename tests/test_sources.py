"""Tests for datasets.sources: source names become a tf.data.Dataset and a DataSpec."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from synthblend.datasets import embedded, sources
from synthblend.zoo.registry import DataError, UsageError


def _elements(dataset, limit=None):
    """The examples of a dataset as a list of dicts of NumPy values."""
    if limit is not None:
        dataset = dataset.take(limit)
    return [{k: v.numpy() for k, v in example.items()} for example in dataset]


def _assert_one_line(error_info):
    assert "\n" not in str(error_info.value)


# --- embedded --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_train():
    return sources.load("shapes")


def test_shapes_spec(shapes_train):
    _, spec = shapes_train
    assert spec.name == "shapes"
    assert spec.shape == (28, 28, 1)
    assert spec.is_image
    assert spec.value_range == (0.0, 255.0)
    assert spec.loc is None and spec.scale is None
    assert spec.num_classes == 4
    assert spec.class_names == ("circle", "square", "triangle", "cross")
    assert spec.factor_names == ("scale", "rotation", "position_x", "position_y")
    assert spec.in_memory is True
    assert spec.num_examples == 20000


def test_shapes_elements(shapes_train):
    dataset, _ = shapes_train
    assert set(dataset.element_spec) == {"x", "y", "factors"}
    [example] = _elements(dataset, 1)
    assert example["x"].dtype == np.uint8 and example["x"].shape == (28, 28, 1)
    assert example["y"].dtype == np.int64 and 0 <= example["y"] < 4
    assert example["factors"].dtype == np.float32 and example["factors"].shape == (4,)


def test_shapes_factors_are_the_generators_factors(shapes_train):
    dataset, _ = shapes_train
    truth = embedded.shapes(3, seed=0)
    for i, example in enumerate(_elements(dataset, 3)):
        np.testing.assert_array_equal(example["x"], truth["x"][i])
        assert example["y"] == truth["y"][i]
        expected = [truth[name][i] for name in embedded.SHAPE_FACTORS]
        np.testing.assert_array_equal(example["factors"], expected)


def test_shapes_test_split_is_smaller_and_different(shapes_train):
    test_dataset, spec = sources.load("shapes", split="test")
    assert spec.num_examples == 4000
    [train_x] = [e["x"] for e in _elements(shapes_train[0], 1)]
    [test_x] = [e["x"] for e in _elements(test_dataset, 1)]
    assert not np.array_equal(train_x, test_x)


def test_shapes_image_size():
    dataset, spec = sources.load("shapes", split="test", image_size=32)
    assert spec.shape == (32, 32, 1)
    [example] = _elements(dataset, 1)
    assert example["x"].shape == (32, 32, 1) and example["x"].dtype == np.uint8


@pytest.mark.parametrize("name, num_classes", [("ring", 8), ("grid", 25)])
def test_toy_spec(name, num_classes):
    dataset, spec = sources.load(name)
    assert spec.shape == (2,)
    assert not spec.is_image
    assert spec.value_range is None
    assert len(spec.loc) == 2 and len(spec.scale) == 2
    assert all(s > 0 for s in spec.scale)
    assert spec.num_classes == num_classes
    assert spec.in_memory is True
    [example] = _elements(dataset, 1)
    assert example["x"].dtype == np.float32 and example["x"].shape == (2,)
    assert example["y"].dtype == np.int64 and 0 <= example["y"] < num_classes


@pytest.mark.parametrize("name", ["shapes", "ring", "grid"])
def test_embedded_unknown_split(name):
    with pytest.raises(UsageError, match=r"'validation'.*accepted: train, test") as err:
        sources.load(name, split="validation")
    _assert_one_line(err)


@pytest.mark.parametrize("name", ["foo", "bar:x"])
def test_unknown_dataset_lists_accepted_names(name):
    with pytest.raises(UsageError, match=re.escape(repr(name))) as err:
        sources.load(name)
    message = str(err.value)
    for accepted in ("npz:<...>", "images:<...>", "tfds:<...>", "shapes", "ring", "grid"):
        assert accepted in message
    _assert_one_line(err)


@pytest.mark.parametrize("name", ["npz:", "images:", "tfds:"])
def test_scheme_without_argument(name):
    with pytest.raises(UsageError, match=re.escape(repr(name))) as err:
        sources.load(name)
    assert "after the colon" in str(err.value)
    _assert_one_line(err)


@pytest.mark.parametrize("image_size", [0, -3])
def test_non_positive_image_size(image_size):
    with pytest.raises(UsageError, match=rf"--image_size={image_size} must be a positive") as err:
        sources.load("shapes", image_size=image_size)
    _assert_one_line(err)


# --- npz -------------------------------------------------------------------------------------


def _npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_npz_grayscale_images_get_a_channel_axis(tmp_path):
    x = np.arange(5 * 6 * 7, dtype=np.uint8).reshape(5, 6, 7)
    dataset, spec = sources.load(f"npz:{_npz(tmp_path, x=x)}")
    assert spec.shape == (6, 7, 1)
    assert spec.value_range == (0.0, 255.0)
    assert spec.num_examples == 5 and spec.num_classes == 0
    examples = _elements(dataset)
    assert len(examples) == 5 and set(examples[0]) == {"x"}
    np.testing.assert_array_equal(examples[2]["x"], x[2][..., None])
    assert examples[2]["x"].dtype == np.uint8


def test_npz_rgb_images(tmp_path):
    x = np.zeros((3, 4, 4, 3), np.uint8)
    _, spec = sources.load(f"npz:{_npz(tmp_path, x=x)}")
    assert spec.shape == (4, 4, 3)
    assert spec.value_range == (0.0, 255.0)


@pytest.mark.parametrize(
    "low, high, expected",
    [(0.0, 1.0, (0.0, 1.0)), (0.2, 0.7, (0.0, 1.0)), (-1.0, 1.0, (-1.0, 1.0)),
     (-0.5, 0.5, (-1.0, 1.0)), (0.0, 200.0, (0.0, 255.0)), (-3.0, 5.0, (-3.0, 5.0))],
)
def test_npz_float_image_range(tmp_path, low, high, expected):
    x = np.linspace(low, high, 2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    dataset, spec = sources.load(f"npz:{_npz(tmp_path, x=x)}")
    assert spec.value_range == expected
    assert _elements(dataset, 1)[0]["x"].dtype == np.float32


def test_npz_vectors_are_standardised(tmp_path):
    x = np.array([[0.0, 10.0, 5.0], [2.0, 20.0, 5.0], [4.0, 60.0, 5.0]])
    dataset, spec = sources.load(f"npz:{_npz(tmp_path, x=x)}")
    assert spec.shape == (3,)
    assert spec.value_range is None
    np.testing.assert_allclose(spec.loc, x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(spec.scale[:2], x.std(axis=0)[:2], rtol=1e-6)
    example = _elements(dataset, 1)[0]
    assert example["x"].dtype == np.float32


def test_npz_constant_vector_feature_gets_unit_scale(tmp_path):
    x = np.array([[1.0, 7.0], [3.0, 7.0]], np.float32)
    _, spec = sources.load(f"npz:{_npz(tmp_path, x=x)}")
    assert spec.scale[1] == 1.0
    assert spec.scale[0] == pytest.approx(1.0)  # std of (1, 3)
    assert spec.loc == pytest.approx((2.0, 7.0))


def test_npz_integer_vectors_become_float32(tmp_path):
    x = np.array([[1, 2], [3, 4]], np.int32)
    dataset, spec = sources.load(f"npz:{_npz(tmp_path, x=x)}")
    assert spec.value_range is None
    example = _elements(dataset, 1)[0]
    assert example["x"].dtype == np.float32
    np.testing.assert_array_equal(example["x"], [1.0, 2.0])


def test_npz_labels(tmp_path):
    x = np.zeros((4, 3, 3), np.uint8)
    y = np.array([0, 2, 2, 1], np.int32)
    dataset, spec = sources.load(f"npz:{_npz(tmp_path, x=x, y=y)}")
    assert spec.num_classes == 3
    assert spec.class_names == ("0", "1", "2")
    examples = _elements(dataset)
    assert [e["y"] for e in examples] == [0, 2, 2, 1]
    assert all(e["y"].dtype == np.int64 for e in examples)


def test_npz_column_labels_are_flattened(tmp_path):
    x = np.zeros((3, 2), np.float32)
    dataset, spec = sources.load(f"npz:{_npz(tmp_path, x=x, y=np.array([[1], [0], [4]]))}")
    assert spec.num_classes == 5
    assert [e["y"] for e in _elements(dataset)] == [1, 0, 4]


def test_npz_is_one_split_that_may_be_sliced(tmp_path):
    path = _npz(tmp_path, x=np.arange(20, dtype=np.float32).reshape(10, 2), y=np.arange(10) % 2)
    _, whole = sources.load(f"npz:{path}", split="train")
    dataset, part = sources.load(f"npz:{path}", split="train[:40%]")
    assert whole.num_examples == 10 and part.num_examples == 4
    assert [e["x"].tolist() for e in _elements(dataset)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(UsageError, match=r"--split=test: .* is one file, so its only split is train"):
        sources.load(f"npz:{path}", split="test")


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_npz_image_size_resizes_images(tmp_path, dtype):
    x = np.full((2, 8, 6), 1, dtype)
    dataset, spec = sources.load(f"npz:{_npz(tmp_path, x=x)}", image_size=4)
    assert spec.shape == (4, 4, 1)
    example = _elements(dataset, 1)[0]
    assert example["x"].shape == (4, 4, 1) and example["x"].dtype == dtype
    np.testing.assert_allclose(example["x"], 1, rtol=1e-5)


def test_npz_image_size_keeps_uint8_range(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8), dtype=np.uint8)
    dataset, spec = sources.load(f"npz:{_npz(tmp_path, x=x)}", image_size=5)
    assert spec.value_range == (0.0, 255.0)
    assert _elements(dataset, 1)[0]["x"].dtype == np.uint8


@pytest.mark.parametrize("low, expected", [(0.0, (0.0, 1.0)), (-1.0, (-1.0, 1.0))])
def test_npz_image_size_keeps_float_range(tmp_path, low, expected):
    x = np.random.default_rng(0).uniform(low, 1.0, (2, 8, 6)).astype(np.float32)
    x[:, :, :3] = 1.0
    _, spec = sources.load(f"npz:{_npz(tmp_path, x=x)}")
    assert spec.value_range == expected  # holds without resizing
    _, resized = sources.load(f"npz:{_npz(tmp_path, x=x)}", image_size=4)
    assert resized.value_range == expected


def test_npz_image_size_is_refused_for_vectors(tmp_path):
    """It would change nothing: vectors are not resized."""
    with pytest.raises(UsageError, match=r"--image_size=4 applies to images; .* holds vectors of shape \(5,\)"):
        sources.load(f"npz:{_npz(tmp_path, x=np.zeros((2, 5), np.float32))}", image_size=4)


def test_npz_missing_file(tmp_path):
    path = str(tmp_path / "missing.npz")
    with pytest.raises(UsageError, match=re.escape(repr(path))) as err:
        sources.load(f"npz:{path}")
    assert "expected an existing .npz file" in str(err.value)
    _assert_one_line(err)


def test_npz_directory_is_not_a_file(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        sources.load(f"npz:{tmp_path}")


def test_npz_without_x_lists_found_arrays(tmp_path):
    path = _npz(tmp_path, images=np.zeros(2), labels=np.zeros(2))
    with pytest.raises(DataError, match=r"has no array 'x' \(found: images, labels\)") as err:
        sources.load(f"npz:{path}")
    assert path in str(err.value)
    assert "np.savez(path, x=..., y=...)" in str(err.value)
    _assert_one_line(err)


@pytest.mark.parametrize(
    "content", [np.random.default_rng(0).bytes(64), b"plain text, not numpy\nsecond line\n"]
)
def test_npz_file_that_is_not_npz(tmp_path, content):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"cannot be read as a NumPy \.npz archive") as err:
        sources.load(f"npz:{path}")
    assert str(path) in str(err.value)
    _assert_one_line(err)


def test_npz_holding_a_single_npy_array(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"cannot be read as a NumPy \.npz archive") as err:
        sources.load(f"npz:{path}")
    _assert_one_line(err)


@pytest.mark.parametrize(
    "x, pattern",
    [
        (np.zeros((2, 3, 3, 3, 1), np.uint8), r"x has shape \(2, 3, 3, 3, 1\); expected images"),
        (np.zeros((4,), np.float32), r"x has shape \(4,\); expected images"),
        (np.zeros((0, 3), np.float32), r"x holds no examples"),
        (np.zeros((0, 4, 4), np.uint8), r"x holds no examples"),
        (np.zeros((2, 4, 4, 2), np.uint8), r"images have 2 channels; accepted: 1 or 3"),
        (np.zeros((2, 4, 4, 4), np.uint8), r"images have 4 channels; accepted: 1 or 3"),
        (np.array([[1.0, np.nan]]), r"x holds NaN or infinite values"),
        (np.array([[1.0, np.inf]]), r"x holds NaN or infinite values"),
        (np.zeros((2, 3), bool), r"x has dtype bool; expected integers or floats"),
        (np.array([["a", "b"]]), r"x has dtype <U1; expected integers or floats"),
    ],
)
def test_npz_bad_x(tmp_path, x, pattern):
    path = _npz(tmp_path, x=x)
    with pytest.raises(DataError, match=pattern) as err:
        sources.load(f"npz:{path}")
    assert f"npz:{path}" in str(err.value)
    _assert_one_line(err)


@pytest.mark.parametrize(
    "y, pattern",
    [
        (np.array([0, 1, 1]), r"y has 3 labels for 4 examples"),
        (np.array([0, 1, 1, 0, 1]), r"y has 5 labels for 4 examples"),
        (np.array([0.0, 1.0, 1.0, 0.0]), r"class indices 0, 1, 2, \.\.\.; got dtype float64"),
        (np.array([0, -1, 1, 0]), r"class indices 0, 1, 2, \.\.\."),
    ],
)
def test_npz_bad_y(tmp_path, y, pattern):
    path = _npz(tmp_path, x=np.zeros((4, 3), np.float32), y=y)
    with pytest.raises(DataError, match=pattern) as err:
        sources.load(f"npz:{path}")
    assert f"npz:{path}" in str(err.value)
    _assert_one_line(err)


def test_npz_negative_y_message_names_the_bad_label(tmp_path):
    path = _npz(tmp_path, x=np.zeros((3, 2), np.float32), y=np.array([0, -1, 1]))
    with pytest.raises(DataError) as err:
        sources.load(f"npz:{path}")
    # The temporary path may itself contain "-1" (pytest-1...); look past it.
    assert "-1" in str(err.value).replace(path, "")


def test_npz_constant_float_images_outside_known_ranges(tmp_path):
    path = _npz(tmp_path, x=np.full((2, 3, 3), 300.0, np.float32))
    with pytest.raises(DataError, match=r"one constant value 300\.0; nothing to learn") as err:
        sources.load(f"npz:{path}")
    _assert_one_line(err)


# --- images:<dir> ----------------------------------------------------------------------------


def _png(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(np.asarray(image, np.uint8)))


def _jpeg(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_jpeg(np.asarray(image, np.uint8)))


def _gray(value, height=4, width=4):
    return np.full((height, width, 1), value, np.uint8)


def _rgb(value, height=4, width=4):
    return np.full((height, width, 3), value, np.uint8)


def test_images_flat_folder_is_unlabelled(tmp_path):
    for i in range(3):
        _png(tmp_path / f"img{i}.png", _gray(10 * i, 5, 6))
    dataset, spec = sources.load(f"images:{tmp_path}")
    assert spec.name == f"images:{tmp_path}"
    assert spec.shape == (5, 6, 1)
    assert spec.num_examples == 3
    assert spec.num_classes == 0 and spec.class_names == ()
    assert spec.value_range == (0.0, 255.0)
    examples = _elements(dataset)
    assert all(set(e) == {"x"} for e in examples)
    # Files are read in sorted order.
    assert [int(e["x"][0, 0, 0]) for e in examples] == [0, 10, 20]
    assert examples[0]["x"].dtype == np.uint8


def test_images_jpeg_is_read(tmp_path):
    _jpeg(tmp_path / "a.jpg", _rgb(128, 8, 8))
    _png(tmp_path / "b.png", _rgb(128, 8, 8))
    dataset, spec = sources.load(f"images:{tmp_path}")
    assert spec.num_examples == 2
    assert spec.shape == (8, 8, 3)
    jpeg_x = _elements(dataset, 1)[0]["x"]
    assert np.abs(jpeg_x.astype(int) - 128).max() <= 3


def test_images_class_subfolders_give_sorted_labels(tmp_path):
    _png(tmp_path / "b_dogs" / "1.png", _gray(200))
    _png(tmp_path / "b_dogs" / "2.png", _gray(200))
    _png(tmp_path / "a_cats" / "1.png", _gray(10))
    dataset, spec = sources.load(f"images:{tmp_path}")
    assert spec.class_names == ("a_cats", "b_dogs")
    assert spec.num_classes == 2
    assert spec.num_examples == 3
    pairs = [(int(e["y"]), int(e["x"][0, 0, 0])) for e in _elements(dataset)]
    assert sorted(pairs) == [(0, 10), (1, 200), (1, 200)]
    assert _elements(dataset, 1)[0]["y"].dtype == np.int64


def test_images_subfolders_without_images_are_not_classes(tmp_path):
    _png(tmp_path / "cats" / "1.png", _gray(1))
    _png(tmp_path / "dogs" / "1.png", _gray(2))
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("hi")
    _png(tmp_path / ".hidden" / "1.png", _gray(3))
    _, spec = sources.load(f"images:{tmp_path}")
    assert spec.class_names == ("cats", "dogs")
    assert spec.num_examples == 2


def test_images_grayscale_and_rgb_mixed_give_rgb(tmp_path):
    _png(tmp_path / "a.png", _gray(50))
    _png(tmp_path / "b.png", _rgb(90))
    dataset, spec = sources.load(f"images:{tmp_path}")
    assert spec.shape == (4, 4, 3)
    gray = _elements(dataset, 1)[0]["x"]
    assert gray.shape == (4, 4, 3)
    np.testing.assert_array_equal(gray, 50)


def test_images_rgba_drops_alpha(tmp_path):
    image = np.zeros((4, 4, 4), np.uint8)
    image[..., 0], image[..., 1], image[..., 2], image[..., 3] = 1, 2, 3, 255
    _png(tmp_path / "a.png", image)
    dataset, spec = sources.load(f"images:{tmp_path}")
    assert spec.shape == (4, 4, 3)
    np.testing.assert_array_equal(_elements(dataset)[0]["x"][0, 0], [1, 2, 3])


def test_images_gray_alpha_drops_alpha(tmp_path):
    image = np.stack([np.full((4, 4), 9), np.full((4, 4), 255)], axis=-1)
    _png(tmp_path / "a.png", image)
    dataset, spec = sources.load(f"images:{tmp_path}")
    assert spec.shape == (4, 4, 1)
    np.testing.assert_array_equal(_elements(dataset)[0]["x"], 9)


def test_images_mixed_sizes(tmp_path):
    _png(tmp_path / "a.png", _gray(0, 8, 8))
    _png(tmp_path / "b.png", _gray(0, 10, 12))
    with pytest.raises(DataError, match="--image_size") as err:
        sources.load(f"images:{tmp_path}")
    message = str(err.value)
    assert "a.png is 8x8" in message and "b.png is 10x12" in message
    assert str(tmp_path) in message
    _assert_one_line(err)


def test_images_mixed_sizes_with_image_size(tmp_path):
    _png(tmp_path / "a.png", _gray(100, 8, 8))
    _png(tmp_path / "b.png", _rgb(100, 10, 12))
    dataset, spec = sources.load(f"images:{tmp_path}", image_size=8)
    assert spec.shape == (8, 8, 3)
    examples = _elements(dataset)
    assert [e["x"].shape for e in examples] == [(8, 8, 3), (8, 8, 3)]
    assert all(e["x"].dtype == np.uint8 for e in examples)
    np.testing.assert_array_equal(examples[1]["x"], 100)


@pytest.mark.parametrize(
    "content",
    [np.random.default_rng(1).bytes(200), tf.io.encode_png(_gray(5, 16, 16)).numpy()[:40]],
    ids=["random-bytes", "truncated-png"],
)
def test_images_corrupt_file(tmp_path, content):
    _png(tmp_path / "a.png", _gray(0))
    (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "x.png"))) as err:
        sources.load(f"images:{tmp_path}")
    assert "PNG/JPEG/BMP/GIF" in str(err.value)
    _assert_one_line(err)


def test_images_non_image_files_are_ignored(tmp_path):
    _png(tmp_path / "a.png", _gray(0))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "data.npz").write_bytes(b"whatever")
    _, spec = sources.load(f"images:{tmp_path}")
    assert spec.num_examples == 1


@pytest.mark.parametrize("extra", [None, "notes.txt"])
def test_images_folder_without_images(tmp_path, extra):
    if extra:
        (tmp_path / extra).write_text("no pictures here")
    with pytest.raises(UsageError, match="no image files") as err:
        sources.load(f"images:{tmp_path}")
    message = str(err.value)
    assert repr(str(tmp_path)) in message
    assert ".png" in message and ".jpg" in message
    _assert_one_line(err)


def test_images_missing_directory(tmp_path):
    directory = str(tmp_path / "nowhere")
    with pytest.raises(UsageError, match=re.escape(f"no such directory {directory!r}")) as err:
        sources.load(f"images:{directory}")
    _assert_one_line(err)


def test_images_at_top_and_in_subfolders(tmp_path):
    _png(tmp_path / "top.png", _gray(0))
    _png(tmp_path / "cats" / "1.png", _gray(0))
    pattern = r"both at the top \(top\.png\) and in class subfolders \(cats/\)"
    with pytest.raises(UsageError, match=pattern) as err:
        sources.load(f"images:{tmp_path}")
    assert str(tmp_path) in str(err.value)
    _assert_one_line(err)


# --- tfds:<name> -----------------------------------------------------------------------------
#
# tfds.testing.mock_data generates random examples with the features declared in the builder's
# code. This tensorflow-datasets wheel ships no testing/metadata folder, so under the default
# policy the builder's `info.splits` is empty (split names and sizes are only known from
# dataset_info.json). Tests that need splits write that metadata themselves.


@pytest.fixture(scope="module")
def tfds():
    import tensorflow_datasets

    return tensorflow_datasets


def _write_mnist_metadata(tfds, data_dir):
    """Writes into `data_dir` the dataset_info.json that preparing mnist leaves there, with train
    (60000) and test (10000) splits: with it, the dataset counts as prepared."""
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE):
        builder = tfds.builder("mnist")
        builder.info.set_splits(
            tfds.core.SplitDict(
                [tfds.core.SplitInfo(name=n, shard_lengths=[k], num_bytes=0)
                 for n, k in (("train", 60000), ("test", 10000))]
            )
        )
        version_dir = data_dir / "mnist" / str(builder.version)
        version_dir.mkdir(parents=True)
        builder.info.write_to_directory(str(version_dir))


@pytest.fixture(scope="module")
def mnist_metadata(tfds, tmp_path_factory):
    """A data_dir holding mnist's dataset_info.json with train (60000) and test (10000) splits."""
    data_dir = tmp_path_factory.mktemp("tfds_metadata")
    _write_mnist_metadata(tfds, data_dir)
    return str(data_dir)


def test_tfds_mnist(tfds):
    with tfds.testing.mock_data(num_examples=3):
        dataset, spec = sources.load("tfds:mnist")
        examples = _elements(dataset)
    assert spec.name == "tfds:mnist"
    assert spec.shape == (28, 28, 1)
    assert spec.value_range == (0.0, 255.0)
    assert spec.num_classes == 10
    assert spec.class_names == tuple(str(i) for i in range(10))
    assert spec.in_memory is False
    assert len(examples) == 3
    for example in examples:
        assert set(example) == {"x", "y"}
        assert example["x"].dtype == np.uint8 and example["x"].shape == (28, 28, 1)
        assert example["y"].dtype == np.int64 and 0 <= example["y"] < 10


def test_tfds_cifar10(tfds):
    with tfds.testing.mock_data(num_examples=2):
        dataset, spec = sources.load("tfds:cifar10")
        [example] = _elements(dataset, 1)
    assert spec.shape == (32, 32, 3)
    assert spec.num_classes == 10
    assert example["x"].shape == (32, 32, 3) and example["x"].dtype == np.uint8


def test_tfds_image_size(tfds):
    with tfds.testing.mock_data(num_examples=2):
        dataset, spec = sources.load("tfds:mnist", image_size=32)
        examples = _elements(dataset)
    assert spec.shape == (32, 32, 1)
    assert [e["x"].shape for e in examples] == [(32, 32, 1), (32, 32, 1)]
    assert all(e["x"].dtype == np.uint8 for e in examples)


def test_tfds_num_examples_from_split_metadata(tfds, mnist_metadata):
    with tfds.testing.mock_data(num_examples=2, data_dir=mnist_metadata):
        _, train = sources.load("tfds:mnist")
        _, test = sources.load("tfds:mnist", split="test")
    assert train.num_examples == 60000
    assert test.num_examples == 10000


def test_tfds_without_split_metadata_has_unknown_size(tfds):
    with tfds.testing.mock_data(num_examples=2):
        _, spec = sources.load("tfds:mnist")
    assert spec.num_examples is None


def test_tfds_unknown_split(tfds, mnist_metadata):
    with tfds.testing.mock_data(num_examples=2, data_dir=mnist_metadata):
        with pytest.raises(UsageError, match=r"no split 'validation'; accepted: train, test") as e:
            sources.load("tfds:mnist", split="validation")
    assert "'tfds:mnist'" in str(e.value)
    _assert_one_line(e)


@pytest.mark.parametrize("split, count", [
    ("train[:10%]", 6000),
    ("train[1000:2000]", 1000),
    ("test[-20%:]", 2000),
    ("train[:10%]+test[:5%]", 6500),
    ("all", 70000),
])
def test_tfds_slices_of_a_prepared_dataset(tfds, mnist_metadata, split, count):
    with tfds.testing.mock_data(num_examples=2, data_dir=mnist_metadata):
        dataset, spec = sources.load("tfds:mnist", split=split)
        examples = _elements(dataset)
    assert spec.num_examples == count
    assert spec.splits == ("train", "test")
    assert len(examples) == 2 and examples[0]["x"].shape == (28, 28, 1)


def test_tfds_slice_on_the_second_run_on_a_data_dir(tfds, tmp_path):
    data_dir = tmp_path / "tfds"
    with tfds.testing.mock_data(num_examples=2, data_dir=str(data_dir)):
        _, first = sources.load("tfds:mnist", split="train[:10%]")
    assert first.num_examples is None  # not prepared yet: no split sizes
    _write_mnist_metadata(tfds, data_dir)  # what the first run's preparation leaves behind
    with tfds.testing.mock_data(num_examples=2, data_dir=str(data_dir)):
        dataset, second = sources.load("tfds:mnist", split="train[:10%]")
        assert len(_elements(dataset)) == 2
    assert second.num_examples == 6000


@pytest.mark.parametrize("split, pattern", [
    ("train[:200%]", r"split 'train\[:200%\]' of 'tfds:mnist' has the percent bound 200%; accepted: percents "
                     r"from -100% to 100%"),
    ("train[-150%:]", r"has the percent bound -150%; accepted: percents from -100% to 100%"),
    ("train[:10%]+test[:101%]", r"has the percent bound 101%"),
    ("train[50%:10%]", r"split 'train\[50%:10%\]' of 'tfds:mnist' holds no examples \(the split has 60000\)"),
    ("train[:0]+test[5:5]", r"holds no examples \(train has 60000, test has 10000\)"),
    ("validation[:10%]", r"has no split 'validation' \(in 'validation\[:10%\]'\); accepted: train, test or all, "
                         r"sliced as in train\[:10%\]"),
    ("train[:10%]+valid", r"has no split 'valid' \(in 'train\[:10%\]\+valid'\); accepted: train, test"),
    ("train[:70000]", r"reaches past the split \(Requested slice \[:70000\] incompatible with 60000 examples\); "
                      r"accepted: train, test"),
    ("train[a:b]", r"split 'train\[a:b\]' of 'tfds:mnist' is not a TFDS split \(Unrecognized split format"),
    ("all[:10%]", r"split 'all\[:10%\]' of 'tfds:mnist' is not a TFDS split"),
])
def test_tfds_bad_splits_of_a_prepared_dataset_are_refused_before_loading(tfds, mnist_metadata, monkeypatch,
                                                                           split, pattern):
    def fail_load(*args, **kwargs):
        raise AssertionError("tfds.load must not be reached for a bad split")

    with tfds.testing.mock_data(num_examples=2, data_dir=mnist_metadata):
        monkeypatch.setattr(tfds, "load", fail_load)
        with pytest.raises(UsageError, match=pattern) as err:
            sources.load("tfds:mnist", split=split)
    _assert_one_line(err)


@pytest.mark.parametrize("split, pattern", [
    ("train[:200%]", r"has the percent bound 200%; accepted: percents from -100% to 100%"),
    ("train[-150%:]", r"has the percent bound -150%"),
    ("train[a:b]", r"is not a TFDS split .*accepted: a split of the dataset, sliced as in train\[:10%\]"),
])
def test_tfds_bad_split_forms_are_refused_before_preparation(tfds, monkeypatch, split, pattern):
    def fail_load(*args, **kwargs):
        raise AssertionError("tfds.load must not be reached for a bad split")

    with tfds.testing.mock_data(num_examples=2):
        monkeypatch.setattr(tfds, "load", fail_load)
        with pytest.raises(UsageError, match=pattern) as err:
            sources.load("tfds:mnist", split=split)
    _assert_one_line(err)


@pytest.mark.parametrize("split, refused", [
    ("train[:10%]", None),
    ("train[50%:10%]", r"split 'train\[50%:10%\]' of 'tfds:mnist' holds no examples \(the split has 60000\)"),
    ("validation", r"has no split 'validation'; accepted: train, test"),
])
def test_tfds_first_run_checks_the_split_once_prepared(tfds, tmp_path, monkeypatch, split, refused):
    """On a first run, loading prepares the dataset: the split is then checked as on later runs."""
    data_dir = tmp_path / "tfds"
    load = tfds.load

    def prepare_and_load(*args, **kwargs):
        _write_mnist_metadata(tfds, data_dir)
        if "[" not in kwargs["split"] and kwargs["split"] not in ("train", "test"):
            raise ValueError(f"Unknown split {kwargs['split']!r}.")
        return load(*args, **kwargs)

    with tfds.testing.mock_data(num_examples=2, data_dir=str(data_dir)):
        monkeypatch.setattr(tfds, "load", prepare_and_load)
        if refused is None:
            _, spec = sources.load("tfds:mnist", split=split)
            assert spec.num_examples == 6000 and spec.splits == ("train", "test")
        else:
            with pytest.raises(UsageError, match=refused) as err:
                sources.load("tfds:mnist", split=split)
            _assert_one_line(err)


def test_tfds_unknown_dataset_is_rejected_before_loading(tfds, monkeypatch):
    def fail_load(*args, **kwargs):
        raise AssertionError("tfds.load must not be reached for an unknown dataset")

    with tfds.testing.mock_data(num_examples=2):
        monkeypatch.setattr(tfds, "load", fail_load)
        with pytest.raises(UsageError, match="no dataset, version or config 'no_such_dataset_xyz'") as err:
            sources.load("tfds:no_such_dataset_xyz")
    message = str(err.value)
    assert "'tfds:no_such_dataset_xyz'" in message and "tfds:mnist" in message
    _assert_one_line(err)


def test_tfds_load_failure_is_a_data_error(tfds, monkeypatch):
    def fail_load(*args, **kwargs):
        raise RuntimeError("could not resolve host\nsecond line of details")

    with tfds.testing.mock_data(num_examples=2):
        monkeypatch.setattr(tfds, "load", fail_load)
        pattern = r"could not load 'tfds:mnist' \(RuntimeError: could not resolve host\)"
        with pytest.raises(DataError, match=pattern) as err:
            sources.load("tfds:mnist")
    assert "internet access" in str(err.value)
    _assert_one_line(err)


def test_tfds_load_failure_without_message_is_a_data_error(tfds, monkeypatch):
    def fail_load(*args, **kwargs):
        raise ConnectionError()

    with tfds.testing.mock_data(num_examples=2):
        monkeypatch.setattr(tfds, "load", fail_load)
        with pytest.raises(DataError, match="ConnectionError"):
            sources.load("tfds:mnist")


@pytest.mark.parametrize("name", ["MNIST!", "mnist:9.9.9", "mnist/no_such_config"])
def test_tfds_malformed_name_is_a_usage_error(tfds, name):
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(UsageError):
            sources.load(f"tfds:{name}")


@pytest.mark.parametrize("split, count", [("train[:10%]", 2000), ("train[1000:1500]", 500), ("test[-100:]", 100)])
def test_embedded_splits_slice_like_tfds(split, count):
    dataset, spec = sources.load("shapes", split)
    assert spec.num_examples == count
    whole = next(iter(sources.load("shapes", split.partition("[")[0])[0].batch(20000)))["x"].numpy()
    part = next(iter(dataset.batch(20000)))["x"].numpy()
    start = {"train[:10%]": 0, "train[1000:1500]": 1000, "test[-100:]": 3900}[split]
    np.testing.assert_array_equal(part, whole[start:start + count])


@pytest.mark.parametrize("split, words", [
    ("train[:0]", "holds no examples"),
    ("train[a:b]", "is not a slice like"),
    ("valid[:5%]", "accepted: train, test"),
])
def test_bad_slices_are_usage_errors(split, words):
    with pytest.raises(UsageError, match=re.escape(words)):
        sources.load("ring", split)


def _ten_example_sources(tmp_path):
    """npz:, csv: and images: sources of 10 examples each."""
    npz = _npz(tmp_path, x=np.arange(20, dtype=np.float32).reshape(10, 2))
    csv = tmp_path / "table.csv"
    csv.write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(10)))
    for i in range(10):
        _png(tmp_path / "images" / f"img{i}.png", _gray(10 * i))
    return {"npz": f"npz:{npz}", "csv": f"csv:{csv}", "images": f"images:{tmp_path / 'images'}"}


SOURCE_SIZES = {"npz": 10, "csv": 10, "images": 10, "ring": 20000, "shapes": 20000, "purchases": 20000}


@pytest.mark.parametrize("source", list(SOURCE_SIZES))
@pytest.mark.parametrize("split", ["train[:200%]", "train[-150%:]", "train[50%:10%]", "train[-100%:100%]"])
def test_percents_outside_100_and_empty_slices_are_refused(tmp_path, source, split):
    name = _ten_example_sources(tmp_path).get(source, source)
    size = SOURCE_SIZES[source]
    if split == "train[-100%:100%]":
        assert sources.load(name, split)[1].num_examples == size
        return
    if split == "train[50%:10%]":
        pattern = rf"split 'train\[50%:10%\]' of {re.escape(repr(name))} holds no examples \(the split has {size}\)"
    else:
        bound = split[6:].strip(":]")
        pattern = (rf"split {re.escape(repr(split))} of {re.escape(repr(name))} has the percent bound {bound}; "
                   r"accepted: percents from -100% to 100%, as in train\[:10%\]")
    with pytest.raises(UsageError, match=pattern) as err:
        sources.load(name, split)
    _assert_one_line(err)
