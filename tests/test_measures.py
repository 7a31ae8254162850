"""Known answers for trainers.measures.features: closed forms, hand-placed points and brute-force references."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from synthblend.trainers import measures


def brute_force_distances(queries, references):
    """The full Euclidean distance matrix from explicit coordinate differences."""
    queries = np.asarray(queries, dtype=np.float64)
    references = np.asarray(references, dtype=np.float64)
    return np.sqrt(np.sum((queries[:, None, :] - references[None, :, :]) ** 2, axis=-1))


def brute_force_radii(points, k):
    distances = brute_force_distances(points, points)
    np.fill_diagonal(distances, np.inf)
    return np.sort(distances, axis=1)[:, k - 1]


def rotation(angle):
    return np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])


# --- Fréchet distance ---------------------------------------------------------------------------


def test_frechet_distance_of_identical_sets_is_zero():
    features = 10.0 * np.random.default_rng(0).normal(size=(200, 5))
    scale = np.trace(np.cov(features, rowvar=False))
    assert abs(measures.features.frechet_distance(features, features)) < 1e-6 * scale


def test_frechet_distance_of_identical_rank_deficient_sets_is_zero():
    features = np.random.default_rng(1).normal(size=(3, 10))  # covariance of rank 2 in 10 dimensions
    assert measures.features.frechet_distance(features, features) < 1e-9


def test_frechet_distance_of_shifted_copy_is_squared_shift():
    features = np.random.default_rng(2).normal(size=(300, 4))
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    assert measures.features.frechet_distance(features, features + shift) == pytest.approx(5.25, rel=1e-9)


def test_frechet_distance_uses_sample_mean_and_unbiased_covariance():
    generator = np.random.default_rng(3)
    real, fake = generator.normal(size=(50, 3)), generator.normal(1.0, 2.0, size=(40, 3))
    expected = measures.features.frechet_distance_from_moments(
        real.mean(axis=0), np.cov(real, rowvar=False, ddof=1), fake.mean(axis=0), np.cov(fake, rowvar=False, ddof=1)
    )
    assert measures.features.frechet_distance(real, fake) == expected


def test_frechet_moments_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    variances1, variances2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = 1.0 + 9.0 + (1.0 - 3.0) ** 2 + (2.0 - 1.0) ** 2 + 0.0
    assert measures.features.frechet_distance_from_moments(
        mu1, np.diag(variances1), mu2, np.diag(variances2)
    ) == pytest.approx(expected, rel=1e-12)


def test_frechet_moments_commuting_non_diagonal_closed_form():
    # Covariances sharing eigenvectors reduce to the diagonal formula in the rotated basis.
    turn = rotation(0.7)
    variances1, variances2 = np.array([2.0, 0.5]), np.array([0.5, 3.0])
    sigma1, sigma2 = turn @ np.diag(variances1) @ turn.T, turn @ np.diag(variances2) @ turn.T
    mu1, mu2 = np.array([1.0, 2.0]), np.array([0.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(variances1) - np.sqrt(variances2)) ** 2)
    assert measures.features.frechet_distance_from_moments(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-12)


def test_frechet_moments_non_commuting_two_by_two_closed_form():
    # For a 2x2 matrix with non-negative eigenvalues, Tr(A^(1/2)) = sqrt(Tr A + 2 sqrt(det A)).
    sigma1 = np.array([[2.0, 0.6], [0.6, 1.0]])
    sigma2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
    trace_root = math.sqrt(np.trace(sigma1 @ sigma2) + 2.0 * math.sqrt(np.linalg.det(sigma1) * np.linalg.det(sigma2)))
    expected = 1.0 + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root
    value = measures.features.frechet_distance_from_moments(np.zeros(2), sigma1, np.array([1.0, 0.0]), sigma2)
    assert value == pytest.approx(expected, rel=1e-12)


def test_frechet_moments_against_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    generator = np.random.default_rng(4)
    left, right = generator.normal(size=(6, 6)), generator.normal(size=(6, 6))
    sigma1, sigma2 = left @ left.T + 0.1 * np.eye(6), right @ right.T + 0.1 * np.eye(6)
    mu1, mu2 = generator.normal(size=6), generator.normal(size=6)
    expected = (
        np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
        - 2.0 * np.trace(linalg.sqrtm(sigma1 @ sigma2)).real
    )
    assert measures.features.frechet_distance_from_moments(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(ValueError):
        measures.features.frechet_distance(np.zeros((4, 2)), np.zeros((4, 3)))


# --- Kernel inception distance ------------------------------------------------------------------


def double_loop_mmd(x, y):
    dimension = len(x[0])

    def kernel(a, b):
        return (sum(p * q for p, q in zip(a, b)) / dimension + 1.0) ** 3

    m, n = len(x), len(y)
    within_x = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_y = sum(kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    between = sum(kernel(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return within_x + within_y - 2.0 * between


THREE_POINTS_X = [[0.0, 1.0], [1.0, -1.0], [2.0, 0.5]]
THREE_POINTS_Y = [[0.5, 0.5], [-1.0, 2.0], [1.5, 1.5]]


def test_polynomial_mmd_matches_double_loop():
    expected = double_loop_mmd(THREE_POINTS_X, THREE_POINTS_Y)
    assert measures.features.polynomial_mmd(np.array(THREE_POINTS_X), np.array(THREE_POINTS_Y)) == pytest.approx(expected)


def test_polynomial_mmd_matches_double_loop_for_unequal_sizes():
    y = THREE_POINTS_Y + [[3.0, -2.0]]
    assert measures.features.polynomial_mmd(np.array(THREE_POINTS_X), np.array(y)) == pytest.approx(
        double_loop_mmd(THREE_POINTS_X, y)
    )


def test_kid_with_one_full_subset_is_the_mmd():
    result = measures.features.kernel_inception_distance(np.array(THREE_POINTS_X), np.array(THREE_POINTS_Y), subsets=1)
    assert result["kid"] == pytest.approx(double_loop_mmd(THREE_POINTS_X, THREE_POINTS_Y))
    assert math.isnan(result["kid_standard_error"])


def test_kid_of_same_distribution_is_near_zero():
    generator = np.random.default_rng(5)
    real, fake = generator.normal(size=(400, 4)), generator.normal(size=(400, 4))
    result = measures.features.kernel_inception_distance(real, fake, subsets=10, subset_size=200)
    assert result["kid_standard_error"] > 0
    assert abs(result["kid"]) < 3 * result["kid_standard_error"]


def test_kid_of_shifted_distribution_is_clearly_positive():
    generator = np.random.default_rng(6)
    real, fake = generator.normal(size=(400, 4)), generator.normal(1.0, 1.0, size=(400, 4))
    result = measures.features.kernel_inception_distance(real, fake, subsets=10, subset_size=200)
    assert result["kid"] > 10 * result["kid_standard_error"] > 0


def test_kid_caps_subset_size_and_repeats_with_seed():
    generator = np.random.default_rng(7)
    real, fake = generator.normal(size=(30, 3)), generator.normal(size=(20, 3))
    first = measures.features.kernel_inception_distance(real, fake, subsets=3, seed=11)
    assert first == measures.features.kernel_inception_distance(real, fake, subsets=3, seed=11)
    assert all(isinstance(value, float) for value in first.values())


# --- Chunked nearest neighbours -----------------------------------------------------------------


def test_distance_chunks_cover_all_rows_in_bounded_blocks():
    generator = np.random.default_rng(8)
    queries, references = generator.normal(size=(11, 3)), generator.normal(size=(6, 3))
    blocks = list(measures.features.pairwise_distance_chunks(queries, references, chunk_rows=4))
    assert [start for start, _ in blocks] == [0, 4, 8]
    assert all(block.shape[0] <= 4 and block.shape[1] == 6 for _, block in blocks)
    full = np.concatenate([block for _, block in blocks])
    np.testing.assert_allclose(full, brute_force_distances(queries, references), atol=1e-12)


def test_nearest_neighbours_match_brute_force_across_chunks():
    generator = np.random.default_rng(9)
    queries, references = generator.normal(size=(13, 2)), generator.normal(size=(9, 2))
    distances, indices = measures.features.nearest_neighbours(queries, references, k=3, chunk_rows=5)
    expected = brute_force_distances(queries, references)
    np.testing.assert_allclose(distances, np.sort(expected, axis=1)[:, :3], atol=1e-12)
    np.testing.assert_array_equal(indices, np.argsort(expected, axis=1)[:, :3])


def test_neighbour_radii_skip_only_the_point_itself():
    points = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0], [3.0, 4.0]])
    # The duplicate is a genuine neighbour at distance 0; the point itself is not.
    np.testing.assert_allclose(measures.features.kth_neighbour_radii(points, 1, chunk_rows=3), [0.0, 0.0, 3.0, 4.0])
    np.testing.assert_allclose(measures.features.kth_neighbour_radii(points, 2), [3.0, 3.0, 3.0, 5.0])


def test_nearest_neighbours_reject_k_beyond_the_set():
    points = np.zeros((3, 2))
    with pytest.raises(ValueError):
        measures.features.kth_neighbour_radii(points, 3)
    with pytest.raises(ValueError):
        measures.features.nearest_neighbours(points, points, k=4)


# --- Precision, recall, density, coverage -------------------------------------------------------

# Real points on a line; k = 1 radii are 1, 1, 1 and 8.
HAND_REAL = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
# (0.5, 0) lies in the balls of real 0 and 1, (2, 0.5) in that of real 2 only, (100, 0) in none.
HAND_FAKE = np.array([[0.5, 0.0], [2.0, 0.5], [100.0, 0.0]])


def test_precision_recall_of_identical_sets_is_one():
    features = np.random.default_rng(10).normal(size=(60, 3))
    assert measures.features.precision_recall(features, features, k=3) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_of_far_apart_sets_is_zero():
    generator = np.random.default_rng(11)
    real, fake = generator.normal(size=(40, 2)), generator.normal(100.0, 1.0, size=(30, 2))
    assert measures.features.precision_recall(real, fake, k=3) == {"precision": 0.0, "recall": 0.0}


def test_precision_recall_hand_placed():
    result = measures.features.precision_recall(HAND_REAL, HAND_FAKE, k=1)
    assert result["precision"] == pytest.approx(2 / 3)
    # Fake radii are sqrt(2.5), sqrt(2.5) and about 98: the outlier's huge ball takes in real
    # point (10, 0), so recall is 1 (the outlier sensitivity that density and coverage avoid).
    assert result["recall"] == 1.0


def test_density_coverage_hand_placed():
    result = measures.features.density_coverage(HAND_REAL, HAND_FAKE, k=1)
    assert result["density"] == pytest.approx((2 + 1 + 0) / (1 * 3))
    # Real (10, 0) has radius 8 and its nearest fake point, (2, 0.5), lies sqrt(64.25) away.
    assert result["coverage"] == pytest.approx(3 / 4)


def test_density_coverage_of_far_apart_sets_is_zero():
    generator = np.random.default_rng(12)
    real, fake = generator.normal(size=(40, 2)), generator.normal(-100.0, 1.0, size=(30, 2))
    assert measures.features.density_coverage(real, fake, k=5) == {"density": 0.0, "coverage": 0.0}


def test_density_coverage_of_identical_sets():
    features = np.random.default_rng(13).normal(size=(50, 2))
    result = measures.features.density_coverage(features, features, k=5)
    assert result["coverage"] == 1.0
    assert 0.5 < result["density"] < 1.5


def test_ball_measures_match_brute_force_across_chunks(monkeypatch):
    monkeypatch.setattr(measures.features, "DEFAULT_CHUNK_ROWS", 7)
    generator = np.random.default_rng(14)
    real, fake = generator.normal(size=(45, 3)), generator.normal(0.3, 1.2, size=(38, 3))
    k = 3
    real_radii, fake_radii = brute_force_radii(real, k), brute_force_radii(fake, k)
    fake_to_real = brute_force_distances(fake, real)
    inside_real_balls = fake_to_real <= real_radii[None, :]
    expected = {
        "precision": np.mean(inside_real_balls.any(axis=1)),
        "recall": np.mean((fake_to_real.T <= fake_radii[None, :]).any(axis=1)),
        "density": inside_real_balls.sum() / (k * len(fake)),
        "coverage": np.mean(inside_real_balls.any(axis=0)),
    }
    result = {**measures.features.precision_recall(real, fake, k=k), **measures.features.density_coverage(real, fake, k=k)}
    assert result == pytest.approx(expected)
    assert 0 < result["precision"] < 1 and 0 < result["coverage"] < 1


# --- Classifier predictions ---------------------------------------------------------------------


def test_classifier_score_of_confident_even_predictions_is_class_count():
    probabilities = np.tile(np.eye(4), (5, 1))
    assert measures.features.classifier_score(probabilities) == pytest.approx(4.0)


def test_classifier_score_of_identical_predictions_is_one():
    probabilities = np.tile([0.2, 0.5, 0.3], (10, 1))
    assert measures.features.classifier_score(probabilities) == pytest.approx(1.0)


def test_classifier_score_hand_computed():
    # Marginal (0.75, 0.25); the second row's zero adds nothing (0 log 0 = 0).
    probabilities = np.array([[1.0, 0.0], [0.5, 0.5]])
    divergences = [math.log(1 / 0.75), 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)]
    assert measures.features.classifier_score(probabilities) == pytest.approx(math.exp(sum(divergences) / 2))


def test_class_histogram_counts_and_shares():
    result = measures.features.class_histogram(np.array([0, 0, 1, 2, 2, 2]), 4)
    assert result == {
        "counts": [2, 1, 3, 0],
        "shares": pytest.approx([2 / 6, 1 / 6, 3 / 6, 0.0]),
        "classes_present": 3,
    }
    assert "kl_to_real" not in result


def test_class_histogram_kl_to_real_skips_classes_absent_from_real():
    result = measures.features.class_histogram([0, 0, 0, 1], 3, reference=[0, 1, 0, 1])
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert result["kl_to_real"] == pytest.approx(expected, rel=1e-5)


def test_class_histogram_kl_to_real_smooths_a_missing_class():
    epsilon = 1e-6
    result = measures.features.class_histogram([0, 0], 2, reference=[0, 1], epsilon=epsilon)
    smoothed = np.array([1.0 + epsilon, epsilon]) / (1.0 + 2 * epsilon)
    expected = 0.5 * math.log(0.5 / smoothed[0]) + 0.5 * math.log(0.5 / smoothed[1])
    assert result["kl_to_real"] == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(result["kl_to_real"]) and result["kl_to_real"] > 5


def test_class_histogram_rejects_labels_out_of_range():
    with pytest.raises(ValueError):
        measures.features.class_histogram([0, 3], 3)


# --- Memorisation -------------------------------------------------------------------------------


def test_dcr_of_copied_training_records():
    generator = np.random.default_rng(15)
    train, holdout = generator.normal(size=(200, 3)), generator.normal(size=(100, 3))
    copied_rows = generator.permutation(200)[:50]
    result = measures.features.distance_to_closest_record(train[copied_rows], train, holdout)
    assert result["share_closer_than_holdout_5th_percentile"] == 1.0
    assert result["synthetic_median"] == 0.0
    assert result["holdout_median"] > 0
    assert len(result["closest_pairs"]) == 8
    for synthetic_index, train_index in result["closest_pairs"]:
        assert train_index == copied_rows[synthetic_index]
    assert result["closest_pair_distances"] == [0.0] * 8


def test_dcr_of_fresh_samples_is_near_five_percent():
    generator = np.random.default_rng(16)
    train, holdout, synthetic = (generator.normal(size=(n, 2)) for n in (2000, 800, 800))
    result = measures.features.distance_to_closest_record(synthetic, train, holdout)
    assert 0.02 < result["share_closer_than_holdout_5th_percentile"] < 0.09
    assert result["synthetic_median"] == pytest.approx(result["holdout_median"], rel=0.2)
    assert result["synthetic_distances"].shape == (800,)
    assert np.all(np.diff(result["closest_pair_distances"]) >= 0)
    json.dumps({key: value for key, value in result.items() if key != "synthetic_distances"})


def test_dcr_closest_pairs_hand_placed():
    train = np.array([[0.0, 0.0], [10.0, 0.0]])
    synthetic = np.array([[9.0, 0.0], [0.0, 0.5], [5.0, 5.0]])
    holdout = np.array([[0.0, 2.0], [10.0, 3.0]])
    result = measures.features.distance_to_closest_record(synthetic, train, holdout, closest=2)
    assert result["closest_pairs"] == [[1, 0], [0, 1]]
    assert result["closest_pair_distances"] == [0.5, 1.0]
    assert result["holdout_median"] == 2.5
    assert result["holdout_5th_percentile"] == pytest.approx(2.05)
    assert result["share_closer_than_holdout_5th_percentile"] == pytest.approx(2 / 3)


# --- Toy mixtures and codes ---------------------------------------------------------------------

RING_MODES = np.array([[2 * math.cos(a), 2 * math.sin(a)] for a in np.arange(8) * 2 * math.pi / 8])
RING_STD = 0.02


def ring_samples():
    """10 samples on each of modes 0-4, one at 2.9 std from mode 5, one at 3.1 std from mode 6, 10 outliers."""
    on_modes = np.repeat(RING_MODES[:5], 10, axis=0)
    near_mode_5 = RING_MODES[5] + [2.9 * RING_STD, 0.0]
    beyond_mode_6 = RING_MODES[6] + [0.0, 3.1 * RING_STD]
    outliers = np.full((10, 2), 100.0)
    return np.concatenate([on_modes, [near_mode_5, beyond_mode_6], outliers])


def test_mode_coverage_hand_placed():
    result = measures.features.mode_coverage(ring_samples(), RING_MODES, RING_STD)
    # 62 samples: default min share 0.2 / 8 asks for 1.55 samples, so mode 5's single one is not enough.
    assert result == {
        "modes_covered": 5,
        "modes_total": 8,
        "high_quality_share": pytest.approx(51 / 62),
        "samples_per_mode": [10, 10, 10, 10, 10, 1, 0, 0],
    }


def test_mode_coverage_min_share_boundaries():
    samples = ring_samples()
    assert measures.features.mode_coverage(samples, RING_MODES, RING_STD, min_share=1 / 62)["modes_covered"] == 6
    # Exactly 10 of 62 must count as reaching a share of 10 / 62.
    assert measures.features.mode_coverage(samples, RING_MODES, RING_STD, min_share=10 / 62)["modes_covered"] == 5
    assert measures.features.mode_coverage(samples, RING_MODES, RING_STD, min_share=11 / 62)["modes_covered"] == 0
    assert measures.features.mode_coverage(samples, RING_MODES, RING_STD, threshold_std=3.2)["samples_per_mode"][6] == 1


def test_code_correlations_match_corrcoef():
    generator = np.random.default_rng(17)
    factors = generator.normal(size=(100, 2))
    codes = np.column_stack([factors[:, 0] + 0.5 * generator.normal(size=100), generator.normal(size=100),
                             -factors[:, 1]])
    result = measures.features.code_correlations(codes, factors)
    full = np.corrcoef(codes, factors, rowvar=False)
    np.testing.assert_allclose(result, full[:3, 3:], atol=1e-12)
    assert result[2][1] == pytest.approx(-1.0)


def test_code_correlations_of_constant_columns_are_zero():
    generator = np.random.default_rng(18)
    codes = np.column_stack([np.full(20, 0.1), generator.normal(size=20)])
    factors = np.column_stack([generator.normal(size=20), np.full(20, 3.0)])
    result = measures.features.code_correlations(codes, factors)
    assert result[0] == [0.0, 0.0] and result[1][1] == 0.0
    assert result[1][0] == pytest.approx(np.corrcoef(codes[:, 1], factors[:, 0])[0, 1])
    assert all(isinstance(value, float) for value in itertools.chain.from_iterable(result))


def test_code_correlations_accept_single_vectors():
    values = np.arange(10.0)
    assert measures.features.code_correlations(values, 2 * values + 1) == [[pytest.approx(1.0)]]
