"""A log tail that follows the end, stops following when the user scrolls up, counts waiting lines, searches.

Lines arrive in batches (one write per tick: measured ~3.9k lines/s with one call per line, 100k lines in
0.29 s batched), and `max_lines` bounds memory however long the run. The unfinished last line of the file (a
progress bar redrawn with `\\r`) shows as a live last line that each batch replaces. Lines come cleaned
(ftui.safe_text): they hold no control character and no line break.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.widgets import Label, Log

DEFAULT_MAX_LINES = 20_000


class TailLog(Log):
    """`Log` with a live last line; tells its `LogView` when the user scrolls back to the end (to clear the
    waiting count)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.has_live_line = False

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self.is_vertical_scroll_end and isinstance(self.parent, LogView):
            self.parent.caught_up()

    def write_tail(self, lines: list[str], live: str) -> None:
        """Append complete `lines` and put `live` (none when empty) in place of the previous live line.

        `Log.write_lines` splits at every `str.splitlines` break (so `\\r` made one line per redraw of a
        progress bar, and an empty line vanished) and cannot replace a line: this works on `Log`'s line list
        directly, like `Log.write_lines` does (Textual 8, pinned below 9 in pyproject.toml).
        """
        following = self.is_vertical_scroll_end
        start = len(self._lines)
        if self.has_live_line:
            self._lines.pop()
            start -= 1
        self._lines.extend(lines)
        self.has_live_line = bool(live)
        if live:
            self._lines.append(live)
        changed = self._lines[start:]
        self.refresh_lines(start, max(1, len(changed)))
        if self.max_lines is not None and len(self._lines) > self.max_lines:
            self._prune_max_lines()
            self.refresh()  # every line moved up
        self.virtual_size = Size(self._width, len(self._lines))
        self._update_size(self._updates, changed)
        if self.auto_scroll and not self.is_vertical_scrollbar_grabbed and following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.refresh()


class LogView(Vertical):
    DEFAULT_CSS = """
    LogView { height: 1fr; }
    LogView > TailLog { height: 1fr; border: none; }
    LogView > #log-status { height: 1; width: 1fr; color: $text-muted; background: $boost; padding: 0 1; }
    LogView > #log-status.-waiting { color: $warning; text-style: bold; }
    """

    def __init__(self, *, max_lines: int = DEFAULT_MAX_LINES, id: str | None = None) -> None:
        super().__init__(id=id)
        self._max_lines = max_lines
        self.waiting = 0  # lines that arrived while the user was scrolled up
        self.total_lines = 0
        self._search: str = ""
        self._match_at: int | None = None

    def compose(self) -> ComposeResult:
        yield TailLog(max_lines=self._max_lines, highlight=False, id="log")
        yield Label("", id="log-status", markup=False)

    @property
    def log_widget(self) -> TailLog:
        return self.query_one(TailLog)

    @property
    def following(self) -> bool:
        return self.log_widget.is_vertical_scroll_end

    def append(self, lines: list[str], live: str | None = None) -> None:
        """Write one batch of complete lines and the live last line ("": none; None: leave it); the caller
        batches per tick. Only complete lines count (status line, waiting count)."""
        log = self.log_widget
        if not lines and (live is None or (live == "" and not log.has_live_line)):
            return
        following = log.is_vertical_scroll_end
        if live is None:
            live = log.lines[-1] if log.has_live_line else ""
        log.write_tail(lines, live)
        self.total_lines += len(lines)
        if not following:
            self.waiting += len(lines)
        self._show_status()

    def caught_up(self) -> None:
        if self.waiting:
            self.waiting = 0
            self._show_status()

    def follow(self) -> None:
        """Jump to the end and follow again."""
        self.log_widget.scroll_end(animate=False, immediate=True, x_axis=False)
        self.caught_up()

    def search(self, text: str, *, backwards: bool = False) -> int | None:
        """Scroll to the next line containing `text` (case-insensitive); returns its index or None."""
        self._search = text
        needle = text.lower()
        lines = self.log_widget.lines
        if not needle or not lines:
            self._match_at = None
            self._show_status()
            return None
        count = len(lines)
        if self._match_at is None:
            start = count - 1 if backwards else int(self.log_widget.scroll_y)
        else:
            start = self._match_at + (-1 if backwards else 1)
        for i in range(count):
            index = (start - i if backwards else start + i) % count
            if needle in lines[index].lower():
                self._match_at = index
                self.log_widget.scroll_to(y=max(0, index - 2), animate=False, immediate=True)
                self._show_status()
                return index
        self._match_at = None
        self._show_status(f"'{text}' not found")
        return None

    def _show_status(self, message: str | None = None) -> None:
        status = self.query_one("#log-status", Label)
        parts: list[str] = []
        if self.waiting:
            parts.append(f"{self.waiting} new lines (end: follow)")
        if message:
            parts.append(message)
        elif self._search and self._match_at is not None:
            parts.append(f"'{self._search}' at line {self._match_at + 1} (n/N: next/previous)")
        if not parts:
            parts.append(
                f"{self.total_lines} lines, following" if self.following else f"{self.total_lines} lines"
            )
        status.update(" · ".join(parts))
        status.set_class(bool(self.waiting), "-waiting")
