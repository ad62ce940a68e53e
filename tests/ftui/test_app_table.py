"""The home table (ftui/widgets/run_table.py) against Textual's own DataTable.

`RunTable` fills the DataTable's row store in one pass instead of one `add_row` per row, writes changed cells
in bulk instead of one `update_cell` each, and draws its lines itself from per-row caches. These tests hold it
to what a DataTable filled the ordinary way shows: the same strips drawn segment by segment (text, colours,
the mouse metadata), focused or not, with the cursor and the mouse hover anywhere, scrolled down and
sideways; the same column widths and virtual size; the same cursor and scroll after the same keys, filters
and clicks; and they check that a refresh in which nothing changed touches nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import DataTable

from ftui.app_data import RunRow
from ftui.widgets.run_table import COLUMNS, RunTable, row_cells

STATES = ("done", "running", "queued", "failed", "new", "trained", "blocked")


def make_rows(count: int) -> list[RunRow]:
    return [
        RunRow(
            key=f"ft{i % 3 + 1}-{i % 7 + 1}/seed-{i}",
            experiment=f"ft{i % 3 + 1}-{i % 7 + 1}",
            seed=i,
            family=f"ft{i % 3 + 1}",
            tasks="D+Co" if i % 2 else "all",
            state=STATES[i % len(STATES)],
            action="train" if STATES[i % len(STATES)] == "running" else None,
            step=i * 10 if i % 2 else None,
            total_steps=1000 if i % 2 else None,
            loss=1.0 / (i + 1) if i % 2 else None,
            eta_s=float(i * 37) if STATES[i % len(STATES)] == "running" else None,
            gpu="gpu0" if STATES[i % len(STATES)] == "running" else None,
            result=f"D {400 + i} Co {i % 100}%" if i % 4 == 0 else "",
        )
        for i in range(count)
    ]


class Tables(App[None]):
    CSS = "#bulk, #plain { height: 20; }"

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    def on_run_table_run_opened(self, message: RunTable.RunOpened) -> None:
        self.opened.append(message.key)

    def compose(self) -> ComposeResult:
        yield RunTable(id="bulk")
        yield DataTable(id="plain", cursor_type="row", zebra_stripes=False)

    def on_mount(self) -> None:
        plain = self.query_one("#plain", DataTable)
        for key, label in COLUMNS:
            plain.add_column(label, key=key)

    def fill_plain(self, rows: list[RunRow], selected: set[str]) -> None:
        """The ordinary way: clear, then one add_row per row (what RunTable did before issue 18)."""
        plain: DataTable[Any] = self.query_one("#plain", DataTable)
        plain.clear()
        for r in rows:
            cells = row_cells(r, r.key in selected)
            plain.add_row(*(cells[c] for c, _ in COLUMNS), key=r.key)


def drawn(table: DataTable[Any]) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


def strips(table: DataTable[Any]) -> list[list[Any]]:
    """Every line on screen as its segments: text, style (colours, attributes, the row/column metadata that
    mouse clicks read) and control codes."""
    table._pseudo_class_state = table.get_pseudo_class_state()  # as render_lines sets it before drawing
    return [list(table.render_line(y)) for y in range(table.size.height)]


async def same_strips(pilot: Any, bulk: RunTable, plain: DataTable[Any]) -> None:
    """Both tables draw the same segments, each compared focused (the other table blurred) and blurred."""
    for focused in (True, False):
        for table in (bulk, plain):
            if focused:
                table.focus()
            else:
                pilot.app.set_focus(None)
            await pilot.pause()
            table.refresh()
        bulk.focus() if focused else pilot.app.set_focus(None)
        await pilot.pause()
        mine = strips(bulk)
        plain.focus() if focused else pilot.app.set_focus(None)
        await pilot.pause()
        assert mine == strips(plain), f"focused={focused}"


def layout(table: DataTable[Any]) -> tuple[list[int], Any, int]:
    return [c.content_width for c in table.ordered_columns], table.virtual_size, table.row_count


async def both_filled(
    app: Tables, pilot: Pilot[Any], n: int
) -> tuple[RunTable, DataTable[Any], list[RunRow]]:
    """The RunTable, and a DataTable filled the normal way (`add_row`), both holding the same `n` rows."""
    bulk = app.query_one(RunTable)
    plain = app.query_one("#plain", DataTable)
    rows = make_rows(n)
    bulk.set_rows(rows)
    app.fill_plain(rows, set())
    await pilot.pause()
    return bulk, plain, rows


async def test_bulk_fill_draws_what_add_row_draws() -> None:
    app = Tables()
    async with app.run_test(size=(160, 50)) as pilot:
        bulk, plain, rows = await both_filled(app, pilot, 300)
        assert layout(bulk) == layout(plain)
        assert drawn(bulk) == drawn(plain)
        assert bulk.get_row_at(123) == plain.get_row_at(123)

        # A filter: fewer rows, in another order; the widths never narrow, as with add_row.
        subset = [r for r in rows if r.state == "running"]
        bulk.set_rows(subset)
        app.fill_plain(subset, set())
        await pilot.pause()
        assert layout(bulk) == layout(plain)
        assert drawn(bulk) == drawn(plain)


async def test_changed_cells_are_written_and_widen_their_column() -> None:
    app = Tables()
    async with app.run_test(size=(160, 50)) as pilot:
        bulk = app.query_one(RunTable)
        plain = app.query_one("#plain", DataTable)
        rows = make_rows(50)
        bulk.set_rows(rows)
        await pilot.pause()
        rows[3] = replace(rows[3], state="failed", result="a much longer result than any other one here")
        rows[7] = replace(rows[7], step=999, total_steps=1000, loss=0.5)
        bulk.set_rows(rows)
        app.fill_plain(rows, set())
        await pilot.pause()
        assert layout(bulk) == layout(plain)
        assert drawn(bulk) == drawn(plain)
        assert "failed" in str(bulk.get_cell(rows[3].key, "state"))


async def test_a_refresh_with_nothing_changed_touches_nothing() -> None:
    app = Tables()
    async with app.run_test(size=(160, 50)) as pilot:
        bulk = app.query_one(RunTable)
        rows = make_rows(200)
        bulk.set_rows(rows)
        await pilot.pause()
        count = bulk._update_count  # the DataTable's render caches are keyed on it
        bulk.set_rows(list(rows))  # the same row objects: AppData.rows() hands back unchanged rows as-is
        assert bulk._update_count == count
        bulk.set_rows([*rows[:5], replace(rows[5], loss=0.123), *rows[6:]])
        assert bulk._update_count == count + 1  # one flush for the refresh, however many cells changed


async def test_reload_keeps_the_cursor_and_the_selection() -> None:
    app = Tables()
    async with app.run_test(size=(160, 50)) as pilot:
        bulk = app.query_one(RunTable)
        rows = make_rows(100)
        bulk.set_rows(rows)
        await pilot.pause()
        bulk.move_cursor(row=42)
        await pilot.press("space")  # select row 42, the cursor moves to 43
        await pilot.pause()
        key = rows[43].key
        assert bulk.selected == {rows[42].key}
        assert bulk.get_cell(rows[42].key, "sel") == "●"
        kept = [r for i, r in enumerate(rows) if i % 2 == 1 or i == 42]
        bulk.set_rows(kept)
        await pilot.pause()
        assert bulk.current_key == key
        assert bulk.selected == {rows[42].key}
        assert bulk.get_cell(rows[42].key, "sel") == "●"
        bulk.set_rows([r for r in kept if r.key != rows[42].key])
        assert bulk.selected == set()


async def test_strips_match_the_datatable_with_cursor_hover_and_scroll() -> None:
    app = Tables()
    async with app.run_test(size=(160, 50)) as pilot:
        bulk = app.query_one(RunTable)
        plain = app.query_one("#plain", DataTable)
        rows = make_rows(300)
        selected = {rows[2].key, rows[5].key}
        bulk.selected |= selected
        bulk.set_rows(rows)
        app.fill_plain(rows, selected)
        await pilot.pause()
        await same_strips(pilot, bulk, plain)
        for table in (bulk, plain):  # the cursor mid-page, scrolled down, the mouse hover on another row
            table.move_cursor(row=150)
            table.hover_coordinate = type(table.cursor_coordinate)(155, 2)
            table._show_hover_cursor = True
        await pilot.pause()
        assert bulk.scroll_y == plain.scroll_y > 0
        await same_strips(pilot, bulk, plain)


async def test_strips_match_when_scrolled_sideways() -> None:
    app = Tables()
    async with app.run_test(size=(60, 50)) as pilot:  # narrower than the table: it scrolls sideways
        bulk, plain, rows = await both_filled(app, pilot, 40)
        for table in (bulk, plain):
            table.scroll_to(x=17, animate=False)
        await pilot.pause()
        assert bulk.scroll_x == plain.scroll_x == 17
        await same_strips(pilot, bulk, plain)


async def test_keys_filters_and_clicks_move_both_tables_alike() -> None:
    """A few hundred rows: the same key presses, filters and clicks leave the cursor and the scroll where the
    DataTable leaves them, and the tables draw the same lines."""
    app = Tables()
    async with app.run_test(size=(160, 50)) as pilot:
        bulk, plain, rows = await both_filled(app, pilot, 400)

        async def press(*keys: str) -> None:
            for table in (bulk, plain):
                table.focus()
                await pilot.pause()
                await pilot.press(*keys)
                await pilot.pause()
            assert bulk.cursor_row == plain.cursor_row, keys
            assert (bulk.scroll_x, bulk.scroll_y) == (plain.scroll_x, plain.scroll_y), keys

        await press("down", "down", "down")
        assert bulk.cursor_row == 3
        await press("pagedown", "pagedown")
        await press("down", *["pagedown"] * 30)  # past the end: clamped to the last row
        assert bulk.cursor_row == 399
        await press("pageup", "up", "up")
        await press("ctrl+home")
        assert bulk.cursor_row == 0 and bulk.scroll_y == 0
        await press("ctrl+end", "pageup")
        await press("home", "right", "right", "left")
        await same_strips(pilot, bulk, plain)

        # A filter keeps the cursor on its run when that run is still shown (DataTable: clear and refill).
        bulk.move_cursor(row=200)
        await pilot.pause()
        key = bulk.current_key
        assert key is not None
        subset = [r for r in rows if r.state in ("running", "done") or r.key == key]
        bulk.set_rows(subset)
        app.fill_plain(subset, set())
        plain.move_cursor(row=[r.key for r in subset].index(key))
        await pilot.pause()
        assert bulk.current_key == key and bulk.keys == [r.key for r in subset]
        assert bulk.cursor_row == plain.cursor_row
        await press("down", "pagedown", "up")
        await same_strips(pilot, bulk, plain)
        bulk.set_rows(rows)  # the filter cleared
        await pilot.pause()
        assert bulk.row_count == 400 and bulk.keys == [r.key for r in rows]

        # Clicks: a row moves the cursor there; a click on the cursor row opens the run.
        app.opened.clear()
        bulk.focus()
        bulk.move_cursor(row=0)
        await pilot.pause()
        await pilot.click(RunTable, offset=(30, 4))  # the header is line 0: line 4 is the row at scroll_y + 3
        await pilot.pause()
        target = int(bulk.scroll_y) + 3
        assert bulk.cursor_row == target
        await pilot.click(RunTable, offset=(30, 4))
        await pilot.pause()
        assert app.opened == [bulk.keys[target]]


def test_filter_rows_keeps_what_matching_row_by_row_kept() -> None:
    """The home filter parses its words once per key (ftui/screens/home_screen.py `filter_rows`); it keeps
    the rows, in order, that the word-by-word match of each row kept."""
    import fnmatch

    from ftui.screens.home_screen import filter_rows, row_matches

    def matches(row: RunRow, text: str) -> bool:  # the match before issue 18, one row at a time
        for word in text.lower().split():
            if any(ch in word for ch in "*?["):
                if not fnmatch.fnmatchcase(row.key.lower(), word):
                    return False
            elif word not in row.search_text:
                return False
        return True

    rows = make_rows(300)
    for text in (
        "ft2",
        "FT2-3",
        "ft2-* running",
        "*seed-1?",
        "ft[12]-1/*",
        "done all",
        "seed-3 d+co",
        "zzz",
        "a",
    ):
        kept = filter_rows(rows, text)
        assert kept == [r for r in rows if matches(r, text)], text
        assert all(row_matches(r, text) == (r in kept) for r in rows[:50]), text
    assert 0 < len(filter_rows(rows, "ft2-*")) < len(rows)


async def test_plain_cells_drawn_without_rich_are_what_rich_draws() -> None:
    """RunTable draws a plain ASCII cell as one padded segment without Rich: the same segments as Rich's,
    in every cursor and focus state; cells that are not plain (markup, emoji codes, too long) go to Rich."""
    app = Tables()
    async with app.run_test(size=(160, 50)) as pilot:
        bulk = app.query_one(RunTable)
        await pilot.pause()
        values = ["a", "ft2-1/seed-3", "D 400 Co 12%", "0.123", "10/1000", "x y", "a\\b", "12345678"]
        for focused in (True, False):
            bulk.focus() if focused else app.set_focus(None)
            await pilot.pause()
            base = bulk.rich_style
            for cursor, hover in ((False, False), (True, False), (False, True), (True, True)):
                bulk._show_hover_cursor = hover
                state = (cursor, hover, base, bulk.get_pseudo_class_state(), bulk._style_epoch)
                for value in values:
                    width = len(value) + 2 + (len(value) % 3)
                    assert bulk._is_plain(value, width)
                    fast = bulk._cell_segments(value, width, state, cursor, hover)
                    bulk._cell_cache.clear()
                    bulk._is_plain = lambda value, width: False  # type: ignore[method-assign]
                    slow = bulk._cell_segments(value, width, state, cursor, hover)
                    del bulk._is_plain
                    bulk._cell_cache.clear()
                    assert fast == slow, (value, focused, cursor, hover)
        for value, width in (("[b]x[/b]", 12), ("a:smile:", 12), ("too long", 6), ("é", 5)):
            assert not bulk._is_plain(value, width)


async def test_visible_keys_are_the_rows_drawn() -> None:
    """What the app's refresh looks at every tick (ftui/app_data.py SWEEP_RUNS): the rows on screen."""
    app = Tables()
    async with app.run_test(size=(160, 50)) as pilot:
        bulk, _, rows = await both_filled(app, pilot, 300)
        height = bulk.scrollable_content_region.height - bulk.header_height
        assert bulk.visible_keys() == [r.key for r in rows[:height]]
        bulk.focus()
        await pilot.press("pagedown", "pagedown", "down")
        await pilot.pause()
        first = int(bulk.scroll_y)
        assert first > 0 and bulk.visible_keys() == [r.key for r in rows[first : first + height]]
        assert bulk.current_key in bulk.visible_keys()
        assert all(key in " ".join(drawn(bulk)) for key in bulk.visible_keys())
