"""The queue at thousands of jobs (issue 18): transitions settle what waits on them, a worker pass reads only
what it can start and writes nothing when nothing happens, and a database of schema 3 is migrated.

Timings live in bench/worker_bench.py; these tests count rows, statements and writes.
"""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftui.queue import procs
from ftui.queue.model import SCHEMA_VERSION
from ftui.queue.store import BLOCKED, DONE, FAILED, QUEUED, RUNNING, WAITING, JobSpec, Store
from ftui.queue.worker import Worker
from tests.ftui.queue_helpers import BEFORE_SCHEMA_5

STAND_IN = """
import os, sys
from pathlib import Path
(Path(sys.argv[2]) / "eval.json").write_text("{}") if sys.argv[1] == "eval" else None
os._exit(0)
"""


def states(store: Store) -> dict[str, str]:
    return {f"{j.run_key} {j.action}": j.state for j in store.jobs()}


def family(runs: Path, n: int) -> list[JobSpec]:
    """pt and n - 1 fine-tunes of it, train + eval each, with their run folders."""
    specs = []
    for i in range(n):
        key = "pt" if i == 0 else f"ft-{i}"
        (runs / key).mkdir(parents=True, exist_ok=True)
        (runs / key / "config.toml").write_text("# stand-in\n")
        needs = (("pt", "train"),) if i else ()
        specs += [JobSpec(key, key, key, "train", needs), JobSpec(key, key, key, "eval", ((key, "train"),))]
    return specs


def claim_and_finish(store: Store, key: str, state: str, action: str = "train") -> None:
    job = next(j for j in store.jobs(run_keys=[key]) if j.action == action)
    assert store.claim(job.id, "cpu") is not None
    store.finish(job.id, state, "exit 0" if state == DONE else "exit 1", exit_code=0 if state == DONE else 1)


def test_every_change_to_a_job_gives_it_a_new_rev(tmp_path: Path) -> None:
    """(id, rev) names one version of a job (ftui/queue/model.py REVISIONS): what `ftui list` compares."""

    def revs() -> dict[str, int]:
        return {f"{b.run_key} {b.action}": b.rev for b in store.job_briefs()[1]}

    store = Store(tmp_path)
    store.enqueue(family(tmp_path, 2))
    queue, _ = store.job_briefs()
    assert len(queue) == 16 and len(set(revs().values())) == 4  # a random identity; revs never shared
    jobs_before, before = {f"{j.run_key} {j.action}": j for j in store.jobs()}, revs()
    claim_and_finish(store, "pt", DONE)  # pt train ends; what waited on it moves on
    jobs_after, after = {f"{j.run_key} {j.action}": j for j in store.jobs()}, revs()
    changed = {k for k in jobs_before if jobs_after[k] != jobs_before[k]}
    assert {"pt train", "pt eval", "ft-1 train"} <= changed == {k for k in before if after[k] != before[k]}
    assert min(after[k] for k in changed) > max(before.values())
    claim_and_finish(store, "ft-1", FAILED)
    before = revs()
    store.retry(["ft-1"], actions=["train"])  # re-queued: its dependencies are written again
    assert revs()["ft-1 train"] > max(before.values())
    assert Store(tmp_path).job_briefs()[0] == queue  # the identity stays with the database


