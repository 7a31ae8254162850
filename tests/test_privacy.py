"""Differentially private training: the accountant against a published case, DP-SGD's clipping and
its equality with the plain step, the refusals, and the budget through the train command."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_tool, tiny_model
from test_train import TINY
from synthblend.trainers import privacy, train
from synthblend.zoo import dpsgd
from synthblend.zoo.registry import UsageError

# N = 60,000, batch 256, noise multiplier 1.1, 60 epochs, delta 1e-5: the MNIST case of the
# DP-SGD literature, epsilon 2.60 with dp-accounting's RDP accountant and 2.38 with PLD.
MNIST_RATE, MNIST_STEPS = 256 / 60000, math.ceil(60 * 60000 / 256)


@pytest.mark.parametrize("accountant, expected", [("rdp", 2.60), ("pld", 2.38)])
def test_the_accountant_gives_the_published_epsilon(accountant, expected):
    assert MNIST_STEPS == 14063
    assert privacy.epsilon(1.1, MNIST_RATE, MNIST_STEPS, 1e-5, accountant) == pytest.approx(expected, abs=0.005)


def test_calibrated_noise_spends_the_target_and_the_budget_ends_at_a_step():
    noise = privacy.noise_for(2.6, 1e-5, MNIST_RATE, MNIST_STEPS)
    assert noise == pytest.approx(1.1, abs=0.005)
    assert privacy.epsilon(noise, MNIST_RATE, MNIST_STEPS, 1e-5) <= 2.6
    last = privacy.steps_within(2.6, 1e-5, 1.1, MNIST_RATE)
    assert privacy.epsilon(1.1, MNIST_RATE, last, 1e-5) <= 2.6 < privacy.epsilon(1.1, MNIST_RATE, last + 1, 1e-5)
    assert privacy.steps_within(0.001, 1e-5, 0.5, 0.5) == 0


def test_the_plan_refuses_a_delta_that_allows_releasing_an_example():
    assert privacy.plan(60000, 256, 100, noise_multiplier=1.0).delta == 1e-6
    with pytest.raises(UsageError, match=r"--delta=0.01 must be below 1 / N = 0.001 \(1000 examples\)"):
        privacy.plan(1000, 10, 100, noise_multiplier=1.0, delta=0.01)
    with pytest.raises(UsageError, match="--batch_size=64 is larger than the 50 examples"):
        privacy.plan(50, 64, 100, noise_multiplier=1.0)


def test_clipping_bounds_what_one_example_moves_the_update():
    """Adding an outlier example moves the clipped sum by at most the clip norm, before noise."""
    kernel = tf.Variable(tf.ones((3, 1)))
    clip = 0.5

    def clipped_sum(x):
        def loss(row):
            return tf.reduce_mean(tf.square(row @ kernel - 1.0))

        gradients, metrics = dpsgd.private_gradients(loss, (x,), [kernel], dpsgd.Clipping(clip, 0.0), [1, 2])
        return gradients[0] * len(x), metrics  # the sum over examples: private_gradients divides by the batch

    x = tf.random.stateless_normal((8, 3), [0, 1])
    outlier = tf.constant([[1000.0, -500.0, 300.0]])
    without, _ = clipped_sum(x)
    with_outlier, metrics = clipped_sum(tf.concat([x, outlier], 0))
    assert float(tf.norm(with_outlier - without)) <= clip + 1e-5
    assert float(tf.norm(with_outlier - without)) == pytest.approx(clip, rel=1e-4)  # the outlier is clipped
    assert float(metrics["clipped_share"]) >= 1 / 9


def test_a_loss_of_two_terms_clips_each_to_half_the_norm():
    """An example whose loss has two terms moves the sum by each term's gradient clipped to C / 2:
    a small term keeps its share beside a large one, and the example still moves it by at most C."""
    kernel = tf.Variable(tf.ones((3, 1)))
    clip = 0.5

    def loss(row):
        large = 1000.0 * tf.reduce_sum(row @ kernel)  # gradient 1000 row
        small = 0.01 * tf.reduce_sum(tf.square(kernel[0]))  # gradient 0.02 along the first weight
        return large, small

    row = tf.constant([[0.0, 3.0, 4.0]])
    gradients, metrics = dpsgd.private_gradients(loss, (row,), [kernel], dpsgd.Clipping(clip, 0.0), [1, 2])
    expected = np.array([[0.02], [0.15], [0.2]])  # the large term's (0, 3000, 4000) at norm 0.25; the small one's whole
    np.testing.assert_allclose(gradients[0].numpy(), expected, rtol=1e-5)
    assert float(tf.norm(gradients[0])) <= clip and float(metrics["clipped_share"]) == 1.0


def dense_discriminator(layers):
    """A small functional discriminator: rows of 3 features through `layers`, to one logit."""
    inputs = keras.Input((3,))
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, {"logits": x}, name="small_discriminator")


def pair_loss(network):
    """A GAN discriminator's non-saturating loss of one pair of rows (real, generated), both as the
    per-example loss `private_gradients` takes and as the same loss written row-wise."""

    def head(outputs, real, fake):
        real_logit, fake_logit = tf.unstack(outputs["logits"][:, 0])
        return tf.math.softplus(-real_logit) + tf.math.softplus(fake_logit)

    def loss(real, fake):
        return head(network(tf.concat([real, fake], axis=0)), real, fake)

    return loss, dpsgd.RowwiseLoss(network, lambda real, fake: tf.stack([real, fake], axis=1), head)


def row_loss(network):
    """The same for a loss of one row per example: half the square of the real row's logit."""

    def head(outputs, real, fake):
        return 0.5 * tf.square(outputs["logits"][0, 0])

    def loss(real, fake):
        return head(network(real), real, fake)

    return loss, dpsgd.RowwiseLoss(network, lambda real, fake: real[:, None], head)


