"""The heatmap grid as a Rich renderable, for `ftui heatmap` and the app's heatmap screen.

Each cell shows its value with two decimals and a "T" after it when the row was trained on the column's task;
a missing cell shows a grey "·". With `colour=False` (NO_COLOR, or a terminal without colours) nothing is
styled at all, and the numbers, T markers and dots alone carry the grid.
"""

from __future__ import annotations

import math

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ftui.analysis.colours import RGB, cell_colour, text_colour
from ftui.analysis.view import HeatmapView, Panel, PanelName, format_value

TRAINED_MARK = "T"
MISSING_STYLE = Style(color="grey50")


def _rgb(colour: RGB) -> str:
    return f"rgb({colour[0]},{colour[1]},{colour[2]})"


def _cell(value: float, shade: float, trained: bool, panel: Panel, raw: bool, colour: bool) -> Text:
    mark = TRAINED_MARK if trained else " "
    if not math.isfinite(value):
        return Text(f"· {mark}" if trained else "·", style=MISSING_STYLE if colour else "")
    text = f"{format_value(value, raw and panel.name == 'actual', signed=panel.scale == 'error')} {mark}"
    if not colour:
        return Text(text)
    background = cell_colour(shade, panel.scale)
    return Text(text, style=f"{_rgb(text_colour(background))} on {_rgb(background)}")


def render_panel(view: HeatmapView, panel: Panel, *, colour: bool = True) -> Table:
    """One grid: rows = experiments (name, trained tasks, seeds k/n), columns = tasks (short codes)."""
    matrix = view.matrix
    table = Table(
        title=panel.title,
        title_justify="left",
        box=None,
        padding=(0, 1),
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
    )
    table.add_column("run", no_wrap=True)
    table.add_column("tasks", no_wrap=True, style="dim" if colour else "")
    for label in view.column_labels:
        # Left-justified so the decimal points line up whether or not a "T" follows the value.
        table.add_column(label, justify="left", no_wrap=True)
    table.add_column("seeds", justify="right", no_wrap=True, style="dim" if colour else "")
    trained = matrix.trained
    tasks = view.row_tasks()
    for r, row in enumerate(matrix.rows):
        cells = [
            _cell(
                float(panel.values[r, c]),
                float(panel.shade[r, c]),
                bool(trained[r, c]),
                panel,
                view.raw,
                colour,
            )
            for c in range(len(matrix.columns))
        ]
        seeds = f"{matrix.seeds_done[r]}/{matrix.seeds_expected[r]}"
        table.add_row(row.name, tasks[r], *cells, seeds)
    return table


def render_view(
    view: HeatmapView, *, colour: bool = True, panels: tuple[PanelName, ...] | None = None
) -> RenderableType:
    """The title, each panel (actual, then predicted and error when predicting) and the summary line."""
    parts: list[RenderableType] = [Text(view.title(), style="bold" if colour else "")]
    for panel in view.panels():
        if panels is None or panel.name in panels:
            parts.append(render_panel(view, panel, colour=colour))
            parts.append(Text(""))
    summary = f"{view.missing_line()} · T = trained on this task · · = missing"
    if view.prediction is not None:
        summary += " · error > 0 (red): the run did worse than predicted"
    if view.raw:
        summary += " · raw metrics (colour: per column, worst to best)"
    parts.append(Text(summary, style="dim" if colour else ""))
    return Group(*parts)
