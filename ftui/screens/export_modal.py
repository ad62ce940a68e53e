"""`x` on the heatmap screen: choose the format and the file; dismisses with the path (or None)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet

FORMATS = ("png", "pdf", "svg", "csv")


class ExportModal(ModalScreen[Path | None]):
    DEFAULT_CSS = """
    ExportModal { align: center middle; }
    ExportModal > Vertical {
        width: 70; max-width: 100%; height: auto; border: thick $primary; background: $surface; padding: 0 1;
    }
    ExportModal RadioSet { layout: horizontal; width: 1fr; height: auto; }
    ExportModal #export-error { color: $error; height: auto; }
    ExportModal Horizontal { height: auto; align: right middle; }
    ExportModal Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, folder: Path, stem: str, fmt: str = "png") -> None:
        super().__init__()
        self.folder = folder
        self.stem = stem
        self.fmt = fmt if fmt in FORMATS else "png"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Export the current view", markup=False)
            with RadioSet(id="export-format"):
                for fmt in FORMATS:
                    yield RadioButton(fmt.upper(), value=fmt == self.fmt, id=f"fmt-{fmt}")
            yield Label("file (enter to write):", markup=False)
            yield Input(str(self._path_for(self.fmt)), id="export-path")
            yield Label("", id="export-error", markup=False)
            with Horizontal():
                yield Button("Export", variant="primary", id="export-go")
                yield Button("Cancel", id="export-cancel")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    def _path_for(self, fmt: str) -> Path:
        return self.folder / f"{self.stem}.{fmt}"

    @on(RadioSet.Changed)
    def _format_changed(self, event: RadioSet.Changed) -> None:
        fmt = FORMATS[event.index]
        box = self.query_one("#export-path", Input)
        # Keep the user's folder and name; only the suffix follows the chosen format.
        current = Path(box.value) if box.value.strip() else self._path_for(fmt)
        box.value = str(current.with_suffix(f".{fmt}"))
        self.fmt = fmt

    @on(Input.Submitted, "#export-path")
    @on(Button.Pressed, "#export-go")
    def _submit(self) -> None:
        text = self.query_one("#export-path", Input).value.strip()
        if not text:
            self.query_one("#export-error", Label).update("Give a file name.")
            return
        path = Path(text).expanduser()
        if path.suffix.lower().lstrip(".") not in FORMATS:
            self.query_one("#export-error", Label).update(
                f"{path.name}: the suffix must be one of " + ", ".join("." + f for f in FORMATS)
            )
            return
        self.dismiss(path)

    @on(Button.Pressed, "#export-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
