"""The sample command: formats, determinism from a model directory and its export, class balance,
chunked writing that leaves nothing half-written, and bad input."""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_tool
from test_train import TINY, run_train, snapshot
from synthblend.datasets import sources
from synthblend.trainers import sample


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("vector") / "run"
    assert run_train("--model=gan", "--dataset=ring", f"--model_dir={model_dir}", *TINY)[0] == 0
    return model_dir


def sample_command(*argv):
    code, out, err = run_tool(sample.main, *argv)
    assert code == 0, err
    return out


def test_npz_from_model_dir_and_export_are_the_same_and_repeatable(conditional_export, tmp_path):
    model_dir, export_dir = conditional_export
    common = ["--num_samples=20", "--seed=3", "--chunk_size=8"]
    out = sample_command(f"--model_dir={model_dir}", f"--output={tmp_path / 'a.npz'}", *common)
    assert "wrote 20 samples (circle: 5, square: 5, triangle: 5, cross: 5)" in out
    sample_command(f"--model_dir={model_dir}", f"--output={tmp_path / 'b.npz'}", *common)
    sample_command(f"--export_dir={export_dir}", f"--output={tmp_path / 'c.npz'}", *common)
    sample_command(f"--model_dir={model_dir}", f"--output={tmp_path / 'd.npz'}", *common[:-2], "--seed=4",
                   "--chunk_size=8")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    a, c, d = (np.load(tmp_path / name) for name in ("a.npz", "c.npz", "d.npz"))
    assert a["x"].shape == (20, 28, 28, 1) and a["x"].dtype == np.uint8
    assert a["y"].dtype == np.int32 and np.bincount(a["y"]).tolist() == [5, 5, 5, 5]
    np.testing.assert_array_equal(a["y"], c["y"])
    # Export and model directory run the same graph ops; rounding to uint8 may differ by one.
    assert np.abs(a["x"].astype(int) - c["x"].astype(int)).max() <= 1
    assert not np.array_equal(a["x"], d["x"])


def test_chunks_are_independent_and_the_last_one_is_short(vector_run, tmp_path):
    sample_command(f"--model_dir={vector_run}", f"--output={tmp_path / 'v.npz'}", "--num_samples=10", "--chunk_size=4")
    x = np.load(tmp_path / "v.npz")["x"]
    assert x.shape == (10, 2) and x.dtype == np.float32 and "y" not in np.load(tmp_path / "v.npz")
    assert not np.allclose(x[:4], x[4:8])


def test_png_folder_has_a_subfolder_per_class(conditional_export, tmp_path):
    model_dir, _ = conditional_export
    sample_command(f"--model_dir={model_dir}", f"--output={tmp_path / 'pngs'}", "--num_samples=9",
                   "--classes=square,3")
    assert sorted(os.listdir(tmp_path / "pngs")) == ["circle", "cross", "square", "triangle"]
    counts = {name: len(os.listdir(tmp_path / "pngs" / name)) for name in os.listdir(tmp_path / "pngs")}
    assert counts["circle"] == counts["triangle"] == 0 and counts["square"] + counts["cross"] == 9
    image = tf.io.decode_png((tmp_path / "pngs" / "cross" / os.listdir(tmp_path / "pngs" / "cross")[0]).read_bytes())
    assert image.shape == (28, 28, 1)


def test_tfrecord_examples_parse_back(conditional_export, tmp_path):
    model_dir, _ = conditional_export
    path = tmp_path / "s.tfrecord"
    sample_command(f"--model_dir={model_dir}", f"--output={path}", "--num_samples=6", "--seed=1")
    features = {"x": tf.io.FixedLenFeature([], tf.string), "y": tf.io.FixedLenFeature([], tf.int64)}
    examples = [tf.io.parse_single_example(record, features) for record in tf.data.TFRecordDataset(str(path))]
    assert len(examples) == 6
    reference = np.load(_npz(model_dir, tmp_path, "--num_samples=6", "--seed=1"))
    for index, example in enumerate(examples):
        assert int(example["y"]) == reference["y"][index]
        np.testing.assert_array_equal(tf.io.decode_png(example["x"]).numpy(), reference["x"][index])


