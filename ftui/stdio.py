"""Standard output that the reader closed early: `ftui validate | head -1` ends quietly with exit 0.

The way the Python documentation gives (signal module, "Note on SIGPIPE"): flush inside the guarded block so
the error is raised there, then point stdout at /dev/null so the flush at interpreter exit cannot fail again.
Rich does the same on its own when its Console meets the closed pipe, but then raises SystemExit(1); that
exit is recognised by stdout having been pointed at /dev/null during the command.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")


def quiet_on_closed_stdout(main: Callable[P, int]) -> Callable[P, int]:
    """Wrap a CLI entry point: a BrokenPipeError (the reader of stdout has gone) ends it with exit 0."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        was_devnull = _stdout_is_devnull()
        try:
            try:
                return main(*args, **kwargs)
            finally:  # also on SystemExit (argparse --help): the buffered text must fail here, not at exit
                sys.stdout.flush()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return 0
        except SystemExit as e:
            if e.code == 1 and not was_devnull and _stdout_is_devnull():  # Rich's on_broken_pipe
                return 0
            raise

    return run


def _stdout_is_devnull() -> bool:
    try:
        here, null = os.fstat(sys.stdout.fileno()), os.stat(os.devnull)
    except (OSError, ValueError, AttributeError):  # no real stdout (a test's capture buffer)
        return False
    return (here.st_dev, here.st_ino) == (null.st_dev, null.st_ino)
