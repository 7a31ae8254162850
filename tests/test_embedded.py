"""Tests for datasets.embedded: in-process NumPy datasets."""

import ast
import inspect

import numpy as np
import pytest

from synthblend.datasets import embedded

CIRCLE, SQUARE, TRIANGLE, CROSS = range(4)


@pytest.fixture(scope="module")
def batch():
    return embedded.shapes(2000, seed=0)


def _weights(x):
    return x[..., 0].astype(np.float64) / 255.0


def _moments(x):
    """Coverage area (pixels) and centroid (col, row) in pixel units."""
    w = _weights(x)
    size = w.shape[1]
    centres = np.arange(size) + 0.5
    area = w.sum(axis=(1, 2))
    cx = (w.sum(axis=1) * centres).sum(axis=1) / area
    cy = (w.sum(axis=2) * centres).sum(axis=1) / area
    return area, cx, cy


def _features(x):
    """Translation-, rotation- and scale-invariant shape descriptors.

    A radial mass profile (distance from the centroid divided by
    sqrt(area)) plus compactness perimeter^2 / (4*pi*area).
    """
    w = _weights(x)
    size = w.shape[1]
    area, cx, cy = _moments(x)
    centres = np.arange(size) + 0.5
    r = np.hypot(
        centres[None, None, :] - cx[:, None, None],
        centres[None, :, None] - cy[:, None, None],
    ) / np.sqrt(area)[:, None, None]
    edges = np.linspace(0.0, 1.0, 11)
    profile = np.stack(
        [(w * ((r >= lo) & (r < hi))).sum(axis=(1, 2)) for lo, hi in zip(edges[:-1], edges[1:])],
        axis=1,
    ) / area[:, None]
    gy, gx = np.gradient(w, axis=(1, 2))
    perimeter = np.hypot(gx, gy).sum(axis=(1, 2))
    compactness = perimeter**2 / (4.0 * np.pi * area)
    return np.concatenate([profile, compactness[:, None]], axis=1)


def _angle_diff(a, b):
    return np.abs((a - b + np.pi) % (2.0 * np.pi) - np.pi)


# ---------------------------------------------------------------- shapes


def test_public_constants():
    assert embedded.SHAPE_CLASSES == ("circle", "square", "triangle", "cross")
    assert embedded.SHAPE_FACTORS == ("scale", "rotation", "position_x", "position_y")


def test_module_does_not_import_tensorflow():
    tree = ast.parse(inspect.getsource(embedded))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"tensorflow", "keras", "tensorflow_datasets"}


def test_shapes_deterministic_and_seed_sensitive():
    a = embedded.shapes(64, seed=7)
    b = embedded.shapes(64, seed=7)
    c = embedded.shapes(64, seed=8)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    for key in ("x", "y") + embedded.SHAPE_FACTORS:
        assert not np.array_equal(a[key], c[key]), key


def test_shapes_prefix_stable():
    small = embedded.shapes(10, seed=9)
    large = embedded.shapes(300, seed=9)
    for key in small:
        np.testing.assert_array_equal(small[key], large[key][:10])


@pytest.mark.parametrize("size", [28, 32, 64])
def test_shapes_keys_dtypes_ranges(size):
    n = 200
    d = embedded.shapes(n, seed=1, size=size)
    assert set(d) == {"x", "y", *embedded.SHAPE_FACTORS}
    assert d["x"].dtype == np.uint8 and d["x"].shape == (n, size, size, 1)
    assert d["x"].min() == 0 and d["x"].max() == 255
    # Anti-aliased edges produce intermediate grey levels.
    assert ((d["x"] > 0) & (d["x"] < 255)).any()
    assert d["y"].dtype == np.int64 and d["y"].shape == (n,)
    assert d["y"].min() >= 0 and d["y"].max() < len(embedded.SHAPE_CLASSES)
    for key in embedded.SHAPE_FACTORS:
        assert d[key].dtype == np.float32 and d[key].shape == (n,), key
    assert d["scale"].min() >= 0.35 and d["scale"].max() <= 0.7
    assert d["rotation"].min() >= 0.0 and d["rotation"].max() < 2.0 * np.pi
    reach = np.maximum(np.abs(d["position_x"]), np.abs(d["position_y"])) + d["scale"]
    assert reach.max() < 1.0


