"""`infogan`: information-maximising GAN (Chen et al. 2016) on DCGAN networks."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from synthblend.zoo import diffaugment, losses, streams
from synthblend.zoo.base import SEED_SPEC, check_range, served_count, served_seed
from synthblend.zoo.dcgan import DCGAN
from synthblend.zoo.registry import MODELS, UsageError

TRAVERSAL_VALUES = np.linspace(-2.0, 2.0, 9, dtype=np.float32)


@MODELS.register("infogan")
class InfoGAN(DCGAN):
    """InfoGAN: a DCGAN whose generator also takes latent codes the model learns to read back.

    The generator's input is noise, one categorical code (one-hot over `categories` values)
    and `continuous_codes` codes uniform in [-1, 1]. An auxiliary head Q on the
    discriminator's trunk predicts the codes of generated images; both players minimise the
    variational bound of `zoo.losses.mutual_information_loss` (categorical cross-entropy, plus
    the Gaussian negative log-likelihood of the continuous codes with unit variance), weighted
    by `categorical_weight` and `continuous_weight`. Trained on unlabelled data, the categorical
    code tends to capture the classes and the continuous codes other factors.

    Args:
      categories: values of the categorical code (at least 2).
      continuous_codes: number of continuous codes (at least 1).
      categorical_weight, continuous_weight: weights of the two information terms (the paper
        uses 1 for discrete codes and smaller weights for continuous ones).
      code_invariance: `zoo.diffaugment` policies, e.g. `centre,rotation`, that the categorical
        code is read through: Q reads it from a randomly transformed copy of each generated
        image (one more pass through the discriminator's trunk, its normalisation on moving
        statistics), so the code cannot be carried by what the policies change (position and
        size for `centre`, orientation for `rotation`); `infer_codes` reads real images the same
        way, through `centre` when it is among them. The continuous codes are read from the
        untransformed image, so they are free to take the pose. Empty: the paper's InfoGAN.
      clustering_weight: with `code_invariance`, weight of a term that also teaches Q real
        images: two random views of each real image (through the same policies) should get the
        same code, and every code should be used equally often, the invariant information
        clustering of Ji et al. 2019 (`zoo.losses.invariant_clustering_loss`). The code then
        means the same on real and generated images, and the generator is asked to draw, for
        code k, what Q reads as k in the data. No labels are used. 0: off.
      **kwargs: see `DCGAN`.

    Example:

    ```python
    model = InfoGAN(data_shape=(28, 28, 1), categories=10, continuous_codes=2)
    images = model.sample(10, seed=0, codes=list(range(10)))   # one per code value
    probabilities, continuous = model.infer_codes(images)
    ```

    Reference: Chen et al., "InfoGAN: Interpretable Representation Learning by Information
    Maximizing Generative Adversarial Nets", NeurIPS 2016.
    """

    def __init__(self, data_shape, categories=10, continuous_codes=2, categorical_weight=1.0,
                 continuous_weight=0.1, code_invariance="", clustering_weight=0.0, **kwargs):
        if categories < 2 or continuous_codes < 1:
            raise UsageError(
                f"infogan needs categories >= 2 and continuous_codes >= 1, not categories={categories}, "
                f"continuous_codes={continuous_codes}"
            )
        if kwargs.get("conditional"):
            raise UsageError("infogan learns its own categorical code; it does not take --conditional")
        self.categories = int(categories)
        self.continuous_codes = int(continuous_codes)
        self.categorical_weight = float(categorical_weight)
        self.continuous_weight = float(continuous_weight)
        self.code_invariance = ",".join(diffaugment.parse(code_invariance, diffaugment.CODE_POLICIES,
                                                          "--code_invariance"))
        if clustering_weight < 0 or (clustering_weight > 0 and not self.code_invariance):
            raise UsageError(
                f"clustering_weight={clustering_weight} needs a non-negative value and --code_invariance "
                "(the policies that make the two views of a real image)"
            )
        self.clustering_weight = float(clustering_weight)
        super().__init__(data_shape, **kwargs)
        features = self.discriminator.output["features"].shape[-1]
        self.q_head = keras.Sequential(
            [
                keras.Input((features,)),
                keras.layers.Dense(128),
                keras.layers.LeakyReLU(0.2),
                keras.layers.Dense(self.categories + self.continuous_codes, dtype="float32"),
            ],
            name="q_head",
        )

    @property
    def latent_size(self):
        return self.latent_dim + self.categories + self.continuous_codes

    @property
    def auxiliary_variables(self):
        return self.q_head.trainable_variables

    def latents(self, num, seed=None, codes=None, continuous=None):
        """Noise, one-hot categorical codes and continuous codes, concatenated.

        Args:
          codes: categorical code values (num,), drawn uniformly when None.
          continuous: continuous codes (num, continuous_codes), drawn in [-1, 1] when None.
        """
        noise = self.normal((num, self.latent_dim), seed)
        if codes is None:
            codes = self._uniform_integers(num, seed)
        elif tf.executing_eagerly():
            values = np.asarray(codes).reshape(-1)
            bad = values[(values < 0) | (values >= self.categories)]
            if bad.size:
                raise UsageError(f"categorical code {bad[0]} is outside 0..{self.categories - 1}")
        if continuous is None:
            continuous = self._uniform((num, self.continuous_codes), seed)
        elif tf.executing_eagerly() and np.shape(continuous)[-1] != self.continuous_codes:
            raise UsageError(
                f"{np.shape(continuous)[-1]} continuous codes given; this model has {self.continuous_codes}"
            )
        one_hot = tf.one_hot(tf.cast(codes, tf.int32), self.categories)
        return tf.concat([noise, one_hot, tf.cast(continuous, tf.float32)], axis=-1)

    # -- serving ------------------------------------------------------------------------------

    def latent_specs(self):
        return [
            tf.TensorSpec([None, self.latent_dim], tf.float32, name="z"),
            tf.TensorSpec([None], tf.int32, name="codes"),
            tf.TensorSpec([None, self.continuous_codes], tf.float32, name="continuous"),
        ]

    def assemble_latents(self, z, codes, continuous):
        codes = check_range(tf.reshape(codes, [-1]), self.categories, "categorical code")
        return tf.concat([z, tf.one_hot(codes, self.categories), continuous], axis=-1)

    def describe_latents(self, latents):
        one_hot, continuous = self._split_codes(latents)
        return {"codes": tf.argmax(one_hot, axis=-1, output_type=tf.int32), "continuous": continuous}

    def serving_signatures(self, scale, max_samples, class_shares=None):
        """`serving_default` takes `z`, categorical `codes` and `continuous` codes; `sample`
        also returns the codes it drew; adds `sample_codes` (`codes`, `seed` -> a sample per
        code, continuous codes drawn) and `infer_codes` (`x` -> `codes`, their
        `probabilities` and the `continuous` posterior means)."""
        signatures = super().serving_signatures(scale, max_samples, class_shares)

        def sample_codes(codes, seed):
            codes = check_range(tf.reshape(tf.cast(codes, tf.int32), [-1]), self.categories, "categorical code")
            num = served_count(tf.size(codes), max_samples, "the number of codes")
            latents = self.latents(num, served_seed(seed), codes=codes)
            return {"samples": scale.decode(self.generate(latents)), **self.describe_latents(latents)}

        def infer_codes(x):
            probabilities, continuous = self.infer_codes(scale.encode(x))
            codes = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            return {"codes": codes, "probabilities": probabilities, "continuous": continuous}

        signatures["sample_codes"] = (sample_codes, [tf.TensorSpec(None, tf.int32, name="codes"), SEED_SPEC])
        signatures["infer_codes"] = (infer_codes, [tf.TensorSpec([None, *self.data_shape], tf.float32, name="x")])
        return signatures

    def _uniform_integers(self, num, seed):
        if seed is None:
            return streams.draw(keras.random.randint, (num,), self.seed_generator, 0, self.categories)
        return tf.random.stateless_uniform((num,), seed=[seed, 1], maxval=self.categories, dtype=tf.int32)

    def _uniform(self, shape, seed):
        if seed is None:
            return streams.draw(keras.random.uniform, shape, self.seed_generator, -1.0, 1.0)
        return tf.random.stateless_uniform(shape, seed=[seed, 2], minval=-1.0, maxval=1.0)

    def sample(self, num, seed=None, labels=None, codes=None, continuous=None):
        """Samples with chosen categorical `codes` and `continuous` codes (drawn when None)."""
        if labels is not None:
            raise UsageError("infogan is not conditioned on labels; choose its categorical codes instead")
        return self.generate(self.latents(num, seed, codes, continuous))

    def _split_codes(self, latents):
        start = self.latent_dim
        return latents[:, start:start + self.categories], latents[:, start + self.categories:]

    def _q(self, features, training=False):
        outputs = self.q_head(features, training=training)
        return outputs[:, : self.categories], outputs[:, self.categories:]

    def make_private(self, clipping):
        if self.clustering_weight > 0:
            raise UsageError(f"clustering_weight={self.clustering_weight} teaches Q on real images outside "
                             "per-example clipping; differentially private InfoGAN runs use clustering_weight=0")
        super().make_private(clipping)

    def auxiliary_loss(self, latents, real, fake, fake_features):
        one_hot, continuous = self._split_codes(latents)
        logits, mean = self._q(fake_features, training=True)
        clustering = None
        if self.code_invariance:
            # One discriminator call for every view: the moved fakes, then two views of the reals. Its
            # normalisation layers use their moving statistics (kept from the raw images) and leave
            # them alone, as when `infer_codes` reads real images: with the views' own batch
            # statistics, the code read at inference drifted away from the one trained (0.71
            # accuracy on shapes at 8,000 steps, 0.999 with batch statistics).
            views = [fake] + ([real, real] if self.clustering_weight > 0 else [])
            moved = diffaugment.diff_augment(tf.concat(views, axis=0), self.code_invariance.split(","),
                                             self.seed_generator)
            view_logits, _ = self._q(self.discriminator(moved, training=False)["features"], training=True)
            view_logits = tf.split(view_logits, len(views), axis=0)
            logits = view_logits[0]
            if self.clustering_weight > 0:
                clustering = losses.invariant_clustering_loss(view_logits[1], view_logits[2])
        categorical = losses.mutual_information_loss(categorical_codes=one_hot, categorical_logits=logits)
        gaussian = losses.mutual_information_loss(
            continuous_codes=continuous, continuous_mean=mean, continuous_log_std=tf.zeros_like(mean)
        )
        total = self.categorical_weight * categorical + self.continuous_weight * gaussian
        metrics = {"categorical_information_loss": categorical, "continuous_information_loss": gaussian}
        if clustering is not None:
            total += self.clustering_weight * clustering
            metrics["real_clustering_loss"] = clustering
        return total, metrics

    def infer_codes(self, data):
        """Posterior of the codes given data in the model's range: `(probabilities, means)`. With
        `centre` among the `code_invariance` policies, the categorical code is read from the
        re-framed data, as in training (the random policies are left out)."""
        features = self.discriminator(data, training=False)["features"]
        logits, mean = self._q(features)
        if self.code_invariance:
            framed = diffaugment.centre(data) if "centre" in self.code_invariance.split(",") else data
            logits, _ = self._q(self.discriminator(framed, training=False)["features"])
        return tf.nn.softmax(logits), mean

    def pictures(self, num, seed, real=None):
        """Adds `categorical` (a row per code value, same noise along each column) and
        `continuous_K` (a row per code value, continuous code K swept from -2 to 2)."""
        pictures = super().pictures(num, seed, real)
        columns = 8
        values = np.repeat(np.arange(self.categories), columns)
        noise_seeds = np.tile(np.arange(columns), self.categories)
        pictures["categorical"] = (
            self._generate_codes(values, np.zeros((len(values), self.continuous_codes)), noise_seeds, seed),
            columns,
        )
        steps = len(TRAVERSAL_VALUES)
        values = np.repeat(np.arange(self.categories), steps)
        for index in range(self.continuous_codes):
            continuous = np.zeros((len(values), self.continuous_codes), np.float32)
            continuous[:, index] = np.tile(TRAVERSAL_VALUES, self.categories)
            pictures[f"continuous_{index}"] = (
                self._generate_codes(values, continuous, np.zeros(len(values), int), seed), steps
            )
        return pictures

    def _generate_codes(self, codes, continuous, noise_index, seed):
        """Images for given codes, with the noise vector chosen by `noise_index` (shared noise)."""
        noise = self.normal((int(noise_index.max()) + 1, self.latent_dim), seed)
        noise = tf.gather(noise, noise_index)
        one_hot = tf.one_hot(codes, self.categories)
        return self.generate(tf.concat([noise, one_hot, tf.constant(continuous, tf.float32)], axis=-1))

    def get_config(self):
        return {
            **super().get_config(),
            "categories": self.categories,
            "continuous_codes": self.continuous_codes,
            "categorical_weight": self.categorical_weight,
            "continuous_weight": self.continuous_weight,
            "code_invariance": self.code_invariance,
            "clustering_weight": self.clustering_weight,
        }