def spread(shape, seed):
    """Normal rows scaled from 0.01 to 30 along the batch, so that a clip norm of 1 clips some."""
    scales = tf.reshape(tf.exp(tf.linspace(tf.math.log(0.01), tf.math.log(30.0), shape[0])),
                        [shape[0]] + [1] * (len(shape) - 1))
    return tf.random.stateless_normal(shape, [7, seed]) * scales


def both_clipped_sums(loss, rowwise, inputs, variables, clip):
    """(sums, norms) of the per-example pass, then of the batched pass."""
    plan = dpsgd.dense_plan(rowwise.network, variables)
    assert plan is not None

    @tf.function
    def both():
        gradients = [tf.cast(g, tf.float32) for g in dpsgd.per_example_gradients(loss, inputs, variables)]
        return dpsgd.clipped_sum(gradients, clip), dpsgd.rowwise_clipped_sum(rowwise, inputs, plan, clip)

    return both()


@pytest.mark.parametrize("losses", [pair_loss, row_loss], ids=["pairs of rows", "one row"])
def test_the_batched_dense_pass_gives_the_per_example_norms_and_clipped_sum(losses):
    keras.utils.set_random_seed(3)
    network = dense_discriminator([keras.layers.Dense(8), keras.layers.LeakyReLU(0.2), keras.layers.Dense(6),
                                   keras.layers.ReLU(), keras.layers.Dense(1)])
    loss, rowwise = losses(network)
    inputs, variables = (spread((12, 3), 1), spread((12, 3), 2)), network.trainable_variables
    assert [is_kernel for _, is_kernel in dpsgd.dense_plan(network, variables)] == [True, False] * 3
    (sums, norms), (fast_sums, fast_norms) = both_clipped_sums(loss, rowwise, inputs, variables, 1.0)
    assert 0 < np.mean(norms.numpy() > 1.0) < 1, "some examples are clipped and some not"
    np.testing.assert_allclose(fast_norms, norms, rtol=1e-5)
    for fast, exact in zip(fast_sums, sums):
        np.testing.assert_allclose(fast, exact, rtol=1e-5, atol=1e-6)


def test_the_batched_pass_counts_every_position_and_call_of_a_layer():
    """Dense layers on a sequence (4 positions of each row, 8 per pair), some kernels small enough
    that `kernel_squares` forms each example's gradient, one large enough for the Gram matrices,
    and a layer called twice: the norms and sums still equal the per-example computation."""
    keras.utils.set_random_seed(4)
    shared = keras.layers.Dense(3)
    inputs = keras.Input((4, 3))
    x = keras.layers.Dense(40)(keras.layers.Dense(2)(inputs))  # 3 x 2 and 2 x 40: per-example gradients
    x = keras.layers.Dense(40)(keras.layers.LeakyReLU(0.2)(x))  # 40 x 40 over 8 positions: Gram matrices
    x = keras.layers.Flatten()(shared(keras.layers.ReLU()(shared(keras.layers.Dense(3)(x)))))
    network = keras.Model(inputs, {"logits": keras.layers.Dense(1)(x)})
    variables = network.trainable_variables
    assert sum(layer is shared for layer, _ in dpsgd.dense_plan(network, variables)) == 2
    loss, rowwise = pair_loss(network)
    pairs = (spread((10, 4, 3), 3), spread((10, 4, 3), 4))
    (sums, norms), (fast_sums, fast_norms) = both_clipped_sums(loss, rowwise, pairs, variables, 1.0)
    assert 0 < np.mean(norms.numpy() > 1.0) < 1
    np.testing.assert_allclose(fast_norms, norms, rtol=1e-5)
    for fast, exact in zip(fast_sums, sums):
        np.testing.assert_allclose(fast, exact, rtol=1e-4, atol=1e-6)


