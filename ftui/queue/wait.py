"""Waiting for jobs to end: `ftui wait PATTERN` and `ftui launch --notify`.

A job has ended when it left the pending states (waiting, queued, running): done, failed, cancelled or blocked
(a blocked job waits for a user's `retry`, not for time). A job removed from the queue while we wait has ended
too. The wait polls the queue database; it never starts or stops anything itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ftui.queue.store import DONE, PENDING_STATES, Job, Store

REMOVED = "removed"


def poll_s() -> float:
    """How often the queue is read (FTUI_WAIT_POLL, seconds; tests make it short)."""
    try:
        return max(0.02, float(os.environ.get("FTUI_WAIT_POLL", "1.0")))
    except ValueError:
        return 1.0


@dataclass
class WaitResult:
    ended: dict[int, str] = field(default_factory=dict)  # job id -> its final state
    names: dict[int, str] = field(default_factory=dict)  # job id -> "single-1 train"
    reasons: dict[int, str] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(state == DONE for state in self.ended.values())

    @property
    def not_done(self) -> list[int]:
        return [i for i, state in self.ended.items() if state != DONE]

    def summary(self) -> str:
        n = len(self.names)
        if self.timed_out:
            left = n - len(self.ended)
            return f"timed out: {left} of {n} job(s) have not ended"
        if self.ok:
            return f"all {n} job(s) done"
        bad = [f"{self.names[i]} {self.ended[i]}" for i in self.not_done]
        return f"{len(bad)} of {n} job(s) did not finish: " + ", ".join(bad)


def job_name(job: Job) -> str:
    return f"{job.run_key} {job.action}"


def wait_for_jobs(
    store: Store,
    job_ids: Sequence[int],
    say: Callable[[str], None],
    *,
    every_s: float | None = None,
    timeout_s: float | None = None,
) -> WaitResult:
    """Block until every job of `job_ids` ended (or `timeout_s` passed); `say` gets one line per change."""
    wanted = list(dict.fromkeys(job_ids))
    result = WaitResult()
    seen: dict[int, str] = {}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    paused_said = False
    while True:
        jobs = {j.id: j for j in store.jobs() if j.id in wanted}
        for job_id in wanted:
            job = jobs.get(job_id)
            state = job.state if job is not None else REMOVED
            if job is not None:
                result.names[job_id] = job_name(job)
                result.reasons[job_id] = job.reason
            result.names.setdefault(job_id, f"job {job_id}")
            if seen.get(job_id) != state:
                seen[job_id] = state
                if state not in PENDING_STATES:
                    result.ended[job_id] = state
                why = (
                    f" ({job.reason})"
                    if job is not None and job.reason not in ("", state) and state != DONE
                    else ""
                )
                stamp = time.strftime("%H:%M:%S")
                say(
                    f"{stamp} {result.names[job_id]}: {state}{why}  [{len(result.ended)}/{len(wanted)} ended]"
                )
        if len(result.ended) == len(wanted):
            return result
        if not paused_said and store.paused():
            say("the queue is paused: nothing new starts until `ftui resume`")
            paused_said = True
        if deadline is not None and time.monotonic() > deadline:
            result.timed_out = True
            return result
        time.sleep(poll_s() if every_s is None else every_s)
