"""The queue database on file systems that misbehave: a read-only mount, a runs folder removed or replaced
under an open Store, a full disk (real ones: tests/mounts.py), and an unreadable queue under the app.
"""

from __future__ import annotations

import io
import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from ftui.queue.store import DONE, JobSpec, Store, StoreError, StoreReplaced
from ftui.queue.worker import Worker
from tests.conftest import REPO_ROOT
from tests.data.make_eval_fixtures import make_fixtures
from tests.mounts import fill, in_namespace, needs_mounts, read_only, small_disk

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"


def ftui(runs: Path, *args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "ftui", "--registry", str(MINI), "--runs", str(runs), *args)


def finished_folder(runs: Path) -> Store:
    """A runs folder after a sweep: evaluated run folders and a queue with every job done."""
    make_fixtures(MINI, runs)
    store = Store(runs)
    store.enqueue([JobSpec("base", "base", "base", "train"), JobSpec("base", "base", "base", "eval")])
    for job in store.jobs():
        store.schedule()
        store.claim(job.id, "cpu")
        store.finish(job.id, DONE, "exit 0", exit_code=0)
    return store


# ---- fault 7: a read-only results folder -------------------------------------------------------------------
@needs_mounts
@pytest.mark.parametrize("wal", [False, True], ids=["closed-cleanly", "wal-files-present"])
def test_a_read_only_runs_folder_lists_and_refuses_changes(tmp_path: Path, wal: bool) -> None:
    """`ftui list` on a read-only mount of a finished runs folder: exit 0 with every job's state, whether the
    database was closed cleanly (no -wal/-shm: they cannot be created there) or still has its WAL files."""
    runs = tmp_path / "runs"
    store = finished_folder(runs)
    if not wal:
        store.close()
    assert (runs / "ftui.db-wal").exists() == wal
    out = in_namespace(read_only(runs), *ftui(runs, "list", "--json"))
    assert out.returncode == 0, out.stderr
    rows = {r["key"]: r for r in json.loads(out.stdout)["runs"]}
    assert rows["base"]["state"] == "done"
    assert rows["single-1"]["result"]  # read from the run folders
    launch = in_namespace(read_only(runs), *ftui(runs, "launch", "single-1", "--only"))
    assert launch.returncode != 0 and "Traceback" not in launch.stderr
    assert "read-only" in launch.stderr.lower(), launch.stderr


@needs_mounts
def test_a_read_only_folder_without_a_database_lists_the_run_folders(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_fixtures(MINI, runs)
    out = in_namespace(read_only(runs), *ftui(runs, "list", "--json"))
    assert out.returncode == 0, out.stderr
    assert {r["key"]: r for r in json.loads(out.stdout)["runs"]}["base"]["result"]


# ---- fault 8: the runs folder removed or replaced under an open Store --------------------------------------
def spec(key: str) -> JobSpec:
    return JobSpec(key, key, key, "train")


def test_a_removed_runs_folder_is_created_again_not_written_into_the_deleted_file(tmp_path: Path) -> None:
    """`rm -rf runs` with the app open, then a launch from the app: the job must land in the database a new
    worker will read, not in the deleted file the app still holds open."""
    runs = tmp_path / "runs"
    app_store = Store(runs)
    app_store.enqueue([spec("old")])
    shutil.rmtree(runs)
    assert app_store.jobs() == []  # reading: the folder is gone, so there is no queue
    app_store.enqueue([spec("new")])
    worker_store = Store(runs)
    assert [j.run_key for j in worker_store.jobs()] == ["new"]


def test_a_replaced_runs_folder_is_followed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    app_store = Store(runs)
    app_store.enqueue([spec("old")])
    runs.rename(tmp_path / "runs.old")
    other = Store(runs)
    other.enqueue([spec("restored")])
    assert [j.run_key for j in app_store.jobs()] == ["restored"]
    app_store.cancel(["restored"])
    assert [j.state for j in other.jobs()] == ["cancelled"]
    assert [j.run_key for j in Store(tmp_path / "runs.old").jobs()] == ["old"]  # the old one is untouched


def test_a_store_that_must_not_follow_says_its_database_was_replaced(tmp_path: Path) -> None:
    """A worker's jobs live in the database it opened: it must never write their ids into another one."""
    runs = tmp_path / "runs"
    worker_store = Store(runs, follow_replacement=False)
    worker_store.enqueue([spec("old")])
    shutil.rmtree(runs)
    Store(runs).enqueue([spec("new")])
    with pytest.raises(StoreReplaced, match="removed or replaced"):
        worker_store.jobs()
    with pytest.raises(StoreError, match="removed or replaced"):
        worker_store.enqueue([spec("other")])
    assert [j.run_key for j in Store(runs).jobs()] == ["new"]


def test_a_worker_whose_runs_folder_was_replaced_stops_and_leaves_the_new_queue_alone(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    log = io.StringIO()
    worker = Worker(runs, log=log, gpus=[])
    worker.store.enqueue([spec("old")])
    worker.store.cancel(["old"])
    shutil.rmtree(runs)
    Store(runs).enqueue([spec("new")])
    worker._guard(worker.step)
    assert worker._stop and "removed or replaced" in log.getvalue()
    assert [(j.run_key, j.state) for j in Store(runs).jobs()] == [("new", "queued")]


# ---- fault 12: a full disk ---------------------------------------------------------------------------------
@needs_mounts
def test_a_full_disk_is_named_with_the_bytes_free(tmp_path: Path) -> None:
    """The queue on a tmpfs with no space left: `ftui list` and `ftui launch` say so instead of `disk I/O
    error` / `database or disk is full`."""
    disk = tmp_path / "disk"
    disk.mkdir()
    runs = disk / "runs"
    seed = (
        "import sys; from ftui.queue.store import Store, JobSpec;"
        "Store(sys.argv[1]).enqueue([JobSpec('base', 'base', 'base', 'train')])"
    )
    setup = "\n".join(
        [
            small_disk(disk),
            f"{shlex.quote(sys.executable)} -c {shlex.quote(seed)} {shlex.quote(str(runs))}",
            fill(sys.executable, disk / "filler"),
        ]
    )
    for args in (("list",), ("launch", "single-1", "--only")):
        out = in_namespace(setup, *ftui(runs, *args))
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
        assert f"no space left on the disk holding {runs} (" in out.stderr, (args, out.stderr)
        assert " bytes free)" in out.stderr


# ---- the app never ends in a traceback for a store error ---------------------------------------------------
async def test_the_app_shows_an_unreadable_queue_instead_of_crashing(tmp_path: Path) -> None:
    from ftui.app import make_app
    from ftui.screens.home_screen import HomeScreen
    from ftui.screens.run_screen import RunScreen

    registry = tmp_path / "experiments.toml"
    shutil.copy(MINI, registry)
    make_fixtures(MINI, tmp_path / "runs")
    (tmp_path / "runs" / "ftui.db").write_bytes(b"not a database " * 100)
    app = make_app(registry, start_worker=False)
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(2):
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        status = str(app.screen.query_one("#home-status").render())
        assert "file is not a database" in status, status
        assert "done" in str(app.screen.query_one("RunTable").get_cell("base", "state"))  # from its folder
        await pilot.press("l")  # launch: the queue refuses, the app says so and stays
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
    assert app.return_code in (0, None)
