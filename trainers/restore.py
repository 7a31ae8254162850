"""Rebuild a trained model from its model directory, for sampling, export and evaluation."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import tensorflow as tf

from synthblend import zoo
from synthblend.datasets import pipeline
from synthblend.datasets.sources import DataSpec
from synthblend.trainers.loop import CHECKPOINT_FOLDER, checkpoint_of
from synthblend.zoo.registry import DataError, UsageError

CONFIG_FILE = "config.json"


@dataclasses.dataclass
class TrainedModel:
    """A model restored from `model_dir` with what it was trained on."""

    model: zoo.base.GenerativeModel
    record: dict
    spec: DataSpec
    scale: pipeline.Scaling
    checkpoint: str
    step: int
    averaged: bool  # whether the sampling network holds the moving-average weights
    kept_average: bool = False  # whether the checkpoint holds moving-average weights at all


def read_record(model_dir: str) -> dict:
    """The `config.json` a training run wrote; UsageError when there is none to read."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isdir(model_dir):
        raise UsageError(f"--model_dir={model_dir} does not exist")
    if not os.path.exists(path):
        raise UsageError(f"--model_dir={model_dir} holds no {CONFIG_FILE}; it is not a model directory of this tool")
    try:
        with open(path) as file:
            record = json.load(file)
        zoo.get(record["model"])
        record["config"], record["data_spec"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{path} cannot be read ({type(error).__name__}: {error})") from None
    return record


def load(model_dir: str, use_average: bool = True) -> TrainedModel:
    """Rebuilds the model of `model_dir` from its newest readable checkpoint (a warning names any
    unreadable newer one skipped).

    With `use_average`, the sampling network takes the moving-average (EMA) weights when the run
    kept them.
    """
    record = read_record(model_dir)
    folder = os.path.join(model_dir, CHECKPOINT_FOLDER)
    state = tf.train.get_checkpoint_state(folder)
    if state is None or not state.model_checkpoint_path:
        raise UsageError(f"--model_dir={model_dir} holds no checkpoint yet; train first")
    candidates = list(reversed(state.all_model_checkpoint_paths)) or [state.model_checkpoint_path]
    for index, latest in enumerate(candidates):
        try:
            return _load(model_dir, record, latest, use_average)
        except (tf.errors.OpError, OSError, ValueError, IndexError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if index + 1 == len(candidates):
                raise DataError(f"no checkpoint in {folder} can be read (the oldest, {latest}: {reason})") from None
            print(f"warning: checkpoint {latest} cannot be read ({reason}); using {candidates[index + 1]}",
                  file=sys.stderr)


def _load(model_dir: str, record: dict, latest: str, use_average: bool) -> TrainedModel:
    """The model of `record` with the weights of checkpoint `latest`."""
    model = zoo.get(record["model"]).from_config(record["config"])
    spec_fields = dict(record["data_spec"])
    for key in ("shape", "value_range", "loc", "scale", "class_names", "factor_names", "splits"):
        if spec_fields.get(key) is not None:
            spec_fields[key] = tuple(spec_fields[key])
    spec = DataSpec(**spec_fields)
    names = {name for name, _ in tf.train.list_variables(latest)}
    kept_average = any(name.startswith("ema/") for name in names)
    averaged = use_average and kept_average
    checkpoint, ema = checkpoint_of(model, ema_decay=0.5 if averaged else 0.0)
    checkpoint.restore(latest).expect_partial()
    if ema is not None:
        for variable, shadow in zip(ema.variables, ema.shadows):
            variable.assign(shadow)
    return TrainedModel(
        model=model,
        record=record,
        spec=spec,
        scale=pipeline.scaling(spec, model.data_range),
        checkpoint=latest,
        step=int(checkpoint.step.numpy()),
        averaged=averaged,
        kept_average=kept_average,
    )


def check_use_ema(trained: TrainedModel, model_dir: str) -> None:
    """UsageError for `--use_ema` given for a run that kept no moving-average weights: either
    value would change nothing."""
    from synthblend.trainers import cli, flags as F

    cli.refuse_unless(trained.kept_average, F.USE_EMA, f"changes nothing: --model_dir={model_dir} kept no "
                      "moving-average weights (it was trained with --ema_decay=0)")
