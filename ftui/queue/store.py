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
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ftui.queue import transitions as tx
from ftui.queue.db import QueueDatabase
from ftui.queue.model import (  # re-exported: the queue's public names live here
    ACTIONS,
    BLOCKED,
    BROKEN_STATES,
    CANCELLED,
    DB_NAME,
    DONE,
    EXECUTORS,
    FAILED,
    JOB_BRIEF_COLUMNS,
    JOB_COLUMNS,
    OPEN_STATES,
    PENDING_STATES,
    QUEUED,
    RUNNING,
    STATES,
    WAITING,
    EnqueueResult,
    Job,
    JobBrief,
    JobSpec,
    StoreError,
    StoreReplaced,
)
from ftui.rundir import EvalResults, ProgressReader, ResultsReader, RunProgress, StrPath, has_product

__all__ = [
    "ACTIONS",
    "EXECUTORS",
    "BLOCKED",
    "BROKEN_STATES",
    "CANCELLED",
    "DB_NAME",
    "DONE",
    "FAILED",
    "OPEN_STATES",
    "PENDING_STATES",
    "QUEUED",
    "RUNNING",
    "STATES",
    "WAITING",
    "EnqueueResult",
    "Job",
    "JobBrief",
    "JobSpec",
    "Store",
    "StoreError",
    "StoreReplaced",
]


