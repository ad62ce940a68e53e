"""The state of runs: the job queue in `runs/ftui.db` (SQLite, WAL) plus readers of the run folders.

One row per (run, action): `ft2-3 train`, `ft2-3 eval`. A row moves through

    waiting --deps done--> queued --worker--> running --> done | failed | cancelled
    waiting --a dep failed/was cancelled/blocked--> blocked          (retry/launch re-queue it)

and is re-queued in place by `retry` or a new `launch` (so dependants keep pointing at it). Every transition
is one `BEGIN IMMEDIATE` transaction and is also appended to `history`. The worker, apps and CLIs may use the
database at once; each `Store` is thread-safe (one connection behind a lock).
"""

from __future__ import annotations

import fnmatch
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ftui.runstate import ProgressReader, ResultsReader, RunProgress, StrPath, is_evaluated, is_trained

DB_NAME = "ftui.db"
SCHEMA_VERSION = 1

QUEUED, WAITING, RUNNING, DONE, FAILED, CANCELLED, BLOCKED = (
    "queued",
    "waiting",
    "running",
    "done",
    "failed",
    "cancelled",
    "blocked",
)
STATES = (QUEUED, WAITING, RUNNING, DONE, FAILED, CANCELLED, BLOCKED)
OPEN_STATES = (QUEUED, WAITING, RUNNING, BLOCKED)  # a launch leaves these alone (idempotence)
PENDING_STATES = (QUEUED, WAITING, RUNNING)  # the worker has work while any job is in one of these
BROKEN_STATES = (FAILED, CANCELLED, BLOCKED)  # a job depending on one of these cannot run
ACTIONS = ("train", "eval")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key TEXT NOT NULL,
    experiment TEXT NOT NULL,
    rel_dir TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('train', 'eval')),
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
    seq INTEGER NOT NULL,
    restart INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    pid_start INTEGER,
    pgid INTEGER,
    slot TEXT,
    exit_code INTEGER,
    signal INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    cancel_sent REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    queued_at REAL,
    started REAL,
    finished REAL,
    updated REAL NOT NULL,
    UNIQUE (run_key, action)
);
CREATE TABLE IF NOT EXISTS deps (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    dep_id INTEGER NOT NULL REFERENCES jobs(id),
    PRIMARY KEY (job_id, dep_id)
);
CREATE INDEX IF NOT EXISTS deps_by_dep ON deps(dep_id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    t REAL NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(Exception):
    """A problem with the queue database, worded for the user (names the file)."""


@dataclass(frozen=True)
class Job:
    id: int
    run_key: str
    experiment: str
    rel_dir: str
    action: str
    state: str
    seq: int
    restart: int
    reason: str
    pid: int | None
    pid_start: int | None  # clock ticks since boot (/proc/<pid>/stat field 22)
    pgid: int | None
    slot: str | None  # "gpu0", "cpu", ...
    exit_code: int | None
    signal: int | None
    cancel_requested: int
    cancel_sent: float | None
    attempts: int
    created: float
    queued_at: float | None
    started: float | None
    finished: float | None
    updated: float
    deps: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"deps": list(self.deps)}


_JOB_COLUMNS = [f.name for f in fields(Job) if f.name != "deps"]


@dataclass(frozen=True)
class JobSpec:
    """A job a launch asks for. `needs` are (run_key, action) pairs that must finish first."""

    run_key: str
    experiment: str
    rel_dir: str
    action: str
    needs: tuple[tuple[str, str], ...] = ()
    force: bool = False  # redo even if done (training restarts from scratch)


@dataclass
class EnqueueResult:
    queued: list[Job]  # newly queued or re-queued
    kept: list[Job]  # already queued, waiting, running or blocked (relaunched) - not queued twice
    skipped: list[JobSpec]  # already done (final checkpoint / eval.json present)
    refused: list[tuple[JobSpec, str]]  # e.g. --force on a running job


