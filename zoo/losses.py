"""Losses for generative models, as pure functions of logits or critic outputs.

Names follow TF-GAN (`tensorflow_gan/python/losses/losses_impl.py`). Every function takes
tensors of any floating dtype and shape `(batch,)` or `(batch, 1)` (more axes are averaged over
too), casts them to float32 first so that mixed-precision models get float32 losses, and returns
a float32 scalar averaged over the batch. Generator and discriminator losses are both to be
MINIMISED by their own player.

GAN loss families (`GAN_LOSSES` maps a flag value to one):

* ``minimax`` -- the original zero-sum game (Goodfellow et al. 2014, "Generative Adversarial
  Nets"): D minimises binary cross-entropy (real -> 1, fake -> 0), G minimises
  ``log(1 - D(G(z)))``. G's gradient vanishes while D confidently rejects the fakes, which is
  early in training.
* ``non_saturating`` -- the same D, but G minimises ``-log D(G(z))`` (Goodfellow et al. 2014,
  section 3), whose gradient is largest exactly where the minimax one vanishes.
* ``least_squares`` -- LSGAN (Mao et al. 2017, "Least Squares Generative Adversarial
  Networks") with targets a=0 (fake), b=1 (real), c=1 (what G wants D to say).
* ``hinge`` -- hinge loss for D, ``-D(G(z))`` for G (Lim & Ye 2017, "Geometric GAN"; Miyato et
  al. 2018, "Spectral Normalization for GANs").
* ``wasserstein_gp`` -- WGAN critic loss (Arjovsky et al. 2017, "Wasserstein GAN") with the
  gradient penalty of WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs");
  models whose family has ``uses_gradient_penalty`` add ``gradient_penalty`` (times a weight,
  10 in the paper) to the critic loss themselves.

Other terms:

* ``kl_divergence`` -- the VAE prior term (Kingma & Welling 2014, "Auto-Encoding Variational
  Bayes", appendix B).
* ``mutual_information_loss`` -- the InfoGAN variational lower bound on the mutual information
  between latent codes and generated samples, negated (Chen et al. 2016, "InfoGAN").
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import keras
import tensorflow as tf

from synthblend.zoo import streams


def _f32(x) -> tf.Tensor:
    # float16/bfloat16 logits overflow in exp/square and lose the small gradients the losses are
    # built to keep, so the arithmetic is done in float32 whatever the model computes in.
    return tf.cast(x, tf.float32)


def _sum_over_non_batch_axes(x: tf.Tensor) -> tf.Tensor:
    rank = x.shape.rank
    if rank is None:
        raise ValueError("the rank of the input must be known")
    if rank <= 1:
        return x
    return tf.reduce_sum(x, axis=list(range(1, rank)))


# --------------------------------------------------------------------------------------------
# Minimax and non-saturating (Goodfellow et al. 2014)
# --------------------------------------------------------------------------------------------


def minimax_generator_loss(fake_logits) -> tf.Tensor:
    """Minimax generator loss: ``mean(log(1 - sigmoid(f))) = -mean(softplus(f))``.

    Its gradient ``-sigmoid(f) / batch`` vanishes where D confidently calls fakes fake (f << 0).

    Args:
      fake_logits: discriminator logits on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the generator.
    """
    # log(1 - sigmoid(f)) = -softplus(f) exactly; the softplus form cannot take log(0).
    return -tf.reduce_mean(tf.math.softplus(_f32(fake_logits)))


def minimax_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """Binary cross-entropy with real -> 1, fake -> 0: ``mean(softplus(-r)) + mean(softplus(f))``.

    Args:
      real_logits: discriminator logits on real samples, shape (batch,) or (batch, 1).
      fake_logits: discriminator logits on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the discriminator.
    """
    real = tf.reduce_mean(tf.math.softplus(-_f32(real_logits)))
    fake = tf.reduce_mean(tf.math.softplus(_f32(fake_logits)))
    return real + fake


def non_saturating_generator_loss(fake_logits) -> tf.Tensor:
    """Non-saturating generator loss: ``-mean(log(sigmoid(f))) = mean(softplus(-f))``.

    Its gradient ``-sigmoid(-f) / batch`` is near ``-1 / batch`` where D confidently calls fakes
    fake, so G learns early in training.

    Args:
      fake_logits: discriminator logits on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the generator.
    """
    return tf.reduce_mean(tf.math.softplus(-_f32(fake_logits)))


def non_saturating_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """Same as `minimax_discriminator_loss`: ``mean(softplus(-r)) + mean(softplus(f))``.

    Args:
      real_logits: discriminator logits on real samples, shape (batch,) or (batch, 1).
      fake_logits: discriminator logits on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the discriminator.
    """
    return minimax_discriminator_loss(real_logits, fake_logits)


# --------------------------------------------------------------------------------------------
# Least squares (Mao et al. 2017)
# --------------------------------------------------------------------------------------------


def least_squares_generator_loss(fake_logits) -> tf.Tensor:
    """LSGAN generator loss with c=1: ``0.5 * mean((f - 1)^2)``.

    Args:
      fake_logits: raw discriminator outputs on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the generator.
    """
    return 0.5 * tf.reduce_mean(tf.square(_f32(fake_logits) - 1.0))


def least_squares_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """LSGAN discriminator loss with a=0, b=1: ``0.5 * mean((r - 1)^2) + 0.5 * mean(f^2)``.

    Args:
      real_logits: raw discriminator outputs on real samples, shape (batch,) or (batch, 1).
      fake_logits: raw discriminator outputs on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the discriminator.
    """
    real = 0.5 * tf.reduce_mean(tf.square(_f32(real_logits) - 1.0))
    fake = 0.5 * tf.reduce_mean(tf.square(_f32(fake_logits)))
    return real + fake


# --------------------------------------------------------------------------------------------
# Hinge (Lim & Ye 2017; Miyato et al. 2018)
# --------------------------------------------------------------------------------------------


def hinge_generator_loss(fake_logits) -> tf.Tensor:
    """Hinge generator loss: ``-mean(f)``.

    Args:
      fake_logits: raw discriminator outputs on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the generator.
    """
    return -tf.reduce_mean(_f32(fake_logits))


def hinge_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """Hinge discriminator loss: ``mean(relu(1 - r)) + mean(relu(1 + f))``.

    Args:
      real_logits: raw discriminator outputs on real samples, shape (batch,) or (batch, 1).
      fake_logits: raw discriminator outputs on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the discriminator.
    """
    real = tf.reduce_mean(tf.nn.relu(1.0 - _f32(real_logits)))
    fake = tf.reduce_mean(tf.nn.relu(1.0 + _f32(fake_logits)))
    return real + fake


# --------------------------------------------------------------------------------------------
# Wasserstein (Arjovsky et al. 2017) with gradient penalty (Gulrajani et al. 2017)
# --------------------------------------------------------------------------------------------


def wasserstein_generator_loss(fake_logits) -> tf.Tensor:
    """Wasserstein generator loss: ``-mean(f)``.

    Args:
      fake_logits: critic outputs on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the generator.
    """
    return -tf.reduce_mean(_f32(fake_logits))


def wasserstein_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """Wasserstein critic loss: ``mean(f) - mean(r)`` (the negated Wasserstein-1 estimate).

    Only meaningful with a Lipschitz constraint on the critic, e.g. `gradient_penalty`.

    Args:
      real_logits: critic outputs on real samples, shape (batch,) or (batch, 1).
      fake_logits: critic outputs on generated samples, shape (batch,) or (batch, 1).

    Returns:
      Float32 scalar, to be minimised by the critic.
    """
    return tf.reduce_mean(_f32(fake_logits)) - tf.reduce_mean(_f32(real_logits))


def gradient_penalty(critic: Callable, real, fake, seed, eps=None) -> tf.Tensor:
    """WGAN-GP gradient penalty: ``mean((||grad_x critic(x)||_2 - 1)^2)``.

    ``x = real + eps * (fake - real)`` with ``eps ~ U[0, 1]`` drawn once per example (shape
    ``(batch, 1, ..., 1)``), and the norm is taken over all non-batch axes as
    ``sqrt(sum(grad^2) + 1e-10)``. Call it inside the tape that computes the critic's update: the
    penalty is differentiable with respect to the critic's weights (a second-order gradient).

    Args:
      critic: callable mapping a batch shaped like `real` to outputs, shape (batch,) or
        (batch, 1); each output must depend on its own example only.
      real: real samples, shape (batch, ...), with a known rank.
      fake: generated samples, same shape as `real`.
      seed: `keras.random.SeedGenerator` (a fresh `eps` per call, also inside `tf.function`) or
        int (the same `eps` each call) for `keras.random.uniform`.

    Returns:
      Float32 scalar; the caller multiplies it by the penalty weight (10 in the paper). `eps`
      gives the interpolation weights (`interpolation_weights`) instead of drawing them from `seed`.
    """
    real = _f32(real)
    fake = _f32(fake)
    rank = real.shape.rank
    if rank is None:
        raise ValueError("gradient_penalty needs inputs of known rank")
    if eps is None:
        eps = interpolation_weights(real, seed)
    interpolates = real + eps * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        outputs = _f32(critic(interpolates))
    # Summing the outputs gives each example's own gradient, since examples do not interact.
    # A critic that ignores its input has a zero gradient (penalty 1), not None.
    gradients = tape.gradient(
        outputs, interpolates, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    squared_norms = _sum_over_non_batch_axes(tf.square(gradients))
    # TF-GAN's epsilon: sqrt gets a finite gradient at a zero gradient norm, and no norm that
    # matters moves.
    norms = tf.sqrt(squared_norms + 1e-10)
    return tf.reduce_mean(tf.square(norms - 1.0))


def interpolation_weights(real, seed) -> tf.Tensor:
    """The gradient penalty's ``eps ~ U[0, 1]``, one per example, shaped to broadcast over `real`."""
    rank = real.shape.rank
    eps_shape = tf.concat([tf.shape(real)[:1], tf.ones([rank - 1], dtype=tf.int32)], axis=0)
    return streams.draw(keras.random.uniform, eps_shape, seed, minval=0.0, maxval=1.0, dtype="float32")


