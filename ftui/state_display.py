"""How a run's state is shown, one table for the app and `ftui list`: a symbol plus the word (so NO_COLOR and
colour-blind users read it the same way) and a Rich style."""

from __future__ import annotations

STATE_SYMBOLS: dict[str, str] = {
    "new": "·",
    "queued": "◌",
    "waiting": "…",
    "running": "▶",
    "done": "✔",
    "trained": "◑",
    "failed": "✖",
    "cancelled": "⊘",
    "blocked": "■",
    "reading": " ",
    "stale": "↻",  # done or trained, but from weights trained again since (ftui/staleness.py)
}
STATE_STYLES: dict[str, str] = {
    "new": "dim",
    "queued": "cyan",
    "waiting": "cyan",
    "running": "bold yellow",
    "done": "green",
    "trained": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "blocked": "red",
    "reading": "dim",
    "stale": "yellow",
}
