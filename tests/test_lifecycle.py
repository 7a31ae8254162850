"""Exit statuses, stops and locks: one writer per model directory, export folder or output, locks
of processes that are gone taken over, and stopped commands that leave nothing half-written."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import run_tool
from test_train import TINY
from synthblend.trainers import evaluate, export, lifecycle, sample, train
from synthblend.zoo.registry import UserError


def write_lock(path, **changes):
    """A lock file as a running command writes it, this process its holder unless `changes` say otherwise."""
    record = {"command": "training", "host": socket.gethostname(), "pid": os.getpid(),
              "process_start": lifecycle.process_start(os.getpid()), "since": "2026-12-01 10:00:00 UTC", **changes}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        json.dump(record, file)
    return record


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("ring") / "run"
    assert run_tool(train.main, "--model=gan", "--dataset=ring", f"--model_dir={model_dir}", *TINY)[0] == 0
    return model_dir


@pytest.fixture(scope="module")
def dead_pid():
    """The pid of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_is_held_while_the_block_runs_and_refuses_a_second_holder(tmp_path):
    target = tmp_path / "run"
    with lifecycle.hold(str(target), "--model_dir=run", "training") as lock:
        record = json.loads((target / ".lock").read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(lifecycle.Busy) as busy:
            with lifecycle.hold(str(target), "--model_dir=run", "an export"):
                pass
        assert busy.value.exit_code == 75
        assert str(busy.value) == (f"--model_dir=run is in use by training (pid {os.getpid()} on "
                                   f"{socket.gethostname()}, since {record['since']}); wait for it to end or stop "
                                   f"it (its lock {target / '.lock'} goes when it ends)")
        assert lock.path == str(target / ".lock")
    assert not (target / ".lock").exists()
    assert not target.exists(), "a folder made only for the lock stays after the block"


def test_a_lock_refreshes_its_time_while_held(tmp_path, monkeypatch):
    monkeypatch.setattr(lifecycle, "HEARTBEAT", 0.05)
    with lifecycle.hold(str(tmp_path), "--model_dir=run", "training"):
        path = tmp_path / ".lock"
        os.utime(path, (time.time() - 1000, time.time() - 1000))
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 5


@pytest.mark.parametrize("left", ["dead process", "reused pid", "other host, silent", "unreadable, old"])
def test_a_lock_left_by_a_process_that_is_gone_is_taken_over(tmp_path, dead_pid, left):
    path = tmp_path / ".lock"
    if left == "dead process":
        write_lock(path, pid=dead_pid)
    elif left == "reused pid":  # a running process, but not the one that wrote the lock
        write_lock(path, process_start="1")
    elif left == "other host, silent":
        write_lock(path, host="node-7.cluster")
        os.utime(path, (time.time() - lifecycle.STALE_AFTER - 10,) * 2)
    else:
        path.write_text('{"command": "trai')
        os.utime(path, (time.time() - 600,) * 2)
    with lifecycle.hold(str(tmp_path), "--model_dir=run", "training"):
        assert json.loads(path.read_text())["command"] == "training"
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("held", ["other host, refreshed", "being written"])
def test_a_lock_whose_holder_may_run_is_respected(tmp_path, held):
    path = tmp_path / ".lock"
    if held == "being written":
        path.write_text("")
        message = "in use by a command that is starting"
    else:
        write_lock(path, host="node-7.cluster", pid=4242)
        message = "in use by training (pid 4242 on node-7.cluster, since 2026-12-01 10:00:00 UTC)"
    with pytest.raises(lifecycle.Busy, match=message.replace("(", r"\(").replace(")", r"\)")):
        with lifecycle.hold(str(tmp_path), "--model_dir=run", "training"):
            pass
    assert path.exists()


def busy_cases(ring_run, tmp_path):
    export_dir, output = tmp_path / "export", tmp_path / "samples.npz"
    return {
        "train": (train.main, ["--model=gan", "--dataset=ring", f"--model_dir={ring_run}", *TINY[1:],
                               "--train_steps=4"], ring_run / ".lock", f"--model_dir={ring_run} is in use"),
        "export": (export.main, [f"--model_dir={ring_run}", f"--export_dir={export_dir}"], export_dir / ".lock",
                   f"--export_dir={export_dir} is in use"),
        "sample": (sample.main, [f"--model_dir={ring_run}", f"--output={output}", "--num_samples=5"],
                   tmp_path / ".samples.npz.lock", f"--output={output} is in use"),
    }


@pytest.mark.parametrize("command", ["train", "export", "sample"])
def test_a_command_writing_what_another_holds_exits_75_naming_the_holder(ring_run, tmp_path, command):
    main, argv, lock, words = busy_cases(ring_run, tmp_path)[command]
    write_lock(str(lock), command="another command")
    before = sorted(os.listdir(ring_run))
    code, _, err = run_tool(main, *argv)
    assert code == 75, err
    assert err.strip().splitlines() == [
        f"error: {words} by another command (pid {os.getpid()} on {socket.gethostname()}, since 2026-12-01 "
        f"10:00:00 UTC); wait for it to end or stop it (its lock {lock} goes when it ends)"
    ]
    assert sorted(os.listdir(ring_run)) == before
    if lock.parent != ring_run:
        assert sorted(os.listdir(lock.parent)) == [lock.name], "nothing but the holder's lock"
    os.remove(lock)
    code, _, err = run_tool(main, *argv)
    assert code == 0, err
    assert not lock.exists()


def test_a_stopped_export_leaves_no_version_and_no_lock(ring_run, tmp_path, monkeypatch):
    export_dir = tmp_path / "export"
    real = export.keras_generator

    def stopped(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(export, "keras_generator", stopped)
    code, _, err = run_tool(export.main, f"--model_dir={ring_run}", f"--export_dir={export_dir}")
    assert code == 42, err
    assert err.strip().splitlines() == ["stopped by SIGTERM before finishing; nothing half-written is left; run the "
                                        "same command again"]
    assert not export_dir.exists() or os.listdir(export_dir) == []


def test_a_stopped_evaluation_keeps_the_report_that_was_there(ring_run, tmp_path, monkeypatch):
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    (report_dir / "report.json").write_text('{"old": true}')
    real = evaluate.write_html

    def stopped(*args):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args)

    monkeypatch.setattr(evaluate, "write_html", stopped)
    code, _, err = run_tool(evaluate.main, f"--model_dir={ring_run}", f"--report_dir={report_dir}",
                            "--num_samples=50", "--real_examples=50", f"--cache_dir={tmp_path / 'cache'}")
    assert code == 130, err
    assert "stopped by SIGINT (Ctrl-C) before finishing" in err
    assert os.listdir(report_dir) == ["report.json"] and json.loads((report_dir / "report.json").read_text()) == {
        "old": True}
    monkeypatch.setattr(evaluate, "write_html", real)
    code, _, err = run_tool(evaluate.main, f"--model_dir={ring_run}", f"--report_dir={report_dir}",
                            "--num_samples=50", "--real_examples=50", f"--cache_dir={tmp_path / 'cache'}")
    assert code == 0, err
    assert {"report.json", "report.html", "memorisation.png"} <= set(os.listdir(report_dir))
    assert not [name for name in os.listdir(report_dir) if name.startswith(".partial")]


def test_a_stopped_blend_keeps_the_earlier_output_and_leaves_no_partial(tmp_path, monkeypatch):
    from synthblend.trainers import blend

    model_dir = tmp_path / "run"
    assert run_tool(train.main, "--model=gan", "--dataset=ring", "--conditional", f"--model_dir={model_dir}",
                    *TINY)[0] == 0
    output = tmp_path / "out" / "blend.npz"
    output.parent.mkdir()
    output.write_bytes(b"earlier blend")
    real = sample.NpzWriter.write
    calls = []

    def stopped(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(sample.NpzWriter, "write", stopped)
    code, _, err = run_tool(blend.main, "--dataset=ring", f"--model_dir={model_dir}", f"--output={output}",
                            "--num_examples=3000", "--ratio=0.5", "--overwrite")
    assert code == 42, err
    assert "stopped by SIGTERM before finishing" in err
    assert os.listdir(output.parent) == ["blend.npz"] and output.read_bytes() == b"earlier blend"


def test_a_stop_waits_until_the_output_is_in_place_then_arrives():
    moved = []
    with pytest.raises(lifecycle.Stopped):
        with lifecycle.stop_on_sigterm():
            with lifecycle.uninterrupted():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                moved.append("old aside")
                moved.append("new in place")
            moved.append("after")
    assert moved == ["old aside", "new in place"]


def test_busy_is_a_user_error_and_stopped_an_interruption():
    assert issubclass(lifecycle.Busy, UserError)
    assert issubclass(lifecycle.Stopped, KeyboardInterrupt) and not issubclass(lifecycle.Stopped, Exception)
    assert lifecycle.Stopped("x", signal.SIGTERM).exit_code == 42
    assert lifecycle.Stopped("x", signal.SIGINT).exit_code == 130
    assert np.all([lifecycle.RESTART, lifecycle.BUSY, lifecycle.INTERRUPTED] == [42, 75, 130])
