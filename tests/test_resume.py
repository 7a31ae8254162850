"""Runs killed and resumed through the real train command: the runs that are killed or signalled
in subprocesses, the runs they are compared with or resumed by in this process.

Each subprocess starts TensorFlow (several seconds per start on 2 shared CPU cores): the price of
killing a real process.
"""

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
from tensorflow.core.protobuf import trackable_object_graph_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
GAN = ["--model=gan", "--dataset=ring", "--batch_size=16", "--latent_dim=4", "--width=8", "--depth=1",
       "--sample_every=1000", "--ema_decay=0.9"]


def command(model_dir, *flags):
    return [sys.executable, "-m", "synthblend", "train", f"--model_dir={model_dir}", *flags]


def environment():
    environ = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return {**environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": ""}


def run_until(argv, pattern):
    """Starts `argv`, waits for a stdout line matching `pattern` and kills the process with SIGKILL."""
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=environment())
    lines = []
    for line in process.stdout:
        lines.append(line)
        if re.match(pattern, line):
            process.kill()
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(lines)
    return lines


def train_here(model_dir, *flags):
    """Runs the train command in this process; returns its stdout."""
    from conftest import run_tool
    from synthblend.trainers import train

    code, out, err = run_tool(train.main, f"--model_dir={model_dir}", *flags)
    assert code == 0, err
    return out


def lock_record(model_dir):
    with open(os.path.join(model_dir, ".lock")) as file:
        return json.load(file)


def final_variables(model_dir):
    """The latest checkpoint in `model_dir` and every value it holds but the save counter.

    The iterator's state is an opaque variant tensor that the reader cannot convert; it is
    listed as None (identical weights after the resumed steps show that the batches were too).
    The object graph is listed without the variables' Python names (`adam_2/iteration`), which
    count the objects the process made before.
    """
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    dtypes = reader.get_variable_to_dtype_map()
    values = {name: None if dtype == tf.variant else reader.get_tensor(name)
              for name, dtype in dtypes.items() if not name.startswith("save_counter")}
    if OBJECT_GRAPH in values:
        graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(values[OBJECT_GRAPH])
        for node in graph.nodes:
            for attribute in node.attributes:
                attribute.ClearField("full_name")
        values[OBJECT_GRAPH] = graph.SerializeToString(deterministic=True)
    return path, values


DCGAN = ["--model=dcgan", "--dataset=shapes", "--batch_size=8", "--latent_dim=4", "--width=8",
         "--sample_every=1000", "--diffaugment=color,translation"]


@pytest.mark.parametrize("model, kills", [(GAN, 2), (DCGAN, 1)], ids=["gan_ring", "dcgan_shapes_diffaugment"])
def test_killed_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, model, kills):
    flags = [*model, "--deterministic", "--train_steps=40", "--steps_per_call=5", "--log_every=5",
             "--checkpoint_every=10", "--keep_checkpoints=5"]
    whole = tmp_path / "whole"
    train_here(whole, *flags)
    resumed = tmp_path / "resumed"
    # Killed mid-way between checkpoints (step 15: resumes at 10 and redoes 10-15), then (the
    # MLP GAN, whose process starts fastest) right after a checkpoint step's progress line (step
    # 30), then run to the end.
    run_until(command(resumed, *flags), r"step 15/40")
    if kills == 2:
        lines = run_until(command(resumed, *flags), r"step 30/40")
        assert any(line.startswith("resumed from") and line.rstrip().endswith("at step 10") for line in lines)
    assert "resumed from" in train_here(resumed, *flags)
    whole_path, expected = final_variables(whole)
    resumed_path, actual = final_variables(resumed)
    assert os.path.basename(whole_path) == os.path.basename(resumed_path) == "ckpt-40"
    different = [name for name in expected if expected[name] is not None
                 and not np.array_equal(expected[name], actual.get(name))]
    assert not different, different
    assert sorted(actual) == sorted(expected)
    assert any("iterator" in name for name in actual) and any("optimizer" in name for name in actual)
    assert any("random_state" in name for name in actual)
    assert any(name.startswith("ema/") for name in actual) == ("--ema_decay=0.9" in model)