def test_the_batched_pass_bounds_what_one_outlier_moves_the_update():
    """Through `private_gradients` with a `RowwiseLoss`: an outlier pair moves the clipped sum by at
    most the clip norm (here by it: the outlier's gradient is clipped)."""
    keras.utils.set_random_seed(5)
    network = dense_discriminator([keras.layers.Dense(8), keras.layers.LeakyReLU(0.2), keras.layers.Dense(1)])
    loss, rowwise = pair_loss(network)
    variables, clip = network.trainable_variables, 0.5

    def clipped_sum(pairs):
        gradients, metrics = dpsgd.private_gradients(loss, pairs, variables, dpsgd.Clipping(clip, 0.0), [1, 2],
                                                     rowwise=rowwise)
        return [g * len(pairs[0]) for g in gradients], metrics  # private_gradients divides by the batch

    real, fake = spread((8, 3), 5), spread((8, 3), 6)
    without, _ = clipped_sum((real, fake))
    outlier = (tf.constant([[1000.0, -500.0, 300.0]]), tf.constant([[-200.0, 800.0, 50.0]]))
    with_outlier, metrics = clipped_sum((tf.concat([real, outlier[0]], 0), tf.concat([fake, outlier[1]], 0)))
    moved = math.sqrt(sum(float(tf.reduce_sum(tf.square(a - b))) for a, b in zip(with_outlier, without)))
    assert moved <= clip + 1e-5 and moved == pytest.approx(clip, rel=1e-4)
    assert float(metrics["clipped_share"]) >= 1 / 9


@pytest.mark.parametrize("layers", [
    lambda: [keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)],
    lambda: [keras.layers.Dense(4), keras.layers.LayerNormalization(), keras.layers.Dense(1)],
    lambda: [keras.layers.Dense(4), keras.layers.Dropout(0.5), keras.layers.Dense(1)],
], ids=["activation inside a dense layer", "weights of another kind", "randomness"])
def test_networks_beyond_plain_dense_layers_keep_the_per_example_pass(layers):
    network = dense_discriminator(layers())
    assert dpsgd.dense_plan(network, network.trainable_variables) is None
    plain = dense_discriminator([keras.layers.Dense(4), keras.layers.Dense(1)])
    assert dpsgd.dense_plan(plain, plain.trainable_variables[:2]) is not None
    # A variable outside the network: the per-example loss may read it beyond the network's rows.
    assert dpsgd.dense_plan(plain, plain.trainable_variables + [keras.Variable(tf.zeros((2,)))]) is None


def test_the_gan_takes_the_batched_pass_where_its_discriminator_allows():
    cases = {"gan": (dict(name="gan"), True), "gan wasserstein_gp": (dict(name="gan", loss="wasserstein_gp"), False),
             "gan conditional": (dict(name="gan", num_classes=3, conditional=True), False),
             "dcgan": (dict(name="dcgan", discriminator_norm="none"), False)}
    for case, (settings, batched) in cases.items():
        settings = dict(settings)
        model = tiny_model(settings.pop("name"), **settings)
        rowwise = model._rowwise_loss(model._real_part)
        plan = None if rowwise is None else dpsgd.dense_plan(rowwise.network, model.discriminator_variables)
        assert (plan is not None) == batched, case


