"""The training loop, driven by a toy model whose every step is predictable."""

import errno
import os
import signal
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from synthblend.trainers.lifecycle import Stopped
from synthblend.trainers.loop import ExponentialMovingAverage, Trainer, TrainerConfig
from synthblend.zoo.base import GenerativeModel
from synthblend.zoo.registry import TrainingError


class Counter(GenerativeModel):
    """Adds each batch's mean to a weight; its 'loss' turns NaN once the weight passes a limit."""

    def __init__(self, nan_after=1e9, **kwargs):
        super().__init__(data_shape=(1,), bounded=False, **kwargs)
        self.nan_after = nan_after
        self.net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
        self.optimizer_ = keras.optimizers.SGD(1.0)

    @property
    def sampling_network(self):
        return self.net

    def build_optimizers(self):
        self.optimizer_.build(self.net.trainable_variables)

    def train_step(self, batch):
        kernel = self.net.trainable_variables[0]
        kernel.assign_add(tf.fill(kernel.shape, tf.reduce_mean(batch["x"])))
        value = tf.reduce_sum(tf.convert_to_tensor(kernel))
        loss = tf.where(value > self.nan_after, tf.constant(np.nan), value)
        return {"loss": loss, "noise": keras.random.uniform((), seed=self.seed_generator)}

    def latents(self, num, seed=None):
        return self.normal((num, 1), seed)

    def generate(self, latents, training=False):
        return self.net(latents, training=training)


def ones():
    return tf.data.Dataset.from_tensors({"x": tf.ones((4, 1))}).repeat()


def trainer(tmp_path, model=None, **config):
    settings = dict(steps_per_call=5, checkpoint_every=10, log_every=5, sample_every=10)
    settings.update(config)
    lines = []
    result = Trainer(model or Counter(), ones(), str(tmp_path), TrainerConfig(**settings), log=lines.append)
    result.lines = lines
    return result


def kernel(trainer_):
    return float(trainer_.model.net.trainable_variables[0].numpy().sum())


def test_runs_exactly_the_requested_steps_and_averages_metrics(tmp_path):
    run = trainer(tmp_path, steps_per_call=4, log_every=100, checkpoint_every=100, sample_every=100)
    metrics = run.train(7)  # calls of 4 and 3 steps
    assert int(run.step.numpy()) == 7
    initial = kernel(run) - 7.0  # each step added the batch mean, 1
    # The last call ran steps 5..7, whose losses are initial+5, +6, +7: their mean is initial+6.
    assert metrics["loss"] == pytest.approx(initial + 6.0, abs=1e-5)


@pytest.mark.parametrize(
    "step, train_steps, expected",
    [(0, 100, 5), (3, 100, 2), (8, 9, 1), (0, 3, 3), (10, 100, 5)],
)
def test_calls_end_on_every_event_step(tmp_path, step, train_steps, expected):
    run = trainer(tmp_path, steps_per_call=50, log_every=5, checkpoint_every=10, sample_every=10)
    assert run._steps_until_event(step, train_steps) == expected


def test_checkpoints_every_n_steps_keep_the_last_k_and_resume(tmp_path):
    run = trainer(tmp_path, keep_checkpoints=2)
    run.train(30)
    names = sorted(os.path.basename(p) for p in run.checkpoints.checkpoints)
    assert names == ["ckpt-20", "ckpt-30"]
    resumed = trainer(tmp_path)
    assert resumed.restore() == 30
    assert kernel(resumed) == pytest.approx(kernel(run))
    resumed.train(35)
    assert resumed.checkpoints.latest_checkpoint.endswith("ckpt-35")
    assert any("resumed from" in line and "step 30" in line for line in resumed.lines)


def test_random_state_is_checkpointed(tmp_path):
    run = trainer(tmp_path)
    run.train(10)
    continued = run.train(20)
    fresh = trainer(tmp_path / "other")
    fresh.train(10)
    fresh.checkpoints.save(checkpoint_number=10)
    del fresh
    resumed = trainer(tmp_path / "other")
    assert resumed.train(20)["noise"] == pytest.approx(continued["noise"])


def test_non_finite_loss_stops_without_saving(tmp_path):
    run = trainer(tmp_path, model=Counter(nan_after=1e9))
    run.train(10)
    initial = kernel(run) - 10
    bad = trainer(tmp_path, model=Counter(nan_after=initial + 13.5))
    with pytest.raises(TrainingError, match=r"loss became nan between steps 10 and 15.*ckpt-10"):
        bad.train(30)
    assert bad.checkpoints.latest_checkpoint.endswith("ckpt-10")
    assert trainer(tmp_path).restore() == 10


def test_progress_line_has_step_metrics_rate_and_eta(tmp_path):
    run = trainer(tmp_path)
    run.train(10)
    line = [line for line in run.lines if line.startswith("step 10/10")][0]
    assert "loss " in line and "steps/s" in line and "ETA" in line


