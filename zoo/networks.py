"""Network builders the models share: MLPs and the DCGAN convolutional stacks.

Each returns a functional `keras.Model` with a named input, so the networks print, save and
export cleanly on their own.
"""

from __future__ import annotations

import math

import keras
from keras import layers

# Side of the first feature map of the DCGAN generator, per supported image side: the
# generator doubles it with each transposed convolution up to the image side.
DCGAN_START = {28: 7, 32: 4, 64: 4}
NORMS = ("batch", "layer", "none")


def mlp(input_shape, hidden_units, output_shape, *, name, hidden_activation="leaky_relu",
        output_activation="linear"):
    """Dense layers over the flattened input, then a dense output reshaped to `output_shape`."""
    inputs = keras.Input(tuple(input_shape), name=f"{name}_input")
    x = layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for units in hidden_units:
        x = layers.Dense(units)(x)
        x = _activation(hidden_activation)(x)
    x = layers.Dense(math.prod(output_shape))(x)
    x = layers.Activation(output_activation, dtype="float32")(x)
    if len(output_shape) > 1:
        x = layers.Reshape(tuple(output_shape))(x)
    return keras.Model(inputs, x, name=name)


def dcgan_generator(latent_dim, image_shape, width, *, name="generator", output_activation="tanh"):
    """Radford et al. 2015: a dense projection, then stride-2 transposed convolutions with batch
    norm and ReLU, halving the channels at each step, and a final `output_activation`."""
    side, channels = image_shape[0], image_shape[-1]
    start = DCGAN_START[side]
    upsamplings = int(math.log2(side // start))
    inputs = keras.Input((latent_dim,), name=f"{name}_input")
    filters = width * 2 ** (upsamplings - 1)
    x = layers.Dense(start * start * filters, use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((start, start, filters))(x)
    for _ in range(upsamplings - 1):
        filters //= 2
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same")(x)
    outputs = layers.Activation(output_activation, dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def dcgan_discriminator(image_shape, width, *, norm="batch", outputs=1, name="discriminator"):
    """Radford et al. 2015: stride-2 convolutions with LeakyReLU(0.2), doubling the channels,
    normalised after the first (batch norm, or layer norm where a gradient penalty forbids
    batch statistics), then a dense layer to `outputs` logits."""
    side = image_shape[0]
    downsamplings = int(math.log2(side // DCGAN_START[side]))
    inputs = keras.Input(tuple(image_shape), name=f"{name}_input")
    x = inputs
    filters = width
    for index in range(downsamplings):
        x = layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=index == 0 or norm == "none")(x)
        if index > 0:
            x = _normalization(norm)(x)
        x = layers.LeakyReLU(0.2)(x)
        filters *= 2
    x = layers.Flatten()(x)
    x = layers.Dense(outputs, dtype="float32")(x)
    return keras.Model(inputs, x, name=name)


def _activation(name):
    if name == "leaky_relu":
        return layers.LeakyReLU(0.2)
    return layers.Activation(name)


def _normalization(norm):
    if norm == "batch":
        return layers.BatchNormalization()
    if norm == "layer":
        return layers.LayerNormalization()
    return layers.Identity()
