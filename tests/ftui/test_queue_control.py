"""Queue control with real processes: `ftui pause` / `resume`, `wait`, `rm`, `clean` on the mini study.

One module fixture pauses the queue, launches `base` from a process that exits, checks that nothing starts,
not even under a new worker, then resumes and waits. The other tests work on its trained run folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftui.queue.heartbeat import read_beat
from ftui.queue.store import JobSpec, Store
from ftui.queue.worker import stop_worker
from tests.ftui.queue_helpers import mini_study_with, run_ftui, wait_until

pytestmark = pytest.mark.slow

ENV = os.environ | {"FTUI_WORKER_IDLE_EXIT": "1.5", "FTUI_WORKER_POLL": "0.1", "FTUI_WAIT_POLL": "0.1"}


def ftui(registry: Path, *args: str) -> Any:
    return run_ftui(registry, *args, env=ENV, timeout=300)


def worker_loops_for(runs: Path, seconds: float, not_pid: int | None = None) -> int:
    """Wait until a live worker (not `not_pid`) has beaten for `seconds` more; returns its pid."""
    first = wait_until(
        lambda: (b := read_beat(runs)) is not None and b.pid != not_pid and b,
        "a worker heartbeat",
        timeout=60,
        poll=0.05,
    )
    wait_until(
        lambda: (b := read_beat(runs)) is not None and b.t >= first.t + seconds,
        "the worker to keep beating",
        timeout=60,
        poll=0.05,
    )
    return int(first.pid)


def pending_states(runs: Path) -> set[str]:
    return {j.state for j in Store(runs).jobs()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Paused, launched, checked, resumed, waited for: the registry of a study whose `base` is trained."""
    folder = tmp_path_factory.mktemp("control")
    registry = mini_study_with(folder, {})
    runs = folder / "runs"
    try:
        out = ftui(registry, "pause")
        assert out.returncode == 0 and "queue paused" in out.stdout, out.stderr
        out = ftui(registry, "launch", "base")
        assert out.returncode == 0, out.stderr
        first = worker_loops_for(runs, 1.0)
        assert pending_states(runs) <= {"queued", "waiting"}, "a job started while paused"
        assert "queue paused" in ftui(registry, "list").stdout
        assert json.loads(ftui(registry, "list", "--json").stdout)["worker"]["paused"] is True
        # The pause is in the database: a new worker honours it too.
        assert stop_worker(runs) == first
        assert ftui(registry, "launch", "base").returncode == 0  # starts a new worker (jobs kept)
        worker_loops_for(runs, 1.0, not_pid=first)
        assert pending_states(runs) <= {"queued", "waiting"}, "a new worker started a job while paused"

        out = ftui(registry, "resume")
        assert out.returncode == 0 and "queue resumed" in out.stdout, out.stderr
        out = ftui(registry, "wait", "base")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "base train: running" in out.stdout and "base eval: done  [2/2 ended]" in out.stdout
        assert out.stdout.strip().endswith("all 2 job(s) done")
        assert json.loads(ftui(registry, "list", "--json").stdout)["worker"]["paused"] is False
        yield registry
    finally:
        stop_worker(runs)


def copy_study(trained: Path, dest: Path) -> Path:
    shutil.copytree(trained.parent, dest, ignore=shutil.ignore_patterns(".worker*", "*.lock", ".heartbeat*"))
    return dest / "experiments.toml"


def test_wait_exits_1_when_a_job_fails_and_names_it(trained: Path, tmp_path: Path) -> None:
    registry = copy_study(trained, tmp_path / "study")
    runs = registry.parent / "runs"
    try:
        assert ftui(registry, "pause").returncode == 0
        assert ftui(registry, "launch", "single-1").returncode == 0
        # The engine rejects this config (exit 2): the training fails, its evaluation becomes blocked.
        config = runs / "single-1" / "config.toml"
        config.write_text(config.read_text() + "\nnot_a_key = 1\n")
        assert ftui(registry, "resume").returncode == 0
        out = ftui(registry, "wait", "single-*")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "single-1 train: failed" in out.stdout
        assert "did not finish: single-1 train failed, single-1 eval blocked" in out.stdout
        assert ftui(registry, "wait", "base").returncode == 0  # done jobs: returns at once, exit 0
        out = ftui(registry, "wait", "pair-1")
        assert out.returncode == 1 and "no job in the queue matches" in out.stderr
    finally:
        stop_worker(runs)


