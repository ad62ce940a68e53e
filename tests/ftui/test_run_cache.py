"""The persisted stat cache of `ftui list` (ftui/run_cache.py): the same bytes with and without it, a changed
file always seen, a damaged or foreign cache ignored; and `Store.listing_jobs` equal to `Store.jobs`."""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from ftui.cli import main
from ftui.queue.store import Store
from ftui.run_cache import CACHE_NAME, FORMAT, PROGRESS_FIELDS, RunFolderCache
from ftui.rundir import EVENTS, FINAL_CHECKPOINT, RESULTS, ProgressReader
from ftui.widgets.file_tail import FileTail
from tests.ftui.app_fixtures import (
    BASE_METRICS,
    age_files,
    make_study,
    train_events,
    write_eval,
    write_events,
    write_final,
)

NOW = 1_000_000_100.0  # a fixed clock: the running run's ETA counts down from its last step


@pytest.fixture
def study(aged_states_study: Path) -> Path:
    return aged_states_study


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


def cache_sections(cache: Path) -> tuple[dict[str, Any], bytes, bytes]:
    """The cache file's header, its files' section and its rows' section."""
    head, _, body = cache.read_bytes().partition(b"\n")
    header = json.loads(head)
    return header, body[: header["rows_at"]], body[header["rows_at"] :]


def remembered_rows(cache: Path) -> dict[str, str]:
    """Run key -> the state remembered with its row (rows section lines: key, fingerprint, state, row)."""
    rows = cache_sections(cache)[2].decode().splitlines()
    return {key: rest.split("\t")[1] for key, _, rest in (line.partition("\t") for line in rows)}


def edit_remembered_rows(cache: Path, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` once in the cache's rows section, its checksum made to match (an edit the
    cache cannot tell from what ftui wrote)."""
    header, files, rows = cache_sections(cache)
    assert old in rows
    rows = rows.replace(old, new, 1)
    header |= {"rows_crc32": zlib.crc32(rows)}
    cache.write_bytes(json.dumps(header).encode() + b"\n" + files + rows)


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


def overwrite_in_place(path: Path, data: bytes) -> None:
    """What `cp OTHER path` does: truncate the file and write new bytes into the same inode (a file removed
    and created again often gets the same inode number back too: ext4 reuses them at once)."""
    ino = path.stat().st_ino
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(data)
    assert path.stat().st_ino == ino


def other_run_events(steps: int) -> bytes:
    """Another run's history (other times and losses), longer than the one it replaces."""
    events = train_events(steps, steps, t0=1_500_000_000.0)
    for e in events:
        if "loss" in e:
            e["loss"] = float(e["loss"]) + 0.5  # type: ignore[arg-type]
    return "".join(json.dumps(e) + "\n" for e in events).encode()


def test_an_events_file_overwritten_in_place_is_read_from_its_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reported: after `cp runs/pt1/events.jsonl runs/ft1-2/events.jsonl` (same inode, more bytes) `ftui list`
    kept showing ft1-2 as trained on its parent's weights (truth: stale, its history now says it started
    from other weights): the cache read on from its old offset into another file's bytes, missing the start
    event. The bytes before the offset are checked (ftui/appended.py)."""
    study = make_study(tmp_path / "study")  # no queue: the states come from the folders
    runs = study.parent / "runs"

    def final(t: float, digest: str) -> dict[str, object]:
        return {"t": t, "event": "checkpoint", "path": FINAL_CHECKPOINT, "digest": digest}

    for key, start in (("base", {}), ("single-1", {"parent": {"digest": "a" * 64}})):
        write_events(
            runs / key,
            [{"t": NOW - 50, "event": "start", "action": "train", **start}, final(NOW - 40, "a" * 64)],
        )
        write_final(runs / key)
    age_files(runs)
    before = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    assert before["single-1"]["state"] == "trained" and before["single-1"]["stale"] == ""
    events = runs / "single-1" / EVENTS
    history = [{"t": NOW - 30, "event": "start", "action": "train", "parent": {"digest": "b" * 64}}]
    history += [{"t": NOW - 30 + i, "event": "step", "step": i, "total_steps": 30} for i in range(1, 31)]
    history += [final(NOW - 1, "c" * 64)]
    overwrite_in_place(events, "".join(json.dumps(e) + "\n" for e in history).encode())
    age_files(runs)
    cached = listing(study, capsys, monkeypatch)
    (runs / CACHE_NAME).unlink()
    assert cached == listing(study, capsys, monkeypatch)
    after = {r["key"]: r for r in json.loads(cached)["runs"]}["single-1"]
    assert after["state"] == "stale" and after["step"] == 30


def test_the_readers_of_appended_bytes_notice_an_in_place_rewrite(tmp_path: Path) -> None:
    """The same fault in one process (the app's events reader and its log view): a file rewritten in place
    that grew past the offset between two reads is read again from its start."""
    run = tmp_path / "run"
    write_events(run, train_events(4, 8))
    reader = ProgressReader()
    log = run / "train.log"
    log.write_bytes(b"".join(b"old line %d\n" % i for i in range(5)))
    tail = FileTail(log)
    assert (p := reader.progress(run)) is not None and p.step == 4
    assert tail.read_lines() == [f"old line {i}" for i in range(5)]
    overwrite_in_place(run / EVENTS, other_run_events(30))
    overwrite_in_place(log, b"".join(b"new line %d\n" % i for i in range(40)))
    assert reader.progress(run) == ProgressReader().progress(run)
    assert tail.read_lines() == [f"new line {i}" for i in range(40)]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-40] + b"X" + b[-39:],  # one byte of the body
        lambda b: b"not json\n" + b.partition(b"\n")[2],  # the header
        lambda b: b.replace(b'"format": %d' % FORMAT, b'"format": 999', 1),  # a newer ftui's
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
    assert json.loads(cache.read_bytes().partition(b"\n")[0])["format"] == FORMAT  # and a good cache written


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


def test_a_listing_of_a_few_runs_reads_their_files_not_the_cache(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ftui list RUN` in a sweep of thousands: two files cost less than the cache of all runs (issue 18)."""
    runs = study.parent / "runs"
    everything = {r["key"]: r for r in json.loads(listing(study, capsys, monkeypatch))["runs"]}
    (runs / CACHE_NAME).unlink()
    monkeypatch.setattr(time, "time", lambda: NOW)
    assert main(["--registry", str(study), "list", "--json", "single-*", "base"]) == 0
    monkeypatch.undo()
    few = json.loads(capsys.readouterr().out)["runs"]
    assert [r["key"] for r in few] == ["base", "single-1", "single-2", "single-3"]  # the registry's order
    assert few == [everything[r["key"]] for r in few]
    assert not (runs / CACHE_NAME).exists()
