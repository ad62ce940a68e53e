"""The home table: one row per run. Rows are diffed so a refresh only touches the cells that changed.

Thousands of runs: Textual's `DataTable` draws only the rows on screen, but filling it row by row (`add_row`,
then every cell measured on idle) and updating it cell by cell (`update_cell`: one cache flush each) is linear
in the number of rows with a large constant (0.9 s for 5,000 rows on a 2-core machine). `RunTable` keeps the
DataTable's drawing (so the table looks exactly the same) and writes its row store in bulk instead: one
pass over the rows, the widths measured the way the DataTable measures them (cached per cell value), and one
cache flush per refresh. The DataTable internals it writes (`_data`, `rows`, `_row_locations`,
`_update_count`, a column's `content_width`) are those of Textual 8.2, the pinned version;
tests/ftui/test_app_table.py checks the result against a DataTable filled with `add_row`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.message import Message
from textual.render import measure
from textual.widgets import DataTable
from textual.widgets._data_table import ColumnKey, Row, RowKey, default_cell_formatter

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


COLUMN_KEYS = tuple(ColumnKey(key) for key, _ in COLUMNS)


@dataclass
class _Shown:
    """One row as the table holds it: the RunRow and selection it was drawn from, its cells (the dict the
    DataTable reads, keyed by column), each cell's width, and the DataTable's key and metadata for it."""

    row: RunRow
    selected: bool
    cells: dict[str, Text | str]  # the DataTable keys them by ColumnKey, equal to the name
    widths: list[int]
    key: RowKey
    meta: Row


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
        self._shown: dict[str, _Shown] = {}  # every run drawn so far, shown now or filtered out
        self._rows: dict[str, RunRow] = {}
        self._order: list[str] = []
        self._widths: dict[str, int] = {}  # cell text -> width as the DataTable measures it

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
        """Show exactly `rows`: same keys in the same order -> update the changed cells only (a row that is
        the same object as last time costs nothing); else reload the table, the cursor kept on its run."""
        order = [r.key for r in rows]
        self._rows = {r.key: r for r in rows}
        self.selected.intersection_update(self._rows)
        if order != self._order:
            self._reload(rows, order)
            return
        changed = [r for r in rows if (s := self._shown.get(r.key)) is None or s.row is not r]
        self._write(changed)

    def _reload(self, rows: Sequence[RunRow], order: list[str]) -> None:
        """What `clear()` then one `add_row` per row does, in one pass (see the module docstring)."""
        current = self.current_key
        self.clear()
        shown = [self._entry(r) for r in rows]
        self._data.update((s.key, s.cells) for s in shown)  # type: ignore[misc]
        self.rows.update((s.key, s.meta) for s in shown)
        self._row_locations = TwoWayDict({s.key: index for index, s in enumerate(shown)})
        self._grow_columns([s.widths for s in shown])
        self._order = order
        self._update_count += 1
        self.cursor_coordinate = self.cursor_coordinate  # clamped, as add_row does
        if shown and self.show_cursor:
            self._highlight_cursor()  # what add_row does when the first row arrives
        self.check_idle()
        if current in self._rows:
            self.move_cursor(row=order.index(current), animate=False)

    def _write(self, rows: Sequence[RunRow]) -> None:
        """Redraw the cells of `rows` (already in the table) that differ from what they show."""
        if not rows:
            return
        grown: list[list[int]] = []
        for r in rows:
            shown = self._entry(r)
            self._data[shown.key] = shown.cells  # type: ignore[assignment]
            grown.append(shown.widths)
        self._grow_columns(grown)
        self._update_count += 1  # one flush of the DataTable's render caches for the whole refresh
        self.refresh()

    def _entry(self, r: RunRow) -> _Shown:
        """The row drawn for `r`: the cached one, or a new one (cached) when `r` or its selection changed."""
        selected = r.key in self.selected
        shown = self._shown.get(r.key)
        if shown is not None and shown.row is r and shown.selected == selected:
            return shown
        # Keyed by the column names: a ColumnKey hashes and compares equal to its name, so the DataTable finds
        # each cell without 10 ColumnKey objects per row.
        cells = row_cells(r, selected)
        widths = [self._width(value) for value in cells.values()]
        key = shown.key if shown is not None else RowKey(r.key)
        meta = shown.meta if shown is not None else Row(key, 1)
        shown = self._shown[r.key] = _Shown(r, selected, cells, widths, key, meta)
        return shown

    def _width(self, value: Text | str) -> int:
        """The width the DataTable measures for a cell (`default_cell_formatter` then `measure`), cached per
        text (a str cell is read as markup, a Text is not)."""
        cache_key = value if isinstance(value, str) else "\0" + value.plain
        width = self._widths.get(cache_key)
        if width is None:
            plain = value if isinstance(value, str) else value.plain
            if plain.isprintable() and (isinstance(value, Text) or "[" not in plain):
                width = cell_len(plain)  # one line, no markup: what `measure` finds, without its overhead
            else:
                width = measure(self.app.console, default_cell_formatter(value, wrap=False, height=1), 1)
            self._widths[cache_key] = width
        return width

    def _grow_columns(self, widths: list[list[int]]) -> None:
        """Widen the columns for longer cells, never narrow them (as the DataTable does when rows are added;
        narrowing would re-measure the whole column)."""
        if not widths:
            return
        grew = False
        for column_key, width in zip(COLUMN_KEYS, map(max, zip(*widths, strict=True)), strict=True):
            column = self.columns[column_key]
            if width > column.content_width:
                column.content_width = width
                grew = True
        if grew:
            self._require_update_dimensions = True  # the virtual width, computed on idle
            self.check_idle()

    def action_toggle_select(self) -> None:
        key = self.current_key
        if key is None:
            return
        self.selected ^= {key}
        self._write([self._rows[key]])
        if self.cursor_row < len(self._order) - 1:
            self.move_cursor(row=self.cursor_row + 1)
        self.post_message(self.SelectionChanged(frozenset(self.selected)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.RunOpened(event.row_key.value))
