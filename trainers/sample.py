"""Write a synthetic dataset drawn from a trained model or from an export.

    synthblend-sample --model_dir=runs/dcgan_shapes --num_samples=60000 --output=synthetic.npz
    synthblend-sample --export_dir=exports/shapes --num_samples=1000 --output=synthetic_png/
    synthblend-sample --model_dir=runs/cdcgan --num_samples=1000 --class_balance=uniform --output=s.tfrecord

Formats:

- `npz`: `x` (uint8 for 0..255 images, float32 otherwise, in the data's range and shape) and,
  for conditional models, `y` (int32 labels). Loadable with `numpy.load` or `--dataset=npz:<path>`.
- `png` (images): a folder of PNG files, with a subfolder per class for conditional models.
- `tfrecord`: `tf.train.Example`s with `x` (PNG bytes for images, a float list for vectors) and,
  for conditional models, `y` (int64).
- `csv` (tables, and only format for them): the decoded table with a header row, the original
  columns in their order, integers as integers, continuous values with the decimals the real
  column showed, categories and booleans by their own names, cells decoded as missing left
  empty; conditional models' label column is put back in its place from the labels drawn.
  Unconditional models do not generate a label column (train with `--label_column=''` to
  model it as an ordinary column). npz and tfrecord are refused for tables: they would hold
  the encoding, not the table.

Samples are generated and written a chunk at a time, so memory does not grow with
`--num_samples`; the same `--seed` writes the same samples (from a model directory and from
its export alike). The output is written under a hidden `.partial` name and renamed when
complete, so an interrupted run leaves nothing that looks finished, and an existing output is
only replaced (with `--overwrite`) once the new one is whole.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import zipfile

from synthblend.trainers import cli, flags as F

import numpy as np
import tensorflow as tf

from synthblend.datasets import sources, tabular
from synthblend.datasets.sources import DataSpec
from synthblend.trainers import export, lifecycle, pictures, restore
from synthblend.trainers.progress import progress_bar
from synthblend.zoo.registry import DataError, UsageError

FORMATS = ("npz", "png", "tfrecord", "csv")


class ModelSource:
    """Samples (and the model's other endpoints) from the latest checkpoint of a model directory.

    Both sources take and return data in data space."""

    def __init__(self, model_dir: str, use_average: bool):
        self.model_dir = model_dir
        self.where = f"--model_dir={model_dir}"  # for messages
        self.trained = restore.load(model_dir, use_average=use_average)
        self.record = {**self.trained.record, "step": self.trained.step}
        self.spec = self.trained.spec
        self.conditional = self.trained.model.conditional
        self.max_samples = None

    def draw(self, count: int, seed: int, labels=None) -> np.ndarray:
        model = self.trained.model
        return self.trained.scale.decode(model.sample(count, seed=seed, labels=labels)).numpy()

    def draw_graph(self, count, seed, labels=None):
        """`draw` for use inside a graph (a tf.data pipeline): tensors in, a tensor out."""
        return self.trained.scale.decode(self.trained.model.sample(count, seed=seed, labels=labels))

    def can(self, endpoint: str) -> bool:
        return hasattr(self.trained.model, endpoint)

    def infer_codes(self, data):
        probabilities, continuous = batched(
            lambda x: self.trained.model.infer_codes(self.trained.scale.encode(x)), data)
        return probabilities, continuous

    def reconstruct(self, data):
        scale = self.trained.scale
        return batched(lambda x: (scale.decode(self.trained.model.reconstruct(scale.encode(x))),), data)[0]

    def heldout_metrics(self) -> dict:
        """The held-out metrics the training run wrote, if any."""
        path = os.path.join(self.model_dir, "heldout.json")
        if not os.path.exists(path):
            return {}
        with open(path) as file:
            return {f"heldout_{key}": value for key, value in json.load(file).items()}


class ExportSource:
    """Samples (and the export's other signatures) through an export's signatures."""

    def __init__(self, export_dir: str):
        path, metadata = export.read_export(export_dir)
        self.where = f"--export_dir={export_dir}"  # for messages
        self.record = metadata
        self.spec = spec_from_json(metadata["data_spec"])
        self.conditional = bool(metadata["config"].get("conditional"))
        self.max_samples = int(metadata["max_samples"])
        try:
            self.loaded = tf.saved_model.load(path)  # the signatures need it alive
        except (OSError, ValueError, tf.errors.OpError) as error:
            raise DataError(f"--export_dir={export_dir}: version {path} cannot be loaded as a SavedModel "
                            f"({type(error).__name__}: {str(error).splitlines()[0]}); export it again") from None
        self.signatures = self.loaded.signatures

    def draw(self, count: int, seed: int, labels=None) -> np.ndarray:
        seed = tf.constant(seed, tf.int64)
        if labels is None:
            outputs = self.signatures["sample"](num_samples=tf.constant(count, tf.int32), seed=seed)
        else:
            outputs = self.signatures["sample_labels"](labels=tf.constant(labels, tf.int32), seed=seed)
        return outputs["samples"].numpy()

    def draw_graph(self, count, seed, labels=None):
        seed = tf.cast(seed, tf.int64)
        if labels is None:
            return self.signatures["sample"](num_samples=tf.cast(count, tf.int32), seed=seed)["samples"]
        return self.signatures["sample_labels"](labels=tf.cast(labels, tf.int32), seed=seed)["samples"]

    def can(self, endpoint: str) -> bool:
        return endpoint in self.signatures

    def infer_codes(self, data):
        def call(x):
            outputs = self.signatures["infer_codes"](x=tf.constant(x, tf.float32))
            return outputs["probabilities"], outputs["continuous"]
        return batched(call, data)

    def reconstruct(self, data):
        return batched(lambda x: (self.signatures["reconstruct"](x=tf.constant(x, tf.float32))["reconstruction"],),
                       data)[0]

    def heldout_metrics(self) -> dict:
        return {}


def batched(function, data, size: int = 512) -> tuple[np.ndarray, ...]:
    """`function` (returning a tuple of tensors) applied to `data` a batch at a time."""
    parts = [tuple(np.asarray(t) for t in function(data[start:start + size])) for start in range(0, len(data), size)]
    return tuple(np.concatenate(column) for column in zip(*parts))


def check_source_flags(purpose: str) -> None:
    """UsageError unless exactly one of --model_dir and --export_dir is given."""
    if bool(F.MODEL_DIR.value) == bool(F.EXPORT_DIR.value):
        raise UsageError(f"give one of --model_dir (a trained run) or --export_dir (an export) to {purpose}")


def open_source():
    """The source the flags name: a model directory's latest checkpoint or an export; UsageError
    for a flag of the running command that this source leaves nothing to do."""
    cli.refuse_unless(bool(F.MODEL_DIR.value), F.USE_EMA, "applies to --model_dir; an export holds the weights "
                      "it was exported with")
    if F.MODEL_DIR.value:
        source = ModelSource(F.MODEL_DIR.value, F.USE_EMA.value)
        restore.check_use_ema(source.trained, F.MODEL_DIR.value)
    else:
        source = ExportSource(F.EXPORT_DIR.value)
    if F.CHUNK_SIZE.defined and source.max_samples is not None:
        cli.refuse_unless(F.CHUNK_SIZE.value <= source.max_samples, F.CHUNK_SIZE, f"is more than the "
                          f"{source.max_samples} samples one request to {source.where} may ask for (its max_samples)")
    if F.CLASS_BALANCE.defined:
        cli.refuse_unless(source.conditional, F.CLASS_BALANCE, f"needs a conditional model; {source.where} holds "
                          "one trained without --conditional")
    if F.CACHE_DIR.defined:
        what = "table rows" if source.spec.table is not None else "unlabelled data"
        cli.refuse_unless(source.spec.table is None and source.spec.num_classes >= 2, F.CACHE_DIR,
                          f"changes nothing: it caches the domain classifier of labelled images and vectors; "
                          f"{source.where} makes {what}")
    return source


def spec_from_json(fields: dict) -> DataSpec:
    fields = dict(fields)
    for key, value in fields.items():
        if isinstance(value, list):
            fields[key] = tuple(value)
    return DataSpec(**fields)


def chunk_seed(seed: int, index: int) -> int:
    """A seed per chunk, independent across chunks and across user seeds."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def class_labels(num: int, num_classes: int, classes: list[int], balance: str, frequencies, seed: int) -> np.ndarray:
    """Labels for `num` conditional samples, in a seeded random order.

    `uniform`: equal counts of each of `classes`; `real`: counts in proportion to the training
    data's `frequencies` (renormalised over `classes`). Counts are rounded by largest remainder,
    so they add up to `num` exactly.
    """
    weights = np.ones(len(classes)) if balance == "uniform" else np.asarray(frequencies, float)[classes]
    if weights.sum() <= 0:
        raise DataError(f"the training data holds none of the classes {classes}")
    exact = num * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    counts[np.argsort(-(exact - counts), kind="stable")[: num - counts.sum()]] += 1
    labels = np.repeat(np.asarray(classes, np.int32), counts)
    return np.random.default_rng(seed).permutation(labels)


def training_frequencies(record: dict, num_classes: int) -> np.ndarray:
    """Share of each class in the split the model was trained on (counted when it trained, or
    read again for a run that did not record it); equal shares for a differentially private run,
    whose guarantee does not cover the real shares."""
    if record.get("privacy"):
        return np.full(num_classes, 1.0 / num_classes)
    if record.get("class_counts"):
        counts = np.asarray(record["class_counts"], float)
        return counts / counts.sum()
    dataset, _ = sources.load(record["dataset"], record.get("split") or "train", record.get("image_size"),
                              table=record["data_spec"].get("table"))
    counts = np.zeros(num_classes)
    for labels in dataset.map(lambda example: example["y"]).batch(4096).as_numpy_iterator():
        counts += np.bincount(labels.astype(np.int64), minlength=num_classes)[:num_classes]
    return counts / counts.sum()


def parse_classes(values, spec: DataSpec) -> list[int]:
    """Class indices from `--classes` values given as indices or class names."""
    if not values:
        return list(range(spec.num_classes))
    accepted = f"0..{spec.num_classes - 1}" + (f" or {', '.join(spec.class_names)}" if spec.class_names else "")
    classes = []
    for value in values:
        if value in spec.class_names:
            classes.append(spec.class_names.index(value))
        elif value.isascii() and value.isdigit() and len(value) < 10 and int(value) < spec.num_classes:
            classes.append(int(value))
        else:
            raise UsageError(f"--classes: {value!r} is not a class of this model; accepted: {accepted}")
    classes = sorted(set(classes))
    if F.CLASS_BALANCE.defined:
        cli.refuse_unless(len(classes) > 1, F.CLASS_BALANCE, f"changes nothing: --classes={','.join(values)} "
                          "names one class")
    return classes


# -- writers ----------------------------------------------------------------------------------

def to_storage(samples: np.ndarray, spec: DataSpec) -> np.ndarray:
    """uint8 for images in 0..255, float32 otherwise."""
    if spec.value_range is not None and tuple(spec.value_range) == (0.0, 255.0):
        return pictures.to_uint8(samples, (0.0, 255.0))
    return samples.astype(np.float32)


class NpzWriter:
    """Streams `x` into an uncompressed npz member chunk by chunk; `y` and any other (small)
    columns are kept and written at the end."""

    def __init__(self, path: str, num: int, spec: DataSpec, conditional: bool):
        self.spec = spec
        self.dtype = to_storage(np.zeros((1, *spec.shape), np.float32), spec).dtype
        self.archive = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.member = self.archive.open(self.entry("x.npy"), "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (num, *spec.shape)}
        np.lib.format.write_array_header_2_0(self.member, header)
        self.labels = [] if conditional else None
        self.columns = {}

    @staticmethod
    def entry(name):
        # A fixed time stamp keeps the file the same for the same seed.
        return zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))

    def write(self, samples, labels, start, columns=None):
        self.member.write(np.ascontiguousarray(to_storage(samples, self.spec)).tobytes())
        if self.labels is not None:
            self.labels.append(labels.astype(np.int32))
        for name, values in (columns or {}).items():
            self.columns.setdefault(name, []).append(values)

    def close(self):
        self.member.close()
        columns = {name: np.concatenate(parts) for name, parts in self.columns.items()}
        if self.labels is not None:
            columns["y"] = np.concatenate(self.labels)
        for name, values in sorted(columns.items()):
            with self.archive.open(self.entry(f"{name}.npy"), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, values)
        self.archive.close()

    def discard(self):
        self.member.close()
        self.archive.close()


class PngWriter:
    def __init__(self, path: str, num: int, spec: DataSpec, conditional: bool):
        self.path, self.spec, self.digits = path, spec, len(str(max(num - 1, 1)))
        os.makedirs(path)
        self.folders = None
        if conditional:
            names = spec.class_names or tuple(str(index) for index in range(spec.num_classes))
            self.folders = [os.path.join(path, safe_name(name)) for name in names]
            for folder in self.folders:
                os.makedirs(folder, exist_ok=True)

    def write(self, samples, labels, start):
        for offset, pixels in enumerate(pictures.to_uint8(samples, self.spec.value_range)):
            folder = self.path if self.folders is None else self.folders[labels[offset]]
            encoded = tf.io.encode_png(pixels).numpy()
            with open(os.path.join(folder, f"{start + offset:0{self.digits}d}.png"), "wb") as file:
                file.write(encoded)

    def close(self):
        pass

    def discard(self):
        pass


class TFRecordWriter:
    def __init__(self, path: str, num: int, spec: DataSpec, conditional: bool):
        self.spec, self.conditional = spec, conditional
        self.writer = tf.io.TFRecordWriter(path)

    def write(self, samples, labels, start):
        images = pictures.to_uint8(samples, self.spec.value_range) if self.spec.is_image else None
        for offset, sample in enumerate(samples):
            if images is not None:
                x = tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(images[offset]).numpy()]))
            else:
                x = tf.train.Feature(float_list=tf.train.FloatList(value=sample.reshape(-1).tolist()))
            features = {"x": x}
            if self.conditional:
                features["y"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(labels[offset])]))
            self.writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())

    def close(self):
        self.writer.close()

    discard = close


