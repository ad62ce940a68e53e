"""The home screen's header: where the app looks (registry file, profile, runs folder), the worker's state,
and the runs counted per state (the counts of `ftui list`'s summary, `ftui.state_display.counts_line`).

Two lines that always fit: at 80 columns the paths are elided in the middle and the counts fall back to
their symbol form ("✔ 12 ▶ 2"). It draws only what the home screen hands it (`show`): no reads of its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ftui.list_lines import elide_middle
from ftui.state_display import STATE_STYLES, STATE_SYMBOLS, counts_line

SEP = " · "
MIN_PATH_W = 12  # a path is never elided shorter than this; the line is cropped instead


def display_path(path: Path) -> str:
    """`path` as a user names it: relative to the current folder when under it, else with ~ for home."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        pass
    try:
        return "~/" + str(absolute.relative_to(Path.home()))
    except (ValueError, RuntimeError):  # RuntimeError: no home folder known
        return str(absolute)


class HomeHeader(Widget):
    DEFAULT_CSS = """
    HomeHeader { height: 2; padding: 0 1; background: $boost; }
    """
    worker = reactive("worker: …")  # "worker: running", "worker: paused", "worker: none", "read-only"
    counts: reactive[tuple[str, str]] = reactive(("", ""))  # (words, symbols): `counts_line`'s two forms

    def __init__(self, registry: Path, profile: str, runs_dir: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.registry = display_path(registry)
        self.profile = profile
        self.runs_dir = display_path(runs_dir).rstrip("/") + "/"  # a folder: "runs/"

    def show(self, states: Iterable[str] | None = None, worker: str | None = None) -> None:
        """New counts (the runs' states) and/or a new worker state word; redraws only on a change."""
        if states is not None:
            states = list(states)
            self.counts = (counts_line(states), counts_line(states, symbols=True))
        if worker is not None:
            self.worker = worker

    def where_line(self, width: int) -> str:
        """ "experiments.toml · profile smoke · runs/ · worker: running" in `width` cells: the two paths
        share what is left after the fixed words, elided in the middle."""
        fixed = [f"profile {self.profile}", self.worker]
        room = width - sum(map(cell_len, fixed)) - 3 * cell_len(SEP)
        registry, runs = self.registry, self.runs_dir
        if cell_len(registry) + cell_len(runs) > room:
            half = max(MIN_PATH_W, room // 2)
            runs = elide_middle(runs, max(MIN_PATH_W, room - min(cell_len(registry), half)))
            registry = elide_middle(registry, max(MIN_PATH_W, room - cell_len(runs)))
        return SEP.join([registry, fixed[0], runs, fixed[1]])

    def render(self) -> Text:
        width = max(1, self.content_size.width)
        words, symbols = self.counts
        counts = Text(words if cell_len(words) <= width else symbols, style="bold")
        for state, style in STATE_STYLES.items():  # each count in its state's colour, as in the table
            symbol = re.escape(STATE_SYMBOLS.get(state, "?"))
            counts.highlight_regex(rf"(?<=[:,] )\d+ {state}\b|(?<= ){symbol} \d+", style)
        text = Text(self.where_line(width), no_wrap=True, overflow="ellipsis")
        text.append("\n")
        text.append_text(counts)
        return text
