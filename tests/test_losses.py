"""Tests for zoo/losses.py against values worked out by hand with the math module."""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from synthblend.zoo import losses

REAL = [1.0, -2.0, 0.5, 3.0]
FAKE = [-1.0, 2.0, 0.0, -0.5]
RTOL = 1e-6


def _check(value, expected, rtol=RTOL, atol=0.0):
    assert value.dtype == tf.float32
    assert value.shape == ()
    np.testing.assert_allclose(float(value), expected, rtol=rtol, atol=atol)


# Each GAN loss with its value on REAL / FAKE, worked out term by term.
GENERATOR_CASES = {
    # mean log(1 - sigmoid(f)), sigmoid(f) = 1 / (1 + exp(-f))
    "minimax": (
        losses.minimax_generator_loss,
        (
            math.log(1.0 - 1.0 / (1.0 + math.exp(1.0)))
            + math.log(1.0 - 1.0 / (1.0 + math.exp(-2.0)))
            + math.log(1.0 - 1.0 / (1.0 + math.exp(0.0)))
            + math.log(1.0 - 1.0 / (1.0 + math.exp(0.5)))
        )
        / 4.0,
    ),
    # mean -log(sigmoid(f)) = mean log(1 + exp(-f))
    "non_saturating": (
        losses.non_saturating_generator_loss,
        (
            math.log1p(math.exp(1.0))
            + math.log1p(math.exp(-2.0))
            + math.log1p(math.exp(0.0))
            + math.log1p(math.exp(0.5))
        )
        / 4.0,
    ),
    "least_squares": (
        losses.least_squares_generator_loss,
        0.5 * ((-1.0 - 1.0) ** 2 + (2.0 - 1.0) ** 2 + (0.0 - 1.0) ** 2 + (-0.5 - 1.0) ** 2) / 4.0,
    ),
    "hinge": (losses.hinge_generator_loss, -(-1.0 + 2.0 + 0.0 - 0.5) / 4.0),
    "wasserstein": (losses.wasserstein_generator_loss, -(-1.0 + 2.0 + 0.0 - 0.5) / 4.0),
}

# -log(sigmoid(r)) = log(1 + exp(-r)) for real, -log(1 - sigmoid(f)) = log(1 + exp(f)) for fake.
_BCE = (
    math.log1p(math.exp(-1.0))
    + math.log1p(math.exp(2.0))
    + math.log1p(math.exp(-0.5))
    + math.log1p(math.exp(-3.0))
) / 4.0 + (
    math.log1p(math.exp(-1.0))
    + math.log1p(math.exp(2.0))
    + math.log1p(math.exp(0.0))
    + math.log1p(math.exp(-0.5))
) / 4.0

DISCRIMINATOR_CASES = {
    "minimax": (losses.minimax_discriminator_loss, _BCE),
    "non_saturating": (losses.non_saturating_discriminator_loss, _BCE),
    "least_squares": (
        losses.least_squares_discriminator_loss,
        0.5 * ((1.0 - 1.0) ** 2 + (-2.0 - 1.0) ** 2 + (0.5 - 1.0) ** 2 + (3.0 - 1.0) ** 2) / 4.0
        + 0.5 * ((-1.0) ** 2 + 2.0**2 + 0.0**2 + (-0.5) ** 2) / 4.0,
    ),
    "hinge": (
        losses.hinge_discriminator_loss,
        (max(0.0, 1.0 - 1.0) + max(0.0, 1.0 + 2.0) + max(0.0, 1.0 - 0.5) + max(0.0, 1.0 - 3.0))
        / 4.0
        + (max(0.0, 1.0 - 1.0) + max(0.0, 1.0 + 2.0) + max(0.0, 1.0 + 0.0) + max(0.0, 1.0 - 0.5))
        / 4.0,
    ),
    "wasserstein": (
        losses.wasserstein_discriminator_loss,
        (-1.0 + 2.0 + 0.0 - 0.5) / 4.0 - (1.0 - 2.0 + 0.5 + 3.0) / 4.0,
    ),
}


