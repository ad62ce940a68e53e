"""End to end: launch the mini study's base + single-1 from the app with the real worker and engine (smoke
profile, CPU), follow them to the end, and see the heatmap row filled with real values."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from rich.console import Console

from ftui.analysis.view import format_value
from ftui.app import make_app
from ftui.queue.store import Store
from ftui.queue.worker import stop_worker
from ftui.screens.heatmap_screen import HeatmapScreen
from ftui.screens.home_screen import HomeScreen
from ftui.widgets.heatmap_grid import HeatmapGrid
from ftui.widgets.run_table import RunTable
from tests.ftui.app_fixtures import analysis_matrix, make_study

DEADLINE_S = 240.0


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_launch_from_the_app_and_see_the_heatmap_row(tmp_path: Path) -> None:
    registry = make_study(tmp_path)
    runs_dir = tmp_path / "runs"
    app = make_app(registry)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            home = app.screen
            assert isinstance(home, HomeScreen)
            table = home.query_one(RunTable)
            table.move_cursor(row=table.keys.index("base"))
            await pilot.press("space")
            table.move_cursor(row=table.keys.index("single-1"))
            await pilot.press("space", "l")
            await app.workers.wait_for_complete()
            store = Store(runs_dir)
            assert {(j.run_key, j.action) for j in store.jobs()} == {
                ("base", "train"),
                ("base", "eval"),
                ("single-1", "train"),
                ("single-1", "eval"),
            }
            # A bounded wait on real processes: poll the queue (the app refreshes itself meanwhile).
            deadline = time.monotonic() + DEADLINE_S
            while {j.state for j in store.jobs()} != {"done"}:
                states = {(j.run_key, j.action): j.state for j in store.jobs()}
                assert not {"failed", "blocked", "cancelled"} & set(states.values()), states
                assert time.monotonic() < deadline, f"not finished after {DEADLINE_S:.0f} s: {states}"
                await pilot.pause(0.25)
            home.refresh_runs()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "done" in str(table.get_cell("single-1", "state"))
            assert str(table.get_cell("single-1", "result"))  # the result summary from eval.json
            await pilot.press("h")
            await app.workers.wait_for_complete()
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, HeatmapScreen)
            assert screen.data.registry.heatmaps[screen.choice.heatmap].family == "single"
            matrix = analysis_matrix(screen, "single")
            values = matrix.values
            assert all(math.isfinite(v) for v in values[0])  # single-1: every task evaluated
            assert all(math.isnan(v) for row in values[1:] for v in row)  # the others not launched
            assert matrix.trained[0].tolist() == [True, False, False]
            # single-1's row on the screen: its three values, "T" after the trained one (distance)
            console = Console(width=200, color_system=None, record=True)
            with console.capture() as capture:
                console.print(screen.query_one("#panel-actual", HeatmapGrid).table)
            row = next(
                line.split() for line in capture.get().splitlines() if line.split()[:1] == ["single-1"]
            )
            assert row[2:6] == [
                format_value(float(values[0][0])),
                "T",
                *map(format_value, map(float, values[0][1:])),
            ]
            store.close()
    finally:
        stop_worker(runs_dir)
