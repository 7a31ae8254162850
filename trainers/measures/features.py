"""Measures of synthetic data against real data, computed from arrays of features or predictions.

Every function takes plain numpy arrays (feature sets are 2-D float arrays of shape `(n, d)`,
one row per example) and returns Python floats, ints, lists and dicts that can be written to
JSON as they are; the one exception is the per-sample distance array of
`distance_to_closest_record`, which callers drop before writing.

Distribution distances
- `frechet_distance`: Fréchet distance between Gaussians fitted to the two feature sets,
  ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` (Heusel et al. 2017, "GANs Trained by a
  Two Time-Scale Update Rule Converge to a Local Nash Equilibrium"; FID when the features come
  from Inception). Lower is better; 0 for identical first and second moments.
- `kernel_inception_distance`: the unbiased estimate of the squared maximum mean discrepancy
  with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets
  (Binkowski et al. 2018, "Demystifying MMD GANs"; KID). Unlike FID it has no bias from the
  sample size, so it can be compared across sample sizes; it can be slightly negative.

Fidelity and diversity from k-nearest-neighbour balls
- `precision_recall`: each point gets a ball reaching its k-th nearest neighbour in its own
  set; precision is the share of synthetic points inside some real ball (are samples
  realistic?), recall the share of real points inside some synthetic ball (is the real data
  covered?) (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models").
- `density_coverage`: density counts how many real balls hold each synthetic point, divided by
  k, so it is about 1 when the two sets match and above 1 when samples crowd dense regions;
  coverage is the share of real balls holding at least one synthetic point. Both resist the
  outliers that inflate precision and recall (Naeem et al. 2020, "Reliable Fidelity and
  Diversity Metrics for Generative Models").

Predictions of a classifier
- `classifier_score`: ``exp(E_x KL(p(y|x) || p(y)))``, the Inception Score computed from any
  classifier's probabilities (Salimans et al. 2016, "Improved Techniques for Training GANs").
  It lies between 1 and the number of classes; higher means confident and varied predictions.
- `class_histogram`: how often each class is predicted for the samples, and the KL divergence
  from the real class shares.

Memorisation
- `distance_to_closest_record`: the Euclidean distance of each synthetic sample to its nearest
  training record, set against the same distance for held-out real records, which the model
  never saw (distance to closest record as in Park et al. 2018, "Data Synthesis based on
  Generative Adversarial Networks"; compared with a holdout as in Platzer and Reutterer 2021,
  "Holdout-Based Empirical Assessment of Mixed-Type Synthetic Data"). A model that copies its
  training data puts far more samples close to the training set than held-out data lies.

Toy mixtures and disentanglement
- `mode_coverage`: modes covered and share of high-quality samples on 2-D Gaussian mixtures
  (the protocol of Metz et al. 2017, "Unrolled Generative Adversarial Networks", and
  Srivastava et al. 2017, "VEEGAN").
- `code_correlations`: Pearson correlation of each continuous latent code with each true
  factor of variation, for InfoGAN-style codes (Chen et al. 2016, "InfoGAN").

Distances between two large sets are computed a block of rows at a time
(`pairwise_distance_chunks`), so 20,000 against 20,000 points never holds the full distance
matrix in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Rows of queries per distance block: 1024 rows against 20,000 references is 160 MB of float64.
DEFAULT_CHUNK_ROWS = 1024


def _as_features(values: np.ndarray, name: str) -> np.ndarray:
    """`values` as a float64 array of shape `(n, d)`; raises ValueError for any other shape."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (examples, features), got shape {array.shape}")
    return array


def _as_feature_pair(real: np.ndarray, fake: np.ndarray, real_name: str = "real",
                     fake_name: str = "fake") -> tuple[np.ndarray, np.ndarray]:
    """Both sets as float64 `(n, d)` arrays with the same number of features."""
    real_features = _as_features(real, real_name)
    fake_features = _as_features(fake, fake_name)
    if real_features.shape[1] != fake_features.shape[1]:
        raise ValueError(
            f"{real_name} has {real_features.shape[1]} features but {fake_name} has {fake_features.shape[1]}"
        )
    return real_features, fake_features


