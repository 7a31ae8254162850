"""Does blending synthetic data into scarce real data help a classifier? The utility curve.

    python -m trainers.utility --model_dir=runs/dcgan_shapes_conditional --dataset=shapes --split=train[:500]

For each `--ratios` value r, the same small classifier (`trainers.measures.classifier.classifier`) is
trained for `--classifier_steps` steps on a stream that mixes the scarce real examples (share
1 - r) with examples from a conditional generator (share r), and tested on the real `test`
split; r = 0 is the real data alone. Each ratio is trained `--repeats` times with different
seeds, and the mean and spread are reported. Writes `utility.json` and `utility_curve.png` to
`--report_dir` (default `<model_dir or export_dir>/utility`), and for 2-D data
`blend_scatter.png`: real, synthetic and blended points in one plot.
"""

from __future__ import annotations

import json
import os
import sys

from synthblend.trainers import cli, flags as F

import keras
import numpy as np
import tensorflow as tf

from synthblend.datasets import blend, sources
from synthblend.trainers import evaluate as evaluation, lifecycle, measures, pictures, sample
from synthblend.trainers.progress import progress_bar
from synthblend.trainers.blend import blended_dataset
from synthblend.zoo.registry import UsageError


def train_and_test(stream: tf.data.Dataset, spec, test: dict, steps: int, batch_size: int, seed: int) -> float:
    """Accuracy on `test` of the classifier trained `steps` steps on `stream`."""
    keras.utils.set_random_seed(seed)
    model = measures.classifier.classifier(spec)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batches = stream.map(lambda e: (tf.cast(e["x"], tf.float32), e["y"])).batch(batch_size).prefetch(2)
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return float(np.mean(measures.classifier.predict_classes(model, test["x"]) == test["y"]))


def utility_curve(source, real, spec, test, ratios, steps, batch_size, repeats, seed) -> list[dict]:
    rows = []
    with progress_bar(len(ratios) * repeats, "classifiers") as bar:
        for ratio in ratios:
            accuracies = []
            for repeat in range(repeats):
                stream = blended_dataset(real, spec, source, "mix", ratio, seed + repeat, "uniform")
                accuracies.append(train_and_test(stream, spec, test, steps, batch_size, seed + repeat))
                bar.update(1)
            rows.append({"ratio": ratio, "accuracy_mean": float(np.mean(accuracies)),
                         "accuracy_std": float(np.std(accuracies)), "accuracies": accuracies})
            bar.write(f"  ratio {ratio:.2f}: accuracy on real test {np.mean(accuracies):.4f} "
                      f"+- {np.std(accuracies):.4f}", file=sys.stdout)
    return rows


def plot_curve(rows, path, title):
    figure, axes = pictures.subplots(figsize=(5, 3.5), dpi=100)
    ratios = [row["ratio"] for row in rows]
    axes.errorbar(ratios, [row["accuracy_mean"] for row in rows], yerr=[row["accuracy_std"] for row in rows],
                  marker="o", capsize=4)
    axes.set_xlabel("share of synthetic examples in training")
    axes.set_ylabel("accuracy on real test data")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def plot_scatter(real, source, spec, path, ratio, seed):
    """Real, synthetic and blended 2-D points in one scatter plot."""
    real_points = np.stack([e["x"] for e in real.take(2000).as_numpy_iterator()])
    synthetic = blend.synthetic(source, seed=seed, like=real.element_spec)
    synthetic_points = next(iter(synthetic.batch(2000)))["x"].numpy()
    mixed = next(iter(blended_dataset(real, spec, source, "mix", ratio, seed, "uniform").batch(2000)))
    figure, axes = pictures.subplots(1, 3, figsize=(12, 4), dpi=100, sharex=True, sharey=True)
    axes[0].scatter(*real_points.T, s=4, c="tab:blue")
    axes[0].set_title(f"real ({len(real_points)} points)")
    axes[1].scatter(*synthetic_points.T, s=4, c="tab:orange")
    axes[1].set_title("synthetic")
    colours = np.where(mixed["source"].numpy() == b"real", "tab:blue", "tab:orange")
    axes[2].scatter(*mixed["x"].numpy().T, s=4, c=colours)
    axes[2].set_title(f"blended, ratio {ratio:g} (colour = source)")
    for ax in axes:
        ax.set_aspect("equal")
    figure.tight_layout()
    figure.savefig(path)


# The most real test examples the classifiers are tested on.
TEST_LIMIT = 100000


