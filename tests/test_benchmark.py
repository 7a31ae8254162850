"""The throughput benchmark: every variant is measured, and each figure is derived as documented.

Tiny sizes only; no timing is asserted, since the machine running the tests may be busy.
"""

import json
import math
import statistics

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_tool, tiny_model
from benchmarks import benchmark

EXPECTED_VARIANTS = {
    "dcgan": ["a", "b", "c", "e"],
    "gan": ["a", "b", "c", "d", "e"],
    "vae": ["a", "b", "c"],
    "input": ["augmented", "plain"],
}


@pytest.fixture(scope="module")
def report():
    return benchmark.run_benchmark(
        ["dcgan", "gan", "vae", "input"], batch_size=8, steps=3, repeats=2, steps_per_call=2, width=4, matmul_size=64
    )


def rows_of(report, workload):
    return [row for row in report["rows"] if row["workload"] == workload]


def test_every_variant_of_every_workload_is_measured(report):
    assert {workload: [row["variant"] for row in rows_of(report, workload)] for workload in EXPECTED_VARIANTS} == (
        EXPECTED_VARIANTS
    )
    for row in report["rows"]:
        assert row["error"] is None, row
        assert math.isfinite(row["examples_per_second"]) and row["examples_per_second"] > 0
        assert len(row["seconds"]) == 2 and all(second > 0 for second in row["seconds"])
        assert row["batch_size"] == 8 and row["steps"] == 3


def test_train_on_batch_variant_is_measured_on_the_mlp_gan_only(report):
    assert [row["workload"] for row in report["rows"] if row["variant"] == "d"] == ["gan"]


def test_ratios_are_the_project_loop_over_each_variant(report):
    for workload in ("dcgan", "gan", "vae"):
        rows = rows_of(report, workload)
        project = rows[0]["examples_per_second"]
        for row in rows:
            assert row["ratio_a_to_variant"] == pytest.approx(project / row["examples_per_second"])
        assert rows[0]["ratio_a_to_variant"] == pytest.approx(1.0)
    assert all(row["ratio_a_to_variant"] is None for row in rows_of(report, "input"))


def test_flops_input_share_and_memory_are_reported(report):
    peak = report["matmul_peak_gflops"]
    assert math.isfinite(peak) and peak > 0
    for row in report["rows"]:
        assert row["peak_rss_mb"] > 0
        if row["workload"] == "input":
            assert row["gflops_per_second"] is None and row["input_wait_share"] is None
            continue
        assert row["flops_per_step"] > 0
        assert row["gflops_per_second"] == pytest.approx(
            row["flops_per_step"] * row["steps"] / statistics.median(row["seconds"]) / 1e9
        )
        assert row["share_of_matmul_peak"] == pytest.approx(row["gflops_per_second"] / peak)
        assert 0 < row["input_wait_share"] <= 1
    # The keras.io formulation does more work per step than the project's loop.
    dcgan = {row["variant"]: row for row in rows_of(report, "dcgan")}
    assert dcgan["c"]["flops_per_step"] > dcgan["a"]["flops_per_step"] == dcgan["b"]["flops_per_step"]


def test_json_output_holds_the_rows(report, tmp_path):
    path = tmp_path / "out" / "bench.json"
    benchmark.write_json(report, str(path))
    saved = json.loads(path.read_text())
    assert saved["rows"] == json.loads(json.dumps(report["rows"]))
    assert saved["matmul_peak_gflops"] > 0 and saved["machine"]["tensorflow"]


def test_markdown_names_the_machine_and_has_a_line_per_row(report):
    text = benchmark.markdown(report)
    assert text.splitlines()[0].startswith("Machine: ")
    assert f"TensorFlow {report['machine']['tensorflow']}" in text.splitlines()[0]
    table = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| workload")]
    assert len(table) == len(report["rows"])


def test_forward_flops_of_a_dense_layer():
    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    assert benchmark.forward_flops(network) == 2 * 3 * 4


def test_forward_flops_of_a_convolution():
    network = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, padding="same")])
    assert benchmark.forward_flops(network) == 2 * 3 * 3 * 1 * 2 * 16


def test_forward_flops_of_a_transposed_convolution_count_input_positions():
    network = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same")])
    assert benchmark.forward_flops(network) == 2 * 3 * 3 * 3 * 5 * 4


def test_forward_flops_add_up_nested_networks_and_skip_other_layers():
    inner = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, strides=2, padding="same")])
    inputs = keras.Input((4, 4, 1))
    features = keras.layers.Flatten()(keras.layers.ReLU()(inner(inputs)))
    network = keras.Model(inputs, keras.layers.Dense(1)(features))
    assert benchmark.forward_flops(network) == 2 * 3 * 3 * 1 * 2 * 4 + 2 * 8 * 1