def test_shapes_factors_independent_of_size():
    small = embedded.shapes(50, seed=3, size=28)
    large = embedded.shapes(50, seed=3, size=64)
    for key in ("y",) + embedded.SHAPE_FACTORS:
        np.testing.assert_array_equal(small[key], large[key])
    # Same scene: the fraction of the image covered agrees across resolutions.
    frac_small = _moments(small["x"])[0] / 28**2
    frac_large = _moments(large["x"])[0] / 64**2
    np.testing.assert_allclose(frac_small, frac_large, rtol=0.03)


def test_shapes_class_balance():
    y = embedded.shapes(4000, seed=2, size=16)["y"]
    counts = np.bincount(y, minlength=4)
    # Expected 1000 each, binomial std ~27.
    assert counts.min() > 880 and counts.max() < 1120, counts


def test_shapes_foreground_and_inside(batch):
    x = batch["x"][..., 0]
    area = _moments(batch["x"])[0]
    for label, name in enumerate(embedded.SHAPE_CLASSES):
        sel = batch["y"] == label
        assert sel.sum() > 300, name
        frac = area[sel] / x[0].size
        # Smallest shape (triangle at scale 0.35) covers about 5% of the image.
        assert frac.min() > 0.03, name
        assert frac.max() < 0.6, name
        assert (x[sel].max(axis=(1, 2)) == 255).all(), name
    border = np.concatenate([x[:, 0, :], x[:, -1, :], x[:, :, 0], x[:, :, -1]], axis=1)
    assert border.max() == 0


def test_shapes_inside_at_other_sizes():
    for size in (32, 64):
        x = embedded.shapes(300, seed=4, size=size)["x"][..., 0]
        border = np.concatenate([x[:, 0, :], x[:, -1, :], x[:, :, 0], x[:, :, -1]], axis=1)
        assert border.max() == 0, size


@pytest.mark.parametrize("size", [28, 64])
def test_circle_area_scales_with_scale_squared(size):
    d = embedded.shapes(800, seed=5, size=size)
    sel = d["y"] == CIRCLE
    area = _moments(d["x"][sel])[0]
    radius_px = d["scale"][sel].astype(np.float64) * size / 2.0
    np.testing.assert_allclose(area, np.pi * radius_px**2, rtol=0.03)


def test_centroid_matches_position(batch):
    area, cx, cy = _moments(batch["x"])
    size = batch["x"].shape[1]
    # Every class is drawn with its centroid at the shape centre.
    np.testing.assert_allclose(cx, (batch["position_x"] + 1.0) * size / 2.0, atol=0.15)
    np.testing.assert_allclose(cy, (batch["position_y"] + 1.0) * size / 2.0, atol=0.15)


def test_rotation_convention():
    d = embedded.shapes(600, seed=6, size=64)
    w = _weights(d["x"])
    _, cx, cy = _moments(d["x"])
    centres = np.arange(64) + 0.5
    dx = centres[None, None, :] - cx[:, None, None]
    dy_up = cy[:, None, None] - centres[None, :, None]
    phi = np.arctan2(dy_up, dx)
    r = np.hypot(dx, dy_up)
    # A triangle's mass reaches furthest towards its vertices; at rotation 0
    # the apex points up (+pi/2) and rotation is counter-clockwise on screen.
    for label, order, vertex in ((TRIANGLE, 3, np.pi / 2), (SQUARE, 4, np.pi / 4)):
        sel = d["y"] == label
        harmonic = (w[sel] * r[sel] ** order * np.exp(1j * order * phi[sel])).sum(axis=(1, 2))
        expected = order * (vertex + d["rotation"][sel].astype(np.float64))
        assert _angle_diff(np.angle(harmonic), expected).max() < 0.2, label


