"""Reliability of the queue with the REAL engine: real processes, real signals, smoke-sized runs on the CPU.

The study is tests/data/mini_study.toml (pretraining `base`, fine-tunes `single-1..3`). One module fixture
launches a small sweep from a process that exits; the other tests start from a copy of its trained `base`
and use a longer training (40 steps, a checkpoint every 5) so there is time to interfere mid-run. A test
freezes the engine with SIGSTOP right after its first checkpoint, so "mid-run" holds however fast the
machine is.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ftui.queue import procs
from ftui.queue.store import Store
from ftui.queue.worker import LOG_NAME, ensure_worker, stop_worker, worker_pid
from tests.ftui.queue_helpers import events, list_json, mini_study_with, run_ftui
from tests.ftui.queue_helpers import wait_until as wait_for

pytestmark = pytest.mark.slow

LONG = {"max_steps": "40", "epochs": "50", "checkpoint_every": "5", "log_every_steps": "1"}
ENV = os.environ | {"FTUI_WORKER_IDLE_EXIT": "1.5", "FTUI_WORKER_POLL": "0.1"}


def write_study(folder: Path, **values: str) -> Path:
    return mini_study_with(folder, values)


def ftui(registry: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_ftui(registry, *args, env=ENV, timeout=300)


def rows(registry: Path) -> dict[str, dict[str, Any]]:
    return list_json(registry, env=ENV, timeout=300)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 240.0, poll: float = 0.05) -> Any:
    return wait_for(check, what, timeout=timeout, poll=poll)


def job(store: Store, key: str, action: str = "train") -> Any:
    return next((j for j in store.jobs() if j.run_key == key and j.action == action), None)


def freeze_after_first_checkpoint(store: Store, key: str) -> Any:
    """Wait for the run's first checkpoint, then SIGSTOP its engine; returns the (running) job."""
    run_dir = store.runs_dir / key
    wait_until(lambda: any(e["event"] == "checkpoint" for e in events(run_dir)), f"{key}'s first checkpoint")
    j = job(store, key)
    assert j.state == "running" and j.pid is not None
    os.kill(j.pid, signal.SIGSTOP)
    assert not any(e["event"] == "end" for e in events(run_dir)), "the run finished before it could be frozen"
    return j


def cleanup(runs_dir: Path) -> None:
    """Stop the worker and any engine a failed test left behind."""
    stop_worker(runs_dir)
    for j in Store(runs_dir).jobs(states=["running"]):
        if j.pgid and procs.is_alive(j.pid, j.pid_start):
            procs.signal_group(j.pgid, signal.SIGCONT)
            procs.signal_group(j.pgid, signal.SIGKILL)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """`ftui launch 'single-[12]'` from a process that exits: base's training, two fine-tunes, their evals."""
    folder = tmp_path_factory.mktemp("sweep")
    registry = write_study(folder)
    out = ftui(registry, "launch", "single-[12]")
    assert out.returncode == 0, out.stderr
    try:
        wait_until(
            lambda: all(
                r["state"] == "done" for k, r in rows(registry).items() if k in ("single-1", "single-2")
            ),
            "the sweep to finish",
            poll=0.5,
        )
        yield registry, out.stdout
    finally:
        cleanup(folder / "runs")


