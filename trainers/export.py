"""Export a trained model for TF Serving and for Keras users.

    synthblend-export --model_dir=runs/dcgan_shapes --export_dir=exports/shapes

Each export becomes the next numbered version under `--export_dir`, the layout TF Serving
watches; an existing version is never overwritten, and a version appears only once it is
complete (it is written under a hidden name and renamed). The export directory receives:

    <export_dir>/models.config              for tensorflow_model_server --model_config_file
    <export_dir>/<N>/saved_model.pb         the signatures (see `zoo.base.GenerativeModel.serving_signatures`)
    <export_dir>/<N>/variables/
    <export_dir>/<N>/generator.keras        latents (and labels) -> samples in data space, standard layers
    <export_dir>/<N>/assets.extra/synthblend.json   what was exported: model, step, data, signatures

Samples come back as float32 in the data's own range (for images: the pixel range of the
dataset, e.g. 0..255, shaped (H, W, C)); inputs that are data (`x`) are taken in that range too.
For a model of a table, every signature that returns `samples` (the encoded rows) also returns
one output per column, decoded (`datasets.tabular.decode_tensors`): float32 for continuous
columns, int64 for integer ones, strings for categorical and boolean ones (the file's own
names), `<column>_missing` (bool) for columns that had missing values, and the label column
(from `labels`) for conditional models.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from synthblend.trainers import cli, flags as F

import keras

from synthblend.datasets import tabular
from synthblend.trainers import lifecycle, privacy, restore
from synthblend.zoo.registry import UsageError

METADATA_FILE = os.path.join("assets.extra", "synthblend.json")
KERAS_FILE = "generator.keras"
SERVING_CONFIG = "models.config"


def versions(export_dir: str) -> list[int]:
    """The complete version numbers under `export_dir`, ascending: folders named by ASCII digits,
    the only ones TF Serving reads as versions (not '²', which `str.isdigit` also accepts)."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir) if name.isascii() and name.isdigit())


def export(trained: restore.TrainedModel, export_dir: str, max_samples: int) -> str:
    """Writes the next version of `trained` under `export_dir`; returns its path."""
    model, scale = trained.model, trained.scale
    archive = keras.export.ExportArchive()
    archive.track(model)
    counts = trained.record.get("class_counts")
    signatures = model.serving_signatures(scale, max_samples, class_shares=counts if model.conditional else None)
    if trained.spec.table is not None:
        signatures = {name: (table_columns(function, trained.spec.table), specs)
                      for name, (function, specs) in signatures.items()}
    for name, (function, specs) in signatures.items():
        archive.add_endpoint(name, function, input_signature=specs)
    version = (versions(export_dir) or [0])[-1] + 1
    final = os.path.join(export_dir, str(version))
    partial = os.path.join(export_dir, f".partial-{version}-{os.getpid()}")
    os.makedirs(export_dir, exist_ok=True)
    try:
        archive.write_out(partial, verbose=False)
        keras_generator(model, scale).save(os.path.join(partial, KERAS_FILE))
        os.makedirs(os.path.dirname(os.path.join(partial, METADATA_FILE)), exist_ok=True)
        with open(os.path.join(partial, METADATA_FILE), "w") as file:
            json.dump(metadata(trained, max_samples, signatures), file, indent=2)
        with lifecycle.uninterrupted():
            if os.path.exists(final):
                raise UsageError(f"version {final} appeared while exporting; export again")
            os.rename(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def table_columns(function, encoder: dict):
    """`function` with the table's decoded columns added beside its `samples` (and `labels`)."""

    def with_columns(*inputs):
        outputs = dict(function(*inputs))
        if "samples" not in outputs:
            return outputs
        columns = tabular.decode_tensors(outputs["samples"], encoder)
        if "labels" in outputs and encoder["label"] is not None:
            columns[encoder["label"]["name"]] = tabular.label_tensors(outputs["labels"], encoder)
        clashes = sorted(set(columns) & set(outputs))
        if clashes:
            raise UsageError(f"table column {clashes[0]!r} has the name of a signature output; "
                             f"rename it in the CSV (reserved: {', '.join(sorted(outputs))})")
        return {**outputs, **columns}

    return with_columns


def keras_generator(model, scale) -> keras.Model:
    """The model's standalone generator followed by the affine map to data space."""
    generator = model.standalone_generator()
    to_data = keras.layers.Rescaling(
        scale=scale.factor.tolist(), offset=scale.offset.tolist(), dtype="float32", name="to_data_space"
    )
    return keras.Model(generator.inputs, to_data(generator.output), name="generator")


def metadata(trained: restore.TrainedModel, max_samples: int, signatures: dict) -> dict:
    spec = trained.spec
    return {
        "model": trained.record["model"],
        "step": trained.step,
        "averaged_weights": trained.averaged,
        "checkpoint": os.path.abspath(trained.checkpoint),
        "dataset": trained.record.get("dataset"),
        "split": trained.record.get("split"),
        "image_size": trained.record.get("image_size"),
        "config": trained.record["config"],
        "data_spec": trained.record["data_spec"],
        **{key: trained.record[key] for key in ("class_counts", "frame_dtypes") if key in trained.record},
        **({"privacy": privacy.guarantee({**trained.record, "step": trained.step})} if trained.record.get("privacy")
           else {}),
        "max_samples": max_samples,
        "samples": {"dtype": "float32", "shape": list(spec.shape), "range": spec.value_range},
        "columns": None if spec.table is None else table_column_types(spec.table),
        "signatures": {name: [tensor.name for tensor in specs] for name, (_, specs) in signatures.items()},
    }


def table_column_types(encoder: dict) -> dict:
    """Column name -> the dtype of its decoded output."""
    types = {"continuous": "float32", "integer": "int64", "categorical": "string", "boolean": "string",
             "datetime": "float64"}
    specs = tabular.column_specs(encoder)
    return {name: types[specs[name]["kind"]] for name in encoder["order"] if name in specs}


def write_serving_config(export_dir: str, name: str, base_path: str) -> str:
    """`models.config` in TF Serving's ModelServerConfig text format, serving `name`."""
    path = os.path.join(export_dir, SERVING_CONFIG)
    text = (
        "model_config_list {\n"
        "  config {\n"
        f"    name: {json.dumps(name)}\n"
        f"    base_path: {json.dumps(base_path)}\n"
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "}\n"
    )
    lifecycle.write_text(path, text)
    return path


def read_export(path: str) -> tuple[str, dict]:
    """The version directory an export path names (the latest one under a base directory) and
    its metadata; UsageError when it is not an export of this tool."""
    if not os.path.exists(path):
        raise UsageError(f"--export_dir={path} does not exist")
    if not os.path.isdir(path):
        raise UsageError(f"--export_dir={path} is a file; give the export folder (numbered versions inside)")
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        found = versions(path)
        if not found:
            raise UsageError(f"--export_dir={path} holds no exported version (numbered SavedModel folders)")
        path = os.path.join(path, str(found[-1]))
    try:
        with open(os.path.join(path, METADATA_FILE)) as file:
            return path, json.load(file)
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} is not an export of this tool ({METADATA_FILE}: {error})") from None