def test_pictures_use_fixed_noise_and_go_to_png_and_tensorboard(tmp_path):
    drawn = []

    def picture(samples, path, columns):
        if os.path.basename(path).startswith("step_"):
            drawn.append(samples.copy())
        from synthblend.trainers import pictures

        pictures.save_histograms(samples, path)

    run = Trainer(Counter(), ones(), str(tmp_path), TrainerConfig(steps_per_call=5, sample_every=5,
                                                                  num_pictured=16), picture=picture, log=print)
    run.train(10)
    assert sorted(os.listdir(tmp_path / "samples")) == [
        "interpolation_step_0000005.png", "interpolation_step_0000010.png", "step_0000005.png", "step_0000010.png"
    ]
    assert run.last_picture.endswith("step_0000010.png")
    # Same latents each time: the samples are the latents times the kernel.
    np.testing.assert_allclose(drawn[1] / drawn[0], np.full_like(drawn[0], drawn[1][0] / drawn[0][0]), rtol=1e-5)
    events = [f for f in os.listdir(tmp_path) if f.startswith("events.out.tfevents")]
    assert events


def test_sigterm_saves_and_stops_after_the_current_call(tmp_path):
    def picture(samples, path, columns):
        from synthblend.trainers import pictures

        pictures.save_histograms(samples, path)
        os.kill(os.getpid(), signal.SIGTERM)

    run = Trainer(Counter(), ones(), str(tmp_path), TrainerConfig(steps_per_call=5, sample_every=5,
                                                                  checkpoint_every=100), picture=picture)
    with pytest.raises(Stopped) as stop:
        run.train(100)
    assert int(run.step.numpy()) == 5
    assert run.checkpoints.latest_checkpoint.endswith("ckpt-5")
    assert str(stop.value).startswith("stopped by SIGTERM at step 5 of 100; checkpoint saved")
    assert stop.value.exit_code == 42


def test_ctrl_c_saves_and_stops_as_sigterm_does_and_a_second_one_interrupts_at_once(tmp_path):
    signals = []

    def picture(samples, path, columns):
        from synthblend.trainers import pictures

        pictures.save_histograms(samples, path)
        if not os.path.basename(path).startswith("step_"):
            return
        signals.append(path)
        os.kill(os.getpid(), signal.SIGINT)
        if len(signals) == 2:  # in the resumed run, a second Ctrl-C right after the first
            os.kill(os.getpid(), signal.SIGINT)

    config = TrainerConfig(steps_per_call=5, sample_every=5, checkpoint_every=100)
    handler = signal.getsignal(signal.SIGINT)
    run = Trainer(Counter(), ones(), str(tmp_path), config, picture=picture)
    with pytest.raises(Stopped) as stop:
        run.train(100)
    assert stop.value.exit_code == 130 and "SIGINT (Ctrl-C) at step 5 of 100" in str(stop.value)
    assert run.checkpoints.latest_checkpoint.endswith("ckpt-5")
    with pytest.raises(KeyboardInterrupt) as again:
        Trainer(Counter(), ones(), str(tmp_path), config, picture=picture).train(100)
    assert not isinstance(again.value, Stopped)
    assert signal.getsignal(signal.SIGINT) is handler


def test_ema_warms_up_and_swaps_back():
    variable = tf.Variable([0.0])
    ema = ExponentialMovingAverage([variable], decay=0.99)
    variable.assign([10.0])
    ema.update()  # first decay: min(0.99, 2/11)
    assert ema.shadows[0].numpy()[0] == pytest.approx(10.0 * (1 - 2 / 11))
    with ema.swapped():
        assert variable.numpy()[0] == pytest.approx(10.0 * (1 - 2 / 11))
    assert variable.numpy()[0] == 10.0




def poisoned(index):
    """Batches of ones, except batch `index`, which is NaN."""
    batches = tf.data.Dataset.range(10**6).map(lambda i: {"x": tf.fill((4, 1), tf.where(i == index, np.nan, 1.0))})
    return batches


def test_sigterm_during_a_long_call_stops_within_one_step(tmp_path):
    run = Trainer(Counter(), ones(), str(tmp_path), TrainerConfig(steps_per_call=10**6, checkpoint_every=10**6,
                                                                  log_every=10**6, sample_every=10**6), log=print)
    initial = kernel(run)
    signaller = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    signaller.start()
    with pytest.raises(Stopped):
        run.train(10**6)
    signaller.join()
    step = int(run.step.numpy())
    assert 0 < step < 10**6
    assert run.checkpoints.latest_checkpoint.endswith(f"ckpt-{step}")
    # The step counter and the weights agree (each step adds 1, up to float32 rounding).
    assert abs(kernel(run) - initial - step) < 0.5


