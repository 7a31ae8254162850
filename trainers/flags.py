"""Every command-line flag, declared once; each command defines the ones it reads.

Importing this module defines no flag anywhere: `declare` records a flag, and a command's
`cli.execute` defines its own flags (a tuple below, such as `TRAIN`) into a fresh
`absl.flags.FlagValues` when it runs, so `--help` lists that command's flags and a flag of
another command is refused. Code reads a flag through its holder (`MODEL.value`), which looks it
up in the flags of the command that is running.

Flags are optional here; each `main` says which it requires. A model's constructor argument
takes the value of the flag of the same name when that flag is given (on the command line or in
a flagfile); otherwise the model's own default applies (`zoo.base.GenerativeModel.arguments`).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import inspect
import math
import os
import re

from absl import flags

from synthblend.zoo import MODELS, losses, networks, vae
from synthblend.zoo.registry import UsageError

_PARSED: list[flags.FlagValues] = []  # the running command's flags, innermost last


class Flag:
    """A declared flag: defined into a command's `FlagValues` by `define`, read through `value`."""

    def __init__(self, define, name: str, *args, **kwargs):
        self.name, self._define, self._args, self._kwargs = name, define, args, kwargs

    def define(self, flag_values: flags.FlagValues) -> None:
        self._define(self.name, *self._args, flag_values=flag_values, **self._kwargs)

    def _parsed(self):
        if not _PARSED:
            raise RuntimeError(f"--{self.name} is read outside a command; pass the value as an argument instead")
        return _PARSED[-1][self.name]

    @property
    def value(self):
        return self._parsed().value

    @property
    def present(self) -> bool:
        return bool(self._parsed().present)

    @property
    def defined(self) -> bool:
        """Whether the running command has this flag."""
        return bool(_PARSED) and self.name in _PARSED[-1]


def declare(define, name: str, *args, **kwargs) -> Flag:
    return Flag(define, name, *args, **kwargs)


# -- values checked as they are parsed: a bad one is `flag --name=<as given>: <why>`, exit 2 ------
INT32 = 2**31 - 1  # counts and seeds become int32/int64 tensors; nothing meaningful is larger


class FiniteFloat(flags.FloatParser):
    """A float in a range, never NaN or infinite (absl's own bounds let `nan` through).
    `lower`/`upper` are inclusive, `above`/`below` exclusive."""

    def __init__(self, lower=None, upper=None, above=None, below=None):
        super().__init__()
        self.lower, self.upper, self.above, self.below = lower, upper, above, below
        low = f"[{lower:g}" if lower is not None else f"({above:g}" if above is not None else None
        high = f"{upper:g}]" if upper is not None else f"{below:g})" if below is not None else None
        if low and high:
            bounds = f" in {low}, {high}"
        elif low:
            bounds = f" >= {lower:g}" if lower is not None else f" > {above:g}"
        elif high:
            bounds = f" <= {upper:g}" if upper is not None else f" < {below:g}"
        else:
            bounds = ""
        self.syntactic_help = "a finite number" + bounds

    def is_outside_bounds(self, value) -> bool:
        return (not math.isfinite(value) or (self.lower is not None and value < self.lower)
                or (self.upper is not None and value > self.upper) or (self.above is not None and value <= self.above)
                or (self.below is not None and value >= self.below))


class Text(flags.ArgumentParser):
    """A string flag that cannot be empty (or only spaces): given empty, it would silently fall
    back to its default or mean nothing. `pattern` (a regular expression the whole value must
    match) and `accepted` (what to say is accepted) check its form."""

    def __init__(self, accepted: str = "a non-empty value", pattern: str | None = None):
        super().__init__()
        self.accepted, self.pattern = accepted, pattern

    def parse(self, argument):
        if argument is None:
            return None
        text = super().parse(argument)
        if not text.strip():
            raise ValueError(f"empty; give {self.accepted}")
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise ValueError(f"{text!r} is not {self.accepted}")
        return text


