"""The Rich grid and the exported files show the matrix: every value, T markers, colours, exact numbers."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from ftui.analysis.colours import cell_colour
from ftui.analysis.export import ExportError, export
from ftui.analysis.render import render_view
from ftui.analysis.study import build_view
from ftui.analysis.view import HeatmapView
from ftui.registry import load_registry
from tests.conftest import REPO_ROOT
from tests.data.make_eval_fixtures import make_fixtures
from tests.ftui.lineage_fixtures import make_stale

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HeatmapView]:
    runs = tmp_path_factory.mktemp("runs")
    make_fixtures(MINI, runs, skip=[("pair-2", 7)])  # one unfinished run: a row of missing cells
    registry = load_registry(MINI)
    return {
        "plain": build_view(registry, runs, "pair"),
        "max": build_view(registry, runs, "pair", model="max"),
        "raw": build_view(registry, runs, "single", raw=True),
    }


def _text(view: HeatmapView, colour: bool) -> str:
    console = Console(
        record=True, width=120, file=io.StringIO(), color_system="truecolor" if colour else None
    )
    console.print(render_view(view, colour=colour))
    return console.export_text(styles=colour)


def _expected_cells(view: HeatmapView, panel_index: int) -> list[list[str]]:
    panel = view.panels()[panel_index]
    signed = panel.name == "error"
    rows = []
    for r in range(len(view.matrix.rows)):
        cells = []
        for c in range(len(view.matrix.columns)):
            value = float(panel.values[r, c])
            text = "·" if math.isnan(value) else (f"{value:+.2f}" if signed else f"{value:.2f}")
            cells.append(f"{text} T" if view.matrix.trained[r, c] else text)
        rows.append(cells)
    return rows


def test_plain_grid_has_every_value_and_a_t_in_each_trained_cell(views: dict[str, HeatmapView]) -> None:
    view = views["max"]
    text = _text(view, colour=False)
    assert "\x1b[" not in text  # NO_COLOR mode: no escape codes at all
    assert view.title() in text
    assert "3 cells missing" in text
    for panel_index in range(3):
        expected = _expected_cells(view, panel_index)
        lines = [line for line in text.splitlines() if line.startswith("pair-")]
        lines = lines[panel_index * 3 : panel_index * 3 + 3]
        for line, row, cells, done in zip(
            lines, view.matrix.rows, expected, view.matrix.seeds_done, strict=True
        ):
            # Each line: name, tasks, then each cell's value (and T), then seeds k/n.
            assert line.split()[0] == row.name
            rest = line.split(None, 2)[2]
            tokens = rest.split()
            assert " ".join(tokens[:-1]) == " ".join(cells)
            assert tokens[-1] == f"{done}/1"


def test_colour_grid_uses_the_shared_scale(views: dict[str, HeatmapView]) -> None:
    view = views["max"]
    text = _text(view, colour=True)
    value = float(view.matrix.values[0, 0])
    r, g, b = cell_colour(value, "green")
    assert f"48;2;{r};{g};{b}" in text
    error = float(view.panels()[2].values[0, 2])
    assert error > 0.2  # the divergent fixture task: this run did worse than predicted ...
    r, g, b = cell_colour(error, "error")
    assert r > b and f"48;2;{r};{g};{b}" in text  # ... so its cell is red


def test_raw_grid_prints_raw_metrics(views: dict[str, HeatmapView]) -> None:
    view = views["raw"]
    text = _text(view, colour=False)
    assert "raw metrics" in text
    for value in view.matrix.values.ravel():
        shown = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"
        assert shown in text


def test_csv_numbers_equal_the_matrix(views: dict[str, HeatmapView], tmp_path: Path) -> None:
    view = views["max"]
    path = export(view, tmp_path / "out" / "pair.csv")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [row["panel"] for row in rows] == ["actual"] * 3 + ["predicted"] * 3 + ["error"] * 3
    for panel_index, panel in enumerate(view.panels()):
        for r in range(3):
            line = rows[panel_index * 3 + r]
            assert line["experiment"] == view.matrix.rows[r].name
            for c, column in enumerate(view.matrix.columns):
                value = float(panel.values[r, c])
                assert (line[column.name] == "") if math.isnan(value) else float(line[column.name]) == value


def test_json_export_matches_the_view(views: dict[str, HeatmapView], tmp_path: Path) -> None:
    view = views["max"]
    data = json.loads(export(view, tmp_path / "pair.json").read_text())
    assert data["model"] == "max" and data["missing_cells"] == 3
    assert [row["seeds_done"] for row in data["rows"]] == [1, 0, 1]
    for panel in view.panels():
        exported = np.array([[np.nan if v is None else v for v in row] for row in data["panels"][panel.name]])
        np.testing.assert_array_equal(exported, panel.values)


def test_png_is_a_three_panel_figure_with_the_right_colours(
    views: dict[str, HeatmapView], tmp_path: Path
) -> None:
    from matplotlib.image import imread

    view = views["max"]
    path = export(view, tmp_path / "pair.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = (imread(io.BytesIO(data))[..., :3] * 255).round()
    non_white = (pixels < 245).any(axis=-1).mean()
    assert non_white > 0.2  # not blank
    height, width = pixels.shape[:2]
    assert width > 2 * height  # three panels side by side

    def has_colour(rgb: tuple[int, int, int]) -> bool:
        return bool((np.abs(pixels - np.array(rgb)).max(axis=-1) <= 4).any())

    assert has_colour(cell_colour(float(view.matrix.values[0, 0]), "green"))
    assert has_colour(cell_colour(float(view.panels()[2].values[0, 2]), "error"))  # the red error cell
    assert has_colour((200, 200, 200))  # missing cells are grey


@pytest.mark.parametrize(
    ("suffix", "magic", "content"), [("pdf", b"%PDF-", b"/Image"), ("svg", b"<?xml", b"<image")]
)
def test_pdf_and_svg(
    views: dict[str, HeatmapView], tmp_path: Path, suffix: str, magic: bytes, content: bytes
) -> None:
    data = export(views["plain"], tmp_path / f"pair.{suffix}").read_bytes()
    assert data.startswith(magic)
    assert content in data  # the heatmap image is in the file
    assert len(data) > 5000


def test_unknown_suffix_is_refused(views: dict[str, HeatmapView], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"allowed: \.png, \.pdf, \.svg, \.csv, \.json"):
        export(views["plain"], tmp_path / "pair.jpg")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def stale_view(tmp_path_factory: pytest.TempPathFactory) -> HeatmapView:
    """The pair heatmap after `base` was trained again: pair-1 was fine-tuned from the old weights."""
    runs = tmp_path_factory.mktemp("runs")
    make_fixtures(MINI, runs)
    make_stale(runs, "base", ["pair-1"])
    return build_view(load_registry(MINI), runs, "pair")


def test_grid_marks_every_cell_of_a_stale_run_and_says_what_the_mark_means(
    stale_view: HeatmapView, views: dict[str, HeatmapView]
) -> None:
    assert stale_view.matrix.stale_rows == (True, False, False)
    text = _text(stale_view, colour=False)
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("pair-")}
    # "0.71 T*", "0.35  *": each of the three cells ends in the mark, after its T column
    assert re.findall(r"\d\.\d\d [T ]\*", lines["pair-1"]) and lines["pair-1"].count("*") == 3
    assert "*" not in lines["pair-2"] and "*" not in lines["pair-3"]
    assert "* = stale (pair-1): made from weights trained since; ftui launch --stale" in text
    assert stale_view.to_dict()["rows"][0]["stale"] is True
    # A heatmap without a stale run has no stale column and no legend: it looks as before.
    plain = _text(views["plain"], colour=False)
    assert "*" not in plain and "stale" not in plain


def test_figure_hatches_the_cells_of_a_stale_run(
    stale_view: HeatmapView, views: dict[str, HeatmapView], tmp_path: Path
) -> None:
    stale_svg = export(stale_view, tmp_path / "stale.svg").read_bytes()
    plain_svg = export(views["plain"], tmp_path / "plain.svg").read_bytes()
    assert b"<pattern" in stale_svg and b"<pattern" not in plain_svg  # matplotlib's hatching
