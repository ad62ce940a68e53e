"""One key table per screen (harlequin's actions): each row says the key, the action it runs, its footer
label, its help line and its command-palette entry; the screen's BINDINGS, the `?` help and the palette are
all built from it, so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.actions import parse
from textual.binding import Binding
from textual.screen import Screen

Command = tuple[str, str, Callable[[], object]]  # palette: (name, help, callback)


@dataclass(frozen=True)
class Key:
    """One key of a screen. `action` None: a key a widget handles (listed in the help only)."""

    key: str  # Textual's key name(s): "slash", "escape,q"
    action: str | None  # the screen's action: "launch", "tab('tab-log')", "app.pop_screen"
    label: str = ""  # the footer's label
    help: str = ""  # the help line ("": this key has none, e.g. it is described with another)
    shown: str | None = None  # the key as the help and the palette show it ("/" for slash); default `key`
    footer: bool = True  # shown in the footer
    command: str | None = None  # the palette's name for it; None: not in the palette
    command_help: str = ""  # the palette's description (the key is appended: "queue evaluation only (e)")

    @property
    def display(self) -> str:
        return self.shown if self.shown is not None else self.key


def bindings(table: Sequence[Key]) -> list[Binding | tuple[str, str] | tuple[str, str, str]]:
    """The screen's BINDINGS (typed as Textual's `Screen.BINDINGS`)."""
    return [Binding(k.key, k.action, k.label, show=k.footer) for k in table if k.action is not None]


def help_lines(table: Sequence[Key]) -> list[tuple[str, str]]:
    """(key, what it does) for the `?` help, in table order."""
    return [(k.display, k.help) for k in table if k.help]


def palette(screen: Screen[Any], table: Sequence[Key]) -> list[Command]:
    """The palette entries of the table's keys that have one; each runs the key's action."""
    return [
        (k.command, f"{k.command_help} ({k.display})", _callback(screen, k.action))
        for k in table
        if k.command is not None and k.action is not None
    ]


def _callback(screen: Screen[Any], action: str) -> Callable[[], object]:
    namespace, name, params = parse(action)
    target = screen.app if namespace == "app" else screen
    return partial(getattr(target, f"action_{name}"), *params)
