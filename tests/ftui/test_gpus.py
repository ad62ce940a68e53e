"""Which GPUs the worker uses with `gpus = "auto"`: the CUDA_VISIBLE_DEVICES it was started with, mapped
through a fake `nvidia-smi` on PATH that reports two GPUs (one with a MIG device). The end-to-end test
launches a real job with `ftui launch` and reads the environment its engine process got from /proc."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from ftui.queue import procs
from ftui.queue.gpus import Gpu, Slot, build_slots, choose_gpus, job_env
from ftui.queue.store import Store
from ftui.queue.worker import LOG_NAME, stop_worker
from tests.ftui.queue_helpers import mini_study_with, run_ftui, wait_until

UUID0 = "GPU-0a1b2c3d-0000-1111-2222-333344445555"
UUID1 = "GPU-9f8e7d6c-0000-1111-2222-333344445555"
MIG0 = "MIG-5c4d3e2f-aaaa-bbbb-cccc-ddddeeeeffff"
FAKE_NVIDIA_SMI = f"""#!/bin/sh
case "$*" in
  *index,uuid*) printf '0, {UUID0}\\n1, {UUID1}\\n' ;;
  *-L*) printf 'GPU 0: Fake H100 (UUID: {UUID0})\\n  MIG 1g.10gb     Device  0: (UUID: {MIG0})\\n'
        printf 'GPU 1: Fake H100 (UUID: {UUID1})\\n' ;;
  *index*) printf '0\\n1\\n' ;;
  *) exit 9 ;;
esac
"""


@pytest.fixture
def two_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH whose nvidia-smi reports two GPUs; returns the folder holding it."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    exe = bin_dir / "nvidia-smi"
    exe.write_text(FAKE_NVIDIA_SMI)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


@pytest.mark.parametrize(
    "visible, chosen, words",
    [
        (None, [0, 1], "every GPU nvidia-smi lists"),
        ("1", [1], "CUDA_VISIBLE_DEVICES=1"),
        ("1,0", [1, 0], "CUDA_VISIBLE_DEVICES=1,0"),
        ("", [], "CUDA_VISIBLE_DEVICES is empty"),
        (UUID1, [1], UUID1),
        ("GPU-9f8e7d6c", [1], "GPU-9f8e7d6c"),  # CUDA accepts a unique prefix of a UUID
        (f"{UUID0},{UUID1}", [0, 1], UUID0),
        (MIG0, [Gpu(0, MIG0)], MIG0),
        (f"MIG-{UUID0}/1/0", [Gpu(0, f"MIG-{UUID0}/1/0")], "MIG-"),
        ("-1", [], "no device"),
        ("1,7,0", [1], "7 is not a GPU nvidia-smi lists"),  # CUDA too stops at the first unknown device
    ],
)
def test_auto_honours_cuda_visible_devices(
    two_gpus: Path, visible: str | None, chosen: list[object], words: str
) -> None:
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    gpus, how = choose_gpus(environ)
    assert gpus == chosen
    assert words in how


def test_without_nvidia_smi_jobs_run_on_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    gpus, how = choose_gpus({"CUDA_VISIBLE_DEVICES": "0"})
    assert gpus == [] and "nvidia-smi" in how


def test_a_mig_device_is_given_to_its_job_by_name() -> None:
    (slot,) = build_slots("auto", 1, 1, detected=[Gpu(0, MIG0)])
    assert slot == Slot(0, 0, device=MIG0) and slot.label == "gpu0:MIG-5c4d3e2f"
    env = job_env({"CUDA_VISIBLE_DEVICES": "0,1"}, slot)
    assert env["CUDA_VISIBLE_DEVICES"] == MIG0 and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


@pytest.mark.slow
def test_a_launched_job_runs_on_the_gpu_the_user_made_visible(tmp_path: Path, two_gpus: Path) -> None:
    """`CUDA_VISIBLE_DEVICES=1 ftui launch base` on a two-GPU machine: the detached worker inherits the
    variable, logs its choice, and the engine process gets GPU 1 (as /proc/PID/environ shows), not GPU 0."""
    registry = mini_study_with(tmp_path, {})
    runs = tmp_path / "runs"
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "1", "FTUI_WORKER_IDLE_EXIT": "1", "FTUI_WORKER_POLL": "0.05"}
    try:
        out = run_ftui(registry, "launch", "base", "--only", env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        store = Store(runs)
        job = wait_until(
            lambda: next((j for j in store.jobs(states=["running"]) if j.pid is not None), None),
            "the engine to start",
            timeout=60,
            poll=0.05,
        )
        raw = Path(f"/proc/{job.pid}/environ").read_text().split("\0")
        environ = dict(item.split("=", 1) for item in raw if "=" in item)
        assert (job.slot, environ["CUDA_VISIBLE_DEVICES"], environ["CUDA_DEVICE_ORDER"]) == (
            "gpu1",
            "1",
            "PCI_BUS_ID",
        )
        log = (runs / LOG_NAME).read_text()
        assert "GPUs: 1 (CUDA_VISIBLE_DEVICES=1; nvidia-smi lists 0, 1)" in log
    finally:
        stop_worker(runs)
        for j in Store(runs).jobs(states=["running"]):
            if j.pgid and procs.is_alive(j.pid, j.pid_start):
                procs.signal_group(j.pgid, signal.SIGKILL)
