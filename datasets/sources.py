"""Where data comes from: a source name becomes an unbatched `tf.data.Dataset` and a `DataSpec`.

Source names:

- `tfds:<name>`: a TensorFlow Datasets image dataset (`mnist`, `fashion_mnist`, `cifar10`, ...),
  downloaded and prepared by tensorflow-datasets on first use; `--split` takes TFDS' forms
  (`train[:10%]`, `test[-20%:]`, `train[:10%]+test[:5%]`), checked against the prepared splits;
- `npz:<path>`: a NumPy `.npz` file with array `x` (images `N,H,W[,C]` or vectors `N,D`) and
  optional integer labels `y`;
- `images:<dir>`: a folder of PNG/JPEG/BMP/GIF files; one subfolder per class gives labels;
- `csv:<path>`: a table with a header row (see `datasets.tabular`); `x` is each row's encoding,
  `y` the label column's class index when there is one;
- `tfrecord:<file or glob>`: shards of `tf.train.Example`s as `synthblend-sample` writes them
  (images as PNG bytes, vectors as float lists, labels `y`), read as a stream;

  each of these four is one split, `train`, which `--split` may slice (`train[:80%]`); any
  other split of them is a UsageError;
- an embedded dataset generated in-process, no download: `shapes`, `ring`, `grid`, and the
  table `purchases` (see `datasets.embedded`).

A slice's percents run from -100% to 100%, and a slice that selects no example is refused.

Every dataset yields dicts `{"x": ..., "y": ...}` (`y` only when labelled; `shapes` also yields
its true generative `factors`). Images keep their stored dtype (usually uint8); vectors are
float32. Scaling into the range a model works in is the pipeline's job (`datasets.pipeline`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import zipfile
from typing import Callable

import numpy as np
import tensorflow as tf

from synthblend.datasets import embedded, rows, tabular
from synthblend.zoo.registry import DataError, Registry, UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# An image folder whose decoded pixels would take more than this is decoded as it is read.
IMAGES_IN_MEMORY_BYTES = 256 * 1024**2
# Image modes (as Pillow names them) a streamed folder decodes, and their channels before any
# alpha channel is dropped; other modes (16-bit, CMYK, ...) are read in memory.
IMAGE_MODES = {"L": 1, "LA": 1, "RGB": 3, "RGBA": 3, "P": 3, "1": 1}
SPLITS = ("train", "test")
# Labels are class indices 0..MAX_CLASSES - 1: conditional models draw a row of pictures, and
# keep an embedding, per class.
MAX_CLASSES = 1000
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a model is built from and how data maps to and from the model's range.

    Attributes:
      name: the source name as given (`tfds:mnist`, `shapes`, ...).
      shape: shape of one example's `x`: `(H, W, C)` for images, `(D,)` for vectors.
      value_range: `(low, high)` of bounded data such as images (`(0, 255)` for uint8);
        None for unbounded vectors, which are standardised with `loc` and `scale` instead.
      loc, scale: per-feature mean and standard deviation of unbounded vectors.
      num_classes: number of label classes; 0 for unlabelled data.
      class_names: a name per class, when known.
      num_examples: size of the split, when known.
      factor_names: names of the true generative factors in `factors`, when the data has them.
      in_memory: whether the examples are already held in memory (no need to cache).
      splits: the splits the source offers (empty when a file or folder is one split).
      table: for tables, the fitted schema and encoder (`datasets.tabular`, JSON form) that
        decodes `x` back to columns; None otherwise.
    """

    name: str
    shape: tuple[int, ...]
    value_range: tuple[float, float] | None = (0.0, 255.0)
    loc: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    num_examples: int | None = None
    factor_names: tuple[str, ...] = ()
    in_memory: bool = True
    splits: tuple[str, ...] = ()
    table: dict | None = None

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def table_blocks(self) -> tuple[tuple[str, int], ...] | None:
        """The encoded vector's blocks (`("softmax", k)` or `("normal", 1)`), None for non-tables."""
        return None if self.table is None else tabular.table_blocks(self.table)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


Loader = Callable[[str, str, "int | None"], "tuple[tf.data.Dataset, DataSpec]"]
SCHEMES: Registry[Loader] = Registry("dataset scheme")
EMBEDDED: Registry[Loader] = Registry("embedded dataset")


def accepted_names() -> str:
    schemes = ", ".join(f"{s}:<...>" for s in SCHEMES.names())
    return f"{schemes}, or an embedded dataset: {', '.join(EMBEDDED.names())}"


TABLES = ("csv", "purchases")


