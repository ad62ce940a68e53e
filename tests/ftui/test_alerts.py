"""Being told: the app's toast and bell when a job fails or the queue empties (Pilot), the pause keys, and
the OSC 9 / OSC 777 bytes a notification writes to a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import sys
from pathlib import Path

import pytest
from textual.pilot import Pilot

from ftui.app import FtuiApp, make_app
from ftui.queue.store import Store
from ftui.screens.home_screen import HomeScreen
from ftui.screens.keys import help_lines
from tests.ftui.app_fixtures import build_states, make_study

SIZE = (100, 30)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    registry = make_study(tmp_path)
    build_states(registry)  # single-1 running, single-2 queued, pair-1 waiting, single-3 already failed
    return registry


def notifications(app: FtuiApp) -> list[tuple[str, str, str]]:
    return [(n.title, n.message, n.severity) for n in app._notifications]


async def poll(pilot: Pilot[int], check: object, what: str, timeout: float = 10.0) -> None:
    """Let the app run until `check()` holds (its alerts look at the queue once a second)."""
    loop_time = 0.0
    while not check():  # type: ignore[operator]
        if loop_time > timeout:
            pytest.fail(f"timed out waiting for {what}")
        await pilot.pause(0.1)
        loop_time += 0.1


async def first_look(pilot: Pilot[int]) -> None:
    """The alerts' first look at the queue only remembers the states; changes after it are news."""
    app = pilot.app
    assert isinstance(app, FtuiApp)
    await poll(pilot, lambda: app.queue_alerts is not None and app.queue_alerts.looks > 0, "a first look")


def ring_counter(app: FtuiApp) -> list[int]:
    """The terminal bell is the system's edge (a byte to the terminal): count the rings instead."""
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    return rings


async def test_a_failed_job_and_an_empty_queue_toast_and_ring(study: Path) -> None:
    app = make_app(study, start_worker=False)
    rings = ring_counter(app)
    store = Store(study.parent / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await first_look(pilot)
        assert notifications(app) == [] and rings == []  # single-3's old failure is not news
        running = store.jobs(run_keys=["single-1"], states=["running"])[0]
        store.finish(running.id, "failed", "exit code 1", exit_code=1)  # as the worker records it
        await poll(pilot, lambda: rings, "the bell")
        assert ("single-1 train failed", "exit code 1", "error") in notifications(app)
        assert not any(title == "queue empty" for title, _, _ in notifications(app))  # single-2 still queued
        store.cancel(["single-2", "pair-1"])
        await poll(pilot, lambda: any(t == "queue empty" for t, _, _ in notifications(app)), "queue empty")
        assert len(rings) == 2


async def test_the_bell_is_off_with_ftui_bell_0(study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTUI_BELL", "0")
    app = make_app(study, start_worker=False)
    rings = ring_counter(app)
    store = Store(study.parent / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await first_look(pilot)
        running = store.jobs(run_keys=["single-1"], states=["running"])[0]
        store.finish(running.id, "failed", "exit code 1", exit_code=1)
        await poll(pilot, lambda: notifications(app), "the toast")
        assert rings == []


@pytest.mark.parametrize(("env", "rings_expected"), [(None, 0), ("1", 1)], ids=["registry", "env-wins"])
async def test_app_bell_false_in_the_registry_silences_the_bell_unless_ftui_bell_says_otherwise(
    study: Path, monkeypatch: pytest.MonkeyPatch, env: str | None, rings_expected: int
) -> None:
    study.write_text(study.read_text().replace("[runner]\n", "[app]\nbell = false\n\n[runner]\n", 1))
    if env is None:
        monkeypatch.delenv("FTUI_BELL", raising=False)
    else:
        monkeypatch.setenv("FTUI_BELL", env)
    app = make_app(study, start_worker=False)
    rings = ring_counter(app)
    store = Store(study.parent / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await first_look(pilot)
        running = store.jobs(run_keys=["single-1"], states=["running"])[0]
        store.finish(running.id, "failed", "exit code 1", exit_code=1)
        await poll(pilot, lambda: notifications(app), "the toast")
        await poll(pilot, lambda: len(rings) >= rings_expected, "the bell")
        assert len(rings) == rings_expected


async def test_p_pauses_and_u_resumes_the_queue(study: Path) -> None:
    app = make_app(study, start_worker=False)
    store = Store(study.parent / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("p")
        await poll(
            pilot, lambda: "queue paused" in str(app.screen.query_one("#home-worker").render()), "label"
        )
        assert store.paused()
        await pilot.press("u")
        await poll(pilot, lambda: not store.paused(), "resume")
        await poll(pilot, lambda: "paused" not in str(app.screen.query_one("#home-worker").render()), "label")
        names = [name for name, _, _ in app.screen.palette_commands()]  # type: ignore[attr-defined]
        assert "Pause the queue" in names and "Resume the queue" in names
        assert (
            "p",
            "pause the queue: no new job starts, running ones go on (ftui pause)",
        ) in help_lines(HomeScreen.KEYS)


def read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed its side
            return out
        if not chunk:
            return out
        out += chunk


def test_a_notification_writes_osc_9_and_777_to_the_controlling_terminal() -> None:
    code = "from ftui.notify import notify_terminal; notify_terminal('ftui', 'all 2 job(s) done; ok\\x1b')"
    pid, fd = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pty
        os.execv(sys.executable, [sys.executable, "-c", code])
    out = read_all(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # `;` would split OSC 777's fields and ESC would end the sequence early: both are replaced.
    assert out == b"\x1b]9;ftui: all 2 job(s) done, ok \x07\x1b]777;notify;ftui;all 2 job(s) done, ok \x07"


def test_without_a_terminal_nothing_is_written_and_no_error() -> None:
    import subprocess

    code = "from ftui.notify import notify_terminal; print(notify_terminal('ftui', 'x'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, start_new_session=True, check=True
    )
    assert out.stdout.strip() == "False"