@pytest.mark.parametrize("name", sorted(GENERATOR_CASES))
def test_generator_loss_hand_value(name):
    fn, expected = GENERATOR_CASES[name]
    _check(fn(tf.constant(FAKE)), expected)


@pytest.mark.parametrize("name", sorted(DISCRIMINATOR_CASES))
def test_discriminator_loss_hand_value(name):
    fn, expected = DISCRIMINATOR_CASES[name]
    _check(fn(tf.constant(REAL), tf.constant(FAKE)), expected)


def test_hand_values_spot_checks():
    # A few of the sums above by decimal arithmetic, to catch a slip in writing them out.
    assert GENERATOR_CASES["least_squares"][1] == pytest.approx(1.03125)
    assert DISCRIMINATOR_CASES["least_squares"][1] == pytest.approx(2.3125)
    assert DISCRIMINATOR_CASES["hinge"][1] == pytest.approx(2.0)
    assert DISCRIMINATOR_CASES["wasserstein"][1] == pytest.approx(-0.5)
    # log(1 - sigmoid(f)) = -log(1 + exp(f)).
    assert GENERATOR_CASES["minimax"][1] == pytest.approx(
        -(
            math.log1p(math.exp(-1.0))
            + math.log1p(math.exp(2.0))
            + math.log1p(math.exp(0.0))
            + math.log1p(math.exp(-0.5))
        )
        / 4.0
    )


@pytest.mark.parametrize("name", sorted(GENERATOR_CASES))
def test_generator_loss_shape_independent(name):
    fn, _ = GENERATOR_CASES[name]
    flat = fn(tf.constant(FAKE))
    column = fn(tf.constant(FAKE, shape=(4, 1)))
    assert column.shape == ()
    np.testing.assert_allclose(float(column), float(flat), rtol=RTOL)


@pytest.mark.parametrize("name", sorted(DISCRIMINATOR_CASES))
def test_discriminator_loss_shape_independent(name):
    fn, _ = DISCRIMINATOR_CASES[name]
    flat = fn(tf.constant(REAL), tf.constant(FAKE))
    column = fn(tf.constant(REAL, shape=(4, 1)), tf.constant(FAKE, shape=(4, 1)))
    assert column.shape == ()
    np.testing.assert_allclose(float(column), float(flat), rtol=RTOL)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("name", sorted(GENERATOR_CASES))
def test_generator_loss_low_precision_inputs_give_float32(name, dtype):
    fn, expected = GENERATOR_CASES[name]
    # FAKE is exact in float16 and bfloat16, so the float32 value must come out unchanged.
    _check(fn(tf.constant(FAKE, dtype=dtype)), expected)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("name", sorted(DISCRIMINATOR_CASES))
def test_discriminator_loss_low_precision_inputs_give_float32(name, dtype):
    fn, expected = DISCRIMINATOR_CASES[name]
    _check(fn(tf.constant(REAL, dtype=dtype), tf.constant(FAKE, dtype=dtype)), expected)


def test_numpy_and_list_inputs_accepted():
    _check(losses.hinge_generator_loss(FAKE), GENERATOR_CASES["hinge"][1])
    _check(
        losses.minimax_discriminator_loss(np.array(REAL), np.array(FAKE)),
        DISCRIMINATOR_CASES["minimax"][1],
    )


def _gradient(fn, logits):
    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = fn(logits)
    return tape.gradient(loss, logits).numpy()