class Items(flags.ListParser):
    """A comma-separated list of distinct items, none empty (`a,,b`, `a,`), and not empty itself
    (`--name=`); `check(item)` returns why an item is bad, or None."""

    def __init__(self, what: str, check=None):
        super().__init__()
        self.what, self.check = what, check

    def parse(self, argument):
        items = super().parse(argument)
        if not items:
            raise ValueError(f"names no {self.what}; give one or more, separated by commas")
        for item in items:
            if not item:
                raise ValueError(f"an empty {self.what} between commas; give each {self.what} once")
            problem = self.check(item) if self.check else None
            if problem:
                raise ValueError(problem)
        duplicates = sorted({item for item in items if items.count(item) > 1})
        if duplicates:
            raise ValueError(f"{duplicates[0]!r} is given twice; give each {self.what} once")
        return items


def parsed(parser, serializer=None):
    """A `define` for `declare` that parses values with `parser` (see FiniteFloat, Text, Items)."""

    def define(name, default, help_text, flag_values):
        flags.DEFINE(parser, name, default, help_text, flag_values=flag_values, serializer=serializer)

    return define


def finite(**bounds):
    """A float flag: a finite number within `bounds` (FiniteFloat's lower, upper, above, below)."""
    return parsed(FiniteFloat(**bounds))


def text(accepted: str = "a non-empty value", pattern: str | None = None):
    """A string flag that must not be empty (see Text)."""
    return parsed(Text(accepted, pattern))


def items(what: str, check=None):
    """A list flag of non-empty, distinct items (see Items)."""
    return parsed(Items(what, check), flags.CsvListSerializer(","))


def share(item: str) -> str | None:
    """Why `item` is not a share of synthetic data in [0, 1), or None."""
    try:
        value = float(item)
    except ValueError:
        return f"{item!r} is not a number; give shares of synthetic data in [0, 1)"
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        return f"{item} is not a share of synthetic data in [0, 1)"
    return None


# TF Serving finds a model by this name in URLs (/v1/models/<name>) and its config.
SERVING_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
SERVING_NAME_ACCEPTED = "a model name of letters, digits, '.', '_' and '-' (TF Serving's URLs name the model)"


@contextlib.contextmanager
def bound(flag_values: flags.FlagValues):
    """Flag holders read `flag_values` inside this block (a command's run)."""
    _PARSED.append(flag_values)
    try:
        yield
    finally:
        _PARSED.pop()


# -- what to train on, where to write --------------------------------------------------------
MODEL = declare(flags.DEFINE_enum, "model", None, MODELS.names(), "Model to train.")
DATASET = declare(text("a data source"),
    "dataset", None,
    "Data source: tfds:<name>, npz:<path>, images:<dir>, csv:<path>, or an embedded dataset "
    "(shapes, ring, grid, purchases).",
)
SCHEMA = declare(text("the path of a JSON file"),
    "schema", None,
    'Tables: JSON file overriding inferred column kinds, e.g. {"columns": {"zip": "categorical"}, "label": "churn"} '
    "(kinds: continuous, integer, categorical, boolean, datetime, ignore; private runs declare each column's "
    'domain, e.g. {"age": {"kind": "integer", "bounds": [18, 90]}}).',
)
LABEL_COLUMN = declare(flags.DEFINE_string,
    "label_column", None,
    "Tables: the label column conditional models generate for (categorical, boolean or integer with few values); "
    "purchases: churned by default, '' for none.",
)
MISSING = declare(flags.DEFINE_enum,
    "missing", None, ["impute", "drop"],
    "Tables: missing cells are imputed (median / most frequent, plus a missing-indicator column; the default) "
    "or their rows dropped.",
)
SPLIT = declare(text("a split such as train or train[:80%]"), "split", "train",
        "Split of --dataset to read: to train on (train), or the real examples to blend with (blend, utility); "
        "a slice such as train[:80%] takes part of it. npz:, images: and csv: sources are one split, train.")
