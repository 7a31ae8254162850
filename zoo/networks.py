"""Network builders the models share: MLPs, the DCGAN convolutional stacks, label conditioning,
and the per-block output activation of table rows.

Bodies map a vector to data (generators, decoders); trunks map data to a feature vector
(discriminators, encoders), on which the models put their own heads. Each is a functional
`keras.Model` with a named input, so networks print, save and export cleanly on their own.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers

from synthblend.zoo.registry import UsageError

# Side of the first feature map of the DCGAN generator, per supported image side: the
# generator doubles it with each transposed convolution up to the image side.
DCGAN_START = {28: 7, 32: 4, 64: 4, 128: 4}
# The most channels of the DCGAN stacks, in multiples of `width` (16: 1024 channels at width 64,
# DCGAN's own 4x4x1024 at 64x64); larger images add layers, not channels.
DCGAN_MAX_MULTIPLE = 16
NORMS = ("batch", "layer", "spectral", "none")


def max_trunk_depth(side: int) -> int:
    """The most stride-2 convolutions a DCGAN trunk takes on images of `side` (down to 2x2)."""
    return math.ceil(math.log2(side)) - 1


def supports_dcgan(shape) -> bool:
    """Whether the DCGAN stacks handle images of `shape`."""
    return len(shape) == 3 and shape[0] == shape[1] and shape[0] in DCGAN_START and shape[2] in (1, 3)


def dcgan_shapes() -> str:
    return ", ".join(f"{s}x{s}" for s in DCGAN_START) + " images with 1 or 3 channels"


def mlp_body(input_dim, hidden_units, output_shape, *, name, output_activation="linear", output_layer=None):
    """Vector -> data: ReLU dense layers, then a dense output reshaped to `output_shape`, through
    `output_layer` when given (a `TableActivation`), else through `output_activation`."""
    inputs = keras.Input((input_dim,), name=f"{name}_input")
    x = inputs
    for units in hidden_units:
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(math.prod(output_shape))(x)
    x = (output_layer or layers.Activation(output_activation, dtype="float32"))(x)
    if len(output_shape) > 1:
        x = layers.Reshape(tuple(output_shape))(x)
    return keras.Model(inputs, x, name=name)


def mlp_trunk(input_shape, hidden_units, *, name):
    """Data -> features: the flattened input through LeakyReLU(0.2) dense layers."""
    inputs = keras.Input(tuple(input_shape), name=f"{name}_input")
    x = layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for units in hidden_units:
        x = layers.LeakyReLU(0.2)(layers.Dense(units)(x))
    return keras.Model(inputs, x, name=name)


def dcgan_body(input_dim, image_shape, width, *, name="generator", output_activation="tanh", norm="batch"):
    """Radford et al. 2015, in the layout of the TensorFlow DCGAN tutorial: a dense projection
    to the smallest feature map, a stride-1 transposed convolution there, then stride-2
    transposed convolutions up to the image side, each with batch norm and ReLU and halving the
    channels, and a final `output_activation`. With width 64 at 28x28: 7x7x256, 7x7x128,
    14x14x64, 28x28xC; at 128x128: 4x4x1024 halving down to 64x64x32, then 128x128xC (channels
    stop growing at `DCGAN_MAX_MULTIPLE` x width). `norm` `layer` or `none` replaces the batch
    norm (a network that sees real examples under per-example gradient clipping must not mix them)."""
    side, channels = image_shape[0], image_shape[-1]
    start = DCGAN_START[side]
    upsamplings = int(math.log2(side // start))
    inputs = keras.Input((input_dim,), name=f"{name}_input")
    filters = width * 2 ** min(upsamplings, int(math.log2(DCGAN_MAX_MULTIPLE)))

    def normalise(x):
        return (layers.BatchNormalization()(x) if norm == "batch" else layers.LayerNormalization()(x)
                if norm == "layer" else x)

    x = layers.Dense(start * start * filters, use_bias=norm == "none")(inputs)
    x = normalise(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((start, start, filters))(x)
    for stride in [1] + [2] * (upsamplings - 1):
        filters //= 2
        x = layers.Conv2DTranspose(filters, 5, strides=stride, padding="same", use_bias=norm == "none")(x)
        x = normalise(x)
        x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(channels, 5, strides=2, padding="same")(x)
    outputs = layers.Activation(output_activation, dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def dcgan_trunk(image_shape, width, *, norm="batch", depth=None, name="discriminator_trunk"):
    """Radford et al. 2015: stride-2 convolutions with LeakyReLU(0.2), doubling the channels,
    normalised after the first (batch norm, or layer norm where a gradient penalty forbids
    batch statistics), flattened to features. `spectral` instead constrains every convolution
    to a spectral norm of 1 (Miyato et al. 2018), the discriminator of SNGAN and of the
    projection discriminator's paper. `depth` stride-2 convolutions (default: down to the
    generator's first feature map, `DCGAN_START`)."""
    side = image_shape[0]
    downsamplings = depth or int(math.log2(side // DCGAN_START[side]))
    inputs = keras.Input(tuple(image_shape), name=f"{name}_input")
    x = inputs
    filters = width
    for index in range(downsamplings):
        normalised = index > 0 and norm in ("batch", "layer")
        convolution = layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=not normalised)
        if norm == "spectral":
            convolution = layers.SpectralNormalization(convolution)
        x = convolution(x)
        if normalised:
            x = layers.BatchNormalization()(x) if norm == "batch" else layers.LayerNormalization()(x)
        x = layers.LeakyReLU(0.2)(x)
        filters = min(filters * 2, width * DCGAN_MAX_MULTIPLE)
    return keras.Model(inputs, layers.Flatten()(x), name=name)


def with_label(vector, labels, num_classes, dim, name):
    """Concatenates a learned embedding of integer `labels` to `vector` (functional tensors)."""
    embedding = layers.Embedding(num_classes, dim, name=f"{name}_label_embedding")(labels)
    return layers.Concatenate()([vector, embedding])


def functional(inputs, outputs, name):
    """A functional model over `inputs`, a list; a single input is passed bare, so that callers
    give it a tensor rather than a one-element list."""
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=name)


