"""The one training loop. It knows nothing of GANs or VAEs.

A model brings `train_step(batch) -> dict`, `build_optimizers()`, `sample(num, seed)`,
`sampling_network` and `random_state()` (see `zoo.base.GenerativeModel`). The `Trainer` owns
everything around the step:

- one `tf.function` running `steps_per_call` steps per call, so the host is consulted once
  per call, not once per step (with `jit_compile`, each step inside it is compiled by XLA);
- the distribution strategy (the default one unless given), whose chief alone writes, and
  each worker's iterator over its shard of the data (`trainers.distribute`);
- a `tf.train.CheckpointManager` that saves every `checkpoint_every` steps and at the end, keeps
  the last `keep_checkpoints`, and resumes from the latest checkpoint in `model_dir`;
- an exponential moving average of the sampling network's weights, used for pictures;
- TensorBoard scalars and images, PNG pictures every `sample_every` steps from fixed noise (a
  fixed seed, so pictures are comparable over time), and a progress line;
- a stop with `TrainingError` when a metric becomes non-finite, before anything is saved, so the
  last good checkpoint stays the latest; and a save-and-stop on SIGTERM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from trainers import distribute
from zoo.registry import TrainingError

CHECKPOINT_FOLDER = "checkpoints"


@dataclasses.dataclass
class TrainerConfig:
    """How the loop runs; every interval is in steps."""

    steps_per_call: int = 100
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    sample_every: int = 1000
    num_pictured: int = 64
    picture_seed: int = 1234
    ema_decay: float = 0.0
    jit_compile: bool = False


class ExponentialMovingAverage:
    """Shadow copies of variables, `shadow <- d * shadow + (1 - d) * variable`.

    The decay warms up as `d = min(decay, (1 + n) / (10 + n))` after n updates (as
    `tf.train.ExponentialMovingAverage` does with `num_updates`), so early pictures are not
    dominated by the initial weights. `swapped()` puts the averages into the variables for the
    duration of a block.
    """

    def __init__(self, variables, decay: float):
        self.variables = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
        self.decay = decay
        # Every replica computes the same update from the same (all-reduced) weights; under a
        # strategy the first replica's is kept.
        first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates", aggregation=first)
        self.shadows = [
            tf.Variable(tf.convert_to_tensor(v), trainable=False, name="ema", aggregation=first) for v in self.variables
        ]

    def update(self):
        updates = tf.cast(self.updates.assign_add(1), tf.float32)
        decay = tf.minimum(self.decay, (1.0 + updates) / (10.0 + updates))
        for shadow, variable in zip(self.shadows, self.variables):
            shadow.assign(decay * shadow + (1.0 - decay) * tf.convert_to_tensor(variable))

    @contextlib.contextmanager
    def swapped(self):
        saved = [tf.identity(tf.convert_to_tensor(v)) for v in self.variables]
        for variable, shadow in zip(self.variables, self.shadows):
            variable.assign(shadow)
        try:
            yield
        finally:
            for variable, value in zip(self.variables, saved):
                variable.assign(value)


def checkpoint_of(model, ema_decay: float = 0.0):
    """The checkpoint of a training run of `model`, and its moving average (None if off).

    It holds the step, the model with its networks and optimizers, the state of every random
    stream, and the EMA shadows; the trainer saves it and `trainers.restore` reads it.
    """
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    ema = ExponentialMovingAverage(model.sampling_network.variables, ema_decay) if ema_decay > 0 else None
    checkpoint = tf.train.Checkpoint(
        step=step,
        model=model,
        random_state=model.random_state(),
        **({"ema": ema.shadows, "ema_updates": ema.updates} if ema else {}),
    )
    return checkpoint, ema


class Trainer:
    """Trains `model` on the batches of `dataset`, writing everything into `model_dir`.

    Args:
      model: a `zoo.base.GenerativeModel`, built inside `strategy.scope()`.
      dataset: an endless `tf.data.Dataset` of batches, distributed as it is; or a function
        `dataset_fn(input_context)` building each worker's dataset of per-replica batches (see
        `trainers.distribute.input_fn` and `worker_iterator`).
      model_dir: where checkpoints, TensorBoard events and pictures go.
      config: a `TrainerConfig`.
      picture: `picture(samples, path, columns)` draws model samples (a NumPy array in the
        model's range) into a PNG at `path`; None draws nothing.
      picture_examples: a fixed batch of real examples in the model's range, for pictures that
        show real data beside the model's (reconstructions).
      strategy: a `tf.distribute.Strategy`; the default strategy when None. Only its chief
        (`trainers.distribute.is_chief`) writes checkpoints, summaries and pictures.
      log: where progress lines go.
    """

    def __init__(
        self,
        model,
        dataset: tf.data.Dataset | Callable[[tf.distribute.InputContext], tf.data.Dataset],
        model_dir: str,
        config: TrainerConfig | None = None,
        *,
        picture: Callable[[np.ndarray, str, int], None] | None = None,
        picture_examples: dict | None = None,
        strategy: tf.distribute.Strategy | None = None,
        log: Callable[[str], None] = lambda line: print(line, flush=True),
    ):
        self.model = model
        self.model_dir = model_dir
        self.config = config or TrainerConfig()
        self.picture = picture
        self.picture_examples = picture_examples
        self.strategy = strategy or tf.distribute.get_strategy()
        self.log = log
        with self.strategy.scope():
            model.build_optimizers()
            checkpoint, self.ema = checkpoint_of(model, self.config.ema_decay)
        self.step = checkpoint.step
        self.is_chief = distribute.is_chief(self.strategy)
        self.iterator, self._share = distribute.worker_iterator(self.strategy, dataset)
        self.checkpoints = distribute.checkpoint_manager(
            self.strategy, checkpoint, os.path.join(model_dir, CHECKPOINT_FOLDER), self.config.keep_checkpoints
        )
        # XLA compiles the step itself; the loop around it pulls batches from the iterator,
        # which XLA cannot compile.
        self._step = self._replica_step
        if self.config.jit_compile:
            self._step = tf.function(self._replica_step, jit_compile=True)
        self._train = tf.function(self._steps)
        self._writer = tf.summary.create_file_writer(model_dir) if self.is_chief else tf.summary.create_noop_writer()
        self._stop_requested = False
        self.last_picture: str | None = None

    # -- the compiled part --------------------------------------------------------------------

    def _steps(self, iterator, num_steps):
        """Runs `num_steps` steps; returns each metric's mean over them."""

        def one_step():
            per_replica = self.strategy.run(self._step, args=(next(iterator),))
            return {
                name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                for name, value in per_replica.items()
            }

        # The first step runs outside the loop so that the sums start with the metrics' names.
        sums = one_step()
        for _ in tf.range(num_steps - 1):
            metrics = one_step()
            sums = {name: sums[name] + metrics[name] for name in sums}
        self.step.assign_add(tf.cast(num_steps, tf.int64))
        return {name: total / tf.cast(num_steps, total.dtype) for name, total in sums.items()}

    def _replica_step(self, batch):
        if self._share is not None:
            batch = self._share(batch)
        metrics = self.model.train_step(batch)
        if self.ema is not None:
            self.ema.update()
        return {name: tf.cast(value, tf.float32) for name, value in metrics.items()}

    # -- the host part ------------------------------------------------------------------------

    def restore(self) -> int:
        """Restores the latest checkpoint in `model_dir`, if any; returns the step reached."""
        latest = self.checkpoints.latest_checkpoint
        if latest:
            self.checkpoints.checkpoint.restore(latest).assert_existing_objects_matched()
            self.log(f"resumed from {latest} at step {int(self.step.numpy())}")
        return int(self.step.numpy())

    def train(self, train_steps: int) -> dict[str, float]:
        """Trains until step `train_steps`; returns the last metrics (empty if nothing ran)."""
        step = self.restore()
        if step >= train_steps:
            self.log(f"already at step {step} >= --train_steps={train_steps}; nothing to train")
            self.draw(step)
            return {}
        metrics: dict[str, float] = {}
        started, last_time, last_step = time.perf_counter(), time.perf_counter(), step
        with self._sigterm_saves():
            while step < train_steps:
                num_steps = self._steps_until_event(step, train_steps)
                metrics = {k: float(v) for k, v in self._train(self.iterator, tf.constant(num_steps)).items()}
                step += num_steps
                self._check_finite(metrics, step - num_steps, step)
                if step % self.config.log_every == 0 or step == train_steps:
                    now = time.perf_counter()
                    rate = (step - last_step) / max(now - last_time, 1e-9)
                    self._log_progress(step, train_steps, metrics, rate)
                    last_time, last_step = now, step
                if step % self.config.sample_every == 0 or step == train_steps:
                    self.draw(step)
                if step % self.config.checkpoint_every == 0 or step == train_steps:
                    self.checkpoints.save(checkpoint_number=step)
                if self._stop_requested:
                    self.checkpoints.save(checkpoint_number=step)
                    self.log(f"stopped by SIGTERM at step {step}; checkpoint saved, rerun to resume")
                    break
        self._writer.flush()
        elapsed = time.perf_counter() - started
        self.log(f"trained to step {step} in {elapsed:.1f}s")
        return metrics

    def _steps_until_event(self, step: int, train_steps: int) -> int:
        """Steps to run in the next call: at most `steps_per_call`, ending on any event step."""
        intervals = (self.config.log_every, self.config.sample_every, self.config.checkpoint_every)
        next_event = min(train_steps, *(step - step % n + n for n in intervals))
        return max(1, min(self.config.steps_per_call, next_event - step))

    def _check_finite(self, metrics, first, last):
        for name, value in metrics.items():
            if not math.isfinite(value):
                latest = self.checkpoints.latest_checkpoint or "none yet"
                raise TrainingError(
                    f"{name} became {value} between steps {first} and {last}; stopped without saving "
                    f"(last good checkpoint: {latest}); try a lower learning rate or another --loss"
                )

    def _log_progress(self, step, train_steps, metrics, rate):
        remaining = (train_steps - step) / rate if rate > 0 else float("inf")
        eta = time.strftime("%H:%M:%S", time.gmtime(remaining)) if math.isfinite(remaining) else "?"
        values = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.log(f"step {step}/{train_steps}  {values}  {rate:.1f} steps/s  ETA {eta}")
        with self._writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(name, value)
            tf.summary.scalar("steps_per_second", rate)

    # -- pictures -----------------------------------------------------------------------------

    def draw(self, step: int) -> str | None:
        """Draws the model's pictures from fixed noise (EMA weights when kept).

        Returns the path of the main sample picture; the others (interpolations, reconstructions,
        codes) go beside it as `<name>_step_NNNNNNN.png`.
        """
        if self.picture is None or not self.is_chief:
            return None
        with self.ema.swapped() if self.ema else contextlib.nullcontext():
            batches = self.model.pictures(self.config.num_pictured, self.config.picture_seed, self.picture_examples)
            batches = {name: (np.asarray(samples), columns) for name, (samples, columns) in batches.items()}
        folder = os.path.join(self.model_dir, "samples")
        os.makedirs(folder, exist_ok=True)
        for name, (samples, columns) in batches.items():
            prefix = "" if name == "samples" else f"{name}_"
            path = os.path.join(folder, f"{prefix}step_{step:07d}.png")
            self.picture(samples, path, columns)
            if name == "samples":
                self.last_picture = path
            image = tf.io.decode_png(tf.io.read_file(path), channels=3)
            with self._writer.as_default(step=step):
                tf.summary.image(name, image[None])
        return self.last_picture

    def evaluate(self, dataset: tf.data.Dataset, num_batches: int) -> dict[str, float]:
        """Means of `model.test_step` over `num_batches` batches (held-out metrics); also
        written to TensorBoard under `heldout/` at the current step."""
        step_function = tf.function(self.model.test_step)
        totals: dict[str, float] = {}
        count = 0
        for batch in dataset.take(num_batches):
            for name, value in step_function(batch).items():
                totals[name] = totals.get(name, 0.0) + float(value)
            count += 1
        metrics = {name: total / max(count, 1) for name, total in totals.items()}
        if metrics:
            with self._writer.as_default(step=int(self.step.numpy())):
                for name, value in metrics.items():
                    tf.summary.scalar(f"heldout/{name}", value)
            self._writer.flush()
        return metrics

    @contextlib.contextmanager
    def _sigterm_saves(self):
        """On SIGTERM, finish the current call, save and stop (signals only reach the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum, frame):
            self._stop_requested = True

        previous = signal.signal(signal.SIGTERM, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
