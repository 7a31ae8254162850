"""Train a registered model on a data source.

    synthblend-train --recipe=dcgan_shapes --model_dir=runs/dcgan_shapes
    synthblend-train --model=gan --dataset=ring --train_steps=5000 --model_dir=runs/ring

Running the same command again with a larger `--train_steps` continues from the latest
checkpoint. The model directory receives `config.json` (what was trained, on what), the
checkpoints, TensorBoard events and PNG pictures of samples over training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np

from synthblend.trainers import cli, flags as F

import keras
import tensorflow as tf

from synthblend import zoo
from synthblend.zoo import dpsgd
from synthblend.datasets import augment, pipeline, rows as row_data, sources, tabular
from synthblend.trainers import distribute, lifecycle, pictures, privacy
from synthblend.trainers.loop import CHECKPOINT_FOLDER, Trainer, TrainerConfig
from synthblend.trainers.restore import CONFIG_FILE
from synthblend.zoo.registry import UsageError

HELDOUT_FILE = "heldout.json"
# Model constructor arguments that the data decides, not the user.
INFERRED = ("data_shape", "bounded", "num_classes", "table_blocks")


@dataclasses.dataclass
class Settings(TrainerConfig):
    """How a run trains, beside what it trains on: the loop's `TrainerConfig` and the input,
    strategy and precision around it; the train command's flags of the same names."""

    train_steps: int = 10000
    batch_size: int = 64
    shuffle_buffer: int | None = None  # streamed sources only (tfds:); None: pipeline.SHUFFLE_BUFFER
    seed: int = 0
    deterministic: bool = False
    strategy: str = "default"
    tpu: str = ""
    precision: str = "float32"
    # DP-SGD (`trainers.privacy`): on when either of the first two is given.
    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    l2_norm_clip: float = 1.0
    delta: float | None = None
    accountant: str = "rdp"

    @property
    def private(self) -> bool:
        return self.target_epsilon is not None or self.noise_multiplier is not None


# What the train command and `fit` set by name; the other fields follow from the data.
SETTINGS = tuple(field.name for field in dataclasses.fields(Settings)
                 if field.name not in ("num_pictured", "picture_seed", "progress"))


@dataclasses.dataclass
class Result:
    """What `train` leaves: the loop (its checkpoints and last picture) and the held-out metrics."""

    trainer: Trainer
    heldout: dict


