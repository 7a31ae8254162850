"""Run as a script (its own process: the two logical CPUs must be set up before TensorFlow
starts its devices): trains models two steps on one device and on two mirrored replicas of the
same global batches (with the trainer's moving average), and prints a JSON report that
`tests/test_distribute.py` checks."""

import json
import sys
import tempfile

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from synthblend import zoo  # noqa: E402
from synthblend.trainers import distribute  # noqa: E402
from synthblend.trainers.loop import Trainer, TrainerConfig  # noqa: E402

GLOBAL_BATCH = 8
CASES = {
    # The generator moves at the second step only: its update is taken in a branch on every replica.
    "gan": dict(model="gan", width=8, depth=1, latent_dim=4, discriminator_steps=2),
    "gan_gp_conditional_ac": dict(model="gan", width=8, depth=1, latent_dim=4, loss="wasserstein_gp",
                                  conditional=True, num_classes=3, classifier_weight=0.5),
    "vae": dict(model="vae", likelihood="gaussian", latent_dim=3, width=8, depth=1),
}


def data():
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(64, 2)).astype(np.float32), "y": rng.integers(0, 3, 64).astype(np.int64)}


def build(case, strategy):
    arguments = dict(case)
    model_class = zoo.get(arguments.pop("model"))
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = model_class(data_shape=(2,), bounded=False, **arguments)
        # Plain SGD: Adam divides out the scale of the gradients, which would hide a wrong average.
        for name in ("generator_optimizer", "discriminator_optimizer", "optimizer_"):
            if hasattr(model, name):
                setattr(model, name, keras.optimizers.SGD(0.05))
    return model


def train(case, strategy, dataset, steps=2):
    model = build(case, strategy)
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = Trainer(model, dataset, model_dir, TrainerConfig(steps_per_call=1, ema_decay=0.5), strategy=strategy,
                          log=lambda line: None)
        trainer.train(steps)
    return model, trainer


def main():
    one = tf.distribute.get_strategy()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    examples = data()
    report = {"replicas": mirrored.num_replicas_in_sync}
    for name, case in CASES.items():
        whole = tf.data.Dataset.from_tensor_slices(examples).repeat().batch(GLOBAL_BATCH)
        shared = distribute.input_fn(
            lambda shard, batch: shard(tf.data.Dataset.from_tensor_slices(examples)).repeat().batch(batch),
            GLOBAL_BATCH,
        )
        single, single_trainer = train(case, one, whole)
        replicated, trainer = train(case, mirrored, shared)
        differences = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                       for a, b in zip(single.get_weights() + single_trainer.ema.shadows,
                                       replicated.get_weights() + trainer.ema.shadows)]
        changes = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                   for a, b in zip(single.get_weights(), build(case, one).get_weights())]
        report[name] = {"max_difference": max(differences), "max_change": max(changes)}
    # Noise: each replica's block differs, and together they are one device's global draw.
    model = build(CASES["gan"], mirrored)
    per_replica = mirrored.run(tf.function(lambda: model.latents(3)))
    blocks = [np.asarray(t) for t in mirrored.experimental_local_results(per_replica)]
    reference = build(CASES["gan"], one).latents(6).numpy()
    report["noise"] = {
        "replicas_differ": bool(np.max(np.abs(blocks[0] - blocks[1])) > 0.1),
        "equals_one_device": bool(np.allclose(np.concatenate(blocks), reference, atol=1e-6)),
    }
    # The distributed iterator is checkpointable and resumes where it was saved.
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = tf.train.Checkpoint(iterator=trainer.iterator)
        path = checkpoint.save(f"{folder}/iterator")
        expected = next(trainer.iterator)["x"].numpy()
        next(trainer.iterator)
        checkpoint.restore(path)
        report["iterator_resumes"] = bool(np.array_equal(expected, next(trainer.iterator)["x"].numpy()))
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