class CsvWriter:
    """Decodes table encodings and writes them as CSV rows (see the module docstring)."""

    def __init__(self, path: str, num: int, spec: DataSpec, conditional: bool, extra: tuple[str, ...] = ()):
        self.encoder, self.conditional, self.extra = spec.table, conditional, extra
        self.file = open(path, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)
        self.header = None

    def write(self, samples, labels, start, columns=None):
        table = tabular.decode(samples, self.encoder, labels if self.conditional else None, with_missing=True)
        header, rows = tabular.rows_of(table, self.encoder)
        if self.header is None:
            self.header = header
            self.writer.writerow(header + list(self.extra))
        extra = [np.asarray(columns[name]).astype(str) for name in self.extra]
        self.writer.writerows(row + [values[index] for values in extra] for index, row in enumerate(rows))

    def close(self):
        self.file.close()

    discard = close


WRITERS = {"npz": NpzWriter, "png": PngWriter, "tfrecord": TFRecordWriter, "csv": CsvWriter}


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


# -- the command ------------------------------------------------------------------------------

def output_format(path: str, given: str | None, spec: DataSpec | None = None) -> str:
    if given:
        return given
    extension = os.path.splitext(path.rstrip("/"))[1].lstrip(".").lower()
    if spec is not None and spec.table is not None:
        return "csv" if extension in ("csv", "") else extension
    if extension in ("npz", "tfrecord", "csv"):
        return extension
    if extension == "" or path.endswith("/"):
        return "png"
    raise UsageError(f"cannot tell the format of --output={path}; use a .npz, .tfrecord or .csv (tables) file, "
                     "a folder, or --format")


