"""`ftui logs NAME [-f] [-n N]`: print or follow a run's train.log, safely.

The log is untrusted bytes (docs/app.md, "Text from run folders"): it is read through the same `LogTail` as
the run screen (byte offsets, lines folded at `\\r` the way a terminal shows a progress bar) and cleaned by
ftui.safe_text before it is written:

- to a terminal: plain text. Every escape sequence, colour codes included, and every control character but
  tab and newline are removed or shown as U+FFFD. With `-f` the unfinished last line (a live progress bar) is
  drawn and redrawn in place, with ftui's own `\\r` + erase-line, never the log's bytes;
- to a pipe or a file: the same, except that SGR colour codes are kept (`ftui logs X | less -R` shows the
  colours) and `-f` writes only complete lines.

Ctrl+C stops following and says so on stderr; the run is another process group and never sees it. Exit 0.
"""

from __future__ import annotations

import collections
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ftui.widgets.file_tail import LogTail

ERASE_LINE = "\r\x1b[K"  # ftui's own control sequence: back to the column 0, erase to the end of the line


def follow_log(
    log: Path,
    follow: bool,
    last: int | None,
    *,
    run_key: str,
    is_running: Callable[[], bool | None] = lambda: None,
    poll_s: float = 0.25,
) -> int:
    """Print the log (its last `last` lines), then with `follow` what is appended, until Ctrl+C."""
    out = _Utf8Out(sys.stdout)  # the log's encoding, whatever the locale says
    terminal = sys.stdout.isatty()
    tail = LogTail(log, keep_sgr=not terminal)
    live_shown = False  # a terminal shows a live line, without its newline, at the cursor
    try:
        live = _print_existing(tail, out, last)
        if not follow:
            if live:
                out.write(live + "\n")
            out.flush()
            return 0
        if terminal and live:
            out.write(_fit(live))
            live_shown = True
        out.flush()
        while True:
            time.sleep(poll_s)
            read = tail.read_display()
            if read is None:
                continue
            lines, live = read
            text = "".join(line + "\n" for line in lines)
            if terminal:
                text = (ERASE_LINE if live_shown else "") + text + (_fit(live) if live else "")
                live_shown = bool(live)
            out.write(text)
            out.flush()
    except KeyboardInterrupt:
        if live_shown:
            out.write("\n")
            out.flush()
        print(_stopped_message(log, run_key, is_running()), file=sys.stderr)
        return 0
    except BrokenPipeError:  # `ftui logs X | head`: the reader has gone, which is fine
        # Point stdout at /dev/null, so that flushing it at exit does not raise a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
        return 0


class _Utf8Out:
    def __init__(self, stream: TextIO) -> None:
        stream.flush()
        self._buffer = stream.buffer

    def write(self, text: str) -> None:
        self._buffer.write(text.encode("utf-8"))

    def flush(self) -> None:
        self._buffer.flush()

    def fileno(self) -> int:
        return self._buffer.fileno()


def _print_existing(tail: LogTail, out: _Utf8Out, last: int | None) -> str:
    """Print what the log holds now (read in bounded chunks); returns its unfinished last line."""
    kept: collections.deque[str] | None = collections.deque(maxlen=max(0, last)) if last is not None else None
    live = ""
    while (read := tail.read_display()) is not None:
        lines, live = read
        if kept is not None:
            kept.extend(lines)
        elif lines:
            out.write("".join(line + "\n" for line in lines))
    if kept is not None:
        if live and last:  # the unfinished line is the last line: it counts
            kept.append(live)
            live = ""
            if len(kept) > last:
                kept.popleft()
        out.write("".join(line + "\n" for line in kept))
        return live if last else ""
    return live


def _fit(live: str) -> str:
    """The live line cut to the terminal's width: a wrapped line could not be erased by one erase-line."""
    from rich.cells import cell_len, set_cell_size

    width = max(1, shutil.get_terminal_size((80, 24)).columns - 1)  # 80 when the terminal says 0
    return live if cell_len(live) <= width else set_cell_size(live, width)


def _stopped_message(log: Path, run_key: str, still_running: bool | None) -> str:
    if still_running is None:
        return f"ftui: stopped following {log}; only this command stopped, the run is not touched"
    if still_running:
        return f"ftui: stopped following {log}; {run_key} keeps running (stop it with: ftui cancel {run_key})"
    return f"ftui: stopped following {log} ({run_key} is not running)"