def test_sigterm_in_a_long_call_saves_the_step_reached_and_resumes(tmp_path):
    flags = [*GAN, "--steps_per_call=100000", "--log_every=100000", "--checkpoint_every=100000"]
    model_dir = tmp_path / "run"
    train_here(model_dir, *flags, "--train_steps=10")
    process = subprocess.Popen(command(model_dir, *flags, "--train_steps=100000"), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=environment())
    for line in process.stdout:
        if line.startswith("resumed from"):
            break
    time.sleep(5)  # tracing, then training steps inside the one long call
    # A second training into the same folder meanwhile is refused, naming the first: 75, try later.
    second = subprocess.run(command(model_dir, *flags, "--train_steps=100000"), cwd=ROOT, capture_output=True,
                            text=True, env=environment(), timeout=120)
    assert second.returncode == 75, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"error: --model_dir={model_dir} is in use by training (pid {process.pid} on {socket.gethostname()}, "
        f"since {lock_record(model_dir)['since']}); wait for it to end or stop it (its lock "
        f"{model_dir / '.lock'} goes when it ends)"
    ]
    signalled = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0]
    latency = time.perf_counter() - signalled
    # 42: saved, run me again (a scheduler restarts it); the one line says where it stopped.
    assert process.returncode == 42, output
    step = int(re.search(r"^stopped by SIGTERM at step (\d+) of 100000; checkpoint saved; run the same command "
                         r"again to resume$", output, re.MULTILINE).group(1))
    assert 10 < step < 100000
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith(f"ckpt-{step}")
    assert not (model_dir / ".lock").exists()
    print(f"SIGTERM at step ~{step}: exited {latency:.2f}s after the signal")
    again = train_here(model_dir, *flags, f"--train_steps={step + 5}")
    assert f"at step {step}" in again and f"trained to step {step + 5}" in again


def test_a_streamed_image_folder_resumes_bit_identically_and_its_checkpoint_holds_no_images(tmp_path, monkeypatch):
    """An image folder decoded as it is read (as one too large for memory is): a run resumed from
    its checkpoint draws the batches the uninterrupted run drew, and the checkpoint holds the
    model's state and the stream's position, not images."""
    from PIL import Image

    from conftest import run_tool
    from synthblend.datasets import sources
    from synthblend.trainers import train

    generator = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for index in range(30):
            pixels = generator.integers(0, 256, (28, 28), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{index}.png")
    monkeypatch.setattr(sources, "IMAGES_IN_MEMORY_BYTES", 0)
    flags = ["--model=dcgan", f"--dataset=images:{tmp_path / 'images'}", "--conditional", "--batch_size=8",
             "--latent_dim=4", "--width=8", "--deterministic", "--steps_per_call=5", "--log_every=5",
             "--sample_every=1000", "--checkpoint_every=10", "--augment=flip"]
    assert run_tool(train.main, *flags, f"--model_dir={tmp_path / 'whole'}", "--train_steps=20")[0] == 0
    assert run_tool(train.main, *flags, f"--model_dir={tmp_path / 'resumed'}", "--train_steps=10")[0] == 0
    code, out, err = run_tool(train.main, *flags, f"--model_dir={tmp_path / 'resumed'}", "--train_steps=20")
    assert code == 0 and "resumed from" in out, err
    whole_path, expected = final_variables(tmp_path / "whole")
    _, actual = final_variables(tmp_path / "resumed")
    different = [name for name in expected if expected[name] is not None and name != "_CHECKPOINTABLE_OBJECT_GRAPH"
                 and not np.array_equal(expected[name], actual.get(name))]
    assert not different, different
    state = sum(value.nbytes for value in expected.values() if isinstance(value, np.ndarray))
    saved = sum(os.path.getsize(os.path.join(os.path.dirname(whole_path), name))
                for name in os.listdir(os.path.dirname(whole_path)) if name.startswith("ckpt-20"))
    assert saved < 1.2 * state, (saved, state)


def test_a_checkpoint_of_another_input_pipeline_resumes_with_the_data_order_started_over(tmp_path, monkeypatch):
    """A run saved with a shuffle-buffer iterator (as in-memory data was read before it was drawn by
    position) continues: everything else is restored, with a warning that the data order starts over."""
    from conftest import run_tool
    from synthblend.datasets import rows
    from synthblend.trainers import train

    flags = ["--model=gan", "--dataset=ring", "--width=8", "--depth=1", "--latent_dim=4", "--batch_size=16",
             "--steps_per_call=2", "--log_every=2", "--sample_every=1000", "--checkpoint_every=2",
             f"--model_dir={tmp_path / 'run'}"]
    with monkeypatch.context() as patch:
        patch.setattr(rows, "rows_of", lambda dataset: None)  # the buffer pipeline
        assert run_tool(train.main, *flags, "--train_steps=4")[0] == 0
    code, out, err = run_tool(train.main, *flags, "--train_steps=6")
    assert code == 0, err
    assert "ckpt-4 holds no iterator state this input pipeline can read; the data order starts over" in out
    assert "ckpt-4 at step 4" in out and "step 6/6" in out
    assert os.path.basename(final_variables(tmp_path / "run")[0]) == "ckpt-6"
