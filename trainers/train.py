"""Train a registered model on a data source.

    python -m trainers.train --flagfile=configs/dcgan_shapes.cfg --model_dir=runs/dcgan_shapes
    python -m trainers.train --model=gan --dataset=ring --train_steps=5000 --model_dir=runs/ring

Running the same command again with a larger `--train_steps` continues from the latest
checkpoint. The model directory receives `config.json` (what was trained, on what), the
checkpoints, TensorBoard events and PNG pictures of samples over training.
"""

from __future__ import annotations

import json
import os

from trainers import cli, flags as F  # cli first: it quiets TensorFlow's start-up logging


import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from datasets import augment, pipeline, sources  # noqa: E402
from trainers import distribute, pictures  # noqa: E402
from trainers.loop import CHECKPOINT_FOLDER, Trainer, TrainerConfig  # noqa: E402
from trainers.restore import CONFIG_FILE  # noqa: E402
from zoo.registry import UsageError  # noqa: E402

HELDOUT_FILE = "heldout.json"


def main(argv):
    cli.require(F.MODEL, F.DATASET, F.MODEL_DIR)
    # Multi-worker strategies must exist before TensorFlow runs anything else.
    strategy = distribute.strategy_for(F.STRATEGY.value, F.TPU.value)
    distribute.per_replica_batch(strategy, F.BATCH_SIZE.value)
    model_class = zoo.get(F.MODEL.value)
    model_arguments = F.model_arguments(F.MODEL.value)
    dataset, spec = sources.load(F.DATASET.value, F.SPLIT.value, F.IMAGE_SIZE.value, table=F.table_options())
    table = table_arguments(F.MODEL.value, spec)
    model_class.check_data(spec.shape, spec.num_classes)
    check_eval_split(spec)
    augmentation = None
    if F.AUGMENT.value:
        augmentation = augment.augmenter(F.AUGMENT.value, spec.shape, spec.value_range or (0.0, 1.0), F.SEED.value)
    if F.CONDITIONAL.value and spec.num_classes < 2:
        raise UsageError(f"--conditional needs a labelled dataset; {F.DATASET.value!r} has no labels (y)")
    model_dir = F.MODEL_DIR.value
    cli.check_writable_dir(model_dir, "--model_dir")
    if F.DETERMINISTIC.value:
        make_deterministic(F.SEED.value)

    with distribute.precision(F.PRECISION.value), strategy.scope():
        model = model_class(
            data_shape=spec.shape,
            bounded=spec.value_range is not None,
            num_classes=spec.num_classes,
            **table,
            **model_arguments,
        )
    record = {
        "model": F.MODEL.value,
        "config": json.loads(json.dumps(model.get_config())),
        "dataset": F.DATASET.value,
        "split": F.SPLIT.value,
        "image_size": F.IMAGE_SIZE.value,
        "augment": F.AUGMENT.value,
        "precision": F.PRECISION.value,
        "data_spec": spec.to_json(),
    }
    check_same_run(model_dir, record)

    scale = pipeline.scaling(spec, model.data_range)
    batches = distribute.input_fn(
        lambda shard, batch_size: pipeline.training_dataset(
            dataset, spec, batch_size=batch_size, scale=scale, seed=F.SEED.value,
            shuffle_buffer=F.SHUFFLE_BUFFER.value, augmentation=augmentation, shard=shard,
        ),
        F.BATCH_SIZE.value,
    )
    examples = pipeline.take_examples(dataset, 32 if spec.is_image else 2000)
    config = TrainerConfig(
        steps_per_call=F.STEPS_PER_CALL.value,
        checkpoint_every=F.CHECKPOINT_EVERY.value,
        keep_checkpoints=F.KEEP_CHECKPOINTS.value,
        log_every=F.LOG_EVERY.value,
        sample_every=F.SAMPLE_EVERY.value,
        num_pictured=64 if spec.is_image else 1000,
        ema_decay=F.EMA_DECAY.value,
        jit_compile=F.JIT_COMPILE.value,
        nan_policy=F.NAN_POLICY.value,
        max_rollbacks=F.MAX_ROLLBACKS.value,
    )
    if distribute.is_chief(strategy):
        write_record(model_dir, record)
    trainer = Trainer(
        model, batches, model_dir, config, strategy=strategy,
        picture=pictures.for_data(spec, scale.decode, None if spec.is_image else examples["x"]),
        picture_examples={**examples, "x": scale.encode(examples["x"])},
    )
    if augmentation is not None:
        # The augmentation layers draw from seed states that live outside the input iterator.
        trainer.checkpoints.checkpoint.augmentation = [
            v for v in augmentation.variables if v.path.endswith("seed_generator_state")
        ]
    trainer.train(F.TRAIN_STEPS.value)
    print(f"model_dir: {model_dir}")
    print(f"  checkpoint:  {trainer.checkpoints.latest_checkpoint}")
    print(f"  samples:     {trainer.last_picture}")
    print(f"  TensorBoard: tensorboard --logdir {model_dir}")
    if trainer.is_chief:
        evaluate_heldout(trainer, spec, scale)


