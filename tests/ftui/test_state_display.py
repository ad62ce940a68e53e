"""One state-display table for the app and `ftui list`: every state a row can be in has a symbol and style."""

from __future__ import annotations

from ftui.queue.model import STATES
from ftui.state_display import STATE_STYLES, STATE_SYMBOLS


def test_every_state_has_a_symbol_and_a_style() -> None:
    shown = set(STATES) | {
        "new",
        "trained",
        "reading",
        "stale",
    }  # the folder states of `ftui list` (stale: ftui/staleness.py) and the app's first paint
    assert set(STATE_SYMBOLS) == shown == set(STATE_STYLES)
    assert len(set(STATE_SYMBOLS.values())) == len(STATE_SYMBOLS)  # no two states look alike without colour