class Store:
    """The queue database of one runs folder plus cached readers of its run folders."""

    def __init__(self, runs_dir: Path, *, busy_timeout_s: float = 10.0, loss_history: int = 200) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.db_path = self.runs_dir / DB_NAME
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._progress = ProgressReader(loss_history)
        self._results = ResultsReader()

    # ---- connection -------------------------------------------------------------------------------------
    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if not create and not self.db_path.exists():
            return None  # reading a runs folder nobody launched in: no jobs, and create nothing
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.db_path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL keeps the database consistent on a crash
            conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.db_path}: written by a newer ftui (schema {version}; this one knows "
                    f"{SCHEMA_VERSION})"
                )
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise StoreError(f"{self.db_path}: cannot open the queue database: {_explain(e, self)}") from e
        self._conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE takes the write lock up front: no upgrade deadlocks)."""
        with self._lock:
            conn = self._connect(create=True)
            assert conn is not None
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise StoreError(f"{self.db_path}: {_explain(e, self)}") from e
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as e:
                conn.execute("ROLLBACK")
                raise StoreError(f"{self.db_path}: {_explain(e, self)}") from e

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            conn = self._connect(create=False)
            if conn is None:
                return []
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as e:
                raise StoreError(f"{self.db_path}: {_explain(e, self)}") from e

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ---- reading ----------------------------------------------------------------------------------------
    def jobs(self, run_keys: Iterable[str] | None = None, states: Iterable[str] | None = None) -> list[Job]:
        """Jobs in queue order, optionally only those of `run_keys` and/or in `states`."""
        sql, params = f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs", []
        where = []
        if run_keys is not None:
            keys = list(run_keys)
            where.append(f"run_key IN ({', '.join('?' * len(keys))})")
            params += keys
        if states is not None:
            wanted = list(states)
            where.append(f"state IN ({', '.join('?' * len(wanted))})")
            params += wanted
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._read(sql + " ORDER BY seq", params)
        deps: dict[int, list[int]] = {}
        for r in self._read("SELECT job_id, dep_id FROM deps ORDER BY dep_id"):
            deps.setdefault(r["job_id"], []).append(r["dep_id"])
        return [Job(**dict(r), deps=tuple(deps.get(r["id"], ()))) for r in rows]

    def job(self, job_id: int) -> Job | None:
        found = [j for j in self.jobs() if j.id == job_id]
        return found[0] if found else None

    def history(self, job_id: int) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT t, from_state, to_state, reason FROM history WHERE job_id = ? ORDER BY id", [job_id]
        )
        return [dict(r) for r in rows]

    def match_keys(self, patterns: Sequence[str]) -> list[str]:
        """Run keys in the database matching any glob pattern (on the run key or the experiment name)."""
        rows = self._read("SELECT DISTINCT run_key, experiment FROM jobs ORDER BY seq")
        keys = []
        for r in rows:
            if any(
                fnmatch.fnmatchcase(r["run_key"], p) or fnmatch.fnmatchcase(r["experiment"], p)
                for p in patterns
            ):
                keys.append(r["run_key"])
        return list(dict.fromkeys(keys))

    def run_dir(self, rel_dir: str) -> Path:
        return self.runs_dir / rel_dir

    def run_status(self, run_dir: StrPath) -> RunProgress | None:
        """Progress of a run from its events.jsonl (incremental; an unchanged file costs one stat)."""
        return self._progress.progress(run_dir)

    def run_results(self, run_dir: StrPath) -> dict[str, Any] | None:
        """The run's eval.json, parsed (cached until the file changes), or None."""
        return self._results.results(run_dir)

    def settings(self, key: str) -> Any:
        rows = self._read("SELECT value FROM settings WHERE key = ?", [key])
        return json.loads(rows[0]["value"]) if rows else None

    # ---- writing: user actions ----------------------------------------------------------------------------
    def set_setting(self, key: str, value: Any) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, json.dumps(value)],
            )

    def enqueue(self, specs: Sequence[JobSpec], *, force: bool = False) -> EnqueueResult:
        """Queue `specs` (dependencies first) in one transaction. Idempotent: an open job is never queued
        twice; done work is skipped unless `force` (which retrains with `--restart`)."""
        result = EnqueueResult([], [], [], [])
        with self._tx() as c:
            before = {r["id"]: r["state"] for r in c.execute("SELECT id, state FROM jobs")}
            for spec in specs:
                if spec.action not in ACTIONS:
                    raise ValueError(f"unknown action {spec.action!r} (allowed: {', '.join(ACTIONS)})")
                force_this = force or spec.force
                row = _row(c, spec.run_key, spec.action)
                dep_ids = []
                for need in spec.needs:
                    dep = _row(c, *need)
                    if dep is not None and dep["state"] in OPEN_STATES:
                        dep_ids.append(dep["id"])
                if row is not None and row["state"] in OPEN_STATES and row["state"] != BLOCKED:
                    if force_this and row["state"] == RUNNING:
                        result.refused.append(
                            (spec, f"{spec.run_key} {spec.action} is running: cancel it first")
                        )
                    elif before.get(row["id"]) == BLOCKED:  # unblocked by re-queueing its dependency above
                        result.queued.append(_job(c, row["id"]))
                    else:
                        result.kept.append(_job(c, row["id"]))
                    continue
                if (
                    not force_this
                    and (row is None or row["state"] != BLOCKED)
                    and self._finished_on_disk(
                        spec, own_train_open=any(_is_own_train(c, spec, d) for d in dep_ids)
                    )
                ):
                    result.skipped.append(spec)
                    continue
                restart = int(force_this and spec.action == "train")
                if row is None:
                    now = time.time()
                    cur = c.execute(
                        "INSERT INTO jobs(run_key, experiment, rel_dir, action, state, seq, restart, created,"
                        " updated)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            spec.run_key,
                            spec.experiment,
                            spec.rel_dir,
                            spec.action,
                            WAITING,
                            0,
                            restart,
                            now,
                            now,
                        ],
                    )
                    job_id = int(cur.lastrowid or 0)
                    _log(c, job_id, None, WAITING, "launched")
                else:
                    job_id = row["id"]
                    c.execute(
                        "UPDATE jobs SET rel_dir = ?, experiment = ?, restart = ? WHERE id = ?",
                        [spec.rel_dir, spec.experiment, restart, job_id],
                    )
                self._requeue(
                    c, job_id, dep_ids, "launched" if row is None else f"relaunched (was {row['state']})"
                )
                result.queued.append(_job(c, job_id))
        return result

    def _finished_on_disk(self, spec: JobSpec, own_train_open: bool) -> bool:
        run_dir = self.run_dir(spec.rel_dir)
        if spec.action == "train":
            return is_trained(run_dir)
        return is_evaluated(run_dir) and not own_train_open  # an eval.json older than a new training is stale

    def cancel(self, run_keys: Sequence[str], actions: Sequence[str] = ACTIONS) -> list[Job]:
        """Cancel the open jobs of `run_keys`: pending ones at once, running ones by asking the worker
        (which sends SIGTERM to the process group, then SIGKILL after the grace period). Dependants become
        blocked."""
        changed: list[Job] = []
        with self._tx() as c:
            for key in run_keys:
                for action in actions:
                    row = _row(c, key, action)
                    if row is None or row["state"] not in OPEN_STATES:
                        continue
                    if row["state"] == RUNNING:
                        if not row["cancel_requested"]:
                            c.execute(
                                "UPDATE jobs SET cancel_requested = 1, reason = ?, updated = ? WHERE id = ?",
                                ["cancel requested", time.time(), row["id"]],
                            )
                            _log(c, row["id"], RUNNING, RUNNING, "cancel requested")
                    else:
                        _set_state(c, row["id"], CANCELLED, "cancelled by the user", finished=time.time())
                        _block_dependants(c, row["id"])
                    changed.append(_job(c, row["id"]))
        return changed

    def retry(self, run_keys: Sequence[str], actions: Sequence[str] = ACTIONS) -> list[Job]:
        """Re-queue the failed, cancelled or blocked jobs of `run_keys` (and the failed jobs they wait for);
        training resumes from the newest checkpoint. Blocked dependants become waiting again."""
        with self._tx() as c:
            before = {r["id"]: r["state"] for r in c.execute("SELECT id, state FROM jobs")}
            todo = [row["id"] for key in run_keys for a in actions if (row := _row(c, key, a)) is not None]
            seen: set[int] = set()
            while todo:
                job_id = todo.pop(0)
                if job_id in seen:
                    continue
                seen.add(job_id)
                state = c.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()["state"]
                if state not in BROKEN_STATES:
                    continue
                dep_ids = [
                    r["dep_id"] for r in c.execute("SELECT dep_id FROM deps WHERE job_id = ?", [job_id])
                ]
                broken = [d for d in dep_ids if _state(c, d) in BROKEN_STATES and d not in seen]
                if broken:  # retry the root cause first, then come back to this one
                    todo = broken + [job_id] + todo
                    seen.discard(job_id)
                    continue
                c.execute("UPDATE jobs SET restart = 0 WHERE id = ?", [job_id])
                self._requeue(c, job_id, dep_ids, f"retried (was {state})")
            # report every job that left a broken state: the retried ones and the dependants they unblocked
            after = {r["id"]: r["state"] for r in c.execute("SELECT id, state FROM jobs")}
            moved = [i for i, st in before.items() if st in BROKEN_STATES and after[i] not in BROKEN_STATES]
            return [_job(c, i) for i in sorted(moved, key=lambda i: _seq(c, i))]

    def _requeue(self, c: sqlite3.Connection, job_id: int, dep_ids: Sequence[int], reason: str) -> None:
        """Put a job back in the queue (fresh process fields, new queue position); unblock its dependants."""
        c.execute("DELETE FROM deps WHERE job_id = ?", [job_id])
        c.executemany("INSERT INTO deps(job_id, dep_id) VALUES (?, ?)", [(job_id, d) for d in dep_ids])
        now = time.time()
        c.execute(
            "UPDATE jobs SET seq = ?, pid = NULL, pid_start = NULL, pgid = NULL, slot = NULL,"
            " exit_code = NULL, signal = NULL, cancel_requested = 0, cancel_sent = NULL, queued_at = ?,"
            " started = NULL, finished = NULL WHERE id = ?",
            [_next_seq(c), now, job_id],
        )
        _set_state(c, job_id, WAITING, reason)
        _settle(c, job_id)
        _unblock_dependants(c, job_id)

    # ---- writing: the worker ----------------------------------------------------------------------------
    def schedule(self) -> None:
        """Move waiting jobs whose dependencies finished to queued, and those with a broken one to blocked."""
        with self._tx() as c:
            for r in c.execute("SELECT id FROM jobs WHERE state = ? ORDER BY seq", [WAITING]).fetchall():
                _settle(c, r["id"])

    def claim(self, job_id: int, slot: str) -> Job | None:
        """queued -> running (no process yet) on `slot`; None when the job is no longer queued."""
        with self._tx() as c:
            if _state(c, job_id) != QUEUED:
                return None
            now = time.time()
            c.execute(
                "UPDATE jobs SET slot = ?, attempts = attempts + 1, started = ?, finished = NULL"
                " WHERE id = ?",
                [slot, now, job_id],
            )
            _set_state(c, job_id, RUNNING, "starting")
            return _job(c, job_id)

    def record_process(
        self, job_id: int, pid: int, pid_start: int | None, pgid: int, reason: str = "running"
    ) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET pid = ?, pid_start = ?, pgid = ?, restart = 0, reason = ?, updated = ?"
                " WHERE id = ?",
                [pid, pid_start, pgid, reason, time.time(), job_id],
            )

    def mark_cancel_sent(self, job_id: int, t: float) -> None:
        with self._tx() as c:
            c.execute("UPDATE jobs SET cancel_sent = ? WHERE id = ?", [t, job_id])

    def finish(
        self, job_id: int, state: str, reason: str, *, exit_code: int | None = None, signal: int | None = None
    ) -> Job:
        """running -> done | failed | cancelled, with the exit status; a failure blocks its dependants."""
        if state not in (DONE, FAILED, CANCELLED):
            raise ValueError(f"finish: state must be done, failed or cancelled, not {state!r}")
        with self._tx() as c:
            c.execute("UPDATE jobs SET exit_code = ?, signal = ? WHERE id = ?", [exit_code, signal, job_id])
            _set_state(c, job_id, state, reason, finished=time.time())
            if state != DONE:
                _block_dependants(c, job_id)
            return _job(c, job_id)

    def requeue_interrupted(self, job_id: int, reason: str) -> None:
        """A running job whose process vanished while no worker watched it: queue it again (it resumes)."""
        with self._tx() as c:
            deps = [r["dep_id"] for r in c.execute("SELECT dep_id FROM deps WHERE job_id = ?", [job_id])]
            self._requeue(c, job_id, deps, reason)

    def has_pending(self) -> bool:
        rows = self._read(f"SELECT COUNT(*) AS n FROM jobs WHERE state IN {PENDING_STATES!r}")
        return bool(rows and rows[0]["n"])


