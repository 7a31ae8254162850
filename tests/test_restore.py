import numpy as np
import pytest

from synthblend.trainers import restore
from synthblend.zoo.registry import DataError, UsageError
from test_train import TINY, run_train


def test_restores_model_spec_and_averaged_weights(tmp_path):
    assert run_train("--model=dcgan", "--dataset=shapes", f"--model_dir={tmp_path}", *TINY, "--ema_decay=0.9")[0] == 0
    trained = restore.load(str(tmp_path))
    assert trained.step == 2 and trained.averaged
    assert trained.spec.shape == (28, 28, 1) and trained.spec.num_classes == 4
    assert trained.record["model"] == "dcgan"
    averaged = trained.model.sample(4, seed=1).numpy()
    raw = restore.load(str(tmp_path), use_average=False)
    assert not raw.averaged
    assert not np.array_equal(raw.model.sample(4, seed=1).numpy(), averaged)
    again = restore.load(str(tmp_path))
    np.testing.assert_array_equal(again.model.sample(4, seed=1).numpy(), averaged)


@pytest.mark.parametrize("make, words", [
    (lambda d: None, "does not exist"),
    (lambda d: d.mkdir(), "holds no config.json"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text("{not json")), "cannot be read"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text('{"model": "gna", "config": {}, "data_spec": {}}')),
     "unknown model 'gna'"),
])
def test_bad_model_dirs_are_usage_errors(tmp_path, make, words):
    model_dir = tmp_path / "run"
    make(model_dir)
    with pytest.raises(UsageError, match=words):
        restore.load(str(model_dir))


def test_model_dir_without_checkpoint(tmp_path):
    assert run_train("--model=gan", "--dataset=ring", f"--model_dir={tmp_path}", *TINY)[0] == 0
    for path in (tmp_path / "checkpoints").iterdir():
        path.unlink()
    with pytest.raises(UsageError, match="holds no checkpoint"):
        restore.load(str(tmp_path))


def test_unreadable_latest_checkpoint_falls_back_and_none_readable_is_an_error(tmp_path, capsys):
    # TINY trains 2 steps with a checkpoint every 2; 4 steps leave ckpt-2 and ckpt-4.
    assert run_train("--model=gan", "--dataset=ring", f"--model_dir={tmp_path}", *TINY, "--train_steps=4")[0] == 0
    latest = tmp_path / "checkpoints" / "ckpt-4.index"
    latest.write_bytes(b"garbage")
    trained = restore.load(str(tmp_path))
    assert trained.step == 2 and trained.checkpoint.endswith("ckpt-2")
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "ckpt-4 cannot be read" in warning[0] and warning[0].endswith("ckpt-2")
    (tmp_path / "checkpoints" / "ckpt-2.index").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"no checkpoint in .*checkpoints can be read .*ckpt-2"):
        restore.load(str(tmp_path))