def test_classes_separable_by_nearest_class_mean(batch):
    train_f = _features(batch["x"])
    means = np.stack([train_f[batch["y"] == k].mean(axis=0) for k in range(4)])
    std = train_f.std(axis=0) + 1e-9
    test = embedded.shapes(1000, seed=1)
    test_f = _features(test["x"])
    dist = (((test_f[:, None, :] - means[None]) / std) ** 2).sum(axis=-1)
    accuracy = (dist.argmin(axis=1) == test["y"]).mean()
    assert accuracy > 0.9, accuracy  # chance is 0.25
    # Mean images differ too (a weak check that needs no features).
    mean_img = np.stack([_weights(batch["x"][batch["y"] == k]).mean(axis=0) for k in range(4)])
    pairwise = np.linalg.norm((mean_img[:, None] - mean_img[None]).reshape(16, -1), axis=1)
    assert np.sort(pairwise)[4] > 0.5  # the four zeros are the diagonal


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_examples=0, seed=0),
        dict(num_examples=-3, seed=0),
        dict(num_examples=2.5, seed=0),
        dict(num_examples="10", seed=0),
        dict(num_examples=True, seed=0),
        dict(num_examples=None, seed=0),
        dict(num_examples=4, seed=0, size=0),
        dict(num_examples=4, seed=0, size=-28),
        dict(num_examples=4, seed=0, size=28.0),
        dict(num_examples=4, seed=None),
        dict(num_examples=4, seed=-1),
    ],
)
def test_shapes_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError) as info:
        embedded.shapes(**kwargs)
    assert "\n" not in str(info.value)


def test_shapes_accepts_numpy_ints():
    d = embedded.shapes(np.int64(3), seed=np.int32(1), size=np.int64(16))
    assert d["x"].shape == (3, 16, 16, 1)


# ------------------------------------------------------------ ring / grid


def test_ring_centers():
    c = embedded.ring_centers()
    assert c.dtype == np.float32 and c.shape == (embedded.RING_MODES, 2) == (8, 2)
    np.testing.assert_allclose(np.hypot(c[:, 0], c[:, 1]), embedded.RING_RADIUS, atol=1e-6)
    angles = np.sort(np.arctan2(c[:, 1], c[:, 0]) % (2.0 * np.pi))
    np.testing.assert_allclose(np.diff(angles), 2.0 * np.pi / 8, atol=1e-6)
    np.testing.assert_allclose(c.mean(axis=0), 0.0, atol=1e-6)


def test_grid_centers():
    c = embedded.grid_centers()
    assert c.dtype == np.float32 and c.shape == (25, 2)
    expected = {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(map(float, p)) for p in c} == expected


@pytest.mark.parametrize(
    "sample, centers, std",
    [
        (embedded.ring, embedded.ring_centers, embedded.RING_STD),
        (embedded.grid, embedded.grid_centers, embedded.GRID_STD),
    ],
    ids=["ring", "grid"],
)
def test_mixture_samples(sample, centers, std):
    n = 5000
    d = sample(n, seed=0)
    c = centers()
    x, y = d["x"], d["y"]
    assert set(d) == {"x", "y"}
    assert x.dtype == np.float32 and x.shape == (n, 2)
    assert y.dtype == np.int64 and y.shape == (n,)
    counts = np.bincount(y, minlength=len(c))
    assert counts.size == len(c) and counts.min() > 0
    expected = n / len(c)
    assert counts.min() > 0.7 * expected and counts.max() < 1.3 * expected
    dev = x.astype(np.float64) - c[y]
    dist = np.hypot(dev[:, 0], dev[:, 1])
    # Untruncated Gaussian: P(radius > 4 std) = exp(-8) ~ 3e-4 per point.
    assert np.mean(dist < 4.0 * std) > 0.998
    assert dist.max() < 5.5 * std
    np.testing.assert_allclose(dev.std(axis=0), std, rtol=0.05)
    np.testing.assert_allclose(dev.mean(axis=0), 0.0, atol=0.1 * std)
    nearest = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(axis=-1), axis=1)
    np.testing.assert_array_equal(nearest, y)

    again = sample(n, seed=0)
    np.testing.assert_array_equal(again["x"], x)
    np.testing.assert_array_equal(again["y"], y)
    np.testing.assert_array_equal(sample(7, seed=0)["x"], x[:7])
    other = sample(n, seed=1)
    assert not np.array_equal(other["x"], x)


@pytest.mark.parametrize("sample", [embedded.ring, embedded.grid], ids=["ring", "grid"])
def test_mixture_rejects_bad_arguments(sample):
    for bad in (0, -1, 1.5, None):
        with pytest.raises(ValueError):
            sample(bad, seed=0)
    with pytest.raises(ValueError):
        sample(10, seed=None)