def test_step_flops_count_three_forwards_per_differentiated_pass():
    flops = benchmark.step_flops(benchmark.ADVERSARIAL_PASSES["a"], {"generator": 10, "discriminator": 100}, 4)
    assert flops == 3 * (10 * 4 + 100 * 2 * 4)
    flops = benchmark.step_flops(benchmark.ADVERSARIAL_PASSES["c"], {"generator": 10, "discriminator": 100}, 4)
    assert flops == 10 * 4 + 3 * 100 * 2 * 4 + 3 * 10 * 4 + 3 * 100 * 4


def test_a_failing_variant_is_reported_not_raised():
    def broken(num_steps):
        raise RuntimeError("no kernel\nmore detail")

    row = benchmark.measure_variant("b", "broken loop", broken, steps=3, repeats=2, batch_size=8, xla=False)
    assert row["error"] == "RuntimeError: no kernel"
    assert row["examples_per_second"] is None


def test_command_measures_the_input_pipeline_and_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    code, out, err = run_tool(
        benchmark.main, "--bench_workloads=input", "--bench_steps=1", "--bench_repeats=1",
        "--bench_matmul_size=32", f"--bench_output={path}",
    )
    assert code == 0, err
    assert out.startswith("Machine: ")
    assert "| input | (augmented)" in out and "| input | (plain)" in out
    saved = json.loads(path.read_text())
    assert [row["variant"] for row in saved["rows"]] == ["augmented", "plain"]
    assert saved["settings"]["steps"] == 1


def test_command_exits_with_status_1_when_a_variant_failed(monkeypatch, report):
    broken = dict(report["rows"][0], error="InvalidArgumentError: no kernel", examples_per_second=None)
    monkeypatch.setattr(benchmark, "run_benchmark", lambda *args, **kwargs: dict(report, rows=[broken]))
    code, out, err = run_tool(benchmark.main, "--bench_workloads=dcgan")
    assert code == 1
    assert "failed, see below" in out and "Failed: dcgan (a): InvalidArgumentError: no kernel" in out
    assert err.strip() == "error: 1 variant(s) failed: dcgan (a); their errors are under the table"


@pytest.mark.parametrize("argv, message", [
    (["--bench_workloads=dcgan,nope"], "error: --bench_workloads: unknown workload 'nope'; accepted: dcgan, gan"),
    (["--bench_workloads="], "error: --bench_workloads names no workload; accepted: dcgan, gan, gan_purchases, vae, input"),
    (["--bench_output=bench.txt"], "error: --bench_output=bench.txt must be a .json file"),
])
def test_command_rejects_bad_flags_in_one_line(argv, message):
    code, out, err = run_tool(benchmark.main, *argv)
    assert code == 2
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_export_workload_reports_throughput_and_latency():
    rows = benchmark.run_workload("export", batch_size=4, steps=2, repeats=2, width=8)
    assert [row["variant"] for row in rows] == ["sample", "latency"]
    assert all(row["error"] is None and row["examples_per_second"] > 0 for row in rows)
    assert rows[1]["latency_ms"] > 0


def test_memory_workload_measures_the_train_command_as_a_child():
    (row,) = benchmark.memory_rows(4, 8, lambda line: None, examples=64, steps=2)
    assert row["error"] is None, row["error"]
    assert row["child_peak_rss_mb"] > 100 and row["wall_seconds"] > 0 and row["examples_per_second"] is None


def test_mixed_precision_variant_runs_the_loop_in_bfloat16_and_restores_the_policy():
    import keras

    rows = benchmark.run_workload("gan", batch_size=8, steps=2, repeats=1, steps_per_call=2, width=4,
                                  mixed="mixed_bfloat16")
    mixed = [row for row in rows if row["variant"] == "a+"]
    assert [row["variant"] for row in rows] == ["a", "a+", "b", "c", "d", "e"]
    assert len(mixed) == 1 and mixed[0]["error"] is None and "mixed_bfloat16" in mixed[0]["label"]
    assert mixed[0]["flops_per_step"] == rows[0]["flops_per_step"]
    assert keras.mixed_precision.global_policy().name == "float32"


def test_floor_variant_trains_both_networks_from_data_held_in_memory():
    model = tiny_model("gan")
    networks = benchmark.adversarial_networks(model)
    before = {name: [v.numpy().copy() for v in network.trainable_variables] for name, network in networks.items()}
    data = tf.random.normal((32, *model.data_shape))
    run_steps = benchmark.floor_gan_loop(networks["generator"], networks["discriminator"],
                                         benchmark.adam_like(model, "generator"),
                                         benchmark.adam_like(model, "discriminator"), data, 8, model.latent_size, 2)
    run_steps(3)
    for name, network in networks.items():
        assert all(not np.array_equal(old, new.numpy()) for old, new in zip(before[name], network.trainable_variables))
