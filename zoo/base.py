"""What every model offers the trainer and the tools, and the adversarial game GANs share.

`GenerativeModel` is the contract: a `keras.Model` built from a small config (data shape,
whether the data is bounded, number of classes, conditioning, seed), owning its optimizers and a
`keras.random.SeedGenerator`, with

- `train_step(batch) -> dict[str, tensor]`: one update on a batch `{"x": ..., "y": ...}`;
- `test_step(batch) -> dict[str, tensor]`: held-out metrics without an update (may be empty);
- `latents(num, seed)` and `generate(latents, labels)`: the sampling path, in the model's range;
- `sample(num, seed, labels)`: both together; an integer seed gives the same samples each call;
- `pictures(num, seed, real)`: named batches of samples worth looking at, each with its
  number of columns (samples, a latent interpolation, and whatever the model adds);
- `sampling_network`: the network whose weights the trainer may average (EMA);
- `serving_signatures(scale, max_samples)`: the functions an export serves, in data space;
- `standalone_generator()`: a plain functional Keras model from latents to samples;
- `build_optimizers()`: creates optimizer state before the step is traced, as a custom loop
  under a `tf.distribute` strategy requires.

`AdversarialModel` adds the generator/discriminator game: subclasses build the generator body
(vector -> data) and the discriminator trunk (data -> features); the class puts the logit
head, the label conditioning and any auxiliary head (InfoGAN's Q) around them.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import tensorflow as tf

from synthblend.zoo import diffaugment as diffaugment_module
from synthblend.zoo import dpsgd, losses, networks, streams
from synthblend.zoo.registry import MODELS, UsageError

INTERPOLATION_ROWS = 8
INTERPOLATION_STEPS = 10
LABEL_EMBEDDING_DIM = 32


class GenerativeModel(keras.Model):
    """Base of every registered model.

    Args:
      data_shape: shape of one example, `(H, W, C)` or `(D,)`.
      bounded: whether the data lies in a fixed range (images, scaled into `data_range`) or is
        unbounded (vectors, standardised).
      num_classes: number of label classes in the data (0: unlabelled).
      conditional: condition generation on the labels `y`.
      seed: seed of the model's random streams (weights initialisation excepted).
      table_blocks: for encoded table rows (`(D,)` vectors), the `(kind, size)` blocks they are
        made of, `("softmax", k)` for a categorical column and `("normal", 1)` for a
        standardised numeric one; the model's output then goes through a
        `networks.TableActivation` and the data is unbounded. Only models whose
        `supports_tables` is true take tables.
    """

    # Whether the model learns encoded table rows (takes `table_blocks`).
    supports_tables = False

    def __init__(self, data_shape, bounded=True, num_classes=0, conditional=False, seed=0, table_blocks=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.data_shape = tuple(int(d) for d in data_shape)
        self.table_blocks = None
        if table_blocks is not None:
            if not self.supports_tables:
                raise UsageError(f"{type(self).__name__.lower()} does not take tables; models for tables: "
                                 f"{', '.join(table_models())}")
            if len(self.data_shape) != 1:
                raise UsageError(f"table rows are vectors (D,), not data of shape {self.data_shape}")
            self.table_blocks = networks.check_table_blocks(table_blocks, self.data_shape[0])
            bounded = False  # encoded rows are standardised, with one-hot blocks
        self.bounded = bool(bounded)
        self.num_classes = int(num_classes)
        self.conditional = bool(conditional)
        self.seed = int(seed)
        if self.conditional and self.num_classes < 2:
            raise UsageError(
                f"conditional generation needs labelled data with at least 2 classes, not num_classes={num_classes}"
            )
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Every model builds its networks in its constructor; it is never built by a first call.
        self.built = True

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
        return (-1.0, 1.0) if self.bounded else None

    @property
    def output_activation(self) -> str:
        return "tanh" if self.bounded else "linear"

    @property
    def sampling_network(self) -> keras.Model:
        raise NotImplementedError

    def build_optimizers(self) -> None:
        raise NotImplementedError

    def latents(self, num, seed=None):
        raise NotImplementedError

    def generate(self, latents, labels=None, training=False):
        raise NotImplementedError

    def test_step(self, batch):
        return {}

    def sample(self, num, seed=None, labels=None):
        """`num` samples in the model's range; `labels` (conditional models) default to
        equal blocks of every class in order."""
        return self.generate(self.latents(num, seed), self.sample_labels(num, labels))

    def sample_labels(self, num, labels=None, shares=None):
        """The labels to condition `num` samples on, validated; None for unconditional models.
        Without `labels`: blocks of every class in order, sized by `shares` (equal blocks when
        None; see `share_labels`)."""
        if not self.conditional:
            if labels is not None:
                raise UsageError("labels were given to a model trained without --conditional")
            return None
        if labels is None:
            if shares is not None:
                return share_labels(num, shares)
            return tf.range(num, dtype=tf.int32) * self.num_classes // num
        if tf.executing_eagerly():
            values = np.asarray(labels).reshape(-1)
            bad = values[(values < 0) | (values >= self.num_classes)]
            if bad.size:
                raise UsageError(f"label {bad[0]} is outside the class range 0..{self.num_classes - 1}")
        return tf.cast(tf.reshape(labels, [-1]), tf.int32)

    def pictures(self, num, seed, real=None):
        """Named `(samples, columns)` to draw: samples (a row per class for conditional
        models) and a linear interpolation between pairs of latents, row by row."""
        columns = num // self.num_classes if self.conditional else int(np.ceil(np.sqrt(num)))
        if self.conditional:
            num = columns * self.num_classes
        ends = self.latents(2 * INTERPOLATION_ROWS, seed + 1)
        start, end = ends[:INTERPOLATION_ROWS], ends[INTERPOLATION_ROWS:]
        weights = tf.linspace(0.0, 1.0, INTERPOLATION_STEPS)[None, :, None]
        path = tf.reshape(start[:, None] * (1 - weights) + end[:, None] * weights, [-1, start.shape[-1]])
        labels = self.sample_labels(INTERPOLATION_ROWS * INTERPOLATION_STEPS)
        if self.table_blocks is not None:  # rows between two latents say nothing drawn as histograms
            return {"samples": (self.sample(num, seed), columns)}
        return {
            "samples": (self.sample(num, seed), columns),
            "interpolation": (self.generate(path, labels), INTERPOLATION_STEPS),
        }

    # -- serving ------------------------------------------------------------------------------

    def latent_specs(self) -> list[tf.TensorSpec]:
        """Inputs of the `serving_default` signature that make up the latents (labels aside)."""
        return [tf.TensorSpec([None, self.latent_dim], tf.float32, name="z")]

    def label_specs(self) -> list[tf.TensorSpec]:
        """The `labels` input of signatures that condition on classes; none when unconditional."""
        return [tf.TensorSpec([None], tf.int32, name="labels")] if self.conditional else []

    def assemble_latents(self, z):
        """The generator's latents from the inputs named by `latent_specs`."""
        return z

    def describe_latents(self, latents) -> dict:
        """Parts of drawn latents worth returning beside the samples (InfoGAN: its codes)."""
        return {}

    def serving_signatures(self, scale, max_samples: int, class_shares=None) -> dict:
        """The functions an export serves: `{signature name: (function, input specs)}`.

        Data goes in and comes out in data space: `scale` (a `datasets.pipeline.Scaling`) maps
        it to and from the model's range. Every model serves

        - `serving_default`: `z` (and `labels` for conditional models) -> `samples`;
        - `sample`: `num_samples` and `seed` (one integer each, any rank) -> that many `samples`
          (and the `labels` they were drawn for: blocks of every class sized by `class_shares`,
          the training data's shares, or equal blocks without them); the same seed gives the
          same samples on every call;
        - `sample_labels` (conditional models): `labels` and `seed` -> one sample per label.

        Counts above `max_samples` (of samples, labels, or rows of `z`), and labels outside the
        class range, fail with InvalidArgument instead of exhausting the server.
        """
        latent_specs = self.latent_specs()

        def serving_default(*inputs):
            inputs = (served_rows(inputs[0], max_samples, "z"), *inputs[1:])
            latents = self.assemble_latents(*inputs[: len(latent_specs)])
            labels = self.served_labels(inputs[-1]) if self.conditional else None
            return {"samples": scale.decode(self.generate(latents, labels))}

        def sample(num_samples, seed):
            num = served_count(num_samples, max_samples, "num_samples")
            latents = self.latents(num, served_seed(seed))
            labels = self.sample_labels(num, shares=class_shares)
            outputs = {"samples": scale.decode(self.generate(latents, labels)), **self.describe_latents(latents)}
            if self.conditional:
                outputs["labels"] = labels
            return outputs

        signatures = {
            "serving_default": (serving_default, latent_specs + self.label_specs()),
            "sample": (sample, [COUNT_SPEC, SEED_SPEC]),
        }
        if self.conditional:

            def sample_labels(labels, seed):
                labels = self.served_labels(labels)
                num = served_count(tf.size(labels), max_samples, "the number of labels")
                latents = self.latents(num, served_seed(seed))
                return {"samples": scale.decode(self.generate(latents, labels)), "labels": labels}

            signatures["sample_labels"] = (sample_labels, [tf.TensorSpec(None, tf.int32, name="labels"), SEED_SPEC])
        return signatures

    def served_labels(self, labels):
        """`labels` as a vector, failing in the graph when one is outside the class range."""
        return check_range(tf.reshape(tf.cast(labels, tf.int32), [-1]), self.num_classes, "label")

    def standalone_generator(self) -> keras.Model:
        """A functional Keras model of standard layers: latents (and labels) -> samples in the
        model's range; what a Keras user loads from the export's `.keras` file."""
        raise NotImplementedError

    # -- differential privacy -----------------------------------------------------------------

    # DP-SGD clipping and noise (`dpsgd.Clipping`) for the networks that see real data; None
    # trains them plainly. Set by the trainer before the first step, not part of the config.
    privacy = None

    def private_networks(self) -> list:
        """The networks whose updates read real examples, which DP-SGD trains."""
        raise NotImplementedError

    def make_private(self, clipping) -> None:
        """Trains the networks that see real data with DP-SGD at `clipping`; UsageError when one
        of them normalises over the batch, which mixes examples and voids per-example clipping."""
        for network in self.private_networks():
            for layer in walk_layers(network):
                if isinstance(layer, keras.layers.BatchNormalization):
                    raise UsageError(
                        f"differentially private training clips each example's gradient, and batch norm in "
                        f"{network.name} ({layer.name}) mixes the examples of a batch; {self.private_remedy()}"
                    )
        self.privacy = clipping

    def private_remedy(self) -> str:
        """What to use instead of batch norm in a DP run (said in the refusal)."""
        return "use a model without it"

    def random_state(self) -> list:
        """The state variables of every random stream of the model and its layers.

        `tf.train.Checkpoint` does not reach them through the model, so the trainer saves them
        explicitly; without them a resumed run draws other noise than an uninterrupted one.
        """
        return [v for v in self.variables if v.path.endswith("seed_generator_state")]

    def normal(self, shape, seed=None):
        """Standard normal noise: from the model's stream, or stateless for an integer seed.

        Under a strategy with several replicas, each replica keeps its own block of the rows
        drawn for the global batch (`zoo.streams`).
        """
        if seed is not None:
            return tf.random.stateless_normal(shape, seed=[seed, 0])
        return streams.draw(keras.random.normal, shape, self.seed_generator)

    def adam(self, learning_rate, **kwargs):
        """An Adam optimizer, loss-scaled when layers compute in float16 (`--precision`)."""
        optimizer = keras.optimizers.Adam(learning_rate, **kwargs)
        if keras.mixed_precision.global_policy().compute_dtype == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def get_config(self):
        return {
            "data_shape": list(self.data_shape),
            "bounded": self.bounded,
            "num_classes": self.num_classes,
            "conditional": self.conditional,
            "seed": self.seed,
            "table_blocks": None if self.table_blocks is None else [list(block) for block in self.table_blocks],
        }


