"""Fixture runs folders for the app tests: the mini study (tests/data/mini_study.toml) with one run in every
queue state, progress in events.jsonl, a log, checkpoints and eval.json results.

States are made through the real Store API (the same transitions the worker makes), so the app reads exactly
what it would read in use.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.worker import WorkerCancelled

from ftui.analysis.matrix import FamilyMatrix
from ftui.analysis.study import build_view
from ftui.queue.store import JobSpec, Store
from ftui.registry import load_registry
from ftui.screens.heatmap_screen import HeatmapScreen
from ftui.screens.run_screen import RunScreen
from ftui.widgets.run_table import RunTable
from tests.data.make_eval_fixtures import write_eval_json

REPO = Path(__file__).resolve().parents[2]
MINI_STUDY = REPO / "tests" / "data" / "mini_study.toml"

# The run of the mini study put in each state by `build_states`.
STATE_OF_RUN = {
    "base": "done",
    "single-1": "running",
    "single-2": "queued",
    "single-3": "failed",
    "pair-1": "waiting",
    "pair-2": "blocked",
    "pair-3": "cancelled",
}

# Known raw metrics for eval.json fixtures: task -> (metric, mean on atlantis, mean on standard).
BASE_METRICS = {
    "distance": ("abs_error", 400.0, 100.0),
    "angle": ("abs_error", 60.0, 20.0),
    "compass": ("accuracy", 0.30, 0.80),
}


async def settle(pilot: Pilot[Any]) -> None:
    """Let the workers finish and the messages they posted be handled (never sleep)."""
    for _ in range(2):
        await _workers_done(pilot)
        await pilot.pause()


async def _workers_done(pilot: Pilot[Any], tries: int = 20) -> None:
    """Wait for the app's workers. On a busy machine a periodic recompute (the heatmap screen's, every 2 s)
    can start before the previous one ends and cancel it (exclusive workers); waiting then raises
    WorkerCancelled for the superseded worker, so wait again for the one that replaced it."""
    for attempt in range(tries):
        try:
            await pilot.app.workers.wait_for_complete()
            return
        except WorkerCancelled:
            if attempt == tries - 1:
                raise


async def open_run(pilot: Pilot[Any], key: str) -> RunScreen:
    """Move the home table's cursor to run `key` and open its run screen."""
    await settle(pilot)
    table = pilot.app.screen.query_one(RunTable)
    table.move_cursor(row=table.keys.index(key))
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, RunScreen)
    return screen


def toasts(messages: list[Message]) -> list[str]:
    """The texts of the toasts the app showed, from the messages `run_test(message_hook=...)` recorded."""
    return [m.notification.message for m in messages if isinstance(m, Notify)]


def analysis_matrix(screen: HeatmapScreen, family: str) -> FamilyMatrix:
    """A family's matrix as `ftui heatmap` builds it (the registry's normalisation, atlantis sets), from the
    runs the screen shows: the expected values of the screen tests, computed without the screen."""
    return build_view(screen.data.registry, screen.data.runs_dir, family).matrix


def make_study(folder: Path) -> Path:
    """Copy the mini study into `folder`; its runs folder is then `folder/runs`."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "experiments.toml"
    shutil.copy(MINI_STUDY, target)
    return target


def write_events(run_dir: Path, events: Iterable[dict[str, object]]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "events.jsonl", "a") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")


def train_events(steps: int, total: int, *, t0: float = 1_000_000_000.0) -> list[dict[str, object]]:
    events: list[dict[str, object]] = [{"t": t0, "event": "start", "action": "train", "device": "cpu"}]
    for step in range(1, steps + 1):
        events.append(
            {
                "t": t0 + step,
                "event": "step",
                "step": step,
                "total_steps": total,
                "epoch": 0,
                "loss": round(4.0 - 0.3 * step, 4),
                "lr": 1e-3,
                "tokens_per_s": 1000.0,
                "eta_s": float(total - step),
            }
        )
    return events


def write_eval(
    run_dir: Path, means: dict[str, tuple[str, float, float]], *, name: str = "", seed: int = 7
) -> None:
    """An eval.json (run-directory.md format) with (metric, atlantis mean, standard mean) per task."""
    sets = {
        f"{set_name}/{task}": (task, metric, mean)
        for task, (metric, atlantis, standard) in means.items()
        for set_name, mean in (("atlantis", atlantis), ("standard", standard))
    }
    write_eval_json(run_dir, name, seed, sets)


def write_final(run_dir: Path) -> None:
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints" / "step-00000004.pt").write_bytes(b"x" * 1000)
    (run_dir / "checkpoints" / "final.pt").write_bytes(b"x" * 2000)


def build_states(registry_path: Path) -> dict[str, str]:
    """Put each run of the mini study in the state of STATE_OF_RUN; returns that mapping."""
    registry = load_registry(registry_path)
    runs_dir = registry.runs_dir(None)
    runs = {run.key: run for run in registry.runs()}
    store = Store(runs_dir)

    def spec(key: str, action: str = "train", needs: tuple[tuple[str, str], ...] = ()) -> JobSpec:
        return JobSpec(key, runs[key].experiment.name, runs[key].rel_dir, action, needs)

    # base: trained and evaluated (done on disk and in the queue).
    base = runs_dir / "base"
    write_events(base, train_events(8, 8))
    write_final(base)
    (base / "train.log").write_text("".join(f"base line {i}\n" for i in range(50)))
    for action in ("train", "eval"):
        job = store.enqueue([spec("base", action)], force=True).queued[0]
        store.claim(job.id, "cpu")
        store.finish(job.id, "done", "exit 0", exit_code=0)
    write_eval(base, BASE_METRICS, name="base")
    # single-1 running with progress, single-2 queued, single-3 failed.
    running = store.enqueue([spec("single-1")]).queued[0]
    store.claim(running.id, "cpu")
    write_events(runs_dir / "single-1", train_events(4, 8))
    (runs_dir / "single-1" / "train.log").write_text("".join(f"single-1 line {i}\n" for i in range(10)))
    queued = store.enqueue([spec("single-2")]).queued[0]
    failed = store.enqueue([spec("single-3")]).queued[0]
    store.claim(failed.id, "cpu")
    store.finish(failed.id, "failed", "exit code 1", exit_code=1)
    # pair-1 waits on single-2's training; pair-2 waits on pair-3, which is then cancelled: pair-2 blocked.
    store.enqueue([spec("pair-1", needs=(("single-2", "train"),))])
    store.enqueue([spec("pair-3", needs=(("single-2", "train"),))])
    store.enqueue([spec("pair-2", needs=(("pair-3", "train"),))])
    store.cancel(["pair-3"])
    assert queued.state in ("queued", "waiting")
    states = {job.run_key: job.state for job in store.jobs() if job.action == "train"}
    store.close()
    expected = {k: v for k, v in STATE_OF_RUN.items() if k != "base"}
    assert {k: states[k] for k in expected} == expected, states
    return dict(STATE_OF_RUN)


def age_files(runs: Path, seconds: float = 60.0) -> None:
    """Set the mtime of every file under `runs` `seconds` into the past."""
    past = time.time_ns() - int(seconds * 1e9)
    for path in runs.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(past, past))
