"""One heatmap panel (actual, predicted or error), drawn by the analysis module's Rich renderer so the screen
and `ftui heatmap` show the same cells, colours, T markers and missing dots."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table
from textual.widgets import Static

from ftui.analysis.render import render_panel
from ftui.analysis.view import HeatmapView, Panel


def colour_enabled() -> bool:
    """NO_COLOR (any non-empty value, no-color.org) turns cell colours off; values and T markers remain."""
    return not os.environ.get("NO_COLOR")


def build_panel(view: HeatmapView, panel: Panel, *, colour: bool = True) -> tuple[Table, int]:
    """The panel's Rich table and the cells it needs without wrapping. Pure Rich, so a worker thread builds
    it and the UI thread only shows it."""
    table = render_panel(view, panel, colour=colour)
    with open(os.devnull, "w") as sink:
        width = Console(width=1000, color_system=None, file=sink).measure(table).maximum
    return table, width


class HeatmapGrid(Static):
    """Shows one panel; the screen keeps one grid per panel name and updates it in place."""

    DEFAULT_CSS = """
    HeatmapGrid { width: auto; height: auto; padding: 0 1 1 0; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.panel: Panel | None = None
        self.table: Table | None = None

    def show(self, panel: Panel, table: Table, width: int) -> None:
        self.panel, self.table = panel, table
        # An explicit width: `width: auto` of a Static measured while empty would stay at 1 cell.
        self.styles.width = width + 1
        self.update(table)