def test_a_clipped_and_noised_gan_step_is_the_same_through_either_pass():
    """The whole private step of a `gan`, with most pairs clipped and noise on: through the batched
    pass and through the per-example one, the same weights after it (the same noise, drawn from
    the same seeds)."""
    batched, per_example = tiny_model("gan", width=16, depth=2), tiny_model("gan", width=16, depth=2)
    per_example._rowwise_loss = lambda part: None
    for model in (batched, per_example):
        model.discriminator_optimizer, model.generator_optimizer = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1)
        model.build_optimizers()
        model.make_private(dpsgd.Clipping(l2_norm_clip=0.05, noise_multiplier=1.0))
    per_example.set_weights(batched.get_weights())
    batch = {"x": spread((16, 2), 9)}
    metrics = [tf.function(model.train_step)(batch) for model in (batched, per_example)]
    assert 0 < float(metrics[0]["clipped_share"]) == pytest.approx(float(metrics[1]["clipped_share"]))
    for left, right in zip(batched.get_weights(), per_example.get_weights()):
        np.testing.assert_allclose(left, right, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("settings", [{}, dict(num_classes=3, conditional=True, classifier_weight=0.5)],
                         ids=["gan", "gan conditional, class head"])
def test_a_private_gan_step_reads_the_real_examples_only_through_their_clipped_gradients(settings):
    """Without noise, two batches whose real examples and labels all differ move the discriminator
    by updates at most 2 C apart (each real example's clipped gradient weighs at most C / batch;
    the generated half reads the private weights and public noise and labels, the same in both),
    while each update, generated examples clipped too, is at most 2 C and not nothing."""
    clip = 1e-3
    first = tiny_model("gan", **settings)
    updates = []
    for seed, labels in ((1, [0, 1, 2, 0, 1, 2]), (2, [2, 2, 2, 1, 1, 0])):
        model = tiny_model("gan", **settings)
        model.discriminator_optimizer, model.generator_optimizer = keras.optimizers.SGD(1.0), keras.optimizers.SGD(1.0)
        model.build_optimizers()
        model.set_weights(first.get_weights())
        model.make_private(dpsgd.Clipping(l2_norm_clip=clip, noise_multiplier=0.0))
        before = [w.numpy() for w in model.discriminator_variables]
        metrics = tf.function(model.train_step)({"x": spread((6, 2), seed), "y": tf.constant(labels, tf.int32)})
        assert float(metrics["clipped_share"]) > 0.5
        updates.append(np.concatenate([(w.numpy() - b).ravel() for w, b in zip(model.discriminator_variables, before)]))
    for update in updates:
        assert clip / 100 < np.linalg.norm(update) <= 2 * clip * (1 + 1e-4)
    assert np.linalg.norm(updates[0] - updates[1]) <= 2 * clip * (1 + 1e-4)


CASES = {
    "gan": dict(name="gan"),
    "gan conditional, class head": dict(name="gan", num_classes=3, conditional=True, classifier_weight=0.5),
    "gan wasserstein_gp": dict(name="gan", loss="wasserstein_gp"),
    "dcgan layer norm": dict(name="dcgan", discriminator_norm="layer"),
    "infogan": dict(name="infogan", discriminator_norm="layer"),
    "vae": dict(name="vae"),
}


def batch_for(model, size=6):
    x = tf.random.stateless_uniform((size, *model.data_shape), [3, 4], minval=-1.0, maxval=1.0)
    return {"x": x, "y": tf.constant(np.arange(size) % 3, tf.int32)}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_without_noise_and_with_an_infinite_clip_norm_the_private_step_is_the_plain_step(case):
    settings = dict(CASES[case])
    name = settings.pop("name")
    plain, private = tiny_model(name, **settings), tiny_model(name, **settings)
    for model in (plain, private):
        # Plain SGD, so that the step is the gradient: Adam's first step is the gradient's sign,
        # which float rounding flips where a gradient is about 0.
        for attribute in ("discriminator_optimizer", "generator_optimizer", "optimizer_"):
            if hasattr(model, attribute):
                setattr(model, attribute, keras.optimizers.SGD(1.0))
        model.build_optimizers()
    batch = batch_for(plain)
    private.set_weights(plain.get_weights())
    private.make_private(dpsgd.Clipping(l2_norm_clip=1e9, noise_multiplier=0.0))
    if settings.get("conditional") and hasattr(private, "_generated_labels"):
        # A private step generates equal blocks of every class (no real label decides its
        # unclipped generated half); the plain step is given the same classes to compare with.
        assert not np.array_equal(private._generated_labels(batch["y"]), batch["y"])
        plain._generated_labels = private._generated_labels
    networks = private.private_networks()
    before = [w.numpy() for network in networks for w in network.trainable_weights]
    plain_metrics = tf.function(plain.train_step)(batch)
    private_metrics = tf.function(private.train_step)(batch)
    for left, right in zip(plain.get_weights(), private.get_weights()):
        np.testing.assert_allclose(left, right, rtol=1e-4, atol=1e-6)
    after = [w.numpy() for network in networks for w in network.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after)), "the step moved nothing"
    assert float(private_metrics["clipped_share"]) == 0.0 and "clipped_share" not in plain_metrics


def test_noise_moves_the_private_step_by_its_deviation():
    model = tiny_model("gan")
    model.build_optimizers()
    model.make_private(dpsgd.Clipping(l2_norm_clip=1.0, noise_multiplier=1.0))
    variables = model.discriminator.trainable_weights

    def loss(row):  # a loss that does not move the weights: what is left is the noise
        return tf.reduce_sum(row) * tf.add_n([tf.reduce_sum(v) for v in variables]) * 0.0

    gradients, _ = dpsgd.private_gradients(loss, (tf.zeros((4096, 1)),), variables, model.privacy, [5, 6])
    values = np.concatenate([g.numpy().ravel() for g in gradients]) * 4096  # noise / batch, times the batch
    assert np.std(values) == pytest.approx(1.0, rel=0.15) and abs(np.mean(values)) < 4 / np.sqrt(values.size)