def _npz(model_dir, tmp_path, *argv):
    path = tmp_path / "reference.npz"
    sample_command(f"--model_dir={model_dir}", f"--output={path}", "--overwrite", *argv)
    return path


def test_class_labels_follow_the_requested_balance():
    uniform = sample.class_labels(10, 4, [0, 1, 2, 3], "uniform", None, seed=0)
    assert sorted(np.bincount(uniform, minlength=4)) == [2, 2, 3, 3]
    real = sample.class_labels(1000, 3, [0, 1, 2], "real", [0.5, 0.3, 0.2], seed=0)
    assert np.bincount(real).tolist() == [500, 300, 200]
    chosen = sample.class_labels(7, 3, [1, 2], "real", [0.5, 0.25, 0.25], seed=0)
    assert np.bincount(chosen, minlength=3).tolist()[0] == 0 and len(chosen) == 7
    assert not np.array_equal(real, np.sort(real))


def test_samples_come_in_the_training_class_shares_by_default(conditional_export, tmp_path):
    model_dir, _ = conditional_export
    out = sample_command(f"--model_dir={model_dir}", f"--output={tmp_path / 'r.npz'}", "--num_samples=400")
    record = sample.ModelSource(str(model_dir), True).record
    # The shares the run recorded when it trained are those of its training split, counted again.
    assert record["class_counts"] == np.bincount(sources.load("shapes")[0].map(lambda e: e["y"]).batch(50000)
                                                 .get_single_element().numpy(), minlength=4).tolist()
    frequencies = sample.training_frequencies(record, 4)
    counts = np.bincount(np.load(tmp_path / "r.npz")["y"], minlength=4)
    np.testing.assert_allclose(counts / 400, frequencies, atol=1 / 400)
    assert "wrote 400 samples" in out
    sample_command(f"--model_dir={model_dir}", f"--output={tmp_path / 'u.npz'}", "--num_samples=400",
                   "--class_balance=uniform")
    assert np.bincount(np.load(tmp_path / "u.npz")["y"], minlength=4).tolist() == [100] * 4


