"""Bad input across every command: one table of mistakes a user can make with train, sample,
export, evaluate, blend and utility. Each must end in exit status 2 (usage) or 1 (runtime), one
line on stderr naming the bad value and what is accepted, no traceback, and no change to any
model, export, data or output directory that existed before. A few run as real processes."""

import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_tool
from test_train import ROOT, TINY, run_train
from synthblend.trainers import blend, evaluate, export, sample, train, utility

TOOLS = {"train": train.main, "sample": sample.main, "export": export.main, "evaluate": evaluate.main,
         "blend": blend.main, "utility": utility.main}

# Placeholders in the table: {model} conditional dcgan on shapes (28x28x1, classes circle, square,
# triangle, cross), {export} its export, {ring} an unconditional gan on ring (2-D vectors),
# {files} bad files, {out} an output folder holding existing.npz, {fresh} a folder that does not
# exist yet (a new model_dir or export_dir).
BLEND = ["--dataset=shapes", "--model_dir={model}", "--output={out}/blend.npz", "--num_examples=10"]
SAMPLE = ["--model_dir={model}", "--output={out}/samples.npz", "--num_samples=5"]
TRAIN = ["--model=gan", "--dataset=ring", "--model_dir={fresh}", *TINY]

BAD_INPUTS = [
    # (tool, flags, exit status, words the one-line message must contain)
    # -- train: flags, data files -------------------------------------------------------------
    ("train", [*TRAIN, "--batch_size=1.5"], 2, ["--batch_size=1.5", "int"]),
    ("train", [*TRAIN, "--ema_decay=1.5"], 2, ["--ema_decay=1.5", "0.99999"]),
    ("train", [*TRAIN, "--image_size=0"], 2, ["--image_size=0", "range [1, 512]"]),
    ("train", [*TRAIN, "--image_size=100000"], 2, ["--image_size=100000", "512"]),
    ("train", [*TRAIN, "--model=gann"], 2, ["--model=gann", "dcgan"]),
    # -- flags that would change nothing, and flags of another command -----------------------
    ("train", [*TRAIN, "--tpu=grpc://10.0.0.2:8470"], 2, ["--tpu=grpc://10.0.0.2:8470", "--strategy=tpu only"]),
    ("train", [*TRAIN, "--max_rollbacks=5"], 2, ["--max_rollbacks=5", "--nan_policy=rollback only"]),
    ("train", [*TRAIN, "--label_column=churn"], 2, ["--label_column", "apply to tables", "'ring'"]),
    ("train", [*TRAIN, "--image_size=32"], 2, ["--image_size=32", "applies to images", "'ring'"]),
    ("train", [*TRAIN, "--ratio=0.3"], 2, ["--ratio is not a flag of synthblend-train", "synthblend-blend"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--ratio=0.3"], 2,
     ["--ratio is not a flag of synthblend-export", "synthblend-blend"]),
    ("sample", [*SAMPLE[:1], "--export_dir={export}", *SAMPLE[1:]], 2, ["give one of --model_dir", "--export_dir"]),
    ("sample", ["--export_dir={export}", *SAMPLE[1:], "--use_ema=false"], 2,
     ["--use_ema=False applies to --model_dir"]),
    ("sample", ["--model_dir={ring}", *SAMPLE[1:], "--class_balance=uniform"], 2,
     ["--class_balance=uniform needs a conditional model"]),
    ("evaluate", ["--model_dir={model}", "--output=x.npz"], 2, ["--output is not a flag of synthblend-evaluate"]),
    ("train", ["--dataset=npz:{files}/truncated.npz", *TRAIN[2:], "--model=gan"], 1,
     ["truncated.npz", "cannot be read as a NumPy .npz"]),
    ("train", ["--dataset=npz:{files}/text.npz", *TRAIN[2:], "--model=gan"], 1,
     ["text.npz", "cannot be read as a NumPy .npz"]),
    ("train", ["--dataset=npz:{files}/no_x.npz", *TRAIN[2:], "--model=gan"], 1, ["no_x.npz", "no array 'x'"]),
    ("train", ["--dataset=images:{files}/no_images", *TRAIN[2:], "--model=dcgan"], 2,
     ["no_images", "no image files", ".png"]),
    ("train", ["--dataset=images:{files}/mixed", *TRAIN[2:], "--model=dcgan"], 1, ["mixed sizes", "--image_size"]),
    ("train", ["--model=dcgan", "--dataset=shapes", "--model_dir={model}", *TINY], 2,
     ["--model_dir={model}", "conditional=True there, False now"]),
    ("train", ["--model=gan", "--dataset=ring", "--model_dir={files}/text.npz", *TINY], 2,
     ["text.npz", "is a file"]),
    ("train", [*TRAIN, "--eval_split=validation"], 2, ["--eval_split=validation", "accepted: train, test"]),
    ("train", ["--flagfile={files}/no_such.cfg"], 2, ["no_such.cfg", "Unable to open flagfile"]),
    # -- sample --------------------------------------------------------------------------------
    ("sample", ["--model_dir={model}", "--output={out}/s.npz"], 2, ["--num_samples is required"]),
    ("sample", [*SAMPLE[:2], "--num_samples=ten"], 2, ["--num_samples=ten", "int"]),
    ("sample", [*SAMPLE[:2], "--num_samples=0"], 2, ["--num_samples=0", "at least 1"]),
    ("sample", [*SAMPLE, "--export_dir={export}"], 2, ["give one of --model_dir", "--export_dir"]),
    ("sample", ["--model_dir=/no/such/run", *SAMPLE[1:]], 2, ["--model_dir=/no/such/run", "does not exist"]),
    ("sample", ["--model_dir={files}", *SAMPLE[1:]], 2, ["--model_dir=", "holds no config.json"]),
    ("sample", ["--model_dir={files}/broken_run", *SAMPLE[1:]], 2, ["broken_run", "cannot be read"]),
    ("sample", ["--export_dir={files}/no_images", *SAMPLE[1:]], 2, ["no_images", "holds no exported version"]),
    ("sample", ["--export_dir={files}/text.npz", *SAMPLE[1:]], 2,
     ["--export_dir=", "text.npz is a file", "export folder"]),
    ("sample", [*SAMPLE, "--classes=4"], 2, ["'4'", "accepted: 0..3"]),
    ("sample", [*SAMPLE, "--classes=hexagon"], 2, ["'hexagon'", "circle, square, triangle, cross"]),
    ("sample", ["--model_dir={ring}", *SAMPLE[1:], "--classes=0"], 2,
     ["--classes=0", "--model_dir={ring}", "without --conditional"]),
    ("sample", ["--export_dir={files}/corrupt_export", *SAMPLE[1:]], 1,
     ["corrupt_export/1", "cannot be loaded as a SavedModel"]),
    ("sample", ["--export_dir={files}/export_without_variables", *SAMPLE[1:]], 1,
     ["export_without_variables/1", "cannot be loaded as a SavedModel"]),
    ("sample", [*SAMPLE[:1], "--output={out}", "--format=npz", "--overwrite", *SAMPLE[2:]], 2,
     ["--output={out} is a folder", "replaces only a file"]),
    ("sample", [*SAMPLE[:1], "--output={out}/existing.npz", "--format=png", "--overwrite", *SAMPLE[2:]], 2,
     ["existing.npz is a file", "replaces only a folder of PNGs"]),
    ("sample", [*SAMPLE[:1], "--output={files}/no_images", "--overwrite", *SAMPLE[2:]], 2,
     ["readme.txt", "replaces only a folder of samples"]),
    ("sample", [*SAMPLE[:1], "--output={out}/missing/s.npz", *SAMPLE[2:]], 2, ["missing", "does not exist"]),
    ("sample", [*SAMPLE[:1], "--output={out}/existing.npz", *SAMPLE[2:]], 2, ["existing.npz", "--overwrite"]),
    ("sample", [*SAMPLE[:1], "--output={out}/s.csv", *SAMPLE[2:]], 2, ["s.csv", "npz, tfrecord or png"]),
    ("sample", [*SAMPLE, "--format=jpeg"], 2, ["--format=jpeg", "npz|png|tfrecord"]),
    ("sample", [*SAMPLE, "--class_balance=skewed"], 2, ["--class_balance=skewed", "real|uniform"]),
    ("sample", ["--model_dir={ring}", "--output={out}/pngs", "--num_samples=5"], 2, ["png", "(2,)", "npz"]),
    # -- export --------------------------------------------------------------------------------
    ("export", ["--model_dir={model}"], 2, ["--export_dir is required"]),
    ("export", ["--model_dir=/no/such/run", "--export_dir={fresh}"], 2, ["/no/such/run", "does not exist"]),
    ("export", ["--model_dir={files}/no_checkpoint", "--export_dir={fresh}"], 2, ["no_checkpoint", "no checkpoint"]),
    ("export", ["--model_dir={model}", "--export_dir={files}/text.npz"], 2, ["text.npz", "is a file"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--max_samples=0"], 2,
     ["--max_samples=0", "positive integer"]),
    # -- evaluate ------------------------------------------------------------------------------
    ("evaluate", ["--model_dir={model}", "--num_samples=3"], 2, ["--num_samples=3", "at least 10"]),
    ("evaluate", ["--model_dir={model}", "--real_examples=5"], 2, ["--real_examples=5", ">= 10"]),
    ("evaluate", ["--model_dir={model}", "--seed=-1"], 2, ["--seed=-1", "non-negative integer"]),
    ("evaluate", ["--export_dir=/no/such/export"], 2, ["/no/such/export", "does not exist"]),
    ("evaluate", ["--export_dir={files}/fake_export"], 2, ["fake_export", "not an export of this tool"]),
    ("evaluate", ["--model_dir={model}", "--report_dir={files}/text.npz"], 2, ["text.npz", "is a file"]),
    ("evaluate", ["--model_dir={model}", "--cache_dir={files}/text.npz"], 2, ["--cache_dir=", "is a file"]),
    ("evaluate", ["--export_dir={files}/corrupt_export"], 1, ["corrupt_export", "cannot be loaded as a SavedModel"]),
    # -- blend ---------------------------------------------------------------------------------
    ("blend", [*BLEND, "--ratio=1.5"], 2, ["--ratio=1.5", "[0, 1]"]),
    ("blend", [*BLEND, "--ratio=-0.2"], 2, ["--ratio=-0.2", "[0, 1]"]),
    ("blend", [*BLEND, "--ratio=half"], 2, ["--ratio=half", "float"]),
    ("blend", [*BLEND, "--method=average"], 2, ["--method=average", "mix|interpolate"]),
    ("blend", BLEND[1:], 2, ["--dataset is required"]),
    ("blend", [*BLEND[:3], "--num_examples=-4"], 2, ["--num_examples=-4", "at least 1"]),
    ("blend", [*BLEND[:2], "--output={out}/blend.csv", BLEND[3]], 2, ["blend.csv", ".npz"]),
    ("blend", [*BLEND[:2], "--output={out}/existing.npz", BLEND[3]], 2, ["existing.npz", "--overwrite"]),
    ("blend", [*BLEND, "--image_size=32"], 2, ["(32, 32, 1)", "(28, 28, 1)"]),
    ("blend", ["--dataset=shapez", *BLEND[1:]], 2, ["'shapez'", "shapes"]),
    ("blend", ["--dataset=npz:{files}/no_x.npz", *BLEND[1:]], 1, ["no_x.npz", "no array 'x'"]),
    ("blend", ["--dataset=ring", "--model_dir={ring}", *BLEND[2:]], 2, ["--model_dir={ring}", "without --conditional"]),
    ("blend", ["--dataset=shapes", "--export_dir={files}/corrupt_export", *BLEND[2:]], 1,
     ["corrupt_export", "cannot be loaded as a SavedModel"]),
    # -- utility -------------------------------------------------------------------------------
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=0,1.2"], 2, ["1.2", "[0, 1)"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=-0.5"], 2, ["-0.5", "[0, 1)"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=a,b"], 2, ["--ratios=a,b", "[0, 1)"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--repeats=0"], 2, ["--repeats=0", "positive integer"]),
    ("utility", ["--dataset=ring", "--model_dir={ring}"], 2, ["--model_dir={ring}", "without --conditional"]),
]


