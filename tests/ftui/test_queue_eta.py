"""The estimate of `ftui list`'s summary: how long until the queue is empty (ftui/queue_eta.py)."""

from __future__ import annotations

from ftui.queue.model import Job
from ftui.queue_eta import estimate_queue
from ftui.status import RunStatus

NOW = 1_800_000_000.0
KINDS = {
    "pt": ("pt", "pretrain"),
    **{f"ft1-{i}": ("ft1", "finetune") for i in range(1, 8)},
    **{f"ft2-{i}": ("ft2", "finetune") for i in range(1, 4)},
}


def job(key: str, action: str, state: str, took: float | None = None, ran: float | None = None) -> Job:
    """A queue row: `took` seconds from start to finish (a done job), or started `ran` seconds ago."""
    started = NOW - 10_000 if took is not None else (NOW - ran if ran is not None else None)
    finished = started + took if took is not None and started is not None else None
    return Job(
        1, key, key, key, action, state, 0, 0, "", None, None, None, None, None, None, 0, None, 0,
        0.0, None, started, finished, 0.0,
    )  # fmt: skip


def row(key: str, state: str, *jobs: Job, **fields: object) -> RunStatus:
    return RunStatus(key, KINDS[key][0], 42, "D", state, jobs=jobs, **fields)  # type: ignore[arg-type]


def done(key: str, train_s: float, eval_s: float) -> RunStatus:
    return row(key, "done", job(key, "train", "done", took=train_s), job(key, "eval", "done", took=eval_s))


def queued(key: str) -> RunStatus:
    return row(key, "queued", job(key, "train", "queued"), job(key, "eval", "waiting"), action="train")


def test_nothing_pending_is_an_empty_queue() -> None:
    rows = [done("ft1-1", 100, 10), row("ft1-2", "failed", job("ft1-2", "train", "failed", took=5))]
    estimate = estimate_queue(rows, KINDS, NOW)
    assert (estimate.seconds, estimate.pending, estimate.text()) == (0.0, 0, "queue empty")
    assert estimate.text(some_runs=True) == "no job pending"


def test_queued_jobs_take_their_family_median_and_share_the_slots_of_the_running_ones() -> None:
    rows = [
        done("ft1-1", 100, 10),
        done("ft1-2", 120, 10),
        done("ft1-3", 500, 40),  # an outlier: the median ignores it
        row("ft1-4", "running", job("ft1-4", "train", "running", ran=30), action="train", eta_s=60.0),
        row("ft1-5", "running", job("ft1-5", "train", "running", ran=30), action="train", eta_s=30.0),
        queued("ft1-6"),
        queued("ft1-7"),
    ]
    estimate = estimate_queue(rows, KINDS, NOW)
    # Two running: 2 slots. Work: 60 + 30 running, 2 x (120 train + 10 eval) queued = 350 s over 2 slots.
    assert (estimate.slots, estimate.pending, estimate.unestimated, estimate.basis) == (2, 6, 0, 6)
    assert estimate.seconds == 175.0
    assert estimate.text() == "queue empty in about 2m55s"
    assert estimate.text(some_runs=True) == "their jobs end in about 2m55s"  # `ftui list PATTERN`
    assert estimate.to_json()["queue_empty_in_s"] == 175.0


def test_a_long_running_job_bounds_the_estimate_from_below() -> None:
    rows = [
        done("ft1-1", 100, 10),
        row("pt", "running", job("pt", "train", "running", ran=5), action="train", eta_s=3600.0),
        row("ft1-3", "running", job("ft1-3", "train", "running", ran=5), action="train", eta_s=10.0),
        queued("ft1-2"),
    ]
    estimate = estimate_queue(rows, KINDS, NOW)
    assert (3600 + 10 + 110) / 2 < 3600 and estimate.seconds == 3600.0  # the other slot finishes the rest


def test_a_family_never_measured_falls_back_on_its_kind() -> None:
    rows = [done("ft1-1", 100, 10), done("ft1-2", 300, 30), queued("ft2-1")]
    estimate = estimate_queue(rows, KINDS, NOW)
    assert (estimate.seconds, estimate.unestimated) == (200.0 + 20.0, 0)


def test_an_evaluation_running_is_timed_by_its_finished_sets() -> None:
    evaluating = row(
        "ft1-1",
        "running",
        job("ft1-1", "train", "done", took=100),
        job("ft1-1", "eval", "running", ran=100),
        action="eval",
        eval_sets_done=2,
        eval_sets_total=6,
    )
    assert estimate_queue([evaluating], KINDS, NOW).seconds == 200.0  # 50 s per set, 4 sets left


def test_without_any_finished_job_of_the_kind_the_estimate_is_unknown() -> None:
    estimate = estimate_queue([done("pt", 1000, 50), queued("ft1-1")], KINDS, NOW)
    assert (estimate.seconds, estimate.unestimated, estimate.pending) == (None, 2, 2)
    assert estimate.text() == "queue empty in: unknown (2 jobs of a kind not measured yet)"


def test_jobs_without_a_basis_make_the_estimate_a_lower_bound() -> None:
    rows = [
        done("ft1-1", 600, 60),
        queued("ft1-2"),
        row("pt", "queued", job("pt", "train", "queued"), action="train"),  # no pretraining ever finished
    ]
    estimate = estimate_queue(rows, KINDS, NOW)
    assert (estimate.seconds, estimate.unestimated) == (660.0, 1)
    assert estimate.text() == "queue empty in more than 11m00s (1 job of a kind not measured yet)"


def test_the_median_is_the_statistics_modules() -> None:
    import random
    import statistics

    from ftui.queue_eta import _median

    rng = random.Random(0)
    for n in (1, 2, 3, 4, 7, 10):
        values = [rng.uniform(0, 1000) for _ in range(n)]
        assert _median(values) == statistics.median(values)