def test_minimax_saturates_where_non_saturating_does_not():
    confident_fake = [-10.0, -10.0, -10.0, -10.0]
    minimax = _gradient(losses.minimax_generator_loss, confident_fake)
    non_saturating = _gradient(losses.non_saturating_generator_loss, confident_fake)
    # d/df mean(-softplus(f)) = -sigmoid(f) / 4; d/df mean(softplus(-f)) = -sigmoid(-f) / 4.
    np.testing.assert_allclose(minimax, [-1.0 / (1.0 + math.exp(10.0)) / 4.0] * 4, rtol=1e-5)
    np.testing.assert_allclose(
        non_saturating, [-1.0 / (1.0 + math.exp(-10.0)) / 4.0] * 4, rtol=1e-5
    )
    # Both push the fake logit up ...
    assert np.all(minimax < 0.0) and np.all(non_saturating < 0.0)
    # ... but the minimax push has all but vanished, the non-saturating one is ~ -1 / batch.
    assert np.all(np.abs(minimax) < 1e-4)
    np.testing.assert_allclose(non_saturating, [-0.25] * 4, atol=1e-4)


def test_generator_gradients_agree_in_sign_everywhere():
    minimax = _gradient(losses.minimax_generator_loss, FAKE)
    non_saturating = _gradient(losses.non_saturating_generator_loss, FAKE)
    assert np.all(np.sign(minimax) == np.sign(non_saturating))
    assert np.all(minimax < 0.0)


# --------------------------------------------------------------------------------------------
# gradient_penalty
# --------------------------------------------------------------------------------------------

_RNG = np.random.default_rng(0)
IMAGES_REAL = tf.constant(_RNG.normal(size=(4, 2, 2, 1)), dtype=tf.float32)
IMAGES_FAKE = tf.constant(_RNG.normal(size=(4, 2, 2, 1)), dtype=tf.float32)


def _linear_critic(w):
    w = tf.reshape(tf.cast(w, tf.float32), (2, 2, 1))
    return lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])


def test_gradient_penalty_zero_for_unit_norm_linear_critic():
    # ||w|| = sqrt(4 * 0.5^2) = 1, and the gradient of sum(x * w) is w everywhere.
    critic = _linear_critic([0.5, 0.5, 0.5, 0.5])
    penalty = losses.gradient_penalty(critic, IMAGES_REAL, IMAGES_FAKE, seed=1)
    _check(penalty, 0.0, atol=1e-6)
    critic = _linear_critic([0.6, 0.0, 0.0, -0.8])
    _check(losses.gradient_penalty(critic, IMAGES_REAL, IMAGES_FAKE, seed=2), 0.0, atol=1e-6)


@pytest.mark.parametrize(
    "w, expected",
    [
        ([1.0, 2.0, 2.0, 0.0], (math.sqrt(1.0 + 4.0 + 4.0 + 0.0) - 1.0) ** 2),
        ([0.1, 0.2, 0.2, 0.0], (math.sqrt(0.01 + 0.04 + 0.04 + 0.0) - 1.0) ** 2),
        ([-3.0, 0.0, 4.0, 0.0], (math.sqrt(9.0 + 0.0 + 16.0 + 0.0) - 1.0) ** 2),
    ],
)
def test_gradient_penalty_linear_critic_hand_value(w, expected):
    penalty = losses.gradient_penalty(_linear_critic(w), IMAGES_REAL, IMAGES_FAKE, seed=3)
    _check(penalty, expected)


def test_gradient_penalty_column_critic_output():
    w = tf.reshape(tf.constant([1.0, 2.0, 2.0, 0.0]), (2, 2, 1))
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])[:, None]  # noqa: E731
    penalty = losses.gradient_penalty(critic, IMAGES_REAL, IMAGES_FAKE, seed=3)
    _check(penalty, (3.0 - 1.0) ** 2)


def _interpolates(real, fake, seed):
    seen = []

    def critic(x):
        seen.append(x)
        return tf.reduce_sum(x, axis=[1, 2, 3])

    losses.gradient_penalty(critic, real, fake, seed)
    return seen[0].numpy()


