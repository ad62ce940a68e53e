"""GPU memory and utilisation per running job, from recorded NVML answers (this machine has no GPU).

The fake `pynvml` (tests/data/fake_nvml/pynvml.py) replays answers from a JSON file: it stands in for the
driver, at the system's edge. The jobs' processes are real: a process group with two children, mapped to its
job through /proc as on a GPU machine. Unchecked on real hardware.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ftui import gpu_usage
from ftui.app import make_app
from ftui.gpu_usage import GpuUsage, JobProcs, format_usage
from ftui.queue import procs
from ftui.queue.store import JobSpec, Store
from ftui.registry import load_registry
from ftui.status import RunStatus, with_gpu_usage
from ftui.widgets.run_table import RunTable
from tests.conftest import REPO_ROOT
from tests.ftui.app_fixtures import make_study
from tests.ftui.queue_helpers import list_json, wait_until

FAKE_DIR = REPO_ROOT / "tests" / "data" / "fake_nvml"
GIB = 2**30
NO_SUCH_PID = 4_000_001  # above any pid_max: matched by pid only, never found in /proc


@pytest.fixture
def group() -> Iterator[tuple[int, list[int]]]:
    """A real process group (a shell leading two sleeps), like an engine and its DataLoader workers."""
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"], start_new_session=True)
    members = wait_until(
        lambda: len(m := procs.group_members(leader.pid)) == 3 and m, "two children", timeout=10, poll=0.02
    )
    try:
        yield leader.pid, [p for p in members if p != leader.pid]
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def record(tmp_path: Path, answers: dict[str, Any]) -> Path:
    path = tmp_path / "nvml.json"
    path.write_text(json.dumps(answers))
    return path


def inits(answers: Path) -> int:
    marks = Path(str(answers) + ".inits")
    return len(marks.read_text().splitlines()) if marks.exists() else 0


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake module where `import pynvml` looks first (sys.modules), and a fresh shared NVML state."""
    spec = importlib.util.spec_from_file_location("pynvml", FAKE_DIR / "pynvml.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setattr(gpu_usage, "shared", GpuUsage())


def test_processes_map_to_jobs_by_pid_and_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_nvml: None, group: tuple[int, list[int]]
) -> None:
    leader, children = group
    answers = record(
        tmp_path,
        {
            "devices": [
                {
                    "processes": [
                        {"pid": children[0], "usedGpuMemory": int(1.5 * GIB)},  # job a: a child in its group
                        {"pid": children[1], "usedGpuMemory": GIB // 2},  # job a again
                        {"pid": NO_SUCH_PID, "usedGpuMemory": GIB},  # job b: its engine pid
                        {"pid": NO_SUCH_PID + 1, "usedGpuMemory": GIB},  # job d: no utilisation sample
                        {"pid": os.getpid(), "usedGpuMemory": 9 * GIB},  # not a job: ignored
                    ],
                    "samples": [
                        {"pid": children[0], "smUtil": 30},
                        {"pid": children[1], "smUtil": 5},
                        {"pid": NO_SUCH_PID, "smUtil": 20},
                        {"pid": NO_SUCH_PID, "smUtil": 60, "timeStamp": 1},  # too old: outside the window
                    ],
                    "util": 99,
                },
                # job c alone on device 1, no per-process samples: the device's utilisation is the job's.
                {"processes": [{"pid": NO_SUCH_PID + 2, "usedGpuMemory": None}], "samples": None, "util": 77},
            ]
        },
    )
    monkeypatch.setenv("FTUI_FAKE_NVML", str(answers))
    jobs = {
        "a": JobProcs(leader, leader),
        "b": JobProcs(NO_SUCH_PID, None),
        "c": JobProcs(NO_SUCH_PID + 2, None),
        "d": JobProcs(NO_SUCH_PID + 1, None),
        "e": JobProcs(NO_SUCH_PID + 3, None),  # on no GPU
    }
    found = gpu_usage.shared.usage(jobs)
    assert set(found) == {"a", "b", "c", "d"}
    assert found["a"].memory_mib == 2048.0 and found["a"].util_percent == 35 and found["a"].devices == (0,)
    assert found["b"].memory_mib == 1024.0 and found["b"].util_percent == 20
    assert found["c"].memory_mib is None and found["c"].util_percent == 77 and found["c"].devices == (1,)
    assert found["d"].util_percent is None  # shares device 0 with others: its device's figure is not its own
    assert format_usage(2048.0, 35) == "2.0G 35%" and format_usage(300.0, None) == "300M"
    assert inits(answers) == 1


def test_failed_init_is_tried_once_and_shows_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_nvml: None
) -> None:
    answers = record(tmp_path, {"init_error": True, "devices": []})
    monkeypatch.setenv("FTUI_FAKE_NVML", str(answers))
    rows = [running_row("single-1", 123)]
    for _ in range(3):
        rows = with_gpu_usage(rows)
    assert rows[0].gpu_memory_mib is None and rows[0].gpu_util_percent is None
    assert inits(answers) == 1 and gpu_usage.shared.failed
    missing = GpuUsage(module_name="no_such_nvml_module")
    assert missing.usage({"x": JobProcs(1, 1)}) == {} and missing.usage({"x": JobProcs(1, 1)}) == {}
    assert missing.init_attempts == 1