# ---- transaction helpers (called inside a BEGIN IMMEDIATE) --------------------------------------------
def _row(c: sqlite3.Connection, run_key: str, action: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = c.execute(
        "SELECT * FROM jobs WHERE run_key = ? AND action = ?", [run_key, action]
    ).fetchone()
    return row


def _job(c: sqlite3.Connection, job_id: int) -> Job:
    row = c.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE id = ?", [job_id]).fetchone()
    deps = tuple(
        r["dep_id"] for r in c.execute("SELECT dep_id FROM deps WHERE job_id = ? ORDER BY dep_id", [job_id])
    )
    return Job(**dict(row), deps=deps)


def _state(c: sqlite3.Connection, job_id: int) -> str:
    return str(c.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()["state"])


def _is_own_train(c: sqlite3.Connection, spec: JobSpec, dep_id: int) -> bool:
    row = c.execute("SELECT run_key, action FROM jobs WHERE id = ?", [dep_id]).fetchone()
    return bool(row and row["run_key"] == spec.run_key and row["action"] == "train")


def _seq(c: sqlite3.Connection, job_id: int) -> int:
    return int(c.execute("SELECT seq FROM jobs WHERE id = ?", [job_id]).fetchone()["seq"])


def _next_seq(c: sqlite3.Connection) -> int:
    return int(c.execute("SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM jobs").fetchone()["s"])


def _log(c: sqlite3.Connection, job_id: int, old: str | None, new: str, reason: str) -> None:
    c.execute(
        "INSERT INTO history(job_id, t, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?)",
        [job_id, time.time(), old, new, reason],
    )


def _set_state(c: sqlite3.Connection, job_id: int, state: str, reason: str, **extra: Any) -> None:
    old = _state(c, job_id)
    sets = ", ".join(f"{k} = ?" for k in extra)
    c.execute(
        f"UPDATE jobs SET state = ?, reason = ?, updated = ?{', ' + sets if sets else ''} WHERE id = ?",
        [state, reason, time.time(), *extra.values(), job_id],
    )
    if old != state:
        _log(c, job_id, old, state, reason)


def _describe(c: sqlite3.Connection, job_id: int) -> str:
    r = c.execute("SELECT run_key, action, state FROM jobs WHERE id = ?", [job_id]).fetchone()
    return f"{r['run_key']} {r['action']} ({r['state']})"


def _settle(c: sqlite3.Connection, job_id: int) -> None:
    """waiting -> queued when all dependencies are done; -> blocked when one failed, was cancelled, is
    blocked."""
    if _state(c, job_id) != WAITING:
        return
    deps = [r["dep_id"] for r in c.execute("SELECT dep_id FROM deps WHERE job_id = ?", [job_id])]
    states = {d: _state(c, d) for d in deps}
    broken = [d for d, s in states.items() if s in BROKEN_STATES]
    if broken:
        _set_state(c, job_id, BLOCKED, f"blocked by {_describe(c, broken[0])}")
    elif all(s == DONE for s in states.values()):
        # without dependencies keep the reason it was (re)queued with ("launched", "retried (was failed)")
        reason = (
            "dependencies done"
            if deps
            else str(c.execute("SELECT reason FROM jobs WHERE id = ?", [job_id]).fetchone()["reason"])
        )
        _set_state(c, job_id, QUEUED, reason)
    else:
        pending = [d for d, s in states.items() if s != DONE]
        reason = f"waiting for {_describe(c, pending[0])}"
        c.execute("UPDATE jobs SET reason = ? WHERE id = ?", [reason, job_id])


def _block_dependants(c: sqlite3.Connection, job_id: int) -> None:
    """Block, transitively, every queued or waiting job that depends on `job_id` (which cannot finish)."""
    frontier = [job_id]
    while frontier:
        dep = frontier.pop()
        for r in c.execute(
            "SELECT j.id FROM jobs j JOIN deps d ON d.job_id = j.id WHERE d.dep_id = ? AND j.state IN (?, ?)",
            [dep, QUEUED, WAITING],
        ).fetchall():
            _set_state(c, r["id"], BLOCKED, f"blocked by {_describe(c, dep)}")
            frontier.append(r["id"])


def _unblock_dependants(c: sqlite3.Connection, job_id: int) -> None:
    """After `job_id` was re-queued: blocked dependants whose dependencies are all alive again wait again."""
    frontier = [job_id]
    while frontier:
        dep = frontier.pop()
        for r in c.execute(
            "SELECT j.id FROM jobs j JOIN deps d ON d.job_id = j.id WHERE d.dep_id = ? AND j.state = ?",
            [dep, BLOCKED],
        ).fetchall():
            others = [x["dep_id"] for x in c.execute("SELECT dep_id FROM deps WHERE job_id = ?", [r["id"]])]
            if all(_state(c, d) not in BROKEN_STATES for d in others):
                _set_state(c, r["id"], WAITING, f"unblocked ({_describe(c, dep)})")
                _settle(c, r["id"])
                frontier.append(r["id"])


def _explain(e: sqlite3.Error, store: Store) -> str:
    text = str(e)
    if "locked" in text or "busy" in text:
        return f"the database is locked by another process (waited {store.busy_timeout_s:g} s); try again"
    return text
