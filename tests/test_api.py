"""The Python API (`synthblend.Synthesizer`, `blend`, `load_data`): the README's quick start,
tables as DataFrames, directories shared with the commands, and what importing changes."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import synthblend as sb
from conftest import run_tool
from synthblend.trainers import cli, flags, sample, train
from synthblend.zoo.registry import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Loop settings that keep a fit to seconds.
QUICK = {"batch_size": 8, "steps_per_call": 2, "log_every": 2, "sample_every": 1000, "checkpoint_every": 1000}
TINY_IMAGES = {"width": 8, "latent_dim": 4}


def readme_quick_start() -> str:
    """The Python block of the README's quick start."""
    with open(os.path.join(ROOT, "README.md")) as file:
        text = file.read()
    section = text.split("## Quick start in Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the README's quick start has no python block"
    return "\n".join(blocks)


def test_the_readme_quick_start_runs(tmp_path, monkeypatch):
    """The quick start as written, shrunk to tiny networks, few steps and few examples."""
    code = readme_quick_start()
    shrunk = re.sub(r"steps=\d[\d_]*", "steps=2", code)
    shrunk = shrunk.replace("sb.Synthesizer(\"dcgan\", ", "sb.Synthesizer(\"dcgan\", width=8, latent_dim=4, ")
    shrunk = re.sub(r"sb\.load_data\((\"\w+\"(?:, \"\w+\")?)\)", r"sb.load_data(\1, limit=300)", shrunk)
    shrunk = shrunk.replace(".evaluate(x_test, y_test)", ".evaluate(x_test, y_test, num_samples=40, real_examples=200,"
                                                          f" cache_dir={str(tmp_path / 'cache')!r})")
    shrunk = re.sub(r"steps_per_epoch=\d+", "steps_per_epoch=2", shrunk).replace("batch_size=512", "batch_size=16")
    for name in ("sample_every", "checkpoint_every", "log_every"):
        shrunk = re.sub(rf"{name}=\d+", f"{name}=1", shrunk)
    assert shrunk != code
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(shrunk, "README quick start", "exec"), namespace)
    assert os.path.exists(tmp_path / "runs")
    exported = [name for name in os.listdir(tmp_path / "exports") if os.path.isdir(tmp_path / "exports" / name)]
    assert exported


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A conditional DCGAN fitted on 400 shapes with skewed classes (half of them circles)."""
    x, y = sb.load_data("shapes", limit=2000)
    keep = np.concatenate([np.flatnonzero(y == 0)[:200], np.flatnonzero(y != 0)[:200]])
    x, y = x[keep], y[keep]
    model_dir = tmp_path_factory.mktemp("api") / "run"
    synth = sb.Synthesizer("dcgan", conditional=True, **TINY_IMAGES)
    synth.fit(x, y, steps=2, model_dir=model_dir, **QUICK)
    return synth, x, y


def test_fitted_arrays_sample_in_the_training_shares_or_as_asked(image_run):
    synth, x, y = image_run
    images, labels = synth.sample(400, seed=3)
    assert images.shape == (400, 28, 28, 1) and images.dtype == np.uint8
    # In the shares of the examples trained on: the nine tenths not held out.
    counts = np.asarray(json.loads((Path(synth.model_dir) / "config.json").read_text())["class_counts"])
    np.testing.assert_allclose(np.bincount(labels, minlength=4) / 400, counts / counts.sum(), atol=1 / 400)
    _, uniform = synth.sample(400, seed=3, class_balance="uniform")
    assert np.bincount(uniform, minlength=4).tolist() == [100] * 4
    asked, asked_labels = synth.sample(5, labels=[2] * 5, seed=1)
    assert asked_labels.tolist() == [2] * 5
    again, _ = synth.sample(5, labels=[2] * 5, seed=1)
    np.testing.assert_array_equal(asked, again)
    with pytest.raises(UsageError, match="accepted: 0..3"):
        synth.sample(2, labels=[0, 7])


def test_a_directory_is_shared_with_the_commands(image_run, tmp_path):
    synth, _, _ = image_run
    code, out, err = run_tool(sample.main, f"--model_dir={synth.model_dir}", f"--output={tmp_path / 's.npz'}",
                              "--num_samples=6", "--seed=4")
    assert code == 0, err
    from_command = np.load(tmp_path / "s.npz")
    _, labels = synth.sample(6, seed=4)
    np.testing.assert_array_equal(from_command["y"], labels)
    # And the other way round: a run of the train command loads, then continues through fit.
    model_dir = tmp_path / "command"
    code, _, err = run_tool(train.main, "--model=gan", "--dataset=ring", f"--model_dir={model_dir}", "--width=8",
                            "--depth=1", "--latent_dim=4", "--train_steps=2", "--batch_size=8", "--steps_per_call=2",
                            "--sample_every=1000")
    assert code == 0, err
    loaded = sb.Synthesizer.load(model_dir)
    assert loaded.model_name == "gan" and loaded.step == 2 and loaded.sample(3).shape == (3, 2)
    loaded.fit("ring", steps=4, model_dir=model_dir, **QUICK)
    assert sb.Synthesizer.load(model_dir).step == 4


def test_a_saved_copy_stands_alone(image_run, tmp_path):
    synth, x, y = image_run
    copy = synth.save(tmp_path / "copy")
    assert sorted(os.listdir(os.path.join(copy, "checkpoints"))) == sorted(
        name for name in os.listdir(os.path.join(synth.model_dir, "checkpoints"))
        if name == "checkpoint" or name.startswith(os.path.basename(synth._open().trained.checkpoint) + "."))
    loaded = sb.Synthesizer.load(copy)
    np.testing.assert_array_equal(loaded.sample(4, seed=2)[0], synth.sample(4, seed=2)[0])
    assert json.loads((tmp_path / "copy" / "config.json").read_text())["dataset"].startswith(f"npz:{copy}")
    loaded.fit(x, y, steps=4, model_dir=copy, **QUICK)
    assert loaded.step == 4
    with pytest.raises(UsageError, match="exists; save into a new folder"):
        synth.save(copy)


def test_evaluate_export_plot_and_blend(image_run, tmp_path):
    synth, x, y = image_run
    x_test, y_test = sb.load_data("shapes", "test", limit=200)
    report = synth.evaluate(x_test, y_test, num_samples=40, real_examples=200, cache_dir=str(tmp_path / "cache"),
                            report_dir=str(tmp_path / "report"))
    assert report["heldout"] == "the real data given" and report["num_samples"] == 40
    assert json.loads((tmp_path / "report" / "report.json").read_text())["step"] == synth.step
    path = synth.export(tmp_path / "export", max_samples=16)
    assert os.path.basename(path) == "1" and os.path.exists(os.path.join(path, "saved_model.pb"))
    figure = synth.plot(16)
    assert figure.__class__.__name__ == "Figure" and figure.get_axes()
    real = tf.data.Dataset.from_tensor_slices((x, y))
    stream = sb.blend(real, synth, ratio=0.5, seed=1, batch_size=32)
    batch_x, batch_y = next(iter(stream))
    assert batch_x.shape == (32, 28, 28, 1) and batch_x.dtype == tf.uint8 and batch_y.dtype == y.dtype
    classifier = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Flatten(),
                                      tf.keras.layers.Dense(4)])
    classifier.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = classifier.fit(stream.map(lambda a, b: (tf.cast(a, tf.float32) / 255, b)), steps_per_epoch=2,
                             epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(UsageError, match=r"ratio=2 must lie in \[0, 1\]"):
        sb.blend(real, synth, ratio=2)


def test_a_dataframe_comes_back_with_its_columns_dtypes_and_label_shares(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, 300),
        "income": rng.lognormal(10, 0.5, 300).round(2),
        "plan": pd.Categorical(rng.choice(["basic", "plus", "pro"], 300)),
        "active": rng.random(300) < 0.4,
        "churn": np.where(rng.random(300) < 0.2, "yes", "no"),
    })
    frame.loc[::10, "income"] = np.nan
    synth = sb.Synthesizer("gan", conditional=True, width=8, depth=1, latent_dim=4)
    synth.fit(frame, label="churn", steps=2, model_dir=tmp_path / "run", **QUICK)
    rows = synth.sample(500, seed=0)
    assert list(rows.columns) == list(frame.columns)
    assert rows.dtypes.to_dict() == frame.dtypes.to_dict()
    assert set(rows["plan"].cat.categories) <= {"basic", "plus", "pro"}
    counts = json.loads((tmp_path / "run" / "config.json").read_text())["class_counts"]
    real_share = counts[1] / sum(counts)  # of the rows trained on: "no", "yes"
    assert abs((rows["churn"] == "yes").mean() - real_share) <= 1 / 500
    equal = synth.sample(500, seed=0, class_balance="uniform")
    assert (equal["churn"] == "yes").mean() == 0.5
    report = synth.evaluate(frame.iloc[:100], num_samples=100, real_examples=300, report_dir=str(tmp_path / "rep"))
    assert report["heldout"] == "the real data given" and "column_shapes" in report["fidelity"]
    with pytest.raises(UsageError, match="other data"):
        synth.fit(frame.iloc[:200], label="churn", steps=4, model_dir=tmp_path / "run", **QUICK)


def test_a_dataframe_with_a_datetime_column_and_no_label_samples_datetimes(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"joined": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 400, 120), "D"),
                          "spend": rng.gamma(2.0, 10.0, 120).round(1)})
    frame.loc[::7, "joined"] = pd.NaT
    synth = sb.Synthesizer("gan", width=8, depth=1, latent_dim=4)
    synth.fit(frame, steps=2, model_dir=tmp_path / "run", **QUICK)
    rows = synth.sample(200, seed=0)
    assert rows.dtypes.to_dict() == frame.dtypes.to_dict()
    present = rows["joined"].dropna()
    assert len(present) and frame["joined"].min() <= present.min() and present.max() <= frame["joined"].max()
    assert (present == present.dt.normalize()).all()  # whole days, as the column was written


def test_settings_are_checked_where_they_are_given(tmp_path):
    with pytest.raises(UsageError, match="categories does not apply to dcgan; it is a setting of infogan"):
        sb.Synthesizer("dcgan", categories=3)
    with pytest.raises(UsageError, match="wingspan is not a setting of gan; accepted: .*latent_dim"):
        sb.Synthesizer("gan", wingspan=3)
    with pytest.raises(UsageError, match="unknown model 'gna'"):
        sb.Synthesizer("gna")
    with pytest.raises(UsageError, match="unknown setting 'stepz'; accepted: steps, accountant, batch_size"):
        sb.Synthesizer("gan").fit("ring", stepz=3, model_dir=tmp_path)
    with pytest.raises(UsageError, match="not been fitted"):
        sb.Synthesizer("gan").sample(3)
    assert "dcgan_shapes" in sb.recipes() and sb.models() == ["dcgan", "gan", "infogan", "vae"]


def test_loop_flags_and_fit_settings_have_the_same_defaults():
    values = cli.flag_values_of(flags.COMMANDS["train"])
    for name in train.SETTINGS:
        assert values[name].default == getattr(train.Settings(), name), name


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_each_command_lists_its_own_flags_and_refuses_others(command):
    module = __import__(f"synthblend.trainers.{command}", fromlist=["main"])
    code, out, _ = run_tool(module.main, "--help")
    assert code == 0
    own = {flag.name for flag in flags.COMMANDS[command]}
    listed = set(re.findall(r"^  --(\w+):", out, re.M))
    assert listed == own | {"verbose", "flagfile"}, listed ^ (own | {"verbose", "flagfile"})
    other = next(flag.name for held in flags.COMMANDS.values() for flag in held if flag.name not in own)
    code, _, err = run_tool(module.main, f"--{other}=1")
    assert code == 2 and f"--{other} is not a flag of synthblend-{command}; it belongs to" in err


def test_a_recipe_is_named_by_name_and_flags_after_it_override_it(tmp_path):
    code, out, err = run_tool(train.main, "--recipe=gan_ring", f"--model_dir={tmp_path}", "--train_steps=2",
                              "--width=8", "--steps_per_call=2", "--sample_every=1000")
    assert code == 0, err
    record = json.loads((tmp_path / "config.json").read_text())
    assert record["model"] == "gan" and record["config"]["width"] == 8
    code, _, err = run_tool(train.main, "--recipe=gan_rnig", f"--model_dir={tmp_path}")
    assert code == 2 and "--recipe=gan_rnig: no such recipe; accepted: " in err and "gan_ring" in err


IMPORT_CHECK = textwrap.dedent("""
    import json, os, sys
    import tensorflow  # TensorFlow's own import is not the library's doing
    import matplotlib
    from absl import flags
    before = {"backend": dict.__getitem__(matplotlib.rcParams, "backend"), "fd2": os.readlink("/proc/self/fd/2"),
              "environ": dict(os.environ), "flags": sorted(flags.FLAGS), "pyplot": "matplotlib.pyplot" in sys.modules}
    import pkgutil, importlib, synthblend
    for package in ("synthblend", "synthblend.zoo", "synthblend.datasets", "synthblend.trainers"):
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(module.__path__):
            importlib.import_module(f"{package}.{info.name}")
    synthblend.Synthesizer, synthblend.blend
    after = {"backend": dict.__getitem__(matplotlib.rcParams, "backend"), "fd2": os.readlink("/proc/self/fd/2"),
             "environ": dict(os.environ), "flags": sorted(flags.FLAGS), "pyplot": "matplotlib.pyplot" in sys.modules}
    print(json.dumps({key: [before[key], after[key]] for key in before if before[key] != after[key]}))
