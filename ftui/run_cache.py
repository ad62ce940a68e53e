"""What the run folders said last time, kept in the runs folder so that `ftui list` and the app's first read
read only what changed.

At thousands of runs, `ftui list` spent most of its time parsing every `events.jsonl` and `eval.json` again
(issue 18). `RunFolderCache` gives the `rundir` readers a memory of an earlier process: per file, its key
(inode, size, mtime_ns) when read, and what reading it gave (the events fold, the byte offset it reached and
the bytes just before it; the typed eval.json). A file whose key is unchanged is not opened; a changed one is
read again (an events.jsonl that grew: only its new bytes, once the bytes before them are found unchanged:
ftui/appended.py), exactly as the app's in-memory readers do between two ticks.

The file, `runs/.ftui-cache.json` (`ftui list`'s; the app's, with the home table's rows, is
`runs/.ftui-cache-app.json`: APP_CACHE_NAME), holds one header line (format, fields, loss history, when
written, where the rows begin, a CRC-32 of each section) and two sections: one line per file (its path
relative to the runs folder, JSON-quoted when it holds a tab, a line break or a quote; a tab; its entry,
JSON), then one line per remembered row (below). Lines are decoded only when their file is asked for, so
`ftui list ONE-RUN` does not pay for a sweep of 5,000, and each section only when one of its names is: a
listing that finds every row unchanged never decodes the files' section (a third of the bytes). It is
written atomically (ftui/atomic.py) after a listing that read something new, and never trusted blindly:

- another format, another loss history or other fields (an older or newer ftui), an unreadable file, one
  whose checksum does not match (damaged, edited by hand): ignored, every file is read;
- a file modified less than RACY_NS before it was read may have changed again within the same mtime tick
  without changing its key: its entry is written with an unusable key (inode only), so the next process
  treats it as changed (events.jsonl is read on from the offset; eval.json is parsed again). "Read" is
  bounded below by the owner's previous save (or its start): the app saves now and then, long after some
  reads;
- a runs folder that cannot be written (read-only, full disk): the listing is the same, only slower.

`ftui list --json` and the app also keep each run's output line, or row (`known_row`, `remember_row`;
ftui/status.py `json_rows`, ftui/app_data.py `_fingerprinted_rows`) under a fingerprint of everything it is
made of (its files' keys and its ancestors', its jobs' versions and the queue's identity, the registry's
words for it, the boot, the code), so an unchanged run costs three stats and a comparison instead of
decoding, building and encoding its row. Such a line is kept only while none of its files is racy.

The cache is an optimisation only: deleting it at any time is safe.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

from ftui.rundir import EvalResults, EvalSet, EventsTail, FileKey, ProgressReader, ResultsReader, RunProgress

CACHE_NAME = ".ftui-cache.json"  # `ftui list`'s (loss history 1); other histories: `cache_name`
# The app's (loss history 1 too: its rows show the last loss, the run screen reads its own curve): its own
# file, since its remembered rows are the home table's, not `ftui list --json`'s lines.
APP_CACHE_NAME = ".ftui-cache-app.json"
# Written by older versions (the app kept 200 losses per run, which no row showed), removed by the app.
OBSOLETE_NAMES = (".ftui-cache-200.json",)
# Bump when the entries' layout changes, or the events fold or EvalResults change meaning without changing
# their fields (2: an events entry keeps the bytes before its offset, ftui/appended.py; 3: two sections).
FORMAT = 3
# Names looked up in a section's bytes before it is split into lines (`_Section.get`): one search of 12 MB
# (5,000 runs) costs ~2 ms, the split ~25 ms, so a listing of thousands splits almost at once.
FINDS = 4
FEW_RUNS = 16  # `few_runs`
RACY_NS = 2_000_000_000  # mtime granularity and clock skew of the file systems runs folders live on
T = TypeVar("T")

PROGRESS_FIELDS = tuple(f.name for f in fields(RunProgress))
EVAL_SET_FIELDS = tuple(f.name for f in fields(EvalSet))
# A body whose checksum matches is exactly what an ftui with these fields wrote (from valid objects), so the
# entries are rebuilt without checking each value's type (that check cost more than reading the files).
# "racy": racy files are marked in their entries (RACY_NS); a cache from before that (racy ones known only
# from the header's time) is ignored, since saving carried its entries over under a newer time.
HEADER = {
    "format": FORMAT,
    "racy": "entry",
    "progress": list(PROGRESS_FIELDS),
    "eval_set": list(EVAL_SET_FIELDS),
}


def few_runs(n: int) -> bool:
    """Whether a listing of `n` runs reads their files faster than the cache: one run's two files cost well
    under a millisecond, the cache file of 5,000 runs (12 MB, checksummed) about 15 ms."""
    return n <= FEW_RUNS


def cache_name(history: int) -> str:
    """The cache file of readers with this loss history: one file per history, so that readers of different
    histories do not discard each other's entries (each holds its own losses). `ftui list` and the app keep
    one loss (the app in its own file: APP_CACHE_NAME)."""
    history = max(1, history)
    return CACHE_NAME if history == 1 else f".ftui-cache-{history}.json"


def _new(cls: type, values: dict[str, Any]) -> Any:
    """A frozen dataclass from its fields' values, without its per-field __init__ (thousands per listing)."""
    obj: Any = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def _name(rel: str) -> str:
    """A file's name in the cache (its path relative to the runs folder) or a row's (its run key): as it is,
    JSON-quoted only when it holds a tab, a line break or a quote (a plain name never starts with a quote, so
    the two kinds never collide)."""
    plain = "\t" not in rel and "\n" not in rel and "\r" not in rel and '"' not in rel  # (any() costs more)
    return rel if plain else json.dumps(rel)


