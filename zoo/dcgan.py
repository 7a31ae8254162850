"""`dcgan`: deep convolutional GAN (Radford et al. 2015) for 28x28, 32x32 and 64x64 images."""

from __future__ import annotations

from synthblend.zoo import networks
from synthblend.zoo.base import AdversarialModel
from synthblend.zoo.registry import MODELS, UsageError


@MODELS.register("dcgan")
class DCGAN(AdversarialModel):
    """DCGAN: transposed-convolution generator, strided-convolution discriminator.

    Args:
      data_shape: `(S, S, C)` with S in 28, 32, 64 and C in 1, 3.
      width: channels of the discriminator's first convolution and of the generator's last
        hidden one; each resolution step doubles (discriminator) or halves (generator) them.
      discriminator_depth: stride-2 convolutions of the discriminator (default: as many as the
        generator upsamples, 2 at 28x28; one more lets its features see a whole 28x28 shape).
      discriminator_norm: `batch` (as in the paper), `layer` (required with a gradient
        penalty, which batch statistics would break) or `none`.
      **kwargs: see `AdversarialModel` and `GenerativeModel`.

    Example:

    ```python
    model = DCGAN(data_shape=(28, 28, 1), width=32)
    images = model.sample(64, seed=0)   # (64, 28, 28, 1) in [-1, 1]
    ```

    Reference: Radford, Metz and Chintala, "Unsupervised Representation Learning with Deep
    Convolutional Generative Adversarial Networks", ICLR 2016.
    """

    def __init__(self, data_shape, latent_dim=100, width=64, discriminator_depth=None, discriminator_norm="batch",
                 **kwargs):
        self.check_data(tuple(data_shape), kwargs.get("num_classes", 0))
        if width <= 0:
            raise UsageError(f"width={width} must be a positive integer")
        if discriminator_norm not in networks.NORMS:
            raise UsageError(
                f"discriminator_norm {discriminator_norm!r} is not one of {', '.join(networks.NORMS)}"
            )
        if discriminator_norm == "batch" and kwargs.get("loss") == "wasserstein_gp":
            raise UsageError("loss wasserstein_gp needs --discriminator_norm=layer or none, not batch")
        deepest = networks.max_trunk_depth(data_shape[0])
        if discriminator_depth is not None and not 1 <= discriminator_depth <= deepest:
            raise UsageError(f"discriminator_depth={discriminator_depth} is not in 1..{deepest} for {data_shape[0]}x"
                             f"{data_shape[0]} images")
        self.width = int(width)
        self.discriminator_depth = None if discriminator_depth is None else int(discriminator_depth)
        self.discriminator_norm = discriminator_norm
        super().__init__(data_shape, latent_dim=latent_dim, **kwargs)

    @classmethod
    def check_data(cls, shape, num_classes):
        if not networks.supports_dcgan(shape):
            raise UsageError(
                f"{cls.__name__.lower()} takes {networks.dcgan_shapes()}, not data of shape {tuple(shape)}"
                " (use --model=gan for vectors, or --image_size to resize images)"
            )

    def build_generator_body(self, input_dim):
        return networks.dcgan_body(
            input_dim, self.data_shape, self.width, name="generator_body", output_activation=self.output_activation
        )

    def build_discriminator_trunk(self):
        return networks.dcgan_trunk(
            self.data_shape, self.width, norm=self.discriminator_norm, depth=self.discriminator_depth
        )

    def private_remedy(self):
        return "use --discriminator_norm=layer, spectral or none"

    def get_config(self):
        return {**super().get_config(), "width": self.width, "discriminator_depth": self.discriminator_depth,
                "discriminator_norm": self.discriminator_norm}
