"""Shown instead of the app when experiments.toml is missing or invalid: every problem, no traceback."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static


class RegistryErrorScreen(Screen[None]):
    DEFAULT_CSS = """
    RegistryErrorScreen #registry-error-title { color: $error; text-style: bold; padding: 0 1; height: auto; }
    RegistryErrorScreen #registry-error-text { padding: 0 1; }
    RegistryErrorScreen #registry-error-hint { color: $text-muted; padding: 1 1 0 1; height: auto; }
    """
    BINDINGS = [Binding("q", "app.quit", "Quit")]

    def __init__(self, path: str, problems: str) -> None:
        super().__init__()
        self.path = path
        self.problems = problems

    def compose(self) -> ComposeResult:
        yield Static(f"Cannot open {self.path}", id="registry-error-title", markup=False)
        with VerticalScroll():
            yield Static(self.problems, id="registry-error-text", markup=False)
            yield Static(
                "Fix the file and start ftui again (`ftui validate` prints the same list). q quits.",
                id="registry-error-hint",
                markup=False,
            )
        yield Footer()