def load(name: str, split: str = "train", image_size: int | None = None, table=None):
    """Returns `(dataset, spec)` for a source name; raises UsageError/DataError on bad input.

    `table` is for tables only: a `tabular.Options` (schema file, label column, missing policy)
    to read and fit the table with, or a fitted encoder (a `DataSpec.table`) to encode it with,
    as the model trained on it did.
    """
    if image_size is not None and image_size <= 0:
        raise UsageError(f"--image_size={image_size} must be a positive number of pixels")
    dataset, spec = _load(name, split, image_size, table)
    if image_size is not None and not spec.is_image:
        what = "table rows" if spec.table is not None else "vectors"
        raise UsageError(f"--image_size={image_size} applies to images; {name!r} holds {what} of shape "
                         f"{tuple(spec.shape)}")
    return dataset, spec


def _load(name: str, split: str, image_size: int | None, table):
    scheme, sep, argument = name.partition(":")
    if sep:
        if scheme not in SCHEMES:
            raise UsageError(f"unknown dataset {name!r}; accepted: {accepted_names()}")
        if not argument:
            raise UsageError(f"dataset {name!r} names no {scheme} source after the colon")
        if scheme in TABLES:
            return SCHEMES.get(scheme)(argument, split, image_size, table)
        return SCHEMES.get(scheme)(argument, split, image_size)
    if name not in EMBEDDED:
        raise UsageError(f"unknown dataset {name!r}; accepted: {accepted_names()}")
    if name in TABLES:
        return EMBEDDED.get(name)(name, split, image_size, table)
    return EMBEDDED.get(name)(name, split, image_size)


def check_one_split(name: str, split: str, what: str = "file") -> None:
    """UsageError unless `split` is `train` or a slice of it: a file or folder source is one split."""
    if split.partition("[")[0] != "train":
        raise UsageError(f"--split={split}: {name!r} is one {what}, so its only split is train (slice it as "
                         "train[:80%] or train[80%:] to hold some back)")
    check_percents(name, split)


def _check_split(name: str, split: str) -> str:
    """The split's base name (`train` of `train[:10%]`); UsageError for an unknown one."""
    base, _, _ = split.partition("[")
    if base not in SPLITS:
        raise UsageError(f"unknown split {split!r} for dataset {name!r}; accepted: {', '.join(SPLITS)}, "
                         "optionally sliced as in train[:10%] or train[1000:2000]")
    check_percents(name, split)
    return base


_SLICE = re.compile(r"^(\w+)\[(-?\d+%?)?:(-?\d+%?)?\]$")
_PERCENT = re.compile(r"(-?[\d_.]+)%")
SLICE_EXAMPLES = "train[:10%], train[1000:2000] or test[-20%:]"


def check_percents(name: str, split: str) -> None:
    """UsageError for a percent bound outside [-100%, 100%] (`train[:200%]`), which TFDS refuses too."""
    for text in _PERCENT.findall(split):
        try:
            value = float(text)
        except ValueError:  # not a number; the slice's parser refuses it
            continue
        if abs(value) > 100:
            raise UsageError(f"split {split!r} of {name!r} has the percent bound {text}%; accepted: percents "
                             f"from -100% to 100%, as in {SLICE_EXAMPLES}")


