"""Every command-line flag, defined once.

Flags are optional here; each `main` says which it requires. A model's constructor argument
takes the value of the flag of the same name when that flag is given (on the command line or in
a flagfile); otherwise the model's own default applies (`zoo.base.GenerativeModel.arguments`).
"""

import os

from absl import flags

from zoo import MODELS, losses, networks, vae
from zoo.registry import UsageError

# -- what to train on, where to write --------------------------------------------------------
MODEL = flags.DEFINE_enum("model", None, MODELS.names(), "Model to train.")
DATASET = flags.DEFINE_string(
    "dataset", None,
    "Data source: tfds:<name>, npz:<path>, images:<dir>, csv:<path>, or an embedded dataset "
    "(shapes, ring, grid, purchases).",
)
SCHEMA = flags.DEFINE_string(
    "schema", None,
    'Tables: JSON file overriding inferred column kinds, e.g. {"columns": {"zip": "categorical"}, "label": "churn"} '
    "(kinds: continuous, integer, categorical, boolean, ignore).",
)
LABEL_COLUMN = flags.DEFINE_string(
    "label_column", None,
    "Tables: the label column conditional models generate for (categorical, boolean or integer with few values); "
    "purchases: churned by default, '' for none.",
)
MISSING = flags.DEFINE_enum(
    "missing", None, ["impute", "drop"],
    "Tables: missing cells are imputed (median / most frequent, plus a missing-indicator column; the default) "
    "or their rows dropped.",
)
SPLIT = flags.DEFINE_string("split", "train", "Split of the dataset to train on.")
EVAL_SPLIT = flags.DEFINE_string(
    "eval_split", "test",
    "Held-out split for the model's held-out metrics (e.g. the VAE's ELBO), when the dataset has it; "
    "'none' measures none.",
)
AUGMENT = flags.DEFINE_string(
    "augment", None,
    "Augment training images with Keras preprocessing layers, e.g. flip,rotate:0.1,zoom:0.1,translate:0.1,"
    "contrast:0.2,brightness:0.2 (names: flip, vflip, rotate, zoom, translate, contrast, brightness).",
)
IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "Resize images to this side length (needed for images of mixed sizes); at most 512, "
    "as the whole dataset is held resized in memory.", lower_bound=1, upper_bound=512,
)
MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Directory for checkpoints, TensorBoard events, pictures and config.json; "
    "training resumes from the latest checkpoint in it.",
)

# -- the loop ---------------------------------------------------------------------------------
TRAIN_STEPS = flags.DEFINE_integer("train_steps", 10000, "Train until this step.", lower_bound=1)
BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 64, "Examples per step, over all replicas (a multiple of their number).", lower_bound=1
)
STEPS_PER_CALL = flags.DEFINE_integer(
    "steps_per_call", 100, "Training steps run inside one compiled call.", lower_bound=1
)
CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", 1000, "Save every N steps.", lower_bound=1)
KEEP_CHECKPOINTS = flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints to keep.", lower_bound=1)
LOG_EVERY = flags.DEFINE_integer("log_every", 100, "Progress line and scalars every N steps.", lower_bound=1)
SAMPLE_EVERY = flags.DEFINE_integer("sample_every", 1000, "Picture of samples every N steps.", lower_bound=1)
EMA_DECAY = flags.DEFINE_float(
    "ema_decay", 0.0, "Decay of the moving average of generator weights used for pictures and export "
    "(e.g. 0.999); 0 turns it off.",
    lower_bound=0.0, upper_bound=0.99999,
)
SHUFFLE_BUFFER = flags.DEFINE_integer("shuffle_buffer", 10000, "Shuffle buffer size.", lower_bound=1)
SEED = flags.DEFINE_integer("seed", 0, "Seed of the data order and the model's random streams.")
JIT_COMPILE = flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
DETERMINISTIC = flags.DEFINE_bool(
    "deterministic", False, "Deterministic ops and weight initialisation from --seed: the same command gives "
    "bit-identical weights, also when killed and resumed (slower; see README).",
)
NAN_POLICY = flags.DEFINE_enum(
    "nan_policy", "stop", ["stop", "rollback"], "On a non-finite loss: stop with an error, or reload the last "
    "checkpoint and skip past the batches that led to it (at most --max_rollbacks times).",
)
MAX_ROLLBACKS = flags.DEFINE_integer(
    "max_rollbacks", 3, "Rollbacks allowed by --nan_policy=rollback before the run stops.", lower_bound=0
)
STRATEGY = flags.DEFINE_enum(
    "strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
    "Where to train: one device (default), all local devices (mirrored), several machines with the "
    "cluster in TF_CONFIG (multi_worker), or a TPU (tpu). --batch_size is the global batch.",
)
TPU = flags.DEFINE_string("tpu", "", "TPU name or grpc:// address for --strategy=tpu (empty: the local one).")
PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
    "Compute dtype of the layers (variables and final layers stay float32; float16 adds loss scaling).",
)
VERBOSE = flags.DEFINE_bool("verbose", False, "Show tracebacks of errors and TensorFlow's info logs.")

