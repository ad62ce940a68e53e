"""The heatmap screen against the analysis module: same values, T markers and missing dots; export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from textual.containers import Horizontal
from textual.message import Message
from textual.pilot import Pilot

from ftui.analysis.predict import predict
from ftui.analysis.view import format_value
from ftui.app import FtuiApp, make_app
from ftui.screens.export_modal import ExportModal
from ftui.screens.heatmap_screen import HeatmapScreen, family_matrix
from ftui.widgets.heatmap_grid import HeatmapGrid
from tests.ftui.app_fixtures import settle, toasts


def grid_lines(grid: HeatmapGrid) -> list[list[str]]:
    console = Console(width=200, color_system=None, record=True)
    with console.capture() as capture:
        console.print(grid.table)
    return [line.split() for line in capture.get().splitlines() if line.strip()]


def expected_tokens(name: str, tasks: str, values: np.ndarray, trained: np.ndarray, seeds: str) -> list[str]:
    tokens = [name, tasks]
    for value, is_trained in zip(values, trained, strict=True):
        tokens.append(format_value(float(value)) if math.isfinite(value) else "·")
        if is_trained:
            tokens.append("T")
    return tokens + [seeds]


async def open_pair_heatmap(pilot: Pilot[int]) -> HeatmapScreen:
    await settle(pilot)
    await pilot.press("h")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, HeatmapScreen)
    while screen.data.registry.heatmaps[screen.choice.heatmap].name != "pair":
        await pilot.press("m")
        await settle(pilot)
    return screen


async def test_grid_matches_the_analysis_matrix(results_study: Path) -> None:
    app = make_app(results_study, start_worker=False)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_pair_heatmap(pilot)
        matrix = family_matrix(screen.data, "pair", "base", "perfect", "atlantis")
        assert matrix.missing == 3  # pair-3's row
        lines = grid_lines(screen.query_one("#panel-actual", HeatmapGrid))
        assert lines[1] == ["run", "tasks", "D", "A", "Co", "seeds"]
        trained = matrix.trained
        for r, row in enumerate(matrix.rows):
            tasks = "+".join({"distance": "D", "angle": "A", "compass": "Co"}[t] for t in row.tasks)
            seeds = f"{matrix.seeds_done[r]}/{matrix.seeds_expected[r]}"
            assert lines[2 + r] == expected_tokens(row.name, tasks, matrix.values[r], trained[r], seeds)
        assert lines[4][-1] == "0/1" and lines[4].count("·") == 3
        assert "3 cells missing" in str(screen.query_one("#heatmap-status").render())


async def test_prediction_panels_and_scores(results_study: Path) -> None:
    app = make_app(results_study, start_worker=False)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_pair_heatmap(pilot)
        await pilot.press("p")  # none -> max
        await settle(pilot)
        assert screen.choice.model == "max"
        target = family_matrix(screen.data, "pair", "base", "perfect", "atlantis")
        source = family_matrix(screen.data, "single", "base", "perfect", "atlantis")
        prediction = predict(target, source, "max")
        lines = grid_lines(screen.query_one("#panel-predicted", HeatmapGrid))
        for r in range(len(target.rows)):
            cells = [format_value(float(v)) for v in prediction.predicted[r]]
            assert [c for c in lines[2 + r] if c != "T"][2:5] == cells
        error_lines = grid_lines(screen.query_one("#panel-error", HeatmapGrid))
        for r in range(len(target.rows)):
            cells = [format_value(float(v), signed=True) for v in prediction.error[r]]
            assert [c for c in error_lines[2 + r] if c != "T"][2:5] == cells
        scores = screen.query_one("#heatmap-scores")
        assert scores.display and scores.row_count == 7  # type: ignore[attr-defined]
        # 160 columns hold the three 3-task panels side by side; at 80 columns they stack.
        panels = screen.query_one("#heatmap-panels", Horizontal)
        assert panels.styles.layout is not None and panels.styles.layout.name == "horizontal"
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert panels.styles.layout is not None and panels.styles.layout.name == "vertical"


async def test_no_color_keeps_values_and_markers(
    results_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(results_study, start_worker=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_pair_heatmap(pilot)
        grid = screen.query_one("#panel-actual", HeatmapGrid)
        assert grid.table is not None
        cells = [cell for column in grid.table.columns for cell in column._cells]
        assert cells and not any(getattr(c, "spans", None) or getattr(c, "style", None) for c in cells)
        lines = grid_lines(grid)
        assert sum(line.count("T") for line in lines) == 6  # two trained tasks in each of 3 rows


@pytest.mark.parametrize("suffix", ["csv", "png"])
async def test_export_writes_the_file_and_says_where(
    results_study: Path, tmp_path: Path, suffix: str
) -> None:
    app: FtuiApp = make_app(results_study, start_worker=False)
    target = tmp_path / "out" / f"pair.{suffix}"
    messages: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        screen = await open_pair_heatmap(pilot)
        await pilot.press("x")
        assert isinstance(app.screen, ExportModal)
        box = app.screen.query_one("#export-path")
        box.value = str(target)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen
        assert screen.exported == [target]
        assert any(str(target) in text for text in toasts(messages))
    data = target.read_bytes()
    if suffix == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert data.decode().splitlines()[0].startswith("panel")


async def test_export_rejects_an_unknown_suffix(results_study: Path, tmp_path: Path) -> None:
    app = make_app(results_study, start_worker=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_pair_heatmap(pilot)
        await pilot.press("x")
        modal = app.screen
        assert isinstance(modal, ExportModal)
        modal.query_one("#export-path").value = str(tmp_path / "pair.gif")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is modal
        assert ".png" in str(modal.query_one("#export-error").render())
        await pilot.press("escape")
        assert isinstance(app.screen, HeatmapScreen)
