"""One run: live log tail, loss sparkline, resolved config, checkpoints and eval.json results.

A tick (5 Hz) starts a thread worker that reads only the appended bytes of train.log and events.jsonl (a stat
when nothing changed) and posts one `TailRead`; the UI writes each batch at once, so a run printing thousands
of lines per second costs a few redraws per second, not one per line. Everything shown from the run folder
(log, reasons, config, eval.json) is cleaned by ftui.safe_text first: a log cannot drive the terminal.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.syntax import Syntax
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static, TabbedContent, TabPane

from ftui.app_data import AppData, RunRow, format_bar, read_json, stat_mtime
from ftui.curves import Curve, read_warmup_steps
from ftui.runrows import format_eta
from ftui.safe_text import clean
from ftui.widgets.file_tail import EventsTail, LogTail
from ftui.widgets.log_view import LogView
from ftui.widgets.loss_plot import LossPlot
from ftui.widgets.loss_sparkline import LossSparkline

TICK_S = 0.2
SIDE_EVERY_S = 1.0  # config, checkpoints and eval.json change rarely: look at them once a second
INITIAL_LOG_BYTES = 2 * 1024 * 1024  # a huge log opens at its last 2 MB


@dataclass
class SideInfo:
    config_text: str | None = None
    checkpoints: list[tuple[str, int, float]] = field(default_factory=list)
    eval_data: dict[str, Any] | None = None
    warmup_steps: int | None = None


@dataclass
class TailRead(Message):
    lines: list[str]
    live: str | None  # the log's unfinished last line ("": none), None when the log did not grow
    events: list[dict[str, Any]]
    side: SideInfo | None
    row: RunRow | None


def list_checkpoints(folder: Path) -> list[tuple[str, int, float]]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.name.endswith(".pt"):
            try:
                st = entry.stat()
            except OSError:
                continue
            found.append((entry.name, st.st_size, st.st_mtime))
    return sorted(found)


class RunScreen(Screen[None]):
    DEFAULT_CSS = """
    RunScreen #run-header { width: 1fr; height: 1; padding: 0 1; background: $boost; text-style: bold; }
    RunScreen #run-search { display: none; }
    RunScreen #run-search.-visible { display: block; }
    RunScreen TabPane { padding: 0; }
    RunScreen LossSparkline { padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search"),
        Binding("n", "search_next", "Next", show=False),
        Binding("N", "search_previous", "Previous", show=False),
        Binding("end", "follow", "Follow"),
        Binding("1", "tab('tab-log')", "Log", show=False),
        Binding("2", "tab('tab-config')", "Config", show=False),
        Binding("3", "tab('tab-checkpoints')", "Checkpoints", show=False),
        Binding("4", "tab('tab-results')", "Results", show=False),
        Binding("5", "tab('tab-loss')", "Loss", show=False),
        Binding("s", "smoothing", "Smooth", show=False),
    ]
    HELP_KEYS = [
        ("escape", "back to the runs"),
        ("1 2 3 4 5", "log, config, checkpoints, results, loss curve"),
        ("s", "loss curve: smoothing (EMA) on / off"),
        ("/", "search the log; n / N next / previous match"),
        ("end", "jump to the end of the log and follow it again"),
        ("up/down pgup", "scroll the log (scrolling up stops following; new lines are counted)"),
    ]

    def __init__(self, data: AppData, key: str) -> None:
        super().__init__()
        self.data = data
        self.key = key
        self.run_dir = data.run_dir(key)
        self._log_tail = LogTail(self.run_dir / "train.log", start_at_end_bytes=INITIAL_LOG_BYTES)
        self._events = EventsTail(self.run_dir / "events.jsonl")
        self._side_at = float("-inf")
        self._side_mtimes: tuple[float | None, ...] = ()
        self._search_text = ""
        self.curve = Curve(key)

    def compose(self) -> ComposeResult:
        yield Label(self.key, id="run-header", markup=False)
        yield LossSparkline(id="run-loss")
        with TabbedContent(initial="tab-log"):
            with TabPane("Log", id="tab-log"):
                yield LogView(id="run-log")
            with TabPane("Config", id="tab-config"), VerticalScroll():
                yield Static("no config.toml yet (written at launch)", id="run-config", markup=False)
            with TabPane("Checkpoints", id="tab-checkpoints"):
                yield DataTable(id="run-checkpoints", cursor_type="row")
            with TabPane("Results", id="tab-results"):
                yield Label("no eval.json yet", id="run-results-note", markup=False)
                yield DataTable(id="run-results", cursor_type="row")
            with TabPane("Loss", id="tab-loss"):
                yield LossPlot(id="run-loss-plot")
        yield Input(placeholder="search the log (enter: find, escape: close)", id="run-search")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#run-checkpoints", DataTable).add_columns("file", "size", "written")
        self.query_one("#run-results", DataTable).add_columns(
            "set", "metric", "mean", "median", "std", "n", "parse fail"
        )
        self._show_header(self.data.last_row(self.key))
        self.query_one(LogView).log_widget.focus()
        self.tick()
        self.set_interval(TICK_S, self.tick)

    @property
    def log_view(self) -> LogView:
        return self.query_one(LogView)

    def tick(self) -> None:
        if any(w.group == "tail" and w.is_running for w in self.workers):
            return
        self._read_tail()

    @work(thread=True, exclusive=True, group="tail")
    def _read_tail(self) -> None:
        read = self._log_tail.read_display()
        lines, live = read if read is not None else ([], None)
        events = self._events.read_events()
        side: SideInfo | None = None
        row: RunRow | None = None
        now = time.monotonic()
        if now - self._side_at >= SIDE_EVERY_S:
            self._side_at = now
            side = self._read_side()
            row = self.data.row(self.key)  # state and progress for the header, once a second
        if read is not None or events or side is not None or row is not None:
            self.post_message(TailRead(lines, live, events, side, row))

    def _read_side(self) -> SideInfo | None:
        """Config, checkpoints and results, only when one of their mtimes moved (a stat each otherwise)."""
        folder = self.run_dir
        mtimes = (
            stat_mtime(folder / "config.toml"),
            stat_mtime(folder / "checkpoints"),
            stat_mtime(folder / "eval.json"),
        )
        if mtimes == self._side_mtimes:
            return None
        self._side_mtimes = mtimes
        try:
            config_text: str | None = clean((folder / "config.toml").read_text(errors="replace"))
        except OSError:
            config_text = None
        return SideInfo(
            config_text,
            list_checkpoints(folder / "checkpoints"),
            read_json(folder / "eval.json"),
            read_warmup_steps(folder / "config.toml"),
        )

    def on_tail_read(self, message: TailRead) -> None:
        with self.app.batch_update():
            self.log_view.append(message.lines, message.live)
            curve_changed = False
            if message.events:
                self.query_one(LossSparkline).add_events(message.events)
                curve_changed = self.curve.add_events(message.events)
            if message.side is not None:
                self._show_side(message.side)
                curve_changed |= message.side.warmup_steps != self.curve.warmup_steps
                self.curve.warmup_steps = message.side.warmup_steps
            if curve_changed:
                self.query_one(LossPlot).set_curves([self.curve])
            if message.row is not None:
                self._show_header(message.row)

    def _show_header(self, row: RunRow | None) -> None:
        parts = [self.key]
        if row is not None:
            parts.append(f"[{row.tasks}]")
            state = row.state + (f" {row.action}" if row.action else "")
            parts.append(state)
            if row.fraction is not None:
                parts.append(f"{format_bar(row.fraction)} {row.step}/{row.total_steps}")
            if row.eta_s:
                parts.append(f"ETA {format_eta(row.eta_s)}")
            if row.reason and row.state in ("failed", "blocked", "cancelled"):
                parts.append(row.reason)  # cleaned by AppData
        self.query_one("#run-header", Label).update("  ".join(parts))

    def _show_side(self, side: SideInfo) -> None:
        if side.config_text is not None:
            self.query_one("#run-config", Static).update(
                Syntax(side.config_text, "toml", theme="ansi_dark", background_color="default")
            )
        table = self.query_one("#run-checkpoints", DataTable)
        table.clear()
        for name, size, mtime in side.checkpoints:
            table.add_row(
                _cell(name), f"{size / 1e6:.1f} MB", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime))
            )
        results = self.query_one("#run-results", DataTable)
        results.clear()
        note = self.query_one("#run-results-note", Label)
        sets = (side.eval_data or {}).get("sets")
        if not isinstance(sets, dict):
            note.update("no eval.json yet")
            return
        data = side.eval_data or {}
        note.update(
            clean(
                f"eval.json: checkpoint {data.get('checkpoint', '?')}, step {data.get('step', '?')}",
                one_line=True,
            )
        )
        for name, entry in sets.items():
            if not isinstance(entry, dict):
                continue
            results.add_row(
                _cell(name),
                _cell(entry.get("metric", "")),
                _num(entry.get("mean")),
                _num(entry.get("median")),
                _num(entry.get("std")),
                _cell(entry.get("n", "")),
                _num(entry.get("parse_failure_rate")),
            )

    # -- actions --------------------------------------------------------------------------------------
    def action_back(self) -> None:
        search = self.query_one("#run-search", Input)
        if search.has_class("-visible"):
            search.remove_class("-visible")
            self.log_view.log_widget.focus()
            return
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_smoothing(self) -> None:
        self.action_tab("tab-loss")
        smoothing = self.query_one(LossPlot).toggle_smoothing()
        self.notify("Loss smoothed (EMA 0.9)" if smoothing else "Loss raw", timeout=2)

    def action_search(self) -> None:
        self.action_tab("tab-log")
        box = self.query_one("#run-search", Input)
        box.add_class("-visible")
        box.focus()

    @on(Input.Submitted, "#run-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self._search_text = event.value
        found = self.log_view.search(event.value)
        if found is None:
            self.notify(f"'{event.value}' not found in the log", severity="warning")
        event.input.remove_class("-visible")
        self.log_view.log_widget.focus()

    def action_search_next(self) -> None:
        if self._search_text:
            self.log_view.search(self._search_text)

    def action_search_previous(self) -> None:
        if self._search_text:
            self.log_view.search(self._search_text, backwards=True)

    def action_follow(self) -> None:
        self.action_tab("tab-log")
        self.log_view.follow()

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        return [
            ("Search the log", "find text in this run's log (/)", self.action_search),
            ("Follow the log", "jump to the end and follow (end)", self.action_follow),
            ("Show config", "the resolved config.toml (2)", lambda: self.action_tab("tab-config")),
            ("Show checkpoints", "checkpoint files (3)", lambda: self.action_tab("tab-checkpoints")),
            ("Show results", "eval.json results (4)", lambda: self.action_tab("tab-results")),
            ("Show loss curve", "loss against step, log scale (5)", lambda: self.action_tab("tab-loss")),
            ("Smooth the loss", "EMA smoothing on / off (s)", self.action_smoothing),
            ("Back to runs", "home screen (escape)", self.action_back),
        ]


def _cell(value: Any) -> str:
    """A DataTable cell from the run folder: cleaned, and escaped (a DataTable reads a str cell as markup)."""
    return escape(clean(str(value), one_line=True))


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return f"{value:.4g}"
