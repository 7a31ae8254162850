"""Measures of a synthetic table against the real one, and their pictures.

A table is a ``dict[str, np.ndarray]`` of 1-D columns in column order, with ``kinds`` naming
each column ``"continuous"``, ``"integer"`` (numeric) or ``"categorical"``, ``"boolean"``
(categorical). Every function returns Python floats, lists and dicts that can be written to
JSON as they are. Scores lie in [0, 1], 1 meaning the synthetic table matches the real one.

Column shapes (one score per column, the "Column Shapes" property of SDV's quality report,
https://docs.sdv.dev/sdmetrics/reports/quality-report)
- numeric columns: ``1 - KS``, with KS the two-sample Kolmogorov-Smirnov statistic
  ``max_x |F_real(x) - F_synthetic(x)|`` taken exactly on the two empirical CDFs
  (SDMetrics' KSComplement);
- categorical columns: ``1 - TVD``, with ``TVD = 1/2 sum_c |p_real(c) - p_synthetic(c)|`` over
  every category seen on either side (SDMetrics' TVComplement).

Pair trends (one score per pair of columns, the "Column Pair Trends" property)
- two numeric columns: ``1 - |r_real - r_synthetic| / 2`` with r the Pearson correlation
  (SDMetrics' CorrelationSimilarity);
- two categorical columns: ``1 - TVD`` between the two normalised contingency tables
  (SDMetrics' ContingencySimilarity);
- a numeric and a categorical column: the numeric column is cut into `QUANTILE_BINS` bins at
  the quantiles of its real values (synthetic values use the same edges; values beyond them
  fall in the outer bins), then ContingencySimilarity. SDMetrics cuts the real range into 10
  equal-width bins instead; quantile bins spread a skewed column (a basket value, an income)
  over all its bins rather than crowding most rows into the first one or two.

Association matrices (what the pair trends compare, drawn side by side): Pearson r between
numeric columns, bias-corrected Cramér's V (Bergsma 2013, "A bias-correction for Cramér's V and
Tschuprow's T", Journal of the Korean Statistical Society 42) between categorical columns and
between a categorical column and a binned numeric one. A constant column has no defined
correlation or V: its associations with other columns are 0 (it carries no information about
them) and its diagonal entry is 1, like every diagonal entry.

Utility: train on synthetic, test on real (TSTR, Esteban et al. 2017, "Real-valued (Medical)
Time Series Generation with Recurrent Conditional GANs") against train on real, test on real
(TRTR), with the same number of training rows and the same classifier.

Privacy: distance to closest record against a real holdout (`measures.features`), on rows
encoded with numeric columns divided by their real range and categories one-hot.

`table_report` computes all of them and writes the pictures.
"""

from __future__ import annotations

import math
import os

import numpy as np
from scipy import stats

from synthblend.trainers import pictures
from synthblend.trainers.measures import features

NUMERIC_KINDS = ("continuous", "integer")
CATEGORICAL_KINDS = ("categorical", "boolean")
# Bins of a numeric column paired with a categorical one (SDMetrics uses the same count).
QUANTILE_BINS = 10
# Gradient steps of each TSTR/TRTR classifier: enough for a small MLP on a few features, and
# independent of the table's size, so a 600-row and a 20,000-row table both train in seconds.
CLASSIFIER_STEPS = 600
CLASSIFIER_BATCH = 128
# Synthetic and holdout rows whose nearest training record is searched (a seeded subsample of
# larger sets): the distances to every training row are computed, so the cost is this times the
# training rows.
DCR_MAX_QUERIES = 5000

Table = dict  # column name -> 1-D numpy array


def is_numeric(kind: str) -> bool:
    return kind in NUMERIC_KINDS


def _categories(values: np.ndarray) -> np.ndarray:
    """A categorical or boolean column as strings, so that both sides compare by name."""
    return np.asarray(values).astype(str)


# --- Column shapes ------------------------------------------------------------------------------