def test_rm_asks_refuses_running_runs_and_says_what_it_removed(trained: Path, tmp_path: Path) -> None:
    registry = copy_study(trained, tmp_path / "study")
    runs = registry.parent / "runs"
    out = ftui(registry, "rm", "base")  # stdin is not a terminal: no question can be asked
    assert out.returncode == 2 and "--yes" in out.stderr
    assert (runs / "base" / "checkpoints" / "final.pt").is_file()

    # A running job (claimed as the worker would, no worker here) is never removed.
    store = Store(runs)
    store.enqueue([JobSpec("single-2", "single-2", "single-2", "train")])
    store.schedule()
    job = store.jobs(run_keys=["single-2"])[0]
    assert store.claim(job.id, "cpu") is not None
    (runs / "single-2").mkdir()
    out = ftui(registry, "rm", "single-*", "--yes")
    assert out.returncode == 1 and "running now: single-2 train" in out.stderr
    assert (runs / "single-2").is_dir() and store.jobs(run_keys=["single-2"])

    out = ftui(registry, "rm", "base", "--yes")
    assert out.returncode == 0, out.stderr
    assert "removed base: " in out.stdout and "2 queue row(s)" in out.stdout and "freed" in out.stdout
    assert not (runs / "base").exists()
    assert Store(runs).jobs(run_keys=["base"]) == []
    assert Store(runs).jobs(run_keys=["single-2"]), "another run's rows were removed"


def test_clean_keeps_final_and_reports_the_bytes_freed(trained: Path, tmp_path: Path) -> None:
    registry = copy_study(trained, tmp_path / "study")
    runs = registry.parent / "runs"
    steps = sorted((runs / "base" / "checkpoints").glob("step-*.pt"))
    assert steps, "the smoke training writes intermediate checkpoints"
    size = sum(p.stat().st_size for p in steps)
    unfinished = runs / "single-3" / "checkpoints"  # a training interrupted mid-run: resume needs these
    unfinished.mkdir(parents=True)
    shutil.copy(steps[0], unfinished / steps[0].name)

    out = ftui(registry, "clean", "--dry-run")
    assert out.returncode == 0 and f"({size} bytes)" in out.stdout and all(p.exists() for p in steps)
    assert f"would delete {len(steps)} checkpoint(s) in 1 run(s); would free" in out.stdout
    out = ftui(registry, "clean", "--keep", "final")
    assert out.returncode == 0, out.stderr
    assert f"deleted {len(steps)} checkpoint(s) in 1 run(s); freed" in out.stdout
    assert f"({size} bytes)" in out.stdout
    assert "kept single-3: no final.pt yet" in out.stdout
    assert not any(p.exists() for p in steps)
    assert (runs / "base" / "checkpoints" / "final.pt").is_file()
    assert (unfinished / steps[0].name).is_file()


def test_launch_notify_waits_then_writes_osc_to_the_terminal(trained: Path, tmp_path: Path) -> None:
    """`ftui launch --notify` in a real pseudo-terminal: progress lines, then OSC 9 and OSC 777."""
    import pty

    from tests.ftui.test_alerts import read_all

    registry = copy_study(trained, tmp_path / "study")
    argv = [sys.executable, "-m", "ftui", "--registry", str(registry), "launch", "single-1", "--notify"]
    try:
        pid, fd = pty.fork()
        if pid == 0:  # a new session whose controlling terminal is the pty, as in an SSH session
            os.chdir(registry.parent)
            os.execve(sys.executable, argv, ENV)
        out = read_all(fd).decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, out
        assert "single-1 train: running" in out and "single-1 eval: done  [2/2 ended]" in out
        assert out.rstrip().endswith(
            "\x1b]9;ftui: all 2 job(s) done\x07\x1b]777;notify;ftui;all 2 job(s) done\x07"
        ), out[-300:]
    finally:
        stop_worker(registry.parent / "runs")


def answer_rm(registry: Path, answer: bytes) -> tuple[int, str]:
    """`ftui rm base` in a pseudo-terminal, typing `answer` at its question."""
    import pty

    from tests.ftui.test_alerts import read_all

    argv = [sys.executable, "-m", "ftui", "--registry", str(registry), "rm", "base"]
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, argv, ENV)
    seen = b""
    while b"[y/N]" not in seen:
        seen += os.read(fd, 1024)
    os.write(fd, answer)
    out = seen + read_all(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_rm_in_a_terminal_asks_and_only_yes_removes(trained: Path, tmp_path: Path) -> None:
    registry = copy_study(trained, tmp_path / "study")
    runs = registry.parent / "runs"
    code, out = answer_rm(registry, b"\n")  # the default is no
    assert code == 1 and "remove 1 run folder(s) and 2 queue row(s)" in out and "nothing removed" in out
    assert (runs / "base").is_dir() and Store(runs).jobs(run_keys=["base"])
    code, out = answer_rm(registry, b"y\n")
    assert code == 0 and "removed base: " in out, out
    assert not (runs / "base").exists() and Store(runs).jobs(run_keys=["base"]) == []