def check_table_format(form: str, spec: DataSpec, path: str) -> None:
    """UsageError when the format does not fit the data: csv is for tables, and tables are csv."""
    if spec.table is not None and form != "csv":
        raise UsageError(f"--output={path} as {form}: this model makes table rows; they are written as csv only "
                         "(npz and tfrecord would hold the encoding, not the table)")
    if spec.table is None and form == "csv":
        raise UsageError(f"--output={path} as csv needs a model trained on a table; this one makes data of "
                         f"shape {spec.shape}; use npz, tfrecord or png")


def check_output(path: str, overwrite: bool, folder: bool = False) -> None:
    """UsageError unless `path` can take the output: a file, or with `folder` a folder of PNGs.

    `--overwrite` replaces only an output of the same kind, never a folder that holds anything
    but PNG samples (a mistyped `--output=runs` must not delete the runs)."""
    if os.path.exists(path) and not overwrite:
        raise UsageError(f"--output={path} exists; pass --overwrite to replace it")
    if os.path.exists(path):
        check_replaceable(path, folder)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"--output={path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--output={path} is not writable ({parent} does not allow writing)")


def check_replaceable(path: str, folder: bool) -> None:
    """UsageError unless `path` is an output of the kind about to replace it."""
    if os.path.isdir(path) != folder:
        kind, wanted = ("a folder", "a file") if os.path.isdir(path) else ("a file", "a folder of PNGs")
        raise UsageError(f"--output={path} is {kind}; --overwrite replaces only {wanted}, the kind written now")
    if folder:
        for parent, _, names in os.walk(path):
            other = [name for name in names if not name.lower().endswith(".png")]
            if other:
                raise UsageError(f"--output={path} holds files other than PNG samples "
                                 f"({os.path.join(parent, other[0])}); --overwrite replaces only a folder of samples")