def test_gradient_penalty_interpolates_per_example_on_segment():
    real, fake = IMAGES_REAL.numpy(), IMAGES_FAKE.numpy()
    x = _interpolates(IMAGES_REAL, IMAGES_FAKE, seed=4)
    t = (x - real) / (fake - real)
    per_example = t.reshape(4, -1)
    # One eps per example, shared by all its pixels, in [0, 1].
    np.testing.assert_allclose(per_example, per_example[:, :1] * np.ones((1, 4)), atol=1e-5)
    assert np.all(per_example >= -1e-5) and np.all(per_example <= 1.0 + 1e-5)
    assert len(np.unique(np.round(per_example[:, 0], 5))) == 4


def test_gradient_penalty_seed_int_repeats_seed_generator_advances():
    a = _interpolates(IMAGES_REAL, IMAGES_FAKE, seed=5)
    b = _interpolates(IMAGES_REAL, IMAGES_FAKE, seed=5)
    np.testing.assert_array_equal(a, b)
    generator = keras.random.SeedGenerator(5)
    c = _interpolates(IMAGES_REAL, IMAGES_FAKE, seed=generator)
    d = _interpolates(IMAGES_REAL, IMAGES_FAKE, seed=generator)
    assert not np.allclose(c, d)


def test_gradient_penalty_differentiable_wrt_critic_weights():
    w = tf.Variable([1.0, 2.0, 2.0, 0.0])
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(_linear_critic(w), IMAGES_REAL, IMAGES_FAKE, seed=6)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 2 / 3 * w with ||w|| = 3.
    grad = tape.gradient(penalty, w)
    np.testing.assert_allclose(
        grad.numpy(),
        [2.0 * 2.0 / 3.0 * 1.0, 2.0 * 2.0 / 3.0 * 2.0, 2.0 * 2.0 / 3.0 * 2.0, 0.0],
        rtol=RTOL,
    )


def test_gradient_penalty_finite_at_zero_gradient():
    w = tf.Variable([0.0, 0.0, 0.0, 0.0])
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(_linear_critic(w), IMAGES_REAL, IMAGES_FAKE, seed=7)
    grad = tape.gradient(penalty, w).numpy()
    # (sqrt(0 + 1e-10) - 1)^2 = (1e-5 - 1)^2; without the epsilon the weight gradient is 0/0.
    _check(penalty, (math.sqrt(1e-10) - 1.0) ** 2, rtol=1e-6)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad, [0.0, 0.0, 0.0, 0.0])


def test_gradient_penalty_critic_ignoring_input():
    critic = lambda x: tf.zeros([tf.shape(x)[0], 1])  # noqa: E731
    penalty = losses.gradient_penalty(critic, IMAGES_REAL, IMAGES_FAKE, seed=8)
    _check(penalty, (math.sqrt(1e-10) - 1.0) ** 2)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_gradient_penalty_low_precision(dtype):
    # A critic computing in low precision, as under a mixed-precision policy; w is exact in it.
    w = tf.reshape(tf.constant([1.0, 2.0, 2.0, 0.0]), (2, 2, 1))

    def critic(x):
        return tf.reduce_sum(tf.cast(x, dtype) * tf.cast(w, dtype), axis=[1, 2, 3])

    penalty = losses.gradient_penalty(
        critic, tf.cast(IMAGES_REAL, dtype), tf.cast(IMAGES_FAKE, dtype), seed=9
    )
    _check(penalty, (3.0 - 1.0) ** 2)


def test_gradient_penalty_in_tf_function_with_seed_generator():
    generator = keras.random.SeedGenerator(10)
    critic = _linear_critic([1.0, 2.0, 2.0, 0.0])

    @tf.function
    def step(real, fake):
        return losses.gradient_penalty(critic, real, fake, generator)

    _check(step(IMAGES_REAL, IMAGES_FAKE), (3.0 - 1.0) ** 2)
    state = generator.state.numpy().copy()
    _check(step(IMAGES_REAL, IMAGES_FAKE), (3.0 - 1.0) ** 2)
    assert not np.array_equal(state, generator.state.numpy())


