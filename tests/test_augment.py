"""Augmentation layers in the tf.data pipeline, and DiffAugment inside GAN training."""

import numpy as np
import pytest
import tensorflow as tf

from synthblend import zoo
from conftest import all_finite, tiny_model
from synthblend.datasets import augment
from synthblend.zoo import diffaugment
from synthblend.zoo.registry import UsageError

SPEC = "flip,rotate:0.1,zoom:0.1,translate:0.1,contrast:0.2,brightness:0.2"


def batches(images, labels, batch_size):
    dataset = tf.data.Dataset.from_tensor_slices({"x": images, "y": labels})
    return dataset.batch(batch_size)


def augmented(images, labels, seed, spec=SPEC, batch_size=8):
    model = augment.augmenter(spec, images.shape[1:], (0.0, 255.0), seed)
    return list(augment.apply(batches(images, labels, batch_size), model).as_numpy_iterator())


def noise_images(count, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, *shape)).astype(np.uint8)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 1), (64, 64, 3)])
def test_every_image_size_and_channel_count(shape):
    images = noise_images(8, shape)
    (batch,) = augmented(images, np.arange(8), seed=0)
    assert batch["x"].shape == (8, *shape) and batch["x"].dtype == np.float32
    assert batch["x"].min() >= 0.0 and batch["x"].max() <= 255.0
    assert not np.allclose(batch["x"], images)


def test_reproducible_for_a_seed_and_different_for_another():
    images = noise_images(16, (28, 28, 1))
    first, again, other = (augmented(images, np.arange(16), seed) for seed in (3, 3, 4))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["x"], b["x"])
    assert not np.array_equal(first[0]["x"], other[0]["x"])


def test_each_image_and_each_batch_draws_its_own_parameters():
    # The same image everywhere: any two equal outputs would mean a repeated draw.
    image = noise_images(1, (28, 28, 1))[0]
    images = np.repeat(image[None], 32, axis=0)
    outputs = np.concatenate([batch["x"] for batch in augmented(images, np.arange(32), seed=0, spec="rotate:0.2")])
    flat = outputs.reshape(32, -1)
    distinct = {flat[i].tobytes() for i in range(32)}
    assert len(distinct) == 32


def test_labels_stay_with_their_images():
    images = noise_images(16, (28, 28, 1))
    labels = np.arange(16) % 4
    result = augmented(images, labels, seed=0, spec="flip")
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in result]), labels)
    # A horizontal flip keeps each image's own pixels: compare each output with its input.
    outputs = np.concatenate([b["x"] for b in result])
    for index in range(16):
        assert np.array_equal(outputs[index], images[index]) or np.array_equal(outputs[index], images[index, :, ::-1])


@pytest.mark.parametrize("spec, words", [
    ("blur:1", "unknown augmentation 'blur'; accepted: brightness:F with 0<F<=1, contrast"),
    ("rotate", "rotate needs a factor"),
    ("rotate:2", "rotate:2 is out of range"),
    ("zoom:0", "zoom:0 is out of range"),
    ("contrast:lots", "is not a number"),
    (",", "names no augmentation"),
])
def test_bad_specs_are_usage_errors(spec, words):
    with pytest.raises(UsageError, match=words):
        augment.parse(spec)


def test_vectors_cannot_be_augmented():
    with pytest.raises(UsageError, match="applies to images"):
        augment.augmenter("flip", (2,), (0.0, 1.0), 0)


# -- DiffAugment --------------------------------------------------------------------------------

def seeds():
    import keras

    return keras.random.SeedGenerator(0)


def test_translation_moves_content_by_at_most_an_eighth():
    images = np.zeros((64, 28, 28, 1), np.float32)
    images[:, 14, 14, 0] = 1.0
    shifted = diffaugment.translation(tf.constant(images), seeds()).numpy()
    assert np.all(shifted.sum(axis=(1, 2, 3)) == 1.0)  # the pixel stays inside: it can move 4 at most
    rows, columns = np.nonzero(shifted[..., 0].reshape(64, 28, 28).sum(axis=0))
    assert np.abs(rows - 14).max() <= 4 and np.abs(columns - 14).max() <= 4
    assert len(set(zip(*np.nonzero(shifted[:, :, :, 0])[1:]))) > 10  # many different shifts


def test_cutout_zeroes_at_most_a_quarter_and_usually_exactly_it():
    images = tf.ones((64, 28, 28, 1))
    kept = diffaugment.cutout(images, seeds()).numpy().reshape(64, -1).mean(axis=1)
    assert np.all(kept >= 0.75 - 1e-6) and np.mean(np.isclose(kept, 0.75)) > 0.2


def test_every_policy_is_differentiable():
    images = tf.random.uniform((4, 28, 28, 3), -1, 1)
    with tf.GradientTape() as tape:
        tape.watch(images)
        output = diffaugment.diff_augment(images, diffaugment.POLICIES, seeds())
        total = tf.reduce_sum(output)
    gradient = tape.gradient(total, images)
    assert output.shape == images.shape and gradient is not None and np.abs(gradient.numpy()).sum() > 0


def test_unknown_policy_and_vector_data_are_usage_errors():
    with pytest.raises(UsageError, match="unknown policy 'jitter'; accepted: color, translation, cutout"):
        diffaugment.parse("color,jitter")
    with pytest.raises(UsageError, match="applies to images"):
        tiny_model("gan", diffaugment="color")


@pytest.mark.parametrize("name", ["dcgan", "infogan"])
def test_gans_train_with_diffaugment(name):
    model = tiny_model(name, diffaugment="translation,color,cutout")
    assert model.get_config()["diffaugment"] == "color,translation,cutout"
    model.build_optimizers()
    metrics = model.train_step({"x": tf.random.uniform((4, 28, 28, 1), -1, 1)})
    assert all_finite(metrics.values())
    assert zoo.get(name).from_config(model.get_config()).diffaugment == model.diffaugment