""")


def test_importing_the_library_changes_nothing_global(tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK], cwd=tmp_path, capture_output=True, text=True,
                            env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}


def test_installed_beside_a_package_named_datasets_both_work(tmp_path):
    """Hugging Face Datasets' import name is `datasets`; ours lives under `synthblend`."""
    stand_in = tmp_path / "site" / "datasets"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("OWNER = 'someone else'\n")
    program = ("import datasets, synthblend.datasets.sources as ours; "
               "assert datasets.OWNER == 'someone else'; "
               "x, y = __import__('synthblend').load_data('ring', limit=5); print(x.shape, datasets.__file__)")
    result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(stand_in) in result.stdout and "(5, 2)" in result.stdout


def test_the_wheel_installs_one_top_level_package_with_its_recipes(tmp_path):
    # Built from a copy of the tracked files, so that the build leaves nothing in the checkout.
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    source = tmp_path / "source"
    for name in tracked:
        if os.path.exists(os.path.join(ROOT, name)):
            os.makedirs(source / os.path.dirname(name), exist_ok=True)
            shutil.copy(os.path.join(ROOT, name), source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                             str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    import zipfile

    (wheel,) = [name for name in os.listdir(tmp_path) if name.endswith(".whl")]
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {entry for entry in top if not entry.endswith(".dist-info")} == {"synthblend"}, top
    assert "synthblend/configs/dcgan_shapes.cfg" in names and "synthblend/zoo/dcgan.py" in names
    assert not any(name.startswith(("synthblend/tests", "benchmarks", "synthblend/benchmark")) for name in names)