def test_nvml_untouched_without_a_running_gpu_job(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = GpuUsage(module_name="no_such_nvml_module")
    rows = with_gpu_usage([running_row("a", 1, gpu="cpu"), running_row("b", 2, state="done")], usage)
    assert usage.init_attempts == 0
    assert [(r.gpu_memory_mib, r.gpu_util_percent) for r in rows] == [(None, None), (None, None)]


def running_row(key: str, pid: int, **changes: Any) -> RunStatus:
    """A run of `ftui list` training on gpu0 as engine `pid` (its process group: no job row, so the pid)."""
    row = RunStatus(key=key, experiment=key, seed=42, tasks="D", state="running", action="train", gpu="gpu0")
    return replace(row, pid=pid, **changes)


def gpu_job_study(tmp_path: Path, leader: int) -> Path:
    """The mini study with single-1 training on gpu0 as process group `leader`."""
    registry_path = make_study(tmp_path)
    registry = load_registry(registry_path)
    run = next(r for r in registry.runs() if r.key == "single-1")
    store = Store(registry.runs_dir(None))
    job = store.enqueue([JobSpec(run.key, run.experiment.name, run.rel_dir, "train", ())]).queued[0]
    store.claim(job.id, "gpu0")
    store.record_process(job.id, leader, procs.start_ticks(leader), leader)
    store.close()
    return registry_path


def one_gpu(children: list[int]) -> dict[str, Any]:
    return {
        "devices": [
            {
                "processes": [{"pid": children[0], "usedGpuMemory": int(1.5 * GIB)}],
                "samples": [{"pid": children[0], "smUtil": 35}],
                "util": 90,
            }
        ]
    }


def test_list_json_reports_gpu_memory_and_util(tmp_path: Path, group: tuple[int, list[int]]) -> None:
    leader, children = group
    registry = gpu_job_study(tmp_path, leader)
    answers = record(tmp_path, one_gpu(children))
    env = dict(os.environ, PYTHONPATH=f"{FAKE_DIR}{os.pathsep}{REPO_ROOT}", FTUI_FAKE_NVML=str(answers))
    rows = list_json(registry, env=env, timeout=60)
    assert rows["single-1"]["state"] == "running"
    assert rows["single-1"]["gpu_memory_mib"] == 1536.0
    assert rows["single-1"]["gpu_util_percent"] == 35
    assert rows["base"]["gpu_memory_mib"] is None and rows["base"]["gpu_util_percent"] is None
    # The real nvidia-ml-py on this GPU-less machine: NVML fails to initialise, the fields are null, no error.
    plain = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    plain.pop("FTUI_FAKE_NVML", None)
    rows = list_json(registry, env=plain, timeout=60)
    assert rows["single-1"]["gpu_memory_mib"] is None and rows["single-1"]["gpu_util_percent"] is None


async def test_home_table_gpu_column_shows_memory_and_util(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_nvml: None, group: tuple[int, list[int]]
) -> None:
    leader, children = group
    registry = gpu_job_study(tmp_path, leader)
    monkeypatch.setenv("FTUI_FAKE_NVML", str(record(tmp_path, one_gpu(children))))
    app = make_app(registry, start_worker=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(RunTable)
        assert str(table.get_cell("single-1", "gpu")) == "gpu0 1.5G 35%"
        assert str(table.get_cell("base", "gpu")) == ""
