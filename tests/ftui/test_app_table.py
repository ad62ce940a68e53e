"""The home table's bulk writes (ftui/widgets/run_table.py) against Textual's own DataTable.

`RunTable` fills the DataTable's row store in one pass instead of one `add_row` per row, and writes changed
cells in bulk instead of one `update_cell` each. These tests hold it to what a DataTable filled the ordinary
way shows: the same lines drawn, the same column widths, the same virtual size; and they check that a refresh
in which nothing changed touches nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.app import App, ComposeResult
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


def layout(table: DataTable[Any]) -> tuple[list[int], Any, int]:
    return [c.content_width for c in table.ordered_columns], table.virtual_size, table.row_count


async def test_bulk_fill_draws_what_add_row_draws() -> None:
    app = Tables()
    async with app.run_test(size=(160, 50)) as pilot:
        bulk = app.query_one(RunTable)
        plain = app.query_one("#plain", DataTable)
        rows = make_rows(300)
        bulk.set_rows(rows)
        app.fill_plain(rows, set())
        await pilot.pause()
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
