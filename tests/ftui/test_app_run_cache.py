"""The app's first read of the run folders through its persisted cache (ftui/run_cache.py, its own file:
runs/.ftui-cache-app.json beside `ftui list`'s runs/.ftui-cache.json): the same rows with and without
it, a changed file always seen, and the cache's safety rules on the app's path too (racy files, a damaged or
foreign cache, a folder that cannot be written, browsing only)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ftui.app_data import AppData
from ftui.cli import main
from ftui.registry import load_registry
from ftui.run_cache import APP_CACHE_NAME, CACHE_NAME, FORMAT, OBSOLETE_NAMES, RunFolderCache
from ftui.rundir import EVENTS, RESULTS
from tests.ftui.app_fixtures import BASE_METRICS, age_files, write_eval, write_events
from tests.ftui.test_run_cache import edit_remembered_rows, remembered_rows, rewrite_same_key

APP_CACHE = APP_CACHE_NAME


@pytest.fixture
def study(aged_states_study: Path) -> Path:
    return aged_states_study


def app_rows(registry: Path, read_only: bool = False) -> dict[str, object]:
    """A new app's first read (a new process, as far as the cache knows): key -> row."""
    reg = load_registry(registry)
    data = AppData(reg, reg.runs_dir(None), read_only=read_only, start_worker=False)
    rows, changed = data.rows()
    assert changed
    data.store.close()
    return {row.key: row for row in rows}


def test_the_app_has_its_own_cache_file_and_removes_an_older_ftuis(study: Path) -> None:
    """One loss per run (a row shows the last; a first read of thousands of events.jsonl then parses their
    last 16 step events, not 200), in its own file; the older ftui's file (200 losses) is removed."""
    assert APP_CACHE == ".ftui-cache-app.json" and APP_CACHE != CACHE_NAME
    runs = study.parent / "runs"
    (runs / OBSOLETE_NAMES[0]).write_text("an older ftui's app cache\n")
    app_rows(study, read_only=True)
    assert (runs / OBSOLETE_NAMES[0]).exists() and not (runs / APP_CACHE).exists()  # browsing only
    app_rows(study)
    assert not (runs / OBSOLETE_NAMES[0]).exists()
    assert json.loads((runs / APP_CACHE).read_bytes().partition(b"\n")[0])["history"] == 1


def test_cached_rows_equal_fresh_ones_and_the_cache_is_what_is_read(study: Path) -> None:
    runs = study.parent / "runs"
    fresh = app_rows(study)
    assert (runs / APP_CACHE).is_file()
    written = (runs / APP_CACHE).read_bytes()
    assert app_rows(study) == fresh
    assert (runs / APP_CACHE).read_bytes() == written  # nothing new was read: not written again
    # Proof that an unchanged file is not opened: a change its stat cannot show stays unseen...
    rewrite_same_key(runs / "single-1" / EVENTS, b'"loss": 2.8', b'"loss": 9.9')
    assert app_rows(study)["single-1"].loss == fresh["single-1"].loss  # type: ignore[attr-defined]
    (runs / APP_CACHE).unlink()  # ...until the cache is gone
    assert app_rows(study)["single-1"].loss == 9.9  # type: ignore[attr-defined]


