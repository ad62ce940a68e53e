"""The job queue's data model: states, outcomes, the SQLite schema, and the rows (`Job`) and requests
(`JobSpec`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

DB_NAME = "ftui.db"
SCHEMA_VERSION = 5

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

# What became of an ended job, beside its free-text reason (pueue's task result): scripts reading
# `ftui list --json` and the app read this instead of parsing reasons. None while a job has not ended.
SUCCESS, FAILURE, KILLED, CANCELLED_OUTCOME, DEPENDENCY_FAILED, LOST = (
    "success",
    "failed",  # the engine exited with an error (or left no result)
    "killed",  # stopped from outside: a signal, SIGTERM's exit 143, Slurm's time limit or memory limit
    "cancelled",  # by the user (ftui cancel, scancel)
    "dependency_failed",  # blocked: a job it needs failed, was cancelled or is blocked
    "lost",  # its process ended while no worker watched it, or Slurm forgot it
)
OUTCOMES = (SUCCESS, FAILURE, KILLED, CANCELLED_OUTCOME, DEPENDENCY_FAILED, LOST)


def default_outcome(state: str, signal: int | None = None) -> str | None:
    """The outcome a job in `state` has unless its ending says more (killed, lost)."""
    if state == FAILED:
        return KILLED if signal is not None else FAILURE
    return {DONE: SUCCESS, CANCELLED: CANCELLED_OUTCOME, BLOCKED: DEPENDENCY_FAILED}.get(state)


SCHEMA = f"""
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
    executor TEXT NOT NULL DEFAULT 'local',
    slurm_id TEXT,
    partition TEXT,
    node TEXT,
    requeues INTEGER NOT NULL DEFAULT 0,
    outcome TEXT CHECK (outcome IS NULL OR outcome IN ({", ".join(repr(o) for o in OUTCOMES)})),
    rev INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_key, action)
);
CREATE TABLE IF NOT EXISTS deps (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    dep_id INTEGER NOT NULL REFERENCES jobs(id),
    PRIMARY KEY (job_id, dep_id)
);
CREATE INDEX IF NOT EXISTS deps_by_dep ON deps(dep_id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_executor ON jobs(state, executor, seq);
CREATE INDEX IF NOT EXISTS jobs_by_seq ON jobs(seq);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    t REAL NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_job ON history(job_id, id);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Change tracking for `ftui list` and the app (issue 18): every change to a job's row or to its dependencies
# gives the job a new `rev`, drawn from one counter that never goes back, so (id, rev) names one version of a
# job: a listing compares its runs' (id, rev) pairs with the ones it remembered instead of reading and
# comparing every column of 10,000 jobs. Triggers, so that no writer (the worker, a launch, a test's SQL) can
# forget. `queue` is drawn at random when the counter is made: a new ftui.db (the old one deleted) starts its
# ids and revs again, and its pairs must not match an old one's. One statement each (SCHEMA is split at ";").
_BUMP = "UPDATE revisions SET value = value + 1"
_REV = "(SELECT value FROM revisions)"
REVISIONS = (
    "CREATE TABLE IF NOT EXISTS revisions (value INTEGER NOT NULL, queue TEXT NOT NULL)",
    "INSERT INTO revisions SELECT 0, lower(hex(randomblob(8))) WHERE NOT EXISTS (SELECT 1 FROM revisions)",
    "CREATE TRIGGER IF NOT EXISTS jobs_rev_insert AFTER INSERT ON jobs BEGIN"
    f" {_BUMP}; UPDATE jobs SET rev = {_REV} WHERE id = NEW.id; END",
    # (a row whose rev this very trigger set is not changed again: NEW.rev differs from OLD.rev then)
    "CREATE TRIGGER IF NOT EXISTS jobs_rev_update AFTER UPDATE ON jobs WHEN NEW.rev IS OLD.rev BEGIN"
    f" {_BUMP}; UPDATE jobs SET rev = {_REV} WHERE id = NEW.id; END",
    "CREATE TRIGGER IF NOT EXISTS deps_rev_insert AFTER INSERT ON deps BEGIN"
    f" {_BUMP}; UPDATE jobs SET rev = {_REV} WHERE id = NEW.job_id; END",
    "CREATE TRIGGER IF NOT EXISTS deps_rev_delete AFTER DELETE ON deps BEGIN"
    f" {_BUMP}; UPDATE jobs SET rev = {_REV} WHERE id = OLD.job_id; END",
)

# Schema upgrades of an existing ftui.db, by the version they lead to (each runs in the opening transaction).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (  # executors: where a job runs, and its Slurm job while it runs there
        "ALTER TABLE jobs ADD COLUMN executor TEXT NOT NULL DEFAULT 'local'",
        "ALTER TABLE jobs ADD COLUMN slurm_id TEXT",
        "ALTER TABLE jobs ADD COLUMN partition TEXT",
        "ALTER TABLE jobs ADD COLUMN node TEXT",
        "ALTER TABLE jobs ADD COLUMN requeues INTEGER NOT NULL DEFAULT 0",
    ),
    3: (  # the typed outcome; jobs that ended before it get theirs from their state, signal and reason
        "ALTER TABLE jobs ADD COLUMN outcome TEXT"
        f" CHECK (outcome IS NULL OR outcome IN ({', '.join(repr(o) for o in OUTCOMES)}))",
        "UPDATE jobs SET outcome = CASE"
        f" WHEN state = '{DONE}' THEN '{SUCCESS}'"
        f" WHEN state = '{CANCELLED}' THEN '{CANCELLED_OUTCOME}'"
        f" WHEN state = '{BLOCKED}' THEN '{DEPENDENCY_FAILED}'"
        f" WHEN state = '{FAILED}' AND reason LIKE 'lost%' THEN '{LOST}'"
        f" WHEN state = '{FAILED}' AND signal IS NOT NULL THEN '{KILLED}'"
        f" WHEN state = '{FAILED}' THEN '{FAILURE}'"
        " END",
    ),
    4: (  # thousands of jobs: the worker reads the queued jobs of one executor, a launch the last queue
        # position (MAX(seq) for each job it queues), `ftui list` a job's history
        "CREATE INDEX IF NOT EXISTS jobs_by_executor ON jobs(state, executor, seq)",
        "CREATE INDEX IF NOT EXISTS jobs_by_seq ON jobs(seq)",
        "CREATE INDEX IF NOT EXISTS history_by_job ON history(job_id, id)",
    ),
    5: ("ALTER TABLE jobs ADD COLUMN rev INTEGER NOT NULL DEFAULT 0", *REVISIONS),  # (REVISIONS above)
}
EXECUTORS = ("local", "slurm")


