"""`?`: the keys of the current screen, from its key table (ftui/screens/keys.py), which also builds its
bindings and its palette commands, so the three cannot drift apart."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = """ftui: manage the fine-tuning sweep declared in experiments.toml.
Runs continue when the app closes: a detached worker process runs the queue.
ctrl+p opens the command palette: every action is there too."""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 80; max-width: 100%; height: auto; max-height: 100%; border: round $primary;
        background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        lines = [INTRO, ""]
        for title, keys in self.sections:
            lines.append(f"{title}")
            lines.extend(f"  {key:<14} {description}" for key, description in keys)
            lines.append("")
        lines.append("escape closes this help.")
        with VerticalScroll():
            yield Static("\n".join(lines), markup=False, id="help-text")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
