"""The worker's recovery paths with real processes and real signals, but without the engine (fast).

The end-to-end reliability tests that drive the real engine are in test_runner.py.
"""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftui.queue import procs
from ftui.queue.store import BLOCKED, CANCELLED, FAILED, QUEUED, RUNNING, JobSpec, Store
from ftui.queue.worker import Tracked, Worker, ensure_worker, stop_worker, worker_pid


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process, in its own group (stands in for whatever got a reused pid)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def running_job(store: Store, pid: int, start: int | None, crash: str = "resume") -> int:
    """A job marked running by a worker that died, with the given process identity."""
    store.set_setting("runner", {"on_worker_crash": crash, "grace_s": 1.0})
    store.enqueue([JobSpec("ft", "ft", "ft", "train"), JobSpec("ft", "ft", "ft", "eval", (("ft", "train"),))])
    job = next(j for j in store.jobs() if j.action == "train")
    store.claim(job.id, "cpu")
    store.record_process(job.id, pid, start, pid)
    return job.id


@pytest.mark.parametrize("crash, expected", [("resume", QUEUED), ("fail", FAILED)])
def test_a_reused_pid_is_not_taken_for_a_live_job(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], crash: str, expected: str
) -> None:
    store = Store(tmp_path)
    real_start = procs.start_ticks(sleeper.pid)
    assert real_start is not None
    job_id = running_job(store, sleeper.pid, real_start - 1, crash)  # same pid, different start time
    worker = Worker(tmp_path, log=io.StringIO())
    assert worker.reconcile()
    job = store.job(job_id)
    assert job is not None and job.state == expected and job.id not in worker.tracked
    assert ("lost" in job.reason) if crash == "fail" else ("resuming" in job.reason)
    assert sleeper.poll() is None  # the unrelated process was left alone


def test_a_live_job_process_is_adopted_not_restarted(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    store = Store(tmp_path)
    job_id = running_job(store, sleeper.pid, procs.start_ticks(sleeper.pid))
    worker = Worker(tmp_path, log=io.StringIO())
    worker.reconcile()
    assert worker.tracked[job_id].popen is None  # watched by pid + start time, not a child
    job = store.job(job_id)
    assert job is not None and job.state == RUNNING and job.attempts == 1 and "adopted" in job.reason
    os.killpg(sleeper.pid, signal.SIGKILL)
    sleeper.wait()
    worker.reap()  # gone without final.pt: failed (its exit status is unknowable), dependants blocked
    job = store.job(job_id)
    assert job is not None and job.state == FAILED and "adopted process ended" in job.reason
    assert {j.action: j.state for j in store.jobs()}["eval"] == BLOCKED


def test_cancel_escalates_to_sigkill_for_the_whole_group_after_the_grace_period(tmp_path: Path) -> None:
    store = Store(tmp_path)
    # A process that ignores SIGTERM and has a child in its group that ignores it too.
    code = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        job_id = running_job(store, proc.pid, procs.start_ticks(proc.pid))
        worker = Worker(tmp_path, log=io.StringIO())
        worker.tracked[job_id] = Tracked(job_id, proc.pid, procs.start_ticks(proc.pid), proc.pid, "cpu", proc)
        deadline = time.monotonic() + 10
        while len(procs.group_members(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        store.cancel(["ft"], actions=("train",))  # only the training: its eval must become blocked
        while job_id in worker.tracked and time.monotonic() < deadline + 10:
            worker.step()
            time.sleep(0.05)
        job = store.job(job_id)
        assert job is not None and job.state == CANCELLED and job.signal == signal.SIGKILL
        assert worker.tracked == {} and procs.group_members(proc.pid) == []
        assert {j.action: j.state for j in store.jobs()}["eval"] == BLOCKED
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_worker_survives_a_locked_database_and_a_missing_run_folder(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.enqueue([JobSpec("gone", "gone", "gone", "train")])  # no run folder at all
    holder = sqlite3.connect(tmp_path / "ftui.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
    log = io.StringIO()
    worker = Worker(tmp_path, idle_exit_s=0.3, poll_s=0.05, log=log, busy_timeout_s=0.05, gpus=[])
    thread = threading.Thread(target=worker.run)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()
    assert store.jobs()[0].state == QUEUED  # nothing could be written yet
    holder.execute("ROLLBACK")
    thread.join(timeout=30)
    assert not thread.is_alive()
    job = store.jobs()[0]
    assert job.state == FAILED and job.reason.startswith("run directory missing:") and "gone" in job.reason
    assert "locked by another process" in log.getvalue()


def test_one_worker_per_runs_folder(tmp_path: Path) -> None:
    first = ensure_worker(tmp_path, idle_exit_s=30)
    assert first is not None
    try:
        deadline = time.monotonic() + 20
        while worker_pid(tmp_path) != first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker_pid(tmp_path) == first
        assert ensure_worker(tmp_path) is None  # already running
        log = io.StringIO()
        assert Worker(tmp_path, log=log).run() == 0  # a second worker exits quietly
        assert "another worker" in log.getvalue()
    finally:
        assert stop_worker(tmp_path) == first
    assert worker_pid(tmp_path) is None
