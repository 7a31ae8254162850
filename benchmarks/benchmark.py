"""Training throughput of this project's loop next to the usual ways of writing the same training.

    python benchmarks/benchmark.py
    python benchmarks/benchmark.py --bench_workloads=dcgan,gan --bench_steps=100 --bench_output=bench.json

Everything is measured in one process on one machine, and within a workload every variant trains
the same architecture, at the same batch size, on batches from the same input pipeline
(`datasets.pipeline.training_dataset`, same seed, same shuffle buffer). Variants:

- (a) this project's loop: `trainers.loop.Trainer` with the registered model, running
  `--bench_steps_per_call` steps per `tf.function` call (XLA with `--bench_jit`). Calls of
  `Trainer._train` are timed directly, so checkpoints, pictures and progress lines are excluded
  (their intervals are set beyond the measured steps and the log is discarded anyway). A timed
  repeat of N steps runs as calls of at most steps-per-call steps, each call's metrics read back
  as `Trainer.train` reads them. `--bench_jit` sets the Trainer's own `jit_compile`.
- (a+) the same loop on the same architecture built with `--precision=<--bench_mixed>` (default
  mixed_bfloat16: layers compute in bfloat16, variables and final layers stay float32). It is
  not the same arithmetic as the float32 baselines; it is the speed a user gets from the one
  flag, set beside them (`--bench_mixed=none` leaves it out).
- (b) a per-step `tf.function` in the style of the TensorFlow DCGAN tutorial: `train_step(images)`
  draws noise with `tf.random.normal`, runs the generator once and the discriminator on the real
  and on the generated batch, takes binary cross-entropy losses from logits under two
  `tf.GradientTape`s and applies two optimizers; a Python `for` loop over the dataset calls it
  once per step, without XLA as in the tutorial. For the VAE: one tape, one optimizer, the same
  loss as the model.
- (c) Keras `fit` with an overridden `train_step`, in the formulation of the keras.io DCGAN example
  (a `keras.Model` subclass whose `compile(d_optimizer, g_optimizer, loss_fn)` keeps two
  optimizers, and a `SeedGenerator`). That example trains the discriminator on the concatenated
  real and generated batch with (slightly noisy) labels, then draws fresh noise and trains the
  generator through the discriminator: two discriminator calls and a second generator pass per
  step, so it does more work per step than (a) and (b) by the design of that example. It is
  reported as is. For the VAE, the keras.io VAE example's formulation (one tape in `train_step`).
  Timed as `fit(dataset, steps_per_epoch=N, epochs=1, verbose=0)` after a warm-up `fit`; each
  call starts a new pass over the dataset (refilling the shuffle buffer), as a user's call does,
  while (a), (b) and (d) keep one iterator; the notes give how long a fresh iterator takes to
  deliver its first batch, so that this share of a (c) repeat can be judged.
- (d) MLP GAN only: the frozen-discriminator `train_on_batch` recipe. The discriminator is
  compiled on its own; a `combined` model, the generator followed by the discriminator, is
  compiled after `discriminator.trainable = False`. Each step draws NumPy noise, gets fakes from
  `generator.predict`, calls `discriminator.train_on_batch` on the real batch (labels 1) and on
  the fakes (labels 0), then `combined.train_on_batch(noise, ones)`. Keras 3 reads `trainable`
  when a model's train function is first traced, not at `compile`, so the loop sets it to match
  each model before its call.

- (e) GANs only, a floor rather than a way anyone trains: the fewest operations a step of these
  networks needs in TensorFlow. The same Keras networks and Adam, one tape, one discriminator
  pass on the concatenated batch, softplus losses, `--bench_steps_per_call` steps in one
  `tf.function` call, and batches gathered inside that call from the data held as one tensor
  (drawn with replacement, so there is no input pipeline at all); no metrics, EMA, stop flag,
  distribution or random-stream bookkeeping. No loop built on these networks can be much faster
  on the same machine, so (e)/(b) bounds what any loop can gain over (b).

(c) and (d) keep Keras's default `compile(jit_compile="auto")`, which is XLA where a GPU is
present; the table marks every variant that ran with XLA.

Workloads (`--bench_workloads`):

- `gan_purchases`: the `gan_purchases` recipe's networks (MLP, width 128, depth 2, latent 16,
  Gumbel-softmax table output) on the embedded `purchases` table, unconditional, batch 512.

- `dcgan`: DCGAN on the embedded 28x28x1 `shapes`, batch 256, latent size 100, width 64: the
  generator is the tutorial's (Dense 7x7x256, Conv2DTranspose to 128, 64 and 1 channels); the
  discriminator is the project's trunk without normalisation, the nearest to the tutorial's
  (4x4 instead of 5x5 kernels, no dropout), plus a one-logit Dense. Non-saturating loss, Adam
  1e-4 with beta_1 0.9, as in the tutorial.
- `gan`: MLP GAN (3 hidden layers of 128, latent size 16) on the 2-D `ring` points, batch 256,
  with the non-saturating loss so that every variant optimises the same binary cross-entropy.
- `vae`: convolutional VAE (width 32, latent size 16, Bernoulli likelihood) on `shapes`, batch
  128; variants (a), (b), (c).
- `input`: the input pipeline alone: batches of `shapes` through `training_dataset` with the
  augmentation `flip,rotate:0.1,zoom:0.1,translate:0.1,contrast:0.2,brightness:0.2` (as with
  `--augment`), and without augmentation for reference, batch 256.

Figures, per variant:

- examples/s: batch size x steps / seconds (real examples for the GANs), the median over
  `--bench_repeats` timed repeats of `--bench_steps` steps (batches for `input`), taken
  after one untimed warm-up repeat (which traces and compiles); each repeat ends by reading a
  result back to the host, so work queued on a GPU is included.
- (a)/variant: the median examples/s of (a) divided by that of the variant; above 1, (a) is faster.
- peak RSS: the process's peak resident memory so far (`resource.getrusage`, `ru_maxrss`), read
  after each workload, so it includes everything measured before.
- input wait share: the time to pull `--bench_steps` batches from a separate iterator of the same
  pipeline, with nothing else running (median of the repeats), divided by the median time of the
  variant's `--bench_steps` training steps, capped at 1. It is the share of step time input would
  take if it did not overlap with computation; prefetching hides part or all of it.
- GFLOP/s: an analytic count, not a profile. Forward FLOPs per example are summed over the Dense,
  Conv2D and Conv2DTranspose layers of each network, 2 per multiply-add (Dense: 2 x inputs x
  units; Conv2D: 2 x kernel height x width x input channels x filters x output positions;
  Conv2DTranspose: the same with input positions); biases, activations and normalisation are
  left out. A network pass that is differentiated counts 3 forwards (the backward pass costs
  about two), one outside any tape counts 1. Per step: (a) and (b) generator on the batch,
  discriminator on twice the batch; (c) adds its first, undifferentiated generator pass and the
  second generator and discriminator passes; (d) one inference generator pass and three
  differentiated discriminator passes and one generator pass; the VAE encoder and decoder on the
  batch. GFLOP/s = FLOPs per step x steps / median seconds of a repeat.
- share of matmul peak: that GFLOP/s over the peak measured in the same run: the fastest of a few
  timed calls of a `tf.function` chaining float32 `tf.linalg.matmul`s of `--bench_matmul_size`
  square matrices, 2 n^3 FLOPs each (on recent NVIDIA GPUs TensorFlow runs float32 matmuls and
  convolutions as TF32 by default, for the peak and the models alike).

Output: a header line naming the machine, a Markdown table and notes on stdout, and with
`--bench_output=<path>.json` every number as JSON (per row also the seconds of each repeat, the
FLOPs per step and whether XLA compiled it). Progress goes to stderr. A variant that fails is
reported with its error in the table's notes and the JSON, the other variants are still measured,
and the command then exits with status 1.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

from synthblend.trainers import cli, flags as F

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from synthblend import zoo
from synthblend.datasets import augment, pipeline, sources
from synthblend.trainers import distribute
from synthblend.trainers.loop import Trainer, TrainerConfig
from synthblend.zoo import networks
from synthblend.zoo.registry import UsageError

AUGMENTATION = "flip,rotate:0.1,zoom:0.1,translate:0.1,contrast:0.2,brightness:0.2"
SEED = 0
# Event intervals of the benchmarked Trainer: beyond any measured step, so no event falls due.
NEVER = 10**12
# Chained matmuls per timed call of the peak measurement: enough work to hide the call overhead.
MATMUL_CHAIN = 4
MATMUL_REPEATS = 5


@dataclasses.dataclass(frozen=True)
class Workload:
    """What one workload trains: a dataset, a batch size and a registered model with its arguments
    (`model` None: the input pipeline alone)."""

    dataset: str
    batch_size: int
    model: str | None
    model_arguments: dict
    description: str


WORKLOADS = {
    "dcgan": Workload(
        "shapes", 256, "dcgan",
        dict(latent_dim=100, width=64, discriminator_norm="none", loss="non_saturating",
             generator_learning_rate=1e-4, discriminator_learning_rate=1e-4, beta_1=0.9),
        "DCGAN 28x28x1, TF tutorial generator",
    ),
    "gan": Workload(
        "ring", 256, "gan",
        dict(latent_dim=16, width=128, depth=3, loss="non_saturating"),
        "MLP GAN on 2-D ring points",
    ),
    "gan_purchases": Workload(
        "purchases", 512, "gan",
        dict(latent_dim=16, width=128, depth=2, loss="non_saturating"),
        "MLP GAN on the purchases table (the gan_purchases recipe's networks, unconditional)",
    ),
    "vae": Workload(
        "shapes", 128, "vae",
        dict(latent_dim=16, width=32, likelihood="bernoulli", learning_rate=1e-3),
        "convolutional VAE 28x28x1",
    ),
    "input": Workload("shapes", 256, None, {}, "input pipeline alone"),
    "export": Workload("shapes", 256, "dcgan", {}, "sampling through the DCGAN's export"),
    "memory": Workload("shapes", 256, "dcgan", {}, "DCGAN training on 60,000 images, in a child process"),
}
MEMORY_EXAMPLES = 60000
MEMORY_STEPS = 100
# Batches of real examples the floor (e) holds in memory and draws its batches from.
FLOOR_BATCHES = 40

# Network passes of one training step, as (network, examples in batches, cost in forwards): 3 for a
# differentiated pass (forward, then gradients for inputs and weights), 1 for an inference pass.
ADVERSARIAL_PASSES = {
    "a": [("generator", 1, 3), ("discriminator", 2, 3)],
    "b": [("generator", 1, 3), ("discriminator", 2, 3)],
    "c": [("generator", 1, 1), ("discriminator", 2, 3), ("generator", 1, 3), ("discriminator", 1, 3)],
    "d": [("generator", 1, 1), ("discriminator", 1, 3), ("discriminator", 1, 3), ("generator", 1, 3),
          ("discriminator", 1, 3)],
    "e": [("generator", 1, 3), ("discriminator", 2, 3)],
}
VAE_PASSES = {variant: [("encoder", 1, 3), ("decoder", 1, 3)] for variant in "abc"}

BENCH_WORKLOADS = F.declare(flags.DEFINE_list, 
    "bench_workloads", list(WORKLOADS), f"Workloads to measure, any of {', '.join(WORKLOADS)}."
)
BENCH_STEPS = F.declare(flags.DEFINE_integer, "bench_steps", 50, "Training steps (or batches) per timed repeat.", lower_bound=1)
BENCH_REPEATS = F.declare(flags.DEFINE_integer, "bench_repeats", 5, "Timed repeats per variant.", lower_bound=1)
BENCH_STEPS_PER_CALL = F.declare(flags.DEFINE_integer, 
    "bench_steps_per_call", 100, "Steps per tf.function call of the project's loop.", lower_bound=1
)
BENCH_JIT = F.declare(flags.DEFINE_bool, "bench_jit", False, "Compile the project's loop with XLA.")
BENCH_MIXED = F.declare(flags.DEFINE_enum, 
    "bench_mixed", "mixed_bfloat16", ["none", "mixed_bfloat16", "mixed_float16"],
    "Also measure the project's loop with this --precision (variant a+); 'none' skips it.",
)
BENCH_MATMUL_SIZE = F.declare(flags.DEFINE_integer, 
    "bench_matmul_size", 2048, "Side of the square float32 matrices of the matmul peak measurement.", lower_bound=1
)
BENCH_OUTPUT = F.declare(flags.DEFINE_string, "bench_output", None, "Write every number as JSON to this .json file.")


def _quiet(line: str) -> None:
    pass


# -- the machine and its matmul peak -------------------------------------------------------------


def machine_description() -> dict:
    """Processor name, CPU count, TensorFlow and Keras versions, GPU names."""
    processor = ""
    try:
        with open("/proc/cpuinfo") as file:
            processor = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), "")
    except OSError:
        pass
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(details.get("device_name", device.name))
    return {
        "processor": processor or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": gpus,
        "platform": platform.platform(),
    }


def matmul_peak_gflops(size: int = 2048, repeats: int = MATMUL_REPEATS) -> float:
    """GFLOP/s of the fastest of `repeats` timed calls chaining float32 `size` x `size` matmuls."""
    generator = tf.random.Generator.from_seed(SEED)
    # Entries of variance 1/size keep the chained products at the scale of the inputs.
    left = generator.normal((size, size))
    right = generator.normal((size, size)) / math.sqrt(size)

    @tf.function
    def chained(product, factor):
        for _ in range(MATMUL_CHAIN):
            product = tf.linalg.matmul(product, factor)
        # Reading one number back waits for the device without copying the matrix.
        return tf.reduce_sum(product)

    chained(left, right).numpy()
    best = min(_seconds(lambda: chained(left, right).numpy()) for _ in range(repeats))
    return 2.0 * size**3 * MATMUL_CHAIN / best / 1e9


# -- analytic FLOPs -----------------------------------------------------------------------------


def forward_flops(network: keras.Model) -> int:
    """FLOPs (2 per multiply-add) of one example through the Dense, Conv2D and Conv2DTranspose
    layers of `network` and of the networks nested in it; everything else counts 0."""
    total = 0
    for layer in network.layers:
        if isinstance(layer, keras.Model):
            total += forward_flops(layer)
        elif isinstance(layer, keras.layers.Dense):
            inputs, units = layer.kernel.shape
            positions = math.prod(layer.output.shape[1:-1])
            total += 2 * inputs * units * positions
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            kernel_height, kernel_width, filters, channels = layer.kernel.shape
            input_positions = math.prod(layer.input.shape[1:3])
            total += 2 * kernel_height * kernel_width * channels * filters * input_positions
        elif isinstance(layer, keras.layers.Conv2D):
            kernel_height, kernel_width, channels_per_group, filters = layer.kernel.shape
            output_positions = math.prod(layer.output.shape[1:3])
            total += 2 * kernel_height * kernel_width * channels_per_group * filters * output_positions
    return total


def step_flops(passes, network_flops: dict[str, int], batch_size: int) -> int:
    """FLOPs of one training step made of `passes` (see ADVERSARIAL_PASSES)."""
    return sum(network_flops[name] * batches * batch_size * cost for name, batches, cost in passes)


# -- timing -------------------------------------------------------------------------------------


def _seconds(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def timed_repeats(run_steps: Callable[[int], None], steps: int, repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of `run_steps(steps)`, after one untimed warm-up call."""
    run_steps(steps)
    return [_seconds(lambda: run_steps(steps)) for _ in range(repeats)]