# -- export and sampling ---------------------------------------------------------------------
EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None,
    "Export base directory: each export is a numbered SavedModel version in it, as TF Serving watches.",
)
MAX_SAMPLES = flags.DEFINE_integer(
    "max_samples", 1024, "Most samples one request to an export may ask for.", lower_bound=1
)
SERVING_NAME = flags.DEFINE_string(
    "serving_name", None, "Model name in the exported models.config (default: the export directory's name)."
)
SERVING_BASE_PATH = flags.DEFINE_string(
    "serving_base_path", None,
    "Base path of the model as TF Serving sees it, in models.config (default: /models/<serving_name>).",
)
USE_EMA = flags.DEFINE_bool(
    "use_ema", True, "Use the moving-average generator weights when the run kept them."
)
NUM_SAMPLES = flags.DEFINE_integer("num_samples", None, "Number of samples to write.")
OUTPUT = flags.DEFINE_string("output", None, "File (npz, tfrecord, csv) or folder (png) to write the samples to.")
FORMAT = flags.DEFINE_enum("format", None, ["npz", "png", "tfrecord", "csv"],
                           "Output format (default: from the --output extension; png for a folder; csv for tables).")
CHUNK_SIZE = flags.DEFINE_integer("chunk_size", 1024, "Samples generated and written at a time.", lower_bound=1)
CLASS_BALANCE = flags.DEFINE_enum(
    "class_balance", "uniform", ["uniform", "real"],
    "Classes of conditional samples: equal counts, or the training data's class frequencies.",
)
CLASSES = flags.DEFINE_list(
    "classes", None, "Classes (indices or names) to draw conditional samples of (default: all)."
)
OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")

# -- blending ---------------------------------------------------------------------------------
RATIO = flags.DEFINE_float("ratio", 0.5, "Share of synthetic data in a blend (mix), or its weight (interpolate).")
BLEND_METHOD = flags.DEFINE_enum(
    "method", "mix", ["mix", "interpolate"],
    "mix: each example is real or synthetic; interpolate: x = (1 - ratio) * real + ratio * synthetic.",
)
NUM_EXAMPLES = flags.DEFINE_integer("num_examples", None, "Number of examples to write.")
RATIOS = flags.DEFINE_list("ratios", ["0", "0.25", "0.5", "0.75"], "Shares of synthetic data on the utility curve.")
CLASSIFIER_STEPS = flags.DEFINE_integer(
    "classifier_steps", 1500, "Training steps of each classifier on the utility curve.", lower_bound=1
)
REPEATS = flags.DEFINE_integer("repeats", 3, "Trainings (seeds) per ratio on the utility curve.", lower_bound=1)

# -- evaluation -------------------------------------------------------------------------------
REPORT_DIR = flags.DEFINE_string(
    "report_dir", None, "Where the evaluation report goes (default: <model_dir or export_dir>/evaluation)."
)
CACHE_DIR = flags.DEFINE_string(
    "cache_dir", os.path.join(os.path.expanduser("~"), ".cache", "synthblend"),
    "Cache of domain classifiers, by dataset and data fingerprint.",
)
REAL_EXAMPLES = flags.DEFINE_integer(
    "real_examples", 20000, "Real training examples read for the classifier, the floors and memorisation.",
    lower_bound=10,
)
INCEPTION_WEIGHTS = flags.DEFINE_string(
    "inception_weights", None,
    "Local Inception-v3 weights (include_top=False) for FID beside the domain-classifier measures.",
)

