"""Training on an image folder larger than memory: peak memory, time to the first steps,
checkpoint size against the model's state, and the share of a step spent waiting for input.

    python benchmarks/image_folder.py --folder=/tmp/pngs --make=100000
    python benchmarks/image_folder.py --folder=/tmp/pngs --steps=20

`--make=N` first writes N PNG images of 64x64x3 into ten class subfolders of `--folder` (smooth
random pictures, which compress like photographs rather than like noise). The training runs as
the train command in a subprocess (`--model=dcgan --conditional`), whose peak resident memory is
read from the kernel when it exits; the time to the first logged step counts from the start of
that process. The input wait share is the time to pull `--steps` batches from the same input
pipeline alone, over the time of as many training steps (an upper bound: the pipeline decodes on
other threads while a step runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_folder(folder: str, count: int, classes: int = 10, side: int = 64, seed: int = 0) -> None:
    """`count` PNGs of side x side x 3 in `classes` subfolders: low-frequency colour noise, upsampled."""
    from PIL import Image

    generator = np.random.default_rng(seed)
    for label in range(classes):
        os.makedirs(os.path.join(folder, f"class_{label}"), exist_ok=True)
    for index in range(count):
        coarse = generator.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((side, side), Image.BILINEAR)
        image.save(os.path.join(folder, f"class_{index % classes}", f"{index:06d}.png"))


def train_run(folder: str, model_dir: str, steps: int, batch_size: int, width: int) -> dict:
    """Runs the train command; returns its peak RSS, time to the first logged step and steps/s."""
    command = [sys.executable, "-m", "synthblend", "train", "--model=dcgan", f"--dataset=images:{folder}",
               "--conditional", f"--train_steps={steps}", f"--batch_size={batch_size}", f"--width={width}",
               f"--model_dir={model_dir}", "--log_every=1", "--steps_per_call=1", "--sample_every=100000",
               f"--checkpoint_every={steps}"]
    environment = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": ""}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=environment)
    first, rates, lines = None, [], []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("step ") and first is None:
            first = time.perf_counter() - started
        match = re.search(r"([\d.]+) steps/s", line)
        if match and line.startswith("step ") and not line.startswith("step 1/"):
            rates.append(float(match.group(1)))
    process.wait()
    if process.returncode != 0:
        raise SystemExit("".join(lines[-20:]))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(peak, 1), "first_step_seconds": round(first, 1),
            "seconds_per_step": round(1.0 / float(np.median(rates)), 4)}


def checkpoint_sizes(model_dir: str) -> dict:
    """Bytes of the latest checkpoint's files, and of the model's and optimizers' values in it."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    state = 0
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype != tf.variant and not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH"):
            value = reader.get_tensor(name)
            state += value.nbytes if hasattr(value, "nbytes") else 0
    folder, prefix = os.path.dirname(path), os.path.basename(path)
    files = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder) if name.startswith(prefix))
    return {"checkpoint_bytes": files, "state_bytes": state, "ratio": round(files / state, 3)}


def input_seconds(folder: str, steps: int, batch_size: int) -> float:
    """Seconds per batch pulled from the training pipeline of the folder alone (after a warm-up)."""
    from synthblend.datasets import pipeline, sources

    data, spec = sources.load(f"images:{folder}")
    scale = pipeline.scaling(spec, (-1.0, 1.0))
    iterator = iter(pipeline.training_dataset(data, spec, batch_size=batch_size, scale=scale, seed=0))
    for _ in range(5):
        next(iterator)
    started = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True)
    parser.add_argument("--make", type=int, default=0, help="write this many PNGs into --folder first")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.make:
        started = time.perf_counter()
        make_folder(args.folder, args.make)
        print(f"wrote {args.make} PNGs into {args.folder} in {time.perf_counter() - started:.0f}s", flush=True)
    files = sum(len(names) for _, _, names in os.walk(args.folder))
    size = sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(args.folder) for name in names)
    with tempfile.TemporaryDirectory() as model_dir:
        result = {"images": files, "folder_mb": round(size / 2**20, 1), "steps": args.steps,
                  "batch_size": args.batch_size, "width": args.width,
                  **train_run(args.folder, model_dir, args.steps, args.batch_size, args.width),
                  **checkpoint_sizes(model_dir)}
    result["input_seconds_per_batch"] = round(input_seconds(args.folder, args.steps, args.batch_size), 4)
    result["input_wait_share"] = round(result["input_seconds_per_batch"] / result["seconds_per_step"], 3)
    print(json.dumps(result, indent=2))
    if args.output:
        with open(args.output, "w") as file:
            json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
