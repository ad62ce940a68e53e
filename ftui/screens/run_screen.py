"""One run: live log tail, loss sparkline, resolved config, checkpoints and eval.json results.

A tick (5 Hz) starts a thread worker that reads only the appended bytes of train.log and events.jsonl (a stat
when nothing changed) and posts one `TailRead`; the UI writes each batch at once, so a run printing thousands
of lines per second costs a few redraws per second, not one per line. Everything shown from the run folder
(log, reasons, config, eval.json) is cleaned by ftui.safe_text first: a log cannot drive the terminal.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.syntax import Syntax
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static, TabbedContent, TabPane

from ftui.app_data import AppData, RunRow, format_bar, stat_mtime
from ftui.curves import Curve, read_warmup_steps
from ftui.rundir import CHECKPOINTS, CONFIG, EVENTS, LOG, RESULTS, EvalResults
from ftui.safe_text import clean
from ftui.screens.keys import Command, Key, bindings, palette
from ftui.status import format_eta
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
    results: EvalResults | None = None
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
    KEYS = (
        Key("escape", "back", "Back", "back to the runs", command="Back to runs", command_help="home screen"),
        Key(
            "1",
            "tab('tab-log')",
            "Log",
            "log, config, checkpoints, results, loss curve",
            shown="1 2 3 4 5",
            footer=False,
        ),
        Key(
            "2",
            "tab('tab-config')",
            "Config",
            footer=False,
            command="Show config",
            command_help="the resolved config.toml",
        ),
        Key(
            "3",
            "tab('tab-checkpoints')",
            "Checkpoints",
            footer=False,
            command="Show checkpoints",
            command_help="checkpoint files",
        ),
        Key(
            "4",
            "tab('tab-results')",
            "Results",
            footer=False,
            command="Show results",
            command_help="eval.json results",
        ),
        Key(
            "5",
            "tab('tab-loss')",
            "Loss",
            footer=False,
            command="Show loss curve",
            command_help="loss against step, log scale",
        ),
        Key(
            "s",
            "smoothing",
            "Smooth",
            "loss curve: smoothing (EMA) on / off",
            footer=False,
            command="Smooth the loss",
            command_help="EMA smoothing on / off",
        ),
        Key(
            "slash",
            "search",
            "Search",
            "search the log; n / N next / previous match",
            shown="/",
            command="Search the log",
            command_help="find text in this run's log",
        ),
        Key("n", "search_next", "Next", footer=False),
        Key("N", "search_previous", "Previous", footer=False),
        Key(
            "end",
            "follow",
            "Follow",
            "jump to the end of the log and follow it again",
            command="Follow the log",
            command_help="jump to the end and follow",
        ),
        Key(
            "up/down pgup", None, help="scroll the log (scrolling up stops following; new lines are counted)"
        ),
    )
    BINDINGS = bindings(KEYS)

    def __init__(self, data: AppData, key: str) -> None:
        super().__init__()
        self.data = data
        self.key = key
        self.run_dir = data.run_dir(key)
        self._log_tail = LogTail(self.run_dir / LOG, start_at_end_bytes=INITIAL_LOG_BYTES)
        self._events = EventsTail(self.run_dir / EVENTS)
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
            stat_mtime(folder / CONFIG),
            stat_mtime(folder / CHECKPOINTS),
            stat_mtime(folder / RESULTS),
        )
        if mtimes == self._side_mtimes:
            return None
        self._side_mtimes = mtimes
        try:
            config_text: str | None = clean((folder / CONFIG).read_text(errors="replace"))
        except OSError:
            config_text = None
        return SideInfo(
            config_text,
            list_checkpoints(folder / CHECKPOINTS),
            self.data.store.run_results(folder),
            read_warmup_steps(folder / CONFIG),
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
        data = side.results
        if data is None or data.sets is None:
            note.update("no eval.json yet")
            return
        checkpoint = data.checkpoint if data.checkpoint is not None else "?"
        step = data.step if data.step is not None else "?"
        note.update(clean(f"eval.json: checkpoint {checkpoint}, step {step}", one_line=True))
        for name, entry in data.sets.items():
            results.add_row(
                _cell(name),
                _cell(entry.metric or ""),
                _num(entry.mean),
                _num(entry.median),
                _num(entry.std),
                _cell("" if entry.n is None else entry.n),
                _num(entry.parse_failure_rate),
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

    def palette_commands(self) -> list[Command]:
        return palette(self, self.KEYS)


def _cell(value: Any) -> str:
    """A DataTable cell from the run folder: cleaned, and escaped (a DataTable reads a str cell as markup)."""
    return escape(clean(str(value), one_line=True))


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return f"{value:.4g}"