def train(model_name: str, dataset: str, model_dir: str, *, model_options: dict | None = None,
          settings: Settings | None = None, split: str = "train", image_size: int | None = None,
          table: tabular.Options | None = None, augment_spec: str | None = None, eval_split: str | None = None,
          holdout: float | None = None, extra_record: dict | None = None, progress: bool = False) -> Result:
    """Trains the registered model `model_name` on the source `dataset` into `model_dir`,
    continuing from its latest checkpoint; the train command and `Synthesizer.fit` both come here.

    `eval_split` is the split whose held-out metrics are written to heldout.json (None: `test`
    where the source has it; `none`: none). `extra_record` goes into config.json beside what
    was trained on what; `progress` draws a progress bar beside the log lines. `holdout` is the
    share of the examples set aside and never trained on (None: `sources.DEFAULT_HOLDOUT` for a
    source without a test split, none otherwise); config.json records it for the measures.
    """
    settings = settings or Settings()
    model_options = dict(model_options or {})
    # Multi-worker strategies must exist before TensorFlow runs anything else.
    strategy = distribute.strategy_for(settings.strategy, settings.tpu)
    distribute.per_replica_batch(strategy, settings.batch_size)
    model_class = zoo.get(model_name)
    check_options(model_name, model_options)
    saved = read_record(model_dir)
    if settings.private:
        table = private_table(table, settings, saved)
    data, spec = sources.load(dataset, split, image_size, table=table)
    check_data_options(spec, dataset, image_size, table)
    data, spec, held_out = set_aside(data, spec, dataset, saved, holdout)
    if settings.shuffle_buffer is not None and row_data.rows_of(data) is not None:
        raise UsageError(f"--shuffle_buffer={settings.shuffle_buffer} changes nothing: {dataset!r} is drawn as a new "
                         "permutation of all its examples every epoch; the buffer applies to streamed sources (tfds:)")
    table_argument = table_arguments(model_name, spec)
    model_class.check_data(spec.shape, spec.num_classes)
    check_eval_split(spec, dataset, eval_split)
    augmentation = None
    if augment_spec:
        augmentation = augment.augmenter(augment_spec, spec.shape, spec.value_range or (0.0, 1.0), settings.seed)
    if model_options.get("conditional") and spec.num_classes < 2:
        raise UsageError(f"--conditional needs a labelled dataset; {dataset!r} has no labels (y)")
    cli.check_writable_dir(model_dir, "--model_dir")
    if settings.deterministic:
        make_deterministic(settings.seed)

    with distribute.precision(settings.precision), strategy.scope():
        model = model_class(
            data_shape=spec.shape,
            bounded=spec.value_range is not None,
            num_classes=spec.num_classes,
            **table_argument,
            **model_options,
        )
    record = {
        "model": model_name,
        "config": json.loads(json.dumps(model.get_config())),
        "dataset": dataset,
        "split": split,
        "image_size": image_size,
        "augment": augment_spec,
        "precision": settings.precision,
        "data_spec": spec.to_json(),
        **({"holdout": held_out} if held_out else {}),
        **(extra_record or {}),
    }
    # One writer per model directory: a second training into it is refused while this one runs
    # (on a cluster the chief holds the lock for every worker).
    with lifecycle.hold(model_dir, f"--model_dir={model_dir}", "training", enabled=distribute.is_chief(strategy)):
        saved = read_record(model_dir)  # again, now that no other run writes it
        account = plan_privacy(model_dir, saved, model, settings, data, spec) if settings.private else None
        if account is not None:
            record["privacy"] = account.record(0)
        check_same_run(model_dir, record, saved)
        # Counted from the data, the class shares are outside a private run's guarantee: not kept.
        if spec.num_classes >= 2 and not os.path.exists(os.path.join(model_dir, CONFIG_FILE)) and account is None:
            record["class_counts"] = class_counts(data, spec.num_classes)

        scale = pipeline.scaling(spec, model.data_range)
        batches = distribute.input_fn(
            lambda shard, batch_size: pipeline.training_dataset(
                data, spec, batch_size=batch_size, scale=scale, seed=settings.seed,
                shuffle_buffer=settings.shuffle_buffer, augmentation=augmentation, shard=shard,
            ),
            settings.batch_size,
        )
        examples = pipeline.take_examples(data, 32 if spec.is_image else 2000)
        config = dataclasses.replace(settings, num_pictured=64 if spec.is_image else 1000, progress=progress)
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
        if held_out and trainer.is_chief:
            trainer.log(f"held out {held_out['examples']} of the {held_out['of']} examples of {dataset} "
                        f"(--holdout={held_out['share']:g}); never trained on, they are what evaluate and utility "
                        "measure against")
        train_steps = settings.train_steps
        last = account.last_step() if account is not None else None
        if last is not None and last < train_steps:
            train_steps = last  # the budget ends before --train_steps
        trainer.train(train_steps)
        if account is not None and trainer.is_chief:
            step = int(trainer.step.numpy())
            update_record(model_dir, privacy=account.record(step))
            trainer.log(f"privacy: ({account.epsilon_at(step):.3g}, {account.delta:.3g})-DP at step {step} "
                        f"(noise multiplier {account.noise_multiplier:.4g}, clip norm {account.l2_norm_clip:g}, "
                        f"{account.accountant} accountant)")
            if train_steps < settings.train_steps:
                trainer.log(f"privacy budget reached: step {train_steps + 1} would spend more than "
                            f"--target_epsilon={account.target_epsilon:g}; the run ends at step {train_steps}")
        heldout = {}
        if trainer.is_chief:
            heldout = evaluate_heldout(trainer, spec, scale, dataset, split, image_size, eval_split or "test",
                                       settings.batch_size)
        return Result(trainer, heldout)