@pytest.mark.parametrize("damage", ["truncate data", "garbage index"])
def test_unreadable_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage):
    run = trainer(tmp_path)
    run.train(20)
    latest = run.checkpoints.latest_checkpoint
    if damage == "truncate data":
        path = latest + ".data-00000-of-00001"
        os.truncate(path, os.path.getsize(path) // 2)
    else:
        with open(latest + ".index", "wb") as file:
            file.write(os.urandom(200))
    resumed = trainer(tmp_path)
    assert resumed.restore() == 10
    warnings = [line for line in resumed.lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "ckpt-20" in warnings[0] and "resuming from" in warnings[0]
    assert warnings[0].endswith("ckpt-10")
    assert resumed.train(30) and int(resumed.step.numpy()) == 30


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    run = trainer(tmp_path)
    run.train(20)
    for path in run.checkpoints.checkpoints:
        with open(path + ".index", "wb") as file:
            file.write(b"garbage")
    before = sorted(os.listdir(tmp_path / "checkpoints"))
    with pytest.raises(TrainingError, match=r"no checkpoint in .*checkpoints can be read.*ckpt-10"):
        trainer(tmp_path).train(30)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == before


def test_rollback_skips_the_batches_that_failed(tmp_path):
    lines = []
    run = Trainer(Counter(), poisoned(12), str(tmp_path), TrainerConfig(
        steps_per_call=5, checkpoint_every=10, log_every=5, sample_every=10, nan_policy="rollback"), log=lines.append)
    initial = kernel(run)
    run.train(30)
    assert int(run.step.numpy()) == 30
    # Steps 10-14 (batches 10-14, one of them NaN) were undone and batches 15-34 used instead.
    assert kernel(run) == pytest.approx(initial + 30)
    assert any(line.startswith("rolled back to step 10 (1/3)") for line in lines)


def test_rollback_stops_after_max_rollbacks(tmp_path):
    trainer(tmp_path).train(10)
    run = trainer(tmp_path, model=Counter(nan_after=-1e9), nan_policy="rollback", max_rollbacks=2)
    with pytest.raises(TrainingError, match=r"non-finite between steps 10 and 15 and 2 rollbacks done"):
        run.train(30)
    assert sum(line.startswith("rolled back to step 10") for line in run.lines) == 2
    assert run.checkpoints.latest_checkpoint.endswith("ckpt-10")


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   tf.errors.ResourceExhaustedError(None, None, "disk quota exceeded")])
def test_failing_save_names_the_folder_and_keeps_earlier_checkpoints(tmp_path, error):
    trainer(tmp_path).train(10)
    run = trainer(tmp_path)

    def fail(**kwargs):
        raise error

    run.checkpoints.save = fail
    with pytest.raises(TrainingError, match=r"saving the checkpoint of step 20 in .*checkpoints failed .*"
                                            r"(No space|quota).*latest: .*ckpt-10"):
        run.train(20)
    assert trainer(tmp_path).restore() == 10


def test_pipeline_that_cannot_be_saved_still_checkpoints_and_resumes(tmp_path):
    def generate():
        while True:
            yield {"x": np.ones((4, 1), np.float32)}

    signature = {"x": tf.TensorSpec((4, 1), tf.float32)}
    lines = []
    run = Trainer(Counter(), tf.data.Dataset.from_generator(generate, output_signature=signature), str(tmp_path),
                  TrainerConfig(steps_per_call=5, checkpoint_every=10, log_every=5, sample_every=10), log=lines.append)
    run.train(10)
    assert [line for line in lines if "input pipeline cannot be checkpointed" in line]
    resumed = trainer(tmp_path)
    assert resumed.restore() == 10
    assert any("holds no iterator state" in line for line in resumed.lines)


def test_a_position_and_an_iterator_state_each_resume_only_their_own_input(tmp_path):
    """Rows drawn inside the step save their position; a run in the same folder over a `tf.data`
    iterator (another input pipeline) restores everything else and starts the data order over,
    with a warning, and so does a run drawing in the step again from that iterator's checkpoint."""
    from synthblend.datasets import pipeline, rows
    from synthblend.datasets.sources import DataSpec

    data = rows.rows_dataset({"x": np.arange(8, dtype=np.float32)[:, None]})
    spec = DataSpec(name="toy", shape=(1,), value_range=None, loc=(0.0,), scale=(1.0,), num_examples=8)

    def run(dataset):
        lines = []
        config = TrainerConfig(steps_per_call=5, checkpoint_every=5, log_every=5, sample_every=100)
        return Trainer(Counter(), dataset, str(tmp_path), config, log=lines.append), lines

    def stream():
        return pipeline.training_dataset(data, spec, batch_size=4, scale=pipeline.scaling(spec, None), seed=0)

    drawn, _ = run(stream())
    assert isinstance(drawn.iterator, pipeline.BatchDraw)
    drawn.train(5)
    iterated, lines = run(stream().with_options(tf.data.Options()))  # not the pipeline's own: iterated
    assert isinstance(iterated.iterator, tf.data.Iterator)
    assert iterated.restore() == 5
    assert any("ckpt-5 holds no iterator state this input pipeline can read" in line for line in lines)
    iterated.train(10)
    again, lines = run(stream())
    assert again.restore() == 10
    assert any("ckpt-10 holds no iterator state this input pipeline can read" in line for line in lines)
