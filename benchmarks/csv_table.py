"""Training on a large CSV table: time and peak memory until the first step, against pandas
reading the same file.

    python benchmarks/csv_table.py --file=/tmp/table.csv --make=1000000
    python benchmarks/csv_table.py --file=/tmp/table.csv --train_steps=20

`--make=N` first writes N rows of 10 columns: six numeric (three integer, three with two
decimals), three categorical (5, 12 and 40 values) and a label of three classes, about 50 bytes a
row. Each measurement runs in a fresh process, so that one's memory does not count for another:

- pandas: `pandas.read_csv(file)` after `import pandas` (and a collection of its garbage): its
  seconds, and the process's peak resident memory (after the import, and in all).
- the data side of training: after importing TensorFlow and the library, tracing one `tf.data`
  function and collecting the garbage the imports left (TensorFlow's first trace costs about 0.3 s,
  and the first full collection about 0.2 s, whatever the data), `sources.load` of
  `csv:<file>` (read, kinds inferred, encoder fitted, rows encoded), the held-out share set aside
  as the train command does, and the first batch pulled from the training pipeline: its seconds,
  and the peak resident memory it reaches above what the process held before it started (the
  kernel's high-water mark, reset before the load) and in all.
- the train command (`--model=gan --conditional --train_steps=...`): seconds from the start of
  its process to its first logged step, and its peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENT = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}


def make_table(path: str, rows: int, seed: int = 0, chunk: int = 500_000) -> None:
    """`rows` rows of six numeric columns, three categorical ones and a label, written in chunks."""
    generator = np.random.default_rng(seed)
    with open(path, "w") as file:
        file.write("age,visits,items,spend,balance,score,region,channel,product,segment\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            segment = generator.integers(0, 3, n)
            columns = [
                (18 + generator.gamma(4.0, 6.0, n) + 5 * segment).astype(np.int64).astype(str),
                generator.poisson(3.0 + segment, n).astype(str),
                generator.integers(0, 1000, n).astype(str),
                np.char.mod("%.2f", generator.lognormal(3.0 + 0.3 * segment, 0.8, n)),
                np.char.mod("%.2f", generator.normal(1000.0, 400.0, n)),
                np.char.mod("%.2f", generator.beta(2.0, 5.0, n) * 100),
                np.array([f"region_{i}" for i in range(5)])[generator.integers(0, 5, n)],
                np.array([f"channel_{i}" for i in range(12)])[(generator.integers(0, 12, n) + segment) % 12],
                np.array([f"product_{i}" for i in range(40)])[generator.zipf(1.5, n) % 40],
                np.array(["bronze", "silver", "gold"])[segment],
            ]
            lines = columns[0]
            for column in columns[1:]:
                lines = np.char.add(np.char.add(lines, ","), column)
            file.write("\n".join(lines.tolist()) + "\n")


MEMORY = """
def memory(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024
"""

PANDAS = MEMORY + """
import gc, json, sys, time
import pandas
gc.collect()  # as for the library: the imports' garbage collected first
before = memory("VmRSS")
started = time.perf_counter()
frame = pandas.read_csv(sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_mb": memory("VmHWM"), "peak_above_start_mb": memory("VmHWM") - before,
                  "rows": len(frame)}))
"""

LIBRARY = MEMORY + """
import gc, json, sys, time
import tensorflow as tf
from synthblend.datasets import pipeline, sources, tabular
from synthblend.trainers import train
# TensorFlow's runtime started and its first function traced, as before a run's data is read:
# costs that do not depend on the data (about 0.3 s here for the first traced function). The
# objects the imports left are collected too: the first full collection, due whatever is done
# next, takes about 0.2 s over the few hundred thousand objects TensorFlow's modules hold.
next(iter(tf.data.Dataset.range(2).map(lambda i: tf.one_hot(i, 2))))
gc.collect()
before = memory("VmRSS")
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak is counted from here
started = time.perf_counter()
data, spec = sources.load("csv:" + sys.argv[1], table=tabular.Options(label="segment"))
loaded = time.perf_counter() - started
data, _, _, _ = sources.hold_out(data, spec, sources.DEFAULT_HOLDOUT)
batches = pipeline.training_dataset(data, spec, batch_size=512, scale=pipeline.scaling(spec, None), seed=0)
next(iter(batches))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "load_seconds": loaded, "peak_mb": memory("VmHWM"),
                  "peak_above_start_mb": memory("VmHWM") - before, "start_mb": before,
                  "rows": spec.num_examples, "width": spec.shape[0]}))
"""


def measure(script: str, path: str) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), path], capture_output=True, text=True,
                          env=ENVIRONMENT, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in result.items()}


def train_run(path: str, model_dir: str, steps: int) -> dict:
    """The train command on the file: seconds from its start to its first logged step, peak RSS."""
    command = [sys.executable, "-m", "synthblend", "train", "--model=gan", f"--dataset=csv:{path}",
               "--label_column=segment", "--conditional", f"--train_steps={steps}", "--batch_size=512",
               f"--model_dir={model_dir}", "--log_every=1", "--steps_per_call=1", "--sample_every=100000",
               f"--checkpoint_every={steps}"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=ENVIRONMENT)
    first, lines = None, []
    for line in process.stdout:
        lines.append(line)
        if re.match(r"step \d", line) and first is None:
            first = time.perf_counter() - started
    # This child's own usage: RUSAGE_CHILDREN would also count the measurements run before it.
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("".join(lines[-20:]))
    return {"first_step_seconds": round(first, 1), "peak_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--make", type=int, default=0, help="write this many rows into --file first")
    parser.add_argument("--train_steps", type=int, default=20, help="steps of the train command (0: not run)")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.make:
        started = time.perf_counter()
        make_table(args.file, args.make)
        print(f"wrote {args.make} rows into {args.file} in {time.perf_counter() - started:.0f}s", flush=True)
    result = {"file_mb": round(os.path.getsize(args.file) / 2**20, 1), "pandas": measure(PANDAS, args.file),
              "library": measure(LIBRARY, args.file)}
    result["time_ratio"] = round(result["library"]["seconds"] / result["pandas"]["seconds"], 2)
    result["peak_above_start_ratio"] = round(result["library"]["peak_above_start_mb"]
                                             / result["pandas"]["peak_above_start_mb"], 2)
    if args.train_steps:
        with tempfile.TemporaryDirectory() as model_dir:
            result["train_command"] = train_run(args.file, model_dir, args.train_steps)
    print(json.dumps(result, indent=2))
    if args.output:
        with open(args.output, "w") as file:
            json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
