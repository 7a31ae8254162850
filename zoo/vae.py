"""`vae`: variational autoencoder (Kingma & Welling 2013), with beta weighting of the KL term."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from synthblend.zoo import dpsgd, losses, networks, streams
from synthblend.zoo.base import LABEL_EMBEDDING_DIM, GenerativeModel, apply_gradients, served_rows
from synthblend.zoo.registry import MODELS, UsageError

LIKELIHOODS = ("bernoulli", "gaussian")
DEFAULT_DEPTH = 2  # hidden layers of the MLPs (vectors)


@MODELS.register("vae")
class VAE(GenerativeModel):
    """Variational autoencoder: convolutional for images, MLP for vectors.

    The encoder maps data to the mean and log-variance of a diagonal Gaussian posterior; a
    sample drawn by reparameterisation is decoded into the parameters of the likelihood:

    - `bernoulli`: binary cross-entropy against data scaled to [0, 1] (images only); samples
      and reconstructions are the Bernoulli means;
    - `gaussian`: a Gaussian with a learned global standard deviation (a calibrated decoder,
      Rybkin et al. 2021) around the decoded mean; images are scaled to [-1, 1], vectors
      standardised. For table rows (`table_blocks`) the likelihood is mixed: the Gaussian over
      the numeric (`normal`) blocks, a categorical over each `softmax` block (cross-entropy of
      the decoded logits against the one-hot), each numeric column with its own learned
      standard deviation; samples are draws from it (see `generate`), while `decode` and
      `reconstruct` give the means and the category probabilities.

    The loss is the negative ELBO with the KL term weighted by `beta` (Higgins et al. 2017); the
    metrics are the reconstruction term and the KL per example in nats, and the ELBO itself.
    Conditional models concatenate a learned label embedding to the encoder's features and to
    the decoder's input.

    Args:
      data_shape: `(S, S, C)` images of the DCGAN sizes, or vectors `(D,)`.
      latent_dim: size of the latent code.
      width: base channels (images) or hidden units (vectors).
      depth: hidden layers of the MLPs (vectors; default 2). Given for images, it is a
        UsageError: their networks are convolutional.
      likelihood: `bernoulli` or `gaussian`; by default `bernoulli` for images and
        `gaussian` for unbounded vectors.
      beta: weight of the KL term (1: the plain VAE).
      learning_rate: Adam learning rate.
      **kwargs: see `GenerativeModel`.

    Example:

    ```python
    vae = VAE(data_shape=(28, 28, 1), latent_dim=16, width=32)
    mean, log_variance = vae.encode(images)       # images in [0, 1]
    reconstructions = vae.reconstruct(images)
    ```

    Reference: Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    """

    supports_tables = True

    def __init__(self, data_shape, latent_dim=16, width=32, depth=None, likelihood=None, beta=1.0,
                 learning_rate=1e-3, decoder_norm="batch", **kwargs):
        super().__init__(data_shape, **kwargs)
        if decoder_norm not in networks.NORMS or decoder_norm == "spectral":
            raise UsageError(f"decoder_norm={decoder_norm!r} is not one of batch, layer, none")
        if decoder_norm != "batch" and len(self.data_shape) != 3:
            raise UsageError(f"--decoder_norm={decoder_norm} applies to images (the convolutional decoder); "
                             f"vae on vectors of shape {tuple(self.data_shape)} has no normalisation")
        self.decoder_norm = decoder_norm
        self.check_data(self.data_shape, self.num_classes)
        if depth is not None and len(self.data_shape) == 3:
            raise UsageError(f"--depth={depth} applies to vectors (the hidden layers of the MLPs); vae on images "
                             f"of shape {self.data_shape} uses convolutions, sized by --width")
        depth = DEFAULT_DEPTH if depth is None else depth
        likelihood = likelihood or ("bernoulli" if self.bounded else "gaussian")
        if likelihood not in LIKELIHOODS:
            raise UsageError(f"unknown likelihood {likelihood!r}; known: {', '.join(LIKELIHOODS)}")
        if likelihood == "bernoulli" and self.table_blocks is not None:
            raise UsageError("likelihood bernoulli does not apply to tables; use --likelihood=gaussian "
                             "(categorical for category columns, Gaussian for numeric ones)")
        if likelihood == "bernoulli" and not self.bounded:
            raise UsageError(
                "likelihood bernoulli needs data in a fixed range such as images; "
                "this data is unbounded: use --likelihood=gaussian"
            )
        if latent_dim <= 0 or width <= 0 or depth <= 0 or beta < 0:
            raise UsageError(
                f"latent_dim={latent_dim}, width={width}, depth={depth} must be positive and beta={beta} >= 0"
            )
        self.latent_dim = int(latent_dim)
        self.width = int(width)
        self.depth = int(depth)
        self.likelihood = likelihood
        self.beta = float(beta)
        self.learning_rate = float(learning_rate)
        self.encoder = self._encoder()
        self.decoder = self._decoder()
        # Tables: the decoder emits logits for categorical blocks, means for numeric ones.
        self.table_activation, self._numeric = None, []
        if self.table_blocks is not None:
            self.table_activation = networks.TableActivation(self.table_blocks, name="table_activation")
            self._numeric = [start for kind, start, _ in self._block_features() if kind == "normal"]
        # log of the Gaussian likelihood's standard deviation, learned with the decoder: one for
        # all features, or for tables one per numeric column (columns differ in how well the
        # latents predict them).
        self.log_scale = None
        if likelihood == "gaussian" and (self.table_blocks is None or self._numeric):
            shape = () if self.table_blocks is None else (len(self._numeric),)
            self.log_scale = self.add_weight(shape=shape, initializer="zeros", name="log_scale")
        self.evaluation_seed_generator = keras.random.SeedGenerator(seed=self.seed + 1)
        self.optimizer_ = self.adam(self.learning_rate)

    @classmethod
    def check_data(cls, shape, num_classes):
        if len(shape) == 3 and not networks.supports_dcgan(shape):
            raise UsageError(f"vae takes {networks.dcgan_shapes()} or vectors, not data of shape {tuple(shape)}")
        super().check_data(shape, num_classes)

    @property
    def data_range(self):
        if self.likelihood == "bernoulli":
            return (0.0, 1.0)
        return super().data_range

    @property
    def is_image(self):
        return len(self.data_shape) == 3

    # -- networks -----------------------------------------------------------------------------

    def _encoder(self):
        data = keras.Input(self.data_shape, name="data")
        inputs = [data]
        if self.is_image:
            features = networks.dcgan_trunk(self.data_shape, self.width, norm="none", name="encoder_trunk")(data)
        else:
            features = networks.mlp_trunk(self.data_shape, [self.width] * self.depth, name="encoder_trunk")(data)
        if self.conditional:
            labels = networks.label_input("encoder")
            inputs.append(labels)
            features = networks.with_label(features, labels, self.num_classes, LABEL_EMBEDDING_DIM, "encoder")
        mean = keras.layers.Dense(self.latent_dim, dtype="float32", name="mean")(features)
        log_variance = keras.layers.Dense(self.latent_dim, dtype="float32", name="log_variance")(features)
        return networks.functional(inputs, {"mean": mean, "log_variance": log_variance}, "encoder")

    def _decoder(self):
        latents = keras.Input((self.latent_dim,), name="latents")
        inputs, vector, width = [latents], latents, self.latent_dim
        if self.conditional:
            labels = networks.label_input("decoder")
            inputs.append(labels)
            vector = networks.with_label(latents, labels, self.num_classes, LABEL_EMBEDDING_DIM, "decoder")
            width += LABEL_EMBEDDING_DIM
        # The decoder emits logits (Bernoulli) or the mean (Gaussian) of the likelihood.
        activation = "linear" if self.likelihood == "bernoulli" else self.output_activation
        if self.is_image:
            body = networks.dcgan_body(width, self.data_shape, self.width, name="decoder_body",
                                       output_activation=activation, norm=self.decoder_norm)
        else:
            body = networks.mlp_body(width, [self.width] * self.depth, self.data_shape, name="decoder_body",
                                     output_activation=activation)
        return networks.functional(inputs, body(vector), "decoder")

    def _block_features(self):
        """`(kind, first feature, size)` of each table block."""
        start = 0
        for kind, size in self.table_blocks:
            yield kind, start, size
            start += size

    @property
    def sampling_network(self):
        return self.decoder

    @property
    def trainable_parameters(self):
        extra = [self.log_scale] if self.log_scale is not None else []
        return self.encoder.trainable_variables + self.decoder.trainable_variables + extra

    def build_optimizers(self):
        self.optimizer_.build(self.trainable_parameters)

    # -- the endpoints ------------------------------------------------------------------------

    def encode(self, data, labels=None, training=False):
        """Posterior `(mean, log_variance)` of data in the model's range."""
        labels = self._labels(labels)
        data = tf.convert_to_tensor(data, tf.float32)
        outputs = self.encoder([data, labels] if self.conditional else data, training=training)
        return outputs["mean"], outputs["log_variance"]

    def decode(self, latents, labels=None, training=False):
        """Data-space means of latent codes."""
        return self._mean(self._decoder_output(latents, labels, training))

    def reconstruct(self, data, labels=None):
        """Decodes the posterior mean of each example."""
        mean, _ = self.encode(data, labels)
        return self.decode(mean, labels)

    @property
    def latent_size(self):
        """Width of the sampling latents: the code, and for tables after it the standard normal
        observation noise of each encoded feature (see `generate`)."""
        return self.latent_dim + (self.data_shape[0] if self.table_blocks is not None else 0)

    def latents(self, num, seed=None):
        return self.normal((num, self.latent_size), seed)

    def latent_specs(self):
        return [tf.TensorSpec([None, self.latent_size], tf.float32, name="z")]

    def generate(self, latents, labels=None, training=False):
        """Samples from latents of `latent_size`. Images and vectors: the decoded means. Tables:
        draws from the likelihood, as the rest of the latents dictate: each numeric column its
        decoded mean plus its noise times its learned scale, each category block the one-hot of
        a categorical draw from its decoded probabilities (Gumbel-max, the noise mapped to
        uniform by the normal CDF). Means alone make numeric columns too tight and too
        correlated, and the argmax of the probabilities drops every category that the code
        leaves uncertain: on the synthetic table of `tests/test_tables_models.py` (width 64,
        depth 2, 1500 steps) the correlation of its two numeric columns came out 0.95 from
        means and 0.81 from draws (0.82 in the data), and the largest error of P(B | A) 0.20
        from argmaxes and 0.09 from draws."""
        latents = tf.convert_to_tensor(latents, tf.float32)
        decoded = self._decoder_output(latents[:, : self.latent_dim], labels, training)
        if self.table_activation is None:
            return self._mean(decoded)
        noise = latents[:, self.latent_dim:]
        parts, numeric = [], 0
        for kind, start, size in self._block_features():
            if kind == "normal":
                parts.append(decoded[:, start:start + 1] + noise[:, start:start + 1] * tf.exp(self.log_scale[numeric]))
                numeric += 1
            else:
                uniform = tf.clip_by_value(0.5 * tf.math.erfc(-noise[:, start:start + size] / math.sqrt(2.0)),
                                           1e-7, 1 - 1e-7)
                gumbel = -tf.math.log(-tf.math.log(uniform))
                parts.append(tf.one_hot(tf.argmax(decoded[:, start:start + size] + gumbel, axis=-1), size))
        return tf.concat(parts, axis=-1)

    def _labels(self, labels):
        return tf.cast(labels, tf.int32) if self.conditional and labels is not None else labels

    def _decoder_output(self, latents, labels, training):
        latents, labels = tf.convert_to_tensor(latents, tf.float32), self._labels(labels)
        return self.decoder([latents, labels] if self.conditional else latents, training=training)

    def _mean(self, decoded):
        if self.table_activation is not None:
            return self.table_activation(decoded)
        return tf.sigmoid(decoded) if self.likelihood == "bernoulli" else decoded

    # -- serving ------------------------------------------------------------------------------

    def serving_signatures(self, scale, max_samples, class_shares=None):
        """Adds `encode` (`x` -> `mean`, `log_variance`), `decode` (`z` -> `samples`) and
        `reconstruct` (`x` -> `reconstruction`), each taking `labels` too when conditional.
        For tables, `decode` takes codes of `latent_dim` and gives means and category
        probabilities, while `serving_default` takes latents of `latent_size` and gives draws."""
        signatures = super().serving_signatures(scale, max_samples, class_shares)
        data_spec = tf.TensorSpec([None, *self.data_shape], tf.float32, name="x")
        label_specs = self.label_specs()

        def labels_of(inputs):
            return self.served_labels(inputs[0]) if self.conditional else None

        def encode(x, *labels):
            mean, log_variance = self.encode(scale.encode(x), labels_of(labels))
            return {"mean": mean, "log_variance": log_variance}

        def decode(z, *labels):
            z = served_rows(z, max_samples, "z")
            return {"samples": scale.decode(self.decode(z, labels_of(labels)))}

        def reconstruct(x, *labels):
            return {"reconstruction": scale.decode(self.reconstruct(scale.encode(x), labels_of(labels)))}

        signatures["encode"] = (encode, [data_spec, *label_specs])
        signatures["decode"] = (decode, [tf.TensorSpec([None, self.latent_dim], tf.float32, name="z"), *label_specs])
        signatures["reconstruct"] = (reconstruct, [data_spec, *label_specs])
        return signatures

    def standalone_generator(self):
        if self.table_activation is not None:
            means = self.table_activation(self.decoder.output)
        elif self.likelihood == "bernoulli":
            means = keras.layers.Activation("sigmoid", dtype="float32", name="bernoulli_mean")(self.decoder.output)
        else:
            return self.decoder
        return keras.Model(self.decoder.inputs, means, name="generator")

    # -- the step -----------------------------------------------------------------------------

    def _elbo_terms(self, batch, noise, training):
        """The mean reconstruction term and KL of `batch`, with the reparameterisation's `noise`."""
        data = batch["x"]
        labels = tf.cast(batch["y"], tf.int32) if self.conditional else None
        mean, log_variance = self.encode(data, labels, training=training)
        latents = mean + tf.exp(0.5 * log_variance) * noise
        decoded = self._decoder_output(latents, labels, training)
        reconstruction = tf.reduce_mean(self._negative_log_likelihood(data, decoded))
        kl = losses.kl_divergence(mean, log_variance)
        return reconstruction, kl

    def _negative_log_likelihood(self, data, decoded):
        """Per-example negative log-likelihood, summed over features, in nats."""
        axes = list(range(1, len(self.data_shape) + 1))
        data = tf.cast(data, tf.float32)
        if self.table_activation is not None:
            return self._table_negative_log_likelihood(data, decoded)
        if self.likelihood == "bernoulli":
            per_feature = tf.nn.sigmoid_cross_entropy_with_logits(labels=data, logits=decoded)
        else:
            per_feature = self._gaussian(data, decoded)
        return tf.reduce_sum(per_feature, axis=axes)

    def _gaussian(self, data, means):
        scale = tf.exp(self.log_scale)
        return 0.5 * tf.square((data - means) / scale) + self.log_scale + 0.5 * math.log(2 * math.pi)

    def _table_negative_log_likelihood(self, data, decoded):
        """The mixed likelihood of table rows: Gaussian over the numeric features, categorical
        cross-entropy of each softmax block's logits against its one-hot."""
        total = tf.zeros(tf.shape(data)[:1])
        if self._numeric:
            numeric = self._gaussian(tf.gather(data, self._numeric, axis=1), tf.gather(decoded, self._numeric, axis=1))
            total += tf.reduce_sum(numeric, axis=1)
        for kind, start, size in self._block_features():
            if kind == "softmax":
                total += tf.nn.softmax_cross_entropy_with_logits(
                    labels=data[:, start:start + size], logits=decoded[:, start:start + size]
                )
        return total

    def train_step(self, batch):
        private = self.privacy is not None
        # The reparameterisation noise, drawn here so that a DP-SGD step can pass each example its own.
        noise = streams.draw(keras.random.normal, (tf.shape(batch["x"])[0], self.latent_dim), self.seed_generator)
        with tf.GradientTape() as tape:
            reconstruction, kl = self._elbo_terms(batch, noise, training=True)
            loss = reconstruction + self.beta * kl
        metrics = {"loss": loss, "reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl)}
        variables = self.trainable_parameters
        if private:
            labels = tf.cast(batch["y"], tf.int32) if self.conditional else tf.zeros_like(noise[:, :1])
            metrics.update(dpsgd.apply_private_gradients(
                self._example_loss, (batch["x"], labels, noise), variables, self.optimizer_, self.privacy,
                self.seed_generator.next(),
            ))
        else:
            apply_gradients(tape, loss, variables, self.optimizer_)
        return metrics

    def _example_loss(self, x, labels, noise):
        """The negative ELBO (with beta) of a batch of one example: the loss of one DP-SGD example."""
        batch = {"x": x, "y": labels} if self.conditional else {"x": x}
        reconstruction, kl = self._elbo_terms(batch, noise, training=True)
        return reconstruction + self.beta * kl

    def test_step(self, batch):
        noise = streams.draw(keras.random.normal, (tf.shape(batch["x"])[0], self.latent_dim),
                             self.evaluation_seed_generator)
        reconstruction, kl = self._elbo_terms(batch, noise, training=False)
        return {"reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl)}

    def private_networks(self):
        return [self.encoder, self.decoder]

    def private_remedy(self):
        return "use --decoder_norm=layer or none"

    def pictures(self, num, seed, real=None):
        """Adds `reconstruction`: rows of real examples, each followed by its reconstruction."""
        pictures = super().pictures(num, seed, real)
        if real is not None and self.is_image:
            data = real["x"][:32]
            labels = real["y"][: len(data)] if self.conditional else None
            rebuilt = self.reconstruct(data, labels)
            columns = 8
            rows = len(data) // columns
            pairs = tf.stack([tf.reshape(data[: rows * columns], (rows, columns, *self.data_shape)),
                              tf.reshape(rebuilt[: rows * columns], (rows, columns, *self.data_shape))], axis=1)
            pictures["reconstruction"] = (tf.reshape(pairs, (-1, *self.data_shape)), columns)
        return pictures

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if len(config.get("data_shape") or ()) == 3:
            config.pop("depth", None)  # images: the convolutional networks have no MLP depth
        return cls(**config)

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "width": self.width,
            "depth": self.depth,
            "likelihood": self.likelihood,
            "beta": self.beta,
            "learning_rate": self.learning_rate,
            # Runs saved before the option existed hold no key: their decoders have batch norm.
            **({"decoder_norm": self.decoder_norm} if self.decoder_norm != "batch" else {}),
        }
