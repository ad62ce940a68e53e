"""The app's alerts: every ALERT_POLL_S a thread reads the queue; a failed job or a queue that became empty
shows a toast and rings the terminal bell (`[app] bell = false` in experiments.toml or FTUI_BELL=0 turns the
bell off; the variable wins). See ftui/notify.py."""

from __future__ import annotations

from typing import Any

from textual.app import App

from ftui.notify import Alert, QueueAlerts, bell_enabled

ALERT_POLL_S = 1.0


def watch_queue(app: App[Any], store: Any, poll_s: float = ALERT_POLL_S, bell: bool = True) -> QueueAlerts:
    """Start watching `store` for the app's lifetime (the reads run in a thread worker, never in the UI).
    `bell`: the registry's `[app] bell` (FTUI_BELL, when set, decides instead)."""
    alerts = QueueAlerts()
    ring = bell_enabled(registry=bell)

    seen: list[tuple[Any, ...] | None] = [None]  # the queue's change token at the last look

    def look() -> None:
        try:
            token = store.change_token()
            if token is not None and token == seen[0]:
                return  # nothing committed since: with thousands of jobs, not worth reading them all
            found = alerts.observe(store.jobs())
            seen[0] = token
        except Exception:  # a locked or vanished database: the home screen says so; try again next tick
            return
        if found:
            app.call_from_thread(show, found)

    def show(found: list[Alert]) -> None:
        for alert in found:
            app.notify(alert.message, title=alert.title, severity=alert.severity, timeout=10)  # type: ignore[arg-type]
        if ring:
            app.bell()

    def tick() -> None:
        if not any(w.group == "queue-alerts" and w.is_running for w in app.workers):
            app.run_worker(look, thread=True, group="queue-alerts", exclusive=True)

    app.set_interval(poll_s, tick)
    return alerts