EVAL_SPLIT = declare(text("a split such as test, or none"),
    "eval_split", "test",
    "Held-out split for the model's held-out metrics (the VAE's ELBO; other models have none), when the dataset "
    "has it; 'none' measures none.",
)
HOLDOUT = declare(finite(lower=0.0, upper=0.9),
    "holdout", None,
    "Share of the examples set aside before training and never trained on, for evaluate, utility and the "
    "memorisation and attack measures; by default 0.1 for sources without a test split (npz:, csv:, images:, "
    "data given to fit), none for sources with one. 0 trains on every example.",
)
TEST_DATA = declare(text("a data source"),
    "test_data", None,
    "Real data to measure against instead of the run's own held-out examples: a source as for --dataset "
    "(csv:<path>, npz:<path>, images:<dir>, tfds:<name>, an embedded dataset), read with --test_split.",
)
TEST_SPLIT = declare(text("a split such as test or train[:50%]"),
    "test_split", None,
    "Split of --test_data to read (default: test where it has one, else train, the whole file).",
)
AUGMENT = declare(flags.DEFINE_string,
    "augment", None,
    "Augment training images with Keras preprocessing layers, e.g. flip,rotate:0.1,zoom:0.1,translate:0.1,"
    "contrast:0.2,brightness:0.2 (names: flip, vflip, rotate, zoom, translate, contrast, brightness; '' for none).",
)
IMAGE_SIZE = declare(flags.DEFINE_integer,
    "image_size", None, "Resize images to this side length (needed for images of mixed sizes); at most 512 "
    "(datasets that fit in memory are held there resized).", lower_bound=1, upper_bound=512,
)
MODEL_DIR = declare(text("a directory"),
    "model_dir", None, "A run's directory (config.json, checkpoints, TensorBoard events, pictures): train "
    "writes it and resumes from its latest checkpoint; the other commands read that checkpoint.",
)

# -- the loop ---------------------------------------------------------------------------------
TRAIN_STEPS = declare(flags.DEFINE_integer, "train_steps", 10000, "Train until this step.", lower_bound=1,
                      upper_bound=INT32)
BATCH_SIZE = declare(flags.DEFINE_integer,
    "batch_size", 64, "Examples per step, over all replicas (a multiple of their number); at most 65536, as a "
    "batch is held in memory.", lower_bound=1, upper_bound=65536,
)
STEPS_PER_CALL = declare(flags.DEFINE_integer,
    "steps_per_call", 100, "Training steps run inside one compiled call.", lower_bound=1, upper_bound=INT32
)
CHECKPOINT_EVERY = declare(flags.DEFINE_integer, "checkpoint_every", 1000, "Save every N steps.", lower_bound=1,
                           upper_bound=INT32)
KEEP_CHECKPOINTS = declare(flags.DEFINE_integer, "keep_checkpoints", 3, "Checkpoints to keep.", lower_bound=1,
                           upper_bound=INT32)
LOG_EVERY = declare(flags.DEFINE_integer, "log_every", 100, "Progress line and scalars every N steps.", lower_bound=1,
                    upper_bound=INT32)
SAMPLE_EVERY = declare(flags.DEFINE_integer, "sample_every", 1000, "Picture of samples every N steps.", lower_bound=1,
                       upper_bound=INT32)
EMA_DECAY = declare(finite(lower=0.0, upper=0.99999),
    "ema_decay", 0.0, "Decay of the moving average of generator weights used for pictures and export "
    "(e.g. 0.999); 0 turns it off.",
)
SHUFFLE_BUFFER = declare(flags.DEFINE_integer, "shuffle_buffer", None, "Shuffle buffer size of streamed sources "
                         "(tfds:; examples held in memory; default 10000, at most 10000000). Data held in memory and "
                         "image folders are drawn as a new permutation each epoch instead.",
                         lower_bound=1, upper_bound=10_000_000)
SEED = declare(flags.DEFINE_integer, "seed", 0, "Seed of the data order and the model's random streams "
               "(0 to 2147483647).", lower_bound=0, upper_bound=INT32)
