"""Tests every registered model gets, by looping over the registry."""

import numpy as np
import pytest
import tensorflow as tf

from synthblend import zoo
from conftest import all_finite, tiny_model, tiny_shape
from synthblend.trainers.loop import Trainer, TrainerConfig


def batch_for(model, size=8, seed=0):
    x = tf.random.stateless_uniform((size, *model.data_shape), seed=[seed, 1], minval=-1, maxval=1)
    return {"x": x, "y": tf.zeros((size,), tf.int64)}


def test_builds_and_round_trips_its_config(model_name):
    model = tiny_model(model_name)
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert set(config) <= set(type(model).arguments())
    assert model.data_shape == tiny_shape(model_name)


def test_one_step_updates_both_players_and_reports_finite_metrics(model_name):
    model = tiny_model(model_name)
    model.build_optimizers()
    before = [v.numpy().copy() for v in model.trainable_variables]
    metrics = model.train_step(batch_for(model))
    assert metrics and all(isinstance(k, str) for k in metrics)
    assert all(tf.rank(v) == 0 for v in metrics.values())
    assert all_finite(metrics.values())
    # Every weight matrix moves. (A bias may legitimately get an exactly zero gradient: under
    # the hinge loss at initialisation the logit bias's gradient is -1 + 1.)
    unchanged = [
        v.path for a, v in zip(before, model.trainable_variables) if len(v.shape) >= 2 and np.array_equal(a, v.numpy())
    ]
    assert not unchanged, f"not updated: {unchanged}"


def test_sample_shape_range_and_determinism(model_name):
    model = tiny_model(model_name)
    samples = model.sample(5, seed=3).numpy()
    assert samples.shape == (5, *model.data_shape)
    assert np.isfinite(samples).all()
    if model.data_range is not None:
        low, high = model.data_range
        assert samples.min() >= low and samples.max() <= high
    np.testing.assert_array_equal(samples, model.sample(5, seed=3).numpy())
    assert not np.array_equal(samples, model.sample(5, seed=4).numpy())
    # Without a seed, samples come from the model's own stream and differ call to call.
    assert not np.array_equal(model.sample(5).numpy(), model.sample(5).numpy())


def test_unsupported_data_shape_is_a_usage_error(model_name):
    model_class = zoo.get(model_name)
    with pytest.raises(zoo.UsageError, match=model_name):
        model_class.check_data((3, 5, 7, 2), 0)


def test_save_and_resume_continue_where_they_stopped(model_name, tmp_path):
    def trainer_for(model):
        dataset = tf.data.Dataset.from_tensors(batch_for(model)).repeat()
        config = TrainerConfig(steps_per_call=2, checkpoint_every=2, log_every=2, sample_every=100, ema_decay=0.9)
        return Trainer(model, dataset, str(tmp_path), config, log=lambda line: None)

    first = trainer_for(tiny_model(model_name))
    first.train(2)
    saved = [v.numpy() for v in first.model.variables]

    second = trainer_for(tiny_model(model_name, seed=99))  # other init; restore must overwrite it
    assert second.restore() == 2
    assert len(second.model.variables) == len(saved)
    for variable, value in zip(second.model.variables, saved):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    np.testing.assert_array_equal(
        [s.numpy() for s in second.ema.shadows[:1]], [s.numpy() for s in first.ema.shadows[:1]]
    )
    second.train(4)
    assert int(second.step.numpy()) == 4
    assert second.checkpoints.latest_checkpoint.endswith("ckpt-4")


def conditional_names():
    names = []
    for name in zoo.names():
        try:
            tiny_model(name, conditional=True, num_classes=3)
            names.append(name)
        except zoo.UsageError:
            pass
    return names


def test_gan_dcgan_and_vae_can_be_conditional():
    assert {"gan", "dcgan", "vae"} <= set(conditional_names())