def split_examples(name: str, split: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The examples of a split named like TFDS slices (`train`, `train[:10%]`, `train[500:]`),
    taken from the full split's `arrays`; UsageError for a percent outside [-100%, 100%] or a
    slice that holds no examples."""
    if "[" not in split:
        return arrays
    check_percents(name, split)
    match = _SLICE.match(split)
    if not match:
        raise UsageError(f"split {split!r} of {name!r} is not a slice like train[:10%] or train[1000:2000]")
    size = len(next(iter(arrays.values())))

    def bound(text, default):
        if text is None:
            return default
        value = int(text.rstrip("%"))
        return value * size // 100 if text.endswith("%") else value

    part = slice(bound(match.group(2), 0), bound(match.group(3), size))
    taken = {key: value[part] for key, value in arrays.items()}
    if len(next(iter(taken.values()))) == 0:
        raise UsageError(f"split {split!r} of {name!r} holds no examples (the split has {size})")
    return taken


def from_arrays(
    name: str,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    class_names: tuple[str, ...] = (),
    factors: np.ndarray | None = None,
    factor_names: tuple[str, ...] = (),
    image_size: int | None = None,
    split: str | None = None,
):
    """Dataset and spec of in-memory arrays; validates what a user's file could get wrong.
    `split`, a slice such as `train[:80%]`, keeps that part of the examples."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim not in (2, 4):
        raise DataError(
            f"{name}: x has shape {x.shape}; expected images (N, H, W), (N, H, W, C) or vectors (N, D)"
        )
    if len(x) == 0:
        raise DataError(f"{name}: x holds no examples")
    if 0 in x.shape[1:]:
        raise DataError(f"{name}: x has shape {x.shape}; an example needs at least one value in every dimension")
    if x.ndim == 4 and x.shape[-1] not in (1, 3):
        raise DataError(f"{name}: images have {x.shape[-1]} channels; accepted: 1 or 3")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{name}: x has dtype {x.dtype}; expected integers or floats")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(f"{name}: x holds NaN or infinite values")
    if x.dtype.itemsize > 4:
        largest = max(abs(float(x.min())), abs(float(x.max())))
        if largest > FLOAT32_MAX:
            raise DataError(f"{name}: x holds {largest:g}, beyond the float32 range (+-{FLOAT32_MAX:.4g}) models "
                            "compute in; rescale the data")
    num_classes = 0
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise DataError(f"{name}: y has {len(y)} labels for {len(x)} examples")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{name}: y must hold integer class indices 0, 1, 2, ...; got dtype {y.dtype}")
        if y.min() < 0:
            raise DataError(f"{name}: y must hold class indices 0, 1, 2, ...; found label {y.min()}")
        if y.max() >= MAX_CLASSES:
            raise DataError(f"{name}: y holds label {y.max()}; class indices run 0..{MAX_CLASSES - 1} "
                            f"(at most {MAX_CLASSES} classes)")
        num_classes = int(y.max()) + 1
        y = y.astype(np.int64)
    if split is not None and "[" in split:
        taken = split_examples(name, split, {"x": x, **({"y": y} if y is not None else {}),
                                             **({"factors": factors} if factors is not None else {})})
        x, y, factors = taken["x"], taken.get("y"), taken.get("factors")
    value_range = _image_range(name, x) if x.ndim == 4 else None
    if image_size is not None and x.ndim == 4 and x.shape[1:3] != (image_size, image_size):
        x = _resize(x, image_size, value_range)
    elements = {"x": x}
    if y is not None:
        elements["y"] = y
    if factors is not None:
        elements["factors"] = factors.astype(np.float32)
    if x.ndim == 4:
        loc = scale = None
    else:
        # Mean and spread in float64: float32 squares overflow for values beyond 1.8e19.
        loc = tuple(float(v) for v in x.mean(axis=0, dtype=np.float64))
        # A constant feature would divide by zero; leave it unscaled instead.
        scale = tuple(float(v) if v > 0 else 1.0 for v in x.std(axis=0, dtype=np.float64))
        x = elements["x"] = x.astype(np.float32)
    spec = DataSpec(
        name=name,
        shape=tuple(int(d) for d in x.shape[1:]),
        value_range=value_range,
        loc=loc,
        scale=scale,
        num_classes=num_classes,
        class_names=tuple(class_names) or tuple(str(i) for i in range(num_classes)),
        num_examples=len(x),
        factor_names=tuple(factor_names),
        in_memory=True,
    )
    return rows.rows_dataset(elements), spec


# The held-out share of a source without a test split, and the seed of its choice of examples.
DEFAULT_HOLDOUT = 0.1
HOLDOUT_SEED = 0


def hold_out(data: tf.data.Dataset, spec: DataSpec, share: float, seed: int = HOLDOUT_SEED):
    """`(kept, kept_spec, held, held_spec)`: the examples of `data` split into a training part and
    a held-out `share` of them, chosen by a permutation seeded by `seed` (the same examples every
    time for the same data). `data` must be held as rows (arrays, a table, an image folder)."""
    found = rows.rows_of(data)
    if found is None:
        raise UsageError(f"--holdout={share:g}: {spec.name!r} is read as a stream, not as rows; hold out a split "
                         "of it instead (e.g. --split=train[:90%] and evaluate with --test_split=train[90%:])")
    count = found.count
    held = int(round(share * count))
    if not 1 <= held <= count - 1:
        raise UsageError(f"--holdout={share:g} of the {count} examples of {spec.name!r} holds out {held}; give a "
                         f"share that leaves at least one example on each side, or --holdout=0")
    chosen = np.zeros(count, bool)
    chosen[np.random.default_rng(seed).permutation(count)[:held]] = True
    return (found.subset(np.flatnonzero(~chosen)), dataclasses.replace(spec, num_examples=count - held),
            found.subset(np.flatnonzero(chosen)), dataclasses.replace(spec, num_examples=held))


def _image_range(name: str, x: np.ndarray) -> tuple[float, float]:
    if x.dtype == np.uint8:
        return (0.0, 255.0)
    low, high = float(x.min()), float(x.max())
    # Float images usually live in [0, 1] or [-1, 1]; keep those conventions when they fit.
    for candidate in ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)):
        if candidate[0] <= low and high <= candidate[1]:
            return candidate
    if high <= low:
        raise DataError(f"{name}: images have one constant value {low}; nothing to learn")
    return (low, high)


