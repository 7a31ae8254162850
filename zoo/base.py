"""What every model offers the trainer and the tools, and the adversarial step GANs share.

`GenerativeModel` is the contract: a `keras.Model` built from a small config (data shape,
number of classes, output activation, seed), owning its optimizers and a
`keras.random.SeedGenerator`, with

- `train_step(batch) -> dict[str, tensor]`: one update on a batch `{"x": ..., "y": ...}`;
- `latents(num, seed)` and `generate(latents)`: the sampling path, in the model's data range;
- `sample(num, seed)`: both together; an integer seed gives the same samples on every call;
- `sampling_network`: the network whose weights the trainer may average (EMA);
- `build_optimizers()`: creates optimizer state before the step is traced, as a custom loop
  under a `tf.distribute` strategy requires.

`AdversarialModel` adds the generator/discriminator game: subclasses only build the networks.
"""

from __future__ import annotations

import inspect

import keras
import tensorflow as tf

from zoo import losses
from zoo.registry import UsageError

OUTPUT_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "linear": None}


class GenerativeModel(keras.Model):
    """Base of every registered model.

    Args:
      data_shape: shape of one example, `(H, W, C)` or `(D,)`.
      num_classes: number of label classes in the data (0: unlabelled).
      output_activation: `tanh` (data scaled to [-1, 1]), `sigmoid` ([0, 1]) or `linear`
        (standardised, unbounded data).
      seed: seed of the model's random streams (weights initialisation excepted).
    """

    def __init__(self, data_shape, num_classes=0, output_activation="tanh", seed=0, **kwargs):
        super().__init__(**kwargs)
        if output_activation not in OUTPUT_RANGES:
            raise UsageError(
                f"output_activation {output_activation!r} is not one of {', '.join(OUTPUT_RANGES)}"
            )
        self.data_shape = tuple(int(d) for d in data_shape)
        self.num_classes = int(num_classes)
        self.output_activation = output_activation
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)

    @classmethod
    def check_data(cls, shape: tuple[int, ...], num_classes: int) -> None:
        """Raises UsageError when the model cannot learn data of this shape."""
        if len(shape) not in (1, 3):
            raise UsageError(
                f"{cls.__name__.lower()} takes vectors (D,) or images (H, W, C), not data of shape {tuple(shape)}"
            )

    @classmethod
    def arguments(cls) -> list[str]:
        """Names of the constructor arguments, along the class hierarchy."""
        names = []
        for klass in cls.__mro__:
            if klass is keras.Model:
                break
            for name, parameter in inspect.signature(klass.__init__).parameters.items():
                if parameter.kind is parameter.POSITIONAL_OR_KEYWORD and name not in ("self", *names):
                    names.append(name)
        return names

    @property
    def data_range(self):
        """The range the model's outputs live in; None for standardised data."""
        return OUTPUT_RANGES[self.output_activation]

    @property
    def sampling_network(self) -> keras.Model:
        raise NotImplementedError

    def build_optimizers(self) -> None:
        raise NotImplementedError

    def latents(self, num, seed=None):
        raise NotImplementedError

    def generate(self, latents, training=False):
        raise NotImplementedError

    def sample(self, num, seed=None):
        return self.generate(self.latents(num, seed))

    def random_state(self) -> list:
        """The state variables of every random stream of the model and its layers.

        `tf.train.Checkpoint` does not reach them through the model, so the trainer saves them
        explicitly; without them a resumed run draws other noise than an uninterrupted one.
        """
        return [v for v in self.variables if v.path.endswith("seed_generator_state")]

    def normal(self, shape, seed=None):
        """Standard normal noise: from the model's stream, or stateless for an integer seed."""
        if seed is None:
            return keras.random.normal(shape, seed=self.seed_generator)
        return tf.random.stateless_normal(shape, seed=[seed, 0])

    def get_config(self):
        return {
            "data_shape": list(self.data_shape),
            "num_classes": self.num_classes,
            "output_activation": self.output_activation,
            "seed": self.seed,
        }