@pytest.mark.parametrize("name", conditional_names())
def test_conditional_model_steps_samples_the_classes_asked_for_and_rejects_others(name):
    model = tiny_model(name, conditional=True, num_classes=3)
    model.build_optimizers()
    batch = batch_for(model)
    batch["y"] = tf.constant([0, 1, 2, 0, 1, 2, 0, 1], tf.int64)
    assert all_finite(model.train_step(batch).values())
    same_noise = [model.sample(2, seed=5, labels=[label, label]).numpy() for label in range(3)]
    assert not np.array_equal(same_noise[0], same_noise[1])  # the label changes the output
    pictures = model.pictures(6, seed=0)
    samples, columns = pictures["samples"]
    assert columns == 2 and samples.shape[0] == 6  # a row of 2 per class
    with pytest.raises(zoo.UsageError, match="label 3 is outside the class range 0..2"):
        model.sample(2, seed=0, labels=[0, 3])


def test_conditional_needs_classes(model_name):
    if model_name not in conditional_names():
        pytest.skip("not a conditional model")
    with pytest.raises(zoo.UsageError, match="at least 2 classes"):
        tiny_model(model_name, conditional=True, num_classes=0)


def test_every_model_draws_samples_and_an_interpolation(model_name):
    model = tiny_model(model_name)
    real = batch_for(model, size=16)
    pictures = model.pictures(16, seed=0, real=real)
    assert {"samples", "interpolation"} <= set(pictures)
    for name, (samples, columns) in pictures.items():
        samples = np.asarray(samples)
        assert samples.shape[1:] == model.data_shape, name
        assert samples.shape[0] % columns == 0, name
    interpolation, columns = pictures["interpolation"]
    # Neighbours along a row are closer than the row's two ends.
    row = np.asarray(interpolation)[:columns].reshape(columns, -1)
    assert np.linalg.norm(row[1] - row[0]) < np.linalg.norm(row[-1] - row[0])


def test_vae_endpoints_and_heldout_metrics():
    model = tiny_model("vae")
    batch = batch_for(model)
    mean, log_variance = model.encode(batch["x"])
    assert mean.shape == log_variance.shape == (8, 4)
    assert model.decode(mean).shape == (8, *model.data_shape)
    assert model.reconstruct(batch["x"]).shape == (8, *model.data_shape)
    metrics = model.test_step(batch)
    assert set(metrics) == {"reconstruction", "kl", "elbo"}
    assert float(metrics["elbo"]) == pytest.approx(-(float(metrics["reconstruction"]) + float(metrics["kl"])), rel=1e-5)


def test_vae_bernoulli_on_images_has_range_0_1_and_gaussian_on_vectors():
    image_vae = zoo.get("vae")(data_shape=(28, 28, 1), bounded=True, latent_dim=2, width=8)
    assert image_vae.likelihood == "bernoulli" and image_vae.data_range == (0.0, 1.0)
    vector_vae = zoo.get("vae")(data_shape=(2,), bounded=False, latent_dim=2, width=8)
    assert vector_vae.likelihood == "gaussian" and vector_vae.data_range is None
    with pytest.raises(zoo.UsageError, match="bernoulli needs data in a fixed range"):
        zoo.get("vae")(data_shape=(2,), bounded=False, likelihood="bernoulli")


def test_infogan_codes_in_and_out():
    model = tiny_model("infogan")
    images = model.sample(6, seed=0, codes=[0, 1, 2, 0, 1, 2], continuous=np.zeros((6, 1)))
    probabilities, continuous = model.infer_codes(images)
    assert probabilities.shape == (6, 3) and continuous.shape == (6, 1)
    np.testing.assert_allclose(np.sum(probabilities, axis=-1), 1.0, rtol=1e-5)
    pictures = model.pictures(16, seed=0)
    assert {"categorical", "continuous_0"} <= set(pictures)
    assert np.asarray(pictures["categorical"][0]).shape[0] == 3 * pictures["categorical"][1]
    with pytest.raises(zoo.UsageError, match="categorical code 3 is outside 0..2"):
        model.sample(2, seed=0, codes=[0, 3])
    with pytest.raises(zoo.UsageError, match="2 continuous codes given; this model has 1"):
        model.sample(2, seed=0, continuous=np.zeros((2, 2)))