@pytest.mark.parametrize("name, settings, words", [
    ("dcgan", {}, ["batch norm", "discriminator", "--discriminator_norm=layer, spectral or none"]),
    ("vae", {"data_shape": (28, 28, 1)}, ["batch norm", "decoder", "--decoder_norm=layer or none"]),
    ("infogan", {"discriminator_norm": "layer", "code_invariance": "translation", "clustering_weight": 1.0},
     ["clustering_weight=1.0", "outside per-example clipping"]),
])
def test_a_model_that_mixes_examples_is_refused(name, settings, words):
    model = tiny_model(name, **settings)
    with pytest.raises(UsageError) as refusal:
        model.make_private(dpsgd.Clipping(1.0, 1.0))
    for word in words:
        assert word in str(refusal.value)
    assert model.privacy is None


SHAPES = ["--model=dcgan", "--dataset=shapes", "--discriminator_norm=none", "--batch_size=32", "--latent_dim=4",
          "--width=8", "--steps_per_call=5", "--log_every=5", "--sample_every=1000", "--checkpoint_every=1000"]
RATE = 32 / 20000  # shapes has 20,000 training images


def record_of(model_dir):
    with open(model_dir / "config.json") as file:
        return json.load(file)


def test_a_private_run_records_its_account_and_ends_where_the_budget_does(tmp_path):
    model_dir = tmp_path / "run"
    code, out, err = run_tool(train.main, *SHAPES, f"--model_dir={model_dir}", "--train_steps=20",
                              "--target_epsilon=0.5")
    assert code == 0, err
    account = record_of(model_dir)["privacy"]
    assert account["steps"] == 20 and account["epsilon"] <= 0.5 and account["num_examples"] == 20000
    assert account["delta"] == 1e-6 and account["batch_size"] == 32 and account["l2_norm_clip"] == 1.0
    assert privacy.epsilon(account["noise_multiplier"], RATE, 20, 1e-6) == pytest.approx(account["epsilon"])
    assert "privacy: (0.5, 1e-06)-DP at step 20" in out
    # More steps than the budget allows: the run ends at the last step within it, with one line.
    code, out, err = run_tool(train.main, *SHAPES, f"--model_dir={model_dir}", "--train_steps=40",
                              "--target_epsilon=0.5")
    assert code == 0, err
    assert ("privacy budget reached: step 21 would spend more than --target_epsilon=0.5; the run ends at step 20"
            in out)
    assert record_of(model_dir)["privacy"]["steps"] == 20
    # Continuing it with other privacy settings is refused.
    code, _, err = run_tool(train.main, *SHAPES, f"--model_dir={model_dir}", "--train_steps=40",
                            "--target_epsilon=0.5", "--l2_norm_clip=2")
    assert code == 2 and "l2_norm_clip=1.0 there, 2.0 now" in err
    code, _, err = run_tool(train.main, *SHAPES, f"--model_dir={model_dir}", "--train_steps=40")
    assert code == 2 and "a differentially private run there, not now" in err


def test_a_given_noise_with_a_budget_stops_at_the_last_step_within_it(tmp_path):
    budget = privacy.epsilon(2.0, RATE, 30, 1e-6)  # what 30 steps spend
    last = privacy.steps_within(budget, 1e-6, 2.0, RATE)
    assert last == 30
    code, out, err = run_tool(train.main, *SHAPES, f"--model_dir={tmp_path / 'run'}", "--train_steps=60",
                              "--noise_multiplier=2", f"--target_epsilon={budget}")
    assert code == 0, err
    assert f"the run ends at step {last}" in out
    assert record_of(tmp_path / "run")["privacy"]["steps"] == last


@pytest.mark.parametrize("argv, words", [
    ([*SHAPES, "--l2_norm_clip=2"], ["--l2_norm_clip=2.0 applies to differentially private training"]),
    ([*SHAPES, "--noise_multiplier=1", "--delta=0.001"], ["--delta=0.001 must be below 1 / N = 5e-05",
                                                         "20000 examples"]),
    ([*SHAPES, "--noise_multiplier=1", "--precision=mixed_float16"], ["float32 or mixed_bfloat16"]),
    ([*SHAPES, "--noise_multiplier=0.01", "--target_epsilon=0.1"], ["too little noise"]),
    (["--model=dcgan", "--dataset=shapes", "--noise_multiplier=1", *TINY],
     ["batch norm", "--discriminator_norm=layer, spectral or none"]),
    (["--model=gan", "--dataset=ring", "--noise_multiplier=1", *TINY], ["takes images", "ring holds vectors"]),
    (["--model=gan", "--dataset=csv:TABLE", "--schema=KINDS", "--noise_multiplier=1", *TINY],
     ["reads no column's domain", 'plan ("categories")', 'age ("bounds": [low, high])', 'paid ("tokens"']),
], ids=["clip without DP", "delta", "float16", "budget below one step", "batch norm", "vectors", "undeclared table"])
def test_what_a_private_run_cannot_take_is_refused_in_one_line(tmp_path, argv, words):
    table = write_table(tmp_path / "table.csv")
    kinds = tmp_path / "kinds.json"
    kinds.write_text(json.dumps({"columns": {name: column["kind"] for name, column in DECLARED["columns"].items()}}))
    argv = [argument.replace("TABLE", str(table)).replace("KINDS", str(kinds)) for argument in argv]
    code, _, err = run_tool(train.main, *argv, f"--model_dir={tmp_path / 'run'}")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and all(word in lines[0] for word in words), err
    assert not (tmp_path / "run").exists()


