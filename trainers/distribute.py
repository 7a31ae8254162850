"""Where training runs: the `tf.distribute` strategy, who the chief is, and the precision policy.

- `default`: one device, TensorFlow's default strategy.
- `mirrored`: every local device (GPUs, or the logical CPUs configured) holds a replica;
  gradients are summed across them each step.
- `multi_worker`: `MultiWorkerMirroredStrategy`, one process per machine (or per local worker),
  the cluster described by the `TF_CONFIG` environment variable of each process.
- `tpu`: `TPUStrategy` on the TPU found by `TPUClusterResolver` (`--tpu`: its name or address).

`--batch_size` is the global batch: each of the `num_replicas_in_sync` replicas takes an equal
share, each worker reads its own shard of the data (`input_fn`), and the models average their
losses over the global batch (`zoo.base.apply_gradients`), so one step on several replicas is the
step one device would take on the whole batch (batch-norm statistics excepted: they are per
replica).

Only the chief writes checkpoints, summaries, pictures and records. MultiWorkerMirrored saving is
collective, so the other workers save too, into a temporary folder they delete right after
(`worker_checkpoints`), and read the chief's checkpoints to resume.

A SIGTERM to any worker of a multi-worker cluster makes every worker save at the same step and
stop (`ClusterPreemption`, TensorFlow's `PreemptionCheckpointHandler`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import threading
from typing import Callable

import keras
import tensorflow as tf

from synthblend.datasets import pipeline
from synthblend.zoo.registry import DataError, UsageError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def strategy_for(name: str, tpu: str = "") -> tf.distribute.Strategy:
    """The strategy called `name` (one of STRATEGIES); UsageError/DataError in one line."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        cluster_resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster_resolver)
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DataError(f"--strategy=tpu found no TPU at --tpu={tpu!r} ({first_line})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise UsageError(f"--strategy={name!r} is not one of {', '.join(STRATEGIES)}")


TF_CONFIG_JOBS = ("chief", "worker")  # the jobs MultiWorkerMirroredStrategy runs
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


def check_tf_config(text: str | None) -> dict:
    """The parsed TF_CONFIG of a multi-worker process; UsageError naming what is wrong."""
    example = '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
    if not text:
        raise UsageError(f"--strategy=multi_worker needs the TF_CONFIG environment variable, e.g. {example}")
    shown = text if len(text) <= 200 else text[:200] + "..."

    def invalid(why: str) -> UsageError:
        return UsageError(f"TF_CONFIG={shown!r} is not valid: {why}; expected e.g. {example}")

    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise invalid(f"not JSON ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
    if not isinstance(config, dict):
        raise invalid(f"a JSON {type(config).__name__}, not an object")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or "worker" not in cluster:
        raise invalid('no "cluster" object with a "worker" job')
    for job, addresses in cluster.items():
        if job not in TF_CONFIG_JOBS:
            raise invalid(f"job {job!r} in the cluster; accepted jobs: {', '.join(TF_CONFIG_JOBS)}")
        if not isinstance(addresses, list) or not addresses:
            raise invalid(f"job {job!r} is not a list of \"host:port\" addresses")
        for address in addresses:
            match = _ADDRESS.fullmatch(address) if isinstance(address, str) else None
            if match is None or not 1 <= int(match.group(2)) <= 65535:
                raise invalid(f"{address!r} of job {job!r} is not a \"host:port\" address (port 1..65535)")
    if len(cluster.get("chief", [])) > 1:
        raise invalid(f"{len(cluster['chief'])} chiefs; a cluster has at most one")
    everyone = [address for addresses in cluster.values() for address in addresses]
    twice = sorted({address for address in everyone if everyone.count(address) > 1})
    if twice:
        raise invalid(f"address {twice[0]!r} is given to two tasks")
    if not isinstance(task, dict):
        raise invalid('no "task" object naming this process\'s job and index')
    task_type, index = task.get("type"), task.get("index")
    if not isinstance(task_type, str) or task_type not in cluster:
        raise invalid(f"task type {task_type!r} is not a job of the cluster ({', '.join(cluster)})")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise invalid(f"task {task_type}:{index} is not in the cluster, whose {task_type} job has indices "
                      f"0..{len(cluster[task_type]) - 1}")
    return config


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes: always, except on the workers of a multi-worker cluster
    other than the chief (the `chief` task, or worker 0 when the cluster has none)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type in (None, "chief") or (not has_chief and task_type == "worker" and task_id == 0)


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This process's index among the workers (0 outside a multi-worker cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return 0
    return int(resolver.task_id or 0)


def per_replica_batch(strategy: tf.distribute.Strategy, batch_size: int) -> int:
    """`batch_size` (global) split over the replicas; UsageError unless it divides evenly."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UsageError(
            f"--batch_size={batch_size} is the global batch and must be a multiple of the "
            f"{replicas} replicas in sync (e.g. {replicas * max(1, batch_size // replicas)})"
        )
    return batch_size // replicas


class Shard:
    """This worker's share of the data: `shard(dataset)` keeps every `count`-th example from the
    `index`-th (a stream is split by example); a stream drawn by position is split by batch
    instead (`datasets.pipeline.positional_batches` reads `index` and `count`)."""

    def __init__(self, index: int, count: int, replicas: int = 1):
        self.index, self.count, self.replicas = index, count, replicas  # replicas: of this worker

    def __call__(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        return dataset if self.count == 1 else dataset.shard(self.count, self.index)


def input_fn(build, global_batch_size: int):
    """A `dataset_fn(input_context)` for `strategy.distribute_datasets_from_function`.

    `build(shard, batch_size)` builds the batched dataset of one worker: `shard(dataset)` takes
    this worker's share of the raw (unbatched, unshuffled) examples, and `batch_size` is the
    per-replica batch.
    """

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = Shard(input_context.input_pipeline_id, input_context.num_input_pipelines,
                      max(1, input_context.num_replicas_in_sync // input_context.num_input_pipelines))
        return build(shard, input_context.get_per_replica_batch_size(global_batch_size))

    return dataset_fn


def worker_iterator(strategy: tf.distribute.Strategy, dataset):
    """This worker's iterator over `dataset`, and the function each replica applies to what it
    yields to take its own share (None: the strategy hands each replica its share itself).

    `dataset` is a `tf.data.Dataset` of global batches (split by the strategy), or a
    `dataset_fn(input_context)` (see `input_fn`) building this worker's per-replica batches.
    TensorFlow's distributed iterators cannot be checkpointed, so on CPUs and GPUs the worker's
    dataset is iterated by a plain `tf.data` iterator (which can: exact resume saves it) over
    groups of one per-replica batch per local replica, in the order
    `distribute_datasets_from_function` would hand them out; each replica takes its batch from
    the group. A TPU gets `distribute_datasets_from_function`'s iterator. On one replica, the
    batches of rows that the pipeline gathers a batch at a time come from a `pipeline.BatchDraw`,
    which the step calls like an iterator and which draws them inside it.
    """
    replicas = strategy.num_replicas_in_sync
    tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    if replicas == 1 and not tpu:
        # One replica: rows drawn by position are drawn inside the step (`pipeline.BatchDraw`).
        batches = dataset if isinstance(dataset, tf.data.Dataset) else dataset(tf.distribute.InputContext())
        draw = pipeline.batch_draw(batches)
        if draw is not None:
            return draw, None
        if not isinstance(dataset, tf.data.Dataset):
            return iter(batches), None
    if isinstance(dataset, tf.data.Dataset):
        return iter(strategy.experimental_distribute_dataset(dataset)), None
    if tpu:
        return iter(strategy.distribute_datasets_from_function(dataset)), None
    local = len(strategy.extended.worker_devices)
    batches = dataset(tf.distribute.InputContext(replicas // local, worker_index(strategy), replicas))
    first = worker_index(strategy) * local

    def share(group):
        index = tf.distribute.get_replica_context().replica_id_in_sync_group - first
        return tf.nest.map_structure(lambda tensor: tf.gather(tensor, index), group)

    return iter(batches.batch(local, drop_remainder=True)), share


class WorkerCheckpoints:
    """The checkpoint manager of a non-chief worker: reads the chief's checkpoints (to resume
    where the cluster is) and saves, since saving is collective, into a temporary folder that it
    deletes at once. Anything else is answered by the chief's manager."""

    def __init__(self, checkpoint, directory, max_to_keep, temporary_directory):
        self._chief = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
        self._temporary = tf.train.CheckpointManager(checkpoint, temporary_directory, max_to_keep=1)
        self._temporary_directory = temporary_directory

    def save(self, checkpoint_number=None, **kwargs):
        path = self._temporary.save(checkpoint_number=checkpoint_number, **kwargs)
        shutil.rmtree(self._temporary_directory, ignore_errors=True)
        return path

    @property
    def latest_checkpoint(self):
        """The chief's newest checkpoint as its state file names it now (the chief's manager
        object here never saves, so its own record would stay at what it found on start)."""
        return tf.train.latest_checkpoint(self._chief.directory)

    def __getattr__(self, name):
        return getattr(self._chief, name)


def checkpoint_manager(strategy, checkpoint, directory: str, max_to_keep: int):
    """The manager saving `checkpoint` into `directory` on the chief (see `WorkerCheckpoints`)."""
    if is_chief(strategy):
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
    temporary = os.path.join(os.path.dirname(directory.rstrip("/")), f".worker_{worker_index(strategy)}_checkpoints")
    return WorkerCheckpoints(checkpoint, directory, max_to_keep, temporary)


class ClusterPreemption:
    """A SIGTERM to any worker of a multi-worker cluster makes every worker save at the same step.

    `tf.distribute.experimental.PreemptionCheckpointHandler` decides when: it installs its own
    SIGTERM handler, and the worker signalled publishes, through the cluster's coordination
    service, the call after which all save (the one after the call running, so all workers are
    still taking part in it); every worker then calls `save(step)` there, which is collective.
    The handler counts calls, not steps, so a call may hold several steps; every worker makes the
    same calls, since the steps of each call follow from the step reached alone.

    The handler restores its manager's newest checkpoint and adds its call counter to that
    manager's checkpoint. Given a manager of its own, over an empty checkpoint and a folder that
    does not exist, it only decides when the cluster saves: the trainer's checkpoint (and what a
    resumed run reads, with its fallback past unreadable checkpoints) stays as it is, and the
    count starts at 0 in every process of each run, which is all the workers need to agree.
    Its exit function only records the stop: the trainer ends the run as on one machine.

    The keys it leaves in the coordination service outlive it, so it serves one training run of
    the cluster's processes (`trainers.train` trains once per process): a second one in the same
    processes would not learn of a peer's signal.
    """

    def __init__(self, strategy: tf.distribute.Strategy, save: Callable[[int], None], checkpoint_directory: str):
        self.stopped = False
        unused = tf.train.CheckpointManager(
            tf.train.Checkpoint(), os.path.join(checkpoint_directory, "unused-by-preemption-handler"), max_to_keep=1
        )
        config = tf.distribute.experimental.TerminationConfig(exit_fn=self._stop, save_fn=save)
        self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            strategy.cluster_resolver, unused, termination_config=config
        )

    def _stop(self):
        self.stopped = True

    def saved_at(self, step: int) -> bool:
        """After every call: whether the cluster saved at `step` and must stop (a worker was
        signalled). Every worker calls it after the same calls, with the same `step`."""
        self._handler.save_checkpoint_if_preempted(step)
        return self.stopped

    def close(self):
        """Stops the handler's watcher threads (it does so itself after a save for preemption).
        The thread waiting for a peer's signal holds the handler, so it is never collected, and
        `__del__`, the handler's own clean-up, would not run."""
        self._handler._stop_poll_termination_signal_thread()
        self._handler._stop_cluster_wise_termination_watcher_thread()


@contextlib.contextmanager
def cluster_preemption(strategy: tf.distribute.Strategy, save: Callable[[int], None], checkpoint_directory: str):
    """A `ClusterPreemption` for the duration of a block, or None outside the main thread (where
    no signal handler can be installed); the previous SIGTERM handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous = signal.getsignal(signal.SIGTERM)
    preemption = ClusterPreemption(strategy, save, checkpoint_directory)
    try:
        yield preemption
    finally:
        preemption.close()
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def precision(name: str):
    """Layers built inside compute in `name`'s dtype (variables stay float32); the previous
    global policy comes back afterwards, so it never leaks into what is built later. The models
    keep their final layers (outputs, logits, VAE heads, Q head) in float32."""
    if name not in PRECISIONS:
        raise UsageError(f"--precision={name!r} is not one of {', '.join(PRECISIONS)}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
