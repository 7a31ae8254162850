"""Progress bars for long work (sampling, blending, evaluation), from tqdm: a redrawn line in
a terminal, a widget in a notebook (`tqdm.auto`), and occasional lines in a log file."""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def progress_bar(total: int, unit: str, enabled: bool = True, initial: int = 0):
    """A bar counting from `initial` to `total` `unit`s on stderr; `update(n)` adds n. Not drawn
    when `enabled` is false."""
    from tqdm.auto import tqdm

    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    with tqdm(total=total, initial=initial, unit=f" {unit}", unit_scale=True, disable=not enabled, leave=True,
              file=sys.stderr, mininterval=0.5 if interactive else 10.0, dynamic_ncols=True) as bar:
        yield bar