# -- the audit: a membership-inference attack ------------------------------------------------------

def test_roc_auc_reads_ranks():
    from synthblend.trainers.measures.features import roc_auc

    assert roc_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5


def test_the_attack_catches_copies_and_not_fresh_samples():
    from synthblend.trainers.measures.features import membership_inference

    generator = np.random.default_rng(0)
    members, non_members, reference = (generator.normal(size=(300, 8)) for _ in range(3))
    copies = np.concatenate([members + 0.01 * generator.normal(size=members.shape), generator.normal(size=(300, 8))])
    fresh = generator.normal(size=(600, 8))
    caught = membership_inference(copies, members, non_members, reference)
    unseen = membership_inference(fresh, members, non_members, reference)
    assert caught["auc"] > 0.9 and caught["members"] == 300
    assert abs(unseen["auc"] - 0.5) < 0.06
    assert caught["p_value"] < 1e-6 and unseen["p_value"] > 0.01
    for result in (caught, unseen):
        low, high = result["auc_interval"]
        assert low <= result["auc"] <= high and high - low < 0.2


def test_the_aucs_deviation_is_what_repeated_attacks_show():
    from synthblend.trainers.measures.features import roc_auc, roc_auc_with_deviation

    generator = np.random.default_rng(1)
    truth = np.repeat([True, False], 100)
    for shift in (0.0, 1.0):  # members scoring like non-members, then higher
        aucs = [roc_auc(truth, generator.normal(size=200) + shift * truth) for _ in range(1000)]
        deviations = [roc_auc_with_deviation(truth, generator.normal(size=200) + shift * truth)[1] for _ in range(50)]
        assert abs(np.mean(deviations) - np.std(aucs)) < 0.15 * np.std(aucs)
    scores = generator.normal(size=200)
    assert roc_auc_with_deviation(truth, scores)[0] == pytest.approx(roc_auc(truth, scores), abs=1e-12)


@pytest.mark.slow
def test_the_audit_catches_a_vae_that_memorised_and_less_so_a_private_one(tmp_path):
    """A VAE trained 3,000 steps on 100 shapes images, plainly and with DP-SGD at epsilon 10: the
    attack's AUC at telling those 100 from 100 held-out images (measured: 0.73 and 0.57, then
    0.70 and 0.56, then 0.72 and 0.57; 4.3 to 6.5 minutes on 2 CPU cores)."""
    import synthblend as sb

    x, _ = sb.load_data("shapes", "train")
    x_test, y_test = sb.load_data("shapes", "test")
    quiet = dict(steps=3000, batch_size=32, progress=False, log_every=1000, sample_every=10**6,
                 checkpoint_every=10**6)
    results = {}
    for name, options, settings in [("plain", {}, {}),
                                    ("private", {"decoder_norm": "layer"}, {"target_epsilon": 10.0})]:
        synth = sb.Synthesizer("vae", width=32, latent_dim=16, **options)
        synth.fit(x[:100], model_dir=tmp_path / name, **quiet, **settings)
        report = synth.evaluate(x_test[:2000], y_test[:2000], num_samples=1000, report_dir=tmp_path / f"{name}-report")
        results[name] = report["privacy"]
    print({name: result["membership_inference"]["auc"] for name, result in results.items()})
    assert results["plain"]["membership_inference"]["auc"] > 0.65
    assert results["plain"]["guarantee"].startswith("none")
    assert results["private"]["membership_inference"]["auc"] < results["plain"]["membership_inference"]["auc"] - 0.1
    assert results["private"]["guarantee"]["epsilon"] <= 10.0


def test_a_private_conditional_run_keeps_no_class_counts_and_samples_in_equal_shares(tmp_path):
    from synthblend.trainers import sample

    model_dir = tmp_path / "run"
    code, _, err = run_tool(train.main, *SHAPES, "--conditional", f"--model_dir={model_dir}", "--train_steps=5",
                            "--noise_multiplier=1")
    assert code == 0, err
    record = record_of(model_dir)
    assert "class_counts" not in record and record["privacy"]["steps"] == 5
    np.testing.assert_allclose(sample.training_frequencies(record, 4), [0.25] * 4)


