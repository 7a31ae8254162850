"""How a command ends, and what it holds while it runs: exit statuses, signals, one writer per output.

Every command ends with one of these statuses, which schedulers (Kubernetes Jobs, Slurm) can act on:

    0    finished.
    1    a runtime error: a file's contents, a failed save, training that diverged. Fix, then rerun.
    2    a usage error: a flag, a path, a value out of range. Fix the command.
    42   stopped by SIGTERM before finishing. What was finished is saved (training: a checkpoint at
         the step reached) and nothing half-written is left: run the same command again. 42 is
         TensorFlow's own status for "preempted, saved, restart me" (its PreemptionCheckpointHandler
         on Borg and TPU clusters); a scheduler tells it from 143, the status of a process that
         SIGTERM killed before it could save.
    75   the model directory or output is in use by another command still running (EX_TEMPFAIL of
         sysexits.h): try again later.
    130  interrupted with Ctrl-C (SIGINT); saved as for 42. A person stopped it, so a shell loop
         around the command stops too.

`stop_on_sigterm` makes SIGTERM unwind a command as Ctrl-C does, through the clean-up of whatever
it was writing; `uninterrupted` defers both signals while finished work is moved into place; `hold`
takes a model directory's or output's lock for the duration of a command.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import threading
import time

from synthblend.zoo.registry import UserError

RESTART = 42
BUSY = 75
INTERRUPTED = 130
LOCK_FILE = ".lock"
# The holder refreshes its lock's time this often; a lock of another host not refreshed for
# STALE_AFTER seconds is taken over (a holder on this host is checked by its process instead).
HEARTBEAT = 30.0
STALE_AFTER = 180.0


class Stopped(KeyboardInterrupt):
    """A signal stopped the work before it finished; what was finished is saved.

    A KeyboardInterrupt, so that `except Exception` does not swallow it and a notebook shows it as
    an interruption. `exit_code` is 42 for SIGTERM and 130 for SIGINT.
    """

    def __init__(self, message: str, signal_number: int = signal.SIGTERM):
        super().__init__(message)
        self.signal_number = signal_number

    @property
    def exit_code(self) -> int:
        return INTERRUPTED if self.signal_number == signal.SIGINT else RESTART


class Busy(UserError):
    """Another running command holds the model directory or output (exit status 75)."""

    exit_code = BUSY


def signal_name(number: int) -> str:
    return "SIGINT (Ctrl-C)" if number == signal.SIGINT else signal.Signals(number).name


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_on_sigterm():
    """SIGTERM raises `Stopped` in the main thread, as Ctrl-C raises KeyboardInterrupt, so the
    command unwinds through the clean-up of what it was writing; the previous handler comes back
    afterwards. Elsewhere than the main thread nothing is installed (signals reach only it)."""
    if not in_main_thread():
        yield
        return

    def stop(signum, frame):
        raise Stopped(f"stopped by {signal_name(signum)} before finishing; nothing half-written is left; "
                      "run the same command again", signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def uninterrupted():
    """Holds SIGTERM and SIGINT back while finished work is moved into place, so that a stop never
    lands between moving the old output aside and moving the new one in; a signal that came
    meanwhile is raised again on leaving, to the handlers there were before.

    Handlers rather than a signal mask: the kernel hands a process's signal to any thread that
    does not block it (TensorFlow runs many), and Python then runs the handler in the main thread.
    """
    if not in_main_thread():
        yield
        return
    held: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: held.append(signum))
                for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(held):
            signal.raise_signal(number)


def write_text(path: str, text: str) -> None:
    """Writes `path` whole or not at all: into `<path>.tmp`, then renamed over it."""
    with open(path + ".tmp", "w") as file:
        file.write(text)
    os.replace(path + ".tmp", path)


def write_json(path: str, data) -> None:
    """`data` as indented JSON at `path`, whole or not at all (NumPy numbers as floats)."""
    write_text(path, json.dumps(data, indent=2, default=float, allow_nan=True))


# -- one writer per model directory or output -------------------------------------------------------

def lock_path(target: str, folder: bool) -> str:
    """The lock of `target`: `<folder>/.lock`, or `.<name>.lock` beside a file."""
    target = os.path.abspath(target.rstrip("/") or "/")
    if folder:
        return os.path.join(target, LOCK_FILE)
    return os.path.join(os.path.dirname(target), f".{os.path.basename(target)}{LOCK_FILE}")


def process_start(pid: int) -> str | None:
    """When process `pid` started, in clock ticks since boot (Linux), to tell it from a later
    process given the same pid; None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def alive(holder: dict) -> bool:
    """Whether the process that wrote `holder` (on this host) still runs."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    started = holder.get("process_start")
    return started is None or process_start(pid) in (None, started)


def read_holder(path: str) -> tuple[dict | None, float | None]:
    """The lock's record and the time it was last refreshed; (None, None) when there is no lock."""
    try:
        refreshed = os.stat(path).st_mtime
        with open(path) as file:
            holder = json.load(file)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):
        return {}, os.stat(path).st_mtime if os.path.exists(path) else None
    return (holder if isinstance(holder, dict) else {}), refreshed