def export_run(trained: restore.TrainedModel, export_dir: str, max_samples: int, serving_name: str | None = None,
               serving_base_path: str | None = None) -> tuple[str, str, str, str]:
    """Exports `trained` as the next version under `export_dir` and writes the TF Serving
    config beside it (model `serving_name`, default the folder's name, at `serving_base_path`,
    default /models/<name>); returns the version's path, the config's, the name and base path."""
    cli.check_writable_dir(export_dir, "--export_dir")
    name = serving_name or os.path.basename(os.path.normpath(os.path.abspath(export_dir)))
    check_serving_name(name, export_dir, given=bool(serving_name))
    base_path = serving_base_path or f"/models/{name}"
    # One export at a time into a folder: two would pick the same next version.
    with lifecycle.hold(export_dir, f"--export_dir={export_dir}", "an export"):
        path = export(trained, export_dir, max_samples)
        return path, write_serving_config(export_dir, name, base_path), name, base_path


def check_serving_name(name: str, export_dir: str, given: bool) -> None:
    """UsageError unless `name` (given, or the export folder's name) can name a TF Serving model."""
    if re.fullmatch(F.SERVING_NAME_PATTERN, name):
        return
    if given:
        raise UsageError(f"--serving_name={name!r} is not {F.SERVING_NAME_ACCEPTED}")
    raise UsageError(f"--export_dir={export_dir}: the folder's name {name!r}, the default --serving_name, is not "
                     f"{F.SERVING_NAME_ACCEPTED}; pass --serving_name")


def main(argv):
    cli.require(F.MODEL_DIR, F.EXPORT_DIR)
    export_dir = F.EXPORT_DIR.value
    cli.check_writable_dir(export_dir, "--export_dir")
    trained = restore.load(F.MODEL_DIR.value, use_average=F.USE_EMA.value)
    restore.check_use_ema(trained, F.MODEL_DIR.value)
    path, config, name, base_path = export_run(trained, export_dir, F.MAX_SAMPLES.value, F.SERVING_NAME.value,
                                               F.SERVING_BASE_PATH.value)
    weights = "moving-average" if trained.averaged else "trained"
    print(f"exported {trained.record['model']} at step {trained.step} ({weights} weights) -> {path}")
    with open(os.path.join(path, METADATA_FILE)) as file:
        for signature, inputs in json.load(file)["signatures"].items():
            print(f"  signature {signature}({', '.join(inputs)})")
    print(f"  Keras generator -> {os.path.join(path, KERAS_FILE)}")
    print(f"  TF Serving config (model {name!r} at {base_path}) -> {config}")

