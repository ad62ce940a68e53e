"""How a run's state is shown, one table for the app and `ftui list`: a symbol plus the word (so NO_COLOR and
colour-blind users read it the same way) and a Rich style; and the runs counted per state (`counts_line`:
`ftui list`'s summary and the app's header)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

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

# The order states are counted in by `state_counts` (`ftui list`'s summary and the app's header): finished
# work first, then work in progress, then what needs a look. "reading" (the app's first frame) is no state.
COUNT_ORDER = ("done", "trained", "running", "queued", "waiting", "failed", "blocked", "cancelled", "new")


def state_counts(states: Iterable[str]) -> tuple[int, dict[str, int]]:
    """(number of runs, {state: runs in it}) for the runs' `states`, in COUNT_ORDER, states with no run left
    out; a state outside COUNT_ORDER (a newer one) comes last, "reading" is counted in the total only."""
    counts = Counter(states)
    total = sum(counts.values())
    ordered = {state: counts.pop(state) for state in COUNT_ORDER if counts.get(state)}
    counts.pop("reading", None)
    return total, ordered | dict(counts)


def counts_line(states: Iterable[str], symbols: bool = False) -> str:
    """ "71 runs: 12 done, 2 running, 40 queued, 1 failed"; with `symbols`, the narrow form the app's header
    falls back to: "71 runs: ✔ 12 ▶ 2 ◌ 40 ✖ 1". "1 run" alone: no state known yet."""
    total, counts = state_counts(states)
    head = f"{total} run" + ("" if total == 1 else "s")
    if not counts:
        return head
    if symbols:
        return f"{head}: " + " ".join(f"{STATE_SYMBOLS.get(state, '?')} {n}" for state, n in counts.items())
    return f"{head}: " + ", ".join(f"{n} {state}" for state, n in counts.items())
