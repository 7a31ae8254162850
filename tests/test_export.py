"""Export: every signature of every registered model, loaded as TF Serving loads it and through
`tf.saved_model.load`, against the model in Python; versions; the Keras file; the CLI."""

import json
import re
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from synthblend import zoo
from synthblend.zoo.base import share_labels
from conftest import run_tool, tiny_model
from synthblend.datasets import pipeline
from synthblend.datasets.sources import DataSpec
from test_train import TINY, run_train, snapshot
from synthblend.trainers import export, restore

MAX_SAMPLES = 16
SEED = 7

# (registered model, constructor overrides) covering every family and conditioning.
CASES = [(name, {}) for name in zoo.names()] + [
    ("gan", {"conditional": True}),
    ("dcgan", {"conditional": True}),
    ("vae", {"conditional": True}),
    ("vae", {"data_shape": (28, 28, 1), "bounded": True}),
]


def case_id(case):
    name, overrides = case
    return "-".join([name] + [k if v is True else f"{k}={v}" for k, v in overrides.items()])


def trained_model(name, overrides):
    """A tiny untrained model wrapped as a restored one, with a data spec to match."""
    model = tiny_model(name, num_classes=3, **overrides)
    if len(model.data_shape) == 3:
        spec = DataSpec(name="toy", shape=model.data_shape, value_range=(0.0, 255.0), num_classes=3)
    else:
        spec = DataSpec(name="toy", shape=model.data_shape, value_range=None, loc=(1.0, -2.0), scale=(2.0, 0.5),
                        num_classes=3)
    record = {"model": name, "dataset": "toy", "config": model.get_config(), "data_spec": spec.to_json()}
    return restore.TrainedModel(model=model, record=record, spec=spec, scale=pipeline.scaling(spec, model.data_range),
                                checkpoint="none", step=0, averaged=False)


def example_inputs(model, name, specs):
    """Valid inputs for signature `name` of `model`, four examples each."""
    rng = np.random.default_rng(0)
    inputs = {}
    for spec in specs:
        if spec.name in ("num_samples",):
            inputs[spec.name] = np.int32(4)
        elif spec.name == "seed":
            inputs[spec.name] = np.int64(SEED)
        elif spec.name == "labels":
            inputs[spec.name] = np.array([2, 0, 1, 2], np.int32)
        elif spec.name == "codes":
            inputs[spec.name] = np.array([1, 0, 2, 1], np.int32)
        elif spec.name == "x":
            data = rng.uniform(0, 255, (4, *model.data_shape)) if len(model.data_shape) == 3 else rng.normal(
                size=(4, *model.data_shape))
            inputs[spec.name] = data.astype(np.float32)
        else:
            inputs[spec.name] = rng.normal(size=(4, spec.shape[-1])).astype(np.float32)
    return inputs


def expected_outputs(trained, name, inputs):
    """What the model in Python gives for signature `name`, through its public methods."""
    model, scale = trained.model, trained.scale
    labels = inputs.get("labels")
    x = scale.encode(inputs["x"]) if "x" in inputs else None
    if name == "sample":
        # Conditional exports draw labels in the training data's class shares.
        count, counts = int(inputs["num_samples"]), trained.record.get("class_counts")
        shares = share_labels(count, counts) if model.conditional and counts else None
        return {"samples": scale.decode(model.sample(count, seed=SEED, labels=shares))}
    if name == "sample_labels":
        return {"samples": scale.decode(model.sample(len(labels), seed=SEED, labels=labels)), "labels": labels}
    if name == "sample_codes":
        return {"samples": scale.decode(model.sample(len(inputs["codes"]), seed=SEED, codes=inputs["codes"])),
                "codes": inputs["codes"]}
    if name == "serving_default":
        if "codes" in inputs:
            latents = tf.concat([inputs["z"], tf.one_hot(inputs["codes"], model.categories), inputs["continuous"]], -1)
        else:
            latents = inputs["z"]
        return {"samples": scale.decode(model.generate(latents, labels))}
    if name == "encode":
        mean, log_variance = model.encode(x, labels)
        return {"mean": mean, "log_variance": log_variance}
    if name == "decode":
        return {"samples": scale.decode(model.decode(inputs["z"], labels))}
    if name == "reconstruct":
        return {"reconstruction": scale.decode(model.reconstruct(x, labels))}
    if name == "infer_codes":
        probabilities, continuous = model.infer_codes(x)
        return {"probabilities": probabilities, "continuous": continuous}
    raise AssertionError(f"no expectation written for signature {name!r}")


