"""`synthblend-train` with its flags, which afterwards writes this process's final
weights to the .npz file named by $WEIGHTS_FILE: a non-chief worker writes nothing else, so
this is how `tests/test_distribute.py` compares the weights of every worker. The weights are
initialised from a fixed seed, as in every process it compares (the train command itself leaves
the initialisation random)."""

import os

import keras
import numpy as np

from synthblend.trainers import cli, loop, train


class RecordingTrainer(loop.Trainer):
    def train(self, train_steps):
        metrics = super().train(train_steps)
        np.savez(os.environ["WEIGHTS_FILE"], *self.model.get_weights())
        return metrics


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    train.Trainer = RecordingTrainer
    cli.launch("train")