def _key(key: FileKey, racy_ns: int) -> list[int]:
    """A file key as written: with size and mtime -1 (matching no file) when the file was modified after
    `racy_ns` (RACY_NS before it was read), so that its next reader reads it again."""
    return [key[0], -1, -1] if key[2] >= racy_ns else list(key)


def _encode_progress(tail: EventsTail, racy_ns: int) -> list[Any]:
    p = tail.progress
    values = [getattr(p, name) for name in PROGRESS_FIELDS]
    return [_key(tail.key, racy_ns), tail.offset, values, tail.anchor.decode("latin-1")]


def _decode_progress(entry: Any) -> EventsTail:
    key, offset, values, anchor = entry
    d = dict(zip(PROGRESS_FIELDS, values, strict=True))
    d["losses"] = tuple(d["losses"])
    d["step_times"] = tuple(map(tuple, d["step_times"]))
    ino, size, mtime_ns = key
    return EventsTail((ino, size, mtime_ns), offset, _new(RunProgress, d), anchor.encode("latin-1"))


def _encode_results(entry: tuple[FileKey, EvalResults | None], racy_ns: int) -> list[Any]:
    key, results = entry
    if results is None:
        return [_key(key, racy_ns), None]
    sets = None
    if results.sets is not None:
        sets = [[name, *(getattr(s, f) for f in EVAL_SET_FIELDS)] for name, s in results.sets.items()]
    return [_key(key, racy_ns), [sets, results.checkpoint, results.step, results.checkpoint_digest]]


def _decode_results(entry: Any) -> tuple[FileKey, EvalResults | None]:
    (ino, size, mtime_ns), body = entry
    if body is None:
        return (ino, size, mtime_ns), None
    raw_sets, checkpoint, step, digest = body
    sets = None
    if raw_sets is not None:
        sets = {row[0]: _new(EvalSet, dict(zip(EVAL_SET_FIELDS, row[1:], strict=True))) for row in raw_sets}
    return (ino, size, mtime_ns), EvalResults(sets, checkpoint, step, digest)