class AdversarialModel(GenerativeModel):
    """A generator and a discriminator trained against each other.

    One step runs the generator once and the discriminator once on the concatenated real and
    generated batch, then updates both players from the same forward pass (simultaneous
    gradient steps, as in the TensorFlow DCGAN tutorial), with a gradient penalty when the loss
    family asks for one.

    Args:
      latent_dim: size of the generator's input noise.
      loss: a family of `zoo.losses.GAN_LOSSES`.
      gradient_penalty_weight: weight of the gradient penalty (`wasserstein_gp` only).
      generator_learning_rate, discriminator_learning_rate, beta_1, beta_2: Adam settings.
    """

    def __init__(
        self,
        data_shape,
        latent_dim=64,
        loss="non_saturating",
        gradient_penalty_weight=10.0,
        generator_learning_rate=2e-4,
        discriminator_learning_rate=2e-4,
        beta_1=0.5,
        beta_2=0.999,
        **kwargs,
    ):
        super().__init__(data_shape, **kwargs)
        if loss not in losses.GAN_LOSSES:
            raise UsageError(f"unknown GAN loss {loss!r}; known: {', '.join(sorted(losses.GAN_LOSSES))}")
        if latent_dim <= 0:
            raise UsageError(f"latent_dim={latent_dim} must be a positive integer")
        self.latent_dim = int(latent_dim)
        self.loss = loss
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.generator_learning_rate = float(generator_learning_rate)
        self.discriminator_learning_rate = float(discriminator_learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.loss_functions = losses.GAN_LOSSES[loss]
        self.generator = self.build_generator()
        self.discriminator = self.build_discriminator()
        self.generator_optimizer = keras.optimizers.Adam(
            self.generator_learning_rate, beta_1=self.beta_1, beta_2=self.beta_2
        )
        self.discriminator_optimizer = keras.optimizers.Adam(
            self.discriminator_learning_rate, beta_1=self.beta_1, beta_2=self.beta_2
        )

    def build_generator(self) -> keras.Model:
        raise NotImplementedError

    def build_discriminator(self) -> keras.Model:
        raise NotImplementedError

    @property
    def sampling_network(self):
        return self.generator

    def build_optimizers(self):
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    def latents(self, num, seed=None):
        return self.normal((num, self.latent_dim), seed)

    def generate(self, latents, training=False):
        return self.generator(latents, training=training)

    def train_step(self, batch):
        real = batch["x"]
        latents = self.latents(tf.shape(real)[0])
        with tf.GradientTape(persistent=True) as tape:
            fake = self.generate(latents, training=True)
            logits = self.discriminator(tf.concat([real, fake], axis=0), training=True)
            real_logits, fake_logits = tf.split(logits, 2, axis=0)
            discriminator_loss = self.loss_functions.discriminator(real_logits, fake_logits)
            generator_loss = self.loss_functions.generator(fake_logits)
            metrics = {"discriminator_loss": discriminator_loss, "generator_loss": generator_loss}
            if self.loss_functions.uses_gradient_penalty:
                penalty = losses.gradient_penalty(
                    lambda x: self.discriminator(x, training=True), real, fake, self.seed_generator
                )
                discriminator_loss += self.gradient_penalty_weight * penalty
                metrics["gradient_penalty"] = penalty
        self._update(tape, discriminator_loss, self.discriminator, self.discriminator_optimizer)
        self._update(tape, generator_loss, self.generator, self.generator_optimizer)
        return metrics

    @staticmethod
    def _update(tape, loss, network, optimizer):
        variables = network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "loss": self.loss,
            "gradient_penalty_weight": self.gradient_penalty_weight,
            "generator_learning_rate": self.generator_learning_rate,
            "discriminator_learning_rate": self.discriminator_learning_rate,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
        }
