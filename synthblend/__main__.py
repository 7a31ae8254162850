"""`python -m synthblend <command> [--flags]`: the same as `synthblend-<command>`."""

import sys

from synthblend.trainers import cli

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] in cli.HELP:
        print(f"usage: python -m synthblend <command> [--flags]; commands: {', '.join(cli.COMMANDS)}; "
              "--help after a command lists its flags")
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    cli.launch(sys.argv[1], [f"synthblend-{sys.argv[1]}", *sys.argv[2:]])
