"""Synthetic sources in tf.data, the blend command and the utility curve, on tiny runs."""

import json

import numpy as np
import pytest

from conftest import run_tool
from synthblend.datasets import blend, sources
from test_train import TINY, run_train, snapshot
from synthblend.trainers import blend as blend_command
from synthblend.trainers import sample, utility


@pytest.fixture(scope="module")
def ring_model(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("ring") / "run"
    assert run_train("--model=gan", "--dataset=ring", "--conditional", f"--model_dir={model_dir}", *TINY)[0] == 0
    return model_dir


def real_shapes(split="train[:64]"):
    dataset, spec = sources.load("shapes", split)
    return dataset.map(lambda e: {"x": e["x"], "y": e["y"]}), spec


def test_synthetic_source_is_endless_reproducible_and_typed_like_the_real_data(conditional_export):
    model_dir, export_dir = conditional_export
    real, _ = real_shapes()
    from_dir = blend.synthetic(sample.ModelSource(str(model_dir), True), batch_size=16, class_weights=[1, 0, 0, 1],
                               like=real.element_spec, seed=5)
    from_export = blend.synthetic(sample.ExportSource(str(export_dir)), batch_size=16, class_weights=[1, 0, 0, 1],
                                  like=real.element_spec, seed=5)
    assert from_dir.element_spec == real.element_spec
    first = next(iter(from_dir.batch(40)))
    again = next(iter(from_dir.batch(40)))
    exported = next(iter(from_export.batch(40)))
    np.testing.assert_array_equal(first["x"], again["x"])
    np.testing.assert_array_equal(first["y"], exported["y"])
    assert np.abs(first["x"].numpy().astype(int) - exported["x"].numpy().astype(int)).max() <= 1
    assert set(np.unique(first["y"])) <= {0, 3}
    # Batches of the generator are drawn from different seeds.
    assert not np.array_equal(first["x"][:16], first["x"][16:32])


def test_mixing_real_and_synthetic_keeps_the_ratio_and_the_tags(conditional_export):
    model_dir, _ = conditional_export
    real, _ = real_shapes()
    synthetic = blend.synthetic(sample.ModelSource(str(model_dir), True), like=real.element_spec)
    mixed = blend.mix({"real": real.repeat(), "synthetic": synthetic}, {"real": 0.7, "synthetic": 0.3})
    shares = blend.realised_shares(mixed, 2000)
    assert shares["synthetic"] == pytest.approx(0.3, abs=0.04)


def test_blend_command_writes_provenance_and_the_result_trains(conditional_export, tmp_path):
    model_dir, export_dir = conditional_export
    path = tmp_path / "blended.npz"
    code, out, err = run_tool(blend_command.main, "--dataset=shapes", "--split=train[:100]", f"--model_dir={model_dir}",
                              "--ratio=0.25", "--num_examples=800", f"--output={path}")
    assert code == 0, err
    data = np.load(path)
    assert data["x"].shape == (800, 28, 28, 1) and data["x"].dtype == np.uint8 and data["y"].shape == (800,)
    share = np.mean(data["source"] == "synthetic")
    assert share == pytest.approx(0.25, abs=0.06) and set(np.unique(data["source"])) == {"real", "synthetic"}
    assert f"synthetic {share:.3f}" in out
    # Real examples come from the 100 given; synthetic ones are new.
    real = np.stack([e["x"] for e in sources.load("shapes", "train[:100]")[0].as_numpy_iterator()])
    real_bytes = {image.tobytes() for image in real}
    assert all(image.tobytes() in real_bytes for image in data["x"][data["source"] == "real"])
    code, _, err = run_train("--model=dcgan", f"--dataset=npz:{path}", "--conditional", f"--model_dir={tmp_path / 'm'}",
                             *TINY)
    assert code == 0, err
    interpolated = tmp_path / "interpolated.npz"
    assert run_tool(blend_command.main, "--dataset=shapes", "--split=train[:100]", f"--export_dir={export_dir}",
                    "--method=interpolate", "--ratio=0.5", "--num_examples=50", f"--output={interpolated}")[0] == 0
    data = np.load(interpolated)
    assert set(np.unique(data["source"])) == {"interpolated"} and data["x"].shape == (50, 28, 28, 1)


def test_utility_curve_and_the_blend_scatter(ring_model, tmp_path):
    code, out, err = run_tool(utility.main, f"--model_dir={ring_model}", "--dataset=ring", "--split=train[:200]",
                              "--ratios=0,0.5", "--classifier_steps=5", "--repeats=2", f"--report_dir={tmp_path}")
    assert code == 0, err
    result = json.loads((tmp_path / "utility.json").read_text())
    assert [row["ratio"] for row in result["curve"]] == [0.0, 0.5]
    assert all(len(row["accuracies"]) == 2 and 0 <= row["accuracy_mean"] <= 1 for row in result["curve"])
    assert result["real_examples"] == 200 and result["test_examples"] == 4000
    assert (tmp_path / "utility_curve.png").exists() and (tmp_path / "blend_scatter.png").exists()
    assert "ratio 0.50" in out


def test_bad_blends_are_one_line_errors_that_change_nothing(conditional_export, tmp_path):
    model_dir, _ = conditional_export
    unconditional = tmp_path / "plain"
    assert run_train("--model=gan", "--dataset=ring", f"--model_dir={unconditional}", *TINY)[0] == 0
    out = f"--output={tmp_path / 'b.npz'}"
    common = ["--dataset=shapes", f"--model_dir={model_dir}", out, "--num_examples=10"]
    cases = [
        (blend_command.main, [*common, "--ratio=1.5"], "--ratio=1.5 must lie in [0, 1]"),
        (blend_command.main, ["--dataset=shapes", out, "--num_examples=10"], "give one of --model_dir"),
        (blend_command.main, [*common[:2], f"--output={tmp_path / 'b.csv'}", "--num_examples=10"], "other data .npz"),
        (blend_command.main, [*common[:3], "--num_examples=0"], "--num_examples=0"),
        (blend_command.main, ["--dataset=ring", *common[1:]], "the model makes (28, 28, 1)"),
        (blend_command.main, ["--dataset=ring", f"--model_dir={unconditional}", out, "--num_examples=10"],
         "needs a conditional model"),
        (blend_command.main, [*common, "--method=stack"], "--method"),
        (utility.main, ["--dataset=ring", f"--model_dir={unconditional}"], "needs a conditional model"),
        (utility.main, ["--dataset=shapes", f"--model_dir={model_dir}", "--ratios=0,1"], "--ratios=0,1: 1 is not a share"),
        (utility.main, ["--dataset=shapes", f"--model_dir={model_dir}", "--ratios=a"], "'a' is not a number"),
    ]
    before = snapshot(tmp_path)
    for main, argv, words in cases:
        code, _, err = run_tool(main, *argv)
        assert code != 0 and words in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    assert snapshot(tmp_path) == before
