"""Home: every run of the sweep, live. Filter, select, launch, evaluate, cancel, retry, open, heatmaps."""

from __future__ import annotations

import fnmatch
import gc
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label

from ftui.app_data import AppData, RunRow
from ftui.messages import ActionFailed, JobsQueued, RunsRefreshed
from ftui.screens.confirm_modal import ConfirmModal
from ftui.screens.keys import Command, Key, bindings, palette
from ftui.widgets.home_header import HomeHeader
from ftui.widgets.run_table import RunTable

if TYPE_CHECKING:
    from ftui.queue.model import Job

REFRESH_S = 1.0  # measured: a full 500-row redraw at 1 Hz costs ~5% CPU; 4 Hz costs 20%+


def row_matches(row: RunRow, text: str) -> bool:
    """Every word of the filter must match: a glob on the run name, or a substring of name/tasks/state."""
    return filter_rows([row], text) == [row]


def filter_rows(rows: list[RunRow], text: str) -> list[RunRow]:
    """The rows `row_matches` keeps, in one pass per filter word (the words parsed once, not once per row: a
    key typed in the filter box at 5,000 runs)."""
    for word in text.lower().split():
        if any(ch in word for ch in "*?["):
            match = re.compile(fnmatch.translate(word)).match
            rows = [r for r in rows if match(r.key.lower())]
        else:
            rows = [r for r in rows if word in r.search_text]
    return rows