class _Section:
    """The lines `name<TAB>entry` of one section of the cache file, `data[start:end]` (`data[start - 1]` is a
    line break): the first FINDS names asked for are searched in the bytes, after that the section is split
    into a dict once."""

    def __init__(self, data: bytes = b"", start: int = 0, end: int = 0, lines: dict[str, str] | None = None):
        self._data, self._start, self._end = data, start, end
        self._finds = 0
        self._lines: dict[str, str] | None = lines if lines is not None or end > start else {}

    def get(self, name: str) -> str | None:
        if self._lines is not None:
            return self._lines.get(name)
        self._finds += 1
        if self._finds > FINDS:
            return self.lines().get(name)
        try:
            needle = b"\n" + name.encode("utf-8") + b"\t"
        except UnicodeEncodeError:
            return None
        at = self._data.rfind(needle, self._start - 1, self._end)  # (the last one would win a split)
        if at < 0:
            return None
        start = at + len(needle)
        end = self._data.find(b"\n", start, self._end)
        return self._data[start : end if end >= 0 else self._end].decode("utf-8", errors="replace")

    def lines(self) -> dict[str, str]:
        """Every line, name -> entry (split once)."""
        if self._lines is None:
            text = str(memoryview(self._data)[self._start : self._end], "utf-8", "replace")
            self._lines = {}
            for line in text.split("\n"):
                name, tab, entry = line.partition("\t")
                if tab:
                    self._lines[name] = entry
            self._data = b""
        return self._lines


