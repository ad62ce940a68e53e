"""`ftui list --json` remembers each run's line in its cache (ftui/run_cache.py `remember_row`, ftui/status.py
`json_rows`): the same bytes as a listing without the cache, and a line built again whenever anything it is
made of changes (a job, a file of the run or of an ancestor, the code), never remembered for a racy file or
a running run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import ftui.status
from ftui.queue.store import Store
from ftui.run_cache import CACHE_NAME
from ftui.rundir import EVENTS, FINAL_CHECKPOINT
from tests.ftui.app_fixtures import age_files, make_study, write_events
from tests.ftui.test_run_cache import (
    NOW,
    edit_remembered_rows,
    listing,
    remembered_rows,
    rewrite_same_key,
)


@pytest.fixture
def study(aged_states_study: Path) -> Path:
    return aged_states_study


def remembered(registry: Path) -> dict[str, str]:
    """Run key -> the state remembered with its line."""
    return remembered_rows(registry.parent / "runs" / CACHE_NAME)


def uncached(registry: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    (registry.parent / "runs" / CACHE_NAME).unlink()
    return listing(registry, capsys, monkeypatch)


def test_remembered_lines_are_the_same_bytes(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = listing(study, capsys, monkeypatch)
    states = remembered(study)
    assert states and "single-1" not in states  # running: its line depends on the time
    assert all(state != "running" for state in states.values())
    assert listing(study, capsys, monkeypatch) == fresh
    assert uncached(study, capsys, monkeypatch) == fresh


def test_the_remembered_line_is_what_is_printed(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proof that a remembered line is used: an edit of it (the cache's checksum made to match) shows."""
    listing(study, capsys, monkeypatch)
    edit_remembered_rows(study.parent / "runs" / CACHE_NAME, b'"seed": 7, "tasks"', b'"seed": 8, "tasks"')
    assert '"seed": 8' in listing(study, capsys, monkeypatch)