def _resize(x: np.ndarray, size: int, value_range: tuple[float, float]) -> np.ndarray:
    # Antialiased resizing overshoots at edges; clip back into the data's range.
    resized = np.clip(tf.image.resize(x, (size, size), antialias=True).numpy(), *value_range)
    if np.issubdtype(x.dtype, np.integer):
        resized = np.round(resized)
    return resized.astype(x.dtype)


def _resized(image, size: int | None):
    """A decoded uint8 image tensor resized to size x size (as `_resize` resizes arrays), or as it is."""
    if size is None:
        return image
    resized = tf.image.resize(image, (size, size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


# --- npz -------------------------------------------------------------------------------------


@SCHEMES.register("npz")
def load_npz(path: str, split: str, image_size: int | None):
    """`npz:<path>`: array `x`, optional labels `y`; the file is one split, `train`, which
    `--split` may slice."""
    name = f"npz:{path}"
    if not os.path.isfile(path):
        raise UsageError(f"dataset {name!r}: no such file {path!r}; expected an existing .npz file")
    check_one_split(name, split)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays.files:
                found = ", ".join(arrays.files) or "nothing"
                raise DataError(
                    f"{path}: has no array 'x' (found: {found}); save data as np.savez(path, x=..., y=...)"
                )
            x = arrays["x"]
            y = arrays["y"] if "y" in arrays.files else None
    except DataError:
        raise
    except Exception as error:  # numpy raises several types for a file that is not an npz
        if "allow_pickle" in str(error) and zipfile.is_zipfile(path):
            raise DataError(f"{path}: holds Python objects (pickled arrays), which are not read; save numeric "
                            "arrays, e.g. np.savez(path, x=images.astype(np.uint8), y=labels)") from None
        raise DataError(f"{path}: cannot be read as a NumPy .npz archive ({type(error).__name__})") from None
    return from_arrays(name, x, y, image_size=image_size, split=split)


# --- tfrecord:<glob> -------------------------------------------------------------------------


@SCHEMES.register("tfrecord")
def load_tfrecord(pattern: str, split: str, image_size: int | None):
    """`tfrecord:<file or glob>`: shards of `tf.train.Example`s as `synthblend-sample` writes them,
    `x` PNG bytes (images) or a float list (vectors) and optional int64 labels `y`, so samples
    train a model again. The shards are one split, `train`, which `--split` may slice; they are
    read as a stream, after one pass that counts the examples and classes (and, for vectors, takes
    the mean and spread the model standardises with)."""
    name = f"tfrecord:{pattern}"
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise UsageError(f"dataset {name!r}: no file matches {pattern!r}; expected TFRecord shards, e.g. "
                         "tfrecord:samples.tfrecord or tfrecord:'shards/*.tfrecord'")
    check_one_split(name, split)
    records = tf.data.TFRecordDataset(files)
    try:
        first = next(iter(records.take(1)), None)
        if first is None:
            raise DataError(f"{name}: the shards hold no examples")
        example = tf.train.Example.FromString(first.numpy())
    except (tf.errors.OpError, ValueError) as error:
        raise DataError(f"{name}: cannot be read as TFRecord shards of tf.train.Example "
                        f"({str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__})"
                        ) from None
    features = example.features.feature
    if "x" not in features:
        raise DataError(f"{name}: its examples have no feature 'x' (found: {', '.join(sorted(features)) or 'none'}); "
                        "expected what synthblend-sample writes")
    labelled = "y" in features
    if features["x"].bytes_list.value:
        image = tf.io.decode_image(features["x"].bytes_list.value[0], expand_animations=False)
        shape = tuple(int(d) for d in image.shape)
        description = {"x": tf.io.FixedLenFeature([], tf.string)}
    else:
        shape = (len(features["x"].float_list.value),)
        description = {"x": tf.io.FixedLenFeature([shape[0]], tf.float32)}
    if labelled:
        description["y"] = tf.io.FixedLenFeature([], tf.int64)
    if image_size is not None and len(shape) == 3:
        shape = (image_size, image_size, shape[-1])

    def parse(record):
        parsed = tf.io.parse_single_example(record, description)
        x = parsed["x"]
        if len(shape) == 3:
            x = tf.io.decode_image(x, channels=shape[-1], expand_animations=False)
            x = tf.ensure_shape(_resized(x, image_size), shape)
        return {"x": x, **({"y": parsed["y"]} if labelled else {})}

    dataset = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    count, classes, total, squares = 0, 0, np.zeros(shape, np.float64), np.zeros(shape, np.float64)
    try:
        for batch in dataset.batch(4096).as_numpy_iterator():
            count += len(batch["x"])
            if labelled:
                classes = max(classes, int(batch["y"].max()) + 1)
                if batch["y"].min() < 0:
                    raise DataError(f"{name}: holds label {batch['y'].min()}; labels are class indices 0, 1, 2, ...")
            if len(shape) == 1:
                total += batch["x"].sum(axis=0, dtype=np.float64)
                squares += np.square(batch["x"], dtype=np.float64).sum(axis=0)
    except tf.errors.OpError as error:
        raise DataError(f"{name}: an example cannot be read ({str(error).strip().splitlines()[0][:200]}); expected "
                        f"every example like the first: x of shape {shape}"
                        + (", an int64 y" if labelled else "")) from None
    if classes > MAX_CLASSES:
        raise DataError(f"{name}: holds label {classes - 1}; class indices run 0..{MAX_CLASSES - 1}")
    if "[" in split:
        kept = split_examples(name, split, {"index": np.arange(count)})["index"]
        dataset = dataset.skip(int(kept[0])).take(len(kept))
        count = len(kept)
    loc = scale = None
    if len(shape) == 1:
        mean = total / max(count, 1)
        spread = np.sqrt(np.maximum(squares / max(count, 1) - mean**2, 0.0))
        loc, scale = tuple(float(v) for v in mean), tuple(float(v) if v > 0 else 1.0 for v in spread)
    spec = DataSpec(
        name=name,
        shape=shape,
        value_range=(0.0, 255.0) if len(shape) == 3 else None,
        loc=loc,
        scale=scale,
        num_classes=classes if classes >= 2 else 0,
        class_names=tuple(str(i) for i in range(classes)) if classes >= 2 else (),
        num_examples=count,
        in_memory=False,
    )
    if classes < 2 and labelled:
        dataset = dataset.map(lambda example: {"x": example["x"]})
    return dataset, spec


# --- images:<dir> ----------------------------------------------------------------------------


@SCHEMES.register("images")
def load_images(directory: str, split: str, image_size: int | None):
    """`images:<dir>`: every image file, labelled by class subfolder when there are subfolders."""
    name = f"images:{directory}"
    if not os.path.isdir(directory):
        raise UsageError(f"dataset {name!r}: no such directory {directory!r}")
    check_one_split(name, split, "folder")
    try:
        files, labels, class_names = _list_images(directory)
    except OSError as error:
        raise DataError(f"dataset {name!r}: {error.filename or directory} cannot be listed "
                        f"({error.strerror or error})") from None
    if not files:
        raise UsageError(
            f"dataset {name!r}: no image files ({' '.join(IMAGE_EXTENSIONS)}) in {directory!r}"
        )
    streamed = _stream_images(name, directory, files, labels, class_names, split, image_size)
    if streamed is not None:
        return streamed
    images = []
    for path in files:
        try:
            image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.OpError):
            raise DataError(f"{path}: not a readable image (corrupt or not PNG/JPEG/BMP/GIF)") from None
        if image_size is not None:
            image = _resize(image[None], image_size, (0, 255))[0]
        images.append(image)
    channels = 3 if any(image.shape[-1] >= 3 for image in images) else 1
    images = [_to_channels(image, channels) for image in images]
    sizes = {image.shape[:2] for image in images}
    if len(sizes) > 1:
        examples = {}
        for path, image in zip(files, images):
            examples.setdefault(image.shape[:2], path)
        listed = ", ".join(f"{os.path.basename(p)} is {h}x{w}" for (h, w), p in list(examples.items())[:3])
        raise DataError(
            f"images in {directory!r} have mixed sizes ({listed}); pass --image_size=N to resize all to NxN"
        )
    x = np.stack(images)
    y = np.asarray(labels, np.int64) if class_names else None
    return from_arrays(name, x, y, class_names=tuple(class_names), split=split)


def _stream_images(name, directory, files, labels, class_names, split, image_size):
    """The folder as rows of paths and labels, decoded as they are drawn, when its pixels would
    take more than `IMAGES_IN_MEMORY_BYTES`; None when they fit in memory (read them there) or when
    the folder holds BMP or GIF files or a header does not say its channels plainly (the in-memory
    path reads those).
    Sizes and channels come from the files' headers, so a folder of mixed sizes is refused before
    training, as in memory."""
    from PIL import Image  # a dependency of matplotlib; reads headers without decoding pixels

    if any(not path.lower().endswith((".png", ".jpg", ".jpeg")) for path in files):
        return None  # BMP and GIF decoders take fewer channel conversions: read in memory
    try:
        with Image.open(files[0]) as image:
            first = image.size
    except (OSError, ValueError):
        raise DataError(f"{files[0]}: not a readable image (corrupt or not PNG/JPEG/BMP/GIF)") from None
    side = (image_size, image_size) if image_size is not None else first
    if len(files) * side[0] * side[1] * 3 <= IMAGES_IN_MEMORY_BYTES:
        return None  # fits in memory even with three channels: no header of the others is read
    sizes, channels = {}, 1
    for path in files:
        try:
            with Image.open(path) as image:
                size, mode = image.size, image.mode
        except (OSError, ValueError):
            raise DataError(f"{path}: not a readable image (corrupt or not PNG/JPEG/BMP/GIF)") from None
        if mode not in IMAGE_MODES:
            return None
        channels = max(channels, IMAGE_MODES[mode])
        sizes.setdefault((size[1], size[0]), path)
    if image_size is None and len(sizes) > 1:
        listed = ", ".join(f"{os.path.basename(p)} is {h}x{w}" for (h, w), p in list(sizes.items())[:3])
        raise DataError(
            f"images in {directory!r} have mixed sizes ({listed}); pass --image_size=N to resize all to NxN"
        )
    height, width = (image_size, image_size) if image_size is not None else next(iter(sizes))
    if len(files) * height * width * channels <= IMAGES_IN_MEMORY_BYTES:
        return None
    columns = {"path": np.asarray(files)}
    if class_names:
        columns["y"] = np.asarray(labels, np.int64)
    columns = split_examples(name, split, columns)

    def decode(entries):
        image = tf.io.decode_image(tf.io.read_file(entries["path"]), channels=channels, expand_animations=False)
        image = tf.ensure_shape(_resized(image, image_size), (height, width, channels))
        return {"x": image, **({"y": entries["y"]} if "y" in entries else {})}

    spec = DataSpec(
        name=name,
        shape=(height, width, channels),
        value_range=(0.0, 255.0),
        num_classes=len(class_names),
        class_names=tuple(class_names),
        num_examples=len(columns["path"]),
        in_memory=False,
    )
    return rows.rows_dataset(columns, decode), spec


def _list_images(directory: str):
    def images_in(folder):
        return sorted(
            os.path.join(folder, f)
            for f in os.listdir(folder)
            if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f))
        )

    subfolders = sorted(
        d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")
    )
    classes = [d for d in subfolders if images_in(os.path.join(directory, d))]
    top = images_in(directory)
    if classes and top:
        raise UsageError(
            f"dataset 'images:{directory}' has images both at the top ({os.path.basename(top[0])}) "
            f"and in class subfolders ({classes[0]}/); put every image in a class subfolder or none"
        )
    if not classes:
        return top, [], []
    files, labels = [], []
    for label, class_name in enumerate(classes):
        found = images_in(os.path.join(directory, class_name))
        files += found
        labels += [label] * len(found)
    return files, labels, classes


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    if image.shape[-1] in (2, 4):  # drop alpha
        image = image[..., :-1]
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    return image[..., :1]


