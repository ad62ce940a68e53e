"""Read only what was appended to a growing file (toolong's watcher idea): a byte offset per file.

Not a widget: the log view and the run screen's event reader share it. Reads happen in worker threads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ftui.appended import next_anchor, read_on
from ftui.safe_text import display_lines, display_partial, last_carriage_part

# One read never hands back more than this many bytes, so a 1 GB log opened late cannot stall a worker for
# long; the rest comes on the next poll.
MAX_READ_BYTES = 4 * 1024 * 1024


class FileTail:
    """Hands on complete lines appended to `path` since the last call; a partial last line waits.

    A file that shrinks (rotated or restarted with `--restart`), is replaced or is rewritten in place is read
    again from the start.
    """

    def __init__(self, path: Path, *, start_at_end_bytes: int | None = None) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._inode: int | None = None
        # Opening a huge log: skip to its last `start_at_end_bytes` bytes (the first line there is dropped).
        self._start_at_end_bytes = start_at_end_bytes
        self._skip_to_newline = False  # inside the line cut by that skip: drop it when its end arrives
        self._size_seen = -1
        self._anchor = b""  # the last bytes read (ftui/appended.py): a file rewritten in place is read again

    def _restart(self) -> None:
        self._offset, self._partial, self._skip_to_newline, self._anchor = 0, b"", False, b""

    @property
    def offset(self) -> int:
        return self._offset

    def changed(self) -> bool:
        """A stat only: has the file grown, shrunk or been replaced since the last read?"""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return st.st_size != self._size_seen or st.st_ino != self._inode

    def read_raw_lines(self) -> list[bytes] | None:
        """The complete lines appended since the last call, as bytes without their `\\n`; None when no
        byte arrived (the unfinished last line is kept in `partial`)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        if self._inode is not None and (st.st_ino != self._inode or st.st_size < self._offset):
            self._restart()
        first_read = self._inode is None
        self._inode = st.st_ino
        self._size_seen = st.st_size
        if st.st_size == self._offset:
            return None
        if first_read and self._start_at_end_bytes is not None and st.st_size > self._start_at_end_bytes:
            self._offset = st.st_size - self._start_at_end_bytes
            self._skip_to_newline = True
        try:
            with open(self.path, "rb") as handle:
                chunk = read_on(handle, self._offset, self._anchor, MAX_READ_BYTES) if self._anchor else None
                if chunk is None:
                    if self._anchor:  # rewritten in place (`cp` over it), not appended to: from the start
                        self._restart()
                    handle.seek(self._offset)
                    chunk = handle.read(MAX_READ_BYTES)
        except OSError:
            return None
        self._offset += len(chunk)
        self._anchor = next_anchor(self._anchor, chunk)
        data = self._partial + chunk
        # Only complete lines go on: a writer may be in the middle of one.
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return []
        self._partial = data[cut + 1 :]
        lines = data[:cut].split(b"\n")
        if self._skip_to_newline:
            self._skip_to_newline = False
            lines = lines[1:]
        return lines

    @property
    def partial(self) -> bytes:
        """The unfinished last line read so far (empty inside a line cut by `start_at_end_bytes`)."""
        return b"" if self._skip_to_newline else self._partial

    def read_lines(self) -> list[str]:
        lines = self.read_raw_lines()
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in lines or ()]


class LogTail(FileTail):
    """A log as a terminal shows it: complete lines folded at `\\r` (a tqdm bar is its last state) and
    cleaned of escape sequences and controls (ftui.safe_text), plus the unfinished last line, live.

    `keep_sgr` keeps SGR colour codes (`ftui logs` into a pipe); the app shows plain text.
    """

    def __init__(self, path: Path, *, start_at_end_bytes: int | None = None, keep_sgr: bool = False) -> None:
        super().__init__(path, start_at_end_bytes=start_at_end_bytes)
        self.keep_sgr = keep_sgr

    def read_display(self) -> tuple[list[str], str] | None:
        """(new complete lines, the live line: "" when the file ends with a newline), or None when nothing
        was appended since the last call."""
        raw = self.read_raw_lines()
        if raw is None:
            return None
        self._partial = last_carriage_part(self._partial)
        sgr = self.keep_sgr
        return display_lines(raw, keep_sgr=sgr), display_partial(self.partial, keep_sgr=sgr)


class EventsTail:
    """Parsed records appended to an `events.jsonl`; a torn or malformed line is skipped, never fatal."""

    def __init__(self, path: Path) -> None:
        self._tail = FileTail(path)

    def changed(self) -> bool:
        return self._tail.changed()

    def read_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for line in self._tail.read_lines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                events.append(record)
        return events