JIT_COMPILE = declare(flags.DEFINE_bool, "jit_compile", False, "Compile the training step with XLA.")
DETERMINISTIC = declare(flags.DEFINE_bool,
    "deterministic", False, "Deterministic ops and weight initialisation from --seed: the same command gives "
    "bit-identical weights, also when killed and resumed (slower; see docs/resuming.md).",
)
NAN_POLICY = declare(flags.DEFINE_enum,
    "nan_policy", "stop", ["stop", "rollback"], "On a non-finite loss: stop with an error, or reload the last "
    "checkpoint and skip past the batches that led to it (at most --max_rollbacks times).",
)
MAX_ROLLBACKS = declare(flags.DEFINE_integer,
    "max_rollbacks", 3, "Rollbacks allowed by --nan_policy=rollback before the run stops.", lower_bound=0,
    upper_bound=INT32,
)
STRATEGY = declare(flags.DEFINE_enum,
    "strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
    "Where to train: one device (default), all local devices (mirrored), several machines with the "
    "cluster in TF_CONFIG (multi_worker), or a TPU (tpu). --batch_size is the global batch.",
)
TPU = declare(flags.DEFINE_string, "tpu", "", "TPU name or grpc:// address for --strategy=tpu (empty: the local one).")
PRECISION = declare(flags.DEFINE_enum,
    "precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
    "Compute dtype of the layers (variables and final layers stay float32; float16 adds loss scaling).",
)
VERBOSE = declare(flags.DEFINE_bool, "verbose", False, "Show tracebacks of errors and TensorFlow's info logs.")

# -- differential privacy ----------------------------------------------------------------------
TARGET_EPSILON = declare(finite(above=0.0, upper=1000.0),
    "target_epsilon", None, "Train with DP-SGD within this privacy budget: the noise is calibrated so that "
    "--train_steps steps spend it, and no step goes beyond it.",
)
NOISE_MULTIPLIER = declare(finite(above=0.0, upper=1000.0),
    "noise_multiplier", None, "Train with DP-SGD at this noise (standard deviation / --l2_norm_clip); the epsilon "
    "follows (with --target_epsilon too: training stops where the budget ends).",
)
L2_NORM_CLIP = declare(finite(above=0.0, upper=1e6),
    "l2_norm_clip", 1.0, "DP-SGD: each example's gradient is clipped to this L2 norm.",
)
DELTA = declare(finite(above=0.0, below=1.0),
    "delta", None, "DP-SGD: the delta of (epsilon, delta); below 1/N (default: the power of ten below 1/(10 N)).",
)
ACCOUNTANT = declare(flags.DEFINE_enum,
    "accountant", "rdp", ["rdp", "pld"], "DP-SGD: the privacy accountant, Renyi DP (rdp) or privacy loss "
    "distributions (pld, tighter).",
)
PRIVACY = (TARGET_EPSILON, NOISE_MULTIPLIER, L2_NORM_CLIP, DELTA, ACCOUNTANT)

# -- export and sampling ---------------------------------------------------------------------
EXPORT_DIR = declare(text("a directory"),
    "export_dir", None,
    "Export base directory: each export is a numbered SavedModel version in it, as TF Serving watches.",
)
MAX_SAMPLES = declare(flags.DEFINE_integer,
    "max_samples", 1024, "Most samples one request to an export may ask for (at most 65536: a request is "
    "answered in memory).", lower_bound=1, upper_bound=65536
)
SERVING_NAME = declare(text(SERVING_NAME_ACCEPTED, SERVING_NAME_PATTERN),
    "serving_name", None, "Model name in the exported models.config (default: the export directory's name)."
)
SERVING_BASE_PATH = declare(text("an absolute path (/models/shapes) or a URI (gs://bucket/shapes) as TF Serving "
                                 "reads it", r"(/|[A-Za-z][A-Za-z0-9+.-]*://)[^\x00-\x1f]*"),
    "serving_base_path", None,
    "Base path of the model as TF Serving sees it, in models.config (default: /models/<serving_name>).",
)
USE_EMA = declare(flags.DEFINE_bool,
    "use_ema", True, "Use the moving-average generator weights when the run kept them."
)
NUM_SAMPLES = declare(flags.DEFINE_integer, "num_samples", None, "Number of samples to write.", lower_bound=1,
                      upper_bound=INT32)
OUTPUT = declare(text("a file or folder"),
    "output", None, "File (npz, tfrecord, csv) or folder (png) to write the samples to.")
FORMAT = declare(flags.DEFINE_enum, "format", None, ["npz", "png", "tfrecord", "csv"],
        "Output format (default: from the --output extension; png for a folder; csv for tables).")