# --- tfds:<name> -----------------------------------------------------------------------------


@SCHEMES.register("tfds")
def load_tfds(dataset_name: str, split: str, image_size: int | None):
    """`tfds:<name>`: the first Image feature as `x`, the first ClassLabel feature as `y`; `split` is
    checked by `tfds_split_size`, again after loading when loading prepared the dataset."""
    import tensorflow_datasets as tfds  # imported here: slow to import and needed by this source only

    name = f"tfds:{dataset_name}"
    try:
        builder = tfds.builder(dataset_name)
    except (tfds.core.registered.DatasetNotFoundError, ValueError, AssertionError) as error:
        raise UsageError(
            f"unknown dataset {name!r}: tensorflow-datasets has no dataset, version or config "
            f"{dataset_name!r} ({_first_line(error)}); e.g. tfds:mnist, tfds:fashion_mnist, tfds:cifar10"
        ) from None
    info = builder.info
    # Empty until the dataset is prepared; then the split is checked against the prepared splits.
    splits = info.splits
    num_examples = tfds_split_size(name, split, splits)
    image_key, label_key = _tfds_keys(info.features)
    if image_key is None:
        raise UsageError(f"dataset {name!r} has no image feature; tfds: sources must be image datasets")
    try:
        dataset = tfds.load(dataset_name, split=split, shuffle_files=True)
    except Exception as error:  # download and preparation fail in many ways; say which
        if not splits:  # loading may have prepared the dataset, then refused the split
            tfds_split_size(name, split, _prepared_splits(dataset_name))
        raise DataError(
            f"could not load {name!r} ({type(error).__name__}: {_first_line(error)}); "
            "tensorflow-datasets downloads it on first use, which needs internet access"
        ) from None
    shape = tuple(info.features[image_key].shape)
    if image_size is not None:
        shape = (image_size, image_size, shape[-1])
    elif None in shape:
        raise UsageError(f"dataset {name!r} has images of varying sizes; pass --image_size=N")
    label = info.features[label_key] if label_key else None

    def to_example(features):
        image = features[image_key]
        if image_size is not None:
            image = tf.cast(tf.clip_by_value(tf.round(
                tf.image.resize(image, (image_size, image_size), antialias=True)), 0, 255), tf.uint8)
        example = {"x": image}
        if label_key:
            example["y"] = tf.cast(features[label_key], tf.int64)
        return example

    if not splits:
        splits = _prepared_splits(dataset_name)
        num_examples = tfds_split_size(name, split, splits)
    spec = DataSpec(
        name=name,
        shape=tuple(int(d) for d in shape),
        value_range=(0.0, 255.0),
        num_classes=label.num_classes if label else 0,
        class_names=tuple(label.names) if label else (),
        num_examples=num_examples,
        in_memory=False,
        splits=tuple(splits),
    )
    return dataset.map(to_example, num_parallel_calls=tf.data.AUTOTUNE), spec


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]