@pytest.mark.parametrize("content, words", [('{"model": "dcgan", "config": ', "cannot be read"),
                                            ("[1, 2]", "holds no run's record (a JSON list)")])
def test_a_private_run_into_a_folder_with_a_broken_record_is_one_line(tmp_path, content, words):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(content)
    code, _, err = run_tool(train.main, *SHAPES, f"--model_dir={model_dir}", "--train_steps=5", "--noise_multiplier=1")
    assert code == 2, err
    assert err.strip().splitlines() == [err.strip()] and words in err and "Traceback" not in err
    assert (model_dir / "config.json").read_text() == content


# -- tables: every domain declared, quantiles from noisy histograms ---------------------------------

DECLARED = {"columns": {"plan": {"kind": "categorical", "categories": ["basic", "pro", "team"]},
                        "age": {"kind": "integer", "bounds": [18, 90], "missing": True},
                        "spend": {"kind": "continuous", "bounds": [0, 100], "decimals": 1},
                        "paid": {"kind": "boolean", "tokens": ["No", "Yes"]}},
            "label": "paid"}


def write_table(path, rows=None):
    generator = np.random.default_rng(1)
    rows = rows or [[("basic", "pro")[i % 2], str(20 + i % 50) if i % 9 else "", f"{generator.gamma(2, 10):.1f}",
                     ("No", "Yes")[i % 3 == 0]] for i in range(300)]
    path.write_text("plan,age,spend,paid\n" + "".join(",".join(row) + "\n" for row in rows))
    return path


def private_load(tmp_path, rows=None, noise=1.0, schema=DECLARED):
    from synthblend.datasets import tabular

    (tmp_path / "schema.json").write_text(json.dumps(schema))
    options = tabular.Options(schema=str(tmp_path / "schema.json"), private=tabular.Private(lambda n: noise, 0))
    return tabular.load_csv(str(write_table(tmp_path / "table.csv", rows)), options)


def test_a_private_table_takes_its_domains_from_the_schema_not_the_rows(tmp_path):
    from synthblend.datasets import tabular

    arrays, encoder = private_load(tmp_path)
    columns = {spec["name"]: spec for spec in encoder["columns"]}
    # "team" never occurs, "Yes"/"No" keep their case, age 20..69 occurs but the knots span what the
    # histogram says within [18, 90]; the label's classes are the declared words.
    assert columns["plan"]["categories"] == ["basic", "pro", "team"]
    assert encoder["label"] == {"name": "paid", "kind": "boolean", "classes": [False, True], "tokens": ["No", "Yes"]}
    assert columns["age"]["missing"] and not columns["spend"]["missing"] and columns["spend"]["decimals"] == 1
    assert 18 <= columns["age"]["quantiles"][0] and columns["age"]["quantiles"][-1] <= 90
    assert encoder["private"] == {"noise_multiplier": 1.0, "histograms": 2, "bins": tabular.HISTOGRAM_BINS,
                                  "threshold": tabular.HISTOGRAM_THRESHOLD}
    back = tabular.decode(arrays["x"], encoder, arrays["y"], with_missing=True)
    assert back["age\0missing"].sum() == 34 and set(back["plan"]) == {"basic", "pro"}
    # One row changed far outside the bounds moves no knot beyond them (it is clamped), and a
    # changed row changes no category, word or class.
    rows = [["pro", "20", "1e9", "Yes"]] + [[("basic", "pro")[i % 2], str(20 + i % 50), "5.0", "No"] for i in range(299)]
    _, other = private_load(tmp_path / "other" if (tmp_path / "other").mkdir() is None else None, rows)
    spend = {spec["name"]: spec for spec in other["columns"]}["spend"]
    assert spend["quantiles"][-1] <= 100
    assert {spec["name"]: spec.get("categories") for spec in other["columns"]}["plan"] == ["basic", "pro", "team"]


@pytest.mark.parametrize("rows, words", [
    ([["gold", "20", "1.0", "No"], ["pro", "21", "2.0", "Yes"]], "holds 'gold', which --schema's categories do not"),
    ([["pro", "20", "", "No"], ["pro", "21", "2.0", "Yes"]], "column 'spend' has 1 missing cells"),
    ([["pro", "20", "1.0", "no"], ["pro", "21", "2.0", "true"]], "'true' is not 'no' or 'yes'"),
], ids=["category", "missing", "word"])
def test_a_private_table_refuses_cells_outside_the_declared_domains(tmp_path, rows, words):
    from synthblend.zoo.registry import DataError

    with pytest.raises(DataError, match=words):
        private_load(tmp_path, rows)