def test_auxiliary_classifier_trains_with_conditional_adversarial_models():
    model = tiny_model("dcgan", num_classes=3, conditional=True, classifier_weight=1.0)
    model.build_optimizers()
    batch = {"x": tf.random.uniform((4, 28, 28, 1), -1, 1), "y": tf.constant([0, 1, 2, 0])}
    metrics = model.train_step(batch)
    assert {"real_classification_loss", "fake_classification_loss"} <= set(metrics)
    assert all_finite(metrics.values()) and float(metrics["real_classification_loss"]) > 0
    with pytest.raises(zoo.UsageError, match="needs a conditional model"):
        tiny_model("gan", classifier_weight=1.0)


def test_dcgan_discriminator_depth_sets_how_far_the_trunk_downsamples():
    default = tiny_model("dcgan").discriminator.get_layer("discriminator_trunk")
    deeper = tiny_model("dcgan", discriminator_depth=3).discriminator.get_layer("discriminator_trunk")
    width = tiny_model("dcgan").width
    assert default.output.shape[-1] == 7 * 7 * 2 * width  # 28 -> 14 -> 7
    assert deeper.output.shape[-1] == 4 * 4 * 4 * width  # 28 -> 14 -> 7 -> 4: sees a whole shape
    for depth in (0, 5):
        with pytest.raises(zoo.UsageError, match=f"discriminator_depth={depth} is not in 1..4 for 28x28"):
            tiny_model("dcgan", discriminator_depth=depth)


def test_share_labels_are_blocks_sized_by_the_shares():
    from synthblend.zoo.base import share_labels

    assert share_labels(10, [1, 1]).numpy().tolist() == [0] * 5 + [1] * 5
    assert share_labels(10, [0.8, 0.2]).numpy().tolist() == [0] * 8 + [1] * 2
    assert share_labels(4, [3, 0, 1]).numpy().tolist() == [0, 0, 0, 2]
    assert np.bincount(share_labels(1000, [0.5, 0.3, 0.2]).numpy()).tolist() == [500, 300, 200]


@pytest.mark.parametrize("name", ["dcgan", "vae", "infogan"])
@pytest.mark.parametrize("channels", [1, 3])
def test_image_models_take_128x128_images(name, channels):
    from synthblend.zoo import networks

    model = tiny_model(name, data_shape=(128, 128, channels), width=4, latent_dim=4)
    model.build_optimizers()
    metrics = model.train_step(batch_for(model, size=2))
    assert all_finite(metrics.values())
    samples = model.sample(2, seed=1)
    samples = samples[0] if isinstance(samples, tuple) else samples
    assert tuple(samples.shape) == (2, 128, 128, channels)
    generator = next(network for network in (getattr(model, "generator", None), getattr(model, "decoder", None))
                     if network is not None)
    widest = max(max(weight.shape[-2:]) for weight in generator.weights if len(weight.shape) == 4)
    assert widest == 4 * networks.DCGAN_MAX_MULTIPLE  # 4x4x64 at width 4, not 4x4x128


def test_the_generator_moves_once_every_discriminator_steps_and_a_bad_count_is_refused():
    model = tiny_model("gan", discriminator_steps=3)
    model.build_optimizers()
    step = tf.function(model.train_step)
    batch = {"x": tf.random.stateless_normal((8, *model.data_shape), [1, 2])}
    moved = []
    for _ in range(6):
        before = [[w.numpy() for w in network.trainable_weights] for network in (model.generator, model.discriminator)]
        step(batch)
        moved.append(tuple(any(not np.array_equal(b, w.numpy()) for b, w in zip(weights, network.trainable_weights))
                           for weights, network in zip(before, (model.generator, model.discriminator))))
    assert moved == [(False, True), (False, True), (True, True)] * 2
    assert zoo.get("gan").from_config(model.get_config()).discriminator_steps == 3
    for bad in (0, 1.5):
        with pytest.raises(zoo.registry.UsageError, match=f"discriminator_steps={bad} must be a positive integer"):
            tiny_model("gan", discriminator_steps=bad)
