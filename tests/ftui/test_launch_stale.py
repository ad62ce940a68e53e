"""`launch_stale` (what `ftui launch --stale` runs) on the mini study's folders with lineage written as the
engine writes it: what it queues, with which dependencies and restarts, and what it leaves alone."""

from __future__ import annotations

from pathlib import Path

from ftui.queue.launching import launch_stale
from ftui.queue.store import Store
from ftui.registry import load_registry
from tests.ftui.app_fixtures import make_study
from tests.ftui.lineage_fixtures import evaluate, train


def test_queues_retraining_for_stale_weights_and_evaluation_for_stale_results(tmp_path: Path) -> None:
    registry = load_registry(make_study(tmp_path))
    runs = tmp_path / "runs"
    train(runs / "base", "b1")
    train(runs / "single-1", "s1", parent="b1")
    evaluate(runs / "single-1", "s1")
    train(runs / "single-2", "t1", parent="b1")
    evaluate(runs / "single-2", "t1")
    train(runs / "base", "b2")  # base trained again: single-1 and single-2 come from the old weights
    train(runs / "single-3", "u1", parent="b2")
    evaluate(runs / "single-3", "u0")  # scored a final.pt since replaced: its results alone are stale
    store = Store(runs)

    done = launch_stale(
        registry, registry.runs(["single-1", "single-3"]), runs, start_worker=False, store=store
    )
    assert list(done.stale) == ["single-1", "single-3"] and done.busy == []  # single-2 did not match
    assert done.stale["single-1"].retrain and not done.stale["single-3"].retrain
    jobs = {(j.run_key, j.action): j for j in store.jobs()}
    assert sorted(jobs) == [("single-1", "eval"), ("single-1", "train"), ("single-3", "eval")]
    assert jobs[("single-1", "train")].restart == 1 and jobs[("single-1", "train")].deps == ()
    assert jobs[("single-1", "eval")].deps == (jobs[("single-1", "train")].id,)
    assert (runs / "single-1" / "config.toml").is_file()

    again = launch_stale(registry, registry.runs(), runs, start_worker=False, store=store)
    assert again.busy == ["single-1", "single-3"]  # already queued: left alone, not queued twice
    assert list(again.stale) == ["single-2"] and [j.run_key for j in again.report.result.queued] == [
        "single-2",
        "single-2",
    ]
    store.close()