# --- Fréchet distance ---------------------------------------------------------------------------


def _symmetric_square_root(matrix: np.ndarray) -> np.ndarray:
    """The symmetric positive semi-definite square root of a symmetric matrix."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    # Covariances are positive semi-definite; rounding can still leave tiny negative eigenvalues.
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T


def trace_of_product_square_root(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((sigma1 sigma2)^(1/2))`` for symmetric positive semi-definite `sigma1`, `sigma2`.

    ``sigma1 sigma2`` is not symmetric, but it is similar to the symmetric matrix
    ``sqrt(sigma1) sigma2 sqrt(sigma1)``, so both have the same non-negative eigenvalues and the
    trace is the sum of their square roots. That avoids a general (complex) matrix square root.
    """
    root1 = _symmetric_square_root(sigma1)
    inner = root1 @ sigma2 @ root1
    inner = (inner + inner.T) / 2.0  # undo rounding asymmetry so eigvalsh sees a symmetric matrix
    eigenvalues = np.linalg.eigvalsh(inner)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance_from_moments(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                                  sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2).

    Returns ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))`` as a float,
    clipped at 0 because the true value cannot be negative and rounding can make it so.
    """
    mean1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mean2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    covariance1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    covariance2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    dimension = mean1.shape[0]
    if mean1.shape != (dimension,) or mean2.shape != (dimension,):
        raise ValueError(f"means must be vectors of the same length, got {mean1.shape} and {mean2.shape}")
    if covariance1.shape != (dimension, dimension) or covariance2.shape != (dimension, dimension):
        raise ValueError(
            f"covariances must be {dimension}x{dimension}, got {covariance1.shape} and {covariance2.shape}"
        )
    mean_term = float(np.sum(np.square(mean1 - mean2)))
    trace_term = float(np.trace(covariance1) + np.trace(covariance2))
    distance = mean_term + trace_term - 2.0 * trace_of_product_square_root(covariance1, covariance2)
    return max(distance, 0.0)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two `(n, d)` feature sets (FID on Inception features).

    The Gaussians use the sample mean and the unbiased sample covariance (n - 1 denominator) of
    each set; each set needs at least 2 rows. Returns a float in squared feature units.
    """
    real_features, fake_features = _as_feature_pair(real, fake)
    if len(real_features) < 2 or len(fake_features) < 2:
        raise ValueError("each feature set needs at least 2 rows to estimate a covariance")
    return frechet_distance_from_moments(
        real_features.mean(axis=0), np.cov(real_features, rowvar=False),
        fake_features.mean(axis=0), np.cov(fake_features, rowvar=False),
    )


# --- Kernel inception distance ------------------------------------------------------------------


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The matrix ``(x_i . y_j / d + 1)^3`` for `x` of shape `(m, d)` and `y` of shape `(n, d)`."""
    dimension = x.shape[1]
    return (x @ y.T / dimension + 1.0) ** 3


def polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of MMD^2 between the sets `x` `(m, d)` and `y` `(n, d)` with `polynomial_kernel`.

    Returns ``mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)``;
    leaving out the diagonal terms k(x_i, x_i) is what removes the bias. Needs m, n >= 2.
    """
    x_features, y_features = _as_feature_pair(x, y, "x", "y")
    m, n = len(x_features), len(y_features)
    if m < 2 or n < 2:
        raise ValueError("the unbiased MMD needs at least 2 points in each set")
    kernel_xx = polynomial_kernel(x_features, x_features)
    kernel_yy = polynomial_kernel(y_features, y_features)
    kernel_xy = polynomial_kernel(x_features, y_features)
    within_x = (kernel_xx.sum() - np.trace(kernel_xx)) / (m * (m - 1))
    within_y = (kernel_yy.sum() - np.trace(kernel_yy)) / (n * (n - 1))
    between = kernel_xy.mean()
    return float(within_x + within_y - 2.0 * between)


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 10, subset_size: int = 1000,
                              seed: int = 0) -> dict[str, float]:
    """KID: `polynomial_mmd` averaged over `subsets` random subsets of each set.

    Each subset draws `subset_size` rows (capped at the smaller set's size) without replacement
    from each set, independently of the other subsets. Returns ``{"kid", "kid_standard_error"}``;
    the standard error is the sample standard deviation (n - 1 denominator) of the subset values
    divided by sqrt(subsets), and is NaN for a single subset, where no spread can be measured.
    KID is in squared feature units (often reported multiplied by 1000) and can be slightly
    negative when the sets match.
    """
    real_features, fake_features = _as_feature_pair(real, fake)
    if subsets < 1:
        raise ValueError(f"subsets must be at least 1, got {subsets}")
    size = min(subset_size, len(real_features), len(fake_features))
    if size < 2:
        raise ValueError("KID needs subsets of at least 2 rows from each set")
    generator = np.random.default_rng(seed)
    values = np.empty(subsets)
    for subset in range(subsets):
        real_rows = generator.choice(len(real_features), size, replace=False)
        fake_rows = generator.choice(len(fake_features), size, replace=False)
        values[subset] = polynomial_mmd(real_features[real_rows], fake_features[fake_rows])
    standard_error = float(values.std(ddof=1) / np.sqrt(subsets)) if subsets > 1 else float("nan")
    return {"kid": float(values.mean()), "kid_standard_error": standard_error}