def run_in_session(path, requests):
    """Runs `{signature: inputs}` through the session-based SavedModel loader (TF Serving's)."""
    return dict(zip(requests, run_each_in_session(path, list(requests.items()))))


def run_each_in_session(path, requests):
    """Runs each `(signature, inputs)` of the list `requests` through one session-based load of
    `path` (as TF Serving serves requests from one load); returns their outputs in order."""
    results = []
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], path)
        for name, inputs in requests:
            signature = meta_graph.signature_def[name]
            assert set(signature.inputs) == set(inputs), name
            fetches = {key: info.name for key, info in signature.outputs.items()}
            feeds = {signature.inputs[key].name: value for key, value in inputs.items()}
            results.append(session.run(fetches, feeds))
    return results


def assert_outputs_match(actual, expected, context):
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(actual[key]), np.asarray(value), rtol=1e-4, atol=1e-3,
                                   err_msg=f"{context}: {key}")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Every case exported once: {case id: (trained, version path, signatures)}."""
    results = {}
    for case in CASES:
        trained = trained_model(*case)
        base = tmp_path_factory.mktemp(case_id(case))
        path = export.export(trained, str(base), MAX_SAMPLES)
        signatures = trained.model.serving_signatures(trained.scale, MAX_SAMPLES)
        results[case_id(case)] = (trained, path, {name: specs for name, (_, specs) in signatures.items()})
    return results


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_signature_matches_the_model_in_both_loaders(exports, case):
    trained, path, signatures = exports[case_id(case)]
    expected_names = {"serving_default", "sample"}
    if trained.model.conditional:
        expected_names.add("sample_labels")
    assert expected_names <= set(signatures)
    requests = {name: example_inputs(trained.model, name, specs) for name, specs in signatures.items()}
    in_session = run_in_session(path, requests)
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == set(signatures)
    for name, inputs in requests.items():
        expected = expected_outputs(trained, name, inputs)
        assert_outputs_match(in_session[name], expected, f"{name} (session loader)")
        eager = loaded.signatures[name](**{key: tf.constant(value) for key, value in inputs.items()})
        assert_outputs_match(eager, expected, f"{name} (tf.saved_model.load)")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_sample_is_the_same_for_the_same_seed_and_other_for_another(exports, case):
    _, path, _ = exports[case_id(case)]
    sample = tf.saved_model.load(path).signatures["sample"]
    first = sample(num_samples=tf.constant(5), seed=tf.constant(3, tf.int64))["samples"].numpy()
    again = tf.saved_model.load(path).signatures["sample"](num_samples=tf.constant(5),
                                                           seed=tf.constant(3, tf.int64))["samples"].numpy()
    other = sample(num_samples=tf.constant(5), seed=tf.constant(4, tf.int64))["samples"].numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    # REST's row format sends one-element vectors instead of scalars.
    rows = sample(num_samples=tf.constant([5]), seed=tf.constant([3], tf.int64))["samples"].numpy()
    np.testing.assert_array_equal(first, rows)


def bad_requests(model):
    """Requests each export must refuse: (signature, inputs, words in the error)."""
    requests = [
        ("sample", {"num_samples": np.int32(MAX_SAMPLES + 1), "seed": np.int64(0)}, f"at most {MAX_SAMPLES}"),
        ("sample", {"num_samples": np.int32(0), "seed": np.int64(0)}, "at least 1"),
    ]
    if model.conditional:
        requests += [
            ("sample_labels", {"labels": np.array([0, 3], np.int32), "seed": np.int64(0)}, "0..2"),
            ("sample_labels", {"labels": np.array([-1], np.int32), "seed": np.int64(0)}, "0..2"),
            ("sample_labels", {"labels": np.zeros(MAX_SAMPLES + 1, np.int32), "seed": np.int64(0)},
             f"at most {MAX_SAMPLES}"),
        ]
    if isinstance(model, zoo.get("infogan")):
        requests += [
            ("sample_codes", {"codes": np.array([3], np.int32), "seed": np.int64(0)}, "0..2"),
            ("serving_default", {"z": np.zeros((1, model.latent_dim), np.float32), "codes": np.array([5], np.int32),
                                 "continuous": np.zeros((1, model.continuous_codes), np.float32)}, "0..2"),
            ("serving_default", {"z": np.zeros((1, model.latent_dim), np.float32), "codes": np.array([0], np.int32),
                                 "continuous": np.zeros((1, model.continuous_codes + 1), np.float32)}, "shape"),
        ]
    return requests


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("dcgan", "infogan") or c[1]], ids=case_id)
def test_bad_requests_fail_in_both_loaders(exports, case):
    trained, path, _ = exports[case_id(case)]
    loaded = tf.saved_model.load(path)
    for name, inputs, words in bad_requests(trained.model):
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError), match=words):
            run_in_session(path, {name: inputs})
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError)):
            loaded.signatures[name](**{key: tf.constant(value) for key, value in inputs.items()})


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_keras_file_reloads_in_safe_mode_and_samples_in_data_space(exports, case):
    trained, path, _ = exports[case_id(case)]
    generator = keras.models.load_model(os.path.join(path, export.KERAS_FILE), safe_mode=True)
    model = trained.model
    latents = model.latents(4, seed=SEED)
    labels = np.array([0, 1, 2, 0], np.int32)
    inputs = [latents, labels] if model.conditional else latents
    expected = trained.scale.decode(model.generate(latents, labels if model.conditional else None))
    np.testing.assert_allclose(generator.predict(inputs, verbose=0), expected, rtol=1e-4, atol=1e-3)


def test_versions_count_up_and_never_overwrite(tmp_path):
    trained = trained_model("gan", {})
    first = export.export(trained, str(tmp_path), MAX_SAMPLES)
    before = snapshot(first)
    (tmp_path / "notes").mkdir()
    second = export.export(trained, str(tmp_path), MAX_SAMPLES)
    assert os.path.basename(first) == "1" and os.path.basename(second) == "2"
    assert snapshot(first) == before
    assert export.versions(str(tmp_path)) == [1, 2]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".partial")]
    assert export.read_export(str(tmp_path))[0] == second
    assert export.read_export(first)[1]["max_samples"] == MAX_SAMPLES


def test_session_loader_through_saved_model_cli(exports):
    trained, path, _ = exports[case_id(("dcgan", {"conditional": True}))]
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", "sample_labels",
         "--input_exprs", "labels=[2,1];seed=7"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Result for output key labels" in result.stdout and "[2 1]" in result.stdout


def test_export_command_writes_version_config_and_prints_signatures(tmp_path):
    model_dir, export_dir = tmp_path / "run", tmp_path / "exports" / "shapes"
    assert run_train("--model=vae", "--dataset=ring", "--conditional=false", f"--model_dir={model_dir}", *TINY)[0] == 0
    code, out, err = run_tool(export.main, f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                              "--max_samples=64")
    assert code == 0, err
    for signature in ("serving_default(z)", "sample(num_samples, seed)", "encode(x)", "decode(z)", "reconstruct(x)"):
        assert f"signature {signature}" in out
    config = (export_dir / "models.config").read_text()
    assert 'name: "shapes"' in config and 'base_path: "/models/shapes"' in config
    metadata = json.loads((export_dir / "1" / "assets.extra" / "synthblend.json").read_text())
    assert metadata["model"] == "vae" and metadata["step"] == 2 and metadata["max_samples"] == 64
    assert run_tool(export.main, f"--model_dir={model_dir}", f"--export_dir={export_dir}")[0] == 0
    assert export.versions(str(export_dir)) == [1, 2]


def test_bad_exports_are_one_line_errors_that_change_nothing(tmp_path):
    model_dir = tmp_path / "run"
    assert run_train("--model=gan", "--dataset=ring", f"--model_dir={model_dir}", *TINY)[0] == 0
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    cases = [
        ([f"--model_dir={tmp_path / 'missing'}", f"--export_dir={tmp_path / 'e'}"], "does not exist"),
        ([f"--model_dir={foreign}", f"--export_dir={tmp_path / 'e'}"], "holds no config.json"),
        ([f"--model_dir={model_dir}", f"--export_dir={a_file}"], "is a file"),
        ([f"--model_dir={model_dir}"], "--export_dir is required"),
        ([f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'e'}", "--max_samples=0"], "max_samples"),
    ]
    before = snapshot(tmp_path)
    for argv, words in cases:
        code, _, err = run_tool(export.main, *argv)
        assert code != 0 and words in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "e").exists()



# -- the serving page's REST requests ------------------------------------------------------------

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "serving.md")
# Model names the serving page serves, and the recipe each was exported from.
README_MODELS = {"shapes": "dcgan_shapes_conditional", "ring": "vae_ring", "shapes_infogan": "infogan_shapes"}


def readme_requests():
    """(model name, JSON body) of every curl request on docs/serving.md."""
    section = open(README).read()
    requests = []
    for line in section.splitlines():
        if "curl" not in line or line.lstrip().startswith("#"):
            continue
        name = re.search(r"/v1/models/(\w+):predict", line).group(1)
        literal = re.search(r"-d '(.*)'$", line)
        if literal:
            body = literal.group(1)
        else:
            program = re.match(r"python3 -c '(.*)' \| curl", line).group(1)
            body = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
        requests.append((name, json.loads(body)))
    return requests


def rest_feeds(body, inputs):
    """Inputs of a signature from a REST request body, by TF Serving's rules (api_rest.md):
    rows (`instances`) are stacked along a new batch dimension per named input, columns
    (`inputs`) are taken as they are; a bare value feeds the signature's only input."""
    if "instances" in body:
        rows = body["instances"]
        if isinstance(rows[0], dict):
            assert all(set(row) == set(rows[0]) for row in rows), "rows name different inputs"
            values = {key: [row[key] for row in rows] for key in rows[0]}
        else:
            (only,) = inputs
            values = {only: rows}
    else:
        columns = body["inputs"]
        if isinstance(columns, dict):
            values = columns
        else:
            (only,) = inputs
            values = {only: columns}
    assert set(values) == set(inputs), f"request names {sorted(values)}, signature takes {sorted(inputs)}"
    return {key: np.asarray(value, dtype=inputs[key]) for key, value in values.items()}


