"""The executor interface, and the verdicts every executor shares (what an exit status means for a job).

An executor owns the jobs it started. The worker calls, once per pass:

    reap(settings)           record the jobs that ended (done / failed / cancelled / re-queued)
    handle_cancels(settings) pass the user's cancel requests on (signals, scancel)
    start(job, slot, settings)   for each claimed job (state running, no process yet)

and after a restart `adopt(job, settings)` for each job the database says is running. Executors write job
outcomes to the store themselves, each in one transaction.
"""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftui.queue.gpus import Slot
from ftui.queue.model import KILLED
from ftui.queue.store import CANCELLED, DONE, FAILED, Job, Store
from ftui.rundir import LOG, has_product, product_name

JOB_TAG = "FTUI_JOB"  # in each engine's environment: finds a process started just before a worker crash


@dataclass(frozen=True)
class Ended:
    """How a job ended, ready for `Store.finish`."""

    state: str
    reason: str
    exit_code: int | None = None
    signal: int | None = None
    outcome: str | None = None  # None: the state's default (queue.model.default_outcome)

    def record(self, store: Store, job_id: int) -> Job:
        """Write this ending to the queue (`Store.finish`): the one way an executor settles a job."""
        return store.finish(
            job_id,
            self.state,
            self.reason,
            exit_code=self.exit_code,
            signal=self.signal,
            outcome=self.outcome,
        )


class Executor(ABC):
    name: str = ""

    def __init__(self, store: Store, log: Callable[[str], None]) -> None:
        self.store = store
        self.log = log

    @abstractmethod
    def start(self, job: Job, slot: Slot | None, settings: dict[str, Any]) -> bool:
        """Start a claimed job (`slot`: its local slot; None for an executor without slots). On a failure,
        finish the job as failed with the reason and return False."""

    @abstractmethod
    def adopt(self, job: Job, settings: dict[str, Any]) -> bool:
        """After a worker restart: watch a running job again. False when it is gone (the worker settles
        it)."""

    @abstractmethod
    def reap(self, settings: dict[str, Any]) -> None:
        """Record the jobs that ended since the last call."""

    @abstractmethod
    def handle_cancels(self, settings: dict[str, Any]) -> None:
        """Stop the running jobs whose cancel was requested."""

    @abstractmethod
    def active(self) -> int:
        """How many jobs this executor is watching (the worker is busy while any is)."""


def job_tag(store: Store, job: Job) -> str:
    return f"{store.db_path}#{job.id}#{job.attempts}"


def finished_on_disk(store: Store, job: Job) -> bool:
    """The job's product exists: checkpoints/final.pt for training, an eval.json newer than its start."""
    return has_product(store.run_dir(job.rel_dir), job.action, since=job.started or 0)


def last_words(store: Store, job: Job) -> str:
    """The last line of the run's log, so `ftui list` says why without opening it."""
    try:
        with open(store.run_dir(job.rel_dir) / LOG, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:200]}" if lines else ""


def signal_name(sig: int) -> str:
    return signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)


def exit_outcome(store: Store, job: Job, rc: int | None) -> Ended:
    """The verdict on an engine that exited with `rc` (negative: killed by that signal; None: unknown)."""
    code = rc if rc is not None and rc >= 0 else None
    sig = -rc if rc is not None and rc < 0 else None
    if job.cancel_requested:
        return Ended(CANCELLED, "cancelled by the user", code, sig)
    if rc is None:
        if finished_on_disk(store, job):
            return Ended(DONE, "finished (adopted process; exit status unknown)")
        return Ended(FAILED, f"adopted process ended without finishing{last_words(store, job)}")
    if rc == 0:
        if finished_on_disk(store, job):
            return Ended(DONE, "exit 0", 0)
        return Ended(FAILED, f"exit 0 but no {product_name(job.action)}", 0)
    if sig is not None:
        return Ended(FAILED, f"killed by {signal_name(sig)}", None, sig)
    if rc == 143:
        return Ended(FAILED, "terminated by SIGTERM (checkpoint saved)", rc, outcome=KILLED)
    label = "bad config" if rc == 2 else "exit"
    return Ended(FAILED, f"{label} {rc}{last_words(store, job)}", rc)
