"""The writes of job rows, inside one write transaction (the caller holds BEGIN IMMEDIATE). Every write of a
job row goes through here: `insert`, `set_state` (the only way to change a job's state and outcome; it logs
the change in `history`) and `update` (every other column); `settle`, `block_dependants` and
`unblock_dependants` keep the dependency graph consistent.

Invariant after every transaction: no waiting job could move on. `set_state` settles the waiting dependants
of a job whose state changed (queued when all their dependencies are done, blocked when one is broken, else
their "waiting for ..." reason follows the dependency's state), so the worker never sweeps thousands of
waiting jobs on each pass; `Store.schedule` is the full sweep, for a database written before this rule."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ftui.queue.model import (
    BLOCKED,
    BROKEN_STATES,
    DONE,
    JOB_COLUMNS,
    OUTCOMES,
    QUEUED,
    WAITING,
    Job,
    JobSpec,
    default_outcome,
)

# Columns only `set_state` writes (the state machine), and the ones `update` may write.
_STATE_COLUMNS = frozenset({"id", "state", "outcome"})
_UPDATABLE = frozenset(JOB_COLUMNS) - _STATE_COLUMNS


def row(c: sqlite3.Connection, run_key: str, action: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = c.execute(
        "SELECT * FROM jobs WHERE run_key = ? AND action = ?", [run_key, action]
    ).fetchone()
    return row


def job(c: sqlite3.Connection, job_id: int) -> Job:
    row = c.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?", [job_id]).fetchone()
    deps = tuple(
        r["dep_id"] for r in c.execute("SELECT dep_id FROM deps WHERE job_id = ? ORDER BY dep_id", [job_id])
    )
    return Job(**dict(row), deps=deps)


def state_of(c: sqlite3.Connection, job_id: int) -> str:
    return str(c.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()["state"])


def is_own_train(c: sqlite3.Connection, spec: JobSpec, dep_id: int) -> bool:
    row = c.execute("SELECT run_key, action FROM jobs WHERE id = ?", [dep_id]).fetchone()
    return bool(row and row["run_key"] == spec.run_key and row["action"] == "train")


def seq(c: sqlite3.Connection, job_id: int) -> int:
    return int(c.execute("SELECT seq FROM jobs WHERE id = ?", [job_id]).fetchone()["seq"])


def next_seq(c: sqlite3.Connection) -> int:
    return int(c.execute("SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM jobs").fetchone()["s"])


def log(c: sqlite3.Connection, job_id: int, old: str | None, new: str, reason: str) -> None:
    c.execute(
        "INSERT INTO history(job_id, t, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?)",
        [job_id, time.time(), old, new, reason],
    )


def insert(c: sqlite3.Connection, spec: JobSpec, state: str, restart: int, reason: str) -> int:
    """A new job row for `spec` (its history starts with `reason`)."""
    now = time.time()
    cur = c.execute(
        "INSERT INTO jobs(run_key, experiment, rel_dir, action, state, seq, restart, created, updated,"
        " executor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [spec.run_key, spec.experiment, spec.rel_dir, spec.action, state, 0, restart, now, now]
        + [spec.executor],
    )
    job_id = int(cur.lastrowid or 0)
    log(c, job_id, None, state, reason)
    return job_id


def update(c: sqlite3.Connection, job_id: int, **fields: Any) -> None:
    """Write columns of a job other than its state and outcome (those change only through `set_state`)."""
    wrong = set(fields) - _UPDATABLE
    if wrong:
        raise ValueError(f"update: {', '.join(sorted(wrong))} change only through set_state")
    sets = ", ".join(f"{k} = ?" for k in fields)
    c.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])


def set_state(
    c: sqlite3.Connection, job_id: int, state: str, reason: str, *, outcome: str | None = None, **extra: Any
) -> None:
    """Move a job to `state`. An ended state gets its outcome (`outcome`, else the state's default); an
    open one has none."""
    if _set_state(c, job_id, state, reason, outcome, extra):
        settle_dependants(c, job_id)


def _set_state(
    c: sqlite3.Connection, job_id: int, state: str, reason: str, outcome: str | None, extra: dict[str, Any]
) -> bool:
    """`set_state` without settling the dependants; True when the state changed."""
    ended = default_outcome(state, extra.get("signal"))
    outcome = (outcome or ended) if ended is not None else None
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"set_state: outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    old = state_of(c, job_id)
    update(c, job_id, reason=reason, updated=time.time(), **extra)
    c.execute("UPDATE jobs SET state = ?, outcome = ? WHERE id = ?", [state, outcome, job_id])
    if old == state:
        return False
    log(c, job_id, old, state, reason)
    return True


def settle_dependants(c: sqlite3.Connection, job_id: int) -> None:
    """Settle the waiting jobs that depend on `job_id` (whose state changed), and theirs in turn when they
    moved. A work list, not recursion: a chain of thousands of jobs must not exhaust the stack."""
    frontier = [job_id]
    while frontier:
        dep = frontier.pop()
        waiting = c.execute(
            "SELECT d.job_id FROM deps d JOIN jobs j ON j.id = d.job_id WHERE d.dep_id = ? AND j.state = ?"
            " ORDER BY j.seq",
            [dep, WAITING],
        ).fetchall()
        frontier.extend(r[0] for r in waiting if _settle(c, r[0]))


def describe(c: sqlite3.Connection, job_id: int) -> str:
    r = c.execute("SELECT run_key, action, state FROM jobs WHERE id = ?", [job_id]).fetchone()
    return f"{r['run_key']} {r['action']} ({r['state']})"


def settle(c: sqlite3.Connection, job_id: int) -> None:
    """waiting -> queued when all dependencies are done; -> blocked when one failed, was cancelled, is
    blocked; else its reason names the first dependency it waits for. A job that moved settles its own
    dependants."""
    if _settle(c, job_id):
        settle_dependants(c, job_id)


def _settle(c: sqlite3.Connection, job_id: int) -> bool:
    """`settle` for one job, its dependants left alone; True when its state changed."""
    me = c.execute("SELECT state, reason FROM jobs WHERE id = ?", [job_id]).fetchone()
    if me is None or me["state"] != WAITING:
        return False
    deps = c.execute(
        "SELECT j.id, j.run_key, j.action, j.state FROM deps d JOIN jobs j ON j.id = d.dep_id"
        " WHERE d.job_id = ? ORDER BY d.dep_id",
        [job_id],
    ).fetchall()
    broken = [d for d in deps if d["state"] in BROKEN_STATES]
    if broken:
        return _set_state(c, job_id, BLOCKED, f"blocked by {_described(broken[0])}", None, {})
    pending = [d for d in deps if d["state"] != DONE]
    if not pending:
        # without dependencies keep the reason it was (re)queued with ("launched", "retried (was failed)")
        return _set_state(c, job_id, QUEUED, "dependencies done" if deps else str(me["reason"]), None, {})
    reason = f"waiting for {_described(pending[0])}"
    if reason != me["reason"]:  # unchanged: no write (a waiting job is settled each time a dependency moves)
        update(c, job_id, reason=reason)
    return False


def _described(r: sqlite3.Row) -> str:
    return f"{r['run_key']} {r['action']} ({r['state']})"


def block_dependants(c: sqlite3.Connection, job_id: int) -> None:
    """Block, transitively, every queued or waiting job that depends on `job_id` (which cannot finish)."""
    frontier = [job_id]
    while frontier:
        dep = frontier.pop()
        for r in c.execute(
            "SELECT j.id FROM jobs j JOIN deps d ON d.job_id = j.id WHERE d.dep_id = ? AND j.state IN (?, ?)",
            [dep, QUEUED, WAITING],
        ).fetchall():
            set_state(c, r["id"], BLOCKED, f"blocked by {describe(c, dep)}")
            frontier.append(r["id"])


def unblock_dependants(c: sqlite3.Connection, job_id: int) -> None:
    """After `job_id` was re-queued: blocked dependants whose dependencies are all alive again wait again."""
    frontier = [job_id]
    while frontier:
        dep = frontier.pop()
        for r in c.execute(
            "SELECT j.id FROM jobs j JOIN deps d ON d.job_id = j.id WHERE d.dep_id = ? AND j.state = ?",
            [dep, BLOCKED],
        ).fetchall():
            others = [x["dep_id"] for x in c.execute("SELECT dep_id FROM deps WHERE job_id = ?", [r["id"]])]
            if all(state_of(c, d) not in BROKEN_STATES for d in others):
                set_state(c, r["id"], WAITING, f"unblocked ({describe(c, dep)})")
                settle(c, r["id"])
                frontier.append(r["id"])
