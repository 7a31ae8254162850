"""Small synthetic datasets generated in-process with NumPy.

Nothing here downloads data or imports TensorFlow: every dataset is drawn from
``numpy.random.default_rng(seed)``, so the same ``seed`` always gives the same
arrays and the data can be built anywhere, including inside tests.

Three datasets are provided:

* :func:`shapes` -- grayscale drawings of four shape classes (circle, square,
  equilateral triangle, cross) with known generative factors (scale, rotation,
  position). Useful for conditional generation and for checking whether a
  model's latent code captures the true factors (e.g. InfoGAN).
* :func:`ring` -- the 2-D mixture of 8 Gaussians on a circle used to measure
  mode coverage of GANs (Metz et al., "Unrolled GANs"; Srivastava et al.,
  "VEEGAN").
* :func:`grid` -- the 2-D mixture of 25 Gaussians on a 5x5 grid from the same
  papers.

Image coordinate conventions used by :func:`shapes`: positions are measured in
units of the image half-width from the image centre, ``position_x`` grows to
the right (column index) and ``position_y`` grows downwards (row index), so a
shape at ``(0, 0)`` is centred and one at ``(0.5, 0.5)`` is centred in the
lower-right quadrant. ``rotation`` is counter-clockwise as the image is
displayed with row 0 at the top (``matplotlib.pyplot.imshow`` default).
"""

from __future__ import annotations

import numbers

import numpy as np

SHAPE_CLASSES = ("circle", "square", "triangle", "cross")
SHAPE_FACTORS = ("scale", "rotation", "position_x", "position_y")

RING_MODES = 8
RING_RADIUS = 2.0
RING_STD = 0.02

GRID_SIDE = 5
GRID_SPACING = 2.0
GRID_STD = 0.05

# Factor ranges, in image half-width units. Below ~0.35 a 28x28 triangle and
# square are only a handful of pixels wide and hard to tell apart.
_SCALE_MIN = 0.35
_SCALE_MAX = 0.7

# Per-class size relative to ``scale``. The square is deliberately smaller than
# the circle of the same scale (and the triangle larger) so that size and
# outline both differ; the cross bars are one third of the cross's extent.
_SQUARE_HALF_SIDE = 0.8
_TRIANGLE_CIRCUMRADIUS = 1.15
_CROSS_HALF_LENGTH = 1.05
_CROSS_HALF_WIDTH = _CROSS_HALF_LENGTH / 3.0

# Radius, relative to ``scale``, of a circle around the shape centre that
# contains every class at every rotation (the triangle's circumradius is the
# largest: square 0.8*sqrt(2)=1.131, cross 1.05*sqrt(10)/3=1.107). Using one
# bound for all classes keeps the position distribution independent of the
# class.
_EXTENT = 1.15

# Gap kept between the bounding circle and the image edge. Anti-aliasing
# lights pixels whose centre is within half a pixel of the outline, so a gap
# of 2 pixels (2 * 2/size half-widths) keeps the border rows/columns black; 0.125
# satisfies that for every size >= 16 while keeping factors size-independent.
_MARGIN = 0.125

# Bounds peak memory: a few float32 arrays of chunk * size * size elements.
_CHUNK = 2048


def _check_count(num_examples, name="num_examples"):
    if (
        isinstance(num_examples, bool)
        or not isinstance(num_examples, numbers.Integral)
        or num_examples <= 0
    ):
        raise ValueError(f"{name} must be a positive int, got {num_examples!r}")
    return int(num_examples)


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _uniform_index(u, count):
    """Maps uniforms in [0, 1) to int64 indices uniform over range(count)."""
    # u * count can round up to count itself for u just below 1.
    return np.minimum((u * count).astype(np.int64), count - 1)


def _box_sdf(u, v, half_u, half_v):
    """Exact signed distance to an axis-aligned box centred at the origin."""
    qu = np.abs(u) - half_u
    qv = np.abs(v) - half_v
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    inside = np.minimum(np.maximum(qu, qv), 0.0)
    return outside + inside


def _triangle_sdf(u, v, half_side):
    """Exact signed distance to an equilateral triangle, apex pointing to +v.

    The centroid is at the origin. This is Inigo Quilez's
    ``sdEquilateralTriangle``: fold by the x-symmetry, then by the 120-degree
    symmetry onto one edge, and measure the distance to that edge segment.
    """
    k = np.float32(np.sqrt(3.0))
    px = np.abs(u) - half_side
    py = v + half_side / k
    fold = px + k * py > 0.0
    px, py = (
        np.where(fold, (px - k * py) * 0.5, px),
        np.where(fold, (-k * px - py) * 0.5, py),
    )
    px = px - np.clip(px, -2.0 * half_side, 0.0)
    return -np.hypot(px, py) * np.sign(py)