class HomeScreen(Screen[None]):
    DEFAULT_CSS = """
    HomeScreen #home-bar { height: 1; background: $boost; }
    HomeScreen #home-status { width: 1fr; height: 1; padding: 0 1; }
    HomeScreen #home-worker { width: auto; height: 1; padding: 0 1; color: $text-muted; }
    HomeScreen #home-worker.-attention { color: $warning; text-style: bold; }
    HomeScreen #home-filter { display: none; height: 3; }
    HomeScreen #home-filter.-visible { display: block; }
    """
    KEYS = (
        Key("up/down", None, help="move"),
        Key(
            "space",
            None,
            help="select or unselect the run (actions apply to the selection, else the cursor row)",
        ),
        Key("enter", None, help="open the run: log, loss, config, checkpoints, results"),
        Key(
            "slash",
            "filter",
            "Filter",
            "filter by typing (words: name glob like ft2-*, tasks, state); escape clears",
            shown="/",
            command="Filter runs",
            command_help="filter the table by typing",
        ),
        Key("escape", "clear_filter", "Clear filter", footer=False),
        Key(
            "l",
            "launch",
            "Launch",
            "launch: queue training and evaluation, with missing parents",
            command="Launch selected runs",
            command_help="queue training + evaluation",
        ),
        Key(
            "e",
            "evaluate",
            "Eval",
            "queue evaluation only",
            command="Evaluate selected runs",
            command_help="queue evaluation only",
        ),
        Key(
            "c",
            "cancel",
            "Cancel",
            "cancel queued or running jobs (asks first when one is running)",
            command="Cancel selected runs",
            command_help="cancel queued or running jobs",
        ),
        Key(
            "r",
            "retry",
            "Retry",
            "retry failed or cancelled jobs (resumes from the last checkpoint)",
            command="Retry selected runs",
            command_help="re-queue failed or cancelled jobs",
        ),
        Key("h", "heatmaps", "Heatmaps", "heatmaps", command="Open heatmaps", command_help="heatmap screen"),
        Key(
            "v",
            "compare",
            "Compare",
            "compare the selected runs: loss curves overlaid, results side by side",
            footer=False,
            command="Compare selected runs",
            command_help="loss curves overlaid, results side by side",
        ),
        # p and u: in the help and the palette; the footer is full at 80 columns
        Key(
            "p",
            "pause_queue",
            "Pause",
            "pause the queue: no new job starts, running ones go on (ftui pause)",
            footer=False,
            command="Pause the queue",
            command_help="no new job starts; running ones go on",
        ),
        Key(
            "u",
            "resume_queue",
            "Resume",
            "resume the queue (ftui resume)",
            footer=False,
            command="Resume the queue",
            command_help="queued jobs start again",
        ),
    )
    BINDINGS = bindings(KEYS)

    @dataclass
    class WorkerChecked(Message):
        """The refresh worker read the worker's lock and heartbeat: "worker 1234, beat 0.4 s ago" for the
        status bar, and the state for the header: running, paused, not responding, none or unknown."""

        line: str
        attention: bool
        state: str

    def __init__(self, data: AppData) -> None:
        super().__init__()
        self.data = data
        self.all_rows: list[RunRow] = []
        self.filter_text = ""
        self.refreshes = 0
        self._pending_read: tuple[Any, list[Job]] = (None, [])  # (queue change token, its pending jobs)

    def compose(self) -> ComposeResult:
        data = self.data
        profile = data.profile or data.registry.study.default_profile
        yield HomeHeader(data.registry.path, profile, data.runs_dir, id="home-header")
        yield RunTable(id="runs")
        yield Input(
            placeholder="filter: words, or a glob like ft2-*  (enter: keep, escape: clear)", id="home-filter"
        )
        with Horizontal(id="home-bar"):
            yield Label("loading runs…", id="home-status", markup=False)
            yield Label("", id="home-worker", markup=False)
        yield Footer()

    @property
    def table(self) -> RunTable:
        return self.query_one(RunTable)

    def on_mount(self) -> None:
        self.table.focus()
        if self.data.read_only:  # an archive has no worker
            self.query_one(HomeHeader).show(worker="read-only")
        # The first frame shows every run from the registry at once; reading 500 run folders the first time
        # takes a while (every events.jsonl parsed), and the states fill in when the worker is done.
        self.all_rows = self.data.skeleton_rows()
        self._show_rows()
        self.call_after_refresh(self.refresh_runs)  # read after the first frame, not competing with it
        self.set_interval(REFRESH_S, self.refresh_runs)

    # -- live refresh ---------------------------------------------------------------------------------
    def on_screen_resume(self) -> None:
        self.refresh_runs()

    def refresh_runs(self) -> None:
        if not self.is_current:
            return  # another screen is on top: it reads what it shows itself, so this costs nothing meanwhile
        if any(w.group == "refresh" and w.is_running for w in self.workers):
            return  # the previous read is still going (slow disk): skip this tick rather than pile up
        self._read_rows(frozenset(self.table.visible_keys()))

    @work(thread=True, exclusive=True, group="refresh")
    def _read_rows(self, visible: frozenset[str]) -> None:
        rows, changed = self.data.rows(visible)
        self.post_message(RunsRefreshed(rows, changed))
        if not self.data.read_only:  # an archive has no worker
            self.post_message(self._check_worker())

    def _check_worker(self) -> HomeScreen.WorkerChecked:
        from ftui.queue.heartbeat import worker_status
        from ftui.queue.store import PENDING_STATES, StoreError

        try:
            token = self.data.store.change_token()
            if token is None or self._pending_read[0] != token:  # read the pending jobs only after a commit
                self._pending_read = (token, self.data.store.jobs(states=PENDING_STATES))
            status = worker_status(self.data.runs_dir, self._pending_read[1])
        except (StoreError, OSError) as error:
            return self.WorkerChecked(f"worker: cannot read the queue ({error})", True, "unknown")
        if self.data.store.paused():  # `ftui pause` or the p key
            return self.WorkerChecked("queue paused · " + status.line(), True, "paused")
        return self.WorkerChecked(status.line(), status.needs_attention, status.state)

    def on_home_screen_worker_checked(self, message: HomeScreen.WorkerChecked) -> None:
        label = self.query_one("#home-worker", Label)
        label.update(message.line)
        label.set_class(message.attention, "-attention")
        self.query_one(HomeHeader).show(worker=f"worker: {message.state}")

    def on_runs_refreshed(self, message: RunsRefreshed) -> None:
        self.refreshes += 1
        if not message.changed and self.refreshes > 1:
            return
        self.all_rows = message.rows
        self._show_rows()
        if self.refreshes == 1:
            # Thousands of rows now live as long as the app: a full collection would walk them all (100-150
            # ms at 5,000 runs, landing inside a key press now and then). Move what exists to the permanent
            # generation, as the gc docs advise for long-lived objects; rows replaced later are still freed by
            # reference counting (they hold no cycles).
            gc.freeze()

    def _show_rows(self, *, counts: bool = True) -> None:
        """Put the rows that pass the filter in the table; `counts=False` when only the filter changed (the
        header counts every run, filtered or not)."""
        rows = filter_rows(self.all_rows, self.filter_text) if self.filter_text else self.all_rows
        with self.app.batch_update():
            self.table.set_rows(rows)
            if counts:
                self.query_one(HomeHeader).show(states=[r.state for r in self.all_rows])
            self._show_status(len(rows))

    def _show_status(self, shown: int) -> None:
        """The status bar's left: the filter, the selection, read-only, a queue that cannot be read (the
        counts are in the header)."""
        parts = []
        if self.filter_text:
            parts.append(f"filter '{self.filter_text}': {shown} shown")
        if self.table.selected:
            parts.append(f"{len(self.table.selected)} selected")
        if self.data.read_only:
            parts.append("read-only")
        if self.data.store.problem:  # the queue cannot be read: rows show what the run folders say
            parts.append(self.data.store.problem)
        self.query_one("#home-status", Label).update(" · ".join(parts))

    @on(RunTable.SelectionChanged)
    def _selection_changed(self) -> None:
        self._show_status(len(self.table.keys))

    # -- filter ---------------------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#home-filter", Input)
        box.add_class("-visible")
        box.focus()

    @on(Input.Changed, "#home-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._show_rows(counts=False)

    @on(Input.Submitted, "#home-filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#home-filter", Input)
        box.value = ""
        box.remove_class("-visible")
        self.filter_text = ""
        self._show_rows(counts=False)
        self.table.focus()

    # -- actions --------------------------------------------------------------------------------------
    def _targets(self, action: str) -> list[str] | None:
        if self.data.read_only:
            self.notify(f"Read-only: this runs folder is an archive; cannot {action}.", severity="warning")
            return None
        keys = self.table.targets()
        if not keys:
            self.notify("No run under the cursor.", severity="warning")
            return None
        return keys

    def action_launch(self) -> None:
        if keys := self._targets("launch"):
            self._run_action("launch", keys, self.data.launch)

    def action_evaluate(self) -> None:
        if keys := self._targets("evaluate"):
            self._run_action("eval", keys, self.data.evaluate)

    def action_retry(self) -> None:
        if keys := self._targets("retry"):
            self._run_action("retry", keys, self.data.retry)

    def action_cancel(self) -> None:
        keys = self._targets("cancel")
        if not keys:
            return
        running = [k for k in keys if (row := self.table.row(k)) is not None and row.state == "running"]
        if not running:
            self._run_action("cancel", keys, self.data.cancel)
            return
        names = ", ".join(running[:5]) + (" …" if len(running) > 5 else "")
        question = f"Cancel {len(keys)} run(s)? Running now: {names}. Their processes will be stopped."

        def answered(yes: bool | None) -> None:
            if yes:
                self._run_action("cancel", keys, self.data.cancel)

        self.app.push_screen(ConfirmModal(question, yes_label="Cancel jobs"), answered)

    def action_pause_queue(self) -> None:
        if self.data.read_only:
            self.notify("Read-only: this runs folder is an archive; cannot pause.", severity="warning")
        else:
            self._run_action("pause", [], lambda _keys: self._set_paused(True))

    def action_resume_queue(self) -> None:
        if self.data.read_only:
            self.notify("Read-only: this runs folder is an archive; cannot resume.", severity="warning")
        else:
            self._run_action("resume", [], lambda _keys: self._set_paused(False))

    def _set_paused(self, paused: bool) -> str:
        from ftui.queue.worker import start_worker

        self.data.store.set_paused(paused)
        if paused:
            return "Queue paused: no new job starts; running jobs go on. u resumes."
        if self.data.start_worker and self.data.store.has_pending():
            start_worker(self.data.runs_dir)
        return "Queue resumed."

    @work(thread=True, group="actions")
    def _run_action(self, action: str, keys: list[str], call: Callable[[list[str]], str]) -> None:
        try:
            summary = call(keys)
        except Exception as error:  # shown as a toast: the queue said no (bad config, locked db, ...)
            self.post_message(ActionFailed(action, str(error)))
            return
        self.post_message(JobsQueued(action, keys, summary))

    def on_jobs_queued(self, message: JobsQueued) -> None:
        self.notify(message.summary, title=message.action)
        self.table.selected.clear()
        self.refresh_runs()

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(message.error, title=f"{message.action} failed", severity="error", timeout=10)

    # -- navigation -----------------------------------------------------------------------------------
    @on(RunTable.RunOpened)
    def _open_run(self, event: RunTable.RunOpened) -> None:
        from ftui.screens.run_screen import RunScreen

        self.app.push_screen(RunScreen(self.data, event.key))

    def action_heatmaps(self) -> None:
        from ftui.screens.heatmap_screen import HeatmapScreen

        if not self.data.registry.heatmaps:
            self.notify("experiments.toml declares no [[heatmap]].", severity="warning")
            return
        self.app.push_screen(HeatmapScreen(self.data))

    def action_compare(self) -> None:
        from ftui.screens.compare_screen import CompareScreen
        from ftui.widgets.loss_plot import MARKERS

        keys = self.table.targets()
        if len(keys) < 2:
            self.notify("Select two or more runs with space, then v compares them.", severity="warning")
            return
        if len(keys) > len(MARKERS):
            self.notify(f"Comparing the first {len(MARKERS)} selected runs (one marker each).")
            keys = keys[: len(MARKERS)]
        self.app.push_screen(CompareScreen(self.data, keys))

    def palette_commands(self) -> list[Command]:
        return palette(self, self.KEYS)