class Store:
    """The queue database of one runs folder plus cached readers of its run folders."""

    def __init__(
        self,
        runs_dir: Path,
        *,
        busy_timeout_s: float = 10.0,
        loss_history: int = 200,
        follow_replacement: bool = True,
        keep_reading: bool = False,
    ) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.db_path = self.runs_dir / DB_NAME
        self.busy_timeout_s = busy_timeout_s
        # follow_replacement=False (a worker): raise StoreReplaced when the file was removed or replaced
        self._db = QueueDatabase(self.runs_dir, self.db_path, busy_timeout_s, follow_replacement)
        # True (the app): a read that fails returns no rows and leaves the message in `problem`, so the screen
        # shows what the run folders say and the reason, never a traceback. Writes still raise StoreError.
        self.keep_reading = keep_reading
        self.problem: str | None = None
        self._lock = threading.RLock()
        self._progress = ProgressReader(loss_history)
        self._results = ResultsReader()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE takes the write lock up front: no upgrade deadlocks)."""
        with self._lock:
            conn = self._db.connect(create=True)
            assert conn is not None
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise self._db.error(e) from e
            try:
                yield conn
            except BaseException as e:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise self._db.error(e) from e
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self._db.error(e) from e

    def _read(self, sql: str, params: Sequence[Any] = (), plain: bool = False) -> list[sqlite3.Row]:
        """The rows of one query (`plain`: as tuples, without sqlite3.Row's names: thousands cost less)."""
        with self._lock:
            try:
                rows = self._read_now(sql, params, plain)
            except StoreError as e:
                if not self.keep_reading:
                    raise
                self.problem = str(e)
                return []
            self.problem = None
            return rows

    def _read_now(self, sql: str, params: Sequence[Any], plain: bool = False) -> list[sqlite3.Row]:
        conn = self._db.connect(create=False)
        if conn is None:
            return []
        try:
            cursor = conn.cursor()
            if plain:
                cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise self._db.error(e) from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- reading ----------------------------------------------------------------------------------------
    def jobs(
        self,
        run_keys: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
        *,
        executors: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs in queue order, optionally only those of `run_keys`, in `states`, run by `executors`; the
        first `limit` of them. The dependencies are read for the selected jobs only (the worker asks for a
        handful of 5,000)."""
        where: list[str] = []
        params: list[Any] = []
        for column, values in (("run_key", run_keys), ("state", states), ("executor", executors)):
            if values is not None:
                wanted = list(values)
                where.append(f"{column} IN ({', '.join('?' * len(wanted))})")
                params += wanted
        selected = (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq"
        if limit is not None:
            selected += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._read(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs{selected}", params)
            if not rows:
                return []
            if where or limit is not None:
                dep_rows = self._read(
                    f"SELECT job_id, dep_id FROM deps WHERE job_id IN (SELECT id FROM jobs{selected})"
                    " ORDER BY dep_id",
                    params,
                )
            else:
                dep_rows = self._read("SELECT job_id, dep_id FROM deps ORDER BY dep_id")
        deps: dict[int, list[int]] = {}
        for job_id, dep_id in dep_rows:
            deps.setdefault(job_id, []).append(dep_id)
        # positional: JOB_COLUMNS is Job's field order (faster than a dict per row at thousands of rows)
        return [Job(*r, deps=tuple(deps.get(r[0], ()))) for r in rows]  # type: ignore[misc]

    def job(self, job_id: int) -> Job | None:
        with self._lock:
            rows = self._read(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?", [job_id])
            if not rows:
                return None
            deps = self._read("SELECT dep_id FROM deps WHERE job_id = ? ORDER BY dep_id", [job_id])
        return Job(*rows[0], deps=tuple(r[0] for r in deps))  # type: ignore[misc]

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

    def run_results(self, run_dir: StrPath) -> EvalResults | None:
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
                row = tx.row(c, spec.run_key, spec.action)
                dep_ids = []
                for need in spec.needs:
                    dep = tx.row(c, *need)
                    if dep is not None and dep["state"] in OPEN_STATES:
                        dep_ids.append(dep["id"])
                if row is not None and row["state"] in OPEN_STATES and row["state"] != BLOCKED:
                    job_id = row["id"]
                    if force_this and row["state"] == RUNNING:
                        result.refused.append(
                            (spec, f"{spec.run_key} {spec.action} is running: cancel it first")
                        )
                        continue
                    changed = before.get(job_id) == BLOCKED  # unblocked by re-queueing its dependency above
                    if row["state"] in (QUEUED, WAITING):
                        # a dependency re-queued by this launch (e.g. --force on the parent) must finish first
                        have = {
                            r["dep_id"]
                            for r in c.execute("SELECT dep_id FROM deps WHERE job_id = ?", [job_id])
                        }
                        added = set(dep_ids) - have
                        if added:
                            c.executemany(
                                "INSERT INTO deps(job_id, dep_id) VALUES (?, ?)", [(job_id, d) for d in added]
                            )
                            tx.set_state(c, job_id, WAITING, "waiting for a re-queued dependency")
                            tx.settle(c, job_id)
                            changed = True
                        if force_this and spec.action == "train" and not row["restart"]:
                            tx.update(c, job_id, restart=1)  # not started yet
                            changed = True
                    (result.queued if changed else result.kept).append(tx.job(c, job_id))
                    continue
                if (
                    not force_this
                    and (row is None or row["state"] != BLOCKED)
                    and self._finished_on_disk(
                        spec, own_train_open=any(tx.is_own_train(c, spec, d) for d in dep_ids)
                    )
                ):
                    result.skipped.append(spec)
                    continue
                restart = int(force_this and spec.action == "train")
                if row is None:
                    job_id = tx.insert(c, spec, WAITING, restart, "launched")
                else:
                    job_id = row["id"]
                    tx.update(
                        c,
                        job_id,
                        rel_dir=spec.rel_dir,
                        experiment=spec.experiment,
                        restart=restart,
                        executor=spec.executor,
                        requeues=0,
                    )
                self._requeue(
                    c, job_id, dep_ids, "launched" if row is None else f"relaunched (was {row['state']})"
                )
                result.queued.append(tx.job(c, job_id))
        return result

    def _finished_on_disk(self, spec: JobSpec, own_train_open: bool) -> bool:
        if spec.action == "eval" and own_train_open:
            return False  # an eval.json older than a new training is stale
        return has_product(self.run_dir(spec.rel_dir), spec.action)

    def cancel(self, run_keys: Sequence[str], actions: Sequence[str] = ACTIONS) -> list[Job]:
        """Cancel the open jobs of `run_keys`: pending ones at once, running ones by asking the worker
        (which sends SIGTERM to the process group, then SIGKILL after the grace period). Dependants become
        blocked."""
        changed: list[Job] = []
        with self._tx() as c:
            for key in run_keys:
                for action in actions:
                    row = tx.row(c, key, action)
                    if row is None or row["state"] not in OPEN_STATES:
                        continue
                    if row["state"] == RUNNING:
                        if not row["cancel_requested"]:
                            tx.update(
                                c,
                                row["id"],
                                cancel_requested=1,
                                reason="cancel requested",
                                updated=time.time(),
                            )
                            tx.log(c, row["id"], RUNNING, RUNNING, "cancel requested")
                    else:
                        tx.set_state(c, row["id"], CANCELLED, "cancelled by the user", finished=time.time())
                        tx.block_dependants(c, row["id"])
                    changed.append(tx.job(c, row["id"]))
        return changed

    def retry(self, run_keys: Sequence[str], actions: Sequence[str] = ACTIONS) -> list[Job]:
        """Re-queue the failed, cancelled or blocked jobs of `run_keys` (and the failed jobs they wait for);
        training resumes from the newest checkpoint. Blocked dependants become waiting again."""
        with self._tx() as c:
            before = {r["id"]: r["state"] for r in c.execute("SELECT id, state FROM jobs")}
            todo = [row["id"] for key in run_keys for a in actions if (row := tx.row(c, key, a)) is not None]
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
                broken = [d for d in dep_ids if tx.state_of(c, d) in BROKEN_STATES and d not in seen]
                if broken:  # retry the root cause first, then come back to this one
                    todo = broken + [job_id] + todo
                    seen.discard(job_id)
                    continue
                tx.update(c, job_id, restart=0, requeues=0)
                self._requeue(c, job_id, dep_ids, f"retried (was {state})")
            # report every job that left a broken state: the retried ones and the dependants they unblocked
            after = {r["id"]: r["state"] for r in c.execute("SELECT id, state FROM jobs")}
            moved = [i for i, st in before.items() if st in BROKEN_STATES and after[i] not in BROKEN_STATES]
            return [tx.job(c, i) for i in sorted(moved, key=lambda i: tx.seq(c, i))]

    def _requeue(self, c: sqlite3.Connection, job_id: int, dep_ids: Sequence[int], reason: str) -> None:
        """Put a job back in the queue (fresh process fields, new queue position); unblock its dependants."""
        c.execute("DELETE FROM deps WHERE job_id = ?", [job_id])
        c.executemany("INSERT INTO deps(job_id, dep_id) VALUES (?, ?)", [(job_id, d) for d in dep_ids])
        fresh = dict.fromkeys(("pid", "pid_start", "pgid", "slot", "exit_code", "signal", "cancel_sent"))
        fresh.update(dict.fromkeys(("started", "finished", "slurm_id", "node")))
        tx.update(c, job_id, seq=tx.next_seq(c), cancel_requested=0, queued_at=time.time(), **fresh)
        tx.set_state(c, job_id, WAITING, reason)
        tx.settle(c, job_id)
        tx.unblock_dependants(c, job_id)

    # ---- writing: the worker ----------------------------------------------------------------------------
    def schedule(self) -> None:
        """Move waiting jobs whose dependencies finished to queued, and those with a broken one to blocked.
        Every transition already settles the dependants of the job it moves (transitions.set_state), so this
        full sweep is for a queue written before that rule: the worker runs it once, when it starts."""
        with self._tx() as c:
            for r in c.execute("SELECT id FROM jobs WHERE state = ? ORDER BY seq", [WAITING]).fetchall():
                tx.settle(c, r["id"])

    def claim(self, job_id: int, slot: str) -> Job | None:
        """queued -> running (no process yet) on `slot`; None when the job is no longer queued."""
        with self._tx() as c:
            if tx.state_of(c, job_id) != QUEUED:
                return None
            attempts = int(c.execute("SELECT attempts FROM jobs WHERE id = ?", [job_id]).fetchone()[0])
            tx.update(c, job_id, slot=slot, attempts=attempts + 1, started=time.time(), finished=None)
            tx.set_state(c, job_id, RUNNING, "starting")
            return tx.job(c, job_id)

    def record_process(
        self, job_id: int, pid: int, pid_start: int | None, pgid: int, reason: str = "running"
    ) -> None:
        with self._tx() as c:
            tx.update(
                c,
                job_id,
                pid=pid,
                pid_start=pid_start,
                pgid=pgid,
                restart=0,
                reason=reason,
                updated=time.time(),
            )

    def mark_cancel_sent(self, job_id: int, t: float) -> None:
        with self._tx() as c:
            tx.update(c, job_id, cancel_sent=t)

    def finish(
        self,
        job_id: int,
        state: str,
        reason: str,
        *,
        exit_code: int | None = None,
        signal: int | None = None,
        outcome: str | None = None,
    ) -> Job:
        """running -> done | failed | cancelled, with the exit status and the outcome (default: the state's,
        `killed` for a failure by a signal); a failure blocks its dependants."""
        if state not in (DONE, FAILED, CANCELLED):
            raise ValueError(f"finish: state must be done, failed or cancelled, not {state!r}")
        with self._tx() as c:
            tx.set_state(
                c,
                job_id,
                state,
                reason,
                outcome=outcome,
                exit_code=exit_code,
                signal=signal,
                finished=time.time(),
            )
            if state != DONE:
                tx.block_dependants(c, job_id)
            return tx.job(c, job_id)

    def requeue_interrupted(self, job_id: int, reason: str) -> None:
        """A running job whose process vanished while no worker watched it: queue it again (it resumes)."""
        with self._tx() as c:
            deps = [r["dep_id"] for r in c.execute("SELECT dep_id FROM deps WHERE job_id = ?", [job_id])]
            self._requeue(c, job_id, deps, reason)

    def record_slurm(self, job_id: int, slurm_id: str, reason: str, partition: str | None = None) -> None:
        """A submitted Slurm job: its id (the job runs there now; `--restart` was passed on to it)."""
        with self._tx() as c:
            tx.update(
                c,
                job_id,
                slurm_id=slurm_id,
                partition=partition,
                restart=0,
                reason=reason,
                updated=time.time(),
            )

    def update_slurm(self, job_id: int, reason: str, partition: str | None, node: str | None) -> None:
        """What Slurm says about a job that has not ended (PENDING with its reason, RUNNING on a node)."""
        with self._tx() as c:
            row = c.execute("SELECT partition, node FROM jobs WHERE id = ?", [job_id]).fetchone()
            if row is None:
                return
            tx.update(
                c,
                job_id,
                reason=reason,
                partition=partition if partition is not None else row["partition"],
                node=node if node is not None else row["node"],
                updated=time.time(),
            )

    def requeue_after_limit(self, job_id: int, reason: str) -> None:
        """A Slurm job that hit its time limit or was preempted: queue it again once (it resumes from its
        checkpoint); `requeues` counts these so a second hit fails instead of looping."""
        with self._tx() as c:
            deps = [r["dep_id"] for r in c.execute("SELECT dep_id FROM deps WHERE job_id = ?", [job_id])]
            requeues = int(c.execute("SELECT requeues FROM jobs WHERE id = ?", [job_id]).fetchone()[0])
            tx.update(c, job_id, requeues=requeues + 1, restart=0)
            self._requeue(c, job_id, deps, reason)

    def change_token(self) -> tuple[Any, ...] | None:
        """A value that changes whenever a transaction commits to the queue (SQLite's `PRAGMA data_version`
        counts other connections' commits, `total_changes` this one's): pollers compare it and skip a read
        of every job when nothing changed. None when the queue cannot be read (read every time then)."""
        with self._lock:
            try:
                conn = self._db.connect(create=False)
                if conn is None:
                    return None
                version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            except (sqlite3.Error, StoreError):
                return None
            return self._db.identity(), version, conn.total_changes

    def has_pending(self) -> bool:
        rows = self._read(f"SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN {PENDING_STATES!r}) AS n")
        return bool(rows and rows[0]["n"])

    # ---- queue control: pause, remove (ftui/commands/control_cmds.py) --------------------------------------
    PAUSED_KEY = "paused"

    def paused(self) -> bool:
        """Whether the queue is paused: the worker starts no new job (running ones go on)."""
        return bool(self.settings(self.PAUSED_KEY))

    def set_paused(self, paused: bool) -> None:
        self.set_setting(self.PAUSED_KEY, bool(paused))

    def remove(self, run_keys: Sequence[str]) -> list[Job]:
        """Delete the queue rows of `run_keys` (and their history) in one transaction. Refused (StoreError)
        when one is running, or when a job of another run still waits for one of them."""
        keys = list(dict.fromkeys(run_keys))
        with self._tx() as c:
            marks = ", ".join("?" * len(keys))
            rows = c.execute(f"SELECT id, run_key, action, state FROM jobs WHERE run_key IN ({marks})", keys)
            found = rows.fetchall()
            if running := [f"{r['run_key']} {r['action']}" for r in found if r["state"] == RUNNING]:
                raise StoreError(f"running now: {', '.join(running)} (cancel first: `ftui cancel PATTERN`)")
            ids = [r["id"] for r in found]
            id_marks = ", ".join("?" * len(ids))
            waiting = c.execute(
                f"SELECT j.run_key, j.action, d.run_key AS dep_key FROM deps"
                f" JOIN jobs j ON j.id = deps.job_id JOIN jobs d ON d.id = deps.dep_id"
                f" WHERE deps.dep_id IN ({id_marks}) AND deps.job_id NOT IN ({id_marks})"
                f" AND j.state IN {PENDING_STATES!r}",
                ids + ids,
            ).fetchall()
            if waiting:
                who = ", ".join(f"{r['run_key']} {r['action']} (needs {r['dep_key']})" for r in waiting)
                raise StoreError(f"other jobs wait for these runs: {who}; remove or cancel them too")
            removed = [tx.job(c, i) for i in ids]
            c.execute(f"DELETE FROM deps WHERE job_id IN ({id_marks}) OR dep_id IN ({id_marks})", ids + ids)
            c.execute(f"DELETE FROM history WHERE job_id IN ({id_marks})", ids)
            c.execute(f"DELETE FROM jobs WHERE id IN ({id_marks})", ids)
            return removed

    # ---- `ftui list` at thousands of runs (issue 18; added by the `list` work, self-contained) ------------
    def job_counts(self) -> dict[str, int]:
        """The number of jobs per state in the whole queue (for the worker line)."""
        return {state: n for state, n in self._read("SELECT state, COUNT(*) FROM jobs GROUP BY state")}

    def job_briefs(self, run_keys: Sequence[str] | None = None) -> tuple[str, list[JobBrief]]:
        """The queue's identity (drawn when its database was made: model.REVISIONS; "" without a database)
        and the `JobBrief` of every job of `run_keys` (all when None), in queue order: what a listing
        compares with the (id, rev) pairs it remembered. 10,000 jobs cost a few ms, a tenth of
        `listing_jobs`' full Job objects."""
        queue = self._read("SELECT queue FROM revisions", plain=True)
        rows = self._select_by_run(JOB_BRIEF_COLUMNS, run_keys)[0]
        return (queue[0][0] if queue else ""), list(map(JobBrief._make, rows))

    def listing_jobs(self, run_keys: Sequence[str] | None = None) -> tuple[list[Job], dict[str, int]]:
        """The jobs of `run_keys` (all when None) in queue order, equal to what `jobs(run_keys)` returns, and
        `job_counts()`. A 10,000-job queue costs a fraction of `jobs()`: Job objects are filled in without
        their 31-argument frozen `__init__`."""
        counts = self.job_counts()
        rows, where, params = self._select_by_run(JOB_COLUMNS, run_keys)
        deps: dict[int, list[int]] = {}
        if rows:
            sql = "SELECT job_id, dep_id FROM deps"
            if where:
                sql += f" WHERE job_id IN (SELECT id FROM jobs{where})"
            for job_id, dep_id in self._read(sql + " ORDER BY dep_id", params, plain=True):
                deps.setdefault(job_id, []).append(dep_id)
        jobs = []
        new = object.__new__
        for r in rows:
            job = new(Job)
            job.__dict__.update(zip(JOB_COLUMNS, r, strict=True))
            job.__dict__["deps"] = tuple(deps.get(job.id, ()))
            jobs.append(job)
        return jobs, counts

    def _select_by_run(
        self, columns: Sequence[str], run_keys: Sequence[str] | None
    ) -> tuple[list[Any], str, list[str]]:
        """`columns` (plain tuples, queue order) of the jobs of `run_keys` (all when None), with the WHERE
        clause and parameters that picked them ("" when all rows were read)."""
        keys = list(dict.fromkeys(run_keys)) if run_keys is not None else None
        if keys == []:
            return [], "", []
        # Few keys: SQL picks the rows (the unique (run_key, action) index); many (beyond SQLite's 32,766
        # parameters, or most of the queue anyway): read all rows and keep the wanted ones.
        where = f" WHERE run_key IN ({', '.join('?' * len(keys))})" if keys and len(keys) <= 900 else ""
        params: list[str] = keys if keys is not None and where else []
        sql = f"SELECT {', '.join(columns)} FROM jobs{where} ORDER BY seq"
        rows: list[Any] = self._read(sql, params, plain=True)
        if keys is not None and not where:
            wanted, at = set(keys), list(columns).index("run_key")
            rows = [r for r in rows if r[at] in wanted]
        return rows, where, params