def tfds_split_size(name: str, split: str, splits) -> int | None:
    """The number of examples TFDS reads for `split` (`train`, `train[:10%]`, `test[-20%:]`,
    `train[:10%]+test[:5%]`, `all`) of a dataset with `splits` (a `tfds.core.SplitDict`); None
    while `splits` is empty, before the dataset is prepared, when only the split's form is
    checked. UsageError for a split TFDS would refuse, or one that holds no examples."""
    import tensorflow_datasets as tfds

    known = list(splits)
    accepted = (f"accepted: {', '.join(known) + ' or all' if known else 'a split of the dataset'}, sliced as in "
                f"{SLICE_EXAMPLES}, joined with + as in train[:10%]+test[:5%]")
    check_percents(name, split)
    try:
        instruction = tfds.core.ReadInstruction.from_spec(split)
    except (ValueError, NotImplementedError) as error:
        raise UsageError(f"split {split!r} of {name!r} is not a TFDS split ({_last_line(error)}); {accepted}") from None
    if not known:
        return None
    bases = [part.partition("[")[0].strip() for part in split.split("+")]
    unknown = [base for base in bases if base not in known and base != "all"]
    if unknown:
        where = f" (in {split!r})" if split != unknown[0] else ""
        raise UsageError(f"dataset {name!r} has no split {unknown[0]!r}{where}; {accepted}")
    try:
        parts = instruction.to_absolute(splits)
    except ValueError as error:
        raise UsageError(f"split {split!r} of {name!r} reaches past the split ({_last_line(error)}); "
                         f"{accepted}") from None
    sizes = {part.splitname: splits[part.splitname].num_examples for part in parts}
    count = sum(max(0, (sizes[part.splitname] if part.to is None else part.to) - (part.from_ or 0))
                for part in parts)
    if count == 0:
        held = (f"the split has {sizes[parts[0].splitname]}" if len(sizes) == 1
                else ", ".join(f"{base} has {size}" for base, size in sizes.items()))
        raise UsageError(f"split {split!r} of {name!r} holds no examples ({held})")
    return count


