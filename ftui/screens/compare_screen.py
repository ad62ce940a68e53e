"""Several runs side by side: their loss curves overlaid (one marker per run) and their eval.json results.

Opened from the home screen with the selected runs. A worker re-reads the runs' folders every 2 s: only
the bytes appended to each events.jsonl (a byte offset per file); eval.json and config.toml when their mtime
moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from ftui.app_data import AppData, stat_mtime
from ftui.curves import Curve, eval_means, read_warmup_steps
from ftui.safe_text import clean
from ftui.widgets.file_tail import EventsTail
from ftui.widgets.loss_plot import LossPlot

REFRESH_S = 2.0
SET_ORDER = ("atlantis", "standard")


@dataclass
class CompareRead(Message):
    """What the worker read: new events per run, and eval.json per run when it changed (else absent)."""

    events: dict[str, list[dict[str, Any]]]
    results: dict[str, dict[str, tuple[str, float]]]
    warmups: dict[str, int | None]


class CompareScreen(Screen[None]):
    DEFAULT_CSS = """
    CompareScreen #compare-header { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    CompareScreen LossPlot { height: 1fr; min-height: 8; }
    CompareScreen #compare-results { height: 9; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("s", "smoothing", "Smooth"),
    ]
    HELP_KEYS = [
        ("escape", "back to the runs"),
        ("s", "loss curves: smoothing (EMA) on / off"),
        ("up/down", "scroll the results (per task: atlantis and standard)"),
    ]

    def __init__(self, data: AppData, keys: list[str]) -> None:
        super().__init__()
        self.data = data
        self.keys = list(keys)
        self.curves = {key: Curve(key) for key in self.keys}
        self.results: dict[str, dict[str, tuple[str, float]]] = {key: {} for key in self.keys}
        self._tails = {key: EventsTail(data.run_dir(key) / "events.jsonl") for key in self.keys}
        self._mtimes: dict[str, tuple[float | None, float | None]] = {}

    def compose(self) -> ComposeResult:
        names = "  ".join(f"{LossPlot.marker_of(i)} {key}" for i, key in enumerate(self.keys))
        yield Label(f"compare: {names}", id="compare-header", markup=False)
        yield LossPlot(id="compare-plot", marks=False)
        yield DataTable(id="compare-results", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("task", key="task")
        table.add_column("set", key="set")
        table.add_column("metric", key="metric")
        for i, key in enumerate(self.keys):
            table.add_column(escape(f"{LossPlot.marker_of(i)} {key}"), key=f"run:{key}")
        table.focus()
        self.refresh_runs()
        self.set_interval(REFRESH_S, self.refresh_runs)

    def refresh_runs(self) -> None:
        if not any(w.group == "compare" and w.is_running for w in self.workers):
            self._read_runs()

    @work(thread=True, exclusive=True, group="compare")
    def _read_runs(self) -> None:
        events = {key: tail.read_events() for key, tail in self._tails.items()}
        results: dict[str, dict[str, tuple[str, float]]] = {}
        warmups: dict[str, int | None] = {}
        for key in self.keys:
            folder = self.data.run_dir(key)
            mtimes = (stat_mtime(folder / "eval.json"), stat_mtime(folder / "config.toml"))
            if mtimes == self._mtimes.get(key):
                continue
            self._mtimes[key] = mtimes
            results[key] = eval_means(self.data.store.run_results(folder))
            warmups[key] = read_warmup_steps(Path(folder) / "config.toml")
        if any(events.values()) or results:
            self.post_message(CompareRead(events, results, warmups))

    def on_compare_read(self, message: CompareRead) -> None:
        changed = False
        for key, events in message.events.items():
            changed |= self.curves[key].add_events(events)
        for key, warmup in message.warmups.items():
            self.curves[key].warmup_steps = warmup
        if changed or message.warmups:
            self.query_one(LossPlot).set_curves([self.curves[k] for k in self.keys])
        if message.results:
            self.results.update(message.results)
            self._show_results()

    def result_rows(self) -> list[tuple[str, str, str, list[str]]]:
        """(task, set, metric, one cell per run) in the study's task order, atlantis before standard."""
        order = {t.name: i for i, t in enumerate(self.data.registry.study.tasks)}
        names = {name for results in self.results.values() for name in results}

        def sort_key(name: str) -> tuple[int, str, int]:
            set_name, _, task = name.partition("/")
            rank = SET_ORDER.index(set_name) if set_name in SET_ORDER else len(SET_ORDER)
            return (order.get(task, len(order)), task, rank)

        rows = []
        for name in sorted(names, key=sort_key):
            set_name, _, task = name.partition("/")
            metric = next((r[name][0] for r in self.results.values() if name in r), "")
            cells = [f"{r[name][1]:.4g}" if name in r else "·" for r in (self.results[k] for k in self.keys)]
            rows.append((task, set_name, metric, cells))
        return rows

    def _show_results(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for task, set_name, metric, cells in self.result_rows():
            table.add_row(*(_cell(v) for v in (task, set_name, metric, *cells)))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_smoothing(self) -> None:
        smoothing = self.query_one(LossPlot).toggle_smoothing()
        self.notify("Loss smoothed (EMA 0.9)" if smoothing else "Loss raw", timeout=2)

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        return [
            ("Smooth the loss", "EMA smoothing on / off (s)", self.action_smoothing),
            ("Back to runs", "home screen (escape)", self.action_back),
        ]


def _cell(value: str) -> str:
    """A cell from eval.json: cleaned, escaped (a DataTable reads a str cell as markup)."""
    return escape(clean(value, one_line=True))