@pytest.mark.parametrize("signal_number, code", [(signal.SIGINT, 130), (signal.SIGTERM, 42)], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_run_leaves_nothing_and_keeps_the_old_output(vector_run, tmp_path, monkeypatch, signal_number,
                                                                code):
    path = tmp_path / "s.npz"
    path.write_bytes(b"old")
    calls = []

    def failing_draw(self, count, seed, labels=None):
        calls.append(count)
        if len(calls) == 2:
            os.kill(os.getpid(), signal_number)
        return np.zeros((count, 2), np.float32)

    monkeypatch.setattr(sample.ModelSource, "draw", failing_draw)
    exit_code, _, err = run_tool(sample.main, f"--model_dir={vector_run}", f"--output={path}", "--num_samples=10",
                                 "--chunk_size=4", "--overwrite")
    assert exit_code == code and f"stopped by {signal_number.name}" in err and "nothing half-written" in err
    assert os.listdir(tmp_path) == ["s.npz"] and path.read_bytes() == b"old"
    assert len(calls) == 2


def test_bad_sampling_requests_are_one_line_errors_that_change_nothing(conditional_export, vector_run, tmp_path):
    model_dir, export_dir = conditional_export
    existing = tmp_path / "existing.npz"
    existing.write_bytes(b"keep")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = f"--output={tmp_path / 'new.npz'}"
    cases = [
        ([f"--model_dir={model_dir}", out, "--num_samples=0"], "--num_samples=0: 0 is not an integer in the range [1,"),
        ([f"--model_dir={model_dir}", out, "--num_samples=-5"], "--num_samples=-5"),
        ([out, "--num_samples=5"], "give one of --model_dir"),
        ([f"--model_dir={model_dir}", f"--export_dir={export_dir}", out, "--num_samples=5"], "give one of"),
        ([f"--model_dir={model_dir}", "--num_samples=5"], "--output is required"),
        ([f"--model_dir={model_dir}", f"--output={existing}", "--num_samples=5"], "exists; pass --overwrite"),
        ([f"--model_dir={model_dir}", f"--output={tmp_path / 'nowhere' / 'x.npz'}", "--num_samples=5"],
         "does not exist"),
        ([f"--model_dir={model_dir}", out, "--num_samples=5", "--classes=4"], "not a class of this model"),
        ([f"--model_dir={model_dir}", out, "--num_samples=5", "--classes=hexagon"], "accepted: 0..3 or circle"),
        ([f"--model_dir={vector_run}", out, "--num_samples=5", "--classes=1"], "needs a conditional model"),
        ([f"--model_dir={vector_run}", f"--output={tmp_path / 'pngs'}", "--num_samples=5"], "needs image data"),
        ([f"--model_dir={model_dir}", f"--output={tmp_path / 'a.txt'}", "--num_samples=5"], "cannot tell the format"),
        ([f"--model_dir={model_dir}", f"--output={tmp_path / 'a.csv'}", "--num_samples=5"],
         "as csv needs a model trained on a table"),
        ([f"--model_dir={empty}", out, "--num_samples=5"], "holds no config.json"),
        ([f"--export_dir={empty}", out, "--num_samples=5"], "holds no exported version"),
        ([f"--export_dir={model_dir}", out, "--num_samples=5"], "holds no exported version"),
        ([f"--model_dir={model_dir}", out, "--num_samples=5", "--seed=-1"], "--seed=-1"),
        ([f"--model_dir={model_dir}", out, "--num_samples=5", "--format=jpeg"], "--format"),
    ]
    if os.geteuid() != 0:  # root may write into a read-only folder
        cases.append(([f"--model_dir={model_dir}", f"--output={read_only / 'x.npz'}", "--num_samples=5"],
                      "not writable"))
    before = snapshot(tmp_path)
    try:
        for argv, words in cases:
            code, _, err = run_tool(sample.main, *argv)
            assert code != 0 and words in err, (argv, err)
            assert len(err.strip().splitlines()) == 1, err
    finally:
        read_only.chmod(0o700)
    assert snapshot(tmp_path) == before


def test_tfrecord_samples_train_a_model_again(conditional_export, vector_run, tmp_path):
    """What the sample command writes as TFRecord shards is a source: images and labels, vectors."""
    model_dir, _ = conditional_export
    for index in range(2):
        sample_command(f"--model_dir={model_dir}", f"--output={tmp_path / f'shard-{index}.tfrecord'}",
                       "--num_samples=20", f"--seed={index}")
    data, spec = sources.load(f"tfrecord:{tmp_path / 'shard-*.tfrecord'}")
    reference = np.load(_npz(model_dir, tmp_path, "--num_samples=20", "--seed=0"))
    assert spec.shape == reference["x"].shape[1:] and spec.num_examples == 40 and spec.value_range == (0.0, 255.0)
    first = [example for example in data.take(20).as_numpy_iterator()]
    np.testing.assert_array_equal(np.stack([e["x"] for e in first]), reference["x"])
    np.testing.assert_array_equal([e["y"] for e in first], reference["y"])
    _, half = sources.load(f"tfrecord:{tmp_path / 'shard-*.tfrecord'}", "train[:50%]")
    assert half.num_examples == 20
    code, _, err = run_train("--model=dcgan", f"--dataset=tfrecord:{tmp_path / 'shard-*.tfrecord'}", "--conditional",
                             f"--model_dir={tmp_path / 'again'}", *TINY)
    assert code == 0, err
    vectors = tmp_path / "ring.tfrecord"
    sample_command(f"--model_dir={vector_run}", f"--output={vectors}", "--num_samples=50", "--seed=2")
    data, spec = sources.load(f"tfrecord:{vectors}")
    points = np.stack([e["x"] for e in data.as_numpy_iterator()])
    assert spec.shape == (2,) and spec.num_classes == 0 and points.shape == (50, 2)
    np.testing.assert_allclose(spec.loc, points.mean(axis=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("content, words", [(None, "no file matches"), (b"not a record", "cannot be read as TFRecord")])
def test_a_tfrecord_source_that_cannot_be_read_is_one_line(tmp_path, content, words):
    path = tmp_path / "bad.tfrecord"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run_train("--model=gan", f"--dataset=tfrecord:{path}", f"--model_dir={tmp_path / 'run'}", *TINY)
    assert code in (1, 2) and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
