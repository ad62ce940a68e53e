"""App-wide messages (widget-specific ones are nested classes of their widget).

Names are past-tense facts (`RunsRefreshed`) or imperatives (`TailRun`).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ftui.app_data import RunRow


@dataclass
class RunsRefreshed(Message):
    """A refresh worker read the store and the run folders; `changed` is False when nothing moved."""

    rows: list[RunRow]
    changed: bool


@dataclass
class JobsQueued(Message):
    """An action (launch, eval, cancel, retry) went through; `summary` is what the toast says."""

    action: str
    keys: list[str]
    summary: str


@dataclass
class ActionFailed(Message):
    action: str
    error: str