def pipeline_seconds(dataset: tf.data.Dataset, steps: int, repeats: int) -> tuple[float, list[float]]:
    """Seconds a fresh iterator of `dataset` takes to deliver its first batch (filling the shuffle
    buffer), and seconds to pull `steps` more batches from it, per repeat after a warm-up."""
    iterator = iter(dataset)
    start = _seconds(lambda: next(iterator))

    def pull(num_batches):
        for _ in range(num_batches):
            next(iterator)

    return start, timed_repeats(pull, steps, repeats)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (ru_maxrss is KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


# -- (a) the project's loop ---------------------------------------------------------------------


def project_loop(model, dataset: tf.data.Dataset, model_dir: str, steps_per_call: int, jit: bool):
    """`run_steps(n)` training `model` with `Trainer._train`, in calls of at most `steps_per_call` steps."""
    config = TrainerConfig(steps_per_call=steps_per_call, checkpoint_every=NEVER, log_every=NEVER,
                           sample_every=NEVER, jit_compile=jit)
    trainer = Trainer(model, dataset, model_dir, config, log=_quiet)

    def run_steps(num_steps):
        done = 0
        while done < num_steps:
            call_steps = min(steps_per_call, num_steps - done)
            # Read back as floats, as Trainer.train does after every call; this also waits for the device.
            _, metrics = trainer._train(trainer.iterator, tf.constant(call_steps))
            for value in metrics.values():
                float(value)
            done += call_steps

    return run_steps


# -- (b) per-step tf.function, TensorFlow tutorial style ----------------------------------------


def tutorial_gan_loop(generator, discriminator, generator_optimizer, discriminator_optimizer,
                      dataset: tf.data.Dataset, batch_size: int, latent_dim: int):
    """`run_steps(n)`: n calls of a tutorial-style `train_step` from a Python loop over the dataset."""
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([batch_size, latent_dim])
        with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
            generated = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated, training=True)
            generator_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            discriminator_loss = (cross_entropy(tf.ones_like(real_output), real_output)
                                  + cross_entropy(tf.zeros_like(fake_output), fake_output))
        generator_gradients = generator_tape.gradient(generator_loss, generator.trainable_variables)
        discriminator_gradients = discriminator_tape.gradient(discriminator_loss, discriminator.trainable_variables)
        generator_optimizer.apply_gradients(zip(generator_gradients, generator.trainable_variables))
        discriminator_optimizer.apply_gradients(zip(discriminator_gradients, discriminator.trainable_variables))
        return generator_loss, discriminator_loss

    # One iterator for all repeats, as the Trainer keeps one: a new one would refill the shuffle buffer.
    iterator = iter(dataset)

    def run_steps(num_steps):
        for batch in itertools.islice(iterator, num_steps):
            generator_loss, _ = train_step(batch["x"])
        float(generator_loss)

    return run_steps