CHUNK_SIZE = declare(flags.DEFINE_integer,
    "chunk_size", 1024, "Samples generated and written at a time (at most 65536, held in memory).", lower_bound=1,
    upper_bound=65536)
CLASS_BALANCE = declare(flags.DEFINE_enum,
    "class_balance", "real", ["real", "uniform"],
    "Classes of conditional samples: the training data's class shares, or equal counts.",
)
CLASSES = declare(items("class"),
    "classes", None, "Classes (indices or names) to draw conditional samples of (default: all)."
)
OVERWRITE = declare(flags.DEFINE_bool, "overwrite", False, "Replace an existing --output.")

# -- blending ---------------------------------------------------------------------------------
RATIO = declare(flags.DEFINE_float,
    "ratio", 0.5, "Share of synthetic data in a blend (mix), or its weight (interpolate).")
BLEND_METHOD = declare(flags.DEFINE_enum,
    "method", "mix", ["mix", "interpolate"],
    "mix: each example is real or synthetic; interpolate: x = (1 - ratio) * real + ratio * synthetic.",
)
NUM_EXAMPLES = declare(flags.DEFINE_integer, "num_examples", None, "Number of examples to write.", lower_bound=1,
                       upper_bound=INT32)
RATIOS = declare(items("share", share),
    "ratios", ["0", "0.25", "0.5", "0.75"], "Shares of synthetic data on the utility curve, each in [0, 1).")
CLASSIFIER_STEPS = declare(flags.DEFINE_integer,
    "classifier_steps", 1500, "Training steps of each classifier on the utility curve.", lower_bound=1,
    upper_bound=INT32,
)
REPEATS = declare(flags.DEFINE_integer,
    "repeats", 3, "Trainings (seeds) per ratio on the utility curve.", lower_bound=1, upper_bound=INT32)

# -- evaluation -------------------------------------------------------------------------------
REPORT_DIR = declare(text("a directory"),
    "report_dir", None, "Where the evaluation report goes (default: <model_dir or export_dir>/evaluation)."
)
CACHE_DIR = declare(text("a directory"),
    "cache_dir", os.path.join(os.path.expanduser("~"), ".cache", "synthblend"),
    "Cache of domain classifiers, by dataset and data fingerprint.",
)
REAL_EXAMPLES = declare(flags.DEFINE_integer,
    "real_examples", 20000, "Real training examples read for the classifier, the floors and memorisation.",
    lower_bound=10, upper_bound=INT32,
)
INCEPTION_WEIGHTS = declare(text("the path of a weights file"),
    "inception_weights", None,
    "Local Inception-v3 weights (include_top=False) for FID beside the domain-classifier measures.",
)

