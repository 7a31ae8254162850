"""Write a dataset that blends real examples with synthetic ones, each tagged with its source.

    python -m trainers.blend --dataset=shapes --split=train[:500] --model_dir=runs/dcgan_shapes_conditional \\
        --ratio=0.5 --num_examples=5000 --output=blended.npz

`--method=mix` (the default) draws each example from the real data with probability
`1 - ratio` and from the generator with probability `ratio` (real examples are reshuffled and
repeated as needed); `--method=interpolate` pairs each real example with a synthetic one of the
same class (conditional models) and writes `x = (1 - ratio) * real + ratio * synthetic`.

The output is an npz with `x`, `y` (when the data is labelled) and `source`, the provenance of
each example (`real`, `synthetic`, or `interpolated`); it trains a model with
`--dataset=npz:blended.npz`. The realised share of each source is printed. Like `sample`, the
file is written under a hidden `.partial` name and renamed when complete.

For a model of a table (`--dataset=csv:real.csv` or `purchases`), the output is a `.csv` file:
the decoded rows in the table's own columns (see `trainers.sample`) plus a last column `source`.
The real table is read with the model's own encoder (its schema, categories and quantiles), so
real rows come back as they were, continuous values to within the quantile interpolation
(rounded to the column's decimals). Only `--method=mix` blends tables: interpolating one-hot
categories would make rows that are no table's.
"""

from __future__ import annotations

import os

from synthblend.trainers import cli, flags as F

import numpy as np
import tensorflow as tf

from synthblend.datasets import blend, sources
from synthblend.trainers import sample
from synthblend.trainers.progress import progress_bar
from synthblend.zoo.registry import UsageError

CHUNK = 1024


def blended_dataset(real: tf.data.Dataset, real_spec, source, method: str, ratio: float, seed: int,
                    class_balance: str) -> tf.data.Dataset:
    """The endless blended stream `{"x", ["y"], "source"}` (unbatched)."""
    keys = [key for key in ("x", "y") if key in real.element_spec]
    real = real.map(lambda example: {key: example[key] for key in keys})
    weights = None
    if source.conditional:
        weights = (sample.training_frequencies(source.record, real_spec.num_classes) if class_balance == "real"
                   else np.ones(real_spec.num_classes))
    synthetic = blend.synthetic(source, class_weights=weights, seed=seed, like=real.element_spec)
    real = real.shuffle(min(real_spec.num_examples or 10000, 10000), seed=seed).repeat()
    if method == "mix":
        if "y" in keys and not source.conditional:
            raise UsageError(f"mixing labelled real data needs a conditional model, whose samples have labels; "
                             f"{source.where} holds one trained without --conditional")
        return blend.mix({"real": real, "synthetic": synthetic}, {"real": 1.0 - ratio, "synthetic": ratio}, seed=seed)
    if source.conditional and "y" in keys:
        synthetic = matched_labels(real, source, seed)
    mixed = blend.interpolate(real, synthetic, ratio)
    tag = tf.constant("interpolated")
    return mixed.map(lambda example: {**example, "source": tag})


def matched_labels(real: tf.data.Dataset, source, seed: int) -> tf.data.Dataset:
    """A synthetic example of each real example's class, in the real stream's order."""

    def draw(index, batch):
        x = source.draw_graph(tf.shape(batch["y"])[0], tf.cast(seed, tf.int64) * (2**31) + index, batch["y"])
        return {"x": x, "y": batch["y"]}

    return real.batch(min(256, source.max_samples or 256)).enumerate().map(draw).unbatch()


def main(argv):
    cli.require(F.DATASET, F.OUTPUT, F.NUM_EXAMPLES)
    sample.check_source_flags("draw from")
    ratio, num, path = F.RATIO.value, F.NUM_EXAMPLES.value, F.OUTPUT.value
    if not 0.0 <= ratio <= 1.0:
        raise UsageError(f"--ratio={ratio} must lie in [0, 1] (the share of synthetic data)")
    if num <= 0:
        raise UsageError(f"--num_examples={num} must be at least 1")
    if not path.endswith((".npz", ".csv")):
        raise UsageError(f"--output={path} must be an .npz file (or a .csv file for tables)")
    sample.check_output(path, F.OVERWRITE.value)
    source = sample.open_source()
    table = source.spec.table
    if (table is not None) != path.endswith(".csv"):
        raise UsageError(f"--output={path}: blends of tables are .csv files, blends of other data .npz files")
    if table is not None and F.BLEND_METHOD.value != "mix":
        raise UsageError(f"--method={F.BLEND_METHOD.value} does not apply to tables; accepted: mix")
    real, real_spec = sources.load(F.DATASET.value, F.SPLIT.value, F.IMAGE_SIZE.value, table=table)
    cli.refuse_unless(F.BLEND_METHOD.value == "mix" or "y" not in real.element_spec, F.CLASS_BALANCE,
                      "changes nothing with --method=interpolate: each real example is paired with a synthetic "
                      "one of its own class")
    if tuple(real_spec.shape) != tuple(source.spec.shape):
        raise UsageError(f"--dataset={F.DATASET.value} holds examples of shape {real_spec.shape}, "
                         f"the model makes {source.spec.shape}; use the data it was trained on, or --image_size")
    stream = blended_dataset(real, real_spec, source, F.BLEND_METHOD.value, ratio, F.SEED.value,
                             F.CLASS_BALANCE.value)
    with sample.writing(path, F.OVERWRITE.value, False, "blending"):
        counts = write(stream.take(num).batch(CHUNK), path, num, real_spec, "y" in stream.element_spec)
    shares = ", ".join(f"{name} {count / num:.3f} ({count})" for name, count in sorted(counts.items()))
    print(f"wrote {num} examples ({shares}) -> {path}")


def write(batches: tf.data.Dataset, path: str, num: int, spec, labelled: bool) -> dict[str, int]:
    """Streams `batches` into the npz at `path`; returns the count of each source."""
    partial = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.partial")
    sample.remove(partial)
    if spec.table is not None:
        writer = sample.CsvWriter(partial, num, spec, labelled, extra=("source",))
    else:
        writer = sample.NpzWriter(partial, num, spec, labelled)
    counts, done = {}, 0
    try:
        with progress_bar(num, "examples") as bar:
            for batch in batches.as_numpy_iterator():
                tags = batch["source"].astype(str)
                writer.write(batch["x"], batch.get("y"), done, columns={"source": tags})
                for name, count in zip(*np.unique(tags, return_counts=True)):
                    counts[str(name)] = counts.get(str(name), 0) + int(count)
                done += len(tags)
                bar.update(len(tags))
        writer.close()
        sample.replace(partial, path)
    except BaseException:
        writer.discard()
        sample.remove(partial)
        raise
    return counts

