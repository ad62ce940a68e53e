"""The home table: one row per run. Rows are diffed so a refresh only touches the cells that changed.

Thousands of runs: Textual's `DataTable` draws only the rows on screen, but filling it row by row (`add_row`,
then every cell measured on idle) and updating it cell by cell (`update_cell`: one cache flush each) is linear
in the number of rows with a large constant (0.9 s for 5,000 rows on a 2-core machine). `RunTable` keeps the
DataTable's behaviour (keys, cursor, mouse, messages) and writes its row store in bulk instead: one pass over
the rows, the widths measured the way the DataTable measures them (cached per cell value), and one cache
flush per refresh.

It also draws its rows itself (`render_line`): the DataTable keys its line and row caches on the cursor's
position and on a counter bumped by every change, so each key press (cursor moved, page scrolled, filter
typed) re-composed every row on screen and re-rendered every new cell through Rich (270 ms a key at 5,000
runs). `RunTable` renders a cell the way the DataTable does (`Styled(Padding(cell))` through the console;
a plain ASCII cell as the one padded segment Rich would give it), caches it per cell value, width and cursor
state, composes a row's line from its cells with the row's mouse metadata added afterwards, and caches the
line per row object (rows are immutable and reused when unchanged), position, cursor state and width. A key
costs the rows on screen that changed; the geometry the DataTable computes by summing every row's height
(rows here are one line high) is computed in O(1).

The DataTable internals it writes or overrides (`_data`, `rows`, `_row_locations`, `_update_count`, a
column's `content_width`, `_y_offsets`, `_get_row_region`, ...) are those of Textual 8.2, the pinned version;
tests/ftui/test_app_table.py checks the result against a DataTable filled with `add_row`, strip by strip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._segment_tools import line_crop
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Spacing
from textual.message import Message
from textual.render import measure
from textual.renderables.styled import Styled
from textual.strip import Strip
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


_STATE_CELLS: dict[tuple[str, str | None], Text] = {}  # one Text per state shown (never modified: shared)


def state_cell(state: str, action: str | None) -> Text:
    cell = _STATE_CELLS.get((state, action))
    if cell is None:
        text = f"{STATE_SYMBOLS.get(state, '?')} {state}"
        if action and state in ("running", "queued", "waiting"):
            text += f" {action}"
        cell = _STATE_CELLS[state, action] = Text(text, style=STATE_STYLES.get(state, ""))
    return cell


def row_cells(row: RunRow, selected: bool) -> dict[str, Text | str]:
    steps = f"{row.step}/{row.total_steps}" if row.step is not None and row.total_steps else ""
    return {
        "sel": "●" if selected else " ",
        "name": row.key,
        "tasks": row.tasks,
        "state": state_cell(row.state, row.action),
        "progress": format_bar(row.fraction),
        "steps": steps,
        "loss": f"{row.loss:.3f}" if row.loss is not None else "",
        "eta": format_eta(row.eta_s),
        "gpu": row.gpu or "",
        "result": row.result,
    }


COLUMN_KEYS = tuple(ColumnKey(key) for key, _ in COLUMNS)


@dataclass(eq=False)  # hashed by identity: a key of the line cache
class _Shown:
    """One row as the table holds it: the RunRow and selection it was drawn from, its cells (the dict the
    DataTable reads, keyed by column), each cell's width, and the DataTable's key and metadata for it."""

    row: RunRow
    selected: bool
    cells: dict[str, Text | str]  # the DataTable keys them by ColumnKey, equal to the name
    widths: list[int]
    key: RowKey
    meta: Row


class _Offsets:
    """`DataTable._y_offsets` (one (row key, line in row) per line) for rows one line high, without building a
    list of every row on each change."""

    def __init__(self, table: DataTable[Text | str]) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table.rows)

    def __getitem__(self, y: int) -> tuple[RowKey, int]:
        key = self._table._row_locations.get_key(y) if 0 <= y < len(self._table.rows) else None
        if key is None:
            raise IndexError(y)
        return key, 0

    def clear(self) -> None:
        pass


def _cell_key(value: Text | str) -> object:
    """A hashable key for what a cell draws (a Text is not hashable)."""
    if isinstance(value, str):
        return value
    return ("\0", value.plain, str(value.style), tuple(value.spans), value.justify, value.overflow)


_META: dict[tuple[int, int], Style] = {}  # (row, column) -> the mouse metadata the DataTable puts on a cell


def _meta(row: int, column: int) -> Style:
    style = _META.get((row, column))
    if style is None:
        if len(_META) > 50_000:
            _META.clear()
        style = _META[row, column] = Style.from_meta({"row": row, "column": column})
    return style


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
        self._offsets = _Offsets(self)
        self._created: list[_Shown] = []  # rows drawn for the first time since the last reload
        self._base_style: Style | None = None  # the widget's style while `render_lines` draws
        # Drawing (see the module docstring): a cell's segments without mouse metadata, and whole lines.
        self._cell_cache: LRUCache[tuple[object, ...], list[Segment]] = LRUCache(20_000)
        self._line_cache_rt: LRUCache[tuple[object, ...], Strip] = LRUCache(2_000)
        self._style_epoch = 0  # bumped when CSS or the theme changes: the component styles then differ

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

    def visible_keys(self) -> list[str]:
        """The runs of the rows on screen (one line each: the vertical scroll offset is the first one's
        index), the app's refresh looks at their folders every tick (ftui/app_data.py SWEEP_RUNS)."""
        height = self.scrollable_content_region.height - (self.header_height if self.show_header else 0)
        first = max(0, int(self.scroll_y))
        return self._order[first : first + max(0, height)]

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
        self._created = []
        shown = [self._entry(r) for r in rows]
        self._data.update((s.key, s.cells) for s in shown)  # type: ignore[misc]
        self.rows.update((s.key, s.meta) for s in shown)
        self._row_locations = TwoWayDict({s.key: index for index, s in enumerate(shown)})
        # Only rows drawn for the first time can widen a column: the others did when they were (a filter shows
        # rows drawn before, and the DataTable's widths never narrow).
        self._grow_columns([s.widths for s in self._created])
        self._created.clear()
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
        self._created.clear()
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
        known = self._widths.get
        widths = [
            known(value if isinstance(value, str) else "\0" + value.plain) or self._width(value)
            for value in cells.values()
        ]
        key = shown.key if shown is not None else RowKey(r.key)
        meta = shown.meta if shown is not None else Row(key, 1)
        shown = self._shown[r.key] = _Shown(r, selected, cells, widths, key, meta)
        self._created.append(shown)
        return shown

    def _width(self, value: Text | str) -> int:
        """The width the DataTable measures for a cell (`default_cell_formatter` then `measure`), cached per
        text (a str cell is read as markup, a Text is not)."""
        cache_key = value if isinstance(value, str) else "\0" + value.plain
        width = self._widths.get(cache_key)
        if width is None:
            plain = value if isinstance(value, str) else value.plain
            if plain.isascii() and plain.isprintable() and (isinstance(value, Text) or "[" not in plain):
                width = len(
                    plain
                )  # what `cell_len` finds for printable ASCII, without its per-character check
            elif plain.isprintable() and (isinstance(value, Text) or "[" not in plain):
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

    # -- drawing: the DataTable's lines, cached per row object (see the module docstring) -----------------
    @property
    def _y_offsets(self) -> _Offsets:  # type: ignore[override]
        return self._offsets

    @property
    def _total_row_height(self) -> int:
        return len(self.rows)

    def _get_fixed_offset(self) -> Spacing:
        return Spacing(self.header_height if self.show_header else 0, 0, 0, self._row_label_column_width)

    def _table_width(self) -> int:
        return (
            sum(column.get_render_width(self) for column in self.columns.values())
            + self._row_label_column_width
        )

    def _get_row_region(self, row_index: int) -> Region:
        if not self.is_valid_row_index(row_index):
            return Region(0, 0, 0, 0)
        y = row_index + (self.header_height if self.show_header else 0)
        return Region(0, y, max(self.size.width, self._table_width()), 1)

    def _get_cell_region(self, coordinate: Any) -> Region:
        if not self.is_valid_coordinate(coordinate):
            return Region(0, 0, 0, 0)
        row_index, column_index = coordinate
        columns = self.ordered_columns
        x = (
            sum(column.get_render_width(self) for column in columns[:column_index])
            + self._row_label_column_width
        )
        y = row_index + (self.header_height if self.show_header else 0)
        return Region(x, y, columns[column_index].get_render_width(self), 1)

    def action_page_down(self) -> None:
        """The DataTable's page down, its loop over the following rows' heights counted (all are 1)."""
        self._set_hover_cursor(False)
        if self.show_cursor and self.cursor_type in ("cell", "row"):
            height = self.scrollable_content_region.height - (self.header_height if self.show_header else 0)
            row_index = self.cursor_row
            rows_to_scroll = min(height + 1, max(0, self.row_count - row_index))
            self.scroll_relative(y=height, animate=False, force=True)
            self.move_cursor(row=row_index + rows_to_scroll - 1, scroll=False)
        else:
            super().action_page_down()

    def action_page_up(self) -> None:
        self._set_hover_cursor(False)
        if self.show_cursor and self.cursor_type in ("cell", "row"):
            height = self.scrollable_content_region.height - (self.header_height if self.show_header else 0)
            row_index = self.cursor_row
            rows_to_scroll = min(height + 1, max(0, min(row_index + 1, self.row_count)))
            self.scroll_relative(y=-height, animate=False)
            self.move_cursor(row=row_index - rows_to_scroll + 1, scroll=False)
        else:
            super().action_page_up()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style_epoch += 1
        self._cell_cache.clear()
        self._line_cache_rt.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        self._base_style = self.rich_style  # computed once for the lines drawn now, not once a line
        try:
            return super().render_lines(crop)
        finally:
            self._base_style = None

    def render_line(self, y: int) -> Strip:
        header = self.header_height if self.show_header else 0
        if (
            y < header
            or self.cursor_type != "row"
            or self.fixed_rows
            or self.fixed_columns
            or self._labelled_row_exists
        ):
            return super().render_line(y)  # the header: the DataTable's own (it caches it)
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        base_style = self._base_style or self.rich_style
        index = y + scroll_y - header
        if not 0 <= index < len(self._order):
            return Strip.blank(width, base_style)
        shown = self._shown[self._order[index]]
        show_cursor, show_hover = self.show_cursor, self._show_hover_cursor
        cursor = self.cursor_row == index
        hover = self.hover_row == index
        state = (
            cursor and show_cursor,
            hover and show_cursor and show_hover,
            base_style,
            self._pseudo_class_state,
            self._style_epoch,
        )
        widths = tuple(column.get_render_width(self) for column in self.ordered_columns)
        key = (shown, index, state, cursor, hover, show_cursor, show_hover, widths, width, scroll_x)
        strip = self._line_cache_rt.get(key)
        if strip is None:
            strip = self._line_cache_rt[key] = self._draw_line(shown, index, state, cursor, hover, widths)
        return strip

    def _draw_line(
        self,
        shown: _Shown,
        index: int,
        state: tuple[object, ...],
        cursor: bool,
        hover: bool,
        widths: tuple[int, ...],
    ) -> Strip:
        """What `DataTable._render_line` draws for the row at `index` (no fixed columns, no labels)."""
        base_style = state[2]
        assert isinstance(base_style, Style)
        segments: list[Segment] = []
        for column_index, (value, cell_width) in enumerate(zip(shown.cells.values(), widths, strict=True)):
            meta = _meta(index, column_index)
            segments.extend(
                Segment(text, style + meta if style is not None else meta, control)
                for text, style, control in self._cell_segments(value, cell_width, state, cursor, hover)
            )
        width = self.size.width
        remaining = max(0, width - sum(widths) - self._row_label_column_width)
        extend_style, _ = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor, False, False
        )
        extend_style = (
            base_style + extend_style + Style.from_meta({"row": index, "column": 0, "out_of_bounds": True})
        )
        segments.append(Segment(" " * remaining, extend_style))
        scroll_x = self.scroll_offset.x
        cropped = line_crop(segments, scroll_x, scroll_x + width, width)
        return Strip(cropped).adjust_cell_length(width, base_style).simplify()

    def _cell_segments(
        self, value: Text | str, width: int, state: tuple[object, ...], cursor: bool, hover: bool
    ) -> list[Segment]:
        """A cell as `DataTable._render_cell` renders it, without the row and column metadata (added by the
        caller); cached per cell value, width and cursor state."""
        key = (_cell_key(value), width, state)
        segments = self._cell_cache.get(key)
        if segments is None and self._is_plain(value, width):
            # A one-line cell of printable ASCII, no markup, that fits: Rich draws it as one segment of the
            # cell's style, the text padded to the width. That style is read from a reference cell ("x")
            # drawn by Rich in the same state; the test checks the result against Rich for every cell drawn.
            plain = self._cell_segments("x", 2 * self.cell_padding + 2, state, cursor, hover)
            if len(plain) == 1 and isinstance(value, str):
                pad = " " * self.cell_padding
                text = pad + value.ljust(width - 2 * self.cell_padding) + pad
                segments = self._cell_cache[key] = [Segment(text, plain[0].style)]
                return segments
        if segments is None:
            base_style = state[2]
            assert isinstance(base_style, Style)
            cell = default_cell_formatter(value, wrap=False, height=1) or Text(no_wrap=True, end="")
            component_style, post_style = self._get_styles_to_render_cell(
                False,
                False,
                False,
                hover,
                cursor,
                self.show_cursor,
                self._show_hover_cursor,
                self.cursor_foreground_priority == "css",
                self.cursor_background_priority == "css",
            )
            options = self.app.console_options.update_dimensions(width, 1).update(no_wrap=True)
            lines = self.app.console.render_lines(
                Styled(
                    Padding(cell, (0, self.cell_padding)),
                    pre_style=base_style + component_style,
                    post_style=post_style,
                ),
                options,
            )
            # Neighbours of one style merged (the padding and the text of a plain cell): fewer segments to add
            # the metadata to; the line is simplified in the end, as the DataTable's is, so it is the same.
            segments = self._cell_cache[key] = list(Segment.simplify(lines[0]))
        return segments

    def _is_plain(self, value: Text | str, width: int) -> bool:
        """A str cell Rich draws as one segment: printable ASCII, no markup ("[") or emoji code (":"), shorter
        than the column (else Rich crops it); not the reference cell itself."""
        return (
            isinstance(value, str)
            and value != "x"
            and value.isascii()
            and value.isprintable()
            and "[" not in value
            and ":" not in value
            and 0 < len(value) <= width - 2 * self.cell_padding
        )

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
