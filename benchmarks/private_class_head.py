"""How fast a private discriminator's class head learns the real classes, alone: the conditional
DCGAN's discriminator (width `--width`, layer norm, class head) trained on the `shapes` labels by
DP-SGD on its class term only, with no generator and no adversarial term.

    python benchmarks/private_class_head.py --learning_rate=2e-4 --noise_multiplier=0.675
    python benchmarks/private_class_head.py --learning_rate=2e-3 --noise_multiplier=0.675

Each step draws 256 training images at random, clips each one's gradient of the class loss
(weighted as `--classifier_weight` weighs it in the GAN) to norm 1, adds noise of
`--noise_multiplier` (0.675 is what (10, 1e-6)-DP over 1,500 such steps allows), and applies
Adam at `--learning_rate` and `--beta_1` (the class head's own layer at `--head_learning_rate`,
when given). Prints the class loss on the step's batch (chance for
four classes: 1.39) and the examples' mean gradient norm every 250 steps: what the class head of
a private GAN could learn at the most, since in the GAN it shares the clipped gradient and the
trunk with the adversarial term.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from synthblend import zoo
from synthblend.datasets import embedded
from synthblend.zoo import dpsgd, losses

STEPS = flags.DEFINE_integer("steps", 1000, "DP-SGD steps.", lower_bound=1)
LEARNING_RATE = flags.DEFINE_float("learning_rate", 2e-4, "Adam learning rate (the DCGAN recipe's: 2e-4).")
HEAD_LEARNING_RATE = flags.DEFINE_float(
    "head_learning_rate", None, "Adam learning rate of the class head's own layer, by a second optimizer "
    "(default: --learning_rate, one optimizer for all).")
BETA_1 = flags.DEFINE_float("beta_1", 0.5, "Adam beta_1 (the DCGAN recipe's: 0.5).")
NOISE = flags.DEFINE_float("noise_multiplier", 0.675, "Noise standard deviation over the clip norm (0: none).")
WIDTH = flags.DEFINE_integer("width", 8, "The discriminator's width.", lower_bound=1)
CLASSIFIER_WEIGHT = flags.DEFINE_float("classifier_weight", 5.0, "Weight of the class loss.")
flags.register_validator("learning_rate", lambda value: value > 0, "--learning_rate must be > 0")
flags.register_validator("head_learning_rate", lambda value: value is None or value > 0,
                         "--head_learning_rate must be > 0")
flags.register_validator("beta_1", lambda value: 0 <= value < 1, "--beta_1 must lie in [0, 1)")
flags.register_validator("noise_multiplier", lambda value: value >= 0, "--noise_multiplier must be >= 0")
flags.register_validator("classifier_weight", lambda value: value > 0, "--classifier_weight must be > 0")
BATCH = 256
EXAMPLES = 20000


def main(argv):
    del argv
    data = embedded.shapes(EXAMPLES, 0)
    images = data["x"].astype(np.float32) / 127.5 - 1.0
    labels = data["y"].astype(np.int32)
    model = zoo.get("dcgan")(data_shape=images.shape[1:], bounded=True, num_classes=4, conditional=True,
                             width=WIDTH.value, discriminator_norm="layer", classifier_weight=CLASSIFIER_WEIGHT.value,
                             seed=0)
    variables = model.discriminator_variables
    head = model.discriminator.get_layer("classifier").trainable_variables if HEAD_LEARNING_RATE.value else []
    trunk = [variable for variable in variables if all(variable is not other for other in head)]
    variables = trunk + head
    optimizers = [(keras.optimizers.Adam(LEARNING_RATE.value, beta_1=BETA_1.value), trunk)]
    if head:
        optimizers.append((keras.optimizers.Adam(HEAD_LEARNING_RATE.value, beta_1=BETA_1.value), head))
    for optimizer, group in optimizers:
        optimizer.build(group)
    clipping = dpsgd.Clipping(l2_norm_clip=1.0, noise_multiplier=NOISE.value)

    def loss(image, label):
        outputs = model._discriminate(image, label, training=True)
        return CLASSIFIER_WEIGHT.value * losses.classification_loss(label, outputs["class_logits"])

    @tf.function
    def step(image, label, seed):
        gradients, metrics = dpsgd.private_gradients(loss, (image, label), variables, clipping, seed)
        for optimizer, group in optimizers:
            optimizer.apply_gradients(zip(gradients[:len(group)], group))
            gradients = gradients[len(group):]
        outputs = model._discriminate(image, label, training=False)
        return losses.classification_loss(label, outputs["class_logits"]), metrics["gradient_norm"]

    generator = np.random.default_rng(0)
    started = time.perf_counter()
    for number in range(STEPS.value):
        index = generator.integers(0, EXAMPLES, BATCH)
        class_loss, norm = step(images[index], labels[index], tf.constant([number, 1]))
        if number % 250 == 0 or number == STEPS.value - 1:
            print(f"step {number + 1}: class loss {float(class_loss):.3f}, gradient norm {float(norm):.0f}, "
                  f"{time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    app.run(main)
