"""The train command: every recipe in configs/, resuming, and every bad input a user can give."""

import glob
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import run_tool
from synthblend.trainers import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.cfg")))
# Shrinks any recipe to a few tiny steps.
TINY = ["--train_steps=2", "--batch_size=4", "--width=8", "--latent_dim=4", "--steps_per_call=1",
        "--log_every=1", "--sample_every=2", "--checkpoint_every=2"]


def run_train(*argv):
    """Runs the train command in this process; returns (exit code, stdout, stderr)."""
    return run_tool(train.main, *argv)


def snapshot(directory):
    """Every file below `directory` with a hash of its bytes."""
    result = {}
    for folder, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as file:
                result[os.path.relpath(path, directory)] = hashlib.sha256(file.read()).hexdigest()
    return result


def test_training_with_augmentation_and_diffaugment(tmp_path):
    code, out, err = run_train("--model=dcgan", "--dataset=shapes", "--augment=flip,rotate:0.1,contrast:0.2",
                               "--diffaugment=color,translation,cutout", f"--model_dir={tmp_path}", *TINY)
    assert code == 0, err
    assert "step 2/2" in out


def test_there_are_recipes():
    names = {os.path.basename(c)[:-4] for c in CONFIGS}
    assert {"dcgan_mnist", "dcgan_shapes", "gan_ring", "gan_grid"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: os.path.basename(c))
def test_every_recipe_parses_and_trains_a_few_steps(config, tmp_path):
    with tfds.testing.mock_data(num_examples=16):
        code, out, err = run_train(f"--flagfile={config}", f"--model_dir={tmp_path}", *TINY)
    assert code == 0, err
    assert "step 2/2" in out
    assert (tmp_path / "config.json").exists()
    assert (tmp_path / "samples" / "step_0000002.png").exists()
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    assert glob.glob(str(tmp_path / "events.out.tfevents.*"))
    assert f"model_dir: {tmp_path}" in out and "samples:" in out and "tensorboard --logdir" in out


def test_same_command_with_more_steps_continues(tmp_path):
    args = ["--model=dcgan", "--dataset=shapes", f"--model_dir={tmp_path}", *TINY]
    assert run_train(*args)[0] == 0
    code, out, _ = run_train(*args, "--train_steps=4")
    assert code == 0
    assert "at step 2" in out and "step 4/4" in out and "step 2/4" not in out
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
    code, out, _ = run_train(*args, "--train_steps=4")
    assert code == 0 and "nothing to train" in out