# --------------------------------------------------------------------------------------------
# VAE and InfoGAN terms
# --------------------------------------------------------------------------------------------


def kl_divergence(mean, log_variance) -> tf.Tensor:
    """``KL(N(mean, exp(log_variance)) || N(0, I))``, summed per example, averaged over the batch.

    ``mean_b(-0.5 * sum(1 + log_variance - mean^2 - exp(log_variance)))``, the sum over all
    non-batch axes.

    Args:
      mean: posterior means, shape (batch, ...).
      log_variance: posterior log-variances, same shape as `mean`.

    Returns:
      Float32 scalar (nats per example).
    """
    mean = _f32(mean)
    log_variance = _f32(log_variance)
    per_element = -0.5 * (1.0 + log_variance - tf.square(mean) - tf.exp(log_variance))
    return tf.reduce_mean(_sum_over_non_batch_axes(per_element))


def classification_loss(labels, logits) -> tf.Tensor:
    """Cross-entropy of integer `labels` under class `logits`, averaged over the batch (nats):
    the auxiliary classifier term of AC-GAN (Odena et al. 2017).

    Args:
      labels: integer classes, shape (batch,).
      logits: unnormalised class scores, shape (batch, classes).

    Returns:
      Float32 scalar.
    """
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=_f32(logits))
    )


