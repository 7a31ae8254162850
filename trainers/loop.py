"""The one training loop. It knows nothing of GANs or VAEs.

A model brings `train_step(batch) -> dict`, `build_optimizers()`, `sample(num, seed)`,
`sampling_network` and `random_state()` (see `zoo.base.GenerativeModel`). The `Trainer` owns
everything around the step:

- one `tf.function` running `steps_per_call` steps per call, so the host is consulted once
  per call, not once per step (with `jit_compile`, each step inside it is compiled by XLA);
- the distribution strategy (the default one unless given), whose chief alone writes, and
  each worker's iterator over its shard of the data (`trainers.distribute`);
- a `tf.train.CheckpointManager` that saves every `checkpoint_every` steps and at the end, keeps
  the last `keep_checkpoints`, and resumes from the newest readable checkpoint in `model_dir`
  (the step, the model, its optimizers and random streams, the EMA and the input iterator, or
  the position of batches drawn inside the step: `datasets.pipeline.BatchDraw`);
- an exponential moving average of the sampling network's weights, used for pictures;
- TensorBoard scalars and images, PNG pictures every `sample_every` steps from fixed noise (a
  fixed seed, so pictures are comparable over time), and a progress line;
- a stop with `TrainingError` when a metric becomes non-finite, before anything is saved, so the
  last good checkpoint stays the latest, or (`nan_policy="rollback"`) a return to that checkpoint
  past the failing batches; and a save-and-stop on SIGTERM or Ctrl-C within one step, ending in
  `lifecycle.Stopped` (on a multi-worker cluster, a SIGTERM to any worker makes every worker save
  at the same step and stop).
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

from synthblend.datasets import pipeline
from synthblend.trainers import distribute
from synthblend.trainers.lifecycle import Stopped, signal_name
from synthblend.trainers.progress import progress_bar
from synthblend.zoo.registry import TrainingError

CHECKPOINT_FOLDER = "checkpoints"
# Parts of a checkpoint that it may lack: checkpoints of pipelines that cannot be saved, or of
# runs without augmentation layers, or written before they were saved.
OPTIONAL_PARTS = ("iterator", "augmentation")


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
    nan_policy: str = "stop"
    max_rollbacks: int = 3
    progress: bool = False  # a progress bar (tqdm) beside the log lines


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
        self._input = dataset
        self.iterator, self._share = distribute.worker_iterator(self.strategy, dataset)
        # The input iterator is part of the run: a resumed run continues with the next batch
        # (its shuffle buffer included, or the position of batches drawn in the step) instead of
        # starting the data over. TensorFlow's distributed iterators (a TPU's) cannot be saved;
        # those runs resume the data afresh.
        if isinstance(self.iterator, (tf.data.Iterator, pipeline.BatchDraw)):
            checkpoint.iterator = self.iterator
        self.checkpoints = distribute.checkpoint_manager(
            self.strategy, checkpoint, os.path.join(model_dir, CHECKPOINT_FOLDER), self.config.keep_checkpoints
        )
        # The step is a function of its own, traced once and called at both of the loop's call
        # sites (inlined, it would be traced twice). XLA compiles the step itself; the loop around
        # it pulls batches from the iterator, which XLA cannot compile.
        self._step = tf.function(self._replica_step, jit_compile=True if self.config.jit_compile else None)
        self._train = tf.function(self._steps)
        self._skip = tf.function(self._skip_batches)
        self._writer = tf.summary.create_file_writer(model_dir) if self.is_chief else tf.summary.create_noop_writer()
        # Set from another thread on SIGTERM or SIGINT; the compiled loop checks it before every step.
        self._stop = tf.Variable(False, trainable=False, name="stop_requested")
        self._stopped_by: int | None = None
        self._rollbacks = 0
        self.last_picture: str | None = None

    # -- the compiled part --------------------------------------------------------------------

    def _steps(self, iterator, num_steps):
        """Runs up to `num_steps` steps, fewer when a stop is requested (SIGTERM) meanwhile.

        Returns the number of steps run and each metric's mean over them; the step counter
        advances by the steps run, so a save after a stop names the exact step reached.
        """

        def one_step():
            per_replica = self.strategy.run(self._step, args=(next(iterator),))
            self.step.assign_add(1)
            return {
                name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                for name, value in per_replica.items()
            }

        # The first step runs outside the loop so that the sums start with the metrics' names.
        sums = one_step()
        done = tf.constant(1)
        while done < num_steps and not self._stop:
            metrics = one_step()
            sums = {name: sums[name] + metrics[name] for name in sums}
            done += 1
        return done, {name: total / tf.cast(done, total.dtype) for name, total in sums.items()}

    def _skip_batches(self, iterator, num_batches):
        """Draws `num_batches` batches from `iterator` and drops them (moves a `BatchDraw` past them)."""
        if isinstance(iterator, pipeline.BatchDraw):
            iterator.skip(num_batches)
            return
        for _ in tf.range(num_batches):
            next(iterator)

    def _replica_step(self, batch):
        if self._share is not None:
            batch = self._share(batch)
        metrics = self.model.train_step(batch)
        if self.ema is not None:
            self.ema.update()
        return {name: tf.cast(value, tf.float32) for name, value in metrics.items()}

    # -- the host part ------------------------------------------------------------------------

    def restore(self) -> int:
        """Restores the newest readable checkpoint in `model_dir`, if any; returns the step reached.

        An unreadable newest checkpoint (truncated, garbage) is skipped with a warning naming it
        and the one used instead; when none can be read, TrainingError: the run never starts
        over silently on top of checkpoints it could not read.
        """
        candidates = list(reversed(self.checkpoints.checkpoints))
        for index, path in enumerate(candidates):
            try:
                self._restore_from(path)
            except (tf.errors.OpError, OSError, ValueError, IndexError, AssertionError) as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                following = candidates[index + 1] if index + 1 < len(candidates) else None
                if following is None:
                    raise TrainingError(
                        f"no checkpoint in {self.checkpoints.directory} can be read (the oldest, {path}: {reason}); "
                        "move the folder away to start over"
                    ) from None
                self.log(f"warning: checkpoint {path} cannot be read ({reason}); resuming from {following}")
                continue
            self.log(f"resumed from {path} at step {int(self.step.numpy())}")
            break
        return int(self.step.numpy())

    def _restore_from(self, path: str) -> None:
        """Restores checkpoint `path`, all of it but the optional parts it lacks (with a warning)."""
        checkpoint = self.checkpoints.checkpoint
        names = [name for name, _ in tf.train.list_variables(path)]
        saved = {name.split("/")[0] for name in names}
        missing = {part: getattr(checkpoint, part) for part in OPTIONAL_PARTS
                   if hasattr(checkpoint, part) and part not in saved}
        replaced = False
        if hasattr(checkpoint, "iterator") and "iterator" not in missing:
            # The state this input's iterator saves: a `BatchDraw`'s position, a `tf.data` iterator's state.
            state = "iterator/position/" if isinstance(checkpoint.iterator, pipeline.BatchDraw) else "iterator/.ATTRIBUTES/"
            try:
                if not any(name.startswith(state) for name in names):
                    raise tf.errors.NotFoundError(None, None, f"{path} holds no {state} state")
                tf.train.Checkpoint(iterator=checkpoint.iterator).read(path).expect_partial()
            except tf.errors.OpError:
                # Saved by another input pipeline (e.g. a shuffle buffer then, rows drawn by
                # position now): everything else is restored and the data order starts over
                # with a new iterator (the failed read leaves this one unusable). The saved
                # iterator is matched to an empty stand-in, which takes none of its state.
                self.iterator, self._share = distribute.worker_iterator(self.strategy, self._input)
                checkpoint.iterator, replaced = tf.Module(), True
        for part in missing:
            delattr(checkpoint, part)
        if replaced:
            missing["iterator"] = self.iterator
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        finally:
            for part, value in missing.items():
                setattr(checkpoint, part, value)
        if missing:
            self.log(f"warning: {path} holds no {' or '.join(missing)} state this input pipeline can read; the "
                     "data order starts over")

    def train(self, train_steps: int) -> dict[str, float]:
        """Trains until step `train_steps`; returns the last metrics (empty if nothing ran).

        A SIGTERM or Ctrl-C meanwhile saves the step reached and raises `lifecycle.Stopped`.
        """
        step = self.restore()
        self._stop.assign(False)
        if step >= train_steps:
            self.log(f"already at step {step} >= --train_steps={train_steps}; nothing to train")
            self.draw(step)
            return {}
        metrics: dict[str, float] = {}
        started, last_time, last_step = time.perf_counter(), time.perf_counter(), step
        enabled = self.config.progress and self.is_chief
        try:
            with self._signals_stop() as preemption, progress_bar(train_steps, "steps", enabled, step) as bar:
                while step < train_steps:
                    num_steps = self._steps_until_event(step, train_steps)
                    done, values = self._train(self.iterator, tf.constant(num_steps))
                    metrics = {k: float(v) for k, v in values.items()}
                    first, step = step, step + int(done)
                    if not self._finite(metrics, first, step):
                        step = self._roll_back(first, step)
                        bar.n = step
                        continue
                    bar.update(step - first)
                    if step % self.config.log_every == 0 or step == train_steps:
                        now = time.perf_counter()
                        rate = (step - last_step) / max(now - last_time, 1e-9)
                        self._log_progress(step, train_steps, metrics, rate)
                        last_time, last_step = now, step
                    if step % self.config.sample_every == 0 or step == train_steps:
                        self.draw(step)
                    # At the last step the run ends with its own save; a signal then changes nothing.
                    if bool(self._stop.numpy()) and step < train_steps:
                        self.save(step)
                        raise Stopped(f"stopped by {signal_name(self._stopped_by)} at step {step} of {train_steps}; "
                                      "checkpoint saved; run the same command again to resume", self._stopped_by)
                    if preemption is not None and step < train_steps and preemption.saved_at(step):
                        raise Stopped(f"stopped by SIGTERM to a worker at step {step} of {train_steps}; every "
                                      "worker saved; run the cluster again to resume")
                    if step % self.config.checkpoint_every == 0 or step == train_steps:
                        self.save(step)
        finally:
            self._writer.flush()
        elapsed = time.perf_counter() - started
        self.log(f"trained to step {step} in {elapsed:.1f}s")
        return metrics

    def save(self, step: int) -> None:
        """Saves a checkpoint at `step`; a failing write (disk full, permissions) is a TrainingError.

        `tf.train.CheckpointManager` writes the data and index files first and the `checkpoint`
        state file last, so a failed or interrupted save leaves the earlier checkpoints, and the
        state naming them, as they were.
        """
        try:
            try:
                self.checkpoints.save(checkpoint_number=step)
            except tf.errors.OpError as error:
                if "SerializeIterator" not in str(error) or not hasattr(self.checkpoints.checkpoint, "iterator"):
                    raise
                # A pipeline that cannot be saved (e.g. from a Python generator): save the rest.
                del self.checkpoints.checkpoint.iterator
                reason = str(error).strip().splitlines()[0]
                self.log(f"warning: the input pipeline cannot be checkpointed ({reason}); a resumed run "
                         "starts the data order over")
                self.checkpoints.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            earlier = self.checkpoints.latest_checkpoint or "none"
            raise TrainingError(
                f"saving the checkpoint of step {step} in {self.checkpoints.directory} failed ({reason}); "
                f"earlier checkpoints are intact (latest: {earlier}); free space or fix permissions and rerun"
            ) from None

    def _steps_until_event(self, step: int, train_steps: int) -> int:
        """Steps to run in the next call: at most `steps_per_call`, ending on any event step."""
        intervals = (self.config.log_every, self.config.sample_every, self.config.checkpoint_every)
        next_event = min(train_steps, *(step - step % n + n for n in intervals))
        return max(1, min(self.config.steps_per_call, next_event - step))

    def _finite(self, metrics, first, last) -> bool:
        """Whether every metric is finite; with `nan_policy="stop"` a non-finite one is a TrainingError."""
        for name, value in metrics.items():
            if math.isfinite(value):
                continue
            latest = self.checkpoints.latest_checkpoint or "none yet"
            if self.config.nan_policy == "rollback":
                self.log(f"{name} became {value} between steps {first} and {last}")
                return False
            raise TrainingError(
                f"{name} became {value} between steps {first} and {last}; stopped without saving "
                f"(last good checkpoint: {latest}); try a lower learning rate, another --loss "
                "or --nan_policy=rollback"
            )
        return True

    def _roll_back(self, first: int, last: int) -> int:
        """Reloads the last good checkpoint and moves past the batches and noise that failed.

        The iterator skips the batches drawn since that checkpoint and every random stream is
        re-seeded with the rollback count, so the retried steps see other data and other noise.
        Returns the step restored; TrainingError after `max_rollbacks` rollbacks or when there
        is no checkpoint to go back to.
        """
        latest = self.checkpoints.latest_checkpoint
        self._rollbacks += 1
        if latest is None or self._rollbacks > self.config.max_rollbacks:
            why = "no checkpoint to roll back to" if latest is None else f"{self.config.max_rollbacks} rollbacks done"
            raise TrainingError(
                f"training became non-finite between steps {first} and {last} and {why} "
                f"(--max_rollbacks={self.config.max_rollbacks}); try a lower learning rate or another --loss"
            )
        step = self.restore()
        self._skip(self.iterator, tf.constant(last - step, tf.int64))
        for state in self.model.random_state():
            state.assign_add(tf.constant([self._rollbacks, 0], state.dtype) * 1_000_003)
        self.log(
            f"rolled back to step {step} ({self._rollbacks}/{self.config.max_rollbacks}); "
            f"skipped the {last - step} batches up to step {last} and re-seeded the random streams"
        )
        return step

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
    def _signals_stop(self):
        """On SIGTERM or Ctrl-C (SIGINT), stop after the step running and save (the loop then
        raises `Stopped`); yields the cluster's `distribute.ClusterPreemption` under
        MultiWorkerMirroredStrategy, else None. A second Ctrl-C interrupts at once.

        A Python signal handler runs only between bytecodes, that is after the whole compiled
        call of `steps_per_call` steps. So the handler's wake-up byte goes to a pipe that a
        thread watches; the thread sets the stop variable that the compiled loop checks before
        every step. Signals only reach the main thread: elsewhere nothing is installed.

        On a multi-worker cluster no worker may stop on its own (the others would wait for it in
        the next collective step), so the stop variable stays unset: TensorFlow's preemption
        handler makes the whole cluster save after the call following the signal's (at most
        2 x `steps_per_call` steps later) and the loop then ends on every worker.
        """
        self._stopped_by = None
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            with distribute.cluster_preemption(self.strategy, self.save, self.checkpoints.directory) as preemption:
                yield preemption
            return
        if threading.current_thread() is not threading.main_thread():
            yield None
            return
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        stopping = (signal.SIGTERM, signal.SIGINT)

        def watch():
            while True:
                received = os.read(read_end, 64)
                if not received:  # the write end closed: training is over
                    return
                for number in received:
                    if number in stopping:
                        self._stopped_by = self._stopped_by or number
                        self._stop.assign(True)

        handled = []

        def request_stop(signum, frame):
            self._stopped_by = self._stopped_by or signum
            self._stop.assign(True)
            handled.append(signum)
            if signum == signal.SIGINT and handled.count(signal.SIGINT) > 1:
                raise KeyboardInterrupt

        watcher = threading.Thread(target=watch, name="signal-watcher", daemon=True)
        watcher.start()
        previous_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        previous = {number: signal.signal(number, request_stop) for number in stopping}
        try:
            yield None
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(write_end)
            watcher.join(timeout=5)
            os.close(read_end)
