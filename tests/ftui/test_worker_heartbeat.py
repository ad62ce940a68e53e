"""Issue 13, fault 2: the worker's heartbeat, seen by `ftui list` and the app; a stuck worker is replaced.

Real workers and real signals: a worker frozen by SIGSTOP holds the lock but stops beating; `ftui launch`
kills it and starts a new worker, which adopts the running job's process. The "engine" is a sleeping process
recorded as the job's process (as a dead worker leaves it), so these tests need no training.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftui.app import make_app
from ftui.queue import procs
from ftui.queue.launching import launch
from ftui.queue.store import RUNNING, Store
from ftui.queue.worker import LOCK_NAME, LOG_NAME, start_worker, stop_worker, worker_pid
from ftui.registry import load_registry
from tests.ftui.queue_helpers import mini_study_with, run_ftui
from tests.ftui.queue_helpers import wait_until as wait_for

STUCK_S = 1.0
ENV = os.environ | {"FTUI_WORKER_STUCK_S": str(STUCK_S), "FTUI_WORKER_POLL": "0.05"}


def wait_until(check: Any, what: str, timeout: float = 30.0, poll: float = 0.05) -> Any:
    return wait_for(check, what, timeout=timeout, poll=poll)


def ftui(registry: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_ftui(registry, *args, env=ENV, timeout=60)


def listing(registry: Path) -> dict[str, Any]:
    out = ftui(registry, "list", "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


@pytest.fixture
def study(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    """The mini study with `single-1` queued (base train, single-1 train and eval) and no worker."""
    registry = mini_study_with(tmp_path, {})
    runs = tmp_path / "runs"
    reg = load_registry(registry)
    launch(reg, reg.runs(["single-1"]), runs, start_worker=False)
    store = Store(runs)
    try:
        yield registry, store
    finally:
        stop_worker(runs)
        store.close()


@pytest.fixture
def engine() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for a running engine (own session, like the real ones)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_list_says_no_worker_and_how_many_jobs_wait(study: tuple[Path, Store]) -> None:
    registry, _ = study
    worker = listing(registry)["worker"]
    assert (worker["pid"], worker["state"], worker["queued"], worker["running"]) == (None, "none", 3, 0)
    assert worker["line"] == "no worker, 3 jobs queued"
    text = ftui(registry, "list")
    assert text.returncode == 0 and "no worker, 3 jobs queued (`ftui launch PATTERN` again" in text.stdout


def test_a_worker_frozen_by_sigstop_is_reported_then_replaced_and_its_engine_adopted(
    study: tuple[Path, Store], engine: subprocess.Popen[bytes]
) -> None:
    registry, store = study
    runs = store.runs_dir
    base = next(j for j in store.jobs() if j.run_key == "base")
    store.claim(base.id, "cpu")  # base's training runs: its engine is `engine`
    store.record_process(base.id, engine.pid, procs.start_ticks(engine.pid), engine.pid)
    first = start_worker(runs, idle_exit_s=120, poll_s=0.05).pid
    assert first is not None
    try:
        wait_until(lambda: worker_pid(runs) == first, "the worker to take the lock", timeout=30, poll=0.05)
        alive = wait_until(
            lambda: (w := listing(registry)["worker"])["pid"] == first and w["beat_age_s"] is not None and w,
            "the first heartbeat",
            timeout=30,
            poll=0.1,
        )
        assert alive["state"] == "running" and alive["beat_age_s"] < STUCK_S
        assert f"worker {first}, beat " in alive["line"]
        assert start_worker(runs, stuck_after_s=STUCK_S).pid is None  # a beating worker is left alone
        wait_until(lambda: "adopted base train" in (runs / LOG_NAME).read_text(), "the worker to adopt")

        os.kill(first, signal.SIGSTOP)  # stuck: it keeps the lock, it stops beating
        silent = wait_until(
            lambda: (w := listing(registry)["worker"])["stuck"] and w, "the silence", timeout=30, poll=0.2
        )
        assert silent["pid"] == first and silent["state"] == "not responding"
        assert silent["line"].startswith(f"worker {first} not responding for ")
        assert worker_pid(runs) == first  # still holding the lock: on the old code nothing else could start

        out = ftui(registry, "launch", "single-1")
        assert out.returncode == 0, out.stderr
        assert f"worker {first} was not responding for" in out.stdout, out.stdout
        second = int(out.stdout.rsplit("worker started (pid ", 1)[1].split(")")[0])
        assert not procs.is_alive(first, None)  # killed (SIGKILL works on a stopped process)
        wait_until(lambda: worker_pid(runs) == second, "the new worker to take the lock", timeout=30)
        log = wait_until(
            lambda: (text := (runs / LOG_NAME).read_text()).count("adopted base train") == 2 and text,
            "the new worker to adopt the engine",
            timeout=30,
        )
        assert f"replaced stuck worker {first}" in log
        job = store.job(base.id)
        assert job is not None and job.state == RUNNING and job.pid == engine.pid and job.attempts == 1
        assert engine.poll() is None  # the engine never noticed
        fresh = wait_until(
            lambda: (w := listing(registry)["worker"])["pid"] == second and w["beat_age_s"] is not None and w,
            "the new worker's heartbeat",
            timeout=30,
            poll=0.1,
        )
        assert fresh["state"] == "running" and not fresh["stuck"]
    finally:
        if procs.is_alive(first, None):
            os.kill(first, signal.SIGCONT)
            os.kill(first, signal.SIGKILL)


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A real worker on an empty queue (no engine is ever started), beating, then frozen by SIGSTOP."""
    registry = mini_study_with(tmp_path, {})
    pid = start_worker(tmp_path / "runs", idle_exit_s=120, poll_s=0.05).pid
    assert pid is not None
    try:
        wait_until(lambda: listing(registry)["worker"]["pid"] == pid, "the worker to beat", poll=0.1)
        os.kill(pid, signal.SIGSTOP)
        yield registry, pid
    finally:
        if procs.is_alive(pid, None):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)