def mutual_information_loss(
    categorical_codes=None,
    categorical_logits=None,
    continuous_codes=None,
    continuous_mean=None,
    continuous_log_std=None,
) -> tf.Tensor:
    """Negated InfoGAN mutual-information lower bound (up to the constant code entropy).

    ``mean_b(-sum_c codes_c * log_softmax(logits)_c)
    + mean_b(sum_k 0.5 * log(2 pi) + log_std_k + 0.5 * ((code_k - mean_k) / exp(log_std_k))^2)``

    Either part may be left out by passing None for all of its arguments.

    Args:
      categorical_codes: sampled one-hot categorical codes, shape (batch, C), or None.
      categorical_logits: Q network logits for them, shape (batch, C), or None.
      continuous_codes: sampled continuous codes, shape (batch, K), or None.
      continuous_mean: Q network Gaussian means for them, shape (batch, K), or None.
      continuous_log_std: Q network Gaussian log standard deviations, shape (batch, K), or None.

    Returns:
      Float32 scalar (nats per example), to be minimised by both generator and Q network.

    Raises:
      ValueError: if both parts are None, or only some arguments of a part are.
    """
    categorical = (categorical_codes, categorical_logits)
    continuous = (continuous_codes, continuous_mean, continuous_log_std)
    has_categorical = _part_given("categorical", categorical)
    has_continuous = _part_given("continuous", continuous)
    if not (has_categorical or has_continuous):
        raise ValueError("mutual_information_loss needs categorical or continuous codes")

    loss = tf.constant(0.0, dtype=tf.float32)
    if has_categorical:
        codes, logits = (_f32(t) for t in categorical)
        # log_softmax rather than log(softmax) so confident wrong logits give a large finite loss.
        cross_entropy = -tf.reduce_sum(codes * tf.nn.log_softmax(logits, axis=-1), axis=-1)
        loss += tf.reduce_mean(cross_entropy)
    if has_continuous:
        codes, mean, log_std = (_f32(t) for t in continuous)
        standardized = (codes - mean) * tf.exp(-log_std)
        nll = 0.5 * math.log(2.0 * math.pi) + log_std + 0.5 * tf.square(standardized)
        loss += tf.reduce_mean(tf.reduce_sum(nll, axis=-1))
    return loss


