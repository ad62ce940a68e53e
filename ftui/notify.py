"""Being told when something happens.

- Desktop notifications through the terminal: OSC 9 (iTerm2, WezTerm, Windows Terminal, kitty, foot...) and
  OSC 777 (rxvt-unicode, Ghostty, VTE/GNOME Terminal) escape sequences, written to the controlling terminal
  `/dev/tty`. The terminal emulator on the user's own machine shows them, so this works over SSH; a terminal
  that knows neither ignores both. `ftui launch --notify` sends one when the launched jobs end.
- In the app (ftui/app_alerts.py): a toast and the terminal bell when a job fails or the queue empties.
  `QueueAlerts` decides when; the bell follows `[app] bell` in experiments.toml (on by default), and
  FTUI_BELL, when set, overrides it: 0/false/off/no turn it off, any other value on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ftui.queue.store import FAILED, PENDING_STATES, EnqueueResult, Job, Store

OSC, BEL = "\x1b]", "\x07"
TTY = "/dev/tty"
BELL_ENV = "FTUI_BELL"


def bell_enabled(environ: Mapping[str, str] | None = None, registry: bool = True) -> bool:
    """Whether the app rings: FTUI_BELL when set (0/false/off/no: off, else on), else `registry` (`[app]
    bell`)."""
    value = (os.environ if environ is None else environ).get(BELL_ENV)
    if value is None:
        return registry
    return value.strip().lower() not in ("0", "false", "off", "no")


def _clean(text: str) -> str:
    """No control characters (they would end or corrupt the sequence); `;` separates OSC 777's fields."""
    return "".join(ch if ch.isprintable() else " " for ch in text).replace(";", ",")


def osc_notification(title: str, body: str) -> str:
    """Both sequences: OSC 9 carries one message, OSC 777 a title and a body."""
    title, body = _clean(title), _clean(body)
    return f"{OSC}9;{title}: {body}{BEL}{OSC}777;notify;{title};{body}{BEL}"


def notify_terminal(title: str, body: str, tty: str = TTY) -> bool:
    """Write the notification to the controlling terminal; False when there is none (cron, CI, nohup)."""
    try:
        fd = os.open(tty, os.O_WRONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        os.write(fd, osc_notification(title, body).encode())
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def wait_and_notify(store: Store, launched: EnqueueResult) -> int:
    """`ftui launch --notify`: wait for the launched jobs like `ftui wait`, then notify; 0: all done."""
    from ftui.queue.wait import wait_for_jobs

    ids = [j.id for j in [*launched.queued, *launched.kept]]
    if not ids:
        return 0
    print(f"waiting for {len(ids)} job(s); a notification follows when they end (Ctrl+C stops waiting)")
    try:
        result = wait_for_jobs(store, ids, lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("stopped waiting (the jobs go on)", file=sys.stderr)
        return 130
    summary = result.summary()
    print(summary)
    if not notify_terminal("ftui", summary):
        print(f"ftui: no terminal to notify ({TTY} cannot be opened)", file=sys.stderr)
    return 0 if result.ok else 1


@dataclass(frozen=True)
class Alert:
    title: str
    message: str
    severity: str  # "error" | "information" (Textual's notify severities)


class QueueAlerts:
    """Turns successive looks at the queue into alerts: a job that failed since the last look, the queue that
    became empty. The first look only remembers (old failures are not news)."""

    def __init__(self) -> None:
        self._states: dict[int, str] | None = None
        self.looks = 0

    def observe(self, jobs: Iterable[Job]) -> list[Alert]:
        self.looks += 1
        now = {j.id: j for j in jobs}
        before, self._states = self._states, {i: j.state for i, j in now.items()}
        if before is None:
            return []
        alerts = [
            Alert(f"{j.run_key} {j.action} failed", j.reason or "see its log", "error")
            for i, j in now.items()
            if j.state == FAILED and before.get(i, FAILED) != FAILED
        ]
        was_busy = any(s in PENDING_STATES for s in before.values())
        if was_busy and not any(j.state in PENDING_STATES for j in now.values()):
            alerts.append(Alert("queue empty", _ended_summary(list(now.values())), "information"))
        return alerts


def _ended_summary(jobs: Sequence[Job]) -> str:
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j.state] = counts.get(j.state, 0) + 1
    return "every job has ended: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