def _last_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[-1].rstrip(".")[:200]


def _prepared_splits(dataset_name: str):
    """The splits of a dataset as its prepared metadata records them; empty when it is not prepared."""
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(dataset_name).info.splits
    except Exception:  # the metadata is unreadable; the split stays unchecked
        return {}


def _tfds_keys(features):
    import tensorflow_datasets as tfds

    image_key = label_key = None
    for key, feature in features.items():
        if image_key is None and isinstance(feature, tfds.features.Image):
            image_key = key
        if label_key is None and isinstance(feature, tfds.features.ClassLabel):
            label_key = key
    return image_key, label_key


# --- embedded --------------------------------------------------------------------------------

EMBEDDED_SIZES = {"train": 20000, "test": 4000}
# Fixed seeds: an embedded dataset is the same data for everyone, like a downloaded one.
EMBEDDED_SEEDS = {"train": 0, "test": 1}


@EMBEDDED.register("shapes")
def load_shapes(name: str, split: str, image_size: int | None):
    """`shapes`: 28x28 drawings of circles, squares, triangles and crosses, with true factors."""
    base = _check_split(name, split)
    size = image_size or 28
    data = split_examples(name, split, embedded.shapes(EMBEDDED_SIZES[base], EMBEDDED_SEEDS[base], size=size))
    factors = np.stack([data[f] for f in embedded.SHAPE_FACTORS], axis=1)
    dataset, spec = from_arrays(
        name,
        data["x"],
        data["y"],
        class_names=embedded.SHAPE_CLASSES,
        factors=factors,
        factor_names=embedded.SHAPE_FACTORS,
    )
    return dataset, dataclasses.replace(spec, splits=SPLITS)


