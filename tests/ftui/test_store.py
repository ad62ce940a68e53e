"""The job queue (queue.store), the run-folder readers (ftui.rundir) and the small helpers (procs, gpus).

Fast tests: no engine. The worker and the real engine are exercised in test_runner*.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ftui.queue import procs
from ftui.queue.gpus import Slot, build_slots, job_env
from ftui.queue.store import (
    BLOCKED,
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    WAITING,
    JobSpec,
    Store,
    StoreError,
)
from ftui.rundir import EvalResults, ProgressReader, ResultsReader, summarize_results


def chain(run: str = "ft", parent: str | None = "pt") -> list[JobSpec]:
    """pt train -> ft train -> ft eval (and pt's eval)."""
    specs = []
    if parent:
        specs += [
            JobSpec(parent, parent, parent, "train"),
            JobSpec(parent, parent, parent, "eval", ((parent, "train"),)),
        ]
    needs = ((parent, "train"),) if parent else ()
    specs += [JobSpec(run, run, run, "train", needs), JobSpec(run, run, run, "eval", ((run, "train"),))]
    return specs


def states(store: Store) -> dict[str, str]:
    return {f"{j.run_key} {j.action}": j.state for j in store.jobs()}


def start(store: Store, key: str, action: str = "train") -> int:
    job = next(j for j in store.jobs() if j.run_key == key and j.action == action)
    assert store.claim(job.id, "cpu") is not None
    store.record_process(job.id, 4242, 1, 4242)
    return job.id


def test_reading_a_missing_queue_creates_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "runs")
    assert store.jobs() == []
    assert not store.has_pending()
    assert not (tmp_path / "runs").exists()


