"""How long until the queue is empty: the estimate of `ftui list`'s summary (and `--json`'s `summary`).

The estimate, job by job, from what the queue and the run folders already say (no new measurement):

- a running training job: its ETA (`RunStatus.eta_s`, the smoothed step rate); an evaluation: the time it took
  per finished set times the sets left; before either is known, the expected duration less the time it ran.
- a queued or waiting job: its expected duration, the median of `finished - started` over the done jobs of the
  same family (or experiment, outside a family) and action; failing that, of the same kind (pretrain,
  finetune) and action. No such done job: the job is not estimated (`unestimated`).
- the jobs share `slots` parallel slots, the number of jobs running now (at least 1): the worker fills its
  slots whenever jobs can start, so what runs now is the parallelism the queue has.

The queue is empty after max(the longest running job, all the work / slots). Dependencies are ignored (a
fine-tune waiting on its pretraining counts as parallel work), so it is a lower bound when jobs wait on each
other; it is a rough figure meant to say "minutes or days", and says so ("about").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftui.queue.model import DONE, PENDING_STATES, RUNNING, Job

if TYPE_CHECKING:
    from ftui.status import RunStatus


@dataclass(frozen=True)
class QueueEstimate:
    """`seconds`: until every listed pending job has ended (None: no pending job could be estimated);
    `pending`: running, queued and waiting jobs; `unestimated`: those of them without any basis (so
    `seconds` is a lower bound when it is not 0); `slots`: the parallel slots assumed; `basis`: the done
    jobs whose durations were used."""

    seconds: float | None
    pending: int
    unestimated: int
    slots: int
    basis: int

    def text(self, some_runs: bool = False) -> str:
        """ "queue empty in about 1h20m", "queue empty" ... one line for people (see `format_eta`).
        `some_runs`: only some runs were listed, so the words speak of their jobs, not the queue."""
        from ftui.status import format_eta

        if self.pending == 0:
            return "no job pending" if some_runs else "queue empty"
        subject = "their jobs end" if some_runs else "queue empty"
        jobs = f"{self.unestimated} job" + ("" if self.unestimated == 1 else "s")
        if self.seconds is None or (self.unestimated and self.seconds < 1):
            return f"{subject} in: unknown ({jobs} of a kind not measured yet)"
        if self.unestimated:
            return f"{subject} in more than {format_eta(self.seconds)} ({jobs} of a kind not measured yet)"
        return f"{subject} in about {format_eta(self.seconds)}"

    def to_json(self) -> dict[str, Any]:
        seconds = None if self.seconds is None else round(self.seconds, 1)
        return {
            "queue_empty_in_s": seconds,
            "pending_jobs": self.pending,
            "unestimated_jobs": self.unestimated,
            "slots": self.slots,
            "measured_jobs": self.basis,
        }


def estimate_queue(
    rows: Sequence[RunStatus], kinds: Mapping[str, tuple[str, str]], now: float
) -> QueueEstimate:
    """The estimate (module docstring) for the pending jobs of `rows`. `kinds`: run key -> (family or
    experiment name, kind) from the registry; `now`: unix time (s)."""
    durations: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        group, kind = kinds.get(row.key, (row.experiment, ""))
        for job in row.jobs:
            if job.state == DONE and job.started is not None and job.finished is not None:
                spent = max(0.0, job.finished - job.started)
                durations.setdefault((group, job.action), []).append(spent)
                durations.setdefault((f"kind:{kind}", job.action), []).append(spent)
    medians = {key: _median(values) for key, values in durations.items()}
    basis = sum(len(v) for k, v in durations.items() if not k[0].startswith("kind:"))

    def expected(row: RunStatus, job: Job) -> float | None:
        group, kind = kinds.get(row.key, (row.experiment, ""))
        return medians.get((group, job.action), medians.get((f"kind:{kind}", job.action)))

    running: list[float] = []
    queued: list[float] = []
    unestimated = 0
    for row in rows:
        for job in row.jobs:
            if job.state not in PENDING_STATES:
                continue
            if job.state == RUNNING:
                left = _left(row, job, expected(row, job), now)
                if left is None:
                    unestimated += 1
                else:
                    running.append(left)
            elif (full := expected(row, job)) is None:
                unestimated += 1
            else:
                queued.append(full)
    pending = len(running) + len(queued) + unestimated
    slots = max(1, sum(1 for row in rows for job in row.jobs if job.state == RUNNING))
    if not running and not queued:
        return QueueEstimate(None if pending else 0.0, pending, unestimated, slots, basis)
    seconds = max(max(running, default=0.0), (sum(running) + sum(queued)) / slots)
    return QueueEstimate(seconds, pending, unestimated, slots, basis)


def _left(row: RunStatus, job: Job, expected: float | None, now: float) -> float | None:
    """Seconds a running job still needs (module docstring), or None without any basis."""
    elapsed = max(0.0, now - job.started) if job.started is not None else None
    if job.action == "train" and row.action == "train" and row.eta_s is not None:
        return row.eta_s
    done, total = row.eval_sets_done, row.eval_sets_total
    if job.action == "eval" and elapsed is not None and done and total:
        return elapsed * max(0, total - done) / done
    if expected is not None:
        return max(0.0, expected - (elapsed or 0.0))
    return None


def _median(values: list[float]) -> float:
    """`statistics.median`, without importing `statistics` (with `random` and `fractions`: some ms of every
    `ftui list`)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
