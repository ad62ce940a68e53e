"""Read only what was appended to a growing file (toolong's watcher idea): a byte offset per file.

Not a widget: the log view and the run screen's event reader share it. Reads happen in worker threads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# One read never hands back more than this many bytes, so a 1 GB log opened late cannot stall a worker for
# long; the rest comes on the next poll.
MAX_READ_BYTES = 4 * 1024 * 1024


class FileTail:
    """Hands on complete lines appended to `path` since the last call; a partial last line waits.

    A file that shrinks (rotated or restarted with `--restart`) is read again from the start.
    """

    def __init__(self, path: Path, *, start_at_end_bytes: int | None = None) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._inode: int | None = None
        # Opening a huge log: skip to its last `start_at_end_bytes` bytes (the first line there is dropped).
        self._start_at_end_bytes = start_at_end_bytes
        self._size_seen = -1

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

    def read_lines(self) -> list[str]:
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if self._inode is not None and (st.st_ino != self._inode or st.st_size < self._offset):
            self._offset, self._partial = 0, b""
        first_read = self._inode is None
        self._inode = st.st_ino
        self._size_seen = st.st_size
        if st.st_size == self._offset:
            return []
        skip_first = False
        if first_read and self._start_at_end_bytes is not None and st.st_size > self._start_at_end_bytes:
            self._offset = st.st_size - self._start_at_end_bytes
            skip_first = True
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read(MAX_READ_BYTES)
        except OSError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        # Only complete lines go on: a writer may be in the middle of one.
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return []
        self._partial = data[cut + 1 :]
        lines = data[:cut].decode("utf-8", errors="replace").split("\n")
        if skip_first and lines:
            lines = lines[1:]
        return [line.rstrip("\r") for line in lines]


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