@pytest.fixture
def study(sweep: tuple[Path, str], tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    """A fresh runs folder holding a copy of the trained `base` (and the data cache); longer fine-tunes."""
    src = sweep[0].parent / "runs"
    for name in ("base", ".data"):
        shutil.copytree(src / name, tmp_path / "runs" / name)
    registry = write_study(tmp_path, **LONG)
    store = Store(tmp_path / "runs")
    try:
        yield registry, store
    finally:
        cleanup(tmp_path / "runs")


def test_a_launch_outlives_its_process_and_list_shows_it_done(sweep: tuple[Path, str]) -> None:
    registry, launch_output = sweep
    assert (
        "queued 5 job(s): base train, single-1 train, single-1 eval, single-2 train, single-2 eval"
        in launch_output
    )
    table = rows(registry)
    assert table["base"]["state"] == "trained"  # a dependency: trained, not evaluated
    for key in ("single-1", "single-2"):
        assert table[key]["state"] == "done" and table[key]["result"]
        assert table[key]["step"] == table[key]["total_steps"] > 0
        assert table[key]["jobs"]["eval"]["exit_code"] == 0 and table[key]["jobs"]["train"]["attempts"] == 1
        assert (registry.parent / "runs" / key / "eval.json").is_file()
    assert table["single-3"]["state"] == "new"
    # CPU jobs share the cores among those running: base trained alone, the two fine-tunes side by side.
    cores = os.cpu_count() or 1
    assert f"device: cpu ({cores} threads)" in (registry.parent / "runs" / "base" / "train.log").read_text()
    for key in ("single-1", "single-2"):
        log_text = (registry.parent / "runs" / key / "train.log").read_text()
        assert f"device: cpu ({max(1, cores // 2)} threads)" in log_text
    again = ftui(registry, "launch", "single-[12]")
    assert again.returncode == 0 and "already done, skipped" in again.stdout and "queued" not in again.stdout
    # A torn last line in events.jsonl (an engine killed mid-write) is ignored by readers.
    with open(registry.parent / "runs" / "single-1" / "events.jsonl", "a") as f:
        f.write('{"t": 1, "event": "st')
    assert rows(registry)["single-1"]["state"] == "done"
    log = ftui(registry, "logs", "single-1", "-n", "3")
    assert log.returncode == 0 and log.stdout.count("\n") == 3


def test_worker_sigkill_then_restart_adopts_the_running_engine(study: tuple[Path, Store]) -> None:
    registry, store = study
    assert ftui(registry, "launch", "single-1").returncode == 0
    running = freeze_after_first_checkpoint(store, "single-1")
    os.kill(wait_until(lambda: worker_pid(store.runs_dir), "the worker"), signal.SIGKILL)
    wait_until(lambda: worker_pid(store.runs_dir) is None, "the dead worker's lock to drop")
    assert procs.is_alive(running.pid, running.pid_start)  # the engine has its own session: it survived
    assert ensure_worker(store.runs_dir) is not None
    wait_until(lambda: "adopted" in job(store, "single-1").reason, "the new worker to adopt the engine")
    os.kill(running.pid, signal.SIGCONT)
    wait_until(lambda: rows(registry)["single-1"]["state"] == "done", "single-1 to finish", poll=0.3)
    train, ev = job(store, "single-1"), job(store, "single-1", "eval")
    assert (train.state, train.attempts, ev.attempts) == ("done", 1, 1)  # nothing ran twice
    assert "adopted" in train.reason
    starts = [
        e for e in events(store.runs_dir / "single-1") if e["event"] == "start" and e["action"] == "train"
    ]
    assert len(starts) == 1
    assert "adopted single-1 train" in (store.runs_dir / LOG_NAME).read_text()


def test_worker_and_engine_killed_then_the_run_resumes_from_its_checkpoint(study: tuple[Path, Store]) -> None:
    registry, store = study
    assert ftui(registry, "launch", "single-2").returncode == 0
    running = freeze_after_first_checkpoint(store, "single-2")
    os.kill(wait_until(lambda: worker_pid(store.runs_dir), "the worker"), signal.SIGKILL)
    procs.signal_group(running.pgid, signal.SIGKILL)  # the machine "crashed": the engine is gone too
    wait_until(lambda: not procs.is_alive(running.pid, running.pid_start), "the engine to die")
    wait_until(lambda: worker_pid(store.runs_dir) is None, "the dead worker's lock to drop")
    assert job(store, "single-2").state == "running"  # the database still believes it runs
    assert ensure_worker(store.runs_dir) is not None  # on_worker_crash = "resume"
    wait_until(lambda: rows(registry)["single-2"]["state"] == "done", "single-2 to finish", poll=0.3)
    train = job(store, "single-2")
    assert (train.state, train.attempts) == ("done", 2)
    assert any("resuming from its checkpoint" in h["reason"] for h in store.history(train.id))
    starts = [
        e for e in events(store.runs_dir / "single-2") if e["event"] == "start" and e["action"] == "train"
    ]
    assert [s["resumed_from_step"] > 0 for s in starts] == [False, True]


def test_killed_training_fails_with_its_signal_blocks_its_eval_and_retry_resumes(
    study: tuple[Path, Store],
) -> None:
    registry, store = study
    assert ftui(registry, "launch", "single-3").returncode == 0
    running = freeze_after_first_checkpoint(store, "single-3")
    os.kill(running.pid, signal.SIGKILL)
    wait_until(lambda: job(store, "single-3").state == "failed", "the job to fail")
    train, ev = job(store, "single-3"), job(store, "single-3", "eval")
    assert (train.signal, train.exit_code, train.reason) == (9, None, "killed by SIGKILL")
    assert ev.state == "blocked" and ev.reason == "blocked by single-3 train (failed)"
    assert rows(registry)["single-3"]["signal"] == 9
    out = ftui(registry, "retry", "single-3")
    assert out.returncode == 0 and "single-3 train" in out.stdout and "single-3 eval" in out.stdout
    wait_until(lambda: rows(registry)["single-3"]["state"] == "done", "single-3 to finish", poll=0.3)
    starts = [
        e for e in events(store.runs_dir / "single-3") if e["event"] == "start" and e["action"] == "train"
    ]
    assert [s["resumed_from_step"] > 0 for s in starts] == [False, True]
    assert job(store, "single-3").attempts == 2 and job(store, "single-3", "eval").attempts == 1


def test_cancel_stops_the_whole_process_group(study: tuple[Path, Store]) -> None:
    registry, store = study
    # A run far longer than the test, so the cancel always meets a training engine (not one already exiting).
    registry = write_study(registry.parent, **(LONG | {"max_steps": "1000000", "epochs": "100000"}))
    assert ftui(registry, "launch", "single-1").returncode == 0
    run_dir = store.runs_dir / "single-1"
    wait_until(lambda: any(e["event"] == "step" for e in events(run_dir)), "training to start")
    pgid = job(store, "single-1").pgid
    out = ftui(registry, "cancel", "single-1", "--wait")
    assert out.returncode == 0, out.stderr
    assert "stopping 1 running job(s): single-1 train" in out.stdout and "stopped" in out.stdout
    assert procs.group_members(pgid) == []
    train, ev = job(store, "single-1"), job(store, "single-1", "eval")
    assert train.state == "cancelled" and ev.state == "cancelled"
    assert train.exit_code == 143  # the engine's SIGTERM exit: it stopped within the grace period
    assert events(run_dir)[-1]["event"] == "end" and events(run_dir)[-1]["reason"] == "terminated"
    assert rows(registry)["single-1"]["state"] == "cancelled"


def test_two_simultaneous_launches_queue_every_job_once(study: tuple[Path, Store]) -> None:
    registry, store = study
    cmd = [
        sys.executable,
        "-m",
        "ftui",
        "--registry",
        str(registry),
        "launch",
        "single-*",
    ]
    launches = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=ENV, cwd=registry.parent) for _ in "ab"
    ]
    outputs = [p.communicate(timeout=120)[0] for p in launches]
    assert [p.returncode for p in launches] == [0, 0]
    counts = [int(m.group(1)) if (m := re.search(r"queued (\d+) job", o)) else 0 for o in outputs]
    assert sum(counts) == 6, outputs  # 3 trainings + 3 evals, queued by one launch or the other
    jobs = store.jobs()
    assert sorted((j.run_key, j.action) for j in jobs) == sorted(
        (f"single-{i}", a) for i in (1, 2, 3) for a in ("train", "eval")
    )
    assert all(
        len([h for h in store.history(j.id) if h["from_state"] is None]) == 1 for j in jobs
    )  # created once
    assert ftui(registry, "cancel", "single-*", "--wait").returncode == 0
    assert all(j.attempts <= 1 for j in store.jobs())