def main(argv):
    cli.require(F.MODEL, F.DATASET, F.MODEL_DIR)
    check_flags()
    cli.refuse_unless(F.STRATEGY.value == "tpu", F.TPU, "applies to --strategy=tpu only")
    cli.refuse_unless(F.NAN_POLICY.value == "rollback", F.MAX_ROLLBACKS, "applies to --nan_policy=rollback only")
    settings = Settings(**{name: getattr(F, name.upper()).value for name in SETTINGS})
    for holder in (F.L2_NORM_CLIP, F.DELTA, F.ACCOUNTANT):
        cli.refuse_unless(settings.private, holder, "applies to differentially private training "
                          "(--target_epsilon or --noise_multiplier)")
    eval_split = F.EVAL_SPLIT.value if F.EVAL_SPLIT.present else None
    result = train(
        F.MODEL.value, F.DATASET.value, F.MODEL_DIR.value, model_options=F.model_arguments(F.MODEL.value),
        settings=settings, split=F.SPLIT.value, image_size=F.IMAGE_SIZE.value, table=F.table_options(),
        augment_spec=F.AUGMENT.value, eval_split=eval_split, holdout=F.HOLDOUT.value, progress=sys.stderr.isatty(),
    )
    trainer, model_dir = result.trainer, F.MODEL_DIR.value
    print(f"model_dir: {model_dir}")
    print(f"  checkpoint:  {trainer.checkpoints.latest_checkpoint}")
    print(f"  samples:     {trainer.last_picture}")
    print(f"  TensorBoard: tensorboard --logdir {model_dir}")
    if result.heldout:
        values = "  ".join(f"{name} {value:.4f}" for name, value in result.heldout.items()
                           if name not in ("split", "step"))
        print(f"  held-out ({result.heldout['split']}): {values}  -> {os.path.join(model_dir, HELDOUT_FILE)}")


def check_flags() -> None:
    """UsageError for a train flag that the other flags leave nothing to do; before any data is read."""
    split = F.EVAL_SPLIT.value if F.EVAL_SPLIT.present else "none"
    if split == "none":
        return
    model_class = zoo.get(F.MODEL.value)
    if model_class.test_step is zoo.base.GenerativeModel.test_step:
        measured = [name for name in zoo.names() if zoo.get(name).test_step is not zoo.base.GenerativeModel.test_step]
        raise UsageError(f"--eval_split={split} changes nothing: --model={F.MODEL.value} has no held-out metrics "
                         f"(models with some: {', '.join(measured)}); drop it, or pass --eval_split=none")
    if split == F.SPLIT.value:
        raise UsageError(f"--eval_split={split} is the split trained on (--split={F.SPLIT.value}); held-out metrics "
                         "need another split, e.g. --eval_split=test")


def plan_privacy(model_dir: str, saved: dict, model, settings: Settings, data, spec) -> privacy.Privacy:
    """The run's privacy account, and DP-SGD switched on in `model` (UsageError for a model or
    precision it cannot take). A resumed run continues the account in config.json: the same noise,
    clip norm, delta and data size."""
    if settings.precision == "mixed_float16":
        raise UsageError("differentially private training takes --precision=float32 or mixed_bfloat16; float16's "
                         "loss scaling would scale the clip norm")
    release = None
    if spec.table is not None:
        release = (spec.table.get("private") or {}).get("noise_multiplier")
    elif spec.value_range is None:
        raise UsageError(f"differentially private training takes images (scaled by their fixed value range); "
                         f"{spec.name} holds vectors, standardised by a mean and standard deviation read from the "
                         "data themselves, outside the guarantee")
    saved = saved.get("privacy")
    num_examples = count_examples(data)
    if saved is not None:
        given = {"l2_norm_clip": settings.l2_norm_clip, "target_epsilon": settings.target_epsilon,
                 "accountant": settings.accountant, "release_noise": release}
        if settings.noise_multiplier is not None:
            given["noise_multiplier"] = settings.noise_multiplier
        if settings.delta is not None:
            given["delta"] = settings.delta
        other = [f"{name}={saved.get(name)!r} there, {value!r} now" for name, value in given.items()
                 if saved.get(name) != value]
        if saved.get("num_examples") != num_examples:
            other.append(f"{saved.get('num_examples')} examples there, {num_examples} now")
        if other:
            raise UsageError(f"--model_dir={model_dir} holds a private run with another account ({'; '.join(other)}); "
                             "pass the same privacy flags to continue it, or use another --model_dir")
        account = privacy.Privacy(**{name: saved.get(name) for name in (
            "l2_norm_clip", "noise_multiplier", "delta", "num_examples", "batch_size", "target_epsilon", "accountant",
            "release_noise")})
    else:
        account = privacy.plan(num_examples, settings.batch_size, settings.train_steps,
                               target_epsilon=settings.target_epsilon, noise_multiplier=settings.noise_multiplier,
                               delta=settings.delta, l2_norm_clip=settings.l2_norm_clip, accountant=settings.accountant,
                               release_noise=release)
    if account.last_step() == 0:
        raise UsageError(f"--noise_multiplier={account.noise_multiplier:g} is too little noise: one step already spends "
                         f"more than --target_epsilon={account.target_epsilon:g}")
    model.make_private(dpsgd.Clipping(account.l2_norm_clip, account.noise_multiplier))
    return account