def _shape_sdf(label, u, v, radius):
    """SDF of class ``label`` in the shape's own frame, in half-width units.

    ``radius`` has shape (B, 1, 1) so it broadcasts over the pixel grid.
    """
    if label == 0:
        return np.hypot(u, v) - radius
    if label == 1:
        half = _SQUARE_HALF_SIDE * radius
        return _box_sdf(u, v, half, half)
    if label == 2:
        half_side = _TRIANGLE_CIRCUMRADIUS * radius * np.float32(np.sqrt(3.0) / 2.0)
        return _triangle_sdf(u, v, half_side)
    # The cross is non-convex; the union of two bars is the minimum of their
    # SDFs (exact outside, which is all the anti-aliasing band needs).
    length = _CROSS_HALF_LENGTH * radius
    width = _CROSS_HALF_WIDTH * radius
    return np.minimum(_box_sdf(u, v, length, width), _box_sdf(u, v, width, length))


def _render(labels, scale, rotation, pos_x, pos_y, size):
    """Rasterise shapes into a uint8 array of shape (N, size, size)."""
    n = labels.shape[0]
    out = np.empty((n, size, size), dtype=np.uint8)
    # Pixel centres in half-width units; rows grow downwards.
    centres = ((np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0).astype(
        np.float32
    )
    px_per_unit = np.float32(size / 2.0)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        for label in range(len(SHAPE_CLASSES)):
            idx = start + np.flatnonzero(labels[start:stop] == label)
            if idx.size == 0:
                continue
            cos = np.cos(rotation[idx])[:, None, None]
            sin = np.sin(rotation[idx])[:, None, None]
            dx = centres[None, None, :] - pos_x[idx][:, None, None]
            # Flip to y-up so that positive rotation is counter-clockwise on
            # screen and a triangle at rotation 0 points up.
            dy = pos_y[idx][:, None, None] - centres[None, :, None]
            # Rotating the sample points by -rotation rotates the shape by
            # +rotation.
            u = cos * dx + sin * dy
            v = cos * dy - sin * dx
            sdf = _shape_sdf(label, u, v, scale[idx][:, None, None])
            coverage = np.clip(0.5 - sdf * px_per_unit, 0.0, 1.0)
            out[idx] = np.rint(coverage * 255.0).astype(np.uint8)
    return out


def shapes(num_examples: int, seed: int, size: int = 28) -> dict[str, np.ndarray]:
    """Draws anti-aliased white shapes on a black background.

    Each image holds one shape of one of :data:`SHAPE_CLASSES`, rendered from
    its signed distance function evaluated at pixel centres with coverage
    ``clip(0.5 - sdf_in_pixels, 0, 1)``. Classes are drawn uniformly at random
    and the factors are drawn independently of the class:

    * ``scale``: the shape's radius as a fraction of the image half-width,
      uniform in [0.35, 0.7]. A circle has exactly this radius; a square has
      half-side ``0.8 * scale``; a triangle has circumradius
      ``1.15 * scale``; a cross has arms of half-length ``1.05 * scale`` and
      bar width one third of its extent.
    * ``rotation``: radians, uniform in [0, 2*pi), counter-clockwise on
      screen. Note the symmetries: it has no visible effect on a circle and
      is only identifiable modulo pi/2 for square and cross and modulo
      2*pi/3 for the triangle.
    * ``position_x``, ``position_y``: shape centre relative to the image
      centre in half-width units (x to the right, y downwards), each uniform
      in ``[-m, m]`` with ``m = 1 - 0.125 - 1.15 * scale``, so the whole shape
      stays inside the image: the outermost rows and columns of pixels are
      always black for any ``size >= 16``.

    The factors are sampled before rendering and do not depend on ``size``,
    so the same ``seed`` gives the same scenes at 28, 32 or 64 pixels. The
    first ``n`` examples of ``shapes(m, seed)`` equal ``shapes(n, seed)``.

    Args:
      num_examples: Number of images, a positive int.
      seed: Non-negative int seeding ``numpy.random.default_rng``.
      size: Height and width of the images in pixels, a positive int.

    Returns:
      A dict with ``"x"``: uint8 ``(N, size, size, 1)`` in 0..255; ``"y"``:
      int64 ``(N,)`` index into :data:`SHAPE_CLASSES`; and one float32
      ``(N,)`` array per name in :data:`SHAPE_FACTORS`.

    Raises:
      ValueError: If ``num_examples``, ``seed`` or ``size`` is not a valid
        int.
    """
    n = _check_count(num_examples)
    seed = _check_seed(seed)
    size = _check_count(size, "size")
    # One row of uniforms per example, consumed in C order, so shapes(n, s)
    # is exactly the first n examples of shapes(m, s) for any m >= n.
    u = np.random.default_rng(seed).random((n, 5))

    labels = _uniform_index(u[:, 0], len(SHAPE_CLASSES))
    scale = (_SCALE_MIN + (_SCALE_MAX - _SCALE_MIN) * u[:, 1]).astype(np.float32)
    rotation = (2.0 * np.pi * u[:, 2]).astype(np.float32)
    # float32 rounding can turn a value just below 2*pi into 2*pi itself.
    rotation[rotation >= np.float32(2.0 * np.pi)] = 0.0
    half_range = 1.0 - _MARGIN - _EXTENT * scale.astype(np.float64)
    pos_x = ((2.0 * u[:, 3] - 1.0) * half_range).astype(np.float32)
    pos_y = ((2.0 * u[:, 4] - 1.0) * half_range).astype(np.float32)

    images = _render(labels, scale, rotation, pos_x, pos_y, size)
    return {
        "x": images[..., None],
        "y": labels,
        "scale": scale,
        "rotation": rotation,
        "position_x": pos_x,
        "position_y": pos_y,
    }


def ring_centers() -> np.ndarray:
    """Returns the 8 mode centres of :func:`ring`.

    Returns:
      float32 array of shape ``(8, 2)``; centre ``k`` is at angle
      ``2*pi*k/8`` on the circle of radius :data:`RING_RADIUS` around the
      origin, starting at ``(2, 0)`` and going counter-clockwise.
    """
    angles = 2.0 * np.pi * np.arange(RING_MODES) / RING_MODES
    centres = RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centres.astype(np.float32)


def grid_centers() -> np.ndarray:
    """Returns the 25 mode centres of :func:`grid`.

    Returns:
      float32 array of shape ``(25, 2)`` holding every point of
      ``{-4, -2, 0, 2, 4}^2``; centre ``k`` has x-coordinate index ``k // 5``
      and y-coordinate index ``k % 5``.
    """
    axis = GRID_SPACING * (np.arange(GRID_SIDE) - (GRID_SIDE - 1) / 2.0)
    xs, ys = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def _mixture(centres, std, num_examples, seed):
    n = _check_count(num_examples)
    u = np.random.default_rng(_check_seed(seed)).random((n, 3))
    labels = _uniform_index(u[:, 0], centres.shape[0])
    # Box-Muller from per-row uniforms (rather than rng.normal, whose
    # consumption of random bits varies) keeps every prefix of a larger sample
    # identical to a smaller sample with the same seed.
    radius = std * np.sqrt(-2.0 * np.log1p(-u[:, 1]))
    angle = 2.0 * np.pi * u[:, 2]
    noise = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points = (centres[labels].astype(np.float64) + noise).astype(np.float32)
    return {"x": points, "y": labels}


def ring(num_examples: int, seed: int) -> dict[str, np.ndarray]:
    """Samples the 8-Gaussian ring used to measure GAN mode coverage.

    Each point picks one of :func:`ring_centers` uniformly at random and adds
    isotropic Gaussian noise with standard deviation :data:`RING_STD`
    (untruncated, so about 1 point in 3,000 lies beyond 4 std). The first
    ``n`` points of ``ring(m, seed)`` equal ``ring(n, seed)``.

    Args:
      num_examples: Number of points, a positive int.
      seed: Non-negative int seeding ``numpy.random.default_rng``.

    Returns:
      A dict with ``"x"``: float32 ``(N, 2)`` points and ``"y"``: int64
      ``(N,)`` index of the mode each point was drawn from.

    Raises:
      ValueError: If ``num_examples`` or ``seed`` is not a valid int.
    """
    return _mixture(ring_centers(), RING_STD, num_examples, seed)


def grid(num_examples: int, seed: int) -> dict[str, np.ndarray]:
    """Samples the 25-Gaussian 5x5 grid used to measure GAN mode coverage.

    Each point picks one of :func:`grid_centers` uniformly at random and adds
    isotropic Gaussian noise with standard deviation :data:`GRID_STD`. The
    first ``n`` points of ``grid(m, seed)`` equal ``grid(n, seed)``.

    Args:
      num_examples: Number of points, a positive int.
      seed: Non-negative int seeding ``numpy.random.default_rng``.

    Returns:
      A dict with ``"x"``: float32 ``(N, 2)`` points and ``"y"``: int64
      ``(N,)`` index of the mode each point was drawn from.

    Raises:
      ValueError: If ``num_examples`` or ``seed`` is not a valid int.
    """
    return _mixture(grid_centers(), GRID_STD, num_examples, seed)


PURCHASE_SEGMENTS = ("budget", "regular", "premium")
PURCHASE_CHANNELS = ("web", "store", "app")
PURCHASE_COLUMNS = ("segment", "age", "income", "visits", "basket_value", "channel", "churned")
PURCHASE_KINDS = {"segment": "categorical", "age": "integer", "income": "continuous", "visits": "integer",
                  "basket_value": "continuous", "channel": "categorical", "churned": "boolean"}


# Each column's domain as the generator below defines it (public, since it is how the table is made);
# what a differentially private run needs declared (`datasets.tabular.check_declared`).
PURCHASE_DOMAINS = {
    "segment": {"kind": "categorical", "categories": list(PURCHASE_SEGMENTS)},
    "age": {"kind": "integer", "bounds": [18, 80]},
    "income": {"kind": "continuous", "bounds": [0, 500000], "decimals": 2},
    "visits": {"kind": "integer", "bounds": [0, 50]},
    "basket_value": {"kind": "continuous", "bounds": [0, 1000], "decimals": 2},
    "channel": {"kind": "categorical", "categories": list(PURCHASE_CHANNELS)},
    "churned": {"kind": "boolean", "tokens": ["false", "true"]},
}


def purchases(num_examples: int, seed: int) -> dict[str, np.ndarray]:
    """Customers and their purchases: a table with known structure, one row per customer.

    - ``segment`` (budget 50%, regular 35%, premium 15%);
    - ``age`` (integer 18..80, older in richer segments);
    - ``income`` (yearly, log-normal: skewed; higher in richer segments and with age);
    - ``visits`` (integer count in the last quarter, Poisson, more in richer segments);
    - ``basket_value`` (mean spend per visit, log-normal: skewed; grows with income and segment);
    - ``channel`` (web, store, app: the young favour the app, the old the store);
    - ``churned`` (boolean label: likelier with few visits and in the budget segment; a logistic
      model of the other columns predicts it with about 80% accuracy, never all of it).

    Money is rounded to cents. Returns the columns in the order of ``PURCHASE_COLUMNS``.
    """
    _check_count(num_examples)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    segment = rng.choice(3, size=num_examples, p=(0.5, 0.35, 0.15))
    age = np.clip(np.round(rng.normal(38 + 5 * segment, 12)), 18, 80).astype(np.int64)
    log_income = 10.2 + 0.4 * segment + 0.008 * (age - 40) + rng.normal(0, 0.45, num_examples)
    income = np.round(np.exp(log_income), 2)
    visits = rng.poisson(1.5 + 2.0 * segment + 0.5 * rng.gamma(2.0, 1.0, num_examples)).astype(np.int64)
    log_basket = 3.0 + 0.45 * segment + 0.5 * (log_income - 10.4) + rng.normal(0, 0.4, num_examples)
    basket_value = np.round(np.exp(log_basket), 2)
    logits = np.stack([np.zeros(num_examples), (age - 45) / 8.0, (32 - age) / 8.0], axis=1)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    channel = (rng.random(num_examples)[:, None] > np.cumsum(probabilities, axis=1)).sum(axis=1)
    churn_logit = 2.2 - 0.9 * visits - 0.8 * segment + 0.02 * (40 - age)
    churned = rng.random(num_examples) < 1.0 / (1.0 + np.exp(-churn_logit))
    return {
        "segment": np.asarray(PURCHASE_SEGMENTS)[segment],
        "age": age,
        "income": income,
        "visits": visits,
        "basket_value": basket_value,
        "channel": np.asarray(PURCHASE_CHANNELS)[np.minimum(channel, 2)],
        "churned": churned,
    }