# -- (e) the floor: the step's operations and nothing else ----------------------------------------


def floor_gan_loop(generator, discriminator, generator_optimizer, discriminator_optimizer, data: tf.Tensor,
                   batch_size: int, latent_dim: int, steps_per_call: int):
    """`run_steps(n)`: n steps in calls of at most `steps_per_call` steps, each a `tf.function` whose
    steps gather their batch from `data` and draw noise statelessly, then take one tape's gradients."""
    count = int(data.shape[0])
    call_index = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def call(num_steps):
        generator_loss = tf.constant(0.0)
        for step in tf.range(num_steps):
            seed = tf.stack([call_index, tf.cast(step, tf.int64)])
            real = tf.gather(data, tf.random.stateless_uniform([batch_size], seed, maxval=count, dtype=tf.int32))
            noise = tf.random.stateless_normal([batch_size, latent_dim], seed + 1)
            with tf.GradientTape(persistent=True) as tape:
                fake = generator(noise, training=True)
                real_logits, fake_logits = tf.split(discriminator(tf.concat([real, fake], 0), training=True), 2)
                discriminator_loss = (tf.reduce_mean(tf.nn.softplus(-real_logits))
                                      + tf.reduce_mean(tf.nn.softplus(fake_logits)))
                generator_loss = tf.reduce_mean(tf.nn.softplus(-fake_logits))
            for loss, network, optimizer in ((discriminator_loss, discriminator, discriminator_optimizer),
                                             (generator_loss, generator, generator_optimizer)):
                optimizer.apply_gradients(zip(tape.gradient(loss, network.trainable_variables),
                                              network.trainable_variables))
        call_index.assign_add(1)
        return generator_loss

    def run_steps(num_steps):
        done = 0
        while done < num_steps:
            call_steps = min(steps_per_call, num_steps - done)
            float(call(tf.constant(call_steps)))
            done += call_steps

    return run_steps