@pytest.fixture
def bad_files(tmp_path):
    """Files a user might point the tool at by mistake."""
    files = tmp_path / "files"
    files.mkdir()
    np.savez(files / "no_x.npz", images=np.zeros((4, 28, 28), np.uint8))
    np.savez(files / "unlabelled.npz", x=np.random.default_rng(0).integers(0, 255, (8, 28, 28), dtype=np.uint8))
    (files / "empty").mkdir()
    mixed = files / "mixed"
    mixed.mkdir()
    (mixed / "a.png").write_bytes(tf.io.encode_png(np.zeros((28, 28, 1), np.uint8)).numpy())
    (mixed / "b.png").write_bytes(tf.io.encode_png(np.zeros((30, 30, 1), np.uint8)).numpy())
    corrupt = files / "corrupt"
    corrupt.mkdir()
    (corrupt / "a.png").write_bytes(tf.io.encode_png(np.zeros((28, 28, 1), np.uint8)).numpy())
    (corrupt / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    return files


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    """A model_dir holding a 2-step gan run on ring, which no mistake below may change."""
    model_dir = tmp_path_factory.mktemp("run")
    assert run_train("--model=gan", "--dataset=ring", f"--model_dir={model_dir}", *TINY)[0] == 0
    return model_dir


BAD_INPUTS = [
    # (flags, exit code, words the one-line message must contain)
    (["--model=gna", "--dataset=ring"], 2, ["--model=gna", "dcgan", "gan"]),
    (["--model=gan", "--dataset=rnig"], 2, ["'rnig'", "ring", "npz:<...>"]),
    (["--model=gan", "--dataset=foo:bar"], 2, ["'foo:bar'", "tfds:<...>"]),
    (["--model=gan", "--dataset=npz:/no/such.npz"], 2, ["/no/such.npz"]),
    (["--model=gan", "--dataset=npz:"], 2, ["'npz:'"]),
    (["--model=gan", "--dataset=images:/no/such/dir"], 2, ["/no/such/dir"]),
    (["--model=gan", "--dataset=images:{files}/empty"], 2, ["empty", "no image files", ".png"]),
    (["--model=gan", "--dataset=npz:{files}/no_x.npz"], 1, ["no_x.npz", "no array 'x'", "images"]),
    (["--model=dcgan", "--dataset=images:{files}/mixed"], 1, ["mixed sizes", "28x28", "30x30", "--image_size"]),
    (["--model=dcgan", "--dataset=images:{files}/corrupt"], 1, ["broken.png", "not a readable image"]),
    (["--model=gan", "--dataset=ring", "--batch_size=0"], 2, ["--batch_size=0", "range [1, 65536]"]),
    (["--model=gan", "--dataset=ring", "--batch_size=-3"], 2, ["--batch_size=-3"]),
    (["--model=gan", "--dataset=ring", "--train_steps=0"], 2, ["--train_steps=0", "range [1, 2147483647]"]),
    (["--model=gan", "--dataset=ring", "--steps_per_call=0"], 2, ["--steps_per_call=0"]),
    (["--model=gan", "--dataset=ring", "--batch_size=many"], 2, ["--batch_size=many"]),
    (["--model=dcgan", "--dataset=ring"], 2, ["dcgan", "(2,)", "--model=gan"]),
    (["--model=gan", "--dataset=shapes", "--split=validation"], 2, ["'validation'", "train, test"]),
    (["--model=gan", "--dataset=ring", "--loss=wgan"], 2, ["--loss=wgan", "hinge"]),
    (["--model=dcgan", "--dataset=shapes", "--loss=wasserstein_gp"], 2, ["discriminator_norm=layer"]),
    (["--model=dcgan", "--dataset=shapes", "--discriminator_depth=5"], 2, ["discriminator_depth=5", "1..4", "28x28"]),
    (["--model=dcgan", "--dataset=npz:{files}/unlabelled.npz", "--conditional"], 2, ["--conditional", "no labels"]),
    (["--model=infogan", "--dataset=shapes", "--categories=0"], 2, ["--categories=0"]),
    (["--model=infogan", "--dataset=shapes", "--continuous_codes=-1"], 2, ["--continuous_codes=-1"]),
    (["--model=infogan", "--dataset=shapes", "--conditional"], 2, ["infogan", "--conditional"]),
    (["--model=vae", "--dataset=ring", "--likelihood=bernoulli"], 2, ["bernoulli", "--likelihood=gaussian"]),
    (["--model=vae", "--dataset=ring", "--likelihood=poisson"], 2, ["--likelihood=poisson", "gaussian"]),
    (["--dataset=ring"], 2, ["--model is required"]),
    (["--model=gan"], 2, ["--dataset is required"]),
    (["--model=gan", "--dataset=ring", "extra"], 2, ["'extra'"]),
    (["--model=dcgan", "--dataset=shapes", "--augment=blur:1"], 2, ["'blur'", "accepted", "rotate:F"]),
    (["--model=dcgan", "--dataset=shapes", "--augment=rotate:2"], 2, ["rotate:2", "out of range", "0.5"]),
    (["--model=gan", "--dataset=ring", "--augment=flip"], 2, ["--augment", "images", "(2,)"]),
    (["--model=dcgan", "--dataset=shapes", "--diffaugment=jitter"], 2, ["'jitter'", "color, translation, cutout"]),
    (["--model=gan", "--dataset=ring", "--diffaugment=color"], 2, ["--diffaugment=color", "images"]),
    (["--model=gan", "--dataset=ring", "--classifier_weight=1"], 2, ["classifier_weight", "conditional"]),
    (["--model=dcgan", "--dataset=shapes", "--categories=4"], 2, ["--categories", "--model=dcgan", "infogan"]),
    (["--model=gan", "--dataset=ring", "--learning_rate=0.1"], 2, ["--learning_rate", "--model=gan", "vae"]),
    (["--model=infogan", "--dataset=shapes", "--code_invariance=pose"], 2, ["'pose'", "centre, color"]),
    (["--model=infogan", "--dataset=shapes", "--clustering_weight=1"], 2, ["clustering_weight", "--code_invariance"]),
]


@pytest.mark.parametrize("flags, code, words", BAD_INPUTS, ids=lambda v: str(v) if isinstance(v, int) else None)
def test_bad_input_gives_one_line_and_loses_nothing(existing_run, bad_files, flags, code, words):
    before = snapshot(existing_run)
    flags = [f.format(files=bad_files) for f in flags]
    exit_code, out, err = run_train(*flags, f"--model_dir={existing_run}", *TINY)
    lines = err.strip().splitlines()
    assert exit_code == code, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    assert snapshot(existing_run) == before


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--model=dcgan", "--dataset=shapes"], ["holds a 'gan' model, not 'dcgan'", "--model=gan"]),
        (["--model=gan", "--dataset=grid"], ["dataset='ring' there, 'grid' now"]),
        (["--model=gan", "--dataset=ring", "--latent_dim=7"], ["latent_dim=4 there, 7 now"]),
    ],
)
def test_model_dir_of_another_run_is_refused_and_kept(existing_run, flags, words):
    model_dir = existing_run
    before = snapshot(model_dir)
    tiny = [f for f in TINY if not f.startswith("--latent_dim")] if "--latent_dim=7" in flags else TINY
    exit_code, _, err = run_train(*flags, f"--model_dir={model_dir}", *tiny)
    assert exit_code == 2
    assert len(err.strip().splitlines()) == 1
    for word in words:
        assert word in err
    assert snapshot(model_dir) == before


def test_model_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    exit_code, _, err = run_train("--model=gan", "--dataset=ring", f"--model_dir={target}", *TINY)
    assert exit_code == 2 and "is a file" in err
    assert target.read_text() == "keep me"


def test_as_a_process_errors_have_no_traceback_and_verbose_shows_one(tmp_path):
    command = [sys.executable, "-m", "synthblend", "train", "--model=gan", "--dataset=npz:/no/such.npz",
               f"--model_dir={tmp_path}"]
    # As a user runs it: without the test suite's TF_CPP_MIN_LOG_LEVEL.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: dataset 'npz:/no/such.npz': no such file '/no/such.npz'; expected an existing .npz file"
    ]
    verbose = subprocess.run(command + ["--verbose"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr
    assert not os.listdir(tmp_path)


def test_training_compiled_with_xla(tmp_path):
    code, out, err = run_train("--model=dcgan", "--dataset=shapes", "--jit_compile", f"--model_dir={tmp_path}", *TINY)
    assert code == 0, err
    assert "step 2/2" in out


def test_every_command_refuses_a_stray_argument():
    from benchmarks import benchmark
    from synthblend.trainers import blend, evaluate, export, sample, utility

    for main in (train.main, export.main, sample.main, evaluate.main, blend.main, utility.main, benchmark.main):
        code, _, err = run_tool(main, "stray")
        assert code == 2 and err.strip() == "error: unexpected argument 'stray'; flags look like --name=value", main