def test_list_and_app_caches_do_not_discard_each_other(
    study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = study.parent / "runs"
    app_rows(study)
    assert main(["--registry", str(study), "list", "--json"]) == 0
    capsys.readouterr()
    app_cache, list_cache = (runs / APP_CACHE).read_bytes(), (runs / CACHE_NAME).read_bytes()
    for _ in range(2):  # alternating, neither reads anything again, so neither is rewritten
        app_rows(study)
        assert main(["--registry", str(study), "list", "--json"]) == 0
        capsys.readouterr()
    assert (runs / APP_CACHE).read_bytes() == app_cache
    assert (runs / CACHE_NAME).read_bytes() == list_cache
    assert json.loads(app_cache.partition(b"\n")[0])["history"] == 1


def test_the_app_sees_files_changed_after_caching(study: Path) -> None:
    runs = study.parent / "runs"
    before = app_rows(study)
    step = {"t": 1_000_000_099.0, "event": "step", "step": 5, "total_steps": 8, "loss": 1.25, "eta_s": 3.0}
    write_events(runs / "single-1", [step])
    metrics = {task: (metric, 5.0 * a, 5.0 * s) for task, (metric, a, s) in BASE_METRICS.items()}
    write_eval(runs / "base", metrics, name="base")
    after = app_rows(study)
    assert after["single-1"].step == 5 and after["single-1"].loss == 1.25  # type: ignore[attr-defined]
    assert after["base"].result != before["base"].result  # type: ignore[attr-defined]
    (runs / APP_CACHE).unlink()
    assert app_rows(study) == after


def test_the_app_parses_files_written_just_before_its_read_again(study: Path) -> None:
    """A file modified within RACY_NS of its reading may change again in the same mtime tick without a new
    key: its entry is not trusted by the next app (here a same-key change of eval.json is seen)."""
    eval_json = study.parent / "runs" / "base" / RESULTS
    eval_json.write_bytes(eval_json.read_bytes())  # a fresh mtime, same inode and bytes
    before = app_rows(study)
    data = eval_json.read_bytes()
    at = data.index(b'"mean": ') + len(b'"mean": ')
    digit = data[at : at + 1]
    rewrite_same_key(eval_json, data[: at + 1], data[:at] + (b"9" if digit != b"9" else b"1"))
    assert app_rows(study)["base"].result != before["base"].result  # type: ignore[attr-defined]


def late_save(cache: RunFolderCache, monkeypatch: pytest.MonkeyPatch) -> None:
    """Save as the app may: a minute after the reads."""
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() + 60_000_000_000)
    assert cache.save()
    monkeypatch.undo()