def check_eval_split(spec) -> None:
    """UsageError for an `--eval_split` given by the user that the dataset does not have (the
    default, `test`, is skipped quietly where there is none; `none` turns the measurement off)."""
    split = F.EVAL_SPLIT.value
    if F.EVAL_SPLIT.present and split != "none" and split.partition("[")[0] not in spec.splits:
        accepted = ", ".join([*spec.splits, "none"])
        raise UsageError(f"--eval_split={split}: dataset {F.DATASET.value!r} has no such split; accepted: {accepted}")


def make_deterministic(seed: int) -> None:
    """Same command, same bits: deterministic kernels and weight initialisation from `seed`.

    The data order, augmentation and the models' noise are seeded from `--seed` in any case; the
    checkpoint keeps their state and the iterator's, so a resumed run continues them exactly.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def table_arguments(model_name: str, spec) -> dict:
    """`{"table_blocks": ...}` for a table, which only models that support tables take; `{}`
    for other data."""
    blocks = spec.table_blocks
    if blocks is None:
        return {}
    if not zoo.get(model_name).supports_tables:
        raise UsageError(
            f"--model={model_name} does not take tables; models for tables: {', '.join(zoo.base.table_models())}"
        )
    return {"table_blocks": blocks}


def evaluate_heldout(trainer, spec, scale) -> None:
    """Writes the model's held-out metrics on `--eval_split` to heldout.json, when both exist."""
    split = F.EVAL_SPLIT.value
    if split.partition("[")[0] not in spec.splits or split == F.SPLIT.value:
        return
    heldout, heldout_spec = sources.load(F.DATASET.value, split, F.IMAGE_SIZE.value, table=spec.table)
    batch_size = F.BATCH_SIZE.value
    num_batches = max(1, (heldout_spec.num_examples or batch_size) // batch_size)
    metrics = trainer.evaluate(
        pipeline.evaluation_dataset(heldout, batch_size=batch_size, scale=scale), num_batches
    )
    if not metrics:
        return
    path = os.path.join(trainer.model_dir, HELDOUT_FILE)
    with open(path, "w") as file:
        json.dump({"split": split, "step": int(trainer.step.numpy()), **metrics}, file, indent=2)
    values = "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    print(f"  held-out ({split}): {values}  -> {path}")


def check_same_run(model_dir: str, record: dict) -> None:
    """Raises UsageError when `model_dir` holds another run than the one `record` describes."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        if os.path.isdir(os.path.join(model_dir, CHECKPOINT_FOLDER)):
            raise UsageError(
                f"--model_dir={model_dir} holds checkpoints but no {CONFIG_FILE}; use an empty or new directory"
            )
        return
    try:
        with open(path) as file:
            saved = json.load(file)
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} cannot be read ({error}); use another --model_dir") from None
    if saved.get("model") != record["model"]:
        raise UsageError(
            f"--model_dir={model_dir} holds a {saved.get('model')!r} model, not {record['model']!r}; "
            f"pass --model={saved.get('model')} to continue it, or use another --model_dir"
        )
    differences = [
        f"{key}={saved[key]!r} there, {record[key]!r} now"
        for key in ("dataset", "split", "image_size")
        if saved.get(key) != record[key]
    ]
    if saved.get("precision", "float32") != record["precision"]:
        differences.append(f"precision={saved.get('precision', 'float32')!r} there, {record['precision']!r} now")
    differences += [
        f"{key}={saved['config'].get(key)!r} there, {value!r} now"
        for key, value in record["config"].items()
        if saved.get("config", {}).get(key) != value
    ]
    saved_table = saved.get("data_spec", {}).get("table")
    if saved_table != json.loads(json.dumps(record["data_spec"].get("table"))):
        differences.append("the table's columns, kinds or values (another file, --schema, --label_column or "
                           "--missing)")
    if differences:
        raise UsageError(
            f"--model_dir={model_dir} holds a run with other settings ({'; '.join(differences)}); "
            "pass the same flags to continue it, or use another --model_dir"
        )


def write_record(model_dir: str, record: dict) -> None:
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.exists(path):
        return
    with open(path + ".tmp", "w") as file:
        json.dump(record, file, indent=2)
    os.replace(path + ".tmp", path)


def run():
    cli.run(main)


if __name__ == "__main__":
    run()
