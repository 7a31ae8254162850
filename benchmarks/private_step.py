"""What DP-SGD costs: the training loop's steps per second with and without it, in one process.

    python benchmarks/private_step.py                 # the benchmark's gan and dcgan workloads
    python benchmarks/private_step.py --steps=200 --repeats=5

Each workload of `benchmark.py` that DP-SGD can train (the MLP GAN on `ring`, the DCGAN on
`shapes` with its discriminator unnormalised) is built twice from one seed, once plain and once
private (noise multiplier 1, clip norm 1), and their loops (`Trainer._train`, `--steps_per_call`
steps per call) are timed alternately; the ratio of the medians is what a private step costs.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark  # noqa: E402
from synthblend import zoo  # noqa: E402
from synthblend.datasets import pipeline, sources  # noqa: E402
from synthblend.zoo import dpsgd  # noqa: E402

STEPS = flags.DEFINE_integer("steps", 100, "Steps per timed call series.", lower_bound=1)
REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats of each loop (after a warm-up).", lower_bound=1)
STEPS_PER_CALL = flags.DEFINE_integer("steps_per_call", 50, "Steps inside one compiled call.", lower_bound=1)
WORKLOADS = flags.DEFINE_list("workloads", ["gan", "dcgan"], "Workloads of benchmark.py to measure (gan, dcgan).")
JIT = flags.DEFINE_bool("jit_compile", False, "Compile each step with XLA, as the train command's --jit_compile.")


def loop(name: str, private: bool, folder: str):
    workload = benchmark.WORKLOADS[name]
    data, spec = sources.load(workload.dataset, "train", None)
    model = zoo.get(workload.model)(data_shape=spec.shape, bounded=spec.value_range is not None,
                                    seed=benchmark.SEED, **workload.model_arguments)
    if private:
        model.make_private(dpsgd.Clipping(l2_norm_clip=1.0, noise_multiplier=1.0))
    scale = pipeline.scaling(spec, model.data_range)
    dataset = pipeline.training_dataset(data, spec, batch_size=workload.batch_size, scale=scale, seed=0,
                                        shuffle_buffer=10000)
    return benchmark.project_loop(model, dataset, os.path.join(folder, f"{name}-{private}"),
                                  STEPS_PER_CALL.value, JIT.value)


def main(argv):
    del argv
    machine = benchmark.machine_description()
    print(f"{machine['processor']}, {machine['cpu_count']} CPUs, TensorFlow {machine['tensorflow']}")
    with tempfile.TemporaryDirectory() as folder:
        for name in WORKLOADS.value:
            loops = {private: loop(name, private, folder) for private in (False, True)}
            for run_steps in loops.values():
                run_steps(STEPS.value)  # warm-up: tracing and the pipeline's start
            seconds = {False: [], True: []}
            for _ in range(REPEATS.value):
                for private, run_steps in loops.items():
                    start = time.perf_counter()
                    run_steps(STEPS.value)
                    seconds[private].append(time.perf_counter() - start)
            plain, private = (statistics.median(seconds[key]) / STEPS.value * 1000 for key in (False, True))
            print(f"{name}: plain {plain:.2f} ms/step, private {private:.2f} ms/step, "
                  f"private / plain {private / plain:.2f}x (batch {benchmark.WORKLOADS[name].batch_size}, "
                  f"median of {REPEATS.value} x {STEPS.value} steps)")


if __name__ == "__main__":
    app.run(main)