# --- Chunked nearest neighbours -----------------------------------------------------------------


def pairwise_distance_chunks(queries: np.ndarray, references: np.ndarray,
                             chunk_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Euclidean distances from `queries` to `references`, a block of query rows at a time.

    Yields ``(start, distances)`` where `distances` has shape ``(rows, len(references))`` and
    row r holds the distances of query ``start + r``. Blocks have at most `chunk_rows` rows
    (`DEFAULT_CHUNK_ROWS` when None). Distances use ``|q|^2 + |r|^2 - 2 q.r`` after centring both
    sets on the references' mean, which keeps the cancellation error small; it is still about
    1e-8 times the data's scale, so a query equal to a reference may read a tiny positive distance.
    """
    rows = DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows
    if rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {rows}")
    query_features, reference_features = _as_feature_pair(queries, references, "queries", "references")
    centre = reference_features.mean(axis=0) if len(reference_features) else 0.0
    query_features = query_features - centre
    reference_features = reference_features - centre
    reference_norms = np.einsum("ij,ij->i", reference_features, reference_features)
    for start in range(0, len(query_features), rows):
        block = query_features[start:start + rows]
        squared = np.einsum("ij,ij->i", block, block)[:, None] + reference_norms[None, :]
        squared -= 2.0 * (block @ reference_features.T)
        np.maximum(squared, 0.0, out=squared)
        yield start, np.sqrt(squared, out=squared)


def nearest_neighbours(queries: np.ndarray, references: np.ndarray, k: int = 1, exclude_self: bool = False,
                       chunk_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest references of each query, nearest first.

    Returns ``(distances, indices)``, both of shape ``(len(queries), k)``. With `exclude_self`,
    `queries` must be the same set as `references` and each row skips its own index (but not
    other rows equal to it). The returned distances are recomputed from coordinate differences,
    so an exact copy reads exactly 0.
    """
    query_features, reference_features = _as_feature_pair(queries, references, "queries", "references")
    if exclude_self and len(query_features) != len(reference_features):
        raise ValueError("exclude_self needs queries and references to be the same set")
    available = len(reference_features) - (1 if exclude_self else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k must be between 1 and {available} for {len(reference_features)} references, got {k}")
    distances = np.empty((len(query_features), k))
    indices = np.empty((len(query_features), k), dtype=np.int64)
    for start, block in pairwise_distance_chunks(query_features, reference_features, chunk_rows):
        stop = start + len(block)
        block_rows = np.arange(len(block))
        if exclude_self:
            block[block_rows, start + block_rows] = np.inf
        candidates = np.argpartition(block, k - 1, axis=1)[:, :k]
        differences = query_features[start:stop, None, :] - reference_features[candidates]
        candidate_distances = np.sqrt(np.einsum("ijk,ijk->ij", differences, differences))
        order = np.argsort(candidate_distances, axis=1, kind="stable")
        distances[start:stop] = np.take_along_axis(candidate_distances, order, axis=1)
        indices[start:stop] = np.take_along_axis(candidates, order, axis=1)
    return distances, indices


def kth_neighbour_radii(points: np.ndarray, k: int, chunk_rows: int | None = None) -> np.ndarray:
    """For each point, the distance to its k-th nearest other point of the same set, shape `(n,)`."""
    distances, _ = nearest_neighbours(points, points, k, exclude_self=True, chunk_rows=chunk_rows)
    return distances[:, k - 1]


def ball_membership_counts(points: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                           chunk_rows: int | None = None) -> np.ndarray:
    """For each point, how many closed balls ``B(centres[i], radii[i])`` contain it; int array `(n,)`."""
    ball_radii = np.asarray(radii, dtype=np.float64)
    counts = np.empty(len(points), dtype=np.int64)
    for start, block in pairwise_distance_chunks(points, centres, chunk_rows):
        counts[start:start + len(block)] = np.count_nonzero(block <= ball_radii[None, :], axis=1)
    return counts


# --- Precision, recall, density, coverage -------------------------------------------------------


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-nearest-neighbour balls.

    Returns ``{"precision", "recall"}``, each in [0, 1]. Balls are closed (a point exactly on
    the boundary counts as inside). Each set needs more than `k` rows.
    """
    real_features, fake_features = _as_feature_pair(real, fake)
    real_radii = kth_neighbour_radii(real_features, k)
    fake_radii = kth_neighbour_radii(fake_features, k)
    precision = np.mean(ball_membership_counts(fake_features, real_features, real_radii) > 0)
    recall = np.mean(ball_membership_counts(real_features, fake_features, fake_radii) > 0)
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020) with balls around the real points only.

    Returns ``{"density", "coverage"}``. Density is ``(1 / (k M)) sum_j sum_i 1[fake_j in
    B(real_i, r_i)]`` for M fake points: about 1 for matching sets, and unbounded above.
    Coverage is the share of real balls holding at least one fake point, in [0, 1]. Balls are
    closed. The real set needs more than `k` rows.
    """
    real_features, fake_features = _as_feature_pair(real, fake)
    real_radii = kth_neighbour_radii(real_features, k)
    memberships = ball_membership_counts(fake_features, real_features, real_radii)
    density = memberships.sum() / (k * len(fake_features))
    nearest_fake, _ = nearest_neighbours(real_features, fake_features, 1)
    coverage = np.mean(nearest_fake[:, 0] <= real_radii)
    return {"density": float(density), "coverage": float(coverage)}


# --- Classifier predictions ---------------------------------------------------------------------


def classifier_score(probabilities: np.ndarray) -> float:
    """``exp(mean_x KL(p(y|x) || p(y)))`` from an `(n, classes)` array whose rows are class probabilities.

    p(y) is the mean of the rows. Returns a float between 1 (every row the same) and the
    number of classes (confident predictions spread evenly over all classes). Computed on the
    whole array at once, not averaged over splits as in the original Inception Score code.
    """
    rows = np.asarray(probabilities, dtype=np.float64)
    if rows.ndim != 2 or len(rows) == 0:
        raise ValueError(f"probabilities must be a non-empty (examples, classes) array, got shape {rows.shape}")
    if np.any(rows < 0):
        raise ValueError("probabilities must be non-negative")
    marginal = rows.mean(axis=0)
    # 0 log 0 = 0; wherever a row is positive the marginal is positive too, so the log is finite.
    positive = rows > 0
    log_ratio = np.zeros_like(rows)
    log_ratio[positive] = np.log(rows[positive]) - np.log(np.broadcast_to(marginal, rows.shape)[positive])
    divergences = np.sum(rows * log_ratio, axis=1)
    return float(np.exp(divergences.mean()))


def _class_counts(labels: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    """Counts of each class in 0..num_classes-1 among integer `labels`."""
    values = np.asarray(labels).reshape(-1)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        if not np.all(values == np.round(values)):
            raise ValueError(f"{name} must hold integer class labels")
        values = values.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(f"{name} must lie in 0..{num_classes - 1}, got {values.min()}..{values.max()}")
    return np.bincount(values.astype(np.int64), minlength=num_classes)


def class_histogram(predicted: np.ndarray, num_classes: int, reference: np.ndarray | None = None,
                    epsilon: float = 1e-6) -> dict:
    """How the predicted classes of the samples spread over `num_classes` classes.

    Returns ``{"counts", "shares", "classes_present"}``: counts per class (list of ints), share
    of the samples per class (list of floats), and the number of classes predicted at least
    once. With `reference` (the real labels) it adds ``"kl_to_real"`` = KL(real shares ||
    sample shares) in nats. That direction weighs each class by how common it is in the real
    data and grows large when the samples miss a class the real data has, which is the failure
    (dropped modes) it is meant to show; classes absent from the real data add nothing. Sample
    shares are smoothed as ``(share + epsilon) / (1 + num_classes * epsilon)`` so an empty class
    gives a large finite value rather than infinity.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    counts = _class_counts(predicted, num_classes, "predicted")
    total = counts.sum()
    shares = counts / total if total else np.zeros(num_classes)
    result = {
        "counts": [int(count) for count in counts],
        "shares": [float(share) for share in shares],
        "classes_present": int(np.count_nonzero(counts)),
    }
    if reference is not None:
        reference_counts = _class_counts(reference, num_classes, "reference")
        if reference_counts.sum() == 0:
            raise ValueError("reference holds no labels")
        real_shares = reference_counts / reference_counts.sum()
        sample_shares = (shares + epsilon) / (1.0 + num_classes * epsilon)
        present = real_shares > 0
        result["kl_to_real"] = float(
            np.sum(real_shares[present] * np.log(real_shares[present] / sample_shares[present]))
        )
    return result


# --- Memorisation -------------------------------------------------------------------------------


def distance_to_closest_record(synthetic: np.ndarray, train: np.ndarray, holdout: np.ndarray,
                               closest: int = 8) -> dict:
    """Distance to closest record (DCR): how near the samples lie to the training records.

    For each synthetic sample, and for each held-out real record, the Euclidean distance to the
    nearest training record, in the units of the features given. Returns a dict with
    - ``synthetic_median``, ``holdout_median``: medians of the two sets of distances;
    - ``holdout_5th_percentile``: 5th percentile of the holdout distances (linear interpolation);
    - ``share_closer_than_holdout_5th_percentile``: share of synthetic samples strictly closer
      than that; about 0.05 when the samples are as far from the training set as unseen real
      data, near 1 when the model copies training records;
    - ``closest_pairs``: ``[synthetic_index, train_index]`` for the `closest` synthetic samples
      with the smallest distances (distinct samples, each with its nearest record), nearest first;
    - ``closest_pair_distances``: their distances, same order;
    - ``synthetic_distances``: the per-sample distances as a numpy array, shape `(n,)`; not
      JSON-serialisable, so callers drop it before writing.
    """
    train_features = _as_features(train, "train")
    synthetic_features, _ = _as_feature_pair(synthetic, train_features, "synthetic", "train")
    holdout_features, _ = _as_feature_pair(holdout, train_features, "holdout", "train")
    if len(synthetic_features) == 0 or len(holdout_features) == 0:
        raise ValueError("synthetic and holdout need at least one row each")
    synthetic_distances, synthetic_nearest = nearest_neighbours(synthetic_features, train_features, 1)
    holdout_distances, _ = nearest_neighbours(holdout_features, train_features, 1)
    synthetic_distances = synthetic_distances[:, 0]
    holdout_distances = holdout_distances[:, 0]
    holdout_5th_percentile = float(np.percentile(holdout_distances, 5))
    nearest_first = np.argsort(synthetic_distances, kind="stable")[:closest]
    return {
        "synthetic_median": float(np.median(synthetic_distances)),
        "holdout_median": float(np.median(holdout_distances)),
        "holdout_5th_percentile": holdout_5th_percentile,
        "share_closer_than_holdout_5th_percentile": float(np.mean(synthetic_distances < holdout_5th_percentile)),
        "closest_pairs": [[int(index), int(synthetic_nearest[index, 0])] for index in nearest_first],
        "closest_pair_distances": [float(synthetic_distances[index]) for index in nearest_first],
        "synthetic_distances": synthetic_distances,
    }


def membership_inference(synthetic: np.ndarray, members: np.ndarray, non_members: np.ndarray,
                         reference: np.ndarray, neighbours: int = 1) -> dict:
    """A membership-inference attack on the synthetic data, and how well it does (ROC AUC).

    The attacker holds candidate records and the synthetic samples, and guesses that a record was
    trained on where the samples are denser around it than real data in general is: the score of
    a record is the distance to its `neighbours`-th nearest real reference record (held out, not
    a candidate) over the distance to its `neighbours`-th nearest synthetic sample, a nearest-
    neighbour form of the density ratio of DOMIAS (van Breugel et al., AISTATS 2023) that also
    reads single copies (GAN-Leaks' distance to the closest sample, Chen et al. 2020). The AUC of
    that score at telling `members` (training records) from `non_members` (held-out records) is
    0.5 when the samples give nothing away about who was in the training data, and near 1 for a
    model that copies its training records. With few candidates the AUC of a model that gives
    nothing away still strays from 0.5 (by about 0.04 with 100 of each), so the result also holds
    `auc_interval`, its 95% interval (DeLong's variance), and `p_value`, the chance of an AUC at
    least this high if members and non-members scored alike (one-sided Mann-Whitney U test).
    """
    reference_features = _as_features(reference, "reference")
    synthetic_features, _ = _as_feature_pair(synthetic, reference_features, "synthetic", "reference")
    members_features, _ = _as_feature_pair(members, reference_features, "members", "reference")
    non_members_features, _ = _as_feature_pair(non_members, reference_features, "non_members", "reference")
    count = min(len(members_features), len(non_members_features))
    if count < 10 or len(reference_features) < neighbours or len(synthetic_features) < neighbours:
        raise ValueError("the attack needs at least 10 members and non-members and `neighbours` reference and "
                         "synthetic rows")
    candidates = np.concatenate([members_features[:count], non_members_features[:count]])
    synthetic_distance = nearest_neighbours(candidates, synthetic_features, neighbours)[0][:, -1]
    reference_distance = nearest_neighbours(candidates, reference_features, neighbours)[0][:, -1]
    scores = np.log(reference_distance + 1e-12) - np.log(synthetic_distance + 1e-12)
    truth = np.concatenate([np.ones(count), np.zeros(count)])
    auc, deviation = roc_auc_with_deviation(truth, scores)
    from scipy.stats import mannwhitneyu

    p_value = float(mannwhitneyu(scores[:count], scores[count:], alternative="greater").pvalue)
    return {"auc": auc, "auc_interval": [max(0.0, auc - 1.96 * deviation), min(1.0, auc + 1.96 * deviation)],
            "p_value": p_value, "members": int(count), "non_members": int(count),
            "reference": int(len(reference_features)), "neighbours": int(neighbours),
            "attack": "nearest-neighbour density ratio of synthetic to held-out real data (DOMIAS-style)"}


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for binary `truth`: the chance that a random positive
    scores above a random negative (ties count half), from the ranks (Mann-Whitney U)."""
    from scipy.stats import rankdata

    truth = np.asarray(truth, bool)
    ranks = rankdata(scores)
    positives, negatives = truth.sum(), (~truth).sum()
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_auc_with_deviation(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """`roc_auc` and its standard deviation by DeLong's method (DeLong et al. 1988), from ranks
    (Sun & Xu 2014): each positive's share of negatives it outscores, each negative's share of
    positives that outscore it, and their variances over the positives and the negatives."""
    from scipy.stats import rankdata

    truth = np.asarray(truth, bool)
    scores = np.asarray(scores, np.float64)
    positives, negatives = scores[truth], scores[~truth]
    ranks = rankdata(scores)
    beaten = (ranks[truth] - rankdata(positives)) / len(negatives)  # per positive
    beating = (ranks[~truth] - rankdata(negatives)) / len(positives)  # per negative: positives it outscores
    auc = float(beaten.mean())
    variance = beaten.var(ddof=1) / len(positives) + beating.var(ddof=1) / len(negatives)
    return auc, float(np.sqrt(variance))


# --- Toy mixtures and codes ---------------------------------------------------------------------


def mode_coverage(samples: np.ndarray, modes: np.ndarray, std: float, threshold_std: float = 3.0,
                  min_share: float | None = None) -> dict:
    """Modes covered and high-quality share for samples of a Gaussian mixture (2-D toys such as ring and grid).

    A sample is high quality when its Euclidean distance to the nearest mode is at most
    ``threshold_std * std``, with `std` the standard deviation of each mixture component. A mode
    is covered when the high-quality samples assigned to it number at least
    ``min_share * len(samples)``. The default `min_share` is ``0.2 / len(modes)``, a fifth of a
    mode's fair share: 20 of 2,500 samples on the 25-mode grid, the count used by the unrolled
    GAN and VEEGAN experiments, and 62.5 of 2,500 on the 8-mode ring.

    Returns ``{"modes_covered", "modes_total", "high_quality_share", "samples_per_mode"}``, the
    last a list of high-quality sample counts per mode, in the order of `modes`.
    """
    sample_points, mode_points = _as_feature_pair(samples, modes, "samples", "modes")
    if len(mode_points) == 0 or len(sample_points) == 0:
        raise ValueError("samples and modes need at least one row each")
    share = 0.2 / len(mode_points) if min_share is None else min_share
    distances, nearest_mode = nearest_neighbours(sample_points, mode_points, 1)
    high_quality = distances[:, 0] <= threshold_std * std
    samples_per_mode = np.bincount(nearest_mode[high_quality, 0], minlength=len(mode_points))
    required = share * len(sample_points)
    # A share meant as exactly k samples must not lose a mode holding k to rounding in the product.
    covered = samples_per_mode >= required - 1e-9 * max(1.0, required)
    return {
        "modes_covered": int(np.count_nonzero(covered)),
        "modes_total": len(mode_points),
        "high_quality_share": float(np.mean(high_quality)),
        "samples_per_mode": [int(count) for count in samples_per_mode],
    }


def _as_columns(values: np.ndarray, name: str) -> np.ndarray:
    """`values` as a float64 `(n, columns)` array; a vector becomes a single column."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 1-D or 2-D array, got shape {array.shape}")
    return array


def code_correlations(codes: np.ndarray, factors: np.ndarray) -> list[list[float]]:
    """Pearson correlation of each code (columns of `codes`, `(n, K)`) with each factor (`factors`, `(n, F)`).

    Returns a K x F nested list: entry [i][j] is corr(codes[:, i], factors[:, j]). A constant
    column has no defined correlation; it gives 0.0 so the result stays JSON-friendly.
    """
    code_columns = _as_columns(codes, "codes")
    factor_columns = _as_columns(factors, "factors")
    if len(code_columns) != len(factor_columns):
        raise ValueError(f"codes has {len(code_columns)} rows but factors has {len(factor_columns)}")
    if len(code_columns) < 2:
        raise ValueError("correlations need at least 2 rows")
    centred_codes = code_columns - code_columns.mean(axis=0)
    centred_factors = factor_columns - factor_columns.mean(axis=0)
    code_norms = np.linalg.norm(centred_codes, axis=0)
    factor_norms = np.linalg.norm(centred_factors, axis=0)
    # Test constancy exactly: centring a constant column can leave rounding noise, not zeros.
    code_constant = np.ptp(code_columns, axis=0) == 0
    factor_constant = np.ptp(factor_columns, axis=0) == 0
    denominator = np.outer(np.where(code_constant, 1.0, code_norms), np.where(factor_constant, 1.0, factor_norms))
    correlations = (centred_codes.T @ centred_factors) / denominator
    correlations[code_constant, :] = 0.0
    correlations[:, factor_constant] = 0.0
    correlations = np.clip(correlations, -1.0, 1.0)
    return [[float(value) for value in row] for row in correlations]