def walk_layers(layer):
    """`layer` and every layer inside it, nested models included."""
    yield layer
    for inner in getattr(layer, "layers", None) or ():
        yield from walk_layers(inner)
    wrapped = getattr(layer, "layer", None)  # wrappers such as SpectralNormalization
    if isinstance(wrapped, keras.layers.Layer):
        yield from walk_layers(wrapped)


def apply_gradients(tape, loss, variables, optimizer):
    """One update of `variables` from `loss`, the mean over this replica's share of the batch.

    Optimizers sum the gradients of the replicas in sync; dividing each replica's loss by their
    number makes that sum the gradient of the mean over the global batch, so every model (and
    every term of its loss) trains as on one device. A `LossScaleOptimizer` (float16) gets the
    loss scaled by its current scale, which it takes out of the gradients again.
    """
    replicas, _ = streams.replicas()
    scale = tf.constant(1.0 / replicas, loss.dtype)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        scale = scale * tf.cast(optimizer.dynamic_scale, loss.dtype)
    gradients = tape.gradient(loss, variables, output_gradients=scale)
    optimizer.apply_gradients(zip(gradients, variables))


def table_models() -> list[str]:
    """Names of the registered models that learn tables."""
    return sorted(name for name in MODELS.names() if MODELS.get(name).supports_tables)