# --------------------------------------------------------------------------------------------
# kl_divergence
# --------------------------------------------------------------------------------------------

KL_MEAN = [[0.5, -1.0], [0.0, 2.0]]
KL_LOGVAR = [[0.0, 1.0], [-1.0, 0.5]]
# -0.5 * (1 + logvar - mean^2 - exp(logvar)) per element, summed per example, mean over 2.
KL_EXPECTED = (
    (-0.5 * (1.0 + 0.0 - 0.25 - math.exp(0.0)) - 0.5 * (1.0 + 1.0 - 1.0 - math.exp(1.0)))
    + (-0.5 * (1.0 - 1.0 - 0.0 - math.exp(-1.0)) - 0.5 * (1.0 + 0.5 - 4.0 - math.exp(0.5)))
) / 2.0


def test_kl_divergence_zero_at_prior():
    _check(losses.kl_divergence(tf.zeros((4, 3)), tf.zeros((4, 3))), 0.0, atol=1e-7)


def test_kl_divergence_hand_value():
    _check(losses.kl_divergence(tf.constant(KL_MEAN), tf.constant(KL_LOGVAR)), KL_EXPECTED)


def test_kl_divergence_sums_over_all_non_batch_axes():
    mean = tf.reshape(tf.constant(KL_MEAN), (2, 1, 2, 1))
    logvar = tf.reshape(tf.constant(KL_LOGVAR), (2, 1, 2, 1))
    _check(losses.kl_divergence(mean, logvar), KL_EXPECTED)


def test_kl_divergence_low_precision_gives_float32():
    mean = tf.constant(KL_MEAN, dtype=tf.float16)
    logvar = tf.constant(KL_LOGVAR, dtype=tf.float16)
    _check(losses.kl_divergence(mean, logvar), KL_EXPECTED)


# --------------------------------------------------------------------------------------------
# mutual_information_loss
# --------------------------------------------------------------------------------------------

CAT_CODES = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
CAT_LOGITS = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]
# -log softmax(logits)[code] per example, mean over 2.
CAT_EXPECTED = (
    -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5) + math.exp(-1.0)))
    - math.log(math.exp(3.0) / (math.exp(0.0) + math.exp(1.0) + math.exp(3.0)))
) / 2.0

CONT_CODES = [[0.5, -1.0], [1.5, 0.0]]
CONT_MEAN = [[0.0, -0.5], [1.0, 1.0]]
CONT_LOG_STD = [[0.0, 0.5], [-0.5, 0.2]]
# -log of the normal density 1 / (sigma sqrt(2 pi)) exp(-(x - mu)^2 / (2 sigma^2)) per code,
# summed per example, mean over 2.
CONT_EXPECTED = -(
    math.log(
        math.exp(-((0.5 - 0.0) ** 2) / (2.0 * math.exp(0.0) ** 2))
        / (math.exp(0.0) * math.sqrt(2.0 * math.pi))
    )
    + math.log(
        math.exp(-((-1.0 + 0.5) ** 2) / (2.0 * math.exp(0.5) ** 2))
        / (math.exp(0.5) * math.sqrt(2.0 * math.pi))
    )
    + math.log(
        math.exp(-((1.5 - 1.0) ** 2) / (2.0 * math.exp(-0.5) ** 2))
        / (math.exp(-0.5) * math.sqrt(2.0 * math.pi))
    )
    + math.log(
        math.exp(-((0.0 - 1.0) ** 2) / (2.0 * math.exp(0.2) ** 2))
        / (math.exp(0.2) * math.sqrt(2.0 * math.pi))
    )
) / 2.0


def test_mutual_information_both_parts():
    loss = losses.mutual_information_loss(
        tf.constant(CAT_CODES),
        tf.constant(CAT_LOGITS),
        tf.constant(CONT_CODES),
        tf.constant(CONT_MEAN),
        tf.constant(CONT_LOG_STD),
    )
    _check(loss, CAT_EXPECTED + CONT_EXPECTED)