def label_input(name):
    return keras.Input((), dtype="int32", name=f"{name}_labels")


TABLE_BLOCK_KINDS = ("softmax", "normal")


def check_table_blocks(blocks, width: int) -> tuple[tuple[str, int], ...]:
    """`blocks` as a tuple of `(kind, size)` pairs (JSON gives lists), validated against the
    width of the encoded vector; UsageError names the first bad block."""
    checked = []
    for block in blocks:
        try:
            kind, size = block
            size = int(size)
        except (TypeError, ValueError):
            raise UsageError(f"table block {block!r} is not a (kind, size) pair") from None
        if kind not in TABLE_BLOCK_KINDS or size < 1 or (kind == "normal" and size != 1):
            raise UsageError(f"table block {block!r} is not ('softmax', k >= 1) or ('normal', 1)")
        checked.append((str(kind), size))
    total = sum(size for _, size in checked)
    if not checked or total != width:
        raise UsageError(f"table blocks cover {total} features; the encoded rows have {width}")
    return tuple(checked)


@keras.saving.register_keras_serializable(package="synthblend")
class TableActivation(layers.Layer):
    """The output activation of encoded table rows: a softmax over each `("softmax", k)` block
    (one categorical column, its k categories), identity over each `("normal", 1)` block (one
    standardised numeric column).

    With `temperature` > 0 the softmax blocks are Gumbel-softmax draws while training (Jang et
    al. 2017; CTGAN uses tau 0.2): the logits plus Gumbel noise, divided by `temperature`, so
    that generated blocks come near one-hot like the real ones. Outside training (sampling,
    export) the output is the plain softmax either way; decoding takes each block's argmax.
    The gan uses it (`GAN(gumbel_temperature=0.2)` by default, measured better than the plain
    softmax: see `zoo.gan.GAN`).

    Args:
      blocks: `(kind, size)` pairs in the order of the encoded vector.
      temperature: Gumbel-softmax temperature while training; 0 for the plain softmax.
      seed: seed of the Gumbel noise.
    """

    def __init__(self, blocks, temperature=0.0, seed=0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.blocks = tuple((str(kind), int(size)) for kind, size in blocks)
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed) if self.temperature > 0 else None

    def call(self, inputs, training=False):
        gumbel = bool(training) and self.seed_generator is not None
        parts, start = [], 0
        for kind, size in self.blocks:
            part = inputs[:, start:start + size]
            start += size
            if kind == "softmax":
                if gumbel:
                    uniform = keras.random.uniform(tf.shape(part), 1e-6, 1.0 - 1e-6, seed=self.seed_generator)
                    part = (part - tf.math.log(-tf.math.log(uniform))) / self.temperature
                part = tf.nn.softmax(part, axis=-1)
            parts.append(part)
        return tf.concat(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "blocks": [list(block) for block in self.blocks],
                "temperature": self.temperature, "seed": self.seed}