def test_a_file_modified_just_before_its_read_is_racy_however_late_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app saves long after some reads: a file modified within RACY_NS before its read is marked in its
    entry (the read time is bounded by the cache's start or previous save, not taken as the save's time), so
    the next reader reads it again: here a same-key change of eval.json is seen."""
    runs = tmp_path / "runs"
    write_eval(runs / "a", {"distance": ("abs_error", 300.0, 50.0)}, name="a")
    write_events(runs / "a", [{"t": 1.0, "event": "step", "step": 1, "total_steps": 9}])
    cache = RunFolderCache(runs, name=APP_CACHE)
    first = cache.results(runs / "a")
    assert first is not None and first.sets and cache.progress(runs / "a") is not None
    late_save(cache, monkeypatch)
    lines = (runs / APP_CACHE).read_text().splitlines()[1:]
    assert len(lines) == 2 and all(json.loads(line.partition("\t")[2])[0][1:] == [-1, -1] for line in lines)
    rewrite_same_key(runs / "a" / RESULTS, b"300.0", b"900.0")
    again = RunFolderCache(runs, name=APP_CACHE)
    changed = again.results(runs / "a")
    assert changed is not None and changed != first
    progress = again.progress(runs / "a")  # read on from the offset: the same progress, a real key again
    assert progress is not None and progress.step == 1
    assert again.save()
    assert (runs / APP_CACHE).read_text().count("-1, -1") == 2  # still racy: read just now


def test_a_file_older_than_its_read_is_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    write_eval(runs / "a", {"distance": ("abs_error", 300.0, 50.0)}, name="a")
    age_files(runs)
    cache = RunFolderCache(runs, name=APP_CACHE)
    assert cache.results(runs / "a") is not None
    late_save(cache, monkeypatch)
    assert "-1, -1" not in (runs / APP_CACHE).read_text()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-40] + b"X" + b[-39:],  # one byte of the body
        lambda b: b"not json\n" + b.partition(b"\n")[2],  # the header
        lambda b: b.replace(b'"format": %d' % FORMAT, b'"format": 999', 1),  # a newer ftui's
        lambda b: b.replace(b'"history": 1', b'"history": 200', 1),  # another loss history
        lambda b: b.replace(b'"racy": "entry", ', b"", 1),  # an older ftui's (racy files not marked)
        lambda b: b[: len(b) // 2],  # torn
        lambda b: b"",
        lambda b: bytes(range(256)),
    ],
)
def test_a_damaged_or_foreign_app_cache_is_ignored(study: Path, damage: object) -> None:
    runs = study.parent / "runs"
    app_rows(study)
    rewrite_same_key(runs / "single-1" / EVENTS, b'"loss": 2.8', b'"loss": 9.9')
    cache = runs / APP_CACHE
    damaged = damage(cache.read_bytes())  # type: ignore[operator]
    assert damaged != cache.read_bytes()
    cache.write_bytes(damaged)
    assert app_rows(study)["single-1"].loss == 9.9  # type: ignore[attr-defined]  # every file read again
    assert json.loads(cache.read_bytes().partition(b"\n")[0])["history"] == 1  # a good one written


def test_an_app_cache_that_cannot_be_written_changes_nothing(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ftui.atomic

    fresh = app_rows(study)
    (study.parent / "runs" / APP_CACHE).unlink()

    def refuse(path: object, data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(ftui.atomic, "atomic_write_bytes", refuse)
    assert app_rows(study) == fresh
    assert not (study.parent / "runs" / APP_CACHE).exists()


def test_browsing_only_the_app_writes_no_cache(study: Path) -> None:
    fresh = app_rows(study, read_only=True)
    assert not (study.parent / "runs" / APP_CACHE).exists()
    app_rows(study)
    assert app_rows(study, read_only=True) == fresh  # reads a cache written by another, writes nothing


def test_the_app_saves_again_only_what_changed_and_not_at_every_tick(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ftui.app_data

    runs = study.parent / "runs"
    reg = load_registry(study)
    data = AppData(reg, reg.runs_dir(None), start_worker=False)
    data.rows()
    written = (runs / APP_CACHE).stat().st_mtime_ns
    write_events(runs / "single-1", [{"t": 1_000_000_099.0, "event": "step", "step": 5, "total_steps": 8}])
    time.sleep(0.01)
    data.rows()  # within CACHE_SAVE_S of the first save: not written
    assert (runs / APP_CACHE).stat().st_mtime_ns == written
    monkeypatch.setattr(ftui.app_data, "CACHE_SAVE_S", 0.0)
    data.rows()
    assert (runs / APP_CACHE).stat().st_mtime_ns != written
    folders = data._folders
    assert folders is not None and folders.save() is False  # everything written is remembered as such
    data.store.close()


def test_remembered_rows_are_used_and_equal_what_the_next_tick_reads(study: Path) -> None:
    runs = study.parent / "runs"
    fresh = app_rows(study)
    cache = runs / APP_CACHE
    remembered = remembered_rows(cache)
    assert "base" in remembered and "single-1" not in remembered  # running: its row depends on the time
    reg = load_registry(study)
    data = AppData(reg, reg.runs_dir(None), start_worker=False)
    first, _ = data.rows()  # remembered rows
    second, changed = data.rows()  # the folders read
    assert not changed and second == first and {r.key: r for r in first} == fresh
    data.store.close()
    # Proof that a remembered row is used: an edit of it (the checksum made to match) shows.
    edit_remembered_rows(cache, b'["base", "base", 7,', b'["base", "base", 8,')
    assert app_rows(study)["base"].seed == 8  # type: ignore[attr-defined]


def test_a_changed_job_is_seen_by_the_next_app(study: Path) -> None:
    from ftui.queue.store import Store

    assert app_rows(study)["single-2"].state in ("queued", "waiting")  # type: ignore[attr-defined]
    store = Store(study.parent / "runs")
    store.cancel(["single-2"])  # the queue changes, no run file does
    store.close()
    after = app_rows(study)
    assert after["single-2"].state == "cancelled"  # type: ignore[attr-defined]
    (study.parent / "runs" / APP_CACHE).unlink()
    assert app_rows(study) == after


def test_a_tick_builds_again_only_the_rows_whose_fingerprint_changed(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 5,000 runs a tick rebuilt every row (issue 18): now only the running ones (their ETA moves with the
    clock) and those whose jobs or files changed; the queue's jobs are read again only after a commit."""
    import ftui.status
    from ftui.queue.store import Store

    runs = study.parent / "runs"
    reg = load_registry(study)
    data = AppData(reg, reg.runs_dir(None), start_worker=False)
    data.rows()
    built: list[list[str]] = []
    briefs_read: list[int] = []
    rows_from, job_briefs = ftui.status.rows_from, data.store.job_briefs

    def spy_rows_from(registry: object, runs_dir: object, some: list[object], *rest: object) -> object:
        built.append([run.key for run in some])  # type: ignore[attr-defined]
        return rows_from(registry, runs_dir, some, *rest)  # type: ignore[arg-type]

    def spy_job_briefs(*args: object) -> object:
        briefs_read.append(1)
        return job_briefs(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ftui.status, "rows_from", spy_rows_from)
    monkeypatch.setattr(data.store, "job_briefs", spy_job_briefs)
    before, _ = data.rows()
    assert built == [["single-1"]] and briefs_read == []  # running: built every tick
    store = Store(runs)
    store.cancel(["single-2"])  # a job changes, no file does
    store.close()
    write_events(runs / "single-3", [{"t": 1_000_000_099.0, "event": "step", "step": 6, "total_steps": 8}])
    age_files(runs / "single-3")
    built.clear()
    after, changed = data.rows()
    # pair-1's training waited for single-2's: blocked by the cancel, its job changed too
    assert changed and built == [["single-1", "single-2", "single-3", "pair-1"]] and briefs_read == [1]
    states = {r.key: r.state for r in after}
    assert (states["single-2"], states["pair-1"]) == ("cancelled", "blocked")
    assert all(a is b for a, b in zip(before, after, strict=True) if a.key in ("base", "pair-2", "pair-3"))
    monkeypatch.undo()
    (runs / APP_CACHE).unlink()
    assert {r.key: r for r in after} == app_rows(study)  # what a new app reads from the folders
    data.store.close()


