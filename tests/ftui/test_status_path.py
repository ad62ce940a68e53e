"""The status path (issue 13, fault 10): evaluation progress, the home table after the run screen, the ETA.

Events are the engine's own lines: a real `python -m engine eval` (slow test) or the exact records
engine/evaluate.py and engine/train.py write; states are made through the real Store API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ftui.app import make_app
from ftui.cli import main
from ftui.queue.store import JobSpec, Store
from ftui.registry import load_registry
from ftui.rundir import ProgressReader
from ftui.screens.home_screen import HomeScreen
from ftui.screens.run_screen import RunScreen
from ftui.widgets.run_table import RunTable
from tests.conftest import REPO_ROOT
from tests.ftui.app_fixtures import build_states, make_study, train_events, write_events

SETS = [f"{s}/{t}" for t in ("distance", "angle", "compass") for s in ("standard", "atlantis")]


def eval_events(done: int, total: int = 6, t0: float = 1_000_000_100.0) -> list[dict[str, Any]]:
    """What engine/evaluate.py writes for an evaluation `done` sets into `total`: a start, then one `eval`
    event per finished set with done = sets finished so far."""
    events: list[dict[str, Any]] = [
        {
            "t": t0,
            "event": "start",
            "action": "eval",
            "config": {"name": "base"},
            "versions": {"python": "3.11"},
            "device": "cpu",
            "checkpoint": "checkpoints/final.pt",
        }
    ]
    for i in range(1, done + 1):
        events.append(
            {
                "t": t0 + i,
                "event": "eval",
                "set": SETS[i - 1],
                "done": i,
                "total": total,
                "mean": 1.5,
                "parse_failure_rate": 0.0,
                "n": 16,
            }
        )
    return events


def evaluating(registry: Path) -> Path:
    """The mini study's `base`: training done, its evaluation job running. Returns base's run folder."""
    runs = {run.key: run for run in load_registry(registry).runs()}
    run = runs["base"]
    store = Store(registry.parent / "runs")
    for action in ("train", "eval"):
        job = store.enqueue([JobSpec("base", "base", run.rel_dir, action, ())], force=True).queued[0]
        store.claim(job.id, "cpu")
        if action == "train":
            store.finish(job.id, "done", "exit 0", exit_code=0)
    store.close()
    return registry.parent / "runs" / run.rel_dir


def list_row(registry: Path, key: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["--registry", str(registry), "list", "--json"]) == 0
    return {r["key"]: r for r in json.loads(capsys.readouterr().out)["runs"]}[key]


# ---- (a) evaluation progress ------------------------------------------------------------------------------
async def test_evaluation_progress_counts_each_finished_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = make_study(tmp_path)
    base = evaluating(registry)
    write_events(base, train_events(8, 8) + [{"t": 1_000_000_050.0, "event": "end", "reason": "finished"}])
    write_events(base, eval_events(2))
    row = list_row(registry, "base", capsys)
    assert (row["state"], row["action"], row["eval_sets_done"], row.get("eval_sets_total")) == (
        "running",
        "eval",
        2,
        6,
    )
    assert main(["--registry", str(registry), "list", "base"]) == 0
    assert "2/6 sets" in capsys.readouterr().out
    app = make_app(registry, start_worker=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunTable)
        assert str(table.get_cell("base", "steps")) == "2/6"
        assert "33%" in str(table.get_cell("base", "progress"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_evaluation_cut_midway_shows_the_sets_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = make_study(tmp_path)
    assert main(["--registry", str(registry), "prepare", "base"]) == 0
    base = tmp_path / "runs" / "base"
    env = {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    for action in ("train", "eval"):
        done = subprocess.run(
            [sys.executable, "-m", "engine", action, str(base)],
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    lines = (base / "events.jsonl").read_text().splitlines(keepends=True)
    evals = [i for i, line in enumerate(lines) if json.loads(line)["event"] == "eval"]
    assert len(evals) == 6
    # The file as it was while the third set was being evaluated: everything up to the second eval event.
    (base / "events.jsonl").write_text("".join(lines[: evals[1] + 1]))
    (base / "eval.json").unlink()
    evaluating(registry)
    capsys.readouterr()
    row = list_row(registry, "base", capsys)
    assert (row["action"], row["eval_sets_done"], row.get("eval_sets_total")) == ("eval", 2, 6)


# ---- (b) the home table after the run screen -----------------------------------------------------------
async def settle(pilot: Pilot[int]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_a_run_that_failed_while_its_screen_was_open_shows_failed_at_home(tmp_path: Path) -> None:
    registry = make_study(tmp_path)
    build_states(registry)
    app = make_app(registry, start_worker=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunTable)
        assert "running" in str(table.get_cell("single-1", "state"))
        table.move_cursor(row=table.keys.index("single-1"))
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        store = Store(tmp_path / "runs")
        job = next(j for j in store.jobs() if j.run_key == "single-1")
        await app.workers.wait_for_complete()
        store.finish(job.id, "failed", "exit code 1", exit_code=1)
        store.close()
        # What the run screen's tail worker calls once a second, called at once: the home table refreshes
        # under the run screen too (Textual keeps the screen below "current"), and the failure must be seen
        # by the run screen first, as it was in the report.
        app.data.row("single-1")
        # The header shows it at the screen's next read.
        deadline = time.monotonic() + 20
        while "failed" not in str(screen.query_one("#run-header").render()):
            assert time.monotonic() < deadline, "the run screen never showed the failure"
            await pilot.pause(0.1)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert "failed" in str(table.get_cell("single-1", "state"))


# ---- (c) a steady ETA ------------------------------------------------------------------------------------
TOTAL = 10_000
EVERY = 50  # steps between step events
RATE = 10.0  # steps per second


def step_events(
    durations: list[float], t0: float = 1_000_000_000.0, total: int = TOTAL
) -> list[dict[str, Any]]:
    """Step events EVERY steps apart, the i-th interval lasting durations[i] seconds. `eta_s` is what the
    engine reported before issue 13: the steps left at the rate of the last interval alone."""
    events: list[dict[str, Any]] = [{"t": t0, "event": "start", "action": "train", "device": "cpu"}]
    t, step = t0, 0
    for duration in durations:
        t, step = t + duration, step + EVERY
        eta = (total - step) / (EVERY / duration)
        events.append(
            {"t": t, "event": "step", "step": step, "total_steps": total, "loss": 2.0, "eta_s": round(eta, 1)}
        )
    return events


def etas(tmp_path: Path, events: list[dict[str, Any]], history: int) -> list[tuple[int, float]]:
    """(step, ETA as `ftui list` and the app show it right after that step event) for every step event."""
    reader = ProgressReader(history)
    path = tmp_path / "events.jsonl"
    path.write_text("")
    shown = []
    for event in events:
        with open(path, "a") as handle:
            handle.write(json.dumps(event) + "\n")
        progress = reader.progress(tmp_path)
        if event["event"] == "step":
            assert progress is not None
            eta = progress.eta_now(now=event["t"])
            assert eta is not None
            shown.append((event["step"], eta))
    return shown


@pytest.mark.parametrize("history", [1, 200])  # `ftui list` keeps 1 loss, the app 200
def test_one_slow_interval_does_not_swing_the_eta_a_lasting_change_does(tmp_path: Path, history: int) -> None:
    normal = EVERY / RATE
    # 20 intervals at 10 steps/s, one checkpoint saved on a busy machine (12 times as long), 5 more.
    events = step_events([normal] * 20 + [12 * normal] + [normal] * 5)
    shown = etas(tmp_path, events, history)
    for step, eta in shown[2:]:
        expected = (TOTAL - step) / RATE
        assert expected * 0.8 <= eta <= expected * 1.25, (step, eta, expected)
    # A first look at the whole file (the app opening late) shows the same.
    late = ProgressReader(history).progress(tmp_path)
    assert late is not None
    assert late.eta_now(now=events[-1]["t"]) == pytest.approx((TOTAL - events[-1]["step"]) / RATE)
    # The machine gets busy for good: half the speed. The ETA follows within a few intervals.
    t, step = events[-1]["t"], events[-1]["step"]
    busy = step_events([2 * normal] * 10, t0=t)[1:]
    for event in busy:
        event["step"] += step
    step, eta = etas(tmp_path, events + busy, history)[-1]
    assert eta == pytest.approx((TOTAL - step) / (RATE / 2))
    # Stopped, resumed an hour later at full speed: the slow past and the pause are no part of the rate.
    resumed = step_events([normal] * 2, t0=busy[-1]["t"] + 3600)
    resumed[0]["resumed_from_step"] = step
    for event in resumed[1:]:
        event["step"] += step
    step, eta = etas(tmp_path, events + busy + resumed, history)[-1]
    assert eta == pytest.approx((TOTAL - step) / RATE)
    # Between step events the ETA counts down.
    progress = ProgressReader(history).progress(tmp_path)
    assert progress is not None
    assert progress.eta_now(now=resumed[-1]["t"] + 30) == pytest.approx((TOTAL - step) / RATE - 30)


def test_the_app_opening_late_on_a_long_run_shows_the_steady_eta(tmp_path: Path) -> None:
    """A first read of an events.jsonl over 1 MB parses only its tail (no `start` event in it)."""
    normal, total = EVERY / RATE, 2_000_000
    events = step_events([normal] * 12_000 + [12 * normal], total=total)  # the last interval: slow
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert path.stat().st_size > 1 << 20
    for history in (1, 200):
        progress = ProgressReader(history).progress(tmp_path)
        assert progress is not None and progress.action is None  # the start event is not in the tail
        eta = progress.eta_now(now=events[-1]["t"])
        assert eta == pytest.approx((total - events[-1]["step"]) / RATE)


# ---- the typed outcome in ftui list --json ---------------------------------------------------------------
def test_list_json_gives_the_typed_outcome_of_each_run_and_job(
    states_study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scripts read what became of a run from `outcome`, never by parsing `reason`."""
    assert main(["--registry", str(states_study), "list", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    expected = {
        "base": "success",
        "single-1": None,  # running
        "single-2": None,  # queued
        "single-3": "failed",
        "pair-1": None,  # waiting
        "pair-2": "dependency_failed",
        "pair-3": "cancelled",
    }
    assert {key: rows[key]["outcome"] for key in expected} == expected
    assert rows["single-3"]["jobs"]["train"]["outcome"] == "failed"
    assert rows["base"]["jobs"]["eval"]["outcome"] == "success"
