"""The persisted stat cache of `ftui list` (ftui/run_cache.py): the same bytes with and without it, a changed
file always seen, a damaged or foreign cache ignored; and `Store.listing_jobs` equal to `Store.jobs`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ftui.cli import main
from ftui.queue.store import Store
from ftui.run_cache import CACHE_NAME, PROGRESS_FIELDS, RunFolderCache
from ftui.rundir import EVENTS, RESULTS
from tests.ftui.app_fixtures import BASE_METRICS, build_states, make_study, write_eval, write_events

NOW = 1_000_000_100.0  # a fixed clock: the running run's ETA counts down from its last step


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """The mini study in every queue state; its run files dated a minute ago (not racy for the cache)."""
    registry = make_study(tmp_path / "study")
    build_states(registry)
    age_files(registry.parent / "runs")
    return registry


def age_files(runs: Path, seconds: float = 60.0) -> None:
    past = time.time_ns() - int(seconds * 1e9)
    for path in runs.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(past, past))


def listing(registry: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(time, "time", lambda: NOW)
    assert main(["--registry", str(registry), "list", "--json"]) == 0
    monkeypatch.undo()
    return capsys.readouterr().out


def rewrite_same_key(path: Path, old: bytes, new: bytes) -> None:
    """Change a file's bytes in place, keeping its inode, size and mtime (a change no stat can see)."""
    assert len(old) == len(new)
    st = path.stat()
    data = path.read_bytes()
    assert old in data
    with open(path, "r+b") as f:
        f.write(data.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )


def test_cached_listing_is_byte_identical_to_a_fresh_one(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = study.parent / "runs" / CACHE_NAME
    fresh = listing(study, capsys, monkeypatch)
    assert cache.is_file()
    written = cache.read_bytes()
    assert listing(study, capsys, monkeypatch) == fresh
    assert cache.read_bytes() == written  # nothing new was read: not written again
    cache.unlink()
    assert listing(study, capsys, monkeypatch) == fresh
    assert len(json.loads(fresh)["runs"]) == 7


def test_the_cache_is_what_is_read_while_keys_are_unchanged(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proof that an unchanged file is not opened: a change its stat cannot show stays unseen (the engine
    never does this; it appends or replaces)."""
    events = study.parent / "runs" / "single-1" / EVENTS
    before = json.loads(listing(study, capsys, monkeypatch))["runs"]
    rewrite_same_key(events, b'"loss": 2.8', b'"loss": 9.9')
    after = json.loads(listing(study, capsys, monkeypatch))["runs"]
    assert after == before
    (study.parent / "runs" / CACHE_NAME).unlink()
    uncached = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    assert uncached["single-1"]["loss"] == 9.9


def test_a_file_changed_after_caching_is_seen(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = study.parent / "runs"
    rows = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    assert rows["single-1"]["step"] == 4 and rows["base"]["result"].startswith("D ")
    # the running run goes on (appended events); base is evaluated again (eval.json replaced, as the engine
    # does: a new file renamed over the old one)
    step = {"t": NOW - 1, "event": "step", "step": 5, "total_steps": 8, "loss": 1.25, "eta_s": 3.0}
    write_events(runs / "single-1", [step])
    metrics = {task: (metric, 5.0 * a, 5.0 * s) for task, (metric, a, s) in BASE_METRICS.items()}
    write_eval(runs / "base", metrics, name="base")
    rows2 = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    assert rows2["single-1"]["step"] == 5 and rows2["single-1"]["loss"] == 1.25
    assert rows2["base"]["result"] != rows["base"]["result"]
    (runs / CACHE_NAME).unlink()
    assert json.loads(listing(study, capsys, monkeypatch))["runs"] == list(rows2.values())


def test_files_written_just_before_the_cache_are_parsed_again(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file modified within RACY_NS of the cache's writing may change again in the same mtime tick without
    a new key: its entry is not trusted (here a same-key change of eval.json is seen)."""
    eval_json = study.parent / "runs" / "base" / RESULTS
    eval_json.write_bytes(eval_json.read_bytes())  # a fresh mtime, same inode and bytes
    before = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    data = eval_json.read_bytes()
    at = data.index(b'"mean": ') + len(b'"mean": ')
    digit = data[at : at + 1]
    assert digit.isdigit()
    rewrite_same_key(eval_json, data[: at + 1], data[:at] + (b"9" if digit != b"9" else b"1"))
    after = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    assert after["base"]["result"] != before["base"]["result"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-40] + b"X" + b[-39:],  # one byte of the body
        lambda b: b"not json\n" + b.partition(b"\n")[2],  # the header
        lambda b: b.replace(b'"format": 1', b'"format": 999', 1),  # a newer ftui's
        lambda b: b.replace(b'"history": 1', b'"history": 200', 1),  # another loss history
        lambda b: b[: len(b) // 2],  # torn
        lambda b: b"",
        lambda b: bytes(range(256)),
    ],
)
def test_a_damaged_or_foreign_cache_is_ignored(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, damage: object
) -> None:
    cache = study.parent / "runs" / CACHE_NAME
    fresh = listing(study, capsys, monkeypatch)
    rewrite_same_key(study.parent / "runs" / "single-1" / EVENTS, b'"loss": 2.8', b'"loss": 9.9')
    cache.write_bytes(damage(cache.read_bytes()))  # type: ignore[operator]
    out = listing(study, capsys, monkeypatch)
    assert out != fresh and '"loss": 9.9' in out  # every file read again
    assert json.loads(cache.read_bytes().partition(b"\n")[0])["format"] == 1  # and a good cache written


def test_a_cache_that_cannot_be_written_changes_nothing(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ftui.atomic

    def refuse(path: object, data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    fresh = listing(study, capsys, monkeypatch)
    (study.parent / "runs" / CACHE_NAME).unlink()
    monkeypatch.setattr(ftui.atomic, "atomic_write_bytes", refuse)
    cache = RunFolderCache(study.parent / "runs")
    assert cache.progress(study.parent / "runs" / "base") is not None
    assert cache.save() is False
    monkeypatch.undo()
    assert listing(study, capsys, monkeypatch) == fresh


def test_progress_and_results_round_trip_exactly(study: Path) -> None:
    runs = study.parent / "runs"
    first = RunFolderCache(runs)
    progress = {d: first.progress(runs / d) for d in ("base", "single-1")}
    results = first.results(runs / "base")
    assert first.save()
    again = RunFolderCache(runs)
    assert {d: again.progress(runs / d) for d in progress} == progress
    assert again.results(runs / "base") == results and results is not None and results.sets
    assert again.save() is False  # all recalled, nothing new
    assert set(PROGRESS_FIELDS) >= {"step_times", "losses", "final_digest"}


def test_listing_jobs_equals_jobs(study: Path) -> None:
    store = Store(study.parent / "runs")
    everything = store.jobs()
    jobs, counts = store.listing_jobs()
    assert jobs == everything
    assert counts == {s: sum(1 for j in everything if j.state == s) for s in {j.state for j in everything}}
    some = ["pair-2", "base"]
    assert store.listing_jobs(some)[0] == store.jobs(run_keys=some)
    many = [j.run_key for j in everything] * 500  # beyond the SQL path's parameter limit
    assert store.listing_jobs(many)[0] == everything
    assert store.listing_jobs([]) == ([], counts)


def test_odd_folder_names_are_remembered(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    odd = ["tab\there", 'quote"d', "plain", "new\nline"]
    for name in odd:
        write_events(runs / name, [{"t": 1.0, "event": "step", "step": len(name), "total_steps": 99}])
    age_files(runs)
    first = RunFolderCache(runs)
    assert [p.step for name in odd if (p := first.progress(runs / name))] == [len(n) for n in odd]
    assert first.save()
    again = RunFolderCache(runs)
    assert [p.step for name in odd if (p := again.progress(runs / name))] == [len(n) for n in odd]
    assert again.save() is False  # every one recalled from the cache, none read


def test_browsing_only_writes_no_cache(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = study.parent / "runs"
    assert main(["--registry", str(study), "--read-only", "list", "--json"]) == 0
    assert not (runs / CACHE_NAME).exists()
    (runs / "RESULTS.json").write_text("{}")  # a results archive (scripts/sweep.py): read-only by itself
    assert main(["--registry", str(study), "list"]) == 0
    assert not (runs / CACHE_NAME).exists()
    capsys.readouterr()