def set_aside(data, spec, dataset: str, saved: dict, holdout: float | None):
    """The training part of `data` and its spec, and what config.json records of the held-out part
    (None when nothing is held out): `holdout` of the examples (by default `sources.DEFAULT_HOLDOUT`
    for a source without a test split), chosen as `sources.hold_out` chooses them. A run recorded
    without a holdout continues without one unless `holdout` is given."""
    if holdout is not None and holdout > 0 and spec.splits:
        raise UsageError(f"--holdout={holdout:g}: {dataset!r} has a test split, which the measures use; drop "
                         "--holdout (or train on a slice, e.g. --split=train[:90%])")
    if holdout is None:
        # A source without a test split gets one, when held as rows; a run recorded without one keeps none.
        found = spec.splits or (saved and "holdout" not in saved) or row_data.rows_of(data) is None
        holdout = 0.0 if found else sources.DEFAULT_HOLDOUT
    if holdout == 0:
        return data, spec, None
    data, kept, _, held = sources.hold_out(data, spec, holdout)
    return data, kept, {"share": holdout, "seed": sources.HOLDOUT_SEED, "examples": held.num_examples,
                        "of": held.num_examples + kept.num_examples}


def private_table(table: tabular.Options | None, settings: Settings, saved: dict) -> tabular.Options:
    """The table options of a private run: a table's encoder is then fitted from the schema's
    declared domains and noisy histograms (`tabular.Private`), spending part of the budget; a
    resumed run draws the same histograms as the run it continues."""
    release = (saved.get("privacy") or {}).get("release_noise")

    def noise(num_rows: int) -> float:
        if release is not None:
            return release
        return privacy.table_release_noise(
            num_rows, batch_size=settings.batch_size, steps=settings.train_steps,
            target_epsilon=settings.target_epsilon, noise_multiplier=settings.noise_multiplier, delta=settings.delta,
            accountant=settings.accountant)

    return dataclasses.replace(table or tabular.Options(), private=tabular.Private(noise, settings.seed))


