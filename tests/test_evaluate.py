"""The evaluate command on tiny runs of every family: what the report holds, the classifier
cache, exports as sources, the Inception option's mechanics, and bad input."""

import json
import os

import keras
import numpy as np
import pytest

from conftest import run_tool
from test_train import TINY, run_train, snapshot
from synthblend.trainers import evaluate, export

SMALL = ["--num_samples=40", "--real_examples=200"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    """A tiny unconditional DCGAN on shapes, shared by the tests that write their reports elsewhere."""
    return trained(tmp_path_factory.mktemp("dcgan"), "--model=dcgan", "--dataset=shapes")


def trained(tmp_path, *argv):
    model_dir = tmp_path / "run"
    code, _, err = run_train(*argv, f"--model_dir={model_dir}", *TINY)
    assert code == 0, err
    return model_dir


def run_evaluate(cache_dir, *argv):
    code, out, err = run_tool(evaluate.main, *argv, *SMALL, f"--cache_dir={cache_dir}")
    assert code == 0, err
    return out


def read_report(folder):
    with open(folder / "report.json") as file:
        return json.load(file)


def test_conditional_images_report_every_section_beside_its_floor(tmp_path, cache_dir):
    model_dir = trained(tmp_path, "--model=dcgan", "--dataset=shapes", "--conditional")
    out = run_evaluate(cache_dir, f"--model_dir={model_dir}")
    folder = model_dir / "evaluation"
    report = read_report(folder)
    assert report["model"] == "dcgan" and report["step"] == 2 and report["num_samples"] == 40
    assert report["space"] == "penultimate features of the domain classifier"
    for name in ("frechet_distance", "kid", "kid_standard_error", "precision", "recall", "density", "coverage"):
        assert set(report["fidelity"][name]) == {"synthetic", "real_floor"}, name
    # Real against real is far closer than an untrained generator against real.
    assert report["fidelity"]["frechet_distance"]["real_floor"] < report["fidelity"]["frechet_distance"]["synthetic"]
    assert 1.0 <= report["classes"]["classifier_score"]["real_floor"] <= 4.0
    assert set(report["conditional"]["per_class"]) == {"circle", "square", "triangle", "cross"}
    usefulness = report["usefulness"]
    assert usefulness["examples"] == 40 and usefulness["classifier_steps"] == 12
    assert 0 <= usefulness["train_on_synthetic_test_on_real"] <= 1
    memorisation = report["memorisation"]
    assert 0 <= memorisation["share_closer_than_holdout_5th_percentile"] <= 1
    assert len(memorisation["closest_pairs"]) == 8
    assert report["classifier"]["trained_on"] == 200
    for picture in ("samples", "class_histogram", "memorisation", "closest_pairs"):
        assert (folder / f"{picture}.png").exists(), picture
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "real-vs-real floor" in page
    assert [name for name in os.listdir(folder) if name.startswith("events.out.tfevents")]
    assert "frechet_distance" in out and "report.html" in out


def test_the_classifier_is_cached_by_dataset_and_fingerprint(tmp_path, cache_dir, dcgan_run):
    model_dir = dcgan_run
    run_evaluate(cache_dir, f"--model_dir={model_dir}", f"--report_dir={tmp_path / 'first'}")
    first = read_report(tmp_path / "first")["classifier"]
    cached = first["path"]
    stamp = os.path.getmtime(cached)
    run_evaluate(cache_dir, f"--model_dir={model_dir}", f"--report_dir={tmp_path / 'again'}")
    assert read_report(tmp_path / "again")["classifier"] == first and os.path.getmtime(cached) == stamp
    run_tool(evaluate.main, f"--model_dir={model_dir}", "--num_samples=40", "--real_examples=300",
             f"--cache_dir={cache_dir}", f"--report_dir={tmp_path / 'more'}")
    assert read_report(tmp_path / "more")["classifier"]["fingerprint"] != first["fingerprint"]


def test_toy_report_counts_modes_and_plots_them(tmp_path, cache_dir):
    model_dir = trained(tmp_path, "--model=gan", "--dataset=ring")
    run_evaluate(cache_dir, f"--model_dir={model_dir}")
    report = read_report(model_dir / "evaluation")
    assert report["space"] == "standardised vectors"
    floor = report["modes"]["real_floor"]
    assert floor["modes_total"] == 8 and floor["modes_covered"] == 8 and floor["high_quality_share"] > 0.95
    assert 0 <= report["modes"]["synthetic"]["modes_covered"] <= 8
    assert (model_dir / "evaluation" / "samples.png").exists()


def test_infogan_codes_and_vae_reconstructions(tmp_path, cache_dir):
    infogan = trained(tmp_path / "infogan", "--model=infogan", "--dataset=shapes", "--categories=4")
    run_evaluate(cache_dir, f"--model_dir={infogan}")
    codes = read_report(infogan / "evaluation")["codes"]
    assert 0.25 <= codes["categorical_accuracy_after_matching"] <= 1
    correlations = codes["continuous_code_factor_correlations"]["code_0"]
    assert set(correlations) == {"scale", "rotation", "position_x", "position_y"}
    assert (infogan / "evaluation" / "code_correlations.png").exists()
    vae = trained(tmp_path / "vae", "--model=vae", "--dataset=shapes")
    run_evaluate(cache_dir, f"--model_dir={vae}")
    reconstruction = read_report(vae / "evaluation")["reconstruction"]
    assert 0 <= reconstruction["mean_squared_error"] <= 1 and "heldout_elbo" in reconstruction
    assert (vae / "evaluation" / "reconstructions.png").exists()


def test_an_export_is_measured_like_its_model_dir(tmp_path, cache_dir):
    model_dir = trained(tmp_path, "--model=vae", "--dataset=ring")
    export_dir = tmp_path / "export"
    assert run_tool(export.main, f"--model_dir={model_dir}", f"--export_dir={export_dir}")[0] == 0
    run_evaluate(cache_dir, f"--model_dir={model_dir}")
    run_evaluate(cache_dir, f"--export_dir={export_dir}")
    from_dir, from_export = read_report(model_dir / "evaluation"), read_report(export_dir / "evaluation")
    for name, pair in from_dir["fidelity"].items():
        assert from_export["fidelity"][name]["synthetic"] == pytest.approx(pair["synthetic"], rel=1e-3, abs=1e-4), name
    assert from_export["reconstruction"]["mean_squared_error"] == pytest.approx(
        from_dir["reconstruction"]["mean_squared_error"], rel=1e-4)


def test_inception_fid_runs_from_local_weights(tmp_path, cache_dir, dcgan_run):
    weights = tmp_path / "inception.weights.h5"
    keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                   input_shape=(299, 299, 3)).save_weights(str(weights))
    code, _, err = run_tool(evaluate.main, f"--model_dir={dcgan_run}", "--num_samples=10", "--real_examples=200",
                            f"--cache_dir={cache_dir}", f"--inception_weights={weights}",
                            f"--report_dir={tmp_path / 'report'}")
    assert code == 0, err
    fid = read_report(tmp_path / "report")["inception_fid"]
    assert np.isfinite(fid["synthetic"]) and np.isfinite(fid["real_floor"]) and fid["synthetic"] >= 0


def test_bad_evaluations_are_one_line_errors_that_change_nothing(tmp_path, cache_dir):
    model_dir = trained(tmp_path, "--model=gan", "--dataset=ring")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([], "give one of --model_dir"),
        ([f"--model_dir={model_dir}", f"--export_dir={model_dir}"], "give one of"),
        ([f"--model_dir={model_dir}", "--num_samples=3"], "--num_samples=3 is too few"),
        ([f"--model_dir={empty}"], "holds no config.json"),
        ([f"--export_dir={empty}"], "holds no exported version"),
        ([f"--model_dir={model_dir}", f"--report_dir={a_file}"], "is a file"),
        ([f"--model_dir={model_dir}", f"--inception_weights={tmp_path / 'none.h5'}"], "does not exist"),
        ([f"--model_dir={model_dir}", f"--inception_weights={a_file}"], "inception"),
    ]
    before = snapshot(tmp_path)
    for argv, words in cases:
        code, _, err = run_tool(evaluate.main, *argv, f"--cache_dir={cache_dir}")
        assert code != 0 and words in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    assert snapshot(tmp_path) == before
