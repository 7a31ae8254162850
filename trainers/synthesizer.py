"""The Python API: `Synthesizer` (fit, sample, evaluate, export, load, plot) and `blend`.

    import synthblend as sb
    synth = sb.Synthesizer("dcgan", conditional=True, discriminator_depth=3)
    synth.fit(x_train, y_train, steps=6000, model_dir="runs/digits")
    images, labels = synth.sample(1000, labels=[3] * 1000, seed=0)
    report = synth.evaluate(x_test, y_test)
    synth.export("exports/digits")
    synth = sb.Synthesizer.load("runs/digits")
    train_ds = sb.blend(real_ds, synth, ratio=0.5)

A `Synthesizer` trains through the same function as `synthblend-train` and writes the same model
directory (config.json, checkpoints, TensorBoard events, pictures), so each command works on a
directory written here, and `Synthesizer.load` on one a command wrote. Data given as arrays, a
`tf.data.Dataset` or a DataFrame is written once into the model directory (`data/`), so that
the run can be resumed, sampled in the training data's class shares and evaluated by the
commands too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from synthblend import zoo
from synthblend.datasets import frames, sources, tabular
from synthblend.trainers import blend as blend_command
from synthblend.trainers import evaluate as evaluation
from synthblend.trainers import export as exporting
from synthblend.trainers import pictures, restore, sample as sampling, train as training
from synthblend.zoo.registry import DataError, UsageError

DATA_FOLDER = "data"
ARRAYS_FILE = "train.npz"
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "synthblend")
SETTINGS = training.SETTINGS


class Synthesizer:
    """A generative model of one kind, its settings, and (once fitted or loaded) its run.

    Args:
      model: a registered model name: `gan`, `dcgan`, `vae` or `infogan` (`synthblend.zoo.names()`).
      **options: the model's settings by name, as the train command's flags of the same name
        (`conditional=True`, `discriminator_depth=3`, `latent_dim=64`, `loss="hinge"`, ...).
        A setting of another model, or of none, is refused with the names that are accepted.

    Example:
      >>> synth = Synthesizer("gan", width=8, depth=1, latent_dim=4)
      >>> synth.fit("ring", steps=10, model_dir=tmp, log_every=5)  # doctest: +SKIP
      >>> synth.sample(3).shape  # doctest: +SKIP
      (3, 2)
    """

    def __init__(self, model: str = "dcgan", **options):
        zoo.get(model)
        training.check_options(model, options)
        self.model_name = model
        self.options = options
        self.model_dir: str | None = None
        self._source: sampling.ModelSource | None = None
        self._use_ema = True

    def __repr__(self) -> str:
        options = "".join(f", {name}={value!r}" for name, value in self.options.items())
        where = f", model_dir={self.model_dir!r}" if self.model_dir else ""
        return f"Synthesizer({self.model_name!r}{options}){where}"

    # -- training ---------------------------------------------------------------------------

    def fit(self, data, labels=None, *, steps: int | None = None, model_dir: str | None = None,
            label: str | None = None, schema: str | dict | None = None, missing: str | None = None,
            split: str = "train", image_size: int | None = None, augment: str | None = None,
            eval_split: str | None = None, holdout: float | None = None, progress: bool = True,
            **settings) -> "Synthesizer":
        """Trains on `data` into `model_dir`, continuing from its latest checkpoint.

        Args:
          data: images `(N, H, W[, C])` or vectors `(N, D)` as a NumPy array (with `labels`),
            a `tf.data.Dataset` of `x`, `(x, y)` or `{"x", "y"}` (read into memory once), a
            pandas DataFrame (a table; `label` names its label column), or a source name such as
            `"shapes"`, `"tfds:mnist"`, `"npz:/path/file.npz"`, `"csv:/path/table.csv"`.
          labels: integer class indices 0..K-1, one per example of an array `data`.
          steps: train until this step (the train command's `--train_steps`).
          model_dir: where the run is written; a new temporary folder when None.
          label, schema, missing: tables: the label column, a schema (a JSON file, or for a
            DataFrame also the dict it would hold: it declares columns beyond their dtypes, such
            as the domains a private run needs), the missing-value policy (as `--label_column`,
            `--schema`, `--missing`).
          split, image_size, augment, eval_split: as the train command's flags.
          holdout: the share of the examples set aside, never trained on, for `evaluate` (as
            `--holdout`; by default a tenth of data without a test split, such as arrays and
            DataFrames; 0 trains on all of it).
          progress: draw a progress bar (a widget in a notebook) beside the log lines.
          **settings: the loop's settings by name: `batch_size`, `ema_decay`, `seed`,
            `checkpoint_every`, `log_every`, `sample_every`, `precision`, `strategy`, ... (the
            fields of `synthblend.trainers.train.Settings`); `target_epsilon` or
            `noise_multiplier` (with `l2_norm_clip`, `delta`, `accountant`) trains with DP-SGD
            (docs/privacy.md).

        Returns:
          self, fitted: `sample`, `evaluate`, `export` and `plot` use its latest checkpoint.

        Raises:
          synthblend.Stopped: a SIGTERM or an interrupt (Ctrl-C, a notebook's stop button) ended
            the training early, after saving the step reached; `fit` again to continue.
          lifecycle.Busy: another training writes `model_dir` at the same time.
        """
        unknown = sorted(set(settings) - set(SETTINGS) - {"train_steps"})
        if unknown:
            raise UsageError(f"fit() got the unknown setting {unknown[0]!r}; accepted: steps, "
                             f"{', '.join(sorted(name for name in SETTINGS if name != 'train_steps'))}")
        if steps is not None:
            settings["train_steps"] = steps
        model_dir = os.fspath(model_dir) if model_dir is not None else tempfile.mkdtemp(prefix="synthblend-")
        dataset, table, extra = self._dataset(data, labels, model_dir, label, schema, missing)
        training.train(self.model_name, dataset, model_dir, model_options=self.options,
                       settings=training.Settings(**settings), split=split, image_size=image_size, table=table,
                       augment_spec=augment, eval_split=eval_split, holdout=holdout, extra_record=extra,
                       progress=progress)
        self.model_dir, self._source = model_dir, None
        return self

    def _dataset(self, data, labels, model_dir, label, schema, missing):
        """The source name of `data` (written into `model_dir` when it is in memory), its table
        options and what config.json records about it."""
        if isinstance(schema, dict) and not frames.is_frame(data):
            raise UsageError("schema= is a dict only with a DataFrame; for a CSV source pass the schema file's path")
        options = tabular.Options(schema=None if schema is None or isinstance(schema, dict) else os.fspath(schema),
                                  label=label, missing=missing)
        if isinstance(data, (str, os.PathLike)):
            if labels is not None:
                raise UsageError("labels are given with data only as arrays; a source name brings its own")
            return os.fspath(data), options, {}
        folder = os.path.join(model_dir, DATA_FOLDER)
        if frames.is_frame(data):
            if labels is not None:
                raise UsageError("a DataFrame brings its labels as a column; name it with label=")
            declared = schema_of(schema)
            if label is None and declared:  # a schema's label, as --schema's (label= overrides it)
                label = declared.get("label")
            path, schema_path, dtypes = frames.write(data, folder, label,
                                                     check=lambda digest: check_same_data(folder, frames.DATA_FILE,
                                                                                          digest), schema=declared)
            return f"csv:{os.path.abspath(path)}", tabular.Options(schema_path, label or "", missing), {
                "frame_dtypes": dtypes}
        if label is not None or schema is not None or missing is not None:
            raise UsageError("label=, schema= and missing= apply to tables (a DataFrame or a CSV source)")
        x, y = arrays_of(data, labels)
        digest = hashlib.sha256(np.ascontiguousarray(x))
        if y is not None:
            digest.update(np.ascontiguousarray(y))
        check_same_data(folder, ARRAYS_FILE, digest.hexdigest())
        path = os.path.join(folder, ARRAYS_FILE)
        if not os.path.exists(path):
            os.makedirs(folder, exist_ok=True)
            with open(path + ".partial", "wb") as file:
                np.savez(file, **({"x": x} if y is None else {"x": x, "y": y}))
            os.replace(path + ".partial", path)
        return f"npz:{os.path.abspath(path)}", None, {}

    # -- a fitted or loaded run -------------------------------------------------------------

    @classmethod
    def load(cls, model_dir: str, use_ema: bool = True) -> "Synthesizer":
        """The run in `model_dir`, written by `fit` or by the train command; `use_ema` takes the
        moving-average generator weights where the run kept them."""
        model_dir = os.fspath(model_dir)
        record = restore.read_record(model_dir)
        model_class = zoo.get(record["model"])
        options = {name: value for name, value in record["config"].items()
                   if name in model_class.arguments() and name not in training.INFERRED}
        synthesizer = cls(record["model"], **options)
        synthesizer.model_dir, synthesizer._use_ema = model_dir, use_ema
        synthesizer._open()
        return synthesizer

    def save(self, path: str) -> str:
        """Copies the run (config.json, its latest checkpoint, the data it was given, pictures
        and held-out metrics) to the new folder `path`, which `Synthesizer.load` reads."""
        source = self._open()
        path = os.fspath(path)
        if os.path.exists(path):
            raise UsageError(f"{path} exists; save into a new folder")
        partial = path.rstrip("/") + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        keep = os.path.basename(source.trained.checkpoint)
        folder = os.path.join(self.model_dir, training.CHECKPOINT_FOLDER)

        def skipped(directory, names):
            if os.path.abspath(directory) != os.path.abspath(folder):
                return [name for name in names if name.startswith("events.out.tfevents")]
            return [name for name in names if not (name.startswith(keep + ".") or name == "checkpoint")]

        try:
            shutil.copytree(self.model_dir, partial, ignore=skipped)
            with open(os.path.join(partial, training.CHECKPOINT_FOLDER, "checkpoint"), "w") as file:
                file.write(f'model_checkpoint_path: "{keep}"\nall_model_checkpoint_paths: "{keep}"\n')
            # Data given in memory lives in the run's folder: the copy reads its own.
            record = dict(source.record)
            record.pop("step", None)
            scheme, _, where = record["dataset"].partition(":")
            inside = os.path.abspath(os.path.join(self.model_dir, DATA_FOLDER))
            if where.startswith(inside + os.sep):
                copied = os.path.join(os.path.abspath(path), DATA_FOLDER, os.path.relpath(where, inside))
                record["dataset"] = f"{scheme}:{copied}"
                with open(os.path.join(partial, restore.CONFIG_FILE), "w") as file:
                    json.dump(record, file, indent=2)
            os.rename(partial, path)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return path

    def _open(self) -> sampling.ModelSource:
        if self.model_dir is None:
            raise UsageError("this Synthesizer has not been fitted; call fit(data, ...) or Synthesizer.load(model_dir)")
        if self._source is None:
            self._source = sampling.ModelSource(self.model_dir, self._use_ema)
        return self._source

    @property
    def model(self) -> zoo.base.GenerativeModel:
        """The Keras model of the latest checkpoint (moving-average weights where kept)."""
        return self._open().trained.model

    @property
    def spec(self) -> sources.DataSpec:
        """What the model was trained on: shape, value range, classes, table schema."""
        return self._open().spec

    @property
    def step(self) -> int:
        return self._open().trained.step

    @property
    def conditional(self) -> bool:
        return self._open().conditional

    def class_shares(self) -> np.ndarray:
        """Each class's share of the training data."""
        source = self._open()
        return sampling.training_frequencies(source.record, source.spec.num_classes)

    def sample(self, num: int, labels=None, *, seed: int = 0, classes=None, class_balance: str = "real",
               progress: bool = True):
        """`num` samples in the data's own form.

        Images and vectors come as an array in the data's range (uint8 for 0..255 images), with
        their labels `(x, y)` for conditional models; tables come as a DataFrame with the
        training data's columns and dtypes (the label column in it). Conditional models draw the
        classes `labels` (one per sample) when given, otherwise labels in the training data's
        class shares (`class_balance="real"`) or equal shares (`"uniform"`), of `classes` (all
        by default). The same `seed` gives the same samples.
        """
        source = self._open()
        num = _count("num", num)
        seed = _seed(seed)
        spec = source.spec
        drawn = None
        if labels is not None:
            if not source.conditional:
                raise UsageError("labels= needs a conditional model; this one was trained without conditional=True")
            drawn = np.asarray(labels).reshape(-1)
            if len(drawn) != num or not np.issubdtype(drawn.dtype, np.integer):
                raise UsageError(f"labels= must hold {num} integer class indices; got {len(drawn)} of dtype "
                                 f"{drawn.dtype}")
            if drawn.min() < 0 or drawn.max() >= spec.num_classes:
                raise UsageError(f"labels= holds class {int(drawn.min() if drawn.min() < 0 else drawn.max())}; "
                                 f"accepted: 0..{spec.num_classes - 1}")
            drawn = drawn.astype(np.int32)
        elif source.conditional:
            if class_balance not in ("real", "uniform"):
                raise UsageError(f"class_balance={class_balance!r}; accepted: real, uniform")
            chosen = sampling.parse_classes([str(c) for c in classes] if classes is not None else None, spec)
            shares = self.class_shares() if class_balance == "real" else None
            drawn = sampling.class_labels(num, spec.num_classes, chosen, class_balance, shares, seed)
        elif classes is not None:
            raise UsageError("classes= needs a conditional model; this one was trained without conditional=True")
        x = sampling.draw(source, num, seed, drawn, progress)
        if spec.table is not None:
            table = tabular.decode(x, spec.table, drawn, with_missing=True)
            return frames.to_frame(table, spec.table, source.record.get("frame_dtypes"))
        x = sampling.to_storage(x, spec)
        return (x, drawn.astype(np.int64)) if drawn is not None else x

    def plot(self, num: int = 64, *, seed: int = 0):
        """A matplotlib Figure of `num` samples: an image grid (a row per class for conditional
        models), a scatter plot of 2-D points, or per-column histograms of a table's rows."""
        source = self._open()
        model, scale = source.trained.model, source.trained.scale
        samples, columns = next(iter(model.pictures(num, seed).values()))
        with tempfile.TemporaryDirectory(prefix="synthblend-plot-") as folder:
            path = os.path.join(folder, "samples.png")
            pictures.for_data(source.spec, scale.decode)(np.asarray(samples), path, columns)
            return pictures.figure_of_png(path)

    def evaluate(self, x=None, y=None, *, num_samples: int = 2000, seed: int = 0, report_dir: str | None = None,
                 cache_dir: str = DEFAULT_CACHE_DIR, real_examples: int = 20000) -> dict:
        """The evaluate command's report, as a dict: fidelity, diversity, memorisation and
        usefulness of `num_samples` samples, each beside its real-vs-real floor.

        `x` (with `y`) is the real held-out data to compare with: arrays, or a DataFrame for a
        table; None uses the examples the run held out (`holdout`), or else the source's own test
        split (or, failing both, the last fifth of the training examples). The report (JSON,
        HTML, PNGs) is also written to `report_dir` (default `<model_dir>/evaluation`).
        """
        source = self._open()
        num = _count("num_samples", num_samples)
        if num < 10:
            raise UsageError(f"num_samples={num} is too few to measure; give at least 10")
        holdout = None
        if x is not None:
            holdout = self._real(x, y)
        report_dir = report_dir or os.path.join(self.model_dir, evaluation.REPORT_FOLDER)
        os.makedirs(cache_dir, exist_ok=True)
        return evaluation.evaluate(source, source.spec, num, _seed(seed), cache_dir, report_dir,
                                   real_examples=real_examples, holdout=holdout)

    def _real(self, x, y) -> dict:
        """Real data given by the user as the model's arrays: encoded rows for a table."""
        spec = self._open().spec
        if spec.table is not None:
            if not frames.is_frame(x):
                raise UsageError("a table model is evaluated on a DataFrame of real rows")
            return frames.encode(x, spec.table)
        x, y = arrays_of(x, y)
        if tuple(x.shape[1:]) != tuple(spec.shape) and not (x.ndim == 3 and tuple(x.shape[1:]) + (1,) == spec.shape):
            raise DataError(f"x has examples of shape {x.shape[1:]}; the model makes {tuple(spec.shape)}")
        x = x.reshape((len(x), *spec.shape))
        return {"x": x} if y is None else {"x": x, "y": y}

    def export(self, export_dir: str, *, max_samples: int = 1024, serving_name: str | None = None,
               serving_base_path: str | None = None) -> str:
        """Writes the next numbered SavedModel version under `export_dir` (as the export
        command); returns its path."""
        source = self._open()
        path, *_ = exporting.export_run(source.trained, os.fspath(export_dir), _count("max_samples", max_samples),
                                       serving_name, serving_base_path)
        return path


def load_data(name: str, split: str = "train", *, limit: int | None = None, image_size: int | None = None):
    """The examples of a source as a user holds them: `(x, y)` NumPy arrays for images and
    vectors (`y` None when unlabelled), a DataFrame for a table.

    `name` is a source name (`"shapes"`, `"purchases"`, `"tfds:mnist"`, `"npz:/path.npz"`, ...)
    and `split` one of its splits (`"train"`, `"test"`, `"train[:10%]"`); `limit` caps the
    number of examples read."""
    dataset, spec = sources.load(name, split, image_size)
    if limit is not None:
        dataset = dataset.take(_count("limit", limit))
    parts = {}
    for batch in dataset.batch(8192).as_numpy_iterator():
        for key, value in batch.items():
            parts.setdefault(key, []).append(value)
    x, y = np.concatenate(parts["x"]), (np.concatenate(parts["y"]) if "y" in parts else None)
    if spec.table is not None:
        return frames.to_frame(tabular.decode(x, spec.table, y, with_missing=True), spec.table)
    return x, y


def schema_of(schema) -> dict | None:
    """A DataFrame's schema: the dict given, or the JSON of the file named; checked as --schema is."""
    if schema is None:
        return None
    if isinstance(schema, dict):
        return tabular.check_schema(schema, "schema=")
    return tabular.read_schema(os.fspath(schema))


def arrays_of(data, labels=None) -> tuple[np.ndarray, np.ndarray | None]:
    """`(x, y)` NumPy arrays of in-memory data: arrays, or a `tf.data.Dataset` of `x`, `(x, y)`
    or `{"x", "y"}` examples (read whole)."""
    if isinstance(data, tf.data.Dataset):
        if labels is not None:
            raise UsageError("labels= is given with arrays; a dataset brings its labels as (x, y) or {'x', 'y'}")
        data, labels = _read_dataset(data)
    x = np.asarray(data)
    if x.dtype == object:
        raise DataError(f"data of shape {x.shape} holds Python objects; expected an array of numbers")
    y = None if labels is None else np.asarray(labels).reshape(-1)
    if y is not None and len(y) != len(x):
        raise DataError(f"labels has {len(y)} entries for {len(x)} examples")
    if y is not None and not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be integer class indices 0, 1, 2, ...; got dtype {y.dtype}")
    return x, y


def _read_dataset(dataset: tf.data.Dataset):
    spec = dataset.element_spec
    if isinstance(spec, dict):
        if "x" not in spec:
            raise DataError(f"a dataset of dicts needs an 'x' key; it has {', '.join(spec)}")
        pick = lambda example: (example["x"], example["y"]) if "y" in spec else (example["x"],)  # noqa: E731
    elif isinstance(spec, tuple):
        if len(spec) not in (1, 2):
            raise DataError(f"a dataset of tuples gives (x,) or (x, y); its elements have {len(spec)} parts")
        pick = lambda *example: example  # noqa: E731
    else:
        pick = lambda x: (x,)  # noqa: E731
    parts = [[], []]
    for batch in dataset.map(pick).batch(4096).as_numpy_iterator():
        for index, value in enumerate(batch):
            parts[index].append(value)
    if not parts[0]:
        raise DataError("the dataset is empty")
    return np.concatenate(parts[0]), (np.concatenate(parts[1]) if parts[1] else None)


def check_same_data(folder: str, name: str, digest: str) -> None:
    """UsageError when `folder` already holds training data other than the data of SHA-256
    `digest` (a second `fit` into the same model_dir continues the run only on the same data)."""
    path = os.path.join(folder, name + ".sha256")
    if os.path.exists(path):
        with open(path) as file:
            if file.read().strip() != digest:
                raise UsageError(f"{os.path.dirname(folder)} holds a run trained on other data; give the same data "
                                 "to continue it, or another model_dir")
        return
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as file:
        file.write(digest)


def blend(real, synthesizer, ratio: float = 0.5, *, method: str = "mix", seed: int = 0,
          class_balance: str = "real", batch_size: int | None = None) -> tf.data.Dataset:
    """Real examples and a synthesizer's samples in one endless `tf.data` stream for
    `keras.Model.fit`: `(x, y)` pairs (or `x` alone for unlabelled data).

    Args:
      real: a `tf.data.Dataset` of unbatched real examples: `x`, `(x, y)` or `{"x", "y"}`.
      synthesizer: a fitted `Synthesizer` (or an opened export, `trainers.sample.ExportSource`).
      ratio: the share of synthetic examples (`mix`), or their weight (`interpolate`).
      method: `mix` (each example is real or synthetic) or `interpolate`
        (x = (1 - ratio) * real + ratio * synthetic, labels matched).
      seed: seed of the order and of the samples drawn.
      class_balance: classes of a conditional model's samples: the training data's shares
        (`real`) or equal shares (`uniform`).
      batch_size: batch the stream when given.
    """
    source = synthesizer._open() if isinstance(synthesizer, Synthesizer) else synthesizer
    if not isinstance(real, tf.data.Dataset):
        raise UsageError(f"real must be a tf.data.Dataset; got {type(real).__name__}")
    if not 0.0 <= float(ratio) <= 1.0:
        raise UsageError(f"ratio={ratio} must lie in [0, 1] (the share of synthetic data)")
    if method not in ("mix", "interpolate"):
        raise UsageError(f"method={method!r}; accepted: mix, interpolate")
    if class_balance not in ("real", "uniform"):
        raise UsageError(f"class_balance={class_balance!r}; accepted: real, uniform")
    spec = real.element_spec
    if isinstance(spec, dict):
        examples = real
    elif isinstance(spec, tuple) and len(spec) == 2:
        examples = real.map(lambda x, y: {"x": x, "y": y})
    else:
        examples = real.map(lambda x: {"x": x})
    shape = tuple(examples.element_spec["x"].shape)
    if shape != tuple(source.spec.shape) and shape + (1,) != tuple(source.spec.shape):
        raise DataError(f"real examples have shape {shape}; the model makes {tuple(source.spec.shape)}")
    examples = examples.map(lambda example: {**example, "x": tf.reshape(example["x"], source.spec.shape)})
    size = int(examples.cardinality()) if int(examples.cardinality()) > 0 else None
    real_spec = dataclasses.replace(source.spec, num_examples=size)
    stream = blend_command.blended_dataset(examples, real_spec, source, method, float(ratio), _seed(seed),
                                           class_balance)
    labelled = "y" in stream.element_spec
    stream = stream.map(lambda example: (example["x"], example["y"]) if labelled else example["x"])
    return stream.batch(batch_size) if batch_size else stream


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"{name}={value!r} must be a whole number of at least 1")
    return int(value)


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed={seed!r} must be a non-negative integer")
    return int(seed)


__all__ = ["Synthesizer", "blend", "load_data"]
