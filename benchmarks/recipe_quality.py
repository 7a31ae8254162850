"""How recognisable the samples of a shapes model are: the default recipe's measure.

    .venv/bin/python benchmarks/recipe_quality.py MODEL_DIR [--num=2000] [--seed=0] [--cache_dir=DIR]

Draws `--num` samples (seed `--seed`; a conditional model's labels in the training data's class
shares) from the model of MODEL_DIR, with its moving-average weights where it kept them, and
prints one line: the share that the shapes domain classifier assigns to some class with
probability >= 0.9, beside the same share for as many real test images; for a conditional model
also the share assigned, that confidently, to the class asked for; and the class histogram of
the confident samples (all four shapes drawn, or one). The classifier is the one the evaluate
command trains on the real training split, cached under `--cache_dir`, so that repeated
measurements take seconds. The share alone is lenient (round blobs pass as circles): read it
with the histogram.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import tensorflow as tf

import synthblend as sb
from synthblend.trainers import evaluate

THRESHOLD = 0.9


def confident(classifier, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each example's most likely class has probability >= THRESHOLD, and that class."""
    logits = classifier.predict(np.asarray(data, np.float32), batch_size=512, verbose=0)
    probabilities = tf.nn.softmax(logits).numpy()
    return probabilities.max(axis=-1) >= THRESHOLD, probabilities.argmax(axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "synthblend"),
                        help="the evaluate command's cache of domain classifiers (its --cache_dir)")
    args = parser.parse_args()

    synth = sb.Synthesizer.load(args.model_dir)
    if synth.spec.name != "shapes":
        sys.exit(f"{args.model_dir} was trained on {synth.spec.name!r}, not shapes")
    train = evaluate.arrays("shapes", "train", None, 1_000_000)
    test = evaluate.arrays("shapes", "test", None, 1_000_000)
    classifier, _ = evaluate.domain_classifier(synth.spec, train, test, args.cache_dir)

    drawn = synth.sample(args.num, seed=args.seed, progress=False)
    samples, asked = drawn if synth.conditional else (drawn, None)
    sure, predicted = confident(classifier, samples)
    real_sure, _ = confident(classifier, test["x"][: args.num])
    counts = np.bincount(predicted[sure], minlength=synth.spec.num_classes)
    histogram = ", ".join(f"{name} {count}" for name, count in zip(synth.spec.class_names, counts))
    as_asked = "" if asked is None else f", confidently the class asked for {np.mean(sure & (predicted == asked)):.4f}"
    print(f"{args.model_dir}: step {synth.step}: samples confident (p >= {THRESHOLD}) {sure.mean():.4f}{as_asked}, "
          f"real test images {real_sure.mean():.4f} (n={args.num}, seed {args.seed}); "
          f"confident samples by class: {histogram}")


if __name__ == "__main__":
    main()
