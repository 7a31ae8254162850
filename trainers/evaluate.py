"""Measure synthetic data against the real data it imitates: fidelity, diversity, memorisation
and usefulness, written as `report.json`, PNG plots and a one-page `report.html`.

    synthblend-evaluate --model_dir=runs/dcgan_shapes_conditional
    synthblend-evaluate --export_dir=exports/shapes --num_samples=2000

Images are compared in the feature space of a small classifier trained on the real training
split (the Inception network behind FID neither downloads here nor suits 28x28 grayscale; the
FID authors advise a domain network for such data). It is cached under `--cache_dir` by
dataset name and a fingerprint of the data, with its held-out accuracy. In that space:
Fréchet classifier distance (FCD) and KID, precision/recall and density/coverage, the
classifier score and the histogram of predicted classes. Vectors are compared as standardised
vectors. Every figure is set beside its real-vs-real floor: the same measure between real
training examples and the real held-out examples the samples are compared with, as many of
each, so "how far from real" reads against "how far real is from itself".

Per model: modes covered on the 2-D toys (ring, grid), the class asked for vs the class
recognised (conditional models), the categorical code vs the true class and the continuous
codes vs the true factors (InfoGAN), reconstruction error and held-out ELBO (VAE).
Memorisation: distance to the closest training record, against held-out records' distances.
Usefulness (labelled synthetic data): train on synthetic, test on real, beside train on real.

Tables are measured on their decoded columns (`trainers.measures.tables`): column shapes
(1 - KS, 1 - TVD) and pair trends (correlation, contingency), each beside its real-vs-real
floor, train-on-synthetic-test-on-real for the label column of conditional models, distance
to the closest record, per-column histograms and the two association matrices.

The report goes to `--report_dir` (default `<model_dir>/evaluation`, or `<export_dir>/evaluation`)
with TensorBoard scalars of the same numbers.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os

from synthblend.trainers import cli, flags as F

import keras
import numpy as np
import tensorflow as tf

from synthblend.datasets import embedded, sources, tabular
from synthblend.datasets.sources import DataSpec
from synthblend.trainers import lifecycle, measures, pictures, privacy
from synthblend.trainers import sample
from synthblend.trainers.sample import class_labels
from synthblend.zoo.registry import DataError, UsageError

REPORT_FOLDER = "evaluation"
# Training batches of each usefulness classifier (`usefulness`): what the domain classifier gets
# from 5 epochs of 20,000 examples, so that train-on-real on a few thousand examples is not cut short.
USEFULNESS_STEPS = 800
# Gaussian mixtures whose modes are known: name -> (centres, standard deviation).
MIXTURES = {
    "ring": (embedded.ring_centers, embedded.RING_STD),
    "grid": (embedded.grid_centers, embedded.GRID_STD),
}


# -- real data and the domain classifier --------------------------------------------------------

def load_real(record: dict, spec: DataSpec, limit: int, given: dict | None = None) -> tuple[dict, dict]:
    """Up to `limit` real training examples and held-out examples, as arrays.

    Held out is the real data `given` (arrays `x`, `y` in the model's data space) when there is
    some; otherwise the examples set aside before training (`--holdout`) when the run has some;
    otherwise the `test` split where the source has one; otherwise the last fifth of the training
    examples (which the model did see: the report says so)."""
    if record.get("holdout"):
        data, data_spec = sources.load(record["dataset"], record.get("split") or "train", record.get("image_size"),
                                       table=spec.table)
        kept, _, held, _ = sources.hold_out(data, data_spec, record["holdout"]["share"], record["holdout"]["seed"])
        train = first_examples(kept, limit)
        if given is None:
            share = record["holdout"]
            return train, {**first_examples(held, limit), "seen": False,
                           "about": f"the {share['examples']} examples of {record['dataset']} held out before training "
                                    f"(--holdout={share['share']:g}; never trained on)"}
    else:
        train = arrays(record["dataset"], record.get("split") or "train", record.get("image_size"), limit, spec.table)
    if given is not None:
        about = given.get("about", "the real data given")
        return train, {**{key: np.asarray(value)[:limit] for key, value in given.items() if key != "about"},
                       "seen": False, "about": about}
    if "test" in spec.splits and record.get("split") != "test":
        return train, {**arrays(record["dataset"], "test", record.get("image_size"), limit, spec.table),
                       "seen": False, "about": "the test split"}
    cut = len(train["x"]) * 4 // 5
    return {k: v[:cut] for k, v in train.items()}, {**{k: v[cut:] for k, v in train.items()}, "seen": True,
                                                     "about": "the last fifth of the training examples (seen in "
                                                              "training)"}


def arrays(dataset_name: str, split: str, image_size, limit: int, table: dict | None = None) -> dict:
    """Up to `limit` examples of a split; a table is encoded with the model's own encoder `table`."""
    dataset, _ = sources.load(dataset_name, split, image_size, table=table)
    return first_examples(dataset, limit)


def first_examples(dataset, limit: int) -> dict:
    """Up to `limit` examples of `dataset`, as arrays."""
    batch = next(iter(dataset.batch(limit).take(1)))
    return {key: value.numpy() for key, value in batch.items()}


def fingerprint(spec: DataSpec, train: dict) -> str:
    digest = hashlib.sha256(json.dumps(spec.to_json(), sort_keys=True, default=str).encode())
    for key in ("x", "y"):
        if key in train:
            digest.update(np.ascontiguousarray(train[key]).tobytes())
    return digest.hexdigest()[:16]


def domain_classifier(spec: DataSpec, train: dict, holdout: dict, cache_dir: str) -> tuple[keras.Model, dict]:
    """The classifier of the real data, from the cache or trained now; and what it scored."""
    name = "".join(c if c.isalnum() else "_" for c in spec.name)
    key = fingerprint(spec, train)
    path = os.path.join(cache_dir, "classifiers", f"{name}-{key}.keras")
    if os.path.exists(path) and os.path.exists(path + ".json"):
        with open(path + ".json") as file:
            return keras.models.load_model(path), json.load(file)
    examples = tf.data.Dataset.from_tensor_slices({"x": train["x"], "y": train["y"]})
    model = measures.classifier.train_classifier(examples, spec)
    accuracy = float(np.mean(measures.classifier.predict_classes(model, holdout["x"]) == holdout["y"]))
    info = {"path": path, "fingerprint": key, "trained_on": len(train["x"]), "heldout_accuracy": accuracy}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save(path)
    with open(path + ".json", "w") as file:
        json.dump(info, file, indent=2)
    return model, info


def feature_model(classifier: keras.Model) -> keras.Model:
    """The classifier up to its penultimate (`features`) layer, and its logits."""
    return keras.Model(classifier.inputs, [classifier.get_layer("features").output, classifier.output])


def embed(model: keras.Model, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features, logits = model.predict(np.asarray(data, np.float32), batch_size=512, verbose=0)
    return features, tf.nn.softmax(logits).numpy()


# -- measures -----------------------------------------------------------------------------------

def distribution_measures(synthetic: np.ndarray, reference: np.ndarray, floor: np.ndarray, seed: int) -> dict:
    """Each distance between synthetic and reference features, beside the same between two
    sets of real features (`floor` vs reference)."""

    def all_of(candidate):
        subset_size = min(1000, max(2, len(reference) // 2))
        kid = measures.features.kernel_inception_distance(reference, candidate, subset_size=subset_size, seed=seed)
        return {
            "frechet_distance": measures.features.frechet_distance(reference, candidate),
            **kid,
            **measures.features.precision_recall(reference, candidate),
            **measures.features.density_coverage(reference, candidate),
        }

    synthetic_values, floor_values = all_of(synthetic), all_of(floor)
    return {name: {"synthetic": synthetic_values[name], "real_floor": floor_values[name]} for name in synthetic_values}


def class_measures(synthetic_probabilities, floor_probabilities, reference_labels, num_classes) -> dict:
    predicted = np.argmax(synthetic_probabilities, axis=-1)
    floor_predicted = np.argmax(floor_probabilities, axis=-1)
    return {
        "classifier_score": {"synthetic": measures.features.classifier_score(synthetic_probabilities),
                             "real_floor": measures.features.classifier_score(floor_probabilities)},
        "histogram": measures.features.class_histogram(predicted, num_classes, reference=reference_labels),
        "real_histogram": measures.features.class_histogram(floor_predicted, num_classes, reference=reference_labels),
    }


def flat(data: np.ndarray, spec: DataSpec) -> np.ndarray:
    """Examples as vectors on a common scale: pixels in [0, 1], vectors standardised."""
    data = np.asarray(data, np.float32).reshape(len(data), -1)
    if spec.value_range is not None:
        low, high = spec.value_range
        return (data - low) / (high - low)
    return (data - np.asarray(spec.loc, np.float32)) / np.asarray(spec.scale, np.float32)


def usefulness(spec, synthetic, synthetic_labels, train, holdout, steps: int | None = None) -> dict:
    """Accuracy on the real held-out data of the classifier trained on synthetic data (TSTR)
    and on as many real training examples (TRTR), each for `steps` batches (default
    `USEFULNESS_STEPS`) whatever the number of examples, so that neither is cut short."""
    count = len(synthetic)
    steps = steps or USEFULNESS_STEPS

    def accuracy(x, y):
        model = measures.classifier.train_classifier(tf.data.Dataset.from_tensor_slices({"x": x, "y": y}), spec,
                                                     steps=steps)
        return float(np.mean(measures.classifier.predict_classes(model, holdout["x"]) == holdout["y"]))

    return {
        "examples": count,
        "classifier_steps": steps,
        "train_on_synthetic_test_on_real": accuracy(synthetic.astype(np.float32), synthetic_labels),
        "train_on_real_test_on_real": accuracy(train["x"][:count].astype(np.float32), train["y"][:count]),
    }


# -- the report ---------------------------------------------------------------------------------

def evaluate(source, spec: DataSpec, num: int, seed: int, cache_dir: str, report_dir: str,
             inception: keras.Model | None = None, real_examples: int = 20000, holdout: dict | None = None) -> dict:
    """Measures `num` samples of `source` against up to `real_examples` real ones (for the
    classifier and memorisation) and writes the report; returns it. `holdout` is real held-out
    data (`x`, `y`) to compare with instead of the source's own. The report's files appear in
    `report_dir` together, when all are written (`lifecycle.staged`)."""
    with lifecycle.staged(report_dir) as staging:
        if spec.table is not None:
            return evaluate_table(source, spec, num, seed, staging, real_examples, holdout)
        return evaluate_arrays(source, spec, num, seed, cache_dir, staging, inception, real_examples, holdout)


def evaluate_arrays(source, spec: DataSpec, num: int, seed: int, cache_dir: str, report_dir: str,
                    inception: keras.Model | None, real_examples: int, holdout: dict | None) -> dict:
    """The report of images or vectors (`evaluate`), written into `report_dir`."""
    train, holdout = load_real(source.record, spec, max(num, real_examples), holdout)
    seen, about = holdout.pop("seen"), holdout.pop("about")
    num = min(num, len(holdout["x"]), len(train["x"]))
    reference, floor = holdout["x"][:num], train["x"][:num]
    labels = None
    if source.conditional:
        labels = class_labels(num, spec.num_classes, list(range(spec.num_classes)), "uniform", None, seed)
    synthetic = sample.draw(source, num, seed, labels)
    os.makedirs(report_dir, exist_ok=True)
    report = report_header(source, num, seed, about)
    figures = {}
    labelled = spec.num_classes >= 2 and "y" in train
    if labelled:
        classifier, report["classifier"] = domain_classifier(spec, train, holdout, cache_dir)
        features = feature_model(classifier)
        synthetic_features, synthetic_probabilities = embed(features, synthetic)
        reference_features, _ = embed(features, reference)
        floor_features, floor_probabilities = embed(features, floor)
        report["classes"] = class_measures(synthetic_probabilities, floor_probabilities, holdout["y"][:num],
                                           spec.num_classes)
        figures["class_histogram"] = plot_class_histograms(report["classes"], spec)
    if spec.is_image and labelled:
        report["space"] = "penultimate features of the domain classifier"
        report["fidelity"] = distribution_measures(synthetic_features, reference_features, floor_features, seed)
    else:
        report["space"] = "standardised vectors" if not spec.is_image else "pixels scaled to [0, 1]"
        report["fidelity"] = distribution_measures(flat(synthetic, spec), flat(reference, spec), flat(floor, spec),
                                                   seed)
    if inception is not None:
        report["inception_fid"] = inception_fid(inception, synthetic, reference, floor, spec)
    figures["samples"] = plot_samples(synthetic, reference, spec)
    if spec.name in MIXTURES:
        centres, std = MIXTURES[spec.name]
        report["modes"] = {
            "synthetic": measures.features.mode_coverage(synthetic, centres(), std),
            "real_floor": measures.features.mode_coverage(floor, centres(), std),
        }
    if labels is not None:
        predicted = np.argmax(synthetic_probabilities, axis=-1)
        per_class = [float(np.mean(predicted[labels == c] == c)) for c in range(spec.num_classes)]
        report["conditional"] = {"recognised_as_asked": float(np.mean(predicted == labels)),
                                 "per_class": dict(zip(class_names(spec), per_class))}
        report["usefulness"] = usefulness(spec, synthetic, labels, train, holdout)
    if source.can("infer_codes"):
        report["codes"], code_figure = code_measures(source, holdout, spec)
        if code_figure:
            figures["code_correlations"] = code_figure
    if source.can("reconstruct"):
        rebuilt = source.reconstruct(reference)
        report["reconstruction"] = {
            "mean_squared_error": float(np.mean(np.square(flat(rebuilt, spec) - flat(reference, spec)))),
            "on": "pixels scaled to [0, 1]" if spec.value_range is not None else "standardised vectors",
            **source.heldout_metrics(),
        }
        if spec.is_image:
            figures["reconstructions"] = plot_pairs(reference[:8], rebuilt[:8], spec)
    distances = measures.features.distance_to_closest_record(
        flat(synthetic, spec), flat(train["x"], spec), flat(reference, spec)
    )
    report["memorisation"] = {k: v for k, v in distances.items() if k != "synthetic_distances"}
    report["privacy"] = privacy_report(source.record, flat(synthetic, spec), flat(train["x"], spec),
                                       flat(holdout["x"], spec), seen)
    figures["memorisation"] = plot_distances(distances, holdout_distances(train, reference, spec))
    if spec.is_image:
        pairs = np.asarray(distances["closest_pairs"])
        figures["closest_pairs"] = plot_pairs(synthetic[pairs[:, 0]], train["x"][pairs[:, 1]], spec)
    paths = {name: save(figure, os.path.join(report_dir, f"{name}.png")) for name, figure in figures.items()}
    write_report(report, paths, report_dir, source)
    return report


def privacy_report(record: dict, synthetic: np.ndarray, train: np.ndarray, holdout: np.ndarray, seen: bool) -> dict:
    """What the report says of privacy: the guarantee the run has, if any, and a membership-inference
    attack's AUC at telling training records from held-out ones by the synthetic samples."""
    section = {"guarantee": privacy.guarantee(record)}
    count = min(1000, len(holdout) // 2, len(train))
    if seen:
        section["membership_inference"] = ("not measured: the held-out examples were seen in training, so "
                                           "there are no non-members to tell apart")
    elif count < 10:
        section["membership_inference"] = f"not measured: {len(holdout)} held-out examples are too few"
    else:
        section["membership_inference"] = measures.features.membership_inference(
            synthetic, train[:count], holdout[:count], holdout[count:])
    return section


def report_header(source, num: int, seed: int, about: str) -> dict:
    """What every report starts with: the run measured, how many samples, against what real data."""
    return {
        "model": source.record.get("model"),
        "step": source.record.get("step"),
        "dataset": source.record.get("dataset"),
        "num_samples": num,
        "seed": seed,
        "heldout": about,
    }


def write_report(report: dict, pictures: dict, report_dir: str, source) -> None:
    """report.json, report.html (with `pictures`, name -> PNG path) and the TensorBoard scalars."""
    lifecycle.write_json(os.path.join(report_dir, "report.json"), report)
    write_html(report, pictures, os.path.join(report_dir, "report.html"))
    log_scalars(report, report_dir, int(source.record.get("step") or 0))


def evaluate_table(source, spec: DataSpec, num: int, seed: int, report_dir: str, real_examples: int,
                   given: dict | None = None) -> dict:
    """The table report (`trainers.measures.tables`) of `num` decoded synthetic rows against the
    real rows, each score beside its real-vs-real floor; conditional models draw labels in the
    class shares of the real training rows, so train-on-synthetic sees the real balance."""
    train, holdout = load_real(source.record, spec, max(num, real_examples), given)
    seen, about = holdout.pop("seen"), holdout.pop("about")
    num = min(num, len(train["x"]))
    encoder = spec.table
    labels = None
    if source.conditional:
        frequencies = np.bincount(train["y"], minlength=spec.num_classes) / len(train["y"])
        labels = class_labels(num, spec.num_classes, list(range(spec.num_classes)), "real", frequencies, seed)
    encoded = sample.draw(source, num, seed, labels)
    synthetic = tabular.decode(encoded, encoder, labels)
    real_train = tabular.decode(train["x"], encoder, train.get("y") if labels is not None else None)
    real_test = tabular.decode(holdout["x"], encoder, holdout.get("y") if labels is not None else None)
    kinds = {column["name"]: column["kind"] for column in encoder["columns"]}
    label = encoder["label"]["name"] if labels is not None else None
    if label is not None:
        kinds[label] = encoder["label"]["kind"]
    kinds = {name: kinds[name] for name in synthetic}
    # Dates are measured as the numbers they are encoded as: seconds since the epoch.
    for name in [name for name, kind in kinds.items() if kind == "datetime"]:
        kinds[name] = "continuous"
        for table in (synthetic, real_train, real_test):
            table[name] = tabular.epoch_seconds(table[name])
    os.makedirs(report_dir, exist_ok=True)
    try:
        measured = measures.tables.table_report(real_train, real_test, synthetic, kinds, label, report_dir, seed=seed)
        floor_rows = {name: values[:num] for name, values in real_train.items()}
        floor = {"column_shapes": measures.tables.column_shapes(real_test, floor_rows, kinds)["score"],
                 "pair_trends": measures.tables.pair_trends(real_test, floor_rows, kinds)["score"]}
    except ValueError as error:
        raise DataError(f"cannot measure the table of {spec.name}: {error}") from None
    report = {
        **report_header(source, num, seed, about),
        "space": "decoded table columns (the real-vs-real floor compares held-out rows with training rows)",
        "fidelity": {name: {"synthetic": measured[name]["score"], "real_floor": floor[name]} for name in floor},
        **{key: value for key, value in measured.items() if key != "pictures"},
    }
    if "utility" in report:
        utility = report.pop("utility")
        report["usefulness"] = {"label": utility.pop("label"), "examples": utility.pop("train_rows"),
                                "train_on_synthetic_test_on_real": utility.pop("tstr_accuracy"),
                                "train_on_real_test_on_real": utility.pop("trtr_accuracy"), **utility}
    report["memorisation"] = report.pop("distance_to_closest_record")
    report["privacy"] = privacy_report(source.record, encoded, train["x"], holdout["x"], seen)
    write_report(report, measured.get("pictures", {}), report_dir, source)
    return report


def holdout_distances(train, reference, spec) -> np.ndarray:
    distances, _ = measures.features.nearest_neighbours(flat(reference, spec), flat(train["x"], spec))
    return distances[:, 0]


def code_measures(source, holdout, spec) -> tuple[dict, object]:
    probabilities, continuous = source.infer_codes(holdout["x"])
    result = {}
    if "y" in holdout and spec.num_classes >= 2:
        accuracy, matching = measures.classifier.best_matching_accuracy(np.argmax(probabilities, axis=-1), holdout["y"])
        result["categorical_accuracy_after_matching"] = accuracy
        result["code_to_class"] = {str(code): class_names(spec)[label] for code, label in matching.items()}
    figure = None
    if "factors" in holdout and spec.factor_names:
        correlations = measures.features.code_correlations(continuous, holdout["factors"])
        result["continuous_code_factor_correlations"] = {
            f"code_{index}": dict(zip(spec.factor_names, row)) for index, row in enumerate(correlations)
        }
        figure = plot_correlations(np.asarray(correlations), spec.factor_names)
    return result, figure


def inception_network(weights: str, spec: DataSpec) -> keras.Model:
    """Inception-v3 without its top, average-pooled, from a local weights file."""
    if not os.path.exists(weights):
        raise UsageError(f"--inception_weights={weights} does not exist")
    if not spec.is_image:
        raise UsageError(f"--inception_weights applies to images; {spec.name} holds vectors")
    network = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg", input_shape=(299, 299, 3))
    try:
        network.load_weights(weights)
    except (ValueError, OSError) as error:
        reason = str(error).splitlines()[0][:200]
        raise UsageError(f"--inception_weights={weights} are not Inception-v3 weights without top ({reason})") from None
    return network


def inception_fid(network: keras.Model, synthetic, reference, floor, spec) -> dict:
    """FID in the pooled features of Inception-v3, on images resized to 299x299 RGB in [-1, 1]."""

    def features(images):
        outputs = []
        for start in range(0, len(images), 64):
            batch = tf.convert_to_tensor(flat(images[start:start + 64], spec).reshape(-1, *spec.shape))
            batch = tf.image.resize(batch * 2.0 - 1.0, (299, 299))
            if batch.shape[-1] == 1:
                batch = tf.image.grayscale_to_rgb(batch)
            outputs.append(network(batch, training=False).numpy())
        return np.concatenate(outputs)

    reference_features = features(reference)
    return {"synthetic": measures.features.frechet_distance(reference_features, features(synthetic)),
            "real_floor": measures.features.frechet_distance(reference_features, features(floor))}


def class_names(spec: DataSpec) -> list[str]:
    return list(spec.class_names) or [str(index) for index in range(spec.num_classes)]


# -- pictures -----------------------------------------------------------------------------------

def plot_samples(synthetic, reference, spec):
    if spec.is_image:
        return ("grid", pictures.to_uint8(np.concatenate([synthetic[:32], reference[:32]]), spec.value_range), 8)
    figure, axes = pictures.subplots(figsize=(5, 5), dpi=100)
    if spec.shape == (2,):
        axes.scatter(reference[:, 0], reference[:, 1], s=3, alpha=0.3, label="real (held out)")
        axes.scatter(synthetic[:, 0], synthetic[:, 1], s=3, alpha=0.5, label="synthetic")
        if spec.name in MIXTURES:
            centres, _ = MIXTURES[spec.name]
            axes.scatter(*centres().T, marker="x", c="black", label="modes")
        axes.set_aspect("equal")
    else:
        axes.hist(flat(reference, spec).ravel(), bins=50, alpha=0.5, density=True, label="real (held out)")
        axes.hist(flat(synthetic, spec).ravel(), bins=50, alpha=0.5, density=True, label="synthetic")
    axes.legend(fontsize=8)
    return figure


def plot_pairs(top, bottom, spec):
    """Two rows: `top` over `bottom`, column by column."""
    return ("grid", pictures.to_uint8(np.concatenate([top, bottom]), spec.value_range), len(top))


def plot_class_histograms(classes, spec):
    names = class_names(spec)
    figure, axes = pictures.subplots(figsize=(max(4, len(names) * 0.8), 3), dpi=100)
    positions = np.arange(len(names))
    axes.bar(positions - 0.2, classes["real_histogram"]["shares"], 0.4, label="real (training)")
    axes.bar(positions + 0.2, classes["histogram"]["shares"], 0.4, label="synthetic")
    axes.set_xticks(positions, names, rotation=45 if len(names) > 6 else 0)
    axes.set_ylabel("share predicted")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_distances(distances, holdout):
    figure, axes = pictures.subplots(figsize=(5, 3), dpi=100)
    bins = np.linspace(0, max(np.max(distances["synthetic_distances"]), np.max(holdout)) + 1e-9, 50)
    axes.hist(holdout, bins=bins, alpha=0.5, density=True, label="held-out real")
    axes.hist(distances["synthetic_distances"], bins=bins, alpha=0.5, density=True, label="synthetic")
    axes.axvline(distances["holdout_5th_percentile"], color="black", linestyle="--", label="held-out 5th percentile")
    axes.set_xlabel("distance to the closest training record")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_correlations(correlations, factor_names):
    figure, axes = pictures.subplots(figsize=(1.2 * len(factor_names) + 2, 0.6 * len(correlations) + 1.5), dpi=100)
    image = axes.imshow(correlations, cmap="coolwarm", vmin=-1, vmax=1)
    axes.set_xticks(range(len(factor_names)), factor_names)
    axes.set_yticks(range(len(correlations)), [f"code {i}" for i in range(len(correlations))])
    for (row, column), value in np.ndenumerate(correlations):
        axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=8)
    figure.colorbar(image)
    figure.tight_layout()
    return figure


def save(figure, path: str) -> str:
    if isinstance(figure, tuple):
        _, images, columns = figure
        pictures.save_image_grid(images, path, columns)
    else:
        figure.savefig(path)
    return path


# -- writing ------------------------------------------------------------------------------------

FLOORED = ("frechet_distance", "kid", "precision", "recall", "density", "coverage")
CAPTIONS = {
    "samples": "Synthetic samples (top rows) and real held-out examples (bottom rows).",
    "class_histogram": "Share of each class the domain classifier predicts, real and synthetic.",
    "memorisation": "Distance to the closest training record: synthetic samples against held-out real examples.",
    "closest_pairs": "The synthetic samples closest to a training record (top) and that record (bottom).",
    "reconstructions": "Held-out examples (top) and their reconstructions (bottom).",
    "code_correlations": "Correlation of each continuous code with each true factor.",
    "column_histograms": "Each column of the table, real training rows and synthetic rows.",
    "association_matrices": "Association between columns (Pearson r for numbers, Cramér's V otherwise), "
                            "real and synthetic.",
}


def write_html(report: dict, figures: dict, path: str) -> None:
    """One self-contained page: the numbers in tables and the pictures embedded."""
    rows = []
    for section in ("fidelity", "modes", "inception_fid"):
        values = report.get(section)
        if not values:
            continue
        items = values.items() if section == "fidelity" else [(section, values)]
        if section == "modes":
            items = [(f"modes {k}", {"synthetic": values["synthetic"][k], "real_floor": values["real_floor"][k]})
                     for k in ("modes_covered", "high_quality_share")]
        for name, pair in items:
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{fmt(pair['synthetic'])}</td>"
                        f"<td>{fmt(pair['real_floor'])}</td></tr>")
    if "classes" in report:
        score = report["classes"]["classifier_score"]
        rows.append(f"<tr><td>classifier score</td><td>{fmt(score['synthetic'])}</td>"
                    f"<td>{fmt(score['real_floor'])}</td></tr>")
        rows.append(f"<tr><td>classes present</td><td>{report['classes']['histogram']['classes_present']}</td>"
                    f"<td>{report['classes']['real_histogram']['classes_present']}</td></tr>")
    details = {k: v for k, v in report.items() if k not in ("fidelity", "modes", "inception_fid", "classes")}
    images = "".join(
        f"<figure><img src='data:image/png;base64,{embed_png(p)}'><figcaption>{html.escape(CAPTIONS.get(n, n))}"
        "</figcaption></figure>"
        for n, p in figures.items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation: {html.escape(str(report['model']))}
</title><style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:1em;vertical-align:top;max-width:45%}}img{{max-width:100%}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body>
<h1>{html.escape(str(report['model']))} on {html.escape(str(report['dataset']))}, step {report['step']}</h1>
<p>{report['num_samples']} synthetic samples against as many real held-out examples ({html.escape(report['heldout'])}),
compared in {html.escape(report['space'])}. The real-vs-real floor is the same measure between as many real training
examples and the held-out ones: what a perfect generator would score.</p>
<table><tr><th>measure</th><th>synthetic</th><th>real-vs-real floor</th></tr>{''.join(rows)}</table>
{images}
<h2>Everything measured</h2><pre>{html.escape(json.dumps(details, indent=2, default=float))}</pre>
</body></html>"""
    lifecycle.write_text(path, page)


def fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def embed_png(path: str) -> str:
    with open(path, "rb") as file:
        return base64.b64encode(file.read()).decode()


def log_scalars(report: dict, report_dir: str, step: int) -> None:
    writer = tf.summary.create_file_writer(report_dir)
    with writer.as_default():
        for name, pair in report.get("fidelity", {}).items():
            tf.summary.scalar(f"evaluation/{name}", pair["synthetic"], step=step)
            tf.summary.scalar(f"evaluation/{name}_real_floor", pair["real_floor"], step=step)
        for section, key in (("memorisation", "share_closer_than_holdout_5th_percentile"),
                             ("conditional", "recognised_as_asked"),
                             ("codes", "categorical_accuracy_after_matching"),
                             ("reconstruction", "mean_squared_error")):
            if key in report.get(section, {}):
                tf.summary.scalar(f"evaluation/{key}", report[section][key], step=step)
        if "usefulness" in report:
            for key in ("train_on_synthetic_test_on_real", "train_on_real_test_on_real"):
                tf.summary.scalar(f"evaluation/{key}", report["usefulness"][key], step=step)
    writer.close()


def main(argv):
    sample.check_source_flags("evaluate")
    num = F.NUM_SAMPLES.value or 5000
    if num < 10:
        raise UsageError(f"--num_samples={num} is too few to measure; give at least 10")
    if F.SEED.value < 0:
        raise UsageError(f"--seed={F.SEED.value} must be a non-negative integer")
    source = sample.open_source()
    report_dir = F.REPORT_DIR.value or os.path.join(F.MODEL_DIR.value or F.EXPORT_DIR.value, REPORT_FOLDER)
    cli.check_writable_dir(report_dir, "--report_dir")
    cli.check_writable_dir(F.CACHE_DIR.value, "--cache_dir")
    inception = inception_network(F.INCEPTION_WEIGHTS.value, source.spec) if F.INCEPTION_WEIGHTS.value else None
    given = test_data(source, max(num, F.REAL_EXAMPLES.value))
    try:
        report = evaluate(source, source.spec, num, F.SEED.value, F.CACHE_DIR.value, report_dir,
                          inception, F.REAL_EXAMPLES.value, given)
    except (ValueError, tf.errors.InvalidArgumentError) as error:
        raise DataError(f"cannot evaluate on {source.spec.name}: {str(error).splitlines()[0]}") from None
    print(summary(report))
    print(f"  report -> {os.path.join(report_dir, 'report.html')} (numbers: report.json)")


def test_data(source, limit: int) -> dict | None:
    """The real data of `--test_data` (with `--test_split`) as the model's arrays, read as the model
    reads its data (a table with its encoder, images at its size); None when not given."""
    cli.refuse_unless(F.TEST_DATA.present, F.TEST_SPLIT, "applies with --test_data")
    if not F.TEST_DATA.present:
        return None
    name = F.TEST_DATA.value
    given, spec, split = read_test_data(name, F.TEST_SPLIT.value if F.TEST_SPLIT.present else None,
                                        source.record.get("image_size"), source.spec, limit)
    if source.spec.num_classes >= 2 and spec.num_classes > source.spec.num_classes:
        raise UsageError(f"--test_data={name} has {spec.num_classes} classes; the model knows "
                         f"{source.spec.num_classes}")
    return {**given, "about": f"{name} ({split}), given with --test_data"}


def read_test_data(name: str, split: str | None, image_size, like: DataSpec, limit: int):
    """`(arrays, spec, split)`: up to `limit` examples of the source `name`, read as data `like`
    is (a table with its encoder); `split` None reads `test` where the source has one, else
    `train` (a file is one split)."""
    data, spec = sources.load(name, split or "train", image_size, table=like.table)
    if split is None:
        split = "train"
        if "test" in spec.splits:
            split = "test"
            data, spec = sources.load(name, split, image_size, table=like.table)
    if tuple(spec.shape) != tuple(like.shape):
        raise UsageError(f"--test_data={name} holds examples of shape {spec.shape}; expected {like.shape}, as the "
                         "model makes")
    return first_examples(data, limit), spec, split


def summary(report: dict) -> str:
    lines = [f"{report['model']} on {report['dataset']}: {report['num_samples']} samples, "
             f"measured in {report['space']} (synthetic | real-vs-real floor)"]
    for name, pair in report["fidelity"].items():
        lines.append(f"  {name:<20} {pair['synthetic']:>10.4g} | {pair['real_floor']:.4g}")
    for section in ("modes", "conditional", "usefulness", "codes", "reconstruction", "memorisation"):
        if section in report:
            values = {k: v for k, v in report[section].items() if not isinstance(v, (list, dict))}
            if section == "modes":
                values = {k: v for k, v in report[section]["synthetic"].items() if not isinstance(v, list)}
            lines.append(f"  {section}: " + ", ".join(f"{k} {fmt(v)}" for k, v in values.items()))
    return "\n".join(lines)

