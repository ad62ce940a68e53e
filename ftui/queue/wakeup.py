"""The worker's sleep, and its signal handlers: handlers only set a flag; a pipe wakes the loop.

A Python signal handler runs in the main thread between two bytecodes, possibly while that thread holds a
lock, and under a burst of signals handlers nest. A handler that takes a lock (`threading.Event.set`,
logging, print) can therefore deadlock the worker forever or die with RecursionError (both seen: issue 13).
So every handler here assigns one attribute and nothing else, and `signal.set_wakeup_fd` makes the
interpreter's C-level handler write the signal number to a non-blocking pipe that the loop sleeps on with a
selector: a SIGCHLD (an engine exited) or a SIGTERM wakes it at once, however the signals bunch up. A full
pipe drops bytes, never blocks, and one byte is enough to wake the loop.
"""

from __future__ import annotations

import os
import selectors
import signal
import threading
from types import FrameType
from typing import Any


def _only_wake(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD: nothing to do here. A Python handler must be installed for set_wakeup_fd to write its byte."""


class Wakeup:
    """Sleep until a timeout, a signal or `wake()`. Signals are handled only when created in the main thread
    (a worker run in a thread by a test sleeps on the timeout and `wake()` alone)."""

    def __init__(self) -> None:
        self.stop_signal = 0  # set by the SIGTERM/SIGINT handler: the loop stops at its next check
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._read_fd, selectors.EVENT_READ)
        self._saved: dict[int, Any] = {}
        self._saved_wakeup_fd: int | None = None
        if threading.current_thread() is threading.main_thread():
            self._install()

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signal = signum

    def _install(self) -> None:
        self._saved_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        # One call per signal, so tests/ftui/test_worker_signals.py can audit each handler.
        self._saved[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_stop)
        self._saved[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_stop)
        self._saved[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _only_wake)
        # The terminal that started `ftui worker` may go away.
        self._saved[signal.SIGHUP] = signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def wait(self, timeout_s: float) -> None:
        """Sleep up to `timeout_s`; return early on a signal or `wake()`. Drains the pipe each time, so a
        burst of signals costs one pass, not one pass per signal."""
        if not self.stop_signal:
            self._selector.select(timeout_s)
        self._drain()

    def wake(self) -> None:
        try:
            os.write(self._write_fd, b"\0")
        except BlockingIOError:  # full: the loop wakes anyway
            pass

    def _drain(self) -> None:
        while True:
            try:
                if not os.read(self._read_fd, 4096):
                    return
            except BlockingIOError:
                return

    def close(self) -> None:
        """Give the process its old handlers back (matters when a test runs a worker in its own process)."""
        for sig, handler in self._saved.items():
            if handler is not None:  # None: set outside Python, cannot be restored from here
                signal.signal(sig, handler)
        if self._saved_wakeup_fd is not None:
            signal.set_wakeup_fd(self._saved_wakeup_fd)
        self._saved.clear()
        self._saved_wakeup_fd = None
        self._selector.close()
        os.close(self._read_fd)
        os.close(self._write_fd)