# -- models (constructor arguments by name) ---------------------------------------------------
MODEL_OPTIONS = (
    declare(flags.DEFINE_integer, "latent_dim", None, "Size of the generator's input noise (at most 4096).",
        lower_bound=1, upper_bound=4096),
    declare(flags.DEFINE_integer, "width", None, "Hidden units (MLPs) or base convolution channels (at most 4096).",
        lower_bound=1, upper_bound=4096),
    declare(flags.DEFINE_integer, "discriminator_depth", None, "Stride-2 convolutions of the DCGAN discriminator "
        "(default: as many as the generator upsamples).", lower_bound=1, upper_bound=16),
    declare(flags.DEFINE_integer, "depth", None, "Hidden layers per MLP (at most 64).", lower_bound=1, upper_bound=64),
    declare(flags.DEFINE_enum, "loss", None, sorted(losses.GAN_LOSSES), "GAN loss family."),
    declare(finite(above=0.0), "gradient_penalty_weight", None,
        "Weight of the gradient penalty (--loss=wasserstein_gp; > 0, as without it the critic is unconstrained)."),
    declare(finite(lower=0.0), "classifier_weight", None,
        "Weight of the AC-GAN auxiliary classifier loss (conditional gan/dcgan; 0: projection only)."),
    declare(flags.DEFINE_string, "diffaugment", None,
        "DiffAugment policies for GANs on images (gan, dcgan, infogan): any of color,translation,cutout "
        "('' for none)."),
    declare(flags.DEFINE_integer, "discriminator_steps", None, "GANs: discriminator updates per generator update "
        "(1 to 1000; more help under differential privacy).", lower_bound=1, upper_bound=1000),
    declare(finite(above=0.0), "generator_learning_rate", None, "Adam learning rate of the generator (> 0)."),
    declare(finite(above=0.0), "discriminator_learning_rate", None, "Adam learning rate of the discriminator (> 0)."),
    declare(finite(lower=0.0, below=1.0), "beta_1", None, "Adam beta_1, in [0, 1)."),
    declare(finite(lower=0.0, below=1.0), "beta_2", None,
        "Adam beta_2, in [0, 1) (at 1 Adam's bias correction divides by zero)."),
    declare(finite(lower=0.0), "gumbel_temperature", None,
        "gan on tables: Gumbel-softmax temperature of the generator's category columns while training "
        "(0: plain softmax)."),
    declare(flags.DEFINE_enum, "discriminator_norm", None, list(networks.NORMS),
        "Normalisation in the dcgan/infogan discriminator."),
    declare(flags.DEFINE_bool, "conditional", None, "Condition generation on the dataset's labels (gan, dcgan, vae)."),
    declare(flags.DEFINE_enum,
        "likelihood", None, list(vae.LIKELIHOODS), "VAE likelihood: bernoulli (images) or gaussian."),
    declare(finite(lower=0.0), "beta", None, "Weight of the VAE's KL term (beta-VAE)."),
    declare(flags.DEFINE_enum, "decoder_norm", None, ["batch", "layer", "none"],
        "Normalisation in the image VAE's decoder (layer or none for differentially private training)."),
    declare(finite(above=0.0), "learning_rate", None, "Adam learning rate (vae; > 0)."),
    declare(flags.DEFINE_integer, "categories", None, "Values of InfoGAN's categorical code (2 to 1000).",
        lower_bound=2, upper_bound=1000),
    declare(flags.DEFINE_integer, "continuous_codes", None, "Number of InfoGAN's continuous codes (1 to 1000).",
        lower_bound=1, upper_bound=1000),
    declare(finite(lower=0.0), "categorical_weight", None, "Weight of InfoGAN's categorical information term."),
    declare(finite(lower=0.0), "continuous_weight", None, "Weight of InfoGAN's continuous information term."),
    declare(flags.DEFINE_string, "code_invariance", None,
        "Transforms InfoGAN's Q reads the categorical code through, so the code cannot encode what "
        "they change: any of centre, color, translation, cutout, scale, rotation (e.g. centre,rotation; '' for "
        "none)."),
    declare(finite(lower=0.0), "clustering_weight", None,
        "InfoGAN with --code_invariance: weight of the term that has Q give two views of each real "
        "image the same categorical code (invariant information clustering)."),
)

CONDITIONAL = next(flag for flag in MODEL_OPTIONS if flag.name == "conditional")
RECIPE = declare(
    flags.DEFINE_string, "recipe", None,
    "A recipe shipped with the package, by name (e.g. dcgan_shapes): its flags are read as from "
    "--flagfile=configs/<name>.cfg, and flags given after it override them.",
)

# -- what each command reads -------------------------------------------------------------------
TABLE = (SCHEMA, LABEL_COLUMN, MISSING)
LOOP = (TRAIN_STEPS, BATCH_SIZE, STEPS_PER_CALL, CHECKPOINT_EVERY, KEEP_CHECKPOINTS, LOG_EVERY, SAMPLE_EVERY,
        EMA_DECAY, SHUFFLE_BUFFER, SEED, JIT_COMPILE, DETERMINISTIC, NAN_POLICY, MAX_ROLLBACKS, STRATEGY, TPU,
        PRECISION)
