"""Tests for datasets.blend: mixing, interpolation, MixUp/CutMix, joins, feature fusion, dedupe."""

from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from synthblend.datasets import blend
from synthblend.zoo.registry import DataError, UsageError


def _rows(dataset):
    """All examples of a dataset as a list of dicts of NumPy values."""
    return list(dataset.as_numpy_iterator())


def _column(dataset, field):
    return np.array([row[field] for row in _rows(dataset)])


def _vectors(first, n=50, labelled=False):
    """Unbatched vectors `[first, i]`: the first coordinate tells which source an example is from."""
    x = np.stack([np.full(n, first, np.float32), np.arange(n, dtype=np.float32)], axis=1)
    elements = {"x": x}
    if labelled:
        elements["y"] = np.arange(n, dtype=np.int64) % 3
    return tf.data.Dataset.from_tensor_slices(elements)


def _real_and_synthetic():
    return {"real": _vectors(0.0).repeat(), "synthetic": _vectors(1.0).repeat()}


# --- mix -------------------------------------------------------------------------------------


def test_mix_realised_shares_follow_the_weights():
    mixed = blend.mix(_real_and_synthetic(), {"real": 3.0, "synthetic": 1.0}, seed=0)
    shares = blend.realised_shares(mixed, 4000)
    assert set(shares) == {"real", "synthetic"}
    assert abs(shares["real"] - 0.75) < 0.03
    assert abs(shares["synthetic"] - 0.25) < 0.03


def test_mix_list_weights_are_normalised_and_logged():
    with mock.patch.object(blend.logging, "info") as info:
        mixed = blend.mix(_real_and_synthetic(), [2, 6], seed=0)
    logged = info.call_args[0][0] % info.call_args[0][1:]
    assert "real=0.2500" in logged and "synthetic=0.7500" in logged
    shares = blend.realised_shares(mixed, 4000)
    assert abs(shares["synthetic"] - 0.75) < 0.03


def test_mix_tags_each_example_with_its_source():
    mixed = blend.mix(_real_and_synthetic(), [1, 1], seed=3)
    rows = _rows(mixed.take(300))
    assert all(row["source"] == (b"real" if row["x"][0] == 0.0 else b"synthetic") for row in rows)
    assert {row["source"] for row in rows} == {b"real", b"synthetic"}


def test_mix_zero_weight_source_is_never_drawn_but_reported():
    mixed = blend.mix(_real_and_synthetic(), {"real": 1.0, "synthetic": 0.0})
    shares = blend.realised_shares(mixed, 500, names=["real", "synthetic"])
    assert shares == {"real": 1.0, "synthetic": 0.0}


def test_realised_shares_counts_batched_examples():
    mixed = blend.mix(_real_and_synthetic(), [1, 1], seed=0)
    assert blend.realised_shares(mixed.batch(10), 300) == blend.realised_shares(mixed, 300)


def test_mix_is_reproducible_with_a_seed_and_differs_with_another():
    def tags(seed):
        return list(_column(blend.mix(_real_and_synthetic(), [1, 1], seed=seed).take(200), "source"))

    assert tags(1) == tags(1)
    assert tags(1) != tags(2)


def test_mix_stop_on_empty_ends_at_the_first_exhausted_source():
    def count(stop_on_empty):
        sources = {"real": _vectors(0.0, n=5), "synthetic": _vectors(1.0, n=100)}
        mixed = blend.mix(sources, [0.9, 0.1], seed=0, stop_on_empty=stop_on_empty)
        return sum(1 for _ in mixed)

    assert count(False) == 105
    assert count(True) < 105


@pytest.mark.parametrize(
    "weights, named",
    [
        ([-1.0, 2.0], "-1.0"),
        ([0, 0], "all zero"),
        ([1.0], "2 sources"),
        ([1.0, 2.0, 3.0], "3 values"),
        ({"real": 1.0, "fake": 1.0}, "fake"),
        ([float("nan"), 1.0], "nan"),
        (["a", 1.0], "'a'"),
        ("ab", "'ab'"),
    ],
)
def test_mix_rejects_bad_weights(weights, named):
    with pytest.raises(UsageError, match=named):
        blend.mix(_real_and_synthetic(), weights)


def test_mix_rejects_no_sources():
    with pytest.raises(UsageError, match="non-empty"):
        blend.mix({}, [])


@pytest.mark.parametrize(
    "other, named",
    [
        (_vectors(1.0, labelled=True), "'y'"),
        (tf.data.Dataset.from_tensor_slices({"x": np.zeros((4, 3), np.float32)}), "'x'.*\\(2,\\).*\\(3,\\)"),
        (tf.data.Dataset.from_tensor_slices({"x": np.zeros((4, 2), np.float64)}), "float32.*float64"),
    ],
)
def test_mix_rejects_sources_with_different_element_specs(other, named):
    with pytest.raises(UsageError, match=named):
        blend.mix({"real": _vectors(0.0), "other": other}, [1, 1])


