"""`gan`: the original generative adversarial network (Goodfellow et al. 2014) with MLPs.

For vector data (2-D points, table rows) and, flattened, for small images.
"""

from __future__ import annotations

from zoo import networks
from zoo.base import AdversarialModel
from zoo.registry import MODELS, UsageError


@MODELS.register("gan")
class GAN(AdversarialModel):
    """GAN with a multilayer-perceptron generator and discriminator.

    Args:
      data_shape: shape of one example; images are flattened for the discriminator and the
        generator's output is reshaped to it.
      width: units of each hidden layer.
      depth: number of hidden layers in each network.
      latent_dim, loss, generator_learning_rate, discriminator_learning_rate: as in
        `AdversarialModel`, with defaults that cover all 8 modes of the `ring` toy (the hinge
        loss; a vanilla non-saturating MLP GAN famously collapses onto a few modes there).
      **kwargs: see `AdversarialModel` (losses, optimizers, conditioning) and `GenerativeModel`.

    Example:

    ```python
    model = GAN(data_shape=(2,), bounded=False, width=128)
    model.build_optimizers()
    metrics = model.train_step({"x": tf.random.normal((64, 2))})
    points = model.sample(16, seed=1)   # (16, 2), standardised data space
    ```

    Reference: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
    """

    def __init__(self, data_shape, width=128, depth=3, latent_dim=16, loss="hinge", generator_learning_rate=1e-3,
                 discriminator_learning_rate=1e-3, **kwargs):
        if width <= 0 or depth <= 0:
            raise UsageError(f"width={width} and depth={depth} must be positive integers")
        self.width = int(width)
        self.depth = int(depth)
        super().__init__(
            data_shape, latent_dim=latent_dim, loss=loss, generator_learning_rate=generator_learning_rate,
            discriminator_learning_rate=discriminator_learning_rate, **kwargs,
        )

    def build_generator_body(self, input_dim):
        return networks.mlp_body(
            input_dim, [self.width] * self.depth, self.data_shape, name="generator_body",
            output_activation=self.output_activation,
        )

    def build_discriminator_trunk(self):
        return networks.mlp_trunk(self.data_shape, [self.width] * self.depth, name="discriminator_trunk")

    def get_config(self):
        return {**super().get_config(), "width": self.width, "depth": self.depth}