def test_readme_rest_bodies_run_against_exports_of_their_recipes(tmp_path):
    requests = readme_requests()
    assert {name for name, _ in requests} == set(README_MODELS)
    tiny = [flag for flag in TINY if not flag.startswith("--latent_dim")] + ["--eval_split=none"]
    paths = {}
    for name, recipe in README_MODELS.items():
        model_dir, export_dir = tmp_path / "runs" / name, tmp_path / "exports" / name
        assert run_train(f"--recipe={recipe}", f"--model_dir={model_dir}", *tiny)[0] == 0
        assert run_tool(export.main, f"--model_dir={model_dir}", f"--export_dir={export_dir}")[0] == 0
        paths[name] = os.path.join(export_dir, "1")
    loaded = {name: tf.saved_model.load(path) for name, path in paths.items()}
    signatures_seen = {name: set() for name in README_MODELS}
    served = {name: [] for name in README_MODELS}
    for name, body in requests:
        signature_name = body.get("signature_name", "serving_default")
        signatures_seen[name].add(signature_name)
        _, specs = loaded[name].signatures[signature_name].structured_input_signature
        feeds = rest_feeds(body, {key: spec.dtype.as_numpy_dtype for key, spec in specs.items()})
        served[name].append((signature_name, feeds))
    for name, path in paths.items():
        for (signature_name, feeds), outputs in zip(served[name], run_each_in_session(path, served[name])):
            assert all(np.all(np.isfinite(value)) for value in outputs.values() if value.dtype.kind == "f")
            if "samples" in outputs and signature_name in ("sample", "sample_labels", "sample_codes"):
                count = int(np.reshape(feeds["num_samples"], [])) if "num_samples" in feeds else np.size(
                    feeds.get("labels", feeds.get("codes")))
                assert len(outputs["samples"]) == count
    # Every signature of every served model has a documented request.
    for name, seen in signatures_seen.items():
        assert seen == set(loaded[name].signatures), name
