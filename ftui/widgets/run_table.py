"""The home table: one row per run. Rows are diffed so a refresh only touches the cells that changed."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from ftui.app_data import RunRow, format_bar
from ftui.state_display import STATE_STYLES, STATE_SYMBOLS
from ftui.status import format_eta

# (column key, label); the order is the order on screen. At 80 columns the table scrolls sideways past
# "loss", so the columns that matter most come first.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("sel", " "),
    ("name", "run"),
    ("tasks", "tasks"),
    ("state", "state"),
    ("progress", "progress"),
    ("steps", "step/total"),
    ("loss", "loss"),
    ("eta", "ETA"),
    ("gpu", "GPU"),
    ("result", "result"),
)


def row_cells(row: RunRow, selected: bool) -> dict[str, Text | str]:
    symbol = STATE_SYMBOLS.get(row.state, "?")
    state = f"{symbol} {row.state}"
    if row.action and row.state in ("running", "queued", "waiting"):
        state += f" {row.action}"
    steps = f"{row.step}/{row.total_steps}" if row.step is not None and row.total_steps else ""
    return {
        "sel": "●" if selected else " ",
        "name": row.key,
        "tasks": row.tasks,
        "state": Text(state, style=STATE_STYLES.get(row.state, "")),
        "progress": format_bar(row.fraction),
        "steps": steps,
        "loss": f"{row.loss:.3f}" if row.loss is not None else "",
        "eta": format_eta(row.eta_s),
        "gpu": row.gpu or "",
        "result": row.result,
    }


class RunTable(DataTable[Text | str]):
    DEFAULT_CSS = """
    RunTable { height: 1fr; }
    """
    BINDINGS = [Binding("space", "toggle_select", "Select", show=True)]

    class RunOpened(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    class SelectionChanged(Message):
        def __init__(self, selected: frozenset[str]) -> None:
            super().__init__()
            self.selected = selected

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.selected: set[str] = set()
        self._shown: dict[str, dict[str, Text | str]] = {}
        self._rows: dict[str, RunRow] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def current_key(self) -> str | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self._order[self.cursor_row]

    @property
    def keys(self) -> list[str]:
        return list(self._order)

    def row(self, key: str) -> RunRow | None:
        return self._rows.get(key)

    def targets(self) -> list[str]:
        """The runs an action applies to: the selection (in table order) if any, else the cursor row."""
        if self.selected:
            return [k for k in self._order if k in self.selected]
        current = self.current_key
        return [current] if current else []

    def set_rows(self, rows: Sequence[RunRow]) -> None:
        """Show exactly `rows`: same keys in the same order -> update changed cells only; else rebuild."""
        order = [r.key for r in rows]
        self._rows = {r.key: r for r in rows}
        self.selected &= set(order)
        if order != self._order:
            current = self.current_key
            self.clear()
            self._shown = {}
            for r in rows:
                cells = row_cells(r, r.key in self.selected)
                self._shown[r.key] = cells
                self.add_row(*(cells[c] for c, _ in COLUMNS), key=r.key)
            self._order = order
            if current in self._rows:
                self.move_cursor(row=order.index(current), animate=False)
            return
        for r in rows:
            self._update_row(r)

    def _update_row(self, r: RunRow) -> None:
        cells = row_cells(r, r.key in self.selected)
        old = self._shown.get(r.key, {})
        for column, value in cells.items():
            if old.get(column) != value:
                # Widen the column for a longer value, but never narrow it: Textual re-measures the whole
                # column when a cell shrinks, which made refreshing 500 rows take seconds.
                width = cell_len(value.plain if isinstance(value, Text) else value)
                grow = width > self.columns[ColumnKey(column)].content_width
                self.update_cell(r.key, column, value, update_width=grow)
        self._shown[r.key] = cells

    def action_toggle_select(self) -> None:
        key = self.current_key
        if key is None:
            return
        self.selected ^= {key}
        self._update_row(self._rows[key])
        if self.cursor_row < len(self._order) - 1:
            self.move_cursor(row=self.cursor_row + 1)
        self.post_message(self.SelectionChanged(frozenset(self.selected)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.RunOpened(event.row_key.value))