TRAINED = (MODEL_DIR, EXPORT_DIR, USE_EMA)  # where samples come from: a run or an export
COMMANDS = {
    "train": (RECIPE, MODEL, DATASET, *TABLE, SPLIT, HOLDOUT, EVAL_SPLIT, AUGMENT, IMAGE_SIZE, MODEL_DIR, *LOOP,
              *PRIVACY, *MODEL_OPTIONS),
    "sample": (*TRAINED, NUM_SAMPLES, OUTPUT, FORMAT, CHUNK_SIZE, CLASS_BALANCE, CLASSES, OVERWRITE, SEED),
    "export": (MODEL_DIR, EXPORT_DIR, USE_EMA, MAX_SAMPLES, SERVING_NAME, SERVING_BASE_PATH),
    "evaluate": (*TRAINED, NUM_SAMPLES, SEED, REPORT_DIR, CACHE_DIR, REAL_EXAMPLES, INCEPTION_WEIGHTS, TEST_DATA,
                 TEST_SPLIT),
    "blend": (*TRAINED, DATASET, SPLIT, IMAGE_SIZE, RATIO, BLEND_METHOD, NUM_EXAMPLES, OUTPUT, OVERWRITE,
              CLASS_BALANCE, SEED),
    "utility": (*TRAINED, DATASET, SPLIT, IMAGE_SIZE, RATIOS, CLASSIFIER_STEPS, REPEATS, BATCH_SIZE, REPORT_DIR,
                SEED, TEST_DATA, TEST_SPLIT),
}


def recipes() -> list[str]:
    """The recipes shipped in `synthblend.configs`, by name."""
    folder = importlib.resources.files("synthblend.configs")
    return sorted(entry.name[:-4] for entry in folder.iterdir() if entry.name.endswith(".cfg"))


def recipe_path(name: str) -> str:
    """The flagfile of the recipe `name` shipped in `synthblend.configs`; UsageError naming the
    recipes there otherwise."""
    if name not in recipes():
        raise UsageError(f"--recipe={name}: no such recipe; accepted: {', '.join(recipes())}")
    return os.fspath(importlib.resources.files("synthblend.configs") / f"{name}.cfg")


def table_options():
    """The table flags as `datasets.tabular.Options` (ignored by sources that are not tables)."""
    from synthblend.datasets import tabular

    return tabular.Options(schema=SCHEMA.value, label=LABEL_COLUMN.value, missing=MISSING.value)


def model_arguments(model_name: str) -> dict:
    """Constructor arguments of the registered model `model_name` that were set by a flag of the
    same name. A flag that is another model's setting and not this one's (`--categories` with
    `--model=dcgan`) is a UsageError naming the models it applies to, not silently ignored."""
    given = {flag.name: flag.value for flag in MODEL_OPTIONS if flag.present and flag.value is not None}
    accepted = MODELS.get(model_name).arguments()
    for name in sorted(set(given) - set(accepted)):
        users = [other for other in MODELS.names() if name in MODELS.get(other).arguments()]
        raise UsageError(f"--{name} does not apply to --model={model_name}; it is a setting of {', '.join(users)}")
    check_model_options(model_name, given)
    return given


def model_default(model_name: str, name: str):
    """The default of the constructor argument `name` of the registered model `model_name`."""
    for klass in MODELS.get(model_name).__mro__:
        init = klass.__dict__.get("__init__")
        parameter = inspect.signature(init).parameters.get(name) if init is not None else None
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return None


def check_model_options(model_name: str, given: dict) -> None:
    """UsageError for a model flag given where the other model flags leave it nothing to do."""
    if "gradient_penalty_weight" in given:
        loss = given.get("loss") or model_default(model_name, "loss")
        if not losses.GAN_LOSSES[loss].uses_gradient_penalty:
            users = ", ".join(name for name, family in sorted(losses.GAN_LOSSES.items())
                              if family.uses_gradient_penalty)
            raise UsageError(f"--gradient_penalty_weight={given['gradient_penalty_weight']:g} applies to "
                             f"--loss={users} only; --model={model_name} trains with --loss={loss} here")
    if "classifier_weight" in given and not given.get("conditional"):
        raise UsageError(f"--classifier_weight={given['classifier_weight']:g} applies to conditional models only; "
                         "add --conditional, or drop it")
    if "clustering_weight" in given and not given.get("code_invariance"):
        raise UsageError(f"--clustering_weight={given['clustering_weight']:g} applies with --code_invariance only "
                         "(the transforms that make the two views of a real image)")