def test_private_quantiles_follow_the_data_and_leave_empty_ranges_empty():
    from synthblend.datasets import tabular

    generator = np.random.default_rng(0)
    values = np.concatenate([generator.normal(20, 3, 10000), generator.normal(70, 3, 10000)])  # empty in 35..55
    knots = np.asarray(tabular.private_quantiles(values, (0, 100), "continuous", 5.0, generator))
    levels = np.searchsorted(np.sort(values), knots) / len(values)  # the data's own levels at the knots
    assert np.abs(levels - np.linspace(0, 1, len(knots))).max() < 0.01
    assert np.mean((knots > 35) & (knots < 55)) < 0.005
    # So much noise that no bin stands out: the knots spread over the bounds.
    flat = tabular.private_quantiles(values[:50], (0, 100), "continuous", 1000.0, generator)
    assert flat[0] == 0 and flat[-1] == pytest.approx(100)


def test_the_histograms_are_counted_in_the_account():
    release = privacy.release_noise_for(0.5, 1e-5)
    assert privacy.epsilon(0.0, 0.01, 0, 1e-5, release_noise=release) == pytest.approx(0.5, abs=0.01)
    plain = privacy.plan(20000, 256, 1000, target_epsilon=2.0)
    table = privacy.plan(20000, 256, 1000, target_epsilon=2.0, release_noise=release)
    assert table.noise_multiplier > plain.noise_multiplier
    assert table.epsilon_at(1000) <= 2.0 < privacy.epsilon(table.noise_multiplier, table.sample_rate, 1000, table.delta,
                                                           release_noise=release) + 0.01
    assert table.epsilon_at(1000) > privacy.epsilon(table.noise_multiplier, table.sample_rate, 1000, table.delta)
    with pytest.raises(UsageError, match="histograms alone spend epsilon"):
        privacy.plan(20000, 256, 1000, target_epsilon=0.4, release_noise=release, delta=1e-5)


def test_a_private_table_run_trains_samples_and_states_what_its_guarantee_covers(tmp_path):
    from synthblend.trainers import sample

    model_dir = tmp_path / "run"
    tiny = ["--model=gan", "--dataset=purchases", "--conditional", "--width=8", "--latent_dim=2", "--batch_size=64",
            "--noise_multiplier=2", f"--model_dir={model_dir}"]
    code, out, err = run_tool(train.main, *tiny, "--train_steps=4")
    assert code == 0, err
    record = record_of(model_dir)
    release = record["data_spec"]["table"]["private"]["noise_multiplier"]
    assert record["privacy"]["release_noise"] == release
    assert record["privacy"]["epsilon"] > privacy.epsilon(2.0, 64 / 20000, 4, 1e-6)
    guarantee = privacy.guarantee(record)
    assert "as the schema declares them" in guarantee["covers"] and f"{release:.4g}" in guarantee["covers"]
    code, _, err = run_tool(sample.main, f"--model_dir={model_dir}", "--num_samples=20",
                            f"--output={tmp_path / 's.csv'}")
    assert code == 0, err
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "segment,age,income,visits,basket_value,channel,churned"
    # The same command again resumes with the same encoder (the same noise draws).
    code, _, err = run_tool(train.main, *tiny, "--train_steps=6")
    assert code == 0, err
    assert record_of(model_dir)["privacy"]["steps"] == 6
    assert record_of(model_dir)["data_spec"] == record["data_spec"]


def test_a_dataframe_trains_privately_with_its_domains_declared_beside_its_dtypes(tmp_path):
    import pandas as pd
    import synthblend as sb

    generator = np.random.default_rng(3)
    frame = pd.DataFrame({"plan": generator.choice(["basic", "pro"], 200), "age": generator.integers(18, 70, 200),
                          "paid": generator.random(200) < 0.4})
    synth = sb.Synthesizer("gan", conditional=True, width=8, latent_dim=2)
    quiet = dict(steps=3, batch_size=32, noise_multiplier=2.0, progress=False, log_every=10, sample_every=10**6)
    with pytest.raises(UsageError, match=r'plan \("categories"\), age \("bounds"'):
        synth.fit(frame, label="paid", model_dir=tmp_path / "bare", **quiet)
    declared = {"columns": {"plan": {"kind": "categorical", "categories": ["basic", "pro", "team"]},
                            "age": {"kind": "integer", "bounds": [18, 99]}}}
    synth.fit(frame, schema={**declared, "label": "paid"}, model_dir=tmp_path / "run", **quiet)
    table = record_of(tmp_path / "run")["data_spec"]["table"]
    assert table["columns"][0]["categories"] == ["basic", "pro", "team"]
    assert table["label"]["tokens"] == ["False", "True"]
    rows = synth.sample(10)
    assert list(rows.columns) == ["plan", "age", "paid"] and rows["paid"].dtype == bool
    with pytest.raises(UsageError, match="schema= declares column 'zip', which the DataFrame does not have"):
        synth.fit(frame, label="paid", schema={"columns": {"zip": "categorical"}}, model_dir=tmp_path / "other",
                  **quiet)