def vae_loss(images, encoder, decoder, noise):
    """Negative ELBO of a Bernoulli VAE per example, averaged: summed cross-entropy plus KL."""
    mean, log_variance = encoder(images, training=True)
    latents = mean + tf.exp(0.5 * log_variance) * noise
    logits = decoder(latents, training=True)
    reconstruction = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits), [1, 2, 3])
    kl = -0.5 * tf.reduce_sum(1.0 + log_variance - tf.square(mean) - tf.exp(log_variance), axis=1)
    return tf.reduce_mean(reconstruction + kl)


def tutorial_vae_loop(encoder, decoder, optimizer, dataset: tf.data.Dataset, latent_dim: int):
    """`run_steps(n)`: n calls of a one-tape `train_step` from a Python loop over the dataset."""
    variables = encoder.trainable_variables + decoder.trainable_variables

    @tf.function
    def train_step(images):
        with tf.GradientTape() as tape:
            loss = vae_loss(images, encoder, decoder, tf.random.normal([tf.shape(images)[0], latent_dim]))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    iterator = iter(dataset)

    def run_steps(num_steps):
        for batch in itertools.islice(iterator, num_steps):
            loss = train_step(batch["x"])
        float(loss)

    return run_steps


# -- (c) Keras fit with an overridden train_step, keras.io style --------------------------------


class KerasIoGAN(keras.Model):
    """The keras.io DCGAN example's formulation: the discriminator learns from the concatenated
    generated and real batch, then the generator learns from fresh noise through it."""

    def __init__(self, discriminator, generator, latent_dim, seed=SEED):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, data):
        real_images = data["x"]
        batch_size = tf.shape(real_images)[0]
        noise = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        # training=True: the generator's batch norm must run on batch statistics as in (a) and (b).
        generated = self.generator(noise, training=True)
        combined = tf.concat([generated, real_images], axis=0)
        labels = tf.concat([tf.zeros((batch_size, 1)), tf.ones((batch_size, 1))], axis=0)
        # keras.io adds a little noise to the labels.
        labels += 0.05 * keras.random.uniform(tf.shape(labels), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined, training=True))
        gradients = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(gradients, self.discriminator.trainable_weights))

        noise = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        misleading_labels = tf.ones((batch_size, 1))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(self.generator(noise, training=True), training=True)
            g_loss = self.loss_fn(misleading_labels, predictions)
        gradients = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(gradients, self.generator.trainable_weights))

        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