COUNT_SPEC = tf.TensorSpec(None, tf.int32, name="num_samples")
SEED_SPEC = tf.TensorSpec(None, tf.int64, name="seed")


def share_labels(num, shares):
    """`num` class labels in blocks of each class in order, class k's block about
    `num * shares[k]` long (label i is the class whose cumulative share first exceeds
    (i + 1/2) / num); equal shares give equal blocks."""
    shares = tf.constant(np.asarray(shares, np.float64) / np.sum(shares), tf.float64)
    bounds = tf.math.cumsum(shares)
    positions = (tf.cast(tf.range(num), tf.float64) + 0.5) / tf.cast(num, tf.float64)
    labels = tf.searchsorted(bounds, positions, side="right", out_type=tf.int32)
    return tf.minimum(labels, tf.size(shares, out_type=tf.int32) - 1)


def served_count(count, max_samples, name):
    """`count` as a scalar, failing in the graph unless 1 <= count <= max_samples."""
    count = tf.reshape(tf.cast(count, tf.int32), [])
    checks = [
        tf.debugging.assert_positive(count, message=f"{name} must be at least 1"),
        tf.debugging.assert_less_equal(count, max_samples, message=f"{name} must be at most {max_samples}"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(count)


def served_rows(values, max_samples, name):
    """`values`, failing in the graph unless it has 1 to max_samples rows; what reads the returned
    tensor waits for the check, so a request of too many rows is refused before it is computed."""
    rows = served_count(tf.shape(values)[0], max_samples, f"the number of rows of {name}")
    return values[:rows]


def served_seed(seed):
    return tf.reshape(tf.cast(seed, tf.int64), [])


def check_range(values, limit, name):
    """`values`, failing in the graph when an integer of them lies outside 0..limit-1.

    The returned tensor waits for the checks (as `served_count`'s does), so an op that reads it,
    such as an embedding lookup, never runs on a bad value: the caller gets this message, not the
    op's own.
    """
    checks = [
        tf.debugging.assert_non_negative(values, message=f"a {name} is negative; accepted: 0..{limit - 1}"),
        tf.debugging.assert_less(values, limit, message=f"a {name} is too large; accepted: 0..{limit - 1}"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(values)


class AdversarialModel(GenerativeModel):
    """A generator and a discriminator trained against each other.

    One step runs the generator once and the discriminator once on the concatenated real and
    generated batch, then updates both players from that same forward pass (simultaneous
    gradient steps, as in the TensorFlow DCGAN tutorial), with a gradient penalty when the loss
    family asks for one.

    Conditional models feed the generator a learned label embedding concatenated to its noise,
    and give the discriminator a projection head (Miyato & Koyama 2018): the logit gains the
    inner product of a learned label embedding with the trunk's features. Generated examples
    take the labels of the real batch, so classes are seen in the data's proportions (in a
    differentially private step, equal blocks of every class: `_generated_labels`). With
    `classifier_weight` > 0 the discriminator also gets an auxiliary classifier head (AC-GAN,
    Odena et al. 2017), trained on the real examples' labels; the generator is rewarded when
    that head recognises the class it was asked for, which makes samples of each class
    recognisable as such.

    Args:
      latent_dim: size of the generator's input noise.
      loss: a family of `zoo.losses.GAN_LOSSES`.
      gradient_penalty_weight: weight of the gradient penalty (`wasserstein_gp` only).
      classifier_weight: weight of the auxiliary classification loss (conditional models).
      diffaugment: DiffAugment policies for images, e.g. `color,translation,cutout`
        (`zoo.diffaugment`): the discriminator sees real and generated images through the
        same kind of random differentiable transform.
      generator_learning_rate, discriminator_learning_rate, beta_1, beta_2: Adam settings.
      discriminator_steps: discriminator updates per generator update (the generator moves at
        every `discriminator_steps`-th step, by the mean of its gradients since its last move).
        Under differential privacy the noise weakens the discriminator, and more of its steps
        per generator step restore the balance over long runs (Bie et al. 2023, "Private GANs,
        revisited").
    """

    def __init__(
        self,
        data_shape,
        latent_dim=64,
        loss="non_saturating",
        gradient_penalty_weight=10.0,
        classifier_weight=0.0,
        diffaugment="",
        generator_learning_rate=2e-4,
        discriminator_learning_rate=2e-4,
        beta_1=0.5,
        beta_2=0.999,
        discriminator_steps=1,
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
        if classifier_weight < 0 or (classifier_weight > 0 and not self.conditional):
            raise UsageError(
                f"classifier_weight={classifier_weight} needs a conditional model and a non-negative value"
            )
        self.classifier_weight = float(classifier_weight)
        if int(discriminator_steps) != discriminator_steps or discriminator_steps < 1:
            raise UsageError(f"discriminator_steps={discriminator_steps} must be a positive integer")
        self.discriminator_steps = int(discriminator_steps)
        policies = diffaugment_module.parse(diffaugment)
        self.diffaugment = ",".join(policies)
        if policies and len(self.data_shape) != 3:
            raise UsageError(f"--diffaugment={diffaugment} applies to images, not data of shape {self.data_shape}")
        self.generator_learning_rate = float(generator_learning_rate)
        self.discriminator_learning_rate = float(discriminator_learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.loss_functions = losses.GAN_LOSSES[loss]
        self.generator = self._generator()
        self.discriminator = self._discriminator()
        # With several discriminator steps per generator step, the generator's optimizer gathers
        # its gradients and moves once every `discriminator_steps` steps, by their mean (Keras'
        # gradient accumulation: the same under a distribution strategy, where a branch around
        # the update could not synchronise the replicas).
        accumulation = {"gradient_accumulation_steps": self.discriminator_steps} if self.discriminator_steps > 1 else {}
        self.generator_optimizer = self.adam(self.generator_learning_rate, beta_1=self.beta_1, beta_2=self.beta_2,
                                             **accumulation)
        self.discriminator_optimizer = self.adam(
            self.discriminator_learning_rate, beta_1=self.beta_1, beta_2=self.beta_2
        )

    # -- what subclasses provide --------------------------------------------------------------

    def build_generator_body(self, input_dim) -> keras.Model:
        """Vector of `input_dim` -> data of `data_shape`, ending in `output_activation`."""
        raise NotImplementedError

    def build_discriminator_trunk(self) -> keras.Model:
        """Data -> a feature vector per example."""
        raise NotImplementedError

    @property
    def latent_size(self) -> int:
        """Size of the generator's input vector (InfoGAN appends its codes to the noise)."""
        return self.latent_dim

    def auxiliary_loss(self, latents, real, fake, fake_features):
        """An extra loss both players minimise, and its metrics, from the generator's `latents`,
        the `real` batch, the generator's output `fake` and the discriminator's features of it;
        none here (InfoGAN: MI)."""
        return None, {}

    @property
    def auxiliary_variables(self) -> list:
        """Variables of auxiliary heads, updated with the discriminator."""
        return []

    # -- networks -----------------------------------------------------------------------------

    def _generator(self):
        latents = keras.Input((self.latent_size,), name="latents")
        inputs, vector, width = [latents], latents, self.latent_size
        if self.conditional:
            labels = networks.label_input("generator")
            inputs.append(labels)
            vector = networks.with_label(latents, labels, self.num_classes, LABEL_EMBEDDING_DIM, "generator")
            width += LABEL_EMBEDDING_DIM
        body = self.build_generator_body(width)
        return networks.functional(inputs, body(vector), "generator")

    def _discriminator(self):
        data = keras.Input(self.data_shape, name="data")
        inputs = [data]
        features = self.build_discriminator_trunk()(data)
        logits = keras.layers.Dense(1, dtype="float32", name="logit")(features)
        if self.conditional:
            labels = networks.label_input("discriminator")
            inputs.append(labels)
            projection = keras.layers.Embedding(self.num_classes, features.shape[-1], name="projection")(labels)
            logits = logits + keras.ops.sum(projection * features, axis=-1, keepdims=True)
        outputs = {"logits": logits, "features": features}
        if self.classifier_weight > 0:
            outputs["class_logits"] = keras.layers.Dense(self.num_classes, dtype="float32", name="classifier")(features)
        return networks.functional(inputs, outputs, "discriminator")

    def _discriminate(self, data, labels, training):
        return self.discriminator([data, labels] if self.conditional else data, training=training)

    @property
    def sampling_network(self):
        return self.generator

    @property
    def discriminator_variables(self):
        return self.discriminator.trainable_variables + self.auxiliary_variables

    def build_optimizers(self):
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator_variables)

    def latents(self, num, seed=None):
        return self.normal((num, self.latent_dim), seed)

    def generate(self, latents, labels=None, training=False):
        latents = tf.convert_to_tensor(latents, tf.float32)
        inputs = [latents, tf.cast(labels, tf.int32)] if self.conditional else latents
        return self.generator(inputs, training=training)

    def standalone_generator(self):
        return self.generator

    # -- the step -----------------------------------------------------------------------------

    def train_step(self, batch):
        real = batch["x"]
        labels = tf.cast(batch["y"], tf.int32) if self.conditional else None
        latents = self.latents(tf.shape(real)[0])
        private = self.privacy is not None
        public_half = self._generated_term_public()
        fake_labels = self._generated_labels(labels)
        with tf.GradientTape(persistent=True) as tape:
            fake = self.generate(latents, fake_labels, training=True)
            both_labels = tf.concat([labels, fake_labels], axis=0) if self.conditional else None
            both = tf.concat([real, fake], axis=0)
            if self.diffaugment:
                both = diffaugment_module.diff_augment(both, self.diffaugment.split(","), self.seed_generator)
            outputs = self._discriminate(both, both_labels, training=True)
            _, fake_logits = tf.split(outputs["logits"], 2, axis=0)
            eps = losses.interpolation_weights(real, self.seed_generator) if (
                self.loss_functions.uses_gradient_penalty) else None
            discriminator_loss, metrics = self._discriminator_loss(outputs, real, fake, labels, eps)
            generator_loss = self.loss_functions.generator(fake_logits)
            metrics["generator_loss"] = generator_loss
            if self.classifier_weight > 0:
                _, fake_classes = tf.split(outputs["class_logits"], 2, axis=0)
                fake_error = losses.classification_loss(fake_labels, fake_classes)
                generator_loss += self.classifier_weight * fake_error
                metrics["fake_classification_loss"] = fake_error
            _, fake_features = tf.split(outputs["features"], 2, axis=0)
            auxiliary, auxiliary_metrics = self.auxiliary_loss(latents, real, fake, fake_features)
            if auxiliary is not None:
                discriminator_loss += auxiliary
                generator_loss += auxiliary
                metrics.update(auxiliary_metrics)
        if public_half:
            # Each real example is one DP-SGD example. The generated half of the loss (every loss
            # here is a sum of a real and a generated part) and the auxiliary term (which reads only
            # generated samples: `make_private` checks) are functions of the already private
            # weights and of public noise and labels: no noise. Each generated example's gradient
            # is clipped to the clip norm as a real one's is, so that the two halves weigh about as
            # in the plain step (unclipped, the generated half would outweigh the real one hundreds
            # of times).
            views = tf.split(both, 2, axis=0)
            public = dpsgd.clipped_mean_gradients(
                self._fake_loss, (tf.stop_gradient(views[1]), fake_labels if self.conditional else tf.zeros_like(real[:, :1])),
                self.discriminator_variables, self.privacy.l2_norm_clip, rowwise=self._rowwise_loss(self._fake_part))
            if auxiliary is not None:
                public = [p + a for p, a in zip(public, dpsgd.public_gradients(tape, auxiliary, self.discriminator_variables))]
            metrics.update(dpsgd.apply_private_gradients(
                self._real_loss, (views[0], labels if self.conditional else tf.zeros_like(real[:, :1])),
                self.discriminator_variables, self.discriminator_optimizer, self.privacy, self.seed_generator.next(),
                public=public, rowwise=self._rowwise_loss(self._real_part),
            ))
        elif private:
            # With a gradient penalty, which reads real and generated examples together, each real
            # example with its generated partner is one DP-SGD example; the auxiliary term reads
            # only generated samples and goes unclipped.
            public = None if auxiliary is None else dpsgd.public_gradients(tape, auxiliary, self.discriminator_variables)
            views = tf.split(both, 2, axis=0)
            inputs = (views[0], tf.stop_gradient(views[1]), real, tf.stop_gradient(fake),
                      labels if self.conditional else tf.zeros_like(real[:, :1]),
                      eps if eps is not None else tf.zeros_like(real[:, :1]))
            metrics.update(dpsgd.apply_private_gradients(
                self._pair_loss, inputs, self.discriminator_variables, self.discriminator_optimizer, self.privacy,
                self.seed_generator.next(), public=public,
            ))
        else:
            apply_gradients(tape, discriminator_loss, self.discriminator_variables, self.discriminator_optimizer)
        apply_gradients(tape, generator_loss, self.generator.trainable_variables, self.generator_optimizer)
        return metrics

    def _discriminator_loss(self, outputs, real, fake, labels, eps):
        """The discriminator's loss but the auxiliary term, from its `outputs` on the real then the
        generated examples (with the gradient penalty at interpolation weights `eps`), and its
        parts as metrics."""
        real_logits, fake_logits = tf.split(outputs["logits"], 2, axis=0)
        loss = self.loss_functions.discriminator(real_logits, fake_logits)
        metrics = {"discriminator_loss": loss}
        if self.loss_functions.uses_gradient_penalty:
            penalty = losses.gradient_penalty(
                lambda x: self._discriminate(x, labels, training=True)["logits"], real, fake, None, eps=eps)
            loss += self.gradient_penalty_weight * penalty
            metrics["gradient_penalty"] = penalty
        if self.classifier_weight > 0:
            real_classes, _ = tf.split(outputs["class_logits"], 2, axis=0)
            real_error = losses.classification_loss(labels, real_classes)
            loss += self.classifier_weight * real_error
            metrics["real_classification_loss"] = real_error
        return loss, metrics

    def _generated_term_public(self) -> bool:
        """Whether a private step takes the generated half of the discriminator's loss apart from
        the real examples' (False for a plain step): the generated examples come from the
        generator, trained only through the private discriminator, and from public noise, so that
        half's gradient spends no privacy and gets no noise (each generated example is still
        clipped, to keep the halves' weights); every real example's clipped gradient then carries
        only what it says about the data. Not with a gradient penalty, whose interpolated examples
        mix a real example with a generated one."""
        return self.privacy is not None and not self.loss_functions.uses_gradient_penalty

    def _generated_labels(self, labels):
        """The classes of the step's generated examples: the real examples' own, or, where the
        generated half is taken apart (`_generated_term_public`), equal blocks of every class, so
        that no real example's label decides a term without noise."""
        if labels is None or not self._generated_term_public():
            return labels
        return self.sample_labels(tf.shape(labels)[0])

    def _real_loss(self, real_view, labels):
        """The real half of `_discriminator_loss` on a batch of one real example (as the
        discriminator sees it, after DiffAugment), with its class term: the loss of one DP-SGD
        example where the generated half is taken apart (`_generated_term_public`). With a class
        head, the adversarial and the class terms apart: DP-SGD clips each to half the clip norm
        (`dpsgd.example_clipped_sum`), so the class term, whose gradient is small beside the
        adversarial one's, is not scaled away with it."""
        outputs = self._discriminate(real_view, labels if self.conditional else None, training=True)
        terms = self._real_terms(outputs, labels)
        return terms if len(terms) > 1 else terms[0]

    def _real_terms(self, outputs, labels):
        """The real half of the discriminator's loss from its `outputs` on real examples alone, as
        its terms: the adversarial loss with constant generated logits (whose part is then a
        constant), and the class head's loss where there is one."""
        logits = outputs["logits"]
        terms = (self.loss_functions.discriminator(logits, tf.zeros_like(logits)),)
        if self.classifier_weight > 0:
            terms += (self.classifier_weight * losses.classification_loss(labels, outputs["class_logits"]),)
        return terms

    def _real_part(self, outputs, labels):
        """The real half of the discriminator's loss (`_real_terms` added)."""
        return tf.add_n(list(self._real_terms(outputs, labels)))

    def _fake_loss(self, fake_view, labels):
        """The generated half of `_discriminator_loss` on a batch of one generated example (as the
        discriminator sees it): clipped like a real example's, without noise."""
        outputs = self._discriminate(fake_view, labels if self.conditional else None, training=True)
        return self._fake_part(outputs, labels)

    def _fake_part(self, outputs, labels):
        """The generated half of the discriminator's loss from its `outputs` on generated examples
        alone: the loss with constant real logits. The class head trains on real labels only."""
        logits = outputs["logits"]
        return self.loss_functions.discriminator(tf.zeros_like(logits), logits)

    def _rowwise_loss(self, part):
        """`_real_loss` or `_fake_loss` (by their `part`) as the discriminator on each example's
        row followed by `part` (`dpsgd.RowwiseLoss`, for DP-SGD's batched pass); None where the
        discriminator takes labels beside the rows or the loss reads them otherwise (a gradient
        penalty)."""
        if self.conditional or self.loss_functions.uses_gradient_penalty:
            return None

        def rows(view, _):
            return view[:, None]

        def head(outputs, view, labels):
            return part(outputs, None)

        return dpsgd.RowwiseLoss(self.discriminator, rows, head)

    def _pair_loss(self, real_view, fake_view, real, fake, labels, eps):
        """`_discriminator_loss` on batches of one real example and one generated (`_view`s: as
        the discriminator sees them, after DiffAugment): the loss of one DP-SGD example, whose
        mean over the batch is the step's."""
        labels = labels if self.conditional else None
        outputs = self._discriminate(tf.concat([real_view, fake_view], axis=0),
                                     tf.concat([labels, labels], axis=0) if self.conditional else None, training=True)
        return self._discriminator_loss(outputs, real, fake, labels, eps)[0]

    def private_networks(self):
        return [self.discriminator]

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "loss": self.loss,
            "gradient_penalty_weight": self.gradient_penalty_weight,
            "classifier_weight": self.classifier_weight,
            "diffaugment": self.diffaugment,
            "generator_learning_rate": self.generator_learning_rate,
            "discriminator_learning_rate": self.discriminator_learning_rate,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "discriminator_steps": self.discriminator_steps,
        }