def _part_given(name: str, tensors: tuple) -> bool:
    given = [t is not None for t in tensors]
    if any(given) and not all(given):
        raise ValueError(
            f"mutual_information_loss: the {name} arguments must be all given or all None"
        )
    return all(given)


# --------------------------------------------------------------------------------------------
# Families by name
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GANLoss:
    """A GAN loss family: the two players' losses and whether the critic needs a penalty.

    Attributes:
      generator: ``fake_logits -> scalar``.
      discriminator: ``(real_logits, fake_logits) -> scalar``.
      uses_gradient_penalty: whether the model must add `gradient_penalty` to the
        discriminator loss.
    """

    generator: Callable
    discriminator: Callable
    uses_gradient_penalty: bool = False


GAN_LOSSES: dict[str, GANLoss] = {
    "non_saturating": GANLoss(non_saturating_generator_loss, non_saturating_discriminator_loss),
    "minimax": GANLoss(minimax_generator_loss, minimax_discriminator_loss),
    "least_squares": GANLoss(least_squares_generator_loss, least_squares_discriminator_loss),
    "hinge": GANLoss(hinge_generator_loss, hinge_discriminator_loss),
    "wasserstein_gp": GANLoss(wasserstein_generator_loss, wasserstein_discriminator_loss, True),
}


def invariant_clustering_loss(logits_a, logits_b, epsilon=1e-8) -> tf.Tensor:
    """Negated mutual information between the cluster assignments of two views of the same
    examples (Invariant Information Clustering, Ji, Henriques and Vedaldi 2019).

    With `p_a = softmax(logits_a)` and `p_b = softmax(logits_b)`, shape (batch, K), the joint
    distribution of the two assignments is `P = mean_b(p_a^T p_b)`, symmetrised; the loss is
    `-sum_ij P_ij (log P_ij - log P_i - log P_j)`. It is lowest, `-log K`, when each view's
    assignment is confident, both views agree, and every cluster is used equally often; 0 when
    the assignments are independent.

    Returns:
      Float32 scalar (nats), to be minimised.
    """
    p_a = tf.nn.softmax(_f32(logits_a), axis=-1)
    p_b = tf.nn.softmax(_f32(logits_b), axis=-1)
    joint = tf.matmul(p_a, p_b, transpose_a=True) / tf.cast(tf.shape(p_a)[0], tf.float32)
    joint = tf.maximum((joint + tf.transpose(joint)) / 2.0, epsilon)
    rows = tf.reduce_sum(joint, axis=1, keepdims=True)
    columns = tf.reduce_sum(joint, axis=0, keepdims=True)
    return -tf.reduce_sum(joint * (tf.math.log(joint) - tf.math.log(rows) - tf.math.log(columns)))