def test_stopping_a_stuck_worker_escalates_to_sigkill(frozen: tuple[Path, int]) -> None:
    registry, pid = frozen
    runs = registry.parent / "runs"
    assert stop_worker(runs, timeout_s=0.5) == pid  # its SIGTERM waits in the queue of a stopped process
    assert worker_pid(runs) is None and not procs.is_alive(pid, None)


def test_ftui_worker_in_the_foreground_takes_over_from_a_stuck_worker(frozen: tuple[Path, int]) -> None:
    registry, pid = frozen
    runs = registry.parent / "runs"
    wait_until(lambda: listing(registry)["worker"]["stuck"], "the silence", poll=0.2)
    log = registry.parent / "foreground.log"
    with open(log, "wb") as err:  # a foreground worker logs to stderr
        fg = subprocess.Popen(
            [sys.executable, "-m", "ftui", "--registry", str(registry), "worker"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=ENV,
        )
    try:
        assert fg.stdout is not None
        assert fg.stdout.readline().startswith(f"worker {pid} was not responding for ")
        assert not procs.is_alive(pid, None)
        wait_until(lambda: worker_pid(runs) == fg.pid, "the foreground worker to take the lock")
        wait_until(lambda: f"replaced stuck worker {pid}" in log.read_text(), "the log to say so")
    finally:
        fg.terminate()
        assert fg.wait(timeout=30) == 0


def test_a_silent_lock_holder_that_is_not_our_worker_is_never_killed(
    tmp_path: Path, engine: subprocess.Popen[bytes]
) -> None:
    """The lock file names a live process, but with another start time (its pid was reused): never hit it."""
    runs = tmp_path / "runs"
    runs.mkdir()
    start = procs.start_ticks(engine.pid)
    assert start is not None
    (runs / LOCK_NAME).write_text(f"{engine.pid} {start - 1}\n")
    holder = subprocess.Popen(  # some other process holds the lock (e.g. an inherited descriptor)
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR);"
            " fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)",
            str(runs / LOCK_NAME),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        started = start_worker(runs, stuck_after_s=0.0)
        assert started.pid is None and started.note == ""
        assert engine.poll() is None and holder.poll() is None
    finally:
        holder.kill()
        holder.wait()


async def test_the_home_screen_shows_the_worker_heartbeat(tmp_path: Path) -> None:
    registry = mini_study_with(tmp_path, {})
    runs = tmp_path / "runs"
    pid = start_worker(runs, idle_exit_s=120, poll_s=0.05).pid
    assert pid is not None
    try:
        wait_until(lambda: worker_pid(runs) == pid, "the worker to take the lock", timeout=30, poll=0.05)
        app = make_app(registry, start_worker=False)
        async with app.run_test(size=(160, 40)) as pilot:
            label = app.screen.query_one("#home-worker")

            async def shown() -> str:
                await app.workers.wait_for_complete()
                await pilot.pause()
                return str(label.render())

            deadline = 100
            while f"worker {pid}, beat " not in await shown() and deadline:  # the first beat may lag the lock
                app.screen.refresh_runs()  # type: ignore[attr-defined]
                deadline -= 1
            assert f"worker {pid}, beat " in await shown()
            assert not label.has_class("-attention")
            stop_worker(runs)
            app.screen.refresh_runs()  # type: ignore[attr-defined]
            assert await shown() == "no worker"
    finally:
        stop_worker(runs)


def test_the_beat_names_the_host_as_socket_does() -> None:
    import socket

    from ftui.queue.heartbeat import _hostname

    assert _hostname() == socket.gethostname()