def real_and_test(source, real, spec, table):
    """The real examples to blend with, their spec, the real test data (arrays) and what it is:
    `--test_data` (with `--test_split`); else the examples the run held out, when `--dataset` and
    `--split` are what it trained on (the blend then draws from the rest); else the test split."""
    record = source.record
    cli.refuse_unless(F.TEST_DATA.present, F.TEST_SPLIT, "applies with --test_data")
    if F.TEST_DATA.present:
        name = F.TEST_DATA.value
        test, _, split = evaluation.read_test_data(name, F.TEST_SPLIT.value if F.TEST_SPLIT.present else None,
                                                   F.IMAGE_SIZE.value, spec, TEST_LIMIT)
        return real, spec, test, f"{name} ({split}), given with --test_data"
    if (record.get("holdout") and F.DATASET.value == record.get("dataset")
            and F.SPLIT.value == (record.get("split") or "train")):
        kept, kept_spec, held, _ = sources.hold_out(real, spec, record["holdout"]["share"], record["holdout"]["seed"])
        about = f"the {record['holdout']['examples']} examples the run held out (never trained on)"
        return kept, kept_spec, evaluation.first_examples(held, TEST_LIMIT), about
    if "test" not in spec.splits:
        raise UsageError(f"--dataset={F.DATASET.value} has no test split to measure accuracy on; give real test data "
                         "with --test_data (or train the model with --holdout and pass its --dataset and --split)")
    data, _ = sources.load(F.DATASET.value, "test", F.IMAGE_SIZE.value, table=table)
    return real, spec, evaluation.first_examples(data, TEST_LIMIT), "the test split"


def main(argv):
    cli.require(F.DATASET)
    sample.check_source_flags("draw from")
    try:
        ratios = [float(value) for value in F.RATIOS.value]
    except ValueError:
        raise UsageError(f"--ratios={','.join(F.RATIOS.value)} must be numbers in [0, 1)") from None
    bad = [ratio for ratio in ratios if not 0.0 <= ratio < 1.0]
    if bad or not ratios:
        raise UsageError(f"--ratios: {bad[0] if bad else 'none given'}; give shares of synthetic data in [0, 1)")
    source = sample.open_source()
    table = source.spec.table  # a table is read with the encoder the model was trained with
    real, spec = sources.load(F.DATASET.value, F.SPLIT.value, F.IMAGE_SIZE.value, table=table)
    if spec.num_classes < 2:
        raise UsageError(f"--dataset={F.DATASET.value} has no labels; the utility curve trains a classifier")
    real, spec, test, tested_on = real_and_test(source, real, spec, table)
    if not source.conditional:
        raise UsageError(f"the utility curve needs a conditional model, whose samples carry labels; "
                         f"{source.where} holds one trained without --conditional")
    if tuple(spec.shape) != tuple(source.spec.shape):
        raise UsageError(f"--dataset={F.DATASET.value} holds examples of shape {spec.shape}, "
                         f"the model makes {source.spec.shape}")
    report_dir = F.REPORT_DIR.value or os.path.join(F.MODEL_DIR.value or F.EXPORT_DIR.value, "utility")
    cli.check_writable_dir(report_dir, "--report_dir")
    print(f"utility of {source.record.get('model')} samples for a classifier on {spec.num_examples} real "
          f"examples of {F.DATASET.value} ({F.SPLIT.value}), {F.CLASSIFIER_STEPS.value} steps per training:")
    rows = utility_curve(source, real, spec, test, ratios, F.CLASSIFIER_STEPS.value, F.BATCH_SIZE.value,
                         F.REPEATS.value, F.SEED.value)
    result = {"dataset": F.DATASET.value, "split": F.SPLIT.value, "real_examples": spec.num_examples,
              "model": source.record.get("model"), "step": source.record.get("step"),
              "classifier_steps": F.CLASSIFIER_STEPS.value, "batch_size": F.BATCH_SIZE.value,
              "test_examples": len(test["y"]), "tested_on": tested_on, "curve": rows}
    with lifecycle.staged(report_dir, last=("utility.json",)) as staging:
        plot_curve(rows, os.path.join(staging, "utility_curve.png"),
                   f"{spec.num_examples} real examples of {F.DATASET.value} + synthetic")
        if spec.shape == (2,):
            plot_scatter(real, source, spec, os.path.join(staging, "blend_scatter.png"), 0.5, F.SEED.value)
        with open(os.path.join(staging, "utility.json"), "w") as file:
            json.dump(result, file, indent=2)
    print(f"  -> {os.path.join(report_dir, 'utility.json')}, utility_curve.png")

