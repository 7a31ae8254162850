"""What every command shares: its own flags, the one-line error contract, and a quiet start.

The commands are `synthblend-<name>` (or `python -m synthblend <name>`), one per module of
`COMMANDS`. `execute(main, argv, command_flags)` defines the command's flags into a fresh
`absl.flags.FlagValues`, parses `argv` and calls `main`. A bad flag value or a `UserError` raised
by `main` ends as one line on stderr, `error: ...`, and exit status 2 (usage) or 1 (runtime),
with no traceback unless `--verbose`; a stop by SIGTERM or Ctrl-C ends as one line and status
42 or 130 (the statuses are listed in `trainers.lifecycle`).

Importing this module changes nothing in the process; `launch` (a command's entry point) quiets
TensorFlow's start-up and sets Python's logging levels, as a program's `main` may.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
import logging as python_logging
import os
import sys

COMMANDS = ("train", "sample", "export", "evaluate", "blend", "utility")
HELP = ("--help", "-h", "--helpshort", "--helpfull", "-help", "--help=true")


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow and finds its devices with stderr silenced.

    TensorFlow's C++ start-up messages (oneDNN, CUDA stubs, cuInit on machines without a GPU)
    are written before its log level applies and would bury the tool's own output. Setting
    TF_CPP_MIN_LOG_LEVEL yourself shows them all again.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
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


def fail(message: str, exit_code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exit_code)


def require(*holders) -> None:
    """Raises UsageError naming the first required flag that was not given."""
    from synthblend.zoo.registry import UsageError

    for holder in holders:
        if holder.value is None or holder.value == "":
            raise UsageError(f"--{holder.name} is required")


def refuse_unless(condition: bool, holder, reason: str) -> None:
    """UsageError for a flag given where it would change nothing: `--<name>=<value> <reason>`."""
    from synthblend.zoo.registry import UsageError

    if holder.present and not condition:
        raise UsageError(f"--{holder.name}={holder.value} {reason}")


def check_writable_dir(path: str, flag: str) -> None:
    """Raises UsageError unless `path` is a directory, or could be made one, that can be written."""
    from synthblend.zoo.registry import UsageError

    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag}={path} is a file, not a directory")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(os.path.abspath(parent))
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag}={path} is not writable ({parent} does not allow writing)")


def guarded(main):
    """Wraps `main` so that a `UserError` ends as one line and its exit status, and a stop by
    SIGTERM or Ctrl-C as one line and status 42 or 130 (`trainers.lifecycle`)."""
    from absl import logging

    from synthblend.trainers import lifecycle
    from synthblend.trainers.flags import VERBOSE
    from synthblend.zoo.registry import UsageError, UserError

    def wrapped(argv):
        import tensorflow as tf  # a command's main has imported it already (`launch`)

        if not VERBOSE.value:
            # TensorFlow's own warnings (retracing, deprecations) are for developers, not users.
            logging.set_verbosity(logging.ERROR)
            python_logging.getLogger("tensorflow").setLevel(python_logging.ERROR)
        try:
            if len(argv) > 1:
                raise UsageError(f"unexpected argument {argv[1]!r}; flags look like --name=value")
            with lifecycle.stop_on_sigterm():
                return main(argv)
        except UserError as error:
            if VERBOSE.value:
                raise
            fail(str(error), error.exit_code)
        except lifecycle.Stopped as stop:
            print(stop, file=sys.stderr)
            sys.exit(stop.exit_code)
        except KeyboardInterrupt:
            print("stopped by SIGINT (Ctrl-C) before finishing; nothing half-written is left; run the same "
                  "command again", file=sys.stderr)
            sys.exit(lifecycle.INTERRUPTED)
        except MemoryError as error:
            if VERBOSE.value:
                raise
            fail(f"out of memory ({str(error).splitlines()[0] if str(error) else 'MemoryError'}); "
                 "use less data, a smaller --image_size or --batch_size", 1)
        except tf.errors.ResourceExhaustedError as error:  # TensorFlow's out of memory
            if VERBOSE.value:
                raise
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "ResourceExhaustedError"
            fail(f"out of memory ({reason[:300]}); use less data, a smaller model (--width), --image_size or "
                 "--batch_size", 1)

    return wrapped


def flag_values_of(command_flags) -> "flags.FlagValues":  # noqa: F821
    """A fresh `FlagValues` holding `command_flags` and `--verbose`."""
    from absl import flags

    from synthblend.trainers import flags as F

    flag_values = flags.FlagValues()
    for flag in dict.fromkeys((*command_flags, F.VERBOSE)):
        flag.define(flag_values)
    return flag_values


def _expand_recipe(argv: list[str]) -> list[str]:
    """`--recipe=<name>` becomes `--flagfile=<its path>` in place, so later flags override it."""
    from synthblend.trainers import flags as F

    expanded = []
    for index, argument in enumerate(argv):
        name = None
        if argument.startswith("--recipe="):
            name = argument.partition("=")[2]
        elif argument == "--recipe" and index + 1 < len(argv):
            continue
        elif index and argv[index - 1] == "--recipe":
            name = argument
        expanded.append(argument if name is None else f"--flagfile={F.recipe_path(name)}")
    return expanded


def _unknown_flag(name: str, command: str, known) -> str:
    """The message for a flag that `command` does not have, naming the commands that do or the
    command's flags it may be a misspelling of."""
    from synthblend.trainers import flags as F

    owners = [other for other, held in F.COMMANDS.items() if any(flag.name == name for flag in held)]
    if owners:
        return (f"--{name} is not a flag of synthblend-{command}; it belongs to "
                f"{', '.join('synthblend-' + owner for owner in owners)} (see synthblend-{command} --help)")
    close = difflib.get_close_matches(name, list(known), n=3)
    guess = f"; did you mean {' or '.join('--' + other for other in close)}?" if close else ""
    return f"unknown flag --{name} for synthblend-{command}{guess} (see synthblend-{command} --help)"