class StoreError(Exception):
    """A problem with the queue database, worded for the user (names the file)."""


class StoreReplaced(StoreError):
    """The database file was removed or replaced after a Store that must not follow it (a worker) opened
    it."""


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
    executor: str = "local"  # "local" | "slurm"
    slurm_id: str | None = None  # the Slurm job id of the current attempt
    partition: str | None = None
    node: str | None = None  # Slurm's node list once the job runs
    requeues: int = 0  # automatic re-queues after a Slurm TIMEOUT or PREEMPTED
    outcome: str | None = None  # one of OUTCOMES once the job ended (see there); None before
    deps: tuple[int, ...] = ()


JOB_COLUMNS = [f.name for f in fields(Job) if f.name != "deps"]


class JobBrief(NamedTuple):
    """The few columns of a job that a listing needs beside a run's remembered row (ftui/status.py
    `json_rows`): `rev` names this version of the job (REVISIONS); `action`, `state`, `started` and
    `finished` (unix s) are what the queue estimate reads (ftui/queue_eta.py)."""

    run_key: str
    id: int
    rev: int
    action: str
    state: str
    started: float | None
    finished: float | None


JOB_BRIEF_COLUMNS = JobBrief._fields


@dataclass(frozen=True)
class JobSpec:
    """A job a launch asks for. `needs` are (run_key, action) pairs that must finish first."""

    run_key: str
    experiment: str
    rel_dir: str
    action: str
    needs: tuple[tuple[str, str], ...] = ()
    force: bool = False  # redo even if done (training restarts from scratch)
    executor: str = "local"  # where a newly (re-)queued job runs; a job already queued keeps its own


@dataclass
class EnqueueResult:
    queued: list[Job]  # newly queued or re-queued
    kept: list[Job]  # already queued, waiting, running or blocked (relaunched) - not queued twice
    skipped: list[JobSpec]  # already done (final checkpoint / eval.json present)
    refused: list[tuple[JobSpec, str]]  # e.g. --force on a running job