@contextlib.contextmanager
def writing(path: str, overwrite: bool, folder: bool, what: str):
    """Holds the lock of the output `path` (checked by `check_output` already) while the block
    writes it, Busy when another running command writes it; checks it again under the lock, as
    another command may have written it meanwhile."""
    with lifecycle.hold(path, f"--output={path}", what, folder=False):
        check_output(path, overwrite, folder)
        yield


def replace(partial: str, path: str) -> None:
    """Moves the finished `partial` to `path`, removing what was there only afterwards; a stop
    (SIGTERM, Ctrl-C) waits until both renames are done."""
    old = None
    with lifecycle.uninterrupted():
        if os.path.exists(path):
            old = partial + ".old"
            os.rename(path, old)
        os.rename(partial, path)
    if old is not None:
        remove(old)


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def draw(source, num: int, seed: int, labels=None, progress: bool = True) -> np.ndarray:
    """`num` samples of `source` in memory, drawn a chunk at a time with the seeds `write_samples`
    uses, so both give the same samples for the same seed."""
    chunk = min(1024, source.max_samples or 1024)
    parts = []
    with progress_bar(num, "samples", enabled=progress and num > chunk) as bar:
        for index, start in enumerate(range(0, num, chunk)):
            part = None if labels is None else labels[start:start + chunk]
            parts.append(source.draw(min(chunk, num - start), chunk_seed(seed, index), part))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


