"""Shared test set-up: quiet TensorFlow, and helpers every test module may use."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from synthblend import zoo  # noqa: E402

# Small enough that every model builds and steps in well under a second.
TINY_ARGUMENTS = {"latent_dim": 4, "width": 8, "depth": 1, "categories": 3, "continuous_codes": 1}
# Data shapes tried in order; each model trains on the first one it accepts.
TINY_SHAPES = [(2,), (28, 28, 1)]


def tiny_model(name, **overrides):
    """A tiny instance of the registered model `name` on the first data shape it accepts."""
    model_class = zoo.get(name)
    shape = tiny_shape(name)
    arguments = {k: v for k, v in TINY_ARGUMENTS.items() if k in model_class.arguments()}
    if name == "vae" and len(overrides.get("data_shape", shape)) == 3:
        arguments.pop("depth")  # a vae on images has no MLP
    settings = {"data_shape": shape, "bounded": len(shape) == 3, **arguments, **overrides}
    return model_class(**settings)


def tiny_shape(name):
    model_class = zoo.get(name)
    for shape in TINY_SHAPES:
        try:
            model_class.check_data(shape, 0)
            return shape
        except zoo.UsageError:
            continue
    raise AssertionError(f"model {name} accepts none of the test shapes {TINY_SHAPES}")


def run_tool(main, *argv):
    """Runs a command's `main` with that command's flags under the CLI's error contract, in this
    process; returns (exit code, stdout, stderr)."""
    from synthblend.trainers import cli, flags

    command = main.__module__.rpartition(".")[2]
    command_flags = flags.COMMANDS.get(command, getattr(sys.modules[main.__module__], "FLAGS", ()))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with pytest.raises(SystemExit) as exit_info:
            cli.execute(main, [f"synthblend-{command}", *argv], command_flags, command)
    return exit_info.value.code or 0, out.getvalue(), err.getvalue()


def all_finite(values):
    return all(math.isfinite(float(v)) for v in values)


@pytest.fixture(autouse=True)
def few_usefulness_steps(monkeypatch):
    """Evaluate's usefulness classifiers train a dozen batches in tests, not 800: the tests read the
    report's shape, and the figures' size is measured in runs (`docs/evaluation.md`)."""
    from synthblend.trainers import evaluate

    monkeypatch.setattr(evaluate, "USEFULNESS_STEPS", 12)


@pytest.fixture(params=zoo.names())
def model_name(request):
    """Every registered model, one test each."""
    return request.param


@pytest.fixture(scope="session")
def conditional_export(tmp_path_factory):
    """A tiny conditional DCGAN on shapes, trained two steps and exported (at most 32 samples a
    request): `(model_dir, export_dir)`, shared by the tests that only read them."""
    from test_train import TINY, run_train
    from synthblend.trainers import export

    root = tmp_path_factory.mktemp("conditional")
    model_dir, export_dir = root / "run", root / "export"
    assert run_train("--model=dcgan", "--dataset=shapes", "--conditional", f"--model_dir={model_dir}", *TINY)[0] == 0
    assert run_tool(export.main, f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--max_samples=32")[0] == 0
    return model_dir, export_dir
