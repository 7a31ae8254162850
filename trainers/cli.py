"""What every command-line tool shares: flag parsing and the one-line error contract.

`run(main)` parses flags and calls `main`. A bad flag value or a `UserError` raised by `main`
ends as one line on stderr, `error: ...`, and exit status 2 (usage) or 1 (runtime), with no
traceback unless `--verbose`.
"""

from __future__ import annotations

import os
import sys


def _import_tensorflow_quietly():
    """Imports TensorFlow and finds its devices with stderr silenced.

    TensorFlow's C++ start-up messages (oneDNN, CUDA stubs, cuInit on machines without a GPU)
    are written before its log level applies and would bury the tool's own output. Setting
    TF_CPP_MIN_LOG_LEVEL yourself shows them all again.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        import tensorflow  # noqa: F401
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


_import_tensorflow_quietly()

import logging as python_logging  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from trainers.flags import VERBOSE  # noqa: E402

from zoo.registry import UsageError, UserError  # noqa: E402

FLAGS = flags.FLAGS


def fail(message: str, exit_code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exit_code)


def parse_flags(argv: list[str]) -> list[str]:
    """Parses flags; a bad value ends the program with one line and status 2."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        # absl prefixes some messages (a flagfile that cannot be opened) with its own "ERROR::".
        fail(str(error).splitlines()[0].removeprefix("ERROR:: "), 2)


def require(*holders) -> None:
    """Raises UsageError naming the first required flag that was not given."""
    for holder in holders:
        if holder.value is None or holder.value == "":
            raise UsageError(f"--{holder.name} is required")


def check_writable_dir(path: str, flag: str) -> None:
    """Raises UsageError unless `path` is a directory, or could be made one, that can be written."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag}={path} is a file, not a directory")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(os.path.abspath(parent))
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag}={path} is not writable ({parent} does not allow writing)")


def guarded(main):
    """Wraps `main` so that a `UserError` ends as one line and its exit status."""

    def wrapped(argv):
        if not VERBOSE.value:
            # TensorFlow's own warnings (retracing, deprecations) are for developers, not users.
            logging.set_verbosity(logging.ERROR)
            python_logging.getLogger("tensorflow").setLevel(python_logging.ERROR)
        try:
            if len(argv) > 1:
                raise UsageError(f"unexpected argument {argv[1]!r}; flags look like --name=value")
            return main(argv)
        except UserError as error:
            if VERBOSE.value:
                raise
            fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except MemoryError as error:
            if VERBOSE.value:
                raise
            fail(f"out of memory ({str(error).splitlines()[0] if str(error) else 'MemoryError'}); "
                 "use less data, a smaller --image_size or --batch_size", 1)

    return wrapped


def run(main) -> None:
    """Entry point of a tool: parse flags, then run `main` under the error contract."""
    app.run(guarded(main), flags_parser=parse_flags)