def _toy(generate):
    def load_toy(name: str, split: str, image_size: int | None):
        base = _check_split(name, split)
        data = split_examples(name, split, generate(EMBEDDED_SIZES[base], EMBEDDED_SEEDS[base]))
        dataset, spec = from_arrays(name, data["x"], data["y"])
        return dataset, dataclasses.replace(spec, splits=SPLITS)

    load_toy.__doc__ = f"`{generate.__name__}`: {generate.__doc__.splitlines()[0]}"
    return load_toy


EMBEDDED.add("ring", _toy(embedded.ring))
EMBEDDED.add("grid", _toy(embedded.grid))


# --- tables ----------------------------------------------------------------------------------


def from_table(name: str, arrays: dict[str, np.ndarray], encoder: dict, splits: tuple[str, ...] = ()):
    """Dataset and spec of an encoded table: `x` is already standardised (loc 0, scale 1). Rows
    given compactly (`numbers` and `codes`, see `tabular.encode_compact`) are held so and expanded
    to `x` as they are drawn, a batch at a time in training."""
    width = sum(size for _, size in tabular.table_blocks(encoder))
    label = encoder["label"]
    class_names = tuple(str(c) for c in (label.get("tokens") or label["classes"])) if label else ()
    spec = DataSpec(
        name=name,
        shape=(width,),
        value_range=None,
        loc=(0.0,) * width,
        scale=(1.0,) * width,
        num_classes=len(class_names),
        class_names=class_names,
        num_examples=len(next(iter(arrays.values()))),
        in_memory=True,
        splits=splits,
        table=encoder,
    )
    if "x" in arrays:
        return rows.rows_dataset(arrays), spec
    blocks = tabular.table_blocks(encoder)

    def expand(entries):
        example = {"x": tabular.expand_tensors(entries["numbers"], entries["codes"], blocks)}
        return {**example, "y": entries["y"]} if "y" in entries else example

    return rows.rows_dataset(arrays, expand, vectorised=True), spec


@SCHEMES.register("csv")
def load_csv(path: str, split: str, image_size: int | None, table=None):
    """`csv:<path>`: a table with a header row; the file is one split, which `--split` may slice
    (`train[:80%]`, `train[80%:]`); the encoder is fit on the whole file, so every slice of it
    is encoded alike."""
    name = f"csv:{path}"
    check_one_split(name, split)
    arrays, encoder = tabular.load_csv(path, table, compact=True)
    return from_table(name, split_examples(name, split, arrays), encoder)


PURCHASES_SIZES = {"train": 20000, "test": 5000}


@EMBEDDED.register("purchases")
def load_purchases(name: str, split: str, image_size: int | None, table=None):
    """`purchases`: customers and their purchases (a table; label `churned`, see `embedded.purchases`)."""
    base = _check_split(name, split)
    options = table or tabular.Options()
    encoder = options if isinstance(options, dict) else None
    if encoder is None:
        if options.schema is not None or options.missing not in (None, "impute"):
            raise UsageError(f"dataset {name!r} is embedded with a fixed schema; --schema and --missing "
                             "apply to csv:<path> tables")
        label = options.label if options.label is not None else "churned"
        if label and label not in embedded.PURCHASE_COLUMNS:
            raise UsageError(f"label column {label!r} is not a column of {name!r}; its columns: "
                             f"{', '.join(embedded.PURCHASE_COLUMNS)}")
        if label and embedded.PURCHASE_KINDS[label] == "continuous":
            raise UsageError(f"label column {label!r} is continuous; a label must be categorical, boolean or integer")
        _, encoder = tabular.table_from_columns(
            name, embedded.purchases(PURCHASES_SIZES["train"], EMBEDDED_SEEDS["train"]),
            embedded.PURCHASE_KINDS, label or None, private=options.private,
            declared=tabular.declarations({"columns": embedded.PURCHASE_DOMAINS}))
    table_rows = embedded.purchases(PURCHASES_SIZES[base], EMBEDDED_SEEDS[base])
    label = encoder["label"]["name"] if encoder["label"] else None
    arrays, _ = tabular.table_from_columns(name, table_rows, embedded.PURCHASE_KINDS, label, encoder)
    return from_table(name, split_examples(name, split, arrays), encoder, SPLITS)
