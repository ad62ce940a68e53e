"""The Slurm executor against a REAL Slurm cluster (tests/slurm/cluster.sh up): no mock of Slurm.

Skipped when no cluster answers `sinfo`, unless FTUI_REQUIRE_SLURM=1 (what .ci/run sets): then a missing
cluster is a failure, never a silent skip. Smoke-sized engine runs on the CPU; the mini study
(tests/data/mini_study.toml) with `executor = "slurm"`. The time-limit test needs Slurm's smallest limit (one
minute, checked about every 30 s), so it is started first by a module fixture and checked last; the other
tests run on the node's other CPU meanwhile.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ftui.queue.store import Store
from ftui.queue.worker import LOG_NAME, ensure_worker, stop_worker, worker_pid
from tests.ftui.queue_helpers import events, list_json, mini_study_with, run_ftui
from tests.ftui.queue_helpers import wait_until as wait_for


def _cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:  # sinfo retries for ~9 s when no controller listens; a live one answers at once
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(re.search(r"idle|mixed|allocated", out.stdout))


CLUSTER = _cluster_up()
if not CLUSTER and os.environ.get("FTUI_REQUIRE_SLURM") == "1":
    raise RuntimeError(
        "FTUI_REQUIRE_SLURM=1 but no Slurm cluster answers sinfo (run tests/slurm/cluster.sh up)"
    )

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(not CLUSTER, reason="no Slurm cluster (bash tests/slurm/cluster.sh up)"),
]

ENV = os.environ | {"FTUI_WORKER_IDLE_EXIT": "2", "FTUI_WORKER_POLL": "0.1", "FTUI_SLURM_POLL": "0.5"}
# A fine-tune that runs until stopped: many epochs, a checkpoint every 5 steps.
ENDLESS = {"max_steps": "1000000", "epochs": "100000", "checkpoint_every": "5", "log_every_steps": "1"}


def write_study(folder: Path, slurm: str = "", **values: str) -> Path:
    slurm_runner = f'executor = "slurm"\n\n[runner.slurm]\ncpus = 1\n{slurm}'
    return mini_study_with(folder, values, {'executor = "local"': slurm_runner})


def ftui(registry: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_ftui(registry, *args, env=ENV, timeout=120)


def rows(registry: Path) -> dict[str, dict[str, Any]]:
    return list_json(registry, env=ENV, timeout=120)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 150.0, poll: float = 0.3) -> Any:
    return wait_for(check, what, timeout=timeout, poll=poll)


def squeue_state(slurm_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True, timeout=10
    )
    return out.stdout.strip()


def base_id(slurm_id: str | None) -> int:
    """The job id of a plain job, or the array's id of an array task (`1234_5` -> 1234)."""
    assert slurm_id
    return int(slurm_id.partition("_")[0])


def counting_sbatch(folder: Path) -> tuple[dict[str, str], Path]:
    """An environment whose `sbatch` is a shim that logs each call to the returned file, then runs the real
    sbatch (the cluster is real; only the calls are counted)."""
    real = shutil.which("sbatch")
    assert real is not None
    shim_dir, calls = folder / "shim", folder / "sbatch-calls"
    shim_dir.mkdir()
    shim = shim_dir / "sbatch"
    shim.write_text(f'#!/bin/bash\necho "$@" >> {str(calls)!r}\nexec {real!r} "$@"\n')
    shim.chmod(0o755)
    return ENV | {"PATH": f"{shim_dir}:{os.environ['PATH']}"}, calls


def engine_pids(run_dir: Path) -> list[int]:
    """Live processes whose command line names the run folder (an engine Slurm started for it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        if b"engine" in cmdline and str(run_dir).encode() in cmdline:
            found.append(int(entry))
    return found


def cleanup(runs_dir: Path) -> None:
    """Stop the worker, then scancel whatever Slurm job a failed test left behind."""
    stop_worker(runs_dir)
    for job in Store(runs_dir).jobs(states=["running"]):
        if job.slurm_id:
            subprocess.run(["scancel", job.slurm_id], capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """`ftui launch 'single-[12]'` through Slurm: base's training, two fine-tunes, their evaluations."""
    folder = tmp_path_factory.mktemp("slurm-sweep")
    registry = write_study(folder)
    out = ftui(registry, "launch", "single-[12]")
    assert out.returncode == 0, out.stderr
    try:
        wait_until(
            lambda: all(r["state"] not in ("running", "queued", "waiting") for r in rows(registry).values()),
            "the sweep to finish",
        )
        yield registry, out.stdout
    finally:
        cleanup(folder / "runs")


