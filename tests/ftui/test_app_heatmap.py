"""The heatmap screen against the analysis module: same values, T markers and missing dots; export."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from rich.console import Console
from textual.containers import Horizontal
from textual.message import Message
from textual.pilot import Pilot

from ftui.analysis.predict import predict
from ftui.analysis.view import format_value
from ftui.app import FtuiApp, make_app
from ftui.cli import main
from ftui.screens.export_modal import ExportModal
from ftui.screens.heatmap_screen import PANEL_NAMES, HeatmapScreen
from ftui.widgets.heatmap_grid import HeatmapGrid
from tests.ftui.app_fixtures import analysis_matrix, settle, toasts


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
        matrix = analysis_matrix(screen, "pair")
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
        target = analysis_matrix(screen, "pair")
        source = analysis_matrix(screen, "single")
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


def cli_heatmap_json(registry: Path, *args: str) -> dict[str, Any]:
    """`ftui heatmap ... --json`: what the command line prints for the same runs."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--registry", str(registry), "heatmap", *args, "--json"]) == 0
    return cast(dict[str, Any], json.loads(out.getvalue()))


def shown_numbers(screen: HeatmapScreen, panel: str) -> list[list[str]]:
    """The value cells of one grid on the screen, as drawn (T markers left out)."""
    lines = grid_lines(screen.query_one(f"#panel-{panel}", HeatmapGrid))[2:]
    return [[cell for cell in line if cell != "T"][2:-1] for line in lines]


def drawn(values: list[list[float | None]], panel: str, raw: bool) -> list[list[str]]:
    return [
        [format_value(math.nan if v is None else v, raw and panel == "actual", panel == "error") for v in row]
        for row in values
    ]


# The screen's keys from the pair heatmap, and the `ftui heatmap` arguments that show the same thing. With raw
# metrics the screen keeps the chosen model but can only show the actual values (the CLI refuses the pair).
SCREEN_VS_CLI = [
    ((), ("pair",)),
    (("p",), ("pair", "--predict", "max")),
    (("p", "p", "p", "p", "p", "p"), ("pair", "--predict", "linear")),
    (("n",), ("pair", "--predict", "linear", "--norm", "improvement")),
    (("s",), ("pair", "--predict", "linear", "--norm", "improvement", "--sets", "standard")),
    (("w",), ("pair", "--raw", "--sets", "standard")),
    (("w", "m"), ("single", "--sets", "standard", "--norm", "improvement")),
]


async def test_the_screen_shows_the_numbers_of_ftui_heatmap_json(results_study: Path) -> None:
    expected = [cli_heatmap_json(results_study, *args) for _, args in SCREEN_VS_CLI]
    app = make_app(results_study, start_worker=False)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_pair_heatmap(pilot)
        for (keys, args), cli in zip(SCREEN_VS_CLI, expected, strict=True):
            for key in keys:
                await pilot.press(key)
                await settle(pilot)
            assert screen.computed is not None
            assert json.loads(json.dumps(screen.computed.view.to_dict())) == cli, args
            raw = "--raw" in args
            for panel, values in cli["panels"].items():
                assert shown_numbers(screen, panel) == drawn(values, panel, raw), (args, panel)
            shown = {name for name in PANEL_NAMES if screen.query_one(f"#panel-{name}").display}
            assert set(cli["panels"]) == shown, args