class KerasIoVAE(keras.Model):
    """The keras.io VAE example's formulation: one tape over encoder, sampling and decoder in
    `train_step`, with loss trackers."""

    def __init__(self, encoder, decoder, latent_dim, seed=SEED):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker]

    def train_step(self, data):
        images = data["x"]
        with tf.GradientTape() as tape:
            noise = keras.random.normal((tf.shape(images)[0], self.latent_dim), seed=self.seed_generator)
            loss = vae_loss(images, self.encoder, self.decoder, noise)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self.total_loss_tracker.update_state(loss)
        return {"loss": self.total_loss_tracker.result()}


def fit_loop(model: keras.Model, dataset: tf.data.Dataset):
    """`run_steps(n)`: one `fit` of n steps (fit returns once its logs are read back)."""

    def run_steps(num_steps):
        # shuffle=False only silences fit's warning that it cannot shuffle a tf.data dataset (the
        # pipeline shuffles); it changes nothing else.
        model.fit(dataset, steps_per_epoch=num_steps, epochs=1, verbose=0, shuffle=False)

    return run_steps


# -- (d) frozen-discriminator train_on_batch ----------------------------------------------------


def train_on_batch_loop(generator, discriminator, optimizers, dataset: tf.data.Dataset,
                        batch_size: int, latent_dim: int):
    """`run_steps(n)`: the train_on_batch recipe with a combined model over a frozen discriminator.

    Returns the loop and whether Keras compiled the train functions with XLA.
    """
    discriminator_optimizer, generator_optimizer = optimizers
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    discriminator.compile(optimizer=discriminator_optimizer, loss=loss)
    discriminator.trainable = False
    noise_input = keras.Input((latent_dim,), name="noise")
    combined = keras.Model(noise_input, discriminator(generator(noise_input)), name="combined")
    combined.compile(optimizer=generator_optimizer, loss=loss)
    real_labels = np.ones((batch_size, 1), np.float32)
    fake_labels = np.zeros((batch_size, 1), np.float32)
    iterator = iter(dataset)
    random = np.random.default_rng(SEED)

    def run_steps(num_steps):
        for batch in itertools.islice(iterator, num_steps):
            real = batch["x"].numpy()
            noise = random.normal(size=(batch_size, latent_dim)).astype(np.float32)
            fake = generator.predict(noise, batch_size=batch_size, verbose=0)
            discriminator.trainable = True
            discriminator.train_on_batch(real, real_labels)
            discriminator.train_on_batch(fake, fake_labels)
            discriminator.trainable = False
            combined.train_on_batch(noise, real_labels)

    return run_steps, bool(combined.jit_compile)


# -- networks of the same architecture for the baselines ----------------------------------------


def adversarial_networks(model) -> dict[str, keras.Model]:
    """A fresh generator and discriminator (trunk and one logit) built like `model`'s."""
    generator = model.build_generator_body(model.latent_size)
    trunk = model.build_discriminator_trunk()
    data = keras.Input(model.data_shape, name="data")
    logits = keras.layers.Dense(1, dtype="float32", name="logit")(trunk(data))
    return {"generator": generator, "discriminator": keras.Model(data, logits, name="discriminator")}


def vae_networks(model) -> dict[str, keras.Model]:
    """A fresh encoder (to mean and log-variance) and decoder (to logits) built like `model`'s."""
    data = keras.Input(model.data_shape, name="data")
    features = networks.dcgan_trunk(model.data_shape, model.width, norm="none", name="encoder_trunk")(data)
    mean = keras.layers.Dense(model.latent_dim, dtype="float32", name="mean")(features)
    log_variance = keras.layers.Dense(model.latent_dim, dtype="float32", name="log_variance")(features)
    encoder = keras.Model(data, [mean, log_variance], name="encoder")
    decoder = networks.dcgan_body(model.latent_dim, model.data_shape, model.width, name="decoder_body",
                                  output_activation="linear")
    return {"encoder": encoder, "decoder": decoder}


def adam_like(model, player: str | None = None) -> keras.optimizers.Adam:
    """A fresh Adam with the settings of `model`'s optimizer (of `player`, generator or
    discriminator, for a GAN)."""
    if player is None:
        return keras.optimizers.Adam(model.learning_rate)
    return keras.optimizers.Adam(getattr(model, f"{player}_learning_rate"), beta_1=model.beta_1, beta_2=model.beta_2)


