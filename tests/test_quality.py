"""Quality of the shapes recipes, trained for real (minutes each): `pytest -m slow -n 0 -s tests/test_quality.py`.

Each test trains a recipe from configs/ through the train command, then measures it against the
embedded shapes data with a domain classifier trained on the real training split. The numbers
printed here are the ones quoted in docs/quality.md.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from synthblend.datasets import sources
from synthblend.trainers import evaluate, measures, restore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


def train(recipe, model_dir, *extra):
    started = time.perf_counter()
    command = [sys.executable, "-m", "synthblend", "train", f"--flagfile=configs/{recipe}.cfg", f"--model_dir={model_dir}",
               *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{recipe}: trained in {minutes:.1f} min (wall clock, including start-up)")
    return restore.load(str(model_dir)), minutes


@pytest.fixture(scope="module")
def shapes_test():
    dataset, _ = sources.load("shapes", "test")
    batch = next(iter(dataset.batch(4000)))
    return {key: value.numpy() for key, value in batch.items()}


@pytest.fixture(scope="module")
def shapes_classifier(shapes_test):
    dataset, spec = sources.load("shapes")
    model = measures.classifier.train_classifier(dataset, spec)
    accuracy = np.mean(measures.classifier.predict_classes(model, shapes_test["x"]) == shapes_test["y"])
    print(f"\nshapes classifier: {accuracy:.4f} accuracy on the 4000 real test images")
    assert accuracy > 0.98
    return model


def test_default_recipe_draws_recognisable_shapes_in_about_five_minutes(tmp_path, shapes_test, shapes_classifier):
    """The share of samples the classifier assigns to some class with probability >= 0.9 (as
    benchmarks/recipe_quality.py counts it), beside the same share of real test images, with
    every shape among them."""
    trained, minutes = train("dcgan_shapes", tmp_path)
    labels = np.arange(2000) % trained.spec.num_classes
    samples = trained.scale.decode(trained.model.sample(2000, seed=0, labels=labels)).numpy()
    probabilities = tf.nn.softmax(shapes_classifier.predict(samples, verbose=0)).numpy()
    real = tf.nn.softmax(shapes_classifier.predict(shapes_test["x"][:2000].astype(np.float32), verbose=0)).numpy()
    sure, real_sure = probabilities.max(-1) >= 0.9, real.max(-1) >= 0.9
    as_asked = np.mean(sure & (probabilities.argmax(-1) == labels))
    counts = np.bincount(probabilities.argmax(-1)[sure], minlength=trained.spec.num_classes)
    print(f"default recipe: confident samples {sure.mean():.4f} (the class asked for {as_asked:.4f}), "
          f"real test images {real_sure.mean():.4f}; confident samples by class {counts.tolist()}")
    assert minutes <= 6.5
    assert sure.mean() >= 0.75 and as_asked >= 0.7
    assert counts.min() >= 0.15 * sure.sum()


def test_conditional_dcgan_makes_the_class_asked_for(tmp_path, shapes_test, shapes_classifier):
    trained, minutes = train("dcgan_shapes_conditional", tmp_path)
    # Diversity beside recognisability, so that a generator drawing one easy image per class
    # cannot pass: coverage (Naeem et al. 2020) of each class's real test images by its samples,
    # in the classifier's feature space; a class collapsed to one image covers about 1%.
    features = evaluate.feature_model(shapes_classifier)
    per_class, coverage = [], []
    for label in range(trained.spec.num_classes):
        samples = trained.scale.decode(trained.model.sample(500, seed=label, labels=np.full(500, label))).numpy()
        per_class.append(np.mean(measures.classifier.predict_classes(shapes_classifier, samples) == label))
        real = shapes_test["x"][shapes_test["y"] == label][:500].astype(np.float32)
        real_features, fake_features = (features.predict(x, verbose=0)[0] for x in (real, samples))
        coverage.append(measures.features.density_coverage(real_features, fake_features)["coverage"])
    overall = float(np.mean(per_class))
    names = trained.spec.class_names
    print("conditional dcgan on shapes: samples recognised as the class asked for: "
          f"{overall:.4f} (" + ", ".join(f"{n} {a:.3f}" for n, a in zip(names, per_class)) + "); "
          "coverage of the class's real images: " + ", ".join(f"{n} {c:.2f}" for n, c in zip(names, coverage)))
    assert minutes <= 15
    assert overall >= 0.95
    assert min(coverage) >= 0.25


def test_infogan_categorical_code_recovers_the_shape_class(tmp_path, shapes_test, shapes_classifier):
    trained, minutes = train("infogan_shapes", tmp_path)
    data = trained.scale.encode(shapes_test["x"])
    probabilities, _ = trained.model.infer_codes(data)
    accuracy, matching = measures.classifier.best_matching_accuracy(np.argmax(probabilities, axis=-1), shapes_test["y"])
    print(f"infogan on shapes: categorical code vs true class after best matching: {accuracy:.4f} "
          f"(code -> class {matching})")
    # The other direction, reported beside it: samples drawn with code k, as the real-data
    # classifier sees them, against the class that code k stands for on real images.
    names = trained.spec.class_names
    shares = []
    for code in range(trained.model.categories):
        samples = trained.scale.decode(trained.model.sample(500, seed=code, codes=np.full(500, code))).numpy()
        predicted = measures.classifier.predict_classes(shapes_classifier, samples)
        shares.append(np.mean(predicted == matching[code]) if code in matching else 0.0)
    print("infogan samples recognised as the class of their code: "
          f"{np.mean(shares):.4f} (" + ", ".join(f"code {code} ({names[matching[code]]}) {share:.3f}"
                                                 for code, share in enumerate(shares) if code in matching) + ")")
    assert minutes <= 15
    assert accuracy >= 0.95


def test_vae_heldout_elbo_and_recognisable_reconstructions(tmp_path, shapes_test, shapes_classifier):
    import json

    trained, minutes = train("vae_shapes", tmp_path)
    with open(tmp_path / "heldout.json") as file:
        heldout = json.load(file)
    data = trained.scale.encode(shapes_test["x"])
    rebuilt = trained.model.reconstruct(data).numpy()
    error = float(np.mean(np.square(rebuilt - np.asarray(data))))
    recognised = np.mean(
        measures.classifier.predict_classes(shapes_classifier, trained.scale.decode(rebuilt).numpy()) == shapes_test["y"]
    )
    print(f"vae on shapes: held-out ELBO {heldout['elbo']:.2f} nats (reconstruction {heldout['reconstruction']:.2f}, "
          f"KL {heldout['kl']:.2f}); reconstruction MSE {error:.4f} on [0, 1] pixels; "
          f"reconstructions classified as their input's class: {recognised:.4f}")
    assert minutes <= 15
    # The classifier is stricter than a person: small shapes lose their corners when blurred
    # (see the reconstruction picture); chance is 0.25.
    assert recognised >= 0.75
    assert os.path.exists(tmp_path / "samples" / f"reconstruction_step_{trained.step:07d}.png")


def evaluate_run(model_dir, cache_dir):
    command = [sys.executable, "-m", "synthblend", "evaluate", f"--model_dir={model_dir}", "--num_samples=4000",
               f"--cache_dir={cache_dir}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    with open(os.path.join(model_dir, "evaluation", "report.json")) as file:
        return json.load(file)


def test_diffaugment_lowers_fcd_on_a_tenth_of_shapes(tmp_path):
    reports = {}
    for recipe in ("dcgan_shapes_10pct", "dcgan_shapes_10pct_diffaugment"):
        _, minutes = train(recipe, tmp_path / recipe)
        reports[recipe] = evaluate_run(tmp_path / recipe, tmp_path / "cache")
        fidelity = reports[recipe]["fidelity"]
        print(f"{recipe}: FCD {fidelity['frechet_distance']['synthetic']:.3f} "
              f"(floor {fidelity['frechet_distance']['real_floor']:.3f}), KID {fidelity['kid']['synthetic']:.4f} "
              f"+- {fidelity['kid_standard_error']['synthetic']:.4f}, "
              f"precision {fidelity['precision']['synthetic']:.3f}, "
              f"recall {fidelity['recall']['synthetic']:.3f}; trained in {minutes:.1f} min")
    fcd = {recipe: report["fidelity"]["frechet_distance"]["synthetic"] for recipe, report in reports.items()}
    assert fcd["dcgan_shapes_10pct_diffaugment"] < fcd["dcgan_shapes_10pct"]


@pytest.mark.parametrize("recipe", ["gan_purchases", "vae_purchases"])
def test_purchases_recipes_match_the_table_within_ten_minutes(recipe, tmp_path):
    """Column shapes and pair trends of at least 0.9, and train-on-synthetic within 5 points of
    train-on-real for `churned`, measured by the evaluate command on 5,000 rows."""
    _, minutes = train(recipe, tmp_path / "run")
    command = [sys.executable, "-m", "synthblend", "evaluate", f"--model_dir={tmp_path / 'run'}", "--num_samples=5000"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout)
    report = json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())
    usefulness = report["usefulness"]
    assert minutes < 10
    assert report["fidelity"]["column_shapes"]["synthetic"] >= 0.9
    assert report["fidelity"]["pair_trends"]["synthetic"] >= 0.9
    gap = usefulness["train_on_real_test_on_real"] - usefulness["train_on_synthetic_test_on_real"]
    assert gap <= 0.05, usefulness