def test_mix_rejects_a_source_that_already_has_a_source_field():
    tagged = _vectors(0.0).map(lambda example: {**example, "source": tf.constant("a")})
    with pytest.raises(UsageError, match="'source'"):
        blend.mix({"a": tagged}, [1])


def test_realised_shares_rejects_untagged_data_and_bad_counts():
    with pytest.raises(UsageError, match="'source'"):
        blend.realised_shares(_vectors(0.0), 10)
    with pytest.raises(UsageError, match="num=0"):
        blend.realised_shares(blend.mix(_real_and_synthetic(), [1, 1]), 0)


# --- interpolate -----------------------------------------------------------------------------


def _pair():
    real = tf.data.Dataset.from_tensor_slices(
        {"x": np.array([[0, 4], [8, 8]], np.float32), "y": np.array([0, 1]), "id": np.array([7, 8])}
    )
    synthetic = tf.data.Dataset.from_tensor_slices({"x": np.array([[4, 8], [0, 0]], np.uint8), "y": np.array([2, 1])})
    return real, synthetic


def test_interpolate_blends_x_exactly_and_keeps_real_fields():
    real, synthetic = _pair()
    rows = _rows(blend.interpolate(real, synthetic, 0.25))
    x = np.stack([row["x"] for row in rows])
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[1, 5], [6, 6]])
    assert [row["y"] for row in rows] == [0, 1]
    assert [row["id"] for row in rows] == [7, 8]


def test_interpolate_endpoints_give_real_and_synthetic():
    real, synthetic = _pair()
    at_zero = _rows(blend.interpolate(real, synthetic, 0.0))
    at_one = _rows(blend.interpolate(real, synthetic, 1.0))
    np.testing.assert_array_equal([row["x"] for row in at_zero], [[0, 4], [8, 8]])
    np.testing.assert_array_equal([row["x"] for row in at_one], [[4, 8], [0, 0]])
    assert [row["y"] for row in at_zero] == [0, 1]
    assert [row["y"] for row in at_one] == [2, 1]