def baseline_variants(model, batches: Callable[[], tf.data.Dataset], batch_size: int, with_train_on_batch: bool,
                      steps_per_call: int = 100):
    """`{variant: (label, run_steps, xla)}` of the baselines, and the forward FLOPs of each network.

    Every variant gets its own networks, optimizers and iterator of `batches()`; (d) only
    `with_train_on_batch`; (e), the floor, holds the examples of `FLOOR_BATCHES` batches as one tensor.
    """
    if isinstance(model, zoo.get("vae")):
        built = [vae_networks(model) for _ in range(2)]
        fit_vae = KerasIoVAE(built[1]["encoder"], built[1]["decoder"], model.latent_dim)
        fit_vae.compile(optimizer=adam_like(model))
        variants = {
            "b": ("tf.function per step (TF tutorial style)", tutorial_vae_loop(
                built[0]["encoder"], built[0]["decoder"], adam_like(model), batches(), model.latent_dim), False),
            "c": ("Keras fit, keras.io train_step", fit_loop(fit_vae, batches()), bool(fit_vae.jit_compile)),
        }
        return variants, {name: forward_flops(network) for name, network in built[0].items()}

    built = [adversarial_networks(model) for _ in range(4)]
    latent_dim = model.latent_size
    fit_gan = KerasIoGAN(built[1]["discriminator"], built[1]["generator"], latent_dim)
    fit_gan.compile(d_optimizer=adam_like(model, "discriminator"), g_optimizer=adam_like(model, "generator"),
                    loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    variants = {
        "b": ("tf.function per step (TF tutorial style)", tutorial_gan_loop(
            built[0]["generator"], built[0]["discriminator"], adam_like(model, "generator"),
            adam_like(model, "discriminator"), batches(), batch_size, latent_dim), False),
        "c": ("Keras fit, keras.io train_step", fit_loop(fit_gan, batches()), bool(fit_gan.jit_compile)),
    }
    if with_train_on_batch:
        optimizers = (adam_like(model, "discriminator"), adam_like(model, "generator"))
        run_steps, xla = train_on_batch_loop(built[2]["generator"], built[2]["discriminator"], optimizers, batches(),
                                             batch_size, latent_dim)
        variants["d"] = ("train_on_batch, frozen discriminator", run_steps, xla)
    data = tf.concat([batch["x"] for batch in batches().take(FLOOR_BATCHES)], axis=0)
    variants["e"] = (f"floor: the step's operations only, {steps_per_call} steps per call", floor_gan_loop(
        built[3]["generator"], built[3]["discriminator"], adam_like(model, "generator"),
        adam_like(model, "discriminator"), data, batch_size, latent_dim, steps_per_call), False)
    return variants, {name: forward_flops(network) for name, network in built[0].items()}


# -- workloads ----------------------------------------------------------------------------------


def run_workload(name: str, batch_size: int | None = None, steps: int = 50, repeats: int = 5,
                 steps_per_call: int = 100, *, width: int | None = None, jit: bool = False, mixed: str | None = None,
                 matmul_peak: float | None = None, log: Callable[[str], None] = _quiet) -> list[dict]:
    """Measures every variant of workload `name`; returns one row per variant.

    `batch_size` and `width` replace the workload's own (small values make a quick check);
    `matmul_peak` (GFLOP/s) gives the rows their share of it.
    """
    workload = WORKLOADS[name]
    batch_size = batch_size or workload.batch_size
    dataset, spec = sources.load(workload.dataset)
    if workload.model is None:
        rows = input_rows(dataset, spec, batch_size, steps, repeats, log)
    elif name == "export":
        rows = export_rows(spec, batch_size, steps, repeats, width, log)
    elif name == "memory":
        rows = memory_rows(batch_size, width, log)
    else:
        rows = model_rows(workload, dataset, spec, batch_size, steps, repeats, steps_per_call, width, jit, log,
                          mixed)
    peak = peak_rss_mb()
    for row in rows:
        row.update(workload=name, workload_description=workload.description, batch_size=batch_size, steps=steps,
                   repeats=repeats, peak_rss_mb=peak)
        row["share_of_matmul_peak"] = (
            row["gflops_per_second"] / matmul_peak if matmul_peak and row["gflops_per_second"] is not None else None
        )
    return rows


def input_rows(dataset, spec, batch_size, steps, repeats, log) -> list[dict]:
    """The input pipeline alone, with and without augmentation."""
    scale = pipeline.scaling(spec, (-1.0, 1.0))
    rows = []
    for variant, spec_text in (("augmented", AUGMENTATION), ("plain", None)):
        log(f"input: {variant}")
        augmentation = augment.augmenter(spec_text, spec.shape, spec.value_range, SEED) if spec_text else None
        batches = pipeline.training_dataset(dataset, spec, batch_size=batch_size, scale=scale, seed=SEED,
                                            augmentation=augmentation)
        label = f"pipeline, {'augmentation ' + spec_text if spec_text else 'no augmentation'}"
        start, seconds = pipeline_seconds(batches, steps, repeats)
        row = measurement_row(variant, label, seconds, batch_size * steps, xla=False)
        row["pipeline_start_seconds"] = start
        rows.append(row)
    return rows


def export_rows(spec, batch_size, steps, repeats, width, log) -> list[dict]:
    """The DCGAN's export, loaded as `tf.saved_model.load` loads it: `sample` at `batch_size`
    (examples/s) and `serving_default` on one latent vector (latency)."""
    from synthblend.datasets import pipeline as data_pipeline
    from synthblend.trainers import export, restore

    arguments = dict(WORKLOADS["dcgan"].model_arguments, **({"width": width} if width else {}))
    model = zoo.get("dcgan")(data_shape=spec.shape, num_classes=spec.num_classes, seed=SEED, **arguments)
    record = {"model": "dcgan", "dataset": spec.name, "config": model.get_config(), "data_spec": spec.to_json()}
    trained = restore.TrainedModel(model=model, record=record, spec=spec,
                                   scale=data_pipeline.scaling(spec, model.data_range), checkpoint="none", step=0,
                                   averaged=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="synthblend_benchmark_") as export_dir:
        path = export.export(trained, export_dir, max_samples=batch_size)
        signatures = tf.saved_model.load(path).signatures
        count, seed = tf.constant(batch_size, tf.int32), tf.constant(SEED, tf.int64)
        log(f"export: sample, {batch_size} per request")

        def sample_requests(number):
            for _ in range(number):
                signatures["sample"](num_samples=count, seed=seed)["samples"].numpy()

        rows.append(measure_variant("sample", f"export's sample signature, {batch_size} per request",
                                    sample_requests, steps, repeats, batch_size, False))
        latent = tf.zeros((1, model.latent_dim))
        log("export: serving_default, 1 per request")

        def single_requests(number):
            for _ in range(number):
                signatures["serving_default"](z=latent)["samples"].numpy()

        row = measure_variant("latency", "export's serving_default, 1 per request", single_requests, steps,
                              repeats, 1, False)
        if row["seconds"]:
            row["latency_ms"] = 1000 * statistics.median(row["seconds"]) / steps
        rows.append(row)
    return rows


def memory_rows(batch_size, width, log, examples: int = MEMORY_EXAMPLES, steps: int = MEMORY_STEPS) -> list[dict]:
    """Peak resident memory of the train command on an npz of `examples` images, run as a child
    process (its own peak, not this process's); its wall time includes start-up, so no rate."""
    from synthblend.datasets import embedded

    log(f"memory: {examples} images, train command for {steps} steps")
    arguments = dict(WORKLOADS["dcgan"].model_arguments, **({"width": width} if width else {}))
    with tempfile.TemporaryDirectory(prefix="synthblend_benchmark_") as folder:
        data = embedded.shapes(examples, SEED)
        np.savez(os.path.join(folder, "images.npz"), x=data["x"], y=data["y"])
        command = [sys.executable, "-m", "synthblend", "train", "--model=dcgan", f"--dataset=npz:{folder}/images.npz",
                   f"--model_dir={folder}/run", f"--batch_size={batch_size}", f"--train_steps={steps}",
                   "--ema_decay=0.999", *[f"--{key}={value}" for key, value in arguments.items()]]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        seconds = time.perf_counter() - started
    row = measurement_row("train", f"train command, {examples} images, {steps} steps", [], 0, False)
    row["wall_seconds"] = seconds
    row["examples"] = examples
    if result.returncode != 0:
        row["error"] = (result.stderr.strip().splitlines() or ["failed"])[-1]
    # The largest resident set of any finished child: the train command is this process's only child.
    row["child_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return [row]


def model_rows(workload, dataset, spec, batch_size, steps, repeats, steps_per_call, width, jit, log,
               mixed: str | None = None) -> list[dict]:
    """Variant (a) and the baselines on the workload's model, with their input wait and FLOPs;
    with `mixed` (a `--precision`), also (a+): the project's loop on the same model built with it."""
    model_class = zoo.get(workload.model)
    arguments = dict(workload.model_arguments, **({"width": width} if width else {}))

    def build():
        return model_class(data_shape=spec.shape, bounded=spec.value_range is not None,
                           num_classes=spec.num_classes, seed=SEED, **arguments)

    model = build()
    scale = pipeline.scaling(spec, model.data_range)

    def batches():
        return pipeline.training_dataset(dataset, spec, batch_size=batch_size, scale=scale, seed=SEED)

    # The frozen-discriminator recipe belongs to small dense GANs; it is measured on the MLP GAN only.
    baselines, network_flops = baseline_variants(model, batches, batch_size, workload.model == "gan",
                                                 min(steps_per_call, steps))
    passes = VAE_PASSES if workload.model == "vae" else ADVERSARIAL_PASSES
    log(f"{workload.model}: input pipeline alone")
    start, seconds = pipeline_seconds(batches(), steps, repeats)
    input_time = statistics.median(seconds)
    rows = []
    with tempfile.TemporaryDirectory(prefix="synthblend_benchmark_") as model_dir:
        call_steps = min(steps_per_call, steps)
        variants = {"a": (f"Trainer, {call_steps} steps per call",
                          project_loop(model, batches(), model_dir, steps_per_call, jit), jit)}
        if mixed:
            with distribute.precision(mixed):
                mixed_model = build()
            variants["a+"] = (f"Trainer, {call_steps} steps per call, {mixed}",
                              project_loop(mixed_model, batches(), os.path.join(model_dir, mixed), steps_per_call,
                                           jit), jit)
        variants.update(baselines)
        for variant, (label, run_steps, xla) in variants.items():
            log(f"{workload.model}: ({variant}) {label}")
            row = measure_variant(variant, label, run_steps, steps, repeats, batch_size, xla)
            row["input_seconds"] = input_time
            row["pipeline_start_seconds"] = start
            row["flops_per_step"] = step_flops(passes[variant.rstrip("+")], network_flops, batch_size)
            if row["error"] is None:
                train_time = statistics.median(row["seconds"])
                row["gflops_per_second"] = row["flops_per_step"] * steps / train_time / 1e9
                row["input_wait_share"] = min(1.0, input_time / train_time)
            rows.append(row)
    project_rate = rows[0]["examples_per_second"]
    for row in rows:
        if project_rate is not None and row["examples_per_second"] is not None:
            row["ratio_a_to_variant"] = project_rate / row["examples_per_second"]
    return rows


def measure_variant(variant, label, run_steps, steps, repeats, batch_size, xla) -> dict:
    """The row of one variant; a variant that fails gets its error instead of figures, and the
    other variants are still measured."""
    try:
        seconds = timed_repeats(run_steps, steps, repeats)
    # Any failure of the measured code goes into its row, so that one broken variant costs no others.
    except Exception as error:
        row = measurement_row(variant, label, [], batch_size * steps, xla)
        message = str(error).strip().splitlines()
        row["error"] = f"{type(error).__name__}: {message[0] if message else ''}"
        return row
    return measurement_row(variant, label, seconds, batch_size * steps, xla)


def measurement_row(variant, label, seconds, examples, xla) -> dict:
    """A row with the rates of `seconds` (each the time of `examples` examples); the figures that
    depend on the workload start as None."""
    rates = [examples / second for second in seconds]
    return {
        "variant": variant,
        "label": label + (" (XLA)" if xla else ""),
        "xla": xla,
        "error": None,
        "examples_per_second": statistics.median(rates) if rates else None,
        "examples_per_second_each": rates,
        "seconds": seconds,
        "ratio_a_to_variant": None,
        "input_seconds": None,
        "pipeline_start_seconds": None,
        "input_wait_share": None,
        "flops_per_step": None,
        "gflops_per_second": None,
    }


def run_benchmark(names, batch_size=None, steps=50, repeats=5, steps_per_call=100, *, width=None, jit=False,
                  mixed=None, matmul_size=2048, log: Callable[[str], None] = _quiet) -> dict:
    """The machine, the matmul peak and the rows of every workload in `names`."""
    log(f"matmul peak: {matmul_size}x{matmul_size} float32")
    peak = matmul_peak_gflops(matmul_size)
    rows = []
    for name in names:
        rows += run_workload(name, batch_size, steps, repeats, steps_per_call, width=width, jit=jit, mixed=mixed,
                             matmul_peak=peak, log=log)
    settings = {"steps": steps, "repeats": repeats, "steps_per_call": steps_per_call, "jit": jit, "mixed": mixed,
                "batch_size": batch_size, "width": width, "matmul_size": matmul_size}
    return {"machine": machine_description(), "settings": settings, "matmul_peak_gflops": peak, "rows": rows}


# -- output -------------------------------------------------------------------------------------


def _number(value, digits=2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def markdown(report: dict) -> str:
    """The header line, the table and notes on how the figures were taken."""
    machine, settings = report["machine"], report["settings"]
    gpus = ", ".join(machine["gpus"]) or "none"
    lines = [
        f"Machine: {machine['processor']}, {machine['cpu_count']} CPUs, TensorFlow {machine['tensorflow']}, "
        f"Keras {machine['keras']}, GPU: {gpus}",
        "",
        "| workload | variant | median examples/s | (a)/variant | peak RSS MB (process so far) | input wait share "
        "| GFLOP/s | share of matmul peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        label = row["label"] + (" - failed, see below" if row["error"] else "")
        lines.append(
            f"| {row['workload']} | ({row['variant']}) {label} | {_number(row['examples_per_second'], 1)} "
            f"| {_number(row['ratio_a_to_variant'])} | {_number(row['peak_rss_mb'], 0)} "
            f"| {_number(row['input_wait_share'])} | {_number(row['gflops_per_second'])} "
            f"| {_number(row['share_of_matmul_peak'], 3)} |"
        )
    lines += [
        "",
        f"Median of {settings['repeats']} repeats of {settings['steps']} steps after a warm-up. "
        f"(a) times Trainer._train calls only: checkpoint and picture I/O are excluded. "
        f"Matmul peak: {report['matmul_peak_gflops']:,.1f} GFLOP/s (float32 "
        f"{settings['matmul_size']}x{settings['matmul_size']} tf.linalg.matmul, fastest of {MATMUL_REPEATS}).",
        "Input wait share: time to pull the same number of batches from the pipeline alone / training time, "
        "capped at 1 (an upper bound: prefetching overlaps input with training). GFLOP/s: analytic Dense/Conv "
        "FLOPs, 3x forward per differentiated pass. Peak RSS: ru_maxrss of the process after each workload.",
    ]
    starts = [f"{row['workload']} {row['pipeline_start_seconds']:.2f} s" for row in report["rows"]
              if row["variant"] == "c" and row["pipeline_start_seconds"] is not None]
    if starts:
        lines.append("Each timed (c) fit call starts a fresh pass over the dataset; a fresh iterator took this long to "
                     f"deliver its first batch (shuffle buffer filled): {', '.join(starts)}.")
    lines += [f"Latency of one request of 1 sample through the export: {row['latency_ms']:.2f} ms (median)."
              for row in report["rows"] if row.get("latency_ms") is not None]
    lines += [f"Peak resident memory of the train command on {row['examples']:,} images: "
              f"{row['child_peak_rss_mb']:,.0f} MB ({row['wall_seconds']:.0f} s wall, start-up included)."
              for row in report["rows"] if row.get("child_peak_rss_mb")]
    lines += [f"Failed: {row['workload']} ({row['variant']}): {row['error'][:400]}"
              for row in report["rows"] if row["error"]]
    return "\n".join(lines)


def write_json(report: dict, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as file:
        json.dump(report, file, indent=2)


def check_arguments(argv) -> list[str]:
    """The workload names; UsageError for a stray argument, an unknown workload or an unwritable output."""
    names = [name.strip() for name in BENCH_WORKLOADS.value if name.strip()]
    if not names:
        raise UsageError(f"--bench_workloads names no workload; accepted: {', '.join(WORKLOADS)}")
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        raise UsageError(f"--bench_workloads: unknown workload {unknown[0]!r}; accepted: {', '.join(WORKLOADS)}")
    if BENCH_OUTPUT.value:
        if not BENCH_OUTPUT.value.endswith(".json"):
            raise UsageError(f"--bench_output={BENCH_OUTPUT.value} must be a .json file")
        cli.check_writable_dir(os.path.dirname(os.path.abspath(BENCH_OUTPUT.value)), "--bench_output")
    return names


def main(argv):
    names = check_arguments(argv)
    report = run_benchmark(
        names, steps=BENCH_STEPS.value, repeats=BENCH_REPEATS.value, steps_per_call=BENCH_STEPS_PER_CALL.value,
        jit=BENCH_JIT.value, mixed=None if BENCH_MIXED.value == "none" else BENCH_MIXED.value,
        matmul_size=BENCH_MATMUL_SIZE.value,
        log=lambda line: print(f"measuring {line}", file=sys.stderr, flush=True),
    )
    print(markdown(report))
    if BENCH_OUTPUT.value:
        write_json(report, BENCH_OUTPUT.value)
        print(f"\nJSON: {BENCH_OUTPUT.value}")
    failed = [f"{row['workload']} ({row['variant']})" for row in report["rows"] if row["error"]]
    if failed:
        cli.fail(f"{len(failed)} variant(s) failed: {', '.join(failed)}; their errors are under the table", 1)


FLAGS = (BENCH_WORKLOADS, BENCH_STEPS, BENCH_REPEATS, BENCH_STEPS_PER_CALL, BENCH_JIT, BENCH_MIXED,
         BENCH_MATMUL_SIZE, BENCH_OUTPUT)


if __name__ == "__main__":
    cli.execute(main, sys.argv, FLAGS, "benchmark")