# -- models (constructor arguments by name) ---------------------------------------------------
flags.DEFINE_integer("latent_dim", None, "Size of the generator's input noise.", lower_bound=1)
flags.DEFINE_integer("width", None, "Hidden units (MLPs) or base convolution channels.", lower_bound=1)
flags.DEFINE_integer("discriminator_depth", None, "Stride-2 convolutions of the DCGAN discriminator "
                      "(default: as many as the generator upsamples).", lower_bound=1)
flags.DEFINE_integer("depth", None, "Hidden layers per MLP.", lower_bound=1)
flags.DEFINE_enum("loss", None, sorted(losses.GAN_LOSSES), "GAN loss family.")
flags.DEFINE_float("gradient_penalty_weight", None, "Weight of the gradient penalty (wasserstein_gp).",
                   lower_bound=0.0)
flags.DEFINE_float("classifier_weight", None,
                   "Weight of the AC-GAN auxiliary classifier loss (conditional gan/dcgan; 0: projection only).",
                   lower_bound=0.0)
flags.DEFINE_string("diffaugment", None,
                    "DiffAugment policies for GANs on images (gan, dcgan, infogan): any of color,translation,cutout.")
flags.DEFINE_float("generator_learning_rate", None, "Adam learning rate of the generator.", lower_bound=0.0)
flags.DEFINE_float("discriminator_learning_rate", None, "Adam learning rate of the discriminator.",
                   lower_bound=0.0)
flags.DEFINE_float("beta_1", None, "Adam beta_1.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("beta_2", None, "Adam beta_2.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("gumbel_temperature", None,
                   "gan on tables: Gumbel-softmax temperature of the generator's category columns while training "
                   "(0: plain softmax).", lower_bound=0.0)
flags.DEFINE_enum("discriminator_norm", None, list(networks.NORMS),
                  "Normalisation in the dcgan/infogan discriminator.")
CONDITIONAL = flags.DEFINE_bool("conditional", None, "Condition generation on the dataset's labels (gan, dcgan, vae).")
flags.DEFINE_enum("likelihood", None, list(vae.LIKELIHOODS), "VAE likelihood: bernoulli (images) or gaussian.")
flags.DEFINE_float("beta", None, "Weight of the VAE's KL term (beta-VAE).", lower_bound=0.0)
flags.DEFINE_float("learning_rate", None, "Adam learning rate (vae).", lower_bound=0.0)
flags.DEFINE_integer("categories", None, "Values of InfoGAN's categorical code.", lower_bound=2)
flags.DEFINE_integer("continuous_codes", None, "Number of InfoGAN's continuous codes.", lower_bound=1)
flags.DEFINE_float("categorical_weight", None, "Weight of InfoGAN's categorical information term.", lower_bound=0.0)
flags.DEFINE_float("continuous_weight", None, "Weight of InfoGAN's continuous information term.", lower_bound=0.0)
flags.DEFINE_string("code_invariance", None,
                    "Transforms InfoGAN's Q reads the categorical code through, so the code cannot encode what "
                    "they change: any of centre, color, translation, cutout, scale, rotation (e.g. centre,rotation).")
flags.DEFINE_float("clustering_weight", None,
                   "InfoGAN with --code_invariance: weight of the term that has Q give two views of each real "
                   "image the same categorical code (invariant information clustering).", lower_bound=0.0)

FLAGS = flags.FLAGS


def table_options():
    """The table flags as `datasets.tabular.Options` (ignored by sources that are not tables)."""
    from datasets import tabular

    return tabular.Options(schema=SCHEMA.value, label=LABEL_COLUMN.value, missing=MISSING.value)


def model_arguments(model_name: str) -> dict:
    """Constructor arguments of the registered model `model_name` that were set by a flag of the
    same name. A flag that is another model's setting and not this one's (`--categories` with
    `--model=dcgan`) is a UsageError naming the models it applies to, not silently ignored."""
    given = {name for name in FLAGS if FLAGS[name].present and FLAGS[name].value is not None}
    accepted = MODELS.get(model_name).arguments()
    for name in sorted(given - set(accepted)):
        users = [other for other in MODELS.names() if name in MODELS.get(other).arguments()]
        if users:
            raise UsageError(f"--{name} does not apply to --model={model_name}; it is a setting of {', '.join(users)}")
    return {name: FLAGS[name].value for name in accepted if name in given}
