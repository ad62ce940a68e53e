"""A run's two logs: human-readable `train.log` lines and machine-readable `events.jsonl` records.

Both are appended and flushed per record (ftui tails them). Lines are echoed to stdout unless stdout already
is train.log (the runner redirects the engine's stdout and stderr there), so each line lands once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

LOG_NAME = "train.log"
EVENTS_NAME = "events.jsonl"


def _same_file(stream: IO[str], path: Path) -> bool:
    try:
        a, b = os.fstat(stream.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False  # stdout replaced by something without a file descriptor (pytest capture, closed)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def log_only(run_dir: Path, message: str) -> None:
    """Append one message to train.log (and stderr unless that is train.log): for config errors, where
    nothing else may be written to the run directory. Silent if the directory does not exist."""
    path = run_dir / LOG_NAME
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    text = "".join(f"[{stamp}] {line}\n" for line in message.splitlines() or [""])
    wrote_file = False
    if run_dir.is_dir():
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
        wrote_file = True
    if not (wrote_file and _same_file(sys.stderr, path)):
        sys.stderr.write(text)
        sys.stderr.flush()


class RunLog:
    def __init__(self, run_dir: Path, echo: bool = True) -> None:
        self.run_dir = run_dir
        self.log_path = run_dir / LOG_NAME
        self.events_path = run_dir / EVENTS_NAME
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._events = open(self.events_path, "a", encoding="utf-8")  # noqa: SIM115
        self._echo = echo and not _same_file(sys.stdout, self.log_path)

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        text = "".join(f"[{stamp}] {line}\n" for line in message.splitlines() or [""])
        self._log.write(text)
        self._log.flush()
        if self._echo:
            sys.stdout.write(text)
            sys.stdout.flush()

    def event(self, name: str, **fields: Any) -> None:
        record = {"t": round(time.time(), 3), "event": name, **fields}
        self._events.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._events.flush()

    def close(self) -> None:
        self._log.close()
        self._events.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """All complete records of events.jsonl (a torn last line is ignored, as ftui does)."""
    path = run_dir / EVENTS_NAME
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