def test_mutual_information_categorical_only():
    loss = losses.mutual_information_loss(tf.constant(CAT_CODES), tf.constant(CAT_LOGITS))
    _check(loss, CAT_EXPECTED)


def test_mutual_information_continuous_only():
    loss = losses.mutual_information_loss(
        None,
        None,
        tf.constant(CONT_CODES),
        tf.constant(CONT_MEAN),
        tf.constant(CONT_LOG_STD),
    )
    _check(loss, CONT_EXPECTED)


def test_mutual_information_low_precision_gives_float32():
    loss = losses.mutual_information_loss(
        categorical_codes=tf.constant(CAT_CODES, dtype=tf.bfloat16),
        categorical_logits=tf.constant(CAT_LOGITS, dtype=tf.bfloat16),
    )
    _check(loss, CAT_EXPECTED)


def test_mutual_information_needs_a_part():
    with pytest.raises(ValueError):
        losses.mutual_information_loss(None, None, None, None, None)
    with pytest.raises(ValueError):
        losses.mutual_information_loss()


def test_mutual_information_rejects_half_given_part():
    with pytest.raises(ValueError):
        losses.mutual_information_loss(tf.constant(CAT_CODES), None)
    with pytest.raises(ValueError):
        losses.mutual_information_loss(
            None, None, tf.constant(CONT_CODES), tf.constant(CONT_MEAN), None
        )


# --------------------------------------------------------------------------------------------
# GAN_LOSSES
# --------------------------------------------------------------------------------------------


def test_gan_losses_table():
    assert set(losses.GAN_LOSSES) == {
        "non_saturating",
        "minimax",
        "least_squares",
        "hinge",
        "wasserstein_gp",
    }
    for name, family in losses.GAN_LOSSES.items():
        assert isinstance(family, losses.GANLoss)
        assert family.uses_gradient_penalty == (name == "wasserstein_gp")
        generator_case = GENERATOR_CASES[name.replace("_gp", "")]
        discriminator_case = DISCRIMINATOR_CASES[name.replace("_gp", "")]
        assert family.generator is generator_case[0]
        assert family.discriminator is discriminator_case[0]


def test_gan_loss_is_frozen():
    family = losses.GAN_LOSSES["hinge"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        family.uses_gradient_penalty = True


def test_classification_loss_by_hand():
    # Logits [0, ln 3] give probabilities [1/4, 3/4]; labels 1 then 0: (-ln 3/4 - ln 1/4) / 2.
    logits = tf.constant([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    expected = (-math.log(0.75) - math.log(0.25)) / 2
    assert float(losses.classification_loss(tf.constant([1, 0]), logits)) == pytest.approx(expected, rel=1e-6)


def test_invariant_clustering_loss_is_minus_log_k_when_views_agree_confidently_on_balanced_clusters():
    confident = tf.eye(4) * 50.0
    assert float(losses.invariant_clustering_loss(confident, confident)) == pytest.approx(-np.log(4), abs=1e-4)
    # Independent assignments carry no information; one cluster for everything carries none either.
    assert float(losses.invariant_clustering_loss(tf.zeros((8, 4)), tf.zeros((8, 4)))) == pytest.approx(0.0, abs=1e-6)
    collapsed = tf.one_hot([0] * 8, 4) * 50.0
    assert float(losses.invariant_clustering_loss(collapsed, collapsed)) == pytest.approx(0.0, abs=1e-4)
    # Views whose clusters are shifted by one (0 -> 1 -> 2 -> 3 -> 0): symmetrising the joint spreads
    # each cluster over two partners, leaving log 2 of the log 4 nats.
    shifted = tf.gather(confident, [1, 2, 3, 0])
    assert float(losses.invariant_clustering_loss(confident, shifted)) == pytest.approx(-np.log(2), abs=1e-3)
