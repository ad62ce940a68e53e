"""Stale runs in the app (Pilot): the home table's state, its header's counts, the heatmap's mark and legend.
The run folders carry lineage as the engine writes it (tests/ftui/lineage_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

from ftui.app import make_app
from ftui.widgets.heatmap_grid import HeatmapGrid
from ftui.widgets.home_header import HomeHeader
from ftui.widgets.run_table import RunTable
from tests.ftui.app_fixtures import settle
from tests.ftui.lineage_fixtures import make_stale
from tests.ftui.test_app_heatmap import grid_lines, open_pair_heatmap


async def test_home_and_heatmap_mark_the_runs_of_a_retrained_parent(results_study: Path) -> None:
    make_stale(results_study.parent / "runs", "base", ["pair-1", "single-2"])
    app = make_app(results_study, start_worker=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunTable)
        assert str(table.get_cell("pair-1", "state")) == "↻ stale"
        assert str(table.get_cell("single-2", "state")) == "↻ stale"
        assert str(table.get_cell("pair-2", "state")) == "✔ done"
        assert str(table.get_cell("base", "state")) == "✔ done"  # retrained, not stale itself
        assert "2 stale" in app.screen.query_one(HomeHeader).counts[0]  # the header's counts

        screen = await open_pair_heatmap(pilot)
        lines = grid_lines(screen.query_one("#panel-actual", HeatmapGrid))
        rows = {line[0]: line for line in lines[2:5]}
        assert sum(token.count("*") for token in rows["pair-1"]) == 3  # one mark per cell
        assert not any("*" in token for token in rows["pair-2"] + rows["pair-3"])
        status = str(screen.query_one("#heatmap-status").render())
        assert "* = stale (pair-1)" in status