def usage(main, command_flags) -> str:
    """`--help`: what the command does (its module's docstring) and its own flags."""
    module = sys.modules.get(main.__module__)
    text = (module.__doc__ or "").strip() if module else ""
    flag_values = flag_values_of(command_flags)
    lines = [text, "", "Flags:"] if text else ["Flags:"]
    for name in sorted(flag_values):
        flag = flag_values[name]
        value = flag.default
        shown = (str(value).lower() if isinstance(value, bool) else
                 ",".join(map(str, value)) if isinstance(value, list) else str(value))
        default = "" if value is None else f" (default: {shown})"
        lines.append(f"  --{name}: {flag.help}{default}")
    lines.append("  --flagfile: read flags from a file, one per line (a recipe under configs/).")
    return "\n".join(lines)


def execute(main, argv: list[str], command_flags=(), command: str | None = None) -> None:
    """Parses `argv` with the flags of one command and runs `main` under the error contract;
    exits with `main`'s status (0 when it returns None)."""
    from absl import flags

    from synthblend.trainers import flags as F
    from synthblend.zoo.registry import UsageError, UserError

    command = command or main.__module__.rpartition(".")[2]
    if any(argument in HELP for argument in argv[1:]):
        print(usage(main, command_flags))
        sys.exit(0)
    flag_values = flag_values_of(command_flags)
    try:
        if F.RECIPE in command_flags:
            argv = _expand_recipe(argv)
        with contextlib.redirect_stderr(io.StringIO()) as warnings:
            remaining = flag_values(argv)
        if "circular flagfile" in warnings.getvalue():
            circular = warnings.getvalue().strip().rpartition("Ignoring flagfile:")[2].strip()
            raise UsageError(f"--flagfile={circular} reads itself again (a circular --flagfile); remove that line")
        sys.stderr.write(warnings.getvalue())
    except UserError as error:
        fail(str(error), error.exit_code)
    except flags.UnrecognizedFlagError as error:
        fail(_unknown_flag(error.flagname, command, flag_values), 2)
    except flags.Error as error:
        # absl prefixes some messages (a flagfile that cannot be opened) with its own "ERROR::".
        fail(str(error).splitlines()[0].removeprefix("ERROR:: "), 2)
    except UnicodeDecodeError as error:
        fail(f"a --flagfile is not UTF-8 text ({error.reason} at byte {error.start}); recipes are text files of "
             "--name=value lines", 2)
    with F.bound(flag_values):
        sys.exit(guarded(main)(remaining))


def launch(command: str, argv: list[str] | None = None) -> None:
    """Runs the command `command` (one of COMMANDS) as a program."""
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; accepted: {', '.join(COMMANDS)}", 2)
    _import_tensorflow_quietly()
    from synthblend.trainers import flags as F

    module = importlib.import_module(f"synthblend.trainers.{command}")
    execute(module.main, argv if argv is not None else sys.argv, F.COMMANDS[command], command)


def _entry_point(command: str):
    def entry_point() -> None:
        launch(command)

    entry_point.__name__ = entry_point.__qualname__ = command
    entry_point.__doc__ = f"The `synthblend-{command}` program."
    return entry_point


train, sample, export, evaluate, blend, utility = (_entry_point(command) for command in COMMANDS)
