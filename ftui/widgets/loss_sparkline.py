"""The training loss of one run as a sparkline, from the `step` events of its events.jsonl."""

from __future__ import annotations

import math
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

# Enough points for any terminal width; older points are thinned (every other one dropped) past this.
MAX_POINTS = 2_000


class LossSparkline(Vertical):
    DEFAULT_CSS = """
    LossSparkline { height: auto; }
    LossSparkline > #loss-caption { height: 1; color: $text-muted; }
    LossSparkline > Sparkline { height: 3; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.losses: list[float] = []
        self.last_step: int | None = None
        self.total_steps: int | None = None

    def compose(self) -> ComposeResult:
        yield Label("loss: no steps yet", id="loss-caption", markup=False)
        yield Sparkline([], id="loss-spark")

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Take the `step` events out of a batch of events; the others are ignored here."""
        added = False
        for event in events:
            if event.get("event") != "step":
                continue
            loss = event.get("loss")
            if not isinstance(loss, int | float) or not math.isfinite(loss):
                continue
            self.losses.append(float(loss))
            step, total = event.get("step"), event.get("total_steps")
            self.last_step = step if isinstance(step, int) else self.last_step
            self.total_steps = total if isinstance(total, int) else self.total_steps
            added = True
        if not added:
            return
        if len(self.losses) > MAX_POINTS:
            self.losses = self.losses[::2]
        self.query_one(Sparkline).data = list(self.losses)
        self.query_one("#loss-caption", Label).update(self.caption())

    def caption(self) -> str:
        if not self.losses:
            return "loss: no steps yet"
        where = f"step {self.last_step}/{self.total_steps}" if self.last_step is not None else ""
        return (
            f"loss {self.losses[-1]:.4f}  (first {self.losses[0]:.4f}, min {min(self.losses):.4f})  {where}"
        )