def write_samples(source, path: str, form: str, num: int, seed: int, chunk_size: int, labels) -> None:
    """Draws `num` samples chunk by chunk into `path` (written as a hidden partial, then renamed)."""
    partial = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path.rstrip('/'))}.partial")
    remove(partial)
    writer = WRITERS[form](partial, num, source.spec, source.conditional)
    try:
        with progress_bar(num, "samples") as bar:
            for index, start in enumerate(range(0, num, chunk_size)):
                count = min(chunk_size, num - start)
                chunk_labels = None if labels is None else labels[start:start + count]
                samples = source.draw(count, chunk_seed(seed, index), chunk_labels)
                writer.write(samples, chunk_labels, start)
                bar.update(count)
        writer.close()
        replace(partial, path.rstrip("/"))
    except BaseException:
        writer.discard()
        remove(partial)
        raise


def main(argv):
    cli.require(F.NUM_SAMPLES, F.OUTPUT)
    check_source_flags("sample from")
    num, seed, path = F.NUM_SAMPLES.value, F.SEED.value, F.OUTPUT.value
    if num <= 0:
        raise UsageError(f"--num_samples={num} must be at least 1")
    if seed < 0:
        raise UsageError(f"--seed={seed} must be a non-negative integer")
    source = open_source()
    form = output_format(path, F.FORMAT.value, source.spec)
    check_table_format(form, source.spec, path)
    check_output(path, F.OVERWRITE.value, folder=form == "png")
    if form == "png" and not source.spec.is_image:
        raise UsageError(f"--format=png needs image data; this model makes vectors of shape {source.spec.shape}; "
                         "use npz or tfrecord")
    chunk_size = min(F.CHUNK_SIZE.value, source.max_samples or F.CHUNK_SIZE.value)
    labels = None
    if source.conditional:
        classes = parse_classes(F.CLASSES.value, source.spec)
        frequencies = training_frequencies(source.record, source.spec.num_classes) if (
            F.CLASS_BALANCE.value == "real") else None
        labels = class_labels(num, source.spec.num_classes, classes, F.CLASS_BALANCE.value, frequencies, seed)
    elif F.CLASSES.value:
        raise UsageError(f"--classes={','.join(F.CLASSES.value)} needs a conditional model; "
                         f"{source.where} holds one trained without --conditional")
    with writing(path, F.OVERWRITE.value, form == "png", "sampling"):
        write_samples(source, path, form, num, seed, chunk_size, labels)
    counts = "" if labels is None else " (" + ", ".join(
        f"{(source.spec.class_names or range(source.spec.num_classes))[c]}: {n}"
        for c, n in enumerate(np.bincount(labels, minlength=source.spec.num_classes)) if n) + ")"
    print(f"wrote {num} samples{counts} -> {path}")

