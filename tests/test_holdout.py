"""The held-out part of a source without a test split: set aside before training, recorded,
never trained on, and what evaluate and utility measure against; and real test data the user
gives those commands."""

import json

import numpy as np
import pytest

from conftest import run_tool
from test_train import TINY, run_train
from synthblend.datasets import rows, sources
from synthblend.trainers import evaluate, utility


def write_npz(path, num=400, seed=0):
    generator = np.random.default_rng(seed)
    y = generator.integers(0, 2, num)
    x = (generator.normal(size=(num, 2)) + 3 * y[:, None]).astype(np.float32)
    np.savez(path, x=x, y=y)
    return path


def record_of(model_dir):
    return json.loads((model_dir / "config.json").read_text())


def test_hold_out_sets_aside_the_same_share_every_time_and_keeps_the_rest():
    x = np.arange(50)[:, None].astype(np.float32)
    data, spec = sources.from_arrays("toy", x, np.arange(50) % 2)
    kept, kept_spec, held, held_spec = sources.hold_out(data, spec, 0.2)
    kept_x = rows.rows_of(kept).columns["x"][:, 0]
    held_x = rows.rows_of(held).columns["x"][:, 0]
    assert (kept_spec.num_examples, held_spec.num_examples) == (40, 10) == (len(kept_x), len(held_x))
    assert sorted(np.concatenate([kept_x, held_x])) == list(range(50))
    _, _, again, _ = sources.hold_out(data, spec, 0.2)
    np.testing.assert_array_equal(rows.rows_of(again).columns["x"][:, 0], held_x)
    assert held_x.tolist() != list(range(40, 50))  # chosen throughout, not the last rows
    with pytest.raises(sources.UsageError, match=r"--holdout=0.001 of the 50 examples of 'toy' holds out 0"):
        sources.hold_out(data, spec, 0.001)


def test_a_file_source_holds_out_a_tenth_that_evaluate_measures_against(tmp_path):
    data = write_npz(tmp_path / "data.npz")
    model_dir = tmp_path / "run"
    code, out, err = run_train("--model=gan", f"--dataset=npz:{data}", "--conditional", f"--model_dir={model_dir}",
                               *TINY)
    assert code == 0, err
    record = record_of(model_dir)
    assert record["holdout"] == {"share": 0.1, "seed": 0, "examples": 40, "of": 400}
    assert record["data_spec"]["num_examples"] == 360
    assert f"held out 40 of the 400 examples of npz:{data} (--holdout=0.1)" in out
    cache = tmp_path / "cache"
    code, _, err = run_tool(evaluate.main, f"--model_dir={model_dir}", "--num_samples=30", "--real_examples=400",
                            f"--cache_dir={cache}")
    assert code == 0, err
    report = json.loads((model_dir / "evaluation" / "report.json").read_text())
    assert report["heldout"] == (f"the 40 examples of npz:{data} held out before training (--holdout=0.1; "
                                 "never trained on)")
    assert isinstance(report["privacy"]["membership_inference"], dict)
    # The same command again continues the same run; another share is another run.
    assert run_train("--model=gan", f"--dataset=npz:{data}", "--conditional", f"--model_dir={model_dir}",
                     *TINY[1:], "--train_steps=3")[0] == 0
    code, _, err = run_train("--model=gan", f"--dataset=npz:{data}", "--conditional", f"--model_dir={model_dir}",
                             *TINY[1:], "--train_steps=4", "--holdout=0.2")
    assert code == 2 and "holdout" in err


def test_evaluate_and_utility_take_the_users_own_test_data(tmp_path):
    data, test = write_npz(tmp_path / "data.npz"), write_npz(tmp_path / "test.npz", 120, seed=1)
    model_dir = tmp_path / "run"
    code, _, err = run_train("--model=gan", f"--dataset=npz:{data}", "--conditional", "--holdout=0",
                             f"--model_dir={model_dir}", *TINY)
    assert code == 0, err
    assert "holdout" not in record_of(model_dir) and record_of(model_dir)["data_spec"]["num_examples"] == 400
    code, _, err = run_tool(evaluate.main, f"--model_dir={model_dir}", "--num_samples=30", "--real_examples=400",
                            f"--cache_dir={tmp_path / 'cache'}", f"--test_data=npz:{test}")
    assert code == 0, err
    report = json.loads((model_dir / "evaluation" / "report.json").read_text())
    assert report["heldout"] == f"npz:{test} (train), given with --test_data"
    code, _, err = run_tool(utility.main, f"--model_dir={model_dir}", f"--dataset=npz:{data}", "--split=train[:50]",
                            "--ratios=0,0.5", "--classifier_steps=5", "--repeats=1", f"--test_data=npz:{test}",
                            "--test_split=train[:100]", f"--report_dir={tmp_path / 'utility'}")
    assert code == 0, err
    result = json.loads((tmp_path / "utility" / "utility.json").read_text())
    assert result["test_examples"] == 100 and result["tested_on"].startswith(f"npz:{test} (train[:100])")


@pytest.mark.parametrize("argv, words", [
    (["--model=gan", "--dataset=ring", "--holdout=0.1"], "'ring' has a test split, which the measures use"),
    (["--model=gan", "--dataset=npz:DATA", "--holdout=0.95"], "--holdout"),
    (["--model=gan", "--dataset=npz:DATA", "--holdout=nan"], "--holdout"),
], ids=["test split", "too large", "nan"])
def test_a_holdout_that_cannot_be_is_one_line(tmp_path, argv, words):
    data = write_npz(tmp_path / "data.npz")
    argv = [argument.replace("DATA", str(data)) for argument in argv]
    code, _, err = run_train(*argv, f"--model_dir={tmp_path / 'run'}", *TINY)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_test_split_without_test_data_is_refused(tmp_path):
    data = write_npz(tmp_path / "data.npz")
    model_dir = tmp_path / "run"
    assert run_train("--model=gan", f"--dataset=npz:{data}", f"--model_dir={model_dir}", *TINY)[0] == 0
    code, _, err = run_tool(evaluate.main, f"--model_dir={model_dir}", "--num_samples=30", "--test_split=test",
                            f"--cache_dir={tmp_path / 'cache'}")
    assert code == 2 and "--test_split=test applies with --test_data" in err, err