def test_interpolate_soft_labels_mix_one_hot_labels():
    real, synthetic = _pair()
    soft = np.stack([row["y_soft"] for row in _rows(blend.interpolate(real, synthetic, 0.25, num_classes=3))])
    np.testing.assert_allclose(soft, [[0.75, 0.0, 0.25], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan"), "half"])
def test_interpolate_rejects_ratios_outside_zero_one(ratio):
    real, synthetic = _pair()
    with pytest.raises(UsageError, match="ratio"):
        blend.interpolate(real, synthetic, ratio)


def test_interpolate_rejects_mismatched_shapes_lengths_and_missing_labels():
    real, synthetic = _pair()
    with pytest.raises(UsageError, match="shape"):
        blend.interpolate(real, _vectors(0.0).map(lambda e: {"x": tf.concat([e["x"], e["x"]], 0)}), 0.5)
    with pytest.raises(UsageError, match="differ in length"):
        blend.interpolate(real, synthetic.concatenate(synthetic), 0.5)
    with pytest.raises(UsageError, match="num_classes"):
        blend.interpolate(real, synthetic.map(lambda e: {"x": e["x"]}), 0.5, num_classes=3)


# --- mixup and cutmix ------------------------------------------------------------------------


def _constant_batches(shape, size=6, batches=2):
    """`batches` copies of one batch in which example i is filled with value i and labelled i."""
    x = np.broadcast_to(np.arange(size, dtype=np.uint8).reshape((size,) + (1,) * len(shape)), (size,) + shape)
    batch = {"x": np.array(x), "y": np.arange(size, dtype=np.int64)}
    return tf.data.Dataset.from_tensors(batch).repeat(batches)


@pytest.mark.parametrize("shape", [(3,), (4, 4, 1)])
def test_mixup_labels_are_mixtures_matching_the_mixed_x(shape):
    out = _rows(blend.mixup(_constant_batches(shape), num_classes=6, alpha=0.4, seed=0))
    for batch in out:
        assert batch["x"].dtype == np.float32 and batch["x"].shape == (6,) + shape
        assert batch["y"].dtype == np.float32 and batch["y"].shape == (6, 6)
        np.testing.assert_allclose(batch["y"].sum(axis=1), 1.0, atol=1e-6)
        # Example i holds value i, so a mixed example's value is its label's mean class index.
        expected = batch["y"] @ np.arange(6, dtype=np.float32)
        np.testing.assert_allclose(batch["x"].reshape(6, -1), np.repeat(expected[:, None], np.prod(shape), 1),
                                   atol=1e-4)
    assert any((batch["y"].max(axis=1) < 0.999).any() for batch in out)


def test_mixup_is_reproducible_and_draws_afresh_per_batch():
    def labels(seed):
        return [batch["y"] for batch in _rows(blend.mixup(_constant_batches((3,)), num_classes=6, seed=seed))]

    first, second = labels(0)
    np.testing.assert_array_equal(first, labels(0)[0])
    assert not np.allclose(first, second)
    assert not np.allclose(first, labels(1)[0])


def test_cutmix_label_weights_equal_pasted_pixel_shares():
    pasted_any = False
    for batch in _rows(blend.cutmix(_constant_batches((8, 8, 1), batches=4), num_classes=6, seed=0)):
        assert batch["x"].dtype == np.float32 and batch["y"].shape == (6, 6)
        np.testing.assert_allclose(batch["y"].sum(axis=1), 1.0, atol=1e-6)
        for i in range(6):
            # Pixel value c comes from example c; its share must be the weight of label c.
            pixel_shares = [np.mean(batch["x"][i] == c) for c in range(6)]
            np.testing.assert_allclose(batch["y"][i], pixel_shares, atol=1e-6)
            pasted_any |= pixel_shares[i] < 1.0
    assert pasted_any


def test_cutmix_pastes_one_rectangle():
    batch = _rows(blend.cutmix(_constant_batches((8, 8, 1), batches=1), num_classes=6, seed=5))[0]
    for i in range(6):
        rows, columns = np.nonzero(batch["x"][i, :, :, 0] != i)
        if len(rows):
            box = batch["x"][i, rows.min():rows.max() + 1, columns.min():columns.max() + 1, 0]
            assert (box != i).all() and len(np.unique(box)) == 1


def test_cutmix_is_reproducible_and_draws_afresh_per_batch():
    def labels(seed):
        return [batch["y"] for batch in _rows(blend.cutmix(_constant_batches((8, 8, 1)), num_classes=6, seed=seed))]

    first, second = labels(3)
    np.testing.assert_array_equal(first, labels(3)[0])
    assert not np.allclose(first, second)


def test_mixup_and_cutmix_reject_bad_inputs():
    with pytest.raises(UsageError, match="batch the dataset first"):
        blend.mixup(_constant_batches((4, 4, 1)).unbatch(), num_classes=6)
    with pytest.raises(UsageError, match="images"):
        blend.cutmix(_constant_batches((3,)), num_classes=6)
    with pytest.raises(UsageError, match="'y'"):
        blend.mixup(_constant_batches((3,)).map(lambda b: {"x": b["x"]}), num_classes=6)
    with pytest.raises(UsageError, match="alpha"):
        blend.mixup(_constant_batches((3,)), num_classes=6, alpha=0.0)
    with pytest.raises(UsageError, match="num_classes"):
        blend.cutmix(_constant_batches((8, 8, 1)), num_classes=0)


# --- join ------------------------------------------------------------------------------------


def _table(**columns):
    return tf.data.Dataset.from_tensor_slices({name: np.array(values) for name, values in columns.items()})


def _people():
    return _table(id=[1, 2, 3, 4], x=np.float32([10, 20, 30, 40]))


def _scores():
    return _table(id=[4, 2, 5], x=np.float32([400, 200, 500]), label=[1, 0, 2], tag=["d", "b", "e"])


def test_join_inner_keeps_matches_in_left_order_and_renames_clashes():
    rows = _rows(blend.join(_people(), _scores(), "id"))
    assert [row["id"] for row in rows] == [2, 4]
    assert [row["x"] for row in rows] == [20, 40]
    assert [row["right_x"] for row in rows] == [200, 400]
    assert [row["label"] for row in rows] == [0, 1]
    assert [row["tag"] for row in rows] == [b"b", b"d"]
    assert set(rows[0]) == {"id", "x", "right_x", "label", "tag"}


def test_join_left_fills_unmatched_rows_and_flags_them():
    joined = blend.join(_people(), _scores(), "id", how="left")
    assert joined.element_spec["tag"].dtype == tf.string and joined.element_spec["label"].dtype == tf.int64
    rows = _rows(joined)
    assert [row["id"] for row in rows] == [1, 2, 3, 4]
    assert [row["matched"] for row in rows] == [False, True, False, True]
    assert [row["right_x"] for row in rows] == [0, 200, 0, 400]
    assert [row["tag"] for row in rows] == [b"", b"b", b"", b"d"]


def test_join_duplicate_policies():
    right = _table(id=[2, 2, 4], label=[0, 1, 2])
    with pytest.raises(UsageError, match="key 2 more than once"):
        blend.join(_people(), right, "id")
    first = _rows(blend.join(_people(), right, "id", duplicates="first"))
    last = _rows(blend.join(_people(), right, "id", duplicates="last"))
    assert [(row["id"], row["label"]) for row in first] == [(2, 0), (4, 2)]
    assert [(row["id"], row["label"]) for row in last] == [(2, 1), (4, 2)]


def test_join_on_string_keys_with_repeated_left_keys():
    left = _table(name=["b", "a", "b", "c"], y=[0, 1, 2, 3])
    right = _table(name=["b", "c", "d"], y=[10, 20, 30])
    rows = _rows(blend.join(left, right, "name"))
    assert [(row["name"], row["y"], row["right_y"]) for row in rows] == [(b"b", 0, 10), (b"b", 2, 10), (b"c", 3, 20)]


def test_join_with_no_matches_is_empty():
    joined = blend.join(_people(), _table(id=[9], tag=["z"]), "id")
    assert _rows(joined) == [] and joined.element_spec["tag"].dtype == tf.string


def test_join_rejects_bad_arguments():
    with pytest.raises(UsageError, match="how='outer'.*inner, left"):
        blend.join(_people(), _scores(), "id", how="outer")
    with pytest.raises(UsageError, match="duplicates='any'.*error, first, last"):
        blend.join(_people(), _scores(), "id", duplicates="any")
    with pytest.raises(UsageError, match="'key'.*not a field of left"):
        blend.join(_people(), _scores(), "key")
    with pytest.raises(UsageError, match="int64 in left but string"):
        blend.join(_people(), _table(id=["1"]), "id")
    with pytest.raises(UsageError, match="endless"):
        blend.join(_people(), _scores().repeat(), "id")


# --- concat_features -------------------------------------------------------------------------


def test_concat_features_joins_vectors_and_keeps_the_first_label():
    unlabelled = _table(x=np.float32([[1, 2], [3, 4]]))
    labelled = _table(x=np.uint8([[5], [6]]), y=[7, 8])
    fused = blend.concat_features(unlabelled, labelled, names=["a", "b"])
    assert fused.element_spec["x"].shape == (3,) and fused.element_spec["x"].dtype == tf.float32
    rows = _rows(fused)
    np.testing.assert_array_equal([row["x"] for row in rows], [[1, 2, 5], [3, 4, 6]])
    assert [row["y"] for row in rows] == [7, 8]


def test_concat_features_rejects_different_lengths_and_non_vectors():
    two, three = _table(x=np.zeros((2, 1), np.float32)), _table(x=np.zeros((3, 1), np.float32))
    with pytest.raises(UsageError, match="a has 2 examples, b has 3"):
        blend.concat_features(two, three, names=["a", "b"])
    with pytest.raises(UsageError, match="endless"):
        blend.concat_features(two, three.repeat())
    with pytest.raises(UsageError, match="vectors"):
        blend.concat_features(two, _table(x=np.zeros((2, 2, 2, 1), np.float32)))
    with pytest.raises(UsageError, match="names"):
        blend.concat_features(two, two, names=["a"])


# --- dedupe ----------------------------------------------------------------------------------


def test_dedupe_removes_planted_duplicates_and_reports_them():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10) % 2
    x[3], y[3] = x[0], y[0]  # duplicate of 0
    x[7], y[7] = x[2], y[2]  # duplicate of 2
    x[9], y[9] = x[0], y[0]  # duplicate of 0 again
    x[5], y[5] = x[1], 0  # same x as 1 but another label: kept
    names = np.array([f"n{i}" for i in range(10)])
    deduplicated, report = blend.dedupe(_table(x=x, y=y, name=names))
    assert report == {"examples": 10, "kept": 7, "removed": 3, "removed_indices": [3, 7, 9]}
    kept = [0, 1, 2, 4, 5, 6, 8]
    np.testing.assert_array_equal(_column(deduplicated, "x"), x[kept])
    assert list(_column(deduplicated, "name")) == [f"n{i}".encode() for i in kept]


def test_dedupe_of_unlabelled_and_empty_data():
    x = np.float32([[1], [1], [2]])
    deduplicated, report = blend.dedupe(_table(x=x))
    assert report["removed_indices"] == [1] and len(_rows(deduplicated)) == 2
    empty, report = blend.dedupe(_table(x=np.zeros((0, 2), np.float32)))
    assert report == {"examples": 0, "kept": 0, "removed": 0, "removed_indices": []} and _rows(empty) == []


def test_dedupe_rejects_endless_and_ragged_data():
    with pytest.raises(UsageError, match="endless"):
        blend.dedupe(_table(x=np.zeros((2, 1))).repeat())
    ragged = tf.data.Dataset.range(1, 3).map(lambda n: {"x": tf.zeros([n])})
    with pytest.raises(DataError, match="cannot stack"):
        blend.dedupe(ragged)