def stale(holder: dict, refreshed: float) -> bool:
    """Whether a lock is left by a process that no longer runs: on this host its process is gone;
    elsewhere (a shared file system) it was not refreshed for STALE_AFTER seconds."""
    if holder.get("host") == socket.gethostname():
        return not alive(holder)
    return time.time() - refreshed > STALE_AFTER


def describe(holder: dict) -> str:
    if not holder:
        return "a command that is starting"
    return (f"{holder.get('command', 'a command')} (pid {holder.get('pid')} on {holder.get('host')}, "
            f"since {holder.get('since')})")


class Lock:
    """A lock file held by this process; a thread refreshes its time until `release`."""

    def __init__(self, path: str, record: dict):
        self.path, self.record = path, record
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="lock-heartbeat", daemon=True)
        self._thread.start()

    def _refresh(self):
        while not self._done.wait(HEARTBEAT):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._done.set()
        self._thread.join()
        holder, _ = read_holder(self.path)
        if holder == self.record:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


def acquire(path: str, flag: str, command: str) -> Lock:
    """Takes the lock file `path` for `command`, or raises Busy naming its holder; a lock left by a
    process that no longer runs is taken over."""
    record = {"command": command, "host": socket.gethostname(), "pid": os.getpid(),
              "process_start": process_start(os.getpid()), "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    for _ in range(5):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder, refreshed = read_holder(path)
            if holder is None:
                continue  # released meanwhile
            if not stale(holder, refreshed):
                raise Busy(f"{flag} is in use by {describe(holder)}; wait for it to end or stop it "
                           f"(its lock {path} goes when it ends)") from None
            take_over(path, holder)
            continue
        with os.fdopen(descriptor, "w") as file:
            json.dump(record, file)
        return Lock(path, record)
    raise Busy(f"{flag} is being taken by other commands at the same time (lock {path}); try again")


def take_over(path: str, holder: dict) -> None:
    """Removes the stale lock `path` of `holder`; a lock that another process took meanwhile is put back."""
    moved = f"{path}.stale-{os.getpid()}"
    try:
        os.rename(path, moved)
    except FileNotFoundError:
        return
    if read_holder(moved)[0] != holder:
        with contextlib.suppress(OSError):
            os.link(moved, path)  # fails if yet another lock exists: then that one stands
    os.remove(moved)


@contextlib.contextmanager
def hold(target: str, flag: str, command: str, folder: bool = True, enabled: bool = True):
    """Holds the lock of the folder (or file) `target` while the block runs; Busy when another
    running command holds it. A folder made only to hold the lock is removed again if it stays
    empty. `flag` names the target in messages (`--model_dir=runs/x`)."""
    if not enabled:
        yield None
        return
    made = folder and not os.path.isdir(target)
    if made:
        os.makedirs(target)
    try:
        lock = acquire(lock_path(target, folder), flag, command)
        try:
            yield lock
        finally:
            lock.release()
    finally:
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(target)  # only if empty


@contextlib.contextmanager
def staged(folder: str, last: tuple[str, ...] = ("report.html", "report.json")):
    """Yields a hidden folder inside `folder` to write a set of files into. When the block ends
    well, each file moves into `folder` (the `last` ones last, the way a reader knows the set is
    whole) with stops held back; when it fails or is stopped, the hidden folder goes and `folder`
    keeps what it held before (a `folder` made for it is removed again)."""
    made = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, f".partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        yield staging
        names = sorted(os.listdir(staging), key=lambda name: (name in last, last.index(name) if name in last else 0))
        with uninterrupted():
            for name in names:
                target = os.path.join(folder, name)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                os.replace(os.path.join(staging, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only if empty: the block failed before anything moved in
