"""DP-SGD: each example's gradient clipped, the sum noised, then the model's own optimizer.

`apply_private_gradients` replaces `base.apply_gradients` for the networks that see real data
(the discriminator of a GAN with its heads, the VAE's encoder and decoder). It takes the model's
loss as a function of one example (with the step's noise passed in), computes every example's
gradient in one vectorised pass (`tf.vectorized_map`), clips each to L2 norm `l2_norm_clip` over
all the variables together, sums them, adds Gaussian noise of standard deviation
`noise_multiplier * l2_norm_clip` and divides by the global batch size (Abadi et al. 2016). Terms
that depend on no real example (InfoGAN's code loss on generated samples) are added unclipped:
their gradient is a function of the already private weights.

The account of what this spends is kept by `trainers.privacy`.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from synthblend.zoo import streams


@dataclasses.dataclass(frozen=True)
class Clipping:
    """Per-example clip norm `l2_norm_clip` and `noise_multiplier` (noise std / clip norm)."""

    l2_norm_clip: float
    noise_multiplier: float


def tensorflow_variables(variables):
    """The TensorFlow variables behind Keras variables (whose dtype, a string, gradients with
    `unconnected_gradients=ZERO` cannot read)."""
    return [variable.value if isinstance(variable, keras.Variable) else variable for variable in variables]


def per_example_gradients(loss, inputs, variables):
    """Each example's gradient of `loss` with respect to `variables`: for each variable a tensor
    with a leading axis over the examples of `inputs` (tensors whose first axis is the batch).
    `loss(*rows)` takes a batch of one example and returns a scalar; it must draw no randomness
    (pass noise in `inputs`). Vectorised over the examples (pfor), each a forward and a backward
    pass of its own, so memory grows with the batch, not with its square."""
    sources = tensorflow_variables(variables)

    def gradient(rows):
        with tf.GradientTape() as tape:
            value = loss(*[row[None] for row in rows])
        return tape.gradient(value, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return tf.vectorized_map(gradient, tuple(inputs))


def clipped_sum(gradients, l2_norm_clip):
    """The sum over examples of each example's gradient scaled to L2 norm at most `l2_norm_clip`
    (the norm over all variables); also the examples' norms before clipping."""
    squares = [tf.reduce_sum(tf.reshape(tf.square(g), (tf.shape(g)[0], -1)), axis=1) for g in gradients]
    norms = tf.sqrt(tf.add_n(squares))
    factors = tf.minimum(1.0, l2_norm_clip / tf.maximum(norms, 1e-12))
    sums = [tf.tensordot(factors, g, axes=1) for g in gradients]
    return sums, norms


def private_gradients(loss, inputs, variables, clipping: Clipping, seed, public=None):
    """DP-SGD gradients of `variables`: each example's gradient of `loss` (see
    `per_example_gradients`; `inputs` hold this replica's share of the batch) clipped, summed,
    noised and divided by the global batch; plus `public`, plain gradients of terms that use no
    real example, if any.

    `seed` is a stateless seed (shape [2]); each replica draws its own noise from it, of variance
    1/replicas of the total, so that the sum the optimizer takes over the replicas carries noise of
    standard deviation `noise_multiplier * l2_norm_clip`, as on one device.
    """
    replicas, replica = streams.replicas()
    gradients = [tf.cast(g, tf.float32) for g in per_example_gradients(loss, inputs, variables)]
    sums, norms = clipped_sum(gradients, clipping.l2_norm_clip)
    global_batch = tf.cast(tf.shape(inputs[0])[0] * replicas, tf.float32)
    deviation = clipping.noise_multiplier * clipping.l2_norm_clip / replicas ** 0.5
    seed = tf.cast(seed, tf.int32)
    results = []
    for index, total in enumerate(sums):
        noise_seed = tf.stack([seed[0] + replica * 100_003 + index, seed[1]])
        noise = tf.random.stateless_normal(tf.shape(total), noise_seed, stddev=deviation)
        results.append((total + noise) / global_batch)
    if public is not None:
        results = [g + tf.cast(p, g.dtype) for g, p in zip(results, public)]
    results = [tf.cast(g, v.dtype) for g, v in zip(results, variables)]
    return results, {"clipped_share": tf.reduce_mean(tf.cast(norms > clipping.l2_norm_clip, tf.float32)),
                     "gradient_norm": tf.reduce_mean(norms)}


def public_gradients(tape, loss, variables):
    """Plain gradients of `loss` (a mean over this replica's examples) for the sum over replicas."""
    replicas, _ = streams.replicas()
    return tape.gradient(loss, tensorflow_variables(variables), output_gradients=tf.constant(1.0 / replicas, loss.dtype),
                         unconnected_gradients=tf.UnconnectedGradients.ZERO)


def apply_private_gradients(loss, inputs, variables, optimizer, clipping: Clipping, seed, public=None) -> dict:
    """One DP-SGD update of `variables` by `optimizer` (see `private_gradients`); returns the
    share of examples clipped and their mean gradient norm, as metrics."""
    gradients, metrics = private_gradients(loss, inputs, variables, clipping, seed, public)
    optimizer.apply_gradients(zip(gradients, variables))
    return metrics