def fingerprint(*directories):
    """Every file and folder below `directories`: size, modification time and a hash of its bytes."""
    result = {}
    for directory in directories:
        for folder, subfolders, files in os.walk(directory):
            for name in subfolders:
                result[os.path.join(folder, name)] = "folder"
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as file:
                    digest = hashlib.sha256(file.read()).hexdigest()
                status = os.stat(path)
                result[path] = (status.st_size, status.st_mtime_ns, digest)
    return result


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    """An unconditional gan on the 2-D ring, trained two steps."""
    model_dir = tmp_path_factory.mktemp("ring") / "run"
    assert run_train("--model=gan", "--dataset=ring", f"--model_dir={model_dir}", *TINY)[0] == 0
    return model_dir


@pytest.fixture(scope="module")
def places(tmp_path_factory, conditional_export, ring_run):
    """What the table's placeholders name; the files are made once and only read."""
    model_dir, export_dir = conditional_export
    files = tmp_path_factory.mktemp("files")
    np.savez(files / "no_x.npz", images=np.zeros((4, 28, 28), np.uint8))
    np.savez(files / "whole.npz", x=np.zeros((64, 28, 28), np.uint8))
    (files / "truncated.npz").write_bytes((files / "whole.npz").read_bytes()[:300])
    (files / "text.npz").write_text("x,y\n1,2\n")
    (files / "no_images").mkdir()
    (files / "no_images" / "readme.txt").write_text("no pictures here")
    mixed = files / "mixed"
    mixed.mkdir()
    (mixed / "a.png").write_bytes(tf.io.encode_png(np.zeros((28, 28, 1), np.uint8)).numpy())
    (mixed / "b.png").write_bytes(tf.io.encode_png(np.zeros((30, 30, 1), np.uint8)).numpy())
    (files / "broken_run").mkdir()
    (files / "broken_run" / "config.json").write_text('{"model": "gan", "config": ')
    (files / "no_checkpoint").mkdir()
    shutil.copy(model_dir / "config.json", files / "no_checkpoint" / "config.json")
    (files / "fake_export" / "1").mkdir(parents=True)
    (files / "fake_export" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    shutil.copytree(export_dir / "1", files / "corrupt_export" / "1")
    (files / "corrupt_export" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    shutil.copytree(export_dir / "1", files / "export_without_variables" / "1")
    shutil.rmtree(files / "export_without_variables" / "1" / "variables")
    out = tmp_path_factory.mktemp("out")
    (out / "existing.npz").write_bytes(b"keep me")
    return {"model": model_dir, "export": export_dir, "ring": ring_run, "files": files, "out": out}


@pytest.mark.parametrize("tool, argv, code, words", BAD_INPUTS, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input_is_one_line_naming_the_value_and_loses_nothing(places, tmp_path, tool, argv, code, words):
    argv = [flag.format(**places, fresh=tmp_path / "new") for flag in argv]
    watched = [places[key] for key in ("model", "export", "ring", "files", "out")]
    before = fingerprint(*watched)
    cache = [f"--cache_dir={tmp_path / 'cache'}"] if tool == "evaluate" else []
    exit_code, _, err = run_tool(TOOLS[tool], *cache, *argv)
    lines = err.strip().splitlines()
    assert exit_code == code, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ERROR" not in lines[0], err
    for word in words:
        assert word.format(**places) in lines[0], lines[0]
    assert fingerprint(*watched) == before
    assert not os.path.exists(tmp_path / "new"), "a failed command left a new directory behind"


def test_the_table_covers_every_command():
    assert len(BAD_INPUTS) >= 30
    assert {tool for tool, *_ in BAD_INPUTS} == set(TOOLS)


def test_running_out_of_memory_is_one_line_and_verbose_shows_the_traceback():
    def main(argv):
        raise MemoryError("Unable to allocate 182. TiB for an array with shape (20000, 100000, 100000)")

    code, _, err = run_tool(main)
    assert code == 1
    assert err.strip().splitlines() == [
        "error: out of memory (Unable to allocate 182. TiB for an array with shape (20000, 100000, 100000)); "
        "use less data, a smaller --image_size or --batch_size"
    ]
    with pytest.raises(MemoryError):
        run_tool(main, "--verbose")


def run_process(tool, *argv):
    """The command as a user runs it: its own process, without the suite's TF_CPP_MIN_LOG_LEVEL."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "synthblend", tool, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    "tool, argv, code, line",
    [
        ("sample", ["--model_dir={model}", "--output={out}/existing.npz", "--num_samples=5"], 2,
         "error: --output={out}/existing.npz exists; pass --overwrite to replace it"),
        ("blend", [*BLEND, "--ratio=2"], 2, "error: --ratio=2.0 must lie in [0, 1] (the share of synthetic data)"),
        ("evaluate", ["--model_dir={model}", "--num_sample=40"], 2, "error: unknown flag --num_sample for synthblend-evaluate; did you mean --num_samples?"),
    ],
    ids=["sample", "blend", "evaluate"],
)
def test_as_a_process_the_exit_status_is_real_and_there_is_no_traceback(places, tool, argv, code, line):
    """TensorFlow's import makes each of these take about 5 s."""
    watched = [places[key] for key in ("model", "export", "out")]
    before = fingerprint(*watched)
    result = run_process(tool, *[flag.format(**places) for flag in argv])
    assert result.returncode == code
    assert result.stderr.strip().splitlines()[0].startswith(line.format(**places)), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fingerprint(*watched) == before