def test_a_refresh_looks_at_settled_runs_in_turn_and_at_those_on_screen_every_time(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SWEEP_RUNS (here 2 of the 7 runs a tick): a finished run's eval.json changed by hand shows when its
    turn comes (the third tick: the first read looked at runs 0-1, then 2-3, 4-5, 6 and 0), or at once when
    the run is on screen."""
    import ftui.app_data

    monkeypatch.setattr(ftui.app_data, "SWEEP_RUNS", 2)
    runs = study.parent / "runs"
    reg = load_registry(study)
    assert [run.key for run in reg.runs()][0] == "base" and len(reg.runs()) == 7

    def base_result(visible: tuple[str, ...] = ()) -> str:
        return {row.key: row.result for row in data.rows(visible)[0]}["base"]

    data = AppData(reg, reg.runs_dir(None), start_worker=False)
    before = base_result()
    write_eval(runs / "base", BASE_METRICS | {"distance": ("abs_error", 410.0, 100.0)}, name="base")
    age_files(runs / "base")
    assert [base_result() for _ in range(2)] == [before] * 2  # not its turn, and not on screen
    after = base_result()
    assert after != before and "410" in after
    write_eval(runs / "base", BASE_METRICS, name="base")
    age_files(runs / "base")
    assert base_result(visible=("base",)) == before  # on screen: looked at every tick
    data.store.close()