@pytest.fixture(scope="module")
def time_limited(sweep: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An endless fine-tune with a one-minute Slurm time limit, launched as early as possible."""
    folder = tmp_path_factory.mktemp("slurm-timeout")
    src = sweep[0].parent / "runs"
    for name in ("base", ".data"):
        shutil.copytree(src / name, folder / "runs" / name)
    registry = write_study(folder, slurm='time = "1"\n', **ENDLESS)
    out = ftui(registry, "launch", "single-3", "--only")
    assert out.returncode == 0, out.stderr
    try:
        yield registry
    finally:
        cleanup(folder / "runs")


def test_sweep_runs_through_slurm_in_dependency_order(sweep: tuple[Path, str], time_limited: Path) -> None:
    registry, launch_output = sweep
    assert "queued 5 job(s)" in launch_output
    table = rows(registry)
    assert table["base"]["state"] == "trained"
    store = Store(registry.parent / "runs")
    jobs = {(j.run_key, j.action): j for j in store.jobs()}
    for key in ("single-1", "single-2"):
        assert table[key]["state"] == "done" and table[key]["result"], table[key]
        assert (registry.parent / "runs" / key / "eval.json").is_file()
        assert table[key]["partition"] == "debug" and table[key]["node"]
        train, ev = jobs[(key, "train")], jobs[(key, "eval")]
        assert train.executor == "slurm" and train.slurm_id and ev.slurm_id
        # Dependencies kept by the worker: a job is submitted only after what it needs has finished.
        assert train.started is not None and jobs[("base", "train")].finished is not None
        assert train.started >= jobs[("base", "train")].finished
        assert ev.started is not None and train.finished is not None and ev.started >= train.finished
        assert base_id(jobs[("base", "train")].slurm_id) < base_id(train.slurm_id) < base_id(ev.slurm_id)
        assert ev.exit_code == 0 and "COMPLETED" in ev.reason
    script = (registry.parent / "runs" / "single-1" / "job.sbatch").read_text()
    assert "#SBATCH --cpus-per-task=1" in script and "-m engine eval" in script
    log = ftui(registry, "logs", "single-1")
    assert log.returncode == 0 and "on slurm job" in log.stdout and "eval" in log.stdout
    listing = ftui(registry, "list", "--wide")  # the Slurm column is in the full table only
    assert listing.returncode == 0 and "slurm" in listing.stdout and "debug/" in listing.stdout


def test_a_failing_job_is_failed_with_its_exit_code_and_blocks_its_dependants(
    sweep: tuple[Path, str], tmp_path: Path
) -> None:
    src = sweep[0].parent / "runs"
    for name in ("base", ".data"):
        shutil.copytree(src / name, tmp_path / "runs" / name)
    (tmp_path / "runs" / "base" / "checkpoints" / "final.pt").write_bytes(b"not a checkpoint")
    registry = write_study(tmp_path)
    try:
        assert ftui(registry, "launch", "single-1", "--only").returncode == 0
        row = wait_until(
            lambda: (r := rows(registry)["single-1"])["jobs"]["train"]["state"] == "failed" and r,
            "the fine-tune to fail",
        )
        train = row["jobs"]["train"]
        assert train["exit_code"] not in (None, 0) and "FAILED" in train["reason"], train
        assert train["slurm_id"] and squeue_state(train["slurm_id"]) == "FAILED"
        assert row["jobs"]["eval"]["state"] == "blocked"
    finally:
        cleanup(tmp_path / "runs")


def test_a_rejected_submission_fails_with_slurms_message(sweep: tuple[Path, str], tmp_path: Path) -> None:
    registry = write_study(tmp_path, slurm='gres = "gpu:1"\n')  # the test node has no GPUs
    try:
        assert ftui(registry, "launch", "base").returncode == 0
        row = wait_until(lambda: (r := rows(registry)["base"])["state"] == "failed" and r, "the rejection")
        assert "not submitted" in row["reason"] and "Invalid generic resource" in row["reason"], row["reason"]
        assert row["jobs"]["eval"]["state"] == "blocked"
    finally:
        cleanup(tmp_path / "runs")


def test_cancel_scancels_and_leaves_no_process(
    sweep: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = sweep[0].parent / "runs"
    for name in ("base", ".data"):
        shutil.copytree(src / name, tmp_path / "runs" / name)
    registry = write_study(tmp_path, **ENDLESS)
    run_dir = (tmp_path / "runs" / "single-2").resolve()
    try:
        assert ftui(registry, "launch", "single-2", "--only").returncode == 0
        wait_until(lambda: any(e["event"] == "checkpoint" for e in events(run_dir)), "a checkpoint")
        assert engine_pids(run_dir)
        slurm_id = rows(registry)["single-2"]["slurm_id"]
        # The worker dies (SIGKILL); the Slurm job runs on; a new worker watches it again by its id.
        os.kill(wait_until(lambda: worker_pid(run_dir.parent), "the worker"), signal.SIGKILL)
        wait_until(lambda: worker_pid(run_dir.parent) is None, "the dead worker's lock to drop")
        assert squeue_state(slurm_id) == "RUNNING"
        for name in ("FTUI_WORKER_IDLE_EXIT", "FTUI_WORKER_POLL", "FTUI_SLURM_POLL"):
            monkeypatch.setenv(name, ENV[name])
        ensure_worker(run_dir.parent)
        wait_until(
            lambda: f"(slurm job {slurm_id}) again" in (run_dir.parent / LOG_NAME).read_text(),
            "the new worker to pick the Slurm job up",
        )
        out = ftui(registry, "cancel", "single-2", "--wait")
        assert out.returncode == 0, out.stderr
        row = rows(registry)["single-2"]
        assert row["state"] == "cancelled" and row["jobs"]["train"]["state"] == "cancelled"
        assert squeue_state(slurm_id) == "CANCELLED"
        wait_until(lambda: not engine_pids(run_dir), "the engine process to be gone", timeout=30)
        assert row["jobs"]["eval"]["state"] == "cancelled"  # the pattern names the run: both its jobs
    finally:
        cleanup(tmp_path / "runs")


def test_a_family_launched_together_is_one_sbatch_call_as_a_job_array(
    sweep: tuple[Path, str], tmp_path: Path
) -> None:
    """Six fine-tunes ready in the same pass (two families, the same [runner.slurm] options): one sbatch
    call submits them as one job array; each task trains in its own run folder, logs there, and is
    followed, settled and evaluated on its own."""
    src = sweep[0].parent / "runs"
    for name in ("base", ".data"):
        shutil.copytree(src / name, tmp_path / "runs" / name)
    registry = write_study(tmp_path)
    env, calls = counting_sbatch(tmp_path)
    keys = [f"{family}-{i}" for family in ("single", "pair") for i in (1, 2, 3)]
    try:
        out = run_ftui(registry, "launch", "single-*", "pair-*", "--only", env=env, timeout=120)
        assert out.returncode == 0 and "queued 12 job(s)" in out.stdout, out.stdout + out.stderr

        def finished() -> dict[str, dict[str, Any]] | None:
            table = rows(registry)
            ended = all(table[k]["state"] not in ("running", "queued", "waiting") for k in keys)
            return table if ended else None

        table = wait_until(finished, "the two families to finish", timeout=300)
        store = Store(tmp_path / "runs")
        trains = [j for j in store.jobs() if j.action == "train"]
        assert sorted(j.run_key for j in trains) == sorted(keys)
        assert len({base_id(j.slurm_id) for j in trains}) == 1  # one array
        assert sorted(int((j.slurm_id or "").partition("_")[2]) for j in trains) == list(range(6))
        submitted = calls.read_text().splitlines()
        array_calls = [c for c in submitted if "/.slurm/" in c]
        assert array_calls and array_calls[0] == submitted[0]  # the six trainings: the first call
        # 12 jobs took fewer than 12 sbatch calls: 1 for the trainings, at most 6 for the evaluations
        assert len(submitted) <= 7, submitted
        for key in keys:
            assert table[key]["state"] == "done" and table[key]["result"], table[key]
            log = (tmp_path / "runs" / key / "train.log").read_text()
            train = next(j for j in trains if j.run_key == key)
            assert f"train attempt 1 on slurm job {train.slurm_id} " in log  # the task wrote its own log
            assert "COMPLETED" in train.reason and train.exit_code == 0
    finally:
        cleanup(tmp_path / "runs")


async def test_the_app_shows_slurm_job_ids(sweep: tuple[Path, str]) -> None:
    from ftui.app import make_app
    from ftui.widgets.run_table import RunTable

    registry, _ = sweep
    store = Store(registry.parent / "runs")
    ids = {j.run_key: f"{j.slurm_id} {j.partition}/{j.node}" for j in store.jobs() if j.action == "eval"}
    assert all(j.slurm_id and j.node for j in store.jobs() if j.action == "eval")
    app = make_app(registry, start_worker=False)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(RunTable)
        for key in ("single-1", "single-2"):
            assert str(table.get_cell(key, "gpu")) == f"slurm {ids[key]}"  # id partition/node


def test_a_time_limit_re_queues_once_and_the_run_resumes(time_limited: Path) -> None:
    registry = time_limited
    run_dir = registry.parent / "runs" / "single-3"
    store = Store(registry.parent / "runs")

    def resumed_start() -> bool:
        starts = [e for e in events(run_dir) if e["event"] == "start" and e["action"] == "train"]
        return len(starts) >= 2 and starts[-1]["resumed_from_step"] > 0

    wait_until(resumed_start, "the re-queued training to resume from its checkpoint", timeout=200, poll=1.0)
    train = next(j for j in store.jobs() if j.run_key == "single-3" and j.action == "train")
    assert train.requeues == 1 and train.attempts == 2
    assert any("TIMEOUT: re-queued once" in h["reason"] for h in store.history(train.id))
    assert ftui(registry, "cancel", "single-3", "--wait").returncode == 0