def test_a_changed_job_is_seen(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    assert before["single-2"]["state"] in ("queued", "waiting") and "single-2" in remembered(study)
    store = Store(study.parent / "runs")
    store.cancel(["single-2"])  # the queue changes, no run file does
    store.close()
    out = listing(study, capsys, monkeypatch)
    after = {r["key"]: r for r in json.loads(out)["runs"]}
    assert after["single-2"]["state"] == "cancelled"
    assert after["single-2"]["jobs"]["train"]["state"] == "cancelled"
    assert out == uncached(study, capsys, monkeypatch)


def test_a_job_changed_by_any_writer_is_seen(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue's triggers give a job a new rev whoever writes it: here SQL of its own, on a column and on a
    dependency, with the same clock (`updated` untouched)."""
    import sqlite3

    listing(study, capsys, monkeypatch)
    assert {"single-2", "pair-1"} <= set(remembered(study))  # pair-1's training waits for single-2's
    db = sqlite3.connect(study.parent / "runs" / "ftui.db")
    with db:
        db.execute(
            "UPDATE jobs SET reason = 'edited by hand' WHERE run_key = 'single-2' AND action = 'train'"
        )
        db.execute("DELETE FROM deps WHERE job_id = (SELECT id FROM jobs WHERE run_key = 'pair-1')")
    db.close()
    out = listing(study, capsys, monkeypatch)
    rows = {r["key"]: r for r in json.loads(out)["runs"]}
    assert rows["single-2"]["jobs"]["train"]["reason"] == "edited by hand"
    assert rows["pair-1"]["jobs"]["train"]["deps"] == []
    assert out == uncached(study, capsys, monkeypatch)


def test_a_new_queue_database_is_not_taken_for_the_old(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deleted ftui.db made again numbers its jobs and revs from the start, so the same (id, rev) pairs
    can name other jobs: its identity, drawn at random, keeps them apart. Here the new database holds the
    old one's jobs with their very ids and revs, and other reasons."""
    import sqlite3

    listing(study, capsys, monkeypatch)
    assert "single-2" in remembered(study)
    runs = study.parent / "runs"
    old = sqlite3.connect(runs / "ftui.db")
    columns = [r[1] for r in old.execute("PRAGMA table_info(jobs)")]
    jobs = old.execute(f"SELECT {', '.join(columns)} FROM jobs").fetchall()
    deps = old.execute("SELECT job_id, dep_id FROM deps").fetchall()
    old.close()
    for path in runs.glob("ftui.db*"):
        path.unlink()
    store = Store(runs)
    store.set_paused(False)  # a write: the new, empty queue database is made
    store.close()
    new = sqlite3.connect(runs / "ftui.db")
    with new:
        marks = ", ".join("?" * len(columns))
        new.executemany(f"INSERT INTO jobs({', '.join(columns)}) VALUES ({marks})", jobs)
        new.executemany("INSERT INTO deps(job_id, dep_id) VALUES (?, ?)", deps)
        revs = [(job[columns.index("rev")], job[0]) for job in jobs]
        new.executemany("UPDATE jobs SET reason = 'in the new queue', rev = ? WHERE id = ?", revs)
    assert sorted(new.execute("SELECT rev, id FROM jobs")) == sorted(revs)
    new.close()
    out = listing(study, capsys, monkeypatch)
    jobs_shown = {r["key"]: r for r in json.loads(out)["runs"]}["single-2"]["jobs"]
    assert jobs_shown["train"]["reason"] == "in the new queue"
    assert out == uncached(study, capsys, monkeypatch)


def test_a_parent_trained_again_makes_the_child_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child's files do not change: its line is built again because its parent's did (staleness)."""
    study = make_study(tmp_path / "study")  # no queue: the states come from the folders
    runs = study.parent / "runs"

    def trained(key: str, events: list[dict[str, object]]) -> None:
        write_events(runs / key, events)
        (runs / key / "checkpoints").mkdir(parents=True, exist_ok=True)
        (runs / key / FINAL_CHECKPOINT).write_bytes(b"x")

    def checkpoint(t: float, digest: str) -> dict[str, object]:
        return {"t": t, "event": "checkpoint", "path": FINAL_CHECKPOINT, "digest": digest}

    trained("base", [{"t": NOW - 50, "event": "start", "action": "train"}, checkpoint(NOW - 40, "a" * 64)])
    used = {"t": NOW - 30, "event": "start", "action": "train", "parent": {"digest": "a" * 64}}
    trained("single-1", [used])
    age_files(runs)
    first = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    assert first["single-1"]["state"] == "trained" and first["single-1"]["stale"] == ""
    assert "single-1" in remembered(study)
    # base is trained again: a new final checkpoint digest; the child's folder is untouched
    write_events(
        runs / "base", [{"t": NOW - 20, "event": "start", "action": "train"}, checkpoint(NOW - 10, "b" * 64)]
    )
    age_files(runs)
    out = listing(study, capsys, monkeypatch)
    second = {r["key"]: r for r in json.loads(out)["runs"]}
    assert second["single-1"]["state"] == "stale" and "trained again" in second["single-1"]["stale"]
    assert out == uncached(study, capsys, monkeypatch)


def test_racy_files_are_not_remembered_and_same_key_changes_stay_unseen_only_when_old(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = study.parent / "runs"
    events = runs / "single-3" / EVENTS
    write_events(
        runs / "single-3", [{"t": NOW - 5, "event": "step", "step": 1, "total_steps": 8}]
    )  # just now
    listing(study, capsys, monkeypatch)
    assert "single-3" not in remembered(study) and "base" in remembered(study)
    age_files(runs)
    listing(study, capsys, monkeypatch)
    assert "single-3" in remembered(study)
    # an old file changed in place with its key kept (the engine never does this) stays unseen: the proof
    # that the line is reused, with the file cache's own rule
    rewrite_same_key(events, b'"step": 1,', b'"step": 2,')
    rows = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    assert rows["single-3"]["step"] == 1


def test_other_code_forgets_the_lines(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = listing(study, capsys, monkeypatch)
    cache = study.parent / "runs" / CACHE_NAME
    written = cache.read_bytes()
    code = ftui.status._code_print()
    monkeypatch.setattr(ftui.status, "_code_print", lambda: "another")
    assert listing(study, capsys, monkeypatch) == fresh
    monkeypatch.setattr(ftui.status, "_code_print", lambda: code)
    assert cache.read_bytes() != written  # every line built again, and remembered under the new code
    assert listing(study, capsys, monkeypatch) == fresh


def test_the_lines_do_not_depend_on_the_time(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    listing(study, capsys, monkeypatch)  # lines remembered at NOW; listed again an hour later
    monkeypatch.setattr(time, "time", lambda: NOW + 3600)
    later = main_json(study, capsys)
    assert later == uncached_at(study, capsys)
    monkeypatch.undo()


def main_json(registry: Path, capsys: pytest.CaptureFixture[str]) -> str:
    from ftui.cli import main

    assert main(["--registry", str(registry), "list", "--json"]) == 0
    return capsys.readouterr().out


def uncached_at(registry: Path, capsys: pytest.CaptureFixture[str]) -> str:
    (registry.parent / "runs" / CACHE_NAME).unlink()
    return main_json(registry, capsys)
