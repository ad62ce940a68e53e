"""The stale rule (ftui/staleness.py) on run folders written as the engine writes them
(docs/run-directory.md): events.jsonl with digests, eval.json with the checkpoint it scored, final.pt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ftui.rundir import ProgressReader
from ftui.staleness import StaleRuns, dependency_order
from tests.ftui.lineage_fixtures import append_events as _append
from tests.ftui.lineage_fixtures import evaluate, train


@dataclass(frozen=True)
class R:
    key: str
    rel_dir: str
    parent_key: str | None = None


# pt -> ft -> ftft (a fine-tune of a fine-tune); pt -> other
RUNS = [R("ftft", "ftft", "ft"), R("ft", "ft", "pt"), R("pt", "pt"), R("other", "other", "pt")]


def judge(runs_dir: Path) -> StaleRuns:
    return StaleRuns(runs_dir, RUNS)


def test_a_child_of_a_retrained_parent_is_stale_and_so_are_its_descendants(tmp_path: Path) -> None:
    train(tmp_path / "pt", "p1")
    train(tmp_path / "ft", "f1", parent="p1")
    train(tmp_path / "ftft", "ff1", parent="f1")
    train(tmp_path / "other", "o1", parent="p1")
    assert judge(tmp_path).stale(["pt", "ft", "ftft", "other"]) == {}

    train(tmp_path / "pt", "p2")  # trained again (events appended, as a resumed history would be)
    stale = judge(tmp_path).stale(["pt", "ft", "ftft", "other"])
    assert list(stale) == ["ft", "ftft", "other"]
    assert stale["ft"].retrain and "parent pt was trained again" in stale["ft"].reason
    assert stale["ftft"].retrain and stale["ftft"].reason == "parent ft is stale"  # transitive

    train(tmp_path / "ft", "f2", parent="p2")  # ft re-run from the new pt: now ftft alone is behind
    stale = judge(tmp_path).stale(["pt", "ft", "ftft", "other"])
    assert list(stale) == ["ftft", "other"] and "parent ft was trained again" in stale["ftft"].reason


def test_results_of_an_older_final_checkpoint_are_stale_without_making_children_stale(tmp_path: Path) -> None:
    train(tmp_path / "pt", "p1")
    train(tmp_path / "ft", "f1", parent="p1")
    evaluate(tmp_path / "pt", "p1")
    assert judge(tmp_path).check("pt") is None

    evaluate(tmp_path / "pt", "p0")  # eval.json scored a final.pt that has since been replaced
    verdict = judge(tmp_path).check("pt")
    assert verdict is not None and not verdict.retrain and "older checkpoints/final.pt" in verdict.reason
    assert judge(tmp_path).check("ft") is None  # its weights come from pt's weights, which are current

    evaluate(tmp_path / "pt", "s1", checkpoint="checkpoints/step-00000004.pt")  # asked for by name
    assert judge(tmp_path).check("pt") is None


def test_runs_without_recorded_digests_are_never_stale(tmp_path: Path) -> None:
    # Made before the engine recorded digests: nothing to compare, so nothing is marked.
    train(tmp_path / "pt", None)
    train(tmp_path / "ft", None)
    evaluate(tmp_path / "ft", None)
    assert judge(tmp_path).stale(r.key for r in RUNS) == {}
    # An old child of a new parent, and a new child of an old parent: unknown, not stale.
    train(tmp_path / "pt", "p2")
    assert judge(tmp_path).check("ft") is None
    train(tmp_path / "other", "o1", parent="p1")
    train(tmp_path / "pt", None)
    assert judge(tmp_path).check("other") is None


def test_a_parent_being_trained_again_marks_nothing_until_its_final_checkpoint(tmp_path: Path) -> None:
    train(tmp_path / "pt", "p1")
    train(tmp_path / "ft", "f1", parent="p1")
    _append(tmp_path / "pt", {"event": "start", "action": "train", "resumed_from_step": 0})
    assert judge(tmp_path).check("ft") is None
    _append(
        tmp_path / "pt", {"event": "checkpoint", "step": 8, "path": "checkpoints/final.pt", "digest": "p2"}
    )
    assert judge(tmp_path).check("ft") is not None


def test_an_untrained_child_is_not_stale(tmp_path: Path) -> None:
    train(tmp_path / "pt", "p2")
    _append(tmp_path / "ft", {"event": "start", "action": "train", "parent": {"digest": "p1"}})
    assert judge(tmp_path).check("ft") is None  # no final.pt: it is not done, so not out of date


@pytest.mark.parametrize(
    "damage",
    [
        b"not json\n{}\n[1, 2]\n",
        b'{"event": "checkpoint", "path": "checkpoints/final.pt", "digest": 5, "parent": "x"}\n',
        b'{"event": "start", "action": "train", "parent": {"digest": ["p1"]}}\n',
        b"\xff\xfe\x00garbage",
    ],
)
def test_damaged_or_foreign_files_never_crash_and_mark_nothing(tmp_path: Path, damage: bytes) -> None:
    train(tmp_path / "pt", "p2")
    for name in ("ft", "ftft"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        (tmp_path / name / "checkpoints" / "final.pt").write_bytes(b"w")
        (tmp_path / name / "events.jsonl").write_bytes(damage)
        (tmp_path / name / "eval.json").write_bytes(damage)
    assert judge(tmp_path).stale(["ft", "ftft", "pt", "missing"]) == {}


def test_each_run_is_read_once_per_pass(tmp_path: Path) -> None:
    train(tmp_path / "pt", "p2")
    train(tmp_path / "ft", "f1", parent="p1")
    train(tmp_path / "ftft", "ff1", parent="f1")
    reader = ProgressReader()
    calls: list[str] = []

    def progress(folder: str) -> Any:
        calls.append(Path(folder).name)
        return reader.progress(folder)

    stale = StaleRuns(tmp_path, RUNS, progress=progress)
    assert set(stale.stale(["ftft", "ft", "pt"])) == {"ft", "ftft"}
    assert calls.count("ft") <= 2 and calls.count("ftft") == 1  # verdicts are kept, not recomputed


def test_dependency_order_puts_ancestors_first() -> None:
    assert dependency_order(["ftft", "other", "ft", "pt"], RUNS) == ["pt", "other", "ft", "ftft"]
    assert dependency_order(["ftft", "unknown"], RUNS) == ["unknown", "ftft"]


def test_a_child_listed_by_name_is_judged_against_its_parent(tmp_path: Path) -> None:
    """`ftui list pair-1` reads only the runs named and their ancestors (not the registry's thousands), and
    still sees that the parent was trained again since."""
    from ftui.queue.store import Store
    from ftui.registry import load_registry
    from ftui.status import list_rows
    from tests.conftest import REPO_ROOT

    registry = load_registry(REPO_ROOT / "tests" / "data" / "mini_study.toml")
    runs_dir = tmp_path / "runs"
    train(runs_dir / "base", "p1")
    train(runs_dir / "pair-1", "f1", parent="p1")
    train(runs_dir / "base", "p2")
    rows = list_rows(registry, Store(runs_dir), registry.runs(["pair-1"]))
    assert [(row.key, row.state) for row in rows] == [("pair-1", "stale")]
    assert "parent base was trained again" in (rows[0].stale or "")
    assert "_runs_by_key" not in registry.__dict__  # the registry's runs were not all built