def test_enqueue_orders_dependencies_and_is_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = store.enqueue(chain())
    assert [f"{j.run_key} {j.action}" for j in first.queued] == ["pt train", "pt eval", "ft train", "ft eval"]
    assert states(store) == {"pt train": QUEUED, "pt eval": WAITING, "ft train": WAITING, "ft eval": WAITING}
    again = store.enqueue(chain())
    assert again.queued == [] and len(again.kept) == 4
    db = sqlite3.connect(tmp_path / "ftui.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 4
    assert db.execute("SELECT COUNT(*) FROM history WHERE from_state IS NULL").fetchone()[0] == 4


def test_concurrent_enqueue_from_many_threads_queues_each_job_once(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def launch() -> None:
        try:
            barrier.wait()
            Store(tmp_path).enqueue(chain())  # each thread its own connection, like separate processes
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=launch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    jobs = Store(tmp_path).jobs()
    assert len(jobs) == 4
    assert sorted(j.seq for j in jobs) == [1, 2, 3, 4]


def test_skips_what_is_done_on_disk_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "pt" / "checkpoints").mkdir(parents=True)
    (tmp_path / "pt" / "checkpoints" / "final.pt").write_bytes(b"x")
    store = Store(tmp_path)
    result = store.enqueue(chain())
    assert [s.action for s in result.skipped] == ["train"]  # pt trained by hand: not a dependency any more
    assert states(store) == {"pt eval": QUEUED, "ft train": QUEUED, "ft eval": WAITING}
    forced = store.enqueue([JobSpec("pt", "pt", "pt", "train", force=True)])
    assert forced.queued[0].restart == 1
    queued_ft = store.enqueue([JobSpec("ft", "ft", "ft", "train", (("pt", "train"),), force=True)])
    assert queued_ft.queued[0].restart == 1  # forced before it ran: it will train from scratch
    # ft was queued while pt counted as trained; pt's forced retraining is now queued: ft waits for it
    assert queued_ft.queued[0].state == WAITING and queued_ft.queued[0].deps == (forced.queued[0].id,)


def test_dependency_flow_failure_blocks_and_retry_unblocks(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.enqueue(chain())
    pt = start(store, "pt")
    store.finish(pt, FAILED, "killed by SIGKILL", signal=9)
    assert states(store) == {"pt train": FAILED, "pt eval": BLOCKED, "ft train": BLOCKED, "ft eval": BLOCKED}
    ft_eval = next(j for j in store.jobs() if j.run_key == "ft" and j.action == "eval")
    assert ft_eval.reason == "blocked by ft train (blocked)"
    # retrying the blocked fine-tune re-queues its failed root cause and unblocks the chain
    moved = store.retry(["ft"])
    assert {f"{j.run_key} {j.action}" for j in moved} == {"pt train", "pt eval", "ft train", "ft eval"}
    assert states(store) == {"pt train": QUEUED, "pt eval": WAITING, "ft train": WAITING, "ft eval": WAITING}
    pt_job = store.job(pt)
    assert pt_job is not None and pt_job.signal is None and pt_job.pid is None and pt_job.attempts == 1
    store.claim(pt, "cpu")
    store.finish(pt, DONE, "exit 0", exit_code=0)
    store.schedule()
    assert states(store)["ft train"] == QUEUED and states(store)["pt eval"] == QUEUED
    assert [h["to_state"] for h in store.history(pt)] == [
        WAITING,
        QUEUED,
        RUNNING,
        FAILED,
        WAITING,
        QUEUED,
        RUNNING,
        DONE,
    ]


def test_cancel_pending_is_immediate_running_is_requested(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.enqueue(chain())
    start(store, "pt")
    changed = store.cancel(["pt"])
    assert {(j.action, j.state) for j in changed} == {("train", RUNNING), ("eval", CANCELLED)}
    train = next(j for j in store.jobs() if j.action == "train" and j.run_key == "pt")
    assert train.cancel_requested == 1 and train.reason == "cancel requested"
    assert states(store)["ft train"] == WAITING  # blocked only once the running job has actually stopped
    store.finish(train.id, CANCELLED, "cancelled by the user", exit_code=143)
    assert states(store)["ft train"] == BLOCKED and states(store)["ft eval"] == BLOCKED
    assert store.cancel(["pt"]) == []  # nothing open any more


def test_relaunch_requeues_failed_and_blocked_but_refuses_forcing_a_running_job(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.enqueue(chain())
    pt = start(store, "pt")
    refused = store.enqueue([JobSpec("pt", "pt", "pt", "train", force=True)])
    assert refused.refused and "running" in refused.refused[0][1]
    store.finish(pt, FAILED, "exit 1", exit_code=1)
    result = store.enqueue(chain())
    assert {f"{j.run_key} {j.action}" for j in result.queued} == {
        "pt train",
        "pt eval",
        "ft train",
        "ft eval",
    }
    assert states(store)["pt train"] == QUEUED


def test_locked_database_gives_a_clear_error(tmp_path: Path) -> None:
    Store(tmp_path).enqueue(chain())
    holder = sqlite3.connect(tmp_path / "ftui.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match=r"ftui\.db: the database is locked by another process"):
            Store(tmp_path, busy_timeout_s=0.2).cancel(["pt"])
        assert len(Store(tmp_path, busy_timeout_s=0.2).jobs()) == 4  # WAL: readers are never blocked
    finally:
        holder.execute("ROLLBACK")
    assert Store(tmp_path, busy_timeout_s=0.2).cancel(["pt"])


def test_progress_reader_is_incremental_and_ignores_torn_and_corrupt_lines(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    reader = ProgressReader()
    assert reader.progress(tmp_path) is None
    lines = [
        {"t": 1.0, "event": "start", "action": "train", "device": "cpu", "resumed_from_step": 0},
        {
            "t": 2.0,
            "event": "step",
            "step": 10,
            "total_steps": 100,
            "loss": 3.5,
            "eta_s": 90.0,
            "tokens_per_s": 5e3,
        },
    ]
    events.write_text(
        "".join(json.dumps(x) + "\n" for x in lines) + '{"t": 3.0, "event": "st'
    )  # torn last line
    p = reader.progress(tmp_path)
    assert p is not None and (p.step, p.total_steps, p.loss, p.action) == (10, 100, 3.5, "train")
    assert p.eta_now(now=12.0) == 80.0
    assert reader.progress(tmp_path) is p  # unchanged file: the cached object, after one stat
    with open(events, "a") as f:
        f.write('ep", "step": 20, "total_steps": 100, "loss": 3.0}\nnot json at all\n')
    p = reader.progress(tmp_path)
    assert (
        p is not None and p.step == 20 and p.loss == 3.0 and p.corrupt_lines == 1 and p.losses == (3.5, 3.0)
    )
    with open(events, "a") as f:
        f.write(
            json.dumps({"t": 9.0, "event": "end", "action": "train", "reason": "finished", "step": 100})
            + "\n"
        )
    p = reader.progress(tmp_path)
    assert p is not None and p.end_reason == "finished" and p.step == 100 and p.eta_now() is None
    events.write_text(json.dumps({"t": 10.0, "event": "start", "action": "eval"}) + "\n")  # replaced: reread
    p = reader.progress(tmp_path)
    assert p is not None and p.action == "eval" and p.end_reason is None


def test_results_reader_and_summary(tmp_path: Path) -> None:
    reader = ResultsReader()
    assert reader.results(tmp_path) is None
    (tmp_path / "eval.json").write_text("{broken")
    assert reader.results(tmp_path) is None
    data = {
        "sets": {
            "atlantis/distance": {"task": "distance", "metric": "abs_error", "mean": 412.3},
            "atlantis/compass": {"task": "compass", "metric": "accuracy", "mean": 0.25},
            "standard/distance": {"task": "distance", "metric": "abs_error", "mean": 12.0},
        }
    }
    (tmp_path / "eval.json").write_text(json.dumps(data))
    assert reader.results(tmp_path) == EvalResults.from_json(data)
    assert reader.results(tmp_path) is reader.results(tmp_path)  # unchanged file: the cached object
    results = EvalResults.from_json(data)
    assert (
        summarize_results(results, ("distance", "compass"), {"distance": "D", "compass": "Co"})
        == "D 412 Co 25%"
    )


def test_process_identity_rejects_a_reused_pid() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = procs.start_ticks(proc.pid)
        assert start is not None
        assert procs.is_alive(proc.pid, start)
        assert not procs.is_alive(proc.pid, start + 1)  # same pid, another process
        assert procs.ticks_to_unix(start) == pytest.approx(time.time(), abs=60)
    finally:
        proc.kill()
        proc.wait()
    assert not procs.is_alive(proc.pid, start)


def test_zombie_counts_as_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = procs.start_ticks(proc.pid)
    deadline = time.monotonic() + 10
    while procs.is_alive(proc.pid, start) and time.monotonic() < deadline:
        time.sleep(0.02)  # exited but not reaped yet: a zombie
    assert not procs.is_alive(proc.pid, start)
    proc.wait()


def test_signal_group_reaches_every_member() -> None:
    code = (
        "import subprocess, sys, time;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(procs.group_members(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(procs.group_members(proc.pid)) == 2
        assert procs.signal_group(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        assert procs.wait_gone(proc.pid, 10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert procs.group_members(proc.pid) == []  # (an orphaned zombie may linger: it counts as gone)


def test_gpu_slots_and_environment() -> None:
    assert build_slots("auto", 2, 1, detected=[0, 1]) == [Slot(0, 0), Slot(1, 0), Slot(2, 1), Slot(3, 1)]
    share = max(1, (os.cpu_count() or 1) // 3)
    assert build_slots("auto", 1, 3, detected=[]) == [Slot(i, None, share) for i in range(3)]
    assert build_slots((3,), 1, 1) == [Slot(0, 3)]
    env = job_env({"PATH": "/bin"}, Slot(0, 1))
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert job_env({"PATH": "/bin"}, Slot(0, None)) == {"PATH": "/bin"}  # CPU: no CUDA variables
    # CPU jobs share the cores; a user's own OMP_NUM_THREADS wins.
    assert job_env({"PATH": "/bin"}, Slot(0, None, 2)) == {"PATH": "/bin", "OMP_NUM_THREADS": "2"}
    assert job_env({"OMP_NUM_THREADS": "5"}, Slot(0, None, 2)) == {"OMP_NUM_THREADS": "5"}
    with pytest.raises(ValueError, match="runner.gpus"):
        build_slots("all", 1, 1)


def outcomes(store: Store) -> dict[str, str | None]:
    return {f"{j.run_key} {j.action}": j.outcome for j in store.jobs()}


def test_every_ended_job_has_a_typed_outcome_and_a_requeue_clears_it(tmp_path: Path) -> None:
    """The outcome beside the free-text reason (pueue's task result): scripts and the app read it, not the
    reason's words."""
    store = Store(tmp_path)
    store.enqueue(chain() + chain("gt"))
    assert set(outcomes(store).values()) == {None}  # nothing ended yet
    store.finish(start(store, "pt"), DONE, "exit 0", exit_code=0)
    store.schedule()
    store.finish(start(store, "pt", "eval"), FAILED, "exit 1: Traceback ...", exit_code=1)
    store.finish(start(store, "ft"), FAILED, "killed by SIGKILL", signal=9)
    store.cancel(["gt"])
    assert outcomes(store) == {
        "pt train": "success",
        "pt eval": "failed",
        "ft train": "killed",
        "ft eval": "dependency_failed",
        "gt train": "cancelled",
        "gt eval": "cancelled",
    }
    store.retry(["ft"])
    assert outcomes(store)["ft train"] is None and outcomes(store)["ft eval"] is None


def test_a_job_lost_while_no_worker_watched_it_says_lost(tmp_path: Path) -> None:
    from ftui.queue.worker import Worker

    store = Store(tmp_path)
    store.set_setting("runner", {"on_worker_crash": "fail", "grace_s": 1.0})
    store.enqueue(chain(parent=None))
    job_id = start(store, "ft")  # pid 4242 with a start time no live process has
    assert Worker(tmp_path, log=io.StringIO()).reconcile()
    job = store.job(job_id)
    assert job is not None and job.state == FAILED and job.outcome == "lost"