class RunFolderCache:
    """A `ProgressReader` and a `ResultsReader` that remember what an earlier process read (module
    docstring). Use `progress` and `results` like the store's readers, then `save()` once.

    `runs_dir`: the runs folder (the paths asked for must lie under it, as `os.path.join(runs_dir, rel_dir)`
    spells them, or they are read but not remembered); `history`: the readers' loss history (a cache written
    with another history is ignored: its losses would differ); `use_file` False: the file is neither read nor
    written (`few_runs`: reading their files costs less than reading a cache of thousands); `name`: the
    file's name in the runs folder (default `cache_name(history)`; the app's: APP_CACHE_NAME)."""

    def __init__(
        self,
        runs_dir: str | os.PathLike[str],
        history: int = 1,
        use_file: bool = True,
        name: str | None = None,
    ) -> None:
        self.runs_dir = os.fspath(runs_dir)
        self.path = os.path.join(self.runs_dir, name or cache_name(history))
        self._prefix = os.path.join(self.runs_dir, "")
        self._history = max(1, history)
        self._header = HEADER | {"history": self._history}
        self._files = _Section()  # relative path (`_name`) -> its entry, undecoded
        self._known = _Section()  # run key (`_name`: its own section, no file's name) -> its remembered row
        self._recalled: dict[str, object] = {}  # path -> the object handed to a reader (unchanged since)
        self._rows: dict[str, str] = {}  # remembered rows (`remember_row`) not written yet: name -> entry
        self._racy_ns = 0  # files modified after this (ns) may have changed within their mtime tick
        self._since_ns = time.time_ns()  # what was read since the last save was read after this
        self._use_file = use_file
        if use_file:
            self._load()
        self.progress_reader = ProgressReader(self._history, recall=self._recall_tail)
        self.results_reader = ResultsReader(recall=self._recall_results)

    # ---- reading ------------------------------------------------------------------------------------------
    def progress(self, run_dir: str | os.PathLike[str]) -> RunProgress | None:
        """`ProgressReader.progress` with the cache's memory."""
        return self.progress_reader.progress(run_dir)

    def results(self, run_dir: str | os.PathLike[str]) -> EvalResults | None:
        """`ResultsReader.results` with the cache's memory."""
        return self.results_reader.results(run_dir)

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
            body = data.find(b"\n") + 1
            header = json.loads(data[:body])
        except (OSError, ValueError):
            return
        if not isinstance(header, dict) or {k: header.get(k) for k in self._header} != self._header:
            return  # another ftui's or another history's cache: start afresh
        saved, rows = header.get("saved_ns"), header.get("rows_at")
        if not (isinstance(saved, int) and isinstance(rows, int) and 0 <= rows <= len(data) - body):
            return
        rows += body
        view = memoryview(data)
        if header.get("crc32") != zlib.crc32(view[body:rows]) or header.get("rows_crc32") != zlib.crc32(
            view[rows:]
        ):
            return  # damaged or edited by hand
        self._racy_ns = saved - RACY_NS
        self._files, self._known = _Section(data, body, rows), _Section(data, rows, len(data))

    def _entry(self, path: str, decode: Callable[[Any], T]) -> T | None:
        if not path.startswith(self._prefix):
            return None
        raw = self._files.get(_name(path[len(self._prefix) :]))
        if raw is None:
            return None
        try:
            return decode(json.loads(raw))
        except (ValueError, TypeError):  # not what this ftui writes: read the file instead
            return None

    def _recall_tail(self, path: str) -> EventsTail | None:
        tail = self._entry(path, _decode_progress)
        if tail is None:
            return None
        if tail.key[2] >= self._racy_ns:  # read on from the offset: the key alone may not show a change
            tail = EventsTail((tail.key[0], -1, -1), tail.offset, tail.progress, tail.anchor)
        self._recalled[path] = tail
        return tail

    def _recall_results(self, path: str) -> tuple[FileKey, EvalResults | None] | None:
        found = self._entry(path, _decode_results)
        if found is None or found[0][2] >= self._racy_ns:
            return None
        self._recalled[path] = found
        return found

    def racy_from_ns(self) -> int:
        """The mtime (ns) from which a file read by this process (since its start or last save) may have
        changed again within its mtime tick, unseen (RACY_NS): such a file is read again next time."""
        return self._since_ns - RACY_NS

    def will_ask_rows(self, n: int) -> None:
        """`n` rows are about to be asked for (`known_row`): more than FINDS, and the rows' section is split
        at once instead of after FINDS searches of its bytes (~2 ms each at 5,000 runs)."""
        if n > FINDS:
            self._known.lines()

    def known_row(self, key: str) -> tuple[str, str, str] | None:
        """(fingerprint, state, JSON text) remembered for run `key`, or None."""
        raw = self._rows.get(name := _name(key))
        if raw is None:
            raw = self._known.get(name)
        if raw is None:
            return None
        parts = raw.split("\t", 2)
        return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None

    def remember_row(self, key: str, fingerprint: str, state: str, text: str) -> None:
        """Keep run `key`'s output line (one line of JSON) for the next listing (written by `save`); the
        caller leaves out rows whose files are racy, or whose line depends on the time (running ones)."""
        if "\t" in fingerprint or "\t" in state or "\n" in text or "\t" in text:
            return
        self._rows[_name(key)] = f"{fingerprint}\t{state}\t{text}"

    # ---- writing ------------------------------------------------------------------------------------------
    def save(self) -> bool:
        """Write the cache when this process read something it did not remember; False when nothing needed
        writing or it could not be written (read-only or full runs folder: never an error)."""
        saved_ns = time.time_ns()
        racy_ns = self._since_ns - RACY_NS
        fresh: dict[str, str] = {}
        written: dict[str, object] = {}
        for path, tail in self.progress_reader.tails().items():
            if self._recalled.get(path) is not tail and path.startswith(self._prefix):
                fresh[_name(path[len(self._prefix) :])] = json.dumps(_encode_progress(tail, racy_ns))
                written[path] = tail
        for path, entry in self.results_reader.entries().items():
            if self._recalled.get(path) is not entry and path.startswith(self._prefix):
                fresh[_name(path[len(self._prefix) :])] = json.dumps(_encode_results(entry, racy_ns))
                written[path] = entry
        rows = {name: row for name, row in self._rows.items() if self._known.get(name) != row}
        if not (fresh or rows) or not self._use_file:
            return False
        from ftui.atomic import atomic_write_bytes

        files = self._files.lines() | fresh
        known = self._known.lines() | rows
        files_body = "".join(f"{name}\t{entry}\n" for name, entry in files.items()).encode("utf-8")
        rows_body = "".join(f"{name}\t{row}\n" for name, row in known.items()).encode("utf-8")
        header = self._header | {
            "saved_ns": saved_ns,
            "rows_at": len(files_body),
            "crc32": zlib.crc32(files_body),
            "rows_crc32": zlib.crc32(rows_body),
        }
        try:
            atomic_write_bytes(self.path, json.dumps(header).encode("utf-8") + b"\n" + files_body + rows_body)
        except OSError:
            return False
        self._files, self._known = _Section(lines=files), _Section(lines=known)
        self._rows.clear()
        self._recalled.update(written)  # a long-lived owner (the app) saves again: only what changed since
        self._since_ns = saved_ns
        return True