def ks_statistic(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``max_x |F_real(x) - F_synthetic(x)|`` (SciPy's)."""
    real, synthetic = np.asarray(real, dtype=np.float64), np.asarray(synthetic, dtype=np.float64)
    if len(real) == 0 or len(synthetic) == 0:
        raise ValueError("the KS statistic needs at least one value on each side")
    return float(stats.ks_2samp(real, synthetic, method="asymp").statistic)


def category_shares(values: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """Share of each category of the sorted `vocabulary` among `values` (all in it)."""
    counts = np.bincount(np.searchsorted(vocabulary, values), minlength=len(vocabulary))
    return counts / max(len(values), 1)


def total_variation_distance(real: np.ndarray, synthetic: np.ndarray) -> float:
    """``1/2 sum_c |p_real(c) - p_synthetic(c)|`` over the categories of either side, in [0, 1]."""
    real_values, synthetic_values = _categories(real), _categories(synthetic)
    vocabulary = np.union1d(real_values, synthetic_values)
    return float(0.5 * np.abs(category_shares(real_values, vocabulary)
                              - category_shares(synthetic_values, vocabulary)).sum())


def column_shape(real: np.ndarray, synthetic: np.ndarray, kind: str) -> dict:
    """``{"metric", "score"}`` of one column: KSComplement for numeric, TVComplement for categorical."""
    if is_numeric(kind):
        return {"metric": "KSComplement", "score": 1.0 - ks_statistic(real, synthetic)}
    return {"metric": "TVComplement", "score": 1.0 - total_variation_distance(real, synthetic)}


def column_shapes(real: Table, synthetic: Table, kinds: dict[str, str]) -> dict:
    """``{"score": mean over columns, "columns": {name: {"metric", "score"}}}``."""
    columns = {name: column_shape(real[name], synthetic[name], kinds[name]) for name in kinds}
    return {"score": float(np.mean([entry["score"] for entry in columns.values()])), "columns": columns}


# --- Pairs --------------------------------------------------------------------------------------


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two columns; 0.0 when either is constant (no defined correlation)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    return float(np.clip((x @ y) / (np.linalg.norm(x) * np.linalg.norm(y)), -1.0, 1.0))


def quantile_edges(real: np.ndarray, bins: int = QUANTILE_BINS) -> np.ndarray:
    """Inner edges cutting the real values of a numeric column into `bins` quantile bins.

    Repeated edges (many tied values) are merged, so a column may get fewer bins.
    """
    quantiles = np.quantile(np.asarray(real, dtype=np.float64), np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(quantiles)


def bin_codes(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value between the sorted inner `edges`: 0 below the first, len(edges) from the last."""
    return np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right")


def category_codes(real: np.ndarray, synthetic: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Both sides of a column as integer codes over one vocabulary: ``(real, synthetic, size)``.

    A categorical column is coded over the categories of either side; a numeric one by its
    `quantile_edges` bin, the edges taken from the real values only.
    """
    if is_numeric(kind):
        edges = quantile_edges(real)
        return bin_codes(real, edges), bin_codes(synthetic, edges), len(edges) + 1
    real_values, synthetic_values = _categories(real), _categories(synthetic)
    vocabulary = np.union1d(real_values, synthetic_values)
    return np.searchsorted(vocabulary, real_values), np.searchsorted(vocabulary, synthetic_values), len(vocabulary)


def contingency_table(first: np.ndarray, second: np.ndarray, first_size: int, second_size: int) -> np.ndarray:
    """Counts of each (first, second) pair of integer codes, shape ``(first_size, second_size)``."""
    counts = np.bincount(first * second_size + second, minlength=first_size * second_size)
    return counts.reshape(first_size, second_size).astype(np.float64)


def contingency_similarity(real_table: np.ndarray, synthetic_table: np.ndarray) -> float:
    """``1 - 1/2 sum |P_real(a, b) - P_synthetic(a, b)|`` for two contingency tables of counts
    over the same categories (each normalised to sum to 1)."""
    real_shares = np.asarray(real_table, dtype=np.float64) / np.sum(real_table)
    synthetic_shares = np.asarray(synthetic_table, dtype=np.float64) / np.sum(synthetic_table)
    return float(1.0 - 0.5 * np.abs(real_shares - synthetic_shares).sum())


def cramers_v(table: np.ndarray) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013) of a contingency table of counts.

    With n the total count, chi2 Pearson's statistic, phi2 = chi2 / n and r, k the numbers of
    non-empty rows and columns: ``phi2~ = max(0, phi2 - (k - 1)(r - 1) / (n - 1))``,
    ``r~ = r - (r - 1)^2 / (n - 1)``, ``k~ = k - (k - 1)^2 / (n - 1)`` and
    ``V = sqrt(phi2~ / min(k~ - 1, r~ - 1))``. A table with a single non-empty row or column
    (a constant column) gives 0.0.
    """
    counts = np.asarray(table, dtype=np.float64)
    counts = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0]
    total = counts.sum()
    rows, columns = counts.shape
    if rows < 2 or columns < 2 or total < 2:
        return 0.0
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / total
    phi2 = float(np.sum((counts - expected) ** 2 / expected)) / total
    phi2_corrected = max(0.0, phi2 - (columns - 1) * (rows - 1) / (total - 1))
    rows_corrected = rows - (rows - 1) ** 2 / (total - 1)
    columns_corrected = columns - (columns - 1) ** 2 / (total - 1)
    denominator = min(columns_corrected - 1, rows_corrected - 1)
    if denominator <= 0:
        return 0.0
    return float(min(1.0, math.sqrt(phi2_corrected / denominator)))


def pair_trends(real: Table, synthetic: Table, kinds: dict[str, str]) -> dict:
    """``{"score": mean over pairs, "pairs": [{"columns", "metric", "score", "real", "synthetic"}]}``.

    ``real`` and ``synthetic`` of a pair are its Pearson r for numeric pairs and its Cramér's V
    otherwise; the score compares correlations for numeric pairs and contingency tables otherwise.
    Each column is coded once (`category_codes`), so a pair costs one `np.bincount`.
    """
    names = list(kinds)
    codes = {name: category_codes(real[name], synthetic[name], kinds[name]) for name in names}
    pairs = []
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if is_numeric(kinds[first]) and is_numeric(kinds[second]):
                real_value = pearson(real[first], real[second])
                synthetic_value = pearson(synthetic[first], synthetic[second])
                metric, score = "CorrelationSimilarity", 1.0 - abs(real_value - synthetic_value) / 2.0
            else:
                (real_first, synthetic_first, first_size), (real_second, synthetic_second, second_size) = (
                    codes[first], codes[second])
                real_table = contingency_table(real_first, real_second, first_size, second_size)
                synthetic_table = contingency_table(synthetic_first, synthetic_second, first_size, second_size)
                real_value, synthetic_value = cramers_v(real_table), cramers_v(synthetic_table)
                metric, score = "ContingencySimilarity", contingency_similarity(real_table, synthetic_table)
            pairs.append({"columns": [first, second], "metric": metric, "score": float(score),
                          "real": real_value, "synthetic": synthetic_value})
    score = float(np.mean([pair["score"] for pair in pairs])) if pairs else 1.0
    return {"score": score, "pairs": pairs}


def association_matrices(trends: dict, names: list[str]) -> dict:
    """The real and synthetic association matrices from the pairs of `pair_trends`.

    Returns ``{"columns": names, "real": matrix, "synthetic": matrix}``, each matrix a symmetric
    nested list with 1 on the diagonal and the pair's association (Pearson r or Cramér's V) off it.
    """
    position = {name: index for index, name in enumerate(names)}
    matrices = {"real": np.eye(len(names)), "synthetic": np.eye(len(names))}
    for pair in trends["pairs"]:
        i, j = (position[name] for name in pair["columns"])
        for side, matrix in matrices.items():
            matrix[i, j] = matrix[j, i] = pair[side]
    return {"columns": list(names), **{side: [[float(value) for value in row] for row in matrix]
                                        for side, matrix in matrices.items()}}


# --- Encodings for the classifier and for distances ---------------------------------------------


class FeatureEncoder:
    """Encodes table rows as float vectors, fitted on real rows.

    Numeric columns become ``(value - mean) / std`` (`numeric="standard"`, for a classifier) or
    ``value / (max - min)`` (`numeric="range"`, for distances, where a full-range difference
    counts 1); a constant column divides by 1. Categorical columns become one-hot over the
    real categories, scaled by `one_hot_scale`; an unseen category is all zeros.
    """

    def __init__(self, real: Table, kinds: dict[str, str], numeric: str = "standard", one_hot_scale: float = 1.0):
        self.kinds = dict(kinds)
        self.one_hot_scale = one_hot_scale
        self.centres, self.scales, self.vocabularies = {}, {}, {}
        for name, kind in self.kinds.items():
            if is_numeric(kind):
                values = np.asarray(real[name], dtype=np.float64)
                spread = np.std(values) if numeric == "standard" else np.ptp(values)
                self.centres[name] = float(values.mean()) if numeric == "standard" else 0.0
                self.scales[name] = float(spread) if spread > 0 else 1.0
            else:
                self.vocabularies[name] = np.unique(_categories(real[name]))

    def encode(self, table: Table) -> np.ndarray:
        """Rows of `table` as a float64 ``(n, features)`` array."""
        blocks = []
        for name, kind in self.kinds.items():
            if is_numeric(kind):
                values = np.asarray(table[name], dtype=np.float64)
                blocks.append(((values - self.centres[name]) / self.scales[name])[:, None])
            else:
                blocks.append(self.one_hot_scale * one_hot(_categories(table[name]), self.vocabularies[name]))
        return np.concatenate(blocks, axis=1)


def one_hot(values: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """One-hot rows over the sorted `vocabulary`; values outside it give all-zero rows."""
    positions = np.clip(np.searchsorted(vocabulary, values), 0, max(len(vocabulary) - 1, 0))
    known = (vocabulary[positions] == values) if len(vocabulary) else np.zeros(len(values), bool)
    encoded = np.zeros((len(values), len(vocabulary)))
    encoded[np.flatnonzero(known), positions[known]] = 1.0
    return encoded


def _rows(table: Table, indices: np.ndarray) -> Table:
    return {name: np.asarray(values)[indices] for name, values in table.items()}


def _num_rows(table: Table) -> int:
    return len(next(iter(table.values())))


# --- Utility: train on synthetic, test on real --------------------------------------------------


def _fit_and_score(features: np.ndarray, labels: np.ndarray, test_features: np.ndarray, test_labels: np.ndarray,
                   num_classes: int, steps: int, seed: int) -> float:
    """Accuracy on the test rows of `measures.classifier.train_classifier` fitted on (features, labels)
    for about `steps` gradient steps (whole epochs of `CLASSIFIER_BATCH` rows)."""
    import tensorflow as tf  # imported here: the other measures need no TensorFlow

    from synthblend.datasets.sources import DataSpec
    from synthblend.trainers.measures import classifier

    width = features.shape[1]
    spec = DataSpec(name="table", shape=(width,), value_range=None, loc=(0.0,) * width, scale=(1.0,) * width,
                    num_classes=num_classes, num_examples=len(features))
    dataset = tf.data.Dataset.from_tensor_slices({"x": features.astype(np.float32), "y": labels.astype(np.int64)})
    epochs = max(1, math.ceil(steps / math.ceil(len(features) / CLASSIFIER_BATCH)))
    model = classifier.train_classifier(dataset, spec, epochs=epochs, batch_size=CLASSIFIER_BATCH, seed=seed)
    return float(np.mean(classifier.predict_classes(model, test_features) == test_labels))


def train_synthetic_test_real(real_train: Table, real_test: Table, synthetic: Table, kinds: dict[str, str],
                              label: str, steps: int = CLASSIFIER_STEPS, seed: int = 0) -> dict:
    """TSTR and TRTR accuracy for predicting the `label` column from the others.

    Both classifiers (`measures.classifier.train_classifier`, a small MLP, about `steps` steps,
    seeded) train on ``n = min(len(real_train), len(synthetic))`` rows drawn without replacement with
    `seed`, and are scored on every row of `real_test`. Features are encoded by a
    `FeatureEncoder` fitted on `real_train` (standardised numbers, one-hot categories, unseen
    categories all zeros). Classes are the label values of `real_train`; synthetic rows with
    any other label are dropped (counted in ``synthetic_rows_dropped``) and test rows with one
    count as errors. Returns ``{"tstr_accuracy", "trtr_accuracy", "difference"`` (TSTR - TRTR),
    ``"train_rows", "classes", "majority_share"`` (accuracy of always guessing the most frequent
    real class, the chance level), ``"synthetic_rows_dropped"}``.
    """
    if label not in kinds:
        raise ValueError(f"label column {label!r} is not a column; columns: {', '.join(kinds)}")
    if kinds[label] == "continuous":
        raise ValueError(f"label column {label!r} is continuous; a label must be categorical, boolean or integer")
    features = {name: kind for name, kind in kinds.items() if name != label}
    classes = np.unique(_categories(real_train[label]))
    if len(classes) < 2:
        raise ValueError(f"label column {label!r} has a single value in the real data; nothing to predict")

    def class_index(table: Table) -> np.ndarray:
        values = _categories(table[label])
        positions = np.clip(np.searchsorted(classes, values), 0, len(classes) - 1)
        return np.where(classes[positions] == values, positions, -1)

    synthetic_labels = class_index(synthetic)
    kept = np.flatnonzero(synthetic_labels >= 0)
    generator = np.random.default_rng(seed)
    rows = min(_num_rows(real_train), len(kept))
    if rows == 0:
        raise ValueError(f"no synthetic row has a label value seen in the real data ({', '.join(classes)})")
    synthetic_rows = generator.choice(kept, rows, replace=False)
    real_rows = generator.choice(_num_rows(real_train), rows, replace=False)
    encoder = FeatureEncoder(real_train, features)
    test_features, test_labels = encoder.encode(real_test), class_index(real_test)
    tstr = _fit_and_score(encoder.encode(_rows(synthetic, synthetic_rows)), synthetic_labels[synthetic_rows],
                          test_features, test_labels, len(classes), steps, seed)
    trtr = _fit_and_score(encoder.encode(_rows(real_train, real_rows)), class_index(real_train)[real_rows],
                          test_features, test_labels, len(classes), steps, seed)
    majority = np.bincount(class_index(real_train), minlength=len(classes)).argmax()
    return {
        "tstr_accuracy": tstr,
        "trtr_accuracy": trtr,
        "difference": tstr - trtr,
        "train_rows": int(rows),
        "classes": [str(name) for name in classes],
        "majority_share": float(np.mean(test_labels == majority)),
        "synthetic_rows_dropped": int(_num_rows(synthetic) - len(kept)),
    }


# --- Privacy: distance to closest record --------------------------------------------------------


def copies_of(rows: np.ndarray, references: np.ndarray) -> int:
    """How many of `rows` equal some row of `references` in every feature (byte for byte)."""
    # Adding 0.0 turns -0.0 into 0.0, so equal numbers also have equal bytes.
    known = {row.tobytes() for row in np.ascontiguousarray(references + 0.0)}
    return int(sum(row.tobytes() in known for row in np.ascontiguousarray(rows + 0.0)))


def table_distance_to_closest_record(real_train: Table, real_holdout: Table, synthetic: Table,
                                     kinds: dict[str, str], closest: int = 8,
                                     max_queries: int = DCR_MAX_QUERIES, seed: int = 0) -> dict:
    """`measures.features.distance_to_closest_record` on encoded rows, plus exact copies.

    Rows are encoded by a `FeatureEncoder` fitted on `real_train` with numeric columns divided
    by their real range and one-hot blocks scaled by 1/sqrt(2), so a different category and a
    full-range numeric difference each add 1 to the squared distance. The distances are taken
    for at most `max_queries` synthetic and holdout rows each (drawn with `seed`; the counts are
    ``synthetic_rows_measured`` and ``holdout_rows_measured``) against every training row, and
    ``closest_pairs`` index those measured synthetic rows. ``exact_copies`` counts, over every
    synthetic row, those equal to some training row in every column; ``holdout_exact_copies``
    counts the same for holdout rows, the level that duplicates in the real data alone produce.
    """
    encoder = FeatureEncoder(real_train, kinds, numeric="range", one_hot_scale=1.0 / math.sqrt(2.0))
    train, holdout, generated = encoder.encode(real_train), encoder.encode(real_holdout), encoder.encode(synthetic)
    generator = np.random.default_rng(seed)

    def subsample(rows: np.ndarray) -> np.ndarray:
        return rows if len(rows) <= max_queries else rows[np.sort(generator.choice(len(rows), max_queries, False))]

    measured_synthetic, measured_holdout = subsample(generated), subsample(holdout)
    result = features.distance_to_closest_record(measured_synthetic, train, measured_holdout, closest=closest)
    result.pop("synthetic_distances")
    result["exact_copies"] = copies_of(generated, train)
    result["holdout_exact_copies"] = copies_of(holdout, train)
    result["synthetic_rows_measured"] = int(len(measured_synthetic))
    result["holdout_rows_measured"] = int(len(measured_holdout))
    return result


# --- Pictures -----------------------------------------------------------------------------------


def save_column_histograms(real: Table, synthetic: Table, kinds: dict[str, str], path: str,
                           title: str = "", max_categories: int = 20) -> None:
    """One panel per column, real (blue) and synthetic (orange): numeric columns as density
    histograms over shared bins, categorical columns as side-by-side bars of category shares
    (the `max_categories` most frequent real categories)."""
    names = list(kinds)
    columns = min(len(names), 4)
    rows = math.ceil(len(names) / columns)
    figure, axes = pictures.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), dpi=100, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(names):
            ax.axis("off")
            continue
        name = names[index]
        if is_numeric(kinds[name]):
            real_values = np.asarray(real[name], dtype=np.float64)
            synthetic_values = np.asarray(synthetic[name], dtype=np.float64)
            bins = np.histogram_bin_edges(np.concatenate([real_values, synthetic_values]), bins=30)
            ax.hist(real_values, bins=bins, density=True, alpha=0.5, color="tab:blue", label="real")
            ax.hist(synthetic_values, bins=bins, density=True, alpha=0.5, color="tab:orange", label="synthetic")
        else:
            real_values, synthetic_values = _categories(real[name]), _categories(synthetic[name])
            vocabulary = np.union1d(real_values, synthetic_values)
            real_shares = category_shares(real_values, vocabulary)
            synthetic_shares = category_shares(synthetic_values, vocabulary)
            shown = np.argsort(-real_shares, kind="stable")[:max_categories]
            positions = np.arange(len(shown))
            ax.bar(positions - 0.2, real_shares[shown], width=0.4, color="tab:blue", label="real")
            ax.bar(positions + 0.2, synthetic_shares[shown], width=0.4, color="tab:orange", label="synthetic")
            # Keep both ends of a long name: names often differ only in a prefix or a suffix.
            labels = [label if len(label) <= 12 else label[:5] + "…" + label[-6:] for label in vocabulary[shown]]
            crowded = len(shown) > 3
            ax.set_xticks(positions, labels, rotation=45 if crowded else 0, ha="right" if crowded else "center",
                          fontsize=7)
        ax.set_title(f"{name} ({kinds[name]})", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    axes.flat[0].legend(fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)


def save_association_matrices(real_matrix: list[list[float]], synthetic_matrix: list[list[float]],
                              names: list[str], path: str, title: str = "") -> None:
    """The real and synthetic association matrices side by side on one colour scale (-1 to 1),
    labelled with the column names and each cell's value."""
    count = len(names)
    size = max(4.0, 0.6 * count + 2.0)
    figure, axes = pictures.subplots(1, 2, figsize=(2 * size + 1.5, size), dpi=100, layout="constrained")
    image = None
    for ax, matrix, caption in ((axes[0], real_matrix, "real"), (axes[1], synthetic_matrix, "synthetic")):
        values = np.asarray(matrix, dtype=np.float64)
        image = ax.imshow(values, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
        ax.set_xticks(range(count), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(count), names, fontsize=8)
        for i in range(count):
            for j in range(count):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(values[i, j]) > 0.6 else "black")
        ax.set_title(caption)
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="Pearson r (numeric pairs) / Cramér's V (others)")
    if title:
        figure.suptitle(title)
    figure.savefig(path, bbox_inches="tight")


# --- Everything at once -------------------------------------------------------------------------


def check_tables(tables: dict[str, Table], kinds: dict[str, str]) -> None:
    """Raises ValueError, naming the table and column, unless every table holds every column of
    `kinds` as a 1-D array of one length with at least one row, and every kind is known."""
    known = NUMERIC_KINDS + CATEGORICAL_KINDS
    for name, kind in kinds.items():
        if kind not in known:
            raise ValueError(f"column {name!r} has kind {kind!r}; kinds are {', '.join(known)}")
    for table_name, table in tables.items():
        missing = [name for name in kinds if name not in table]
        if missing:
            raise ValueError(f"the {table_name} table lacks column(s) {', '.join(missing)}")
        lengths = {name: np.shape(table[name]) for name in kinds}
        shapes = set(lengths.values())
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"the {table_name} table's columns are not 1-D of one length: {lengths}")
        if next(iter(shapes))[0] == 0:
            raise ValueError(f"the {table_name} table has no rows")


def table_report(real_train: Table, real_test: Table, synthetic: Table, kinds: dict[str, str],
                 label: str | None = None, out_dir: str | None = None, steps: int = CLASSIFIER_STEPS,
                 seed: int = 0) -> dict:
    """Every measure of `synthetic` against the real table, and its pictures.

    Column shapes and pair trends compare `synthetic` with `real_train` (what the model learnt
    from); TSTR/TRTR test on `real_test` and are computed only when `label` is given; distance to
    closest record sets `synthetic` and `real_test` (the holdout) against `real_train`.
    With `out_dir`, writes ``column_histograms.png`` and ``association_matrices.png`` there and
    lists their paths under ``"pictures"``. The result is JSON-serialisable.
    """
    check_tables({"real training": real_train, "real test": real_test, "synthetic": synthetic}, kinds)
    names = list(kinds)
    trends = pair_trends(real_train, synthetic, kinds)
    report = {
        "rows": {"real_train": _num_rows(real_train), "real_test": _num_rows(real_test),
                 "synthetic": _num_rows(synthetic)},
        "column_shapes": column_shapes(real_train, synthetic, kinds),
        "pair_trends": trends,
        "association": association_matrices(trends, names),
        "distance_to_closest_record": table_distance_to_closest_record(real_train, real_test, synthetic, kinds),
    }
    report["quality_score"] = (report["column_shapes"]["score"] + report["pair_trends"]["score"]) / 2.0
    if label is not None:
        report["utility"] = {"label": label, **train_synthetic_test_real(
            real_train, real_test, synthetic, kinds, label, steps=steps, seed=seed)}
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        histograms = os.path.join(out_dir, "column_histograms.png")
        matrices = os.path.join(out_dir, "association_matrices.png")
        save_column_histograms(real_train, synthetic, kinds, histograms, title="real vs synthetic columns")
        save_association_matrices(report["association"]["real"], report["association"]["synthetic"], names,
                                  matrices, title="column associations")
        report["pictures"] = {"column_histograms": histograms, "association_matrices": matrices}
    return report
