"""Training on several replicas and workers (`trainers.distribute`), and mixed precision."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from synthblend.trainers import distribute
from synthblend.zoo.registry import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One step on two replicas equals one device's step on the same global batch up to float32
# summation order; without the 1/num_replicas loss average the weights differ by 0.05 to 1.5.
TOLERANCE = 1e-5


def python(*argv, env=None, timeout=240):
    environment = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def test_mirrored_steps_on_two_cpus_equal_one_device():
    # ~30-60 s: its own process, since the two logical CPUs must exist before TensorFlow starts.
    result = python(os.path.join(ROOT, "tests", "mirrored_check.py"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    for case in ("gan", "gan_gp_conditional_ac", "vae"):
        assert report[case]["max_change"] > 1e-3, case  # the steps did move the weights
        assert report[case]["max_difference"] < TOLERANCE, (case, report[case])
    assert report["noise"] == {"replicas_differ": True, "equals_one_device": True}
    assert report["iterator_resumes"]


@pytest.mark.parametrize("text, named", [
    (None, "needs the TF_CONFIG"),
    ("{not json", "is not valid"),
    ('{"cluster": {"worker": ["localhost:1"]}}', "is not valid"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}', "worker:3 is not in"),
])
def test_bad_tf_config_is_one_usage_line(text, named):
    with pytest.raises(UsageError, match=named) as error:
        distribute.check_tf_config(text)
    assert "\n" not in str(error.value)


def test_global_batch_must_divide_over_replicas():
    class Two:
        num_replicas_in_sync = 2

    assert distribute.per_replica_batch(Two(), 8) == 4
    with pytest.raises(UsageError, match="--batch_size=7 is the global batch"):
        distribute.per_replica_batch(Two(), 7)


def test_one_process_is_the_chief():
    import tensorflow as tf

    assert distribute.is_chief(tf.distribute.get_strategy())
    assert distribute.worker_index(tf.distribute.get_strategy()) == 0


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("localhost", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


# Tiny gan on `ring`: the two workers' per-replica batches of 4 (the first and the second half
# of each global batch of the data's permutation) make up, step by step, the same 8 examples as
# one process's batch of 8, in another order that an unconditional MLP GAN's losses (means over the
# batch, no batch norm) do not depend on; the noise is the same rows (zoo.streams).
WORKER_FLAGS = ["--model=gan", "--dataset=ring", "--width=8", "--depth=1", "--latent_dim=4", "--batch_size=8",
                "--train_steps=3", "--steps_per_call=1", "--log_every=1",
                "--sample_every=3", "--checkpoint_every=3", "--eval_split=none"]


def test_two_workers_on_localhost_agree_with_one_process(tmp_path):
    # 16 s here, up to 70 s when the two cores are busy: three TensorFlow processes, two of them
    # talking over gRPC.
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "WEIGHTS_FILE": str(tmp_path / f"worker{index}.npz")}
        argv = [os.path.join(ROOT, "tests", "worker_train.py"), *WORKER_FLAGS, "--strategy=multi_worker",
                f"--model_dir={tmp_path / f'worker{index}'}"]
        workers.append(subprocess.Popen([sys.executable, *argv], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT,
                                         **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [worker.communicate(timeout=240) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    single = python(os.path.join(ROOT, "tests", "worker_train.py"), *WORKER_FLAGS, "--strategy=default",
                    f"--model_dir={tmp_path / 'single'}", env={"WEIGHTS_FILE": str(tmp_path / "single.npz")})
    assert single.returncode == 0, single.stderr[-3000:]

    def weights(name):
        with np.load(tmp_path / f"{name}.npz") as file:
            return [file[key] for key in sorted(file.files, key=lambda key: int(key.split("_")[1]))]

    chief, other, reference = weights("worker0"), weights("worker1"), weights("single")
    assert all(np.array_equal(a, b) for a, b in zip(chief, other))  # all-reduced: bit-identical
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(chief, reference)) < TOLERANCE
    # The chief wrote its run; the other worker nothing at all (its collective saves went to a
    # temporary folder it deleted).
    assert os.path.exists(tmp_path / "worker0" / "checkpoints" / "ckpt-3.index")
    assert os.path.exists(tmp_path / "worker0" / "samples" / "step_0000003.png")
    written = [os.path.join(folder, name) for folder, _, names in os.walk(tmp_path / "worker1") for name in names]
    assert written == []


@pytest.mark.parametrize("name, arguments", [
    ("dcgan", dict(data_shape=(28, 28, 1), width=4, latent_dim=8)),
    ("infogan", dict(data_shape=(28, 28, 1), width=4, latent_dim=8, categories=3, continuous_codes=1)),
    ("vae", dict(data_shape=(28, 28, 1), width=4, latent_dim=3)),
    ("gan", dict(data_shape=(2,), bounded=False, width=8, depth=1, latent_dim=4, loss="wasserstein_gp")),
])
def test_bfloat16_trains_with_float32_variables_and_outputs(name, arguments):
    import keras
    import tensorflow as tf

    from synthblend import zoo

    with distribute.precision("mixed_bfloat16"):
        model = zoo.get(name)(**arguments)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored, no leak
    model.build_optimizers()
    shape = model.data_shape
    batch = {"x": tf.random.uniform((4, *shape), -1.0, 1.0), "y": tf.zeros((4,), tf.int64)}
    step = tf.function(model.train_step)
    for _ in range(3):
        metrics = step(batch)
    assert all(np.isfinite(float(value)) for value in metrics.values()), metrics
    assert model.sample(2, seed=1).dtype == tf.float32
    assert {variable.dtype for variable in model.variables if "float" in str(variable.dtype)} == {"float32"}
    compute = {layer.compute_dtype for network in (model.sampling_network,) for layer in network._flatten_layers()}
    assert "bfloat16" in compute  # the hidden layers do compute in bfloat16


def test_float16_scales_the_loss():
    import keras
    import tensorflow as tf

    from synthblend import zoo

    with distribute.precision("mixed_float16"):
        model = zoo.get("gan")(data_shape=(2,), bounded=False, width=8, depth=1, latent_dim=4)
    assert isinstance(model.generator_optimizer, keras.optimizers.LossScaleOptimizer)
    model.build_optimizers()
    metrics = tf.function(model.train_step)({"x": tf.random.normal((4, 2))})
    assert all(np.isfinite(float(value)) for value in metrics.values())


def test_unknown_precision_is_a_usage_error():
    with pytest.raises(UsageError, match="--precision='float8' is not one of float32, mixed_bfloat16"):
        with distribute.precision("float8"):
            pass


@pytest.mark.parametrize("flags, environment, status, named", [
    (["--strategy=multi_worker"], None, 2, ["TF_CONFIG"]),
    (["--strategy=multi_worker"], "[1, 2]", 2, ["TF_CONFIG='[1, 2]'", "is not valid"]),
    (["--strategy=mirorred"], None, 2, ["mirorred", "multi_worker"]),
    (["--precision=float8"], None, 2, ["float8", "mixed_bfloat16"]),
])
def test_bad_distribution_flags_are_one_line(tmp_path, monkeypatch, flags, environment, status, named):
    from conftest import run_tool

    from synthblend.trainers import train

    if environment is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", environment)
    model_dir = tmp_path / "run"
    code, out, err = run_tool(train.main, "--model=gan", "--dataset=ring", f"--model_dir={model_dir}", *flags)
    assert code == status, err
    message = err.strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert all(part in message for part in named), message
    assert not model_dir.exists()


def test_a_worker_reports_the_chiefs_newest_checkpoint(tmp_path):
    checkpoint = tf.train.Checkpoint(value=tf.Variable(1.0))
    folder = str(tmp_path / "checkpoints")
    worker = distribute.WorkerCheckpoints(checkpoint, folder, 3, str(tmp_path / ".worker_1_checkpoints"))
    assert worker.latest_checkpoint is None
    chief = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=3)
    chief.save(checkpoint_number=5)
    assert worker.latest_checkpoint == os.path.join(folder, "ckpt-5")
    assert worker.save(checkpoint_number=5) and not os.path.exists(tmp_path / ".worker_1_checkpoints")


def test_a_run_is_not_continued_in_another_precision(tmp_path):
    from conftest import run_tool

    from synthblend.trainers import train

    model_dir = tmp_path / "run"
    command = ["--model=gan", "--dataset=ring", f"--model_dir={model_dir}", "--train_steps=1", "--width=8",
               "--depth=1", "--latent_dim=4", "--batch_size=16", "--steps_per_call=1", "--eval_split=none"]
    code, _, err = run_tool(train.main, *command)
    assert code == 0, err
    before = sorted(os.listdir(model_dir / "checkpoints"))
    code, _, err = run_tool(train.main, *command, "--precision=mixed_bfloat16", "--train_steps=2")
    assert code == 2 and "precision='float32' there, 'mixed_bfloat16' now" in err, err
    assert sorted(os.listdir(model_dir / "checkpoints")) == before


def start_workers(tmp_path, flags, name):
    """Two `trainers.train --strategy=multi_worker` processes on localhost sharing one model_dir
    (as on a shared file system); their output goes to `<name>_worker<i>.log`."""
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workers, logs = [], []
    for index in range(2):
        env = {**os.environ, "PYTHONPATH": ROOT,
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        log = tmp_path / f"{name}_worker{index}.log"
        with open(log, "w") as output:
            workers.append(subprocess.Popen([sys.executable, "-m", "synthblend", "train", *flags, "--strategy=multi_worker",
                                             f"--model_dir={tmp_path / 'run'}"], cwd=ROOT, env=env, stdout=output,
                                            stderr=subprocess.STDOUT, text=True))
        logs.append(log)
    return workers, logs


# Signalling the chief, or both workers (a whole cluster preempted), takes the same path as
# signalling the other worker: the handler announces the save to the cluster whoever got the
# signal, and a second claim is refused by the coordination service and ignored. They are slow
# only for the 25 s each would add to the default run.
@pytest.mark.parametrize("signalled", [(1,), pytest.param((0,), marks=pytest.mark.slow),
                                       pytest.param((0, 1), marks=pytest.mark.slow)],
                         ids=["other", "chief", "both"])
def test_sigterm_to_workers_saves_the_cluster_at_one_step_and_resumes(tmp_path, signalled):
    # ~25 s each here: two runs of two TensorFlow processes talking over gRPC. The signalled
    # workers' SIGTERM handler is TensorFlow's PreemptionCheckpointHandler's (trainers.distribute).
    flags = [flag for flag in WORKER_FLAGS if not flag.startswith(("--train_steps", "--checkpoint_every",
                                                                   "--sample_every", "--log_every"))]
    flags += ["--steps_per_call=5", "--log_every=5", "--sample_every=100000", "--checkpoint_every=100000"]
    workers, logs = start_workers(tmp_path, [*flags, "--train_steps=100000"], "first")
    deadline = time.monotonic() + 120
    while "step 10/" not in logs[0].read_text():  # the cluster is training
        assert time.monotonic() < deadline and all(worker.poll() is None for worker in workers), \
            [log.read_text()[-3000:] for log in logs]
        time.sleep(0.2)
    signalled_at = time.perf_counter()
    for index in signalled:
        workers[index].send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=120)
    print(f"SIGTERM to worker(s) {signalled}: both exited {time.perf_counter() - signalled_at:.2f}s after it")
    outputs = [log.read_text() for log in logs]
    # Every worker exits 42 (saved, run me again), whichever got the signal.
    assert [worker.returncode for worker in workers] == [42, 42], [output[-3000:] for output in outputs]
    steps = [int(re.search(r"stopped by SIGTERM to a worker at step (\d+)", output).group(1)) for output in outputs]
    assert steps[0] == steps[1] and 10 <= steps[0] < 100000, steps
    checkpoints = tmp_path / "run" / "checkpoints"
    latest = tf.train.latest_checkpoint(str(checkpoints))
    assert latest.endswith(f"ckpt-{steps[0]}"), latest
    # The other worker's temporary saves are gone, and the handler wrote nothing of its own.
    assert not any(name.startswith(".worker") for name in os.listdir(tmp_path / "run"))
    assert not (tmp_path / "run" / ".lock").exists(), "the chief's lock outlived the run"
    assert all(name == "checkpoint" or name.startswith("ckpt-") for name in os.listdir(checkpoints))

    again, logs = start_workers(tmp_path, [*flags, f"--train_steps={steps[0] + 10}"], "again")
    for worker in again:
        worker.wait(timeout=120)
    outputs = [log.read_text() for log in logs]
    assert [worker.returncode for worker in again] == [0, 0], [output[-3000:] for output in outputs]
    for output in outputs:
        assert f"resumed from {latest} at step {steps[0]}" in output, output[-3000:]
        assert f"trained to step {steps[0] + 10}" in output, output[-3000:]
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith(f"ckpt-{steps[0] + 10}")