def count_examples(data) -> int:
    """The number of training examples: the DP account depends on it, so it is counted, not estimated."""
    known = int(data.cardinality())
    if known >= 0:
        return known
    return int(data.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def read_record(model_dir: str) -> dict:
    """The run's config.json ({} when there is none); UsageError when it cannot be read."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as file:
            record = json.load(file)
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} cannot be read ({error}); use another --model_dir") from None
    if not isinstance(record, dict):
        raise UsageError(f"{path} holds no run's record (a JSON {type(record).__name__}); use another --model_dir")
    return record


def update_record(model_dir: str, **changes) -> None:
    """Rewrites config.json with `changes` (the privacy account as training moves on)."""
    lifecycle.write_json(os.path.join(model_dir, CONFIG_FILE), {**read_record(model_dir), **changes})


def check_data_options(spec, dataset: str, image_size, table) -> None:
    """UsageError for table options given for data that is not a table, or an image size for
    data that is not images: they would change nothing."""
    if spec.table is None and table is not None:
        given = [f"--{name}" for name, value in (("schema", table.schema), ("label_column", table.label),
                                                   ("missing", table.missing)) if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} apply to tables (csv:<path>, purchases); {dataset!r} is not one")
    if image_size is not None and not spec.is_image:
        raise UsageError(f"--image_size={image_size} applies to images; {dataset!r} holds vectors of shape "
                         f"{tuple(spec.shape)}")


def check_options(model_name: str, options: dict) -> None:
    """UsageError for a keyword that is not a setting of the model `model_name`, naming the
    models it is a setting of, or the model's settings."""
    accepted = zoo.get(model_name).arguments()
    for name in options:
        if name in INFERRED:
            raise UsageError(f"{name} is read from the data; do not pass it")
        if name not in accepted:
            users = [other for other in zoo.names() if name in zoo.get(other).arguments()]
            if users:
                raise UsageError(f"{name} does not apply to {model_name}; it is a setting of {', '.join(users)}")
            settable = sorted(set(accepted) - set(INFERRED))
            raise UsageError(f"{name} is not a setting of {model_name}; accepted: {', '.join(settable)}")


def class_counts(data, num_classes: int) -> list[int]:
    """How many training examples each class has: counted in the labels of data held as rows,
    else in one pass over the labels."""
    found = row_data.rows_of(data)
    if found is not None and "y" in found.tensors:
        labels = found.tensors["y"].numpy().astype(np.int64)
        return [int(count) for count in np.bincount(labels, minlength=num_classes)[:num_classes]]
    counts = np.zeros(num_classes, np.int64)
    for labels in data.map(lambda example: example["y"]).batch(8192).as_numpy_iterator():
        counts += np.bincount(labels.astype(np.int64), minlength=num_classes)[:num_classes]
    return [int(count) for count in counts]


def check_eval_split(spec, dataset: str, split: str | None) -> None:
    """UsageError for an `--eval_split` given by the user that the dataset does not have (None,
    the default, measures `test` where there is one; `none` turns the measurement off)."""
    if split is not None and split != "none" and split.partition("[")[0] not in spec.splits:
        accepted = ", ".join([*spec.splits, "none"])
        raise UsageError(f"--eval_split={split}: dataset {dataset!r} has no such split; accepted: {accepted}")


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


def evaluate_heldout(trainer, spec, scale, dataset: str, train_split: str, image_size, split: str,
                     batch_size: int) -> dict:
    """The model's held-out metrics on `split`, also written to heldout.json, when both exist."""
    if split.partition("[")[0] not in spec.splits or split == train_split:
        return {}
    heldout, heldout_spec = sources.load(dataset, split, image_size, table=spec.table)
    num_batches = max(1, (heldout_spec.num_examples or batch_size) // batch_size)
    metrics = trainer.evaluate(
        pipeline.evaluation_dataset(heldout, batch_size=batch_size, scale=scale), num_batches
    )
    if not metrics:
        return {}
    result = {"split": split, "step": int(trainer.step.numpy()), **metrics}
    lifecycle.write_json(os.path.join(trainer.model_dir, HELDOUT_FILE), result)
    return result


def check_same_run(model_dir: str, record: dict, saved: dict) -> None:
    """Raises UsageError when `model_dir`, whose config.json holds `saved`, holds another run than
    the one `record` describes."""
    if not saved:
        if os.path.isdir(os.path.join(model_dir, CHECKPOINT_FOLDER)):
            raise UsageError(
                f"--model_dir={model_dir} holds checkpoints but no {CONFIG_FILE}; use an empty or new directory"
            )
        return
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
    if saved.get("holdout") != record.get("holdout"):
        share = (saved.get("holdout") or {}).get("share", 0)
        differences.append(f"holdout={share:g} there, {(record.get('holdout') or {}).get('share', 0):g} now")
    if bool(saved.get("privacy")) != bool(record.get("privacy")):
        differences.append("a differentially private run there, not now" if saved.get("privacy") else
                           "differentially private training now, not there")
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
    lifecycle.write_json(path, record)