def test_scale_grows_or_shrinks_content_within_its_range():
    images = -np.ones((64, 28, 28, 1), np.float32)
    images[:, 10:18, 10:18] = 1.0  # an 8x8 square: area 64 pixels
    scaled = diffaugment.scale(tf.constant(images), seeds()).numpy()
    areas = (scaled > 0).sum(axis=(1, 2, 3))
    assert areas.min() >= 64 / 1.4**2 - 8 and areas.max() <= 64 * 1.4**2 + 16
    assert areas.min() < 56 and areas.max() > 72  # both directions occur
    # Zoomed-out images take in area from outside the image: it is the low end of the range, not grey.
    np.testing.assert_allclose(scaled[:, 0, 0, 0], -1.0)


def test_rotation_turns_about_the_centre_and_fills_with_the_low_end(monkeypatch):
    images = embedded_shapes(16)
    with monkeypatch.context() as patch:
        patch.setattr(diffaugment.streams, "draw", lambda function, shape, seed, *_: tf.fill(shape, np.pi / 2))
        quarter = diffaugment.rotation(tf.constant(images), seeds()).numpy()
    np.testing.assert_allclose(quarter, np.rot90(images, 1, axes=(1, 2)), atol=1e-5)
    # A disc about the centre keeps its area at any angle; corners brought in from outside are -1.
    disc = -np.ones((64, 28, 28, 1), np.float32)
    yy, xx = np.mgrid[:28, :28]
    disc[:, (yy - 13.5) ** 2 + (xx - 13.5) ** 2 < 36] = 1.0
    turned = diffaugment.rotation(tf.constant(disc), seeds()).numpy()
    areas = (turned > 0).sum(axis=(1, 2, 3))
    assert np.all(np.abs(areas - (disc[0] > 0).sum()) <= 8)
    square = np.ones((64, 28, 28, 1), np.float32)
    corners = diffaugment.rotation(tf.constant(square), seeds()).numpy()[:, 0, 0, 0]
    assert np.mean(corners < -0.9) > 0.5  # most angles bring the corner in from outside


def test_centre_removes_position_and_size():
    small = -np.ones((2, 28, 28, 1), np.float32)
    small[0, 2:8, 3:9] = 1.0  # a 6x6 square in a corner
    small[1, 12:24, 10:22] = 1.0  # a 12x12 square elsewhere
    framed = diffaugment.centre(tf.constant(small)).numpy()
    areas = (framed > 0).sum(axis=(1, 2, 3))
    assert abs(areas[0] - areas[1]) <= 0.1 * areas[1] and 100 < areas[1] < 400  # was 36 and 144 pixels
    for image in framed:
        rows, columns = np.nonzero(image[..., 0] > 0)
        assert abs(rows.mean() - 13.5) < 0.5 and abs(columns.mean() - 13.5) < 0.5


def test_infogan_reads_its_categorical_code_through_the_invariance_policies():
    model = tiny_model("infogan", code_invariance="rotation,centre")
    assert model.get_config()["code_invariance"] == "centre,rotation"
    assert zoo.get("infogan").from_config(model.get_config()).code_invariance == "centre,rotation"
    model.build_optimizers()
    metrics = model.train_step({"x": tf.random.uniform((4, 28, 28, 1), -1, 1)})
    assert all_finite(metrics.values())
    # Read back from the re-framed image: moving and resizing the content leaves the code's posterior.
    images = -np.ones((2, 28, 28, 1), np.float32)
    images[0, 2:8, 3:9] = 1.0
    images[1, 12:24, 10:22] = 1.0
    probabilities, continuous = model.infer_codes(tf.constant(images))
    framed_logits, _ = model._q(model.discriminator(diffaugment.centre(tf.constant(images)))["features"])
    plain_logits, plain_continuous = model._q(model.discriminator(tf.constant(images))["features"])
    np.testing.assert_allclose(probabilities, tf.nn.softmax(framed_logits), atol=1e-6)
    assert not np.allclose(probabilities, tf.nn.softmax(plain_logits), atol=1e-6)
    np.testing.assert_allclose(continuous, plain_continuous, atol=1e-6)
    with pytest.raises(UsageError, match="--code_invariance: unknown policy 'pose'; accepted: centre, color"):
        tiny_model("infogan", code_invariance="pose")
    with pytest.raises(UsageError, match="--diffaugment: unknown policy 'centre'"):
        tiny_model("dcgan", diffaugment="centre")


def embedded_shapes(count):
    from synthblend.datasets import embedded

    return embedded.shapes(count, 0)["x"].astype(np.float32) / 127.5 - 1.0


def test_infogan_clustering_term_reads_real_images_through_two_views():
    model = tiny_model("infogan", code_invariance="centre,rotation", clustering_weight=0.5)
    assert zoo.get("infogan").from_config(model.get_config()).clustering_weight == 0.5
    model.build_optimizers()
    metrics = model.train_step({"x": tf.random.uniform((4, 28, 28, 1), -1, 1)})
    assert all_finite(metrics.values()) and -np.log(3) - 1e-4 <= float(metrics["real_clustering_loss"]) <= 1e-6
    assert "real_clustering_loss" not in tiny_model("infogan", code_invariance="rotation").train_step(
        {"x": tf.random.uniform((4, 28, 28, 1), -1, 1)})
    with pytest.raises(UsageError, match="clustering_weight=1.0 needs a non-negative value and --code_invariance"):
        tiny_model("infogan", clustering_weight=1.0)
