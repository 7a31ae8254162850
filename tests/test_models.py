"""Tests every registered model gets, by looping over the registry."""

import numpy as np
import pytest
import tensorflow as tf

import zoo
from conftest import all_finite, tiny_model, tiny_shape
from trainers.loop import Trainer, TrainerConfig


def batch_for(model, size=8, seed=0):
    x = tf.random.stateless_uniform((size, *model.data_shape), seed=[seed, 1], minval=-1, maxval=1)
    return {"x": x, "y": tf.zeros((size,), tf.int64)}


def test_builds_and_round_trips_its_config(model_name):
    model = tiny_model(model_name)
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert set(config) <= set(type(model).arguments())
    assert model.data_shape == tiny_shape(model_name)


def test_one_step_updates_both_players_and_reports_finite_metrics(model_name):
    model = tiny_model(model_name)
    model.build_optimizers()
    before = [v.numpy().copy() for v in model.trainable_variables]
    metrics = model.train_step(batch_for(model))
    assert metrics and all(isinstance(k, str) for k in metrics)
    assert all(tf.rank(v) == 0 for v in metrics.values())
    assert all_finite(metrics.values())
    changed = [not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_variables)]
    assert all(changed), "some trainable variables were not updated"


def test_sample_shape_range_and_determinism(model_name):
    model = tiny_model(model_name)
    samples = model.sample(5, seed=3).numpy()
    assert samples.shape == (5, *model.data_shape)
    assert np.isfinite(samples).all()
    if model.data_range is not None:
        low, high = model.data_range
        assert samples.min() >= low and samples.max() <= high
    np.testing.assert_array_equal(samples, model.sample(5, seed=3).numpy())
    assert not np.array_equal(samples, model.sample(5, seed=4).numpy())
    # Without a seed, samples come from the model's own stream and differ call to call.
    assert not np.array_equal(model.sample(5).numpy(), model.sample(5).numpy())


def test_unsupported_data_shape_is_a_usage_error(model_name):
    model_class = zoo.get(model_name)
    with pytest.raises(zoo.UsageError, match=model_name):
        model_class.check_data((3, 5, 7, 2), 0)


def test_save_and_resume_continue_where_they_stopped(model_name, tmp_path):
    def trainer_for(model):
        dataset = tf.data.Dataset.from_tensors(batch_for(model)).repeat()
        config = TrainerConfig(steps_per_call=2, checkpoint_every=2, log_every=2, sample_every=100, ema_decay=0.9)
        return Trainer(model, dataset, str(tmp_path), config, log=lambda line: None)

    first = trainer_for(tiny_model(model_name))
    first.train(2)
    saved = [v.numpy() for v in first.model.variables]

    second = trainer_for(tiny_model(model_name, seed=99))  # other init; restore must overwrite it
    assert second.restore() == 2
    assert len(second.model.variables) == len(saved)
    for variable, value in zip(second.model.variables, saved):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    np.testing.assert_array_equal(
        [s.numpy() for s in second.ema.shadows[:1]], [s.numpy() for s in first.ema.shadows[:1]]
    )
    second.train(4)
    assert int(second.step.numpy()) == 4
    assert second.checkpoints.latest_checkpoint.endswith("ckpt-4")
