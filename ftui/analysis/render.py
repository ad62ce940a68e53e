"""The heatmap grid as a Rich renderable, for `ftui heatmap` and the app's heatmap screen.

Each cell shows its value with two decimals and a "T" after it when the row was trained on the column's task,
then a "*" when the row's results are stale (ftui/staleness.py; only grids with a stale row have that column);
a missing cell shows a grey "·". With `colour=False` (NO_COLOR, or a terminal without colours) nothing is
styled at all, and the numbers, T markers and dots alone carry the grid.

The grid is built as fixed-width lines of `Text` rather than a Table cell per value: a 21x7 three-panel
view renders about six times faster that way, which matters for an app that redraws it.
"""

from __future__ import annotations

import math

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ftui.analysis.colours import RGB, cell_colour, text_colour
from ftui.analysis.view import STALE_MARK, HeatmapView, Panel, PanelName, format_value

TRAINED_MARK = "T"
MISSING_STYLE = Style(color="grey50")
DIM = Style(dim=True)
NO_STYLE = Style()


def _rgb(colour: RGB) -> str:
    return f"rgb({colour[0]},{colour[1]},{colour[2]})"


def _cell_text(value: float, trained: bool, panel: Panel, raw: bool, stale: bool | None = None) -> str:
    """The value, the trained mark, and with `stale` not None the stale mark (or a space)."""
    mark = TRAINED_MARK if trained else " "
    if stale is not None:
        mark += STALE_MARK if stale else " "
    if not math.isfinite(value):
        return f"· {mark}"
    return f"{format_value(value, raw and panel.name == 'actual', signed=panel.scale == 'error')} {mark}"


def _cell_style(value: float, shade: float, panel: Panel, colour: bool) -> Style:
    if not colour:
        return NO_STYLE
    if not math.isfinite(value):
        return MISSING_STYLE
    background = cell_colour(shade, panel.scale)
    return Style.parse(f"{_rgb(text_colour(background))} on {_rgb(background)}")


def render_panel(view: HeatmapView, panel: Panel, *, colour: bool = True) -> Table:
    """One grid: a title line, a header (run, tasks, task short codes, seeds), one line per experiment.

    Cells are padded to one width so coloured cells form an even grid; values are left-aligned so the decimal
    points line up whether or not a "T" follows.
    """
    matrix = view.matrix
    trained = matrix.trained
    stale_rows = matrix.stale_rows
    marked = any(stale_rows)  # the stale column only when it marks something: other grids stay as they were
    tasks = view.row_tasks()
    seeds = [f"{done}/{n}" for done, n in zip(matrix.seeds_done, matrix.seeds_expected, strict=True)]
    cells = [
        [
            _cell_text(
                float(panel.values[r, c]),
                bool(trained[r, c]),
                panel,
                view.raw,
                stale_rows[r] if marked else None,
            )
            for c in range(len(matrix.columns))
        ]
        for r in range(len(matrix.rows))
    ]
    name_w = max([3, *(len(row.name) for row in matrix.rows)])
    tasks_w = max([5, *(len(t) for t in tasks)])
    cell_w = max([2, *(len(label) for label in view.column_labels), *(len(t) for row in cells for t in row)])
    seeds_w = max([5, *(len(s) for s in seeds)])
    dim = DIM if colour else NO_STYLE

    lines: list[Text] = [Text(panel.title, style=Style(bold=True) if colour else NO_STYLE, no_wrap=True)]
    header = Text(no_wrap=True, overflow="crop")
    header.append(f"{'run':<{name_w}} {'tasks':<{tasks_w}}", style=dim)
    for label in view.column_labels:
        header.append(" " + f"{label:<{cell_w}}")
    header.append(" " + f"{'seeds':>{seeds_w}}", style=dim)
    lines.append(header)
    for r, row in enumerate(matrix.rows):
        line = Text(no_wrap=True, overflow="crop")
        line.append(f"{row.name:<{name_w}} ")
        line.append(f"{tasks[r]:<{tasks_w}}", style=dim)
        for c, text in enumerate(cells[r]):
            line.append(" ")
            value = float(panel.values[r, c])
            line.append(
                f"{text:<{cell_w}}", style=_cell_style(value, float(panel.shade[r, c]), panel, colour)
            )
        line.append(" " + f"{seeds[r]:>{seeds_w}}", style=dim)
        lines.append(line)
    # A one-column grid of prepared lines: a Table for callers that expect one, without per-cell layout work.
    grid = Table.grid(padding=0)
    grid.add_column(no_wrap=True)
    for line_text in lines:
        grid.add_row(line_text)
    return grid


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
    if view.stale_line():
        parts.append(Text(view.stale_line(), style="yellow" if colour else ""))
    return Group(*parts)