def test_a_finished_job_queues_what_waited_on_it_without_a_sweep(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.enqueue(family(tmp_path, 3))
    assert states(store)["ft-1 train"] == WAITING
    claim_and_finish(store, "pt", DONE)  # no store.schedule(): the transition itself settles
    got = states(store)
    assert got["pt eval"] == got["ft-1 train"] == got["ft-2 train"] == QUEUED
    ft1_eval = store.jobs(run_keys=["ft-1"])[1]
    assert ft1_eval.state == WAITING and ft1_eval.reason == "waiting for ft-1 train (queued)"
    claim_and_finish(store, "ft-1", FAILED)
    ft1_eval = store.jobs(run_keys=["ft-1"])[1]
    assert ft1_eval.state == BLOCKED and ft1_eval.reason == "blocked by ft-1 train (failed)"


def test_a_failure_blocks_a_chain_of_thousands_without_recursion(tmp_path: Path) -> None:
    store = Store(tmp_path)
    n = 1200  # deeper than Python's recursion limit (1,000 frames)
    needs = [((f"r{i - 1}", "train"),) if i else () for i in range(n)]
    store.enqueue([JobSpec(f"r{i}", f"r{i}", f"r{i}", "train", needs[i]) for i in range(n)])
    claim_and_finish(store, "r0", FAILED)
    got = states(store)
    assert got.pop("r0 train") == FAILED and set(got.values()) == {BLOCKED}
    assert store.jobs(run_keys=[f"r{n - 1}"])[0].reason == f"blocked by r{n - 2} train (blocked)"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process in its own group, standing in for the engine of the running job."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def busy_worker(runs: Path, jobs_count: int, sleeper: subprocess.Popen[bytes]) -> Worker:
    """A worker over `runs_count` jobs (half of them waiting for pt, half queued for the slot) whose one CPU
    slot is taken by pt's training."""
    store = Store(runs)
    store.set_setting("runner", {"gpus": [], "cpu_jobs": 1})
    store.enqueue(family(runs, jobs_count // 4))  # waiting for pt
    others = [JobSpec(f"q{i}", f"q{i}", f"q{i}", "train") for i in range(jobs_count // 2)]
    store.enqueue(others)  # queued, waiting for the slot
    pt = store.jobs(run_keys=["pt"])[0]
    assert store.claim(pt.id, "cpu") is not None
    store.record_process(pt.id, sleeper.pid, procs.start_ticks(sleeper.pid), sleeper.pid)
    store.close()
    worker = Worker(runs, gpus=[], log=io.StringIO())
    assert worker.reconcile() and len(worker.tracked) == 1  # adopted: the slot is busy
    return worker


@pytest.mark.parametrize("jobs_count", [100, 1000])
def test_a_pass_with_every_slot_busy_reads_no_queue_and_writes_nothing(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], jobs_count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = busy_worker(tmp_path, jobs_count, sleeper)
    read: list[int] = []
    jobs = Store.jobs

    def counted(self: Store, *args: Any, **kwargs: Any) -> Any:
        found = jobs(self, *args, **kwargs)
        read.append(len(found))
        return found

    monkeypatch.setattr(Store, "jobs", counted)
    conn = worker.store._db.connect(create=False)
    assert conn is not None
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    before = conn.total_changes
    for _ in range(3):
        worker.step()
    assert conn.total_changes == before  # no write: nothing happened
    assert max(read, default=0) <= 1  # the running job (cancel check); never the thousands queued
    assert len(statements) <= 3 * 8, statements  # a few per pass, however long the queue
    worker.store.close()


def test_a_job_that_cannot_start_hands_its_slot_to_the_next_in_the_same_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake" / "engine"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(STAND_IN)
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))
    runs = tmp_path / "runs"
    store = Store(runs)
    store.set_setting("runner", {"gpus": [], "cpu_jobs": 1})
    store.enqueue([JobSpec(k, k, k, "train") for k in ("gone", "also-gone", "here", "later")])
    for key in ("here", "later"):
        (runs / key).mkdir()
        (runs / key / "config.toml").write_text("# stand-in\n")
    worker = Worker(runs, gpus=[], log=io.StringIO())
    worker.reconcile()
    worker.step()
    got = states(store)
    assert got == {
        "gone train": FAILED,
        "also-gone train": FAILED,
        "here train": RUNNING,
        "later train": QUEUED,
    }
    for t in worker.tracked.values():
        assert t.popen is not None
        t.popen.wait(timeout=60)
    worker.store.close()


def test_a_schema_3_database_is_migrated_and_its_unsettled_waiting_jobs_move_on(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.enqueue(family(tmp_path, 2))
    claim_and_finish(store, "pt", DONE)
    store.close()
    # As ftui wrote it before schema 4: no new indexes, and a waiting job its worker had not swept yet.
    db = sqlite3.connect(tmp_path / "ftui.db")
    db.executescript(
        BEFORE_SCHEMA_5 + " DROP INDEX jobs_by_executor; DROP INDEX jobs_by_seq; DROP INDEX history_by_job;"
        " UPDATE jobs SET state = 'waiting', reason = 'waiting for pt train (running)'"
        " WHERE run_key = 'ft-1' AND action = 'train'; PRAGMA user_version = 3;"
    )
    db.close()
    store = Store(tmp_path)
    assert states(store)["ft-1 train"] == WAITING  # opened: migrated, nothing else changed
    db = sqlite3.connect(tmp_path / "ftui.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"jobs_by_executor", "jobs_by_seq", "history_by_job"} <= indexes
    plan = " ".join(
        str(r[-1])
        for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs"
            " WHERE state = 'queued' AND executor = 'local' ORDER BY seq"
        )
    )
    assert "jobs_by_executor" in plan, plan
    db.close()
    worker = Worker(tmp_path, gpus=[], log=io.StringIO())
    assert worker.reconcile()  # a new worker's first sweep settles what the old one left
    assert states(store)["ft-1 train"] == QUEUED
    worker.store.close()


def test_the_change_token_moves_with_every_commit_and_only_then(tmp_path: Path) -> None:
    """What the app's alerts poll before reading every job: a commit from another connection (the worker) or
    from this one changes it; reads do not."""
    app_side, worker_side = Store(tmp_path), Store(tmp_path)
    assert app_side.change_token() is None  # nobody launched here yet: no database
    worker_side.enqueue([JobSpec("a", "a", "a", "train")])
    first = app_side.change_token()
    assert first is not None
    app_side.jobs(), app_side.has_pending()
    assert app_side.change_token() == first
    worker_side.cancel(["a"])
    second = app_side.change_token()
    assert second != first
    app_side.retry(["a"])  # this connection's own commit
    assert app_side.change_token() not in (first, second)
