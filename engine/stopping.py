"""Stopping a run politely: SIGTERM and SIGINT set a flag that the loop checks at its next boundary.

Training then saves a checkpoint and exits 128 + the signal number; evaluation exits without eval.json.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any


@dataclass
class StopFlag:
    """Set by SIGTERM/SIGINT (or a test); the loop stops at its next step or set boundary."""

    signum: int = 0

    @property
    def requested(self) -> bool:
        return self.signum != 0


@contextlib.contextmanager
def stop_on_signals(stop: StopFlag) -> Iterator[StopFlag]:
    """Route SIGTERM and SIGINT to `stop` for the duration of the block, then restore the old handlers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.signum = signum

    old: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: the caller owns signals
            pass
    try:
        yield stop
    finally:
        for restored, h in old.items():
            signal.signal(restored, h)
