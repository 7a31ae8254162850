"""The training loop against its floor on the small MLP workloads, timed in alternation in one
process, so that the machine's drift between variants cancels out of their ratios:

- (a) the train command's loop (`Trainer._train`, `--steps_per_call` steps per call) as it runs
  data held in memory on one replica: each batch drawn inside the compiled step
  (`pipeline.BatchDraw`);
- (a-) the same loop over the same batches pulled from a `tf.data` iterator of
  `pipeline.training_dataset`, as on several replicas;
- (e) the floor of `benchmark.py`: the step's operations only, batches gathered in the call.

    python benchmarks/loop_floor.py                       # gan (ring) and gan_purchases
    python benchmarks/loop_floor.py --steps=200 --repeats=9

Each repeat times every variant once, in turn, after a warm-up; the figures are medians over the
repeats, and each ratio is the median of the repeats' own ratios.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import tensorflow as tf
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark  # noqa: E402
from synthblend import zoo  # noqa: E402
from synthblend.datasets import pipeline, sources  # noqa: E402

STEPS = flags.DEFINE_integer("steps", 200, "Steps per timed series.", lower_bound=1)
REPEATS = flags.DEFINE_integer("repeats", 7, "Timed repeats of each variant (after a warm-up).", lower_bound=1)
STEPS_PER_CALL = flags.DEFINE_integer("steps_per_call", 100, "Steps inside one compiled call.", lower_bound=1)
WORKLOADS = flags.DEFINE_list("workloads", ["gan", "gan_purchases"], "MLP workloads of benchmark.py.")


def variants(name: str, folder: str) -> dict:
    """`{variant: run_steps}` of workload `name`, each on its own model built from one seed."""
    workload = benchmark.WORKLOADS[name]
    dataset, spec = sources.load(workload.dataset)

    def build():
        return zoo.get(workload.model)(data_shape=spec.shape, bounded=spec.value_range is not None,
                                       num_classes=spec.num_classes, seed=benchmark.SEED, **workload.model_arguments)

    model = build()
    scale = pipeline.scaling(spec, model.data_range)

    def batches():
        return pipeline.training_dataset(dataset, spec, batch_size=workload.batch_size, scale=scale,
                                         seed=benchmark.SEED)

    steps_per_call = STEPS_PER_CALL.value
    drawn = benchmark.project_loop(model, batches(), os.path.join(folder, "a"), steps_per_call, False)
    # A dataset the pipeline did not make (the same batches) is iterated by `tf.data`.
    iterated = benchmark.project_loop(build(), batches().with_options(tf.data.Options()), os.path.join(folder, "b"),
                                      steps_per_call, False)
    networks = benchmark.adversarial_networks(model)
    data = tf.concat([batch["x"] for batch in batches().take(benchmark.FLOOR_BATCHES)], axis=0)
    floor = benchmark.floor_gan_loop(networks["generator"], networks["discriminator"],
                                     benchmark.adam_like(model, "generator"), benchmark.adam_like(model, "discriminator"),
                                     data, workload.batch_size, model.latent_size, steps_per_call)
    return {"a": drawn, "a-": iterated, "e": floor}


def main(argv):
    del argv
    machine = benchmark.machine_description()
    print(f"{machine['processor']}, {machine['cpu_count']} CPUs, TensorFlow {machine['tensorflow']}, "
          f"Keras {machine['keras']}")
    accepted = [name for name, workload in benchmark.WORKLOADS.items() if workload.model == "gan"]
    for name in WORKLOADS.value:  # all checked before any is measured
        if name not in accepted:
            raise SystemExit(f"--workloads: {name!r} is not an MLP GAN workload of benchmark.py "
                             f"(one of {', '.join(accepted)})")
    with tempfile.TemporaryDirectory() as folder:
        for name in WORKLOADS.value:
            runs = variants(name, os.path.join(folder, name))
            for run_steps in runs.values():
                run_steps(STEPS.value)  # warm-up: tracing and the pipeline's start
            seconds = {variant: [] for variant in runs}
            for _ in range(REPEATS.value):
                for variant, run_steps in runs.items():
                    started = time.perf_counter()
                    run_steps(STEPS.value)
                    seconds[variant].append(time.perf_counter() - started)
            batch = benchmark.WORKLOADS[name].batch_size
            rates = {variant: STEPS.value * batch / statistics.median(values) for variant, values in seconds.items()}

            def ratio(top, bottom):
                return statistics.median(b / t for t, b in zip(seconds[top], seconds[bottom]))

            print(f"{name} (batch {batch}, median of {REPEATS.value} x {STEPS.value} steps): "
                  + ", ".join(f"({variant}) {rate:,.0f} examples/s" for variant, rate in rates.items())
                  + f"; (a)/(e) {ratio('a', 'e'):.2f}, (a-)/(e) {ratio('a-', 'e'):.2f}, (a)/(a-) {ratio('a', 'a-'):.2f}",
                  flush=True)


if __name__ == "__main__":
    app.run(main)
