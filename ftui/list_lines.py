"""`ftui list` for people: one line per run that fits the terminal, then a summary.

Columns: run, state, progress (and ETA), loss, result (or the reason of a failure). The run's name is elided
in the middle ("ftwb2-lo…-name-3": its start and its distinguishing end stay), the result at its end; nothing
is wrapped. `ftui list --wide` prints the full table instead (`ftui.status.print_table`).

The width is the terminal's when stdout is one, `COLUMNS` when set, else (piped into grep, a file) unlimited:
a pipe never gets an elided name.

Rich prints the lines, with the state's colour, where Rich would colour them (`styled_output`); elsewhere
(a pipe, a file, a script's `ftui list PATTERN`) the same characters are written without importing Rich's
console (some 30 ms of every command: issue 18).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from rich.cells import cell_len, set_cell_size

from ftui.safe_text import clean
from ftui.state_display import STATE_STYLES, STATE_SYMBOLS
from ftui.status import RunStatus, format_eta

ELLIPSIS = "…"
GAP = "  "
STATE_W = 11  # "⊘ cancelled"
PROGRESS_W = 10  # "50% 12m03s", "12/14 sets"
LOSS_W = 6  # "0.1234"
MIN_NAME_W = 8  # names are elided no shorter than this; the result gives way first
MIN_RESULT_W = 24  # the result keeps this much (when it is that long) before names are elided
# What Rich's Text leaves out of the characters it is given (rich.control.STRIP_CONTROL_CODES: bell,
# backspace, vertical tab, form feed, carriage return): the plain path writes what Rich would.
RICH_STRIPS = dict.fromkeys((7, 8, 11, 12, 13))


class Line(NamedTuple):
    """One printed line: its characters and the style of `text[start:end]` (a Rich style; "" for none)."""

    text: str
    style: str = ""
    start: int = 0
    end: int = 0


def styled_output() -> bool:
    """Whether Rich would write escape codes to stdout: a terminal, or told to by its environment variables
    (TTY_COMPATIBLE, FORCE_COLOR: https://rich.readthedocs.io/en/latest/console.html#environment-variables).
    Any of those set, Rich decides; none, and no terminal: Rich would print the characters alone."""
    return "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ or sys.stdout.isatty()


def output_width(stream_is_tty: bool | None = None) -> int | None:
    """Columns to fit: COLUMNS when set, the terminal's when stdout is a terminal, else None (no limit)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty() if stream_is_tty is None else stream_is_tty:
        return shutil.get_terminal_size().columns
    return None


def elide_middle(text: str, width: int) -> str:
    """`text` in at most `width` cells: whole, or its start and end around "…" (the end gets the extra cell,
    as run names differ at their end: "ft2-3/seed-42")."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    keep = width - 1
    start = set_cell_size(text, keep // 2).rstrip()  # a wide character that does not fit is left out
    tail = keep - cell_len(start)
    end = text[-tail:] if tail else ""
    while cell_len(end) > tail:  # wide characters: drop from the front of the end part
        end = end[1:]
    return start + ELLIPSIS + end


def progress_text(row: RunStatus) -> str:
    """ "50% 12m03s" (training: fraction of steps and the ETA), "2/6 sets" (evaluating), "eval" (an
    evaluation queued), "" otherwise."""
    if row.action == "eval" and row.eval_sets_done is not None:
        total = f"/{row.eval_sets_total}" if row.eval_sets_total else ""
        return f"{row.eval_sets_done}{total} sets"
    if row.state in ("queued", "waiting"):
        return row.action or ""
    if row.state == "running" and row.step is not None and row.total_steps:
        percent = f"{min(100, int(100 * row.step / row.total_steps))}%"
        return f"{percent} {format_eta(row.eta_s)}".strip()
    return ""


def detail_text(row: RunStatus) -> str:
    """Why a run is stale, else the result summary, or why a failed, blocked or cancelled run stopped
    (cleaned: reasons come from the engine and squeue and must not drive the terminal)."""
    if row.state == "stale":
        return clean(f"{row.stale}; was: {row.result}" if row.result else row.stale, one_line=True)
    detail = row.result or (row.reason if row.state in ("failed", "blocked", "cancelled") else "")
    return clean(detail, one_line=True)


def run_lines(rows: Sequence[RunStatus], width: int | None) -> list[Line]:
    """The header line and one line per run, each at most `width` cells (None: no limit)."""
    names = [clean(r.key, one_line=True) for r in rows]
    details = [detail_text(r) for r in rows]
    name_w = max([cell_len("run"), *map(cell_len, names)])
    detail_w = max([0, *map(cell_len, details)])
    if width is not None:
        room = width - (STATE_W + PROGRESS_W + LOSS_W + 4 * len(GAP))
        name_w = max(MIN_NAME_W, min(name_w, room - min(detail_w, MIN_RESULT_W)))
        detail_w = max(0, room - name_w)
    lines = [_line("run", "state", "", "progress", "loss", "result", name_w, detail_w)]
    for row, name, detail in zip(rows, names, details, strict=True):
        state = f"{STATE_SYMBOLS.get(row.state, '?')} {row.state}"
        loss = f"{row.loss:.4f}" if row.loss is not None else ""
        style = STATE_STYLES.get(row.state, "")
        lines.append(_line(name, state, style, progress_text(row), loss, detail, name_w, detail_w))
    if width is not None:  # a terminal narrower than the fixed columns
        lines = [_truncate(line, width) for line in lines]
    return lines


def _line(
    name: str, state: str, style: str, progress: str, loss: str, detail: str, name_w: int, detail_w: int
) -> Line:
    head = _pad(elide_middle(name, name_w), name_w) + GAP
    text = head + _pad(state, STATE_W) + GAP + progress.rjust(PROGRESS_W) + GAP + loss.rjust(LOSS_W)
    if detail and detail_w > 1:
        shown = detail if cell_len(detail) <= detail_w else set_cell_size(detail, detail_w - 1) + ELLIPSIS
        text += GAP + shown
    text = text.rstrip()
    return Line(text, style, len(head), min(len(text), len(head) + len(_pad(state, STATE_W))))


def _truncate(line: Line, width: int) -> Line:
    """At most `width` cells, ending in "…" when cut (as Rich's `Text.truncate(overflow="ellipsis")`: the
    style's span ends where the characters do)."""
    if cell_len(line.text) <= width:
        return line
    text = set_cell_size(line.text, width - 1) + ELLIPSIS
    return line._replace(text=text, start=min(line.start, len(text)), end=min(line.end, len(text)))


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - cell_len(text))


def wrapped(text: str, width: int | None) -> list[str]:
    """A summary line broken at spaces to fit `width` (None: one line)."""
    if width is None or cell_len(text) <= width:
        return [text]
    import textwrap  # (here: only a summary too wide for the terminal needs it)

    return textwrap.wrap(text, width, break_on_hyphens=False, subsequent_indent="  ") or [text]


def print_lines(rows: Sequence[RunStatus], runs_dir: Path, summary: Sequence[str], width: int | None) -> None:
    """`ftui list`: the runs folder, the header and one line per run, then the `summary` lines (wrapped)."""
    title = f"runs in {runs_dir}"
    lines = [Line(title if width is None else elide_middle(title, width)), *run_lines(rows, width)]
    lines += [Line(part) for text in summary for part in wrapped(text, width)]
    if not styled_output():
        sys.stdout.write("".join(f"{line.text}\n" for line in lines).translate(RICH_STRIPS))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(soft_wrap=True)  # lines already fit: Rich must neither wrap nor crop them
    for line in lines:
        text = Text(line.text)
        if line.style and line.end > line.start:
            text.stylize(line.style, line.start, line.end)
        console.print(text)
