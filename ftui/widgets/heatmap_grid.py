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


def panel_width(view: HeatmapView, panel: Panel, *, colour: bool = True) -> int:
    """Cells needed to show `panel` without wrapping (to choose side by side or stacked)."""
    console = Console(width=1000, color_system=None, file=open(os.devnull, "w"))  # noqa: SIM115
    with console.file:
        return console.measure(render_panel(view, panel, colour=colour)).maximum


class HeatmapGrid(Static):
    """Shows one panel; the screen keeps one grid per panel name and updates it in place."""

    DEFAULT_CSS = """
    HeatmapGrid { width: auto; height: auto; padding: 0 1 1 0; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.view: HeatmapView | None = None
        self.panel: Panel | None = None
        self.table: Table | None = None

    def show(self, view: HeatmapView, panel: Panel) -> None:
        self.view, self.panel = view, panel
        colour = colour_enabled()
        self.table = render_panel(view, panel, colour=colour)
        # An explicit width: `width: auto` of a Static measured while empty would stay at 1 cell.
        self.styles.width = panel_width(view, panel, colour=colour) + 1
        self.update(self.table)
